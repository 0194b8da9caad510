"""MXNet's positional order of attributes, for the ops where it differs from the schema's order
(MXNet's generated signatures: Convolution(data, weight, bias, kernel, stride, dilate, pad, num_filter, ...)).
Names graphc lacks stay in the order, so a value given in their place is refused rather than misread."""
from ..registry import OPS

POSITIONAL = {
    'Convolution': ('kernel', 'stride', 'dilate', 'pad', 'num_filter', 'num_group', 'workspace', 'no_bias',
                    'cudnn_tune', 'cudnn_off', 'layout'),
    'Deconvolution': ('kernel', 'stride', 'dilate', 'pad', 'adj', 'target_shape', 'num_filter', 'num_group',
                      'workspace', 'no_bias', 'cudnn_tune', 'cudnn_off', 'layout'),
    'Pooling': ('kernel', 'pool_type', 'global_pool', 'cudnn_off', 'pooling_convention', 'stride', 'pad', 'p_value',
                'count_include_pad', 'layout'),
    'norm': ('ord', 'axis', 'out_dtype', 'keepdims'),
    'Reshape': ('shape', 'reverse', 'target_shape', 'keep_highest'),
}

for _name, _order in POSITIONAL.items():
    if _name in OPS:
        OPS[_name].positional = _order
