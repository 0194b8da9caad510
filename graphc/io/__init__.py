"""mx.io: MXNet's data iterators."""
from .io import (CSVIter, DataBatch, DataDesc, DataIter, MNISTIter, NDArrayIter, PrefetchingIter,  # noqa: F401
                 ResizeIter)
