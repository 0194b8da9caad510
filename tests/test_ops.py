"""Registry-driven tests: every registered op against its NumPy oracle, its shape/dtype
inference against what it computes, its attributes through MXNet's string form, and
(when differentiable) its gradient against float64 central differences.

Tolerances: float64 forward rtol=1e-10 (atol 1e-10); float32 forward rtol=1e-5, atol=1e-5
(relative to the output's scale); gradients rtol=1e-4, atol=1e-6 from central differences
with step 1e-6.
"""
import numpy as np
import pytest

import graphc as gc
from graphc import autograd, nd
from graphc.registry import OPS
from op_cases import BACKWARD_OF, CASES

PARAMS = [pytest.param(name, i, id=f"{name}-{i}{'-' + c.id if c.id else ''}")
          for name, cases in sorted(CASES.items()) for i, c in enumerate(cases)]


def test_every_op_is_covered():
    missing = sorted(set(OPS) - set(CASES) - set(BACKWARD_OF))
    assert not missing, f"ops registered without a reference test case in tests/op_cases.py: {missing}"
    unknown = sorted(set(CASES) - set(OPS))
    assert not unknown, f"test cases for ops that are not registered: {unknown}"
    for bw, fw in BACKWARD_OF.items():
        assert bw in OPS and any(c.grad for c in CASES[fw]), f"{bw} is checked through {fw}'s gradient check"
    for name, op in OPS.items():
        if name in CASES and op.differentiable and not name.startswith('_backward'):
            float_ops = [c for c in CASES[name] if c.grad]
            assert float_ops or name in NO_GRAD_CHECK, f"{name} is differentiable but has no gradient check"


# integer-valued or step functions: their (zero) gradient is still checked where a case says grad=True
NO_GRAD_CHECK = {'Cast', 'argmax', 'argmin', 'one_hot', 'amp_cast'}
# loss heads and BlockGrad: their backward is defined by the op, not the derivative of the forward
# (checked against MXNet's formulas in test_mxnet_ndarray.py)
NO_GRAD_CHECK |= {'BlockGrad', 'MakeLoss', 'make_loss', 'SoftmaxOutput', 'LinearRegressionOutput',
                  'MAERegressionOutput', 'LogisticRegressionOutput'}
NO_GRAD_CHECK |= {'_contrib_gradientmultiplier', 'SVMOutput'}  # (its gradient is scalar * dy by definition: test_nd_legacy_api.py)


FIXED_DTYPE = {'Cast', 'shape_array', 'size_array', '_contrib_index_array', 'amp_cast', 'all_finite', '_histogram',
               'multi_all_finite', '_npi_matrix_rank', '_npi_matrix_rank_none_tol'}  # their output dtype does not follow the input's


def _run(name, case, dtype, train=None):
    op = OPS[name]
    xs = [nd.array(a, dtype=dtype) for a in case.inputs]
    if case.seed is not None:
        gc.random.seed(case.seed)
    with (autograd.train_mode() if (case.train if train is None else train) else autograd.predict_mode()):
        out = getattr(nd, name)(*xs, **case.attrs) if name != 'BatchNorm' else \
            nd.invoke(op, xs, op.canon(case.attrs))[0]
    return xs, out


def _outs(out):
    return [o.asnumpy() for o in (out if isinstance(out, list) else [out])]


@pytest.mark.parametrize('name,i', PARAMS)
def test_forward_matches_oracle(name, i):
    case = CASES[name][i]
    _, out = _run(name, case, np.float64)
    got = _outs(out)
    if case.oracle is None:  # Dropout in training: kept values are scaled by 1/(1-p), about p dropped
        x, y = case.inputs[0], got[0]
        p = case.attrs['p']
        kept = y != 0
        np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-12)
        assert abs((~kept).mean() - p) < 0.05
        return
    want = case.oracle(*case.inputs)
    want = list(want) if isinstance(want, tuple) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == np.shape(w), (g.shape, np.shape(w))
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)
    # float32: same values within float32 tolerance, and float32 out
    if case.inputs and all(a.dtype == np.float64 for a in case.inputs) and name not in FIXED_DTYPE:  # (no inputs: samplers)
        _, out32 = _run(name, case, np.float32)
        for g32, w in zip(_outs(out32), want):
            assert g32.dtype == np.float32, f"{name} returned {g32.dtype} for float32 inputs"
            scale = max(1.0, float(np.abs(w).max())) if np.size(w) else 1.0
            np.testing.assert_allclose(g32, w, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize('name,i', PARAMS)
def test_inference_matches_kernel(name, i):
    """infer() must predict exactly the shapes and dtypes the kernel produces (tracing relies on it)."""
    case = CASES[name][i]
    op = OPS[name]
    attrs = op.canon(case.attrs)
    if op.mode_dependent:
        attrs['_train'] = case.train
    if case.seed is not None:
        gc.random.seed(case.seed)
    outs = op.ref(attrs, *[a.astype(np.float32) for a in case.inputs])
    outs = outs if isinstance(outs, tuple) else (outs,)
    shapes, dtypes = op.infer(attrs, [a.shape for a in case.inputs], [np.float32] * len(case.inputs))
    assert [o.shape for o in outs] == [tuple(s) for s in shapes]
    assert [o.dtype for o in outs] == list(dtypes)
    assert len(outs) == op.n_out(attrs)


@pytest.mark.parametrize('name,i', PARAMS)
def test_attrs_roundtrip_mxnet_strings(name, i):
    op = OPS[name]
    attrs = op.canon(CASES[name][i].attrs)
    strs = op.format_attrs(attrs, all=True)
    assert all(isinstance(v, str) for v in strs.values())
    assert op.canon(strs) == attrs


def _loss(name, case, arrays, weights, train):
    """sum(out_k * w_k) over the visible outputs, in float64, with Dropout's mask fixed by the seed."""
    xs = [nd.array(a, dtype=a.dtype) for a in arrays]  # float64: nd.array's default is float32
    if case.seed is not None:
        gc.random.seed(case.seed)
    with autograd.train_mode() if train else autograd.predict_mode():
        out = _call(name, case, xs)
    return sum(float((o.asnumpy() * w).sum()) for o, w in zip(_as_list(out), weights))


def _call(name, case, xs):
    if name == 'BatchNorm':  # the op itself (nd.BatchNorm also updates the moving stats)
        op = OPS[name]
        return nd.invoke(op, xs, op.canon(case.attrs))[0]
    return getattr(nd, name)(*xs, **case.attrs)


def _as_list(o):
    return o if isinstance(o, list) else [o]


GRAD_PARAMS = [p for p in PARAMS if CASES[p.values[0]][p.values[1]].grad and OPS[p.values[0]].differentiable
               and p.values[0] not in NO_GRAD_CHECK]


@pytest.mark.parametrize('name,i', GRAD_PARAMS)
def test_gradient_matches_central_differences(name, i):
    case = CASES[name][i]
    op = OPS[name]
    arrays = [a.astype(np.float64) for a in case.inputs]
    xs = [nd.array(a, dtype=a.dtype) for a in arrays]  # float64: nd.array's default is float32
    diff = [j for j in range(len(xs)) if j not in op.nograd_inputs]
    for j in diff:
        xs[j].attach_grad()
    if case.seed is not None:
        gc.random.seed(case.seed)
    with autograd.record(train_mode=case.train):
        out = _call(name, case, xs)
    outs = _as_list(out)
    rs = np.random.default_rng(1)
    weights = [rs.normal(size=o.shape) for o in outs]
    autograd.backward(outs, [nd.array(w) for w in weights])
    eps = 1e-6
    for j in diff:
        num = np.zeros_like(arrays[j])
        for k in np.ndindex(arrays[j].shape):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[j][k] += eps
            minus[j][k] -= eps
            num[k] = (_loss(name, case, plus, weights, case.train) - _loss(name, case, minus, weights, case.train)) / (2 * eps)
        np.testing.assert_allclose(xs[j].grad.asnumpy(), num, rtol=1e-4, atol=1e-6,
                                   err_msg=f"{name}: gradient of input {j}")
