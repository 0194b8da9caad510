"""gluon.data.vision: datasets (MNIST, FashionMNIST, CIFAR10, CIFAR100, ImageRecordDataset, ImageFolderDataset)
and image transforms (vision.transforms), as MXNet Gluon 1.x."""
from .datasets import (MNIST, FashionMNIST, CIFAR10, CIFAR100, ImageRecordDataset, ImageFolderDataset,  # noqa: F401
                       mnist_search_path, parse_idx)
from . import transforms  # noqa: F401
from .transforms import ToTensor, Normalize, Cast, Compose  # noqa: F401 (their old place)
