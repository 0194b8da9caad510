"""The library's layout, checked on its source with `ast` (nothing is imported):

- No import cycle among module-level imports of graphc/, passes/ and runtime/: those run while `import graphc`
  runs, so a cycle there works or breaks with the order of imports. Imports inside functions are lazy: they run
  once every module has loaded, so cycles through them are allowed (today they join most of graphc, its ops and
  its runtime into one strongly connected set: the price of an `import graphc` that loads no backend).
- A module-level cycle through ndarray, symbol, autograd or ops is never allowed; another one only when listed
  in ALLOWED_CYCLES with the reason.
- passes/ import no backend (graphc.runtime), at module level or inside functions, but for PASSES_TO_RUNTIME;
  nor do the ops (graphc/ops: their refs are plain NumPy), and runtime/ imports no private name of graphc.ops.
- Environment switches are read in graphc/config.py only, and the README's table lists each of them.
A listed exception that no longer exists fails too, so the lists only shrink.
"""
import ast
import functools
import os
import re

import networkx as nx
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = {'graphc': 'graphc', 'passes': 'graphc.passes', 'runtime': 'graphc.runtime'}  # folder -> package
CORE = ('graphc.ndarray', 'graphc.symbol', 'graphc.autograd', 'graphc.ops')
ALLOWED_CYCLES = {
    frozenset({'graphc.onnx.importer', 'graphc.onnx.import_ops'}):
        "importer.py imports import_ops last to register the op builders, which use importer's `imports` decorator",
}
PASSES_TO_RUNTIME = {}   # (passes import no backend: the backend protocol, runtime/backend.py, consults passes)


@functools.lru_cache(None)
def parse(path):
    with open(path) as f:
        return ast.parse(f.read())


@functools.lru_cache(None)
def modules():
    """module name -> (path, is a package)"""
    out = {}
    for folder, pkg in PACKAGES.items():
        base = os.path.join(ROOT, folder)
        for dirpath, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            for f in files:
                if f.endswith('.py'):
                    rel = os.path.relpath(os.path.join(dirpath, f), base)[:-3].replace(os.sep, '.')
                    rel = rel[:-len('__init__')].rstrip('.') if rel.endswith('__init__') else rel
                    out[pkg + ('.' + rel if rel else '')] = (os.path.join(dirpath, f), f == '__init__.py')
    return out


def aliases(mods):
    """package -> {name: module} for `from . import ndarray as nd` in its __init__ (so `from .. import nd` is an
    import of graphc.ndarray, not of the package)."""
    out = {}
    for m, (path, is_pkg) in mods.items():
        if is_pkg:
            for node in parse(path).body:
                if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None:
                    out.setdefault(m, {}).update({a.asname: f"{m}.{a.name}" for a in node.names if a.asname})
    return out


@functools.lru_cache(None)
def imports(lazy):
    """The import graph: module -> module, with imports inside functions when `lazy`."""
    mods = modules()
    al = aliases(mods)
    g = nx.DiGraph()
    for m, (path, is_pkg) in mods.items():
        g.add_node(m)
        stack = list(parse(path).body)
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not lazy:
                continue
            stack.extend(ast.iter_child_nodes(node))
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (m if is_pkg else m.rpartition('.')[0]) if node.level else ''
                for _ in range(node.level - 1):
                    base = base.rpartition('.')[0]
                base = '.'.join(x for x in (base, node.module) if x)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else al.get(base, {}).get(a.name, base)
                           for a in node.names]
            else:
                continue
            g.add_edges_from((m, t) for t in targets if t in mods and t != m)
    return g


def test_no_module_level_import_cycle():
    g = imports(lazy=False)
    cycles = {frozenset(c) for c in nx.strongly_connected_components(g) if len(c) > 1}
    core = [sorted(c) for c in cycles if any(m == k or m.startswith(k + '.') for m in c for k in CORE)]
    assert not core, f"import cycles through ndarray/symbol/autograd/ops: {core}"
    assert cycles == set(ALLOWED_CYCLES), (f"new cycles: {[sorted(c) for c in cycles - set(ALLOWED_CYCLES)]}; "
                                           f"gone (drop from ALLOWED_CYCLES): {set(ALLOWED_CYCLES) - cycles}")


def test_lazy_imports_are_what_joins_the_core_and_the_cli_does_not_cycle_with_bench():
    lazy = imports(lazy=True)
    assert not (lazy.has_edge('graphc.cli', 'graphc.bench') and lazy.has_edge('graphc.bench', 'graphc.cli'))
    assert nx.has_path(lazy, 'graphc.ndarray.ndarray', 'graphc.runtime.plan')   # the rule above matters
    assert not nx.has_path(imports(lazy=False), 'graphc.ndarray.ndarray', 'graphc.runtime.plan')


def test_passes_import_no_backend():
    g = imports(lazy=True)
    found = {(m, t) for m, t in g.edges if m.startswith('graphc.passes') and t.startswith('graphc.runtime')}
    assert found == set(PASSES_TO_RUNTIME), (f"new: {found - set(PASSES_TO_RUNTIME)}; "
                                             f"gone (drop from PASSES_TO_RUNTIME): {set(PASSES_TO_RUNTIME) - found}")


def test_ops_import_no_backend_and_the_backends_no_private_op_names():
    g = imports(lazy=True)
    assert not [(m, t) for m, t in g.edges if m.startswith('graphc.ops') and t.startswith('graphc.runtime')]
    private = []
    for m, (path, _) in modules().items():
        if m.startswith('graphc.runtime'):
            for node in ast.walk(parse(path)):
                if isinstance(node, ast.ImportFrom) and node.module and 'ops' in node.module.split('.'):
                    private += [f"{m}: {node.module}.{a.name}" for a in node.names if a.name.startswith('_')]
    assert not private, private


def test_environment_switches_are_read_in_config_only_and_documented():
    from graphc import config
    reads = re.compile(r"""(environ|getenv)\W+['"](GRAPHC|MXNET)_""")
    for m, (path, _) in modules().items():
        if m != 'graphc.config':
            for i, line in enumerate(open(path), 1):
                assert not reads.search(line), f"{path}:{i} reads a switch: read it through graphc/config.py"
    readme = open(os.path.join(ROOT, 'README.md')).read()
    table = readme.split('## Environment switches', 1)[1].split('\n## ', 1)[0]
    assert set(re.findall(r"^\| `(\w+)` \|", table, re.M)) == set(config.SWITCHES)


def test_a_malformed_switch_is_an_error_naming_it(monkeypatch):
    from graphc import GraphcError, config
    monkeypatch.setenv('GRAPHC_MAX_TRACES', 'many')
    with pytest.raises(GraphcError, match=r"GRAPHC_MAX_TRACES='many': want traced signatures kept per block"):
        config.max_traces()
    monkeypatch.setenv('GRAPHC_BACKEND', 'gpu')
    with pytest.raises(GraphcError, match=r"GRAPHC_BACKEND='gpu': want 'cpu' or 'interp'"):
        config.backend()
    monkeypatch.setenv('GRAPHC_BACKEND', 'interp')
    monkeypatch.setenv('GRAPHC_CACHE_MAX_MB', '0.5')
    assert config.backend() == 'interp' and config.cache_max_bytes() == 1 << 19 and config.native() is True
