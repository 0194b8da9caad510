"""Convolution, pooling and padding layers as MXNet Gluon 1.x: 1-, 2- and 3-d, channels first or last."""
import numbers

from ...base import GraphcError
from ..block import HybridBlock
from .basic_layers import Activation


def _tuple(v, n, name, layer):
    if isinstance(v, numbers.Integral):
        return (int(v),) * n
    v = tuple(int(i) for i in v)
    if len(v) != n:
        raise GraphcError(f"{layer}: {name} must be an int or {n} ints, got {v}")
    return v


def _check_layout(layout, allowed, layer):
    if layout not in allowed:
        raise GraphcError(f"{layer}: layout {layout!r} is not supported; use one of {', '.join(allowed)}")


class _Conv(HybridBlock):
    """Shared by the convolutions and transposed convolutions: the op's kwargs as MXNet passes them; in_channels
    may be left 0 and is then read from the first input."""
    _alias = staticmethod(lambda: 'conv')  # MXNet's names: conv0_weight, pool0_fwd
    _op_name = 'Convolution'
    _layouts = ()

    def __init__(self, channels, kernel_size, strides, padding, dilation, groups, layout, in_channels=0,
                 activation=None, use_bias=True, weight_initializer=None, bias_initializer='zeros',
                 adj=None, **kwargs):
        super().__init__(**kwargs)
        name, n = type(self).__name__, len(self._layouts[0]) - 2
        _check_layout(layout, self._layouts, name)
        if channels % groups or (in_channels and in_channels % groups):
            raise GraphcError(f"{name}: channels ({channels}) and in_channels ({in_channels}) must divide by "
                              f"groups ({groups})")
        self._channels, self._in_channels, self._groups = channels, in_channels, groups
        self._kwargs = {'kernel': _tuple(kernel_size, n, 'kernel_size', name),
                        'stride': _tuple(strides, n, 'strides', name), 'dilate': _tuple(dilation, n, 'dilation', name),
                        'pad': _tuple(padding, n, 'padding', name), 'num_filter': channels, 'num_group': groups,
                        'no_bias': not use_bias, 'layout': layout}
        if adj is not None:
            self._kwargs['adj'] = _tuple(adj, n, 'output_padding', name)
        with self.name_scope():
            self.weight = self.params.get('weight', shape=self._weight_shape(in_channels), init=weight_initializer,
                                          allow_deferred_init=True)
            self.bias = self.params.get('bias', shape=(channels,), init=bias_initializer,
                                        allow_deferred_init=True) if use_bias else None
            self.act = Activation(activation, prefix=activation + '_') if activation is not None else None

    def _weight_shape(self, cin):
        """The op's weight layout: (out, in/groups, *kernel), channels moved last for channels-last data."""
        k, g = self._kwargs['kernel'], self._groups
        a, b = (self._channels, cin // g) if self._op_name == 'Convolution' else (cin, self._channels // g)
        return (a,) + k + (b,) if self._kwargs['layout'][1] != 'C' else (a, b) + k

    def infer_shape(self, x, *args):
        layout = self._kwargs['layout']
        if x.ndim != len(layout):
            raise GraphcError(f"{type(self).__name__}: expected a {len(layout)}-d {layout} input, got shape {x.shape}")
        self.weight.shape = self._weight_shape(x.shape[layout.find('C')])

    def hybrid_forward(self, F, x, weight, bias=None):
        args = (x, weight) if bias is None else (x, weight, bias)
        out = getattr(F, self._op_name)(*args, name='fwd', **self._kwargs)
        return self.act(out) if self.act is not None else out

    def __repr__(self):  # as MXNet prints it (weight.shape[1] -> weight.shape[0], for every layout)
        k = self._kwargs
        n = len(k['kernel'])
        s = f"{type(self).__name__}({self.weight.shape[1] or None} -> {self.weight.shape[0]}, " \
            f"kernel_size={k['kernel']}, stride={k['stride']}"
        if k['pad'] != (0,) * n:
            s += f", padding={k['pad']}"
        if k['dilate'] != (1,) * n:
            s += f", dilation={k['dilate']}"
        if self._groups != 1:
            s += f", groups={self._groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.act is not None:
            s += f", {self.act}"
        return s + ')'


def _conv_class(name, layouts, transpose, doc):
    """Conv1D/2D/3D and their transposes differ only in rank, default layout and op."""
    n = len(layouts[0]) - 2
    one = 1 if n == 1 else (1,) * n
    zero = 0 if n == 1 else (0,) * n

    if transpose:
        def __init__(self, channels, kernel_size, strides=one, padding=zero, output_padding=zero, dilation=one,
                     groups=1, layout=layouts[0], activation=None, use_bias=True, weight_initializer=None,
                     bias_initializer='zeros', in_channels=0, **kwargs):
            _Conv.__init__(self, channels, kernel_size, strides, padding, dilation, groups, layout, in_channels,
                           activation, use_bias, weight_initializer, bias_initializer, adj=output_padding, **kwargs)
            self.outpad = self._kwargs['adj']
    else:
        def __init__(self, channels, kernel_size, strides=one, padding=zero, dilation=one, groups=1,
                     layout=layouts[0], activation=None, use_bias=True, weight_initializer=None,
                     bias_initializer='zeros', in_channels=0, **kwargs):
            _Conv.__init__(self, channels, kernel_size, strides, padding, dilation, groups, layout, in_channels,
                           activation, use_bias, weight_initializer, bias_initializer, **kwargs)
    body = {'__init__': __init__, '__doc__': doc, '_layouts': layouts, '__module__': __name__}
    if transpose:
        body['_op_name'] = 'Deconvolution'
    return type(name, (_Conv,), body)


_L1, _L2, _L3 = ('NCW', 'NWC'), ('NCHW', 'NHWC'), ('NCDHW', 'NDHWC')
Conv1D = _conv_class('Conv1D', _L1, False, "1-d convolution; weight (channels, in_channels // groups, k).")
Conv2D = _conv_class('Conv2D', _L2, False, "2-d convolution; weight (channels, in_channels // groups, kh, kw).")
Conv3D = _conv_class('Conv3D', _L3, False, "3-d convolution; weight (channels, in_channels // groups, kd, kh, kw).")
Conv1DTranspose = _conv_class('Conv1DTranspose', _L1, True,
                              "Transposed 1-d convolution; weight (in_channels, channels // groups, k).")
Conv2DTranspose = _conv_class('Conv2DTranspose', _L2, True,
                              "Transposed 2-d convolution; weight (in_channels, channels // groups, kh, kw).")
Conv3DTranspose = _conv_class('Conv3DTranspose', _L3, True,
                              "Transposed 3-d convolution; weight (in_channels, channels // groups, kd, kh, kw).")


class _Pooling(HybridBlock):
    _alias = staticmethod(lambda: 'pool')

    def __init__(self, pool_size, strides, padding, ceil_mode, global_pool, pool_type, layout,
                 count_include_pad=None, **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        n = len(self._layouts[0]) - 2
        _check_layout(layout, self._layouts, name)
        pool_size = _tuple(pool_size, n, 'pool_size', name)
        self._kwargs = {'kernel': pool_size, 'stride': _tuple(pool_size if strides is None else strides, n, 'strides',
                                                              name),
                        'pad': _tuple(padding, n, 'padding', name), 'global_pool': global_pool, 'pool_type': pool_type,
                        'layout': layout, 'pooling_convention': 'full' if ceil_mode else 'valid'}
        if count_include_pad is not None:
            self._kwargs['count_include_pad'] = count_include_pad

    def hybrid_forward(self, F, x):
        return F.Pooling(x, name='fwd', **self._kwargs)

    def __repr__(self):
        k = self._kwargs
        return (f"{type(self).__name__}(size={k['kernel']}, stride={k['stride']}, padding={k['pad']}, "
                f"ceil_mode={k['pooling_convention'] == 'full'}, global_pool={k['global_pool']}, "
                f"pool_type={k['pool_type']}, layout={k['layout']})")


def _pool_class(name, layouts, pool_type, global_pool=False):
    n = len(layouts[0]) - 2
    if global_pool:
        def __init__(self, layout=layouts[0], **kwargs):
            _Pooling.__init__(self, (1,) * n, None, 0, True, True, pool_type, layout, **kwargs)
        doc = f"Global {pool_type} pooling over all {n}-d positions: output spatial size 1."
    elif pool_type == 'max':
        def __init__(self, pool_size=(2,) * n, strides=None, padding=0, layout=layouts[0], ceil_mode=False, **kwargs):
            _Pooling.__init__(self, pool_size, strides, padding, ceil_mode, False, 'max', layout, **kwargs)
        doc = f"{n}-d max pooling; strides default to pool_size."
    else:
        def __init__(self, pool_size=(2,) * n, strides=None, padding=0, layout=layouts[0], ceil_mode=False,
                     count_include_pad=True, **kwargs):
            _Pooling.__init__(self, pool_size, strides, padding, ceil_mode, False, 'avg', layout, count_include_pad,
                              **kwargs)
        doc = f"{n}-d average pooling; count_include_pad=False leaves the padding out of the divisor."
    return type(name, (_Pooling,), {'__init__': __init__, '__doc__': doc, '_layouts': layouts, '__module__': __name__})


MaxPool1D, MaxPool2D, MaxPool3D = (_pool_class(f'MaxPool{i}D', lay, 'max') for i, lay in ((1, _L1), (2, _L2), (3, _L3)))
AvgPool1D, AvgPool2D, AvgPool3D = (_pool_class(f'AvgPool{i}D', lay, 'avg') for i, lay in ((1, _L1), (2, _L2), (3, _L3)))
GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = (_pool_class(f'GlobalMaxPool{i}D', lay, 'max', True)
                                                     for i, lay in ((1, _L1), (2, _L2), (3, _L3)))
GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = (_pool_class(f'GlobalAvgPool{i}D', lay, 'avg', True)
                                                     for i, lay in ((1, _L1), (2, _L2), (3, _L3)))


class ReflectionPad2D(HybridBlock):
    """Pad the two spatial axes of NCHW data by reflection; padding is an int or 8 pad_width values."""

    def __init__(self, padding=0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, numbers.Integral):
            padding = (0, 0, 0, 0, padding, padding, padding, padding)
        padding = tuple(int(p) for p in padding)
        if len(padding) != 8:
            raise GraphcError(f"ReflectionPad2D: padding must be an int or 8 values, got {padding}")
        self._padding = padding

    def hybrid_forward(self, F, x):
        return F.Pad(x, mode='reflect', pad_width=self._padding, name='fwd')

    def __repr__(self):
        return f"{type(self).__name__}(padding={self._padding})"


__all__ = ['Conv1D', 'Conv2D', 'Conv3D', 'Conv1DTranspose', 'Conv2DTranspose', 'Conv3DTranspose',
           'MaxPool1D', 'MaxPool2D', 'MaxPool3D', 'AvgPool1D', 'AvgPool2D', 'AvgPool3D',
           'GlobalMaxPool1D', 'GlobalMaxPool2D', 'GlobalMaxPool3D', 'GlobalAvgPool1D', 'GlobalAvgPool2D',
           'GlobalAvgPool3D', 'ReflectionPad2D']
