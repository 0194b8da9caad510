"""MXNet's public testing helpers (mx.test_utils), for users' own test suites.

Tolerances are MXNet's defaults per dtype. The symbolic checks go through the public Symbol API
(`simple_bind`, `bind`, `Executor`), as MXNet's do.
"""
import contextlib
import os
import sys

import numpy as np

from .base import GraphcError
from .context import Context, current_context, cpu

_RTOL = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-5}
_ATOL = {np.dtype(np.float16): 1e-1, np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-20}
_EPS = {np.dtype(np.float16): 1.0 / 2 ** 6, np.dtype(np.float32): 1.0 / 2 ** 9, np.dtype(np.float64): 1.0 / 2 ** 14}


def default_context():
    return current_context()


def set_default_context(ctx):
    Context._default_ctx.value = ctx


def default_dtype():
    return np.float32


def default_rtols():
    return dict(_RTOL)


def default_atols():
    return dict(_ATOL)


def default_numeric_eps():
    return dict(_EPS)


def effective_dtype(dat):
    """The dtype the computation really ran in (no TF32 here: the array's own)."""
    return np.dtype(dat.dtype)


def _np(x):
    return x.asnumpy() if hasattr(x, 'asnumpy') else np.asarray(x)


def _tol(x, y, rtol, atol):
    """MXNet's rule: a tolerance not given is the larger default of the two dtypes."""
    dts = [np.dtype(getattr(v, 'dtype', np.float64)) for v in (x, y)]
    if rtol is None:
        rtol = max(_RTOL.get(d, 0) for d in dts)
    if atol is None:
        atol = max(_ATOL.get(d, 0) for d in dts)
    return rtol, atol


def get_rtol(rtol=None, dtype=np.dtype(np.float64)):
    return _RTOL.get(np.dtype(dtype), 0) if rtol is None else rtol


def get_atol(atol=None, dtype=np.dtype(np.float64)):
    return _ATOL.get(np.dtype(dtype), 0) if atol is None else atol


def same(a, b):
    """Exactly equal values (NDArrays or NumPy arrays)."""
    return np.array_equal(_np(a), _np(b))


def almost_equal(a, b, rtol=None, atol=None, equal_nan=False, use_broadcast=True):
    rtol, atol = _tol(a, b, rtol, atol)
    a, b = _np(a), _np(b)
    if not use_broadcast and a.shape != b.shape:
        return False
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def assert_almost_equal(a, b, rtol=None, atol=None, names=('a', 'b'), equal_nan=False,
                        use_broadcast=True, mismatches=(10, 10)):
    """Fails with the worst element (index, values, error relative to tolerance), as MXNet's."""
    rtol, atol = _tol(a, b, rtol, atol)
    a, b = _np(a), _np(b)
    if not use_broadcast and a.shape != b.shape:
        raise AssertionError(f"shapes differ: {names[0]} {a.shape}, {names[1]} {b.shape}")
    if np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan):
        return
    a64, b64 = np.broadcast_arrays(a.astype(np.float64), b.astype(np.float64))
    err = np.abs(a64 - b64) / (atol + rtol * np.abs(b64))
    err = np.where(np.isnan(err), np.inf, err)
    idx = np.unravel_index(np.argmax(err), err.shape) if err.size else ()
    raise AssertionError(f"Items are not equal: error {err[idx]:g} exceeds tolerance rtol={rtol:g}, atol={atol:g} "
                         f"at {idx}: {names[0]}={a64[idx]!r} {names[1]}={b64[idx]!r}\n"
                         f"{names[0]}: {a}\n{names[1]}: {b}")


def assert_almost_equal_ignore_nan(a, b, rtol=None, atol=None, names=('a', 'b')):
    a, b = np.copy(_np(a)), np.copy(_np(b))
    nan = np.logical_or(np.isnan(a), np.isnan(b))
    a[nan], b[nan] = 0, 0
    assert_almost_equal(a, b, rtol, atol, names)


def assert_allclose(a, b, rtol=1e-07, atol=0, equal_nan=True):
    assert_almost_equal(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


def assert_exception(f, exception_type, *args, **kwargs):
    """f(*args, **kwargs) must raise exception_type."""
    try:
        f(*args, **kwargs)
    except exception_type:
        return
    raise AssertionError(f"{getattr(f, '__name__', f)} did not raise {exception_type.__name__}")


def same_array(array1, array2):
    """Whether two NDArrays share memory (a write to one shows in the other)."""
    a, b = array1._data, array2._data
    return np.shares_memory(a, b)


def random_arrays(*shapes):
    """float32 standard-normal NumPy arrays (a scalar for shape ())."""
    arrs = [np.random.randn(*s).astype(np.float32) if s else np.float32(np.random.randn()) for s in shapes]
    return arrs[0] if len(arrs) == 1 else arrs


def random_uniform_arrays(*shapes, low=0.0, high=1.0, dtype=np.float32):
    arrs = [np.random.uniform(low, high, size=s).astype(dtype) for s in shapes]
    return arrs[0] if len(arrs) == 1 else arrs


def rand_shape_2d(dim0=10, dim1=10, allow_zero_size=False):
    lo = 0 if allow_zero_size else 1
    return np.random.randint(lo, dim0 + 1), np.random.randint(lo, dim1 + 1)


def rand_shape_3d(dim0=10, dim1=10, dim2=10, allow_zero_size=False):
    lo = 0 if allow_zero_size else 1
    return tuple(np.random.randint(lo, d + 1) for d in (dim0, dim1, dim2))


def rand_shape_nd(num_dim, dim=10, allow_zero_size=False):
    lo = 0 if allow_zero_size else 1
    return tuple(np.random.randint(lo, dim + 1, size=num_dim))


def rand_ndarray(shape, stype='default', density=None, dtype=None, modifier_func=None,
                 shuffle_csr_indices=False, distribution=None, ctx=None):
    """A random NDArray, uniform in [-1, 1). A sparse stype keeps each row (row_sparse) or value (csr) with
    probability density (default: a random density)."""
    from .ndarray import array
    a = np.random.uniform(-1, 1, size=shape) if shape else np.random.uniform(-1, 1)
    if modifier_func is not None:
        a = modifier_func(a)
    if stype == 'default':
        return array(a, ctx=ctx, dtype=dtype or np.float32)
    density = np.random.rand() if density is None else density
    drop = np.random.rand(a.shape[0]) >= density if stype == 'row_sparse' else np.random.rand(*a.shape) >= density
    a[drop] = 0
    return array(a, ctx=ctx, dtype=dtype or np.float32).tostype(stype)


def np_reduce(dat, axis, keepdims, numpy_reduce_func):
    """numpy_reduce_func over the axes (None: all), keeping dims when asked."""
    if axis is None:
        axis = tuple(range(dat.ndim))
    elif isinstance(axis, int):
        axis = (axis,)
    ret = dat
    for ax in sorted(a % dat.ndim for a in axis)[::-1]:
        ret = numpy_reduce_func(ret, axis=ax)
    if keepdims:
        shape = list(dat.shape)
        for ax in axis:
            shape[ax] = 1
        ret = ret.reshape(tuple(shape))
    return ret


def list_gpus():
    from .context import num_gpus
    return list(range(num_gpus()))


def retry(n):
    """Decorator: run a flaky (random) test up to n times."""
    def deco(f):
        def wrapped(*args, **kwargs):
            for i in range(n):
                try:
                    return f(*args, **kwargs)
                except AssertionError:
                    if i == n - 1:
                        raise
        wrapped.__name__ = f.__name__
        return wrapped
    return deco


@contextlib.contextmanager
def environment(*args):
    """`with environment('VAR', '1'):` or `with environment({'A': '1', 'B': None}):` sets (None: unsets)
    environment variables inside, restoring them after."""
    pairs = args[0] if len(args) == 1 and isinstance(args[0], dict) else {args[0]: args[1]}
    saved = {k: os.environ.get(k) for k in pairs}
    try:
        for k, v in pairs.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def discard_stderr():
    """Silence file descriptor 2 inside (native warnings included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, 'w') as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


# ---------------------------------------------------------------- symbolic checks (Symbol.bind / Executor)
def _location(sym, location, ctx, dtype):
    from .ndarray import array
    if isinstance(location, dict):
        if set(location) != set(sym.list_arguments()):
            raise GraphcError(f"location keys {sorted(location)} differ from the arguments {sym.list_arguments()}")
    else:
        location = dict(zip(sym.list_arguments(), location))
    return {k: array(v, ctx=ctx, dtype=v.dtype if dtype == 'asnumpy' else dtype) if isinstance(v, np.ndarray)
            else v for k, v in location.items()}


def _aux(sym, aux_states, ctx, dtype):
    from .ndarray import array
    if aux_states is None:
        return None
    if not isinstance(aux_states, dict):
        aux_states = dict(zip(sym.list_auxiliary_states(), aux_states))
    return {k: array(v, ctx=ctx, dtype=dtype) if isinstance(v, np.ndarray) else v for k, v in aux_states.items()}


def simple_forward(sym, ctx=None, is_train=False, **inputs):
    """Forward of sym on NumPy inputs; NumPy outputs (one array if there is one output)."""
    from .ndarray import array
    ctx = ctx or default_context()
    exe = sym.bind(ctx, args={k: array(v) for k, v in inputs.items()})
    exe.forward(is_train=is_train)
    outs = [o.asnumpy() for o in exe.outputs]
    return outs[0] if len(outs) == 1 else outs


def numeric_grad(executor, location, aux_states=None, eps=1e-4, use_forward_train=True, dtype=np.float32):
    """Central differences of sum(outputs) for each argument in `location` (NumPy arrays)."""
    for k, v in location.items():
        executor.arg_dict[k][:] = v
    grads = {}
    for k, v in location.items():
        v = np.asarray(v, dtype=np.float64)
        g = np.zeros(v.shape)
        flat = v.reshape(-1).copy()
        for i in range(flat.size):
            vals = []
            for d in (eps / 2, -eps / 2):
                f = flat.copy()
                f[i] += d
                executor.arg_dict[k][:] = f.reshape(v.shape).astype(dtype)
                if aux_states is not None:
                    for ak, av in aux_states.items():
                        executor.aux_dict[ak][:] = av
                executor.forward(is_train=use_forward_train)
                vals.append(sum(float(o.asnumpy().astype(np.float64).sum()) for o in executor.outputs))
            g.reshape(-1)[i] = (vals[0] - vals[1]) / eps
        executor.arg_dict[k][:] = v.astype(dtype)
        grads[k] = g.astype(dtype)
    return grads


def check_numeric_gradient(sym, location, aux_states=None, numeric_eps=None, rtol=None, atol=None,
                           grad_nodes=None, use_forward_train=True, ctx=None, grad_stype_dict=None,
                           dtype=np.float32):
    """The executor's gradients of sym against central differences (of a random projection of the output)."""
    from . import symbol as sym_mod
    from .ndarray import array
    ctx = ctx or default_context()
    dtype = np.dtype(dtype)
    eps = numeric_eps or _EPS.get(dtype, 1e-4)
    rtol = 1e-2 if rtol is None else rtol
    atol = 1e-5 if atol is None else atol
    loc = {k: _np(v) for k, v in _location(sym, location, ctx, dtype).items()}
    aux = {k: _np(v) for k, v in (_aux(sym, aux_states, ctx, dtype) or {}).items()} or None
    grad_nodes = grad_nodes or list(loc)
    if isinstance(grad_nodes, dict):
        grad_nodes = list(grad_nodes)
    _, out_shapes, _ = sym.infer_shape(**{k: v.shape for k, v in loc.items()})
    proj = sym_mod.Variable('__random_proj')
    out = sym_mod.make_loss(sym * proj)
    proj_val = np.random.uniform(size=out_shapes[0]).astype(dtype)
    args = {k: array(v, ctx=ctx, dtype=dtype) for k, v in loc.items()}
    args['__random_proj'] = array(proj_val, ctx=ctx, dtype=dtype)
    grads = {k: array(np.zeros(v.shape), ctx=ctx, dtype=dtype) for k, v in loc.items() if k in grad_nodes}
    exe = out.bind(ctx, args=args, args_grad=grads, aux_states=None if aux is None else
                   {k: array(v, ctx=ctx, dtype=dtype) for k, v in aux.items()})
    exe.forward(is_train=True)
    exe.backward()
    symbolic = {k: exe.grad_dict[k].asnumpy() for k in grad_nodes}
    num_loc = dict(loc, __random_proj=proj_val)
    numeric = numeric_grad(exe, {k: num_loc[k] for k in grad_nodes}, aux, eps, use_forward_train, dtype)
    for k in grad_nodes:
        assert_almost_equal(numeric[k], symbolic[k], rtol, atol, names=(f"NUMERICAL_{k}", f"BACKWARD_{k}"))


def check_symbolic_forward(sym, location, expected, rtol=None, atol=None, aux_states=None, ctx=None,
                           equal_nan=False, dtype=np.float32):
    """The executor's forward outputs against expected NumPy arrays."""
    ctx = ctx or default_context()
    args = _location(sym, location, ctx, dtype)
    exe = sym.bind(ctx, args=args, aux_states=_aux(sym, aux_states, ctx, dtype))
    exe.forward(is_train=False)
    if isinstance(expected, dict):
        expected = [expected[k] for k in sym.list_outputs()]
    for name, e, o in zip(sym.list_outputs(), expected, exe.outputs):
        assert_almost_equal(e, o, rtol, atol, ('EXPECTED_' + name, 'FORWARD_' + name), equal_nan=equal_nan)
    return exe.outputs


def check_symbolic_backward(sym, location, out_grads, expected, rtol=None, atol=None, aux_states=None,
                            grad_req='write', ctx=None, grad_stypes=None, equal_nan=False, dtype=np.float32):
    """The executor's input gradients (for the given output gradients) against expected NumPy arrays."""
    from .ndarray import array
    ctx = ctx or default_context()
    args = _location(sym, location, ctx, dtype)
    if isinstance(expected, (list, tuple)):
        expected = dict(zip(sym.list_arguments(), expected))
    grads = {k: array(np.zeros(v.shape), ctx=ctx, dtype=v.dtype) for k, v in args.items()}
    reqs = grad_req if isinstance(grad_req, dict) else {k: grad_req for k in args}
    exe = sym.bind(ctx, args=args, args_grad=grads, grad_req=reqs, aux_states=_aux(sym, aux_states, ctx, dtype))
    exe.forward(is_train=True)
    if isinstance(out_grads, dict):
        out_grads = [out_grads[k] for k in sym.list_outputs()]
    out_grads = None if out_grads is None else [array(g, ctx=ctx, dtype=g.dtype) if isinstance(g, np.ndarray)
                                                else g for g in _as_seq(out_grads)]
    exe.backward(out_grads)
    for k, e in expected.items():
        if reqs.get(k, 'write') != 'null':
            assert_almost_equal(e, exe.grad_dict[k], rtol, atol, ('EXPECTED_' + k, 'BACKWARD_' + k),
                                equal_nan=equal_nan)
    return exe.grad_dict


def _as_seq(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def check_consistency(sym, ctx_list, scale=1.0, grad_req='write', arg_params=None, aux_params=None,
                      tol=None, raise_on_err=True, ground_truth=None, equal_nan=False, use_uniform=False,
                      rand_type=np.float64):
    """The same symbol(s) on several contexts/dtypes give the same outputs and gradients."""
    from .ndarray import array
    syms = sym if isinstance(sym, (list, tuple)) else [sym] * len(ctx_list)
    shapes = {k: v for k, v in ctx_list[0].items() if k not in ('ctx', 'type_dict')}
    arg_shapes, _, aux_shapes = syms[0].infer_shape(**shapes)
    names = syms[0].list_arguments()
    rng = np.random.uniform if use_uniform else np.random.normal
    args = {k: (arg_params or {}).get(k, rng(size=s) * scale if not use_uniform else rng(-scale, scale, size=s))
            for k, s in zip(names, arg_shapes)}
    aux = {k: (aux_params or {}).get(k, np.zeros(s)) for k, s in zip(syms[0].list_auxiliary_states(), aux_shapes)}
    results = []
    for s, c in zip(syms, ctx_list):
        ctx = c.get('ctx', cpu())
        types = c.get('type_dict', {})
        a = {k: array(np.asarray(v), ctx=ctx, dtype=types.get(k, np.float32)) for k, v in args.items()}
        g = {k: array(np.zeros(np.shape(v)), ctx=ctx, dtype=types.get(k, np.float32)) for k, v in args.items()}
        x = {k: array(np.asarray(v), ctx=ctx, dtype=np.float32) for k, v in aux.items()}
        exe = s.bind(ctx, args=a, args_grad=None if grad_req == 'null' else g, grad_req=grad_req, aux_states=x)
        exe.forward(is_train=grad_req != 'null')
        outs = [o.asnumpy() for o in exe.outputs]
        if grad_req != 'null':
            exe.backward([array(np.ones(o.shape), ctx=ctx, dtype=o.dtype) for o in outs])
        results.append((outs, {k: v.asnumpy() for k, v in exe.grad_dict.items() if v is not None}))
    gt_outs, gt_grads = results[0] if ground_truth is None else ground_truth
    for outs, grads in results[1:]:
        for a, b in zip(gt_outs, outs):
            assert_almost_equal(a, b, tol, tol, equal_nan=equal_nan)
        for k in grads:
            if k in gt_grads:
                assert_almost_equal(gt_grads[k], grads[k], tol, tol, equal_nan=equal_nan)
    return results


def is_cd_run():
    return os.environ.get('CONTINUOUS_INTEGRATION') == 'true'
