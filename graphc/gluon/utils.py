"""Small helpers as mxnet.gluon.utils: split a batch across devices, clip gradients by global norm, download
and check files."""
import math
import warnings

import numpy as np

from .. import device as _dev, nd
from ..base import GraphcError, GraphcShapeError
from ..ndarray.ndarray import NDArray


def split_data(data, num_slice, batch_axis=0, even_split=True):
    """Split `data` into num_slice pieces along batch_axis, as np.array_split (MXNet 1.9's rule): with
    even_split=False the first size % num_slice pieces are one longer; pieces may be empty."""
    size = data.shape[batch_axis]
    if even_split and size % num_slice != 0:
        raise GraphcShapeError(f"data with shape {data.shape} cannot be evenly split into {num_slice} slices along "
                               f"axis {batch_axis}; use a batch size that's a multiple of {num_slice} or set "
                               "even_split=False")
    each, extra = divmod(size, num_slice)
    ends = np.cumsum([0] + [each + 1] * extra + [each] * (num_slice - extra))
    return [nd.slice_axis(data, axis=batch_axis, begin=int(ends[i]), end=int(ends[i + 1])) for i in range(num_slice)]


def split_and_load(data, ctx_list, batch_axis=0, even_split=True):
    """Split data along batch_axis and put one piece on each context."""
    if not isinstance(data, NDArray):
        data = nd.array(data, ctx=ctx_list[0])
    if len(ctx_list) == 1:
        return [data.as_in_context(ctx_list[0])]
    return [s.as_in_context(c) for s, c in zip(split_data(data, len(ctx_list), batch_axis, even_split), ctx_list)]


def parallel(fn, *per_device):
    """[fn(*args) for args in zip(*per_device)] with one thread per device (e.g. `parallel(net, shards)`):
    how SyncBatchNorm's statistics span the devices of one process (graphc/gluon/nn/sync_batchnorm.py)."""
    from .nn.sync_batchnorm import parallel as run
    return run(fn, *per_device)


def clip_global_norm(arrays, max_norm, check_isfinite=True):
    """Scale arrays in place by min(1, max_norm / norm), norm being their joint 2-norm, and return the norm
    (MXNet's: a scalar if check_isfinite, which also warns on a nan or inf norm; else a (1,) NDArray, so that
    nothing waits for the value). A nan norm makes every array nan."""
    if not arrays:
        raise GraphcError("clip_global_norm: no arrays given")
    total = math.sqrt(sum(float(np.sum(np.square(_dev.to_host(a._data), dtype=np.float64))) for a in arrays))
    if check_isfinite and not math.isfinite(total):
        warnings.warn("nan or inf is detected; clipping results will be undefined", UserWarning, stacklevel=2)
    scale = float(np.minimum(max_norm / (total + 1e-8), 1.0))  # np.minimum keeps a nan
    if scale != 1.0:
        for a in arrays:
            with _dev.on(a._data):
                a._data *= a._data.dtype.type(scale)
    dtype = arrays[0].dtype
    return dtype.type(total) if check_isfinite else nd.array([total], ctx=arrays[0].context, dtype=dtype)


def check_sha1(filename, sha1_hash):
    """Whether the file's SHA-1 hex digest is sha1_hash (MXNet compares the whole digest)."""
    import hashlib
    sha1 = hashlib.sha1()
    with open(filename, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            sha1.update(chunk)
    return sha1.hexdigest() == sha1_hash


def download(url, path=None, overwrite=False, sha1_hash=None, retries=5, verify_ssl=True):
    """Fetch url to path (a file, or a folder for the url's file name) and return the file's path. A file
    already there (with the right sha1_hash, if given) is kept unless overwrite. Without a network this
    fails with the url and where to put the file by hand; a partial download never replaces a file."""
    import os
    import ssl
    import tempfile
    import urllib.error
    import urllib.request
    fname = url.split('/')[-1]
    if not fname:
        raise GraphcError(f"download: cannot tell a file name from {url!r}; give path=")
    if path is not None:
        path = os.path.expanduser(os.fspath(path))
        fname = os.path.join(path, fname) if os.path.isdir(path) else path
    if not overwrite and os.path.exists(fname) and (not sha1_hash or check_sha1(fname, sha1_hash)):
        return fname
    if retries < 1:
        raise GraphcError(f"download: retries must be >= 1, got {retries}")
    if not verify_ssl:
        warnings.warn("download: verify_ssl=False, the server's certificate is not checked", UserWarning,
                      stacklevel=2)
    folder = os.path.dirname(os.path.abspath(fname))
    os.makedirs(folder, exist_ok=True)
    context = None if verify_ssl else ssl._create_unverified_context()
    last = None
    for _ in range(retries):
        try:
            with urllib.request.urlopen(url, timeout=30, context=context) as r:
                fd, tmp = tempfile.mkstemp(dir=folder, prefix='.download-')
                try:
                    with os.fdopen(fd, 'wb') as f:
                        for chunk in iter(lambda: r.read(1 << 20), b''):
                            f.write(chunk)
                    if sha1_hash and not check_sha1(tmp, sha1_hash):
                        raise GraphcError(f"download: {url} arrived with a different SHA-1 than {sha1_hash}; the "
                                          "file may be corrupt or the hash may be out of date")
                    os.replace(tmp, fname)
                finally:
                    if os.path.exists(tmp):
                        os.remove(tmp)
            return fname
        except (urllib.error.URLError, OSError) as e:  # no network, DNS, refused, timeout
            last = e
    raise GraphcError(f"download: cannot fetch {url} ({getattr(last, 'reason', last)}); without a network, "
                      f"copy the file to {fname} by hand")
