"""gc.explain(block, *inputs): what hybridize makes of a block, in one printout.

The captured graph, the pass pipeline with per-pass time and stats, the values hoisted into the prelude
(parameter-only nodes), the kernels formed, and the Plan that runs them with its memory plan (the arena it
allocates); trace and pass times apart. With training=True it explains the training step as it is compiled
(passes.autodiff.split_training_step): the values the forward saves, then the forward and the backward, each
with its passes, kernels and memory plan.
"""
import time

from . import autograd
from .base import fmt_shape
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
    from .passes.autodiff import split_training_step
    from .passes.memory import nbytes
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
    tag, off = getattr(block, 'name', 'executor'), getattr(entry, 'disabled', None)
    if training:  # the step as compiled: a forward that also outputs what the backward reads, and the backward
        fgraph, bgraph, saved, _, grads = split_training_step(entry.graph, wrt, graph.outputs)
        out.append(f"-- training step: the gradient graph gives {sum(g is not None for g in grads)} of {len(wrt)} "
                   f"gradients; the forward also outputs {len(saved)} values the backward reads "
                   f"({sum(nbytes(v.shapes[0], v.dtypes[0]) for v in saved) / 1e3:.1f} KB)")
        out += [f"  {v.name:<28} {fmt_shape(v.shapes[0])} {v.dtypes[0]}" for v in saved]
        out += _compiled('forward', fgraph, lambda: run_pipeline(fgraph, 'training', tag=tag + '.forward', disabled=off))
        out += _compiled('backward', bgraph, lambda: run_pipeline(bgraph, 'training', tag=tag + '.backward', disabled=off))
    elif isinstance(block, Executor):
        out += _compiled(None, graph, lambda: run_pipeline(graph, 'inference', tag=tag, disabled=off))
    else:  # as CachedGraph runs it: optimized, then parameter-only nodes hoisted into a prelude
        out += _compiled(None, graph, lambda: (entry.optimize(), entry.report), entry)
    text = Report('\n'.join(out))
    print(text, file=file)
    return text


def _compiled(half, graph, optimize, entry=None):
    """The pass report of optimize() -> (graph, PassReport), the prelude `entry` hoisted (a CachedGraph's), the
    kernels, and the Plan that runs them with its memory plan: one graph (or one half of a training step)."""
    t0 = time.perf_counter()
    opt, report = optimize()
    t_pass = time.perf_counter() - t0
    head = f"-- {half}: " if half else "-- "
    out = [head + "passes", report.table(), f"passes: {t_pass * 1e3:.1f} ms"]
    if entry is not None and entry._hoist is not None:  # the prelude runs again only after a parameter changes
        prelude, hvars, opt = entry._hoist
        out.append(f"{head}hoisted: {sum(not n.is_var for n in prelude.nodes)} ops read only parameters: a prelude "
                   f"that runs again only after a parameter changes; values: {len(hvars)}")
        out += [f"  {v.name:<28} {fmt_shape(v.shapes[0])} {v.dtypes[0]}" for v in hvars]
    kernels = [n for n in opt.nodes if not n.is_var]
    fused = [n for n in kernels if hasattr(n.op, 'subgraph')]
    out.append(f"{head}kernels: {len(kernels)} ({len(fused)} fused, from {sum(not n.is_var for n in graph.nodes)} ops)")
    for n in kernels:
        body = ' > '.join(n.op.ops()) if hasattr(n.op, 'subgraph') else n.op.name
        shape = ', '.join(str(s) for s in n.shapes) if n.shapes else '?'
        out.append(f"  {n.name:<28} {body}  -> {shape}")
    return out + _codegen(opt, fused, head)


def _codegen(opt, fused, head):
    """Build the kernels and the Plan the compiled backend runs, and say what that took (the IR, LLVM or a
    disk-cache load apart), its native segments and its memory plan: the arena the Plan allocates."""
    from .runtime import backend, cpu
    from .runtime.plan import Seg
    if backend.current() is backend.interp:
        return [f"{head}codegen: off (the interp backend: the reference interpreter runs the graph)"]
    before = dict(cpu.stats)
    t0 = time.perf_counter()
    compiled = 0
    for n in fused:
        compiled += backend.cpu.compile(n.op) is not None
    plan = backend.cpu.executor(opt)
    total = time.perf_counter() - t0
    d = {k: cpu.stats[k] - before[k] for k in before}
    out = [f"{head}codegen: {compiled} of {len(fused)} fused groups compiled; {d['compiled']} kernels built now "
           f"({d['disk_hits']} from the disk cache), IR {d['codegen_ms']:.1f} ms, LLVM {d['llvm_ms']:.1f} ms, "
           f"{total * 1e3:.1f} ms with the plan"]
    prog = plan.program
    if prog is None:
        return out + ["  native: none (every step from Python)", f"{head}memory plan: none (Python steps return "
                      "fresh arrays)"]
    segs = [it for it in prog.items if type(it) is Seg]
    out.append(f"  native: {len(segs)} segment(s) of {sum(s.n for s in segs)} steps, "
               f"{len(prog.items) - len(segs)} steps from Python")
    out += [f"{head}memory plan: {prog.memory.summary()}; Python steps and graph outputs are fresh arrays"]
    out += [f"  shared: {', '.join(prog.names.get(k, f'%{k}') for k in ks)}" for ks in prog.memory.shared()]
    return out
