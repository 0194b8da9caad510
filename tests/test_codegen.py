"""CPU code generation: every op with an emitter against NumPy, over broadcast patterns and dtypes;
transcendental accuracy in ULPs; NaN/Inf; fallback for ops without an emitter; the interp switch.

Tolerances: float32 kernels within 4 ULP of NumPy for exp/sigmoid/tanh over [-100, 100] (measured
maxima in docs/NUMERICS.md), other float32 ops within rtol 1e-6; float64 within rtol 1e-13.
"""
import numpy as np
import pytest

from graphc import nd
from graphc.graph import Graph
from graphc.passes.fusion import FusedOp
from graphc.runtime import backend, conv, cpu
from graphc.interpreter import interpret
from graphc.symbol.symbol import input_var


def compiled(fn, *arrays):
    """Build fn over input vars, fuse it into one FusedOp, and run its compiled kernel."""
    vs = [input_var(f"in{i}", a.shape, a.dtype) for i, a in enumerate(arrays)]
    out = fn(*vs)
    g = Graph([out._one()], [v._one()[0] for v in vs])
    op = FusedOp('k', g)
    k = cpu.kernel_for(op)
    assert k is not None, f"no kernel for {g.text()}"
    res = np.empty(out.shape, arrays[0].dtype)
    k([np.ascontiguousarray(a) for a in arrays], [res])
    with np.errstate(all='ignore'):  # the reference warns on the inf/NaN cases these tests feed on purpose
        ref = interpret(g, {v._one()[0]: a for v, a in zip(vs, arrays)})[0]
    return res, ref


UNARY = ['negative', 'abs', 'square', 'sqrt', 'rsqrt', 'reciprocal', 'exp', 'tanh', 'sigmoid', 'relu']
SCALAR = ['_plus_scalar', '_minus_scalar', '_rminus_scalar', '_mul_scalar', '_div_scalar', '_rdiv_scalar',
          '_maximum_scalar', '_minimum_scalar', '_greater_scalar', '_greater_equal_scalar', '_lesser_scalar',
          '_lesser_equal_scalar']
BINARY = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'greater', 'greater_equal', 'lesser', 'lesser_equal',
          'equal', 'not_equal']
SHAPES = [((5, 7), (5, 7)), ((5, 1), (1, 7)), ((3, 4, 5), (5,)), ((1,), (6, 2)), ((2, 1, 3), (4, 1))]


def _data(shape, dtype, positive=False, seed=0):
    a = np.random.default_rng(seed).normal(size=shape) * 2
    return (np.abs(a) + 0.5 if positive else a).astype(dtype)


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('name', UNARY)
def test_unary(name, dtype):
    x = _data((33, 17), dtype, positive=name in ('sqrt', 'rsqrt', 'reciprocal'))
    res, ref = compiled(lambda v: getattr(nd, name)(v * 1.0), x)  # *1.0 keeps a one-op group compilable
    np.testing.assert_allclose(res, ref, rtol=2e-6 if dtype == 'float32' else 1e-13, atol=1e-7)


@pytest.mark.parametrize('name', SCALAR)
def test_scalar_ops(name):
    x = np.round(_data((6, 9), 'float32') * 2) / 2  # hits the comparison boundary values too
    res, ref = compiled(lambda v: getattr(nd, name)(v, scalar=0.5), x)
    np.testing.assert_allclose(res, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('shapes', SHAPES, ids=str)
@pytest.mark.parametrize('name', BINARY)
def test_binary_broadcast(name, shapes):
    a, b = _data(shapes[0], 'float32', seed=1), _data(shapes[1], 'float32', seed=2)
    if name in ('equal', 'not_equal'):
        a, b = np.round(a), np.round(b)
    res, ref = compiled(lambda x, y: getattr(nd, 'broadcast_' + name)(x, y), a, b)
    np.testing.assert_allclose(res, ref, rtol=1e-6, atol=1e-7)


def ulps(got, want):
    """ULP distance in float32 between got and the exactly rounded value of want (float64)."""
    w32 = want.astype(np.float32)
    spacing = np.spacing(np.abs(w32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / spacing


@pytest.mark.parametrize('name,fn', [('exp', np.exp), ('tanh', np.tanh),
                                     ('sigmoid', lambda x: 1 / (1 + np.exp(-x)))])
def test_transcendental_ulp_error(name, fn):
    x = np.concatenate([np.linspace(-100, 100, 200001), np.linspace(-1, 1, 20001),
                        np.geomspace(1e-30, 1, 1000), -np.geomspace(1e-30, 1, 1000)]).astype(np.float32)
    if name == 'exp':
        x = x[(x > -87) & (x < 88)]  # normal results; the tails are checked in test_special_values
    res, _ = compiled(lambda v: getattr(nd, name)(v * 1.0), x)
    err = ulps(res, fn(x.astype(np.float64)))
    assert err.max() <= 4, f"{name}: max {err.max():.2f} ULP at x={x[err.argmax()]}"


@pytest.mark.parametrize('name,fn', [('exp', np.exp), ('tanh', np.tanh),
                                     ('sigmoid', lambda x: 1 / (1 + np.exp(-x)))])
def test_transcendental_ulp_error_float64(name, fn):
    x = np.concatenate([np.linspace(-40, 40, 40001), np.linspace(-1, 1, 20001), np.geomspace(1e-300, 1, 500),
                        -np.geomspace(1e-300, 1, 500)])
    res, _ = compiled(lambda v: getattr(nd, name)(v * 1.0), x)
    want = fn(x.astype(np.longdouble))  # 80-bit on x86; elsewhere float64 itself, which is within 1 ULP
    err = (np.abs(res.astype(np.longdouble) - want) / np.spacing(np.abs(want.astype(np.float64)))).astype(np.float64)
    assert err.max() <= 4, f"{name}: max {err.max():.2f} ULP at x={x[err.argmax()]}"


def test_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 89.0, -89.0, -104.0, 1e-40, 200.0, -200.0], np.float32)
    for name in ('exp', 'tanh', 'sigmoid', 'relu'):
        res, ref = compiled(lambda v: getattr(nd, name)(v * 1.0), x)
        np.testing.assert_allclose(res, ref, rtol=1e-6, atol=1e-38, err_msg=name)


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_tanh_is_odd_to_the_bit_and_exact_on_tiny_arguments(dtype):
    """tanh is computed on |x| with the sign copied back: tanh(-x) is -tanh(x) bit for bit, tanh(-0) is -0, and
    tiny (subnormal) x give x itself; at the switch between its two branches and past the point where it
    rounds to 1 (the bounded exp's clamp) it stays within the ULP bound."""
    tiny = 1e-45 if dtype == 'float32' else 5e-324
    x = np.concatenate([[0.0, tiny, np.inf], np.geomspace(tiny, 50, 20001)]).astype(dtype)
    pos, _ = compiled(lambda v: nd.tanh(v * 1.0), x)
    neg, _ = compiled(lambda v: nd.tanh(v * 1.0), -x)
    assert np.array_equal(neg, -pos) and np.signbit(neg[0]) and not np.signbit(pos[0])
    small = x < (1e-30 if dtype == 'float32' else 1e-300)
    assert np.array_equal(pos[small], x[small])
    assert pos[2] == 1 and np.all(pos[x > 20] == 1)
    # around the float64 polynomial / exp switch at 0.625 and float32's clamp at 10 (tanh is 1 from 9.02 on)
    edge = (np.linspace(0.6, 0.65, 5001) if dtype == 'float64' else np.linspace(8.5, 10.5, 5001)).astype(dtype)
    res, _ = compiled(lambda v: nd.tanh(v * 1.0), edge)
    want = np.tanh(edge.astype(np.longdouble))
    err = np.abs(res.astype(np.longdouble) - want) / np.spacing(np.abs(want.astype(dtype))).astype(np.longdouble)
    assert err.max() <= 2, err.max()


def test_float32_tanh_sigmoid_exp_log_over_a_stride_of_every_float():
    """tools/ulp_sweep.py at a stride of 4999: about 680,000 float32 spread over every binade of their ranges
    (measured over every float32 at stride 1: docs/NUMERICS.md)."""
    import importlib.util, pathlib
    spec = importlib.util.spec_from_file_location('ulp_sweep', pathlib.Path(__file__).parents[1] / 'tools' / 'ulp_sweep.py')
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    for name, bound in (('tanh', 2.5), ('sigmoid', 2.5), ('exp', 1.05), ('log', 1.0)):
        worst, at, mean, n = sweep.sweep(name, 4999)
        assert worst <= bound and mean < 0.5 and n > 100_000, (name, worst, at, mean)


def test_large_kernels_split_across_threads_give_the_same_result(monkeypatch):
    x = _data((1024, 300), 'float32')
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '2')
    res, ref = compiled(lambda v: nd.tanh(v * 2 + 1) * nd.sigmoid(v) - nd.relu(v) / 3, x)
    np.testing.assert_allclose(res, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('n,k', [(3, 2), (7, 2), (1000003, 3), (1 << 20, 2)])
def test_split_runs_every_piece_once(n, k):
    """split() hands out pieces of [0, n) that the caller and the workers claim: together they cover it exactly
    once, whoever runs them; the workers' core restriction is lifted after the call."""
    import threading
    seen, lock = [], threading.Lock()

    def fn(ptrs, start, stop):
        with lock:
            seen.append((start, stop))
    cpu.split(fn, None, n, k)
    seen.sort()
    assert seen[0][0] == 0 and seen[-1][1] == n and all(a[1] == b[0] for a, b in zip(seen, seen[1:]))
    import os
    for tid in cpu._tids.get(os.getpid(), ()):
        try:
            assert os.sched_getaffinity(tid) == os.sched_getaffinity(0)
        except ProcessLookupError:
            pass


def test_split_never_waits_for_a_worker_that_has_not_started(monkeypatch):
    """A worker the scheduler starts only after the caller is done finds nothing left: the caller ran every piece
    (and returned without waiting for it), and the result is the one-thread result."""
    class Late:   # a pool whose jobs start after split() returns
        jobs = []

        def submit(self, f, *a):
            self.jobs.append((f, a))
    monkeypatch.setattr(cpu, '_pool', lambda: Late())
    x = _data((1024, 300), 'float32')
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '2')
    res, ref = compiled(lambda v: nd.tanh(v * 2 + 1) * nd.sigmoid(v) - nd.relu(v) / 3, x)
    assert Late.jobs, "the kernel did not split"
    for f, a in Late.jobs:
        f(*a)   # the late worker: nothing left to claim
    np.testing.assert_allclose(res, ref, rtol=1e-5, atol=1e-6)


def test_groups_without_an_emitter_fall_back_to_numpy():
    vs = [input_var('x', (4, 5), 'float32')]
    g = Graph([nd.Cast(vs[0] * 0.1, dtype='float32')._one()], [vs[0]._one()[0]])
    op = FusedOp('k', g)
    assert cpu.kernel_for(op) is None  # Cast has no lowering: the group runs its NumPy reference
    x = _data((4, 5), 'float32')
    np.testing.assert_allclose(op.ref({}, x), interpret(g, {vs[0]._one()[0]: x})[0], rtol=1e-6)


def test_interp_backend_switch():
    vs = [input_var('x', (4, 5), 'float32')]
    g = Graph([nd.relu(vs[0] * 2)._one()], [vs[0]._one()[0]])
    fop, x = FusedOp('k', g), np.ones((4, 5), np.float32)
    assert backend.interp.kernel(fop) == fop.ref and backend.interp.compile(fop) is None
    assert backend.cpu.compile(fop) is not None
    with backend.use('interp'):
        assert backend.current() is backend.interp
        assert conv.im2col(np.ones((1, 1, 3, 3), np.float32), (2, 2), (1, 1), (1, 1), (0, 0), (2, 2), 'nk') is None
    assert backend.current() is backend.cpu
    np.testing.assert_array_equal(backend.cpu.kernel(fop)({}, x), fop.ref({}, x))
    with pytest.raises(Exception, match="backend must be one of 'interp', 'cpu', 'cuda', got 'gpu'"):
        with backend.use('gpu'):
            pass


def test_zero_dim_kernels():
    x = np.array(0.7, np.float32)
    res, ref = compiled(lambda v: nd.tanh(v * 2) + 1, x)
    assert res.shape == () and abs(float(res) - float(ref)) < 1e-6


_CACHE_SCRIPT = """
import json, numpy as np
from graphc import nd
from graphc.graph import Graph
from graphc.passes.fusion import FusedOp
from graphc.runtime import cpu
from graphc.symbol.symbol import input_var
v = input_var('x', (64, 33), 'float32')
g = Graph([(nd.tanh(v * 3 + 0.5) * nd.sigmoid(v))._one()], [v._one()[0]])
x = np.linspace(-4, 4, 64 * 33, dtype=np.float32).reshape(64, 33)
out = cpu.run_fused(FusedOp('k', g), [x])
print(json.dumps({'hits': cpu.stats['disk_hits'], 'misses': cpu.stats['disk_misses'], 'sum': float(out.sum())}))
"""


def _run_cache_script(cache):
    import json
    import os
    import subprocess
    import sys
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache))
    r = subprocess.run([sys.executable, '-c', _CACHE_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_disk_cache_hit_in_a_new_process_and_corrupt_entries_are_recompiled(tmp_path):
    first = _run_cache_script(tmp_path)
    assert first['misses'] == 1 and first['hits'] == 0
    second = _run_cache_script(tmp_path)
    assert second['hits'] == 1 and second['misses'] == 0 and second['sum'] == first['sum']
    (entry,) = list(tmp_path.glob('kernels/*/*.o'))
    blob = bytearray(entry.read_bytes())
    blob[-10] ^= 0xFF  # a flipped byte in the object code: the checksum catches it
    entry.write_bytes(bytes(blob))
    third = _run_cache_script(tmp_path)
    assert third['misses'] == 1 and third['sum'] == first['sum']
    entry.write_bytes(b'GRAPHC-KERNEL-1\n')  # truncated
    assert _run_cache_script(tmp_path)['misses'] == 1


def test_two_processes_compiling_into_one_cache(tmp_path):
    import os
    import subprocess
    import sys
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, '-c', _CACHE_SCRIPT], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    assert len({o[0].strip().splitlines()[-1].split('"sum": ')[1] for o in outs}) == 1
    assert not list(tmp_path.glob('kernels/*/.tmp-*'))  # no half-written entries left behind


def _fused(fn, *arrays):
    vs = [input_var(f"in{i}", a.shape, a.dtype) for i, a in enumerate(arrays)]
    out = fn(*vs)
    outs = out if isinstance(out, (list, tuple)) else [out]
    g = Graph([o._one() for o in outs], [v._one()[0] for v in vs])
    op = FusedOp('k', g)
    res = cpu.run_fused(op, list(arrays))
    ref = interpret(g, {v._one()[0]: a for v, a in zip(vs, arrays)})
    return res, ref


ROW = [('softmax with a prologue', lambda v, w: nd.softmax(nd.broadcast_add(v * 0.5, w))),
       ('log_softmax', lambda v, w: nd.log_softmax(v)),
       ('softmax with temperature and an epilogue', lambda v, w: nd.softmax(v, temperature=2.0) * 3),
       ('sum of relu', lambda v, w: nd.sum(nd.relu(v), axis=1)),
       ('mean with keepdims and an epilogue', lambda v, w: nd.mean(v * v, axis=-1, keepdims=True) + 1),
       ('max', lambda v, w: nd.max(v, axis=1)),
       ('min with an epilogue', lambda v, w: nd.min(v * 2, axis=1, keepdims=True) - 1)]


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('name,fn', ROW, ids=[r[0] for r in ROW])
def test_row_reductions_compile_and_match(name, fn, dtype):
    x, w = _data((64, 100), dtype), _data((100,), dtype, seed=3)
    res, ref = _fused(fn, x, w)
    assert res is not None, f"{name}: no kernel"
    res = res if isinstance(res, tuple) else (res,)
    for a, b in zip(res, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == 'float32' else 1e-12, atol=1e-5)


def test_reductions_over_several_trailing_axes_and_unsupported_patterns():
    x = _data((4, 6, 10), 'float32', seed=1)
    res, ref = _fused(lambda v: nd.sum(nd.exp(v * 0.1), axis=(1, 2)), x)
    np.testing.assert_allclose(res, ref[0], rtol=1e-5)
    res, ref = _fused(lambda v: nd.sum(v, axis=0) * 2, _data((64, 10), 'float32'))
    assert res is None  # a leading-axis reduction: the NumPy reference runs it


def test_prologue_value_that_is_also_an_output():
    def fn(v, w):
        y = nd.broadcast_add(v, w) * 2
        return [y, nd.sum(y, axis=1)]
    x, w = _data((32, 50), 'float32'), _data((50,), 'float32', seed=4)
    res, ref = _fused(fn, x, w)
    assert res is not None
    np.testing.assert_allclose(res[0], ref[0], rtol=1e-6)
    np.testing.assert_allclose(res[1], ref[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('layout', ['nk', 'kn'])
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('k,st,dl,pd', [((3, 3), (1, 1), (1, 1), (0, 0)), ((5, 3), (2, 1), (1, 2), (2, 1)),
                                        ((2, 2), (2, 2), (1, 1), (1, 1)),
                                        # padding wider than what a tap reaches; taps wholly outside a row
                                        ((7, 7), (2, 3), (1, 1), (3, 3)), ((3, 5), (3, 2), (2, 3), (4, 5)),
                                        ((1, 1), (1, 1), (1, 1), (2, 2)),
                                        # one window over the whole image (a copy, no kernel)
                                        ((9, 8), (1, 1), (1, 1), (0, 0)), ((9, 8), (2, 3), (1, 1), (0, 0))])
def test_compiled_im2col_and_col2im_equal_numpy(k, st, dl, pd, dtype, layout):
    from graphc.ops import nn as ops_nn
    from graphc.runtime import conv
    x = _data((3, 4, 9, 8), dtype, seed=5)
    oh, ow = (ops_nn.conv_out(x.shape[2 + i], k[i], st[i], dl[i], pd[i]) for i in range(2))
    fast = conv.im2col(x, k, st, dl, pd, (oh, ow), layout)
    with backend.use('interp'):
        assert conv.im2col(x, k, st, dl, pd, (oh, ow), layout) is None
    ref, _ = ops_nn.im2col(x, k, st, dl, pd, layout)   # (no native: the NumPy reference)
    back_ref = ops_nn.col2im(ref, x.shape, k, st, dl, pd, (oh, ow), layout)
    nk, _ = ops_nn.im2col(x, k, st, dl, pd)
    np.testing.assert_array_equal(fast, ref)
    if layout == 'kn':  # the same columns, the batch moved inside each row
        np.testing.assert_array_equal(ref, nk.transpose(1, 0, 2).reshape(nk.shape[1], -1))
    np.testing.assert_allclose(conv.col2im(fast, x.shape, k, st, dl, pd, (oh, ow), layout), back_ref, rtol=1e-12, atol=1e-6)


def test_a_window_over_the_whole_image_compiles_no_kernel():
    from graphc.runtime import conv
    x = _data((3, 4, 5, 5), 'float32', seed=5)
    before = len(conv._kernels)
    for layout in ('nk', 'kn'):
        col = conv.im2col(x, (5, 5), (1, 1), (1, 1), (0, 0), (1, 1), layout)
        img = np.ones(x.shape, x.dtype)   # col2im adds into `out`
        np.testing.assert_array_equal(conv.col2im(col, x.shape, (5, 5), (1, 1), (1, 1), (0, 0), (1, 1), layout,
                                                  out=img), x + 1)
    assert len(conv._kernels) == before


@pytest.mark.parametrize('attrs', [{'kernel': (2, 2), 'stride': (2, 2)},
                                   {'kernel': (3, 3), 'stride': (2, 2), 'pad': (1, 1)},
                                   {'kernel': (3, 3), 'stride': (2, 2), 'pooling_convention': 'full'}], ids=str)
@pytest.mark.parametrize('ties', [False, True])
def test_compiled_maxpool_and_its_gradient_equal_numpy(attrs, ties):
    from graphc.registry import OPS
    op, back = OPS['Pooling'], OPS['_backward_Pooling']
    a = op.canon(attrs)
    x = np.round(_data((2, 3, 7, 7), 'float32', seed=6)) if ties else _data((2, 3, 7, 7), 'float32', seed=6)
    x[0, 0, 3, 3] = np.nan  # propagates through the forward as np.maximum does
    y = backend.cpu.kernel(op)(a, x)
    g = _data(y.shape, 'float32', seed=7)
    fast = backend.cpu.kernel(back)(a, g, x, y)
    y_ref = op.ref(a, x)
    ref = back.ref(a, g, x, y)
    np.testing.assert_array_equal(y, y_ref)  # the compiled forward (NaN in the same places)
    assert np.isnan(y).any()
    np.testing.assert_allclose(fast, ref, rtol=1e-6, atol=1e-6)


COL = [('bias gradient', lambda v, w: nd.sum(v * w, axis=0)),
       ('kept prologue output', lambda v, w: (lambda y: [y, nd.sum(y, axis=0)])(v * w)),
       ('mean keepdims', lambda v, w: nd.mean(nd.relu(v), axis=0, keepdims=True)),
       ('max', lambda v, w: nd.max(v + w, axis=0))]


@pytest.mark.parametrize('name,fn', COL, ids=[c[0] for c in COL])
def test_column_reductions_compile_and_match(name, fn):
    x, m = _data((300, 70), 'float32'), (_data((300, 70), 'float32', seed=9) > 0).astype(np.float32)
    res, ref = _fused(fn, x, m)
    assert res is not None, name
    res = res if isinstance(res, tuple) else (res,)
    for a, b in zip(res, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('k,st,pd,hw', [((5, 5), (1, 1), (0, 0), (12, 12)), ((3, 3), (2, 2), (1, 1), (9, 8)),
                                        ((4, 4), (1, 1), (0, 0), (4, 4))])
def test_one_gemm_and_batched_convolutions_agree(monkeypatch, k, st, pd, hw):
    """Both GEMM layouts of the convolution kernels (chosen by output size) against each other and a naive
    loop: forward, data gradient and weight gradient, float64 (rtol 1e-10)."""
    from graphc.ops import nn as ops_nn
    rng = np.random.default_rng(11)
    x, w = rng.normal(size=(3, 4) + hw), rng.normal(size=(6, 4) + k)
    oh, ow = (ops_nn.conv_out(hw[i], k[i], st[i], 1, pd[i]) for i in range(2))
    dy = rng.normal(size=(3, 6, oh, ow))
    a = (k, st, (1, 1), pd)
    res = {}
    for thr in (0, 10 ** 6):  # 0: per-image batched GEMMs everywhere; 10**6: one GEMM wherever allowed
        monkeypatch.setattr(ops_nn, 'BIG_GEMM_BELOW', thr)
        res[thr] = (ops_nn.conv2d(x, w, *a, 1), ops_nn.conv2d_transpose(dy, w, *a, 1, hw),
                    ops_nn.conv2d_weight_grad(x, dy, *a, 1))
    xp = np.pad(x, ((0, 0), (0, 0), (pd[0], pd[0]), (pd[1], pd[1])))
    naive = np.zeros((3, 6, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * st[0]:i * st[0] + k[0], j * st[1]:j * st[1] + k[1]]
            naive[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    for r in res.values():
        np.testing.assert_allclose(r[0], naive, rtol=1e-10, atol=1e-10)
    for q in (1, 2):
        np.testing.assert_allclose(res[0][q], res[10 ** 6][q], rtol=1e-10, atol=1e-10)
    # the weight gradient is the adjoint of the forward in w: <conv(x, w), dy> = <w, dW>
    np.testing.assert_allclose(np.vdot(naive, dy), np.vdot(w, res[0][2]), rtol=1e-10)
    np.testing.assert_allclose(np.vdot(naive, dy), np.vdot(x, res[0][1]), rtol=1e-10)  # and in x


def test_weight_gradient_reuses_the_forward_columns(monkeypatch):
    """Under autograd the forward's im2col columns are kept for the weight gradient (one use): the same
    gradients as recomputing them (exactly: the same GEMMs), and nothing is kept outside autograd."""
    import graphc as gc
    from graphc.ops import nn as ops_nn
    monkeypatch.setenv('GRAPHC_ONEDNN', '0')   # (the im2col path's columns: oneDNN keeps none)
    x = nd.array(np.random.default_rng(3).normal(size=(4, 3, 10, 10)).astype(np.float32))
    w = nd.array(np.random.default_rng(4).normal(size=(5, 3, 3, 3)).astype(np.float32))
    grads, real_take = [], ops_nn._take_cols
    for keep in (ops_nn.SAVED_COLS, 0):
        monkeypatch.setattr(ops_nn, 'SAVED_COLS', keep)
        ops_nn._saved_cols.clear()
        w.attach_grad()
        taken = []
        monkeypatch.setattr(ops_nn, '_take_cols', lambda x, g: taken.append(real_take(x, g)) or taken[-1])
        with gc.autograd.record():
            y = nd.Convolution(x, w, kernel=(3, 3), num_filter=5, no_bias=True)
            assert len(ops_nn._saved_cols) == (1 if keep else 0)
            loss = (y * y).sum()
        loss.backward()
        assert (taken[0] is not None) == bool(keep) and not ops_nn._saved_cols
        grads.append(w.grad.asnumpy())
    np.testing.assert_array_equal(grads[0], grads[1])
    nd.Convolution(x, w, kernel=(3, 3), num_filter=5, no_bias=True)  # not recording: nothing kept
    assert not ops_nn._saved_cols


@pytest.mark.parametrize('images_per_chunk', [1, 3, 100])
@pytest.mark.parametrize('geom', [((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 2), (2, 1), (1, 2), (0, 1))], ids=str)
def test_convolutions_in_chunks_of_images_equal_the_whole_batch(monkeypatch, images_per_chunk, geom):
    """conv2d, its data gradient and its weight gradient run the batched path in chunks of images (columns
    kept in cache, buffers reused): uneven chunks and one image a chunk give the unchunked result and the
    NumPy reference's (float64: 1e-12)."""
    from graphc.ops import nn as ops_nn
    k, st, dl, pd = geom
    x, w = _data((7, 3, 40, 18), 'float64', seed=8), _data((4, 3) + k, 'float64', seed=9)
    oh, ow = (ops_nn.conv_out(x.shape[2 + i], k[i], st[i], dl[i], pd[i]) for i in range(2))
    assert oh * ow >= ops_nn.BIG_GEMM_BELOW   # the per-image (batched) path
    dy = _data((7, 4, oh, ow), 'float64', seed=10)

    def run(native):
        return [ops_nn.conv2d(x, w, k, st, dl, pd, 1, native),
                ops_nn.conv2d_transpose(dy, w, k, st, dl, pd, 1, x.shape[2:], native),
                ops_nn.conv2d_weight_grad(x, dy, k, st, dl, pd, 1, native)]
    per_image = 3 * k[0] * k[1] * oh * ow * 8
    monkeypatch.setattr(ops_nn, 'COLUMN_CHUNK_BYTES', per_image * images_per_chunk)
    assert len(ops_nn._chunks(7, per_image)) == -(-7 // images_per_chunk)
    got = run(conv)   # (the CPU backend's compiled im2col/col2im)
    monkeypatch.setattr(ops_nn, 'COLUMN_CHUNK_BYTES', 1 << 40)
    want = run(None)  # the whole batch, NumPy
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('shape,axis', [((6, 5, 9, 7), 1), ((4, 3, 10), 2), ((11, 6), 1), ((3, 4, 5, 6), -1)])
@pytest.mark.parametrize('fix_gamma', [False, True])
def test_compiled_batchnorm_equals_numpy(dtype, shape, axis, fix_gamma):
    """runtime/batchnorm.py (training mode: batch statistics) against the NumPy reference, forward outputs and
    the three gradients; inputs with a large mean, where one-pass variance formulas lose digits. float32:
    rtol 1e-5 (the compiled sums are double, NumPy's pairwise float32); float64: 1e-12."""
    from graphc.registry import OPS
    rng = np.random.default_rng(3)
    x = (rng.normal(size=shape) * 2 + 50).astype(dtype)
    c = shape[axis]
    gamma, beta = rng.normal(size=c).astype(dtype), rng.normal(size=c).astype(dtype)
    g = rng.normal(size=shape).astype(dtype)
    attrs = OPS['BatchNorm'].canon({'axis': axis, 'fix_gamma': fix_gamma, '_train': True})
    ones = np.ones(c, dtype)
    runs = {}
    for b in (backend.cpu, backend.interp):
        out, mean, var = b.kernel(OPS['BatchNorm'])(attrs, x, gamma, beta, ones * 0, ones)
        runs[b.name] = [out, mean, var, *b.kernel(OPS['_backward_BatchNorm'])(attrs, g, x, gamma, mean, var)]
    tol = 1e-5 if dtype == 'float32' else 1e-12
    for name, a, b in zip(('out', 'mean', 'var', 'dx', 'dgamma', 'dbeta'), runs['cpu'], runs['interp']):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())), err_msg=name)
