"""MXNet's symbol JSON, both ways. Loading treats the file as untrusted data.

Writing follows ../shared/MXNET_FORMAT.md: nodes in topological order, string attributes,
`arg_nodes`, `node_row_ptr`, `heads` and `attrs.mxnet_version`; graphc adds its version and
the input names as extra graph attributes, which MXNet ignores.

Reading never evaluates anything: op names resolve only through the registry, attributes
go through each op's strict schema, sizes and counts are capped before use, and every
problem raises GraphcLoadError naming the file, the node and what is wrong.
"""
import json
import math
import os
import re
import reprlib

import numpy as np

from .base import CODE_DTYPES, DTYPE_CODES, GraphcError, GraphcLoadError
from .graph import Graph, Node, topo_order
from .budget import check_graph_cost  # noqa: F401  (the cost budget: graphc.mxjson.check_graph_cost)
from .registry import OPS, parse_int, parse_tuple

MXNET_VERSION = 10901
MAX_JSON_BYTES = 64 << 20
MAX_NODES = 200_000
MAX_INPUTS = 4096
MAX_DIM = 1 << 31
MAX_ELEMENTS = 1 << 32
MAX_DEPTH = 64
MAX_ATTR_CHARS = 1024   # a parsed attribute value (op attributes, __shape__, __dtype__)
FORMAT_MAJOR = 1


def atomic_write(path, data):
    """Write bytes to path through a temporary file, with open()'s permissions (0o666 & ~umask: the same as the
    .params file written next to it; mkstemp's would be 0o600)."""
    from .serialization import _atomic_write
    _atomic_write(path, lambda f: f.write(data))


# ---------------------------------------------------------------- writing
def var_attrs(n):
    """A variable's attributes as MXNet's JSON writes them (strings; __dtype__ as its type code)."""
    out = {}
    for k, v in sorted(n.extra.items()):
        if k == 'value' or not (k.startswith('__') and k.endswith('__')):
            continue
        if k == '__shape__':
            v = '(' + ', '.join(str(int(d)) for d in v) + (',)' if len(v) == 1 else ')')
        elif k == '__dtype__':
            v = str(DTYPE_CODES[np.dtype(v)])
        out[k] = str(v)
    return out


def graph_to_dict(graph, input_names=None):
    nodes = graph.nodes
    idx = graph.positions()
    aux = graph.aux_vars()
    out, row = [], [0]
    for n in nodes:
        if n.is_var:
            d = {'op': 'null', 'name': n.name}
            a = var_attrs(n)
        else:
            d = {'op': n.op.name, 'name': n.name}
            a = n.op.format_attrs({k: v for k, v in n.attrs.items() if not k.startswith('_')})
            a.update({k: str(v) for k, v in n.attrs.items() if k.startswith('__') and k.endswith('__')})
        if getattr(n.op, 'bodies', None) is not None:  # control flow: MXNet's `subgraphs`
            d['subgraphs'], locs = _subgraph_dict(n)
            a.update(locs)
        if a:
            d['attrs'] = dict(sorted(a.items()))
        d['inputs'] = [[idx[s], j, 2 if s in aux else 0] for s, j in n.inputs]
        out.append(d)
        row.append(row[-1] + n.num_outputs - (0 if n.is_var else n.op.hidden_outputs))  # MXNet's output count
    names = input_names if input_names is not None else [n.name for n in graph.inputs if 'value' not in n.extra]
    attrs = {'mxnet_version': ['int', MXNET_VERSION], 'graphc_version': ['str', _version()],
             'graphc_inputs': ['str', ','.join(names)]}
    from .util import is_np_shape
    if is_np_shape():  # MXNet marks files written under NumPy shape semantics (0 is a size there, not "unknown")
        attrs['is_np_shape'] = ['int', 1]
    return {'nodes': out, 'arg_nodes': [i for i, n in enumerate(nodes) if n.is_var], 'node_row_ptr': row,
            'heads': [[idx[n], j, 0] for n, j in graph.outputs], 'attrs': attrs}


def _subgraph_dict(n):
    """(the bodies as symbol JSON, the *_locs attributes) of a control-flow node: locs as written refer to the
    bodies' variables in their written order (MXNet's list_inputs), which may differ from graphc's."""
    positions = []
    for body in n.op.bodies:
        written = {v: i for i, v in enumerate(v for v in body.nodes if v.is_var)}
        positions.append([written[v] for v in body.inputs])
    locs = n.op.export_locs(n.attrs, positions)
    return [graph_to_dict(b) for b in n.op.bodies], {k: n.op.attrs[k].format(v) for k, v in locs.items()}


def _load_control(fname, where, name, op_name, attrs, entries, subs):
    """A control-flow node (_foreach, _while_loop, _cond, _CachedOp) with its bodies from `subgraphs`, each
    body's inputs in the file's order."""
    from .ops.control import CONTROL
    want = {'_foreach': 1, '_while_loop': 2, '_cond': 3, '_CachedOp': 1}[op_name]
    if not (isinstance(subs, list) and len(subs) == want and
            all(isinstance(s, dict) and isinstance(s.get('nodes'), list) for s in subs)):
        raise _err(fname, f"{where}: {op_name} needs {want} subgraphs (symbol JSON objects), got {_type(subs)}")
    bodies = []
    for k, sub in enumerate(subs):
        body, _ = json_to_graph(json.dumps(sub), f"{fname}: {where}: subgraph {k}")
        byname = {v.name: v for v in body.inputs}
        order = [nj['name'] for nj in sub['nodes'] if isinstance(nj, dict) and nj.get('op') == 'null' and
                 nj.get('name') in byname]
        bodies.append(Graph(body.outputs, [byname[x] for x in order]))
    op = CONTROL[op_name](bodies)
    try:
        a = op.canon({k: v for k, v in attrs.items() if not _dunder(k)})
        op.check(a, len(entries))
    except GraphcError as e:
        raise _err(fname, f"{where}: {e}") from None
    a['_body'] = id(op)  # an int unique to this node's Op (as sym.contrib's): CSE never merges two loops
    n = Node(op, name, a, entries)
    n.shapes, n.dtypes = [None] * a['num_outputs'], [np.dtype('float32')] * a['num_outputs']
    return n


def _version():
    from . import __version__
    return __version__


def graph_to_json(graph, input_names=None):
    return json.dumps(graph_to_dict(graph, input_names), indent=2)


# ---------------------------------------------------------------- reading
def load_json_file(fname):
    try:
        with open(fname, 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_JSON_BYTES:   # before reading a byte
                raise _err(fname, f"{size} bytes is over the {MAX_JSON_BYTES}-byte limit for a symbol file")
            raw = f.read(min(size, MAX_JSON_BYTES) + 1)  # (read(n) allocates n bytes up front)
    except OSError as e:
        raise GraphcLoadError(f"{fname}: cannot read: {e.strerror}") from None
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        raise GraphcLoadError(f"{fname}: not UTF-8 text (byte offset {e.start})") from None
    return json_to_symbol(text, fname)


def json_to_symbol(text, fname='<string>'):
    from .symbol.symbol import Symbol
    graph, names = json_to_graph(text, fname)
    return Symbol(graph.outputs)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60
_REPR.maxlevel, _REPR.maxlist = 3, 6
_r = _REPR.repr    # repr bounded in length and depth: file contents in messages stay short
# attribute values MXNet's parameter parsers bound from below (kernel >= 1, pad >= 0, ...)
_MIN = {'kernel': 1, 'stride': 1, 'dilate': 1, 'pad': 0, 'adj': 0, 'num_hidden': 1, 'num_filter': 1,
        'num_group': 1, 'num_outputs': 1, 'num_args': 0, 'reps': 0, 'repeats': 0, 'depth': 0, 'input_dim': 1,
        'output_dim': 1}
_SHAPE_ATTRS = ('shape', 'newshape', 'reps', 'target_shape')   # tuples that size a tensor: element cap


def _err(fname, msg):
    if len(msg) > 1500:
        msg = msg[:1000] + ' ... ' + msg[-400:]
    return GraphcLoadError(f"{fname}: {msg}")


def _type(v):
    return 'nothing' if v is None else repr(v) if v in ('', [], {}) else type(v).__name__


def _object(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {_r(dup)} in an object")
    return d


def _constant(s):
    raise ValueError(f"{s} is not a JSON value")


def _too_deep(v):
    """True when v nests lists/objects more than MAX_DEPTH levels (level by level: no recursion)."""
    level = [v] if isinstance(v, (list, dict)) else []
    for _ in range(MAX_DEPTH):
        if not level:
            return False
        level = [x for c in level for x in (c.values() if isinstance(c, dict) else c) if isinstance(x, (list, dict))]
    return bool(level)


def json_to_graph(text, fname='<string>'):
    """(Graph, input names) from symbol JSON text; GraphcLoadError for anything malformed."""
    if len(text) > MAX_JSON_BYTES:
        raise _err(fname, f"JSON text of {len(text)} characters is over the limit of {MAX_JSON_BYTES}")
    try:
        d = json.loads(text, object_pairs_hook=_object, parse_constant=_constant)   # plain dicts and lists only
    except RecursionError:
        raise _err(fname, "JSON nested too deeply") from None
    except json.JSONDecodeError as e:
        raise _err(fname, f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno}, offset {e.pos})") from None
    except ValueError as e:   # a duplicate key, NaN, an integer literal of thousands of digits
        raise _err(fname, f"not valid JSON: {str(e).split(';')[0]}") from None
    if _too_deep(d):
        raise _err(fname, f"JSON nested more than {MAX_DEPTH} levels deep")
    if not isinstance(d, dict):
        raise _err(fname, f"top level must be an object, got {_type(d)}")
    nodes_j, heads = d.get('nodes'), d.get('heads')
    if not isinstance(nodes_j, list) or not nodes_j:
        raise _err(fname, f"'nodes' must be a non-empty list, got {_type(nodes_j)}")
    if len(nodes_j) > MAX_NODES:
        raise _err(fname, f"{len(nodes_j)} nodes is over the limit of {MAX_NODES}")
    gattrs = d.get('attrs', {})
    if not isinstance(gattrs, dict):
        raise _err(fname, f"'attrs' must be an object, got {_type(gattrs)}")
    gv = gattrs.get('graphc_version')
    if gv is not None:
        if not (isinstance(gv, list) and len(gv) == 2 and isinstance(gv[1], str)):
            raise _err(fname, f"attrs.graphc_version must be [\"str\", version], got {_r(gv)}")
        m = re.match(r'(\d{1,6})(\.|$)', gv[1])
        if not m:
            raise _err(fname, f"attrs.graphc_version {_r(gv[1])} is not a version")
        if int(m[1]) > FORMAT_MAJOR:
            raise _err(fname, f"written by graphc {gv[1][:40]}, newer than this reader (format {FORMAT_MAJOR}); "
                              "upgrade graphc")
    nodes, index = [], {}
    for i, nj in enumerate(nodes_j):
        nodes.append(_load_node(fname, i, nj, nodes, index))
    if not isinstance(heads, list) or not heads or len(heads) > MAX_NODES:
        raise _err(fname, f"'heads' must be a non-empty list of at most {MAX_NODES} outputs, got {_type(heads)}")
    outs = []
    for k, h in enumerate(heads):
        if not (isinstance(h, list) and len(h) in (2, 3) and all(type(v) is int for v in h)) or \
                not 0 <= h[0] < len(nodes) or not 0 <= h[1] < nodes[h[0]].num_outputs:
            raise _err(fname, f"heads[{k}] = {_r(h)} does not name an existing node output")
        outs.append((nodes[h[0]], h[1]))
    gi = gattrs.get('graphc_inputs')
    input_names = gi[1].split(',') if isinstance(gi, list) and len(gi) == 2 and isinstance(gi[1], str) and gi[1] \
        else None
    graph = Graph(outs, [n for n in topo_order([n for n, _ in outs]) if n.is_var])
    check_graph_cost(graph, where=fname)  # from the shapes known in the file: unknown dims count as 1
    return graph, input_names


def _load_node(fname, i, nj, nodes, index):
    """Node i of the file, checked against the nodes before it (nodes, and index: name -> node index)."""
    if not isinstance(nj, dict):
        raise _err(fname, f"node {i}: must be an object, got {_type(nj)}")
    op_name, name = nj.get('op'), nj.get('name')
    if not isinstance(op_name, str):
        raise _err(fname, f"node {i}: 'op' must be a string, got {_type(op_name)}")
    if not isinstance(name, str) or not name:
        raise _err(fname, f"node {i}: 'name' must be a non-empty string, got {_type(name)}")
    where = f"node {i} ({_r(name)})"
    if name in index:
        raise _err(fname, f"{where}: duplicate node name (also node {index[name]})")
    index[name] = i
    attrs = nj.get('attrs', nj.get('attr', nj.get('param', {})))
    if not isinstance(attrs, dict):
        raise _err(fname, f"{where}: 'attrs' must be an object, got {_type(attrs)}")
    for k, v in attrs.items():
        if not isinstance(v, str):
            raise _err(fname, f"{where}: attribute {_r(k)} must be a JSON string, got {type(v).__name__} {_r(v)}")
        if len(v) > MAX_ATTR_CHARS and (op_name != 'null' and not _dunder(k) or k in ('__shape__', '__dtype__')):
            raise _err(fname, f"{where}: attribute {_r(k)} is {len(v)} characters long, over the limit of "
                              f"{MAX_ATTR_CHARS}")
    from .ops.control import CONTROL
    for k in ('control_deps', 'subgraphs'):
        if nj.get(k) and not (k == 'subgraphs' and op_name in CONTROL):
            raise _err(fname, f"{where}: {k!r} are not supported" + (f" (only by {', '.join(CONTROL)})" if
                                                                   k == 'subgraphs' else ''))
    ins = nj.get('inputs', [])
    if not isinstance(ins, list):
        raise _err(fname, f"{where}: 'inputs' must be a list, got {_type(ins)}")
    if len(ins) > MAX_INPUTS:
        raise _err(fname, f"{where}: {len(ins)} inputs is over the limit of {MAX_INPUTS}")
    entries = []
    for k, e in enumerate(ins):
        if not (isinstance(e, list) and len(e) in (2, 3) and all(type(v) is int for v in e)):
            raise _err(fname, f"{where}: input {k} is {_r(e)}; it must be [node, output, version] integers")
        src, j = e[0], e[1]
        if not 0 <= src < i:
            raise _err(fname, f"{where}: input {k} refers to node {_r(src)}, which is not an earlier node "
                              "(a cycle or a forward reference)")
        if not 0 <= j < nodes[src].num_outputs:
            raise _err(fname, f"{where}: input {k} uses output {_r(j)} of node {src} ({_r(nodes[src].name)}), "
                              f"which has {nodes[src].num_outputs}")
        entries.append((nodes[src], j))
    if op_name == 'null':
        if entries:
            raise _err(fname, f"{where}: a variable cannot have inputs")
        return _load_var(fname, where, name, attrs)
    if op_name in CONTROL:
        return _load_control(fname, where, name, op_name, attrs, entries, nj.get('subgraphs'))
    return _load_op(fname, where, name, op_name, attrs, entries)


def _dunder(k):
    return len(k) > 4 and k.startswith('__') and k.endswith('__')


def _load_var(fname, where, name, attrs):
    n = Node(None, name)
    shape = None
    for k, v in attrs.items():
        if k == '__shape__':
            try:
                shape = parse_tuple(v)
            except ValueError:
                raise _err(fname, f"{where}: __shape__ {_r(v)} is not a tuple of ints") from None
            if any(d is None or d < 0 or d > MAX_DIM for d in shape):
                raise _err(fname, f"{where}: __shape__ {_r(v)} has a negative or absurd dimension")
            total = math.prod(d for d in shape if d)   # 0 = unknown
            if total > MAX_ELEMENTS:
                raise _err(fname, f"{where}: __shape__ {_r(v)} claims {total} elements, over the limit of "
                                  f"{MAX_ELEMENTS}")
            n.extra['__shape__'] = shape
        elif k == '__dtype__':
            try:
                n.extra['__dtype__'] = str(CODE_DTYPES[parse_int(v)])
            except (ValueError, KeyError):
                raise _err(fname, f"{where}: __dtype__ {_r(v)} is not a known dtype code") from None
        elif _dunder(k):
            n.extra[k] = v
        else:
            raise _err(fname, f"{where}: unknown variable attribute {_r(k)}")
    n.shapes = [None if shape is None else tuple(None if d == 0 else d for d in shape)]
    n.dtypes = [np.dtype(n.extra.get('__dtype__', 'float32'))]
    return n


def _load_op(fname, where, name, op_name, attrs, entries):
    op = OPS.get(op_name)
    if op is None:
        raise _err(fname, f"{where}: operator {_r(op_name)} is not supported by graphc")
    if op_name.startswith('_backward_'):  # gradient ops exist only inside graphc's autodiff, with its invariants
        raise _err(fname, f"{where}: operator {_r(op_name)} is internal (a gradient op) and not allowed in a model "
                          "file")
    plain = {k: v for k, v in attrs.items() if not _dunder(k)}
    for k in plain:
        if k.startswith('_') and k not in op.attrs:   # graphc's internal attributes never come from a file
            raise _err(fname, f"{where}: {op_name}: unknown attribute {_r(k)}; attributes: "
                              f"{', '.join(op.attrs) or 'none'}")
    try:
        a = op.canon(plain)
    except GraphcError as e:
        raise _err(fname, f"{where}: {e}") from None
    for k, v in a.items():
        if k in plain or v != op.attrs[k].default:  # an op's own default passes (UpSampling's num_filter is 0)
            _check_value(fname, where, k, v)
    a.update({k: v for k, v in attrs.items() if _dunder(k)})
    want = op.input_names(a)
    if not op.variadic and len(entries) != len(want):
        raise _err(fname, f"{where}: {op_name} takes {len(want)} inputs ({', '.join(want)}), got {len(entries)}")
    if op.variadic and (not entries or a.get('num_args') not in (None, 0, len(entries))):
        raise _err(fname, f"{where}: {op_name} has {len(entries)} inputs, num_args says {a.get('num_args')}")
    nout = op.n_out(a)
    if not 1 <= nout <= MAX_INPUTS:
        raise _err(fname, f"{where}: {op_name} would have {nout} outputs; 1 to {MAX_INPUTS} are supported")
    n = Node(op, name, a, entries)
    n.shapes, n.dtypes = [None] * nout, [np.dtype('float32')] * nout
    return n


def _check_value(fname, where, k, v):
    """Integer attribute values and tuples: no absurd magnitudes, MXNet's lower bounds, an element cap on shapes."""
    vals = v if isinstance(v, tuple) else (v,) if isinstance(v, int) and not isinstance(v, bool) else ()
    vals = [x for x in vals if x is not None]
    if any(abs(x) > MAX_DIM for x in vals):
        raise _err(fname, f"{where}: attribute {k!r} is {_r(v)}; over the limit of {MAX_DIM} in magnitude")
    if k in _MIN and any(x < _MIN[k] for x in vals):
        raise _err(fname, f"{where}: attribute {k!r} is {_r(v)}; each value must be >= {_MIN[k]}")
    total = math.prod(x for x in vals if x > 0)
    if k in _SHAPE_ATTRS and total > MAX_ELEMENTS:
        raise _err(fname, f"{where}: attribute {k!r} {_r(v)} has {total} elements, over the limit of {MAX_ELEMENTS}")
