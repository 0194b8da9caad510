"""Recurrent layers as MXNet Gluon 1.x: RNN, LSTM, GRU (multi-layer, optionally bidirectional).

Parameters are named as MXNet's: `l{i}_i2h_weight`, `l{i}_h2h_weight`, `l{i}_i2h_bias`, `l{i}_h2h_bias` for
layer i, and `r{i}_...` for its reverse direction, so MXNet parameter files load by name.

Implementation note: these layers unroll per-layer cell steps over time (FullyConnected + activations, the
same math as RNNCell/LSTMCell/GRUCell), eagerly or into the traced graph when hybridized. MXNet's fused RNN
operator is a later task; the results match it, the speed does not.
"""
from ... import nd
from ...base import GraphcError
from ..block import HybridBlock
from .rnn_cell import GRUCell, LSTMCell, RNNCell, RecurrentCell, _BaseGatedCell, _StatesCall, _F_of, _as_list, _dtype_of

__all__ = ['RNN', 'LSTM', 'GRU']


class _Step:
    """A cell class's hybrid_forward without a cell (no Block, no parameters of its own)."""

    def __init__(self, cls, hidden_size, activation):
        self._cls, self._G, self._hidden_size = cls, cls._G, hidden_size
        self._activation, self._recurrent_activation = activation, 'sigmoid'

    _fc = _BaseGatedCell._fc
    _get_activation = RecurrentCell._get_activation

    def hybrid_forward(self, F, *args):
        return self._cls.hybrid_forward(self, F, *args)


class _RNNLayer(_StatesCall, HybridBlock):
    """Shared implementation of RNN, LSTM and GRU."""

    def __init__(self, hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                 i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer,
                 mode, prefix=None, params=None, activation='tanh', dtype='float32'):
        super().__init__(prefix=prefix, params=params)
        if layout not in ('TNC', 'NTC'):
            raise GraphcError(f"invalid layout {layout!r}; must be one of ['TNC' or 'NTC']")
        self._hidden_size, self._num_layers, self._mode = hidden_size, num_layers, mode
        self._layout, self._dropout, self._dir = layout, dropout, 2 if bidirectional else 1
        self._input_size, self._activation = input_size, activation
        self._gates = {'rnn_relu': 1, 'rnn_tanh': 1, 'lstm': 4, 'gru': 3}[mode]
        gh = self._gates * hidden_size
        ni = input_size
        for i in range(num_layers):
            for j in ['l', 'r'][:self._dir]:
                for name, shape, init in ((f'{j}{i}_i2h_weight', (gh, ni), i2h_weight_initializer),
                                          (f'{j}{i}_h2h_weight', (gh, hidden_size), h2h_weight_initializer),
                                          (f'{j}{i}_i2h_bias', (gh,), i2h_bias_initializer),
                                          (f'{j}{i}_h2h_bias', (gh,), h2h_bias_initializer)):
                    p = self.params.get(name, shape=shape, init=init, dtype=dtype, allow_deferred_init=True)
                    setattr(self, name, p)
            ni = hidden_size * self._dir
        cls = {'lstm': LSTMCell, 'gru': GRUCell}.get(mode, RNNCell)
        self._step = _Step(cls, hidden_size, activation)  # the cells' step math, on this layer's weights

    def __repr__(self):
        i = self.l0_i2h_weight.shape[1] if self.l0_i2h_weight.shape else 0
        s = f"{type(self).__name__}({i or None} -> {self._hidden_size}, {self._layout}"
        if self._num_layers != 1:
            s += f", num_layers={self._num_layers}"
        if self._dropout:
            s += f", dropout={self._dropout}"
        if self._dir == 2:
            s += ", bidirectional"
        return s + ")"

    def state_info(self, batch_size=0):
        shape = (self._num_layers * self._dir, batch_size, self._hidden_size)
        n = 2 if self._mode == 'lstm' else 1
        return [{'shape': shape, '__layout__': 'LNC'} for _ in range(n)]

    def begin_state(self, batch_size=0, func=nd.zeros, **kwargs):
        """Initial states: func(shape=(num_layers * directions, batch_size, hidden_size), **kwargs) each."""
        states = []
        for info in self.state_info(batch_size):
            info = dict(info)
            info.pop('__layout__')
            info.update(kwargs)
            states.append(func(**info))
        return states

    def infer_shape(self, inputs, *args):
        self.l0_i2h_weight.shape = (self._gates * self._hidden_size, inputs.shape[2])
        if self._dir == 2:
            self.r0_i2h_weight.shape = (self._gates * self._hidden_size, inputs.shape[2])

    def forward(self, inputs, *states):
        """inputs in `layout`; states None (zeros are used, only the outputs are returned) or a list of
        arrays (num_layers * directions, N, hidden_size): then (outputs, new_states) is returned."""
        states = self._states_arg(states)
        F = _F_of(inputs)
        batch_axis = self._layout.find('N')
        if inputs.shape is not None and inputs.ndim != 3:
            raise GraphcError(f"{type(self).__name__} expects 3-d inputs in layout {self._layout}, "
                              f"got shape {inputs.shape}")
        skip_states = states is None
        if skip_states:
            states = self.begin_state(inputs.shape[batch_axis], dtype=_dtype_of(inputs))
        states = _as_list(states)
        for s, info in zip(states, self.state_info(inputs.shape[batch_axis])):
            if s.shape is not None and tuple(s.shape) != tuple(info['shape']):
                raise GraphcError(f"invalid recurrent state shape: expected {info['shape']}, got {s.shape}")
        params = self._param_arrays(inputs, states)
        out, new_states = self.hybrid_forward(F, inputs, states, **params)
        return out if skip_states else (out, new_states)

    def hybrid_forward(self, F, inputs, states, **params):
        L, D = self._num_layers, self._dir
        t_axis = self._layout.find('T')
        T = inputs.shape[t_axis]
        xs = _as_list(F.split(inputs, num_outputs=T, axis=t_axis, squeeze_axis=True))
        # per state kind, the (L * D) slices (N, H)
        per = [_as_list(F.split(s, num_outputs=L * D, axis=0, squeeze_axis=True)) for s in states]
        new = [[None] * (L * D) for _ in states]
        step = self._step
        for i in range(L):
            outs_dir = []
            for d, j in enumerate(['l', 'r'][:D]):
                w = [params[f'{j}{i}_{k}'] for k in ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias')]
                st = [p[i * D + d] for p in per]
                order = range(T) if d == 0 else range(T - 1, -1, -1)
                outs = [None] * T
                for t in order:
                    outs[t], st = step.hybrid_forward(F, xs[t], st, *w)
                for k, s in enumerate(st):
                    new[k][i * D + d] = s
                outs_dir.append(outs)
            xs = outs_dir[0] if D == 1 else [F.concat(a, b, dim=1) for a, b in zip(*outs_dir)]
            if self._dropout and i < L - 1:
                xs = [F.Dropout(x, p=self._dropout) for x in xs]
        out = F.stack(*xs, axis=t_axis)
        return out, [F.stack(*n, axis=0) for n in new]


class RNN(_RNNLayer):
    """Elman RNN layer with `activation` 'relu' or 'tanh': h_t = act(W_i2h x_t + b_i2h + W_h2h h_{t-1} + b_h2h).
    States: [h] of shape (num_layers * directions, N, hidden_size)."""

    def __init__(self, hidden_size, num_layers=1, activation='relu', layout='TNC', dropout=0, bidirectional=False,
                 i2h_weight_initializer=None, h2h_weight_initializer=None, i2h_bias_initializer='zeros',
                 h2h_bias_initializer='zeros', input_size=0, dtype='float32', **kwargs):
        if activation not in ('relu', 'tanh'):
            raise GraphcError(f"RNN activation must be 'relu' or 'tanh', got {activation!r}")
        super().__init__(hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                         i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer,
                         'rnn_' + activation, activation=activation, dtype=dtype, **kwargs)

    def _alias(self):
        return 'rnn'


class LSTM(_RNNLayer):
    """LSTM layer (gates i, f, c, o as MXNet). States: [h, c], each (num_layers * directions, N, hidden_size)."""

    def __init__(self, hidden_size, num_layers=1, layout='TNC', dropout=0, bidirectional=False, input_size=0,
                 i2h_weight_initializer=None, h2h_weight_initializer=None, i2h_bias_initializer='zeros',
                 h2h_bias_initializer='zeros', dtype='float32', **kwargs):
        super().__init__(hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                         i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer,
                         'lstm', dtype=dtype, **kwargs)

    def _alias(self):
        return 'lstm'


class GRU(_RNNLayer):
    """GRU layer (gates r, z, n as MXNet). States: [h] of shape (num_layers * directions, N, hidden_size)."""

    def __init__(self, hidden_size, num_layers=1, layout='TNC', dropout=0, bidirectional=False, input_size=0,
                 i2h_weight_initializer=None, h2h_weight_initializer=None, i2h_bias_initializer='zeros',
                 h2h_bias_initializer='zeros', dtype='float32', **kwargs):
        super().__init__(hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                         i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer,
                         'gru', dtype=dtype, **kwargs)

    def _alias(self):
        return 'gru'

