"""Recurrent cells as MXNet Gluon 1.x: RNNCell, LSTMCell, GRUCell, LSTMPCell, the containers
(SequentialRNNCell, BidirectionalCell) and modifiers (DropoutCell, ZoneoutCell, ResidualCell,
VariationalDropoutCell), with unroll() eager, hybridized, and composed on Symbols.

A cell is called as cell(inputs, states) -> (output, new_states), states a list of arrays. Parameters
are named and shaped as in MXNet: i2h_weight (G*H, I), h2h_weight (G*H, H), i2h_bias, h2h_bias (G*H,)
with G = 1 (RNN), 4 (LSTM, gates i, f, c, o) or 3 (GRU, gates r, z, n). An input_size of 0 is
inferred from the first input.

Called on Symbols outside a trace (MXNet's `cell.unroll(3, [sym.var('t0'), ...])`), a cell composes a graph:
its parameters are variables named as the parameters (one per parameter, as MXNet's Parameter.var()), and
its ops are named as MXNet's (`<prefix>t<step>_out` for a step's output), so list_outputs() reads as MXNet's.
"""
import inspect
import weakref

import numpy as np

from ... import autograd, nd
from ...base import GraphcError
from ...ndarray.ndarray import NDArray
from ...registry import OPS
from ...symbol.symbol import Symbol, TraceContext, current_trace, sym_invoke, var
from ..block import HybridBlock, _eager

__all__ = ['RecurrentCell', 'HybridRecurrentCell', 'RNNCell', 'LSTMCell', 'GRUCell', 'LSTMPCell', 'SequentialRNNCell',
           'HybridSequentialRNNCell', 'DropoutCell', 'ModifierCell', 'ZoneoutCell', 'ResidualCell',
           'BidirectionalCell', 'VariationalDropoutCell']


def _is_array(x):
    return isinstance(x, (NDArray, Symbol))


def _F_of(x):
    from ... import sym
    return sym if isinstance(x, Symbol) else nd


def _as_list(x):
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _flat(args):
    out = []
    for a in args:
        out += _flat(a) if isinstance(a, (list, tuple)) else [a]
    return out


def _dtype_of(x):
    return np.dtype(x.dtype) if x.dtype is not None else np.dtype('float32')


# ---------------------------------------------------------------- composing on Symbols
class _Compose(TraceContext):
    """The context of a cell called on Symbols outside any trace: names and parameter variables persist
    across calls (as MXNet's global name manager and Parameter.var()), so an unroll makes one graph."""

    def __init__(self):
        super().__init__()
        self.vars = weakref.WeakKeyDictionary()

    def __enter__(self):
        self.training, self.consts, self.blocks = autograd.is_training(), {}, []
        return super().__enter__()

    def param_var(self, param):
        v = self.vars.get(param)
        if v is None:
            shape = param.shape if param.shape else None
            init = getattr(param, 'init', None)
            v = self.vars[param] = var(param.name, shape=shape, dtype=param.dtype, lr_mult=param.lr_mult,
                                       wd_mult=param.wd_mult,
                                       init=init if isinstance(init, str) or hasattr(init, 'dumps') else None)
        return v


_COMPOSE = _Compose()
_TRACE_CONSTS = weakref.WeakKeyDictionary()  # trace -> the constant arrays cells gave it


def _composing():
    return current_trace() is _COMPOSE


def _named(F, op, *inputs, name=None, **attrs):
    """F.<op>(*inputs, **attrs) with MXNet's node name when building a graph."""
    return getattr(F, op)(*inputs, name=name, **attrs) if F is not nd else getattr(F, op)(*inputs, **attrs)


# ---------------------------------------------------------------- sequences
def _split_steps(F, data, length, axis):
    """The `length` steps of `data` along `axis`, that axis removed."""
    if data.shape is not None and data.shape[axis] != length:
        raise GraphcError(f"unroll: length={length} but the input has {data.shape[axis]} steps on axis {axis}")
    if length == 1:
        return [F.squeeze(data, axis=axis)]
    steps = F.split(data, num_outputs=length, axis=axis, squeeze_axis=True)
    return [steps[i] for i in range(length)]   # a list, or one Symbol of `length` outputs


def _format_sequence(length, inputs, layout, merge):
    """(inputs as a list of steps (merge False) / one merged array (True) / as given (None), time axis, F,
    batch size or None when unknown), as MXNet's helper."""
    if layout.find('T') < 0 or layout.find('N') < 0:
        raise GraphcError(f"layout must contain 'T' and 'N', got {layout!r}")
    axis, batch_axis = layout.find('T'), layout.find('N')
    if _is_array(inputs):
        F = _F_of(inputs)
        batch_size = inputs.shape[batch_axis] if inputs.shape is not None else None
        if merge is False:
            inputs = _split_steps(F, inputs, length, axis)
    else:
        inputs = list(inputs)
        if length is not None and len(inputs) != length:
            raise GraphcError(f"unroll: length={length} but {len(inputs)} input steps were given")
        F = _F_of(inputs[0])
        batch_size = inputs[0].shape[0] if inputs[0].shape is not None else None
        if merge is True:
            inputs = F.stack(*inputs, axis=axis)
    return inputs, axis, F, batch_size


def _step_mask(F, valid_length, t, like):
    """(N, 1): 1 where step t is inside the sequence (t < valid_length), else 0, of like's dtype."""
    m = F.expand_dims(F._greater_scalar(valid_length, scalar=float(t)), axis=1)
    return F.Cast(m, dtype=_dtype_of(like))


def _mask_outputs(F, outputs, length, valid_length, axis, merged):
    """Zero the steps past each sequence's valid length (MXNet's SequenceMask), as a list or merged array."""
    steps = _split_steps(F, outputs, length, axis) if merged else outputs
    steps = [F.broadcast_mul(o, _step_mask(F, valid_length, t, o)) for t, o in enumerate(steps)]
    return F.stack(*steps, axis=axis) if merged else steps


def _reverse_steps(F, steps, valid_length):
    """Each sequence's first valid_length steps reversed, the padding after them kept in place (MXNet's
    SequenceReverse with use_sequence_length), as a list of (N, C) steps."""
    if valid_length is None:
        return list(reversed(steps))
    T = len(steps)
    seq = F.stack(*steps, axis=0)                                     # (T, N, C)
    ones = F.ones_like(steps[0])
    vl = F.Cast(valid_length, dtype=_dtype_of(steps[0]))
    out = []
    for t in range(T):
        inside = F._greater_scalar(vl, scalar=float(t))               # (N,)
        src = inside * (vl - (1.0 + t)) + (1 - inside) * float(t)     # the step read for output step t
        out.append(F.pick(seq, F.broadcast_mul(ones, F.expand_dims(src, axis=1)), axis=0))
    return out


def _zeros_state(F, info, like, batch_axis_of_like=0, name=None):
    """A zero begin state of info['shape'] (batch 0 or None: like's batch). Eager or traced: nd.zeros;
    composing on Symbols: a `_zeros` node (MXNet's), or, when the batch is not known yet, zeros derived from
    `like` in the graph."""
    shape, dtype = tuple(info['shape']), _dtype_of(like)
    n = like.shape[batch_axis_of_like] if like.shape is not None else None
    if F is nd or n is not None and current_trace() not in (None, _COMPOSE):
        # eager, or tracing a hybridized block: a constant (every backend runs it; the batch is in the cache key)
        z = nd.zeros(tuple(n if d == 0 else d for d in shape), ctx=like.context, dtype=dtype)
        if F is not nd:  # a trace knows its constants by id(): this one must outlive the trace
            _TRACE_CONSTS.setdefault(current_trace(), []).append(z)
        return z
    if n is not None:
        op = OPS['_zeros']
        return sym_invoke(op, [], op.canon({'shape': tuple(n if d == 0 else d for d in shape), 'dtype': dtype}),
                          name=name)
    # (N, *rest) from like's batch: zeros (N, 1) tiled over the rest
    col = F.zeros_like(F.slice_axis(F.reshape(like, shape=(0, -1)), axis=1, begin=0, end=1))
    z = F.tile(col, reps=(1, int(np.prod(shape[1:]))))
    return F.reshape(z, shape=(-1,) + tuple(shape[1:])) if len(shape) != 2 else z


def _calls_with_name(func):
    try:
        ps = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return 'name' in ps or any(p.kind == p.VAR_KEYWORD for p in ps.values())


class _StatesCall:
    """Calling convention shared by cells and layers: block(inputs, states) with states a list. When the
    block itself is hybridized and called at top level, the states are passed to the graph flattened; called
    on Symbols outside a trace, it composes a graph."""

    def _dispatch(self, *args, **kwargs):
        if 'states' in kwargs:
            args = args + (kwargs.pop('states'),)
        if current_trace() is None and any(isinstance(a, Symbol) for a in _flat(args)):
            with _COMPOSE:
                return self._traced_forward(_COMPOSE, *args, **kwargs)
        if current_trace() is None and self._active and not kwargs and not getattr(_eager, 'on', False):
            if not self._cacheable():
                return self.forward(*args)
            if len(args) >= 2 and isinstance(args[1], (list, tuple)):   # (x, states[, sequence_length])
                return self._cached_call((args[0],) + tuple(args[1]) + tuple(args[2:]))
        return super()._dispatch(*args, **kwargs)

    def _cacheable(self):
        return True

    @staticmethod
    def _states_arg(states):
        """forward(inputs, states) or forward(inputs, *flat_states) -> a list (or None)."""
        if len(states) == 1 and (states[0] is None or isinstance(states[0], (list, tuple))):
            return None if states[0] is None else list(states[0])
        return list(states) if states else None

    def _params_for(self, inputs, states):
        if _composing():
            return {k: _COMPOSE.param_var(p) for k, p in self._own_params().items()}
        return self._param_arrays(inputs, states)


class RecurrentCell(_StatesCall, HybridBlock):
    """Base class of recurrent cells: hybrid_forward(F, inputs, states, **params) -> (output, new_states).

    In graphc every cell is a HybridBlock (MXNet's RecurrentCell/HybridRecurrentCell split is not needed)."""

    def __init__(self, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self._modified = False
        self.reset()

    def reset(self):
        """Reset before re-using the cell for another graph: step counters restart at 0."""
        self._init_counter = -1
        self._counter = -1
        for cell in self._children.values():
            if isinstance(cell, RecurrentCell):
                cell.reset()

    def __call__(self, inputs, states=None, *args, **kwargs):
        self._counter += 1
        if states is None:
            return super().__call__(inputs, *args, **kwargs)
        return super().__call__(inputs, states, *args, **kwargs)

    def state_info(self, batch_size=0):
        """A list of {'shape': ..., '__layout__': ...}, one per state."""
        raise NotImplementedError()

    def begin_state(self, batch_size=0, func=nd.zeros, **kwargs):
        """The initial states: func(shape=..., **kwargs) for each entry of state_info(batch_size) (with
        name=<prefix>begin_state_<i> where func takes a name, e.g. sym.var)."""
        if self._modified:
            raise GraphcError("after applying a modifier cell (e.g. ResidualCell) the base cell cannot be "
                              "called directly; call the modifier cell instead")
        states, named = [], _calls_with_name(func)
        for info in self.state_info(batch_size):
            self._init_counter += 1
            info = dict(info) if info is not None else {}
            info.pop('__layout__', None)
            info.update(kwargs)
            if named and 'name' not in info:
                info['name'] = f"{self._prefix}begin_state_{self._init_counter}"
            states.append(func(**info))
        return states

    def _default_begin_state(self, F, like):
        """Zero states for unroll(begin_state=None), of the input's batch and dtype (like: one step (N, C))."""
        if self._modified:
            raise GraphcError("after applying a modifier cell (e.g. ResidualCell) the base cell cannot be "
                              "called directly; call the modifier cell instead")
        out = []
        for i, info in enumerate(self.state_info(0)):
            out.append(_zeros_state(F, info, like, name=f"{self._prefix}begin_state_{i}"))
        return out

    def unroll(self, length, inputs, begin_state=None, layout='NTC', merge_outputs=None, valid_length=None):
        """Run the cell over `length` steps. inputs: one array in `layout` ('NTC' or 'TNC') or a list of
        `length` arrays of shape (N, C). Returns (outputs, states): outputs one array stacked on the time
        axis when merge_outputs (default: when inputs was one array), else a list. With valid_length (N,),
        outputs past each sequence's length are zero and the states are those at its last valid step."""
        self.reset()
        was_array = _is_array(inputs)
        inputs, axis, F, _ = _format_sequence(length, inputs, layout, False)
        states = _as_list(begin_state) if begin_state is not None else self._default_begin_state(F, inputs[0])
        outputs = []
        for i in range(length):
            output, new_states = self(inputs[i], states)
            if valid_length is not None:
                mask = _step_mask(F, valid_length, i, output)
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

    def forward(self, inputs, *states):
        states = self._states_arg(states)
        F = _F_of(inputs)
        return self.hybrid_forward(F, inputs, states, **self._params_for(inputs, states))

    def hybrid_forward(self, F, inputs, states, **params):
        raise NotImplementedError(f"{type(self).__name__} must implement hybrid_forward(F, inputs, states, ...)")

    def _get_activation(self, F, x, activation, name=None):
        if isinstance(activation, str):
            return _named(F, 'Activation', x, act_type=activation, name=name)
        return activation(x)


HybridRecurrentCell = RecurrentCell


class _BaseGatedCell(RecurrentCell):
    """The parameters shared by RNNCell, LSTMCell and GRUCell."""
    _G = 1

    def __init__(self, hidden_size, input_size=0, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 i2h_bias_initializer='zeros', h2h_bias_initializer='zeros', prefix=None, params=None, recurrent=None):
        super().__init__(prefix=prefix, params=params)
        self._hidden_size, self._input_size = hidden_size, input_size
        gh = self._G * hidden_size
        self.i2h_weight = self.params.get('i2h_weight', shape=(gh, input_size), init=i2h_weight_initializer,
                                          allow_deferred_init=True)
        self.h2h_weight = self.params.get('h2h_weight', shape=(gh, recurrent or hidden_size),
                                          init=h2h_weight_initializer, allow_deferred_init=True)
        self.i2h_bias = self.params.get('i2h_bias', shape=(gh,), init=i2h_bias_initializer,
                                        allow_deferred_init=True)
        self.h2h_bias = self.params.get('h2h_bias', shape=(gh,), init=h2h_bias_initializer,
                                        allow_deferred_init=True)

    def infer_shape(self, inputs, *args):
        self.i2h_weight.shape = (self._G * self._hidden_size, int(np.prod(inputs.shape[1:])))

    def state_info(self, batch_size=0):
        return [{'shape': (batch_size, self._hidden_size), '__layout__': 'NC'}]

    def _fc(self, F, x, w, b, name):
        return _named(F, 'FullyConnected', x, w, b, num_hidden=self._G * self._hidden_size, name=name)

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
        t = f"t{self._counter}_"
        i2h = self._fc(F, inputs, i2h_weight, i2h_bias, t + 'i2h')
        h2h = self._fc(F, states[0], h2h_weight, h2h_bias, t + 'h2h')
        output = self._get_activation(F, i2h + h2h, self._activation, name=t + 'out')
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

    def _gates(self, F, t, gates, c_prev):
        """(h, c) from the summed gate pre-activations."""
        g = _named(F, 'SliceChannel', gates, num_outputs=4, name=t + 'slice')
        in_gate = self._get_activation(F, g[0], self._recurrent_activation, name=t + 'i')
        forget_gate = self._get_activation(F, g[1], self._recurrent_activation, name=t + 'f')
        in_transform = self._get_activation(F, g[2], self._activation, name=t + 'c')
        out_gate = self._get_activation(F, g[3], self._recurrent_activation, name=t + 'o')
        next_c = forget_gate * c_prev + in_gate * in_transform
        h = _named(F, 'elemwise_mul', out_gate, self._get_activation(F, next_c, self._activation), name=t + 'out')
        return h, next_c

    def hybrid_forward(self, F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        t = f"t{self._counter}_"
        i2h = self._fc(F, inputs, i2h_weight, i2h_bias, t + 'i2h')
        h2h = self._fc(F, states[0], h2h_weight, h2h_bias, t + 'h2h')
        next_h, next_c = self._gates(F, t, i2h + h2h, states[1])
        return next_h, [next_h, next_c]


class LSTMPCell(_BaseGatedCell):
    """LSTM with a projected recurrent state (MXNet's contrib LSTMPCell): c' = f*c + i*g, h = o*tanh(c'),
    r' = h W_h2r^T (projection_size); the gates read r. States [r (N, projection_size), c (N, hidden_size)]."""
    _G = 4

    def __init__(self, hidden_size, projection_size, i2h_weight_initializer=None, h2h_weight_initializer=None,
                 h2r_weight_initializer=None, i2h_bias_initializer='zeros', h2h_bias_initializer='zeros',
                 input_size=0, prefix=None, params=None):
        super().__init__(hidden_size, input_size, i2h_weight_initializer, h2h_weight_initializer,
                         i2h_bias_initializer, h2h_bias_initializer, prefix, params, recurrent=projection_size)
        self._projection_size = projection_size
        self.h2r_weight = self.params.get('h2r_weight', shape=(projection_size, hidden_size),
                                          init=h2r_weight_initializer, allow_deferred_init=True)
        self._activation, self._recurrent_activation = 'tanh', 'sigmoid'

    def _alias(self):
        return 'lstmp'

    def state_info(self, batch_size=0):
        return [{'shape': (batch_size, self._projection_size), '__layout__': 'NC'},
                {'shape': (batch_size, self._hidden_size), '__layout__': 'NC'}]

    def __repr__(self):
        i = self.i2h_weight.shape[1] if self.i2h_weight.shape else 0
        return f"{type(self).__name__}({i or None} -> {4 * self._hidden_size} -> {self._projection_size})"

    def hybrid_forward(self, F, inputs, states, i2h_weight, h2h_weight, h2r_weight, i2h_bias, h2h_bias):
        t = f"t{self._counter}_"
        i2h = self._fc(F, inputs, i2h_weight, i2h_bias, t + 'i2h')
        h2h = self._fc(F, states[0], h2h_weight, h2h_bias, t + 'h2h')
        hidden, next_c = LSTMCell._gates(self, F, t, i2h + h2h, states[1])
        next_r = _named(F, 'FullyConnected', hidden, h2r_weight, num_hidden=self._projection_size, no_bias=True,
                        name=t + 'out')
        return next_r, [next_r, next_c]


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
        t = f"t{self._counter}_"
        prev_h = states[0]
        i2h = _named(F, 'SliceChannel', self._fc(F, inputs, i2h_weight, i2h_bias, t + 'i2h'), num_outputs=3,
                     name=t + 'i2h_slice')
        h2h = _named(F, 'SliceChannel', self._fc(F, prev_h, h2h_weight, h2h_bias, t + 'h2h'), num_outputs=3,
                     name=t + 'h2h_slice')
        reset_gate = F.sigmoid(i2h[0] + h2h[0])
        update_gate = F.sigmoid(i2h[1] + h2h[1])
        next_h_tmp = F.tanh(i2h[2] + reset_gate * h2h[2])
        next_h = _named(F, 'elemwise_add', (1 - update_gate) * next_h_tmp, update_gate * prev_h, name=t + 'out')
        return next_h, [next_h]


# ---------------------------------------------------------------- containers
class _ChildStates:
    """The states of a cell made of child cells: the children's states, in order."""

    def state_info(self, batch_size=0):
        return [info for c in self._children.values() for info in c.state_info(batch_size)]

    def begin_state(self, batch_size=0, func=nd.zeros, **kwargs):
        return [s for c in self._children.values() for s in c.begin_state(batch_size, func, **kwargs)]

    def _default_begin_state(self, F, like):
        return [s for c in self._children.values() for s in c._default_begin_state(F, like)]


class SequentialRNNCell(_ChildStates, RecurrentCell):
    """Cells stacked: each one's output is the next one's input; states are all cells' states, in order.
    unroll() unrolls the cells one after another (so BidirectionalCell may be one of them)."""

    def add(self, cell):
        self.register_child(cell)

    def __len__(self):
        return len(self._children)

    def __getitem__(self, i):
        return list(self._children.values())[i]

    def __repr__(self):
        body = '\n'.join(f"  ({k}): {repr(c)}" for k, c in self._children.items())
        return f"{type(self).__name__}(\n{body}\n)"

    def unroll(self, length, inputs, begin_state=None, layout='NTC', merge_outputs=None, valid_length=None):
        self.reset()
        cells = list(self._children.values())
        states = _as_list(begin_state) if begin_state is not None else None
        p, next_states = 0, []
        for i, cell in enumerate(cells):
            n = len(cell.state_info())
            inputs, st = cell.unroll(length, inputs, begin_state=None if states is None else states[p:p + n],
                                     layout=layout, merge_outputs=None if i < len(cells) - 1 else merge_outputs,
                                     valid_length=valid_length)
            p += n
            next_states += st
        return inputs, next_states

    def hybrid_forward(self, F, inputs, states):
        next_states, p = [], 0
        for cell in self._children.values():
            if isinstance(cell, BidirectionalCell):
                raise GraphcError("a BidirectionalCell cannot be stepped; use unroll() of the sequential cell")
            n = len(cell.state_info())
            inputs, st = cell(inputs, states[p:p + n])
            p += n
            next_states += st
        return inputs, next_states


HybridSequentialRNNCell = SequentialRNNCell


class BidirectionalCell(_ChildStates, RecurrentCell):
    """Runs l_cell forward and r_cell backward in time over the same sequence; outputs are concatenated on
    the feature axis (named <output_prefix>t<i>, or <output_prefix>out merged). With valid_length, the
    backward cell reads each sequence's valid steps reversed. Can only be unrolled, not stepped."""

    def __init__(self, l_cell, r_cell, output_prefix='bi_'):
        super().__init__(prefix='', params=None)
        self.register_child(l_cell, 'l_cell')
        self.register_child(r_cell, 'r_cell')
        self._output_prefix = output_prefix

    def __call__(self, inputs, states=None, *args, **kwargs):
        raise GraphcError("BidirectionalCell cannot be stepped; use unroll()")

    def __repr__(self):
        l, r = self._children.values()
        return f"{type(self).__name__}(forward={l!r}, backward={r!r})"

    def unroll(self, length, inputs, begin_state=None, layout='NTC', merge_outputs=None, valid_length=None):
        self.reset()
        was_array = _is_array(inputs)
        inputs, axis, F, _ = _format_sequence(length, inputs, layout, False)
        l_cell, r_cell = self._children.values()
        if begin_state is None:
            begin_state = self._default_begin_state(F, inputs[0])
        begin_state = _as_list(begin_state)
        nl = len(l_cell.state_info())
        l_out, l_states = l_cell.unroll(length, inputs, begin_state=begin_state[:nl], layout=layout,
                                        merge_outputs=False, valid_length=valid_length)
        r_out, r_states = r_cell.unroll(length, _reverse_steps(F, inputs, valid_length),
                                        begin_state=begin_state[nl:], layout=layout, merge_outputs=False,
                                        valid_length=valid_length)
        r_out = _reverse_steps(F, r_out, valid_length)
        if merge_outputs is None:
            merge_outputs = was_array
        if merge_outputs:
            outputs = _named(F, 'concat', F.stack(*l_out, axis=axis), F.stack(*r_out, axis=axis), dim=2,
                             name=f"{self._output_prefix}out")
        else:
            outputs = [_named(F, 'concat', l, r, dim=1, name=f"{self._output_prefix}t{i}")
                       for i, (l, r) in enumerate(zip(l_out, r_out))]
        if valid_length is not None:
            outputs = _mask_outputs(F, outputs, length, valid_length, axis, merge_outputs)
        return outputs, l_states + r_states


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
            inputs = _named(F, 'Dropout', inputs, p=self._rate, axes=self._axes, name=f"t{self._counter}_fwd")
        return inputs, states or []


# ---------------------------------------------------------------- modifiers
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

    def _default_begin_state(self, F, like):
        self.base_cell._modified = False
        try:
            return self.base_cell._default_begin_state(F, like)
        finally:
            self.base_cell._modified = True

    def __repr__(self):
        return f"{type(self).__name__}({self.base_cell!r})"


class _StepMemory:
    """For modifiers that remember something across the steps of one unroll (ZoneoutCell's previous output,
    VariationalDropoutCell's masks): called at top level they run op by op (their base cell may still run
    compiled), since a cached graph per step cannot carry that memory; inside a parent's trace they trace."""

    def _cacheable(self):
        return False

    def _remembered(self, value):
        """value if it belongs to the current computation (eager, or the same trace), else None."""
        if value is None:
            return None
        trace, v = value
        return v if trace is current_trace() else None


class ZoneoutCell(_StepMemory, ModifierCell):
    """Zoneout (Krueger et al. 2016): in training each output / state unit keeps its previous value with
    probability zoneout_outputs / zoneout_states, else takes the new one."""

    def __init__(self, base_cell, zoneout_outputs=0., zoneout_states=0.):
        if isinstance(base_cell, BidirectionalCell):
            raise GraphcError("BidirectionalCell does not support zoneout; apply ZoneoutCell to its two cells")
        super().__init__(base_cell)
        self.zoneout_outputs, self.zoneout_states = zoneout_outputs, zoneout_states
        self._prev_output = None

    def _alias(self):
        return 'zoneout'

    def __repr__(self):
        return f"{type(self).__name__}(p_out={self.zoneout_outputs}, p_state={self.zoneout_states}, {self.base_cell!r})"

    def reset(self):
        super().reset()
        self._prev_output = None

    def hybrid_forward(self, F, inputs, states):
        next_output, next_states = self.base_cell(inputs, states)

        def keep_new(p, like):  # 1 where the new value is taken: Dropout of ones is 0 or 1/(1-p)
            return F.Dropout(F.ones_like(like), p=p)
        prev = self._remembered(self._prev_output)
        if prev is None:
            prev = F.zeros_like(next_output)
        output = F.where(keep_new(self.zoneout_outputs, next_output), next_output, prev) \
            if self.zoneout_outputs != 0. else next_output
        if self.zoneout_states != 0.:
            next_states = [F.where(keep_new(self.zoneout_states, n), n, o) for n, o in zip(next_states, states)]
        self._prev_output = (current_trace(), output)
        return output, next_states


class ResidualCell(ModifierCell):
    """output = base_cell(inputs) + inputs."""

    def _alias(self):
        return 'residual'

    def hybrid_forward(self, F, inputs, states):
        output, states = self.base_cell(inputs, states)
        return _named(F, 'elemwise_add', output, inputs, name=f"t{self._counter}_fwd"), states

    def unroll(self, length, inputs, begin_state=None, layout='NTC', merge_outputs=None, valid_length=None):
        """The base cell unrolled (so it may be a BidirectionalCell), plus the inputs (padding masked out)."""
        self.reset()
        self.base_cell._modified = False
        try:
            outputs, states = self.base_cell.unroll(length, inputs, begin_state=begin_state, layout=layout,
                                                    merge_outputs=merge_outputs, valid_length=valid_length)
        finally:
            self.base_cell._modified = True
        merged = _is_array(outputs)
        inputs, axis, F, _ = _format_sequence(length, inputs, layout, merged)
        if valid_length is not None:
            inputs = _mask_outputs(F, inputs, length, valid_length, axis, merged)
        if merged:
            return F.elemwise_add(outputs, inputs), states
        return [F.elemwise_add(o, i) for o, i in zip(outputs, inputs)], states


class VariationalDropoutCell(_StepMemory, ModifierCell):
    """Variational dropout (Gal & Ghahramani 2016): one dropout mask per sequence, reused at every step,
    on the inputs (drop_inputs), the first state h (drop_states) and the outputs (drop_outputs)."""

    def __init__(self, base_cell, drop_inputs=0., drop_states=0., drop_outputs=0.):
        if isinstance(base_cell, BidirectionalCell):
            raise GraphcError("BidirectionalCell does not support variational dropout; apply it to its two cells")
        super().__init__(base_cell)
        self.drop_inputs, self.drop_states, self.drop_outputs = drop_inputs, drop_states, drop_outputs
        self._masks = {}

    def _alias(self):
        return 'vardrop'

    def __repr__(self):
        return (f"{type(self).__name__}(p_in={self.drop_inputs}, p_state={self.drop_states}, "
                f"p_out={self.drop_outputs}, {self.base_cell!r})")

    def reset(self):
        super().reset()
        self._masks = {}

    def _mask(self, F, key, p, like):
        m = self._remembered(self._masks.get(key))
        if m is None:
            m = F.Dropout(F.ones_like(like), p=p)
            self._masks[key] = (current_trace(), m)
        return m

    def hybrid_forward(self, F, inputs, states):
        states = list(states)
        if self.drop_states:
            states[0] = states[0] * self._mask(F, 'states', self.drop_states, states[0])
        if self.drop_inputs:
            inputs = inputs * self._mask(F, 'inputs', self.drop_inputs, inputs)
        output, next_states = self.base_cell(inputs, states)
        if self.drop_outputs:
            output = output * self._mask(F, 'outputs', self.drop_outputs, output)
        return output, next_states
