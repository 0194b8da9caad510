"""The pass manager: named Graph -> Graph passes, run in a pipeline with per-pass time and stats.

GRAPHC_DISABLE_PASSES=a,b switches passes off by name (to bisect a miscompile);
GRAPHC_DUMP_IR=DIR writes the text IR before and after each pass; GRAPHC_VERIFY_IR=1 (and the
test suite) runs the IR verifier after every pass.
"""
import os
import time

from ..base import GraphcError

PASSES = {}
PIPELINES = {'trace': [], 'inference': [], 'training': []}  # trace: on the traced graph, before autodiff


class Pass:
    def __init__(self, name, fn, requires, pipelines, doc):
        self.name, self.fn, self.requires, self.pipelines, self.doc = name, fn, tuple(requires), pipelines, doc


def register_pass(name, requires=(), pipelines=('inference', 'training')):
    """Declare a pass `fn(graph, stats) -> graph`; it fills `stats` (a dict) with what it did."""
    def deco(fn):
        if name in PASSES:
            raise GraphcError(f"pass {name!r} registered twice")
        PASSES[name] = Pass(name, fn, requires, pipelines, (fn.__doc__ or '').strip().split('\n')[0])
        for p in pipelines:
            PIPELINES[p].append(name)
        return fn
    return deco


def disabled_passes():
    names = {n.strip() for n in os.environ.get('GRAPHC_DISABLE_PASSES', '').split(',') if n.strip()}
    unknown = names - set(PASSES) - {'all'}
    if unknown:
        raise GraphcError(f"GRAPHC_DISABLE_PASSES names unknown passes {sorted(unknown)}; passes: {sorted(PASSES)}")
    return set(PASSES) if 'all' in names else names


class PassReport:
    """What a pipeline did: one row per pass (name, ms, nodes before/after, stats)."""

    def __init__(self, pipeline):
        self.pipeline, self.rows = pipeline, []

    def table(self):
        lines = [f"pipeline {self.pipeline}:", f"  {'pass':<18}{'ms':>8}{'nodes':>14}  stats"]
        for name, ms, before, after, stats, skipped in self.rows:
            if skipped:
                lines.append(f"  {name:<18}{'off':>8}{'':>14}  ({skipped})")
                continue
            st = ', '.join(f"{k}={v}" for k, v in stats.items())
            lines.append(f"  {name:<18}{ms:8.2f}{f'{before} -> {after}':>14}  {st}")
        return '\n'.join(lines)


def run_pipeline(graph, pipeline='inference', disabled=None, verify=None, dump_dir=None, tag='graph'):
    """Run the named pipeline's passes in order; returns (graph, PassReport)."""
    from .. import passes  # noqa: F401  (registers the passes)
    disabled = disabled_passes() if disabled is None else set(disabled)
    verify = os.environ.get('GRAPHC_VERIFY_IR') == '1' if verify is None else verify
    dump_dir = os.environ.get('GRAPHC_DUMP_IR') if dump_dir is None else dump_dir
    report = PassReport(pipeline)
    done = set()
    for i, name in enumerate(PIPELINES[pipeline]):
        p = PASSES[name]
        if name in disabled:
            report.rows.append((name, 0.0, 0, 0, {}, 'disabled'))
            continue
        missing = [r for r in p.requires if r not in done]
        if missing:
            report.rows.append((name, 0.0, 0, 0, {}, f"needs {', '.join(missing)}"))
            continue
        if dump_dir:
            _dump(dump_dir, f"{tag}.{i:02d}.{name}.before.txt", graph)
        stats = {}
        before = len(graph.nodes)
        t0 = time.perf_counter()
        graph = p.fn(graph, stats)
        ms = (time.perf_counter() - t0) * 1e3
        if verify:
            try:
                graph.verify()
            except GraphcError as e:
                raise GraphcError(f"pass {name!r} broke the IR: {e}") from None
        if dump_dir:
            _dump(dump_dir, f"{tag}.{i:02d}.{name}.after.txt", graph)
        report.rows.append((name, ms, before, len(graph.nodes), stats, None))
        done.add(name)
    return graph, report


def _dump(d, fname, graph):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), 'w') as f:
        f.write(graph.text() + '\n')
