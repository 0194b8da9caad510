"""Property-based mutation of the two reference models (tools/mutate_models.py): tuple attributes, internal ops,
size attributes, huge creation shapes, long names, deep chains, inputs, dtypes and .params files. Each case runs
in a forked child under a memory limit (RLIMIT_AS) and a time limit; the only outcomes allowed are a clean load
(and a forward that works or raises GraphcError) or GraphcLoadError. CI runs a fixed sample; the full run
(`python tools/mutate_models.py --count 2000`) is a script."""
import json
import os
import subprocess
import sys

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools', 'mutate_models.py')


def test_a_fixed_sample_of_mutated_models_loads_or_raises_graphc_load_error(tmp_path):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, TOOL, '--count', '48', '--seed', '5000', '--json'], env=env,
                       capture_output=True, text=True, timeout=300)
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0 and not summary['failures'], summary['failures']
    counts = summary['counts']
    assert sum(counts.values()) == 48 and counts.get('load_error', 0) > 10 and counts.get('ok', 0) > 0, counts
    assert set(summary['by_mutation']) >= {'tuple_attr', 'internal_op', 'size_attr', 'creation', 'long_name',
                                           'deep_chain', 'params'}, summary['by_mutation']
