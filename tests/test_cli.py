"""The graphc command and the README's generated op table."""
import os
import subprocess
import sys

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
    r = json.load(open(tmp_path / 'b.json'))['mlp-symbol.json']
    assert r['eager'] > 0 and r['hybridized'] > 0
    bad = subprocess.run([sys.executable, '-m', 'graphc.cli', 'bench', os.path.join(d, 'mlp-symbol.json')],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and '--shape' in bad.stderr
