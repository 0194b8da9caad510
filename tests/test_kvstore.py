"""The KVStore interface (MXNet's local/device semantics): init/push/pull/pushpull/broadcast, updates on the
store, gradient compression, registered stores, and the errors."""
import numpy as np
import pytest

import graphc as gc
from graphc import nd
from graphc.base import GraphcError


def test_names_and_types():
    assert gc.kv is gc.kvstore
    for name in ('local', 'device'):
        kv = gc.kv.create(name)
        assert kv.type == name and kv.rank == 0 and kv.num_workers == 1 and kv.is_capable('optimizer')
    assert gc.kv.create('teststore').type == 'teststore' and not gc.kv.create('teststore').is_capable('optimizer')
    with pytest.raises(GraphcError, match="unknown kvstore type 'nope'"):
        gc.kv.create('nope')
    with pytest.raises(TypeError):
        gc.kv.create(3)


def test_push_sums_the_values_and_pull_copies_them_out():
    kv = gc.kv.create('device')
    kv.init(3, nd.zeros((2, 2)))
    kv.push(3, [nd.ones((2, 2), ctx=gc.cpu(i)) * (i + 1) for i in range(3)])
    outs = [nd.zeros((2, 2), ctx=gc.cpu(i)) for i in range(2)]
    kv.pull(3, out=outs)
    assert all(o.asnumpy().tolist() == [[6, 6], [6, 6]] for o in outs) and outs[1].context == gc.cpu(1)
    with pytest.raises(GraphcError, match='one key type per store'):
        kv.init('a', nd.zeros((1,)))  # this store has int keys
    kv = gc.kv.create('device')
    kv.init(['a', 'b'], [nd.zeros((1,)), nd.zeros((2,))])  # str keys, lists of keys
    vals = [[nd.array([1.0]), nd.array([2.0])], nd.array([5.0, 7.0])]
    kv.pushpull(['a', 'b'], vals)  # out=None: the values themselves get the sum
    assert [v.asnumpy().tolist() for v in vals[0]] == [[3.0], [3.0]] and vals[1].asnumpy().tolist() == [5, 7]


def test_broadcast_and_errors():
    kv = gc.kv.create('local')
    outs = [nd.zeros((3,)) for _ in range(2)]
    kv.broadcast('w', nd.array([1.0, 2.0, 3.0]), out=outs)
    assert all(o.asnumpy().tolist() == [1, 2, 3] for o in outs)
    with pytest.raises(GraphcError, match="key 'w' is already initialized"):
        kv.init('w', nd.zeros((3,)))
    with pytest.raises(GraphcError, match="key 'x' has not been initialized"):
        kv.push('x', nd.zeros((3,)))
    with pytest.raises(GraphcError, match=r"key 'w' holds float32\[3\], value 1 is float32\[4\]"):
        kv.push('w', [nd.zeros((3,)), nd.zeros((4,))])
    with pytest.raises(GraphcError, match='is an int or a str'):
        kv.init(1.5, nd.zeros((1,)))
    with pytest.raises(GraphcError, match='not supported by the .local. kvstore'):
        kv.set_gradient_compression({'type': '2bit'})


def test_set_optimizer_updates_the_stored_weight():
    kv = gc.kv.create('device')
    kv.init(0, nd.array([1.0, 1.0]))
    kv.set_optimizer(gc.optimizer.create('sgd', learning_rate=0.5, momentum=0.9))
    w = nd.zeros((2,))
    for _ in range(2):
        kv.pushpull(0, [nd.array([1.0, 2.0]), nd.array([1.0, 0.0])], out=w)
    # momentum SGD on the summed gradient g = [2, 2]: m1 = -1, w1 = 0; m2 = -0.9 - 1, w2 = -1.9
    np.testing.assert_allclose(w.asnumpy(), [-1.9, -1.9], rtol=1e-6)


def test_optimizer_states_round_trip(tmp_path):
    kv = gc.kv.create('device')
    kv.init(0, nd.array([1.0, -1.0]))
    kv.set_optimizer(gc.optimizer.create('adam', learning_rate=0.1))
    kv.push(0, nd.array([0.5, 0.5]))
    kv.save_optimizer_states(str(tmp_path / 'kv.states'))
    kv2 = gc.kv.create('device')
    kv2.init(0, nd.array([1.0, -1.0]))
    kv2.set_optimizer(gc.optimizer.create('adam', learning_rate=0.1))
    kv2.load_optimizer_states(str(tmp_path / 'kv.states'))
    for a, b in zip(kv._updater.states[0], kv2._updater.states[0]):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    with pytest.raises(GraphcError, match='no optimizer is set'):
        gc.kv.create('local').save_optimizer_states(str(tmp_path / 'x'))


def test_two_bit_compression_keeps_the_residual():
    """MXNet's 2bit scheme: q = +-threshold where gradient + residual reaches it, else 0; the rest carries over."""
    kv = gc.kv.create('device')
    kv.set_gradient_compression({'type': '2bit', 'threshold': 0.5})
    kv.init(0, nd.zeros((3,)))
    out = nd.zeros((3,))
    kv.pushpull(0, nd.array([0.3, -0.7, 1.2]), out=out)
    assert out.asnumpy().tolist() == [0.0, -0.5, 0.5]
    kv.pushpull(0, nd.array([0.3, 0.0, 0.0]), out=out)  # residuals 0.3+0.3, -0.2, 0.7
    np.testing.assert_allclose(out.asnumpy(), [0.5, 0.0, 0.5])
    with pytest.raises(GraphcError, match="'type' must be"):
        kv.set_gradient_compression({'type': '3bit'})


def test_registered_kvstore_is_created_by_name():
    @gc.kv.KVStoreBase.register
    class EchoStore(gc.kv.KVStoreBase):
        def pushpull(self, key, value, out=None, priority=0):
            self.seen = key
    kv = gc.kv.create('echostore')
    kv.pushpull(4, nd.zeros((1,)))
    assert isinstance(kv, EchoStore) and kv.seen == 4
    del gc.kv.KVStoreBase.kv_registry['echostore']


def test_pull_skips_sparse_outputs_and_row_ids_follow_the_outs_layout():
    kv = gc.kv.create()
    kv.init(['a', 'b'], [nd.ones((4, 2)), nd.ones((4, 2)) * 2])
    rsp = nd.zeros((4, 2)).tostype('row_sparse')
    kv.pull('a', out=rsp)  # ignore_sparse=True: left alone
    assert rsp.asnumpy().sum() == 0
    kv.pull('a', out=rsp, ignore_sparse=False)
    assert rsp.asnumpy().sum() == 8
    outs = [[nd.zeros((4, 2)).tostype('row_sparse') for _ in range(2)], nd.zeros((4, 2)).tostype('row_sparse')]
    ids = [[nd.array([0]), nd.array([1, 3])], nd.array([2])]  # per key: one per out, or one for all
    kv.row_sparse_pull(['a', 'b'], out=outs, row_ids=ids)
    assert outs[0][0].asnumpy()[:, 0].tolist() == [1, 0, 0, 0] and outs[0][1].asnumpy()[:, 0].tolist() == [0, 1, 0, 1]
    assert outs[1].asnumpy()[:, 0].tolist() == [0, 0, 2, 0]
    with pytest.raises(GraphcError, match='as many outs and row_ids'):
        kv.row_sparse_pull(['a', 'b'], out=outs, row_ids=ids[:1])


def test_pushpull_writes_sparse_outputs():
    kv = gc.kv.create('device')
    kv.init(0, nd.zeros((3, 2)))
    grads = [nd.ones((3, 2)).tostype('row_sparse') for _ in range(2)]
    kv.pushpull(0, grads)  # the summed gradient comes back into the row_sparse arrays themselves
    assert all(g.asnumpy().tolist() == [[2, 2]] * 3 for g in grads)
