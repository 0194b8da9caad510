"""MXNet's mxnet.runtime feature list (Feature, Features, feature_list): which capabilities this build has.

graphc has no compile-time switches; each feature says whether graphc provides the capability now (CUDA:
a usable GPU; MKLDNN: the oneDNN library loaded). MXNet's names are all present, so code that asks
`Features().is_enabled('CUDA')` runs unchanged; an unknown name is a RuntimeError, as in MXNet.
"""
import collections

NAMES = ('CUDA', 'CUDNN', 'NCCL', 'CUDA_RTC', 'TENSORRT', 'CPU_SSE', 'CPU_SSE2', 'CPU_SSE3', 'CPU_SSE4_1',
         'CPU_SSE4_2', 'CPU_SSE4A', 'CPU_AVX', 'CPU_AVX2', 'OPENMP', 'SSE', 'F16C', 'JEMALLOC', 'BLAS_OPEN',
         'BLAS_ATLAS', 'BLAS_MKL', 'BLAS_APPLE', 'LAPACK', 'MKLDNN', 'OPENCV', 'CAFFE', 'PROFILER', 'DIST_KVSTORE',
         'CXX14', 'INT64_TENSOR_SIZE', 'SIGNAL_HANDLER', 'DEBUG', 'TVM_OP')
# always so in graphc: NumPy's BLAS and LAPACK, 64-bit sizes and indices, the profiler, dist kvstore
ALWAYS = {'BLAS_OPEN', 'LAPACK', 'INT64_TENSOR_SIZE', 'PROFILER', 'DIST_KVSTORE'}


class Feature:
    def __init__(self, name, enabled):
        self.name, self.enabled = name, enabled

    def __repr__(self):
        return ('✔ ' if self.enabled else '✖ ') + self.name


def _enabled(name):
    if name in ALWAYS:
        return True
    if name in ('CUDA', 'CUDNN'):
        from .context import num_gpus
        return num_gpus() > 0
    if name == 'MKLDNN':
        from .runtime import onednn
        return bool(onednn.available())
    return False


def feature_list():
    return [Feature(n, _enabled(n)) for n in NAMES]


class Features(collections.OrderedDict):
    """name -> Feature, in MXNet's order."""

    def __init__(self):
        super().__init__((f.name, f) for f in feature_list())

    def __repr__(self):
        return str(list(self.values()))

    def is_enabled(self, feature_name):
        name = feature_name.upper()
        if name not in self:
            raise RuntimeError(f"Feature '{feature_name}' is unknown, known features are: {list(self)}")
        return self[name].enabled
