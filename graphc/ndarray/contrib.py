"""mx.nd.contrib: the contrib ops graphc has (registered as _contrib_<name>) under their short names, and
MXNet's control flow (foreach, while_loop, cond) for NDArrays."""
import sys

from ..base import GraphcError
from ..registry import OPS

_mod = sys.modules[__name__]


def _bind():
    from .. import ndarray as nd
    for name in OPS:
        if name.startswith('_contrib_'):
            setattr(_mod, name[len('_contrib_'):], getattr(nd, name))


_bind()


def _traced(*xs):
    """Whether a value is a Symbol (a traced forward): control flow then becomes a graph op (sym.contrib)."""
    from ..symbol.symbol import Symbol
    return any(isinstance(v, Symbol) for x in xs for v in (x if isinstance(x, (list, tuple)) else [x]))


def foreach(body, data, init_states, name='foreach'):
    """MXNet's contrib.foreach on NDArrays: for each slice of data along axis 0 (or of each array of a list),
    (out, states) = body(slice, states); returns (outputs stacked along axis 0, final states). Traced: a
    _foreach node (sym.contrib.foreach)."""
    if _traced(data, init_states):
        from ..symbol import contrib
        return contrib.foreach(body, data, init_states, name)
    from . import stack
    single = not isinstance(data, (list, tuple))
    seqs = [data] if single else list(data)
    states = init_states
    outs = []
    for t in range(seqs[0].shape[0]):
        out, states = body(seqs[0][t] if single else [s[t] for s in seqs], states)
        outs.append(out)
    if not outs:
        return [], states
    if isinstance(outs[0], (list, tuple)):
        return [stack(*[o[k] for o in outs], axis=0) for k in range(len(outs[0]))], states
    return stack(*outs, axis=0), states


def while_loop(cond, func, loop_vars, max_iterations=None, name='while_loop'):
    """MXNet's contrib.while_loop on NDArrays: while cond(*loop_vars): (step_out, loop_vars) = func(*loop_vars),
    at most max_iterations times. Returns (step outputs stacked along axis 0, final loop_vars); as in MXNet the
    stacked outputs are padded with zeros to max_iterations."""
    from . import stack, zeros_like
    if _traced(loop_vars):
        from ..symbol import contrib
        return contrib.while_loop(cond, func, loop_vars, max_iterations, name)
    if max_iterations is None:
        raise GraphcError("while_loop: max_iterations is required (MXNet needs it to size the outputs)")
    single = not isinstance(loop_vars, (list, tuple))
    lv = [loop_vars] if single else list(loop_vars)
    outs, one = [], False
    while len(outs) < max_iterations and bool(cond(*lv)):
        out, lv = func(*lv)
        lv = [lv] if not isinstance(lv, (list, tuple)) else list(lv)
        one = not isinstance(out, (list, tuple))  # a single step output comes back as one array, as MXNet's
        outs.append([out] if one else list(out))
    if outs:
        n = max_iterations - len(outs)
        stacked = [stack(*([o[k] for o in outs] + [zeros_like(outs[0][k])] * n), axis=0) for k in range(len(outs[0]))]
    else:
        stacked = []
    return (stacked[0] if one else stacked), (lv[0] if single else lv)


def cond(pred, then_func, else_func, name='cond'):
    """MXNet's contrib.cond on NDArrays: then_func() if pred (a size-1 array) is nonzero, else else_func().
    Traced: a _cond node (sym.contrib.cond)."""
    if _traced(pred):
        from ..symbol import contrib
        return contrib.cond(pred, then_func, else_func, name)
    return then_func() if bool(pred) else else_func()
