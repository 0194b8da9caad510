"""The pass manager: named Graph -> Graph passes, run in pipelines that are plain lists, with per-pass time and stats.

Every pass is valid on any graph, so switching one off (GRAPHC_DISABLE_PASSES=a,b, to bisect a miscompile)
switches off exactly that one: a pass whose requirement is off runs anyway, and says so in the log and the
report. GRAPHC_DUMP_IR=DIR writes the text IR before and after each pass; GRAPHC_VERIFY_IR=1 (and the test
suite) runs the IR verifier after every pass.
"""
import logging
import os
import time
from collections import namedtuple
from typing import Callable, Iterable, Optional, Union

from .. import config
from ..base import GraphcError
from ..graph import Graph

Pass = namedtuple('Pass', 'name fn requires doc')
PassFn = Callable[[Graph, dict], Graph]
PASSES: dict[str, Pass] = {}
# the pipelines, in order (trace: on the traced graph, before autodiff)
PIPELINES: dict[str, list[str]] = {'trace': ['fuse_rnn'],
             'inference': ['dce', 'cse', 'fold_constants', 'algebra', 'fold_batchnorm', 'conv_pool',
                           'blocked_convs', 'fuse', 'pack_weights',
                           'rnn_no_reserve', 'plan_memory'],
             'training': ['dce', 'cse', 'fold_constants', 'algebra', 'conv_pool', 'fuse', 'plan_memory']}
log = logging.getLogger('graphc.passes')


def register_pass(name: str, requires: Iterable[str] = ()) -> Callable[[PassFn], PassFn]:
    """Declare a pass `fn(graph, stats) -> graph`; it fills `stats` (a dict) with what it did. `requires`: passes
    that must come before it in a pipeline."""
    def deco(fn: PassFn) -> PassFn:
        if name in PASSES:
            raise GraphcError(f"pass {name!r} registered twice")
        PASSES[name] = Pass(name, fn, tuple(requires), (fn.__doc__ or '').strip().split('\n')[0])
        return fn
    return deco


def disabled_passes() -> set[str]:
    names = {n.strip() for n in config.disable_passes().split(',') if n.strip()}
    unknown = names - set(PASSES) - {'all'}
    if unknown:
        raise GraphcError(f"GRAPHC_DISABLE_PASSES names unknown passes {sorted(unknown)}; passes: {sorted(PASSES)}")
    return set(PASSES) if 'all' in names else names


class PassReport:
    """What a pipeline did: one row per pass (name, ms, nodes before/after, stats, why it did not run)."""

    def __init__(self, pipeline: str):
        self.pipeline, self.rows = pipeline, []  # (name, ms, nodes before, after, stats, why not run or None)

    def table(self) -> str:
        lines = [f"pipeline {self.pipeline}:", f"  {'pass':<18}{'ms':>8}{'nodes':>14}  stats"]
        for name, ms, before, after, stats, skipped in self.rows:
            if skipped:
                lines.append(f"  {name:<18}{'off':>8}{'':>14}  ({skipped})")
                continue
            st = ', '.join(f"{k}={v}" for k, v in stats.items())
            lines.append(f"  {name:<18}{ms:8.2f}{f'{before} -> {after}':>14}  {st}")
        return '\n'.join(lines)


def run_pipeline(graph: Graph, pipeline: Union[str, list[str]] = 'inference', disabled: Optional[Iterable[str]] = None,
                 verify: Optional[bool] = None, dump_dir: Optional[str] = None, tag: str = 'graph') -> tuple[Graph, PassReport]:
    """Run a pipeline (a name in PIPELINES, or a list of pass names) in order; returns (graph, PassReport)."""
    from .. import passes  # noqa: F401  (registers the passes)
    names = PIPELINES[pipeline] if isinstance(pipeline, str) else list(pipeline)
    disabled = disabled_passes() if disabled is None else set(disabled)
    verify = config.verify_ir() if verify is None else verify
    dump_dir = config.dump_ir() if dump_dir is None else dump_dir
    report = PassReport(pipeline if isinstance(pipeline, str) else '+'.join(names))
    for i, name in enumerate(names):
        p = PASSES.get(name)
        if p is None or any(r not in names[:i] for r in p.requires):
            raise GraphcError(f"pipeline {report.pipeline!r}: " + (f"no pass {name!r}" if p is None else
                              f"pass {name!r} needs {p.requires} before it"))
        if name in disabled:
            report.rows.append((name, 0.0, 0, 0, {}, 'disabled'))
            continue
        stats = {}
        off = [r for r in p.requires if r in disabled]
        if off:  # run anyway: switching a pass off must not switch others off too
            log.warning("pass %s runs without %s (disabled)", name, ', '.join(off))
            stats['without'] = '+'.join(off)
        if dump_dir:
            _dump(dump_dir, f"{tag}.{i:02d}.{name}.before.txt", graph)
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
    return graph, report


def _dump(d: str, fname: str, graph: Graph) -> None:
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), 'w') as f:
        f.write(graph.text() + '\n')
