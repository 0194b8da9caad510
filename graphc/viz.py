"""Network visualization, as MXNet's mx.viz: plot_network (Graphviz DOT) and print_summary (a layer table).

Both take a Symbol, a Graph, or a HybridBlock that has run hybridized (its last traced graph). With
`shape` (input name -> shape) shapes are inferred first. Parameter shapes a layer implies (conv and
dense weights, BatchNorm statistics) fill the unknown dims that MXNet files carry, such as the
(32, 0, 5, 5) of a weight whose input channels depend on the data, as MXNet's infer_shape does.

No graphviz Python package is needed: DOT text is written directly, and render() runs the `dot`
program when it is installed.
"""
import os
import re
import shutil
import subprocess
import warnings

import numpy as np

from .base import GraphcError
from .graph import Graph, Node, partial_infer
from .symbol.symbol import Symbol, output_name

__all__ = ['plot_network', 'print_summary', 'Digraph']

# inputs a layer owns (weights, biases, norm scales and statistics): hidden by hide_weights, counted as params
_PARAM_INPUTS = {'weight', 'bias', 'gamma', 'beta', 'moving_mean', 'moving_var'}
# MXNet's viz hides variables by name; kept so graphs of ops with other input names behave the same
_WEIGHT_SUFFIXES = ('_weight', '_bias', '_beta', '_gamma', '_moving_var', '_moving_mean', '_running_var',
                    '_running_mean')
# MXNet's viz palette (ColorBrewer Set3), by op kind
_CM = ('#8dd3c7', '#fb8072', '#ffffb3', '#bebada', '#80b1d3', '#fdb462', '#b3de69', '#fccde5')
_COLORS = {'Convolution': _CM[1], 'Deconvolution': _CM[1], 'FullyConnected': _CM[1], 'Activation': _CM[2],
           'LeakyReLU': _CM[2], 'BatchNorm': _CM[3], 'LayerNorm': _CM[3], 'Pooling': _CM[4], 'Concat': _CM[5],
           'Flatten': _CM[5], 'Reshape': _CM[5], 'softmax': _CM[6], 'log_softmax': _CM[6],
           'softmax_cross_entropy': _CM[6]}
_WEIGHT_COLOR = '#eeeeee'


# ---------------------------------------------------------------- the graph, its shapes and its parameters
def _param_shapes(node, d):
    """{input index: shape} for the parameters of a layer whose data input has the known shape d."""
    a, name = node.attrs, node.op.name
    if name == 'FullyConnected':
        k = int(np.prod(d[1:])) if a['flatten'] else d[-1]
        return {1: (a['num_hidden'], k), 2: (a['num_hidden'],)}
    if name in ('Convolution', 'Deconvolution') and len(d) > 1:
        f, g = a['num_filter'], a['num_group']
        w = (f, d[1] // g) if name == 'Convolution' else (d[1], f // g)
        return {1: w + tuple(a['kernel']), 2: (f,)}
    if name in ('BatchNorm', 'LayerNorm') and -len(d) <= a['axis'] < len(d):
        c = (d[a['axis'] % len(d)],)
        return {1: c, 2: c, 3: c, 4: c}
    if name == 'LeakyReLU' and a['act_type'] == 'prelu':
        return {1: (d[1] if len(d) > 1 else 1,)}
    if name == 'Embedding':
        return {1: (a['input_dim'], a['output_dim'])}
    return {}


def _fill_params(node):
    """Fill unknown dims of the layer's parameter variables from its data shape (a copy's nodes only)."""
    if not node.inputs:
        return
    src, j = node.inputs[0]
    d = src.shapes[j] if src.shapes else None
    if d is None or None in d:
        return
    for i, want in _param_shapes(node, d).items():
        if i >= len(node.inputs) or not node.inputs[i][0].is_var:
            continue
        v = node.inputs[i][0]
        cur = v.shapes[0]
        if cur is None:
            v.shapes = [want]
        elif None in cur and len(cur) == len(want):  # keep known dims: a conflict is the op's error to report
            v.shapes = [tuple(w if c is None else c for c, w in zip(cur, want))]


def _infer(g, given):
    """Copy of g with shapes inferred forward; given: var -> shape (0 or None: unknown dim)."""
    m = {}
    for n in g.nodes:
        if n.is_var:
            s = given.get(n)
            s = tuple(None if d in (0, None) else int(d) for d in s) if s is not None else \
                (n.shapes[0] if n.shapes else None)
            c = Node(None, n.name, shapes=[s], dtypes=list(n.dtypes or [np.dtype('float32')]))
            c.extra = n.extra
        else:
            c = Node(n.op, n.name, n.attrs, [(m[s], j) for s, j in n.inputs], where=n.where, block=n.block)
            _fill_params(c)
            c.shapes, c.dtypes = partial_infer(c)
        m[n] = c
    return Graph([(m[n], j) for n, j in g.outputs], [m[n] for n in g.inputs])


def _is_param(v, users):
    return ('value' in v.extra or v.name.endswith(_WEIGHT_SUFFIXES)
            or any(0 < i < len(names) and names[i] in _PARAM_INPUTS for names, i in users.get(v, ())))


def _resolve(obj, shape=None, param_names=None):
    """(graph with shapes, ids of parameter variables, ids of aux-state variables) from what the user gave.

    Parameters are a block's Parameters; else the variables fed to a layer's weight/bias/gamma/beta/moving_*
    input, named like MXNet's weights, captured constants, or named in param_names (a .params file's).
    """
    from .gluon.block import HybridBlock
    block_params = None
    if isinstance(obj, Symbol):
        g = obj._graph()
    elif isinstance(obj, Graph):
        g = obj
    elif isinstance(obj, HybridBlock):
        entry = obj.cached_graph()
        if entry is None:
            raise GraphcError(f"{obj.name}: no traced graph to show; call net.hybridize() and run it once "
                              "(net(x)) before plotting or summarizing it")
        g = Graph(entry.visible)
        data = set(entry.data_vars)
        block_params = {v.name for v in g.inputs if v not in data}
    else:
        raise GraphcError(f"expected a Symbol, a Graph or a hybridized HybridBlock, got {type(obj).__name__}")
    by_name = {}
    for v in g.inputs:
        by_name.setdefault(v.name, []).append(v)
    unknown = sorted(set(shape or ()) - set(by_name))
    if unknown:
        raise GraphcError(f"shape given for {unknown}, which are not inputs of the graph; inputs: "
                          f"{[v.name for v in g.inputs]}")
    if shape:
        g = _infer(g, {v: tuple(s) for k, s in shape.items() for v in by_name[k]})
    users = {}  # var -> [(input names of a user, position)]
    aux = set()
    for n in g.nodes:
        if n.is_var:
            continue
        names = n.op.input_names(n.attrs)
        names = () if isinstance(names, str) else names  # variadic ops name no inputs
        for i, (s, _) in enumerate(n.inputs):
            users.setdefault(s, []).append((names, i))
            if i in n.op.aux_inputs and s.is_var:
                aux.add(s)
    if block_params is not None:
        params = {v for v in g.inputs if v.name in block_params}
    else:
        params = {v for v in g.inputs if _is_param(v, users) or v.name in (param_names or ())}
    return g, params, aux


def _shape_str(s):
    return '?' if s is None else 'x'.join('?' if d is None else str(d) for d in s)


def _size(s):
    return None if s is None or None in s else int(np.prod(s, dtype=np.int64))


# ---------------------------------------------------------------- DOT
def _q(s):
    """s as a DOT quoted string: backslashes and quotes escaped, line breaks as DOT's \\n, other control
    characters dropped, so a name read from a file cannot end the string or inject statements."""
    s = str(s).replace('\\', '\\\\').replace('"', '\\"')
    s = re.sub(r'\r\n|\r|\n', r'\\n', s)
    return '"' + re.sub(r'[\x00-\x1f\x7f]', '', s) + '"'


def _attrs(d):
    for k in d:
        if not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*', str(k)):
            raise GraphcError(f"plot_network: {k!r} is not a Graphviz attribute name")
    return ', '.join(f"{k}={_q(v)}" for k, v in d.items())


def _tuple(t, default='1'):
    return 'x'.join(map(str, t)) if t else default


def _op_label(n):
    """MXNet's label: the op and its key attributes (kernel/stride, filters, units, activation)."""
    a, op = n.attrs, n.op.name
    if op in ('Convolution', 'Deconvolution'):
        return f"{op}\n{_tuple(a['kernel'])}/{_tuple(a['stride'])}, {a['num_filter']}"
    if op == 'FullyConnected':
        return f"FullyConnected\n{a['num_hidden']}"
    if op in ('Activation', 'LeakyReLU'):
        return f"{op}\n{a['act_type']}"
    if op == 'Pooling':
        win = 'global' if a['global_pool'] else f"{_tuple(a['kernel'])}/{_tuple(a['stride'])}"
        return f"Pooling\n{a['pool_type']}, {win}"
    return op


class Digraph:
    """What plot_network returns: the DOT text (.source), save() and render(), like graphviz.Digraph."""

    def __init__(self, source, name='plot', format='svg'):
        self.source, self.name, self.format = source, name, format

    def __str__(self):
        return self.source

    def save(self, filename=None):
        """Write the DOT text (default `<name>.dot`); returns the path."""
        filename = os.fspath(filename or f"{self.name}.dot")
        with open(filename, 'w', encoding='utf-8') as f:
            f.write(self.source)
        return filename

    def render(self, filename=None, format=None):
        """Draw with Graphviz's `dot`; returns the picture's path.

        `render('net.svg')` writes net.dot and net.svg (the format from the extension); `render('net')`
        writes net (the DOT) and net.<format>, as graphviz.Digraph does. Without `dot` installed the DOT
        file is still written and GraphcError says how to install Graphviz.
        """
        filename = os.fspath(filename or self.name)
        root, ext = os.path.splitext(filename)
        fmt = (format or (ext[1:] if ext[1:].lower() in ('svg', 'png', 'pdf', 'jpg', 'jpeg', 'gif', 'ps', 'eps')
                          else self.format)).lower()
        if not re.fullmatch(r'[a-z0-9]+', fmt):
            raise GraphcError(f"render: bad format {fmt!r}")
        src, out = (root + '.dot', filename) if ext[1:].lower() == fmt else (filename, f"{filename}.{fmt}")
        self.save(src)
        exe = shutil.which('dot')
        if exe is None:
            raise GraphcError(f"render: the Graphviz `dot` program is not installed, so {out} was not drawn "
                              f"(the DOT text is in {src}); install Graphviz (e.g. `apt-get install graphviz`, "
                              "`brew install graphviz`) or open the .dot file in any Graphviz viewer")
        r = subprocess.run([exe, f'-T{fmt}', '-o', out, src], capture_output=True, timeout=600)
        if r.returncode:
            raise GraphcError(f"render: dot failed on {src} (exit {r.returncode}): "
                              f"{r.stderr.decode('utf-8', 'replace').strip()}")
        return out


def plot_network(symbol, shape=None, title='plot', save_format='svg', hide_weights=True, node_attrs=None):
    """A Digraph of the network: one node per op (op name, key attributes and output shape), data inputs
    as ovals, and edges labelled with the shapes they carry; colors by op kind as in MXNet's viz.

    symbol: a Symbol, a Graph, or a HybridBlock run hybridized at least once. shape: {input name: shape}
    to infer shapes from. hide_weights: leave out parameter variables (weights, biases, norm scales and
    statistics) and their edges. node_attrs: Graphviz node attributes overriding the defaults.
    """
    g, params, _ = _resolve(symbol, shape)
    seen, repeated = set(), set()
    for n in g.nodes:
        (repeated if n.name in seen else seen).add(n.name)
    if repeated:  # MXNet's warning: its plot joins nodes by name, so such a graph draws with false cycles
        warnings.warn("There are multiple variables with the same name in your graph, this may result in cyclic "
                      "graph. Repeated names: " + ','.join(sorted(repeated)), RuntimeWarning)
    idx = g.positions()
    heads = {n for n, _ in g.outputs}
    base = {'shape': 'box', 'fixedsize': 'false', 'width': '1.3', 'height': '0.8034', 'style': 'filled'}
    base.update(node_attrs or {})
    lines = [f"digraph {_q(title)} {{", '  graph [rankdir=BT];', f"  node [{_attrs(base)}];"]
    hidden = set()
    for i, n in enumerate(g.nodes):
        if n.is_var:
            if n in params and hide_weights:
                hidden.add(n)
                continue
            a = {'label': f"{n.name}\n{_shape_str(n.shapes[0])}" if n.shapes and n.shapes[0] else n.name,
                 'shape': 'oval', 'fillcolor': _WEIGHT_COLOR if n in params else _CM[0]}
        else:
            label = _op_label(n)
            if n.shapes and n.shapes[0] is not None:
                label += '\n' + _shape_str(n.shapes[0])
            fa = n.op.format_attrs(n.attrs)
            a = {'label': label, 'fillcolor': _COLORS.get(n.op.name, _CM[7]),
                 'tooltip': '\n'.join([n.name] + [f"{k}={v}" for k, v in fa.items()])}
        if n in heads:
            a['peripheries'] = '2'
        lines.append(f"  n{i} [{_attrs(a)}];")
    for i, n in enumerate(g.nodes):
        for s, j in n.inputs:
            if s in hidden:
                continue
            shp = s.shapes[j] if s.shapes else None
            lines.append(f"  n{idx[s]} -> n{i}" + (f" [{_attrs({'label': _shape_str(shp)})}]" if shp else '') + ';')
    lines.append('}')
    return Digraph('\n'.join(lines) + '\n', title, save_format)


# ---------------------------------------------------------------- summary
def print_summary(symbol, shape=None, line_length=120, positions=(.44, .64, .74, 1.)):
    """Print (and return) MXNet's layer table: Layer (type), Output Shape, Param #, Previous Layer.

    Param # is the element count of the parameter variables each op uses (shared ones counted once), and
    Total params is their sum. Unlike mx.viz.print_summary, which counts a BatchNorm as 2 x channels
    (gamma, beta), the total includes auxiliary states (BatchNorm running mean/var), so it equals the
    number of elements an exported .params file holds; they are shown again as Non-trainable params.
    Shapes are the full output shapes (MXNet drops the batch axis).
    """
    g, params, aux = _resolve(symbol, shape)
    return _summary(g, params, aux, line_length, positions)


def _summary(g, params, aux, line_length=120, positions=(.44, .64, .74, 1.)):
    pos = [int(line_length * p) for p in positions] if positions[-1] <= 1 else list(positions)

    def row(fields):  # each field cut to its column, as MXNet's, but leaving a space before the next
        line = ''
        for f, p in zip(fields, pos):
            line = (line + str(f))[:p - 1].ljust(p)
        return line.rstrip()

    out = ['_' * line_length, row(['Layer (type)', 'Output Shape', 'Param #', 'Previous Layer']), '=' * line_length]
    layers = [n for n in g.inputs if n not in params] + [n for n in g.nodes if not n.is_var]
    seen, unknown, total, non_train = set(), [], 0, 0
    for k, n in enumerate(layers):
        if n.is_var:
            out.append(row([f"{n.name}(null)", _shape_str(n.shapes[0] if n.shapes else None), 0, '']))
        else:
            count, prev = 0, []
            for s, j in n.inputs:
                if not s.is_var or s not in params:
                    prev.append(s.name if j == 0 else output_name(s, j))
                    continue
                if s in seen:
                    continue
                seen.add(s)
                size = _size(s.shapes[0] if s.shapes else None)
                if size is None:
                    unknown.append(s.name)
                    count = None
                    continue
                total += size
                non_train += size if s in aux else 0
                count = None if count is None else count + size
            nvis = n.op.n_visible(n.attrs)
            shp = ', '.join(_shape_str(x) for x in (n.shapes or [None])[:nvis])
            out.append(row([f"{n.name}({n.op.name})", shp, '?' if count is None else count, prev[0] if prev else '']))
            out += [row(['', '', '', p]) for p in prev[1:]]
        out.append('=' * line_length if k == len(layers) - 1 else '_' * line_length)
    out += [f"Total params: {total}", f"Trainable params: {total - non_train}",
            f"Non-trainable params: {non_train}" + (' (auxiliary states: BatchNorm running mean/var)'
                                                    if non_train else '')]
    if unknown:
        out.append(f"Not counted, shape unknown (give input shapes): {', '.join(unknown)}")
    out.append('_' * line_length)
    text = '\n'.join(out)
    print(text)
    return text
