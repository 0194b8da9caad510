"""Instance and group normalization, and Pad (constant, edge, reflect), as MXNet's operators."""
import numpy as np

from ..registry import Attr, bad, register, same_dtype


# ---------------------------------------------------------------- group statistics
def _grouped(x, groups):
    """x (N, C, ...) as (N, groups, C/groups * prod(spatial)): each row is normalized on its own."""
    if x.ndim < 2 or groups < 1 or x.shape[1] % groups:
        bad(f"GroupNorm: data of shape {x.shape} does not split into num_groups={groups} channel groups")
    return x.reshape(x.shape[0], groups, -1)


def _chan(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _per_channel(v, x, groups):
    """gamma/beta per channel: MXNet 1.x's GroupNorm has one value per group (num_groups,), repeated over its
    channels; one per channel (C,) is also taken (MXNet 2's layout; the same when num_groups == C)."""
    return v if v.shape[0] == x.shape[1] else np.repeat(v, x.shape[1] // groups)


def group_norm(x, gamma, beta, groups, eps):
    """(out, mean, std): x normalized per (sample, group), then scaled and shifted per channel (or group)."""
    gamma, beta = _per_channel(gamma, x, groups), _per_channel(beta, x, groups)
    xg = _grouped(x, groups).astype(np.float64)
    mean = xg.mean(axis=2, keepdims=True)
    std = np.sqrt(xg.var(axis=2, keepdims=True) + eps)
    xhat = ((xg - mean) / std).reshape(x.shape)
    out = xhat * _chan(gamma, x.ndim) + _chan(beta, x.ndim)
    return out.astype(x.dtype), mean.reshape(x.shape[0], groups).astype(x.dtype), \
        std.reshape(x.shape[0], groups).astype(x.dtype)


def group_norm_grad(g, x, gamma, groups, eps):
    """(d data, d gamma, d beta) of group_norm (d gamma, d beta summed per group for per-group parameters)."""
    per_group = gamma.shape[0] != x.shape[1]
    gamma = _per_channel(gamma, x, groups)
    xg = _grouped(x, groups).astype(np.float64)
    mean = xg.mean(axis=2, keepdims=True)
    std = np.sqrt(xg.var(axis=2, keepdims=True) + eps)
    xhat = (xg - mean) / std
    gx = _grouped(g * _chan(gamma, x.ndim), groups)
    dx = (gx - gx.mean(axis=2, keepdims=True) - xhat * (gx * xhat).mean(axis=2, keepdims=True)) / std
    other = (0,) + tuple(range(2, x.ndim))
    dgamma, dbeta = (g * xhat.reshape(x.shape)).sum(axis=other), g.sum(axis=other)
    if per_group:
        dgamma, dbeta = dgamma.reshape(groups, -1).sum(1), dbeta.reshape(groups, -1).sum(1)
    return dx.reshape(x.shape).astype(x.dtype), dgamma.astype(x.dtype), dbeta.astype(x.dtype)


def _norm_infer(name, groups_of):
    def infer(attrs, shapes, dtypes):
        d = shapes[0]
        if len(d) < 3 if name == 'InstanceNorm' else len(d) < 2:
            bad(f"{name}: data must be (N, C, ...) with at least {3 if name == 'InstanceNorm' else 2} dims, got {d}")
        grp = groups_of(attrs, d)
        if grp < 1 or d[1] % grp:
            bad(f"{name}: {d[1]} channels do not split into num_groups={grp}")
        for pname, s in zip(('gamma', 'beta'), shapes[1:]):
            if s != (d[1],) and s != (grp,):
                bad(f"{name}: {pname} shape {s} should be ({d[1]},) (per channel)"
                    + (f" or ({grp},) (per group)" if grp != d[1] else '') + f" for data {d}")
        st = (d[0], grp)
        return [d, st, st], [same_dtype(name, dtypes)] * 3
    return infer


def _bwd_infer(attrs, shapes, dtypes):
    return [shapes[1], shapes[2], shapes[2]], [dtypes[1]] * 3


_inst_groups = lambda a, d: d[1]  # noqa: E731
_grp_groups = lambda a, d: a['num_groups']  # noqa: E731
IN_ATTRS = {'eps': Attr('float', 1e-3)}
GN_ATTRS = {'num_groups': Attr('int', 1), 'eps': Attr('float', 1e-5), 'output_mean_var': Attr('bool', False)}


@register('InstanceNorm', kind='opaque', inputs=('data', 'gamma', 'beta'), attrs=IN_ATTRS, num_outputs=3, num_visible=1,
          infer=_norm_infer('InstanceNorm', _inst_groups),
          grad=lambda F, a, x, y, dy: list(F._backward_InstanceNorm(dy[0], x[0], x[1], **a)),
          doc="Instance normalization: each (sample, channel) over its spatial axes, then gamma * x + beta per "
              "channel. Outputs (out, mean, std), out visible.")
def _instance_norm(attrs, x, gamma, beta):
    return group_norm(x, gamma, beta, x.shape[1], attrs['eps'])


@register('_backward_InstanceNorm', kind='opaque', inputs=('ograd', 'data', 'gamma'), attrs=IN_ATTRS, num_outputs=3,
          infer=_bwd_infer, doc="Gradients of InstanceNorm: (d data, d gamma, d beta).")
def _backward_instance_norm(attrs, g, x, gamma):
    return group_norm_grad(g, x, gamma, x.shape[1], attrs['eps'])


@register('GroupNorm', kind='opaque', inputs=('data', 'gamma', 'beta'), attrs=GN_ATTRS, num_outputs=3,
          num_visible=lambda a: 3 if a['output_mean_var'] else 1, infer=_norm_infer('GroupNorm', _grp_groups),
          grad=lambda F, a, x, y, dy: list(F._backward_GroupNorm(dy[0], x[0], x[1], **a)),
          doc="Group normalization: channels split into num_groups, each (sample, group) normalized, then "
              "gamma * x + beta per channel. Outputs (out, mean, std).")
def _group_norm(attrs, x, gamma, beta):
    return group_norm(x, gamma, beta, attrs['num_groups'], attrs['eps'])


@register('_backward_GroupNorm', kind='opaque', inputs=('ograd', 'data', 'gamma'), attrs=GN_ATTRS, num_outputs=3,
          infer=_bwd_infer, doc="Gradients of GroupNorm: (d data, d gamma, d beta).")
def _backward_group_norm(attrs, g, x, gamma):
    return group_norm_grad(g, x, gamma, attrs['num_groups'], attrs['eps'])


# ---------------------------------------------------------------- Pad
PAD_ATTRS = {'mode': Attr('str', 'constant', choices=('constant', 'edge', 'reflect')), 'pad_width': Attr('shape'),
             'constant_value': Attr('float', 0.0)}


def _pad_pairs(attrs, shape):
    pw = attrs['pad_width']
    if len(pw) != 2 * len(shape):
        bad(f"Pad: pad_width needs 2 values per axis ({2 * len(shape)} for data of shape {shape}), got {pw}")
    pairs = tuple(zip(pw[::2], pw[1::2]))
    if min(pw) < 0:
        bad(f"Pad: pad_width must be >= 0, got {pw}")
    if attrs['mode'] == 'reflect' and any(max(p) >= s for p, s in zip(pairs, shape) if max(p)):
        bad(f"Pad: reflect padding {pw} must be smaller than each padded axis of {shape}")
    if attrs['mode'] == 'edge' and any(max(p) and s == 0 for p, s in zip(pairs, shape)):
        bad(f"Pad: edge padding of an empty axis in {shape}")
    return pairs


def _pad_infer(attrs, shapes, dtypes):
    pairs = _pad_pairs(attrs, shapes[0])
    return [tuple(s + a + b for s, (a, b) in zip(shapes[0], pairs))], [dtypes[0]]


def _np_pad(x, pairs, attrs):
    if attrs['mode'] == 'constant':
        return np.pad(x, pairs, constant_values=attrs['constant_value'])
    return np.pad(x, pairs, mode=attrs['mode'])


@register('Pad', kind='opaque', attrs=PAD_ATTRS, infer=_pad_infer,
          grad=lambda F, a, x, y, dy: [F._backward_Pad(dy[0], x[0], **a)],
          doc="Pad every axis by pad_width=(before0, after0, before1, after1, ...) with a constant, the edge "
              "values, or the reflection of the data (edge not repeated).")
def _pad(attrs, x):
    return _np_pad(x, _pad_pairs(attrs, x.shape), attrs)


@register('_backward_Pad', kind='opaque', inputs=('ograd', 'data'), attrs=PAD_ATTRS,
          infer=lambda a, s, d: ([s[1]], [d[1]]),
          doc="Gradient of Pad: each output element's gradient added to the input element it was copied from.")
def _backward_pad(attrs, g, x):
    pairs = _pad_pairs(attrs, x.shape)
    if attrs['mode'] == 'constant':
        return np.ascontiguousarray(g[tuple(slice(a, a + s) for (a, _), s in zip(pairs, x.shape))])
    src = _np_pad(np.arange(x.size).reshape(x.shape), pairs, attrs)  # which input each output copies
    return np.bincount(src.ravel(), weights=g.ravel(), minlength=x.size).reshape(x.shape).astype(g.dtype)
