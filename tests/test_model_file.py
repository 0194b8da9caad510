"""Block.save / Block.load: the block tree and parameters round-trip into a model built the same way (even with
other block names), hybridization is restored, and a differently built model or a bad file is refused before
anything changes."""
import json

import numpy as np
import pytest

import graphc as mx
from graphc.base import GraphcLoadError
from graphc.gluon import nn


class Chain(nn.Block):
    def add(self, block):  # children keyed by the block's (instance-specific) name, as MXNet's save test does
        self._children[block.name + str(len(self._children))] = block

    def forward(self, x):
        for b in self._children.values():
            x = b(x)
        return x


def _net(width=5):
    inner = Chain()
    inner.add(nn.Dense(width))
    net = Chain()
    net.add(inner)
    net.add(nn.Dense(3))
    return net


def test_round_trip_with_other_block_names(tmp_path):
    net = _net()
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = mx.nd.random.uniform(shape=(2, 4))
    ref = net(x).asnumpy()
    prefix = str(tmp_path / 'm')
    net.save(prefix)
    tree = json.load(open(prefix + '-model.json'))
    assert tree['type'] == 'chain' and len(tree['children']) == 2 and tree['children'][1][1]['hybridized'] is True
    other = _net()  # new blocks, new names: other child keys until load renames them
    assert list(other._children) != list(net._children)
    other.load(prefix)
    assert list(other._children) == list(net._children)
    np.testing.assert_allclose(other(x).asnumpy(), ref, rtol=1e-6)
    assert other._children[list(other._children)[1]]._active  # hybridized as saved


def test_a_differently_built_model_or_a_bad_file_is_refused(tmp_path):
    net = _net()
    net.initialize()
    net(mx.nd.ones((1, 4)))
    prefix = str(tmp_path / 'm')
    net.save(prefix)
    wrong = Chain()
    wrong.add(nn.Dense(5))
    wrong.add(nn.Dense(3))
    keys = list(wrong._children)
    with pytest.raises(GraphcLoadError, match='is a dense, the saved model has a .chain.'):
        wrong.load(prefix)
    assert list(wrong._children) == keys  # unchanged
    with open(prefix + '-model.json', 'w') as f:
        f.write('{"type": "chain", "children": [')
    with pytest.raises(GraphcLoadError, match='not valid JSON'):
        _net().load(prefix)
    with pytest.raises(GraphcLoadError, match='no model file'):
        _net().load(str(tmp_path / 'nothing'))
