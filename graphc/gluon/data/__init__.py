"""gluon.data: datasets, samplers and the DataLoader (MXNet Gluon 1.x API)."""
from .dataset import Dataset, SimpleDataset, ArrayDataset  # noqa: F401
from .dataloader import (DataLoader, default_batchify_fn, Sampler, SequentialSampler, RandomSampler,  # noqa: F401
                         BatchSampler)
from .split_sampler import SplitSampler  # noqa: F401
from . import vision  # noqa: F401
