"""Every op case of tests/op_cases.py as MXNet code runs it statically: the op called on Symbols, written to
MXNet's JSON and read back (`tojson` / `sym.load_json`), bound (`Symbol.bind`) and run forward, against the same
op called eagerly on NDArrays. Float32 within rtol=atol=1e-5 (the executor's compiled kernels may use other
instruction orders than NumPy); random ops are compared from the same seed."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, nd, sym
from graphc.registry import OPS
from op_cases import CASES

PARAMS = [pytest.param(name, i, id=f"{name}-{i}") for name, cases in sorted(CASES.items())
          for i, c in enumerate(cases) if c.inputs and not name.startswith('_backward_')]  # (gradient ops are
# internal: a model file that names one is refused, tests/test_load_hardening.py)


def _eager(name, case, xs):
    op = OPS[name]
    with autograd.train_mode() if case.train else autograd.predict_mode():
        out = getattr(nd, name)(*xs, **case.attrs) if name != 'BatchNorm' else \
            nd.invoke(op, xs, op.canon(case.attrs))[0]
    return out if isinstance(out, list) else [out]


@pytest.mark.parametrize('name,i', PARAMS)
def test_every_op_runs_bound_after_a_json_round_trip(name, i):
    case = CASES[name][i]
    vs = [sym.var(f"x{j}") for j in range(len(case.inputs))]
    s = getattr(sym, name)(*vs, **case.attrs) if name != 'BatchNorm' else \
        sym.BatchNorm(*vs, **case.attrs)
    s2 = sym.load_json(s.tojson())
    assert s2.list_arguments() == s.list_arguments(), (s2.list_arguments(), s.list_arguments())
    feeds = [a.astype(np.float32) if np.asarray(a).dtype.kind == 'f' else a for a in case.inputs]
    names = s2.list_arguments() + s2.list_auxiliary_states()
    by_name = dict(zip([f"x{j}" for j in range(len(feeds))], feeds))
    args = {n: nd.array(by_name[n], dtype=by_name[n].dtype) for n in s2.list_arguments()}
    aux = {n: nd.array(by_name[n], dtype=by_name[n].dtype) for n in s2.list_auxiliary_states()}
    assert set(names) == set(by_name), (names, sorted(by_name))
    exe = s2.bind(mx.cpu(), args, aux_states=aux or None, grad_req='null')
    if case.seed is not None:
        mx.random.seed(case.seed)
    got = exe.forward(is_train=bool(case.train))
    if case.seed is not None:
        mx.random.seed(case.seed)
    want = _eager(name, case, [nd.array(a, dtype=a.dtype) for a in feeds])
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(g.asnumpy(), w.asnumpy(), rtol=1e-5, atol=1e-5)
