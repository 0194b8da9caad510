"""Every environment switch graphc reads, in one place (the README's table lists them). A switch is read each
time it is asked for, so a test or a session may change it between calls; a malformed value is an error that
names the switch."""
import os

from .base import GraphcError

SWITCHES = {}
HOME = os.path.expanduser('~')


class Switch:
    def __init__(self, name, default, doc, parse=str):   # parse: a function, or a tuple of choices
        self.name, self.default, self.doc, self.parse = name, default, doc, parse
        SWITCHES[name] = self

    def __call__(self):
        v = os.environ.get(self.name, '')
        if v == '' or isinstance(self.parse, tuple) and v in self.parse:
            return v or self.default
        try:
            return self.parse(v)
        except (ValueError, TypeError):   # (a tuple of choices is not callable: a TypeError)
            raise GraphcError(f"{self.name}={v[:40]!r}: want {self.doc}") from None


def _on(v):
    return v != '0'


def _mb(v):
    return max(0, int(float(v) * (1 << 20)))


backend = Switch('GRAPHC_BACKEND', 'cpu', "'cpu' or 'interp' (the reference interpreter)", ('cpu', 'interp'))
engine = Switch('GRAPHC_ENGINE', 'naive', "'naive' or 'lazy' (NDArray ops queued in a graph)",
                ('naive', 'lazy'))
native = Switch('GRAPHC_NATIVE', True, "0 runs every plan step from Python (to bisect a miscompile)", _on)
multi_tensor = Switch('GRAPHC_MULTI_TENSOR', True, "0 updates a Trainer's parameters one by one, not in one kernel", _on)
native_blas = Switch('GRAPHC_NATIVE_BLAS', True, "0 keeps GEMMs in NumPy", _on)
onednn = Switch('GRAPHC_ONEDNN', True, "0 keeps convolutions and GEMMs off oneDNN (where its wheel is installed)", _on)
num_threads = Switch('GRAPHC_NUM_THREADS', os.cpu_count() or 1, "threads of a compiled kernel (an integer)", int)
keep_memory = Switch('GRAPHC_KEEP_MEMORY', True, "0 leaves glibc's malloc returning freed memory to the system "
                     "(see runtime/plan.keep_memory)", _on)
huge_pages = Switch('GRAPHC_HUGE_PAGES', False, "1 leaves NumPy asking for transparent huge pages for its large arrays "
                    "(see runtime/plan.no_huge_pages)", lambda v: v == '1')
disable_passes = Switch('GRAPHC_DISABLE_PASSES', '', "pass names, comma-separated ('all': every pass)")
dump_ir = Switch('GRAPHC_DUMP_IR', None, "a directory: the IR before and after each pass")
verify_ir = Switch('GRAPHC_VERIFY_IR', False, "1 verifies the IR after every pass", lambda v: v == '1')
log_retrace = Switch('GRAPHC_LOG_RETRACE', False, "1 prints why a hybridized block traces again", lambda v: v == '1')
max_traces = Switch('GRAPHC_MAX_TRACES', 64, "traced signatures kept per block (an integer)", lambda v: max(1, int(v)))
compile_ahead = Switch('GRAPHC_COMPILE_AHEAD', False, "1 compiles kernels ahead on a compile thread (with 2+ "
                       "threads), 0 each when first needed on the calling thread", lambda v: v == '1')
compile_fork = Switch('GRAPHC_COMPILE_FORK', True, "0 compiles a training step's kernels where first needed, not "
                      "in a forked worker process (with 2+ threads)", _on)
tiered = Switch('GRAPHC_TIERED', 'auto', "1 runs a training step's first call uncompiled while its kernels compile, "
                "0 has it wait for them, auto the first only where both compute the same bits (runtime/tiered.py)",
                ('auto', '0', '1'))
max_kernels = Switch('GRAPHC_MAX_KERNELS', 20000, "compiled kernels per process (an integer)", int)
cache_dir = Switch('GRAPHC_CACHE_DIR', os.path.join(HOME, '.cache', 'graphc'), "the compiled-kernel cache's directory")
cache_max_bytes = Switch('GRAPHC_CACHE_MAX_MB', 256 << 20, "the kernel cache's size on disk in MB (a number)", _mb)
max_graph_bytes = Switch('GRAPHC_MAX_GRAPH_BYTES', None, "bytes of all a graph's values (a number)",
                         lambda v: int(float(v)))
max_graph_nodes = Switch('GRAPHC_MAX_GRAPH_NODES', 200000, "nodes of a loaded graph (an integer)", int)
bucket_bytes = Switch('GRAPHC_BUCKET_MB', 25 << 20, "MB of gradients per dist_sync allreduce (a number)", _mb)
overlap = Switch('GRAPHC_OVERLAP', True, "0 reduces dist_sync gradients at the step, not during the backward", _on)
data = Switch('GRAPHC_DATA', None, "a directory with datasets (MNIST under DIR/mnist)")
mxnet_home = Switch('MXNET_HOME', os.path.join(HOME, '.mxnet'), "MXNet's data directory (datasets, models, embeddings)")
update_on_kvstore = Switch('MXNET_UPDATE_ON_KVSTORE', True, "0 updates weights in the Trainer, not the kvstore",
                           lambda v: bool(int(v)))
eliminate_common_expr = Switch('MXNET_ELIMINATE_COMMON_EXPR', True, "0 switches cse off in bound executors", _on)
bench_mxnet_python = Switch('GRAPHC_BENCH_MXNET_PYTHON', None, "a Python (3.8) with MXNet 1.9.1: `graphc bench "
                            "--peers` times MXNet there")
