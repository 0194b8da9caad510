"""reshape_like (MXNet's): lhs reshaped to rhs's shape, or dims [lhs_begin, lhs_end) of lhs replaced by dims
[rhs_begin, rhs_end) of rhs. The losses use it so a label fits its prediction before either shape is known."""
import numpy as np

from ..registry import Attr, bad, register

RL_ATTRS = {k: Attr('int', None) for k in ('lhs_begin', 'lhs_end', 'rhs_begin', 'rhs_end')}


def _span(n, begin, end):
    b = 0 if begin is None else begin + n if begin < 0 else begin
    e = n if end is None else end + n if end < 0 else end
    if not 0 <= b <= e <= n:
        bad(f"reshape_like: range [{begin}, {end}) is out of bounds for a {n}-d input")
    return b, e


def like_shape(a, lhs, rhs):
    lb, le = _span(len(lhs), a['lhs_begin'], a['lhs_end'])
    rb, re_ = _span(len(rhs), a['rhs_begin'], a['rhs_end'])
    out = tuple(lhs[:lb]) + tuple(rhs[rb:re_]) + tuple(lhs[le:])
    if int(np.prod(out)) != int(np.prod(lhs)):
        bad(f"reshape_like: cannot reshape {tuple(lhs)} (size {int(np.prod(lhs))}) to {out} (size {int(np.prod(out))})")
    return out


@register('reshape_like', kind='injective', inputs=('lhs', 'rhs'), attrs=RL_ATTRS, nograd_inputs=(1,),
          infer=lambda a, s, d: ([like_shape(a, s[0], s[1])], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._np_reshape(dy[0], newshape=x[0].shape), None],
          doc="lhs with (part of) rhs's shape; sizes must agree.")
def _reshape_like(a, lhs, rhs):
    return lhs.reshape(like_shape(a, lhs.shape, rhs.shape))
