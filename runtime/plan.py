"""The plan executor: a graph flattened once into a list of steps with argument slots bound, so a
call runs with little Python per step (no dict lookups, no liveness work at run time)."""
from ..base import GraphcError
from ..graph import describe


class Plan:
    def __init__(self, graph):
        slot = {}
        for n in graph.nodes:
            for j in range(1 if n.is_var else n.num_outputs):
                slot[(id(n), j)] = len(slot)
        self.nslots = len(slot)
        self.inputs = [(id(n), slot[(id(n), 0)], n.extra.get('value')) for n in graph.nodes if n.is_var]
        last = {}
        ops = [n for n in graph.nodes if not n.is_var]
        for i, n in enumerate(ops):
            for s, j in n.inputs:
                last[slot[(id(s), j)]] = i
        keep = {slot[(id(n), j)] for n, j in graph.outputs}
        self.steps = []
        for i, n in enumerate(ops):
            ins = tuple(slot[(id(s), j)] for s, j in n.inputs)
            outs = tuple(slot[(id(n), j)] for j in range(n.num_outputs))
            free = tuple(k for k in set(ins) if last.get(k) == i and k not in keep)
            self.steps.append((n.op.ref, n.attrs, ins, outs, free, n))
        self.outputs = [slot[(id(n), j)] for n, j in graph.outputs]

    def __call__(self, feed):
        vals = [None] * self.nslots
        for key, k, const in self.inputs:
            v = feed.get(key, const)
            if v is None:
                raise GraphcError("plan input has no value")
            vals[k] = v
        for ref, attrs, ins, outs, free, node in self.steps:
            try:
                r = ref(attrs, *[vals[k] for k in ins])
            except GraphcError as e:
                raise type(e)(f"{describe(node)}{e}") from None
            if len(outs) == 1:  # (a one-output op may still return a 1-tuple, as SliceChannel(num_outputs=1))
                vals[outs[0]] = r[0] if type(r) is tuple else r
            else:
                for k, v in zip(outs, r):
                    vals[k] = v
            for k in free:
                vals[k] = None
        return [vals[k] for k in self.outputs]
