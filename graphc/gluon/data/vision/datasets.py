"""gluon.data.vision datasets, as MXNet Gluon 1.x: MNIST, FashionMNIST, CIFAR10, CIFAR100 (read from local
files in their original formats), ImageRecordDataset and ImageFolderDataset.

MNIST reads the four original IDX .gz files. Each is checked against the sha256 of the
published file (or, for a re-gzipped copy, of its decompressed content) and its IDX header
(magic, dims, length) before use; any mismatch is a GraphcLoadError naming the file.
Nothing is downloaded unless MNIST(..., download=True) is asked for.
"""
import gzip
import hashlib
import os
import struct
import tarfile
import warnings
import zlib

import numpy as np

from .... import config
from ....base import GraphcError, GraphcLoadError, data_dir as _data_dir
from ....ndarray.ndarray import NDArray
from ..dataset import Dataset, RecordFileDataset

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
    if config.data():
        roots.append(os.path.join(config.data(), 'mnist'))
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
            found = roots[0] if root is not None else roots[-2] if config.data() else roots[-1]
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


# ---------------------------------------------------------------- FashionMNIST, CIFAR
def _missing(what, path, url, root):
    return GraphcError(f"{what}: {path} not found. graphc does not download datasets: fetch {url} and put it in "
                       f"{root} (or pass root=<the folder that has it>)")


class _ArraysDataset(Dataset):
    """Samples (image NDArray uint8 HWC, label int32) of in-memory arrays; transform(data, label) if given."""

    def __len__(self):
        return len(self._label)

    def __getitem__(self, idx):
        x, y = NDArray(self._data[idx]), self._label[idx]
        return self._transform(x, y) if self._transform is not None else (x, y)

    def _batch(self, idx):
        x, y = NDArray(self._data[idx]), self._label[idx]
        if self._transform is None:
            return x, y
        return self._transform(x, y) if getattr(self._transform, 'batchable', False) else None


_FASHION_URL = 'https://github.com/zalandoresearch/fashion-mnist (data/fashion/*.gz)'


class FashionMNIST(_ArraysDataset):
    """Zalando's Fashion-MNIST: the four IDX .gz files (same names as MNIST's) in root; samples as MNIST's."""

    def __init__(self, root=os.path.join(_data_dir(), 'datasets', 'fashion-mnist'), train=True, transform=None):
        root = os.path.expanduser(root)
        split = 'train' if train else 't10k'
        n = 60000 if train else 10000
        arrays = []
        for name, magic, dims in ((f'{split}-images-idx3-ubyte.gz', 0x803, (n, 28, 28)),
                                  (f'{split}-labels-idx1-ubyte.gz', 0x801, (n,))):
            path = os.path.join(root, name)
            if not os.path.isfile(path):
                raise _missing('FashionMNIST', path, _FASHION_URL, root)
            arrays.append(parse_idx(_gunzip(path, 4 + 4 * len(dims) + int(np.prod(dims))), path, magic, dims))
        self._data, self._label = arrays[0].reshape(-1, 28, 28, 1), arrays[1].astype(np.int32)
        self._root, self._train, self._transform = root, train, transform


def _gunzip(path, size):
    """The content of a .gz file, reading at most size+1 bytes of it (a bigger file is not the dataset)."""
    with open(path, 'rb') as f:
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(f.read(), size + 1)
        except zlib.error as e:
            raise GraphcLoadError(f"{path}: not a valid gzip file ({e})") from None
    return raw


_CIFAR_REC = {10: 1 + 3072, 100: 2 + 3072}


class _CIFAR(_ArraysDataset):
    _classes, _url = 10, 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'
    _archive, _folder = 'cifar-10-binary.tar.gz', 'cifar-10-batches-bin'

    def _files(self, train):
        raise NotImplementedError

    def _load(self, root, train, label_col):
        """Records of the split's .bin files, from root/<folder>/ or straight from the .tar.gz in root."""
        rec = _CIFAR_REC[self._classes]
        names = self._files(train)
        tar_path = os.path.join(root, self._archive)
        chunks = []
        for name in names:
            path = os.path.join(root, self._folder, name)
            if os.path.isfile(path):
                with open(path, 'rb') as f:
                    chunks.append(f.read())
            elif os.path.isfile(tar_path):
                with tarfile.open(tar_path, 'r:gz') as tar:  # read the member's bytes; nothing is extracted
                    try:
                        member = tar.getmember(f'{self._folder}/{name}')
                    except KeyError:
                        raise GraphcLoadError(f"{tar_path}: has no {self._folder}/{name}; not the CIFAR binary "
                                              "archive") from None
                    chunks.append(tar.extractfile(member).read())
            else:
                raise _missing(type(self).__name__, path, self._url, f"{root} (the .tar.gz itself, or extracted)")
            if len(chunks[-1]) % rec:
                raise GraphcLoadError(f"{path}: {len(chunks[-1])} bytes is not a whole number of {rec}-byte "
                                      "CIFAR records")
        data = np.frombuffer(b''.join(chunks), np.uint8).reshape(-1, rec)
        self._data = data[:, rec - 3072:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        self._label = data[:, label_col].astype(np.int32)


class CIFAR10(_CIFAR):
    """CIFAR-10 from its binary version (cifar-10-binary.tar.gz, or its cifar-10-batches-bin folder) in root:
    samples (image NDArray uint8 (32, 32, 3) HWC, label int32)."""

    def __init__(self, root=os.path.join(_data_dir(), 'datasets', 'cifar10'), train=True, transform=None):
        root = os.path.expanduser(root)
        self._load(root, train, 0)
        self._root, self._train, self._transform = root, train, transform

    def _files(self, train):
        return [f'data_batch_{i}.bin' for i in range(1, 6)] if train else ['test_batch.bin']


class CIFAR100(_CIFAR):
    """CIFAR-100 from its binary version (cifar-100-binary.tar.gz, or its cifar-100-binary folder) in root;
    fine_label=True gives the 100 fine classes, else the 20 coarse ones."""
    _classes, _url = 100, 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz'
    _archive, _folder = 'cifar-100-binary.tar.gz', 'cifar-100-binary'

    def __init__(self, root=os.path.join(_data_dir(), 'datasets', 'cifar100'), fine_label=False, train=True,
                 transform=None):
        root = os.path.expanduser(root)
        self._fine_label = fine_label
        self._load(root, train, 1 if fine_label else 0)
        self._root, self._train, self._transform = root, train, transform

    def _files(self, train):
        return ['train.bin' if train else 'test.bin']


# ---------------------------------------------------------------- image files
class ImageRecordDataset(RecordFileDataset):
    """Images in a RecordIO file (as im2rec writes them): samples (decoded HWC uint8 NDArray, label).
    flag 1: 3 channels RGB, 0: grayscale."""

    def __init__(self, filename, flag=1, transform=None):
        super().__init__(filename)
        self._flag, self._transform = flag, transform

    def __getitem__(self, idx):
        from ....image import imdecode
        from ....recordio import unpack
        header, img = unpack(super().__getitem__(idx))
        x, y = imdecode(img, self._flag), header.label
        return self._transform(x, y) if self._transform is not None else (x, y)


class ImageFolderDataset(Dataset):
    """Images in root/<class name>/<file> (.jpg, .jpeg, .png): samples (decoded HWC uint8 NDArray, class index).
    synsets: the class names, sorted; items: the (path, label) pairs."""
    _exts = ('.jpg', '.jpeg', '.png')

    def __init__(self, root, flag=1, transform=None):
        self._root = os.path.expanduser(root)
        if not os.path.isdir(self._root):
            raise GraphcError(f"ImageFolderDataset: {self._root} is not a folder")
        self._flag, self._transform = flag, transform
        self.synsets, self.items = [], []
        for folder in sorted(os.listdir(self._root)):
            path = os.path.join(self._root, folder)
            if not os.path.isdir(path):
                warnings.warn(f"Ignoring {path}, which is not a directory.", stacklevel=2)
                continue
            label = len(self.synsets)
            self.synsets.append(folder)
            for name in sorted(os.listdir(path)):
                fname = os.path.join(path, name)
                if os.path.splitext(name)[1].lower() not in self._exts:
                    warnings.warn(f"Ignoring {fname} of type {os.path.splitext(name)[1]}. Only support "
                                  f"{', '.join(self._exts)}", stacklevel=2)
                    continue
                self.items.append((fname, label))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, idx):
        from ....image import imread
        x, y = imread(self.items[idx][0], self._flag), self.items[idx][1]
        return self._transform(x, y) if self._transform is not None else (x, y)
