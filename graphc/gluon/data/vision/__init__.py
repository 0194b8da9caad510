"""gluon.data.vision: the MNIST dataset and image transforms (vision.transforms), as MXNet Gluon 1.x.

MNIST reads the four original IDX .gz files. Each is checked against the sha256 of the
published file (or, for a re-gzipped copy, of its decompressed content) and its IDX header
(magic, dims, length) before use; any mismatch is a GraphcLoadError naming the file.
Nothing is downloaded unless MNIST(..., download=True) is asked for.
"""
import gzip
import hashlib
import os
import struct
import sys
import types
import zlib

import numpy as np

from ....base import GraphcError, GraphcLoadError
from ....ndarray.ndarray import NDArray
from ..dataset import Dataset

# ---------------------------------------------------------------- MNIST
# file -> (sha256 of the published .gz, sha256 of its content, content bytes); see data/README.md
_MNIST_FILES = {
    'train-images-idx3-ubyte.gz': ('440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
                                   'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db', 47040016),
    'train-labels-idx1-ubyte.gz': ('3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
                                   '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5', 60008),
    't10k-images-idx3-ubyte.gz': ('8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
                                  '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7', 7840016),
    't10k-labels-idx1-ubyte.gz': ('f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
                                  'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2', 10008),
}
_MNIST_MIRRORS = ('https://ossci-datasets.s3.amazonaws.com/mnist/',
                  'https://storage.googleapis.com/cvdf-datasets/mnist/')
_MAX_GZ_BYTES = 32 << 20  # the largest MNIST .gz is 9.9 MB: refuse to read anything much bigger


def mnist_search_path():
    """Where MNIST(root=None) looks, in order: the source checkout's bundled data/mnist,
    $GRAPHC_DATA/mnist, ~/.graphc/datasets/mnist."""
    here = os.path.abspath(__file__)
    for _ in range(5):  # graphc/gluon/data/vision/__init__.py -> repository root
        here = os.path.dirname(here)
    roots = [os.path.join(here, 'data', 'mnist')]
    if os.environ.get('GRAPHC_DATA'):
        roots.append(os.path.join(os.environ['GRAPHC_DATA'], 'mnist'))
    roots.append(os.path.join(os.path.expanduser('~'), '.graphc', 'datasets', 'mnist'))
    return roots


def _read_checked(path):
    """The decompressed content of one MNIST .gz, after checking it is the published file."""
    name = os.path.basename(path)
    gz_sha, raw_sha, raw_len = _MNIST_FILES[name]
    size = os.path.getsize(path)
    if size > _MAX_GZ_BYTES:
        raise GraphcLoadError(f"{path}: {size} bytes, far more than the MNIST file {name}; not MNIST")
    with open(path, 'rb') as f:
        gz = f.read()
    if hashlib.sha256(gz).hexdigest() == gz_sha:
        return gzip.decompress(gz)
    # maybe a re-gzipped copy (other header timestamp): compare the content, reading at most raw_len+1 bytes
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = d.decompress(gz, raw_len + 1)
    except zlib.error as e:
        raise GraphcLoadError(f"{path}: not a valid gzip file ({e}); delete it (and download again)") from None
    got = hashlib.sha256(raw).hexdigest()
    if len(raw) != raw_len or got != raw_sha:
        raise GraphcLoadError(f"{path}: sha256 mismatch: the file is not the published MNIST {name} "
                              f"(expected sha256 {gz_sha} for the .gz or {raw_sha} for its content; got "
                              f"{hashlib.sha256(gz).hexdigest()} / {got}). Delete it (and download again)")
    return raw


def parse_idx(raw, path, magic, dims):
    """An IDX ubyte array from bytes; `dims` are the expected sizes (None: any). Checks magic, dims, length."""
    ndim = magic & 0xFF
    if len(raw) < 4 + 4 * ndim:
        raise GraphcLoadError(f"{path}: byte offset 0: IDX header truncated ({len(raw)} bytes)")
    (got,) = struct.unpack_from('>I', raw, 0)
    if got != magic:
        raise GraphcLoadError(f"{path}: byte offset 0: IDX magic 0x{got:08x}, expected 0x{magic:08x} "
                              f"(ubyte, {ndim} dims)")
    shape = struct.unpack_from(f'>{ndim}I', raw, 4)
    for k, (d, want) in enumerate(zip(shape, dims)):
        if want is not None and d != want:
            raise GraphcLoadError(f"{path}: byte offset {4 + 4 * k}: IDX dimension {k} is {d}, expected {want}")
    need = 4 + 4 * ndim + int(np.prod(shape, dtype=np.int64))
    if len(raw) != need:
        raise GraphcLoadError(f"{path}: byte offset {min(len(raw), need)}: IDX length {len(raw)} bytes, "
                              f"expected {need} for shape {shape}")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _download(root, names):
    import urllib.request
    os.makedirs(root, exist_ok=True)
    for name in names:
        dst = os.path.join(root, name)
        if os.path.exists(dst):
            continue
        errors = []
        for mirror in _MNIST_MIRRORS:
            try:
                with urllib.request.urlopen(mirror + name, timeout=60) as r:
                    gz = r.read(_MAX_GZ_BYTES + 1)
            except OSError as e:
                errors.append(f"{mirror}: {e}")
                continue
            if hashlib.sha256(gz).hexdigest() != _MNIST_FILES[name][0]:
                errors.append(f"{mirror}: sha256 mismatch")
                continue
            tmp = f"{dst}.{os.getpid()}.tmp"
            with open(tmp, 'wb') as f:
                f.write(gz)
            os.replace(tmp, dst)
            break
        else:
            raise GraphcError(f"could not download MNIST {name}: " + '; '.join(errors))


class MNIST(Dataset):
    """The MNIST digits: samples (image NDArray uint8 (28, 28, 1) HWC, label numpy int32), as Gluon.

    root=None searches mnist_search_path(); download=True fetches missing files into root (or
    $GRAPHC_DATA/mnist, else ~/.graphc/datasets/mnist). transform(data, label), if given, is
    applied to every sample. The whole split is decoded into memory (47 MB for train).
    """

    def __init__(self, root=None, train=True, transform=None, download=False):
        split = 'train' if train else 't10k'
        names = (f'{split}-images-idx3-ubyte.gz', f'{split}-labels-idx1-ubyte.gz')
        roots = [os.path.expanduser(root)] if root is not None else mnist_search_path()
        found = next((r for r in roots if all(os.path.isfile(os.path.join(r, n)) for n in names)), None)
        if found is None:
            if not download:
                raise GraphcError(f"MNIST {split} files {names[0]}, {names[1]} not found in "
                                  f"{', '.join(roots)}; pass download=True to fetch them")
            found = roots[0] if root is not None else roots[-2] if os.environ.get('GRAPHC_DATA') else roots[-1]
            _download(found, names)  # into root, else $GRAPHC_DATA/mnist, else ~/.graphc/datasets/mnist
        self._root, self._train, self._transform = found, train, transform
        img_path, lbl_path = (os.path.join(found, n) for n in names)
        labels = parse_idx(_read_checked(lbl_path), lbl_path, 0x801, (None,))
        images = parse_idx(_read_checked(img_path), img_path, 0x803, (len(labels), 28, 28))
        self._data = NDArray(images.reshape(-1, 28, 28, 1))  # read-only view of the decoded bytes
        self._label = labels.astype(np.int32)

    def __len__(self):
        return len(self._label)

    def __getitem__(self, idx):
        x, y = NDArray(self._data._data[idx]), self._label[idx]
        return self._transform(x, y) if self._transform is not None else (x, y)

    def _batch(self, idx):
        x, y = NDArray(self._data._data[idx]), self._label[idx]
        if self._transform is None:
            return x, y
        return self._transform(x, y) if getattr(self._transform, 'batchable', False) else None


# ---------------------------------------------------------------- transforms
class _Transform:
    """Works on one sample or a batch (leading axis N); NDArray in, NDArray out; NumPy in, NumPy out."""
    batchable = True

    def __call__(self, x):
        if isinstance(x, NDArray):
            return NDArray(self.forward(x._data))
        return self.forward(np.asarray(x))

    def forward(self, x):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class ToTensor(_Transform):
    """HWC (or NHWC) image in [0, 255] -> CHW (NCHW) float32 in [0, 1]."""

    def forward(self, x):
        if x.ndim not in (3, 4):
            raise GraphcError(f"ToTensor: expects (H, W, C) or (N, H, W, C), got shape {x.shape}")
        axes = (2, 0, 1) if x.ndim == 3 else (0, 3, 1, 2)
        x = x.transpose(axes)
        out = np.empty(x.shape, np.float32)
        np.divide(x, np.float32(255), out=out)  # float32 division, as MXNet's to_tensor
        return out


class Normalize(_Transform):
    """(x - mean[c]) / std[c] per channel c of a CHW (or NCHW) float tensor; mean, std: float or per channel."""

    def __init__(self, mean=0.0, std=1.0):
        self._mean, self._std = mean, std
        self._m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self._s = np.asarray(std, np.float32).reshape(-1, 1, 1)

    def forward(self, x):
        if x.ndim not in (3, 4):
            raise GraphcError(f"Normalize: expects (C, H, W) or (N, C, H, W), got shape {x.shape}")
        c = x.shape[-3]
        for what, v in (('mean', self._m), ('std', self._s)):
            if len(v) not in (1, c):
                raise GraphcError(f"Normalize: {what} has {len(v)} values for {c} channels")
        return (x - self._m) / self._s

    def __repr__(self):
        return f"Normalize(mean={self._mean}, std={self._std})"


class Cast(_Transform):
    def __init__(self, dtype='float32'):
        self._dtype = np.dtype(dtype)

    def forward(self, x):
        return x.astype(self._dtype)

    def __repr__(self):
        return f"Cast({self._dtype})"


class Compose:
    """Apply transforms in order; batchable when all of them are."""

    def __init__(self, transforms):
        self._transforms = list(transforms)
        self.batchable = all(getattr(t, 'batchable', False) for t in self._transforms)

    def __call__(self, x):
        for t in self._transforms:
            x = t(x)
        return x

    def __repr__(self):
        return f"Compose([{', '.join(map(repr, self._transforms))}])"


# `from graphc.gluon.data.vision import transforms` and `vision.transforms.ToTensor` as in Gluon
transforms = types.ModuleType(__name__ + '.transforms', "Image transforms: ToTensor, Normalize, Cast, Compose.")
transforms.ToTensor, transforms.Normalize, transforms.Cast, transforms.Compose = ToTensor, Normalize, Cast, Compose
sys.modules[transforms.__name__] = transforms
