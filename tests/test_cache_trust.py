"""The kernel disk cache's trust model (README: "Kernel cache trust model"): entries are used only when their
recorded key matches, come from regular files of this user in private directories, and never hang, crash or
run another kernel's code; the cache is bounded on disk (LRU) and traces are bounded per block."""
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from graphc.runtime import cpu

# one kernel `out[0] = C`: distinct constants are distinct kernels, so the answer shows whose code ran
_SCRIPT = r"""
import ctypes, json, sys, warnings
warnings.simplefilter('always')
from graphc.runtime import cpu
c = float(sys.argv[1])
text = 'define void @"kernel"(double* %p) {\n  store double ' + repr(c) + ', double* %p\n  ret void\n}\n'
with warnings.catch_warnings(record=True) as w:
    addr = cpu.compile_kernel(text, 'trust')
out = ctypes.c_double(0)
ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addr)(ctypes.addressof(out))
print(json.dumps({'value': out.value, 'hits': cpu.stats['disk_hits'], 'misses': cpu.stats['disk_misses'],
                  'warnings': [str(x.message) for x in w]}))
"""


def _run(cache, c):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache))
    r = subprocess.run([sys.executable, '-c', _SCRIPT, repr(c)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]  # a crash (SIGSEGV: -11) or a hang (timeout) fails here
    return json.loads(r.stdout.strip().splitlines()[-1])


def _entries(cache):
    return {p.name: p for p in cache.glob('kernels/*/*.o')}


@pytest.fixture
def two_entries(tmp_path):
    """A cache holding kernel A (writes 1.0) and kernel B (writes 2.0): (cache, path of A, path of B)."""
    cache = tmp_path / 'cache'
    assert _run(cache, 1.0)['misses'] == 1
    a = _entries(cache)
    assert _run(cache, 2.0)['misses'] == 1
    b = {k: v for k, v in _entries(cache).items() if k not in a}
    assert _run(cache, 1.0) == {'value': 1.0, 'hits': 1, 'misses': 0, 'warnings': []}
    return cache, next(iter(a.values())), next(iter(b.values()))


def test_another_kernels_entry_under_this_key_is_a_miss_not_a_call(two_entries):
    cache, a, b = two_entries
    shutil.copyfile(b, a)  # well formed, its checksum matches, but it records B's key
    r = _run(cache, 1.0)
    assert r['value'] == 1.0 and r['misses'] == 1 and r['hits'] == 0
    assert _run(cache, 1.0)['hits'] == 1  # the recompile replaced it


def _forge(entry_of_a, obj):
    """An entry that records A's key (a forger who knows the format) around object code `obj`."""
    blob = entry_of_a.read_bytes()
    head = len(cpu.CACHE_MAGIC) + 32
    n = int.from_bytes(blob[head:head + 4], 'little')
    payload = blob[head:head + 4 + n] + obj
    import hashlib
    return cpu.CACHE_MAGIC + hashlib.sha256(payload).digest() + payload


def _object_code(entry):
    blob = entry.read_bytes()
    head = len(cpu.CACHE_MAGIC) + 32
    return blob[head + 4 + int.from_bytes(blob[head:head + 4], 'little'):]


def test_an_entry_without_the_symbol_is_recompiled_never_called(two_entries):
    cache, a, b = two_entries
    a.write_bytes(_forge(a, _object_code(b)))  # A's key, B's code: A's symbol is missing (address 0)
    r = _run(cache, 1.0)
    assert r['value'] == 1.0 and r['hits'] == 1 and r['misses'] == 1


def test_a_forged_entry_owned_by_another_user_is_not_read(two_entries):
    cache, a, b = two_entries
    a.write_bytes(_forge(a, _object_code(b)))
    try:
        os.chown(a, 65534, 65534)
    except PermissionError:
        pytest.skip('changing a file owner needs root')
    r = _run(cache, 1.0)
    assert r['value'] == 1.0 and r['hits'] == 0 and r['misses'] == 1
    assert any('owned by uid 65534' in w for w in r['warnings'])


def test_a_fifo_in_place_of_an_entry_does_not_hang(two_entries):
    cache, a, _ = two_entries
    a.unlink()
    os.mkfifo(a)
    r = _run(cache, 1.0)  # an open() without O_NONBLOCK would block here until the 60 s timeout
    assert r['value'] == 1.0 and r['misses'] == 1
    assert a.is_file() and not a.is_fifo()  # the recompile's entry replaced the FIFO


def test_symlinks_are_not_followed(two_entries, tmp_path):
    cache, a, b = two_entries
    a.unlink()
    a.symlink_to(b)  # an entry that is a link
    r = _run(cache, 1.0)
    assert r['value'] == 1.0 and r['misses'] == 1
    elsewhere = tmp_path / 'elsewhere'  # a directory of the cache that is a link
    shutil.move(str(a.parent), elsewhere)
    a.parent.symlink_to(elsewhere, target_is_directory=True)
    r = _run(cache, 1.0)
    assert r['value'] == 1.0 and r['misses'] == 1 and any('symlink' in w for w in r['warnings'])


def test_a_group_writable_cache_directory_is_bypassed_with_one_warning(two_entries):
    cache, a, _ = two_entries
    os.chmod(cache, 0o775)
    before = sorted(_entries(cache))
    r = _run(cache, 3.0)
    assert r['value'] == 3.0 and r['hits'] == 0
    assert sum('writable by group or others' in w for w in r['warnings']) == 1
    assert sorted(_entries(cache)) == before  # nothing written into a directory others can write
    os.chmod(cache, 0o700)
    os.chmod(a.parent, 0o777)
    assert _run(cache, 1.0)['hits'] == 0


def test_failed_writes_leave_no_temporary_files(tmp_path, monkeypatch):
    d = tmp_path / 'd'
    d.mkdir(mode=0o700)
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        def full(*a, **k):
            raise OSError(28, 'No space left on device')
        monkeypatch.setattr(os, 'replace', full)
        assert not cpu.write_private(fd, 'x.o', b'data')
        monkeypatch.undo()

        class Full:
            def __init__(self, fd, mode):
                os.close(fd)

            def __enter__(self):
                return self

            def __exit__(self, *a):
                return False

            def write(self, data):
                raise OSError(28, 'No space left on device')
        monkeypatch.setattr(os, 'fdopen', Full)
        assert not cpu.write_private(fd, 'x.o', b'data')
    finally:
        os.close(fd)
    assert list(d.iterdir()) == []


def test_the_disk_cache_is_bounded_with_lru_eviction(tmp_path, monkeypatch):
    monkeypatch.setenv('GRAPHC_CACHE_DIR', str(tmp_path / 'c'))
    monkeypatch.setenv('GRAPHC_CACHE_MAX_MB', str(40 / 1024))  # 40 KiB: room for 4 entries of 8 KiB
    monkeypatch.setattr(cpu, '_disk_bytes', [None])
    keys = [f'key {i}'.encode() for i in range(12)]
    for i, k in enumerate(keys):
        cpu._disk_store(k, bytes([i]) * 8192)
        path = tmp_path / 'c' / 'kernels' / os.path.join(*cpu._entry_file(k))
        os.utime(path, (1000 + i, 1000 + i))  # a clock that moves forward between stores
        if i >= 2:
            assert cpu._disk_load(keys[0]) is not None  # used on every step: the most recent, kept
            os.utime(tmp_path / 'c' / 'kernels' / os.path.join(*cpu._entry_file(keys[0])), (2000 + i,) * 2)
        total = sum(p.stat().st_size for p in (tmp_path / 'c').glob('kernels/*/*.o'))
        assert total <= 40 * 1024
    kept = [i for i, k in enumerate(keys) if cpu._disk_load(k) is not None]
    assert 0 in kept and 11 in kept and 1 not in kept and len(kept) <= 4, kept
    assert cpu._disk_load(keys[0]) == bytes([0]) * 8192


def test_traces_per_block_are_bounded(monkeypatch):
    from graphc import nd
    from graphc.gluon import nn
    monkeypatch.setenv('GRAPHC_MAX_TRACES', '3')
    net = nn.Dense(4, in_units=5)
    net.initialize()
    net.hybridize()
    xs = [nd.array(np.random.rand(b, 5).astype(np.float32)) for b in (1, 2, 3, 4, 5, 1)]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        outs = [net(x).asnumpy() for x in xs]
    assert len(net._cache) == 3 and net.trace_count == 6  # batch 1 was dropped after 4 and 5, then traced again
    assert sum('GRAPHC_MAX_TRACES' in str(x.message) for x in w) == 1
    net.hybridize(False)
    for x, o in zip(xs, outs):
        np.testing.assert_allclose(o, net(x).asnumpy(), rtol=1e-6)


def test_past_the_kernel_bound_groups_run_on_the_reference_path(monkeypatch):
    from graphc import nd
    from graphc.gluon import nn
    monkeypatch.setenv('GRAPHC_MAX_KERNELS', str(cpu.stats['compiled']))  # no new kernel may be compiled
    before = (cpu.stats['compiled'], cpu.stats['fallbacks'])
    net = nn.HybridLambda(lambda F, x: F.tanh(x * 1.25 + 0.375) * F.sigmoid(x))
    x = nd.array(np.linspace(-3, 3, 7 * 13, dtype=np.float32).reshape(7, 13))
    want = np.tanh(x.asnumpy() * 1.25 + 0.375) / (1 + np.exp(-x.asnumpy()))
    net.hybridize()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        got = net(x).asnumpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert cpu.stats['compiled'] == before[0] and cpu.stats['fallbacks'] > before[1]
    assert any('GRAPHC_MAX_KERNELS' in str(m.message) for m in w) or any(
        'GRAPHC_MAX_KERNELS' in m for m in cpu._warned)
