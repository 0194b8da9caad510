"""Memory planning: where each value of a lowered graph lives.

A backend lowers a graph to a schedule: per step, in run order, how it writes its values — natively into
buffers it is given ('native'), as views of its input ('view': reshapes) or from Python ('python': fresh
arrays, which may be views of its inputs). plan() places the natively written values in one arena, a value
reusing the space of one that died before its step (best fit, in step order), and a view (or a Python
result) keeps what it may view alive as long as it is read. Graph outputs are fresh arrays each call. No
value takes over the buffer of an input dying at its own step: GEMMs cannot write over their operands, and a
compiled kernel over its own input loses vectorization (LLVM's runtime alias check fails for equal pointers).
runtime/plan.py runs exactly this plan and gc.explain prints it; the plan_memory pass reports the graph's
own liveness, and switching it off (GRAPHC_DISABLE_PASSES=plan_memory) turns the sharing off.
"""
import numpy as np

from .manager import register_pass

ALIGN = 64   # every buffer starts on a cache line


def nbytes(shape, dtype):
    if shape is None or None in shape:
        return 0
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


class MemoryPlan:
    def __init__(self):
        self.offset = {}       # value key -> byte offset in the arena
        self.arena_bytes = 0
        self.naive_bytes = 0   # every placed value its own buffer

    def shared(self):
        """The keys of each buffer that more than one value uses, in step order."""
        by = {}
        for k, off in self.offset.items():
            by.setdefault(off, []).append(k)
        return [ks for ks in by.values() if len(ks) > 1]

    def summary(self):
        n = len(self.offset)
        return (f"arena {self.arena_bytes / 1e3:.1f} KB for {n} value{'s' * (n != 1)} (naive "
                f"{self.naive_bytes / 1e3:.1f} KB, {100 * self.arena_bytes / max(self.naive_bytes, 1):.0f}%), "
                f"{n - len(set(self.offset.values()))} in a dead value's buffer")


def plan(steps, sizes, outputs, share=True):
    """The arena for a schedule. steps: (how, reads, writes) in run order, how 'native', 'view' or 'python';
    sizes: key -> bytes of each natively written value; outputs: keys that are fresh arrays, read after the
    last step. share=False: every value its own buffer."""
    last = {}
    for i, (_, reads, writes) in enumerate(steps):
        for k in reads:
            last[k] = i
        for k in writes:
            last.setdefault(k, i)   # (a value nobody reads dies at its step)
    for k in outputs:
        last[k] = len(steps)
    for i in reversed(range(len(steps))):  # a view keeps its base alive as long as the view is read
        how, reads, writes = steps[i]
        if how != 'native' and writes:
            end = max(last[k] for k in writes)
            for k in reads:
                last[k] = max(last[k], end)
    p = MemoryPlan()
    live, spare = [], []   # (last step, offset, bytes) of buffers in use; (offset, bytes) of free ones
    for i, (how, _, writes) in enumerate(steps):
        if how != 'native':
            continue
        for a in [a for a in live if a[0] < i]:  # read for the last time before this step
            live.remove(a)
            spare.append(a[1:])
        for k in writes:
            if k in outputs:
                continue
            size = -(-max(sizes[k], 1) // ALIGN) * ALIGN
            fit = min((b for b in spare if b[1] >= size), key=lambda b: b[1], default=None) if share else None
            if fit is None:
                fit = (p.arena_bytes, size)
                p.arena_bytes += size
            else:
                spare.remove(fit)
            p.offset[k] = fit[0]
            p.naive_bytes += size
            live.append((last[k], fit[0], fit[1]))
    return p


@register_pass('plan_memory')
def plan_memory(graph, stats):
    """Liveness: naive bytes (every value its own buffer) and the most bytes live at once, which no arena
    beats; the arena itself is planned as the graph is lowered (plan() on the backend's schedule)."""
    nodes = [n for n in graph.nodes if not n.is_var]
    last = {}
    for i, n in enumerate(nodes):
        for e in n.inputs:
            last[e] = i
    for e in graph.outputs:
        last[e] = len(nodes)
    naive = live = peak = 0
    dies = {}
    for i, n in enumerate(nodes):
        for j in range(n.num_outputs):
            size = nbytes(n.shapes[j] if n.shapes else None, n.dtypes[j] if n.dtypes else 'float32')
            naive += size
            live += size
            dies[last.get((n, j), i)] = dies.get(last.get((n, j), i), 0) + size
        peak = max(peak, live)
        live -= dies.pop(i, 0)
    stats.update(values=sum(n.num_outputs for n in nodes), naive_kb=round(naive / 1024), live_peak_kb=round(peak / 1024))
    return graph
