"""Optimizer states as a .params file (arrays and numbers only: loading never runs code from the file).

MXNet pickles (states, optimizer); graphc writes the same information as named arrays, readable by
`gc.nd.load`: 'state:<param>:<k>' for the k-th array of a parameter's state, 'count:<param>' for its
update count, 'meta:num_update' and 'meta:lr'. A Trainer names its parameters by index, as MXNet does, so
a model rebuilt with other name prefixes (another process, another counter) loads the same file. The optimizer's kind and hyperparameters come from the
Trainer (or kvstore) that loads them.
"""
import numpy as np

from ..base import GraphcError, GraphcLoadError
from ..ndarray.ndarray import NDArray
from ..serialization import load_ndarrays, save_ndarrays


def flat(state):
    """A state as a list of NDArrays: None -> [], NDArray -> [it], (nested) tuple -> flattened."""
    if state is None:
        return []
    if isinstance(state, NDArray):
        return [state]
    return [a for s in state for a in flat(s)]


def save_states(fname, updater, labels):
    """labels: index -> the unique str name the index is saved under."""
    o, out = updater.optimizer, {}
    if len(set(labels.values())) != len(labels) or not all(isinstance(n, str) for n in labels.values()):
        raise GraphcError("save_states: parameters need unique str names to be saved; got "
                          f"{sorted(map(repr, labels.values()))[:10]}")
    for i, name in labels.items():
        if i in o._index_update_count:
            out[f'count:{name}'] = np.array(o._index_update_count[i], np.int64)
        for k, a in enumerate(flat(updater.states.get(i))):
            out[f'state:{name}:{k}'] = a
    out['meta:num_update'] = np.array(o.num_update, np.int64)
    out['meta:lr'] = np.array(o.lr if o.lr is not None else np.nan, np.float64)
    save_ndarrays(fname, out)


def load_states(fname, updater, by_label, display=None):
    """Restore what save_states wrote into updater; by_label: saved name -> (index, weight); display: index ->
    the name errors use. Everything is checked before anything changes. Returns the update counts read."""
    loaded = load_ndarrays(fname)
    if not isinstance(loaded, dict):
        raise GraphcLoadError(f"{fname}: not an optimizer state file (its arrays have no names)")
    o = updater.optimizer
    states, counts = {}, {}
    for key, a in loaded.items():
        kind, _, rest = key.partition(':')
        if kind == 'meta' and rest in ('num_update', 'lr'):
            continue
        if kind == 'state':
            name, _, k = rest.rpartition(':')
        else:
            name, k = rest, None
        if kind not in ('state', 'count') or name not in by_label or (k is not None and not k.isdigit()):
            raise GraphcLoadError(f"{fname}: entry {key!r} does not belong to these parameters "
                                  f"({len(by_label)} parameters)")
        idx = by_label[name][0]
        if kind == 'count':
            counts[idx] = _count(a, fname, key)
        else:
            states.setdefault(idx, {})[int(k)] = a
    weights = {i: w for i, w in by_label.values()}
    names = {i: n for n, (i, _) in by_label.items()}
    names.update(display or {})
    new_states = {}
    for i in sorted(set(states) | set(counts)):
        got = states.get(i, {})
        fresh = o.create_state(i, weights[i])
        want = flat(fresh)
        if sorted(got) != list(range(len(want))):
            raise GraphcLoadError(f"{fname}: parameter {names[i]!r} has state arrays {sorted(got)}, "
                                  f"{type(o).__name__} keeps {len(want)}")
        for k, dst in enumerate(want):
            src = got[k]
            if src.shape != dst.shape or src.dtype != dst.dtype:
                raise GraphcLoadError(f"{fname}: state {k} of {names[i]!r} is {src.dtype}{src.shape}, "
                                      f"expected {dst.dtype}{dst.shape}")
        new_states[i] = (fresh, got)
    num_update = _count(loaded['meta:num_update'], fname, 'meta:num_update') if 'meta:num_update' in loaded else None
    # everything checked: replace the whole state, as MXNet does
    for i, (fresh, got) in new_states.items():
        for k, dst in enumerate(flat(fresh)):
            got[k].copyto(dst)  # (onto dst's device)
    updater.states = {i: fresh for i, (fresh, _) in new_states.items()}
    o._index_update_count = counts
    if num_update is not None:
        o.num_update = num_update
    lr = loaded.get('meta:lr')
    if lr is not None and lr.size == 1 and o.lr_scheduler is None and lr.asscalar() == lr.asscalar():
        o.lr = float(lr.asscalar())  # nan: saved while a scheduler set the rate
    return counts


def _count(a, fname, key):
    if a.size != 1 or a.dtype.kind not in 'iu' or a.asscalar() < 0:
        raise GraphcLoadError(f"{fname}: {key!r} must be one non-negative integer, got {a.dtype}{a.shape}")
    return int(a.asscalar())
