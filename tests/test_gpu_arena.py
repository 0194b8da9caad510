"""A GpuPlan's memory: the values its kernels write (the graph's outputs excepted) live in one device arena, one
allocation of the size passes/memory.py plans for the plan's schedule, at the planner's offsets, a value reusing
the space of one that died before its step (as the CPU plan's arena). Checked in the host emulation of the
kernels (runtime/emulate.py) and on the cupy stand-in (tests/fake_cupy.py); hybridized training on gc.gpu(0)
through these plans equals the CPU run in tests/test_gpu_training.py.
"""
import numpy as np
import pytest

import graphc as gc
from graphc import autograd, gluon, nd, sym
from graphc.graph import Graph
from graphc.interpreter import interpret
from graphc.passes import memory
from graphc.runtime import cuda, emulate
from graphc.symbol.symbol import input_var

pytestmark = pytest.mark.skipif(emulate.gxx_path() is None,
                                reason="g++ not on PATH: the host emulation needs a C++ compiler")
SIZE = 64 * 64 * 4   # bytes of one (64, 64) float32 value


def _chain(n=6):
    """x -> (tanh, transpose) n times, unfused: one kernel per op, every value (64, 64) float32."""
    x = input_var('x', (64, 64), 'float32')
    y = x
    for i in range(n):
        y = sym.tanh(y) if i % 2 == 0 else sym.transpose(y)
    return Graph([y._one()], [x._one()[0]])


def test_a_chain_of_kernels_alternates_between_two_buffers_of_one_arena():
    """Each intermediate dies at the next step, and no value takes its own input's buffer, so the planner's arena is
    two values' size (naive: five); the plan allocates exactly that once, each kernel writes its planned view, and
    the result equals the interpreter's on every call, with the arena poisoned with NaN in between."""
    graph = _chain()
    plan = cuda.GpuPlan(graph, emulate.EmuDevice())
    assert (plan.arena_bytes, plan.memory.naive_bytes) == (2 * SIZE, 5 * SIZE)
    assert sorted(set(plan.memory.offset.values())) == [0, SIZE]
    writes = []
    launch = plan.launch

    def spy(k, inputs, into=None):
        out = launch(k, inputs, into)
        writes.append((into, out))
        return out
    plan.launch = spy
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.normal(size=(64, 64)).astype(np.float32)
        (got,) = plan({graph.inputs[0]: x})
        np.testing.assert_allclose(got, interpret(graph, {graph.inputs[0]: x})[0], rtol=1e-6, atol=1e-6)
        assert not np.may_share_memory(got, plan.arena)
        plan.arena[...] = 0xFF  # (NaN in float32)
    assert plan.arena.nbytes == plan.memory.arena_bytes and len(writes) == 12
    for into, out in writes[:5]:  # the five intermediates: in the arena at their offsets; the output fresh
        assert into is not None and np.shares_memory(out[0], plan.arena)
    assert writes[5][0] == [None] and not np.shares_memory(writes[5][1][0], plan.arena)
    offsets = [out[0].__array_interface__['data'][0] - plan.arena.__array_interface__['data'][0]
               for _, out in writes[:5]]
    assert offsets == [0, SIZE, 0, SIZE, 0]


def test_without_the_memory_plan_pass_every_value_has_its_own_space(monkeypatch):
    monkeypatch.setenv('GRAPHC_DISABLE_PASSES', 'plan_memory')
    plan = cuda.GpuPlan(_chain(), emulate.EmuDevice())
    assert plan.arena_bytes == plan.memory.naive_bytes == 5 * SIZE


def test_an_output_viewing_the_arena_is_copied_out():
    """tanh(x) reshaped is the output: the reshape views an arena value that the next call overwrites."""
    x = input_var('x', (8, 8), 'float32')
    graph = Graph([sym.reshape(sym.transpose(sym.tanh(x)), shape=(64,))._one()], [x._one()[0]])
    plan = cuda.GpuPlan(graph, emulate.EmuDevice())
    assert plan.arena_bytes > 0
    a, b = (np.full((8, 8), v, np.float32) for v in (0.5, 2.0))
    (first,) = plan({graph.inputs[0]: a})
    plan({graph.inputs[0]: b})
    np.testing.assert_allclose(first, np.tanh(a).T.ravel(), rtol=1e-6)


def test_hybridized_training_plans_on_the_gpu_use_one_arena_each(cp):
    """LeNet's training step on gc.gpu(0) (the stand-in): its backward plan holds one device array of its planned
    size, and two steps give the CPU's parameters."""
    from test_gpu_amp import lenet
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 1, 28, 28)).astype(np.float32), np.arange(4) % 10

    def run(ctx):
        gc.random.seed(0)
        net = lenet()
        net.initialize(gc.init.Xavier(), ctx=ctx)
        net.hybridize()
        trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.05, 'momentum': 0.9})
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        data, label = nd.array(x, ctx=ctx), nd.array(y, ctx=ctx)
        for _ in range(2):
            with autograd.record():
                loss = loss_fn(net(data), label)
            loss.backward()
            trainer.step(4)
        return net, [p.data().asnumpy() for p in net.collect_params().values()]
    _, want = run(gc.cpu())
    net, got = run(gc.gpu(0))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    (step,) = net.cached_graph()._gpu_steps.values()
    # the forward's kernel values are all saved for the backward (its outputs: fresh arrays), so its arena is empty;
    # the backward's values grow layer by layer, so none fits a dead one's space (best fit: at most naive)
    assert step.forward.arena is None and step.forward.arena_bytes == 0
    p = step.backward
    assert len(p.memory.offset) == 6 and 0 < p.arena_bytes <= p.memory.naive_bytes
    assert type(p.arena) is cp.ndarray and p.arena.nbytes == p.arena_bytes
    assert all(off % memory.ALIGN == 0 for off in p.memory.offset.values())


@pytest.mark.skipif(not gc.context.gpu_support()[0], reason="no usable GPU")
def test_on_a_real_gpu_the_chain_runs_in_its_arena():
    from graphc import device
    graph = _chain()
    plan = cuda.GpuPlan(graph, device.device(0))
    x = np.random.default_rng(1).normal(size=(64, 64)).astype(np.float32)
    for _ in range(2):
        (got,) = plan({graph.inputs[0]: x})
        np.testing.assert_allclose(device.to_host(got), interpret(graph, {graph.inputs[0]: x})[0], rtol=1e-5,
                                   atol=1e-6)
    assert plan.arena.nbytes == 2 * SIZE
