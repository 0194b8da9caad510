"""Memory planning: liveness over the (fused) graph, in-place reuse where the registry allows it and
the input dies there, and buffer sharing between values whose lifetimes do not overlap.

The plan is an analysis: `graph.memory_plan` says which buffer each value lives in, the buffer
count and sizes, and the peak bytes against a naive plan (every value its own buffer).
"""
import numpy as np

from .manager import register_pass


def nbytes(shape, dtype):
    if shape is None or None in shape:
        return 0
    n = 1
    for d in shape:
        n *= d
    return n * np.dtype(dtype).itemsize


class MemoryPlan:
    def __init__(self):
        self.buffer_of = {}      # (node, j) -> buffer index
        self.buffers = []        # bytes per buffer
        self.naive_bytes = 0     # every value its own buffer
        self.peak_bytes = 0      # most bytes of planned buffers live at once
        self.inplace = 0         # values written over their input's buffer

    @property
    def planned_bytes(self):
        return sum(self.buffers)

    def summary(self):
        return (f"{len(self.buffers)} buffers, {self.planned_bytes / 1e6:.2f} MB planned, peak {self.peak_bytes / 1e6:.2f} MB "
                f"vs naive {self.naive_bytes / 1e6:.2f} MB ({100 * self.peak_bytes / max(self.naive_bytes, 1):.0f}%), "
                f"{self.inplace} in place")


def plan(graph, keep=()):
    """Plan buffers for every op output in graph.nodes order. `keep`: entries that must survive to the end
    (graph outputs, and in training the activations the backward reads)."""
    nodes = [n for n in graph.nodes if not n.is_var]
    last = {}
    for i, n in enumerate(nodes):
        for s, j in n.inputs:
            if not s.is_var:
                last[(s, j)] = i
    end = len(nodes)
    for n, j in list(graph.outputs) + list(keep):
        last[(n, j)] = end
    p = MemoryPlan()
    free = []       # buffer indices not in use
    live = {}       # entry -> buffer
    in_use = 0
    for i, n in enumerate(nodes):
        dying = [(s, j) for s, j in n.inputs if not s.is_var and last.get((s, j)) == i]
        for j in range(n.num_outputs):
            size = nbytes(n.shapes[j] if n.shapes else None, n.dtypes[j] if n.dtypes else 'float32')
            p.naive_bytes += size
            b = None
            if j == 0 and n.op.inplace and n.inputs and (n.inputs[0][0], n.inputs[0][1]) in dying:
                src = (n.inputs[0][0], n.inputs[0][1])
                if src in live and p.buffers[live[src]] >= size:
                    b = live.pop(src)  # write over the dying input
                    p.inplace += 1
            if b is None:
                fits = [k for k in free if p.buffers[k] >= size]
                if fits:
                    b = min(fits, key=lambda k: p.buffers[k])  # best fit
                    free.remove(b)
                else:
                    b = len(p.buffers)
                    p.buffers.append(size)
                in_use += p.buffers[b]
            live[(n, j)] = b
            p.buffer_of[(n, j)] = b
            if last.get((n, j)) is None:  # an output nobody reads dies at once
                free.append(live.pop((n, j)))
                in_use -= p.buffers[b]
        p.peak_bytes = max(p.peak_bytes, in_use)
        for s, j in dying:
            b = live.pop((s, j), None)
            if b is not None:
                free.append(b)
                in_use -= p.buffers[b]
    return p


@register_pass('plan_memory')
def plan_memory(graph, stats):
    """Liveness, in-place reuse and buffer sharing; attaches graph.memory_plan."""
    graph.memory_plan = p = plan(graph, getattr(graph, 'keep', ()))
    stats.update(buffers=len(p.buffers), peak_kb=round(p.peak_bytes / 1024), naive_kb=round(p.naive_bytes / 1024),
                 inplace=p.inplace)
    return graph
