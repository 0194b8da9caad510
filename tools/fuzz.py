"""Differential fuzzing: random graphs, valid by construction over the registry's ops, run every way graphc
can run them, and compared.

    python tools/fuzz.py --seed 0 --count 2000 --time-budget 900 --minimize

A test-side tool (tests/test_fuzz.py imports it; tests/conftest.py puts tools/ on the path), not library code.

A case is plain data: inputs (with their values), nodes (op name, attributes in MXNet's string form, input
references) and outputs. The oracle runs it eagerly (the reference), through the graph interpreter, the
compiled CPU backend with all passes and with a random subset of passes off, the lazy engine, and export ->
import -> hybridized SymbolBlock; gradients of the hybridized (compiled) block are compared with eager
autograd. Tolerances come from TOLERANCES below, which docs/NUMERICS.md mirrors (a test checks).
A failing case is minimized (delta debugging over nodes: a node is replaced by an input holding its value)
and written as JSON to tests/regressions/, which tests/test_fuzz.py replays.

Values are kept finite by construction: every value carries an interval bound, ops with a restricted domain
(log, division, ...) get an operand made positive or bounded first, and ops that are discontinuous (floor,
comparisons, argmax, indices) only see values that every backend computes bit for bit ('exact' values), so a
1-ULP difference upstream cannot flip them.
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time
import traceback

import numpy as np

from graphc import autograd, engine, nd
from graphc.base import GraphcError, GraphcShapeError
from graphc.registry import OPS

# ---------------------------------------------------------------- tolerances (docs/NUMERICS.md mirrors this)
# A compared value passes when |got - want| <= atol * scale + rtol * |want| elementwise, scale being the
# largest finite |want| of that output (at least 1); NaN and +-inf must sit at the same places.
# The family of an output is the loosest family among the ops it depends on (FAMILIES order).
FAMILIES = ('exact', 'transcendental', 'reduction', 'gemm')
TOLERANCES = {  # (dtype, family or 'gradient') -> (rtol, atol)
    ('float32', 'exact'): (0.0, 0.0),
    ('float32', 'transcendental'): (1e-5, 1e-6),
    ('float32', 'reduction'): (1e-5, 1e-5),
    ('float32', 'gemm'): (1e-5, 1e-5),
    ('float32', 'gradient'): (1e-4, 1e-5),
    ('float64', 'exact'): (0.0, 0.0),
    ('float64', 'transcendental'): (1e-12, 1e-13),
    ('float64', 'reduction'): (1e-12, 1e-12),
    ('float64', 'gemm'): (1e-12, 1e-12),
    ('float64', 'gradient'): (1e-10, 1e-11),
    ('int', 'exact'): (0.0, 0.0),
}
# eager (on the interp backend) vs the interpreter run the same NumPy kernels: they must agree bit for bit
EXACT_PATHS = ('interp',)

FAMILY = {}
for _n in ('exp', 'log', 'log1p', 'expm1', 'tanh', 'sin', 'cos', 'sigmoid', 'softrelu', 'softsign', 'erf',
           'broadcast_power', '_power_scalar', '_rpower_scalar', 'Activation', 'LeakyReLU'):
    FAMILY[_n] = 'transcendental'
for _n in ('sum', 'mean', 'prod', 'norm', 'softmax', 'log_softmax', 'softmax_cross_entropy'):
    FAMILY[_n] = 'reduction'
for _n in ('dot', 'batch_dot', 'FullyConnected', 'Convolution', 'Deconvolution', 'BatchNorm', 'LayerNorm', 'RNN'):
    FAMILY[_n] = 'gemm'

# Every registered op is generated, or listed here with the reason it is not.
EXCLUDED = {
    '_rmod_scalar': 's mod x jumps wherever s/x is an integer, so a random divisor can put compiled and interpreted '
                     'results on two sides of a jump; tests/op_cases.py checks it with divisors away from them',
    '_backward_BatchNorm': 'a gradient op: reached through the gradient check of BatchNorm',
    '_backward_Convolution': 'a gradient op: reached through the gradient check of Convolution',
    '_backward_Deconvolution': 'a gradient op: reached through the gradient check of Deconvolution',
    '_backward_LayerNorm': 'a gradient op: reached through the gradient check of LayerNorm',
    '_backward_Pooling': 'a gradient op: reached through the gradient check of Pooling',
    '_backward_pick': 'a gradient op: reached through the gradient check of pick',
    '_backward_take': 'a gradient op: reached through the gradient checks of take and Embedding',
    '_backward_RNN': 'a gradient op: reached through the gradient check of RNN',
    # (session 9's MXNet ops: each has NumPy-checked cases with gradient checks in tests/op_cases.py)
    'GridGenerator': 'its affine/warp inputs must make a grid inside [-1, 1] of a fixed (N, 2, H, W) layout',
    'BilinearSampler': 'needs a sampling grid of layout (N, 2, H, W) in [-1, 1] beside the data',
    'SpatialTransformer': 'an affine grid and a sampler: its loc input must be (N, 6) and the target shape given',
    'Correlation': 'two NCHW maps whose kernel, stride and displacement attributes must fit the map size',
    'ROIPooling': 'needs rows (batch index, x1, y1, x2, y2) of boxes inside the image beside the feature map',
    '_contrib_ROIAlign': 'needs rows (batch index, x1, y1, x2, y2) of boxes inside the image beside the feature map',
    'SVMOutput': 'a loss head over class-index labels (the random graphs have no label inputs)',
    '_contrib_MultiBoxPrior': 'SSD anchors: a function of the input shape only, not of its values (nothing to compile)',
    '_contrib_MultiBoxTarget': 'SSD targets: needs anchor, label (class, box) and prediction sets of matching layouts',
    '_contrib_bipartite_matching': 'a greedy matching: ties between equal scores make its result order-dependent',
    '_contrib_div_sqrt_dim': 'x / sqrt(last dim): one scalar multiply, already generated as _div_scalar',
    '_contrib_index_array': 'the indices of the input shape (no dependence on values): nothing to compile',
    '_histogram': 'bin counts are discontinuous in the values (a tolerance-free comparison of counts)',
    '_identity_with_attr_like_rhs': 'an identity whose second input only carries attributes (MXNet internal)',
    'all_finite': 'a 0/1 flag over the whole input: exact, and any NaN the graphs make flips it on one path',
    'multi_all_finite': 'a 0/1 flag over the whole inputs: exact, and any NaN the graphs make flips it on one path',
    'amp_cast': 'changes the element type (as Cast): the paths then differ by rounding, not by bugs',
    'amp_multicast': 'changes the element types of several inputs (as Cast)',
    '_sample_unique_zipfian': 'draws without replacement by rejection: the number of draws depends on the stream',
    '_backward_InstanceNorm': 'a gradient op: reached through the gradient check of InstanceNorm',
    '_backward_GroupNorm': 'a gradient op: reached through the gradient check of GroupNorm',
    '_backward_Pad': 'a gradient op: reached through the gradient check of Pad',
    'Custom': "a user's Python operator: its semantics are the registered CustomOp's (tests/test_custom_op.py)",
    # MXNet's legacy/extended ops (s8): no generator written yet; oracle and gradient checks in tests/op_cases.py
    '_contrib_isinf': 'no generator yet (0/1 flags of inf; graphs rarely hold infinities): op_cases checks it',
    '_contrib_isnan': 'no generator yet (0/1 flags of NaN; generated values are finite): op_cases checks it',
    '_contrib_isfinite': 'no generator yet (0/1 flags; generated values are finite): op_cases checks it',
    'fill_element_0index': 'no generator yet (needs a 2-d lhs and per-row index/value): op_cases checks it',
    'moments': 'no generator yet (two outputs, axes attribute): op_cases checks forward and gradient',
    'ravel_multi_index': 'no generator yet (integer multi-indices inside a shape attribute): op_cases checks it',
    'unravel_index': 'no generator yet (integer flat indices inside a shape attribute): op_cases checks it',
    '_digamma': 'the gradient helper of gamma and gammaln: reached through their gradient checks',
    '_contrib_quadratic': 'no generator yet (three float attributes a, b, c): op_cases checks it',
    'gamma': 'poles at 0, -1, ... and overflow past 35: no interval rule yet; op_cases checks forward and gradient',
    'gammaln': 'poles at 0, -1, ...: no interval rule yet; op_cases checks forward and gradient',
    '_contrib_AdaptiveAvgPooling2D': 'no generator yet (NCHW data, output_size attribute): op_cases checks it',
    'im2col': 'no generator yet (kernel/stride/pad/dilate geometry): op_cases checks it against loops',
    'col2im': 'no generator yet (needs columns matching an output_size geometry): op_cases checks it',
    '_backward_contrib_AdaptiveAvgPooling2D': 'a gradient op: reached through the gradient check of '
                                              'AdaptiveAvgPooling2D',
    '_contrib_gradientmultiplier': 'no generator yet (identity forward; its point is the scaled gradient)',
    '_contrib_index_copy': 'no generator yet (needs distinct in-range row indices): op_cases checks it',
    # mx.np's ops of session 12 (MXNet's _npi_ names): NumPy-checked cases with gradient checks in tests/op_cases.py
    '_npi_svd': "singular vectors are defined up to sign: two paths may return either (op_cases fixes the sign)",
    '_npi_eig': 'eigenvectors are defined up to sign and order, and random matrices have complex eigenvalues',
    '_npi_eigvals': 'random matrices have complex eigenvalues (graphc returns real ones only)',
    '_npi_eigh': 'needs a symmetric input; eigenvectors are defined up to sign (op_cases symmetrizes)',
    '_npi_eigvalsh': 'needs a symmetric input (op_cases symmetrizes)',
    '_npi_cholesky': 'needs a symmetric positive-definite input (op_cases builds one)',
    '_npi_solve': 'needs a well-conditioned square matrix (random ones may be near singular)',
    '_npi_pinv': 'near-zero singular values of random matrices make it jump at the cut-off',
    '_npi_pinv_scalar_rcond': 'near-zero singular values of random matrices make it jump at the cut-off',
    '_npi_qr': 'the factors are defined up to signs of the rows of R: two paths may pick either',
    '_npi_matrix_rank': 'an integer count of singular values over a tolerance: discontinuous in the values',
    '_npi_matrix_rank_none_tol': 'an integer count of singular values over a tolerance: discontinuous in the values',
    '_npi_einsum': 'no generator yet (a subscripts string matching the operand shapes): op_cases checks it',
    '_npi_pad': 'no generator yet (pad_width per axis and a mode): op_cases checks it',
    '_npi_insert': 'no generator yet (positions and values matching an axis): op_cases checks it',
    '_npi_delete': 'no generator yet (in-range positions along an axis): op_cases checks it',
    '_npi_percentile': 'order statistics: ties and interpolation make the gradient jump between elements',
    '_np_roll': 'no generator yet (shift and axis attributes): op_cases checks it',
    '_npi_lcm': 'integer inputs only (the random graphs are floating point)',
    '_npi_bitwise_and': 'integer inputs only (the random graphs are floating point)',
    '_npi_bitwise_or': 'integer inputs only (the random graphs are floating point)',
    '_npi_bitwise_xor': 'integer inputs only (the random graphs are floating point)',
    '_npi_copysign': 'no generator yet (jumps where the second input crosses zero): op_cases checks it',
    '_npi_arctan2': 'no generator yet (a jump across the negative x axis): op_cases checks it',
    '_npi_ldexp': 'no generator yet (x * 2**e overflows for random exponents): op_cases checks it',
}
# Partly excluded: a graph holds at most one op that reads the random stream (a sampler, _shuffle, or a Dropout
# that drops), so that every path, seeded alike, draws the same numbers in the same order (RNN keeps p = 0);
# LeakyReLU act_type='rrelu', UpSampling sample_type='bilinear' and BilinearResize2D mode='odd_scale' (graphc
# rejects them).

REGRESSIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests', 'regressions')
LIMIT = 1e4          # bound on |value| everywhere in a generated graph
MAX_ELEMS = 4096     # per value (one case in 100 gets a big elementwise value, to reach the threaded kernels)
HEAD_SEED = 1234     # head gradients: a fixed normal draw per output shape

# ---------------------------------------------------------------- extra backends (GPU hook)
# HOOK(gpu): the GPU host-emulation harness (runtime/cuda*.py) registers a runner here:
# EXTRA_BACKENDS['gpu_emulated'] = fn(graph, feed) -> list of NumPy arrays, where graph is the graph after the
# inference/training pipeline and feed maps input node -> array. The oracle compares each registered
# backend like 'compiled' (same tolerances); nothing here depends on it.
EXTRA_BACKENDS = {}


def gpu_emulated_backend():
    """HOOK(gpu): the CUDA code generator run by its host emulation (runtime/cuda.py, runtime/emulate.py: the
    generated CUDA compiled by g++ for the CPU), as a runner for EXTRA_BACKENDS; None while that harness or g++
    is missing. Slow (a g++ build per new kernel): opt in with --gpu-emulated."""
    try:
        from graphc.runtime import cuda, emulate
        if emulate.gxx_path() is None:
            return None
        plan_cls, device = cuda.GpuPlan, emulate.EmuDevice
    except (ImportError, AttributeError):
        return None

    def run(graph, feed):
        dev = device()
        return [dev.to_host(a) for a in plan_cls(graph, dev)(feed)]
    return run


def _family_rank(f):
    return FAMILIES.index(f)


def tolerance(dtype, family):
    dt = np.dtype(dtype)
    if dt.kind != 'f':
        return TOLERANCES[('int', 'exact')]
    return TOLERANCES[(str(dt) if dt == np.float64 else 'float32', family)]


# ---------------------------------------------------------------- the generator
class Val:
    """A generated value: its reference (input name or (node index, output)), shape, dtype, interval bound
    [lo, hi], whether every backend computes it bit for bit, and, for index values, the range [0, index)."""
    __slots__ = ('ref', 'shape', 'dtype', 'lo', 'hi', 'exact', 'index', 'op')

    def __init__(self, ref, shape, dtype, lo, hi, exact, index=None, op=None):
        self.ref, self.shape, self.dtype, self.lo, self.hi = ref, tuple(shape), np.dtype(dtype), lo, hi
        self.exact, self.index, self.op = exact, index, op

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def mag(self):
        return max(abs(self.lo), abs(self.hi))

    @property
    def isfloat(self):
        return self.dtype.kind == 'f'


def _iv(*xs):
    xs = [x for x in xs if not math.isnan(x)]
    return min(xs), max(xs)


class Builder:
    def __init__(self, rng, dtype, train):
        self.rng, self.dtype, self.train = rng, np.dtype(dtype), train
        self.inputs, self.nodes, self.vals = [], [], []
        self.big = rng.random() < 0.01
        self.random_used = False  # one op that reads the random stream per graph (see _stream_free)

    # ------------------------------------------------------------ inputs
    def fresh(self, shape, kind='real', dtype=None, n=None, scale=1.0):
        """A new graph input: 'real' (normal, |x| <= 3 scale), 'pos' (in [0.5, 2]), 'int' (integers in [-3, 3]),
        'mask' (0/1), 'index' (integers in [0, n))."""
        if len(self.inputs) >= 12:
            return None
        r, dt = self.rng, np.dtype(dtype or self.dtype)
        shape = tuple(int(d) for d in shape)
        if kind == 'real':
            a, lo, hi = np.clip(r.standard_normal(shape), -3, 3) * scale, -3 * scale, 3 * scale
        elif kind == 'pos':
            a, lo, hi = r.uniform(0.5, 2.0, shape), 0.5, 2.0
        elif kind == 'int':
            a, lo, hi = r.integers(-3, 4, shape).astype(float), -3, 3
        elif kind == 'mask':
            a, lo, hi = r.integers(0, 2, shape).astype(float), 0, 1
        else:
            a, lo, hi = r.integers(0, max(n, 1), shape).astype(float), 0, max(n - 1, 0)
        name = f"x{len(self.inputs)}"
        self.inputs.append({'name': name, 'array': np.asarray(a, dt)})
        v = Val(name, shape, dt, lo, hi, True, index=n if kind == 'index' else None)
        self.vals.append(v)
        return v

    def shape(self, ndim=None, min_dim=1):
        r = self.rng
        ndim = int(r.choice([0, 1, 2, 2, 3, 3, 4])) if ndim is None else ndim
        dims = [int(r.choice([1, 1, 2, 2, 3, 3, 4, 5, 7, 8, 16, 17, 33])) for _ in range(ndim)]
        if self.big and ndim == 2 and r.random() < 0.5:
            return (600, 512)
        while math.prod(dims) > MAX_ELEMS // 4:
            dims[int(np.argmax(dims))] //= 2
        dims = [max(d, min_dim) for d in dims]
        if ndim and r.random() < 0.03:
            dims[int(r.integers(ndim))] = 0  # a zero-size value
        return tuple(dims)

    # ------------------------------------------------------------ choosing operands
    def pick(self, ok=lambda v: True, ints=False, empty=False, exact=False, fresh=0.15, ndim=None, kind='real'):
        """An existing value passing the filters (often the latest, for long chains), else a fresh input."""
        cands = [v for v in self.vals if (v.isfloat or ints) and (empty or v.size > 0) and (v.exact or not exact)
                 and (ndim is None or len(v.shape) in ndim) and ok(v)]
        r = self.rng
        if cands and r.random() > fresh:
            return cands[-1] if r.random() < 0.5 else cands[int(r.integers(len(cands)))]
        for _ in range(8):
            shape = self.shape(None if ndim is None else int(r.choice(list(ndim))))
            probe = Val('', shape, self.dtype, 0, 0, True)
            if (empty or probe.size > 0) and ok(probe):
                return self.fresh(shape, 'int' if exact and r.random() < 0.5 else kind)
        return None

    def like(self, shape, dtype, ok=lambda v: True, kind='real', exact=False):
        """A value of exactly this shape and dtype: an existing one, or a fresh input."""
        cands = [v for v in self.vals if v.shape == tuple(shape) and v.dtype == dtype and ok(v) and
                 (v.exact or not exact) and v.index is None]
        if cands and self.rng.random() < 0.6:
            return cands[int(self.rng.integers(len(cands)))]
        return self.fresh(shape, kind, dtype)

    def positive(self, v, lo=0.05):
        """v itself when it is >= lo, else a positive value made from it."""
        if v.lo >= lo:
            return v
        r = self.rng
        how = r.integers(3)
        if how == 0 and v.mag <= 6:
            return self.op1('exp', v)
        if how == 1:
            s = self.op1('sigmoid', v)
            return s and self.op1('_plus_scalar', s, scalar=float(r.choice([0.1, 0.5, 1.0])))
        a = self.op1('abs', v)
        return a and self.op1('_plus_scalar', a, scalar=float(r.choice([0.1, 0.5, 1.0])))

    def tame(self, v, m=3.0):
        """v itself when |v| <= m, else a bounded value made from it."""
        if v.mag <= m:
            return v
        how = self.rng.integers(3)
        if how == 0:
            return self.op1('tanh', v)
        if how == 1:
            return self.op1('clip', v, a_min=-m, a_max=m)
        return self.op1('softsign', v)

    def op1(self, name, v, **attrs):
        iv = None
        if name in SCALARS:
            iv = lambda a: SCALARS[name][2](a, attrs['scalar'])  # noqa: E731
        elif name == 'clip':
            iv = lambda a: tuple(min(max(x, attrs['a_min']), attrs['a_max']) for x in a)  # noqa: E731
        out = self.add(name, attrs, [v], iv=iv)
        return out[0] if out else None

    # ------------------------------------------------------------ adding a node
    def add(self, name, attrs, ins, iv=None, exact=None, index=None):
        """Add node `name(ins)`; None when its shape is invalid, too big, or its bound leaves [-LIMIT, LIMIT].
        iv: callable(*intervals) -> interval or list of intervals per output (default: the unary rule)."""
        if any(v is None for v in ins):
            return None
        op = OPS[name]
        try:
            a = op.canon(attrs)
            if op.mode_dependent:
                a['_train'] = self.train
            shapes, dtypes = op.infer(a, [v.shape for v in ins], [v.dtype for v in ins])
        except (GraphcError, ValueError, TypeError, IndexError, ZeroDivisionError):
            return None
        if any(math.prod(s) > (MAX_ELEMS * 80 if self.big else MAX_ELEMS) for s in shapes):
            return None
        rule = iv or UNARY_IV.get(name)
        try:
            bounds = rule(*[(v.lo, v.hi) for v in ins]) if rule else (-LIMIT, LIMIT)
        except (OverflowError, ValueError, ZeroDivisionError, TypeError):
            return None
        bounds = bounds if isinstance(bounds, list) else [bounds] * len(shapes)
        if any(not (abs(lo) <= LIMIT and abs(hi) <= LIMIT) for lo, hi in bounds):
            return None
        if exact is None:
            exact = FAMILY.get(name, 'exact') == 'exact' and all(v.exact for v in ins)
        k = len(self.nodes)
        self.nodes.append({'op': name, 'attrs': op.format_attrs({k2: v2 for k2, v2 in a.items() if k2 != '_train'}),
                           'inputs': [v.ref for v in ins]})
        outs = [Val((k, j), s, d, lo, hi, exact, index if j == 0 else None, name)
                for j, (s, d, (lo, hi)) in enumerate(zip(shapes, dtypes, bounds))]
        self.vals += outs
        return outs


# ---------------------------------------------------------------- interval rules of the unary ops
def _mono(f):
    return lambda a: _iv(f(a[0]), f(a[1]))


def _softrelu(x):
    return max(x, 0) + math.log1p(math.exp(-abs(x)))


def _sig(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _absiv(a):
    lo, hi = a
    return (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))), max(abs(lo), abs(hi))


UNARY_IV = {
    'negative': lambda a: (-a[1], -a[0]), 'exp': _mono(math.exp), 'log': _mono(math.log), 'log1p': _mono(math.log1p),
    'expm1': _mono(math.expm1), 'sqrt': _mono(math.sqrt), 'rsqrt': _mono(lambda x: x ** -0.5),
    'reciprocal': _mono(lambda x: 1 / x), 'square': lambda a: tuple(x * x for x in _absiv(a)), 'abs': _absiv,
    'sign': lambda a: (-1, 1), 'tanh': _mono(math.tanh), 'sin': lambda a: (-1, 1), 'cos': lambda a: (-1, 1),
    'sigmoid': _mono(_sig), 'relu': lambda a: (max(a[0], 0), max(a[1], 0)), 'softrelu': _mono(_softrelu),
    'softsign': lambda a: (-1, 1), 'erf': lambda a: (-1, 1), '_copy': lambda a: a, 'zeros_like': lambda a: (0, 0),
    'ones_like': lambda a: (1, 1), 'floor': _mono(math.floor), 'ceil': _mono(math.ceil), 'round': _mono(round),
}
# what a unary op needs of its operand: a lower bound (domain), a magnitude bound, or an exact value
UNARY_NEED = {'log': ('pos', 0.05), 'sqrt': ('pos', 0.05), 'rsqrt': ('pos', 0.05), 'reciprocal': ('pos', 0.1),
              'log1p': ('pos', 0.05), 'exp': ('mag', 8), 'expm1': ('mag', 8), 'sin': ('mag', 20),
              'cos': ('mag', 20), 'square': ('mag', 90), 'sign': ('exact',), 'floor': ('exact',),
              'ceil': ('exact',), 'round': ('exact',)}
INT_OK = {'negative', 'abs', 'square', 'relu', 'sign', 'zeros_like', 'ones_like', '_copy'}


def _prep(b, v, need):
    if need is None:
        return v
    if need[0] == 'pos':
        return b.positive(v, need[1])
    if need[0] == 'mag':
        return b.tame(v, need[1])
    if need[0] == 'unit':  # inside (-1, 1), away from the poles of the gradient
        return v if v.mag <= need[1] else b.op1('clip', v, a_min=-need[1], a_max=need[1])
    if need[0] == 'ge1':
        p = b.positive(v, 0.05)
        return p if p is None or p.lo >= 1.05 else b.op1('_plus_scalar', p, scalar=1.0)
    return v


def gen_unary(b, name):
    need = UNARY_NEED.get(name)
    ints = name in INT_OK
    v = b.pick(exact=bool(need and need[0] == 'exact'), ints=ints, empty=True)
    return b.add(name, {}, [_prep(b, v, need)] if v is not None else [None])


def gen_activation(b, name):
    act = str(b.rng.choice(['relu', 'sigmoid', 'tanh', 'softrelu', 'softsign']))
    v = b.pick(empty=True)
    return b.add(name, {'act_type': act}, [v], iv=UNARY_IV[act])


def gen_cast(b, name):
    r = b.rng
    to = str(r.choice(['float32', 'float64', 'int32']))
    v = b.pick(ints=True, exact=to == 'int32', empty=True)
    return b.add(name, {'dtype': to}, [v], iv=lambda a: (math.trunc(a[0]), math.trunc(a[1])) if to == 'int32' else a)


def gen_clip(b, name):
    lo = float(b.rng.choice([-2.0, -1.0, -0.5, 0.0, 0.25]))
    hi = lo + float(b.rng.choice([0.5, 1.0, 3.0]))
    return b.add(name, {'a_min': lo, 'a_max': hi}, [b.pick(empty=True)],
                 iv=lambda a: (min(max(a[0], lo), hi), min(max(a[1], lo), hi)))


# ---------------------------------------------------------------- binary and scalar ops
def _mul_iv(a, b):
    return _iv(a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])


def _recip_iv(a):
    return _iv(1 / a[0], 1 / a[1])


BIN_IV = {
    'add': lambda a, b: (a[0] + b[0], a[1] + b[1]), 'sub': lambda a, b: (a[0] - b[1], a[1] - b[0]), 'mul': _mul_iv,
    'div': lambda a, b: _mul_iv(a, _recip_iv(b)), 'maximum': lambda a, b: (max(a[0], b[0]), max(a[1], b[1])),
    'minimum': lambda a, b: (min(a[0], b[0]), min(a[1], b[1])),
    'power': lambda a, b: _iv(*[x ** y for x in a for y in b]),
    'mod': lambda a, b: (min(0, -max(abs(b[0]), abs(b[1]))), max(abs(b[0]), abs(b[1]))),
}
CMP = ('equal', 'not_equal', 'greater', 'greater_equal', 'lesser', 'lesser_equal')
INT_BIN = ('add', 'sub', 'mul', 'maximum', 'minimum') + CMP


def bcast_shape(b, shape):
    """A shape that broadcasts with `shape`: some dims set to 1, leading dims dropped, or one added."""
    r = b.rng
    s = [1 if r.random() < 0.3 else d for d in shape]
    if s and r.random() < 0.25:
        s = s[int(r.integers(len(s) + 1)):]
    if r.random() < 0.15 and len(s) < 4:
        s = [int(r.choice([2, 3]))] + s
    return tuple(s)


def gen_binary(b, name):
    broadcast, kind = name.split('_', 1)
    r = b.rng
    cmp_, ints = kind in CMP, kind in INT_BIN
    x = b.pick(exact=cmp_ or kind == 'mod', ints=ints, empty=True)
    if x is None:
        return None
    if kind == 'mod':
        x = x if x.exact else None
    shape = x.shape if broadcast == 'elemwise' or r.random() < 0.4 else bcast_shape(b, x.shape)
    cands = [v for v in b.vals if v.shape == shape and v.dtype == x.dtype and (v.exact or not (cmp_ or kind == 'mod'))]
    y = cands[int(r.integers(len(cands)))] if cands and r.random() < 0.6 else \
        b.fresh(shape, 'pos' if kind in ('div', 'mod', 'power') else 'int' if cmp_ and r.random() < 0.5 else 'real',
                x.dtype)
    if y is None:
        return None
    if kind == 'div':
        y = b.positive(y, 0.1)
    if kind == 'power':
        x, y = b.positive(x, 0.1), b.tame(y, 2.0)
    if kind == 'mod' and not (y.exact and y.lo >= 0.1):
        return None
    if r.random() < 0.5 and kind not in ('div', 'power', 'mod'):
        x, y = y, x
    rule = BIN_IV.get(kind, lambda a, c: (0, 1))
    return b.add(name, {}, [x, y], iv=rule)


SCALARS = {  # name: (scalars, operand need, interval rule(a, s))
    '_plus_scalar': ((0.0, 1.0, -2.5, 0.1), None, lambda a, s: (a[0] + s, a[1] + s)),
    '_minus_scalar': ((0.0, 1.5, -0.5), None, lambda a, s: (a[0] - s, a[1] - s)),
    '_rminus_scalar': ((0.0, 2.0, -1.0), None, lambda a, s: (s - a[1], s - a[0])),
    '_mul_scalar': ((1.0, 2.0, -0.5, 0.0, 3.0), None, lambda a, s: _iv(a[0] * s, a[1] * s)),
    '_div_scalar': ((1.0, 4.0, -2.0, 0.3), None, lambda a, s: _iv(a[0] / s, a[1] / s)),
    '_rdiv_scalar': ((1.0, -2.0, 3.0), ('pos', 0.1), lambda a, s: _iv(s / a[0], s / a[1])),
    '_power_scalar': ((2.0, 3.0, 1.0, 0.5, -1.0, 1.5), ('pos', 0.1), lambda a, s: _iv(a[0] ** s, a[1] ** s)),
    '_rpower_scalar': ((2.0, 0.5, 1.5), ('mag', 6), lambda a, s: _iv(s ** a[0], s ** a[1])),
    '_maximum_scalar': ((0.0, 0.5, -1.0), None, lambda a, s: (max(a[0], s), max(a[1], s))),
    '_minimum_scalar': ((0.0, 0.5, -1.0), None, lambda a, s: (min(a[0], s), min(a[1], s))),
    '_mod_scalar': ((1.3, 2.0, -1.5, 0.7), ('exact',), lambda a, s: (min(0, s), max(0, s))),
}
for _c in ('equal', 'not_equal', 'greater', 'greater_equal', 'lesser', 'lesser_equal'):
    SCALARS[f'_{_c}_scalar'] = ((0.0, 1.0, -0.5, 2.0), ('exact',), lambda a, s: (0, 1))
INT_SCALAR = {'_plus_scalar', '_minus_scalar', '_rminus_scalar', '_mul_scalar', '_maximum_scalar',
              '_minimum_scalar', '_equal_scalar', '_not_equal_scalar', '_greater_scalar', '_lesser_scalar'}


def gen_scalar(b, name):
    scalars, need, rule = SCALARS[name]
    s = float(b.rng.choice(scalars))
    ints = name in INT_SCALAR
    v = b.pick(exact=bool(need and need[0] == 'exact'), ints=ints, empty=True)
    if v is not None and not v.isfloat:
        s = float(int(s))
    return b.add(name, {'scalar': s}, [_prep(b, v, need)] if v is not None else [None],
                 iv=lambda a: rule(a, s))


def gen_where(b, name):
    r = b.rng
    x = b.pick(ndim=(1, 2, 3, 4), empty=True)
    if x is None:
        return None
    y = b.like(x.shape, x.dtype)
    cshape = x.shape if r.random() < 0.8 else x.shape[:1]
    c = b.like(cshape, x.dtype, kind='mask', exact=True)
    return b.add(name, {}, [c, x, y], iv=lambda c_, a, d: (min(a[0], d[0]), max(a[1], d[1])))


def gen_add_n(b, name):
    x = b.pick(empty=True)
    if x is None:
        return None
    xs = [x] + [b.like(x.shape, x.dtype) for _ in range(int(b.rng.integers(1, 4)))]
    return b.add(name, {'num_args': len(xs)}, xs, iv=lambda *a: (sum(t[0] for t in a), sum(t[1] for t in a)))


# ---------------------------------------------------------------- shape ops
def _factor(r, n, k):
    """n as a product of k random factors."""
    out = [1] * k
    p, m = 2, n
    while m > 1 and p * p <= m:
        while m % p == 0:
            out[int(r.integers(k))] *= p
            m //= p
        p += 1
    if m > 1:
        out[int(r.integers(k))] *= m
    return out


def _same(*a):
    return a[0]


def gen_reshape(b, name):
    r = b.rng
    v = b.pick(ints=True, empty=True)
    if v is None:
        return None
    s, n = v.shape, v.size
    t = _factor(r, n, int(r.integers(1, 5))) if n else list(s[::-1]) or [1]
    if name == '_np_reshape':
        if n and r.random() < 0.5:
            t[int(r.integers(len(t)))] = -1
        return b.add(name, {'newshape': tuple(t)}, [v], iv=_same)
    specs = [tuple(t)]
    if n:
        specs.append(tuple(-1 if i == 0 else d for i, d in enumerate(t)))
    if len(s) >= 1:
        specs += [(0, -1), (-2,), (0, -2)]
    if len(s) >= 2:
        specs += [(-3, -2), (0, -3) + (-2,) * (len(s) > 2)]
    if s and s[0] > 1:
        a = next((d for d in (2, 3, 5, 7) if s[0] % d == 0), None)
        if a:
            specs.append((-4, a, -1, -2))
    spec = specs[int(r.integers(len(specs)))]
    return b.add(name, {'shape': spec, 'reverse': bool(r.random() < 0.2)}, [v], iv=_same)


def gen_transpose(b, name):
    r = b.rng
    v = b.pick(ints=True, empty=True, ndim=(1, 2, 3, 4) if name != 'transpose' else None)
    if v is None:
        return None
    nd_ = len(v.shape)
    if name == 'SwapAxis':
        return b.add(name, {'dim1': int(r.integers(-nd_, nd_)), 'dim2': int(r.integers(-nd_, nd_))}, [v], iv=_same)
    axes = () if r.random() < 0.25 else tuple(int(a) for a in r.permutation(nd_))
    if axes and r.random() < 0.3:
        axes = tuple(a - nd_ if r.random() < 0.5 else a for a in axes)  # negative axes
    return b.add(name, {'axes': axes}, [v], iv=_same)


def gen_expand_squeeze(b, name):
    r = b.rng
    if name == 'expand_dims':
        v = b.pick(ints=True, empty=True, ok=lambda v: len(v.shape) < 4)
        return v and b.add(name, {'axis': int(r.integers(-len(v.shape) - 1, len(v.shape) + 1))}, [v], iv=_same)
    if name == 'Flatten':
        return b.add(name, {}, [b.pick(ints=True, empty=True)], iv=_same)
    v = b.pick(ints=True, empty=True, ok=lambda v: 1 in v.shape)
    if v is None or 1 not in v.shape:
        return None
    ones = [i for i, d in enumerate(v.shape) if d == 1]
    axis = None if r.random() < 0.3 else ones[0] if len(ones) == 1 or r.random() < 0.5 else tuple(ones)
    return b.add(name, {'axis': axis} if axis is not None else {}, [v], iv=_same)


def _union(*a):
    return min(t[0] for t in a), max(t[1] for t in a)


def gen_concat(b, name):
    r = b.rng
    x = b.pick(ints=True, empty=True, ndim=None if name == 'stack' else (1, 2, 3, 4))
    if x is None:
        return None
    k = int(r.integers(1, 4))
    nd_ = len(x.shape)
    if name == 'stack':
        xs = [x] + [b.like(x.shape, x.dtype) for _ in range(k)]
        return b.add(name, {'axis': int(r.integers(-nd_ - 1, nd_ + 1)), 'num_args': len(xs)}, xs, iv=_union)
    dim = int(r.integers(-nd_, nd_))
    xs = [x]
    for _ in range(k):
        s = list(x.shape)
        s[dim] = int(r.choice([1, 2, 3, s[dim]]))
        xs.append(b.like(tuple(s), x.dtype))
    return b.add(name, {'dim': dim, 'num_args': len(xs)}, xs, iv=_union)


def gen_split(b, name):
    r = b.rng
    v = b.pick(ints=True, ndim=(1, 2, 3, 4))
    if v is None:
        return None
    ax = int(r.integers(len(v.shape)))
    d = v.shape[ax]
    n = int(r.choice([k for k in range(1, min(d, 6) + 1) if d % k == 0]))
    attrs = {'num_outputs': n, 'axis': ax - len(v.shape) if r.random() < 0.3 else ax,
             'squeeze_axis': bool(d == n and r.random() < 0.5)}
    return b.add(name, attrs, [v], iv=_same)


def _slice_spec(r, shape):
    k = int(r.integers(1, len(shape) + 1))
    begin, end, step = [], [], []
    for d in shape[:k]:
        st = r.choice([None, 1, 2, -1, -2]) if r.random() < 0.7 else None
        pick = lambda: None if r.random() < 0.3 else int(r.integers(-d - 1, d + 2))  # noqa: E731
        begin.append(pick())
        end.append(pick())
        step.append(None if st is None else int(st))
    if all(s is None for s in step):
        step = [] if r.random() < 0.5 else step
    return tuple(begin), tuple(end), tuple(step)


def gen_slice(b, name):
    r = b.rng
    v = b.pick(ints=True, ndim=(1, 2, 3, 4))
    if v is None:
        return None
    if name == 'slice_axis':
        ax = int(r.integers(len(v.shape)))
        d = v.shape[ax]
        beg = int(r.integers(-d, d))
        e0 = beg % d
        end = None if r.random() < 0.3 else int(r.integers(e0 + 1, d + 1)) - (d if r.random() < 0.3 else 0)
        return b.add(name, {'axis': ax, 'begin': beg, 'end': end}, [v], iv=_same)
    for _ in range(6):
        begin, end, step = _slice_spec(r, v.shape)
        attrs = {'begin': begin, 'end': end, 'step': step}
        try:
            sh = OPS['slice'].infer(OPS['slice'].canon(attrs), [v.shape], [v.dtype])[0][0]
        except GraphcError:
            continue
        if math.prod(sh) == 0 and r.random() < 0.9:
            continue
        if name == 'slice':
            return b.add(name, attrs, [v], iv=_same)
        if name == '_slice_assign_scalar':
            s = float(r.choice([0.0, 1.5, -2.0]))
            return b.add(name, dict(attrs, scalar=s), [v], iv=lambda a: (min(a[0], s), max(a[1], s)))
        return b.add(name, attrs, [v, b.like(sh, v.dtype)], iv=_union)
    return None


def gen_tile_repeat(b, name):
    r = b.rng
    v = b.pick(ints=True, empty=True)
    if v is None:
        return None
    if name == 'tile':
        reps = tuple(int(r.choice([1, 1, 2, 3])) for _ in range(int(r.integers(1, len(v.shape) + 2))))
        return b.add(name, {'reps': reps}, [v], iv=_same)
    axis = None if r.random() < 0.3 or not v.shape else int(r.integers(-len(v.shape), len(v.shape)))
    attrs = {'repeats': int(r.integers(1, 4))}
    if axis is not None:
        attrs['axis'] = axis
    return b.add(name, attrs, [v], iv=_same)


def gen_broadcast_to(b, name):
    r = b.rng
    v = b.pick(ints=True, empty=True, ok=lambda v: len(v.shape) < 4)
    if v is None:
        return None
    t = [int(r.choice([1, 2, 3, 5])) if d == 1 and r.random() < 0.7 else (0 if r.random() < 0.3 else d)
         for d in v.shape]
    t = [int(r.choice([2, 3])) for _ in range(int(r.integers(0, 4 - len(t))))] + t
    return b.add(name, {'shape': tuple(t)}, [v], iv=_same)


# ---------------------------------------------------------------- gathers: index inputs are valid by construction
def _index_val(b, shape, n, mode='clip'):
    """Indices into a dimension of size n: an argmax-made value of that range and shape, or a fresh input
    (out of range as well in clip/wrap mode, which define it)."""
    cands = [v for v in b.vals if v.index == n and v.shape == tuple(shape)]
    if cands and b.rng.random() < 0.5:
        return cands[int(b.rng.integers(len(cands)))]
    v = b.fresh(shape, 'index', n=n)
    if v is not None and mode in ('clip', 'wrap') and b.rng.random() < 0.3:
        a = b.inputs[-1]['array']
        a.flat[:: max(1, a.size // 2)] = b.rng.choice([-2, -1, n, n + 3])  # out of range on purpose
        v.lo, v.hi, v.index = -2, n + 3, None
    return v


def gen_take(b, name):
    r = b.rng
    a = b.pick(ndim=(1, 2, 3))
    if a is None:
        return None
    ax = int(r.integers(-len(a.shape), len(a.shape)))
    mode = str(r.choice(['clip', 'wrap', 'raise']))
    idx = _index_val(b, b.shape(int(r.choice([0, 1, 2]))), a.shape[ax], mode)
    return b.add(name, {'axis': ax, 'mode': mode}, [a, idx], iv=lambda x, i: x)


def gen_embedding(b, name):
    r = b.rng
    n, k = int(r.integers(1, 9)), int(r.choice([1, 3, 4, 8]))
    idx = _index_val(b, b.shape(int(r.choice([1, 2]))), n)
    w = b.fresh((n, k))
    return b.add(name, {'input_dim': n, 'output_dim': k}, [idx, w], iv=lambda i, x: x)


def gen_one_hot(b, name):
    r = b.rng
    depth = int(r.integers(1, 7))
    idx = _index_val(b, b.shape(int(r.choice([0, 1, 2]))), depth, 'clip')
    on, off = float(r.choice([1.0, 2.5])), float(r.choice([0.0, -1.0]))
    return b.add(name, {'depth': depth, 'on_value': on, 'off_value': off, 'dtype': str(b.dtype)}, [idx],
                 iv=lambda i: _iv(on, off), exact=True)


def gen_pick(b, name):
    r = b.rng
    d = b.pick(ndim=(1, 2, 3))
    if d is None:
        return None
    ax = int(r.integers(-len(d.shape), len(d.shape)))
    keep = bool(r.random() < 0.3)
    a = ax % len(d.shape)
    ishape = d.shape[:a] + ((1,) if keep and r.random() < 0.5 else ()) + d.shape[a + 1:]
    mode = str(r.choice(['clip', 'wrap']))
    idx = _index_val(b, ishape, d.shape[a], mode)
    return b.add(name, {'axis': ax, 'keepdims': keep, 'mode': mode}, [d, idx], iv=lambda x, i: x)


# ---------------------------------------------------------------- reductions
def _red_axis(r, nd_, tuples=True):
    if nd_ == 0 or r.random() < 0.2:
        return None
    if tuples and r.random() < 0.4:
        k = int(r.integers(1, nd_ + 1))
        return tuple(int(a) for a in sorted(r.choice(nd_, k, replace=False)))
    return int(r.integers(-nd_, nd_))


def _count(shape, axis, exclude=False):
    from graphc.registry import reduce_axes
    axes = reduce_axes(axis, len(shape), exclude)
    return math.prod(shape[i] for i in axes)


def gen_reduce(b, name):
    r = b.rng
    ints = name in ('sum', 'max', 'min')
    base = name[3:] if name.startswith('nan') else name  # nansum, nanprod: finite values, as sum and prod
    v = b.pick(ints=ints, empty=base in ('sum', 'prod'))
    if v is None:
        return None
    if base == 'prod':
        v = b.positive(b.tame(v, 2.0), 0.5) if not 0.5 <= v.lo <= v.hi <= 2 else v
        if v is None or v.lo < 0.5 or v.hi > 2:
            return None
    axis = _red_axis(r, len(v.shape))
    attrs = {'keepdims': bool(r.random() < 0.4)}
    if axis is not None:
        attrs['axis'] = axis
        attrs['exclude'] = bool(r.random() < 0.2)
    n = _count(v.shape, axis, attrs.get('exclude', False))
    if name in ('max', 'min') and n == 0:
        return None
    rule = {'sum': lambda a: _iv(n * a[0], n * a[1], 0), 'mean': lambda a: a, 'max': lambda a: a, 'min': lambda a: a,
            'prod': lambda a: _iv(a[0] ** n, a[1] ** n, 1)}[base]
    return b.add(name, attrs, [v], iv=rule)


def gen_norm(b, name):
    r = b.rng
    v = b.pick()
    if v is None:
        return None
    axis = _red_axis(r, len(v.shape))
    o = int(r.choice([1, 2]))
    attrs = {'ord': o, 'keepdims': bool(r.random() < 0.4)}
    if axis is not None:
        attrs['axis'] = axis
    n = _count(v.shape, axis)
    return b.add(name, attrs, [v], iv=lambda a: (0, n * max(abs(a[0]), abs(a[1]))))


def gen_arg(b, name):
    r = b.rng
    v = b.pick(exact=True)
    if v is None:
        return None
    nd_ = len(v.shape)
    axis = None if nd_ == 0 or r.random() < 0.2 else int(r.integers(-nd_, nd_))
    n = v.size if axis is None else v.shape[axis]
    attrs = {'keepdims': bool(r.random() < 0.3)}
    if axis is not None:
        attrs['axis'] = axis
    return b.add(name, attrs, [v], iv=lambda a: (0, n - 1), exact=True, index=n)


def gen_softmax(b, name):
    r = b.rng
    v = b.pick(ndim=(1, 2, 3, 4))
    if v is None:
        return None
    nd_ = len(v.shape)
    attrs = {'axis': -1 if r.random() < 0.6 else int(r.integers(-nd_, nd_))}
    if r.random() < 0.3:
        attrs['temperature'] = float(r.choice([0.5, 2.0]))
    n = v.shape[attrs['axis']]
    t = attrs.get('temperature', 1.0)
    span = (v.hi - v.lo) / t
    rule = (lambda a: (0, 1)) if name in ('softmax', 'softmin') else (lambda a: (-span - math.log(n), 0))
    return b.add(name, attrs, [v], iv=rule)


def gen_sce(b, name):
    d = b.pick(ndim=(2,))
    if d is None:
        return None
    lab = _index_val(b, d.shape[:1], d.shape[1], 'raise')
    n = d.shape[0]
    return b.add(name, {}, [d, lab], iv=lambda x, i: (0, n * ((x[1] - x[0]) + math.log(max(d.shape[1], 1)))))


# ---------------------------------------------------------------- GEMM, convolution, normalization
def gen_dot(b, name):
    r = b.rng
    if name == 'batch_dot':
        a = b.pick(ndim=(3,))
        if a is None:
            return None
        ta, tb = bool(r.random() < 0.3), bool(r.random() < 0.3)
        k = a.shape[1] if ta else a.shape[2]
        n = int(r.choice([1, 2, 3, 5, 8]))
        w = b.fresh((a.shape[0],) + ((n, k) if tb else (k, n)), dtype=a.dtype, scale=0.5)
        return b.add(name, {'transpose_a': ta, 'transpose_b': tb}, [a, w], iv=lambda x, y: _sym(k * _mag(x) * _mag(y)))
    a = b.pick(ndim=(1, 2, 3))
    if a is None:
        return None
    ta, tb = bool(r.random() < 0.3), bool(r.random() < 0.3)
    ea = a.shape[::-1] if ta else a.shape
    k = ea[-1]
    n = int(r.choice([1, 2, 3, 5, 8]))
    wshape = (k,) if r.random() < 0.2 else ((n, k) if tb else (k, n))
    w = b.fresh(wshape, dtype=a.dtype, scale=0.5)
    return b.add(name, {'transpose_a': ta, 'transpose_b': tb}, [a, w], iv=lambda x, y: _sym(k * _mag(x) * _mag(y)))


def _mag(a):
    return max(abs(a[0]), abs(a[1]))


def _sym(m):
    return (-m, m)


def _prefer(b, ops, ndim):
    """Often the output of one of `ops` (a Convolution before a BatchNorm: what fold_batchnorm rewrites)."""
    cands = [v for v in b.vals if v.op in ops and len(v.shape) in ndim and v.size > 0 and v.isfloat]
    if cands and b.rng.random() < 0.6:
        return cands[-1]
    return b.pick(ndim=ndim)


def gen_fc(b, name):
    r = b.rng
    x = _prefer(b, ('FullyConnected',), (1, 2, 3, 4))
    if x is None:
        return None
    flatten = bool(r.random() < 0.7)
    k = math.prod(x.shape[1:]) if flatten else x.shape[-1]
    nh = int(r.choice([1, 2, 4, 7, 16]))
    no_bias = bool(r.random() < 0.3)
    ins = [x, b.fresh((nh, k), dtype=x.dtype, scale=0.5)] + ([] if no_bias else [b.fresh((nh,), dtype=x.dtype)])
    return b.add(name, {'num_hidden': nh, 'no_bias': no_bias, 'flatten': flatten}, ins,
                 iv=lambda x, w, bb=(0, 0): _sym(k * _mag(x) * _mag(w) + _mag(bb)))


def _image(b):
    r = b.rng
    cands = [v for v in b.vals if len(v.shape) == 4 and v.size > 0 and v.isfloat and min(v.shape[2:]) >= 2 and
             v.size <= 2048]
    if cands and r.random() < 0.7:
        return cands[-1] if r.random() < 0.5 else cands[int(r.integers(len(cands)))]
    return b.fresh((int(r.integers(1, 3)), int(r.choice([1, 2, 3, 4])), int(r.integers(3, 9)), int(r.integers(3, 9))))


def gen_conv(b, name):
    r = b.rng
    x = _image(b)
    if x is None:
        return None
    n, c, h, w = x.shape
    g = int(r.choice([d for d in (1, 2, 3, 4) if c % d == 0]))
    f = g * int(r.integers(1, 3))
    k = (int(r.integers(1, min(h, 3) + 1)), int(r.integers(1, min(w, 3) + 1)))
    st = (int(r.integers(1, 3)), int(r.integers(1, 3)))
    dl = (1, 1) if r.random() < 0.7 else (int(r.integers(1, 3)), int(r.integers(1, 3)))
    pd = (int(r.integers(0, 2)), int(r.integers(0, 2)))
    attrs = {'kernel': k, 'stride': st, 'dilate': dl, 'pad': pd, 'num_filter': f, 'num_group': g}
    no_bias = bool(r.random() < 0.3)
    kk = (c // g) * k[0] * k[1]
    if name == 'Convolution':
        wt = b.fresh((f, c // g) + k, dtype=x.dtype, scale=0.5)
        attrs['no_bias'] = no_bias
    else:
        attrs['adj'] = tuple(int(r.integers(0, s)) for s in st)
        attrs['dilate'] = (1, 1)
        wt = b.fresh((c, f // g) + k, dtype=x.dtype, scale=0.5)
        attrs['no_bias'] = no_bias
        kk = c * k[0] * k[1]
    ins = [x, wt] + ([] if no_bias else [b.fresh((f,), dtype=x.dtype)])
    return b.add(name, attrs, ins, iv=lambda x, w, bb=(0, 0): _sym(kk * _mag(x) * _mag(w) + _mag(bb)))


def gen_pool(b, name):
    r = b.rng
    x = _image(b)
    if x is None:
        return None
    h, w = x.shape[2:]
    pt = str(r.choice(['max', 'avg', 'sum']))
    attrs = {'pool_type': pt}
    if r.random() < 0.15:
        attrs.update(global_pool=True, kernel=(1, 1))
    else:
        k = (int(r.integers(1, min(h, 3) + 1)), int(r.integers(1, min(w, 3) + 1)))
        attrs.update(kernel=k, stride=tuple(int(r.integers(1, kk + 1)) for kk in k),
                     pad=tuple(int(r.integers(0, kk)) for kk in k),
                     pooling_convention=str(r.choice(['valid', 'full'])), count_include_pad=bool(r.random() < 0.7))
    kk = h * w if attrs.get('global_pool') else attrs['kernel'][0] * attrs['kernel'][1]
    rule = (lambda a: _iv(a[0] * kk, a[1] * kk, 0)) if pt == 'sum' else (lambda a: _iv(a[0], a[1], 0) if
                                                                           attrs.get('pad', (0, 0)) != (0, 0) else a)
    return b.add(name, attrs, [x], iv=rule)


def gen_batchnorm(b, name):
    r = b.rng
    x = _prefer(b, ('Convolution', 'FullyConnected', 'Deconvolution'), (2, 3, 4))
    if x is None:
        return None
    nd_ = len(x.shape)
    ax = 1 if r.random() < 0.7 else int(r.integers(-nd_, nd_))
    c = (x.shape[ax],)
    ins = [x] + [b.fresh(c, kind, x.dtype) for kind in ('real', 'real', 'real', 'pos')]
    eps = float(r.choice([1e-3, 1e-5, 0.1]))
    attrs = {'axis': ax, 'eps': eps, 'fix_gamma': bool(r.random() < 0.4),
             'use_global_stats': bool(r.random() < 0.2), 'momentum': float(r.choice([0.9, 0.5]))}
    m = x.size // c[0]
    batch = b.train and not attrs['use_global_stats']

    def rule(x_, g, be, mm, mv):
        xh = math.sqrt(m) if batch else (_mag(x_) + _mag(mm)) / math.sqrt(mv[0] + eps)
        gm = 1.0 if attrs['fix_gamma'] else _mag(g)
        return [_sym(xh * gm + _mag(be)), x_ if batch else mm, (0, _mag(x_) ** 2) if batch else mv]
    return b.add(name, attrs, ins, iv=rule)


def gen_layernorm(b, name):
    r = b.rng
    x = b.pick(ndim=(1, 2, 3, 4))
    if x is None:
        return None
    nd_ = len(x.shape)
    ax = -1 if r.random() < 0.6 else int(r.integers(-nd_, nd_))
    c = (x.shape[ax],)
    eps = float(r.choice([1e-5, 1e-3]))
    n = c[0]
    return b.add(name, {'axis': ax, 'eps': eps}, [x, b.fresh(c, dtype=x.dtype), b.fresh(c, dtype=x.dtype)],
                 iv=lambda x_, g, be: [_sym(math.sqrt(n) * _mag(g) + _mag(be)), x_, (0, _mag(x_) + 1)])


def gen_group_norm(b, name):
    """InstanceNorm (a group per channel) and GroupNorm: |out| <= sqrt(group size) |gamma| + |beta|."""
    r = b.rng
    x = b.pick(ndim=(3, 4) if name == 'InstanceNorm' else (2, 3, 4))
    if x is None or x.shape[1] == 0:
        return None
    c = x.shape[1]
    eps = float(r.choice([1e-5, 1e-3]))
    if name == 'InstanceNorm':
        grp, attrs = c, {'eps': eps}
    else:
        grp = int(r.choice([d for d in range(1, c + 1) if c % d == 0]))
        attrs = {'num_groups': grp, 'eps': eps}
    n = x.size // (x.shape[0] * grp)
    return b.add(name, attrs, [x, b.fresh((c,), dtype=x.dtype), b.fresh((c,), dtype=x.dtype)],
                 iv=lambda x_, g, be: [_sym(math.sqrt(n) * _mag(g) + _mag(be)), x_, (0, _mag(x_) + 1)])


def gen_pad(b, name):
    r = b.rng
    x = b.pick(ndim=(1, 2, 3, 4))
    if x is None:
        return None
    mode = str(r.choice(['constant', 'edge', 'reflect']))
    pw = []
    for s_ in x.shape:  # reflect needs pads below the axis length; nothing pads an empty axis
        hi = 0 if s_ == 0 else min(2, s_ - 1 if mode == 'reflect' else 2)
        pw += [int(r.integers(0, hi + 1)), int(r.integers(0, hi + 1))]
    cv = float(r.choice([0.0, 1.5]))
    return b.add(name, {'mode': mode, 'pad_width': tuple(pw), 'constant_value': cv}, [x],
                 iv=lambda a: [(min(a[0], cv), max(a[1], cv)) if mode == 'constant' else a])


def gen_leaky(b, name):
    r = b.rng
    act = str(r.choice(['leaky', 'elu', 'selu', 'gelu', 'prelu']))
    s = float(r.choice([0.1, 0.25, 1.0]))
    x = b.pick(empty=act != 'prelu')
    if x is None:
        return None
    if act == 'prelu':
        g = b.fresh((x.shape[1],) if len(x.shape) >= 2 and r.random() < 0.7 else (1,), 'pos', x.dtype)
        return b.add(name, {'act_type': act}, [x, g], iv=lambda a, gg: _iv(a[0], a[1], a[0] * gg[1], 0))
    rule = {'leaky': lambda a: _iv(a[0], a[1], a[0] * s, 0), 'elu': lambda a: _iv(-s, a[0], a[1], 0),
            'selu': lambda a: _iv(-1.76, a[0] * 1.06, a[1] * 1.06, 0), 'gelu': lambda a: _iv(-0.2, a[0], a[1], 0)}
    return b.add(name, {'act_type': act, 'slope': s}, [x], iv=rule[act])


def gen_zeros(b, name):
    shape = b.shape()
    return b.add(name, {'shape': shape, 'dtype': str(b.dtype)}, [], iv=lambda: (0, 0))


def gen_rnn(b, name):
    """MXNet's fused RNN op: data (T, N, C), a flat parameter vector, begin states (fresh, or _zeros with batch 0)."""
    from graphc.ops.rnn import param_size
    r = b.rng
    mode = str(r.choice(['rnn_relu', 'rnn_tanh', 'lstm', 'gru']))
    x = b.pick(ndim=(3,), ok=lambda v: v.shape[0] <= 5 and v.mag <= 3)
    if x is None:
        return None
    T, N, C = x.shape
    L, D, H = int(r.integers(1, 3)), 1 + int(r.random() < 0.3), int(r.choice([1, 2, 4]))
    attrs = {'mode': mode, 'state_size': H, 'num_layers': L, 'bidirectional': D == 2,
             'state_outputs': bool(r.random() < 0.5)}
    if mode == 'lstm' and r.random() < 0.2:
        attrs.update(lstm_state_clip_min=-1.0, lstm_state_clip_max=1.0)
    try:
        n = param_size(OPS[name].canon(attrs), C)
    except GraphcError:
        return None
    states = []
    for _ in range(2 if mode == 'lstm' else 1):
        z = b.add('_zeros', {'shape': (L * D, 0, H), 'dtype': str(x.dtype)}, [], iv=lambda: (0, 0))
        states.append(z[0] if z and r.random() < 0.3 else b.fresh((L * D, N, H), dtype=x.dtype))
    h = 1.0
    if mode == 'rnn_relu':  # |h| grows at most by this recurrence (weights |w| <= 0.9, biases <= 1.8)
        m = max(x.mag, 3.0)
        for _ in range(L):
            h = 3.0
            for _ in range(T):
                h = 0.9 * (m * (C if m is x.mag else D * H) + H * h) + 1.8
            m = h
    c = float(T) + 3.0
    n_vis = 1 + (2 if mode == 'lstm' else 1) * attrs['state_outputs']
    rule = lambda *a: [_sym(h)] + [_sym(h), _sym(c)][:n_vis - 1] + [_sym(LIMIT)]  # noqa: E731
    return b.add(name, attrs, [x, b.fresh((n,), dtype=x.dtype, scale=0.3)] + states, iv=rule)


# ---------------------------------------------------------------- ops added for MXNet compatibility (issue 13)
for _n in OPS:
    if _n.startswith('_backward_') and _n not in EXCLUDED:
        EXCLUDED[_n] = 'a gradient op: reached through the gradient check of its forward op'


def _cosh_iv(a):
    hi = max(math.cosh(a[0]), math.cosh(a[1]))
    return (1.0 if a[0] <= 0 <= a[1] else min(math.cosh(a[0]), math.cosh(a[1]))), hi


UNARY_IV.update({
    'arcsin': _mono(math.asin), 'arccos': _mono(math.acos), 'arctan': _mono(math.atan), 'arcsinh': _mono(math.asinh),
    'arccosh': _mono(math.acosh), 'arctanh': _mono(math.atanh), 'sinh': _mono(math.sinh), 'cosh': _cosh_iv,
    'tan': _mono(math.tan), 'cbrt': _mono(lambda x: math.copysign(abs(x) ** (1 / 3), x)),
    'rcbrt': _mono(lambda x: x ** (-1 / 3)), 'log2': _mono(math.log2), 'log10': _mono(math.log10),
    'degrees': _mono(math.degrees), 'radians': _mono(math.radians), 'fix': _mono(math.trunc),
    'trunc': _mono(math.trunc), 'rint': _mono(round), 'logical_not': lambda a: (0, 1),
    'hard_sigmoid': _mono(lambda x: min(1.0, max(0.0, 0.2 * x + 0.5))),
})
UNARY_NEED.update({'erfinv': ('unit', 0.9), 'arcsin': ('unit', 0.9), 'arccos': ('unit', 0.9), 'arctanh': ('unit', 0.9), 'arccosh': ('ge1',),
                   'sinh': ('mag', 8), 'cosh': ('mag', 8), 'tan': ('mag', 1.2), 'cbrt': ('pos', 0.05),
                   'rcbrt': ('pos', 0.05), 'log2': ('pos', 0.05), 'log10': ('pos', 0.05), 'fix': ('exact',),
                   'trunc': ('exact',), 'rint': ('exact',), 'logical_not': ('exact',)})
INT_OK.add('logical_not')
for _n in ('arcsin', 'arccos', 'arctan', 'arcsinh', 'arccosh', 'arctanh', 'sinh', 'cosh', 'tan', 'cbrt', 'rcbrt',
           'log2', 'log10', 'degrees', 'radians', 'smooth_l1', 'LRN', 'LogisticRegressionOutput'):
    FAMILY[_n] = 'transcendental'
for _n in ('nansum', 'nanprod', 'cumsum', 'softmin', 'L2Normalization', 'SoftmaxOutput'):
    FAMILY[_n] = 'reduction'
for _n in ('_linalg_gemm', '_linalg_gemm2', '_linalg_syrk', '_linalg_trmm', '_linalg_trsm', '_linalg_potrf',
           '_linalg_potri', '_linalg_inverse', '_linalg_det', '_linalg_slogdet', '_linalg_sumlogdiag',
           '_contrib_BilinearResize2D'):
    FAMILY[_n] = 'gemm'


def gen_smooth_l1(b, name):
    s = float(b.rng.choice([0.5, 1.0, 2.0, 3.0]))
    return b.add(name, {'scalar': s}, [b.pick(empty=True)], iv=lambda a: (0.0, max(0.5 * s * s * _mag(a) ** 2, _mag(a))))


def gen_argmax_channel(b, name):
    v = b.pick(exact=True, ndim=(1, 2, 3, 4))
    if v is None:
        return None
    n = v.shape[-1]
    return b.add(name, {}, [v], iv=lambda a: (0, n - 1), exact=True, index=n)


def gen_sort(b, name):
    """sort, argsort, topk: exact operands (a 1-ULP difference must not reorder ties)."""
    r = b.rng
    v = b.pick(exact=True, ndim=(1, 2, 3))
    if v is None:
        return None
    nd_ = len(v.shape)
    ax = int(r.integers(-nd_, nd_))
    n, asc = v.shape[ax], bool(r.random() < 0.5)
    dt = str(r.choice(['float32', 'float64', 'int32', 'int64']))
    if name == 'sort':
        return b.add(name, {'axis': ax, 'is_ascend': asc}, [v], iv=_same)
    if name == 'argsort':
        return b.add(name, {'axis': ax, 'is_ascend': asc, 'dtype': dt}, [v], iv=lambda a: (0, n - 1), exact=True,
                     index=n)
    ret = str(r.choice(['value', 'indices', 'mask', 'both']))
    attrs = {'axis': ax, 'k': int(r.integers(1, n + 1)), 'ret_typ': ret, 'is_ascend': asc, 'dtype': dt}
    rule = lambda a: {'value': [a], 'indices': [(0, n - 1)], 'mask': [(0, 1)], 'both': [a, (0, n - 1)]}[ret]  # noqa
    return b.add(name, attrs, [v], iv=rule, exact=True, index=n if ret == 'indices' else None)


def gen_cumsum(b, name):
    r = b.rng
    v = b.pick(ints=True, empty=True)
    if v is None:
        return None
    nd_, attrs = len(v.shape), {}
    if nd_ and r.random() < 0.8:
        attrs['axis'] = int(r.integers(-nd_, nd_))
    if v.isfloat and r.random() < 0.2:
        attrs['dtype'] = 'float32' if v.dtype == np.float64 else 'float64'
    n = v.size if 'axis' not in attrs else v.shape[attrs['axis']]
    return b.add(name, attrs, [v], iv=lambda a: _iv(n * a[0], n * a[1], a[0], a[1], 0))


def gen_reverse(b, name):
    r = b.rng
    v = b.pick(ints=True, empty=True, ndim=(1, 2, 3, 4))
    if v is None:
        return None
    nd_ = len(v.shape)
    axes = tuple(int(a) for a in r.choice(nd_, int(r.integers(1, nd_ + 1)), replace=False))
    return b.add(name, {'axis': axes[0] if len(axes) == 1 and r.random() < 0.5 else axes}, [v], iv=_same)


def gen_depth_space(b, name):
    r = b.rng
    bs = int(r.choice([1, 2, 2, 3]))
    ok = (lambda v: v.shape[1] % (bs * bs) == 0) if name == 'depth_to_space' else \
        (lambda v: v.shape[2] % bs == 0 and v.shape[3] % bs == 0)
    v = b.pick(ints=True, empty=True, ndim=(4,), ok=ok)
    if v is None:
        n, c, h, w = (int(r.integers(1, 3)), int(r.integers(1, 4)), int(r.integers(1, 4)), int(r.integers(1, 4)))
        v = b.fresh((n, c * bs * bs, h, w) if name == 'depth_to_space' else (n, c, h * bs, w * bs))
    return b.add(name, {'block_size': bs}, [v], iv=_same)


def gen_diag(b, name):
    r = b.rng
    v = b.pick(ints=True, ndim=(1, 2, 3))
    if v is None:
        return None
    nd_, k = len(v.shape), int(r.integers(-2, 3))
    if nd_ == 1:
        return b.add(name, {'k': k}, [v], iv=lambda a: _iv(a[0], a[1], 0))
    a1, a2 = (int(x) - (nd_ if r.random() < 0.3 else 0) for x in r.choice(nd_, 2, replace=False))
    return b.add(name, {'k': k, 'axis1': a1, 'axis2': a2}, [v], iv=_same)


def gen_slice_like(b, name):
    r = b.rng
    x = b.pick(ints=True, ndim=(1, 2, 3, 4))
    if x is None:
        return None
    nd_ = len(x.shape)
    axes = () if r.random() < 0.4 else tuple(int(a) for a in sorted(r.choice(nd_, int(r.integers(1, nd_ + 1)),
                                                                           replace=False)))
    t = tuple(int(r.integers(1, d + 1)) if d and (not axes or i in axes) else int(r.choice([1, 2, 5]))
              for i, d in enumerate(x.shape))
    axes = tuple(a - nd_ if r.random() < 0.3 else a for a in axes)
    return b.add(name, {'axes': axes}, [x, b.like(t, x.dtype)], iv=lambda a, c: a)


def gen_broadcast_axes(b, name):
    r = b.rng
    v = b.pick(ints=True, empty=True, ok=lambda v: 1 in v.shape)
    if v is None or 1 not in v.shape:
        return None
    ones = [i for i, d in enumerate(v.shape) if d == 1]
    axes = sorted(int(a) for a in r.choice(ones, int(r.integers(1, len(ones) + 1)), replace=False))
    sizes = tuple(int(r.choice([1, 2, 3, 5])) for _ in axes)
    if name == 'broadcast_axes':
        axis = axes[0] if len(axes) == 1 and r.random() < 0.5 else tuple(axes)
        return b.add(name, {'axis': axis, 'size': sizes}, [v], iv=_same)
    if r.random() < 0.5:  # broadcast_like over every axis
        t = list(v.shape)
        for a, s in zip(axes, sizes):
            t[a] = s
        return b.add(name, {}, [v, b.like(tuple(t), v.dtype)], iv=lambda x, y: x)
    rhs = b.pick(ints=True, empty=True, ndim=(1, 2, 3), ok=lambda w: len(w.shape) >= len(axes))
    if rhs is None or len(rhs.shape) < len(axes):
        return None
    ra = tuple(int(a) for a in r.choice(len(rhs.shape), len(axes), replace=False))
    return b.add(name, {'lhs_axes': tuple(axes), 'rhs_axes': ra}, [v, rhs], iv=lambda x, y: x)


def gen_shape_array(b, name):
    v = b.pick(ints=True, empty=True)
    if v is None:
        return None
    return b.add(name, {}, [v], iv=lambda a: (0, float(max((v.size,) + v.shape))), exact=True)


def gen_batch_take(b, name):
    a = b.pick(ndim=(2,))
    if a is None:
        return None
    idx = _index_val(b, a.shape[:1], a.shape[1], 'clip')
    return b.add(name, {}, [a, idx], iv=lambda x, i: x)


def _index_rows(b, rows, shape):
    """A fresh index input of shape (len(rows),) + shape, row k drawn from [0, rows[k])."""
    v = b.fresh((len(rows),) + tuple(shape), 'index', n=max(rows))
    if v is not None:
        a = b.inputs[-1]['array']
        for k, n in enumerate(rows):
            a[k] = b.rng.integers(0, n, a[k].shape)
        v.index = None
    return v


def gen_gather_nd(b, name):
    r = b.rng
    x = b.pick(ndim=(1, 2, 3))
    if x is None:
        return None
    m = int(r.integers(1, len(x.shape) + 1))
    idx = _index_rows(b, x.shape[:m], b.shape(int(r.choice([0, 1, 2]))))
    return b.add(name, {}, [x, idx], iv=lambda d, i: d)


def gen_scatter_nd(b, name):
    """Distinct positions (MXNet leaves a repeated index undefined)."""
    r = b.rng
    out = b.shape(int(r.choice([1, 2, 3])))
    m = int(r.integers(1, len(out) + 1))
    cells = math.prod(out[:m])
    if cells == 0:
        return None
    flat = r.choice(cells, int(r.integers(1, min(cells, 6) + 1)), replace=False)
    idx = b.fresh((m, len(flat)), 'index', n=max(out[:m]))
    if idx is None:
        return None
    b.inputs[-1]['array'][...] = np.stack(np.unravel_index(flat, out[:m]))
    idx.index = None
    data = b.like((len(flat),) + tuple(out[m:]), b.dtype)
    return b.add(name, {'shape': out}, [data, idx], iv=lambda d, i: _iv(d[0], d[1], 0))


def gen_khatri_rao(b, name):
    r = b.rng
    x = b.pick(ndim=(2,), ok=lambda v: v.shape[0] <= 8)
    if x is None:
        return None
    k = x.shape[1]
    ms = [x] + [b.like((int(r.choice([1, 2, 3, 4])), k), x.dtype) for _ in range(int(r.integers(0, 3)))]
    return b.add(name, {'num_args': len(ms)}, ms, iv=lambda *a: _sym(math.prod(_mag(t) for t in a)))


def gen_crop(b, name):
    r = b.rng
    x = _image(b)
    if x is None:
        return None
    H, W = x.shape[2:]
    h, w = int(r.integers(1, H + 1)), int(r.integers(1, W + 1))
    attrs = {'center_crop': bool(r.random() < 0.3)}
    if not attrs['center_crop'] or r.random() < 0.3:  # an offset is ignored when center_crop is set
        attrs['offset'] = (int(r.integers(0, H - h + 1)), int(r.integers(0, W - w + 1)))
    if r.random() < 0.5:
        like = b.like((int(r.integers(1, 3)), int(r.integers(1, 4)), h, w), x.dtype)
        return b.add(name, dict(attrs, num_args=2), [x, like], iv=lambda a, c: a)
    return b.add(name, dict(attrs, h_w=(h, w)), [x], iv=_same)


def gen_upsampling(b, name):
    """Nearest only (graphc rejects sample_type='bilinear', a learned Deconvolution in MXNet)."""
    r = b.rng
    x = _image(b)
    if x is None:
        return None
    s, mode = int(r.choice([1, 2, 3])), str(r.choice(['concat', 'sum']))
    H, W = x.shape[2] * s, x.shape[3] * s
    xs = [x]
    for _ in range(int(r.integers(0, 3))):
        c = x.shape[1] if mode == 'sum' else int(r.choice([1, 2, 3]))
        hw = [int(r.choice([d for d in range(1, n + 1) if n % d == 0])) for n in (H, W)]
        xs.append(b.like((x.shape[0], c) + tuple(hw), x.dtype))
    rule = _union if mode == 'concat' else (lambda *a: (sum(t[0] for t in a), sum(t[1] for t in a)))
    return b.add(name, {'scale': s, 'multi_input_mode': mode, 'num_args': len(xs)}, xs, iv=rule)


def gen_bilinear(b, name):
    """mode='size' only (graphc rejects 'odd_scale')."""
    r = b.rng
    x = _image(b)
    if x is None:
        return None
    attrs = {'align_corners': bool(r.random() < 0.5)}
    if r.random() < 0.3:
        attrs.update(scale_height=float(r.choice([0.5, 1.5, 2.0])), scale_width=float(r.choice([0.5, 1.0, 3.0])))
    else:
        attrs.update(height=int(r.integers(1, 9)), width=int(r.integers(1, 9)))
    return b.add(name, attrs, [x], iv=_same)  # a convex combination of the input


def gen_l2norm(b, name):
    r = b.rng
    mode = str(r.choice(['instance', 'channel', 'spatial']))
    x = b.pick(ndim=(2, 3, 4) if mode != 'spatial' else (3, 4))
    return b.add(name, {'mode': mode, 'eps': float(r.choice([1e-10, 1e-4, 1e-2]))}, [x], iv=lambda a: (-1, 1))


def gen_lrn(b, name):
    r = b.rng
    attrs = {'nsize': int(r.choice([1, 3, 5])), 'alpha': float(r.choice([1e-4, 0.1, 1.0])),
             'beta': float(r.choice([0.75, 0.5, 1.0])), 'knorm': float(r.choice([1.0, 2.0]))}
    return b.add(name, attrs, [_image(b)], iv=lambda a: _sym(_mag(a) / attrs['knorm'] ** attrs['beta']))


def gen_sequence(b, name):
    """SequenceMask/Last/Reverse over axis 0 or 1 (Reverse: 0, as MXNet), lengths in [1, T] or [0, T]."""
    r = b.rng
    ax = 0 if name == 'SequenceReverse' else int(r.integers(0, 2))
    x = b.pick(ndim=(2, 3, 4))
    if x is None:
        return None
    T, N = x.shape[ax], x.shape[1 - ax]
    use = bool(r.random() < 0.6)
    attrs = {'use_sequence_length': use, 'axis': ax}
    if name == 'SequenceMask':
        attrs['value'] = float(r.choice([0.0, -1.0, 2.5]))
    ins = [x]
    if use:
        lo = 1 if name == 'SequenceLast' else 0  # length 0 has no last step
        lens = b.fresh((N,), 'index', n=T + 1)
        if lens is None:
            return None
        b.inputs[-1]['array'][...] = r.integers(lo, T + 1, N)
        lens.index = None
        ins.append(lens)
    v = attrs.get('value', 0.0)
    return b.add(name, attrs, ins, iv=lambda a, *l: (min(a[0], v), max(a[1], v)) if name == 'SequenceMask' else a)


# ------------------------------------------------------------ linear algebra: well-conditioned operands by construction
def _spd(b):
    """A batch of symmetric positive-definite matrices with eigenvalues in [1, m + 1]: syrk(x) scaled to entries
    in [-1, 1], plus the identity (a fresh input)."""
    x = b.pick(ndim=(2, 3), ok=lambda v: 1 <= v.shape[-2] <= 5 and 1 <= v.shape[-1] <= 8 and v.size <= 64)
    if x is None or not (1 <= x.shape[-2] <= 5 and x.shape[-1] >= 1):
        return None
    alpha = 1.0 / max(1.0, x.shape[-1] * _mag((x.lo, x.hi)) ** 2)
    s = b.add('_linalg_syrk', {'alpha': alpha}, [x], iv=lambda a: (-1.0, 1.0))
    m = x.shape[-2]
    eye = b.fresh((m, m))
    if not s or eye is None:
        return None
    b.inputs[-1]['array'][...] = np.eye(m)
    eye.lo, eye.hi = 0.0, 1.0
    out = b.add('broadcast_add', {}, [s[0], eye], iv=lambda a, c: (-1.0, 2.0))
    return out and out[0]


def _chol(b):
    a = _spd(b)
    out = a and b.add('_linalg_potrf', {}, [a], iv=lambda t: _sym(math.sqrt(a.shape[-1] + 1)))
    return out and out[0]


def gen_linalg(b, name):
    r = b.rng
    op = name[len('_linalg_'):]
    if op in ('potrf', 'inverse', 'det', 'slogdet', 'sumlogdiag'):
        a = _spd(b)
        if a is None:
            return None
        m = a.shape[-1]
        rule = {'potrf': lambda t: _sym(math.sqrt(m + 1)), 'inverse': lambda t: (-1, 1),
                'det': lambda t: (1, (m + 1.0) ** m), 'slogdet': lambda t: [(-1, 1), (0, m * math.log(m + 1))],
                'sumlogdiag': lambda t: (0, m * math.log(2))}[op]
        return b.add(name, {}, [a], iv=rule)
    if op == 'potri':
        L = _chol(b)
        return L and b.add(name, {}, [L], iv=lambda t: (-1, 1))
    if op in ('trmm', 'trsm'):
        L = _chol(b)
        if L is None:
            return None
        m, n = L.shape[-1], int(r.choice([1, 2, 3, 5]))
        attrs = {'transpose': bool(r.random() < 0.4), 'rightside': bool(r.random() < 0.4),
                 'lower': bool(r.random() < 0.8), 'alpha': float(r.choice([1.0, 0.5, -2.0]))}
        B = b.like(L.shape[:-2] + ((n, m) if attrs['rightside'] else (m, n)), L.dtype)
        k = abs(attrs['alpha']) * m
        return b.add(name, attrs, [L, B], iv=lambda t, u: _sym(k * _mag(u) * (math.sqrt(m + 1) if op == 'trmm' else 1)))
    if op == 'syrk':
        x = b.pick(ndim=(2, 3))
        if x is None:
            return None
        tr, al = bool(r.random() < 0.4), float(r.choice([1.0, 0.5, -1.0]))
        k = x.shape[-2] if tr else x.shape[-1]
        return b.add(name, {'transpose': tr, 'alpha': al}, [x], iv=lambda t: _sym(abs(al) * k * _mag(t) ** 2))
    if op in ('gemm', 'gemm2'):
        a = b.pick(ndim=(2, 3))
        if a is None:
            return None
        ta, tb, al = bool(r.random() < 0.3), bool(r.random() < 0.3), float(r.choice([1.0, 0.5, -2.0]))
        mm, k = (a.shape[-1], a.shape[-2]) if ta else a.shape[-2:]
        n = int(r.choice([1, 2, 3, 5]))
        B = b.fresh(a.shape[:-2] + ((n, k) if tb else (k, n)), dtype=a.dtype, scale=0.5)
        attrs = {'transpose_a': ta, 'transpose_b': tb, 'alpha': al}
        bound = abs(al) * k * _mag((a.lo, a.hi)) * 1.5
        if op == 'gemm2':
            return b.add(name, attrs, [a, B], iv=lambda x, y: _sym(bound))
        be = float(r.choice([1.0, 0.0, -0.5]))
        C = b.like(a.shape[:-2] + (mm, n), a.dtype)
        return b.add(name, dict(attrs, beta=be), [a, B, C], iv=lambda x, y, c: _sym(bound + abs(be) * _mag(c)))
    if op == 'extractdiag':
        a = b.pick(ints=True, ndim=(2, 3), ok=lambda v: v.shape[-1] == v.shape[-2])
        if a is None or a.shape[-1] != a.shape[-2]:
            a = b.fresh((int(r.integers(1, 3)),) * int(r.integers(0, 2)) + (int(r.integers(1, 6)),) * 2)
        n = a.shape[-1] if a else 1
        return b.add(name, {'offset': int(r.integers(-n + 1, n)) if n else 0}, [a], iv=_same)
    v = b.pick(ints=True, ndim=(1, 2))  # makediag
    return v and b.add(name, {'offset': int(r.integers(-2, 3))}, [v], iv=lambda t: _iv(t[0], t[1], 0))


# ------------------------------------------------------------ loss heads: the gradient paths run their own backward
def gen_loss_head(b, name):
    r = b.rng
    if name in ('BlockGrad', 'make_loss'):
        return b.add(name, {}, [b.pick(ints=name == 'BlockGrad', empty=True)], iv=_same)
    if name == 'MakeLoss':
        norm = str(r.choice(['null', 'batch', 'valid']))
        attrs = {'grad_scale': float(r.choice([1.0, 0.5, 2.0])), 'normalization': norm,
                 'valid_thresh': float(r.choice([0.0, 0.5]))}
        return b.add(name, attrs, [b.pick(exact=norm == 'valid')], iv=_same)  # 'valid' counts x > valid_thresh
    attrs = {'grad_scale': float(r.choice([1.0, 0.5, 2.0]))}
    if name == 'SoftmaxOutput':
        return gen_softmax_output(b, name, attrs)
    x = b.pick(ndim=(1, 2, 3))
    if x is None:
        return None
    lshape = x.shape if len(x.shape) < 2 or r.random() < 0.6 else (x.shape[0], math.prod(x.shape[1:]))
    lab = b.like(lshape, x.dtype, kind='mask' if name == 'LogisticRegressionOutput' else 'real')
    rule = (lambda a, t: _mono(_sig)(a)) if name == 'LogisticRegressionOutput' else (lambda a, t: a)
    return b.add(name, attrs, [x, lab], iv=rule)


def gen_softmax_output(b, name, attrs):
    """Class axis 1 of (N, C) data, of (N, C, ...) with multi_output, the last with preserve_shape, or else all
    but the batch axis; labels are class indices (some of them ignore_label when use_ignore)."""
    r = b.rng
    x = b.pick(ndim=(1, 2, 3, 4))
    if x is None:
        return None
    nd_ = len(x.shape)
    flag = str(r.choice(['multi_output', 'preserve_shape', 'none'])) if nd_ > 2 else \
        'preserve_shape' if r.random() < 0.3 else 'none'
    if flag != 'none':
        attrs[flag] = True
    if nd_ > 2 and flag == 'none':  # (batch, everything else), as MXNet
        lab = _index_val(b, x.shape[:1], math.prod(x.shape[1:]), 'raise')
    else:
        ax = nd_ - 1 if flag == 'preserve_shape' else 1 if nd_ > 1 else 0
        lab = _index_val(b, x.shape[:ax] + x.shape[ax + 1:], x.shape[ax], 'raise')
    if lab is None:
        return None
    if r.random() < 0.3:
        attrs.update(use_ignore=True, ignore_label=float(r.choice([-1.0, 0.0])))
        a = b.inputs[-1]['array']
        a.flat[::3] = attrs['ignore_label']
        lab.lo, lab.index = -1, None
    attrs['normalization'] = str(r.choice(['null', 'batch', 'valid']))
    if r.random() < 0.3 and (math.prod(x.shape[1:]) if nd_ > 2 and flag == 'none' else x.shape[ax]) > 1:
        attrs['smooth_alpha'] = 0.1
    return b.add(name, attrs, [x, lab], iv=lambda d, t: (0, 1))


# ------------------------------------------------------------ random samplers: one stream consumer per graph, seeded
RANDOM_SEED = 20261202  # graphc.random is seeded with it before every run of a case, on every path


def _stream_free(b):
    """A graph may hold one op that reads the random stream (a sampler, or Dropout that drops): the paths
    then draw the same numbers in the same order."""
    if getattr(b, 'random_used', False):
        return False
    b.random_used = True
    return True


# kind: (scalar parameters drawn for _random_*, kinds of the parameter inputs of _sample_*, a bound on the draws)
SAMPLERS = {
    'uniform': (lambda r: {'low': -1.0, 'high': float(r.choice([0.5, 2.0]))}, ('real', 'pos'), None),
    'normal': (lambda r: {'loc': float(r.choice([0.0, 1.5])), 'scale': float(r.choice([0.5, 2.0]))},
               ('real', 'pos'), None),
    'gamma': (lambda r: {'alpha': float(r.choice([0.5, 2.0])), 'beta': float(r.choice([0.5, 2.0]))},
              ('pos', 'pos'), (0, 200)),
    'exponential': (lambda r: {'lam': float(r.choice([0.5, 2.0]))}, ('pos',), (0, 200)),
    'poisson': (lambda r: {'lam': float(r.choice([0.5, 2.0]))}, ('pos',), (0, 100)),
    'negative_binomial': (lambda r: {'k': int(r.integers(1, 4)), 'p': float(r.choice([0.3, 0.7, 1.0]))},
                          ('k', 'p'), (0, 1000)),
    'generalized_negative_binomial': (lambda r: {'mu': float(r.choice([0.5, 2.0])), 'alpha': float(r.choice([0.5, 1.0]))},
                                      ('pos', 'pos'), (0, 1000)),
}


def gen_random(b, name):
    r = b.rng
    if not _stream_free(b):
        return None
    if name == '_shuffle':
        return b.add(name, {}, [b.pick(ints=True, empty=True)], iv=_same)
    if name == '_random_randint':
        lo = int(r.integers(-3, 2))
        hi = lo + int(r.integers(1, 6))
        return b.add(name, {'low': lo, 'high': hi, 'shape': b.shape(int(r.integers(0, 3))),
                            'dtype': str(r.choice(['int32', 'int64']))}, [], iv=lambda: (lo, hi - 1))
    if name == '_sample_multinomial':
        k = int(r.integers(1, 6))
        p = b.fresh(b.shape(int(r.integers(0, 2))) + (k,), 'pos')
        if p is None:
            return None
        a = b.inputs[-1]['array']
        a[...] = a / np.maximum(a.sum(-1, keepdims=True), 1e-30)  # rows of probabilities
        gp = bool(r.random() < 0.4)
        attrs = {'shape': b.shape(int(r.integers(0, 3))), 'get_prob': gp,
                 'dtype': str(r.choice(['int32', 'float32', 'float64']))}
        return b.add(name, attrs, [p], iv=lambda t: [(0, k - 1), (math.log(1e-30), 0)][:1 + gp])
    like = name.endswith('_like')   # (_random_<kind>_like: the samples take data's shape and dtype)
    kind = name.split('_', 2)[2].removesuffix('_like')
    params, ins_kinds, bound = SAMPLERS[kind]
    shape = b.shape(int(r.integers(0, 3)))
    dt = {} if r.random() < 0.5 else {'dtype': str(r.choice(['float32', 'float64']))}
    if name.startswith('_random_'):
        pa = params(r)
        if kind == 'uniform':
            bound = (pa['low'], pa['high'])
        elif kind == 'normal':
            bound = (pa['loc'] - 10 * pa['scale'], pa['loc'] + 10 * pa['scale'])
        if like:
            v = b.pick()
            return None if v is None else b.add(name, pa, [v], iv=lambda t: bound)
        return b.add(name, dict(pa, shape=shape, **dt), [], iv=lambda: bound)
    pshape = b.shape(int(r.integers(0, 3)))
    if math.prod(pshape) * math.prod(shape) > 512:
        shape = ()
    ins = []
    for k in ins_kinds:  # exact inputs: a sampler is discontinuous in its parameters
        v = b.fresh(pshape, 'pos' if k in ('k', 'p') else k)
        if v is None:
            return None
        a = b.inputs[-1]['array']
        if k == 'k':
            a[...] = np.round(a * 1.5)  # failures allowed: 1, 2 or 3
            v.lo, v.hi = 1, 3
        elif k == 'p':
            a[...] = a / 2  # in [0.25, 1]
            v.lo, v.hi = 0.25, 1
        ins.append(v)
    if kind == 'uniform':  # low in [-2, -0.5], high in [0.5, 2]: high > low also for the reversed second call
        b.inputs[-2]['array'][...] = -np.abs(b.inputs[-2]['array']).clip(0.5, 2)
        ins[0].lo, ins[0].hi = -2, -0.5
        bound = (-2, 2)
    elif kind == 'normal':
        bound = (ins[0].lo - 10 * ins[1].hi, ins[0].hi + 10 * ins[1].hi)
    return b.add(name, dict(shape=shape, **dt), ins, iv=lambda *a: bound)


def gen_box_nms(b, name):
    """Boxes [id, score, 4 coordinates(, extra)] with ids in {0, 1, 2}, scores in [0, 1) and positive sizes, in
    corner or center form; the selection is discontinuous, so the boxes are inputs (exact)."""
    r = b.rng
    fmt = str(r.choice(['corner', 'center']))
    x = b.fresh(b.shape(int(r.integers(0, 2))) + (int(r.integers(1, 9)), 6 + int(r.integers(0, 2))))
    if x is None:
        return None
    a = b.inputs[-1]['array']
    lo, size = r.uniform(0, 1, a.shape[:-1] + (2,)), r.uniform(0.05, 0.6, a.shape[:-1] + (2,))
    a[..., 0], a[..., 1] = r.integers(0, 3, a.shape[:-1]), r.uniform(0, 1, a.shape[:-1])
    a[..., 2:4] = lo + size / 2 if fmt == 'center' else lo
    a[..., 4:6] = size if fmt == 'center' else lo + size
    x.lo, x.hi = 0.0, 2.0
    attrs = {'overlap_thresh': float(r.choice([0.3, 0.5, 0.7])), 'valid_thresh': float(r.choice([0.0, 0.2])),
             'topk': int(r.choice([-1, 1, 3])), 'in_format': fmt, 'out_format': str(r.choice(['corner', 'center']))}
    if r.random() < 0.5:
        attrs.update(id_index=0, force_suppress=bool(r.random() < 0.3), background_id=int(r.choice([-1, 0])))
    n_rows = x.size // x.shape[-1]
    return b.add(name, attrs, [x], iv=lambda t: [(-1.0, 2.0), (-1.0, float(n_rows))])


def gen_dropout(b, name):
    """p = 0 in training mode, or p > 0 in predict mode; in training mode (or mode='always') a dropping
    Dropout when the graph's random stream is free (seeded: every path draws the same mask)."""
    r = b.rng
    x = b.pick(empty=True)
    if x is not None and r.random() < 0.5 and _stream_free(b):
        p, mode = float(r.choice([0.1, 0.5])), str(r.choice(['training', 'always']))
        return b.add(name, {'p': p, 'mode': mode}, [x], iv=lambda a: [_iv(a[0] / (1 - p), a[1] / (1 - p), 0),
                                                                      (0, 1 / (1 - p))])
    p = 0.0 if b.train else float(r.choice([0.1, 0.5]))
    return b.add(name, {'p': p}, [x], iv=lambda a: [a, (1, 1)])


def gen_reshape_like(b, name):
    """reshape_like: lhs to the shape of an rhs of the same size (a reversed or refactored shape)."""
    r = b.rng
    v = b.pick(empty=True)
    if v is None:
        return None
    n = v.size
    t = _factor(r, n, int(r.integers(1, 4))) if n else list(v.shape[::-1]) or [1]
    w = b.like(tuple(t), v.dtype)
    return b.add(name, {}, [v, w], iv=lambda x, y: x)


def gen_ctc(b, name):
    """CTCLoss / ctc_loss: activations (T, N, C), labels short enough that an alignment always exists."""
    r = b.rng
    x = b.pick(ndim=(3,), ok=lambda v: 3 <= v.shape[0] <= 6 and v.shape[2] >= 2 and v.mag <= 3)
    if x is None:
        return None
    T, N, C = x.shape
    blank = str(r.choice(['first', 'last']))
    lab = b.fresh((N, int(r.integers(1, (T - 1) // 2 + 1))), 'index', n=C)
    if lab is None:
        return None
    if blank == 'last':  # labels in [0, C-1); -1 pads
        a = b.inputs[-1]['array']
        a[...] = np.where(a >= C - 1, -1, a)
        lab.lo = -1
    hi = T * ((x.hi - x.lo) + math.log(C)) + 1
    return b.add(name, {'blank_label': blank}, [x, lab], iv=lambda d, l: [(0, hi), (-1, 1)])


GENERATORS = {}
for _n in UNARY_IV:
    GENERATORS[_n] = gen_unary
for _n in OPS:
    if _n.startswith(('broadcast_', 'elemwise_')) and _n not in ('broadcast_to', 'broadcast_axes', 'broadcast_like'):
        GENERATORS[_n] = gen_binary
for _n in SCALARS:
    GENERATORS[_n] = gen_scalar
GENERATORS.update({
    'Activation': gen_activation, 'Cast': gen_cast, 'clip': gen_clip, 'where': gen_where, 'add_n': gen_add_n,
    'Reshape': gen_reshape, '_np_reshape': gen_reshape, 'transpose': gen_transpose, 'SwapAxis': gen_transpose,
    'expand_dims': gen_expand_squeeze, 'squeeze': gen_expand_squeeze, 'Flatten': gen_expand_squeeze,
    'Concat': gen_concat, 'stack': gen_concat, 'SliceChannel': gen_split, 'slice': gen_slice,
    'slice_axis': gen_slice, '_slice_assign': gen_slice, '_slice_assign_scalar': gen_slice,
    'tile': gen_tile_repeat, 'repeat': gen_tile_repeat, 'broadcast_to': gen_broadcast_to, 'take': gen_take,
    'Embedding': gen_embedding, 'one_hot': gen_one_hot, 'pick': gen_pick,
    'sum': gen_reduce, 'mean': gen_reduce, 'max': gen_reduce, 'min': gen_reduce, 'prod': gen_reduce,
    'norm': gen_norm, 'argmax': gen_arg, 'argmin': gen_arg, 'softmax': gen_softmax, 'log_softmax': gen_softmax,
    'softmax_cross_entropy': gen_sce, 'dot': gen_dot, 'batch_dot': gen_dot, 'FullyConnected': gen_fc,
    'Convolution': gen_conv, 'Deconvolution': gen_conv, 'Pooling': gen_pool, 'BatchNorm': gen_batchnorm,
    'LayerNorm': gen_layernorm, 'InstanceNorm': gen_group_norm, 'GroupNorm': gen_group_norm, 'Pad': gen_pad,
    'Dropout': gen_dropout, 'LeakyReLU': gen_leaky, '_zeros': gen_zeros,
    '_rnn_param_concat': gen_concat, 'RNN': gen_rnn,
})
GENERATORS.update({'reshape_like': gen_reshape_like, 'CTCLoss': gen_ctc, 'ctc_loss': gen_ctc})
GENERATORS.update({
    'smooth_l1': gen_smooth_l1, 'nansum': gen_reduce, 'nanprod': gen_reduce, 'softmin': gen_softmax,
    'argmax_channel': gen_argmax_channel, 'sort': gen_sort, 'argsort': gen_sort, 'topk': gen_sort,
    'cumsum': gen_cumsum, 'reverse': gen_reverse, 'depth_to_space': gen_depth_space, 'space_to_depth': gen_depth_space,
    'diag': gen_diag, 'slice_like': gen_slice_like, 'broadcast_axes': gen_broadcast_axes,
    'broadcast_like': gen_broadcast_axes, 'shape_array': gen_shape_array, 'size_array': gen_shape_array,
    'batch_take': gen_batch_take, 'gather_nd': gen_gather_nd, 'scatter_nd': gen_scatter_nd,
    'khatri_rao': gen_khatri_rao, 'Crop': gen_crop, 'UpSampling': gen_upsampling,
    '_contrib_BilinearResize2D': gen_bilinear, 'L2Normalization': gen_l2norm, 'LRN': gen_lrn,
    'SequenceMask': gen_sequence, 'SequenceLast': gen_sequence, 'SequenceReverse': gen_sequence,
    '_contrib_box_nms': gen_box_nms,
})
for _n in OPS:
    if _n.startswith('_linalg_'):
        GENERATORS[_n] = gen_linalg
    elif _n.startswith(('_random_', '_sample_')) and _n != '_sample_unique_zipfian' or _n == '_shuffle':
        GENERATORS[_n] = gen_random
for _n in ('BlockGrad', 'MakeLoss', 'make_loss', 'SoftmaxOutput', 'LinearRegressionOutput', 'MAERegressionOutput',
           'LogisticRegressionOutput'):
    GENERATORS[_n] = gen_loss_head


def _sampled(name):
    """An interval rule for a unary op without a hand-written one: its ref over 257 points of the operand's
    interval, widened by a tenth (a new op is generated with nothing but its registry entry)."""
    op = OPS[name]

    def rule(a):
        with np.errstate(all='ignore'):
            ys = np.asarray(op.ref(op.canon({}), np.linspace(a[0], a[1], 257)), np.float64)
        if not np.isfinite(ys).all():
            return (-math.inf, math.inf)   # (out of the op's domain there: the node is not made)
        lo, hi = float(ys.min()), float(ys.max())
        return lo - 0.1 * (hi - lo) - 1e-6, hi + 0.1 * (hi - lo) + 1e-6
    return rule


for _n, _op in OPS.items():   # elementwise ops of one input and no attributes that nothing above generates
    if _n not in GENERATORS and _n not in EXCLUDED and _op.kind == 'elemwise' and len(_op.inputs) == 1 \
            and not _op.attrs and _op.differentiable:
        UNARY_IV[_n], GENERATORS[_n] = _sampled(_n), gen_unary
        FAMILY.setdefault(_n, 'transcendental')   # (the loosest elementwise family: a new op's error is unknown)
# more weight on what stresses the compiler: elementwise chains, broadcasting, shape ops, reductions, nn ops
WEIGHT = {'elemwise': 1.0, 'broadcast': 1.5, 'injective': 1.0, 'reduce': 1.5, 'opaque': 1.5}


def _has_emitter(name):
    # the ops the CPU compiled before the scalar lowering (ops/scalar.py), kept so that seeds give the same graphs
    from graphc.runtime import cpu
    if name.startswith(('elemwise_', 'broadcast_')):
        return name.split('_', 1)[1] in ('add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'greater', 'greater_equal',
                                          'lesser', 'lesser_equal', 'equal', 'not_equal')
    return name in _EMITTED or name in getattr(cpu, 'ROW_REDUCE', ()) or name in ('Activation', 'LeakyReLU', 'where')


_EMITTED = ('negative', 'abs', 'square', 'sqrt', 'rsqrt', 'reciprocal', 'exp', 'tanh', 'sigmoid', 'relu', '_copy',
            'broadcast_to', 'zeros_like', 'ones_like', '_plus_scalar', '_minus_scalar', '_rminus_scalar', '_mul_scalar',
            '_div_scalar', '_rdiv_scalar', '_maximum_scalar', '_minimum_scalar', '_greater_scalar',
            '_greater_equal_scalar', '_lesser_scalar', '_lesser_equal_scalar', 'clip')


def generate(seed):
    """The case of this seed: a dict of inputs (with values), nodes and outputs (see module docstring)."""
    r = np.random.default_rng(seed)
    dtype = 'float64' if r.random() < 0.2 else 'float32'
    b = Builder(r, dtype, train=bool(r.random() < 0.3))
    names = sorted(GENERATORS)
    w = np.array([WEIGHT[OPS[n].kind] * (2.0 if _has_emitter(n) else 1.0) for n in names])
    w /= w.sum()
    target = int(r.integers(1, 21)) if r.random() < 0.85 else int(r.integers(20, 41))  # some long graphs
    for _ in range(target * 4):
        if len(b.nodes) >= target:
            break
        if b.nodes and r.random() < 0.07:  # a duplicate node: a shared subexpression for CSE
            nd_ = b.nodes[int(r.integers(len(b.nodes)))]
            if nd_['op'] in GENERATORS and GENERATORS[nd_['op']] in (gen_random, gen_dropout):
                continue  # a second reader of the random stream
            b.nodes.append(dict(nd_))
            k = len(b.nodes) - 1
            src = next(v for v in b.vals if v.ref == (b.nodes.index(nd_), 0))
            b.vals.append(Val((k, 0), src.shape, src.dtype, src.lo, src.hi, src.exact, src.index, src.op))
            continue
        name = names[int(r.choice(len(names), p=w))]
        GENERATORS[name](b, name)
    if not b.nodes:
        gen_unary(b, 'negative')
    # outputs: the values nothing reads (up to 5), and sometimes an intermediate one (it must be materialized)
    used = {_ref(x) for n in b.nodes for x in n['inputs']}
    outs = [v.ref for v in b.vals if isinstance(v.ref, tuple)]
    sinks = [o for o in outs if o not in used and (o[1] == 0 or r.random() < 0.3)] or outs[-1:]
    heads = [sinks[int(i)] for i in sorted(r.choice(len(sinks), min(len(sinks), 5), replace=False))]
    if r.random() < 0.3:
        extra = outs[int(r.integers(len(outs)))]
        heads += [extra] if extra not in heads else []
    for spec in b.inputs:  # some inputs are constants: captured arrays in the graph, parameters once exported
        if r.random() < 0.2:
            spec['const'] = True
    case = prune({'seed': int(seed), 'train': b.train, 'inputs': b.inputs, 'nodes': b.nodes, 'outputs': heads,
                  'disabled': _random_passes(r)})
    if case['inputs'] and all(i.get('const') for i in case['inputs']):
        case['inputs'][0]['const'] = False
    return case


def _random_passes(r):
    """Passes to switch off for 'compiled_subset' ('native': the plan runs every step from Python)."""
    from graphc.passes import PASSES
    return sorted(str(n) for n in sorted(PASSES) + ['native'] if r.random() < 0.5)


def prune(case):
    """Drop nodes and inputs that no output needs; renumber."""
    need, stack = set(), [_ref(o) for o in case['outputs']]
    while stack:
        ref = stack.pop()
        key = ref[0] if isinstance(ref, tuple) else ref
        if key not in need:
            need.add(key)
            if isinstance(key, int):
                stack += [_ref(x) for x in case['nodes'][key]['inputs']]
    new, nodes = {}, []
    for k, n in enumerate(case['nodes']):
        if k in need:
            new[k] = len(nodes)
            nodes.append(n)
    fix = lambda r: (new[r[0]], r[1]) if isinstance(r, tuple) else r  # noqa: E731
    nodes = [dict(n, inputs=[fix(_ref(x)) for x in n['inputs']]) for n in nodes]
    return dict(case, inputs=[i for i in case['inputs'] if i['name'] in need], nodes=nodes,
                outputs=[fix(_ref(o)) for o in case['outputs']])


def _ref(o):
    """An input name, or (node index, output index)."""
    return tuple(o) if isinstance(o, list) else o


# ---------------------------------------------------------------- running a case
def emit(case, xs, check=None, symbolic=False):
    """Run the case's ops on xs (NDArrays: eager; Symbols: a graph). Returns (outputs, every value by ref key)."""
    from graphc.symbol.symbol import Symbol, sym_invoke
    vals = {i['name']: [x] for i, x in zip(case['inputs'], xs)}
    symbolic = symbolic or any(isinstance(x, Symbol) for x in xs)

    def get(s):
        s = _ref(s)
        return vals[s][0] if isinstance(s, str) else vals[s[0]][s[1]]
    for k, n in enumerate(case['nodes']):
        op = OPS[n['op']]
        attrs = op.canon(n['attrs'])
        ins = [get(s) for s in n['inputs']]
        out = sym_invoke(op, ins, attrs) if symbolic and not ins else nd.invoke(op, ins, attrs)  # (_zeros: a node)
        vals[k] = out if isinstance(out, list) else [out]
        if check is not None:
            check(k, op, attrs, ins, vals[k])
    return [get(o) for o in case['outputs']], vals


def _tolerances(case, values):
    """(rtol, atol, family) per output: the loosest tolerance over the nodes it depends on, each node taken at
    its own dtype and family (a float32 sigmoid cast to float64 keeps float32's tolerance)."""
    tol = {}
    for k, n in enumerate(case['nodes']):
        fam = FAMILY.get(n['op'], 'exact')
        rtol, atol = tolerance(values[k][0].dtype, fam)
        for s in n['inputs']:
            s = _ref(s)
            if isinstance(s, tuple):
                r2, a2, f2 = tol[s[0]]
                rtol, atol, fam = max(rtol, r2), max(atol, a2), max(fam, f2, key=_family_rank)
        tol[k] = (rtol, atol, fam)
    return [tol[_ref(o)[0]] for o in case['outputs']]


class Failure(Exception):
    """What went wrong on one path: kind ('mismatch', 'error', 'infer', 'mutated'), path, message."""

    def __init__(self, kind, path, msg):
        super().__init__(f"{kind} on {path}: {msg}")
        self.kind, self.path, self.msg = kind, path, msg

    def signature(self):
        return (self.kind, self.path)


def compare(got, want, rtol, atol, what):
    """None, or a message saying how got differs from want (shape, dtype, NaN/inf placement, values)."""
    got = np.asarray(got)
    if got.shape != want.shape:
        return f"{what}: shape {got.shape}, expected {want.shape}"
    if got.dtype != want.dtype:
        return f"{what}: dtype {got.dtype}, expected {want.dtype}"
    if want.dtype.kind not in 'fc':
        bad = got != want
        return f"{what}: {int(bad.sum())} of {want.size} values differ" if bad.any() else None
    fin = np.isfinite(want)
    for f in (np.isnan, np.isposinf, np.isneginf):
        if not np.array_equal(f(got), f(want)):
            return f"{what}: NaN/inf at different places ({int((f(got) != f(want)).sum())} of {want.size})"
    if not fin.any():
        return None
    w = want[fin].astype(np.float64)
    g = got[fin].astype(np.float64)
    scale = max(1.0, float(np.abs(w).max()))
    err = np.abs(g - w)
    lim = atol * scale + rtol * np.abs(w)
    if (err > lim).any():
        i = int(np.argmax(err - lim))
        return (f"{what}: max error {err.max():.3g} (at {g[i]!r} vs {w[i]!r}), tolerance rtol {rtol:g}, "
                f"atol {atol:g} x scale {scale:.3g}")
    return None


def _arrays(case):
    return [np.asarray(i['array']) for i in case['inputs']]


def _head_grads(outs):
    r = np.random.default_rng(HEAD_SEED)
    return [r.standard_normal(o.shape).astype(o.dtype) for o in outs]


class Oracle:
    """Runs a case every way and raises Failure at the first disagreement. `paths` limits what runs (the
    minimizer re-checks only the path that failed)."""

    PATHS = ('interp', 'compiled', 'compiled_subset', 'lazy', 'roundtrip', 'gradient')

    def __init__(self, case, paths=None):
        self.case, self.paths = case, paths or self.PATHS + tuple(EXTRA_BACKENDS)
        self.train = bool(case.get('train'))

    def mode(self):
        return autograd.train_mode() if self.train else autograd.predict_mode()

    @staticmethod
    def seeded(fn, *args):
        """fn(*args) from a freshly seeded random stream: every run of a case draws the same numbers."""
        from graphc import random
        random.seed(RANDOM_SEED)
        return fn(*args)

    def run(self):
        """Returns {path: seconds}; raises Failure."""
        times = {}
        t0 = time.perf_counter()
        self.want = self.eager()
        times['eager'] = time.perf_counter() - t0
        for p in self.paths:
            t0 = time.perf_counter()
            try:
                with np.errstate(all='ignore'):
                    getattr(self, 'run_' + p, lambda: self.run_extra(p))()
            except Failure:
                raise
            except Exception as e:  # noqa: BLE001  (any exception on a path the eager run passed is a bug)
                raise Failure('error', p, f"{type(e).__name__}: {e}\n{_short_tb()}") from None
            times[p] = time.perf_counter() - t0
        return times

    def check(self, path, outs, note=''):
        if len(outs) != len(self.want):
            raise Failure('mismatch', path, f"{note}{len(outs)} outputs, expected {len(self.want)}")
        for i, (g, w, (rtol, atol, f)) in enumerate(zip(outs, self.want, self.tols)):
            rtol, atol = (0.0, 0.0) if path in EXACT_PATHS else (rtol, atol)
            msg = compare(g, w, rtol, atol, f"{note}output {i} ({f})")
            if msg:
                raise Failure('mismatch', path, msg)

    # ------------------------------------------------------------ the paths
    def eager(self):
        def check(k, op, attrs, ins, outs):
            try:
                shapes, dtypes = op.infer(attrs, [x.shape for x in ins], [x.dtype for x in ins])
            except GraphcShapeError as e:
                raise Failure('infer', 'eager', f"node {k} ({op.name}) ran but its inference rejects it: {e}")
            got = [(o.shape, o.dtype) for o in outs]
            if got != [(tuple(s), np.dtype(d)) for s, d in zip(shapes, dtypes)]:
                raise Failure('infer', 'eager', f"node {k} ({op.name}): inferred {list(zip(shapes, dtypes))}, "
                                                f"computed {got}")
        from graphc.runtime import backend
        with self.mode(), engine.engine_mode('naive'), backend.use('interp'), np.errstate(all='ignore'):
            try:   # (eager on the interp backend: the ops' refs, the spec every path is compared with)
                outs, self.values = self.seeded(emit, self.case, [nd.array(a, dtype=a.dtype)
                                                                  for a in _arrays(self.case)], check)
            except Failure:
                raise
            except Exception as e:  # noqa: BLE001
                raise Failure('error', 'eager', f"{type(e).__name__}: {e}\n{_short_tb()}") from None
            self.tols = _tolerances(self.case, self.values)
            return [o.asnumpy() for o in outs]

    def graph(self, consts=True):
        """The case as a Graph: inputs as variables, constant inputs (consts=True) as captured values."""
        from graphc.graph import Graph
        from graphc.symbol.symbol import input_var
        with self.mode():
            xs = [input_var(i['name'], np.shape(i['array']), np.asarray(i['array']).dtype) for i in self.case['inputs']]
            outs, _ = emit(self.case, xs, symbolic=True)
        for x, spec in zip(xs, self.case['inputs']):
            if spec.get('const'):
                v, a = x._one()[0], np.asarray(spec['array'])
                v.extra.update({'value': np.array(a)} if consts else {'__dtype__': str(a.dtype), '__shape__': a.shape})
        return Graph([o._one() for o in outs], [x._one()[0] for x in xs if 'value' not in x._one()[0].extra])

    def feed(self, g, case=None):
        arrays = {i['name']: np.array(i['array']) for i in (case or self.case)['inputs']}
        return {v: arrays[v.name] for v in g.inputs if 'value' not in v.extra}

    @property
    def second(self):
        """The case with its non-constant inputs reversed (same values, so still valid), and its eager outputs:
        a second call of a compiled plan must not disturb the first call's results."""
        if not hasattr(self, '_second'):
            c = dict(self.case, inputs=[i if i.get('const') else dict(i, array=np.asarray(i['array']).ravel()[::-1]
                                                                          .reshape(np.shape(i['array'])))
                                        for i in self.case['inputs']])
            o = Oracle(c, ())
            self._second = (c, o.eager())
        return self._second

    def check_twice(self, path, call, first):
        """call(case) -> outputs of the same compiled object on the reversed inputs; `first` must not change."""
        kept = [np.array(a, copy=True) for a in first]
        c2, want2 = self.second
        got2 = call(c2)
        self.want, saved = want2, self.want
        try:
            self.check(path, got2, 'second call, ')
        finally:
            self.want = saved
        for i, (a, k) in enumerate(zip(first, kept)):
            if not np.array_equal(np.asarray(a), k, equal_nan=True):
                raise Failure('mutated', path, f"output {i} of the first call changed during the second call")

    def run_interp(self):
        from graphc.interpreter import interpret
        g = self.graph()
        self.check('interp', self.seeded(interpret, g, self.feed(g)))

    def _compiled(self, path, disabled):
        from graphc.passes import run_pipeline
        from graphc.runtime import backend
        from graphc.runtime.plan import Plan
        g = self.graph()
        with backend.use('cpu'):   # (the fuser forms the groups the CPU backend compiles)
            opt, _ = run_pipeline(g, 'training' if self.train else 'inference', disabled=disabled, verify=True)
        feed = self.feed(g)
        before = [a.copy() for a in feed.values()]
        with backend.use('cpu'):
            plan = Plan(opt, native='native' not in disabled)
            outs = self.seeded(plan, feed)
            self.check(path, outs)
            for a, b_ in zip(feed.values(), before):
                if not np.array_equal(a, b_, equal_nan=True):
                    raise Failure('mutated', path, "an input buffer was written to")
            self.check_twice(path, lambda c: self.seeded(plan, self.feed(g, c)), outs)

    def run_compiled(self):
        self._compiled('compiled', set())

    def run_compiled_subset(self):
        self._compiled('compiled_subset', set(self.case.get('disabled', ())))

    def run_extra(self, name):
        from graphc.passes import run_pipeline
        g = self.graph()
        opt, _ = run_pipeline(g, 'training' if self.train else 'inference', verify=True)
        self.check(name, self.seeded(EXTRA_BACKENDS[name], opt, self.feed(g)))

    def run_lazy(self):
        def call(case):  # the second call finds the first's plan in the lazy engine's cache (same structure)
            with self.mode(), engine.engine_mode('lazy'):
                outs, _ = self.seeded(emit, case, [nd.array(a, dtype=a.dtype) for a in _arrays(case)])
                return [o.asnumpy() for o in outs]
        first = call(self.case)
        self.check('lazy', first)
        self.check_twice('lazy', call, first)

    def block(self):
        """export (symbol JSON; constant inputs become parameters in a .params file) -> SymbolBlock.imports,
        hybridized. Returns (block, data input arrays)."""
        from graphc.gluon import SymbolBlock
        from graphc.mxjson import graph_to_json
        from graphc.serialization import save_ndarrays
        g = self.graph(consts=False)
        data = [i['name'] for i in self.case['inputs'] if not i.get('const')]
        consts = {'arg:' + i['name']: np.asarray(i['array']) for i in self.case['inputs'] if i.get('const')}
        with tempfile.TemporaryDirectory() as d:
            sym_file, par_file = os.path.join(d, 'fuzz-symbol.json'), os.path.join(d, 'fuzz-0000.params')
            with open(sym_file, 'w') as f:
                f.write(graph_to_json(g, data))
            save_ndarrays(par_file, consts)
            blk = SymbolBlock.imports(sym_file, data, par_file if consts else None)
        for p in blk.collect_params().values():
            p.grad_req = 'null'
        return blk, [nd.array(np.asarray(i['array']), dtype=np.asarray(i['array']).dtype)
                     for i in self.case['inputs'] if not i.get('const')]

    def run_roundtrip(self):
        blk, xs = self.block()
        params = [(p, p.data().asnumpy()) for p in blk.collect_params().values()]

        def call(case):
            for p, a in params:  # as imported: training mode updated BatchNorm's moving statistics in place
                p.set_data(nd.array(a, dtype=a.dtype))
            with self.mode():
                out = self.seeded(blk, *[nd.array(np.asarray(i['array']), dtype=np.asarray(i['array']).dtype)
                                         for i in case['inputs'] if not i.get('const')])
            return [o.asnumpy() for o in (out if isinstance(out, list) else [out])]
        first = call(self.case)
        self.check('roundtrip', first)
        self.check_twice('roundtrip', call, first)

    def run_gradient(self):
        """Gradients of the hybridized (compiled) block against eager autograd, for the float inputs that are
        not indices or constants, with fixed head gradients."""
        if any(n['op'] == 'Cast' and not np.dtype(OPS['Cast'].canon(n['attrs'])['dtype']).kind == 'f'
               for n in self.case['nodes']):
            return  # a cast to integers truncates gradients: not differentiable
        arrays = _arrays(self.case)
        specs = self.case['inputs']
        wrt = [i for i, spec in enumerate(specs) if np.asarray(spec['array']).dtype.kind == 'f' and
               not spec.get('const') and not self._is_index(spec['name'])]
        if not wrt:
            return
        with engine.engine_mode('naive'):
            xs = [nd.array(a, dtype=a.dtype) for a in arrays]
            for i in wrt:
                xs[i].attach_grad()
            with autograd.record(train_mode=self.train):
                outs, _ = self.seeded(emit, self.case, xs)
            cut = self._through_nondifferentiable({specs[i]['name'] for i in wrt})
            heads = [k for k, o in enumerate(outs) if o._ag is not None and o.dtype.kind == 'f' and
                     _ref(self.case['outputs'][k])[0] not in cut]
            if not heads:
                return
            hg = [nd.array(h, dtype=h.dtype) for h in _head_grads([outs[k].asnumpy() for k in heads])]
            want = [g.asnumpy() for g in autograd.grad([outs[k] for k in heads], [xs[i] for i in wrt], hg)]
            blk, ys = self.block()
            data = [i for i, spec in enumerate(specs) if not spec.get('const')]
            pos = {i: q for q, i in enumerate(data)}
            for i in wrt:
                ys[pos[i]].attach_grad()
            with autograd.record(train_mode=self.train):
                out = self.seeded(blk, *ys)
            outs2 = out if isinstance(out, list) else [out]
            got = [g.asnumpy() for g in autograd.grad([outs2[k] for k in heads], [ys[pos[i]] for i in wrt], hg)]
        f32 = any(v.dtype == np.float32 for vs in self.values.values() for v in vs)  # float32 anywhere sets it
        for i, g, w in zip(wrt, got, want):
            rtol, atol = tolerance(np.float32 if f32 else w.dtype, 'gradient')
            msg = compare(g, w, rtol, atol, f"gradient of {specs[i]['name']}")
            if msg:
                raise Failure('mismatch', 'gradient', msg)

    def _through_nondifferentiable(self, wrt):
        """Nodes whose value depends on a wrt input through an op that has no gradient (samplers, shape_array,
        argmax_channel, ...): those outputs are left out of the gradient comparison."""
        reach, cut = set(wrt), set()
        for k, n in enumerate(self.case['nodes']):
            keys = [_ref(s)[0] if isinstance(_ref(s), tuple) else s for s in n['inputs']]
            if any(s in reach for s in keys):
                reach.add(k)
                if not OPS[n['op']].differentiable or any(s in cut for s in keys):
                    cut.add(k)
        return cut

    def _is_index(self, name):
        for n in self.case['nodes']:
            op = OPS[n['op']]
            for pos, s in enumerate(n['inputs']):
                if s == name and pos in op.nograd_inputs:
                    return True
        return False


def _short_tb():
    tb = traceback.format_exc().strip().splitlines()
    return '\n'.join(tb[-7:-1])


def check_case(case, paths=None):
    """Run the oracle; returns None, or the Failure."""
    try:
        Oracle(case, paths).run()
    except Failure as f:
        return f
    return None


# ---------------------------------------------------------------- minimizing
def _replace(case, nodes_to_cut, values):
    """The case with each node in nodes_to_cut replaced by inputs holding its (eager) values."""
    if not nodes_to_cut:
        return case
    subst, inputs = {}, list(case['inputs'])
    names = {i['name'] for i in inputs}
    for k in nodes_to_cut:
        for j, a in enumerate(values[k]):
            nm = f"v{k}_{j}"
            while nm in names:
                nm += '_'
            names.add(nm)
            inputs.append({'name': nm, 'array': np.array(a)})
            subst[(k, j)] = nm
    fix = lambda s: subst.get(_ref(s), s) if isinstance(_ref(s), tuple) else s  # noqa: E731
    nodes = [dict(n, inputs=[fix(s) for s in n['inputs']]) for n in case['nodes']]
    outs = [_ref(o) for o in case['outputs']]
    if all(isinstance(fix(o), str) for o in outs):
        return None  # every output would become an input: nothing left to compute
    return prune(dict(case, inputs=inputs, nodes=nodes, outputs=[o for o in outs if not isinstance(fix(o), str)]))


def minimize(case, failure, log=lambda *a: None, budget_s=120.0):
    """A smaller case failing the same way (kind and path): outputs first, then ddmin over nodes, each cut
    node replaced by an input holding its eager value, so what stays downstream sees the same numbers."""
    sig = failure.signature()
    paths = None if failure.path == 'eager' else (failure.path,)
    t_end = time.monotonic() + budget_s

    def fails(c):
        if c is None or not c['nodes'] or time.monotonic() > t_end:
            return False
        f = check_case(c, paths)
        return f is not None and f.signature() == sig

    for o in case['outputs']:  # one output is often enough
        c = prune(dict(case, outputs=[o]))
        if len(case['outputs']) > 1 and fails(c):
            case = c
            break
    case = _retarget(case, fails)
    n = 2
    while len(case['nodes']) >= 2 and time.monotonic() < t_end:
        values = _values(case)
        if values is None:
            break
        idx = list(range(len(case['nodes'])))
        chunks = [idx[i::n] for i in range(n)]
        done = False
        for ch in chunks:
            c = _replace(case, ch, values)
            if fails(c):
                log(f"  minimize: {len(case['nodes'])} -> {len(c['nodes'])} nodes")
                case, n, done = c, max(n - 1, 2), True
                break
        if not done:
            if n >= len(idx):
                break
            n = min(n * 2, len(idx))
    return _retarget(case, fails)


def _retarget(case, fails):
    """Move outputs up to their producers' inputs while the case still fails (what follows is then dead)."""
    changed = True
    while changed:
        changed = False
        for i, o in enumerate(case['outputs']):
            for s in case['nodes'][o[0]]['inputs']:
                s = _ref(s)
                if isinstance(s, tuple) and s not in case['outputs']:
                    c = prune(dict(case, outputs=case['outputs'][:i] + [s] + case['outputs'][i + 1:]))
                    if fails(c):
                        case, changed = c, True
                        break
            if changed:
                break
    return case


def _values(case):
    try:
        o = Oracle(case, ())
        o.eager()
    except Failure:
        return None
    return {k: [np.asarray(v.asnumpy()) for v in vs] for k, vs in o.values.items() if isinstance(k, int)}


# ---------------------------------------------------------------- JSON cases
def _enc(a):
    a = np.asarray(a)
    flat = [x if math.isfinite(x) else repr(x) for x in a.astype(np.float64).ravel().tolist()] \
        if a.dtype.kind == 'f' else a.ravel().tolist()
    return {'dtype': str(a.dtype), 'shape': list(a.shape), 'data': flat}


def _dec(d):
    data = [float(x) if isinstance(x, str) else x for x in d['data']]
    return np.array(data, dtype=d['dtype']).reshape(d['shape'])


def to_json(case, **extra):
    c = dict(case, inputs=[{'name': i['name'], **({'const': True} if i.get('const') else {}), **_enc(i['array'])}
                           for i in case['inputs']],
             outputs=[list(_ref(o)) if isinstance(_ref(o), tuple) else o for o in case['outputs']],
             nodes=[dict(n, inputs=[list(s) if isinstance(s, tuple) else s for s in n['inputs']])
                    for n in case['nodes']])
    c.update(extra)
    rows = []  # one line per input and per node: regression files stay readable and diffable
    for k in sorted(c):
        v = c[k]
        if isinstance(v, list) and v and isinstance(v[0], dict):
            v = '[\n' + ',\n'.join('  ' + json.dumps(x, sort_keys=True) for x in v) + '\n ]'
        else:
            v = json.dumps(v)
        rows.append(f" {json.dumps(k)}: {v}")
    return '{\n' + ',\n'.join(rows) + '\n}'


def from_json(text):
    c = json.loads(text)
    c['inputs'] = [{'name': i['name'], 'array': _dec(i), **({'const': True} if i.get('const') else {})}
                   for i in c['inputs']]
    c['nodes'] = [dict(n, inputs=[tuple(s) if isinstance(s, list) else s for s in n['inputs']]) for n in c['nodes']]
    c['outputs'] = [tuple(o) if isinstance(o, list) else o for o in c['outputs']]
    return c


def describe(case):
    """One line per node, as the IR's text form."""
    lines = [f"{i['name']}: {'const ' if i.get('const') else ''}{np.asarray(i['array']).dtype}"
             f"{list(np.shape(i['array']))}" for i in case['inputs']]
    for k, n in enumerate(case['nodes']):
        a = ', '.join(f"{x}={y}" for x, y in n['attrs'].items())
        args = ', '.join(s if isinstance(s, str) else f"%{s[0]}" + (f".{s[1]}" if s[1] else '') for s in n['inputs'])
        lines.append(f"%{k} = {n['op']}{'[' + a + ']' if a else ''}({args})")
    lines.append('return ' + ', '.join(o if isinstance(o, str) else f"%{o[0]}.{o[1]}" for o in case['outputs']))
    return '\n'.join(lines)


def write_regression(case, failure, out_dir, note=''):
    os.makedirs(out_dir, exist_ok=True)
    name = f"fuzz_{case['seed']}_{failure.path}_{failure.kind}.json"
    path = os.path.join(out_dir, name)
    with open(path, 'w') as f:
        f.write(to_json(case, found=f"{failure.kind} on {failure.path}: {failure.msg.splitlines()[0][:300]}",
                        note=note) + '\n')
    return path


# ---------------------------------------------------------------- CLI
def run(seed, count, time_budget=None, do_minimize=False, out_dir=None, verbose=False, log=print):
    """Fuzz seeds seed .. seed+count-1 (stopping at time_budget seconds). Returns a summary dict."""
    t0 = time.monotonic()
    stats = {'graphs': 0, 'failures': [], 'ops': {}, 'nodes': 0, 'seconds': {}}
    for s in range(seed, seed + count):
        if time_budget is not None and time.monotonic() - t0 > time_budget:
            break
        case = generate(s)
        stats['graphs'] += 1
        stats['nodes'] += len(case['nodes'])
        for n in case['nodes']:
            stats['ops'][n['op']] = stats['ops'].get(n['op'], 0) + 1
        try:
            times = Oracle(case).run()
            for k, v in times.items():
                stats['seconds'][k] = stats['seconds'].get(k, 0.0) + v
            if verbose:
                log(f"seed {s}: ok ({len(case['nodes'])} nodes, {sum(times.values()):.2f}s)")
        except Failure as f:
            log(f"seed {s}: FAIL {f.kind} on {f.path}: {f.msg}")
            if verbose:
                log(describe(case))
            entry = {'seed': s, 'kind': f.kind, 'path': f.path, 'msg': f.msg.splitlines()[0]}
            if do_minimize:
                small = minimize(case, f, log)
                f2 = check_case(small) or f
                log(f"  minimized to {len(small['nodes'])} nodes:\n" + describe(small))
                if out_dir:
                    entry['file'] = write_regression(small, f2, out_dir)
                    log(f"  wrote {entry['file']}")
            stats['failures'].append(entry)
    stats['elapsed'] = time.monotonic() - t0
    return stats


def main(argv=None):
    p = argparse.ArgumentParser(prog='python tools/fuzz.py', description=__doc__.split('\n\n')[0])
    p.add_argument('--seed', type=int, default=0, help='first seed')
    p.add_argument('--count', type=int, default=100, help='number of graphs (seeds seed .. seed+count-1)')
    p.add_argument('--time-budget', type=float, default=None, help='stop after this many seconds')
    p.add_argument('--minimize', action='store_true', help='minimize failing cases and write them as regressions')
    p.add_argument('--out', default=REGRESSIONS, help='where regression cases go')
    p.add_argument('--show', type=int, default=None, metavar='SEED', help='print the graph of one seed and exit')
    p.add_argument('--gpu-emulated', action='store_true', help='also compare the CUDA kernels run by their host '
                   'emulation (slow: g++ builds)')
    p.add_argument('-v', '--verbose', action='store_true')
    a = p.parse_args(argv)
    if a.show is not None:
        print(describe(generate(a.show)))
        return 0
    if a.gpu_emulated:
        run_gpu = gpu_emulated_backend()
        if run_gpu is None:
            print("--gpu-emulated: the CUDA host emulation (runtime/emulate.py and g++) is not available")
            return 2
        EXTRA_BACKENDS['gpu_emulated'] = run_gpu
    st = run(a.seed, a.count, a.time_budget, a.minimize, a.out, a.verbose)
    covered = len(st['ops'])
    print(f"{st['graphs']} graphs ({st['nodes']} nodes, {covered} of {len(GENERATORS)} generatable ops) in "
          f"{st['elapsed']:.0f} s; {len(st['failures'])} failures")
    print('time per path: ' + ', '.join(f"{k} {v:.0f}s" for k, v in sorted(st['seconds'].items())))
    for f in st['failures']:
        print(f"  seed {f['seed']}: {f['kind']} on {f['path']}: {f['msg'][:200]}" + (f" -> {f['file']}" if 'file' in f
                                                                                     else ''))
    return 1 if st['failures'] else 0


if __name__ == '__main__':
    sys.exit(main())
