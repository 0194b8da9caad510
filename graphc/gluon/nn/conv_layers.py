"""2-D convolution and pooling layers as MXNet Gluon 1.x (layout NCHW)."""
import numbers

from ...base import GraphcError
from ..block import HybridBlock
from .basic_layers import Activation


def _pair(v, name, layer):
    if isinstance(v, numbers.Integral):
        return (int(v),) * 2
    v = tuple(int(i) for i in v)
    if len(v) != 2:
        raise GraphcError(f"{layer}: {name} must be an int or a pair, got {v}")
    return v


def _check_layout(layout, layer):
    if layout != 'NCHW':
        raise GraphcError(f"{layer}: layout {layout!r} is not supported yet; use 'NCHW'")


class _Conv(HybridBlock):
    """Shared by Conv2D and Conv2DTranspose: kwargs as the MXNet op takes them, deferred in_channels."""
    _alias = staticmethod(lambda: 'conv')  # MXNet's names: conv0_weight, pool0_fwd
    _op_name = 'Convolution'

    def __init__(self, channels, kernel_size, strides, padding, dilation, groups, layout, in_channels=0,
                 activation=None, use_bias=True, weight_initializer=None, bias_initializer='zeros',
                 adj=None, **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        _check_layout(layout, name)
        k = _pair(kernel_size, 'kernel_size', name)
        if channels % groups or (in_channels and in_channels % groups):
            raise GraphcError(f"{name}: channels ({channels}) and in_channels ({in_channels}) must divide by "
                              f"groups ({groups})")
        self._channels, self._in_channels, self._groups = channels, in_channels, groups
        self._kwargs = {'kernel': k, 'stride': _pair(strides, 'strides', name),
                        'dilate': _pair(dilation, 'dilation', name), 'pad': _pair(padding, 'padding', name), 'num_filter': channels, 'num_group': groups,
                        'no_bias': not use_bias}
        if adj is not None:
            self._kwargs['adj'] = _pair(adj, 'output_padding', name)
        with self.name_scope():
            self.weight = self.params.get('weight', shape=self._weight_shape(in_channels), init=weight_initializer,
                                          allow_deferred_init=True)
            self.bias = self.params.get('bias', shape=(channels,), init=bias_initializer,
                                        allow_deferred_init=True) if use_bias else None
            self.act = Activation(activation, prefix=activation + '_') if activation is not None else None

    def _weight_shape(self, cin):
        return (self._channels, cin // self._groups) + self._kwargs['kernel']

    def infer_shape(self, x, *args):
        if x.ndim != 4:
            raise GraphcError(f"{type(self).__name__}: expected a 4-d NCHW input, got shape {x.shape}")
        self.weight.shape = self._weight_shape(x.shape[1])

    def hybrid_forward(self, F, x, weight, bias=None):
        args = (x, weight) if bias is None else (x, weight, bias)
        out = getattr(F, self._op_name)(*args, name='fwd', **self._kwargs)
        return self.act(out) if self.act is not None else out

    def _in_out(self):
        s = self.weight.shape
        if self._op_name == 'Convolution':
            return s[1] * self._groups or None, s[0]
        return s[0] or None, s[1] * self._groups

    def __repr__(self):
        k = self._kwargs
        i, o = self._in_out()
        s = f"{type(self).__name__}({i} -> {o}, kernel_size={k['kernel']}, stride={k['stride']}"
        if k['pad'] != (0, 0):
            s += f", padding={k['pad']}"
        if k['dilate'] != (1, 1):
            s += f", dilation={k['dilate']}"
        if k.get('adj', (0, 0)) != (0, 0):
            s += f", output_padding={k['adj']}"
        if self._groups != 1:
            s += f", groups={self._groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.act is not None:
            s += f", {self.act}"
        return s + ')'


class Conv2D(_Conv):
    """2-D convolution; weight (channels, in_channels // groups, kh, kw)."""

    def __init__(self, channels, kernel_size, strides=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                 layout='NCHW', activation=None, use_bias=True, weight_initializer=None, bias_initializer='zeros',
                 in_channels=0, **kwargs):
        super().__init__(channels, kernel_size, strides, padding, dilation, groups, layout, in_channels, activation,
                         use_bias, weight_initializer, bias_initializer, **kwargs)


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution; weight (in_channels, channels // groups, kh, kw)."""
    _op_name = 'Deconvolution'

    def __init__(self, channels, kernel_size, strides=(1, 1), padding=(0, 0), output_padding=(0, 0),
                 dilation=(1, 1), groups=1, layout='NCHW', activation=None, use_bias=True, weight_initializer=None,
                 bias_initializer='zeros', in_channels=0, **kwargs):
        super().__init__(channels, kernel_size, strides, padding, dilation, groups, layout, in_channels, activation,
                         use_bias, weight_initializer, bias_initializer, adj=output_padding, **kwargs)
        self.outpad = self._kwargs['adj']

    def _weight_shape(self, cin):
        return (cin, self._channels // self._groups) + self._kwargs['kernel']


class _Pooling(HybridBlock):
    _alias = staticmethod(lambda: 'pool')

    def __init__(self, pool_size, strides, padding, ceil_mode, global_pool, pool_type, layout,
                 count_include_pad=None, **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        _check_layout(layout, name)
        pool_size = _pair(pool_size, 'pool_size', name)
        strides = _pair(pool_size if strides is None else strides, 'strides', name)
        self._kwargs = {'kernel': pool_size, 'stride': strides,
                        'pad': _pair(padding, 'padding', name), 'global_pool': global_pool, 'pool_type': pool_type,
                        'pooling_convention': 'full' if ceil_mode else 'valid'}
        if count_include_pad is not None:
            self._kwargs['count_include_pad'] = count_include_pad
        self._layout = layout

    def hybrid_forward(self, F, x):
        return F.Pooling(x, name='fwd', **self._kwargs)

    def __repr__(self):
        k = self._kwargs
        return (f"{type(self).__name__}(size={k['kernel']}, stride={k['stride']}, padding={k['pad']}, "
                f"ceil_mode={k['pooling_convention'] == 'full'}, global_pool={k['global_pool']}, "
                f"pool_type={k['pool_type']}, layout={self._layout})")


class MaxPool2D(_Pooling):
    def __init__(self, pool_size=(2, 2), strides=None, padding=0, layout='NCHW', ceil_mode=False, **kwargs):
        super().__init__(pool_size, strides, padding, ceil_mode, False, 'max', layout, **kwargs)


class AvgPool2D(_Pooling):
    def __init__(self, pool_size=(2, 2), strides=None, padding=0, layout='NCHW', ceil_mode=False,
                 count_include_pad=True, **kwargs):
        super().__init__(pool_size, strides, padding, ceil_mode, False, 'avg', layout, count_include_pad, **kwargs)


class GlobalMaxPool2D(_Pooling):
    def __init__(self, layout='NCHW', **kwargs):
        super().__init__((1, 1), None, 0, True, True, 'max', layout, **kwargs)


class GlobalAvgPool2D(_Pooling):
    def __init__(self, layout='NCHW', **kwargs):
        super().__init__((1, 1), None, 0, True, True, 'avg', layout, **kwargs)


__all__ = ['Conv2D', 'Conv2DTranspose', 'MaxPool2D', 'AvgPool2D', 'GlobalMaxPool2D', 'GlobalAvgPool2D']
