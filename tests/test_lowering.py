"""Scalar lowering (graphc/ops/scalar.py): every elementwise op of the registry but Cast and Dropout has a
lowering, compiles on the CPU, with nvcc and in the CUDA emulation, and matches the interpreter; per-function ULP
bounds (docs/NUMERICS.md); a group of log, sin, erf, power and mod is one CPU kernel; GRAPHC_DUMP_CODE writes each kernel's code beside its IR."""
import math
import os

import numpy as np
import pytest

import graphc as gc
from graphc import nd
from graphc.gluon import nn
from graphc.graph import Graph
from graphc.passes.fusion import FusedOp
from graphc.registry import OPS
from graphc.runtime import cpu, cuda, emulate
from graphc.interpreter import interpret
from graphc.symbol.symbol import input_var

L = np.longdouble
# max ULP over the ranges of test_ulp_bounds (measured maxima in docs/NUMERICS.md, rounded up)
ULP = {'log': (1, 2), 'sin': (3, 2), 'cos': (3, 2), 'tan': (5, 4), 'erf': (3, 4), 'log1p': (3, 3), 'expm1': (3, 3),
       'arctan': (3, 1), 'arcsin': (4, 3), 'arccos': (4, 2), 'arcsinh': (3, 4), 'arccosh': (3, 4), 'arctanh': (3, 4),
       'power': (6, 7)}  # power: plus 1.3 |y ln x|
DOMAIN = {'log': (1e-30, 1e30), 'sin': (-1e4, 1e4), 'cos': (-1e4, 1e4), 'tan': (-1e4, 1e4), 'erf': (-7, 7),
          'log1p': (-0.999, 100), 'expm1': (-30, 30), 'arctan': (-1e6, 1e6), 'arcsin': (-1, 1), 'arccos': (-1, 1),
          'arcsinh': (-1e6, 1e6), 'arccosh': (1, 1e6), 'arctanh': (-0.999999, 0.999999)}
# the elementwise ops without a scalar lowering, and why (every other one compiles: test below)
NOT_LOWERED = {'Cast': 'changes the element type: a compiled kernel computes in one dtype',
               'amp_cast': 'changes the element type of floating inputs (as Cast): a kernel computes in one dtype',
               'Dropout': 'a random mask, and a second output (the mask) for the gradient'}
NOT_LOWERED.update({n: 'a special function (math.gamma/lgamma, Newton on erf, a series) run by its NumPy kernel'
                    for n in ('gamma', 'gammaln', 'erfinv', '_digamma')})


def _graph(fn, *arrays):
    vs = [input_var(f"in{i}", a.shape, a.dtype) for i, a in enumerate(arrays)]
    return Graph([fn(*vs)._one()], [v._one()[0] for v in vs])


def compiled(g, *arrays):
    k = cpu.kernel_for(FusedOp('k', g))
    assert k is not None, f"no kernel for {g.text()}"
    res = np.empty(g.outputs[0][0].shapes[0], arrays[0].dtype)
    k([np.ascontiguousarray(a) for a in arrays], [res])
    return res


def reference(g, *arrays):
    with np.errstate(all='ignore'):
        return interpret(g, {v: a for v, a in zip(g.inputs, arrays)})[0]


def _unary_lowered():
    return sorted(n for n, op in OPS.items() if op.lower is not None and op.kind == 'elemwise' and op.inputs == ('data',)
                  and not op.required and n != 'LeakyReLU')


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_every_lowered_unary_op_compiles_and_matches_the_interpreter(dtype):
    x = np.linspace(0.05, 0.95, 64).astype(dtype)  # inside every domain (log, arctanh-like, sqrt, ...)
    for name in _unary_lowered():
        g = _graph(lambda v: getattr(nd, name)(v * 1.0), x)
        np.testing.assert_allclose(compiled(g, x), reference(g, x), rtol=1e-5 if dtype == 'float32' else 1e-12,
                                   atol=1e-6, err_msg=name)


def ulps(got, want, dtype):
    return np.abs(got.astype(L) - want) / np.spacing(np.abs(want.astype(dtype))).astype(L)


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('name', sorted(ULP))
def test_ulp_bounds(name, dtype):
    if name == 'power':  # |y log x| up to ~30: the exponent's rounding is the error
        x, y = np.meshgrid(np.geomspace(0.01, 100, 300), np.linspace(-6, 6, 301))
        x, y = x.ravel().astype(dtype), y.ravel().astype(dtype)
        got = compiled(_graph(lambda a, b: nd.broadcast_power(a, b), x, y), x, y)
        want = x.astype(L) ** y.astype(L)
        slack = 1.3 * np.abs(y * np.log(x))  # y ln x rounded to the element type: exp amplifies it
    else:
        lo, hi = DOMAIN[name]
        x = (np.geomspace(lo, hi, 100001) if name == 'log' else
             np.concatenate([np.linspace(lo, hi, 100001), lo + np.geomspace(1e-12, hi - lo, 20001)]) if lo >= 1 else
             np.concatenate([np.linspace(lo, hi, 100001), np.geomspace(1e-20, min(hi, 0.9), 500),
                             np.linspace(max(lo, -4), min(hi, 4), 20001)])).astype(dtype)
        got = compiled(_graph(lambda v: getattr(nd, name)(v * 1.0), x), x)
        want = (np.vectorize(math.erf)(x.astype(np.float64)) if name == 'erf' else getattr(np, name)(x.astype(L))).astype(L)
        slack = 0
    err = ulps(got, want, dtype) - slack
    bound = ULP[name][dtype == 'float64']
    assert err.max() <= bound + 0.5, f"{name} {dtype}: {err.max():.2f} ULP at {x[err.argmax()]}"


def test_special_values_of_the_new_lowerings():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 1.0, -1.0, 3.0, -2.5, 800.0, -800.0, 0.5, -0.999, 1e6,
                  -3e7, 1e30, -1e300, 2.0 ** 21, 1e-310], np.float64)  # sin/cos: 3e7 and up take the C library's
    for dtype in ('float64', 'float32'):
        with np.errstate(over='ignore'):
            xs = x.astype(dtype)
        for name in ('log', 'log1p', 'expm1', 'sin', 'cos', 'tan', 'erf', 'softrelu', 'sign', 'floor', 'ceil', 'round',
                     'sinh', 'cosh', 'cbrt', 'arcsin', 'arccos', 'arctan', 'arcsinh', 'arccosh', 'arctanh'):
            g = _graph(lambda v: getattr(nd, name)(v * 1.0), xs)
            got, want = compiled(g, xs), reference(g, xs)
            np.testing.assert_allclose(got, want, rtol=1e-13 if dtype == 'float64' else 1e-5, atol=1e-300,
                                       err_msg=f"{name} {dtype}")
            assert (np.signbit(got) == np.signbit(want))[want == 0].all(), (name, dtype)  # -0 stays -0
    a = np.array([-2.0, -2.0, -0.0, -0.0, 0.0, 2.0, np.nan, 1.0, -8.0, -3.0, 5.5, -5.5])
    b = np.array([3.0, 0.5, -1.0, 0.5, 0.0, np.inf, 0.0, np.nan, 1 / 3, 2.0, -2.0, 2.0])
    for dtype in ('float32', 'float64'):  # the new op: the same IEEE operations as its NumPy kernel, bit for bit
        v = np.linspace(-4, 4, 1001).astype(dtype)
        g = _graph(lambda p: nd.hard_sigmoid(p, alpha=0.3, beta=0.4), v)
        np.testing.assert_array_equal(compiled(g, v), reference(g, v))
    for name in ('power', 'mod'):
        g = _graph(lambda p, q: getattr(nd, 'broadcast_' + name)(p, q), a, b)
        np.testing.assert_allclose(compiled(g, a, b), reference(g, a, b), rtol=1e-13, atol=0, err_msg=name)


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_huge_sin_cos_arguments_take_the_second_pass_also_in_place(dtype):
    """Elements at or above 2**21 (float32: 2**16) send the kernel to its second pass, with the C library's
    sin/cos; a kernel written over its input runs that pass alone (1e-25 becomes huge once read back scaled)."""
    x = np.tile([1e30, 0.5, -3e7, 2.0, 1e6, np.inf, -0.0, 7e4, 1e-25], 9).astype(dtype)
    for name in ('sin', 'cos'):
        g = _graph(lambda v: nd.tan(getattr(nd, name)(v * 1e25)) * 2.0, x)
        want = reference(g, x)
        np.testing.assert_allclose(compiled(g, x), want, rtol=1e-6 if dtype == 'float32' else 1e-13, err_msg=name)
        buf = x.copy()
        cpu.kernel_for(FusedOp('k', g))([buf], [buf])  # out is in
        np.testing.assert_allclose(buf, want, rtol=1e-6 if dtype == 'float32' else 1e-13, err_msg=name)


def test_every_elementwise_op_of_the_registry_has_a_lowering():
    elementwise = {n for n, op in OPS.items() if op.kind == 'elemwise'}
    assert {n for n in elementwise if OPS[n].lower is None} == set(NOT_LOWERED)
    assert all(len(why) > 20 for why in NOT_LOWERED.values())


@pytest.mark.skipif(emulate.gxx_path() is None, reason='the CUDA emulation needs g++')
def test_every_case_of_every_lowered_elementwise_op_compiles_on_cpu_and_cuda():
    """tests/op_cases.py's cases (float64) of each elementwise op: a CPU kernel equal to the interpreter within
    1e-12, and a CUDA kernel that nvcc builds and the emulation runs to the same values."""
    from op_cases import CASES
    names = sorted(n for n, op in OPS.items() if op.kind == 'elemwise' and n not in NOT_LOWERED)
    done, ks = set(), []
    for name in names:
        for case in CASES.get(name, []):
            xs = [np.asarray(a, np.float64) for a in case.inputs]
            xs = [a.reshape(xs[0].shape) if a.size == xs[0].size else a for a in xs]  # a regression label
            if not xs or xs[0].size == 0 or len({a.shape for a in xs}) != 1:
                continue
            g = _graph(lambda *vs: getattr(nd, name)(*vs, **case.attrs), *xs)
            np.testing.assert_allclose(compiled(g, *xs), reference(g, *xs), rtol=1e-12, atol=1e-12, err_msg=name)
            k = cuda.generate(g)
            assert k is not None and k.kind == 'ew', (name, case.attrs)
            ks.append((k, xs))
            done.add(name)
    assert done == set(names), sorted(set(names) - done)
    if cuda.nvcc_path():
        assert cuda.nvcc(cuda.module_source([k for k, _ in ks]))
    lib = emulate.library([k for k, _ in ks])
    for k, xs in ks:
        assert emulate.check_kernel(k, xs, lib)[2] < 1e-9, k.describe()


def _other_elementwise():  # the loss heads (a label input the forward ignores) and smooth_l1
    x = np.linspace(-3, 3, 97)
    return [(lambda v, t: nd.LinearRegressionOutput(v * 1.0, t), 2), (lambda v, t: nd.MAERegressionOutput(v * 1.0, t), 2),
            (lambda v, t: nd.LogisticRegressionOutput(v * 1.0, t), 2), (lambda v: nd.BlockGrad(v * 1.0), 1),
            (lambda v: nd.MakeLoss(v * 1.0), 1), (lambda v: nd.make_loss(v * 1.0), 1),
            (lambda v: nd.smooth_l1(v * 1.0, scalar=1.5), 1)], x


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_the_loss_heads_and_smooth_l1_compile_and_match_the_interpreter(dtype):
    fns, x = _other_elementwise()
    x = x.astype(dtype)
    for fn, n in fns:
        g = _graph(fn, *[x] * n)
        np.testing.assert_allclose(compiled(g, *[x] * n), reference(g, *[x] * n), rtol=1e-6 if dtype == 'float32' else 1e-13,
                                   atol=0, err_msg=g.text())


class Mix(nn.HybridBlock):
    def hybrid_forward(self, F, x, y):
        return F.broadcast_mod(F.broadcast_power(F.erf(F.sin(F.log(x))) + 2.0, y), y + 0.5)


def test_a_group_of_log_sin_erf_power_and_mod_is_one_cpu_kernel():
    x = np.random.default_rng(0).uniform(0.1, 10, (8, 33)).astype(np.float32)
    y = np.random.default_rng(1).uniform(0.5, 3, (8, 33)).astype(np.float32)
    net = Mix()
    net.hybridize()
    text = gc.explain(net, nd.array(x), nd.array(y), print_graph=False)
    fused = [ln for ln in text.splitlines() if 'fused' in ln and 'log' in ln]
    assert fused and all(w in fused[0] for w in ('log', 'sin', 'erf', 'broadcast_power', 'broadcast_mod')), text
    g = _graph(lambda a, b: nd.broadcast_mod(nd.broadcast_power(nd.erf(nd.sin(nd.log(a))) + 2.0, b), b + 0.5), x, y)
    assert cpu.kernel_for(FusedOp('k', g)) is not None
    np.testing.assert_allclose(net(nd.array(x), nd.array(y)).asnumpy(), reference(g, x, y), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(emulate.gxx_path() is None, reason='the CUDA emulation needs g++')
def test_the_lowerings_compile_and_match_in_the_cuda_emulation():
    x = np.linspace(0.05, 0.95, 257)
    ks, gs = [], []
    for dtype in ('float32', 'float64'):
        xs = x.astype(dtype)
        # every lowered unary op in one kernel per dtype: a sum of each op's value
        def all_ops(v):
            return nd.add_n(*[getattr(nd, n)(v * 1.0) for n in _unary_lowered()], num_args=len(_unary_lowered()))
        g = _graph(all_ops, xs)
        k = cuda.generate(g)
        assert k is not None and k.kind == 'ew', g.text()
        ks.append(k)
        gs.append((g, xs, k))
    fns, x = _other_elementwise()  # and the other elementwise ops, one kernel each
    for fn, n in fns:
        xs = x.astype('float32')
        g = _graph(fn, *[xs] * n)
        k = cuda.generate(g)
        assert k is not None and k.kind == 'ew', g.text()
        ks.append(k)
        gs.append((g, [xs] * n, k))
    if cuda.nvcc_path():  # and nvcc builds them for the device (raises on any error or warning)
        assert cuda.nvcc(cuda.module_source(ks))
    lib = emulate.library(ks)
    for g, xs, k in gs:
        assert emulate.check_kernel(k, xs if isinstance(xs, list) else [xs], lib)[2] < 1e-5, k.describe()


def test_dump_code_writes_each_kernel_beside_its_ir(tmp_path, monkeypatch):
    monkeypatch.setenv('GRAPHC_DUMP_CODE', str(tmp_path))
    x = np.linspace(0.1, 0.9, 77).astype(np.float32)  # a shape of its own: not in the process's kernel cache
    g = _graph(lambda v: nd.log1p(nd.cos(v) * 3.0), x)
    compiled(g, x)
    lls = [f for f in os.listdir(tmp_path) if f.endswith('.ll')]
    assert lls and all(os.path.exists(tmp_path / (f[:-3] + '.txt')) for f in lls)
    assert 'define' in (tmp_path / lls[0]).read_text() and 'log1p' in (tmp_path / (lls[0][:-3] + '.txt')).read_text()
    cuda.generate(g)
    cus = [f for f in os.listdir(tmp_path) if f.endswith('.cu')]
    assert cus and '__global__' in (tmp_path / cus[0]).read_text() and os.path.exists(tmp_path / (cus[0][:-3] + '.txt'))
