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
from . import viz  # noqa: F401,E402
from .explain import explain  # noqa: F401,E402
from . import recordio, image  # noqa: F401,E402  (Pillow is imported only when an image is decoded)
from . import contrib  # noqa: F401,E402
