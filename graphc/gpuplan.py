"""GPU plans for hybridized blocks: replay what they run (their optimized graphs and inputs) on a CUDA device,
or on the host emulation of one (runtime/emulate.py), as benchmarks/gpu.py and tests/test_cuda.py do. (Not
named graphc/gpu.py: a submodule of that name would hide the gc.gpu() context function.)"""
import contextlib

from .runtime import cuda


@contextlib.contextmanager
def captured_plans():
    """Within the block, every plan a hybridized block runs (inference, and the forward and backward halves
    of a recorded training step) is appended to the yielded list as (graph, feed {id(variable): array})."""
    from .gluon import cached
    runs, base = [], cached.Plan

    class Recording(base):
        def __init__(self, graph):
            super().__init__(graph)
            self.graph = graph

        def __call__(self, feed):
            runs.append((self.graph, dict(feed)))
            return super().__call__(feed)
    cached.Plan = Recording
    try:
        yield runs
    finally:
        cached.Plan = base


def device(emulate=False, device_id=0):
    """A device for GpuPlan: cupy's (NVRTC, cuBLAS, memory pool), or the host emulation with emulate=True."""
    if emulate:
        from .runtime.emulate import EmuDevice
        return EmuDevice()
    return cuda.CupyDevice(device_id)


def plan(graph, dev):
    """A GpuPlan of graph on dev: call it with a feed {id(variable): array}."""
    return cuda.GpuPlan(graph, dev)
