"""Symbol: a handle on graph outputs, with the same methods and operators as NDArray.

Tracing runs user code on Symbols: every op call goes through ndarray.invoke, which sees a
Symbol input and builds a graph Node instead of computing. Shapes are inferred as each node
is made, so `x.shape` works while tracing and a shape error names the user's line.
"""
import threading

import numpy as np

from .. import autograd as _ag
from ..base import GraphcError, GraphcTraceError, as_dtype, user_frame
from ..graph import Graph, Node, describe, partial_infer


class _TraceState(threading.local):
    ctx = None


_ts = _TraceState()


class TraceContext:
    """What a trace collects besides the graph: names, the block path, aux updates, constants."""

    def __init__(self, training=False):
        self.training = training
        self.counts = {}
        self.blocks = []          # stack of (prefix, path) of the blocks being traced
        self.aux_updates = []     # (moving var node, batch-stat entry, momentum) from BatchNorm in training
        self.consts = {}          # id(NDArray) -> var node holding a captured constant
        self.param_vars = {}      # id(Parameter) -> (Parameter, Symbol): what Parameter.data() gives while tracing

    def __enter__(self):
        self.old, _ts.ctx = _ts.ctx, self
        return self

    def __exit__(self, *exc):
        _ts.ctx = self.old

    def name(self, hint):
        prefix = self.blocks[-1][0] if self.blocks else ''
        key = prefix + hint
        n = self.counts.get(key, 0)
        self.counts[key] = n + 1
        return f"{key}{n}"

    def param_var(self, param):
        """The graph variable standing for a Parameter (one per parameter per trace)."""
        hit = self.param_vars.get(id(param))
        if hit is None:
            extra = {'__lr_mult__': param.lr_mult, '__wd_mult__': param.wd_mult, '__storage_type__': 0}
            init = getattr(param, 'init', None)
            v = var(param.name, shape=param.shape, dtype=param.dtype, attr=extra,
                    init=init if isinstance(init, str) or hasattr(init, 'dumps') else None)
            if getattr(param, '_data', None) is not None:  # a 0 in a Parameter's shape means "unknown": the data
                v._one()[0].shapes = [tuple(param._data.shape)]  # has the true shape (a zero-size dim is real)
            hit = self.param_vars[id(param)] = (param, v)
        return hit[1]

    @property
    def block_path(self):
        return self.blocks[-1][1] if self.blocks else ''


def current_trace():
    return _ts.ctx


def _where():
    return user_frame()


def _trace_error(what, fix):
    fn, line, src = user_frame()
    loc = f"{fn}:{line}: `{src}`" if fn else "(unknown line)"
    return GraphcTraceError(f"{loc}\n  {what} while tracing a hybridized block.\n  Fix: {fix}")


class Symbol:
    """One or more graph outputs (entries (node, index)). Single-output symbols act like arrays."""
    __slots__ = ('_entries', '__weakref__')
    __array_priority__ = 1001.0

    def __init__(self, entries):
        self._entries = list(entries)

    # ------------------------------------------------------------ the array-like face
    def _one(self):
        if len(self._entries) != 1:
            raise GraphcError(f"this symbol has {len(self._entries)} outputs; select one with sym[i]")
        return self._entries[0]

    @property
    def shape(self):
        n, j = self._one()
        return None if n.shapes is None or n.shapes[j] is None else tuple(n.shapes[j])

    @property
    def dtype(self):
        n, j = self._one()
        return n.dtypes[j] if n.dtypes else np.dtype('float32')

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def name(self):
        n, j = self._one()
        return n.name

    @property
    def context(self):
        from ..context import cpu
        return cpu()

    def __repr__(self):
        if len(self._entries) == 1:
            n, j = self._entries[0]
            s = self.shape
            shp = 'shape unknown' if s is None else f"shape {s}"
            kind = 'variable' if n.is_var else f"output {j} of {n.op.name}"
            return (f"<Symbol {n.name}: {kind}, {shp}, {self.dtype} — a traced value: print() shows this "
                    f"description, not numbers; return it from the block to see values>")
        return f"<Symbol group [{', '.join(n.name for n, _ in self._entries)}]>"

    def __len__(self):
        if len(self._entries) > 1:
            return len(self._entries)
        s = self.shape
        if not s:
            raise TypeError("len() of a 0-d symbol")
        return s[0]

    def __iter__(self):
        if len(self._entries) > 1:
            return (Symbol([e]) for e in self._entries)
        return (self[i] for i in range(len(self)))

    def __getitem__(self, key):
        if len(self._entries) > 1:  # a group or multi-output op: select an output
            if isinstance(key, str):
                for n, j in self._entries:
                    if n.name == key or output_name(n, j) == key:
                        return Symbol([(n, j)])
                raise GraphcError(f"no output named {key!r} in {self.list_outputs()}")
            sel = self._entries[key]
            return Symbol(sel if isinstance(key, slice) else [sel])
        if isinstance(key, str):
            for n, j in self.get_internals()._entries:
                if output_name(n, j) == key or n.name == key:
                    return Symbol([(n, j)])
            raise GraphcError(f"no internal output named {key!r}")
        from ..indexing import getitem
        return getitem(self, key)

    # ------------------------------------------------------------ what tracing cannot do
    def __bool__(self):
        raise _trace_error("bool() of a traced value (an `if`, `while`, `and`/`or` or assert on a tensor)",
                           "the graph is built once and cannot branch on values: use F.where(cond, a, b), or "
                           "make the decision from a Python argument and run that block without hybridize()")

    def __float__(self):
        raise _trace_error("float() of a traced value", "keep it as an array (use it in ops) or return it from "
                                                         "the block; values exist only when the graph runs")

    __int__ = __index__ = __float__

    def asnumpy(self):
        raise _trace_error("asnumpy() of a traced value", "return the value from the block and call asnumpy() on "
                                                          "the result; use graphc ops inside the block")

    asscalar = item = tolist = asnumpy

    def __array__(self, *a, **k):
        raise _trace_error("a traced value passed to NumPy", "use graphc ops (F.*) inside hybrid_forward/forward")

    def __setitem__(self, key, value):
        raise _trace_error("in-place assignment x[...] = v to a traced value",
                           "build a new value instead: F.where(mask, v, x), or F.concat / slice ops")

    def attach_grad(self, *a, **k):
        raise _trace_error("attach_grad() on a traced value", "call attach_grad() on the block's inputs outside it")

    def wait_to_read(self):
        return self

    # ------------------------------------------------------------ MXNet's Symbol API
    def list_arguments(self):
        aux = {id(n) for n in self._aux_nodes()}
        return [n.name for n in self._graph().inputs if id(n) not in aux]

    def list_auxiliary_states(self):
        return [n.name for n in self._aux_nodes()]

    def list_inputs(self):
        return [n.name for n in self._graph().inputs]

    def list_outputs(self):
        return [output_name(n, j) for n, j in self._entries]

    def _graph(self):
        return Graph(self._entries)

    def _aux_nodes(self):
        aux, seen = [], set()
        for n in self._graph().nodes:
            for i in ([] if n.is_var else n.op.aux_inputs):
                if i < len(n.inputs):
                    v = n.inputs[i][0]
                    if v.is_var and id(v) not in seen:
                        seen.add(id(v))
                        aux.append(v)
        return aux

    def get_internals(self):
        entries = []
        for n in self._graph().nodes:
            entries += [(n, j) for j in range(n.num_outputs if not n.is_var else 1)]
        return Symbol(entries)

    def get_children(self):
        n, _ = self._one()
        return Symbol(n.inputs) if n.inputs else None

    def infer_shape(self, *args, **kwargs):
        """(arg_shapes, out_shapes, aux_shapes) given input shapes by position or name; None where unknown."""
        g = self._graph()
        return _infer(g, args, kwargs, 'shape', self)

    def infer_type(self, *args, **kwargs):
        g = self._graph()
        return _infer(g, args, kwargs, 'dtype', self)

    def infer_shape_partial(self, *args, **kwargs):
        return self.infer_shape(*args, **kwargs)

    def tojson(self):
        from ..mxjson import graph_to_json
        return graph_to_json(self._graph())

    def save(self, fname):
        from ..mxjson import atomic_write
        atomic_write(fname, self.tojson().encode())

    def __call__(self, *args, **kwargs):
        raise GraphcError("composing symbols by call is not supported; build with ops on variables")


def output_name(n, j):
    if n.is_var:
        return n.name
    names = {1: ['output']}.get(n.num_outputs) or [f"output{i}" for i in range(n.num_outputs)]
    return f"{n.name}_{names[j]}"


def _evaluate(self, ctx=None, **inputs):
    """Run the graph on NDArrays given by input name; returns a list of NDArrays."""
    from ..ndarray.ndarray import NDArray
    from ..runtime.interpreter import interpret
    g = self._graph()
    vals = {}
    for v in g.inputs:
        if v.name in inputs:
            a = inputs[v.name]
            vals[id(v)] = a._data if isinstance(a, NDArray) else np.asarray(a)
        elif 'value' not in v.extra:
            raise GraphcError(f"eval: no value given for input {v.name!r}; inputs: {[n.name for n in g.inputs]}")
    g2 = _reinfer(g, {k: a.shape for k, a in vals.items()}, {k: a.dtype for k, a in vals.items()})
    feed = {id(n2): vals[id(n)] for n, n2 in zip(g.inputs, g2.inputs) if id(n) in vals}
    return [NDArray(o) for o in interpret(g2, feed)]


Symbol.eval = _evaluate


def _reinfer(g, shapes, dtypes):
    """Copy of g with shapes/dtypes inferred from the given input shapes (keyed by id of the input node)."""
    mapping = {}
    for n in g.nodes:
        if n.is_var:
            m = Node(None, n.name, shapes=[shapes.get(id(n), n.shapes[0] if n.shapes else None)],
                     dtypes=[dtypes.get(id(n), n.dtypes[0] if n.dtypes else np.dtype('float32'))])
            m.extra = n.extra
        else:
            m = Node(n.op, n.name, n.attrs, [(mapping[id(s)], j) for s, j in n.inputs], where=n.where, block=n.block)
            m.shapes, m.dtypes = partial_infer(m)
        mapping[id(n)] = m
    return Graph([(mapping[id(n)], j) for n, j in g.outputs], [mapping[id(n)] for n in g.inputs])


def _infer(g, args, kwargs, what, sym):
    names = [n.name for n in g.inputs]
    given = dict(zip(names, args))
    given.update(kwargs)
    unknown = set(given) - set(names)
    if unknown:
        raise GraphcError(f"infer_{what}: unknown inputs {sorted(unknown)}; inputs are {names}")
    shapes, dtypes = {}, {}
    for n in g.inputs:
        if n.name in given:
            if what == 'shape':
                shapes[id(n)] = tuple(given[n.name])
            else:
                dtypes[id(n)] = as_dtype(given[n.name])
    g2 = _reinfer(g, shapes, dtypes)
    aux = set(sym.list_auxiliary_states())
    attr = (lambda n, j: n.shapes[j]) if what == 'shape' else (lambda n, j: n.dtypes[j])
    args_ = [attr(n, 0) for n in g2.inputs if n.name not in aux]
    auxs = [attr(n, 0) for n in g2.inputs if n.name in aux]
    outs = [attr(n, j) for n, j in g2.outputs]
    return args_, outs, auxs


# ---------------------------------------------------------------- building nodes
def var(name, shape=None, dtype=None, init=None, lr_mult=None, wd_mult=None, attr=None, **kw):
    """A graph input. shape may hold 0 or None for unknown dims."""
    shp = None if shape is None else tuple(None if d in (0, None) else int(d) for d in shape)
    n = Node(None, name, shapes=[shp], dtypes=[as_dtype(dtype) if dtype is not None else np.dtype('float32')])
    if shape is not None:
        n.extra['__shape__'] = tuple(0 if d is None else d for d in shape)
    if dtype is not None:
        n.extra['__dtype__'] = str(as_dtype(dtype))
    if init is not None:
        n.extra['__init__'] = init if isinstance(init, str) else init.dumps()
    for k, v in (('__lr_mult__', lr_mult), ('__wd_mult__', wd_mult)):
        if v is not None:
            n.extra[k] = float(v)
    n.extra.update(attr or {})
    return Symbol([(n, 0)])


Variable = var


def input_var(name, shape, dtype):
    """A graph input of an exact, known shape (0 is a real zero-size dim): what tracing feeds in."""
    return Symbol([(Node(None, name, shapes=[tuple(shape)], dtypes=[np.dtype(dtype)]), 0)])


def Group(symbols):
    entries = []
    for s in symbols:
        entries += s._entries
    return Symbol(entries)


def _const_node(arr, ctx):
    """An NDArray used inside a traced forward: a constant input of the graph."""
    key = id(arr)
    if ctx is not None and key in ctx.consts:
        return ctx.consts[key]
    n = Node(None, (ctx.name('_const') if ctx else '_const'), shapes=[arr.shape], dtypes=[arr.dtype])
    n.extra['value'] = arr._data.copy()
    if ctx is not None:
        ctx.consts[key] = n
    return n


def sym_invoke(op, inputs, attrs, name=None):
    """Add an op node; returns a Symbol (or a list of them for multi-output ops)."""
    from ..ndarray.ndarray import NDArray
    ctx = _ts.ctx
    entries = []
    for x in inputs:
        if isinstance(x, Symbol):
            entries.append(x._one())
        elif isinstance(x, NDArray):
            entries.append((_const_node(x, ctx), 0))
        else:
            raise GraphcError(f"{op.name}: input of type {type(x).__name__} in a traced graph")
    if op.mode_dependent and '_train' not in attrs:
        attrs = dict(attrs, _train=ctx.training if ctx is not None else _ag.is_training())
    if name and ctx is not None and ctx.blocks:
        name = ctx.blocks[-1][0] + name   # Gluon's naming: dense0_ + fwd
    node = Node(op, name or (ctx.name(op.name.lower().lstrip('_')) if ctx else _auto_name(op)), attrs, entries,
                where=_where(), block=ctx.block_path if ctx else '')
    node.shapes, node.dtypes = partial_infer(node)
    n = op.n_out(attrs)
    return [Symbol([(node, i)]) for i in range(n)] if n > 1 else Symbol([(node, 0)])


_auto_counts = {}


def _auto_name(op):
    hint = op.name.lower().lstrip('_')
    k = _auto_counts.get(hint, 0)
    _auto_counts[hint] = k + 1
    return f"{hint}{k}"


def _install_array_methods():
    """Symbols get NDArray's methods and operators (one semantics for eager and traced code)."""
    from ..ndarray.ndarray import NDArray
    skip = {'__init__', '__repr__', '__len__', '__iter__', '__bool__', '__float__', '__int__', '__index__',
            '__hash__', '__getitem__', '__setitem__', '__array__', 'asnumpy', 'asscalar', 'item', 'tolist',
            'attach_grad', 'backward', 'copyto', 'detach', 'wait_to_read', '_inplace', '__iadd__', '__isub__',
            '__imul__', '__itruediv__', 'shape', 'ndim', 'size', 'dtype', 'context', 'ctx', 'grad', 'stype',
            '__eq__', '__ne__', '__slots__', '__module__', '__doc__', '__dict__', '__weakref__', '_data', '_ag',
            '_grad', '_grad_req', '__array_priority__', 'zeros_like', 'ones_like'}
    for k, v in NDArray.__dict__.items():
        if k not in skip:
            setattr(Symbol, k, v)
    Symbol.__eq__ = NDArray.__eq__   # elementwise, as on NDArray
    Symbol.__ne__ = NDArray.__ne__
    Symbol.__hash__ = lambda self: id(self)

    def zeros_like(self):
        from .. import ndarray as nd
        return nd.zeros_like(self)

    def ones_like(self):
        from .. import ndarray as nd
        return nd.ones_like(self)
    Symbol.zeros_like, Symbol.ones_like = zeros_like, ones_like


def describe_node(node):
    return describe(node)


def _register_tensor_type():
    from ..ndarray import ndarray
    ndarray.TENSORS = (ndarray.NDArray, Symbol)


_install_array_methods()
_register_tensor_type()
