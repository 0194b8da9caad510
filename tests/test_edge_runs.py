"""Run-time edge cases, eager against hybridized: empty batches through every layer (inference and training),
inputs smaller than the kernel, nested list/tuple/dict inputs, and .params files without names or arrays."""
import re

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, nd
from graphc.base import GraphcError, GraphcLoadError
from graphc.gluon import SymbolBlock, nn, rnn


def _seq():
    s = nn.HybridSequential()
    s.add(nn.Conv2D(4, 3, in_channels=2), nn.BatchNorm(in_channels=4), nn.Activation('relu'), nn.MaxPool2D(2),
          nn.Flatten(), nn.Dense(3, in_units=16))
    return s


LAYERS = [
    ('Dense', lambda: nn.Dense(3, in_units=5), (0, 5)),
    ('Dense on 3-d', lambda: nn.Dense(3, in_units=6), (0, 2, 3)),
    ('Conv2D', lambda: nn.Conv2D(4, 3, in_channels=2), (0, 2, 6, 6)),
    ('Conv2DTranspose', lambda: nn.Conv2DTranspose(4, 3, in_channels=2), (0, 2, 6, 6)),
    ('MaxPool2D', lambda: nn.MaxPool2D(2), (0, 2, 6, 6)),
    ('AvgPool2D', lambda: nn.AvgPool2D(2), (0, 2, 6, 6)),
    ('GlobalAvgPool2D', lambda: nn.GlobalAvgPool2D(), (0, 2, 6, 6)),
    ('GlobalMaxPool2D', lambda: nn.GlobalMaxPool2D(), (0, 2, 6, 6)),
    ('BatchNorm', lambda: nn.BatchNorm(in_channels=2), (0, 2, 6, 6)),
    ('LayerNorm', lambda: nn.LayerNorm(in_channels=5), (0, 5)),
    ('Dropout', lambda: nn.Dropout(0.5), (0, 5)),
    ('Embedding', lambda: nn.Embedding(10, 4), (0, 3)),
    ('Flatten', lambda: nn.Flatten(), (0, 2, 3)),
    ('Activation', lambda: nn.Activation('tanh'), (0, 5)),
    ('LeakyReLU', lambda: nn.LeakyReLU(0.1), (0, 5)),
    ('PReLU', lambda: nn.PReLU(), (0, 5)),
    ('ELU', lambda: nn.ELU(), (0, 5)),
    ('SELU', lambda: nn.SELU(), (0, 5)),
    ('GELU', lambda: nn.GELU(), (0, 5)),
    ('Swish', lambda: nn.Swish(), (0, 5)),
    ('LSTM', lambda: rnn.LSTM(4, input_size=3), (5, 0, 3)),
    ('GRU', lambda: rnn.GRU(4, input_size=3), (5, 0, 3)),
    ('RNN', lambda: rnn.RNN(4, input_size=3), (5, 0, 3)),
    ('LSTM with no time steps', lambda: rnn.LSTM(4, input_size=3), (0, 2, 3)),
    ('conv net', _seq, (0, 2, 6, 6)),
]


def _run(make, shape, hybridize, train):
    """(outputs, input gradient, parameter gradients) as NumPy, or (exception type, message)."""
    mx.random.seed(0)
    net = make()
    net.initialize(mx.init.Uniform(0.5))
    if hybridize:
        net.hybridize()
    x = nd.zeros(shape)
    x.attach_grad()
    try:
        if train:
            with autograd.record():
                y = net(x)
                y0 = y[0] if isinstance(y, (list, tuple)) else y
                loss = (y0 * y0).sum()
            loss.backward()
            grads = {k[len(net.prefix):]: p.grad().asnumpy() for k, p in net.collect_params().items()
                     if p.grad_req != 'null'}
            return y0.asnumpy(), x.grad.asnumpy(), grads
        y = net(x)
        return (y[0] if isinstance(y, (list, tuple)) else y).asnumpy(), None, {}
    except GraphcError as e:
        return type(e), _core(str(e))


def _core(msg):
    """The op's message without the block path and user line that the two modes word differently."""
    msg = re.sub(r"block \S+, at [^`]*`[^`]*`: ", '', msg)
    return re.sub(r"^(\S+ \([A-Za-z0-9]+\): )+", '', msg)


@pytest.mark.parametrize('train', [False, True], ids=['inference', 'training'])
@pytest.mark.parametrize('name, make, shape', LAYERS, ids=[n for n, _, _ in LAYERS])
def test_an_empty_batch_gives_the_same_result_or_error_in_both_modes(name, make, shape, train):
    eager, hybrid = _run(make, shape, False, train), _run(make, shape, True, train)
    if isinstance(eager[0], type):
        assert eager == hybrid
        assert name == 'LSTM with no time steps', eager  # only a sequence of no steps is an error (as in MXNet)
        return
    assert not isinstance(hybrid[0], type), hybrid
    np.testing.assert_array_equal(eager[0], hybrid[0])
    assert eager[0].shape[0 if name not in ('LSTM', 'GRU', 'RNN') else 1] == 0
    if train:
        np.testing.assert_array_equal(eager[1], hybrid[1])
        assert eager[2].keys() == hybrid[2].keys()
        for k in eager[2]:  # a sum over no samples: parameter gradients are 0 (BatchNorm's gamma: 0/0, NaN in both)
            np.testing.assert_array_equal(eager[2][k], hybrid[2][k])
            assert not np.nan_to_num(eager[2][k]).any() and (np.isfinite(eager[2][k]).all() or 'gamma' in k), k


@pytest.mark.parametrize('make', [lambda: nn.Conv2D(8, kernel_size=5, in_channels=3), lambda: nn.MaxPool2D(5),
                                  lambda: nn.AvgPool2D(5)], ids=['Conv2D', 'MaxPool2D', 'AvgPool2D'])
def test_an_input_smaller_than_the_kernel_is_the_same_clear_error_in_both_modes(make):
    errors = []
    for hybridize in (False, True):
        net = make()
        net.initialize()
        if hybridize:
            net.hybridize()
        with pytest.raises(GraphcError, match=r"kernel \(5, 5\).* is larger than the padded input \(4, 4\)") as e:
            net(nd.ones((2, 3, 4, 4)))
        errors.append((e.type, _core(str(e.value))))
    assert errors[0] == errors[1]


class _Nested(nn.HybridBlock):
    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(2, in_units=3)

    def hybrid_forward(self, F, xs, ws):
        a, (b, c) = xs
        return self.dense(a * 2.0 + b - c) + ws[1] * ws[0]


def test_nested_inputs_are_flattened_and_keyed_by_structure_shape_and_dtype():
    net = _Nested()
    net.initialize()
    r = np.random.default_rng(0)

    def args(n=4):
        arr = lambda *s: nd.array(r.normal(size=s).astype(np.float32))  # noqa: E731
        return [arr(n, 3), (arr(n, 3), arr(n, 3))], [arr(2), arr(n, 2)]

    calls = [args(), args(), args(5)]
    want = [net(*a).asnumpy() for a in calls]
    net.hybridize()
    got = [net(*a).asnumpy() for a in calls]
    for w, g in zip(want, got):  # new values on every call: nothing was baked into the trace
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert net.trace_count == 2  # same structure and shapes: one trace; a new batch size: one more
    xs, ws = calls[0]
    as_tuple = (tuple(xs), ws)  # the same leaves in a tuple: another structure, another trace
    np.testing.assert_allclose(net(*as_tuple).asnumpy(), want[0], rtol=1e-5, atol=1e-6)
    assert net.trace_count == 3
    with pytest.raises(ValueError, match="(?s)must be .*NDArrays or None, but got .* of type dict"):
        net(xs, {'w': ws[0], 'bias': ws[1]})  # MXNet 1.9's rule: (nested lists of) arrays only


def test_nested_inputs_with_training():
    net = _Nested()
    net.initialize()
    a = [nd.ones((2, 3)), (nd.ones((2, 3)) * 2, nd.ones((2, 3)))]
    d = [nd.array([1.0, 2.0]), nd.ones((2, 2))]
    grads = []
    for hybridize in (False, True):
        net.hybridize(hybridize)
        for x in (a[0], d[1]):
            x.attach_grad()
        with autograd.record():
            loss = net(a, d).sum()
        loss.backward()
        grads.append((a[0].grad.asnumpy().copy(), d[1].grad.asnumpy().copy(),
                      net.dense.weight.grad().asnumpy().copy()))
    for e, h in zip(*grads):
        np.testing.assert_allclose(h, e, rtol=1e-5)


def _zero_param_export(tmp_path):
    x = mx.sym.var('data')
    (x * 2 + 1).save(str(tmp_path / 'm-symbol.json'))
    return str(tmp_path / 'm-symbol.json')


def test_params_files_without_names_or_without_arrays(tmp_path):
    a, b = nd.array([1.0, 2.0]), nd.ones((2, 2))
    nd.save(str(tmp_path / 'list.params'), [a, b])
    nd.save(str(tmp_path / 'empty.params'), {})   # what MXNet writes for a model without parameters
    nd.save(str(tmp_path / 'empty_list.params'), [])
    got = nd.load(str(tmp_path / 'list.params'))
    assert isinstance(got, list) and len(got) == 2 and np.array_equal(got[0].asnumpy(), [1, 2])
    assert nd.load(str(tmp_path / 'empty.params')) == [] and nd.load(str(tmp_path / 'empty_list.params')) == []

    sym = _zero_param_export(tmp_path)
    for empty in ('empty.params', 'empty_list.params'):
        net = SymbolBlock.imports(sym, ['data'], str(tmp_path / empty))
        np.testing.assert_array_equal(net(nd.ones((2,))).asnumpy(), [3, 3])
    with pytest.raises(GraphcLoadError, match=r"list\.params: 2 arrays without names"):
        SymbolBlock.imports(sym, ['data'], str(tmp_path / 'list.params'))

    act = nn.Activation('relu')  # no parameters
    act.load_parameters(str(tmp_path / 'empty.params'))
    dense = nn.Dense(2, in_units=2)
    with pytest.raises(GraphcLoadError, match="arrays without names"):
        dense.load_parameters(str(tmp_path / 'list.params'))
    with pytest.raises(GraphcLoadError, match="arrays without names"):
        dense.collect_params().load(str(tmp_path / 'list.params'))


def test_a_huge_parameter_name_is_cut_in_messages(tmp_path):
    dense = nn.Dense(2, in_units=2)
    long = 'w' * (1 << 20)
    nd.save(str(tmp_path / 'long.params'), {long: nd.ones((2, 2))})
    with pytest.raises(GraphcError) as e:
        dense.load_parameters(str(tmp_path / 'long.params'))
    assert len(str(e.value)) < 3000 and re.search(r'\.\.\. \(10485\d\d characters\)', str(e.value))
