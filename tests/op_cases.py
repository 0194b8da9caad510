"""Test cases for every registered op: inputs, attributes and an independent NumPy oracle.

The registry test (test_ops.py) fails for any op that has no entry here, so an op cannot
be added without a reference check and, when differentiable, a numerical gradient check.
Oracles are written independently of graphc's kernels (naive loops for convolution and
pooling, textbook formulas elsewhere).
"""
import itertools
import math

import numpy as np

rng = np.random.default_rng(0)
erf = np.vectorize(math.erf, otypes=[float])


def R(*shape):
    return np.asarray(rng.normal(size=shape))


def P(*shape):  # positive, away from 0
    return np.asarray(rng.uniform(0.5, 2.0, size=shape))


def I(n, *shape):  # integer indices stored as floats, as MXNet passes them
    return np.asarray(rng.integers(0, n, size=shape).astype(np.float64))


class Case:
    def __init__(self, inputs, attrs=None, oracle=None, grad=True, train=False, seed=None, tol=None, id=''):
        self.inputs, self.attrs, self.oracle = inputs, attrs or {}, oracle
        self.grad, self.train, self.seed, self.tol, self.id = grad, train, seed, tol, id


UNARY_SHAPES = [(3, 4), (1, 5), (2, 0, 3), ()]
UNARY = {  # name: (oracle, input maker)
    'negative': (lambda x: -x, R), 'exp': (np.exp, R), 'log': (np.log, P), 'log1p': (np.log1p, P),
    'expm1': (np.expm1, R), 'sqrt': (np.sqrt, P), 'rsqrt': (lambda x: x ** -0.5, P),
    'reciprocal': (lambda x: 1 / x, P), 'square': (lambda x: x * x, R), 'abs': (np.abs, R),
    'sign': (np.sign, R), 'tanh': (lambda x: (np.exp(2 * x) - 1) / (np.exp(2 * x) + 1), R),
    'sin': (np.sin, R), 'cos': (np.cos, R),
    'sigmoid': (lambda x: 1 / (1 + np.exp(-x)), R), 'relu': (lambda x: x * (x > 0), R),
    'softrelu': (lambda x: np.log(1 + np.exp(x)), R), 'softsign': (lambda x: x / (1 + abs(x)), R),
    'erf': (erf, R), 'log_sigmoid': (lambda x: -np.log(1 + np.exp(-x)), R),
    'mish': (lambda x: x * np.tanh(np.log(1 + np.exp(x))), R), '_copy': (lambda x: x, R), 'zeros_like': (lambda x: 0 * x, R),
    'ones_like': (lambda x: 0 * x + 1, R), 'floor': (np.floor, lambda *s: np.asarray(R(*s) * 3)),
    'ceil': (np.ceil, lambda *s: np.asarray(R(*s) * 3)), 'round': (np.round, lambda *s: np.asarray(R(*s) * 3 + 0.25)),
}

BIN_SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((0, 3), (1, 3)), ((1,), (2, 2))]
BINARY = {
    'add': (lambda a, b: a + b, R, R), 'sub': (lambda a, b: a - b, R, R), 'mul': (lambda a, b: a * b, R, R),
    'div': (lambda a, b: a / b, R, P), 'power': (lambda a, b: np.exp(b * np.log(a)), P, R),
    'maximum': (lambda a, b: np.where(a > b, a, b), R, R), 'minimum': (lambda a, b: np.where(a < b, a, b), R, R),
    'mod': (lambda a, b: a - np.floor(a / b) * b, lambda *s: np.asarray(R(*s) * 3), P),
    'equal': (lambda a, b: (a == b) * 1.0, lambda *s: I(3, *s), lambda *s: I(3, *s)),
    'not_equal': (lambda a, b: (a != b) * 1.0, lambda *s: I(3, *s), lambda *s: I(3, *s)),
    'greater': (lambda a, b: (a > b) * 1.0, R, R), 'greater_equal': (lambda a, b: (a >= b) * 1.0, R, R),
    'lesser': (lambda a, b: (a < b) * 1.0, R, R), 'lesser_equal': (lambda a, b: (a <= b) * 1.0, R, R),
}

SCALAR = {  # name: (oracle(x, s), input maker, scalar)
    '_plus_scalar': (lambda x, s: x + s, R, 1.5), '_minus_scalar': (lambda x, s: x - s, R, 1.5),
    '_rminus_scalar': (lambda x, s: s - x, R, 1.5), '_mul_scalar': (lambda x, s: x * s, R, -2.0),
    '_div_scalar': (lambda x, s: x / s, R, 4.0), '_rdiv_scalar': (lambda x, s: s / x, P, 3.0),
    '_power_scalar': (lambda x, s: x ** s, P, 2.5), '_rpower_scalar': (lambda x, s: s ** x, R, 2.0),
    '_maximum_scalar': (lambda x, s: np.where(x > s, x, s), R, 0.1),
    '_minimum_scalar': (lambda x, s: np.where(x < s, x, s), R, 0.1),
    '_mod_scalar': (lambda x, s: x - np.floor(x / s) * s, lambda *s: np.asarray(R(*s) * 3), 1.3),
    '_rmod_scalar': (lambda x, s: s - np.floor(s / x) * x, P, 5.3),
    '_equal_scalar': (lambda x, s: (x == s) * 1.0, lambda *s: I(3, *s), 1.0),
    '_not_equal_scalar': (lambda x, s: (x != s) * 1.0, lambda *s: I(3, *s), 1.0),
    '_greater_scalar': (lambda x, s: (x > s) * 1.0, R, 0.2),
    '_greater_equal_scalar': (lambda x, s: (x >= s) * 1.0, R, 0.2),
    '_lesser_scalar': (lambda x, s: (x < s) * 1.0, R, 0.2),
    '_lesser_equal_scalar': (lambda x, s: (x <= s) * 1.0, R, 0.2),
}


# ---------------------------------------------------------------- naive oracles for the nn ops
def conv_naive(x, w, b, stride=(1, 1), pad=(0, 0), dilate=(1, 1), groups=1):
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (h + 2 * pad[0] - dilate[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dilate[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, f, oh, ow))
    fg = f // groups
    for o in range(f):
        gi = o // fg
        for i, j in itertools.product(range(oh), range(ow)):
            for ki, kj in itertools.product(range(kh), range(kw)):
                patch = xp[:, gi * cg:(gi + 1) * cg, i * stride[0] + ki * dilate[0], j * stride[1] + kj * dilate[1]]
                out[:, o, i, j] += patch @ w[o, :, ki, kj]
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def deconv_naive(x, w, b, stride=(1, 1), pad=(0, 0), adj=(0, 0), groups=1):
    """Scatter each input pixel times the kernel: the definition of a transposed convolution."""
    n, c, h, wd = x.shape
    _, fg, kh, kw = w.shape
    cg = c // groups
    oh = (h - 1) * stride[0] - 2 * pad[0] + kh + adj[0]
    ow = (wd - 1) * stride[1] - 2 * pad[1] + kw + adj[1]
    full = np.zeros((n, fg * groups, oh + 2 * pad[0] + kh, ow + 2 * pad[1] + kw))
    for ci in range(c):
        gi = ci // cg
        for i, j in itertools.product(range(h), range(wd)):
            full[:, gi * fg:(gi + 1) * fg, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw] += \
                x[:, ci, i, j][:, None, None, None] * w[ci][None]
    out = full[:, :, pad[0]:pad[0] + oh, pad[1]:pad[1] + ow]
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def pool_naive(x, kernel, stride, pad, pool_type, full=False, count_include_pad=True, global_pool=False):
    n, c, h, w = x.shape
    if global_pool:
        kernel, stride, pad = (h, w), (1, 1), (0, 0)
    rnd = math.ceil if full else math.floor
    oh = int(rnd((h + 2 * pad[0] - kernel[0]) / stride[0])) + 1
    ow = int(rnd((w + 2 * pad[1] - kernel[1]) / stride[1])) + 1
    out = np.zeros((n, c, oh, ow))
    for i, j in itertools.product(range(oh), range(ow)):
        h0, w0 = i * stride[0] - pad[0], j * stride[1] - pad[1]
        h1, w1 = min(h0 + kernel[0], h + pad[0]), min(w0 + kernel[1], w + pad[1])
        hs, ws = max(h0, 0), max(w0, 0)
        he, we = min(h1, h), min(w1, w)
        win = x[:, :, hs:he, ws:we]
        if pool_type == 'max':
            out[:, :, i, j] = win.max(axis=(2, 3))
        elif pool_type == 'sum':
            out[:, :, i, j] = win.sum(axis=(2, 3))
        else:
            cnt = (h1 - h0) * (w1 - w0) if count_include_pad else (he - hs) * (we - ws)
            out[:, :, i, j] = win.sum(axis=(2, 3)) / cnt
    return out


def bn_oracle(x, g, b, mm, mv, train, eps, fix_gamma, axis=1):
    axes = tuple(i for i in range(x.ndim) if i != axis)
    bs = [1] * x.ndim
    bs[axis] = -1
    mean, var = (x.mean(axes), x.var(axes)) if train else (mm, mv)
    g = np.ones_like(g) if fix_gamma else g
    out = (x - mean.reshape(bs)) / np.sqrt(var.reshape(bs) + eps) * g.reshape(bs) + b.reshape(bs)
    return out


def _log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def reshape_cases():
    return [Case([R(2, 3, 4)], {'shape': (6, -1)}, lambda x: x.reshape(6, 4)),
            Case([R(2, 3, 4)], {'shape': (0, -1)}, lambda x: x.reshape(2, 12)),
            Case([R(2, 3, 4)], {'shape': (-3, 0)}, lambda x: x.reshape(6, 4)),
            Case([R(2, 3, 4)], {'shape': (0, -4, 1, 3, 0)}, lambda x: x.reshape(2, 1, 3, 4)),
            Case([R(2, 3, 4)], {'shape': (-2,)}, lambda x: x),
            Case([R(2, 3, 4)], {'shape': (-1, 0), 'reverse': True}, lambda x: x.reshape(6, 4)),
            Case([R(0, 3)], {'shape': (3, -1)}, lambda x: x.reshape(3, 0)),
            # MXNet's deprecated target_shape: its one 0 inferred; keep_highest keeps the first dim
            Case([R(2, 3, 4)], {'target_shape': (2, 0)}, lambda x: x.reshape(2, 12), id='target_shape'),
            Case([R(2, 3, 4)], {'target_shape': (7, 4, 0), 'keep_highest': True}, lambda x: x.reshape(2, 4, 3),
                 id='keep_highest')]


def build():
    C = {}
    for name, (f, mk) in UNARY.items():
        C[name] = [Case([mk(*s)], {}, f, id=str(s)) for s in UNARY_SHAPES]
    for act in ('relu', 'sigmoid', 'tanh', 'softrelu', 'softsign'):
        C.setdefault('Activation', []).append(Case([R(3, 4)], {'act_type': act}, UNARY[act][0], id=act))
    C['Cast'] = [Case([R(3, 4)], {'dtype': 'float32'}, lambda x: x.astype(np.float32), grad=False),
                 Case([R(3, 4) * 5], {'dtype': 'int32'}, lambda x: np.trunc(x), grad=False)]
    C['clip'] = [Case([R(4, 5)], {'a_min': -0.5, 'a_max': 0.7}, lambda x: np.minimum(np.maximum(x, -0.5), 0.7))]
    C['hard_sigmoid'] = [Case([R(4, 5) * 3], {}, lambda x: np.minimum(np.maximum(0.2 * x + 0.5, 0), 1)),
                         Case([R(3, 4) * 3], {'alpha': 0.3, 'beta': 0.4}, lambda x: np.minimum(np.maximum(0.3 * x + 0.4, 0), 1))]
    for k, (f, ma, mb) in BINARY.items():
        C['broadcast_' + k] = [Case([ma(*sa), mb(*sb)], {}, f, id=f"{sa}{sb}") for sa, sb in BIN_SHAPES]
        if k in ('add', 'sub', 'mul', 'div'):
            C['elemwise_' + k] = [Case([ma(3, 4), mb(3, 4)], {}, f), Case([ma(0, 2), mb(0, 2)], {}, f)]
    for name, (f, mk, s) in SCALAR.items():
        C[name] = [Case([mk(*sh)], {'scalar': s}, lambda x, f=f, s=s: f(x, s), id=str(sh)) for sh in UNARY_SHAPES[:3]]
    C['where'] = [Case([I(2, 3, 4), R(3, 4), R(3, 4)], {}, lambda c, x, y: np.where(c != 0, x, y)),
                  Case([I(2, 3), R(3, 4), R(3, 4)], {}, lambda c, x, y: np.where(c[:, None] != 0, x, y))]
    C['add_n'] = [Case([R(2, 3), R(2, 3), R(2, 3)], {}, lambda a, b, c: a + b + c)]

    # shape ops
    C['Reshape'] = reshape_cases()
    C['_np_reshape'] = [Case([R(2, 3, 4)], {'newshape': (4, -1)}, lambda x: x.reshape(4, 6)),
                        Case([R(0, 3)], {'newshape': (3, 0)}, lambda x: x.reshape(3, 0))]
    C['transpose'] = [Case([R(2, 3, 4)], {}, lambda x: x.transpose()),
                      Case([R(2, 3, 4)], {'axes': (1, 0, 2)}, lambda x: x.transpose(1, 0, 2))]
    C['SwapAxis'] = [Case([R(2, 3, 4)], {'dim1': 0, 'dim2': 2}, lambda x: np.swapaxes(x, 0, 2))]
    C['expand_dims'] = [Case([R(2, 3)], {'axis': 1}, lambda x: x[:, None]),
                        Case([R(2, 3)], {'axis': -1}, lambda x: x[..., None])]
    C['squeeze'] = [Case([R(2, 1, 3, 1)], {}, lambda x: x.reshape(2, 3)),
                    Case([R(2, 1, 3, 1)], {'axis': 1}, lambda x: x.reshape(2, 3, 1))]
    C['Flatten'] = [Case([R(2, 3, 4)], {}, lambda x: x.reshape(2, 12)), Case([R(5)], {}, lambda x: x.reshape(5, 1))]
    C['Concat'] = [Case([R(2, 3), R(2, 2)], {'dim': 1, 'num_args': 2}, lambda a, b: np.hstack([a, b])),
                   Case([R(1, 3), R(2, 3), R(0, 3)], {'dim': 0, 'num_args': 3}, lambda *x: np.vstack(x))]
    C['stack'] = [Case([R(2, 3), R(2, 3)], {'axis': 1, 'num_args': 2}, lambda a, b: np.array([a, b]).transpose(1, 0, 2))]
    C['SliceChannel'] = [Case([R(2, 6)], {'num_outputs': 3, 'axis': 1}, lambda x: (x[:, :2], x[:, 2:4], x[:, 4:])),
                         Case([R(3, 2)], {'num_outputs': 3, 'axis': 0, 'squeeze_axis': True},
                              lambda x: (x[0], x[1], x[2]))]
    C['slice'] = [Case([R(4, 5)], {'begin': (1, None), 'end': (3, None)}, lambda x: x[1:3]),
                  Case([R(4, 5)], {'begin': (None, 4), 'end': (None, 0), 'step': (1, -2)}, lambda x: x[:, 4:0:-2]),
                  Case([R(4, 5, 2)], {'begin': (-2,), 'end': (None,)}, lambda x: x[-2:])]
    C['_slice_assign'] = [Case([R(4, 5), R(2, 5)], {'begin': (1, None), 'end': (3, None)},
                               lambda a, b: np.concatenate([a[:1], b, a[3:]]))]
    C['_slice_assign_scalar'] = [Case([R(4, 5)], {'begin': (None, 1), 'end': (None, 3), 'scalar': 2.0},
                                      lambda a: np.concatenate([a[:, :1], np.full((4, 2), 2.0), a[:, 3:]], axis=1))]
    C['slice_axis'] = [Case([R(3, 6)], {'axis': 1, 'begin': 1, 'end': 4}, lambda x: x[:, 1:4]),
                       Case([R(3, 6)], {'axis': 0, 'begin': -2, 'end': None}, lambda x: x[1:])]
    C['tile'] = [Case([R(2, 3)], {'reps': (2, 2)}, lambda x: np.block([[x, x], [x, x]])),
                 Case([R(3)], {'reps': (2, 1)}, lambda x: np.stack([x, x]))]
    C['repeat'] = [Case([R(2, 3)], {'repeats': 2, 'axis': 1}, lambda x: x[:, [0, 0, 1, 1, 2, 2]]),
                   Case([R(2, 2)], {'repeats': 2}, lambda x: x.reshape(-1)[[0, 0, 1, 1, 2, 2, 3, 3]])]
    C['broadcast_to'] = [Case([R(3, 1)], {'shape': (2, 3, 4)}, lambda x: x[None] + np.zeros((2, 3, 4))),
                         Case([R(1, 4)], {'shape': (3, 0)}, lambda x: x + np.zeros((3, 4)))]
    C['take'] = [Case([R(5, 3), I(5, 4)], {}, lambda a, i: a[i.astype(int)]),
                 Case([R(2, 5), I(5, 2, 2)], {'axis': 1}, lambda a, i: a[:, i.astype(int)]),
                 Case([R(4), np.array([-1.0, 7.0])], {'mode': 'wrap'}, lambda a, i: a[[3, 3]])]
    C['Embedding'] = [Case([I(6, 2, 3), R(6, 4)], {'input_dim': 6, 'output_dim': 4}, lambda i, w: w[i.astype(int)])]
    C['one_hot'] = [Case([np.array([0.0, 2.0, 5.0])], {'depth': 3},
                         lambda i: np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0.0]]), grad=False)]
    C['pick'] = [Case([R(4, 5), I(5, 4)], {}, lambda x, i: x[np.arange(4), i.astype(int)]),
                 Case([R(4, 5), I(4, 5)], {'axis': 0, 'keepdims': True},
                      lambda x, i: x[i.astype(int), np.arange(5)][None])]
    # reductions
    for name, f in [('sum', np.sum), ('mean', np.mean), ('max', np.max), ('min', np.min), ('prod', np.prod)]:
        mk = P if name == 'prod' else R
        C[name] = [Case([mk(3, 4)], {}, lambda x, f=f: np.reshape(f(x), (1,))),  # MXNet 1.x: a full reduction is (1,)
                   Case([mk(2, 3, 4)], {'axis': 1}, lambda x, f=f: f(x, axis=1)),
                   Case([mk(2, 3, 4)], {'axis': (0, 2), 'keepdims': True}, lambda x, f=f: f(x, axis=(0, 2), keepdims=True)),
                   Case([mk(2, 3, 4)], {'axis': 1, 'exclude': True}, lambda x, f=f: f(x, axis=(0, 2)))]
        if name in ('sum', 'mean', 'prod'):
            C[name].append(Case([mk(0, 3)], {'axis': 1}, lambda x, f=f: f(x, axis=1), id='empty'))
    C['norm'] = [Case([R(3, 4)], {}, lambda x: np.sqrt((x ** 2).sum()).reshape(1)),
                 Case([R(3, 4)], {'ord': 1, 'axis': 1}, lambda x: abs(x).sum(1))]
    C['argmax'] = [Case([R(3, 4)], {'axis': 1}, lambda x: np.array([list(r).index(max(r)) for r in x]) * 1.0, grad=False)]
    C['argmin'] = [Case([R(3, 4)], {'axis': 0, 'keepdims': True},
                        lambda x: np.array([[list(c).index(min(c)) for c in x.T]]) * 1.0, grad=False)]
    mm = lambda a, b: np.einsum('ik,kj->ij', a, b)  # noqa: E731
    C['dot'] = [Case([R(3, 4), R(4, 5)], {}, mm),
                Case([R(4, 3), R(4, 5)], {'transpose_a': True}, lambda a, b: mm(a.T, b)),
                Case([R(3, 4), R(5, 4)], {'transpose_b': True}, lambda a, b: mm(a, b.T)),
                Case([R(4, 3), R(5, 4)], {'transpose_a': True, 'transpose_b': True}, lambda a, b: mm(a.T, b.T)),
                Case([R(2, 3, 4), R(4, 2)], {}, lambda a, b: np.einsum('abk,kc->abc', a, b)),
                # N-d with transposes (MXNet: lhs as (first, rest), rhs as (rest, last); other dims in order)
                Case([R(4, 3, 2), R(4, 5, 6)], {'transpose_a': True}, lambda a, b: np.einsum('kij,klm->ijlm', a, b)),
                Case([R(2, 3, 4), R(6, 5, 4)], {'transpose_b': True}, lambda a, b: np.einsum('ijk,lmk->ijlm', a, b)),
                Case([R(3, 2, 2), R(4, 3)], {'transpose_a': True, 'transpose_b': True},
                     lambda a, b: np.einsum('kij,lk->ijl', a, b))]
    C['batch_dot'] = [Case([R(2, 3, 4), R(2, 4, 5)], {}, lambda a, b: np.einsum('bik,bkj->bij', a, b)),
                      Case([R(2, 4, 3), R(2, 5, 4)], {'transpose_a': True, 'transpose_b': True},
                           lambda a, b: np.einsum('bki,bjk->bij', a, b))]
    # nn
    C['FullyConnected'] = [
        Case([R(2, 3, 2), R(4, 6), R(4)], {'num_hidden': 4}, lambda x, w, b: x.reshape(2, 6) @ w.T + b),
        Case([R(2, 3, 2), R(4, 2)], {'num_hidden': 4, 'no_bias': True, 'flatten': False},
             lambda x, w: np.einsum('abk,nk->abn', x, w))]
    C['Convolution'] = [
        Case([R(2, 3, 5, 5), R(4, 3, 3, 3), R(4)], {'kernel': (3, 3), 'num_filter': 4}, conv_naive),
        Case([R(1, 2, 6, 5), R(3, 2, 2, 3), R(3)], {'kernel': (2, 3), 'stride': (2, 1), 'pad': (1, 1), 'num_filter': 3},
             lambda x, w, b: conv_naive(x, w, b, (2, 1), (1, 1))),
        Case([R(1, 4, 6, 6), R(4, 2, 3, 3)], {'kernel': (3, 3), 'dilate': (2, 2), 'num_filter': 4, 'num_group': 2,
                                                'no_bias': True},
             lambda x, w: conv_naive(x, w, None, dilate=(2, 2), groups=2))]
    C['Deconvolution'] = [
        Case([R(2, 3, 3, 3), R(3, 2, 3, 3), R(2)], {'kernel': (3, 3), 'num_filter': 2, 'no_bias': False},
             deconv_naive),
        Case([R(1, 2, 3, 4), R(2, 3, 2, 2)], {'kernel': (2, 2), 'stride': (2, 2), 'pad': (1, 0), 'adj': (1, 1),
                                                'num_filter': 3},
             lambda x, w: deconv_naive(x, w, None, (2, 2), (1, 0), (1, 1))),
        Case([R(1, 4, 3, 3), R(4, 1, 2, 2)], {'kernel': (2, 2), 'num_filter': 2, 'num_group': 2},
             lambda x, w: deconv_naive(x, w, None, groups=2)),
        # target_shape overrides pad/adj: total padding 2*(3-1)+3-6 = 1 -> pad 1, adj 1
        Case([R(1, 2, 3, 3), R(2, 2, 3, 3)], {'kernel': (3, 3), 'stride': (2, 2), 'pad': (5, 5), 'target_shape': (6, 6),
                                                'num_filter': 2},
             lambda x, w: deconv_naive(x, w, None, (2, 2), (1, 1), (1, 1)), id='target_shape')]
    C['Pooling'] = [
        Case([R(2, 2, 4, 4)], {'kernel': (2, 2), 'stride': (2, 2)}, lambda x: pool_naive(x, (2, 2), (2, 2), (0, 0), 'max')),
        Case([R(1, 2, 5, 5)], {'kernel': (3, 3), 'stride': (2, 2), 'pad': (1, 1), 'pool_type': 'avg'},
             lambda x: pool_naive(x, (3, 3), (2, 2), (1, 1), 'avg')),
        Case([R(1, 2, 5, 5)], {'kernel': (3, 3), 'stride': (2, 2), 'pad': (1, 1), 'pool_type': 'avg',
                               'count_include_pad': False},
             lambda x: pool_naive(x, (3, 3), (2, 2), (1, 1), 'avg', count_include_pad=False)),
        Case([R(1, 2, 6, 6)], {'kernel': (3, 3), 'stride': (2, 2), 'pooling_convention': 'full'},
             lambda x: pool_naive(x, (3, 3), (2, 2), (0, 0), 'max', full=True)),
        Case([R(1, 2, 5, 5)], {'kernel': (2, 2), 'stride': (1, 1), 'pool_type': 'sum'},
             lambda x: pool_naive(x, (2, 2), (1, 1), (0, 0), 'sum')),
        Case([R(2, 3, 4, 5)], {'global_pool': True, 'pool_type': 'avg', 'kernel': (1, 1)},
             lambda x: x.mean(axis=(2, 3), keepdims=True)),
        Case([R(2, 3, 4, 5)], {'global_pool': True, 'kernel': (1, 1)}, lambda x: x.max(axis=(2, 3), keepdims=True))]
    bn_in = lambda: [R(4, 3, 2, 2), P(3), R(3), R(3), P(3)]  # noqa: E731
    C['BatchNorm'] = [
        Case(bn_in(), {'fix_gamma': False, 'eps': 1e-3}, train=True,
             oracle=lambda x, g, b, mm, mv: bn_oracle(x, g, b, mm, mv, True, 1e-3, False), id='train'),
        Case(bn_in(), {'fix_gamma': False, 'eps': 1e-3},
             oracle=lambda x, g, b, mm, mv: bn_oracle(x, g, b, mm, mv, False, 1e-3, False), id='infer'),
        Case(bn_in(), {}, train=True, oracle=lambda x, g, b, mm, mv: bn_oracle(x, g, b, mm, mv, True, 1e-3, True),
             id='fix_gamma'),
        Case([R(5, 3), P(3), R(3), R(3), P(3)], {'fix_gamma': False, 'axis': -1}, train=True,
             oracle=lambda x, g, b, mm, mv: bn_oracle(x, g, b, mm, mv, True, 1e-3, False, axis=1), id='2d')]
    C['LayerNorm'] = [Case([R(3, 5), P(5), R(5)], {},
                           lambda x, g, b: (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5) * g + b),
                      Case([R(2, 4, 3), P(4), R(4)], {'axis': 1},
                           lambda x, g, b: (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
                           * g[:, None] + b[:, None])]
    C['Dropout'] = [Case([R(4, 5)], {'p': 0.5}, lambda x: x, id='infer'),
                    Case([R(40, 50)], {'p': 0.3}, None, train=True, seed=3, id='train')]
    C['LeakyReLU'] = [
        Case([R(3, 4)], {'act_type': 'leaky', 'slope': 0.1}, lambda x: np.where(x > 0, x, 0.1 * x)),
        Case([R(3, 4)], {'act_type': 'elu', 'slope': 1.0}, lambda x: np.where(x > 0, x, np.exp(x) - 1)),
        Case([R(3, 4)], {'act_type': 'selu'},
             lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1))),
        Case([R(3, 4)], {'act_type': 'gelu'}, lambda x: x * 0.5 * (1 + erf(x / np.sqrt(2)))),
        Case([R(2, 3, 2), P(3) * 0.3], {'act_type': 'prelu'}, lambda x, g: np.where(x > 0, x, x * g[None, :, None])),
        Case([R(2, 3), P(1) * 0.3], {'act_type': 'prelu'}, lambda x, g: np.where(x > 0, x, x * g))]
    C['softmax'] = [Case([R(3, 5)], {}, lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
                    Case([R(3, 4, 2)], {'axis': 1, 'temperature': 2.0},
                         lambda x: np.exp(x / 2) / np.exp(x / 2).sum(1, keepdims=True)),
                    Case([np.array([[1000.0, 0.0, -1000.0]])], {}, lambda x: np.array([[1.0, 0, 0]]), grad=False,
                         id='extreme')]
    C['log_softmax'] = [Case([R(3, 5)], {}, lambda x: _log_softmax(x, 1)),
                        Case([R(3, 4)], {'axis': 0, 'temperature': 0.5}, lambda x: _log_softmax(x / 0.5, 0)),
                        Case([np.array([[1000.0, 0.0]])], {}, lambda x: np.array([[0.0, -1000.0]]), grad=False,
                             id='extreme')]
    C['softmax_cross_entropy'] = [Case([R(4, 5), I(5, 4)], {},
                                       lambda x, l: np.array([-_log_softmax(x, 1)[np.arange(4), l.astype(int)].sum()]))]
    return C


CASES = build()

# Ops that compute another op's gradient: checked through that op's numerical gradient check.
BACKWARD_OF = {'_backward_take': 'take', '_backward_pick': 'pick', '_backward_Convolution': 'Convolution',
               '_backward_Deconvolution': 'Deconvolution', '_backward_Pooling': 'Pooling',
               '_backward_BatchNorm': 'BatchNorm', '_backward_LayerNorm': 'LayerNorm'}


# ---------------------------------------------------------------- recurrent ops (graphc/ops/rnn.py)
def _sig(x):
    return 1 / (1 + np.exp(-x))


def rnn_naive(mode, L, D, H, x, w, h0, c0=None, clip=None, masks=None):
    """MXNet's fused RNN written step by step: (out, h_T, c_T). The flat vector holds every layer's and
    direction's (i2h, h2h) weights, then their (i2h, h2h) biases; masks[l] scales layer l's output (l < L-1)."""
    T, N, C = x.shape
    G = {'lstm': 4, 'gru': 3}.get(mode, 1)
    k, ws, size = 0, [], C
    for _ in range(L):
        for _ in range(D):
            ws.append([w[k:k + G * H * size].reshape(G * H, size), w[k + G * H * size:k + G * H * (size + H)].reshape(G * H, H)])
            k += G * H * (size + H)
        size = D * H
    for p in ws:
        p += [w[k:k + G * H], w[k + G * H:k + 2 * G * H]]
        k += 2 * G * H
    assert k == w.size
    seq, hT, cT = [x[t] for t in range(T)], [], []
    for l in range(L):
        outs = []
        for d in range(D):
            wi, wh, bi, bh = ws[l * D + d]
            h, c, res = h0[l * D + d], (c0[l * D + d] if c0 is not None else None), [None] * T
            for t in (range(T) if d == 0 else range(T - 1, -1, -1)):
                xi, hh = seq[t] @ wi.T + bi, h @ wh.T + bh
                if mode == 'lstm':
                    i, f, g, o = np.split(xi + hh, 4, axis=1)
                    c = _sig(f) * c + _sig(i) * np.tanh(g)
                    c = np.clip(c, *clip) if clip else c
                    h = _sig(o) * np.tanh(c)
                elif mode == 'gru':
                    (xr, xz, xn), (hr, hz, hn) = np.split(xi, 3, axis=1), np.split(hh, 3, axis=1)
                    r, z = _sig(xr + hr), _sig(xz + hz)
                    h = (1 - z) * np.tanh(xn + r * hn) + z * h
                else:
                    h = np.tanh(xi + hh) if mode == 'rnn_tanh' else np.maximum(xi + hh, 0)
                res[t] = h
            outs.append(res)
            hT.append(h)
            cT.append(c)
        seq = [np.concatenate([o[t] for o in outs], axis=1) for t in range(T)]
        if masks is not None and l < L - 1:
            seq = [s * m for s, m in zip(seq, masks[l])]
    return np.stack(seq), np.stack(hT), (np.stack(cT) if mode == 'lstm' else None)


def _rnn_case(mode, L, D, T, N, C, H, state_outputs=True, clip=None, p=0.0, train=False, seed=None, zero_batch=False,
              id=''):
    G = {'lstm': 4, 'gru': 3}.get(mode, 1)
    size = sum(D * G * H * (i + H + 2) for i in [C] + [D * H] * (L - 1))
    ns = 2 if mode == 'lstm' else 1
    states = [np.zeros((L * D, 0, H)) if zero_batch else R(L * D, N, H) * 0.5 for _ in range(ns)]
    attrs = {'state_size': H, 'num_layers': L, 'mode': mode, 'bidirectional': D == 2, 'state_outputs': state_outputs}
    if clip:
        attrs.update(lstm_state_clip_min=clip[0], lstm_state_clip_max=clip[1])
    if p:
        attrs['p'] = p

    def oracle(x, w, *st):
        st = [np.zeros((L * D, N, H)) if s.shape[1] == 0 else s for s in st]
        masks = None
        if p and train:  # the op draws one mask per inner layer output from graphc's seeded generator
            g = np.random.default_rng(seed)
            masks = [(g.random((T, N, D * H)) >= p) / (1 - p) for _ in range(L - 1)]
        out, h, c = rnn_naive(mode, L, D, H, x, w, st[0], st[1] if ns == 2 else None, clip, masks)
        return (out, h) + ((c,) if ns == 2 else ()) if state_outputs else out
    return Case([R(T, N, C), R(size) * 0.5] + states, attrs, oracle, train=train, seed=seed, id=id)


CASES['RNN'] = [
    _rnn_case('lstm', 1, 1, 3, 2, 3, 2, id='lstm'),
    _rnn_case('gru', 2, 2, 2, 2, 2, 2, id='gru-2layer-bidir'),
    _rnn_case('rnn_tanh', 1, 1, 3, 2, 2, 3, state_outputs=False, id='tanh-out-only'),
    _rnn_case('rnn_relu', 2, 1, 2, 3, 2, 2, id='relu-2layer'),
    _rnn_case('lstm', 1, 2, 3, 2, 2, 2, clip=(-0.3, 0.4), id='lstm-clip-bidir'),
    _rnn_case('lstm', 2, 2, 2, 2, 2, 2, p=0.5, train=True, seed=5, id='lstm-dropout-train'),
    _rnn_case('lstm', 2, 1, 2, 2, 2, 2, p=0.5, id='lstm-dropout-predict'),
    _rnn_case('gru', 1, 1, 2, 3, 2, 2, zero_batch=True, id='zeros-batch0-state'),
]
CASES['_rnn_param_concat'] = [Case([R(6), R(4), R(3)], {'dim': 0, 'num_args': 3}, lambda *xs: np.concatenate(xs)),
                              Case([R(2, 3), R(2, 2)], {'num_args': 2}, lambda a, b: np.hstack([a, b]))]
CASES['_zeros'] = [Case([], {'shape': (2, 0, 3)}, lambda: np.zeros((2, 0, 3)), grad=False),
                   Case([], {'shape': (3, 4)}, lambda: np.zeros((3, 4)), grad=False)]
BACKWARD_OF['_backward_RNN'] = 'RNN'


# ---------------------------------------------------------------- CTC loss and reshape_like (graphc/ops/ctc.py, reshape_like.py)
def ctc_brute(x, label, blank, data_lengths=None, label_lengths=None):
    """-log of the summed probability of every frame-wise path that collapses to the label (C**T paths)."""
    T, N, C = x.shape
    out = []
    for n in range(N):
        tn = int(data_lengths[n]) if data_lengths is not None else T
        lab = [int(v) for v in label[n]]
        pad = 0 if blank == 0 else -1
        ln = int(label_lengths[n]) if label_lengths is not None else (lab.index(pad) if pad in lab else len(lab))
        want = lab[:ln]
        p = np.exp(x[:tn, n]) / np.exp(x[:tn, n]).sum(axis=1, keepdims=True)
        total = 0.0
        for path in itertools.product(range(C), repeat=tn):
            col = [k for i, k in enumerate(path) if k != blank and (i == 0 or k != path[i - 1])]
            if col == want:
                total += np.prod([p[t, k] for t, k in enumerate(path)])
        out.append(-np.log(total))
    return np.array(out)


def _ctc_cases():
    return [Case([R(4, 2, 3), np.array([[1.0, 2.0], [2.0, 0.0]])], {},
                 lambda x, l: ctc_brute(x, l, 0), id='blank-first'),
            Case([R(4, 2, 3), np.array([[1.0, 1.0], [0.0, -1.0]])], {'blank_label': 'last'},
                 lambda x, l: ctc_brute(x, l, 2), id='blank-last-repeat'),
            Case([R(5, 2, 3), np.array([[1.0, 2.0], [2.0, 2.0]]), np.array([5.0, 3.0]), np.array([1.0, 2.0])],
                 {'use_data_lengths': True, 'use_label_lengths': True},
                 lambda x, l, dl, ll: ctc_brute(x, l, 0, dl, ll), id='lengths')]


CASES['CTCLoss'] = _ctc_cases()
CASES['ctc_loss'] = _ctc_cases()[:1]
CASES['reshape_like'] = [Case([R(2, 3), R(3, 2)], {}, lambda a, b: a.reshape(3, 2)),
                         Case([R(6), R(2, 3, 1)], {'rhs_end': 2}, lambda a, b: a.reshape(2, 3)),
                         Case([R(2, 6), R(3, 2)], {'lhs_begin': 1, 'rhs_begin': 0}, lambda a, b: a.reshape(2, 3, 2))]
# ---------------------------------------------------------------- random samplers: the same draws from the seeded stream
def _draws(seed, f, dtype=np.float32):
    return lambda *xs: np.asarray(f(np.random.default_rng(seed), *xs)).astype(dtype)


CASES['_random_uniform'] = [Case([], {'low': -2.0, 'high': 3.0, 'shape': (3, 4)}, _draws(7, lambda g: g.uniform(-2, 3, (3, 4))),
                                 seed=7, grad=False)]
CASES['_random_normal'] = [Case([], {'loc': 1.0, 'scale': 2.0, 'shape': (5,)}, _draws(7, lambda g: g.normal(1, 2, (5,))),
                                seed=7, grad=False)]
CASES['_random_gamma'] = [Case([], {'alpha': 2.0, 'beta': 0.5, 'shape': (2, 3)}, _draws(7, lambda g: g.gamma(2, 0.5, (2, 3))),
                               seed=7, grad=False)]
CASES['_random_exponential'] = [Case([], {'lam': 4.0, 'shape': (6,)}, _draws(7, lambda g: g.exponential(0.25, (6,))),
                                     seed=7, grad=False)]
CASES['_random_poisson'] = [Case([], {'lam': 3.0, 'shape': (6,)}, _draws(7, lambda g: g.poisson(3.0, (6,))),
                                 seed=7, grad=False)]
CASES['_random_negative_binomial'] = [Case([], {'k': 3, 'p': 0.4, 'shape': (6,)},
                                           _draws(7, lambda g: g.negative_binomial(3, 0.4, (6,))), seed=7, grad=False)]
CASES['_random_generalized_negative_binomial'] = [
    Case([], {'mu': 2.0, 'alpha': 0.5, 'shape': (6,)},
         _draws(7, lambda g: g.poisson(g.gamma(1 / 0.5, 0.5 * 2.0, (6,)))), seed=7, grad=False)]
CASES['_random_randint'] = [Case([], {'low': -3, 'high': 9, 'shape': (4, 2)},
                                 _draws(7, lambda g: g.integers(-3, 9, (4, 2)), np.int32), seed=7, grad=False)]
_pa, _pb = P(2, 3), P(2, 3)
CASES['_sample_uniform'] = [Case([_pa, _pa + _pb], {'shape': (4,)}, lambda lo, hi: np.random.default_rng(8).uniform(
    lo[..., None], hi[..., None], (2, 3, 4)), seed=8, grad=False)]
CASES['_sample_normal'] = [Case([_pa, _pb], {'shape': (2,)}, lambda mu, sd: np.random.default_rng(8).normal(
    mu[..., None], sd[..., None], (2, 3, 2)), seed=8, grad=False)]
CASES['_sample_gamma'] = [Case([_pa, _pb], {}, lambda a, b: np.random.default_rng(8).gamma(a, b, (2, 3)), seed=8, grad=False)]
CASES['_sample_exponential'] = [Case([_pa], {'shape': (3,)}, lambda lam: np.random.default_rng(8).exponential(
    1 / lam[..., None], (2, 3, 3)), seed=8, grad=False)]
CASES['_sample_poisson'] = [Case([_pa], {'shape': (3,)}, lambda lam: np.random.default_rng(8).poisson(
    np.broadcast_to(lam[..., None], (2, 3, 3)), (2, 3, 3)) * 1.0, seed=8, grad=False)]
CASES['_sample_negative_binomial'] = [Case([_pa * 2, _pb * 0.4], {}, lambda k, p: np.random.default_rng(8).negative_binomial(
    k, p, (2, 3)) * 1.0, seed=8, grad=False)]
CASES['_sample_generalized_negative_binomial'] = [Case([_pa, _pb], {}, lambda mu, al: (lambda g: g.poisson(
    g.gamma(1 / al, al * mu, (2, 3))))(np.random.default_rng(8)) * 1.0, seed=8, grad=False)]

_like_x = R(2, 3).astype(np.float64)  # the samples take data's shape and dtype
for _k, _at, _f in (('uniform', {'low': -2.0, 'high': 3.0}, lambda g, s: g.uniform(-2, 3, s)),
                    ('normal', {'loc': 1.0, 'scale': 2.0}, lambda g, s: g.normal(1, 2, s)),
                    ('gamma', {'alpha': 2.0, 'beta': 0.5}, lambda g, s: g.gamma(2, 0.5, s)),
                    ('exponential', {'lam': 4.0}, lambda g, s: g.exponential(0.25, s)),
                    ('poisson', {'lam': 3.0}, lambda g, s: g.poisson(3.0, s)),
                    ('negative_binomial', {'k': 3, 'p': 0.4}, lambda g, s: g.negative_binomial(3, 0.4, s)),
                    ('generalized_negative_binomial', {'mu': 2.0, 'alpha': 0.5},
                     lambda g, s: g.poisson(g.gamma(2.0, 1.0, s)))):
    CASES[f'_random_{_k}_like'] = [Case([_like_x], _at, (lambda f: lambda x: f(np.random.default_rng(7), x.shape).astype(
        x.dtype))(_f), seed=7, grad=False)]


def _unique_zipfian_oracle(seed, rmax, b, n):
    def f():
        g, out, trials = np.random.default_rng(seed), [], []
        for _ in range(b):
            got, t = np.zeros(0, np.int64), 0
            while got.size < n:
                m = max(2 * (n - got.size), 64)
                d = (np.exp(g.uniform(0, np.log(rmax + 1.0), m)) - 1).astype(np.int64) % rmax
                cat = np.concatenate([got, d])
                _, first = np.unique(cat, return_index=True)
                keep = np.sort(first)[:n]
                t += m if keep.size < n else keep[-1] + 1 - got.size
                got = cat[keep]
            out.append(got)
            trials.append(t)
        return np.array(out, np.int64), np.array(trials, np.int64)
    return f


CASES['_sample_unique_zipfian'] = [Case([], {'range_max': 50, 'shape': (3, 20)}, _unique_zipfian_oracle(5, 50, 3, 20),
                                        seed=5, grad=False)]


def _multinomial_oracle(seed, n):
    def f(p):
        g = np.random.default_rng(seed)
        cdf = np.cumsum(p, axis=1)
        u = g.uniform(size=(p.shape[0], n)) * cdf[:, -1:]
        idx = np.array([[int((c <= v).sum()) for v in row] for c, row in zip(cdf, u)])
        return idx.astype(np.float32), np.log(np.take_along_axis(p, idx, 1))
    return f


_probs = np.array([[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]])
CASES['_sample_multinomial'] = [Case([_probs], {'shape': (5,), 'get_prob': True, 'dtype': 'float32'}, _multinomial_oracle(9, 5), seed=9),
                               Case([_probs], {'shape': (2,), 'dtype': 'float32'}, lambda p: _multinomial_oracle(9, 2)(p)[0],
                                    seed=9, grad=False, id='no-prob')]
BACKWARD_OF['_backward_sample_multinomial'] = '_sample_multinomial'
CASES['_shuffle'] = [Case([R(5, 2)], {}, lambda x: x[np.random.default_rng(4).permutation(5)], seed=4, grad=False)]


# ---------------------------------------------------------------- MXNet's other elementwise math (graphc/ops/math.py)
def U(lo, hi):
    return lambda *s: np.asarray(rng.uniform(lo, hi, size=s))


for _name, (_f, _mk) in {
        'tan': (np.tan, U(-1.2, 1.2)), 'arcsin': (np.arcsin, U(-0.9, 0.9)), 'arccos': (np.arccos, U(-0.9, 0.9)),
        'arctan': (np.arctan, R), 'sinh': (np.sinh, R), 'cosh': (np.cosh, R), 'arcsinh': (np.arcsinh, R),
        'arccosh': (np.arccosh, U(1.2, 3)), 'arctanh': (np.arctanh, U(-0.9, 0.9)),
        'log10': (lambda x: np.log(x) / np.log(10), P), 'log2': (lambda x: np.log(x) / np.log(2), P),
        'cbrt': (lambda x: np.sign(x) * np.abs(x) ** (1 / 3), P), 'rcbrt': (lambda x: x ** (-1 / 3), P),
        'degrees': (lambda x: x * 180 / np.pi, R), 'radians': (lambda x: x * np.pi / 180, R),
        'rint': (np.rint, lambda *s: np.asarray(R(*s) * 3 + 0.25)), 'fix': (np.fix, lambda *s: np.asarray(R(*s) * 3)),
        'trunc': (np.trunc, lambda *s: np.asarray(R(*s) * 3)),
        'logical_not': (lambda x: (x == 0) * 1.0, lambda *s: I(2, *s))}.items():
    CASES[_name] = [Case([_mk(*s)], {}, _f, id=str(s)) for s in UNARY_SHAPES]
CASES['softmin'] = [Case([R(3, 5)], {}, lambda x: np.exp(-x) / np.exp(-x).sum(1, keepdims=True)),
                    Case([R(2, 3, 4)], {'axis': 1, 'temperature': 2.0},
                         lambda x: np.exp(-x / 2) / np.exp(-x / 2).sum(1, keepdims=True))]
CASES['nansum'] = [Case([R(3, 4)], {'axis': 1}, lambda x: x.sum(1)),
                   Case([np.array([[1.0, np.nan], [2.0, 3.0]])], {}, lambda x: np.array([6.0]), grad=False)]
CASES['nanprod'] = [Case([P(3, 4)], {'axis': 0}, lambda x: x.prod(0)),
                    Case([np.array([[1.5, np.nan], [2.0, 3.0]])], {'axis': 1}, lambda x: np.array([1.5, 6.0]), grad=False)]


# ---------------------------------------------------------------- sorting (graphc/ops/sort.py): distinct values, so ties do not matter
def D(*shape):  # distinct values in random order
    n = int(np.prod(shape))
    return np.asarray(rng.permutation(n).reshape(shape) * 0.5 - n / 4.0)


CASES['sort'] = [Case([D(3, 4)], {}, lambda x: np.array([sorted(r) for r in x])),
                 Case([D(3, 4)], {'axis': 0, 'is_ascend': False}, lambda x: np.array([sorted(c)[::-1] for c in x.T]).T)]
CASES['argsort'] = [Case([D(3, 4)], {}, lambda x: np.array([[list(r).index(v) for v in sorted(r)] for r in x]) * 1.0),
                    Case([D(3, 4)], {'axis': 0, 'is_ascend': False},
                         lambda x: np.array([[list(c).index(v) for v in sorted(c)[::-1]] for c in x.T]).T * 1.0)]
CASES['topk'] = [Case([D(3, 5)], {'k': 2, 'ret_typ': 'value'}, lambda x: np.array([sorted(r)[::-1][:2] for r in x])),
                 Case([D(3, 5)], {'k': 2}, lambda x: np.array([[list(r).index(v) for v in sorted(r)[::-1][:2]] for r in x]) * 1.0,
                      grad=False),
                 Case([D(4, 3)], {'k': 1, 'axis': 0, 'ret_typ': 'both', 'is_ascend': True},
                      lambda x: (x.min(0, keepdims=True), x.argmin(0)[None] * 1.0)),
                 Case([D(2, 4)], {'k': 3, 'ret_typ': 'mask'},
                      lambda x: (x >= np.sort(x, 1)[:, 1:2]) * 1.0, grad=False)]
BACKWARD_OF['_backward_sort'] = 'sort'
BACKWARD_OF['_backward_topk'] = 'topk'


# ---------------------------------------------------------------- loss heads and gradient control (graphc/ops/output.py)
def _sig(x):
    return 1 / (1 + np.exp(-x))


CASES['BlockGrad'] = [Case([R(3, 4)], {}, lambda x: x)]
CASES['MakeLoss'] = [Case([P(3, 4)], {'grad_scale': 2.0, 'normalization': 'batch'}, lambda x: x)]
CASES['make_loss'] = [Case([R(3, 4)], {}, lambda x: x)]
CASES['LinearRegressionOutput'] = [Case([R(4, 3), R(4, 3)], {}, lambda x, t: x)]
CASES['MAERegressionOutput'] = [Case([R(4, 1), R(4)], {'grad_scale': 0.5}, lambda x, t: x)]
CASES['LogisticRegressionOutput'] = [Case([R(4, 2), P(4, 2) * 0.3], {}, lambda x, t: _sig(x))]
CASES['SoftmaxOutput'] = [Case([R(4, 5), I(5, 4)], {}, lambda x, t: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
                          Case([R(2, 3, 4), I(3, 2, 4)], {'multi_output': True},
                               lambda x, t: np.exp(x) / np.exp(x).sum(1, keepdims=True))]


def _smo_grad_oracle(y, t, scale=1.0, ignore=None):
    g = y.copy()
    g[np.arange(len(t)), t.astype(int)] -= 1
    if ignore is not None:
        g[t == ignore] = 0
    return g * scale


_y = np.exp(R(4, 5))
_y = _y / _y.sum(1, keepdims=True)
CASES['_backward_SoftmaxOutput'] = [
    Case([_y, np.array([0.0, 3.0, 4.0, 1.0])], {}, lambda y, t: _smo_grad_oracle(y, t), grad=False),
    Case([_y, np.array([0.0, 3.0, 4.0, 1.0])], {'use_ignore': True, 'ignore_label': 3.0, 'normalization': 'valid'},
         lambda y, t: _smo_grad_oracle(y, t, 1 / 3, 3.0), grad=False)]
_ym = np.exp(R(2, 3, 2, 2))
_ym = _ym / _ym.sum(1, keepdims=True)
_tm = I(3, 2, 2, 2)
# multi_output: (softmax - one_hot) per position, scaled by grad_scale / (H * W) unless normalization is 'valid'
CASES['_backward_SoftmaxOutput'].append(Case(
    [_ym, _tm], {'multi_output': True, 'grad_scale': 2.0},
    lambda y, t: (y - np.stack([(t == c) * 1.0 for c in range(3)], 1)) * 2.0 / 4, grad=False, id='multi_output'))
CASES['smooth_l1'] = [Case([R(3, 4) * 2], {'scalar': 1.5},
                           lambda x: np.where(abs(x) < 1 / 2.25, 0.5 * 2.25 * x * x, abs(x) - 0.5 / 2.25))]


# ---------------------------------------------------------------- gathers (graphc/ops/index.py)
CASES['reverse'] = [Case([R(3, 4)], {'axis': 1}, lambda x: x[:, ::-1]),
                    Case([R(2, 3, 4)], {'axis': (0, 2)}, lambda x: x[::-1, :, ::-1])]
CASES['batch_take'] = [Case([R(4, 3), I(3, 4)], {}, lambda a, i: np.array([a[k, int(i[k])] for k in range(4)]))]


# ---------------------------------------------------------------- linalg (graphc/ops/linalg.py): textbook formulas
def _spd(n, *batch):
    B = R(*batch, n, n)
    return np.matmul(B, np.swapaxes(B, -1, -2)) + n * np.eye(n)


def _lower(n, *batch):  # well-conditioned lower-triangular
    return np.tril(R(*batch, n, n) * 0.3) + 2 * np.eye(n)


_tT = lambda x: np.swapaxes(x, -1, -2)  # noqa: E731
CASES['_linalg_gemm2'] = [Case([R(3, 4), R(4, 2)], {}, lambda a, b: np.einsum('ik,kj->ij', a, b)),
                          Case([R(2, 4, 3), R(2, 2, 4)], {'transpose_a': True, 'transpose_b': True, 'alpha': 0.5},
                               lambda a, b: 0.5 * np.einsum('bki,bjk->bij', a, b)),
                          Case([R(3, 4), R(2, 4)], {'transpose_b': True}, lambda a, b: np.einsum('ik,jk->ij', a, b)),
                          Case([R(4, 3), R(4, 2)], {'transpose_a': True}, lambda a, b: np.einsum('ki,kj->ij', a, b))]
CASES['_linalg_gemm'] = [Case([R(3, 4), R(4, 2), R(3, 2)], {'alpha': 2.0, 'beta': -0.5},
                              lambda a, b, c: 2 * np.einsum('ik,kj->ij', a, b) - 0.5 * c)]
CASES['_linalg_syrk'] = [Case([R(3, 4)], {'alpha': 1.5}, lambda a: 1.5 * np.einsum('ik,jk->ij', a, a)),
                         Case([R(2, 3, 4)], {'transpose': True}, lambda a: np.einsum('bki,bkj->bij', a, a))]
CASES['_linalg_trmm'] = [Case([_lower(3), R(3, 2)], {}, lambda A, B: np.tril(A) @ B),
                         Case([_lower(3), R(2, 3)], {'rightside': True, 'transpose': True, 'alpha': 2.0},
                              lambda A, B: 2 * B @ np.tril(A).T)]
CASES['_linalg_trsm'] = [Case([_lower(3), R(3, 2)], {}, lambda A, B: np.linalg.inv(np.tril(A)) @ B),
                         Case([_lower(3), R(2, 3)], {'rightside': True, 'transpose': True, 'alpha': 0.5},
                              lambda A, B: 0.5 * B @ np.linalg.inv(np.tril(A).T))]
CASES['_linalg_potrf'] = [Case([_spd(3)], {}, lambda A: np.linalg.cholesky(A)),
                          Case([_spd(2, 2)], {}, lambda A: np.linalg.cholesky(A))]
CASES['_linalg_potri'] = [Case([_lower(3)], {}, lambda L: np.linalg.inv(np.tril(L) @ np.tril(L).T))]
CASES['_linalg_inverse'] = [Case([_spd(3)], {}, lambda A: np.linalg.inv(A)),
                            Case([_spd(2, 2)], {}, lambda A: np.linalg.inv(A))]
CASES['_linalg_det'] = [Case([_spd(3)], {}, lambda A: np.array([np.linalg.det(A)])),
                        Case([R(2, 3, 3)], {}, lambda A: np.linalg.det(A))]
CASES['_linalg_slogdet'] = [Case([R(2, 3, 3)], {}, lambda A: (np.sign(np.linalg.det(A)), np.log(abs(np.linalg.det(A)))))]
CASES['_linalg_sumlogdiag'] = [Case([_spd(3)], {}, lambda A: np.array([np.log(np.diag(A)).sum()]))]
CASES['_linalg_extractdiag'] = [Case([R(3, 3)], {}, lambda A: np.diag(A).copy()),
                                Case([R(2, 3, 3)], {'offset': 1}, lambda A: np.stack([np.diag(a, 1) for a in A]))]
CASES['_linalg_makediag'] = [Case([R(3)], {}, lambda a: np.diag(a)),
                             Case([R(2, 2)], {'offset': -1}, lambda a: np.stack([np.diag(v, -1) for v in a]))]
for _bw in ('syrk', 'trmm', 'trsm', 'potrf', 'potri', 'det', 'slogdet', 'sumlogdiag'):
    BACKWARD_OF['_backward_linalg_' + _bw] = '_linalg_' + _bw


# mx.np.linalg's ops (_npi_*): LAPACK's results (their vectors' signs are LAPACK's); the gradient checks are the test
def _real_eig(n, *batch):  # P D P^-1: real, distinct eigenvalues
    P = np.eye(n) + 0.2 * R(*batch, n, n)
    return P @ (np.arange(1, n + 1) * 1.5 * np.eye(n)) @ np.linalg.inv(P)


def _thin_svd(A):
    return tuple(np.linalg.svd(A, full_matrices=False))


CASES['_npi_svd'] = [Case([R(3, 4)], {}, _thin_svd), Case([R(2, 2, 3)], {}, _thin_svd), Case([R(3, 3)], {}, _thin_svd)]
CASES['_npi_eigh'] = [Case([R(3, 3)], {}, lambda A: np.linalg.eigh(np.tril(A) + np.tril(A, -1).T)),
                      Case([R(2, 3, 3)], {'UPLO': 'U'}, lambda A: np.linalg.eigh(np.triu(A) + _tT(np.triu(A, 1)), 'U'))]
CASES['_npi_eigvalsh'] = [Case([R(2, 3, 3)], {}, lambda A: np.linalg.eigvalsh(np.tril(A) + _tT(np.tril(A, -1)))),
                          Case([R(3, 3)], {'UPLO': 'U'}, lambda A: np.linalg.eigvalsh(np.triu(A) + np.triu(A, 1).T))]
CASES['_npi_eig'] = [Case([_real_eig(3)], {}, lambda A: tuple(v.real for v in np.linalg.eig(A))),
                     Case([_real_eig(3, 2)], {}, lambda A: tuple(v.real for v in np.linalg.eig(A)))]
CASES['_npi_eigvals'] = [Case([_real_eig(3, 2)], {}, lambda A: np.linalg.eig(A)[0].real)]
CASES['_npi_cholesky'] = [Case([_spd(3)], {}, lambda A: np.linalg.cholesky(A)),
                          Case([_spd(3, 2)], {}, lambda A: np.linalg.cholesky(A))]
CASES['_npi_solve'] = [Case([_spd(3), R(3, 2)], {}, lambda A, B: np.linalg.inv(A) @ B),
                       Case([_spd(3, 2), R(2, 3)], {}, lambda A, b: np.einsum('bij,bj->bi', np.linalg.inv(A), b)),
                       Case([_spd(2, 2), R(2, 2, 1)], {}, lambda A, B: np.linalg.inv(A) @ B)]
CASES['_npi_pinv'] = [Case([R(3, 4), np.array(1e-6)], {}, lambda A, r: A.T @ np.linalg.inv(A @ A.T)),
                      Case([R(2, 4, 3), np.full(2, 1e-6)], {}, lambda A, r: np.linalg.inv(_tT(A) @ A) @ _tT(A))]
CASES['_npi_pinv_scalar_rcond'] = [Case([R(4, 3)], {'rcond': 1e-9}, lambda A: np.linalg.inv(A.T @ A) @ A.T),
                                   Case([_spd(3)], {'hermitian': True}, lambda A: np.linalg.inv(A))]
CASES['_npi_qr'] = [Case([R(4, 3)], {}, lambda A: tuple(np.linalg.qr(A))), Case([R(3, 5)], {}, lambda A: tuple(np.linalg.qr(A))),
                    Case([R(2, 3, 3)], {}, lambda A: tuple(np.linalg.qr(A)))]
_rank2 = R(4, 2) @ R(2, 3)  # rank 2
CASES['_npi_matrix_rank_none_tol'] = [Case([np.stack([_rank2, R(4, 3)])], {}, lambda M: np.array([2, 3]), grad=False),
                                      Case([R(3)], {}, lambda v: np.array(1), grad=False),
                                      Case([_rank2], {'tol': 1e3}, lambda M: np.array(0), grad=False)]
CASES['_npi_matrix_rank'] = [Case([np.stack([_rank2, R(4, 3)]), np.array([1e-6, 1e3])], {}, lambda M, t: np.array([2, 0]),
                                  grad=False)]
for _bw in ('svd', 'eigh', 'eigvalsh', 'eig', 'eigvals', 'cholesky', 'solve', 'qr'):
    BACKWARD_OF['_backward_npi_' + _bw] = '_npi_' + _bw
BACKWARD_OF['_backward_npi_pinv'] = '_npi_pinv'


# mx.np's array functions (graphc/ops/np_array.py): slices and concatenations as oracles
_X34 = R(3, 4)
CASES['_npi_pad'] = [
    Case([_X34], {'pad_width': (1, 2, 0, 1), 'constant_values': 1.5},
         lambda x: np.concatenate([np.full((1, 5), 1.5), np.concatenate([x, np.full((3, 1), 1.5)], 1),
                                   np.full((2, 5), 1.5)])),
    Case([_X34], {'pad_width': (0, 0, 2, 1), 'mode': 'reflect'},
         lambda x: np.concatenate([x[:, 2:0:-1], x, x[:, 2:1:-1]], 1)),
    Case([_X34], {'pad_width': (0, 0, 2, 1), 'mode': 'symmetric'},
         lambda x: np.concatenate([x[:, 1::-1], x, x[:, 3:]], 1)),
    Case([_X34], {'pad_width': (2, 1, 0, 0), 'mode': 'edge'}, lambda x: np.concatenate([x[:1], x[:1], x, x[2:]])),
    Case([_X34], {'pad_width': (0, 0, 1, 1), 'mode': 'maximum'},
         lambda x: np.concatenate([x.max(1, keepdims=True), x, x.max(1, keepdims=True)], 1), grad=False)]
CASES['_npi_insert'] = [
    Case([_X34, R(2, 4)], {'axis': 0, 'indices': (1, 3)},
         lambda x, v: np.concatenate([x[:1], v[:1], x[1:3], v[1:], x[3:]])),
    Case([_X34, R(3)], {'axis': 1, 'int_ind': -1}, lambda x, v: np.concatenate([x[:, :3], v[:, None], x[:, 3:]], 1)),
    Case([_X34, R(1)], {'int_ind': 2}, lambda x, v: np.concatenate([x.ravel()[:2], v, x.ravel()[2:]])),
    Case([_X34, R(3, 1)], {'axis': 1, 'slice_ind': (0, 4, 2)},
         lambda x, v: np.concatenate([v, x[:, :2], v, x[:, 2:]], 1))]
CASES['_npi_delete'] = [Case([_X34], {'axis': 1, 'indices': (0, 2, 7, -1)}, lambda x: x[:, [1, 3]]),
                        Case([_X34], {'axis': 0, 'int_ind': -1}, lambda x: x[:2]),
                        Case([_X34], {'slice_ind': (None, None, 3)}, lambda x: np.delete(x.ravel(), [0, 3, 6, 9]))]
_ein = {'subscripts': 'ij,jk->ik', 'num_args': 2}
CASES['_npi_einsum'] = [
    Case([R(3, 4), R(4, 2)], _ein, lambda a, b: a @ b),
    Case([R(3, 3)], {'subscripts': 'ii->i', 'num_args': 1}, lambda a: np.diag(a).copy()),
    Case([R(3, 3)], {'subscripts': 'ii', 'num_args': 1}, lambda a: np.array(np.trace(a))),
    Case([R(1, 4), R(2, 4)], {'subscripts': 'ij, ij -> i', 'num_args': 2}, lambda a, b: (a * b).sum(1)),
    Case([R(2, 3, 4), R(4)], {'subscripts': '...j,j', 'num_args': 2, 'optimize': 1}, lambda a, b: a @ b),
    Case([R(2), R(3)], {'subscripts': 'i,j', 'num_args': 2}, lambda a, b: a[:, None] * b[None, :]),
    Case([R(2, 3), R(3, 4), R(4, 2)], {'subscripts': 'ij,jk,kl->il', 'num_args': 3}, lambda a, b, c: a @ b @ c),
    Case([R(2, 3), R(4)], {'subscripts': 'ij,k->jk', 'num_args': 2}, lambda a, b: a.sum(0)[:, None] * b[None, :])]


def _pct_linear(x, q, axis):  # sorted values, linear between the two neighbours of q / 100 * (n - 1)
    s = np.sort(x, axis)
    pos = q / 100 * (x.shape[axis] - 1)
    lo, t = int(np.floor(pos)), pos - np.floor(pos)
    take = lambda i: np.take(s, min(i, x.shape[axis] - 1), axis)  # noqa: E731
    return take(lo) * (1 - t) + take(lo + 1) * t


CASES['_npi_percentile'] = [
    Case([R(3, 5)], {'axis': 1, 'q_scalar': 30.0}, lambda x: _pct_linear(x, 30.0, 1)),
    Case([R(3, 5), np.array([10.0, 75.0])], {'axis': 0, 'keepdims': True},
         lambda x, q: np.stack([_pct_linear(x, v, 0)[None] for v in q])),
    Case([R(2, 7)], {'axis': -1, 'q_scalar': 50.0, 'interpolation': 'lower'}, lambda x: np.sort(x, -1)[:, 3]),
    Case([R(2, 3, 4)], {'axis': (0, 2), 'q_scalar': 40.0, 'interpolation': 'midpoint'},  # (2.8 of 7: between 2 and 3)
         lambda x: np.sort(np.moveaxis(x, 1, 0).reshape(3, 8), 1)[:, 2:4].mean(1)),
    Case([R(4, 3)], {'axis': 0, 'q_scalar': 60.0, 'interpolation': 'nearest'}, lambda x: np.sort(x, 0)[2])]
_I1, _I2 = I(20, 3, 4) - 10, I(20, 4) - 7
for _k, _f in (('lcm', np.lcm), ('bitwise_and', np.bitwise_and), ('bitwise_or', np.bitwise_or),
               ('bitwise_xor', np.bitwise_xor)):
    CASES['_npi_' + _k] = [Case([_I1, _I2], {}, lambda a, b, f=_f: f(a.astype(int), b.astype(int)).astype(float))]
CASES['_npi_copysign'] = [Case([R(3, 4), R(4)], {}, lambda a, b: abs(a) * np.where(b < 0, -1.0, 1.0))]
CASES['_npi_arctan2'] = [Case([R(3, 4), R(3, 1)], {}, lambda a, b: np.angle(b + 1j * a))]
CASES['_npi_ldexp'] = [Case([R(3, 4), R(4)], {}, lambda a, b: a * np.exp(b * np.log(2.0)))]
CASES['_np_roll'] = [Case([_X34], {'shift': (1,), 'axis': (1,)}, lambda x: np.concatenate([x[:, 3:], x[:, :3]], 1)),
                     Case([_X34], {'shift': (5,)}, lambda x: np.concatenate([x.ravel()[7:], x.ravel()[:7]]).reshape(3, 4)),
                     Case([_X34], {'shift': (-1, 2), 'axis': (0, 1)},
                          lambda x: np.concatenate([x[1:], x[:1]])[:, [2, 3, 0, 1]])]
for _bw in ('pad', 'insert', 'delete', 'einsum', 'percentile'):
    BACKWARD_OF['_backward_npi_' + _bw] = '_npi_' + _bw


# ---------------------------------------------------------------- sequences (graphc/ops/sequence.py)
def _seq_mask(x, L, value=0.0, axis=0):
    out = x.copy()
    for n, ln in enumerate(L.astype(int)):
        if axis == 0:
            out[ln:, n] = value
        else:
            out[n, ln:] = value
    return out


_lens = np.array([2.0, 4.0, 1.0])
CASES['SequenceMask'] = [Case([R(4, 3, 2), _lens], {'use_sequence_length': True, 'value': -1.0},
                              lambda x, L: _seq_mask(x, L, -1.0)),
                         Case([R(3, 4), _lens], {'use_sequence_length': True, 'axis': 1}, lambda x, L: _seq_mask(x, L, 0.0, 1)),
                         Case([R(4, 3)], {}, lambda x: x)]
CASES['SequenceLast'] = [Case([R(4, 3, 2), _lens], {'use_sequence_length': True},
                              lambda x, L: np.stack([x[int(ln) - 1, n] for n, ln in enumerate(L)])),
                         Case([R(3, 4), _lens], {'use_sequence_length': True, 'axis': 1},
                              lambda x, L: np.array([x[n, int(ln) - 1] for n, ln in enumerate(L)])),
                         Case([R(4, 3)], {}, lambda x: x[-1])]
CASES['SequenceReverse'] = [Case([R(4, 3, 2), _lens], {'use_sequence_length': True},
                                 lambda x, L: np.stack([np.concatenate([x[:int(ln), n][::-1], x[int(ln):, n]])
                                                        for n, ln in enumerate(L)], 1)),
                            Case([R(4, 3)], {}, lambda x: x[::-1])]
BACKWARD_OF['_backward_SequenceLast'] = 'SequenceLast'


# ---------------------------------------------------------------- layout (graphc/ops/layout.py)
CASES['broadcast_like'] = [Case([R(3, 1), R(3, 4)], {}, lambda x, y: np.broadcast_to(x, (3, 4))),
                           Case([R(1, 2), R(5, 3)], {'lhs_axes': (0,), 'rhs_axes': (1,)}, lambda x, y: np.broadcast_to(x, (3, 2)))]
CASES['broadcast_axes'] = [Case([R(1, 3, 1)], {'axis': (0, 2), 'size': (2, 4)}, lambda x: np.broadcast_to(x, (2, 3, 4)))]
CASES['shape_array'] = [Case([R(2, 3, 4)], {}, lambda x: np.array([2, 3, 4]), grad=False)]
CASES['size_array'] = [Case([R(2, 3, 4)], {}, lambda x: np.array([24]), grad=False)]
CASES['argmax_channel'] = [Case([D(3, 4)], {}, lambda x: np.array([list(r).index(max(r)) for r in x]) * 1.0, grad=False)]
CASES['slice_like'] = [Case([R(4, 5), R(2, 3)], {}, lambda x, y: x[:2, :3]),
                       Case([R(4, 5, 2), R(3, 3)], {'axes': (0,)}, lambda x, y: x[:3])]
CASES['diag'] = [Case([R(3)], {}, lambda x: np.diag(x)), Case([R(3)], {'k': -1}, lambda x: np.diag(x, -1)),
                 Case([R(3, 4)], {'k': 1}, lambda x: np.array([x[i, i + 1] for i in range(3)])),
                 Case([R(2, 3, 3)], {'axis1': 1, 'axis2': 2}, lambda x: np.stack([np.diag(m) for m in x]))]
CASES['cumsum'] = [Case([R(3, 4)], {'axis': 1}, lambda x: np.stack([[x[i, :j + 1].sum() for j in range(4)] for i in range(3)])),
                   Case([R(2, 3)], {}, lambda x: np.array([x.ravel()[:j + 1].sum() for j in range(6)]))]


def _d2s(x, b):
    n, c, h, w = x.shape
    out = np.zeros((n, c // (b * b), h * b, w * b))
    for i in range(b):
        for j in range(b):
            out[:, :, i::b, j::b] = x[:, (i * b + j) * (c // (b * b)):(i * b + j + 1) * (c // (b * b))]
    return out


CASES['depth_to_space'] = [Case([R(1, 8, 2, 3)], {'block_size': 2}, lambda x: _d2s(x, 2))]
CASES['space_to_depth'] = [Case([R(1, 2, 4, 6)], {'block_size': 2}, lambda x: _s2d(x, 2))]


def _s2d(x, b):
    n, c, h, w = x.shape
    out = np.zeros((n, c * b * b, h // b, w // b))
    for i in range(b):
        for j in range(b):
            out[:, (i * b + j) * c:(i * b + j + 1) * c] = x[:, :, i::b, j::b]
    return out


_gi = np.array([[0.0, 2.0, 1.0], [1.0, 0.0, 3.0]])
CASES['gather_nd'] = [Case([R(3, 4), _gi], {}, lambda x, i: np.array([x[int(a), int(b)] for a, b in i.T])),
                      Case([R(3, 4, 2), _gi[:1]], {}, lambda x, i: x[i[0].astype(int)])]
CASES['scatter_nd'] = [Case([R(3), _gi], {'shape': (3, 4)}, lambda d, i: _scatter(d, i, (3, 4)))]
CASES['_backward_gather_nd'] = [Case([R(4), np.array([[0.0, 0.0, 2.0, 0.0], [1.0, 1.0, 3.0, 1.0]])], {'shape': (3, 4)},
                                     lambda d, i: _scatter(d, i, (3, 4), add=True))]


def _scatter(d, i, shape, add=False):
    out = np.zeros(shape)
    for v, a, b in zip(d, i[0].astype(int), i[1].astype(int)):
        out[a, b] = out[a, b] + v if add else v
    return out


CASES['khatri_rao'] = [Case([R(2, 3), R(4, 3)], {}, lambda a, b: np.stack([np.kron(a[:, k], b[:, k]) for k in range(3)], 1)),
                       Case([R(2, 2), R(3, 2), R(2, 2)], {},
                            lambda a, b, c: np.stack([np.kron(np.kron(a[:, k], b[:, k]), c[:, k]) for k in range(2)], 1))]
BACKWARD_OF['_backward_slice_like'] = 'slice_like'
BACKWARD_OF['_backward_diag'] = 'diag'
BACKWARD_OF['_backward_khatri_rao'] = 'khatri_rao'


# ---------------------------------------------------------------- spatial (graphc/ops/spatial.py)
def _lrn_naive(x, alpha, beta, knorm, n):
    out = np.zeros_like(x)
    C = x.shape[1]
    for c in range(C):
        lo, hi = max(0, c - n // 2), min(C, c + n // 2 + 1)
        out[:, c] = x[:, c] / (knorm + alpha / n * (x[:, lo:hi] ** 2).sum(1)) ** beta
    return out


def _bilinear_naive(x, h, w):  # align_corners=True
    n, c, H, W = x.shape
    out = np.zeros((n, c, h, w))
    for i in range(h):
        for j in range(w):
            sy, sx = i * (H - 1) / max(h - 1, 1), j * (W - 1) / max(w - 1, 1)
            y0, x0 = int(sy), int(sx)
            y1, x1 = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
            ty, tx = sy - y0, sx - x0
            out[:, :, i, j] = (x[:, :, y0, x0] * (1 - ty) * (1 - tx) + x[:, :, y0, x1] * (1 - ty) * tx +
                               x[:, :, y1, x0] * ty * (1 - tx) + x[:, :, y1, x1] * ty * tx)
    return out


CASES['L2Normalization'] = [
    Case([R(2, 3, 4)], {}, lambda x: x / np.sqrt((x ** 2).sum((1, 2), keepdims=True) + 1e-10)),
    Case([R(2, 3, 2, 2)], {'mode': 'channel'}, lambda x: x / np.sqrt((x ** 2).sum(1, keepdims=True) + 1e-10)),
    Case([R(2, 3, 2, 2)], {'mode': 'spatial', 'eps': 0.1}, lambda x: x / np.sqrt((x ** 2).sum((2, 3), keepdims=True) + 0.1))]
CASES['LRN'] = [Case([R(2, 5, 2, 2)], {'nsize': 3, 'alpha': 0.1}, lambda x: _lrn_naive(x, 0.1, 0.75, 2.0, 3))]
CASES['UpSampling'] = [Case([R(1, 2, 2, 3)], {'scale': 2, 'sample_type': 'nearest'},
                            lambda x: x.repeat(2, 2).repeat(2, 3)),
                       Case([R(1, 2, 2, 2), R(1, 1, 4, 4)], {'scale': 2, 'sample_type': 'nearest', 'num_args': 2},
                            lambda a, b: np.concatenate([a.repeat(2, 2).repeat(2, 3), b], 1)),
                       # bilinear: a per-channel transposed convolution, kernel 2s - s%2, stride s, pad s//2
                       Case([R(1, 2, 3, 3), R(2, 1, 4, 4)], {'scale': 2, 'sample_type': 'bilinear', 'num_filter': 2,
                                                              'num_args': 2},
                            lambda x, w: deconv_naive(x, w, None, (2, 2), (1, 1), (0, 0), groups=2), id='bilinear'),
                       Case([R(1, 1, 2, 2), R(1, 1, 5, 5)], {'scale': 3, 'sample_type': 'bilinear', 'num_filter': 1,
                                                              'num_args': 2},
                            lambda x, w: deconv_naive(x, w, None, (3, 3), (1, 1), (0, 0)), id='bilinear3')]
CASES['_contrib_BilinearResize2D'] = [Case([R(1, 2, 3, 4)], {'height': 5, 'width': 3}, lambda x: _bilinear_naive(x, 5, 3)),
                                      Case([R(1, 1, 2, 2)], {'scale_height': 2.0, 'scale_width': 2.0},
                                           lambda x: _bilinear_naive(x, 4, 4))]
CASES['Crop'] = [Case([R(1, 2, 5, 6)], {'h_w': (3, 2), 'offset': (1, 2)}, lambda x: x[:, :, 1:4, 2:4]),
                 Case([R(1, 2, 5, 6), R(1, 1, 3, 4)], {'center_crop': True, 'num_args': 2}, lambda x, y: x[:, :, 1:4, 1:5])]
BACKWARD_OF['_backward_LRN'] = 'LRN'
BACKWARD_OF['_backward_UpSampling'] = 'UpSampling'
BACKWARD_OF['_backward_BilinearResize2D'] = '_contrib_BilinearResize2D'
BACKWARD_OF['_backward_Crop'] = 'Crop'
# ---------------------------------------------------------------- 1-d/3-d and channels-last conv and pooling, norms, Pad
def conv3d_naive(x, w, stride=(1, 1, 1), pad=(0, 0, 0), groups=1):
    """A 3-d convolution as a sum over depth taps of 2-d ones (conv_naive)."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (0, 0), (0, 0)))
    kd = w.shape[2]
    od = (xp.shape[2] - kd) // stride[0] + 1
    return np.stack([sum(conv_naive(xp[:, :, d * stride[0] + t], w[:, :, t], None, stride[1:], pad[1:], groups=groups)
                         for t in range(kd)) for d in range(od)], axis=2)


def _nhwc(f):
    """An NCHW oracle applied to NHWC data (and OHWI weights)."""
    t = lambda a: a.transpose((0, a.ndim - 1) + tuple(range(1, a.ndim - 1)))  # noqa: E731
    return lambda *xs: np.moveaxis(f(*[t(a) if a.ndim > 1 else a for a in xs]), 1, -1)


def _group_oracle(x, g, b, groups, eps):
    xg = x.reshape(x.shape[0], groups, -1)
    xh = ((xg - xg.mean(2, keepdims=True)) / np.sqrt(xg.var(2, keepdims=True) + eps)).reshape(x.shape)
    cb = (1, -1) + (1,) * (x.ndim - 2)
    return xh * g.reshape(cb) + b.reshape(cb)


# Ranks and layouts with no CUDA form yet (they run on the host on a GPU): kept apart, since the GPU test over
# CASES asserts that Convolution and Pooling run as device kernels; tests/test_gluon_layers_mx.py checks these
# against their oracles and central differences as test_ops does.
HOST_VARIANT_CASES = {}
HOST_VARIANT_CASES['Convolution'] = [
    Case([R(2, 4, 7), R(6, 2, 3), R(6)], {'kernel': (3,), 'stride': (2,), 'pad': (1,), 'num_filter': 6, 'num_group': 2},
         lambda x, w, b: conv_naive(x[:, :, None], w[:, :, None], b, (1, 2), (0, 1), groups=2)[:, :, 0], id='1d'),
    Case([R(1, 4, 4, 3, 4), R(4, 2, 2, 2, 3)], {'kernel': (2, 2, 3), 'stride': (2, 1, 1), 'pad': (1, 0, 1),
                                                 'num_filter': 4, 'num_group': 2, 'no_bias': True},
         lambda x, w: conv3d_naive(x, w, (2, 1, 1), (1, 0, 1), groups=2), id='3d'),
    Case([R(2, 4, 5, 3), R(4, 2, 3, 3), R(4)], {'kernel': (2, 3), 'pad': (1, 0), 'num_filter': 4, 'layout': 'NHWC'},
         _nhwc(lambda x, w, b: conv_naive(x, w, b, pad=(1, 0))), id='nhwc')]
HOST_VARIANT_CASES['Deconvolution'] = [
    Case([R(2, 4, 4), R(4, 3, 3)], {'kernel': (3,), 'stride': (2,), 'pad': (1,), 'adj': (1,), 'num_filter': 6,
                                    'num_group': 2},
         lambda x, w: deconv_naive(x[:, :, None], w[:, :, None], None, (1, 2), (0, 1), (0, 1), groups=2)[:, :, 0],
         id='1d')]
HOST_VARIANT_CASES['Pooling'] = [
    Case([R(2, 3, 9)], {'kernel': (3,), 'stride': (2,), 'pad': (1,), 'pool_type': 'avg', 'count_include_pad': False,
                        'pooling_convention': 'full'},
         lambda x: pool_naive(x[:, :, None], (1, 3), (1, 2), (0, 1), 'avg', True, False)[:, :, 0], id='1d-avg'),
    Case([R(2, 3, 8)], {'kernel': (3,), 'stride': (2,), 'layout': 'NWC'},
         _nhwc(lambda x: pool_naive(x[:, :, None], (1, 3), (1, 2), (0, 0), 'max')[:, :, 0]), id='1d-max-nwc'),
    Case([R(1, 2, 4, 4, 6)], {'kernel': (2, 2, 3), 'stride': (2, 2, 3)},
         lambda x: x.reshape(1, 2, 2, 2, 2, 2, 2, 3).max(axis=(3, 5, 7)), id='3d-max'),
    Case([R(1, 2, 3, 4, 5)], {'kernel': (2, 2, 2), 'stride': (1, 2, 2), 'pad': (1, 0, 1), 'pool_type': 'avg'},
         lambda x: np.stack([sum(pool_naive(np.pad(x, ((0, 0),) * 2 + ((1, 1), (0, 0), (0, 0)))[:, :, d + t],
                                            (2, 2), (2, 2), (0, 1), 'avg') for t in range(2)) / 2 for d in range(4)], 2),
         id='3d-avg-pad'),
    Case([R(2, 4, 3, 3, 2)], {'global_pool': True, 'pool_type': 'avg', 'kernel': (1, 1, 1), 'layout': 'NDHWC'},
         lambda x: x.mean(axis=(1, 2, 3), keepdims=True), id='3d-global-ndhwc')]
CASES['InstanceNorm'] = [Case([R(2, 3, 4), P(3), R(3)], {}, lambda x, g, b: _group_oracle(x, g, b, 3, 1e-3)),
                         Case([R(2, 2, 3, 2), P(2), R(2)], {'eps': 0.1}, lambda x, g, b: _group_oracle(x, g, b, 2, 0.1))]
CASES['GroupNorm'] = [Case([R(2, 4, 3), P(4), R(4)], {'num_groups': 2}, lambda x, g, b: _group_oracle(x, g, b, 2, 1e-5)),
                      Case([R(3, 3, 2, 2), P(3), R(3)], {}, lambda x, g, b: _group_oracle(x, g, b, 1, 1e-5))]
_pw = (0, 0, 0, 0, 2, 1, 1, 2)
CASES['Pad'] = [Case([R(2, 2, 4, 3)], {'mode': m, 'pad_width': _pw, 'constant_value': 0.5},
                     lambda x, m=m: np.pad(x, ((0, 0), (0, 0), (2, 1), (1, 2)), mode=m,
                                           **({'constant_values': 0.5} if m == 'constant' else {})), id=m)
                for m in ('constant', 'edge', 'reflect')]
BACKWARD_OF.update({'_backward_InstanceNorm': 'InstanceNorm', '_backward_GroupNorm': 'GroupNorm', '_backward_Pad': 'Pad'})


def lstmp_naive(L, D, H, P, x, w, h0, c0):
    """MXNet's fused LSTM with projection, step by step: per layer and direction the flat vector holds
    i2h (4H, in), h2h (4H, P), h2r (P, H); then the i2h and h2h biases. Returns (out, r_T, c_T)."""
    T, N, C = x.shape
    k, ws, size = 0, [], C
    for _ in range(L):
        for _ in range(D):
            wi = w[k:k + 4 * H * size].reshape(4 * H, size)
            k += wi.size
            wh = w[k:k + 4 * H * P].reshape(4 * H, P)
            k += wh.size
            wr = w[k:k + P * H].reshape(P, H)
            k += wr.size
            ws.append([wi, wh, wr])
        size = D * P
    for p in ws:
        p += [w[k:k + 4 * H], w[k + 4 * H:k + 8 * H]]
        k += 8 * H
    assert k == w.size
    seq, rT, cT = [x[t] for t in range(T)], [], []
    for l in range(L):
        outs = []
        for d in range(D):
            wi, wh, wr, bi, bh = ws[l * D + d]
            r, c, res = h0[l * D + d], c0[l * D + d], [None] * T
            for t in (range(T) if d == 0 else range(T - 1, -1, -1)):
                i, f, g, o = np.split(seq[t] @ wi.T + bi + r @ wh.T + bh, 4, axis=1)
                c = _sig(f) * c + _sig(i) * np.tanh(g)
                r = (_sig(o) * np.tanh(c)) @ wr.T
                res[t] = r
            outs.append(res)
            rT.append(r)
            cT.append(c)
        seq = [np.concatenate([o[t] for o in outs], axis=1) for t in range(T)]
    return np.stack(seq), np.stack(rT), np.stack(cT)


def _lstmp_case(L, D, T, N, C, H, P, id):
    size = sum(D * (4 * H * (i + P + 2) + P * H) for i in [C] + [D * P] * (L - 1))
    attrs = {'state_size': H, 'num_layers': L, 'mode': 'lstm', 'bidirectional': D == 2, 'state_outputs': True,
             'projection_size': P}
    return Case([R(T, N, C), R(size) * 0.5, R(L * D, N, P) * 0.5, R(L * D, N, H) * 0.5], attrs,
                lambda x, w, h, c: lstmp_naive(L, D, H, P, x, w, h, c), id=id)


CASES['RNN'] += [_lstmp_case(1, 1, 3, 2, 3, 3, 2, 'lstmp'), _lstmp_case(2, 2, 2, 2, 2, 3, 2, 'lstmp-2layer-bidir')]


def _rnn_seqlen_case(mode, L, D, T, N, C, H, lens, id):
    """use_sequence_length: each sequence alone, over its own length, is the oracle (outputs past it zero)."""
    G = {'lstm': 4, 'gru': 3}.get(mode, 1)
    size = sum(D * G * H * (i + H + 2) for i in [C] + [D * H] * (L - 1))
    ns = 2 if mode == 'lstm' else 1
    attrs = {'state_size': H, 'num_layers': L, 'mode': mode, 'bidirectional': D == 2, 'state_outputs': True,
             'use_sequence_length': True}

    def oracle(x, w, *rest):
        st, ln = rest[:ns], rest[ns].astype(int)
        out, hT, cT = np.zeros((T, N, D * H)), np.zeros((L * D, N, H)), np.zeros((L * D, N, H))
        for n in range(N):
            o, h, c = rnn_naive(mode, L, D, H, x[:ln[n], n:n + 1], w, st[0][:, n:n + 1],
                                st[1][:, n:n + 1] if ns == 2 else None)
            out[:ln[n], n], hT[:, n] = o[:, 0], h[:, 0]
            if ns == 2:
                cT[:, n] = c[:, 0]
        return (out, hT) + ((cT,) if ns == 2 else ())
    return Case([R(T, N, C), R(size) * 0.5] + [R(L * D, N, H) * 0.5 for _ in range(ns)] + [np.array(lens, float)],
                attrs, oracle, id=id)


CASES['RNN'] += [_rnn_seqlen_case('lstm', 2, 2, 4, 3, 2, 2, [4, 2, 1], 'lstm-seqlen-2layer-bidir'),
                 _rnn_seqlen_case('gru', 1, 2, 3, 2, 2, 3, [1, 3], 'gru-seqlen-bidir'),
                 _rnn_seqlen_case('rnn_tanh', 1, 1, 3, 2, 3, 2, [2, 3], 'tanh-seqlen')]


# ---------------------------------------------------------------- contrib.box_nms (greedy NMS, written independently)
def _nms_naive(x, overlap_thresh=0.5, valid_thresh=0.0, topk=-1, coord_start=2, score_index=1, id_index=-1,
               background_id=-1, force_suppress=False, in_format='corner', out_format='corner'):
    cs, si, ii = coord_start, score_index, id_index

    def corners(r):
        a, b, c, d = r[cs:cs + 4]
        return (a, b, c, d) if in_format == 'corner' else (a - c / 2, b - d / 2, a + c / 2, b + d / 2)

    def iou(p, q):
        (a1, b1, a2, b2), (c1, d1, c2, d2) = corners(p), corners(q)
        inter = max(0.0, min(a2, c2) - max(a1, c1)) * max(0.0, min(b2, d2) - max(b1, d1))
        area = lambda x1, y1, x2, y2: 0.0 if x2 < x1 or y2 < y1 else (x2 - x1) * (y2 - y1)  # noqa: E731
        return inter / (area(a1, b1, a2, b2) + area(c1, d1, c2, d2) - inter)
    N, K = x.shape[-2:]
    out = np.full((int(np.prod(x.shape[:-2], dtype=int)), N, K), -1.0)
    for bi, d in enumerate(x.reshape(-1, N, K)):
        cand = sorted([i for i in range(N) if d[i, si] > valid_thresh and not (ii >= 0 and
                                                                             d[i, ii] == background_id)],
                      key=lambda i: -d[i, si])
        kept = []
        for i in (cand if topk < 0 else cand[:topk]):  # a box stays unless a kept box of its class overlaps it
            if not any((force_suppress or ii < 0 or int(d[i, ii]) == int(d[j, ii])) and iou(d[i], d[j]) > overlap_thresh
                       for j in kept):
                kept.append(i)
        for row, i in enumerate(kept):
            out[bi, row] = d[i]
            if in_format != out_format and d[i, cs] >= 0:
                a, b, c, e = d[i, cs:cs + 4]
                out[bi, row, cs:cs + 4] = ((a + c) / 2, (b + e) / 2, c - a, e - b) if out_format == 'center' else \
                    (a - c / 2, b - e / 2, a + c / 2, b + e / 2)
    return out.reshape(x.shape)


_BOXES = np.array([[[0, 0.9, 0.10, 0.10, 0.50, 0.50], [0, 0.8, 0.12, 0.12, 0.52, 0.52], [1, 0.7, 0.11, 0.10, 0.49, 0.50],
                    [0, 0.6, 0.60, 0.60, 0.90, 0.95], [1, 0.05, 0.20, 0.20, 0.40, 0.40]],
                   [[2, 0.30, 0.0, 0.0, 1.0, 1.0], [2, 0.55, 0.05, 0.0, 1.0, 0.9], [0, 0.45, 2.0, 2.0, 3.0, 3.0],
                    [1, 0.25, 0.5, 0.5, 1.5, 1.5], [2, 0.35, 0.2, 0.1, 0.3, 0.2]]])
CASES['_contrib_box_nms'] = [
    Case([_BOXES], {}, lambda x: _nms_naive(x)),
    Case([_BOXES], {'id_index': 0, 'overlap_thresh': 0.3, 'valid_thresh': 0.1},
         lambda x: _nms_naive(x, 0.3, 0.1, id_index=0), grad=False, id='per-class'),  # (ids: integers)
    Case([_BOXES], {'id_index': 0, 'force_suppress': True, 'topk': 3, 'background_id': 1},
         lambda x: _nms_naive(x, topk=3, id_index=0, force_suppress=True, background_id=1), grad=False,
         id='topk-background'),
    Case([_BOXES[:, :, [1, 2, 3, 4, 5, 0]]], {'score_index': 0, 'coord_start': 1, 'in_format': 'center',
                                              'out_format': 'corner', 'overlap_thresh': 0.2},
         lambda x: _nms_naive(x, 0.2, score_index=0, coord_start=1, in_format='center', out_format='corner'),
         grad=False, id='center-in'),  # (MXNet's backward moves rows: no Jacobian of the format conversion)
    Case([_BOXES[0]], {'out_format': 'center'}, lambda x: _nms_naive(x, out_format='center'), grad=False,
         id='2d-center-out'),
    Case([_BOXES[1]], {'topk': 3, 'overlap_thresh': 0.7}, lambda x: _nms_naive(x, 0.7, topk=3), id='2d-topk')]
BACKWARD_OF['_backward_contrib_box_nms'] = '_contrib_box_nms'


def _prior_naive(x, sizes=(1.0,), ratios=(1.0,), clip=False, steps=(-1.0, -1.0), offsets=(0.5, 0.5)):
    H, W = x.shape[2:]
    sy, sx = (steps[0] if steps[0] > 0 else 1 / H), (steps[1] if steps[1] > 0 else 1 / W)
    rows = []
    for r in range(H):
        for c in range(W):
            cy, cx = (r + offsets[0]) * sy, (c + offsets[1]) * sx
            for s, q in [(s, ratios[0]) for s in sizes] + [(sizes[0], q) for q in ratios[1:]]:
                w, h = s * H / W * math.sqrt(q) / 2, s / math.sqrt(q) / 2
                rows.append([cx - w, cy - h, cx + w, cy + h])
    out = np.array(rows)[None]
    return np.clip(out, 0, 1) if clip else out


CASES['_contrib_MultiBoxPrior'] = [
    Case([R(1, 2, 3, 4)], {'sizes': (0.5, 0.25), 'ratios': (1.0, 2.0, 0.5)},
         lambda x: _prior_naive(x, (0.5, 0.25), (1.0, 2.0, 0.5))),
    Case([R(2, 1, 2, 2)], {'sizes': (0.9,), 'ratios': (4.0,), 'clip': True, 'steps': (0.3, 0.4), 'offsets': (0.2, 0.7)},
         lambda x: _prior_naive(x, (0.9,), (4.0,), True, (0.3, 0.4), (0.2, 0.7)), grad=False, id='clip-steps')]


def _matching_naive(x, threshold, is_ascend=False, topk=-1):
    N, M = x.shape[-2:]
    rows, cols = [], []
    for sc in x.reshape(-1, N, M):
        rm, cm, n = [-1] * N, [-1] * M, 0
        for v, r, c in sorted(((sc[r, c], r, c) for r in range(N) for c in range(M)),
                              key=lambda t: (t[0] if is_ascend else -t[0], t[1] * M + t[2])):
            if (v >= threshold) if is_ascend else (v <= threshold):
                break
            if rm[r] < 0 and cm[c] < 0:
                rm[r], cm[c], n = c, r, n + 1
                if 0 < topk <= n:
                    break
        rows.append(rm)
        cols.append(cm)
    return np.array(rows, float).reshape(x.shape[:-1]), np.array(cols, float).reshape(x.shape[:-2] + (M,))


_SCORES = np.array([[0.5, 0.6, 0.05], [0.1, 0.2, 0.9], [0.3, 0.4, 0.8], [0.7, 0.01, 0.02]])
CASES['_contrib_bipartite_matching'] = [
    Case([_SCORES], {'threshold': 0.1}, lambda x: _matching_naive(x, 0.1), grad=False),
    Case([np.stack([_SCORES, _SCORES[::-1]])], {'threshold': 0.5, 'is_ascend': True, 'topk': 2},
         lambda x: _matching_naive(x, 0.5, True, 2), grad=False, id='ascend-topk-batch')]


def _target_expected(neg_mining):
    # anchors a0 [0,0,.5,.5] a1 [.5,.5,1,1] a2 [0,0,1,1]; one ground truth (class 0) [0,0,.4,.6]: IoU .69, 0, .24
    loc = np.zeros((1, 12))
    loc[0, :4] = [(0.2 - 0.25) / 0.5 / 0.1, (0.3 - 0.25) / 0.5 / 0.1, math.log(0.4 / 0.5) / 0.2, math.log(0.6 / 0.5) / 0.2]
    mask = np.zeros((1, 12))
    mask[0, :4] = 1
    # with mining (ratio 1): one negative, the anchor least sure of background (a2); a1 is ignored
    return loc, mask, np.array([[1.0, -1.0, 0.0]] if neg_mining else [[1.0, 0.0, 0.0]])


_ANCHORS = np.array([[[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], [0, 0, 1, 1]]])
_GT = np.array([[[0, 0, 0, 0.4, 0.6], [-1, -1, -1, -1, -1]]])
_CLSP = np.array([[[0.0, 5.0, 0.0], [0.0, 0.0, 3.0]]])
CASES['_contrib_MultiBoxTarget'] = [
    Case([_ANCHORS, _GT, _CLSP], {}, lambda a, g, c: _target_expected(False), grad=False),
    Case([_ANCHORS, _GT, _CLSP], {'negative_mining_ratio': 1.0}, lambda a, g, c: _target_expected(True), grad=False,
         id='negative-mining')]


def _softmax_rows(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# MXNet: data of more than 2 dims without multi_output/preserve_shape is softmaxed as (batch, everything else)
CASES['SoftmaxOutput'] += [Case([R(2, 3, 2), np.array([4.0, 1.0])], {},
                                lambda x, lab: _softmax_rows(x.reshape(2, -1)).reshape(x.shape), id='flattened')]


# ---------------------------------------------------------------- Custom (a registered Python operator)
import graphc as _gc  # noqa: E402


class _ScaledSquareAndProduct(_gc.operator.CustomOp):
    """Two inputs, two outputs: (a*a*scale, a*b)."""
    def __init__(self, scale):
        self.scale = scale

    def forward(self, is_train, req, in_data, out_data, aux):
        a, b = in_data
        self.assign(out_data[0], req[0], a * a * self.scale)
        self.assign(out_data[1], req[1], a * b)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        a, b = in_data
        self.assign(in_grad[0], req[0], out_grad[0] * a * (2 * self.scale) + out_grad[1] * b)
        self.assign(in_grad[1], req[1], out_grad[1] * a)


@_gc.operator.register('op_cases_square_product')
class _ScaledSquareAndProductProp(_gc.operator.CustomOpProp):
    def __init__(self, scale='1'):
        super().__init__(need_top_grad=True)
        self.scale = float(scale)

    def list_arguments(self):
        return ['a', 'b']

    def list_outputs(self):
        return ['square', 'product']

    def infer_shape(self, in_shape):
        return in_shape, [in_shape[0], in_shape[0]], []

    def create_operator(self, ctx, shapes, dtypes):
        return _ScaledSquareAndProduct(self.scale)


CASES['Custom'] = [Case([R(3, 4), R(3, 4)], {'op_type': 'op_cases_square_product', 'scale': '1.5'},
                        lambda a, b: (a * a * 1.5, a * b)),
                   Case([R(2, 0), R(2, 0)], {'op_type': 'op_cases_square_product'}, lambda a, b: (a * a, a * b),
                        id='empty')]
BACKWARD_OF['_backward_Custom'] = 'Custom'


# ---------------------------------------------------------------- MXNet's extended binaries, moments, legacy ops (s8/mxcompat)
def _nz(*s):  # zeros and nonzeros (both signs), so the logical ops see every combination
    return np.asarray(rng.integers(-1, 2, size=s).astype(np.float64))


for _k, _f in (('and', np.logical_and), ('or', np.logical_or), ('xor', np.logical_xor)):
    CASES['broadcast_logical_' + _k] = [
        Case([_nz(*a), _nz(*b)], {}, (lambda f: lambda x, y: f(x != 0, y != 0) * 1.0)(_f), id=f'{a}{b}')
        for a, b in BIN_SHAPES]
CASES['broadcast_hypot'] = [Case([R(*a), P(*b)], {}, lambda x, y: np.sqrt(x * x + y * y), id=f'{a}{b}')
                            for a, b in BIN_SHAPES]
for _k, _f in (('isinf', np.isinf), ('isnan', np.isnan), ('isfinite', np.isfinite)):
    CASES['_contrib_' + _k] = [Case([np.array([[1.0, np.inf, -np.inf], [np.nan, -2.5, 0.0]])], {},
                                    (lambda f: lambda x: f(x) * 1.0)(_f), grad=False),
                               Case([R(3, 4)], {}, (lambda f: lambda x: f(x) * 1.0)(_f), grad=False)]


def _moments_oracle(axes, keepdims):
    def f(x):
        m = x.mean(axis=axes, keepdims=True)
        v = ((x - m) ** 2).mean(axis=axes, keepdims=keepdims)
        m = m if keepdims else m.squeeze(axis=axes)
        return (m.reshape(1) if m.ndim == 0 else m), (v.reshape(1) if v.ndim == 0 else v)
    return f


CASES['moments'] = [Case([R(3, 4)], {'axes': (1,)}, _moments_oracle((1,), False)),
                    Case([R(2, 3, 4)], {'axes': (0, 2), 'keepdims': True}, _moments_oracle((0, 2), True)),
                    Case([R(2, 3)], {}, _moments_oracle((0, 1), False), id='all-axes')]


def _fill0_oracle(x, v, i):
    out = x.copy()
    for r in range(x.shape[0]):
        out[r, min(max(int(i[r]), 0), x.shape[1] - 1)] = v[r]
    return out


CASES['fill_element_0index'] = [Case([R(4, 5), R(4), I(5, 4)], {}, _fill0_oracle),
                                Case([R(3, 2), R(3), np.array([0.0, 7.0, 1.0])], {}, _fill0_oracle, id='clipped')]


def _ravel_oracle(shape):
    def f(x):
        out = np.zeros(x.shape[1:])
        for idx in np.ndindex(*x.shape[1:]):
            flat = 0
            for k, d in enumerate(shape):
                flat = flat * max(d, 1) + int(x[(k,) + idx])
            out[idx] = flat
        return out
    return f


CASES['ravel_multi_index'] = [Case([np.array([[3.0, 6, 6], [4, 5, 1]])], {'shape': (7, 6)}, _ravel_oracle((7, 6)),
                                   grad=False),
                              Case([np.stack([I(4, 2, 3), I(5, 2, 3), I(3, 2, 3)])], {'shape': (-1, 5, 3)},
                                   _ravel_oracle((4, 5, 3)), grad=False, id='3-d, leading -1')]
CASES['unravel_index'] = [Case([np.array([22.0, 41, 37])], {'shape': (7, 6)},
                               lambda x: np.array(np.unravel_index(x.astype(int), (7, 6))) * 1.0, grad=False),
                          Case([I(60, 2, 3)], {'shape': (-1, 5, 3)},
                               lambda x: np.array(np.unravel_index(x.astype(int), (4, 5, 3))) * 1.0, grad=False,
                               id='leading -1')]


# special functions: math.gamma / lgamma, erf inverted by bisection, digamma by central differences of lgamma
def _bisect_erfinv(y):
    out = np.empty_like(y, dtype=np.float64)
    for i, v in np.ndenumerate(y):
        lo, hi = -6.0, 6.0
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if math.erf(mid) < v else (lo, mid)
        out[i] = (lo + hi) / 2
    return out


_vg, _vlg = np.vectorize(math.gamma, otypes=[float]), np.vectorize(math.lgamma, otypes=[float])
CASES['gamma'] = [Case([U(0.3, 4)(*s)], {}, _vg, id=str(s)) for s in UNARY_SHAPES[:3]] + [
    Case([np.array([-0.5, -1.5, 2.5])], {}, _vg, id='negative non-integers')]
CASES['gammaln'] = [Case([U(0.3, 6)(*s)], {}, _vlg, id=str(s)) for s in UNARY_SHAPES[:3]] + [
    Case([np.array([-0.5, -2.5, 7.5])], {}, _vlg, id='negative non-integers')]
CASES['erfinv'] = [Case([U(-0.9, 0.9)(*s)], {}, _bisect_erfinv, id=str(s)) for s in UNARY_SHAPES[:3]] + [
    Case([np.array([1.0, -1.0, 1.5, 0.0])], {}, lambda y: np.array([np.inf, -np.inf, np.nan, 0.0]), grad=False,
         id='edges')]


def _psi_exact(x):
    """digamma's closed forms: psi(n) = -gamma + H(n-1), psi(n + 1/2) = -gamma - 2 ln 2 + sum 2/(2k-1), and
    psi(-x) = psi(1 + x) at the negative half-integers (the reflection's cot term vanishes there)."""
    out = []
    for v in x:
        v = 1 - v if v < 0 else v
        n = int(v)
        out.append(-0.5772156649015329 + (sum(1 / k for k in range(1, n)) if v == n else
                                          -2 * math.log(2) + sum(2 / (2 * k - 1) for k in range(1, n + 1))))
    return np.array(out)


CASES['_digamma'] = [Case([np.array([0.5, 1.0, 2.5, 7.0, 30.0, 30.5, -0.5, -2.5])], {}, _psi_exact, grad=False)]


def _masked_softmax(x, length, axis=1):
    out = np.zeros_like(x)
    for i in range(x.shape[0]):
        n = int(length[i])
        if n:
            e = np.exp(x[i, :n] - x[i, :n].max())
            out[i, :n] = e / e.sum()
    return out


CASES['softmax'] += [Case([R(3, 5), np.array([2.0, 5.0, 0.0])], {'axis': 1, 'use_length': True}, _masked_softmax,
                          id='use_length')]  # (dtype=: test_nd_legacy_api.py, the harness expects float32 out)
CASES['_contrib_quadratic'] = [Case([R(3, 4)], {'a': 1.5, 'b': -2.0, 'c': 0.5}, lambda x: 1.5 * x * x - 2 * x + 0.5),
                               Case([R(2)], {}, lambda x: 0 * x, id='defaults')]
CASES['_contrib_gradientmultiplier'] = [Case([R(3, 4)], {'scalar': -0.5}, lambda x: x, grad=False)]  # (gradient: test_nd_legacy_api)


def _index_copy_oracle(old, idx, new):
    out = old.copy()
    for k, i in enumerate(idx.astype(int)):
        out[i] = new[k]
    return out


CASES['_contrib_index_copy'] = [Case([R(5, 3), np.array([4.0, 0.0]), R(2, 3)], {}, _index_copy_oracle),
                                Case([R(4), np.array([1.0, 3.0, 2.0]), R(3)], {}, _index_copy_oracle, id='1-d')]
# MXNet 1.x's GroupNorm parameters: one gamma/beta per group, repeated over the group's channels
CASES['GroupNorm'] += [Case([R(2, 6, 3), P(3), R(3)], {'num_groups': 3},
                            lambda x, g, b: _group_oracle(x, np.repeat(g, 2), np.repeat(b, 2), 3, 1e-5),
                            id='per-group gamma')]


def _adaptive_oracle(size):
    def f(x):
        oh, ow = size
        H, W = x.shape[2:]
        out = np.zeros(x.shape[:2] + (oh, ow))
        for i in range(oh):
            for j in range(ow):
                h0, h1 = math.floor(i * H / oh), math.ceil((i + 1) * H / oh)
                w0, w1 = math.floor(j * W / ow), math.ceil((j + 1) * W / ow)
                out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        return out
    return f


CASES['_contrib_AdaptiveAvgPooling2D'] = [Case([R(2, 3, 5, 7)], {'output_size': (2, 3)}, _adaptive_oracle((2, 3))),
                                          Case([R(1, 2, 4, 4)], {'output_size': 3}, _adaptive_oracle((3, 3)), id='int'),
                                          Case([R(1, 2, 3, 2)], {}, _adaptive_oracle((1, 1)), id='global')]
BACKWARD_OF['_backward_contrib_AdaptiveAvgPooling2D'] = '_contrib_AdaptiveAvgPooling2D'


def _im2col_naive(kernel, stride, pad, dilate):
    """Loops over every output window and kernel offset of a 2-d image: MXNet's (N, C*kh*kw, oh*ow) layout."""
    def f(x):
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilate
        oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        out = np.zeros((n, c * kh * kw, oh * ow))
        for ci, ki, kj, i, j in itertools.product(range(c), range(kh), range(kw), range(oh), range(ow)):
            r, s = i * sh - ph + ki * dh, j * sw - pw + kj * dw
            if 0 <= r < h and 0 <= s < w:
                out[:, (ci * kh + ki) * kw + kj, i * ow + j] = x[:, ci, r, s]
        return out
    return f


def _col2im_naive(size, kernel, stride, pad, dilate):
    def f(cols):
        (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = size, kernel, stride, pad, dilate
        oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        n, c = cols.shape[0], cols.shape[1] // (kh * kw)
        out = np.zeros((n, c, h, w))
        for ci, ki, kj, i, j in itertools.product(range(c), range(kh), range(kw), range(oh), range(ow)):
            r, s = i * sh - ph + ki * dh, j * sw - pw + kj * dw
            if 0 <= r < h and 0 <= s < w:
                out[:, ci, r, s] += cols[:, (ci * kh + ki) * kw + kj, i * ow + j]
        return out
    return f


CASES['im2col'] = [Case([R(2, 2, 4, 5)], {'kernel': (2, 3), 'stride': (1, 2), 'pad': (1, 0)},
                        _im2col_naive((2, 3), (1, 2), (1, 0), (1, 1))),
                   Case([R(1, 3, 5, 5)], {'kernel': (2, 2), 'dilate': (2, 1)}, _im2col_naive((2, 2), (1, 1), (0, 0), (2, 1)),
                        id='dilate'),
                   Case([R(2, 2, 6)], {'kernel': (3,), 'stride': (2,)},
                        lambda x: _im2col_naive((1, 3), (1, 2), (0, 0), (1, 1))(x[:, :, None]), id='1-d')]
CASES['col2im'] = [Case([R(2, 12, 10)], {'output_size': (4, 5), 'kernel': (2, 3), 'stride': (1, 2), 'pad': (1, 0)},
                        _col2im_naive((4, 5), (2, 3), (1, 2), (1, 0), (1, 1))),
                   Case([R(1, 4, 9)], {'output_size': (4, 4), 'kernel': (2, 2), 'dilate': (1, 1), 'stride': (1, 1)},
                        _col2im_naive((4, 4), (2, 2), (1, 1), (0, 0), (1, 1)), id='overlapping')]


# ---------------------------------------------------------------- contrib index_array / div_sqrt_dim, AMP casts, finiteness
CASES['_contrib_index_array'] = [
    Case([R(2, 3)], {}, lambda x: np.array([[[i, j] for j in range(3)] for i in range(2)]), grad=False),
    Case([R(2, 3, 4)], {'axes': (-1, 0)}, lambda x: np.array([[[[k, i] for k in range(4)] for _ in range(3)]
                                                             for i in range(2)]), grad=False, id='axes')]
CASES['_contrib_div_sqrt_dim'] = [Case([R(2, 3, 4)], {}, lambda x: x / 2.0), Case([R(5, 9)], {}, lambda x: x / 3.0)]
CASES['amp_cast'] = [Case([R(3, 4)], {'dtype': 'float32'}, lambda x: x.astype(np.float32), grad=False)]
CASES['amp_multicast'] = [Case([R(3), R(2, 2)], {'num_outputs': 2}, lambda a, b: (a, b))]
CASES['all_finite'] = [Case([R(3, 4)], {}, lambda x: np.array([1.0], np.float32), grad=False),
                       Case([np.array([1.0, np.inf])], {}, lambda x: np.array([0.0], np.float32), grad=False, id='inf')]
CASES['multi_all_finite'] = [Case([R(2), np.array([np.nan, 1.0])], {'num_arrays': 2},
                                  lambda a, b: np.array([0.0], np.float32), grad=False)]
# a loss head: identity forward (its hinge gradient: tests/test_mxnet_ops2.py)
CASES['SVMOutput'] = [Case([R(4, 3), I(3, 4)], {}, lambda x, t: x, grad=False),
                      Case([R(4, 3), I(3, 4)], {'use_linear': True, 'margin': 0.5}, lambda x, t: x, grad=False)]


# ---------------------------------------------------------------- spatial transformer (graphc/ops/spatial.py)
def _grid_naive(theta, h, w):
    out = np.zeros((theta.shape[0], 2, h, w))
    for n in range(theta.shape[0]):
        A = theta[n].reshape(2, 3)
        for i in range(h):
            for j in range(w):
                xt, yt = -1 + 2 * j / (w - 1), -1 + 2 * i / (h - 1)
                out[n, :, i, j] = A @ np.array([xt, yt, 1.0])
    return out


def _sample_naive(x, grid):
    n_, c_, h, w = x.shape
    out = np.zeros((n_, c_) + grid.shape[2:])
    for n in range(n_):
        for i in range(grid.shape[2]):
            for j in range(grid.shape[3]):
                px, py = (grid[n, 0, i, j] + 1) * (w - 1) / 2, (grid[n, 1, i, j] + 1) * (h - 1) / 2
                for yy in range(h):
                    for xx in range(w):  # the bilinear "tent" weight of every source pixel
                        wt = max(0.0, 1 - abs(px - xx)) * max(0.0, 1 - abs(py - yy))
                        out[n, :, i, j] += wt * x[n, :, yy, xx]
    return out


_theta = np.array([[0.9, 0.1, 0.05, -0.2, 0.8, 0.1], [0.5, 0.0, 0.3, 0.0, 0.5, -0.1]])
_flow = R(1, 2, 3, 4) * 0.3
CASES['GridGenerator'] = [
    Case([_theta], {'transform_type': 'affine', 'target_shape': (3, 4)}, lambda t: _grid_naive(t, 3, 4)),
    Case([_flow], {'transform_type': 'warp', 'target_shape': (3, 4)},
         lambda f: np.stack([(f[:, 0] + np.arange(4)[None, None, :]) / 1.5 - 1,
                             (f[:, 1] + np.arange(3)[None, :, None]) / 1.0 - 1], 1), id='warp')]
_grid = np.asarray(rng.uniform(-1.1, 1.1, size=(2, 2, 3, 3)))  # (a few points just outside the source)
CASES['BilinearSampler'] = [Case([R(2, 2, 4, 5), _grid], {}, _sample_naive)]
CASES['SpatialTransformer'] = [Case([R(2, 1, 4, 5), _theta], {'target_shape': (3, 3)},
                                    lambda x, t: _sample_naive(x, _grid_naive(t, 3, 3)))]
BACKWARD_OF['_backward_GridGenerator'] = 'GridGenerator'
BACKWARD_OF['_backward_BilinearSampler'] = 'BilinearSampler'


# ---------------------------------------------------------------- roi pooling (graphc/ops/roi.py)
def _roipool_naive(x, rois, ph, pw, scale):
    out = np.zeros((len(rois), x.shape[1], ph, pw))
    H, W = x.shape[2:]
    rnd = lambda v: int(np.floor(v + 0.5))  # noqa: E731  (the rois here are positive)
    for r, (b, x1, y1, x2, y2) in enumerate(rois):
        sx, sy, ex, ey = rnd(x1 * scale), rnd(y1 * scale), rnd(x2 * scale), rnd(y2 * scale)
        bh, bw = max(ey - sy + 1, 1) / ph, max(ex - sx + 1, 1) / pw
        for i in range(ph):
            for j in range(pw):
                hs, he = min(max(int(np.floor(i * bh)) + sy, 0), H), min(max(int(np.ceil((i + 1) * bh)) + sy, 0), H)
                ws, we = min(max(int(np.floor(j * bw)) + sx, 0), W), min(max(int(np.ceil((j + 1) * bw)) + sx, 0), W)
                for c in range(x.shape[1]):
                    cells = [x[int(b), c, yy, xx] for yy in range(hs, he) for xx in range(ws, we)]
                    out[r, c, i, j] = max(cells) if cells else 0.0
    return out


def _roialign_naive(x, rois, ph, pw, scale, ratio):
    out = np.zeros((len(rois), x.shape[1], ph, pw))
    H, W = x.shape[2:]

    def at(m, y, xx):  # one bilinear sample, as the paper's reference code
        if y < -1 or y > H or xx < -1 or xx > W:
            return 0.0
        y, xx = max(y, 0.0), max(xx, 0.0)
        y0, x0 = min(int(y), H - 1), min(int(xx), W - 1)
        y1, x1 = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
        ly, lx = (y - y0 if y0 < H - 1 else 0.0), (xx - x0 if x0 < W - 1 else 0.0)
        return (m[y0, x0] * (1 - ly) * (1 - lx) + m[y0, x1] * (1 - ly) * lx + m[y1, x0] * ly * (1 - lx)
                + m[y1, x1] * ly * lx)
    for r, (b, x1, y1, x2, y2) in enumerate(rois):
        sw, sh = x1 * scale, y1 * scale
        rw, rh = max(x2 * scale - sw, 1.0), max(y2 * scale - sh, 1.0)
        gh = gw = ratio
        for c in range(x.shape[1]):
            for i in range(ph):
                for j in range(pw):
                    out[r, c, i, j] = np.mean([at(x[int(b), c], sh + i * rh / ph + (iy + 0.5) * rh / ph / gh,
                                                  sw + j * rw / pw + (ix + 0.5) * rw / pw / gw)
                                               for iy in range(gh) for ix in range(gw)])
    return out


_rois = np.array([[0, 1.1, 1.1, 6.2, 6.2], [1, 3.1, 1.2, 5.2, 6.8], [0, 0.0, 0.0, 2.0, 3.0]])
CASES['ROIPooling'] = [Case([R(2, 2, 8, 7), _rois], {'pooled_size': (2, 3), 'spatial_scale': 1.0},
                            lambda x, r: _roipool_naive(x, r, 2, 3, 1.0)),
                       Case([R(2, 1, 6, 6), _rois], {'pooled_size': (2, 2), 'spatial_scale': 0.5},
                            lambda x, r: _roipool_naive(x, r, 2, 2, 0.5), id='scale')]
CASES['_contrib_ROIAlign'] = [Case([R(2, 2, 8, 7), _rois], {'pooled_size': (2, 3), 'spatial_scale': 1.0, 'sample_ratio': 2},
                                   lambda x, r: _roialign_naive(x, r, 2, 3, 1.0, 2)),
                              Case([R(2, 12, 5, 5), _rois], {'pooled_size': (2, 3), 'spatial_scale': 0.7, 'sample_ratio': 2,
                                                              'position_sensitive': True},
                                   lambda x, r: np.stack([_roialign_naive(x, r, 2, 3, 0.7, 2)[:, c * 6:(c + 1) * 6]
                                                          .reshape(3, 6, 2, 3)[:, np.arange(6), np.arange(6) // 3,
                                                                               np.arange(6) % 3].reshape(3, 2, 3)
                                                          for c in range(2)], 1), id='position_sensitive')]
BACKWARD_OF['_backward_ROIPooling'] = 'ROIPooling'
BACKWARD_OF['_backward_ROIAlign'] = '_contrib_ROIAlign'
CASES['_histogram'] = [
    Case([np.array([-3.0, -1.0, 0.2, 0.5, 2.49, 2.5, 7.0])], {'bin_cnt': 5, 'range': (-2.5, 2.5)},
         lambda x: (np.array([0, 1, 1, 1, 2]), np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])), grad=False),
    Case([np.array([[0.1, 0.6], [1.0, 2.0]]), np.array([0.0, 0.5, 1.0, 4.0])], {},
         lambda x, b: (np.array([1, 1, 2]), b), grad=False, id='edges')]
CASES['_identity_with_attr_like_rhs'] = [Case([R(2, 3), R(2, 3)], {}, lambda x, r: x)]


def _lq_oracle(A):
    """NumPy's QR of A^T, transposed (A = L Q with LAPACK's signs; the properties L lower triangular, Q Q^T = I,
    L Q = A are checked in test_mxnet_ops2.py, and the gradient by central differences here)."""
    q, r = np.linalg.qr(A.T)
    return q.T, r.T


CASES['_linalg_gelqf'] = [Case([R(2, 4)], {}, _lq_oracle), Case([R(3, 3)], {}, _lq_oracle, id='square')]
BACKWARD_OF['_backward_linalg_gelqf'] = '_linalg_gelqf'


def _corr_naive(a, b, k, md, s1, s2, pad, mul):
    """Correlation by its definition: windows of data1 against data2 displaced by (dy, dx), summed, / (k*k*C)."""
    n, c, h, w = a.shape
    pa = np.pad(a, ((0, 0), (0, 0), (pad, pad + 8), (pad, pad + 8)))
    pb = np.pad(b, ((0, 0), (0, 0), (pad, pad + 8), (pad, pad + 8)))
    border, r = md + (k - 1) // 2, md // s2
    th, tw = -(-(h + 2 * pad - 2 * border) // s1), -(-(w + 2 * pad - 2 * border) // s1)
    out = np.zeros((n, (2 * r + 1) ** 2, th, tw))
    for i in range(th):
        for j in range(tw):
            y1, x1 = i * s1 + md, j * s1 + md
            for t in range((2 * r + 1) ** 2):
                dy, dx = (t // (2 * r + 1) - r) * s2, (t % (2 * r + 1) - r) * s2
                u = pa[:, :, y1:y1 + k, x1:x1 + k]
                v = pb[:, :, y1 + dy:y1 + dy + k, x1 + dx:x1 + dx + k]
                out[:, t, i, j] = (u * v if mul else abs(u - v)).sum((1, 2, 3)) / (k * k * c)
    return out


CASES['Correlation'] = [
    Case([R(1, 2, 5, 6), R(1, 2, 5, 6)], {'kernel_size': 3, 'max_displacement': 1, 'stride1': 2, 'pad_size': 2},
         lambda a, b: _corr_naive(a, b, 3, 1, 2, 1, 2, True)),
    Case([R(1, 2, 4, 4), R(1, 2, 4, 4)], {'kernel_size': 1, 'max_displacement': 2, 'stride2': 2, 'pad_size': 2,
                                          'is_multiply': False},
         lambda a, b: _corr_naive(a, b, 1, 2, 1, 2, 2, False), id='abs')]
BACKWARD_OF['_backward_Correlation'] = 'Correlation'
