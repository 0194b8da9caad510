"""The graphc command and the README's generated op table."""
import os
import subprocess
import sys

import pytest

import graphc
from graphc.cli import info, op_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_version_and_info():
    out = subprocess.run([sys.executable, '-m', 'graphc.cli', '--version'], capture_output=True, text=True)
    assert out.stdout.strip() == f"graphc {graphc.__version__}"
    text = info()
    for word in ('numpy', 'llvmlite', 'networkx', 'cpu ', 'devices'):
        assert word in text
    assert 'cpu(0)' in text


def test_readme_op_table_is_current():
    readme = open(os.path.join(ROOT, 'README.md')).read()
    assert op_table() in readme, "README's op table is stale: regenerate it with `graphc ops`"


def test_readme_commands_are_what_ci_runs():
    readme = open(os.path.join(ROOT, 'README.md')).read()
    ci = open(os.path.join(ROOT, '.ci', 'run')).read()
    assert "python3 -m pip install -e '.[test]' && python3 examples/lenet_mnist.py" in readme
    assert "python -m pip install -e '.[test]'" in ci and "python -m pytest" in ci


def test_bench_on_an_exported_model(tmp_path):
    d = os.path.join(ROOT, 'tests', 'data', 'mxnet_models', 'mlp')
    out = subprocess.run([sys.executable, '-m', 'graphc.cli', 'bench', os.path.join(d, 'mlp-symbol.json'), '--params',
                          os.path.join(d, 'mlp-0000.params'), '--shape', 'data=8,784', '--reps', '3', '--json',
                          str(tmp_path / 'b.json')], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert 'eager/hybridized' in out.stdout
    import json
    r = json.load(open(tmp_path / 'b.json'))['workloads']['mlp-symbol.json']
    assert r['times']['eager'] > 0 and r['times']['hybridized'] > 0
    assert abs(r['ratios']['eager/hybridized'] - r['times']['eager'] / r['times']['hybridized']) < 1e-9
    bad = subprocess.run([sys.executable, '-m', 'graphc.cli', 'bench', os.path.join(d, 'mlp-symbol.json')],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and '--shape' in bad.stderr


def test_bench_standard_workloads_json(tmp_path, capsys):
    import json
    from graphc.cli import main
    assert main(['bench', '--quick', '--reps', '2', '--only', 'mlp1,chain1k', '--json', str(tmp_path / 'b.json')]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:1] == ['workload'] and 'eager/hybridized' in out
    doc = json.load(open(tmp_path / 'b.json'))
    assert {'date', 'machine', 'versions', 'settings', 'workloads'} <= set(doc)
    assert doc['machine']['cores'] >= 1 and doc['versions']['numpy'] == __import__('numpy').__version__
    assert doc['settings']['quick'] is True and doc['settings']['only'] == ['mlp1', 'chain1k']
    assert list(doc['workloads']) == ['mlp1', 'chain1k']
    for key, r in doc['workloads'].items():
        assert {'numpy', 'eager', 'hybridized'} <= set(r['times']) and min(r['times'].values()) > 0, key
        assert r['ratios']['hybridized/numpy'] == r['times']['hybridized'] / r['times']['numpy'], key
        assert f"{r['times']['hybridized'] * 1e3:.3f}" in out, key   # the table shows the same numbers


def test_bench_png_and_bad_flags(tmp_path, capsys, monkeypatch):
    from graphc.cli import main
    assert main(['bench', '--only', 'nope']) == 2
    assert "unknown workload(s) ['nope']" in capsys.readouterr().err
    assert main(['bench', '--reps', '0']) == 2
    monkeypatch.setitem(sys.modules, 'matplotlib', None)   # matplotlib not installed: `import` raises ImportError
    assert main(['bench', '--quick', '--only', 'mlp1', '--png', str(tmp_path / 'c.png')]) == 2
    err = capsys.readouterr().err
    assert 'needs matplotlib' in err and 'pip install matplotlib' in err
    assert not (tmp_path / 'c.png').exists()


def test_bench_png_chart(tmp_path):
    import pytest
    pytest.importorskip('matplotlib')
    from graphc import bench as B
    res = {'a': {'name': 'a', 'times': {'numpy': 1.0, 'eager': 4.0, 'hybridized': 2.0}, 'ratios': {}},
           'b': {'name': 'b', 'times': {'eager': 3.0, 'hybridized': 1.0}, 'ratios': {}}}
    B.chart(res, str(tmp_path / 'c.png'))
    assert open(tmp_path / 'c.png', 'rb').read(8) == bytes([0x89]) + b'PNG' + bytes([13, 10, 26, 10])


def test_every_package_is_in_the_wheel():
    """pyproject.toml lists the packages a wheel holds: every directory with an __init__.py under graphc/ (and
    passes/, runtime/, installed as graphc.passes and graphc.runtime) must be listed, or a regular install
    (not -e) cannot import it."""
    tomllib = pytest.importorskip('tomllib')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, 'pyproject.toml'), 'rb') as f:
        listed = set(tomllib.load(f)['tool']['setuptools']['packages'])
    found = set()
    for top, name in (('graphc', 'graphc'), ('passes', 'graphc.passes'), ('runtime', 'graphc.runtime')):
        for d, _, files in os.walk(os.path.join(root, top)):
            if '__init__.py' in files:
                rel = os.path.relpath(d, os.path.join(root, top))
                found.add(name if rel == '.' else name + '.' + rel.replace(os.sep, '.'))
    assert found <= listed, f"not in pyproject.toml's packages: {sorted(found - listed)}"


def test_bench_peers_json_and_flags(tmp_path, capsys, monkeypatch):
    """`graphc bench --peers --threads 1,2 --json`: a table per thread count, the summary, the footnotes, and the
    JSON with every thread count's workloads, spreads and load checks (the peers: a test's NumPy stand-in)."""
    import json
    from graphc import bench as B, bench_peers
    from graphc.cli import main
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_bench import NumpyPeer
    monkeypatch.setattr(bench_peers, 'start', lambda n, names: ([NumpyPeer()], {'mxnet': 'the hint'}))
    monkeypatch.setattr(B, 'idle_probe', lambda seconds=0.2, pids=(): 0.0)
    monkeypatch.setattr(B, 'others', lambda a, b: 0.0)
    path = str(tmp_path / 'p.json')
    assert main(['bench', '--peers', '--quick', '--reps', '1', '--only', 'mlp1', '--threads', '1,2', '--json', path]) == 0
    out = capsys.readouterr().out
    assert '1 thread: median ms (p10-p90)' in out and '2 threads: median ms (p10-p90)' in out
    assert '| workload | best peer (1 thr / 2 thr) | graphc hybridized | graphc / best |' in out
    assert '* mxnet: not here; to include it: the hint' in out
    doc = json.load(open(path))
    assert list(doc['workloads']) == ['1', '2'] and doc['settings']['threads'] == [1, 2]
    assert doc['settings']['missing']['mxnet'] == 'the hint'
    for n in ('1', '2'):
        r = doc['workloads'][n]['mlp1']
        assert {'numpy', 'jax', 'eager', 'hybridized'} <= set(r['times']) and r['load']['loaded'] is False
        lo, hi = r['spread']['jax']
        assert lo <= r['times']['jax'] <= hi
    assert main(['bench', '--threads', '1,2', '--only', 'mlp1']) == 2
    assert 'several --threads need --peers' in capsys.readouterr().err
    assert main(['bench', '--peers', '--threads', '0']) == 2
    assert "--threads wants thread counts" in capsys.readouterr().err
    assert main(['bench', 'm-symbol.json', '--shape', 'data=1,2', '--peers']) == 2
    assert '--peers times the standard workloads' in capsys.readouterr().err
