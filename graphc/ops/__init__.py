"""Importing this package registers every op."""
from . import elemwise, shape, reduce, nn  # noqa: F401
from . import rnn  # noqa: F401
from . import norm  # noqa: F401
from . import ctc, reshape_like  # noqa: F401
from . import random  # noqa: F401
from . import math, sort, output, index, linalg, sequence, layout, spatial  # noqa: F401
from . import np_array  # noqa: F401
from . import signatures  # noqa: F401  (after every op: MXNet's positional attribute orders)
from . import boxes, roi  # noqa: F401,E402  (contrib.box_nms, ROIPooling, contrib.ROIAlign)
from .. import operator  # noqa: F401,E402  (Custom: mx.operator's Python operators)
