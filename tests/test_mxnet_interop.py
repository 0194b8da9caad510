"""graphc's exported files loaded by real MXNet 1.9 give graphc's outputs.

MXNet is not a dependency: this runs only when GRAPHC_MXNET_PYTHON names a Python with
mxnet 1.9 installed (e.g. a Python 3.8 venv: `pip install mxnet==1.9.1 numpy==1.23.5`).
"""
import os
import subprocess
import textwrap

import numpy as np
import pytest

import graphc as gc
from graphc import nd
from graphc.gluon import nn

MX = os.environ.get('GRAPHC_MXNET_PYTHON')
pytestmark = pytest.mark.skipif(not MX, reason="set GRAPHC_MXNET_PYTHON to a Python with mxnet 1.9 to run")


def _models():
    def conv_net():
        net = nn.HybridSequential()
        with net.name_scope():
            net.add(nn.Conv2D(8, 3, padding=1, activation='relu'), nn.BatchNorm(), nn.MaxPool2D(2, 2),
                    nn.AvgPool2D(2, 2, ceil_mode=True), nn.Conv2D(6, 3, strides=2, groups=2), nn.LeakyReLU(0.1),
                    nn.Flatten(), nn.Dropout(0.3), nn.Dense(20, activation='tanh'), nn.LayerNorm(), nn.Dense(10),
                    nn.GELU())
        return net, (4, 3, 16, 16)

    def mlp():
        net = nn.HybridSequential()
        with net.name_scope():
            net.add(nn.Dense(32, activation='sigmoid'), nn.ELU(), nn.Dense(5, use_bias=False))
        return net, (3, 7)
    return [conv_net, mlp]


@pytest.mark.parametrize('make', _models())
def test_mxnet_loads_graphc_export(make, tmp_path):
    gc.random.seed(0)
    net, shape = make()
    net.initialize(gc.init.Xavier())
    net.hybridize()
    x = nd.random.normal(shape=shape)
    y = net(x).asnumpy()
    prefix = str(tmp_path / 'model')
    net.export(prefix)
    np.save(str(tmp_path / 'x.npy'), x.asnumpy())
    script = textwrap.dedent(f"""
        import mxnet as mx, numpy as np
        blk = mx.gluon.SymbolBlock.imports('{prefix}-symbol.json', ['data'], '{prefix}-0000.params')
        np.save('{tmp_path}/y_mx.npy', blk(mx.nd.array(np.load('{tmp_path}/x.npy'))).asnumpy())
    """)
    r = subprocess.run([MX, '-c', script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_allclose(np.load(str(tmp_path / 'y_mx.npy')), y, rtol=1e-5, atol=1e-5)
