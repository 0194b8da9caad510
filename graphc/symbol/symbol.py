"""Symbol: a handle on graph outputs, with the same methods and operators as NDArray.

Tracing runs user code on Symbols: every op call goes through ndarray.invoke, which sees a
Symbol input and builds a graph Node instead of computing. Shapes are inferred as each node
is made, so `x.shape` works while tracing and a shape error names the user's line.
"""
import threading

import numpy as np

from .. import autograd as _ag
from ..base import GraphcError, GraphcTraceError, as_dtype, user_frame
from ..graph import Graph, Node, partial_infer


class _TraceState(threading.local):
    ctx = None
    created = None  # ids of the nodes made while a control-flow body is traced (symbol/contrib.py)


_ts = _TraceState()


class TraceContext:
    """What a trace collects besides the graph: names, the block path, aux updates, constants."""

    def __init__(self, training=False):
        self.training = training
        self.symbolic = False     # a block called on Symbols: build the graph, leave parameters uninitialized
        self.counts = {}
        self.blocks = []          # stack of (prefix, path) of the blocks being traced
        self.aux_updates = []     # (moving var node, batch-stat entry, momentum) from BatchNorm in training
        self.consts = {}          # id(NDArray) -> (array, var node) of a captured constant (NDArray's == is elementwise)
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
                v._one()[0].shapes = [tuple(param._cur.shape)]  # has the true shape (a zero-size dim is real)
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
        if len(self._entries) != 1:
            return None  # a group has no name (MXNet's)
        return self._entries[0][0].name

    @property
    def context(self):
        from ..context import cpu
        return cpu()

    def __repr__(self):
        if _ts.ctx is None:  # MXNet's form, for the symbolic API
            if len(self._entries) == 1:
                return f"<Symbol {self._entries[0][0].name}>"
            return f"<Symbol group [{', '.join(n.name for n, _ in self._entries)}]>"
        if len(self._entries) == 1:
            n, j = self._entries[0]
            s = self.shape
            shp = 'shape unknown' if s is None else f"shape {s}"
            kind = 'variable' if n.is_var else f"output {j} of {n.op.name}"
            return (f"<Symbol {n.name}: {kind}, {shp}, {self.dtype} — a traced value: print() shows this "
                    f"description, not numbers; return it from the block to see values>")
        return f"<Symbol group [{', '.join(n.name for n, _ in self._entries)}]>"

    def __len__(self):
        if len(self._entries) > 1 or _ts.ctx is None:  # MXNet: the number of outputs
            return len(self._entries)
        s = self.shape
        if not s:
            raise TypeError("len() of a 0-d symbol")
        return s[0]

    def __iter__(self):
        if len(self._entries) > 1 or _ts.ctx is None:
            return (Symbol([e]) for e in self._entries)
        return (self[i] for i in range(len(self)))

    def __getitem__(self, key):
        if len(self._entries) > 1 or (_ts.ctx is None and isinstance(key, (int, slice, str))):
            if isinstance(key, str):  # an output by name: this symbol's, then its internals' (as MXNet's)
                for n, j in self._entries + self.get_internals()._entries:
                    if output_name(n, j) == key or (n.is_var and n.name == key):
                        return Symbol([(n, j)])
                raise GraphcError(f"no output named {key!r}; outputs: {self.list_outputs()}")
            sel = self._entries[key]
            return Symbol(sel if isinstance(key, slice) else [sel])
        if isinstance(key, str):
            for n, j in self.get_internals()._entries:
                if output_name(n, j) == key or n.name == key:
                    return Symbol([(n, j)])
            raise GraphcError(f"no internal output named {key!r}")
        from ..indexing import getitem
        return getitem(self, key)

    def __reduce__(self):  # pickle and copy go through MXNet's JSON: no code in the data
        from . import load_json
        return load_json, (self.tojson(),)

    def __copy__(self):
        return Symbol(self._entries)

    def __deepcopy__(self, memo):
        from . import load_json
        return load_json(self.tojson())

    # ------------------------------------------------------------ what tracing cannot do
    def __bool__(self):
        if _ts.ctx is None:
            from .. import base
            err = getattr(base, 'NotImplementedForSymbol', None)
            if err is not None:
                raise err(bool, 'bool')
            raise GraphcError("bool() of a Symbol: a symbol has no value until it is bound and run")
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
        aux = set(self._aux_nodes())
        return [n.name for n in self._graph().inputs if n not in aux]

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
                    if v.is_var and v not in seen:
                        seen.add(v)
                        aux.append(v)
        return aux

    def get_internals(self):
        """Every output of every node (variables included), in topological order: select one by name."""
        entries = []
        for n in self._graph().nodes:
            entries += [(n, j) for j in range(1 if n.is_var else n.op.n_visible(n.attrs))]
        return Symbol(entries)

    def get_children(self):
        """The inputs of this symbol's node(s) as one grouped Symbol; None for a variable."""
        seen, entries = set(), []
        for n, _ in self._entries:
            if n not in seen:
                seen.add(n)
                entries += n.inputs
        return Symbol(entries) if entries else None

    def _gen_atomic_symbol(self):
        """This symbol's op applied to fresh variables named after its inputs."""
        n, _ = self._entries[0]
        if n.is_var:
            return Symbol([(n, 0)])
        names = n.op.input_names(n.attrs) if not n.op.variadic else [f"arg{i}" for i in range(len(n.inputs))]
        ins = [var(f"{nm}")._one() for nm in names]
        m = Node(n.op, n.name, dict(n.attrs), ins)
        m.shapes, m.dtypes = partial_infer(m)
        return Symbol([(m, j) for j in range(n.op.n_visible(n.attrs))])

    # attributes
    def attr(self, key):
        """The attribute `key` of this symbol's node as a string (None if it has none)."""
        n, _ = self._entries[0]
        return _node_attrs(n).get(key)

    def list_attr(self, recursive=False):
        if recursive:
            raise GraphcError("list_attr(recursive=True) is gone in MXNet 1.x; use attr_dict()")
        return _node_attrs(self._entries[0][0])

    def attr_dict(self):
        """{node name: {attribute: string}} for every node of the graph that has attributes."""
        out = {}
        for n in self._graph().nodes:
            a = _node_attrs(n)
            if a:
                out[n.name] = a
        return out

    def _set_attr(self, **kwargs):
        for k, v in kwargs.items():
            if not isinstance(v, str):
                raise ValueError(f"attribute {k!r}: set attributes must be strings, got {type(v).__name__}")
        for n, _ in self._entries:
            n.extra.update(kwargs)

    # inference
    def infer_shape(self, *args, **kwargs):
        """(arg_shapes, out_shapes, aux_shapes) from input shapes given by position (list_arguments order) or
        name, inferring forward and backward (weights from data); (None, None, None) if any stays unknown."""
        return self._infer_shape(False, args, kwargs)

    def infer_shape_partial(self, *args, **kwargs):
        """As infer_shape, but unknown shapes are () and unknown dims 0 instead of failing the whole."""
        return self._infer_shape(True, args, kwargs)

    def infer_type(self, *args, **kwargs):
        """(arg_types, out_types, aux_types) as NumPy types; (None, None, None) if any stays unknown."""
        return self._infer_type(False, args, kwargs)

    def infer_type_partial(self, *args, **kwargs):
        return self._infer_type(True, args, kwargs)

    def _given(self, g, args, kwargs, what):
        names = self.list_arguments()
        if len(args) > len(names):
            raise GraphcError(f"infer_{what}: {len(args)} positional values for {len(names)} arguments {names}")
        given = {k: v for k, v in zip(names, args) if v is not None}
        known = {n.name for n in g.inputs}
        unknown = [k for k in kwargs if k not in known]
        if unknown:
            raise GraphcError(f"infer_{what}: unknown inputs {sorted(unknown)}; inputs are {self.list_inputs()}")
        given.update({k: v for k, v in kwargs.items() if v is not None})
        return given

    def _infer_shape(self, partial, args, kwargs):
        from .infer import infer_shapes
        g = self._graph()
        given = self._given(g, args, kwargs, 'shape')
        start = {}
        for n in g.inputs:
            s = given.get(n.name)
            if s is not None:  # unknown dims: 0 (MXNet 1.x), -1 (NumPy shape mode) or None
                s = tuple(None if d in (0, None, -1) else int(d) for d in (s if isinstance(s, (tuple, list)) else (s,)))
            elif 'value' in n.extra:
                s = tuple(n.extra['value'].shape)
            elif n.shapes and n.shapes[0] is not None:
                s = tuple(n.shapes[0])
            start[n] = s
        shapes = infer_shapes(g, start)
        from ..util import is_np_shape
        unk, whole = (-1, None) if is_np_shape() else (0, ())  # MXNet's spelling of an unknown dim / shape
        return self._collect(g, lambda n, j: shapes.get((n, j)), partial,
                             lambda s: s is not None and None not in s,
                             lambda s: whole if s is None else tuple(unk if d is None else d for d in s))

    def _infer_type(self, partial, args, kwargs):
        from .infer import infer_dtypes
        g = self._graph()
        given = self._given(g, args, kwargs, 'type')
        start = {}
        for n in g.inputs:
            if n.name in given:
                start[n] = as_dtype(given[n.name])
            elif '__dtype__' in n.extra:
                start[n] = np.dtype(n.extra['__dtype__'])
            elif 'value' in n.extra:
                start[n] = n.extra['value'].dtype
            elif n.shapes and n.shapes[0] is not None and '__shape__' not in n.extra and n.dtypes:
                start[n] = np.dtype(n.dtypes[0])  # an input of a traced graph: its dtype is known
        dts = infer_dtypes(g, start)
        return self._collect(g, lambda n, j: dts.get((n, j)), partial, lambda d: d is not None,
                             lambda d: None if d is None else np.dtype(d).type)

    def _collect(self, g, get, partial, complete, fmt):
        aux = g.aux_vars()
        args_ = [get(n, 0) for n in g.inputs if n not in aux]
        auxs = [get(n, 0) for n in g.inputs if n in aux]
        outs = [get(n, j) for n, j in self._entries]
        if not partial and not all(complete(x) for x in args_ + auxs + outs):
            return None, None, None
        return [fmt(x) for x in args_], [fmt(x) for x in outs], [fmt(x) for x in auxs]

    # serialization
    def tojson(self):
        from ..mxjson import graph_to_json
        return graph_to_json(self._graph())

    def save(self, fname, remove_amp_cast=True):
        from ..mxjson import atomic_write
        atomic_write(fname, self.tojson().encode())

    def debug_str(self):
        return self._graph().text()

    # composition
    def __call__(self, *args, **kwargs):
        """A copy of this symbol with its arguments replaced by the given symbols (MXNet's compose)."""
        s = Symbol(self._entries)
        s._compose(*args, **kwargs)
        return s

    def _compose(self, *args, **kwargs):
        name = kwargs.pop('name', None)
        if args and kwargs:
            raise GraphcError("compose: give the replacements by position or by name, not both")
        names = self.list_arguments()
        if len(args) > len(names):
            raise GraphcError(f"compose: {len(args)} symbols for {len(names)} arguments {names}")
        subst = dict(zip(names, args)) if args else dict(kwargs)
        for k, v in subst.items():
            if not isinstance(v, Symbol):
                raise GraphcError(f"compose: argument {k!r} must be a Symbol, got {type(v).__name__}")
        unknown = [k for k in subst if k not in self.list_inputs()]
        if unknown:
            raise GraphcError(f"compose: no arguments named {unknown}; arguments are {names}")
        self._entries = _substitute(self._entries, {k: v._one() for k, v in subst.items()})
        if name is not None and len({n for n, _ in self._entries}) == 1:
            self._entries[0][0].name = name

    compose = _compose

    # running
    def bind(self, ctx, args, args_grad=None, grad_req='write', aux_states=None, group2ctx=None, shared_exec=None):
        """An Executor of this symbol on the given argument arrays (list in list_arguments order, or dict)."""
        from ..executor import bind
        return bind(self, ctx, args, args_grad, grad_req, aux_states, group2ctx, shared_exec)

    def simple_bind(self, ctx=None, grad_req='write', type_dict=None, stype_dict=None, group2ctx=None,
                    shared_arg_names=None, shared_exec=None, shared_buffer=None, **kwargs):
        """An Executor with arrays allocated from the input shapes given by name (and dtypes in type_dict)."""
        from ..executor import simple_bind
        return simple_bind(self, ctx, grad_req, type_dict, stype_dict, shared_exec, kwargs)


def _node_attrs(n):
    """A node's attributes as MXNet lists them: strings, op parameters and the user's own."""
    if n.is_var:
        from ..mxjson import var_attrs
        out = var_attrs(n)
    else:
        out = n.op.format_attrs({k: v for k, v in n.attrs.items() if not k.startswith('_')})
        out.update({k: str(v) for k, v in n.attrs.items() if k.startswith('__') and k.endswith('__')})
    out.update({k: v for k, v in n.extra.items() if isinstance(v, str) and k not in out})
    for k in _HIDDEN_KEYS:  # MXNet lists these under both names, plain and __k__
        hk = f"__{k}__"
        if k in out or hk in out:
            out.setdefault(k, out.get(hk))
            out.setdefault(hk, out[k])
    return out


# the attributes MXNet (its C API's hidden keys) sets and reads as both k and __k__
_HIDDEN_KEYS = ('ctx_group', 'lr_mult', 'wd_mult', 'force_mirroring', 'mirror_stage', 'profiler_scope')


def _substitute(entries, by_name):
    """entries rebuilt with the variables named in by_name replaced by the given entries."""
    new = {}
    for n in Graph(entries).nodes:
        if n.is_var:
            if n.name in by_name:
                new[n] = by_name[n.name][0], by_name[n.name][1]
            continue
        ins = [(new[s] if s.is_var else (new[s], j)) if s in new else (s, j) for s, j in n.inputs]
        if ins != n.inputs:
            m = Node(n.op, n.name, n.attrs, ins, where=n.where, block=n.block)
            m.extra = dict(n.extra)
            m.shapes, m.dtypes = partial_infer(m)
            new[n] = m
    out = []
    for n, j in entries:
        if n not in new:
            out.append((n, j))
        elif n.is_var:
            out.append(new[n])
        else:
            out.append((new[n], j))
    return out


def output_name(n, j):
    if n.is_var:
        return n.name
    if n.op.n_visible(n.attrs) == 1:
        return f"{n.name}_output" if j == 0 else f"{n.name}_output{j}"
    return f"{n.name}_output{j}"


def _evaluate(self, ctx=None, **inputs):
    """MXNet's eval: bind the given arrays (by name) and run a prediction forward; a list of NDArrays."""
    from ..ndarray.ndarray import NDArray
    args = {k: v if isinstance(v, NDArray) else NDArray(np.asarray(v)) for k, v in inputs.items()}
    aux = {k: args.pop(k) for k in self.list_auxiliary_states() if k in args}
    return self.bind(ctx, args, aux_states=aux or None).forward()


Symbol.eval = _evaluate


# ---------------------------------------------------------------- building nodes
def var(name, shape=None, dtype=None, init=None, lr_mult=None, wd_mult=None, attr=None, **kw):
    """A graph input. shape may hold 0 or None for unknown dims (-1 too, NumPy shape mode's unknown)."""
    shp = None if shape is None else tuple(None if d in (0, None, -1) else int(d) for d in shape)
    n = Node(None, name, shapes=[shp], dtypes=[as_dtype(dtype) if dtype is not None else np.dtype('float32')])
    if shape is not None:
        n.extra['__shape__'] = tuple(0 if d is None else d for d in shape)
    if dtype is not None:
        n.extra['__dtype__'] = str(as_dtype(dtype))
    if init is not None:
        n.extra['__init__'] = init if isinstance(init, str) else init.dumps()
    for k, v in (('__lr_mult__', lr_mult), ('__wd_mult__', wd_mult)):
        if v is not None:
            n.extra[k] = str(v)  # (MXNet: the string of the value given)
    from ..attribute import AttrScope
    n.extra.update(AttrScope.current.get(attr))
    stype = kw.pop('stype', None)
    if stype is not None:  # MXNet's attribute (graphs compute densely: its storage fallback)
        from ..ndarray.ndarray import _STORAGE_TYPE_STR_TO_ID
        if stype not in ('default', 'row_sparse', 'csr'):
            raise GraphcError(f"var {name!r}: unknown storage type {stype!r}; MXNet's are 'default', 'row_sparse', "
                              "'csr'")
        n.extra['__storage_type__'] = str(_STORAGE_TYPE_STR_TO_ID[stype])
    for k, v in kw.items():  # MXNet: other keywords are attributes __k__
        n.extra[k if k.startswith('__') else f"__{k}__"] = str(v)
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
    if ctx is not None and key in ctx.consts and ctx.consts[key][0] is arr:
        return ctx.consts[key][1]
    n = Node(None, (ctx.name('_const') if ctx else '_const'), shapes=[arr.shape], dtypes=[arr.dtype])
    n.extra['value'] = arr._data.copy()
    if ctx is not None:
        ctx.consts[key] = (arr, n)  # the array is kept alive with its node: an id is unique only while it lives
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
    if _ts.created is not None:  # a control-flow body being traced (symbol/contrib.py) keeps what it makes
        _ts.created.add(node)
    n = op.n_out(attrs)
    return [Symbol([(node, i)]) for i in range(n)] if n > 1 else Symbol([(node, 0)])


def _auto_name(op):
    from ..name import NameManager
    return NameManager.current.get(None, op.name.lower().lstrip('_'))


def _install_array_methods():
    """Symbols get NDArray's methods and operators (one semantics for eager and traced code)."""
    from ..ndarray.ndarray import NDArray
    skip = {'__init__', '__repr__', '__str__', '__format__', '__len__', '__iter__', '__bool__', '__float__', '__int__', '__index__',
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


def _install_fluent_methods():
    """Outside a trace, x.op(...) is sym.op(x, ...) (MXNet's fluent methods: name= and attr= work); inside a
    trace they stay NDArray's methods, so one hybrid_forward serves both."""
    from .. import symbol as sym_mod
    from ..ndarray.ndarray import NDArray

    def fluent(name, nd_method):
        def method(self, *args, **kwargs):
            if _ts.ctx is not None:
                return nd_method(self, *args, **kwargs)
            if name == 'reshape' and args and all(isinstance(a, int) for a in args):
                args, kwargs = (), dict(kwargs, shape=args)
            elif name == 'reshape' and len(args) == 1 and isinstance(args[0], (tuple, list)):
                args, kwargs = (), dict(kwargs, shape=tuple(args[0]))
            return getattr(sym_mod, name)(self, *args, **kwargs)
        method.__name__ = name
        method.__doc__ = getattr(nd_method, '__doc__', None)
        return method
    for k, v in list(vars(NDArray).items()):
        if not k.startswith('_') and callable(v) and hasattr(sym_mod, k) and k not in ('copy',):
            setattr(Symbol, k, fluent(k, v))


def _known(s):
    shape = s.shape
    return shape is not None and None not in shape


def _install_symbolic_arithmetic():
    """Symbol (op) Symbol of an unknown shape is MXNet's elementwise op (_Plus: same shapes, which inference
    then unifies) where no hybridize trace runs; known shapes, and traces, keep NDArray's rule (elementwise
    when the shapes match, else broadcast)."""
    from ..ndarray.ndarray import NDArray
    from ..registry import OPS

    def arith(name, op_name, swap):
        nd_method = getattr(NDArray, name)

        def method(self, other):
            if isinstance(other, Symbol) and (_ts.ctx is None or _ts.ctx.symbolic) and \
                    not (_known(self) and _known(other)):
                a, b = (other, self) if swap else (self, other)
                return sym_invoke(OPS[op_name], [a, b], {})
            return nd_method(self, other)
        method.__name__ = name
        return method
    for name, op_name in (('add', 'elemwise_add'), ('sub', 'elemwise_sub'), ('mul', 'elemwise_mul'),
                          ('truediv', 'elemwise_div')):
        setattr(Symbol, f"__{name}__", arith(f"__{name}__", op_name, False))
        setattr(Symbol, f"__r{name}__", arith(f"__r{name}__", op_name, True))


def _register_tensor_type():
    from ..ndarray import ndarray
    ndarray.TENSORS = (ndarray.NDArray, Symbol)


_install_array_methods()
_install_symbolic_arithmetic()
_register_tensor_type()
