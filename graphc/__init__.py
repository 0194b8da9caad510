"""graphc: Gluon-style deep learning with static-graph hybridization and a native graph compiler."""
__version__ = '0.1.0'

from .base import (GraphcError, GraphcShapeError, GraphcTraceError, GraphcLoadError,  # noqa: F401
                   DeferredInitializationError)
from .context import Context, cpu, gpu, current_context, num_gpus  # noqa: F401
from . import ndarray, autograd, random  # noqa: F401
from . import ndarray as nd  # noqa: F401  (MXNet's two names for one module)
from .ndarray.ndarray import NDArray, waitall  # noqa: F401
from . import initializer as init  # noqa: F401
from . import initializer, optimizer, lr_scheduler  # noqa: F401
from . import gluon  # noqa: F401
from . import symbol, symbol as sym  # noqa: F401,E402
from .explain import explain  # noqa: F401,E402
from . import base, util, context, metric  # noqa: F401,E402  (MXNet's module names)
from .base import MXNetError  # noqa: F401,E402
from .util import (is_np_shape, set_np_shape, np_shape, use_np_shape, is_np_array, np_array,  # noqa: F401,E402
                   use_np_array, use_np)
from . import kvstore, kvstore as kv  # noqa: F401,E402  (MXNet's mx.kv)

# MXNet's other module names load on first use (`mx.onnx`, `mx.image`, `from graphc import io`): most programs
# touch none of them, and importing them all was 10% of `import graphc`
_LAZY = {'rnn': 'rnn', 'viz': 'viz', 'name': 'name', 'attribute': 'attribute', 'io': 'io', 'operator': 'operator',
         'test_utils': 'test_utils', 'onnx': 'onnx', 'recordio': 'recordio', 'image': 'image', 'contrib': 'contrib',
         'module': 'module', 'mod': 'module', 'model': 'model', 'callback': 'callback'}


def __getattr__(name):
    if name == 'AttrScope':
        from .attribute import AttrScope
        return AttrScope
    if name not in _LAZY:
        raise AttributeError(f"module 'graphc' has no attribute {name!r}")
    import importlib
    mod = globals()[name] = importlib.import_module('.' + _LAZY[name], __name__)
    return mod


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | {'AttrScope'})
