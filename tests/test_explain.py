"""gc.explain reports what runs: the memory plan of the running Plan, the training step as compiled (its two
halves and the values the forward saves), and the values hoisted into the prelude."""
import re

import numpy as np

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon import nn
from graphc.runtime import cpu

import pytest

pytestmark = pytest.mark.skipif(not cpu.enabled(), reason="the compiled backend builds the Plans")


def lenet_ish():
    gc.random.seed(1)
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(8, 3, activation='relu'), nn.MaxPool2D(2, 2), nn.Flatten(),
                nn.Dense(64, activation='relu'), nn.Dense(64, activation='tanh'), nn.Dense(32, activation='relu'),
                nn.Dense(10))
    net.initialize(gc.init.Xavier())
    return net


def arenas(text):
    """(arena, naive) in KB, as printed, per memory plan of the text."""
    return re.findall(r"memory plan: arena ([\d.]+) KB for \d+ values? \(naive ([\d.]+) KB", text)


def kb(plan):
    return (f"{plan.arena_bytes / 1e3:.1f}", f"{plan.naive_bytes / 1e3:.1f}")


def test_inference_memory_plan_is_the_running_plans():
    net = lenet_ish()
    x = nd.random.normal(shape=(4, 1, 12, 12))
    text = gc.explain(net, x, print_graph=False, file=open('/dev/null', 'w'))
    net.hybridize()
    net(x)
    plan = net.cached_graph()._main_plan
    assert plan.program is not None and plan.arena_bytes < plan.naive_bytes, (plan.arena_bytes, plan.naive_bytes)
    assert arenas(text) == [kb(plan)], text
    prog = plan.program  # every arena value sits where the memory plan puts it
    base = min(a.ctypes.data for a in prog.arena_views.values())
    assert {k: a.ctypes.data - base for k, a in prog.arena_views.items()} == prog.memory.offset
    assert base % 64 == 0 and min(prog.memory.offset.values()) == 0
    shared = [ln for ln in text.splitlines() if ln.startswith('  shared: ')]
    assert len(shared) == len(plan.program.memory.shared()) > 0, text


def test_training_step_is_reported_as_compiled():
    net = lenet_ish()
    x = nd.random.normal(shape=(4, 1, 12, 12))
    text = gc.explain(net, x, training=True, print_graph=False, file=open('/dev/null', 'w'))
    net.hybridize()
    for _ in range(2):   # (the second step swaps in the compiled plans: runtime/tiered.py)
        with autograd.record():
            y = net(x)
        y.backward()
    entry = net.cached_graph()
    (need,) = entry.op._compiled
    fplan, bplan, saved, _, _ = entry.op.compiled(need)
    assert '-- forward: passes' in text and '-- backward: passes' in text, text
    assert f"the forward also outputs {len(saved)} values the backward reads" in text, text
    for v in saved:
        assert re.search(rf"^  {re.escape(v.name)} +{re.escape(gc.base.fmt_shape(v.shapes[0]))}", text, re.M), v.name
    assert arenas(text) == [kb(p) for p in (fplan, bplan) if p.program is not None], text


class Scaled(gluon.HybridBlock):
    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.w = self.params.get('w', shape=(6,))

    def hybrid_forward(self, F, x, w):
        return F.relu(F.broadcast_mul(x, F.exp(w).reshape((1, 6))))


def test_hoisted_values_are_shown():
    net = Scaled()
    net.initialize(gc.init.Uniform())
    x = nd.ones((3, 6))
    text = gc.explain(net, x, print_graph=False, file=open('/dev/null', 'w'))
    net.hybridize()
    y = net(x)
    _, hvars, main = net.cached_graph()._hoist
    m = re.search(r"-- hoisted: (\d+) ops read only parameters: .*; values: (\d+)", text)
    assert m and int(m[1]) >= 1 and int(m[2]) == len(hvars), text
    assert all(f"  {v.name} " in text for v in hvars), text
    np.testing.assert_allclose(y.asnumpy(), np.maximum(x.asnumpy() * np.exp(net.w.data().asnumpy()), 0), rtol=1e-6)


def test_memory_plan_off_gives_every_value_its_own_buffer(monkeypatch):
    net = lenet_ish()
    x = nd.random.normal(shape=(4, 1, 12, 12))
    monkeypatch.setenv('GRAPHC_DISABLE_PASSES', 'plan_memory')
    text = gc.explain(net, x, print_graph=False, file=open('/dev/null', 'w'))
    ((arena, naive),) = arenas(text)
    assert arena == naive and 'shared:' not in text, text
    want = net(x).asnumpy()  # eager
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), want, rtol=1e-5, atol=1e-6)
    assert net.cached_graph()._main_plan.arena_bytes == net.cached_graph()._main_plan.naive_bytes
