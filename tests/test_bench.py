"""graphc.bench: the hand-written NumPy baselines compute what graphc computes (so the comparisons are of equal
work), and the timing, ratio and table helpers are right. Speed itself is measured by `graphc bench`, not here."""
import os
import signal
import sys

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, bench as B, gluon, nd
from graphc.base import GraphcError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _graphc_grads(net, x, y):
    """Mean softmax cross-entropy of net on (x, y) and its gradients, by graphc's eager autograd."""
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
    loss.backward()
    n = x.shape[0]  # backward of the per-sample losses gives the gradient of their sum
    return float(loss.asnumpy().mean()), [p.grad().asnumpy() / n for p in net.collect_params().values()]


def test_bench_lenet_is_the_example_lenet():
    sys.path.insert(0, os.path.join(ROOT, 'examples'))
    from lenet_mnist import lenet
    ex = lenet()
    ex.initialize()
    x = nd.zeros((2, 1, 28, 28))
    ex(x)
    ours = B.lenet()
    ours(x)
    assert [type(b).__name__ for b in ours] == [type(b).__name__ for b in ex]
    assert [p.shape for p in ours.collect_params().values()] == [p.shape for p in ex.collect_params().values()]


def test_numpy_lenet_step_equals_graphc():
    gc.random.seed(3)
    x = nd.random.uniform(shape=(8, 1, 28, 28))
    y = nd.array([3, 1, 4, 1, 5, 9, 2, 6], dtype='int32')
    net = B.lenet()
    net(x)
    ref = B.LeNetNumpy(B.weights(net), lr=1e-3)
    loss, grads = ref.loss_and_grads(x.asnumpy(), y.asnumpy())
    gloss, ggrads = _graphc_grads(net, x, y)
    assert abs(loss - gloss) < 1e-5 * max(1, abs(gloss)) and loss > 1.0   # untrained: about log(10)
    for p, g, gg in zip(net.collect_params().values(), grads, ggrads):
        assert g.shape == gg.shape, p.name
        assert np.abs(gg).max() > 0, p.name
        np.testing.assert_allclose(g, gg, rtol=1e-4, atol=1e-6 * np.abs(gg).max(), err_msg=p.name)
    # the inference forward is the same network
    np.testing.assert_allclose(ref.forward(x.asnumpy()), net(x).asnumpy(), rtol=1e-4, atol=1e-5)
    # and the Adam step is MXNet's: after two steps the weights agree (step 1 moves each weight by about lr)
    tr = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-3})
    w0 = B.weights(net)
    for _ in range(2):
        _graphc_grads(net, x, y)
        tr.step(8)
        ref.step(x.asnumpy(), y.asnumpy())
    for p, a, b in zip(net.collect_params().values(), ref.params, w0):
        assert np.abs(a - b).max() > 1e-4, p.name   # the step moved the weights
        np.testing.assert_allclose(a, p.data().asnumpy(), rtol=0, atol=2e-5, err_msg=p.name)


def test_numpy_mlp_step_equals_graphc():
    gc.random.seed(4)
    x = nd.random.normal(shape=(6, 784))
    y = nd.array([0, 9, 2, 2, 7, 5], dtype='int32')
    net = B.mlp()
    net(x)
    w = B.weights(net)
    acts = B.dense_forward(w, x.asnumpy())
    loss, dz = B.softmax_ce(acts[-1], y.asnumpy())
    grads, dx = B.dense_backward(w, acts, dz, need_dx=True)
    gloss, ggrads = _graphc_grads(net, x, y)
    assert abs(loss - gloss) < 1e-5 * max(1, abs(gloss))
    for g, gg in zip(grads, ggrads):
        np.testing.assert_allclose(g, gg, rtol=1e-4, atol=1e-6 * np.abs(gg).max())
    xv = x.copy()
    xv.attach_grad()
    with autograd.record():
        out = gluon.loss.SoftmaxCrossEntropyLoss()(net(xv), y)
    out.backward()
    np.testing.assert_allclose(dx, xv.grad.asnumpy() / 6, rtol=1e-4, atol=1e-8)
    # SGD with momentum, twice, as MXNet's sgd_mom_update
    tr = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})
    vel = [np.zeros_like(p) for p in w]
    for _ in range(2):
        _graphc_grads(net, x, y)
        tr.step(6)
        acts = B.dense_forward(w, x.asnumpy())
        B.sgd_momentum(w, B.dense_backward(w, acts, B.softmax_ce(acts[-1], y.asnumpy())[1])[0], vel, 0.1, 0.9)
    for a, p in zip(w, net.collect_params().values()):
        np.testing.assert_allclose(a, p.data().asnumpy(), rtol=1e-4, atol=1e-6)


def test_numpy_lstm_equals_graphc_lstm():
    gc.random.seed(5)
    x = nd.random.normal(shape=(4, 3, 6))
    layer = gluon.rnn.LSTM(5, input_size=6, i2h_bias_initializer='normal', h2h_bias_initializer='normal')
    layer.initialize(gc.init.Xavier())
    out = layer(x).asnumpy()
    assert out.shape == (4, 3, 5)
    np.testing.assert_allclose(B.lstm_numpy(x.asnumpy(), *B.weights(layer)), out, rtol=1e-5, atol=1e-6)


def test_torch_twins_match_numpy():
    torch = pytest.importorskip('torch')
    gc.random.seed(6)
    x = nd.random.uniform(shape=(4, 1, 28, 28))
    net = B.lenet()
    net(x)
    w = B.weights(net)
    with torch.no_grad():
        out = B.torch_lenet(torch, w)(torch.from_numpy(x.asnumpy())).numpy()
    np.testing.assert_allclose(out, net(x).asnumpy(), rtol=1e-4, atol=1e-5)
    r = B.mlp_inference(2, 2)['times']
    assert {'numpy', 'torch', 'eager', 'hybridized'} <= set(r) <= {'numpy', 'torch', 'eager', 'hybridized', 'onnxruntime'}
    assert min(r.values()) > 0


def test_timeit_interleaves_and_takes_the_median(monkeypatch):
    clock, calls = [0.0], []
    durations = {'a': iter([9, 9, 1, 5, 3]), 'b': iter([9, 9, 2, 2, 8])}   # 2 warm-up rounds, then 3 timed

    def fn(k):
        def f():
            calls.append(k)
            clock[0] += next(durations[k])
        return f
    monkeypatch.setattr(B.time, 'perf_counter', lambda: clock[0])
    seen = []
    t = B.timeit({'a': fn('a'), 'b': fn('b')}, reps=3, warmup=2, progress=lambda it: seen.append(len(it)) or it)
    assert t == {'a': 3, 'b': 2} and t.seed == B.SEED[0]
    assert sorted(calls) == ['a'] * 5 + ['b'] * 5 and seen == [5]
    assert all(sorted(calls[i:i + 2]) == ['a', 'b'] for i in range(0, 10, 2))   # each round: both, once


def test_timeit_shuffles_each_round_from_its_seed():
    """The order is drawn anew each round (a fixed one biased the batch-1 MLP: 1.17x vs 0.82x NumPy), and the
    same seed draws the same orders."""
    def orders(seed):
        calls = []
        B.timeit({k: (lambda k=k: calls.append(k)) for k in 'abcd'}, reps=30, warmup=0, seed=seed)
        return [''.join(calls[i:i + 4]) for i in range(0, len(calls), 4)]
    one = orders(5)
    assert all(sorted(o) == list('abcd') for o in one) and len(set(one)) > 5
    assert orders(5) == one and orders(6) != one
    assert {o[0] for o in one} == set('abcd')   # every variant runs first in some round


def test_ratios_and_table():
    times = {'numpy': 0.002, 'torch': 0.004, 'eager': 0.012, 'hybridized': 0.003}
    r = B.ratios(times)
    assert r == pytest.approx({'eager/hybridized': 4.0, 'hybridized/numpy': 1.5, 'hybridized/torch': 0.75,
                               'eager/numpy': 6.0, 'eager/torch': 3.0})
    assert B.ratios({'eager': 2.0, 'hybridized': 1.0}) == {'eager/hybridized': 2.0}
    assert B.ratios({'eager': 2.0, 'hybridized': 0.5, 'eager+x': 3.0}) == {'eager/hybridized': 4.0,
                                                                         'eager+x/hybridized': 6.0}
    res = {'w1': {'name': 'first', 'times': times, 'ratios': r},
           'mem': {'name': 'second', 'times': {'numpy': 0.01, 'hybridized': 0.005, 'np.copyto': 0.004},
                   'ratios': B.ratios({'numpy': 0.01, 'hybridized': 0.005}),
                   'GB/s': {'hybridized': 12.0, 'np.copyto': 16.0}},
           'x': {'name': 'third', 'times': {'eager': 0.002, 'hybridized': 0.001, 'eager+x': 0.0035}, 'ratios': {}}}
    lines = B.table(res).splitlines()
    assert lines[0].split() == ['workload', 'numpy', 'ms', 'torch', 'ms', 'eager', 'ms', 'hybridized', 'ms',
                                'np.copyto', 'ms', 'eager/hybridized', 'hybridized/numpy', 'hybridized/torch']
    assert lines[2].split() == ['w1', '2.000', '4.000', '12.000', '3.000', '-', '4.00x', '1.50x', '0.75x']
    assert lines[3].split() == ['mem', '10.000', '-', '-', '5.000', '4.000', '-', '0.50x', '-']
    assert 'mem: hybridized 12.0 GB/s, np.copyto 16.0 GB/s (75% of the copy bandwidth)' in lines
    assert 'x: eager+x 3.500 ms' in lines   # a variant without a column is listed below the table


def test_standard_workloads_and_only():
    keys = [k for k, _, _ in B.standard(1)]
    source = ['char-lstm', 'char-lstm-cells'] if B._benchmarks_module('lstm') is not None else []
    assert keys == ['mlp1', 'mlp64', 'mlp-train', 'lenet-train', 'lenet-infer', 'resnet-train', 'resnet-infer',
                    'chain1k', 'chain4k', 'membound', 'lstm'] + source
    assert 'chain4k' not in [k for k, _, _ in B.standard(1, quick=True)]
    assert [k for k, _, _ in B.standard(1, only=['lstm', 'mlp1'])] == ['mlp1', 'lstm']
    with pytest.raises(GraphcError, match="unknown workload.*'nope'.*mlp-train"):
        B.standard(1, only=['nope'])


def test_small_workloads_run_and_agree():
    r = B.run([('m', 'membound', lambda p: B.memory_bound(64, 2, p)), ('c', 'chain', lambda p: B.chain(32, 2, p))])
    m = r['m']
    assert {'numpy', 'eager', 'hybridized', 'np.copyto'} <= set(m['times']) and min(m['times'].values()) > 0
    assert m['GB/s']['hybridized'] == pytest.approx(3 * 64 * 64 * 4 / m['times']['hybridized'] / 1e9)
    c = r['c']
    assert c['ratios']['eager/hybridized'] == pytest.approx(c['times']['eager'] / c['times']['hybridized'])


def test_resnet_workload_runs_equal_twins():
    """The ResNet-18 step at 4 images of 16x16: eager and hybridized (and torch, when installed) start from equal
    weights and give equal losses for two steps (the workload checks), then are timed."""
    r = B.resnet_train(4, 1, size=16)['times']
    assert {'eager', 'hybridized'} <= set(r) and min(r.values()) > 0


def test_lstm_workload_uses_benchmarks_lstm_when_present(monkeypatch):
    mod = B._benchmarks_module('lstm')
    if mod is not None:   # a source checkout with another engineer's benchmarks/lstm.py: its function is used
        seen = []
        monkeypatch.setattr(mod, 'lstm_forward', lambda reps, progress, steps: seen.append((reps, steps)) or 'r')
        assert B.lstm(4, steps=7) == 'r' and seen == [(4, 7)]
    monkeypatch.setattr(B, '_benchmarks_module', lambda name: None)   # an installed graphc: the one here
    r = B.lstm(1, steps=2)['times']
    assert {'numpy', 'eager', 'hybridized'} <= set(r) and min(r.values()) > 0


def test_char_lstm_workloads_run_and_agree():
    """benchmarks/lstm.py's char-LSTM training steps at a small size: every variant starts from the same
    weights (the workload checks their first losses agree) and is timed; the cell model's variants include
    hybridized with fuse_rnn off."""
    mod = B._benchmarks_module('lstm')
    if mod is None:
        pytest.skip("an installed graphc without benchmarks/ (the source checkout runs this)")
    layer = mod.char_lstm_train(1, batch=4, seq=5, hidden=16)['times']
    cells = mod.char_lstm_train(1, batch=4, seq=5, hidden=16, cells=True)['times']
    assert {'eager', 'hybridized', 'eager+numpy-loops', 'hybridized+numpy-loops'} <= set(layer)
    assert set(cells) == {'eager', 'hybridized', 'hybridized-fuse_rnn-off'}
    assert min(layer.values()) > 0 and min(cells.values()) > 0


def test_torch_resnet18_twin_has_graphc_gradients():
    """The PyTorch twin of resnet18_v1(thumbnail): the same loss and, parameter by parameter, the same
    gradients (float32 through 18 batch-normalized layers: 1e-4 of each gradient's largest entry)."""
    torch = pytest.importorskip('torch')
    from graphc.gluon.model_zoo import vision
    gc.random.seed(0)
    net = vision.resnet18_v1(classes=10, thumbnail=True)
    net.initialize(gc.init.Xavier())
    x, y = nd.random.normal(shape=(4, 3, 16, 16)), B._labels(4)
    net(x)
    params = [p for p in net.collect_params().values() if p.grad_req != 'null']
    twin = B.torch_resnet18(torch, [p.data().asnumpy() for p in params])
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y).mean()
    loss.backward()
    labels = torch.from_numpy(y.asnumpy().astype(np.int64))
    tloss = torch.nn.CrossEntropyLoss()(twin(torch.from_numpy(x.asnumpy())), labels)
    tloss.backward()
    assert float(loss.asscalar()) == pytest.approx(float(tloss.detach()), rel=1e-5)
    for p, (name, t) in zip(params, twin.named_parameters()):
        g, tg = p.grad().asnumpy(), t.grad.numpy()
        assert np.abs(g - tg).max() <= 1e-4 * np.abs(tg).max(), name


# ------------------------------------------------------------------------------------- graphc bench --peers
FAKE_BACKEND = '''
"""A worker.py backend computing with NumPy (the tests' stand-in for JAX or MXNet)."""
import numpy as np


def build(spec, arrays):
    x = arrays['x']
    if spec['model'] == 'chain':
        return lambda: np.tanh(x * 2 + 1) / (1 + np.exp(-x)) - np.maximum(x, 0) / 3 + spec.get('off', 0.0)
    if spec['model'] == 'mlp' and spec.get('train'):
        return None   # no twin of this workload
    if spec['model'] != 'mlp':
        raise NotImplementedError('the fake peer has no %s' % spec)
    ws = [arrays['w%d' % i] for i in range(6)]

    def forward():
        h = x
        for i in range(0, 6, 2):
            h = h @ ws[i].T + ws[i + 1]
            h = np.maximum(h, 0) if i < 4 else h
        return h
    return forward


def value(out):
    return out


def sync(out):
    pass
'''


class NumpyPeer:
    """An in-process peer computing with graphc.bench's NumPy twins, posing as `name`; off: added to its outputs
    and its learning rate (a peer that computes something else)."""

    def __init__(self, name='jax', off=0.0):
        self.name, self.off, self.closed = name, off, False

    def twin(self, spec, arrays):
        ws = [arrays[f'w{i}'].copy() for i in range(sum(k.startswith('w') for k in arrays))]
        x = arrays['x']
        if spec['model'] == 'chain':
            return lambda: np.tanh(x * 2 + 1) / (1 + np.exp(-x)) - np.maximum(x, 0) / 3 + self.off
        if spec['model'] != 'mlp':
            return None
        if not spec.get('train'):
            return lambda: B.dense_forward(ws, x)[-1] + self.off
        vel = [np.zeros_like(w) for w in ws]

        def step():
            acts = B.dense_forward(ws, x)
            loss, dz = B.softmax_ce(acts[-1], arrays['y'])
            B.sgd_momentum(ws, B.dense_backward(ws, acts, dz)[0], vel, spec['lr'] + self.off, spec['momentum'])
            return np.float32(loss)
        return step

    def close(self):
        self.closed = True


def _fake_start(peers, missing=None):
    started = []

    def start(threads):
        started.append(threads)
        return [p() for p in peers], dict(missing or {'mxnet': 'install it so'})
    return start, started


def test_peers_table_with_a_fake_peer(monkeypatch):
    """Two thread counts, a NumPy peer posing as JAX (in this process) and one posing as MXNet (a worker.py
    process with a NumPy backend, so the pipe, the .npz files and the worker-side timing are exercised)."""
    import tempfile
    from graphc import bench_peers
    d = tempfile.mkdtemp()
    with open(os.path.join(d, 'fake_peer.py'), 'w') as f:
        f.write(FAKE_BACKEND)
    env = dict(os.environ, PYTHONPATH=d)
    start, started = _fake_start([NumpyPeer, lambda: bench_peers.Worker('mxnet', sys.executable, 'fake_peer', 1, env)],
                                 {'torch.compile': 'pip install torch'})
    monkeypatch.setattr(B, 'idle_probe', lambda seconds=0.2, pids=(): 0.0)   # this shared machine may be loaded
    monkeypatch.setattr(B, 'others', lambda a, b: 0.0)
    monkeypatch.setattr(B, '_torch', lambda: pytest.fail("--peers: torch in graphc's process (it is a peer's)"))
    res, missing = B.run_peers(1, quick=True, only=['mlp1', 'mlp-train', 'chain1k'], threads=(2, 1), start=start)
    assert started == [2, 1] and list(res) == [1, 2]   # the most threads first, reported in order
    assert 'torch.compile' in missing and 'torch' not in missing   # (the stand-in's: the real start names it)
    for n in (1, 2):
        r = res[n]
        assert list(r) == ['mlp1', 'mlp-train', 'chain1k']
        assert {'numpy', 'jax', 'mxnet', 'eager', 'hybridized'} <= set(r['mlp1']['times'])
        assert 'mxnet' not in r['mlp-train']['times'] and 'jax' in r['mlp-train']['times']   # no twin: '-'
        for k, (lo, hi) in r['mlp1']['spread'].items():
            assert 0 < lo <= r['mlp1']['times'][k] <= hi, k
        assert r['chain1k']['load']['loaded'] is False
    text = B.peer_table(res, missing).splitlines()
    heads = [i for i, ln in enumerate(text) if ln.startswith('workload')]
    assert len(heads) == 2 and text[heads[0] - 1] == '1 thread: median ms (p10-p90)'
    assert 'torch.compile *' in text[heads[0]] and text[heads[0]].split()[-4:] == ['hybridized', '/', 'best', 'peer']
    row = text[heads[0] + 2].split()
    assert row[0] == 'mlp1' and row[-1].endswith('x') and '(' in row[2]   # median (p10-p90) cells
    md = [ln for ln in text if ln.startswith('| ')]
    assert md[0] == '| workload | best peer (1 thr / 2 thr) | graphc hybridized | graphc / best |' and len(md) == 4
    assert md[1].startswith('| MLP 784-256-256-10 inference, batch 1 | ') and md[1].count(' / ') >= 3
    t = res[1]['mlp1']['times']
    best = min(t[k] for k in B.PEERS if k in t)   # (onnxruntime too, where installed: it may be fastest)
    assert md[1].split('|')[4].strip().split(' / ')[0] == f"{t['hybridized'] / best:.2f}x"
    assert '* torch.compile: not here; to include it: pip install torch' in text
    assert not any(ln.startswith('WARNING') for ln in text)


def test_a_peer_computing_something_else_fails_loudly():
    with pytest.raises(AssertionError, match='bench: jax disagrees with numpy'):
        B.chain(16, 1, peers=[NumpyPeer(off=1e-2)])
    with pytest.raises(AssertionError, match='bench: jax disagrees with numpy'):
        B.mlp_inference(2, 1, peers=[NumpyPeer(off=1e-3)])
    with pytest.raises(GraphcError, match='disagree on the loss of training step 2.*jax'):
        B.mlp_train(1, peers=[NumpyPeer(off=1e-3)])   # the first loss agrees, the update is another
    r = B.mlp_train(1, peers=[NumpyPeer()])['times']   # and the honest one passes
    assert {'numpy', 'jax', 'eager', 'hybridized'} <= set(r)


def test_loaded_machine_warning(monkeypatch):
    probes = iter([0.05, 1.4])   # quiet before the workload, another process busy after it
    monkeypatch.setattr(B, 'idle_probe', lambda seconds=0.2, pids=(): next(probes))
    monkeypatch.setattr(B, 'others', lambda a, b: None)   # the timed rounds: too short to tell
    start, _ = _fake_start([NumpyPeer])
    res, missing = B.run_peers(1, quick=True, only=['chain1k'], threads=(1,), start=start)
    load = res[1]['chain1k']['load']
    assert load['loaded'] is True and load['others_idle_after'] == 1.4 and len(load['loadavg']) == 2
    text = B.peer_table(res, missing)
    assert [ln for ln in text.splitlines() if ln.startswith('chain1k')][0].endswith('x  (loaded)')
    assert "WARNING: the machine was loaded during chain1k (1 thr: 1.40 cores)" in text


def test_other_processes_cpu_use_is_seen():
    """others() is the machine's busy time less this process's, per second of wall time; a spinning child
    process shows up as about a core (more when this shared machine is busy anyway)."""
    assert B.others((0.0, 10.0, 2.0), (2.0, 13.0, 3.0)) == pytest.approx(1.0)
    assert B.others((0.0, 10.0, 2.0), (0.05, 13.0, 3.0)) is None and B.others(None, (1, 2, 3)) is None
    if B.cpu_sample() is None:
        pytest.skip('no /proc/stat')
    import subprocess
    spin = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    try:
        import time
        time.sleep(0.3)
        assert B.idle_probe(0.5) > 0.5
    finally:
        spin.kill()
        spin.wait()


def test_worker_protocol_no_pickle_and_errors(tmp_path):
    from graphc import bench_peers
    (tmp_path / 'fake_peer.py').write_text(FAKE_BACKEND)
    w = bench_peers.Worker('mxnet', sys.executable, 'fake_peer', 1, dict(os.environ, PYTHONPATH=str(tmp_path)))
    try:
        x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
        twin = w.twin({'model': 'chain'}, {'x': x})
        np.testing.assert_allclose(twin(), np.tanh(x * 2 + 1) / (1 + np.exp(-x)) - np.maximum(x, 0) / 3, rtol=1e-6)
        assert 0 < twin.rep() < 1
        with pytest.raises(GraphcError, match="mxnet failed on build: NotImplementedError: the fake peer has no"):
            w.twin({'model': 'lenet'}, {'x': x})
        with pytest.raises(GraphcError, match='mxnet failed on build: ValueError: .*allow_pickle=False'):
            w.twin({'model': 'chain'}, {'x': np.array([{'a': 1}], dtype=object)})   # arrays never unpickle
        assert twin.rep() > 0   # the worker lives on after an error
    finally:
        w.close()
    assert w.proc.returncode == 0 and not os.path.exists(w.dir)
    dead = bench_peers.Worker('mxnet', sys.executable, 'no_such_backend', 1, dict(os.environ))
    with pytest.raises(GraphcError, match="(?s)mxnet peer's process ended.*No module named 'no_such_backend'"):
        dead.twin({'model': 'chain'}, {'x': x})
    dead.close()
    for name in os.listdir(os.path.dirname(bench_peers.__file__)):   # pickle is never how arrays travel
        if name.endswith('.py'):
            src = open(os.path.join(os.path.dirname(bench_peers.__file__), name)).read()
            assert 'pickle' not in src.replace('allow_pickle=False', '').replace('never pickles', '') \
                .replace('never as\npickles', '').replace('(never pickles)', ''), name


def _state(pid, want, wait=2.0):
    """The process's state letter from /proc (R, S, T: stopped), waited for up to `wait` s to become `want`."""
    import time
    t0 = time.monotonic()
    while True:
        with open(f'/proc/{pid}/stat') as f:
            st = f.read().rsplit(')', 1)[1].split()[0]
        if st == want or time.monotonic() - t0 > wait:
            return st
        time.sleep(0.01)


@pytest.mark.skipif(not os.path.exists('/proc/self/stat') or not hasattr(signal, 'SIGSTOP'), reason='no /proc, SIGSTOP')
def test_worker_is_parked_between_commands(tmp_path):
    """A peer's process is stopped whenever it is not answering a command (its spinning threads cannot take a
    core from the next variant), answers every command all the same, and closes cleanly."""
    from graphc import bench_peers
    (tmp_path / 'fake_peer.py').write_text(FAKE_BACKEND)
    w = bench_peers.Worker('jax', sys.executable, 'fake_peer', 1, dict(os.environ, PYTHONPATH=str(tmp_path)))
    try:
        x = np.ones((3, 3), np.float32)
        twin = w.twin({'model': 'chain'}, {'x': x})
        assert _state(w.proc.pid, 'T') == 'T'
        for _ in range(3):   # parked: stopped, and no thread of it running any more
            assert twin.rep() > 0 and _state(w.proc.pid, 'T', wait=0) == 'T'
            assert not bench_peers._running(w.proc.pid)
        np.testing.assert_allclose(twin(), np.tanh(x * 2 + 1) / (1 + np.exp(-x)) - np.maximum(x, 0) / 3, rtol=1e-6)
    finally:
        w.close()
    assert w.proc.returncode == 0


SPAWNING_BACKEND = FAKE_BACKEND + '''
import subprocess
import sys
CHILD = []


def build(spec, arrays, _build=build):   # a framework that starts a helper process (inductor's compile workers)
    CHILD.append(subprocess.Popen([sys.executable, '-c', 'while True: pass']))
    return _build(spec, arrays)
'''


@pytest.mark.skipif(not os.path.exists('/proc/self/stat') or not hasattr(signal, 'SIGSTOP'), reason='no /proc, SIGSTOP')
def test_a_worker_is_a_process_group_parked_and_counted_as_the_bench_s_own(tmp_path):
    """A worker answers a ping once started (start() waits for each before any timing); it runs as a process
    group of its own: a child it starts is parked with it, and the child's CPU counts as the bench's own
    (cpu_sample's pids: the bench's load check does not take it for another process's load)."""
    from graphc import bench_peers
    (tmp_path / 'spawning_peer.py').write_text(SPAWNING_BACKEND)
    w = bench_peers.Worker('jax', sys.executable, 'spawning_peer', 1, dict(os.environ, PYTHONPATH=str(tmp_path)))
    child = None
    try:
        w.ready()
        assert w.pids() == [w.proc.pid] and os.getpgid(w.proc.pid) == w.proc.pid != os.getpgid(0)
        twin = w.twin({'model': 'chain'}, {'x': np.ones((2, 2), np.float32)})
        child = next(p for p in w.pids() if p != w.proc.pid)
        assert os.getpgid(child) == w.proc.pid
        assert _state(child, 'T') == 'T' and _state(w.proc.pid, 'T') == 'T'   # parked, the child too
        assert twin.rep() > 0 and _state(child, 'T') == 'T'
        w.park(False)   # (the child spins now: as the bench's own)
        import time
        a, a_all = B.cpu_sample(), B.cpu_sample(w.pids())
        time.sleep(0.5)
        b, b_all = B.cpu_sample(), B.cpu_sample(w.pids())
        assert (b_all[2] - a_all[2]) - (b[2] - a[2]) > 0.1   # its CPU seconds, counted with pids only
        w.park()
    finally:
        w.close()
        if child is not None:
            os.kill(child, signal.SIGKILL)
    dead = bench_peers.Worker('jax', sys.executable, 'no_such_backend', 1, dict(os.environ))
    with pytest.raises(GraphcError, match="(?s)jax peer's process ended.*No module named 'no_such_backend'"):
        dead.ready()
    dead.close()


def test_the_load_check_leaves_out_the_bench_s_own_processes(monkeypatch):
    seen = []
    monkeypatch.setattr(B, 'idle_probe', lambda seconds=0.2, pids=(): seen.append(list(pids)) or 0.0)
    monkeypatch.setattr(B, 'proc_cpu', lambda: {os.getpid(): ('me', 1.0), 11: ('peer', 1.0), 12: ('other', 1.0)})
    r = B.load_check(lambda: {'times': B.Times()}, own=lambda: [11])
    assert seen == [[11], [11]] and r['load']['top_others'] == []
    assert B.top_others({11: ('peer', 0.0), 12: ('other', 0.0)}, {11: ('peer', 2.0), 12: ('other', 1.0)},
                        own=[11]) == [['other', 12, 1.0]]


def test_missing_peers_are_named_with_how_to_install(monkeypatch):
    from graphc import bench_peers, config
    monkeypatch.delenv(config.bench_mxnet_python.name, raising=False)
    monkeypatch.setattr(bench_peers.importlib.util, 'find_spec', lambda name: None)
    peers, missing = bench_peers.start(1)
    assert peers == [] and list(missing) == ['torch', 'torch.compile', 'jax', 'mxnet']
    assert 'GRAPHC_BENCH_MXNET_PYTHON' in missing['mxnet'] and 'mxnet==1.9.1' in missing['mxnet']
    monkeypatch.setenv(config.bench_mxnet_python.name, '/no/such/python3.8')
    with pytest.raises(GraphcError, match="GRAPHC_BENCH_MXNET_PYTHON='/no/such/python3.8': no such Python"):
        bench_peers.start(1, names=('mxnet',))
    with pytest.raises(GraphcError, match="unknown peer 'tf'"):
        bench_peers.start(1, names=('tf',))


def test_set_threads_and_back():
    from graphc import config
    was = config.num_threads()
    undo = B.set_threads(1)
    assert config.num_threads() == 1
    torch = B._torch()
    if torch is not None:
        assert torch.get_num_threads() == 1
    undo()
    assert config.num_threads() == was


@pytest.mark.skipif(not os.environ.get('GRAPHC_BENCH_MXNET_PYTHON'), reason='GRAPHC_BENCH_MXNET_PYTHON not set')
def test_real_mxnet_worker_agrees():
    """MXNet 1.9.1 in its own Python: the MLP forward and its SGD-momentum step from graphc's weights agree with
    hand NumPy (the workloads check), then time through the pipe."""
    from graphc import bench_peers
    peers, missing = bench_peers.start(1, names=('mxnet',))
    try:
        assert [p.name for p in peers] == ['mxnet'] and not missing
        for r in (B.mlp_inference(2, 2, peers=peers), B.mlp_train(2, peers=peers), B.chain(64, 2, peers=peers),
                  B.resnet_inference(2, 1, size=16, peers=peers), B.resnet_train(4, 1, size=16, peers=peers),
                  B.lenet_cold(1, bs=4, peers=peers)):   # (model_zoo's ResNet-18 in MXNet: its parameter order)
            assert r['times']['mxnet'] > 0
    finally:
        for p in peers:
            p.close()


def test_jax_worker_agrees():
    pytest.importorskip('jax')
    from graphc import bench_peers
    peers, _ = bench_peers.start(1, names=('jax',))
    try:
        for r in (B.mlp_train(2, peers=peers), B.lstm_forward(2, steps=3, batch=2, inp=4, hidden=8, peers=peers),
                  B.resnet_inference(2, 1, size=16, peers=peers), B.resnet_train(4, 1, size=16, peers=peers)):
            assert r['times']['jax'] > 0
    finally:
        for p in peers:
            p.close()


def test_worker_environments_set_threads(monkeypatch):
    """What each worker is started with: its thread count (OpenMP, BLAS; XLA one-thread flags; MXNet one engine
    worker) and, for MXNet's other Python, none of this Python's PYTHONPATH."""
    from graphc import bench_peers, config
    seen, ready = {}, []

    class Named(str):   # a stand-in worker: its name, waited for at start
        def ready(self):
            ready.append(str(self))
    monkeypatch.setattr(bench_peers, 'Worker', lambda name, python, backend, threads, env, *more:
                        seen.setdefault(name, (python, backend, threads, env) + more) and Named(name))
    monkeypatch.setattr(bench_peers.importlib.util, 'find_spec', lambda name: True)   # as if jax were installed
    monkeypatch.setenv(config.bench_mxnet_python.name, sys.executable)
    monkeypatch.setenv('PYTHONPATH', '/some/site-packages')
    peers, missing = bench_peers.start(1)
    assert peers == ['torch', 'torch.compile', 'jax', 'mxnet'] == ready and not missing
    assert seen['torch'][:3] == (sys.executable, 'torch_peer', 1) and seen['torch'][3]['OMP_NUM_THREADS'] == '1'
    assert seen['torch.compile'][1] == 'torch_peer' and seen['torch.compile'][4:] == (
        {'compile': True}, ('TORCHINDUCTOR_CACHE_DIR',))   # compiled, from an empty inductor cache
    py, backend, threads, env = seen['jax']
    assert (py, backend, threads) == (sys.executable, 'jax_peer', 1) and env['PYTHONPATH'] == '/some/site-packages'
    assert '--xla_cpu_multi_thread_eigen=false' in env['XLA_FLAGS'] and env['OMP_NUM_THREADS'] == '1'
    py, backend, threads, env = seen['mxnet']
    assert backend == 'mxnet_peer' and 'PYTHONPATH' not in env and env['MXNET_CPU_WORKER_NTHREADS'] == '1'
    seen.clear()
    bench_peers.start(2, names=('jax', 'mxnet'))
    assert 'eigen' not in seen['jax'][3]['XLA_FLAGS'] and seen['mxnet'][3]['OMP_NUM_THREADS'] == '2'


def test_resnet_inference_uses_drawn_running_statistics():
    """The ResNet-18 inference row at 2 images of 16x16: eager, hybridized (and torch in this process, when
    installed, from the same weights and running statistics) agree; the statistics are not the initial 0 and 1."""
    r = B.resnet_inference(2, 1, size=16)
    assert {'eager', 'hybridized'} <= set(r['times']) and min(r['times'].values()) > 0
    assert 'resnet-infer' in [k for k, _, _ in B.standard(1, quick=True)]


def test_lenet_cold_fresh_processes_interleaved(monkeypatch):
    """lenet-cold: graphc's first training step in a fresh worker with an empty kernel cache, per sample, beside a
    peer's (graphc_peer posing as MXNet: mxnet_peer's twin on graphc's API, so the losses must agree)."""
    from graphc import bench_peers
    started = []
    real = bench_peers.Worker

    class Spy(real):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            started.append((self.name, self.proc.pid, dict(self.args[4]), self.args[6]))
    peer = real('mxnet', sys.executable, 'graphc_peer', 1, dict(os.environ))
    monkeypatch.setattr(bench_peers, 'Worker', Spy)   # graphc_worker's and spawn's
    try:
        r = B.lenet_cold(2, bs=4, peers=[peer])
    finally:
        peer.close()
    t = r['times']
    assert set(t) == {'hybridized', 'mxnet'} and all(len(v) == 2 for v in r['samples'].values())
    for k, (lo, hi) in t.spread.items():
        assert 0 < lo <= t[k] <= hi
    assert sorted(n for n, *_ in started[:2]) == sorted(n for n, *_ in started[2:]) == ['graphc', 'mxnet']
    # (interleaved, in timeit's shuffled order, a process each)
    assert len({pid for _, pid, *_ in started}) == 4
    assert [f for n, _, _, f in started if n == 'graphc'] == [('GRAPHC_CACHE_DIR',)] * 2   # a new empty cache each
    assert 'lenet-cold' in [k for k, _, _ in B.standard(1, quick=True, peers=[])]
    assert 'lenet-cold' not in [k for k, _, _ in B.standard(1, quick=True)]
    assert [k for k, _, _ in B.standard(1, quick=True, only=['lenet-cold'])] == ['lenet-cold']


def test_torch_workers_agree():
    """PyTorch eager and torch.compile in worker processes (as bench --peers runs them): the MLP forward, its SGD
    step, and the ResNet-18 forward and step (its BatchNorm running statistics loaded) agree with graphc's."""
    pytest.importorskip('torch')
    from graphc import bench_peers
    peers, missing = bench_peers.start(1, names=('torch', 'torch.compile'))
    try:
        assert [p.name for p in peers] == ['torch', 'torch.compile'] and not missing
        r = B.mlp_inference(2, 2, peers=peers)['times']
        assert r['torch'] > 0 and r['torch.compile'] > 0
        eager = peers[:1]
        for r in (B.mlp_train(2, peers=eager), B.resnet_inference(2, 1, size=16, peers=eager),
                  B.resnet_train(4, 1, size=16, peers=eager)):
            assert r['times']['torch'] > 0
    finally:
        for p in peers:
            p.close()
