"""Recurrent layers as MXNet Gluon 1.x: RNN, LSTM, GRU (multi-layer, optionally bidirectional).

Parameters are named as MXNet's: `l{i}_i2h_weight`, `l{i}_h2h_weight`, `l{i}_i2h_bias`, `l{i}_h2h_bias` for
layer i, and `r{i}_...` for its reverse direction, so MXNet parameter files load by name.

Like MXNet 1.9's `_RNNLayer._forward_kernel`, eagerly and when hybridized a layer is one fused `RNN` op on
a flat parameter vector: (SwapAxis for NTC) -> each weight and bias Reshape(-1) -> `_rnn_param_concat` ->
`RNN` (with `_zeros` begin states when none are given) -> (SwapAxis), so exported JSON has MXNet's
structure and MXNet's LSTM exports load here.
"""
from ... import autograd, nd
from ...base import GraphcError
from ...ops.rnn import GATES
from ...registry import OPS
from ...symbol.symbol import Symbol, sym_invoke
from ..block import HybridBlock
from .rnn_cell import _StatesCall, _F_of, _as_list, _calls_with_name, _dtype_of

__all__ = ['RNN', 'LSTM', 'GRU']


class _RNNLayer(_StatesCall, HybridBlock):
    """Shared implementation of RNN, LSTM and GRU."""

    def __init__(self, hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                 i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer,
                 mode, prefix=None, params=None, activation='tanh', dtype='float32', projection_size=None,
                 h2r_weight_initializer=None, lstm_state_clip_min=None, lstm_state_clip_max=None,
                 lstm_state_clip_nan=False, use_sequence_length=False):
        super().__init__(prefix=prefix, params=params)
        if layout not in ('TNC', 'NTC'):
            raise GraphcError(f"invalid layout {layout!r}; must be one of ['TNC' or 'NTC']")
        if (lstm_state_clip_min is None) != (lstm_state_clip_max is None):
            raise GraphcError("state_clip_min and state_clip_max must be given together")
        self._projection_size, self._use_sequence_length = projection_size, use_sequence_length
        self._clip = (lstm_state_clip_min, lstm_state_clip_max, lstm_state_clip_nan)
        self._hidden_size, self._num_layers, self._mode = hidden_size, num_layers, mode
        self._layout, self._dropout, self._dir = layout, dropout, 2 if bidirectional else 1
        self._input_size, self._activation = input_size, activation
        self._inits = (i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer)
        self._gates = GATES[mode]
        gh = self._gates * hidden_size
        out = projection_size or hidden_size
        ni = input_size
        for i in range(num_layers):
            for j in ['l', 'r'][:self._dir]:
                specs = [(f'{j}{i}_i2h_weight', (gh, ni), i2h_weight_initializer),
                         (f'{j}{i}_h2h_weight', (gh, out), h2h_weight_initializer),
                         (f'{j}{i}_i2h_bias', (gh,), i2h_bias_initializer),
                         (f'{j}{i}_h2h_bias', (gh,), h2h_bias_initializer)]
                if projection_size:
                    specs.append((f'{j}{i}_h2r_weight', (projection_size, hidden_size), h2r_weight_initializer))
                for name, shape, init in specs:
                    p = self.params.get(name, shape=shape, init=init, dtype=dtype, allow_deferred_init=True)
                    setattr(self, name, p)
            ni = out * self._dir

    def __repr__(self):
        i = self.l0_i2h_weight.shape[1] if self.l0_i2h_weight.shape else 0
        s = f"{type(self).__name__}({i or None} -> {self._hidden_size}, {self._layout}"
        if self._num_layers != 1:
            s += f", num_layers={self._num_layers}"
        if self._dropout:
            s += f", dropout={self._dropout}"
        if self._dir == 2:
            s += ", bidirectional"
        if self._projection_size:
            s += f", projection_size={self._projection_size}"
        return s + ")"

    def state_info(self, batch_size=0):
        ld = self._num_layers * self._dir
        info = [{'shape': (ld, batch_size, self._projection_size or self._hidden_size), '__layout__': 'LNC'}]
        if self._mode == 'lstm':
            info.append({'shape': (ld, batch_size, self._hidden_size), '__layout__': 'LNC'})
        return info

    def begin_state(self, batch_size=0, func=nd.zeros, **kwargs):
        """Initial states: func(shape=(num_layers * directions, batch_size, hidden_size), **kwargs) each (with
        name=<prefix>h0_<i> where func takes a name, e.g. sym.var)."""
        states, named = [], _calls_with_name(func)
        for i, info in enumerate(self.state_info(batch_size)):
            info = dict(info)
            info.pop('__layout__')
            info.update(kwargs)
            if named and 'name' not in info:
                info['name'] = f"{self._prefix}h0_{i}"
            states.append(func(**info))
        return states

    def _unfuse(self):
        """The same network as a HybridSequentialRNNCell of cells (BidirectionalCell where bidirectional,
        DropoutCell between layers), sharing this layer's parameters."""
        from . import rnn_cell
        if self._projection_size or self._clip[0] is not None:
            raise GraphcError(f"{self.name}: _unfuse does not support projection_size or state clipping")
        make = {'rnn_relu': lambda **kw: rnn_cell.RNNCell(self._hidden_size, activation='relu', **kw),
                'rnn_tanh': lambda **kw: rnn_cell.RNNCell(self._hidden_size, activation='tanh', **kw),
                'lstm': lambda **kw: rnn_cell.LSTMCell(self._hidden_size, **kw),
                'gru': lambda **kw: rnn_cell.GRUCell(self._hidden_size, **kw)}[self._mode]
        stack = rnn_cell.HybridSequentialRNNCell(prefix=self.prefix, params=self.params)
        wi, wh, bi, bh = self._inits
        with stack.name_scope():
            ni = self._input_size
            for i in range(self._num_layers):
                kw = dict(input_size=ni, i2h_weight_initializer=wi, h2h_weight_initializer=wh,
                          i2h_bias_initializer=bi, h2h_bias_initializer=bh)
                if self._dir == 2:
                    stack.add(rnn_cell.BidirectionalCell(make(prefix=f'l{i}_', **kw), make(prefix=f'r{i}_', **kw)))
                else:
                    stack.add(make(prefix=f'l{i}_', **kw))
                if self._dropout > 0 and i != self._num_layers - 1:
                    stack.add(rnn_cell.DropoutCell(self._dropout))
                ni = self._hidden_size * self._dir
        return stack

    def infer_shape(self, inputs, *args):
        self.l0_i2h_weight.shape = (self._gates * self._hidden_size, inputs.shape[2])
        if self._dir == 2:
            self.r0_i2h_weight.shape = (self._gates * self._hidden_size, inputs.shape[2])

    def forward(self, inputs, *states, sequence_length=None):
        """inputs in `layout`; states None (zeros are used, only the outputs are returned) or a list of
        arrays (num_layers * directions, N, hidden_size): then (outputs, new_states) is returned. With
        use_sequence_length, sequence_length (N,) (the last argument) gives each sequence's length: outputs
        past it are zero and the states are those of its last valid step (both directions)."""
        if self._use_sequence_length and sequence_length is None:
            if not states or isinstance(states[-1], (list, tuple)) or states[-1] is None:
                raise GraphcError(f"{self.name}: use_sequence_length=True needs sequence_length (batch,), "
                                  "as layer(inputs, states, sequence_length)")
            *states, sequence_length = states
        elif sequence_length is not None and not self._use_sequence_length:
            raise GraphcError(f"{self.name}: sequence_length given but the layer was made with "
                              "use_sequence_length=False")
        states = self._states_arg(tuple(states))
        F = _F_of(inputs)
        batch_axis = self._layout.find('N')
        if inputs.shape is not None and inputs.ndim != 3:
            raise GraphcError(f"{type(self).__name__} expects 3-d inputs in layout {self._layout}, "
                              f"got shape {inputs.shape}")
        skip_states = states is None
        if skip_states and isinstance(inputs, Symbol):  # MXNet's graph: _zeros with the batch left as 0
            op = OPS['_zeros']
            states = [sym_invoke(op, [], dict(op.canon({'shape': info['shape'], 'dtype': _dtype_of(inputs)}),
                                              __layout__='LNC'), name=f'h0_{i}')
                      for i, info in enumerate(self.state_info())]
        elif skip_states:
            states = self.begin_state(inputs.shape[batch_axis], dtype=_dtype_of(inputs), ctx=inputs.context)
        states = _as_list(states)
        n = inputs.shape[batch_axis] if inputs.shape is not None else 0
        for s, info in zip(states, self.state_info(n)):
            if n and s.shape is not None and tuple(s.shape) != tuple(info['shape']) and not skip_states:
                raise GraphcError(f"invalid recurrent state shape: expected {info['shape']}, got {s.shape}")
        params = self._params_for(inputs, states)
        out, new_states = self.hybrid_forward(F, inputs, states, sequence_length, **params)
        return out if skip_states else (out, new_states)

    def hybrid_forward(self, F, inputs, states, sequence_length=None, **params):
        if self._layout == 'NTC':
            inputs = F.swapaxes(inputs, dim1=0, dim2=1)
        gs = ('i2h', 'h2h', 'h2r') if self._projection_size else ('i2h', 'h2h')
        flat = [params[f'{d}{i}_{g}_{t}'].reshape((-1,)) for t in ('weight', 'bias') for i in range(self._num_layers)
                for d in ['l', 'r'][:self._dir] for g in gs if g != 'h2r' or t != 'bias']
        extra = {}
        if self._projection_size:
            extra['projection_size'] = self._projection_size
        ns = len(states)
        if sequence_length is not None:   # the op takes the lengths in the data's dtype
            extra['use_sequence_length'] = True
            states = list(states) + [F.Cast(sequence_length, dtype=_dtype_of(inputs))]
        if self._clip[0] is not None:
            extra.update(lstm_state_clip_min=self._clip[0], lstm_state_clip_max=self._clip[1],
                         lstm_state_clip_nan=self._clip[2])
        if F is nd and not autograd.is_recording() and inputs.context.device_type == 'cpu':
            extra['_no_reserve'] = True   # no backward can read this call's reserve (rnn_no_reserve's, eagerly)
        rnn = F.RNN(inputs, F._rnn_param_concat(*flat, dim=0), *states, state_size=self._hidden_size,
                    num_layers=self._num_layers, bidirectional=self._dir == 2, p=self._dropout, state_outputs=True,
                    mode=self._mode, **extra)
        outputs, states = rnn[0], [rnn[i] for i in range(1, 1 + ns)]
        if self._layout == 'NTC':
            outputs = F.swapaxes(outputs, dim1=0, dim2=1)
        return outputs, states


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
    """LSTM layer (gates i, f, c, o as MXNet). States: [h, c], each (num_layers * directions, N, hidden_size);
    with projection_size P (LSTMP) h is (num_layers * directions, N, P) and so is each output step per direction.
    state_clip_min/max clip the cell state (state_clip_nan: NaN becomes the bound)."""

    def __init__(self, hidden_size, num_layers=1, layout='TNC', dropout=0, bidirectional=False, input_size=0,
                 i2h_weight_initializer=None, h2h_weight_initializer=None, i2h_bias_initializer='zeros',
                 h2h_bias_initializer='zeros', projection_size=None, h2r_weight_initializer=None,
                 state_clip_min=None, state_clip_max=None, state_clip_nan=False, dtype='float32', **kwargs):
        super().__init__(hidden_size, num_layers, layout, dropout, bidirectional, input_size,
                         i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer, h2h_bias_initializer,
                         'lstm', dtype=dtype, projection_size=projection_size,
                         h2r_weight_initializer=h2r_weight_initializer, lstm_state_clip_min=state_clip_min,
                         lstm_state_clip_max=state_clip_max, lstm_state_clip_nan=state_clip_nan, **kwargs)

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

