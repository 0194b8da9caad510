"""The fused RNN op's device loop beyond one-direction LSTM (runtime/cuda.rnn_op): GRU, vanilla RNN (tanh, relu),
bidirectional and stacked, forward and gradient. No GPU here: the loop runs with NumPy as the array library and
its gate kernels are the generated CUDA built for the host (runtime/emulate.py), against the CPU's fused RNN op
(graphc/ops/rnn.py: the interpreter); hybridized training on gc.gpu(0) uses the cupy stand-in tests/fake_cupy.py,
as tests/test_gpu_training.py does.

Tolerance: each device op within 1e-5 of the interpreter relative to max(1, max |reference|); parameters after
5 training steps within rtol 1e-4, atol 1e-5 of the CPU run (float32; sums in another order).
"""

import numpy as np
import pytest

import graphc as gc
from graphc import device, sym
from graphc.gluon import HybridBlock, nn, rnn
from graphc.graph import Graph
from graphc.ops import rnn as rnn_ops
from graphc.passes.autodiff import grad_graph
from graphc.registry import get
from graphc.runtime import cuda, emulate
from graphc.symbol.symbol import input_var

pytestmark = pytest.mark.skipif(emulate.gxx_path() is None,
                                reason="g++ not on PATH: the host emulation needs a C++ compiler")

# (mode, layers, bidirectional, state_outputs)
CONFIGS = [('gru', 1, False, True), ('gru', 2, True, True), ('rnn_tanh', 2, False, True), ('rnn_relu', 1, True, False),
           ('lstm', 2, True, True), ('lstm', 1, True, False), ('gru', 1, True, False)]


def _rnn_graphs(mode, L, bi, so, T=4, N=3, C=5, H=4):
    """The RNN op's forward graph (all its visible outputs) and its joint gradient graph, with one feed."""
    a = get('RNN').canon(dict(state_size=H, num_layers=L, mode=mode, bidirectional=bi, state_outputs=so))
    D = 2 if bi else 1
    specs = [('x', (T, N, C)), ('w', (rnn_ops.param_size(a, C),)), ('h', (L * D, N, H))] + \
        ([('c', (L * D, N, H))] if mode == 'lstm' else [])
    vs = [input_var(n, s, 'float32') for n, s in specs]
    out = sym.RNN(*vs, **{k: a[k] for k in ('state_size', 'num_layers', 'mode', 'bidirectional', 'state_outputs')})
    nout = rnn_ops._n_visible(a)
    fwd = Graph([out[k]._one() for k in range(nout)] if nout > 1 else [out._one()], [v._one()[0] for v in vs])
    joint, heads, _ = grad_graph(fwd, list(fwd.inputs))
    rng = np.random.default_rng(L * 10 + D + len(mode))
    feed = {v: (rng.normal(size=v.shapes[0]) * 0.5).astype(np.float32) for v in list(fwd.inputs) + heads}
    return [(fwd, feed), (joint, feed)]


@pytest.fixture(scope='module')
def graphs():
    return [gf for cfg in CONFIGS for gf in _rnn_graphs(*cfg)]


def test_the_device_loop_matches_the_cpu_rnn_op_in_emulation(graphs):
    kinds = set()
    for graph, feed in graphs:
        rows = [(n.op.name, how) for n, how, _ in cuda.graph_kernels(graph) if n.op.name in ('RNN', '_backward_RNN')]
        assert rows and all(how == 'device' for _, how in rows), rows
        kinds |= {k.kind for k in cuda.kernels_of(graph)}
        for name, _, err in emulate.check_graph(graph, feed):
            assert err <= 1e-5, (name, err)
    assert kinds >= {'gru', 'grugrad', 'rnn', 'rnngrad', 'lstm', 'lstmgrad'}


def test_each_gate_kernel_matches_its_reference_in_emulation():
    """The kernels alone (cuda.Kernel.reference, the NumPy step), on values where relu and the gates saturate."""
    rng = np.random.default_rng(7)
    for mode in ('lstm', 'gru', 'rnn_tanh', 'rnn_relu'):
        for grad in (False, True):
            k = cuda._cell_kernel(mode, 3, 5, np.dtype('float32'), grad)
            ins = [(rng.normal(size=s) * 3).astype(np.float32) for s in k.in_shapes]
            if grad and mode != 'rnn_relu':  # (activations in their range, as the forward stores them)
                ins[0] = np.tanh(ins[0]) if mode == 'rnn_tanh' else 1 / (1 + np.exp(-ins[0]))
            _, _, err = emulate.check_kernel(k, ins)
            assert err <= 1e-5, (mode, grad, err)


@pytest.mark.skipif(cuda.nvcc_path() is None, reason="nvcc not on PATH: the CUDA toolkit compiles the kernels")
def test_every_gate_kernel_compiles_with_nvcc_for_sm80_and_sm90(graphs):
    ks = [k for graph, _ in graphs for k in cuda.kernels_of(graph)]
    ks += [cuda._cell_kernel(m, 2, 3, np.dtype('float64'), g) for m in ('gru', 'rnn_tanh', 'rnn_relu') for g in (0, 1)]
    ks += [cuda._cell_kernel(m, 2, 3, dt, g) for m in ('lstm', 'gru', 'rnn_tanh', 'rnn_relu') for g in (0, 1)
           for dt in (np.dtype('float16'), cuda.BF16) if dt is not None]  # (16-bit storage, float compute)
    fatbin = cuda.nvcc(cuda.module_source(ks))  # warnings are errors
    assert b'-arch sm_80' in fatbin and b'-arch sm_90' in fatbin


def test_what_the_loop_does_not_cover_stays_off_it():
    for extra in (dict(p=0.5), dict(projection_size=2), dict(lstm_state_clip_min=-1.0, lstm_state_clip_max=1.0)):
        a = dict(state_size=4, num_layers=2 if 'p' in extra else 1, mode='lstm', state_outputs=True, **extra)
        x, h, c = input_var('x', (3, 2, 5), 'float32'), input_var('h', (a['num_layers'], 2, extra.get(
            'projection_size', 4)), 'float32'), input_var('c', (a['num_layers'], 2, 4), 'float32')
        w = input_var('w', (rnn_ops.param_size(get('RNN').canon(a), 5),), 'float32')
        node = sym.RNN(x, w, h, c, **a)[0]._one()[0]
        assert cuda.rnn_op(node) is None, extra


# ---------------------------------------------------------------- hybridized training on gc.gpu(0)
class SeqLM(HybridBlock):
    """Embedding -> a recurrent layer (NTC) -> Dense over the vocabulary; returns the logits and the states."""

    def __init__(self, layer, vocab=12, embed=8, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.embed = nn.Embedding(vocab, embed)
            self.rnn = layer
            self.out = nn.Dense(vocab, flatten=False, in_units=layer._hidden_size * (2 if layer._dir == 2 else 1))

    def hybrid_forward(self, F, x, *states):
        y, new = self.rnn(self.embed(x), list(states))
        return (self.out(y), *new)


def _train(layer, n_states, cp):
    import test_gpu_training as tg
    rng = np.random.default_rng(2)
    L, D, H = layer._num_layers, layer._dir, layer._hidden_size
    h = np.zeros((L * D, 2, H), np.float32)
    xs = [rng.integers(0, 12, (2, 5)).astype(np.float32)] + [h] * n_states
    _, host, ops = tg.compare(lambda: SeqLM(type(layer)(**layer._kw)), xs, rng.integers(0, 12, (2, 5)), cp)
    assert host == [] and not device.HOST_OPS
    assert {'RNN', '_backward_RNN', 'Embedding'} <= ops


def _layer(cls, hidden, **kw):
    layer = cls(hidden, layout='NTC', input_size=8, **kw)
    layer._kw = dict(hidden_size=hidden, layout='NTC', input_size=8, **kw)
    return layer


def test_a_char_gru_trains_hybridized_on_the_gpu_as_on_the_cpu(cp):
    _train(_layer(rnn.GRU, 16), 1, cp)


def test_a_bidirectional_lstm_trains_hybridized_on_the_gpu_as_on_the_cpu(cp):
    _train(_layer(rnn.LSTM, 8, num_layers=2, bidirectional=True), 2, cp)


def test_a_bidirectional_relu_rnn_trains_hybridized_on_the_gpu_as_on_the_cpu(cp):
    _train(_layer(rnn.RNN, 8, activation='relu', bidirectional=True), 1, cp)


def test_gc_gpu_is_where_the_layer_runs(cp):
    """Eager (not hybridized) on gc.gpu(0): the layer's RNN op runs as the device loop too."""
    net = SeqLM(_layer(rnn.GRU, 6, bidirectional=True))
    net.initialize(ctx=gc.gpu(0))
    x = gc.nd.array(np.arange(10).reshape(2, 5) % 12, ctx=gc.gpu(0))
    h = gc.nd.zeros((2, 2, 6), ctx=gc.gpu(0))
    y, h2 = net(x, h)
    assert y.shape == (2, 5, 12) and h2.shape == (2, 2, 6) and not device.HOST_OPS


def test_unrolled_gru_cells_train_as_the_fused_op_on_the_device_loop(cp):
    """GRU cells stepped over time: fuse_rnn makes them one RNN op (mode gru), which now runs as the device loop."""
    import test_gpu_training as tg

    class GruLM(HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.cell = rnn.GRUCell(6, input_size=4)
                self.out = nn.Dense(5, flatten=False, in_units=6)

        def hybrid_forward(self, F, x):
            return self.out(self.cell.unroll(3, x, layout='NTC', merge_outputs=True)[0])
    x = np.random.default_rng(5).normal(size=(2, 3, 4)).astype(np.float32)
    _, host, ops = tg.compare(GruLM, [x], np.arange(6) % 5, cp)
    assert host == [] and not device.HOST_OPS and {'RNN', '_backward_RNN'} <= ops


# ---------------------------------------------------------------- float16 storage (float32 compute and GEMM sums)
F16_EPS = 2.0 ** -10


@pytest.mark.parametrize('cfg', CONFIGS, ids=['-'.join(map(str, c)) for c in CONFIGS])
def test_the_device_loop_in_float16_matches_float32_rounded(cfg):
    """The loop with float16 storage (gate kernels compute in float, GEMMs and bias sums accumulate in float32)
    against the float32 interpreter on the same float16-representable inputs: within 2 eps of float16 relative to
    max(1, max |reference|) over 4 steps (each step's state rounds once; measured at most 0.93 eps)."""
    import test_gpu_amp as amp
    for graph, feed in _rnn_graphs(*cfg):
        feed = {v: amp.widened(amp.rounded(a, amp.F16)) for v, a in feed.items()}
        want = amp._outputs(graph, feed)
        plan = cuda.GpuPlan(amp.retype(graph, amp.F16), emulate.EmuDevice())
        got = plan({v: amp.rounded(a, amp.F16) for v, a in feed.items()})
        assert plan.host_ops == [] and {k.kind for k in cuda.kernels_of(graph)} & {'lstm', 'gru', 'rnn'}
        for g, w in zip(got, want):
            assert g.dtype == np.float16 and emulate.max_error(g, w)[1] <= 2 * F16_EPS, (cfg, emulate.max_error(g, w))


@pytest.mark.parametrize('cfg', [('lstm', 2, True, True), ('gru', 1, False, True), ('rnn_tanh', 1, True, False)],
                         ids=['lstm', 'gru', 'rnn_tanh'])
@pytest.mark.skipif(cuda.BF16 is None, reason="bfloat16 needs ml_dtypes (pip install ml_dtypes)")
def test_the_device_loop_in_bfloat16_matches_float32_rounded(cfg):
    """The loop with bfloat16 storage (GEMMs through cuda.matmul: upcast to float32, rounded once) against the
    float32 interpreter as above, within 4 eps of bfloat16 (2^-7): the gradients round the carried state's gradient
    each step (measured at most 2.3 eps)."""
    import test_gpu_amp as amp
    for graph, feed in _rnn_graphs(*cfg):
        feed = {v: amp.widened(amp.rounded(a, amp.BF16)) for v, a in feed.items()}
        want = amp._outputs(graph, feed)
        plan = cuda.GpuPlan(amp.retype(graph, amp.BF16), emulate.EmuDevice())
        got = plan({v: amp.rounded(a, amp.BF16) for v, a in feed.items()})
        assert plan.host_ops == [] and {k.kind for k in cuda.kernels_of(graph)} & {'lstm', 'gru', 'rnn'}
        for g, w in zip(got, want):
            e = emulate.max_error(g, w)[1]
            assert g.dtype == amp.BF16 and e <= 4 * amp.EPS[amp.BF16], (cfg, e)


class CharLM(HybridBlock):
    """The char-LSTM's shape: Embedding -> LSTM (NTC) -> Dense over the vocabulary, logits as (N * T, vocab)."""

    def __init__(self, vocab=12, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.embed = nn.Embedding(vocab, 8)
            self.rnn = rnn.LSTM(16, layout='NTC', input_size=8)
            self.out = nn.Dense(vocab, flatten=False, in_units=16)
        self.vocab = vocab

    def hybrid_forward(self, F, x):
        return F.reshape(self.out(self.rnn(self.embed(x))), (-1, self.vocab))


def test_a_float16_char_lstm_trains_on_the_device_loop_with_float32_masters(cp):
    """Cast to float16 with multi_precision=True, 5 hybridized steps on gc.gpu(0): the fused RNN op and its
    gradient run on the device loop in float16 (no host op, no cells; the layer's begin states are its batch-0
    `_zeros`), and each float32 master weight's distance to the float32 CPU run, relative to how far that run
    moved it, each counted from its run's start (the cast rounds a recurrent weight by more than 5 steps move it),
    is at most 1% (measured: 0.05%)."""
    import test_gpu_amp as amp
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 12, (2, 5)).astype(np.float32), rng.integers(0, 12, (10,))
    w0, want, _, _ = amp.train(CharLM, gc.cpu(), x, y, False)
    _, _, net, trainer = amp.train(CharLM, gc.gpu(0), x, y, True)
    assert not device.HOST_OPS
    plans = [p for st in net.cached_graph()._gpu_steps.values() for p in (st.forward, st.backward)]
    ops = {n.op.name for p in plans for n in p.graph.nodes if not n.is_var}
    assert {'RNN', '_backward_RNN'} <= ops and all(p.host_ops == [] for p in plans)
    assert {np.dtype(d) for p in plans for n in p.graph.nodes
            if not n.is_var and n.op.name == 'RNN' for d in n.dtypes} == {amp.F16}
    states = trainer._updaters[0].states
    order = {p.name: i for i, p in enumerate(trainer._params)}
    for b, c, p in zip(want, w0, net.collect_params().values()):
        a = states[order[p.name]][1].asnumpy()  # (SGD's multi-precision state: momentum, master)
        d16, d32 = a - c.astype(np.float16).astype(np.float32), b - c  # (the master starts at the cast weight)
        moved = np.linalg.norm(d32)
        assert moved > 0 and np.linalg.norm(d16 - d32) <= 0.01 * moved, (p.name, np.linalg.norm(d16 - d32) / moved)


def test_a_layer_without_begin_states_keeps_them_on_the_device(cp):
    """A layer called without states traces its begin states as `_zeros` with the batch left 0 (MXNet's graph):
    the loop makes them zeros of the batch on the device, so the step has no host op (float32, as on the CPU)."""
    import test_gpu_training as tg
    rng = np.random.default_rng(4)
    _, host, ops = tg.compare(CharLM, [rng.integers(0, 12, (2, 5)).astype(np.float32)], rng.integers(0, 12, (10,)), cp)
    assert host == [] and not device.HOST_OPS and {'RNN', '_backward_RNN', '_zeros'} <= ops
