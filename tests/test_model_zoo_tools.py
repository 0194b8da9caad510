"""The tools on model-zoo models: `graphc bench SYMBOL.json` on the files real MXNet 1.9.1 exported
(tests/data/mxnet_zoo), and gc.explain on a member of every family (small inputs; Inception V3 needs 299x299)."""
import os

import pytest

import graphc as gc
from graphc import cli, nd
from graphc.gluon.model_zoo import vision
from test_model_zoo_mxnet import KEYS, fixture


# one export per kind of graph (the same code path for every file; the 224x224 ones cost tens of seconds here)
BENCHED = [k for k in ('resnet_v1_bottleneck', 'resnet_v2_basic', 'densenet_small', 'mobilenetv2_0.25') if k in KEYS]


@pytest.mark.parametrize('key', BENCHED)
def test_bench_symbol_file_mode_runs_mxnets_zoo_exports(key, capsys):
    m, files, x, _ = fixture(key)
    shape = ','.join(str(d) for d in x.shape)
    assert cli.main(['bench', files['symbol'], '--params', files['export_params'], '--shape', f'data={shape}',
                     '--reps', '1']) == 0
    out = capsys.readouterr().out   # a table row for the model, eager and hybridized timed (outputs checked equal)
    row = [line for line in out.splitlines() if os.path.basename(files['symbol']) in line]
    assert row and 'hybridized' in out and 'eager' in out, out


FAMILIES = {  # a member of each family at the smallest input its fixed pooling allows
    'alexnet': (lambda: vision.alexnet(classes=10), 64),
    'vgg11_bn': (lambda: vision.vgg11_bn(classes=10), 32),
    'squeezenet1.1': (lambda: vision.squeezenet1_1(classes=10), 224),
    'densenet': (lambda: vision.DenseNet(16, 8, [2, 2], classes=10), 64),
    'inceptionv3': (lambda: vision.inception_v3(classes=10), 299),
    'mobilenet0.25': (lambda: vision.mobilenet0_25(classes=10), 32),
    'mobilenetv2_0.25': (lambda: vision.mobilenet_v2_0_25(classes=10), 32),
    'resnet18_v1': (lambda: vision.resnet18_v1(classes=10, thumbnail=True), 16),
    'resnet50_v2': (lambda: vision.resnet50_v2(classes=10, thumbnail=True), 16),
}


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_explain_every_family(family):
    make, size = FAMILIES[family]
    net = make()
    net.initialize()
    x = nd.zeros((1, 3, size, size))
    net(x)
    convs = sum(type(b).__name__ == 'Conv2D' for b in _blocks(net))
    with open(os.devnull, 'w') as devnull:
        text = str(gc.explain(net, x, print_graph=False, file=devnull))
    assert f'{net.name} ({type(net).__name__}) on inputs (1, 3, {size}, {size}), inference mode' in text
    ops = int(text.split('ms, ')[1].split(' ops')[0])   # "trace: T ms, N ops"
    assert ops >= convs > 0 and '-- kernels:' in text and '-- codegen:' in text, text[:2000]


def _blocks(block):
    yield block
    for child in block._children.values():
        yield from _blocks(child)
