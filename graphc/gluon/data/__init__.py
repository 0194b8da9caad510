"""gluon.data: datasets, samplers and the DataLoader (MXNet Gluon 1.x API)."""
from .dataset import Dataset, SimpleDataset, ArrayDataset, RecordFileDataset  # noqa: F401
from .sampler import (Sampler, SequentialSampler, RandomSampler, BatchSampler, FilterSampler,  # noqa: F401
                      IntervalSampler)
from .dataloader import DataLoader, default_batchify_fn, default_mp_batchify_fn  # noqa: F401
from .split_sampler import SplitSampler  # noqa: F401
from . import vision  # noqa: F401
