"""Recurrent cells as MXNet Gluon 1.x: RNNCell, LSTMCell, GRUCell and the modifiers/containers
(SequentialRNNCell, DropoutCell, ResidualCell), with unroll() that runs eagerly and when hybridized.

A cell is called as cell(inputs, states) -> (output, new_states), states a list of arrays. Parameters
are named and shaped as in MXNet: i2h_weight (G*H, I), h2h_weight (G*H, H), i2h_bias, h2h_bias (G*H,)
with G = 1 (RNN), 4 (LSTM, gates i, f, c, o) or 3 (GRU, gates r, z, n). An input_size of 0 is
inferred from the first input.
"""
import numpy as np

from ... import nd
from ...base import GraphcError
from ...ndarray.ndarray import NDArray
from ...symbol.symbol import Symbol, current_trace
from ..block import HybridBlock, _eager

__all__ = ['RecurrentCell', 'HybridRecurrentCell', 'RNNCell', 'LSTMCell', 'GRUCell', 'SequentialRNNCell',
           'HybridSequentialRNNCell', 'DropoutCell', 'ModifierCell', 'ResidualCell']


def _is_array(x):
    return isinstance(x, (NDArray, Symbol))


def _F_of(x):
    from ... import sym
    return sym if isinstance(x, Symbol) else nd


def _as_list(x):
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _split_steps(F, data, length, axis):
    """The `length` steps of `data` along `axis`, that axis removed."""
    if data.shape is not None and data.shape[axis] != length:
        raise GraphcError(f"unroll: length={length} but the input has {data.shape[axis]} steps on axis {axis}")
    out = F.split(data, num_outputs=length, axis=axis, squeeze_axis=True)
    return _as_list(out)


def _format_sequence(length, inputs, layout, merge):
    """(inputs as a list of steps or one merged array, time axis, F, batch size), as MXNet's helper."""
    if layout.find('T') < 0 or layout.find('N') < 0:
        raise GraphcError(f"layout must contain 'T' and 'N', got {layout!r}")
    axis, batch_axis = layout.find('T'), layout.find('N')
    if _is_array(inputs):
        F = _F_of(inputs)
        batch_size = inputs.shape[batch_axis]
        if merge is False:
            inputs = _split_steps(F, inputs, length, axis)
    else:
        inputs = list(inputs)
        if len(inputs) != length:
            raise GraphcError(f"unroll: length={length} but {len(inputs)} input steps were given")
        F = _F_of(inputs[0])
        batch_size = inputs[0].shape[0] if inputs[0].shape is not None else 0  # a Symbol: 0, inferred at bind
        if merge is True:
            inputs = F.stack(*inputs, axis=axis)
    return inputs, axis, F, batch_size


def _zeros_for(like):
    """nd.zeros, or sym.zeros for a Symbol outside a trace (a cell unrolled on variables, as in MXNet)."""
    if isinstance(like, Symbol) and current_trace() is None:
        from ... import sym
        return sym.zeros
    return nd.zeros


def _dtype_of(x):
    return np.dtype(x.dtype) if x.dtype is not None else np.dtype('float32')


class _StatesCall:
    """Calling convention shared by cells and layers: block(inputs, states) with states a list. When the
    block itself is hybridized and called at top level, the states are passed to the graph flattened."""

    def _dispatch(self, *args, **kwargs):
        if 'states' in kwargs:
            args = args + (kwargs.pop('states'),)
        if (current_trace() is None and self._active and not kwargs and not getattr(_eager, 'on', False)
                and len(args) == 2 and isinstance(args[1], (list, tuple))):
            return self._cached_call((args[0],) + tuple(args[1]))
        return super()._dispatch(*args, **kwargs)

    @staticmethod
    def _states_arg(states):
        """forward(inputs, states) or forward(inputs, *flat_states) -> a list (or None)."""
        if len(states) == 1 and (states[0] is None or isinstance(states[0], (list, tuple))):
            return None if states[0] is None else list(states[0])
        return list(states) if states else None


class RecurrentCell(_StatesCall, HybridBlock):
    """Base class of recurrent cells: hybrid_forward(F, inputs, states, **params) -> (output, new_states).

    In graphc every cell is a HybridBlock (MXNet's RecurrentCell/HybridRecurrentCell split is not needed)."""

    def __init__(self, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self._modified = False
        self.reset()

    def reset(self):
        """Reset before re-using the cell for another graph (kept for MXNet compatibility)."""
        self._init_counter = -1
        self._counter = -1
        for cell in self._children.values():
            if isinstance(cell, RecurrentCell):
                cell.reset()

    def state_info(self, batch_size=0):
        """A list of {'shape': ..., '__layout__': ...}, one per state."""
        raise NotImplementedError()

    @property
    def _gate_names(self):
        return ()

    def begin_state(self, batch_size=0, func=nd.zeros, **kwargs):
        """The initial states: func(shape=..., **kwargs) for each entry of state_info(batch_size)."""
        if self._modified:
            raise GraphcError("after applying a modifier cell (e.g. ResidualCell) the base cell cannot be "
                              "called directly; call the modifier cell instead")
        states = []
        for info in self.state_info(batch_size):
            self._init_counter += 1
            info = dict(info) if info is not None else {}
            info.pop('__layout__', None)
            info.update(kwargs)
            states.append(func(**info))
        return states

    def _default_begin_state(self, F, batch_size, like):
        """Zero states for unroll(begin_state=None): constants of the input's dtype (while tracing too); on
        Symbols outside a trace, sym.zeros whose batch 0 shape inference fills in (MXNet's)."""
        return self.begin_state(batch_size, func=_zeros_for(like), dtype=_dtype_of(like))

    def unroll(self, length, inputs, begin_state=None, layout='NTC', merge_outputs=None, valid_length=None):
        """Run the cell over `length` steps. inputs: one array in `layout` ('NTC' or 'TNC') or a list of
        `length` arrays of shape (N, C). Returns (outputs, states): outputs one array stacked on the time
        axis when merge_outputs (default: when inputs was one array), else a list. With valid_length (N,),
        outputs past each sequence's length are zero and the states are those at its last valid step."""
        self.reset()
        was_array = _is_array(inputs)
        inputs, axis, F, batch_size = _format_sequence(length, inputs, layout, False)
        states = begin_state if begin_state is not None else self._default_begin_state(F, batch_size, inputs[0])
        states = _as_list(states)
        outputs = []
        for i in range(length):
            output, new_states = self(inputs[i], states)
            if valid_length is not None:
                mask = F.expand_dims(F._greater_scalar(valid_length, scalar=float(i)), axis=1)
                mask = F.Cast(mask, dtype=_dtype_of(output))
                output = F.broadcast_mul(output, mask)
                new_states = [F.broadcast_add(F.broadcast_mul(n, mask), F.broadcast_mul(o, 1 - mask))
                              for n, o in zip(new_states, states)]
            states = new_states
            outputs.append(output)
        if merge_outputs is None:
            merge_outputs = was_array
        if merge_outputs:
            outputs = F.stack(*outputs, axis=axis)
        return outputs, states

    def __call__(self, inputs, *states, **kwargs):
        self._counter += 1  # the step: outputs are named t{step}_out, as MXNet's
        return super().__call__(inputs, *states, **kwargs)

    def _out_name(self):
        return f"t{self._counter}_out"

    def forward(self, inputs, *states):
        states = self._states_arg(states)
        F = _F_of(inputs)
        return self.hybrid_forward(F, inputs, states, **self._param_arrays(inputs, states))

    def hybrid_forward(self, F, inputs, states, **params):
        raise NotImplementedError(f"{type(self).__name__} must implement hybrid_forward(F, inputs, states, ...)")

    def _get_activation(self, F, x, activation, **kwargs):
        if isinstance(activation, str):
            return F.Activation(x, act_type=activation, **kwargs)
        return activation(x, **kwargs)


HybridRecurrentCell = RecurrentCell


class _BaseGatedCell(RecurrentCell):
    """The parameters shared by RNNCell, LSTMCell and GRUCell."""
    _G = 1

    def __init__(self, hidden_size, input_size=0, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer='zeros', h2h_bias_initializer='zeros', prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self._hidden_size, self._input_size = hidden_size, input_size
        gh = self._G * hidden_size
        self.i2h_weight = self.params.get('i2h_weight', shape=(gh, input_size), init=i2h_weight_initializer,
                                          allow_deferred_init=True)
        self.h2h_weight = self.params.get('h2h_weight', shape=(gh, hidden_size), init=h2h_weight_initializer,
                                          allow_deferred_init=True)
        self.i2h_bias = self.params.get('i2h_bias', shape=(gh,), init=i2h_bias_initializer,
                                        allow_deferred_init=True)
        self.h2h_bias = self.params.get('h2h_bias', shape=(gh,), init=h2h_bias_initializer,
                                        allow_deferred_init=True)

    def infer_shape(self, inputs, *args):
        self.i2h_weight.shape = (self._G * self._hidden_size, int(np.prod(inputs.shape[1:])))

    def state_info(self, batch_size=0):
        return [{'shape': (batch_size, self._hidden_size), '__layout__': 'NC'}]

    def _fc(self, F, x, w, b):
        return F.FullyConnected(x, w, b, num_hidden=self._G * self._hidden_size)

    def __repr__(self):
        i = self.i2h_weight.shape[1] if self.i2h_weight.shape else 0
        return f"{type(self).__name__}({i or None} -> {self._G * self._hidden_size})"


class RNNCell(_BaseGatedCell):
    """Elman cell: h' = activation(x W_i2h^T + b_i2h + h W_h2h^T + b_h2h)."""
    _G = 1

    def __init__(self, hidden_size, activation='tanh', i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer='zeros', h2h_bias_initializer='zeros', input_size=0, prefix=None, params=None):
        super().__init__(hidden_size, input_size, i2h_weight_initializer, h2h_weight_initializer,
                         i2h_bias_initializer, h2h_bias_initializer, prefix, params)
        self._activation = activation

    def _alias(self):
        return 'rnn'

    def hybrid_forward(self, F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        i2h = self._fc(F, inputs, i2h_weight, i2h_bias)
        h2h = self._fc(F, states[0], h2h_weight, h2h_bias)
        output = self._get_activation(F, i2h + h2h, self._activation, name=self._out_name())
        return output, [output]


class LSTMCell(_BaseGatedCell):
    """LSTM cell (MXNet's gate order i, f, c, o): c' = f*c + i*g, h' = o*tanh(c'); states [h, c]."""
    _G = 4

    def __init__(self, hidden_size, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer='zeros', h2h_bias_initializer='zeros', input_size=0, prefix=None, params=None,
                 activation='tanh', recurrent_activation='sigmoid'):
        super().__init__(hidden_size, input_size, i2h_weight_initializer, h2h_weight_initializer,
                         i2h_bias_initializer, h2h_bias_initializer, prefix, params)
        self._activation, self._recurrent_activation = activation, recurrent_activation

    def _alias(self):
        return 'lstm'

    def state_info(self, batch_size=0):
        return [{'shape': (batch_size, self._hidden_size), '__layout__': 'NC'},
                {'shape': (batch_size, self._hidden_size), '__layout__': 'NC'}]

    def hybrid_forward(self, F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        i2h = self._fc(F, inputs, i2h_weight, i2h_bias)
        h2h = self._fc(F, states[0], h2h_weight, h2h_bias)
        gates = F.SliceChannel(i2h + h2h, num_outputs=4)
        in_gate = self._get_activation(F, gates[0], self._recurrent_activation)
        forget_gate = self._get_activation(F, gates[1], self._recurrent_activation)
        in_transform = self._get_activation(F, gates[2], self._activation)
        out_gate = self._get_activation(F, gates[3], self._recurrent_activation)
        next_c = forget_gate * states[1] + in_gate * in_transform
        next_h = F.elemwise_mul(out_gate, self._get_activation(F, next_c, self._activation), name=self._out_name())
        return next_h, [next_h, next_c]


class GRUCell(_BaseGatedCell):
    """GRU cell as MXNet: r, z = sigmoid(...), n = tanh(i2h_n + r * h2h_n), h' = (1 - z) * n + z * h."""
    _G = 3

    def __init__(self, hidden_size, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer='zeros', h2h_bias_initializer='zeros', input_size=0, prefix=None, params=None):
        super().__init__(hidden_size, input_size, i2h_weight_initializer, h2h_weight_initializer,
                         i2h_bias_initializer, h2h_bias_initializer, prefix, params)

    def _alias(self):
        return 'gru'

    def hybrid_forward(self, F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        prev_h = states[0]
        i2h = F.SliceChannel(self._fc(F, inputs, i2h_weight, i2h_bias), num_outputs=3)
        h2h = F.SliceChannel(self._fc(F, prev_h, h2h_weight, h2h_bias), num_outputs=3)
        reset_gate = F.sigmoid(i2h[0] + h2h[0])
        update_gate = F.sigmoid(i2h[1] + h2h[1])
        next_h_tmp = F.tanh(i2h[2] + reset_gate * h2h[2])
        next_h = F.elemwise_add((1 - update_gate) * next_h_tmp, update_gate * prev_h, name=self._out_name())
        return next_h, [next_h]


class SequentialRNNCell(RecurrentCell):
    """Cells stacked: each one's output is the next one's input; states are all cells' states, in order."""

    def add(self, cell):
        self.register_child(cell)

    def __len__(self):
        return len(self._children)

    def __getitem__(self, i):
        return list(self._children.values())[i]

    def __repr__(self):
        body = '\n'.join(f"  ({k}): {repr(c)}" for k, c in self._children.items())
        return f"{type(self).__name__}(\n{body}\n)"

    def state_info(self, batch_size=0):
        return [info for c in self._children.values() for info in c.state_info(batch_size)]

    def begin_state(self, batch_size=0, func=nd.zeros, **kwargs):
        return [s for c in self._children.values() for s in c.begin_state(batch_size, func, **kwargs)]

    def _default_begin_state(self, F, batch_size, like):
        return [s for c in self._children.values() for s in c._default_begin_state(F, batch_size, like)]

    def hybrid_forward(self, F, inputs, states):
        next_states, p = [], 0
        for cell in self._children.values():
            n = len(cell.state_info())
            inputs, st = cell(inputs, states[p:p + n])
            p += n
            next_states += st
        return inputs, next_states


HybridSequentialRNNCell = SequentialRNNCell


class DropoutCell(RecurrentCell):
    """Dropout on the input (training mode only); no states."""

    def __init__(self, rate, axes=(), prefix=None, params=None):
        super().__init__(prefix, params)
        self._rate, self._axes = rate, tuple(axes)

    def _alias(self):
        return 'dropout'

    def __repr__(self):
        return f"{type(self).__name__}(rate={self._rate}, axes={self._axes})"

    def state_info(self, batch_size=0):
        return []

    def hybrid_forward(self, F, inputs, states):
        if self._rate > 0:
            inputs = F.Dropout(inputs, p=self._rate, axes=self._axes)
        return inputs, states


class ModifierCell(RecurrentCell):
    """A cell wrapping base_cell (which then may only be called through the modifier)."""

    def __init__(self, base_cell):
        if base_cell._modified:
            raise GraphcError(f"cell {base_cell.name} is already modified; one cell cannot be modified twice")
        base_cell._modified = True
        super().__init__(prefix=base_cell.prefix + self._alias() + '_', params=None)
        self.base_cell = base_cell

    def state_info(self, batch_size=0):
        return self.base_cell.state_info(batch_size)

    def begin_state(self, batch_size=0, func=nd.zeros, **kwargs):
        self.base_cell._modified = False
        try:
            return self.base_cell.begin_state(batch_size, func, **kwargs)
        finally:
            self.base_cell._modified = True

    def _default_begin_state(self, F, batch_size, like):
        return self.begin_state(batch_size, func=_zeros_for(like), dtype=_dtype_of(like))

    def __repr__(self):
        return f"{type(self).__name__}({self.base_cell!r})"


class ResidualCell(ModifierCell):
    """output = base_cell(inputs) + inputs."""

    def _alias(self):
        return 'residual'

    def hybrid_forward(self, F, inputs, states):
        output, states = self.base_cell(inputs, states)
        return output + inputs, states
