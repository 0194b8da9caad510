"""graphc.viz (plot_network, print_summary) and `graphc show`, on the real MXNet lenet_bn export."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import graphc as gc
from graphc.gluon import nn
from graphc.mxjson import load_json_file
from graphc.serialization import load_ndarrays

HERE = os.path.dirname(os.path.abspath(__file__))
LENET = os.path.join(HERE, 'data', 'mxnet_models', 'lenet_bn')
SYM, PARAMS = os.path.join(LENET, 'lenet_bn-symbol.json'), os.path.join(LENET, 'lenet_bn-0000.params')
ROOT = os.path.dirname(HERE)

# lenet_bn: 3 x (Convolution, BatchNorm, relu), 2 Pooling, Flatten, 2 FullyConnected, relu after dense0
OPS = {'Convolution': 3, 'BatchNorm': 3, 'Activation': 4, 'Pooling': 2, 'Flatten': 1, 'FullyConnected': 2}
N_OPS = sum(OPS.values())   # 15 ops, a chain: data -> 15 ops is 15 edges without the weights
N_PARAM_VARS = 22           # weights, biases, gammas, betas and running stats


def _nodes(src):
    """{node id: attribute text} and [(tail, head, attribute text)] from our DOT (one statement a line)."""
    nodes = dict(re.findall(r'^  (n\d+) \[(.*)\];$', src, re.M))
    edges = re.findall(r'^  (n\d+) -> (n\d+)(?: \[(.*)\])?;$', src, re.M)
    return nodes, edges


def _label(attrs):
    return re.search(r'label="((?:[^"\\]|\\.)*)"', attrs).group(1)


def _check_dot_syntax(src):
    """Every statement is a node, an edge or a default; quoted strings are closed; nothing else."""
    lines = src.rstrip('\n').split('\n')
    assert lines[0].startswith('digraph "') and lines[-1] == '}'
    qs = r'"(?:[^"\\\n]|\\.)*"'
    attr = rf'[A-Za-z_]\w*={qs}'
    alist = rf'\[{attr}(?:, {attr})*\]'
    for ln in lines[1:-1]:
        assert re.fullmatch(rf'  (?:graph \[rankdir=BT\]|node {alist}|n\d+ {alist}|n\d+ -> n\d+(?: {alist})?);', ln), ln


def test_plot_network_lenet_nodes_edges_and_shapes():
    net = load_json_file(SYM)
    d = gc.viz.plot_network(net, shape={'data': (8, 1, 28, 28)})
    _check_dot_syntax(d.source)
    nodes, edges = _nodes(d.source)
    labels = {k: _label(a) for k, a in nodes.items()}
    for op, count in OPS.items():
        assert sum(lb.split('\\n')[0] == op for lb in labels.values()) == count, op
    assert len(nodes) == N_OPS + 1                      # the ops and the data input
    assert len(edges) == N_OPS                          # weights hidden: only the chain is left
    assert 'conv0_weight' not in d.source and 'running_mean' not in d.source
    assert labels['n0'] == 'data\\n8x1x28x28' and 'shape="oval"' in nodes['n0']
    # the first conv: kernel/stride, filters and its output shape; its edge to BatchNorm carries that shape
    assert labels['n3'] == 'Convolution\\n5x5/1x1, 32\\n8x32x24x24'
    assert ('n3', 'n8', 'label="8x32x24x24"') in edges and ('n0', 'n3', 'label="8x1x28x28"') in edges
    assert labels['n37'] == 'FullyConnected\\n10\\n8x10' and 'peripheries="2"' in nodes['n37']   # the output
    assert labels['n9'] == 'Activation\\nrelu\\n8x32x24x24'
    assert 'fillcolor="#fb8072"' in nodes['n3'] and 'fillcolor="#bebada"' in nodes['n8']   # MXNet's colors
    assert 'fillcolor="#ffffb3"' in nodes['n9'] and 'fillcolor="#80b1d3"' in nodes['n10']


def test_plot_network_without_shapes_and_with_weights():
    net = load_json_file(SYM)
    nodes, edges = _nodes(gc.viz.plot_network(net).source)
    assert len(nodes) == N_OPS + 1 and len(edges) == N_OPS
    assert not any('label' in e[2] for e in edges)     # shapes unknown: no edge labels
    src = gc.viz.plot_network(net, hide_weights=False, title='lenet', node_attrs={'fontsize': '10'}).source
    _check_dot_syntax(src)
    assert src.startswith('digraph "lenet" {') and 'fontsize="10"' in src.split('\n')[2]
    nodes, edges = _nodes(src)
    assert len(nodes) == N_OPS + 1 + N_PARAM_VARS
    assert len(edges) == N_OPS + N_PARAM_VARS           # every parameter feeds exactly one op
    assert _label(nodes['n1']) == 'conv0_weight\\n32x?x5x5'   # MXNet's 0 (unknown) dim shown as ?
    with pytest.raises(gc.GraphcError, match="not inputs of the graph"):
        gc.viz.plot_network(net, shape={'date': (1, 1, 28, 28)})
    with pytest.raises(gc.GraphcError, match="attribute name"):
        gc.viz.plot_network(net, node_attrs={'bad name': 'x'})


def test_dot_quotes_names_from_files(tmp_path):
    evil = 'da"ta\n} digraph x { a -> b \\'
    doc = {'nodes': [{'op': 'null', 'name': evil, 'inputs': []},
                     {'op': 'Activation', 'name': 'act"\n0', 'attrs': {'act_type': 'relu'}, 'inputs': [[0, 0, 0]]}],
           'arg_nodes': [0], 'heads': [[1, 0, 0]]}
    f = tmp_path / 'evil-symbol.json'
    f.write_text(json.dumps(doc))
    src = gc.viz.plot_network(load_json_file(str(f)), shape={evil: (2, 3)}, title='t"i\ntle').source
    _check_dot_syntax(src)
    assert src.count('\n') == 7                      # header 3 + 2 nodes + 1 edge + '}'
    assert 'label="da\\"ta\\n} digraph x { a -> b \\\\\\n2x3"' in src
    assert 'tooltip="act\\"\\n0\\nact_type=relu"' in src


def test_print_summary_total_equals_params_file():
    arrays = load_ndarrays(PARAMS)
    in_file = sum(a.size for a in arrays.values())
    aux = sum(a.size for k, a in arrays.items() if k.startswith('aux:'))
    assert (in_file, aux) == (195878, 448)
    text = gc.viz.print_summary(load_json_file(SYM), shape={'data': (8, 1, 28, 28)})
    # the total counts aux states (BatchNorm running mean/var) too, so it equals the .params file's
    # element count; mx.viz.print_summary counts a BatchNorm as 2 x channels: our Trainable figure
    assert f"Total params: {in_file}" in text
    assert f"Trainable params: {in_file - aux}" in text and f"Non-trainable params: {aux}" in text
    rows = {ln.split()[0]: ln.split() for ln in text.split('\n') if '(' in ln and ln[0] != ' '}
    assert rows['conv0_fwd(Convolution)'][1:] == ['8x32x24x24', str(32 * 25 + 32), 'data']
    assert rows['batchnorm0_fwd(BatchNorm)'][2] == str(4 * 32)
    assert rows['dense0_fwd(FullyConnected)'][1:] == ['8x84', str(84 * 128 + 84), 'flatten0_flatten0']
    assert rows['data(null)'][1:] == ['8x1x28x28', '0']
    header = text.split('\n')[1]
    assert [header.index(h) for h in ('Layer (type)', 'Output Shape', 'Param #', 'Previous Layer')] == \
        [0, int(120 * .44), int(120 * .64), int(120 * .74)]
    assert all(len(ln) <= 120 for ln in text.split('\n') if not ln.startswith('Not counted'))


def test_print_summary_unknown_shapes_are_flagged(capsys):
    text = gc.viz.print_summary(load_json_file(SYM), line_length=80)
    assert capsys.readouterr().out.strip() == text.strip()
    assert 'conv0_fwd(Convolution)' in text and re.search(r'conv0_fwd\(Convolution\)\s+\?\s+\?\s+data', text)
    assert 'Not counted, shape unknown' in text and 'conv0_weight' in text


def test_hybridized_block():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(4, 3), nn.BatchNorm(), nn.Activation('relu'), nn.Dense(5))
    net.initialize()
    with pytest.raises(gc.GraphcError, match="hybridize"):
        gc.viz.plot_network(net)
    net.hybridize()
    net(gc.nd.ones((2, 1, 8, 8)))
    d = gc.viz.plot_network(net)
    nodes, edges = _nodes(d.source)
    assert [_label(a).split('\\n')[0] for a in nodes.values()] == \
        ['data', 'Convolution', 'BatchNorm', 'Activation', 'FullyConnected']
    assert len(edges) == 4 and 'label="2x4x6x6"' in d.source and 'FullyConnected\\n5\\n2x5' in d.source
    text = gc.viz.print_summary(net)
    n = sum(int(np.prod(p.shape)) for p in net.collect_params().values())
    assert f"Total params: {n}" in text and 'Non-trainable params: 8 ' in text   # running mean/var of 4 channels
    # new input shapes re-infer from the block's graph: another batch size works, a bigger image does not
    # fit the dense weight the block already has
    assert 'label="3x4x6x6"' in gc.viz.plot_network(net, shape={'data': (3, 1, 8, 8)}).source
    with pytest.raises(gc.GraphcShapeError, match=r"weight shape \(5, 144\)"):
        gc.viz.plot_network(net, shape={'data': (3, 1, 16, 16)})


def test_save_and_render_without_dot(tmp_path, monkeypatch):
    d = gc.viz.plot_network(load_json_file(SYM))
    assert open(d.save(str(tmp_path / 'a.dot'))).read() == d.source
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    with pytest.raises(gc.GraphcError, match=r"apt-get install graphviz"):
        d.render(str(tmp_path / 'net.svg'))
    assert (tmp_path / 'net.dot').read_text() == d.source   # the DOT is written all the same


@pytest.mark.skipif(shutil.which('dot') is None, reason="Graphviz `dot` is not installed (apt-get install graphviz)")
def test_render_with_dot(tmp_path):
    d = gc.viz.plot_network(load_json_file(SYM), shape={'data': (1, 1, 28, 28)})
    out = d.render(str(tmp_path / 'net.svg'))
    assert out.endswith('net.svg') and '<svg' in open(out).read()
    out = d.render(str(tmp_path / 'net'), format='png')
    assert open(out, 'rb').read(8) == b'\x89PNG\r\n\x1a\n' and (tmp_path / 'net').read_text() == d.source


def _show(*args):
    return subprocess.run([sys.executable, '-m', 'graphc.cli', 'show', *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_cli_show_lenet(tmp_path):
    dot = tmp_path / 'lenet.dot'
    r = _show(SYM, '--params', PARAMS, '--shape', 'data=8,1,28,28', '--dot', str(dot))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert 'inputs: data' in out and '22 arrays, all match the graph' in out
    assert '%1 = var conv0_weight  f32[32,1,5,5]' in out                 # the real shape from the file
    assert re.search(r'^%3 = Convolution\[.*\]\(%0, %1, %2\)  f32\[8,32,24,24\]$', out, re.M)
    assert 'return %37' in out
    assert 'Total params: 195878' in out and 'Non-trainable params: 448' in out
    nodes, edges = _nodes(dot.read_text())
    assert len(nodes) == N_OPS + 1 and len(edges) == N_OPS and dot.read_text().startswith('digraph "lenet_bn"')


def test_cli_show_bare_shape_and_param_problems(tmp_path):
    r = _show(SYM, '--shape', '2,1,28,28')               # no name: the first input, data
    assert r.returncode == 0 and 'f32[2,10]' in r.stdout and 'Total params: 195878' in r.stdout
    arrays = load_ndarrays(PARAMS)
    arrays['arg:conv0_weight'] = gc.nd.zeros((32, 1, 3, 3))
    arrays['arg:stray'] = gc.nd.zeros((2,))
    del arrays['aux:batchnorm0_running_var']
    bad = tmp_path / 'bad.params'
    gc.serialization.save_ndarrays(str(bad), arrays)
    r = _show(SYM, '--params', str(bad), '--shape', 'data=1,1,28,28')
    assert r.returncode == 1, r.stderr
    assert '3 problem(s):' in r.stdout
    assert 'shape mismatch: conv0_weight is (32, 1, 3, 3) in the file, the graph declares (32, 0, 5, 5)' in r.stdout
    assert 'extra: arg:stray (2,) is not a variable of the graph' in r.stdout
    assert 'missing: batchnorm0_running_var (auxiliary state) is not in the file' in r.stdout
    assert 'inputs: data\n' in r.stdout and 'f32[1,10]' in r.stdout


def test_cli_show_errors(tmp_path):
    bad = tmp_path / 'bad-symbol.json'
    bad.write_text('{"nodes": [')
    r = _show(str(bad))
    assert r.returncode == 2 and r.stdout == ''
    assert r.stderr.count('\n') == 1 and r.stderr.startswith('graphc show: error: ') and 'not valid JSON' in r.stderr
    bad.write_text(json.dumps({'nodes': [{'op': 'NoSuchOp', 'name': 'x', 'inputs': []}], 'heads': [[0, 0, 0]]}))
    r = _show(str(bad))
    assert r.returncode == 2 and 'NoSuchOp' in r.stderr and 'Traceback' not in r.stderr
    r = _show(SYM, '--shape', 'label=1,2')
    assert r.returncode == 2 and "--shape names ['label']" in r.stderr
    r = _show(SYM, '--shape', 'data=1,x')
    assert r.returncode == 2 and 'positive integer dims' in r.stderr
    r = _show(SYM, '--shape', 'data=8,1,3,3')           # too small for a 5x5 kernel: a shape error, no traceback
    assert r.returncode == 2 and 'Convolution' in r.stderr and 'Traceback' not in r.stderr


def test_plot_network_warns_of_repeated_names():
    import warnings as _w
    import graphc as _gc
    net = _gc.sym.FullyConnected(_gc.sym.var('data'), name='fc', num_hidden=4)
    net = _gc.sym.FullyConnected(_gc.sym.Activation(net, act_type='relu'), name='fc', num_hidden=2)
    with _w.catch_warnings(record=True) as w:
        _w.simplefilter('always')
        _gc.viz.plot_network(net, shape={'data': (3, 5)})
    msgs = [str(x.message) for x in w if 'same name' in str(x.message)]
    assert len(msgs) == 1 and 'fc' in msgs[0] and 'fc_weight' in msgs[0]
    with _w.catch_warnings(record=True) as w:
        _w.simplefilter('always')
        _gc.viz.plot_network(_gc.sym.FullyConnected(_gc.sym.var('data'), name='a', num_hidden=2))
    assert not [x for x in w if 'same name' in str(x.message)]
