"""gc.explain(block, *inputs): what hybridize makes of a block, in one printout.

The captured graph, the pass pipeline with per-pass time and stats, the kernels formed and the
memory plan; trace and pass times apart. With training=True it explains the training step: the
forward plus the gradient graph for every parameter that takes a gradient.
"""
import time

from . import autograd
from .graph import Graph


class Report(str):
    """explain()'s text. It was printed already: in a REPL its repr is one line, not the report again."""

    def __repr__(self):
        return f"<graphc.explain report: {self.count(chr(10)) + 1} lines; print() it to see it again>"

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(repr(self))


def explain(block, *inputs, training=False, print_graph=True, file=None):
    """Print how `block` runs hybridized on `inputs`; returns the text (a str whose repr is one line)."""
    from .gluon.cached import CachedGraph
    from .passes import run_pipeline
    from .passes.autodiff import gradient
    from .executor import Executor
    out = []
    t0 = time.perf_counter()
    if isinstance(block, Executor):  # a bound symbol: its graph goes through the same passes and plans
        entry, wrt = block._explain_entry(training)
        graph = entry.traced
        shapes = ', '.join(f"{k}{tuple(a.shape)}" for k, a in block.arg_dict.items())
        title = f"executor of {', '.join(block._output_names)} on {shapes}"
    else:
        with autograd.train_mode() if training else autograd.predict_mode():
            entry = CachedGraph(block, inputs)
        wrt = [v for p, v in entry.param_vars if p.grad_req != 'null']
        graph = Graph(entry.visible)
        title = f"{block.name} ({type(block).__name__}) on inputs {', '.join(str(x.shape) for x in inputs)}"
    t_trace = time.perf_counter() - t0
    out.append(f"== {title}, {'training' if training else 'inference'} mode")
    out.append(f"{'trace' if not isinstance(block, Executor) else 'bind'}: {t_trace * 1e3:.1f} ms, "
               f"{sum(not n.is_var for n in graph.nodes)} ops")
    if print_graph:
        out += ["-- captured graph", graph.text()]
    graph = Graph(entry.graph.outputs[:len(entry.visible)])  # after the trace passes (unrolled cells fused)
    out += ["-- trace passes (before autodiff)", entry.trace_report.table()]
    if training:  # forward + backward, as the training pipeline sees it
        heads, grads = gradient(graph, wrt)
        outs = list(graph.outputs) + [g for g in grads if g is not None]
        graph = Graph(outs, graph.inputs + heads)
        out.append(f"gradient graph: {sum(not n.is_var for n in graph.nodes)} ops (forward and backward) for "
                   f"{len(wrt)} parameters")
    t0 = time.perf_counter()
    opt, report = run_pipeline(graph, 'training' if training else 'inference', tag=getattr(block, 'name', 'executor'),
                               disabled=getattr(entry, 'disabled', None))
    t_pass = time.perf_counter() - t0
    out += ["-- passes", report.table(), f"passes: {t_pass * 1e3:.1f} ms"]
    kernels = [n for n in opt.nodes if not n.is_var]
    fused = [n for n in kernels if hasattr(n.op, 'subgraph')]
    out.append(f"-- kernels: {len(kernels)} ({len(fused)} fused, from {sum(not n.is_var for n in graph.nodes)} ops)")
    for n in kernels:
        body = ' > '.join(n.op.ops()) if hasattr(n.op, 'subgraph') else n.op.name
        shape = ', '.join(str(s) for s in n.shapes) if n.shapes else '?'
        out.append(f"  {n.name:<28} {body}  -> {shape}")
    plan = getattr(opt, 'memory_plan', None)
    if plan is not None:
        out += ["-- memory plan", "  " + plan.summary()]
    out += _codegen(opt, fused)
    text = Report('\n'.join(out))
    print(text, file=file)
    return text


def _codegen(opt, fused):
    """Build the kernels and the plan the compiled backend runs, and say what that took: the IR, LLVM (or a
    disk-cache load) apart, and the native segments."""
    from .runtime import backend, cpu
    from .runtime.plan import Seg
    if backend.current() is backend.interp:
        return ["-- codegen: off (the interp backend: the reference interpreter runs the graph)"]
    before = dict(cpu.stats)
    t0 = time.perf_counter()
    compiled = 0
    for n in fused:
        compiled += backend.cpu.compile(n.op) is not None
    plan = backend.cpu.executor(opt)
    total = time.perf_counter() - t0
    d = {k: cpu.stats[k] - before[k] for k in before}
    out = [f"-- codegen: {compiled} of {len(fused)} fused groups compiled; {d['compiled']} kernels built now "
           f"({d['disk_hits']} from the disk cache), IR {d['codegen_ms']:.1f} ms, LLVM {d['llvm_ms']:.1f} ms, "
           f"{total * 1e3:.1f} ms with the plan"]
    segs = [it for it in plan.program.items if type(it) is Seg] if plan.program else []
    if segs:
        out.append(f"  native: {len(segs)} segment(s) of {sum(s.n for s in segs)} steps, "
                   f"{len(plan.program.items) - len(segs)} steps from Python; arena {plan.arena_bytes / 1e3:.1f} KB "
                   f"(naive {plan.naive_bytes / 1e3:.1f} KB)")
    else:
        out.append("  native: none (every step from Python)")
    return out
