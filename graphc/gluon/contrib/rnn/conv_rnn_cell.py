"""Convolutional recurrent cells (MXNet's gluon.contrib.rnn Conv{1,2,3}D{RNN,LSTM,GRU}Cell): the gates are
convolutions of the input (i2h, unpadded unless i2h_pad) and of the state (h2h, padded to keep its size)."""
from ....base import GraphcError
from ...rnn.rnn_cell import RecurrentCell, _named


class _BaseConvRNNCell(RecurrentCell):
    _G = 1  # gates

    def __init__(self, input_shape, hidden_channels, i2h_kernel, h2h_kernel, i2h_pad, i2h_dilate, h2h_dilate,
                 i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer,
                 dims, conv_layout, activation, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        name = type(self).__name__

        def spec(v, what):
            t = (v,) * dims if isinstance(v, int) else tuple(v)
            if len(t) != dims or not all(isinstance(i, int) for i in t):
                raise GraphcError(f"{name}: {what} must be an int or {dims} ints, got {v!r}")
            return t
        self._i2h_kernel, self._i2h_pad = spec(i2h_kernel, 'i2h_kernel'), spec(i2h_pad, 'i2h_pad')
        self._i2h_dilate, self._h2h_dilate = spec(i2h_dilate, 'i2h_dilate'), spec(h2h_dilate, 'h2h_dilate')
        self._h2h_kernel = spec(h2h_kernel, 'h2h_kernel')
        if any(k % 2 == 0 for k in self._h2h_kernel):
            raise GraphcError(f"{name}: h2h_kernel must be odd (the state keeps its size), got {h2h_kernel!r}")
        if len(conv_layout) != dims + 2 or conv_layout[0] != 'N' or 'C' not in conv_layout:
            raise GraphcError(f"{name}: conv_layout must be N, C and {dims} spatial axes, got {conv_layout!r}")
        input_shape = tuple(input_shape)
        if len(input_shape) != dims + 1:
            raise GraphcError(f"{name}: input_shape is (channels and {dims} spatial sizes, no batch), got "
                              f"{input_shape}")
        self._hidden_channels, self._conv_layout, self._activation = hidden_channels, conv_layout, activation
        self._input_shape = input_shape
        self._channel_axis = axis = conv_layout.find('C')
        spatial = input_shape[1:] if axis == 1 else input_shape[:-1]
        out = tuple(x + 2 * p - d * (k - 1) if x else 0  # stride 1; 0: not known yet
                    for x, k, p, d in zip(spatial, self._i2h_kernel, self._i2h_pad, self._i2h_dilate))
        self._h2h_pad = tuple(d * (k - 1) // 2 for d, k in zip(self._h2h_dilate, self._h2h_kernel))
        self._state_shape = (hidden_channels,) + out if axis == 1 else out + (hidden_channels,)
        g = self._G * hidden_channels
        self.i2h_weight = self.params.get('i2h_weight', shape=self._wshape(input_shape[axis - 1], self._i2h_kernel),
                                          init=i2h_weight_initializer, allow_deferred_init=True)
        self.h2h_weight = self.params.get('h2h_weight', shape=self._wshape(hidden_channels, self._h2h_kernel),
                                          init=h2h_weight_initializer, allow_deferred_init=True)
        self.i2h_bias = self.params.get('i2h_bias', shape=(g,), init=i2h_bias_initializer, allow_deferred_init=True)
        self.h2h_bias = self.params.get('h2h_bias', shape=(g,), init=h2h_bias_initializer, allow_deferred_init=True)

    def _wshape(self, in_channels, kernel):
        g = self._G * self._hidden_channels
        return (g, in_channels) + kernel if self._channel_axis == 1 else (g,) + kernel + (in_channels,)

    def infer_shape(self, inputs, *args):
        self.i2h_weight.shape = self._wshape(inputs.shape[self._channel_axis], self._i2h_kernel)

    def state_info(self, batch_size=0):
        return [{'shape': (batch_size,) + self._state_shape, '__layout__': self._conv_layout}] * self._n_states

    _n_states = 1

    def __repr__(self):
        shape = self.i2h_weight.shape
        c = shape[1 if self._channel_axis == 1 else -1]
        return f"{type(self).__name__}({c or None} -> {shape[0]}, {self._activation}, {self._conv_layout})"

    def _conv_forward(self, F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias, t):
        n = self._G * self._hidden_channels
        stride = (1,) * len(self._i2h_kernel)
        i2h = _named(F, 'Convolution', inputs, i2h_weight, i2h_bias, num_filter=n, kernel=self._i2h_kernel,
                     stride=stride, pad=self._i2h_pad, dilate=self._i2h_dilate, layout=self._conv_layout,
                     name=t + 'i2h')
        h2h = _named(F, 'Convolution', states[0], h2h_weight, h2h_bias, num_filter=n, kernel=self._h2h_kernel,
                     stride=stride, pad=self._h2h_pad, dilate=self._h2h_dilate, layout=self._conv_layout,
                     name=t + 'h2h')
        return i2h, h2h


class _ConvRNNCell(_BaseConvRNNCell):
    def _alias(self):
        return 'conv_rnn'

    def hybrid_forward(self, F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        t = f"t{self._counter}_"
        i2h, h2h = self._conv_forward(F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias, t)
        out = self._get_activation(F, i2h + h2h, self._activation, name=t + 'out')
        return out, [out]


class _ConvLSTMCell(_BaseConvRNNCell):
    """Gates i, f, c, o (sigmoid, except c: activation); c' = f*c + i*g, h' = o*activation(c'); states [h, c]."""
    _G, _n_states = 4, 2

    def _alias(self):
        return 'conv_lstm'

    def hybrid_forward(self, F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        t = f"t{self._counter}_"
        i2h, h2h = self._conv_forward(F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias, t)
        g = _named(F, 'SliceChannel', i2h + h2h, num_outputs=4, axis=self._channel_axis, name=t + 'slice')
        in_gate = _named(F, 'Activation', g[0], act_type='sigmoid', name=t + 'i')
        forget_gate = _named(F, 'Activation', g[1], act_type='sigmoid', name=t + 'f')
        in_transform = self._get_activation(F, g[2], self._activation, name=t + 'c')
        out_gate = _named(F, 'Activation', g[3], act_type='sigmoid', name=t + 'o')
        next_c = _named(F, 'elemwise_add', forget_gate * states[1], in_gate * in_transform, name=t + 'state')
        next_h = _named(F, 'elemwise_mul', out_gate, self._get_activation(F, next_c, self._activation),
                        name=t + 'out')
        return next_h, [next_h, next_c]


class _ConvGRUCell(_BaseConvRNNCell):
    """Gates r, z (sigmoid); n = activation(i2h_n + r * h2h_n), h' = (1 - z) * n + z * h."""
    _G = 3

    def _alias(self):
        return 'conv_gru'

    def hybrid_forward(self, F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        t = f"t{self._counter}_"
        i2h, h2h = self._conv_forward(F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias, t)
        i_r, i_z, i_n = _named(F, 'SliceChannel', i2h, num_outputs=3, axis=self._channel_axis, name=t + 'i2h_slice')
        h_r, h_z, h_n = _named(F, 'SliceChannel', h2h, num_outputs=3, axis=self._channel_axis, name=t + 'h2h_slice')
        reset_gate = _named(F, 'Activation', i_r + h_r, act_type='sigmoid', name=t + 'r_act')
        update_gate = _named(F, 'Activation', i_z + h_z, act_type='sigmoid', name=t + 'z_act')
        next_h_tmp = self._get_activation(F, i_n + reset_gate * h_n, self._activation, name=t + 'h_act')
        next_h = _named(F, 'elemwise_add', (1. - update_gate) * next_h_tmp, update_gate * states[0], name=t + 'out')
        return next_h, [next_h]


def _cell(base, dims, layout, doc):
    def __init__(self, input_shape, hidden_channels, i2h_kernel, h2h_kernel, i2h_pad=(0,) * dims,
                 i2h_dilate=(1,) * dims, h2h_dilate=(1,) * dims, i2h_weight_initializer=None,
                 h2h_weight_initializer=None, i2h_bias_initializer='zeros', h2h_bias_initializer='zeros',
                 conv_layout=layout, activation='tanh', prefix=None, params=None):
        base.__init__(self, input_shape, hidden_channels, i2h_kernel, h2h_kernel, i2h_pad, i2h_dilate, h2h_dilate,
                      i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer,
                      dims, conv_layout, activation, prefix, params)
    name = f"Conv{dims}D{base.__name__[5:-4]}Cell"
    return type(name, (base,), {'__init__': __init__, '__doc__': f"{dims}-d convolutional {doc} cell; "
                                "input_shape is one sample's (C, *spatial) in conv_layout.",
                                '__module__': __name__, '__qualname__': name})


Conv1DRNNCell, Conv2DRNNCell, Conv3DRNNCell = (_cell(_ConvRNNCell, d, lay, 'RNN')
                                               for d, lay in ((1, 'NCW'), (2, 'NCHW'), (3, 'NCDHW')))
Conv1DLSTMCell, Conv2DLSTMCell, Conv3DLSTMCell = (_cell(_ConvLSTMCell, d, lay, 'LSTM')
                                                  for d, lay in ((1, 'NCW'), (2, 'NCHW'), (3, 'NCDHW')))
Conv1DGRUCell, Conv2DGRUCell, Conv3DGRUCell = (_cell(_ConvGRUCell, d, lay, 'GRU')
                                               for d, lay in ((1, 'NCW'), (2, 'NCHW'), (3, 'NCDHW')))
