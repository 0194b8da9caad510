"""graphc: Gluon-style deep learning with static-graph hybridization and a native graph compiler."""
__version__ = '0.1.0'

import os as _os

# OpenBLAS's idle threads spin 2**18 cycles (~0.1 ms) after a GEMM, not its default 2**28 (~0.1 s), then sleep
# (read when NumPy loads it, so before the first NumPy import): spinning that long, they took the second core from
# oneDNN's OpenMP team and graphc's kernel threads (a LeNet convolution at 2 threads after a GEMM: 19.5 ms instead
# of 10.5); sleeping at once (2**4) made back-to-back small GEMMs wait for their wake-up (3 ms instead of 0.2)
_os.environ.setdefault('OPENBLAS_THREAD_TIMEOUT', '18')

from .base import (GraphcError, GraphcShapeError, GraphcTraceError, GraphcLoadError,  # noqa: F401
                   DeferredInitializationError)
from .context import Context, cpu, gpu, current_context, num_gpus  # noqa: F401
from . import ndarray, autograd, random  # noqa: F401
from . import ndarray as nd  # noqa: F401  (MXNet's two names for one module)
from .ndarray.ndarray import NDArray, waitall  # noqa: F401
from . import initializer as init  # noqa: F401
from . import initializer, optimizer, lr_scheduler  # noqa: F401
from . import gluon  # noqa: F401
from . import rnn  # noqa: F401  (the legacy mx.rnn: names its gluon.rnn replacements)
from . import symbol, symbol as sym  # noqa: F401,E402
from . import viz  # noqa: F401,E402
from .explain import explain  # noqa: F401,E402
from . import base, util, name, attribute, context, io, metric, operator  # noqa: F401,E402  (MXNet's module names)
from .base import MXNetError  # noqa: F401,E402
from .util import (is_np_shape, set_np_shape, np_shape, use_np_shape, is_np_array, np_array,  # noqa: F401,E402
                   use_np_array, use_np)
from .attribute import AttrScope  # noqa: F401,E402
from . import test_utils  # noqa: F401,E402
from . import onnx  # noqa: F401,E402  (graphc.onnx imports the onnx package only inside its functions)
from . import kvstore, kvstore as kv  # noqa: F401,E402  (MXNet's mx.kv)
from . import recordio, image  # noqa: F401,E402  (Pillow is imported only when an image is decoded)
from . import contrib  # noqa: F401,E402
from . import module, module as mod  # noqa: F401,E402  (MXNet legacy Module API)
from . import numpy, numpy as np, numpy_extension, numpy_extension as npx  # noqa: F401,E402  (mx.np, mx.npx)
from . import monitor, monitor as mon, executor, viz as visualization  # noqa: F401,E402  (MXNet's module names)
from .context import cpu_pinned  # noqa: F401,E402
ndarray.np = symbol.np = np  # F.np / F.npx inside hybrid_forward
ndarray.npx = symbol.npx = npx
from . import model, callback  # noqa: F401,E402
