"""ONNX -> graphc: import_model(path) -> (sym, arg_params, aux_params), import_to_gluon(path) -> SymbolBlock.

The file is untrusted data, read as safely as our MXNet loader reads JSON and .params: the byte size is capped
before reading; the protobuf is parsed by the onnx package's message class (no code runs); every count, dim,
tensor byte size and attribute is checked (check_sizes) before anything is allocated; tensor bytes come only from
the file or from external-data files inside the model's folder; op types resolve only through IMPORTERS; the
graph's shapes are inferred and its planned memory bounded. Every defect raises GraphcLoadError naming the file
and the node, initializer or attribute.
"""
import math
import os

import numpy as np

from ..base import GraphcError, GraphcLoadError
from ..mxjson import MAX_ATTR_CHARS, MAX_DIM, MAX_ELEMENTS, MAX_NODES, _r

MAX_ONNX_BYTES = 2 << 30          # protobuf's own limit for one message
MAX_TENSOR_BYTES = 4 << 30        # one initializer, from its declared dims
MAX_TOTAL_BYTES = 16 << 30        # all initializers together
MAX_PLANNED_BYTES = 64 << 30      # every value the graph computes, with dynamic dims at 1 (see plan_budget)
MAX_ATTR_ITEMS = 1 << 16          # ints/floats/strings of one attribute
MAX_NDIM = 32
MAX_IO = 4096                     # inputs or outputs of one node, of the graph
IMPORTERS = {}                    # ONNX op type -> builder(b, node, ins, attrs) -> [Symbol per output]
DTYPES = {1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 9: 'bool', 10: 'float16', 11: 'float64'}


def imports(*names):
    def deco(f):
        for n in names:
            IMPORTERS[n] = f
        return f
    return deco


class Unsupported(GraphcError):
    pass


# ---------------------------------------------------------------- reading the file
def _read(path):
    try:
        with open(path, 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_ONNX_BYTES:
                raise GraphcLoadError(f"{path}: {size} bytes is over the {MAX_ONNX_BYTES}-byte limit for an ONNX file")
            return f.read(size + 1)
    except OSError as e:
        raise GraphcLoadError(f"{path}: cannot read: {e.strerror}") from None


def parse(raw, fname):
    try:
        import onnx
    except ImportError:
        raise GraphcError("ONNX import needs the onnx package: pip install 'graphc[onnx]'") from None
    if len(raw) > MAX_ONNX_BYTES:
        raise GraphcLoadError(f"{fname}: {len(raw)} bytes is over the {MAX_ONNX_BYTES}-byte limit for an ONNX file")
    m = onnx.ModelProto()
    try:
        m.ParseFromString(bytes(raw))
    except Exception as e:   # protobuf's DecodeError, and its recursion limit on nested messages
        raise GraphcLoadError(f"{fname}: not an ONNX model (protobuf parse failed: {type(e).__name__}: "
                              f"{str(e)[:200]})") from None
    if not m.HasField('graph'):
        raise GraphcLoadError(f"{fname}: not an ONNX model: no graph")
    return m


def check_sizes(model, fname):
    """Caps on everything the file declares, before anything is allocated: node, input and output counts, each
    tensor's dims and bytes (from its declared dims and dtype) and their total, attribute sizes, no subgraphs.
    (Issue 15's shared graph-cost budget plugs in at plan_budget below, which bounds what the graph computes.)"""
    g = model.graph
    if len(g.node) > MAX_NODES:
        raise GraphcLoadError(f"{fname}: {len(g.node)} nodes is over the limit of {MAX_NODES}")
    for what, seq in (('inputs', g.input), ('outputs', g.output)):
        if len(seq) > MAX_IO:
            raise GraphcLoadError(f"{fname}: {len(seq)} graph {what} is over the limit of {MAX_IO}")
    _names_are_text(model, fname)
    total = 0
    for t in list(g.initializer) + [a.t for n in g.node for a in n.attribute if a.HasField('t')]:
        total += _tensor_bytes(t, fname)
    if total > MAX_TOTAL_BYTES:
        raise GraphcLoadError(f"{fname}: initializers of {total} bytes in all, over the limit of {MAX_TOTAL_BYTES}")
    if len(g.sparse_initializer):
        raise GraphcLoadError(f"{fname}: sparse initializers are not supported")
    for vi in list(g.input) + list(g.output):
        _value_shape(vi, fname)
    for i, n in enumerate(g.node):
        where = f"node {i} ({_r(n.name or n.op_type)})"
        if len(n.input) > MAX_IO or len(n.output) > MAX_IO:
            raise GraphcLoadError(f"{fname}: {where}: {len(n.input)} inputs / {len(n.output)} outputs is over the "
                                  f"limit of {MAX_IO}")
        for a in n.attribute:
            items = len(a.ints) + len(a.floats) + len(a.strings) + len(a.tensors)
            if items > MAX_ATTR_ITEMS or len(a.s) > MAX_ATTR_CHARS or any(len(s) > MAX_ATTR_CHARS for s in a.strings):
                raise GraphcLoadError(f"{fname}: {where}: attribute {_r(a.name)} is over the size limits "
                                      f"({MAX_ATTR_ITEMS} items, {MAX_ATTR_CHARS} bytes a string)")
            if a.HasField('g') or len(a.graphs):
                raise GraphcLoadError(f"{fname}: {where} ({n.op_type}): subgraph attributes (If, Loop, Scan) are not "
                                      "supported")
            if any(abs(v) > MAX_DIM for v in a.ints) or abs(a.i) > 2 ** 63 - 1:
                raise GraphcLoadError(f"{fname}: {where}: attribute {_r(a.name)} has a value over {MAX_DIM} in "
                                      "magnitude")


def _names_are_text(model, fname):
    """Every name, op type and domain is UTF-8 text (proto2 strings may hold any bytes) of a bounded length."""
    g = model.graph
    texts = [('opset domain', o.domain) for o in model.opset_import]
    texts += [('initializer name', t.name) for t in g.initializer]
    texts += [('external data', v) for t in g.initializer for e in t.external_data for v in (e.key, e.value)]
    texts += [('graph input/output name', v.name) for v in list(g.input) + list(g.output)]
    for n in g.node:
        texts += [('node name', n.name), ('op type', n.op_type), ('domain', n.domain)]
        texts += [('node input/output name', x) for x in list(n.input) + list(n.output)]
        texts += [('attribute name', a.name) for a in n.attribute]
    for what, v in texts:
        if not isinstance(v, str):
            raise GraphcLoadError(f"{fname}: a {what} is not UTF-8 text: {_r(v)}")
        if len(v) > MAX_ATTR_CHARS:
            raise GraphcLoadError(f"{fname}: a {what} of {len(v)} characters is over the limit of {MAX_ATTR_CHARS}")


def _dims_ok(dims, what, fname):
    if len(dims) > MAX_NDIM:
        raise GraphcLoadError(f"{fname}: {what}: {len(dims)} dims is over the limit of {MAX_NDIM}")
    if any(d < 0 or d > MAX_DIM for d in dims):
        raise GraphcLoadError(f"{fname}: {what}: dims {_r(list(dims))} has a negative or absurd dimension")
    n = math.prod(dims)
    if n > MAX_ELEMENTS:
        raise GraphcLoadError(f"{fname}: {what}: dims {_r(list(dims))} claim {n} elements, over the limit of "
                              f"{MAX_ELEMENTS}")
    return n


def _tensor_bytes(t, fname):
    what = f"tensor {_r(t.name)}"
    if t.data_type not in DTYPES:
        raise GraphcLoadError(f"{fname}: {what}: data type {t.data_type} is not supported (supported: "
                              f"{', '.join(DTYPES.values())})")
    n = _dims_ok(list(t.dims), what, fname)
    b = n * np.dtype(DTYPES[t.data_type]).itemsize
    if b > MAX_TENSOR_BYTES:
        raise GraphcLoadError(f"{fname}: {what}: {b} bytes is over the limit of {MAX_TENSOR_BYTES}")
    return b


def _value_shape(vi, fname):
    """(shape with None for symbolic dims, dtype name) of a graph input/output."""
    what = f"graph input/output {_r(vi.name)}"
    tt = vi.type.tensor_type
    if not vi.type.HasField('tensor_type'):
        raise GraphcLoadError(f"{fname}: {what}: only tensor types are supported")
    if tt.elem_type not in DTYPES:
        raise GraphcLoadError(f"{fname}: {what}: element type {tt.elem_type} is not supported")
    if not tt.HasField('shape'):
        return None, DTYPES[tt.elem_type]
    dims = [d.dim_value if d.HasField('dim_value') else None for d in tt.shape.dim]
    _dims_ok([d or 1 for d in dims], what, fname)
    return tuple(dims), DTYPES[tt.elem_type]


def tensor_array(t, fname, base_dir):
    """A TensorProto's values as NumPy, after checking the bytes match its dims (external data: inside base_dir)."""
    what = f"tensor {_r(t.name)}"
    _tensor_bytes(t, fname)
    dt, shape = np.dtype(DTYPES[t.data_type]), tuple(t.dims)
    n = math.prod(shape)
    if t.data_location == 1:   # EXTERNAL
        raw = _external(t, fname, base_dir, n * dt.itemsize)
    elif t.HasField('raw_data'):
        raw = t.raw_data
    else:
        field = {1: t.float_data, 11: t.double_data, 7: t.int64_data}.get(t.data_type, t.int32_data)
        if len(field) != n:
            raise GraphcLoadError(f"{fname}: {what}: {len(field)} values for dims {list(shape)} ({n} elements)")
        if t.data_type == 10:   # float16 values are stored as their bit patterns in int32_data
            return np.asarray(field, np.uint16).view(np.float16).reshape(shape)
        return np.asarray(field).astype(dt).reshape(shape)
    if len(raw) != n * dt.itemsize:
        raise GraphcLoadError(f"{fname}: {what}: {len(raw)} bytes of data for dims {list(shape)} of {dt} "
                              f"({n * dt.itemsize} bytes)")
    return np.frombuffer(raw, dt.newbyteorder('<')).astype(dt).reshape(shape)


def _external(t, fname, base_dir, nbytes):
    what = f"tensor {_r(t.name)}"
    info = {e.key: e.value for e in t.external_data}
    loc = info.get('location', '')
    if base_dir is None:
        raise GraphcLoadError(f"{fname}: {what}: external data, but the model was not read from a file")
    if not loc or os.path.isabs(loc) or '\0' in loc:
        raise GraphcLoadError(f"{fname}: {what}: external data location {_r(loc)} must be a relative path")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, loc))
    if os.path.commonpath([root, path]) != root:
        raise GraphcLoadError(f"{fname}: {what}: external data location {_r(loc)} is outside the model's folder")
    try:
        off = int(info.get('offset', '0'))
        length = int(info.get('length', str(nbytes)))
    except ValueError:
        raise GraphcLoadError(f"{fname}: {what}: external data offset/length are not integers") from None
    if off < 0 or length != nbytes:
        raise GraphcLoadError(f"{fname}: {what}: external data offset {off} / length {length} do not fit dims of "
                              f"{nbytes} bytes")
    try:
        with open(path, 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            if off + length > size:
                raise GraphcLoadError(f"{fname}: {what}: external data {_r(loc)} has {size} bytes, the tensor "
                                      f"needs bytes {off}..{off + length}")
            f.seek(off)
            return f.read(length)
    except OSError as e:
        raise GraphcLoadError(f"{fname}: {what}: cannot read external data {_r(loc)}: {e.strerror}") from None


def _attrs(node, fname, where, base_dir):
    from onnx import AttributeProto as A
    out = {}
    for a in node.attribute:
        t = a.type
        if t == A.FLOAT:
            out[a.name] = float(a.f)
        elif t == A.INT:
            out[a.name] = int(a.i)
        elif t == A.STRING:
            out[a.name] = a.s.decode('utf-8', 'replace')
        elif t == A.FLOATS:
            out[a.name] = [float(v) for v in a.floats]
        elif t == A.INTS:
            out[a.name] = [int(v) for v in a.ints]
        elif t == A.STRINGS:
            out[a.name] = [s.decode('utf-8', 'replace') for s in a.strings]
        elif t == A.TENSOR:
            out[a.name] = tensor_array(a.t, fname, base_dir)
        else:
            raise GraphcLoadError(f"{fname}: {where}: attribute {_r(a.name)} of type {t} is not supported")
    return out


# ---------------------------------------------------------------- building the graph
class Builder:
    """Names -> Symbols (or constants: NumPy arrays) while the nodes are read in order."""

    def __init__(self, fname):
        self.fname, self.env, self.consts, self.shape_of = fname, {}, {}, {}
        self.params, self.used_names = {}, set()
        self.node_name = ''

    def name(self, hint):
        base = hint or 'node'
        n, k = base, 1
        while n in self.used_names:
            n, k = f"{base}_{k}", k + 1
        self.used_names.add(n)
        return n

    def op(self, opname, inputs, name=None, **attrs):
        from ..registry import OPS
        from ..symbol.symbol import sym_invoke
        op = OPS[opname]
        a = op.canon(attrs)
        ins = [self.sym(x) for x in inputs]
        out = sym_invoke(op, ins, a, name=self.name(name or self.node_name))
        return out if isinstance(out, list) else [out]

    def sym(self, x):
        """A Symbol for x: a Symbol as is, a constant as a parameter variable (its value kept)."""
        from ..symbol.symbol import Symbol, var
        if isinstance(x, Symbol):
            return x
        if not isinstance(x, tuple):
            raise Unsupported("uses the output of a Shape node other than as ConstantOfShape's shape")
        name, arr = x
        if name not in self.params:
            self.params[name] = (var(name, shape=arr.shape, dtype=arr.dtype), arr)
        return self.params[name][0]

    def const(self, k, ins, what):
        x = ins[k] if k < len(ins) else None
        if not isinstance(x, tuple):
            raise Unsupported(f"its {what} (input {k}) must be a constant (an initializer or a Constant node)")
        return x[1]

    def shape(self, x):
        from ..symbol.symbol import Symbol
        if isinstance(x, Symbol):
            n, j = x._one()
            s = n.shapes[j] if n.shapes else None
            if s is None or None in s:
                raise Unsupported("needs the input's shape, which is not known here (declare the graph inputs' "
                                  "shapes)")
            return tuple(s)
        return x[1].shape


def _build(model, fname, base_dir):
    from ..symbol.symbol import Group, var
    g = model.graph
    b = Builder(fname)
    opset = 0
    for o in model.opset_import:
        if o.domain in ('', 'ai.onnx'):
            opset = int(o.version)
    if not 1 <= opset <= 1000:
        raise GraphcLoadError(f"{fname}: no usable ai.onnx opset_import (got {opset})")
    b.opset = opset
    for t in g.initializer:
        if not t.name:
            raise GraphcLoadError(f"{fname}: an initializer has no name")
        b.env[t.name] = (t.name, tensor_array(t, fname, base_dir))
        b.used_names.add(t.name)
    data = []
    for vi in g.input:
        if vi.name in b.env:
            continue
        if not vi.name:
            raise GraphcLoadError(f"{fname}: a graph input has no name")
        shape, dt = _value_shape(vi, fname)
        if shape is None:
            raise GraphcLoadError(f"{fname}: graph input {_r(vi.name)} has no shape")
        # built with symbolic dims at 1 so that shapes propagate; the Symbol returned declares them unknown (0)
        v = var(vi.name, shape=tuple(1 if d is None else d for d in shape), dtype=dt)
        b.env[vi.name] = v
        b.used_names.add(vi.name)
        data.append((v, shape))
    for i, n in enumerate(g.node):
        where = f"node {i} ({_r(n.name or n.op_type)}, {n.op_type})"
        if n.domain not in ('', 'ai.onnx'):
            raise GraphcLoadError(f"{fname}: {where}: operator domain {_r(n.domain)} is not supported by graphc")
        imp = IMPORTERS.get(n.op_type)
        if imp is None:
            raise GraphcLoadError(f"{fname}: {where}: ONNX operator {_r(n.op_type)} is not supported by graphc")
        ins = []
        for x in n.input:
            if x == '':
                ins.append(None)
            elif x not in b.env:
                raise GraphcLoadError(f"{fname}: {where}: input {_r(x)} is not defined before this node (not a "
                                      "graph input, an initializer or an earlier node's output)")
            else:
                ins.append(b.env[x])
        attrs = _attrs(n, fname, where, base_dir)
        b.node_name = n.name or (n.output[0] if n.output else n.op_type)
        try:
            outs = imp(b, n, ins, attrs)
        except Unsupported as e:
            raise GraphcLoadError(f"{fname}: {where}: not supported by graphc: {e}") from None
        except (GraphcError, ValueError, TypeError, KeyError, IndexError, OverflowError, ZeroDivisionError,
                AttributeError) as e:   # (a builder's own slip still reports the node, as a load error)
            raise GraphcLoadError(f"{fname}: {where}: {type(e).__name__}: {str(e)[:500]}") from None
        for k, o in enumerate(n.output):
            if o == '':
                continue
            if o in b.env:
                raise GraphcLoadError(f"{fname}: {where}: output {_r(o)} is defined twice")
            if k >= len(outs) or outs[k] is None:
                raise GraphcLoadError(f"{fname}: {where}: output {k} ({_r(o)}) is not supported by graphc")
            b.env[o] = outs[k]
    heads = []
    for vi in g.output:
        if vi.name not in b.env:
            raise GraphcLoadError(f"{fname}: graph output {_r(vi.name)} is not computed by any node")
        heads.append(b.sym(b.env[vi.name]))
    if not heads:
        raise GraphcLoadError(f"{fname}: the graph has no outputs")
    return b, Group(heads), data


def plan_budget(graph, fname):
    """The graph's planned memory: every value it computes, at the declared input shapes (dynamic dims at 1),
    bounded by the shared graph-cost budget (graphc.budget: GRAPHC_MAX_GRAPH_BYTES, GRAPHC_MAX_GRAPH_NODES)
    and by MAX_PLANNED_BYTES, whichever is lower."""
    from ..budget import check_graph_cost, max_graph_bytes
    check_graph_cost(graph, where=fname, limit=min(MAX_PLANNED_BYTES, max_graph_bytes()))


def _load(path_or_bytes):
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        fname, base_dir, raw = '<bytes>', None, bytes(path_or_bytes)
    else:
        fname = os.fspath(path_or_bytes)
        base_dir, raw = os.path.dirname(os.path.abspath(fname)), _read(fname)
    model = parse(raw, fname)
    check_sizes(model, fname)
    try:
        b, out, data = _build(model, fname, base_dir)
    except RecursionError:
        raise GraphcLoadError(f"{fname}: the graph is nested too deeply") from None
    from ..graph import Graph
    plan_budget(Graph(out._entries), fname)
    return b, out, data, fname


def _reinfer(g, shapes):
    """A copy of graph g with shapes inferred from the given input shapes (keyed by input node)."""
    from ..graph import Graph, Node, partial_infer
    mapping = {}
    for n in g.nodes:
        if n.is_var:
            m = Node(None, n.name, shapes=[shapes.get(n, n.shapes[0] if n.shapes else None)],
                     dtypes=[n.dtypes[0] if n.dtypes else np.dtype('float32')])
            m.extra = n.extra
        else:
            m = Node(n.op, n.name, n.attrs, [(mapping[s], j) for s, j in n.inputs], where=n.where, block=n.block)
            m.shapes, m.dtypes = partial_infer(m)
        mapping[n] = m
    return Graph([(mapping[n], j) for n, j in g.outputs], [mapping[n] for n in g.inputs])


def _relabel(out, data):
    """The Symbol with the data inputs' symbolic dims unknown again (0 in __shape__), shapes re-inferred."""
    from ..graph import Graph
    from ..symbol.symbol import Symbol
    g = Graph(out._entries)
    shapes = {}
    for sv, shape in data:
        v = sv._one()[0]
        if None in shape:
            v.extra['__shape__'] = tuple(0 if d is None else d for d in shape)
            shapes[v] = tuple(shape)
    if not shapes:
        return out
    for v in g.inputs:
        if v not in shapes:
            shapes[v] = v.shapes[0]
    g2 = _reinfer(g, shapes)
    return Symbol(g2.outputs)


def import_model(model_file):
    """MXNet 1.9's `mx.onnx.import_model`: (sym, arg_params, aux_params) from an ONNX file (or its bytes)."""
    return _import(model_file)[:3]


def _import(model_file):
    from ..graph import Graph
    from ..ndarray.ndarray import NDArray
    b, out, data, fname = _load(model_file)
    sym = _relabel(out, data)
    g = Graph(sym._entries)
    aux = g.aux_vars()
    arg_params, aux_params = {}, {}
    for v in g.inputs:
        if v.name in b.params:
            (aux_params if v in aux else arg_params)[v.name] = NDArray(np.array(b.params[v.name][1]))
    return sym, arg_params, aux_params, [v._one()[0].name for v, _ in data]


def import_to_gluon(model_file, ctx=None):
    """A SymbolBlock running the ONNX model (MXNet 1.9's `mx.onnx.import_to_gluon`); inputs in the file's order."""
    from ..gluon.parameter import load_into
    from ..gluon.symbol_block import SymbolBlock
    sym, arg_params, aux_params, data_names = _import(model_file)
    blk = SymbolBlock(sym, data_names)
    load_into(dict(blk.collect_params().items()), {**arg_params, **aux_params}, str(model_file), ctx, False, False,
              False)
    return blk


from . import import_ops  # noqa: E402,F401  (registers the op builders)
