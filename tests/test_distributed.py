"""Data-parallel training across processes over MPI (kvstore 'dist_sync'): N ranks with local batch b equal one
process with batch N*b; checkpoints resume bit-identically; a failing, killed or mismatched rank stops every
rank with a message. The MPI cases run this file as the ranks' script (`python -m graphc.launch -n N
tests/test_distributed.py SCENARIO OUT`) and skip, saying why, without the [dist] extra.

Tolerance: parameters after 5 steps agree to rtol 1e-4 / atol 1e-5 (float32; the sums over ranks and over the
whole batch add in different orders)."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = dict(rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- the ranks' side
def _model(kind, distributed=True, devices=1):
    from graphc.gluon import nn
    net = nn.HybridSequential(prefix='net_')
    with net.name_scope():  # the same names on every rank, whatever else a rank built before (rank 0: references)
        _layers(net, kind, distributed, devices)
    return net


def _layers(net, kind, distributed, devices):
    from graphc.gluon import nn
    if kind == 'mlp':
        net.add(nn.Dense(16, activation='relu', in_units=100), nn.Dense(4, in_units=16))
    elif kind == 'sbn':  # SyncBatchNorm over the ranks; the one-process reference is BatchNorm over the whole batch
        bn = nn.SyncBatchNorm(in_channels=4, num_devices=devices) if distributed else nn.BatchNorm(in_channels=4)
        net.add(nn.Conv2D(4, 3, in_channels=1, use_bias=False), bn, nn.Activation('relu'), nn.MaxPool2D(2),
                nn.Flatten(), nn.Dense(4, in_units=64))
    else:  # a small LeNet
        net.add(nn.Conv2D(4, 3, activation='relu', in_channels=1), nn.MaxPool2D(2), nn.Conv2D(8, 3, in_channels=4),
                nn.Activation('relu'), nn.Flatten(), nn.Dense(4, in_units=32))


OPTS = {'sgd': ('sgd', {'learning_rate': 0.1, 'momentum': 0.9}), 'adam': ('adam', {'learning_rate': 0.01})}


def _data(n, steps=5, b=2):
    rng = np.random.RandomState(42)
    return [(rng.randn(n * b, 1, 10, 10).astype(np.float32), rng.randint(0, 4, n * b).astype(np.float32))
            for _ in range(steps)]


def _train(kind, opt, hybrid, kvstore, rank, n, steps=5, net=None, trainer=None, start=0, ctx=None, twice=False):
    import graphc as gc
    from graphc import autograd, gluon, nd
    if net is None:
        gc.random.seed(rank)  # every rank starts elsewhere: the first step's broadcast gives rank 0's values
        net = _model(kind, kvstore is not None)
        net.initialize(gc.init.Xavier(), ctx=ctx)
        if hybrid:
            net.hybridize()
        trainer = gluon.Trainer(net.collect_params(), *OPTS[opt], kvstore=kvstore)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    for x, y in _data(n, start + steps)[start:]:
        b = len(x) // n
        xb, yb = (x, y) if kvstore is None else (x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b])
        if kind == 'mlp':
            xb = xb.reshape(len(xb), -1)
        if twice:  # a backward whose gradients the next one overwrites (grad_req 'write')
            with autograd.record():
                loss(net(nd.array(3 * xb, ctx=ctx)), nd.array(yb, ctx=ctx)).backward()
        with autograd.record():
            loss(net(nd.array(xb, ctx=ctx)), nd.array(yb, ctx=ctx)).backward()
        trainer.step(len(x))  # the global batch: the update of one process with all of it
    return net, trainer


def _train_devices(rank, n, steps=5):
    """'sbn' with SGD on [cpu(0), cpu(1)] of each rank, the devices' forwards run by gluon.utils.parallel."""
    import graphc as gc
    from graphc import autograd, gluon, nd
    ctx = [gc.cpu(0), gc.cpu(1)]
    gc.random.seed(rank)
    net = _model('sbn', devices=2)
    net.initialize(gc.init.Xavier(), ctx=ctx)
    trainer = gluon.Trainer(net.collect_params(), *OPTS['sgd'], kvstore='dist_sync')
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    for x, y in _data(n, steps):
        b = len(x) // n
        xs = gluon.utils.split_and_load(nd.array(x[rank * b:(rank + 1) * b]), ctx)
        ys = gluon.utils.split_and_load(nd.array(y[rank * b:(rank + 1) * b]), ctx)
        with autograd.record():
            losses = gluon.utils.parallel(lambda a, c: loss(net(a), c), xs, ys)
        autograd.backward(losses)
        trainer.step(len(x))
    return net


def _params(net):
    return [p.data().asnumpy() for p in net.collect_params().values()]


def _worker(scenario, out):
    import graphc as gc
    kv = gc.kv.create('dist_sync')
    rank, n = kv.rank, kv.num_workers
    result = {'rank': rank, 'n': n}
    if scenario in ('train', 'train_small'):
        # each model with each optimizer, each eager and hybridized (a Latin square: 4 runs, not 8)
        # SyncBatchNorm's statistics span the ranks eagerly (a hybridized block refuses to trace them)
        configs = [('mlp', 'sgd', False), ('mlp', 'adam', True), ('lenet', 'sgd', True), ('lenet', 'adam', False),
                   ('sbn', 'sgd', False)]
        if scenario == 'train_small':
            configs = [('mlp', 'sgd', False), ('lenet', 'adam', True), ('sbn', 'adam', False)]
        result['diffs'] = {}
        for kind, opt, hybrid in configs:
            net, tr = _train(kind, opt, hybrid, kv if (kind, opt, hybrid) == configs[0] else 'dist_sync', rank, n)
            if (kind, opt, hybrid) == configs[0]:  # eager: buckets leave while the backward runs (after step 1)
                result['overlap'] = dict(tr._overlap.stats, buckets_per_step=kv.last_buckets)
            if rank == 0:  # the reference: one process, the whole batch, rank 0's initial values
                ref, _ = _train(kind, opt, hybrid, None, 0, n)
                result['diffs'][f'{kind}-{opt}-{"hybrid" if hybrid else "eager"}'] = [
                    bool(np.allclose(a, b, **TOL)) for a, b in zip(_params(net), _params(ref))]
        if scenario == 'train_small':  # gradients rewritten after their buckets left: every rank redoes the sums
            once, _ = _train('mlp', 'sgd', False, 'dist_sync', rank, n)
            twice, tr = _train('mlp', 'sgd', False, 'dist_sync', rank, n, twice=True)
            result['redo'] = [tr._overlap.stats['redone'], all(bool(np.array_equal(a, b))
                                                               for a, b in zip(_params(once), _params(twice)))]
            hvd, tr = _train('mlp', 'sgd', False, 'horovod', rank, n)  # overlapped, the sums back into the grads
            result['horovod'] = [tr._overlap.stats['started_in_backward'] > 0,
                                 all(bool(np.allclose(a, b, **TOL)) for a, b in zip(_params(once), _params(hvd)))]
        if scenario == 'train':  # SyncBatchNorm over 2 devices on each rank: the statistics span all 4 shards
            result['diffs']['sbn-2x2-devices'] = [bool(np.allclose(a, b, **TOL)) for a, b in zip(
                _params(_train_devices(rank, n)), _params(_train('sbn', 'sgd', False, None, 0, n)[0]))]
        # checkpoint: rank 0 writes parameters and trainer state after 2 steps; a fresh model resumes from them
        whole, _ = _train('lenet', 'adam', True, 'dist_sync', rank, n, steps=4)
        net, tr = _train('lenet', 'adam', True, 'dist_sync', rank, n, steps=2)
        prefix = os.path.join(os.path.dirname(out), 'ckpt')
        if rank == 0:
            net.save_parameters(prefix + '.params')
            tr.save_states(prefix + '.states')
        kv.barrier()
        gc.random.seed(100 + rank)
        net2 = _model('lenet')
        net2.load_parameters(prefix + '.params')
        net2.hybridize()
        tr2 = gc.gluon.Trainer(net2.collect_params(), *OPTS['adam'], kvstore='dist_sync')
        tr2.load_states(prefix + '.states')
        _train('lenet', 'adam', True, 'dist_sync', rank, n, steps=2, net=net2, trainer=tr2, start=2)
        result['resumed_equal'] = all(bool(np.array_equal(a, b)) for a, b in zip(_params(whole), _params(net2)))
        if rank == 0:
            with open(out, 'w') as f:
                json.dump(result, f)
    elif scenario == 'nccl':  # each rank's model on gc.gpu(rank): gradients reduced by cupy's NCCL (stand-in)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import fake_cupy
        from graphc import device
        fake_cupy.install_with_nccl(sys.modules)
        device.make_device = fake_cupy.ref_device
        result['diffs'], result['on_gpu'] = {}, []
        for opt, kvstore in (('sgd', 'dist_sync'), ('adam', 'horovod')):  # update on the kvstore, and not
            net, tr = _train('mlp', opt, False, kvstore, rank, n, ctx=gc.gpu(rank))
            result['on_gpu'].append(tr._kvstore._use_nccl and all(device.device_id(a._data) == rank for a in
                                                                   net.collect_params().values() for a in [a.data()]))
            if rank == 0:
                ref, _ = _train('mlp', opt, False, None, 0, n)
                result['diffs'][f'mlp-{opt}-{kvstore}'] = [bool(np.allclose(device.to_host(a), b, **TOL))
                                                           for a, b in zip(_params(net), _params(ref))]
        result['nccl_calls'] = fake_cupy.NCCL_CALLS.get(fake_cupy.cuda.nccl.NCCL_FLOAT32, 0)
        if rank == 0:
            with open(out, 'w') as f:
                json.dump(result, f)
    elif scenario == 'raise':
        if rank == 1:
            raise RuntimeError('boom on purpose')
        _train('mlp', 'sgd', False, kv, rank, n)  # waits in the first collective until rank 1 is gone
    elif scenario == 'kill':
        if rank == 1:
            import signal
            os.kill(os.getpid(), signal.SIGKILL)
        _train('mlp', 'sgd', False, kv, rank, n)
    elif scenario == 'mismatch':
        from graphc import gluon
        from graphc.gluon import nn
        net = nn.Dense(3 + rank, in_units=4, prefix='head_')
        net.initialize()
        gluon.Trainer(net.collect_params(), 'sgd', kvstore=kv)._ready()


if __name__ == '__main__':
    _worker(sys.argv[1], sys.argv[2])
    sys.exit(0)


# ---------------------------------------------------------------- the test side
def _mpi_or_skip():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed: pip install 'graphc[dist]' runs these MPI tests")
    from graphc.launch import find_mpirun
    try:
        find_mpirun()
    except SystemExit as e:
        pytest.skip(str(e))


def _launch(n, scenario, tmp_path, timeout=120):
    _mpi_or_skip()
    out = tmp_path / 'result.json'
    t = time.perf_counter()
    r = subprocess.run([sys.executable, '-m', 'graphc.launch', '-n', str(n), __file__, scenario, str(out)],
                       capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS='1', GRAPHC_BUCKET_MB='0.004'))  # (4 KB: many buckets)
    return r, out, time.perf_counter() - t


@pytest.mark.parametrize('n, scenario', [(2, 'train'), (4, 'train_small')])
def test_n_ranks_equal_one_process_with_the_whole_batch(tmp_path, n, scenario):
    r, out, _ = _launch(n, scenario, tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res['n'] == n and res['diffs'] and all(all(v) for v in res['diffs'].values()), res['diffs']
    assert res['resumed_equal'], 'resuming from the checkpoint did not continue bit-identically'
    if 'redo' in res:
        assert res['redo'] == [4, True] and res['horovod'] == [True, True], res
    ov = res['overlap']  # steps 2-5 of the eager MLP: every bucket started by the backward, none redone
    assert ov['steps'] == 4 and ov['buckets_per_step'] == ov['buckets'] > 1 and ov['redone'] == 0, ov
    assert ov['started_in_backward'] == 4 * ov['buckets'], ov


def test_gradients_on_gpus_are_reduced_by_nccl(tmp_path):
    """Each rank on gc.gpu(rank) of the cupy stand-in (tests/fake_cupy.py, whose NCCL communicator sums over
    MPI): the gradients are reduced on the devices by NcclCommunicator.allReduce, one call per bucket, and
    training equals one process on the cpu with the whole batch."""
    r, out, _ = _launch(2, 'nccl', tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res['on_gpu'] == [True, True] and all(all(v) for v in res['diffs'].values()), res
    assert res['nccl_calls'] >= 10, res  # 5 steps x 2 runs x (buckets of 4 KB: several per step)


@pytest.mark.parametrize('scenario, says', [
    ('raise', r"rank 1 of 2 failed with RuntimeError: boom on purpose"),
    ('kill', r"rank 1|signal 9|Killed|KILLED"),
    ('mismatch', r"parameter 'head_bias' \(key 0\) differs between ranks: rank 0 has float32\[3\], "
                 r"rank 1 has float32\[4\]")])
def test_a_failing_rank_stops_every_rank_with_a_message(tmp_path, scenario, says):
    import re
    r, _, took = _launch(2, scenario, tmp_path, timeout=60)
    assert r.returncode != 0 and took < 30, (r.returncode, took)
    assert re.search(says, r.stdout + r.stderr), (r.stdout + r.stderr)[-3000:]


def test_one_worker_runs_without_mpi(monkeypatch):
    import graphc as gc
    for v in ('OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'PMIX_SIZE', 'MPI_LOCALNRANKS', 'SLURM_NTASKS'):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setitem(sys.modules, 'mpi4py', None)  # importing it would fail: it must not be needed
    kv = gc.kv.create('dist_sync')
    assert kv.rank == 0 and kv.num_workers == 1 and kv.type == 'dist_sync'
    net, _ = _train('mlp', 'sgd', False, kv, 0, 1, steps=2)
    ref, _ = _train('mlp', 'sgd', False, None, 0, 1, steps=2)
    for a, b in zip(_params(net), _params(ref)):
        np.testing.assert_allclose(a, b, **TOL)
    assert gc.kv.create('horovod').is_capable('optimizer') is False


def test_under_mpirun_without_mpi4py_says_what_to_install(monkeypatch):
    import graphc as gc
    monkeypatch.setenv('OMPI_COMM_WORLD_SIZE', '2')
    monkeypatch.setitem(sys.modules, 'mpi4py', None)
    with pytest.raises(gc.GraphcError, match=r"pip install 'graphc\[dist\]'"):
        gc.kv.create('dist_sync')


def test_split_sampler_shards_the_global_batches():
    from graphc.gluon.data import SplitSampler
    parts = [SplitSampler(10, 3, i, seed=5) for i in range(3)]
    for p in parts:
        p.set_epoch(2)
    shards = [list(p) for p in parts]
    assert [len(s) for s in shards] == [3, 3, 3] and len(set(sum(shards, []))) == 9  # disjoint, tail dropped
    order = parts[0].order()
    for t in range(3):  # batch t of size 1 on 3 ranks = batch t of size 3 in one process
        assert sorted(s[t] for s in shards) == sorted(order[3 * t:3 * t + 3].tolist())
    again = SplitSampler(10, 3, 0, seed=5)
    again.set_epoch(2)
    assert list(again) == shards[0]
    again.set_epoch(3)
    assert list(again) != shards[0]
    with pytest.raises(gc_error(), match='part_index'):
        SplitSampler(10, 2, 2)


def gc_error():
    import graphc as gc
    return gc.GraphcError


def test_launcher_command_has_the_one_host_flags():
    from graphc.launch import command
    cmd = command(4, ['train.py', '--epochs', '1'], mpirun='mpirun')
    assert cmd[:4] == ['mpirun', '-np', '4', '--tag-output'] and '--oversubscribe' in cmd
    assert cmd[-4:] == [sys.executable, 'train.py', '--epochs', '1']
    assert ('--allow-run-as-root' in cmd) == (os.geteuid() == 0)
    assert '-H' in command(2, ['t.py'], hosts='a,b', mpirun='mpirun')
