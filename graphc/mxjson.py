"""MXNet's symbol JSON, both ways. Loading treats the file as untrusted data.

Writing follows ../shared/MXNET_FORMAT.md: nodes in topological order, string attributes,
`arg_nodes`, `node_row_ptr`, `heads` and `attrs.mxnet_version`; graphc adds its version and
the input names as extra graph attributes, which MXNet ignores.

Reading never evaluates anything: op names resolve only through the registry, attributes
go through each op's strict schema, sizes and counts are capped before use, and every
problem raises GraphcLoadError naming the file, the node and what is wrong.
"""
import json
import os
import tempfile

import numpy as np

from .base import CODE_DTYPES, DTYPE_CODES, GraphcError, GraphcLoadError
from .graph import Graph, Node, topo_order
from .registry import OPS, _parse_tuple

MXNET_VERSION = 10901
MAX_JSON_BYTES = 64 << 20
MAX_NODES = 200_000
MAX_INPUTS = 4096
MAX_DIM = 1 << 31
MAX_ELEMENTS = 1 << 32
FORMAT_MAJOR = 1


def atomic_write(path, data):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix='.tmp-', suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------- writing
def _var_attrs(n):
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
    idx = {id(n): i for i, n in enumerate(nodes)}
    aux = {id(n.inputs[i][0]) for n in nodes if not n.is_var for i in n.op.aux_inputs if i < len(n.inputs)}
    out, row = [], [0]
    for n in nodes:
        if n.is_var:
            d = {'op': 'null', 'name': n.name}
            a = _var_attrs(n)
        else:
            d = {'op': n.op.name, 'name': n.name}
            a = n.op.format_attrs({k: v for k, v in n.attrs.items() if not k.startswith('_')})
            a.update({k: str(v) for k, v in n.attrs.items() if k.startswith('__') and k.endswith('__')})
        if a:
            d['attrs'] = dict(sorted(a.items()))
        d['inputs'] = [[idx[id(s)], j, 2 if id(s) in aux else 0] for s, j in n.inputs]
        out.append(d)
        row.append(row[-1] + n.num_outputs)
    names = input_names if input_names is not None else [n.name for n in graph.inputs if 'value' not in n.extra]
    return {'nodes': out, 'arg_nodes': [i for i, n in enumerate(nodes) if n.is_var], 'node_row_ptr': row,
            'heads': [[idx[id(n)], j, 0] for n, j in graph.outputs],
            'attrs': {'mxnet_version': ['int', MXNET_VERSION], 'graphc_version': ['str', _version()],
                      'graphc_inputs': ['str', ','.join(names)]}}


def _version():
    from . import __version__
    return __version__


def graph_to_json(graph, input_names=None):
    return json.dumps(graph_to_dict(graph, input_names), indent=2)


# ---------------------------------------------------------------- reading
def load_json_file(fname):
    try:
        size = os.path.getsize(fname)
    except OSError as e:
        raise GraphcLoadError(f"{fname}: cannot read: {e.strerror}") from None
    if size > MAX_JSON_BYTES:
        raise GraphcLoadError(f"{fname}: {size} bytes is over the {MAX_JSON_BYTES}-byte limit for a symbol file")
    with open(fname, 'rb') as f:
        raw = f.read(MAX_JSON_BYTES + 1)
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        raise GraphcLoadError(f"{fname}: not UTF-8 text (byte offset {e.start})") from None
    return json_to_symbol(text, fname)


def json_to_symbol(text, fname='<string>'):
    from .symbol import Symbol
    graph, names = json_to_graph(text, fname)
    return Symbol(graph.outputs)


def _err(fname, msg):
    return GraphcLoadError(f"{fname}: {msg}")


def json_to_graph(text, fname='<string>'):
    """(Graph, input names) from symbol JSON text; GraphcLoadError for anything malformed."""
    if len(text) > MAX_JSON_BYTES:
        raise _err(fname, f"JSON text of {len(text)} characters is over the limit")
    try:
        d = json.loads(text)
    except RecursionError:
        raise _err(fname, "JSON nested too deeply") from None
    except json.JSONDecodeError as e:
        raise _err(fname, f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno} (offset {e.pos})") from None
    if not isinstance(d, dict):
        raise _err(fname, f"top level must be an object, got {type(d).__name__}")
    nodes_j, heads = d.get('nodes'), d.get('heads')
    if not isinstance(nodes_j, list) or not nodes_j:
        raise _err(fname, "'nodes' must be a non-empty list")
    if len(nodes_j) > MAX_NODES:
        raise _err(fname, f"{len(nodes_j)} nodes is over the limit of {MAX_NODES}")
    gattrs = d.get('attrs', {})
    if not isinstance(gattrs, dict):
        raise _err(fname, "'attrs' must be an object")
    gv = gattrs.get('graphc_version')
    if gv is not None:
        if not (isinstance(gv, list) and len(gv) == 2 and isinstance(gv[1], str)):
            raise _err(fname, "attrs.graphc_version must be [\"str\", version]")
        try:
            major = int(gv[1].split('.')[0])
        except ValueError:
            raise _err(fname, f"attrs.graphc_version {gv[1]!r} is not a version") from None
        if major > FORMAT_MAJOR:
            raise _err(fname, f"written by graphc {gv[1]}, newer than this reader (format {FORMAT_MAJOR}); upgrade graphc")
    nodes, names = [], set()
    for i, nj in enumerate(nodes_j):
        where = f"node {i}"
        if not isinstance(nj, dict):
            raise _err(fname, f"{where}: must be an object")
        op_name, name = nj.get('op'), nj.get('name')
        if not isinstance(op_name, str) or not isinstance(name, str) or not name:
            raise _err(fname, f"{where}: 'op' and 'name' must be non-empty strings")
        where = f"node {i} ({name!r})"
        if name in names:
            raise _err(fname, f"{where}: duplicate node name")
        names.add(name)
        attrs = nj.get('attrs', nj.get('attr', nj.get('param', {})))
        if not isinstance(attrs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()):
            raise _err(fname, f"{where}: 'attrs' must map strings to strings")
        ins = nj.get('inputs', [])
        if not isinstance(ins, list) or len(ins) > MAX_INPUTS:
            raise _err(fname, f"{where}: 'inputs' must be a list of at most {MAX_INPUTS} entries")
        entries = []
        for e in ins:
            if not (isinstance(e, list) and len(e) in (2, 3) and all(type(v) is int for v in e)):
                raise _err(fname, f"{where}: input entry {e!r} must be [node, output, version] integers")
            src, j = e[0], e[1]
            if not 0 <= src < i:
                raise _err(fname, f"{where}: input refers to node {src}, which is not an earlier node "
                                  "(a cycle or a forward reference)")
            if not 0 <= j < nodes[src].num_outputs:
                raise _err(fname, f"{where}: input uses output {j} of node {src} ({nodes[src].name!r}), "
                                  f"which has {nodes[src].num_outputs}")
            entries.append((nodes[src], j))
        if op_name == 'null':
            if entries:
                raise _err(fname, f"{where}: a variable cannot have inputs")
            nodes.append(_load_var(fname, where, name, attrs))
        else:
            nodes.append(_load_op(fname, where, name, op_name, attrs, entries))
    if not isinstance(heads, list) or not heads:
        raise _err(fname, "'heads' must be a non-empty list")
    outs = []
    for h in heads:
        if not (isinstance(h, list) and len(h) in (2, 3) and all(type(v) is int for v in h)) or \
                not 0 <= h[0] < len(nodes) or not 0 <= h[1] < nodes[h[0]].num_outputs:
            raise _err(fname, f"head {h!r} does not name an existing node output")
        outs.append((nodes[h[0]], h[1]))
    gi = gattrs.get('graphc_inputs')
    input_names = gi[1].split(',') if isinstance(gi, list) and len(gi) == 2 and isinstance(gi[1], str) and gi[1] \
        else None
    graph = Graph(outs, [n for n in topo_order([n for n, _ in outs]) if n.is_var])
    return graph, input_names


def _load_var(fname, where, name, attrs):
    n = Node(None, name)
    shape = None
    for k, v in attrs.items():
        if k == '__shape__':
            try:
                shape = _parse_tuple(v)
            except ValueError:
                raise _err(fname, f"{where}: __shape__ {v!r} is not a tuple of ints") from None
            if any(d is None or d < 0 or d > MAX_DIM for d in shape):
                raise _err(fname, f"{where}: __shape__ {v!r} has a negative or absurd dimension")
            n.extra['__shape__'] = shape
        elif k == '__dtype__':
            try:
                n.extra['__dtype__'] = str(CODE_DTYPES[int(v)])
            except (ValueError, KeyError):
                raise _err(fname, f"{where}: __dtype__ {v!r} is not a known dtype code") from None
        elif k.startswith('__') and k.endswith('__'):
            n.extra[k] = v
        else:
            raise _err(fname, f"{where}: unknown variable attribute {k!r}")
    n.shapes = [None if shape is None else tuple(None if d == 0 else d for d in shape)]
    n.dtypes = [np.dtype(n.extra.get('__dtype__', 'float32'))]
    return n


def _load_op(fname, where, name, op_name, attrs, entries):
    op = OPS.get(op_name)
    if op is None:
        raise _err(fname, f"{where}: operator {op_name!r} is not supported by graphc")
    plain = {k: v for k, v in attrs.items() if not (k.startswith('__') and k.endswith('__'))}
    try:
        a = op.canon(plain)
    except GraphcError as e:
        raise _err(fname, f"{where}: {e}") from None
    a.update({k: v for k, v in attrs.items() if k.startswith('__') and k.endswith('__')})
    want = op.input_names(a)
    if not op.variadic and len(entries) != len(want):
        raise _err(fname, f"{where}: {op_name} takes {len(want)} inputs ({', '.join(want)}), got {len(entries)}")
    if op.variadic and not entries:
        raise _err(fname, f"{where}: {op_name} needs at least one input")
    n = Node(op, name, a, entries)
    n.shapes, n.dtypes = [None] * n.num_outputs, [np.dtype('float32')] * n.num_outputs
    return n


def check_sizes(graph, fname='<graph>'):
    """Reject shapes whose element count is absurd (a file must not make us allocate unboundedly)."""
    for n in graph.nodes:
        for s in (n.shapes or []):
            if s is None:
                continue
            total = 1
            for d in s:
                total *= d or 1
            if total > MAX_ELEMENTS:
                raise _err(fname, f"node {n.name!r}: shape {s} has {total} elements, over the limit {MAX_ELEMENTS}")
