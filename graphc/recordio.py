"""MXNet's RecordIO files (mx.recordio): MXRecordIO, MXIndexedRecordIO, pack/unpack, pack_img/unpack_img.

The format (dmlc-core's RecordIOWriter): each record is the magic 0xced7230a, a little-endian uint32
`cflag << 29 | length`, the bytes, and zero padding to a multiple of 4. A record whose payload holds
the magic at an aligned offset is split there into parts (cflag 1 first, 2 middle, 3 last; the magic
itself is dropped and restored on reading). An .idx file beside the .rec has one `key\\tbyte offset`
line per record. pack() puts MXNet's image-record header (flag, label, id, id2) before the payload.
"""
import io
import numbers
import os
import struct
from collections import namedtuple

import numpy as np

from .base import GraphcError, GraphcLoadError

_MAGIC = 0xced7230a
_MAGIC_BYTES = struct.pack('<I', _MAGIC)
_MAX_RECORD = 1 << 29


class MXRecordIO:
    """Reads or writes a RecordIO file sequentially. flag: 'r' or 'w'."""

    def __init__(self, uri, flag):
        self.uri, self.flag = str(uri), flag
        self.handle, self.is_open = None, False
        self.open()

    def open(self):
        if self.flag not in ('r', 'w'):
            raise GraphcError(f"MXRecordIO: flag must be 'r' or 'w', got {self.flag!r}")
        self.handle = open(self.uri, self.flag + 'b')
        self.writable = self.flag == 'w'
        self.pid, self.is_open = os.getpid(), True

    def close(self):
        if self.is_open:
            self.handle.close()
            self.is_open = False

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown)
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):  # for worker processes: reopened on the other side
        d = self.__dict__.copy()
        d['handle'], d['is_open'] = None, False
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self.open()

    def reset(self):
        """Back to the start (reading), or reopen (writing: truncates)."""
        self.close()
        self.open()

    def _check_pid(self):
        if self.pid != os.getpid():  # a forked worker shares the file offset: use its own handle
            if self.writable:
                raise GraphcError(f"{self.uri}: a RecordIO writer cannot be used from another process")
            pos = self.handle.tell() if self.is_open else 0
            self.handle = open(self.uri, 'rb')
            self.handle.seek(pos)
            self.pid = os.getpid()

    def write(self, buf):
        """Append one record (bytes)."""
        if not self.writable:
            raise GraphcError(f"{self.uri}: opened for reading; cannot write")
        self._check_pid()
        buf = bytes(buf)
        if len(buf) >= _MAX_RECORD:
            raise GraphcError(f"RecordIO records must be smaller than 2^29 bytes, got {len(buf)}")
        w, dptr = self.handle.write, 0
        for i in range(0, len(buf) - len(buf) % 4, 4):
            if buf[i:i + 4] == _MAGIC_BYTES:
                w(_MAGIC_BYTES + struct.pack('<I', (1 if dptr == 0 else 2) << 29 | (i - dptr)) + buf[dptr:i])
                dptr = i + 4
        w(_MAGIC_BYTES + struct.pack('<I', (3 if dptr else 0) << 29 | (len(buf) - dptr)) + buf[dptr:])
        w(b'\0' * (-len(buf) % 4))

    def tell(self):
        return self.handle.tell()

    def read(self):
        """The next record's bytes, or None at the end of the file."""
        if self.writable:
            raise GraphcError(f"{self.uri}: opened for writing; cannot read")
        self._check_pid()
        f, parts = self.handle, []
        while True:
            start = f.tell()
            head = f.read(8)
            if not head and not parts:
                return None
            if len(head) < 8:
                raise GraphcLoadError(f"{self.uri}: byte offset {start}: truncated record header")
            magic, lrec = struct.unpack('<II', head)
            if magic != _MAGIC:
                raise GraphcLoadError(f"{self.uri}: byte offset {start}: bad RecordIO magic 0x{magic:08x} "
                                      f"(expected 0x{_MAGIC:08x}); not a RecordIO file, or a wrong .idx offset")
            cflag, length = lrec >> 29, lrec & (_MAX_RECORD - 1)
            data = f.read(length + (-length % 4))
            if len(data) < length:
                raise GraphcLoadError(f"{self.uri}: byte offset {start}: record of {length} bytes is truncated")
            if (cflag in (0, 1)) != (not parts):
                raise GraphcLoadError(f"{self.uri}: byte offset {start}: record part flag {cflag} out of order")
            parts.append(data[:length])
            if cflag in (0, 3):
                return _MAGIC_BYTES.join(parts)


class MXIndexedRecordIO(MXRecordIO):
    """A RecordIO file with an .idx index: read_idx(key) seeks straight to a record. key_type: int or str."""

    def __init__(self, idx_path, uri, flag, key_type=int):
        self.idx_path, self.key_type = str(idx_path), key_type
        self.idx, self.keys, self.fidx = {}, [], None
        super().__init__(uri, flag)

    def open(self):
        super().open()
        self.idx, self.keys = {}, []
        self.fidx = open(self.idx_path, self.flag)
        if self.writable:
            return
        for n, line in enumerate(self.fidx, 1):
            fields = line.strip().split('\t')
            if not line.strip():
                continue
            if len(fields) < 2:
                raise GraphcLoadError(f"{self.idx_path}: line {n}: expected 'key<TAB>offset', got {line.strip()!r}")
            try:
                key, pos = self.key_type(fields[0]), int(fields[1])
            except ValueError:
                raise GraphcLoadError(f"{self.idx_path}: line {n}: bad key or offset {line.strip()!r}") from None
            self.idx[key] = pos
            self.keys.append(key)

    def close(self):
        if self.is_open and self.fidx is not None:
            self.fidx.close()
        super().close()

    def __getstate__(self):
        d = super().__getstate__()
        d['fidx'] = None
        return d

    def seek(self, idx):
        """Move to the record with key idx."""
        if self.writable:
            raise GraphcError(f"{self.uri}: opened for writing; cannot seek")
        self._check_pid()
        if idx not in self.idx:
            raise KeyError(f"{self.idx_path}: no record with key {idx!r}")
        self.handle.seek(self.idx[idx])

    def read_idx(self, idx):
        """The record with key idx."""
        self.seek(idx)
        return self.read()

    def write_idx(self, idx, buf):
        """Append a record under key idx."""
        key = self.key_type(idx)
        pos = self.tell()
        self.write(buf)
        self.fidx.write(f'{key}\t{pos}\n')
        self.idx[key] = pos
        self.keys.append(key)


IRHeader = namedtuple('HEADER', ['flag', 'label', 'id', 'id2'])
IRHeader.__doc__ = """An image record's header: flag (0, or the number of float labels that follow the header),
label (a float, or an array of flag floats), id and id2 (uint64)."""
_IR_FORMAT = '<IfQQ'
_IR_SIZE = struct.calcsize(_IR_FORMAT)


def pack(header, s):
    """header (IRHeader or a 4-tuple) and payload bytes s -> one record. A non-scalar label is stored
    as flag float32 values after the header."""
    header = IRHeader(*header)
    if isinstance(header.label, numbers.Number):
        header = header._replace(flag=0)
    else:
        label = np.asarray(header.label, dtype=np.float32)
        header = header._replace(flag=label.size, label=0)
        s = label.tobytes() + bytes(s)
    return struct.pack(_IR_FORMAT, *header) + bytes(s)


def unpack(s):
    """One record -> (IRHeader, payload bytes)."""
    if len(s) < _IR_SIZE:
        raise GraphcLoadError(f"image record of {len(s)} bytes is shorter than its {_IR_SIZE}-byte header")
    header = IRHeader(*struct.unpack(_IR_FORMAT, s[:_IR_SIZE]))
    s = s[_IR_SIZE:]
    if header.flag > 0:
        if len(s) < 4 * header.flag:
            raise GraphcLoadError(f"image record: header says {header.flag} labels, only {len(s)} bytes follow")
        header = header._replace(label=np.frombuffer(s, np.float32, header.flag))
        s = s[header.flag * 4:]
    return header, s


def unpack_img(s, iscolor=-1):
    """One record -> (IRHeader, image as a NumPy uint8 array). As OpenCV's imdecode, which MXNet uses:
    iscolor 1: 3 channels BGR, 0: grayscale (H, W), -1: as stored (BGR for color)."""
    header, s = unpack(s)
    from .image.image import _decode
    img = _decode(s, {1: 1, 0: 0}.get(iscolor, -1))
    if img.ndim == 3 and img.shape[2] >= 3:
        img = img[:, :, [2, 1, 0] + list(range(3, img.shape[2]))]  # RGB(A) -> BGR(A)
    return header, img


def pack_img(header, img, quality=95, img_fmt='.jpg'):
    """header and a NumPy uint8 image (BGR, as OpenCV's imencode takes it) -> one record, encoded as
    img_fmt ('.jpg' with quality 0-100, or '.png'; for PNG quality is the compression level 0-9)."""
    from .image.image import _pil
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise GraphcError(f"pack_img: images must be uint8, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] >= 3:
        img = img[:, :, [2, 1, 0] + list(range(3, img.shape[2]))]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    fmt = img_fmt.lower().lstrip('.')
    buf = io.BytesIO()
    if fmt in ('jpg', 'jpeg'):
        _pil().fromarray(img).save(buf, format='JPEG', quality=int(quality))
    elif fmt == 'png':
        _pil().fromarray(img).save(buf, format='PNG', compress_level=min(int(quality), 9))
    else:
        raise GraphcError(f"pack_img: img_fmt must be '.jpg' or '.png', got {img_fmt!r}")
    return pack(header, buf.getvalue())
