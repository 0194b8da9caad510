"""SyncBatchNorm's statistics over the global batch: every device of this process and every MPI rank.

Training-mode batch statistics are reduced as two sums per channel (sum x, sum x^2, and the count), over the
devices of one step and then over the ranks (MPI allreduce); the backward reduces its two sums (sum dy,
sum dy*xhat) the same way. Every device and rank then normalizes with the global mean/variance and updates
its running statistics with them, so they stay identical everywhere.

Devices of one process. MXNet's engine runs ops asynchronously, so its per-device calls `[net(x) for x in
shards]` all reach the layer before any result is needed. graphc runs each op when it is called, so the
devices' forwards must run concurrently: `gluon.utils.parallel(net, shards)` runs one thread per device,
and the layer's calls meet there (a barrier); the last to arrive computes all devices' outputs as one
tape node, so one `autograd.backward(losses)` differentiates them together (calling backward per loss
would differentiate the shared node with the other devices' gradients missing: it is refused).

Ranks. With one device per rank each rank computes its own output; the two allreduces are blocking MPI
collectives, called in the same order on every rank (forward order, then backward's reverse order).
"""
import threading

import numpy as np

from ... import autograd
from ...base import GraphcError
from ... import device as _dev

_slot = threading.local()     # .run (the parallel() call), .index (this thread's device), .calls
TIMEOUT = 600.0               # seconds a device waits for the others at the layer


def parallel(fn, *per_device):
    """[fn(*args) for args in zip(*per_device)], one thread per device, with the caller's autograd recording
    and training state: what SyncBatchNorm needs to span the devices of one process (MXNet's asynchronous
    engine gives it for free). The first exception any device raises is raised here."""
    args = list(zip(*per_device))
    if not args:
        return []
    run = _Run(len(args))
    state = (autograd.is_recording(), autograd.is_training())
    results, errors = [None] * len(args), [None] * len(args)

    def work(k):
        _slot.run, _slot.index, _slot.calls = run, k, {}
        try:
            with autograd._Scope(*state):
                results[k] = fn(*args[k])
        except BaseException as e:  # noqa: B902  (re-raised in the caller's thread)
            errors[k] = e
            run.abort()
        finally:
            _slot.run = None
    threads = [threading.Thread(target=work, args=(k,), name=f'graphc-device-{k}') for k in range(1, len(args))]
    for t in threads:
        t.start()
    old = (getattr(_slot, 'run', None), getattr(_slot, 'index', None), getattr(_slot, 'calls', None))
    try:
        work(0)
    finally:
        _slot.run, _slot.index, _slot.calls = old
        for t in threads:
            t.join()
    first = next((e for e in errors if e is not None and not isinstance(e, _Abandoned)), None)  # the cause
    first = first or next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return results


class _Abandoned(GraphcError):
    """A device left waiting at the layer because another one failed (or never came)."""


class _Run:
    """One parallel() call: where its threads meet, per (layer, how many times this thread called it)."""

    def __init__(self, n):
        self.n, self.lock, self.meetings, self.aborted = n, threading.Lock(), {}, False

    def meeting(self, key, compute):
        with self.lock:
            m = self.meetings.get(key)
            if m is None:
                m = self.meetings[key] = _Meeting(self.n, compute)
                if self.aborted:  # a device failed already: nobody waits for it
                    m.barrier.abort()
            return m

    def abort(self):
        with self.lock:
            self.aborted = True
            for m in self.meetings.values():
                m.barrier.abort()


class _Meeting:
    def __init__(self, n, compute):
        self.inputs, self.outputs, self.error = [None] * n, None, None

        def action():  # runs in the last thread to arrive, before any is released
            try:
                self.outputs = compute(self.inputs)
            except BaseException as e:  # noqa: B902
                self.error = e
        self.barrier = threading.Barrier(n, action=action)


def _world():
    """(MPI, comm) when this process is one of several MPI ranks, else None."""
    from ...kvstore import dist
    if dist.launched_size() <= 1:
        return None
    return dist.world()


def group_size(num_devices):
    w = _world()
    return num_devices * (w[1].Get_size() if w else 1)


def sync_batch_norm(layer, x, gamma, beta, running_mean, running_var):
    """The training-mode forward over the global batch (eager NDArrays); returns this device's output."""
    n = layer._num_devices
    if n == 1:
        return _Joint(layer, _world())([(x, gamma, beta, running_mean, running_var)])[0]
    run = getattr(_slot, 'run', None)
    if run is None or run.n != n:
        got = 'outside gluon.utils.parallel' if run is None else f'in gluon.utils.parallel over {run.n} devices'
        raise GraphcError(
            f"SyncBatchNorm {layer.name!r} (num_devices={n}) was called {got}: graphc runs each op when it is "
            f"called, so the {n} devices' forwards must run concurrently to share batch statistics; write "
            f"`outs = gluon.utils.parallel(net, shards)` instead of `[net(x) for x in shards]` (and one "
            f"autograd.backward(losses) for all of them)")
    count = _slot.calls[id(layer)] = _slot.calls.get(id(layer), -1) + 1
    m = run.meeting((id(layer), count), _Joint(layer, _world()))
    m.inputs[_slot.index] = (x, gamma, beta, running_mean, running_var)
    try:
        m.barrier.wait(TIMEOUT)
    except threading.BrokenBarrierError:
        raise _Abandoned(f"SyncBatchNorm {layer.name!r}: another device of gluon.utils.parallel failed, or did not "
                         f"reach the layer within {TIMEOUT:.0f} s") from None
    if m.error is not None:
        raise m.error
    return m.outputs[_slot.index]


def _host(a):
    return _dev.to_host(a._data) if _dev.device_id(a._data) is not None else a._data


class _Joint:
    """The devices' shards of one call of the layer, normalized together and recorded as one tape node."""
    kind, differentiable, mode_dependent, aux_inputs = 'opaque', True, False, ()

    def __init__(self, layer, world):
        self.layer, self.world = layer, world
        self.name = f"SyncBatchNorm({layer.name}: call autograd.backward once with the losses of every device)"
        self.nograd_inputs = frozenset()

    def _allreduce(self, a):
        if self.world is None:
            return a
        MPI, comm = self.world
        out = np.empty_like(a)
        comm.Allreduce(np.ascontiguousarray(a), out, op=MPI.SUM)
        return out

    def __call__(self, shards):
        from ...ndarray.ndarray import _new
        kw = self.layer._kwargs
        xs = [_host(s[0]) for s in shards]
        axes = tuple(i for i in range(xs[0].ndim) if i != 1)
        sums = np.zeros((3, xs[0].shape[1]), np.float64)
        for a in xs:
            sums[0] += a.sum(axis=axes, dtype=np.float64)
            sums[1] += np.square(a, dtype=np.float64).sum(axis=axes)
            sums[2] += a.size // a.shape[1]
        sums = self._allreduce(sums)
        count = sums[2, 0]
        if count < 2:
            raise GraphcError(f"SyncBatchNorm {self.layer.name!r}: the global batch has {int(count)} value per "
                              f"channel; batch statistics need at least 2")
        mean = sums[0] / count
        var = np.maximum(sums[1] / count - mean * mean, 0.0)
        inv = 1.0 / np.sqrt(var + kw['eps'])
        bs = (1, -1) + (1,) * (xs[0].ndim - 2)
        self.mean, self.inv, self.count, self.bs, self.axes = mean, inv, count, bs, axes
        m = kw['momentum']
        outs, self.xhat = [], []
        for (x, gamma, beta, rm, rv), a in zip(shards, xs):
            g = np.ones(a.shape[1], a.dtype) if kw['fix_gamma'] else _host(gamma)
            xhat = ((a - mean.reshape(bs).astype(a.dtype)) * inv.reshape(bs).astype(a.dtype))
            self.xhat.append(xhat)
            y = (xhat * g.reshape(bs) + _host(beta).reshape(bs)).astype(a.dtype, copy=False)
            outs.append(_new(y, x.context))
            for stat, batch in ((rm, mean), (rv, var)):  # identical on every device and rank
                with _dev.on(stat._data):
                    new = _host(stat) * m + batch.astype(stat.dtype) * (1 - m)
                    stat._data[...] = new if _dev.device_id(stat._data) is None else \
                        _dev.to_device(new, _dev.device_id(stat._data))
        ins = [s[i] for i in range(3) for s in shards]  # x of every device, then the gammas, then the betas
        if autograd.is_recording() and any(getattr(a, '_ag', None) is not None for a in ins):
            self.gammas = [np.ones(a.shape[1], a.dtype) if kw['fix_gamma'] else _host(s[1])
                           for s, a in zip(shards, xs)]
            autograd.record_op(self, {}, ins, tuple(a._data for a in ins), outs, tuple(o._data for o in outs))
        return outs

    def grad(self, F, attrs, xs, ys, dys):
        from ...ndarray.ndarray import NDArray
        n = len(ys)
        dy = [_host(d) for d in dys]
        local = np.zeros((n, 2, self.mean.shape[0]), np.float64)
        for k, (d, xhat) in enumerate(zip(dy, self.xhat)):
            local[k, 0] = d.sum(axis=self.axes, dtype=np.float64)
            local[k, 1] = (d * xhat).sum(axis=self.axes, dtype=np.float64)
        total = self._allreduce(local.sum(axis=0))
        bs, N = self.bs, self.count
        dxs, dgs, dbs = [], [], []
        for k, (d, xhat, g) in enumerate(zip(dy, self.xhat, self.gammas)):
            scale = (g * self.inv / N).reshape(bs)
            dx = scale * (N * d - total[0].reshape(bs) - xhat * total[1].reshape(bs))
            t = d.dtype
            dxs.append(NDArray(_like(dx.astype(t), xs[k]._data)))
            dg = np.zeros_like(g) if self.layer._kwargs['fix_gamma'] else local[k, 1].astype(t)
            dgs.append(NDArray(_like(dg, xs[n + k]._data)))
            dbs.append(NDArray(_like(local[k, 0].astype(t), xs[2 * n + k]._data)))
        return dxs + dgs + dbs


def _like(host, ref):
    """host array on ref's device."""
    d = _dev.device_id(ref)
    return host if d is None else _dev.to_device(host, d)
