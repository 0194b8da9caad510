"""Random samplers under MXNet's op names: _random_* (scalar parameters, an output shape) and _sample_*
(parameter arrays: one draw of `shape` per element), plus _shuffle. They read graphc's one seeded stream
(graphc.random.seed), are never folded or merged by the passes, and have no gradient but sample_multinomial's log-probabilities'."""
import numpy as np

from ..registry import Attr, bad, register


def _rng():
    from ..random import generator
    return generator()


def _out_dtype(a, default='float32'):
    d = a.get('dtype')
    return np.dtype(default if d is None else d)


_DTYPE = Attr('dtype', None)  # None: float32 (samplers), the parameters' dtype (_sample_*), int32 (randint)
_COMMON = {'shape': Attr('shape', ()), 'ctx': Attr('str', ''), 'dtype': _DTYPE}


def _shape_of(a):
    s = tuple(a['shape'])
    if any(d is None or d < 0 for d in s):
        bad(f"shape {s} must have sizes >= 0")
    return s


# name: (parameter attrs with defaults, draw(rng, params..., size))
RANDOM = {
    'uniform': ({'low': 0.0, 'high': 1.0}, lambda g, lo, hi, n: g.uniform(lo, hi, n)),
    'normal': ({'loc': 0.0, 'scale': 1.0}, lambda g, mu, sd, n: g.normal(mu, sd, n)),
    'gamma': ({'alpha': 1.0, 'beta': 1.0}, lambda g, k, th, n: g.gamma(k, th, n)),
    'exponential': ({'lam': 1.0}, lambda g, lam, n: g.exponential(1.0 / lam, n)),
    'poisson': ({'lam': 1.0}, lambda g, lam, n: g.poisson(lam, n)),
    'negative_binomial': ({'k': 1, 'p': 1.0}, lambda g, k, p, n: g.negative_binomial(k, p, n)),
    'generalized_negative_binomial': ({'mu': 1.0, 'alpha': 1.0}, lambda g, mu, al, n: _gen_neg_binomial(g, mu, al, n)),
}


def _gen_neg_binomial(g, mu, alpha, n):
    """MXNet's generalized negative binomial: Poisson with a Gamma(1/alpha, alpha*mu) rate (alpha 0: Poisson(mu))."""
    mu, alpha = np.broadcast_to(np.asarray(mu, np.float64), n), np.broadcast_to(np.asarray(alpha, np.float64), n)
    pos = alpha > 0
    lam = np.where(pos, g.gamma(1.0 / np.where(pos, alpha, 1.0), np.where(pos, alpha * mu, 1.0), n), mu)
    return g.poisson(lam)


def _cast(kind, out, dtype, params):
    """The draws in dtype; uniform's stay below high after rounding (float16 rounds 0.9999 up to 1.0)."""
    out = np.asarray(out).astype(dtype)
    if kind == 'uniform' and dtype.kind == 'f':
        hi = np.asarray(params[1], dtype)
        out = np.where(out >= hi, np.nextafter(hi, np.asarray(params[0], dtype)), out).astype(dtype)
    return out


def _random_op(kind, params, draw):
    attrs = {k: Attr('int' if isinstance(v, int) else 'float', v) for k, v in params.items()}
    attrs.update(_COMMON)

    def infer(a, shapes, dtypes):
        return [_shape_of(a)], [_out_dtype(a)]

    def ref(a, *_):
        ps = [a[k] for k in params]
        return _cast(kind, draw(_rng(), *ps, _shape_of(a)), _out_dtype(a), ps)

    register(f'_random_{kind}', kind='opaque', inputs=(), attrs=attrs, infer=infer, differentiable=False,
             doc=f"Samples from the {kind} distribution with scalar parameters {', '.join(params)} (MXNet's "
                 f"random_{kind}).")(ref)


def _sample_op(kind, params, draw):
    names = tuple(params)

    def infer(a, shapes, dtypes):
        if any(s != shapes[0] for s in shapes[1:]):
            bad(f"_sample_{kind}: parameter arrays must have the same shape, got {shapes}")
        return [tuple(shapes[0]) + _shape_of(a)], [_out_dtype(a, str(dtypes[0]))]

    def ref(a, *ps):
        s = _shape_of(a)
        # one draw of shape s per parameter element: broadcast each parameter over the trailing sample axes
        full = ps[0].shape + s
        args = [np.reshape(p.astype(np.float64), p.shape + (1,) * len(s)) for p in ps]
        args = [np.broadcast_to(p, full) for p in args]
        return _cast(kind, draw(_rng(), *args, full), _out_dtype(a, str(ps[0].dtype)), args)

    register(f'_sample_{kind}', kind='opaque', inputs=names, attrs={'shape': Attr('shape', ()), 'dtype': _DTYPE},
             infer=infer, differentiable=False,
             doc=f"Samples from {kind} distributions whose parameters are arrays (MXNet's sample_{kind}): "
                 "the output is the parameters' shape followed by `shape`.")(ref)


def _like_op(kind, params, draw):
    attrs = {k: Attr('int' if isinstance(v, int) else 'float', v) for k, v in params.items()}

    def ref(a, x):
        ps = [a[k] for k in params]
        return _cast(kind, draw(_rng(), *ps, x.shape), x.dtype, ps)

    register(f'_random_{kind}_like', kind='opaque', inputs=('data',), attrs=attrs, differentiable=False,
             infer=lambda a, s, d: ([s[0]], [d[0]]),
             doc=f"Samples from the {kind} distribution ({', '.join(params)}) in the shape and dtype of data "
                 f"(MXNet's random_{kind}_like).")(ref)


for _k, (_p, _d) in RANDOM.items():
    _random_op(_k, _p, _d)
    _sample_op(_k, _p, _d)
    _like_op(_k, _p, _d)


def _unique_zipfian_infer(a, shapes, dtypes):
    s = _shape_of(a)
    if len(s) != 2:
        bad(f"_sample_unique_zipfian: shape must be (batch, num_sampled), got {s}")
    if s[1] > a['range_max']:
        bad(f"_sample_unique_zipfian: num_sampled ({s[1]}) must be at most range_max ({a['range_max']})")
    return [s, (s[0],)], [np.dtype('int64'), np.dtype('int64')]


@register('_sample_unique_zipfian', kind='opaque', inputs=(), infer=_unique_zipfian_infer, differentiable=False,
          num_outputs=2, attrs={'range_max': Attr('int'), 'shape': Attr('shape', ())},
          doc="Per row, shape[1] distinct classes from the log-uniform (Zipfian) distribution over [0, range_max): "
              "P(k) = log((k+2)/(k+1)) / log(range_max+1); also the number of draws each row took (MXNet's "
              "_sample_unique_zipfian).")
def _unique_zipfian(a):
    b, n = _unique_zipfian_infer(a, [], [])[0][0]
    rmax, g = a['range_max'], _rng()
    classes, trials = np.zeros((b, n), np.int64), np.zeros(b, np.int64)
    log_range = np.log(rmax + 1.0)
    for i in range(b):
        seen, order, t = set(), [], 0
        while len(order) < n:  # draw in batches, keep the first occurrences in draw order
            m = max(2 * (n - len(order)), 64)
            draws = (np.exp(g.uniform(0, log_range, m)) - 1).astype(np.int64) % rmax
            for j, c in enumerate(draws):
                if c not in seen:
                    seen.add(c)
                    order.append(c)
                    if len(order) == n:
                        t += j + 1
                        break
            else:
                t += m
        classes[i], trials[i] = order, t
    return classes, trials


def _randint_infer(a, shapes, dtypes):
    if a['high'] <= a['low']:
        bad(f"_random_randint: high ({a['high']}) must be greater than low ({a['low']})")
    return [_shape_of(a)], [_out_dtype(a, 'int32')]


@register('_random_randint', kind='opaque', inputs=(), infer=_randint_infer, differentiable=False,
          attrs={'low': Attr('int'), 'high': Attr('int'), **_COMMON},
          doc="Integers drawn uniformly from [low, high) (MXNet's random_randint).")
def _randint(a, *_):
    _randint_infer(a, [], [])
    return _rng().integers(a['low'], a['high'], _shape_of(a)).astype(_out_dtype(a, 'int32'))


def _multinomial_infer(a, shapes, dtypes):
    s = shapes[0]
    if not s:
        bad("_sample_multinomial: data must have at least one dim (the categories)")
    outs = [s[:-1] + _shape_of(a)]
    return (outs * 2 if a['get_prob'] else outs), [_out_dtype(a, 'int32')] + ([dtypes[0]] if a['get_prob'] else [])


def _multinomial_grad(F, a, x, y, dy):
    # MXNet differentiates the log-probabilities only (REINFORCE): d data[k] += d logp / data[k] at each draw of k
    return [F._backward_sample_multinomial(dy[1], x[0], y[0]) if a['get_prob'] else None]


@register('_sample_multinomial', kind='opaque', inputs=('data',), infer=_multinomial_infer, grad=_multinomial_grad,
          num_outputs=lambda a: 2 if a['get_prob'] else 1,
          attrs={'shape': Attr('shape', ()), 'get_prob': Attr('bool', False),
                 'dtype': Attr('str', 'int32', choices=('int32', 'float16', 'float32', 'float64', 'uint8'))},
          doc="Category indices drawn from the probabilities in the last axis of data (MXNet's sample_multinomial); "
              "get_prob=True also returns the log-probabilities of the draws.")
def _multinomial(a, p):
    s = _shape_of(a)
    rows = p.reshape(-1, p.shape[-1]).astype(np.float64)
    n = int(np.prod(s, dtype=np.int64))
    cdf = np.cumsum(rows, axis=1)
    u = _rng().uniform(size=(rows.shape[0], n)) * cdf[:, -1:]
    idx = np.stack([np.searchsorted(c, uu, side='right') for c, uu in zip(cdf, u)]) if rows.size else \
        np.zeros((rows.shape[0], n), np.int64)
    idx = np.minimum(idx, p.shape[-1] - 1).reshape(p.shape[:-1] + s)
    out = idx.astype(_out_dtype(a, 'int32'))
    if not a['get_prob']:
        return out
    prob = np.take_along_axis(rows, idx.reshape(rows.shape[0], n), axis=1).reshape(idx.shape)
    return out, np.log(prob).astype(p.dtype)


@register('_backward_sample_multinomial', kind='opaque', inputs=('ograd', 'data', 'sample'), nograd_inputs=(2,),
          infer=lambda a, s, d: ([s[1]], [d[1]]), differentiable=False,
          doc="The gradient of sample_multinomial's log-probabilities: ograd / data at each drawn category.")
def _backward_multinomial(a, g, p, idx):
    rows = p.reshape(-1, p.shape[-1])
    ix = idx.reshape(rows.shape[0], int(np.prod(idx.shape[p.ndim - 1:], dtype=np.int64))).astype(np.int64)  # (0 rows too)
    out = np.zeros_like(rows)
    np.add.at(out, (np.arange(rows.shape[0])[:, None], ix), g.reshape(ix.shape) / np.take_along_axis(rows, ix, 1))
    return out.reshape(p.shape)


@register('_shuffle', kind='opaque', infer=lambda a, s, d: ([s[0]], [d[0]]), differentiable=False,
          doc="A copy of data with its first axis randomly permuted (MXNet's shuffle).")
def _shuffle(a, x):
    return x[_rng().permutation(x.shape[0])] if x.ndim else x.copy()
