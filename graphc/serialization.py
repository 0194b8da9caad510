"""MXNet 1.x `.params` files (NDArray lists), byte for byte (MXNET_FORMAT.md section 2).

    u64 0x112 | u64 0 | u64 n | n x array | u64 n_names (0 or n) | n_names x (u64 len, utf-8)
    array: u32 magic | i32 stype (V2/V3 only) | i32 ndim | ndim x i64 | i32 dev_type | i32 dev_id
           | i32 dtype code | raw little-endian C-order data

Arrays are written with the V2 array magic that MXNet 1.x reads by default, or V3 (NumPy shape
semantics) under np_shape, as MXNet does; V2 cannot hold a 0-d array (ndim 0 means "no array"), so
one is always V3. As in MXNet, a V3 array loads only under np_shape (0-d ones always: graphc has
them in legacy mode too), and a V2 shape with a 0 (legacy "unknown") not under np_shape.

The loader trusts nothing in the file: it only reads bytes and numbers (no object deserialization, no code evaluation),
checks every count, ndim and byte size against the bytes that remain before allocating
anything, and reports each defect as GraphcLoadError(file, byte offset, what is wrong).
"""
import io
import os
import secrets
import struct

import numpy as np

from . import base
from .base import CODE_DTYPES, DTYPE_CODES, GraphcError, GraphcLoadError
from .ndarray.ndarray import NDArray
from .registry import cut
from .util import _NP_SHAPE

LIST_MAGIC = 0x112
V1_MAGIC, V2_MAGIC, V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
MAX_NDIM = 32
DEV_TYPES = {1: 'cpu', 2: 'gpu', 3: 'cpu_pinned', 5: 'cpu_shared'}
_MX_ONLY_CODES = {8: 'int16', 9: 'uint16', 10: 'uint32', 11: 'uint64'}  # MXNet has, graphc not
BF16_CODE = 12  # MXNet's bfloat16 (mshadow kBfloat16): ml_dtypes' dtype here, its bits as little-endian uint16
_STYPES = {1: 'row_sparse', 2: 'csr'}
_STYPE_IDS = {v: k for k, v in _STYPES.items()}


# ---------------------------------------------------------------- save
def save_ndarrays(path, data):
    """Write a dict name -> array (names kept) or a list of arrays (no names) as MXNet .params.

    Arrays are NDArrays or NumPy arrays of a supported dtype. The file is written to a temporary
    name beside `path` and renamed over it, so a crash never leaves a half-written file.
    """
    if isinstance(data, dict):
        names, arrays = list(data), list(data.values())
        for k in names:
            if not isinstance(k, str):
                raise GraphcError(f"save_ndarrays({path!r}): names must be str, got {k!r}")
    elif isinstance(data, (NDArray, np.ndarray)):
        names, arrays = [], [data]
    else:
        names, arrays = [], list(data)
    arrays = [a if isinstance(a, NDArray) and a.stype != 'default' else a._data if isinstance(a, NDArray) else
              np.asarray(a) if isinstance(a, np.generic) else a for a in arrays]
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray) and not (isinstance(a, NDArray) and a.stype != 'default'):
            raise GraphcError(f"save_ndarrays({path!r}): item {names[i] if names else i!r} is "
                              f"{type(a).__name__}, not an NDArray or numpy array")
        if _code(a.dtype) is None:
            raise GraphcError(f"save_ndarrays({path!r}): {names[i] if names else i!r} has dtype {a.dtype}, which "
                              f"the .params format (MXNet dtype codes) cannot hold; supported: "
                              f"{', '.join(str(d) for d in DTYPE_CODES)}, bfloat16")

    def write(f):
        f.write(struct.pack('<QQQ', LIST_MAGIC, 0, len(arrays)))
        for a in arrays:
            if isinstance(a, NDArray):
                _write_sparse(f, _magic(a), a)
                continue
            _write_dense(f, _magic(a), a)
        f.write(struct.pack('<Q', len(names)))
        for k in names:
            b = k.encode('utf-8')
            f.write(struct.pack('<Q', len(b)) + b)
    _atomic_write(path, write)


def _magic(a):
    """V3 (NumPy shape semantics) under np_shape, as MXNet writes, or for a 0-d array, which V2 cannot hold."""
    return V3_MAGIC if _NP_SHAPE[0] or a.ndim == 0 else V2_MAGIC


def _write_dense(f, magic, a):
    f.write(struct.pack(f'<Iii{a.ndim}q', magic, 0, a.ndim, *a.shape))
    f.write(struct.pack('<iii', 1, 0, _code(a.dtype)))
    f.write(_le_bytes(a))


def array_record(a):
    """One dense array's record as bytes (MXNet's MXNDArraySaveRawBytes: what NDArray pickles hold)."""
    f = io.BytesIO()
    _write_dense(f, _magic(a), a)
    return f.getvalue()


def array_from_record(buf, name='<pickled NDArray>'):
    """The array of one record (array_record's, or MXNet's raw bytes); its device is ignored (loaded on the cpu)."""
    buf = bytes(buf)
    r = _Reader(io.BytesIO(buf), len(buf), name)
    a = _load_array(r, 0)
    if r.left:
        raise r.error(r.pos, f"{r.left} trailing bytes after the array")
    return a


def _write_sparse(f, magic, a):
    """MXNet's sparse array record: stype, storage (values) shape, shape, context, dtype, each aux array's
    type and shape (csr: indptr, indices; row_sparse: indices), the values, the aux arrays."""
    vals, aux = a._vals, [a._aux[0]] if a.stype == 'row_sparse' else [a._aux[1], a._aux[0]]
    sh = lambda s: struct.pack(f'<i{len(s)}q', len(s), *s)  # noqa: E731
    f.write(struct.pack('<Ii', magic, _STYPE_IDS[a.stype]) + sh(vals.shape) + sh(a.shape))
    f.write(struct.pack('<iii', 1, 0, _code(vals.dtype)))
    for x in aux:
        f.write(struct.pack('<i', DTYPE_CODES[np.dtype(np.int64)]) + sh(x.shape))
    for x in [vals] + aux:
        f.write(_le_bytes(x))


def _code(dt):
    """MXNet's dtype code of dt; None where the format has none."""
    return BF16_CODE if dt.name == 'bfloat16' else DTYPE_CODES.get(dt)


def _le_bytes(a):
    """a's elements as little-endian C-order bytes (bfloat16: its bits, as uint16)."""
    if a.dtype.name == 'bfloat16':
        a = np.ascontiguousarray(a).view(np.uint16)
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder('<')).reshape(-1).view(np.uint8)


def _atomic_write(path, write):
    path = os.fspath(path)
    d, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(d, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 & ~umask, like open()
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------- load
class _Reader:
    """Reads little-endian fields from a stream of known size; every read checked against what remains."""

    def __init__(self, f, size, fname):
        self.f, self.size, self.fname, self.pos = f, size, fname, 0

    def error(self, at, msg):
        return GraphcLoadError(f"{self.fname}: byte offset {at}: {msg}")

    @property
    def left(self):
        return self.size - self.pos

    def take(self, n, what):
        if n > self.left:
            raise self.error(self.pos, f"file truncated: {what} needs {n} bytes, only {self.left} left")
        b = self.f.read(n)
        if len(b) != n:
            raise self.error(self.pos, f"file truncated while reading {what} (it shrank while being read?)")
        self.pos += n
        return b

    def unpack(self, fmt, what):
        return struct.unpack('<' + fmt, self.take(struct.calcsize('<' + fmt), what))

    def into(self, arr, what):
        view = memoryview(arr.reshape(-1).view(np.uint8))
        got = self.f.readinto(view) if arr.nbytes else 0
        if got != arr.nbytes:
            raise self.error(self.pos, f"file truncated while reading {what}")
        self.pos += arr.nbytes


def load_ndarrays(path):
    """Read an MXNet .params file: a dict name -> NDArray (in file order), or a list when it has no names."""
    path = os.fspath(path)
    try:
        f = open(path, 'rb')
    except OSError as e:
        raise GraphcLoadError(f"{path}: cannot open: {e.strerror or e}") from None
    with f:
        return _load(f, os.fstat(f.fileno()).st_size, path)


def load_named(path):
    """load_ndarrays for parameters, always a dict: a file with no arrays (what MXNet writes for a model without
    parameters, with or without names) is {}; arrays without names cannot be matched to parameters."""
    loaded = load_ndarrays(path)
    if isinstance(loaded, list):
        if loaded:
            raise GraphcLoadError(f"{os.fspath(path)}: {len(loaded)} arrays without names (nd.save of a list); "
                                  "parameters are loaded by name: save a dict (nd.save(f, {name: array}))")
        return {}
    return loaded


def load_frombuffer(buf, name='<buffer>'):
    """load_ndarrays from bytes already in memory."""
    buf = bytes(buf)
    return _load(io.BytesIO(buf), len(buf), name)


def _load(f, size, fname):
    r = _Reader(f, size, fname)
    magic, _reserved, n = r.unpack('QQQ', 'the 24-byte header (magic, reserved, array count)')
    if magic != LIST_MAGIC:
        raise r.error(0, f"bad magic 0x{magic:x}, expected 0x112: not an MXNet NDArray list (.params) file")
    # every array takes at least 8 bytes, and the name count 8 more: bounds n before looping
    if n * 8 + 8 > r.left:
        raise r.error(16, f"absurd array count {n}: that many arrays need at least {n * 8 + 8} bytes, only "
                          f"{r.left} left (truncated or corrupt file)")
    arrays = [_load_array(r, i) for i in range(n)]
    at = r.pos
    (n_names,) = r.unpack('Q', 'the name count')
    if n_names not in (0, n):
        raise r.error(at, f"names count mismatch: {n_names} names for {n} arrays (must be 0 or {n})")
    names, seen = [], set()
    for i in range(n_names):
        at = r.pos
        (ln,) = r.unpack('Q', f'the length of name {i}')
        if ln > r.left:
            raise r.error(at, f"name {i} claims {ln} bytes, only {r.left} left (truncated or corrupt file)")
        try:
            name = r.take(ln, f'name {i}').decode('utf-8')
        except UnicodeDecodeError as e:
            raise r.error(at + 8, f"name {i} is not valid UTF-8 ({e.reason})") from None
        if name in seen:
            raise r.error(at, f"duplicate name {cut(name)}")
        seen.add(name)
        names.append(name)
    if r.left:
        raise r.error(r.pos, f"{r.left} trailing bytes after the last name")
    if not names:
        return arrays
    return dict(zip(names, arrays))


def _load_array(r, i):
    at = r.pos
    (magic,) = r.unpack('I', f'array {i} magic')
    if magic == V1_MAGIC:
        stype = 0
    elif magic in (V2_MAGIC, V3_MAGIC):
        (stype,) = r.unpack('i', f'array {i} storage type')
    else:
        raise r.error(at, f"array {i}: unknown array magic 0x{magic:08x} (expected 0xf993fac9; "
                          "pre-V1 legacy files are not supported)")
    if stype != 0:
        if stype not in _STYPES:
            raise r.error(at + 4, f"array {i}: unknown storage type {stype}")
        return _load_sparse(r, i, _STYPES[stype])
    at_shape = r.pos
    (ndim,) = r.unpack('i', f'array {i} ndim')
    if magic == V3_MAGIC and not _NP_SHAPE[0] and ndim != 0:  # (a 0-d array: V3 is the only way to hold one)
        raise r.error(at, f"array {i} was saved with NumPy shape semantics (V3): load it under mx.np_shape(True) "
                          "or npx.set_np(), as MXNet requires")
    # V1/V2: ndim 0 is an array with no shape ("none"); V3 (NumPy semantics): 0 is a scalar, -1 none
    if (ndim == 0 and magic != V3_MAGIC) or (ndim == -1 and magic == V3_MAGIC):
        raise r.error(at_shape, f"array {i} has no shape (an uninitialized MXNet NDArray)")
    if not 0 <= ndim <= MAX_NDIM:
        raise r.error(at_shape, f"array {i}: ndim {ndim} is outside 0..{MAX_NDIM}")
    shape = r.unpack(f'{ndim}q', f'array {i} shape ({ndim} dims)')
    if any(d < 0 for d in shape):
        raise r.error(at_shape + 4, f"array {i}: negative dimension in shape {shape}")
    if magic != V3_MAGIC and _NP_SHAPE[0] and 0 in shape:
        raise r.error(at_shape + 4, f"array {i}: a 0 in the legacy (V2) shape {shape} means 'unknown', which NumPy "
                                    "shape semantics (np_shape) cannot load; load it with np_shape off, as MXNet")
    dtype = _ctx_dtype(r, i)
    return NDArray(_raw(r, i, shape, dtype, 'data'))


def _ctx_dtype(r, i):
    at_ctx = r.pos
    dev_type, _dev_id, code = r.unpack('iii', f'array {i} device and dtype')
    if dev_type not in DEV_TYPES:
        raise r.error(at_ctx, f"array {i}: unknown device type {dev_type}")
    return _dtype_of(r, i, code, at_ctx + 8)


def _dtype_of(r, i, code, at):
    if code == BF16_CODE:
        try:
            return base.bfloat16()
        except GraphcError:
            raise r.error(at, f"array {i}: dtype code {code} is bfloat16, which needs the ml_dtypes package (NumPy "
                              "has no bfloat16): pip install ml_dtypes") from None
    dtype = CODE_DTYPES.get(code)
    if dtype is None:
        known = f" ({_MX_ONLY_CODES[code]}, not supported by graphc)" if code in _MX_ONLY_CODES else ''
        raise r.error(at, f"array {i}: unknown dtype code {code}{known}")
    return dtype


def _sparse_shape(r, i, what):
    at = r.pos
    (ndim,) = r.unpack('i', f'array {i} {what} ndim')
    if not 0 <= ndim <= MAX_NDIM:
        raise r.error(at, f"array {i}: {what} ndim {ndim} is outside 0..{MAX_NDIM}")
    shape = r.unpack(f'{ndim}q', f'array {i} {what} ({ndim} dims)')
    if any(d < 0 for d in shape):
        raise r.error(at + 4, f"array {i}: negative dimension in {what} {shape}")
    return shape


def _load_sparse(r, i, stype):
    """A row_sparse or csr record (see _write_sparse); its indices are checked before the array is built."""
    at = r.pos
    vshape, shape = _sparse_shape(r, i, 'storage shape'), _sparse_shape(r, i, 'shape')
    dtype = _ctx_dtype(r, i)
    aux = []
    for k in range(1 if stype == 'row_sparse' else 2):
        at_aux = r.pos
        (code,) = r.unpack('i', f'array {i} aux {k} type')
        aux.append((_dtype_of(r, i, code, at_aux), _sparse_shape(r, i, f'aux {k} shape')))
    vals = _raw(r, i, vshape, dtype, 'values')
    aux = [_raw(r, i, s, t, f'aux {k} data') for k, (t, s) in enumerate(aux)]
    from .ndarray.sparse import CSRNDArray, RowSparseNDArray
    try:
        if stype == 'row_sparse':
            out = RowSparseNDArray(vals, (aux[0].astype(np.int64).reshape(-1),), shape)
        elif len(shape) != 2:
            raise GraphcError(f"a CSR array must be 2-d, got shape {list(shape)}")
        else:
            out = CSRNDArray(vals.reshape(-1), (aux[1].astype(np.int64).reshape(-1),
                                               aux[0].astype(np.int64).reshape(-1)), shape)
        out.check_format()
    except GraphcError as e:
        raise r.error(at, f"array {i} ({stype}): {e}") from None
    return out


def _raw(r, i, shape, dtype, what):
    nbytes = dtype.itemsize
    for d in shape:
        nbytes *= d  # Python ints: no overflow
    if nbytes > r.left:
        raise r.error(r.pos, f"array {i} of shape {shape} {dtype} needs {nbytes} bytes of data, "
                             f"only {r.left} left (truncated or corrupt file)")
    bits = dtype.name == 'bfloat16'  # (read as little-endian uint16, then viewed)
    arr = np.empty(shape, '<u2' if bits else dtype.newbyteorder('<'))
    r.into(arr, f'array {i} {what}')
    if bits:
        return arr.astype(np.uint16, copy=False).view(dtype)
    return arr if arr.dtype.isnative else arr.astype(dtype)
