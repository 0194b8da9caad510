"""Image decoding, resizing, cropping and augmentation, as MXNet 1.9's mx.image, on Pillow.

Images are HWC NDArrays (uint8 from the decoder, RGB unless to_rgb=False). Interpolation codes
are OpenCV's, which MXNet passes through: 0 nearest, 1 bilinear, 2 bicubic, 3 area, 4 Lanczos,
9 (bicubic to enlarge, area to shrink, else bilinear), 10 (one of 0-4 at random); resizing computes
OpenCV's cv::resize weights itself (within 1 level of MXNet's uint8 results: OpenCV rounds in fixed point);
sizes, crops and the arithmetic of the augmenters are MXNet's. Random choices draw from
graphc.random.generator(). Pillow is an optional dependency: `pip install graphc[image]`.
"""
import io
import json
import os

import numpy as np

from .. import random as _random
from ..base import GraphcError, GraphcLoadError
from ..ndarray.ndarray import NDArray


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise GraphcError("graphc.image needs Pillow to decode and resize images: pip install 'graphc[image]' "
                          "(or pip install pillow)") from None
    return Image


def _decode(buf, flag=1):
    """bytes -> NumPy uint8: flag 1 (H, W, 3) RGB, 0 (H, W) gray, -1 as stored ((H, W), RGB or RGBA)."""
    Image = _pil()
    try:
        img = Image.open(io.BytesIO(bytes(buf)))
        img.load()
    except Exception as e:  # noqa: BLE001 (Pillow raises many kinds)
        raise GraphcLoadError(f"imdecode: cannot decode {len(buf)} bytes as an image ({e})") from None
    if flag == 1:
        img = img.convert('RGB')
    elif flag == 0:
        img = img.convert('L')
    elif img.mode not in ('L', 'RGB', 'RGBA'):
        img = img.convert('RGBA' if 'A' in img.mode else 'RGB')
    return np.asarray(img)


def _np(src):
    return src.asnumpy() if isinstance(src, NDArray) else np.asarray(src)


def _wrap(a, like):
    return NDArray(np.ascontiguousarray(a)) if isinstance(like, NDArray) or not isinstance(like, np.ndarray) else a


def imdecode(buf, flag=1, to_rgb=True, out=None):
    """Decode an encoded image (bytes, or a uint8 NDArray/NumPy array of its bytes) into an HWC uint8 NDArray:
    flag 1 color (3 channels), 0 grayscale (1 channel); to_rgb=False gives BGR, as OpenCV."""
    if isinstance(buf, NDArray):
        buf = buf.asnumpy()
    if isinstance(buf, np.ndarray):
        buf = buf.astype(np.uint8, copy=False).tobytes()
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise GraphcError(f"imdecode: expects the encoded bytes of an image, got {type(buf).__name__}")
    img = _decode(buf, 1 if flag else 0)
    if img.ndim == 2:
        img = img[:, :, None]
    elif not to_rgb:
        img = img[:, :, ::-1]
    res = NDArray(np.ascontiguousarray(img))
    if out is not None:
        out[:] = res
        return out
    return res


def imread(filename, flag=1, to_rgb=True, out=None):
    """Read and decode an image file (see imdecode)."""
    if not os.path.isfile(filename):
        raise GraphcLoadError(f"imread: no such image file {filename!r}")
    with open(filename, 'rb') as f:
        return imdecode(f.read(), flag, to_rgb, out)


def _get_interp_method(interp, sizes=()):
    if interp == 9:
        if sizes:
            oh, ow, nh, nw = sizes
            if nh > oh and nw > ow:
                return 2
            if nh < oh and nw < ow:
                return 3
            return 1
        return 2
    if interp == 10:
        return int(_random.generator().integers(0, 5))
    if interp not in (0, 1, 2, 3, 4):
        raise GraphcError(f"Unknown interp method {interp}: use 0-4, 9 or 10 (OpenCV's codes)")
    return interp


def _taps(n_src, n_dst, interp, area_both):
    """The (n_dst, n_src) matrix of OpenCV's cv::resize weights along one axis (no antialiasing, as OpenCV):
    0 nearest, 1 bilinear, 2 bicubic (a = -0.75), 3 area (box averages when shrinking both axes, else
    OpenCV's area-mode bilinear), 4 Lanczos (8 taps); taps past the border repeat the edge pixel."""
    scale = n_src / n_dst
    d = np.arange(n_dst)
    w = np.zeros((n_dst, n_src))

    def add(rows, cols, vals):
        np.add.at(w, (rows, np.clip(cols, 0, n_src - 1)), vals)
    if interp == 0:
        w[d, np.minimum(np.floor(d * scale).astype(np.int64), n_src - 1)] = 1
    elif interp == 3 and area_both:
        for i in range(n_dst):
            f1 = i * scale
            f2, cell = f1 + scale, min(scale, n_src - f1)
            s2 = min(int(np.floor(f2)), n_src - 1)
            s1 = min(int(np.ceil(f1)), s2)
            if s1 - f1 > 1e-3:
                w[i, s1 - 1] += (s1 - f1) / cell
            w[i, s1:s2] += 1.0 / cell
            if f2 - s2 > 1e-3:
                w[i, s2] += min(min(f2 - s2, 1.0), cell) / cell
    elif interp in (1, 3):
        if interp == 1:
            f = (d + 0.5) * scale - 0.5
            s = np.floor(f)
            f = f - s
        else:  # OpenCV's INTER_AREA when enlarging
            s = np.floor(d * scale)
            f = (d + 1) - (s + 1) / scale
            f = np.where(f <= 0, 0.0, f - np.floor(f))
        s = s.astype(np.int64)
        f = np.where((s < 0) | (s >= n_src - 1), 0.0, f)
        s = np.clip(s, 0, n_src - 1)
        add(d, s, 1 - f)
        add(d, s + 1, f)
    elif interp == 2:
        f = (d + 0.5) * scale - 0.5
        s = np.floor(f).astype(np.int64)
        x = f - s
        a = -0.75
        c0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
        c1 = ((a + 2) * x - (a + 3)) * x * x + 1
        c2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
        for k, c in enumerate((c0, c1, c2, 1 - c0 - c1 - c2)):
            add(d, s - 1 + k, c)
    else:  # Lanczos-4
        f = (d + 0.5) * scale - 0.5
        s = np.floor(f).astype(np.int64)
        x = f - s
        dist = x[:, None] + 3 - np.arange(8)[None, :]
        with np.errstate(invalid='ignore', divide='ignore'):
            c = np.where(np.abs(dist) < 1e-6, 1.0,
                         np.sin(np.pi * dist) * np.sin(np.pi * dist / 4) / (np.pi ** 2 * dist ** 2 / 4))
        c /= c.sum(axis=1, keepdims=True)
        for k in range(8):
            add(d, s - 3 + k, c[:, k])
    return w


def _resize(a, w, h, interp):
    """NumPy HWC (or HW) -> (h, w) as OpenCV's cv::resize, which MXNet's imresize calls: separable weights,
    computed in float64; integer images are rounded and saturated back to their dtype."""
    if w < 1 or h < 1:
        raise GraphcError(f"imresize: target size must be positive, got {w}x{h}")
    if a.ndim not in (2, 3) or a.shape[0] < 1 or a.shape[1] < 1:
        raise GraphcError(f"imresize: expects an (H, W) or (H, W, C) image, got shape {a.shape}")
    interp = _get_interp_method(interp, (a.shape[0], a.shape[1], h, w))
    area_both = interp == 3 and a.shape[0] >= h and a.shape[1] >= w
    wy, wx = _taps(a.shape[0], h, interp, area_both), _taps(a.shape[1], w, interp, area_both)
    x = a.astype(np.float64)
    rows = np.tensordot(wy, x, axes=(1, 0))                     # (h, W, ...): two matrix products, not one
    out = np.moveaxis(np.tensordot(wx, rows, axes=(1, 1)), 0, 1)  # einsum over four indices (far slower)
    if a.dtype.kind in 'ui':
        info = np.iinfo(a.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(a.dtype)
    return out.astype(a.dtype)


_BORDERS = {0: 'constant', 1: 'edge', 2: 'symmetric', 3: 'wrap', 4: 'reflect'}  # OpenCV's border types


def copyMakeBorder(src, top, bot, left, right, type=0, value=0.0, values=()):  # noqa: A002 (MXNet's name)
    """src (HWC or HW) padded by top/bot rows and left/right columns, as OpenCV's copyMakeBorder: type 0
    constant (value, or values per channel), 1 replicate, 2 reflect (edge repeated), 3 wrap, 4 reflect_101."""
    a = _np(src)
    if type not in _BORDERS:
        raise GraphcError(f"copyMakeBorder: type must be 0-4 (constant, replicate, reflect, wrap, reflect_101), "
                          f"got {type}")
    pads = [(int(top), int(bot)), (int(left), int(right))] + [(0, 0)] * (a.ndim - 2)
    if min(min(p) for p in pads) < 0:
        raise GraphcError(f"copyMakeBorder: borders must be >= 0, got {top}, {bot}, {left}, {right}")
    if type != 0:
        return _wrap(np.pad(a, pads, mode=_BORDERS[type]), src)
    fill = np.asarray(values if len(values) else [value], np.float64)
    chans = a.shape[2] if a.ndim == 3 else 1
    if len(fill) not in (1, chans):
        raise GraphcError(f"copyMakeBorder: {len(fill)} border values for {chans} channels")
    out = np.pad(a, pads, mode='constant')
    mask = np.ones(out.shape[:2], bool)
    mask[pads[0][0]:pads[0][0] + a.shape[0], pads[1][0]:pads[1][0] + a.shape[1]] = False
    out[mask] = fill if a.ndim == 3 else fill[0]
    return _wrap(out, src)


def imresize(src, w, h, interp=1, out=None):
    """src (HWC) resized to width w, height h."""
    res = _wrap(_resize(_np(src), int(w), int(h), interp), src)
    if out is not None:
        out[:] = res
        return out
    return res


def scale_down(src_size, size):
    """(w, h) of `size` scaled down, keeping its aspect ratio, to fit in src_size (w, h)."""
    w, h = size
    sw, sh = src_size
    if sh < h:
        w, h = float(w * sh) / h, sh
    if sw < w:
        w, h = sw, float(h * sw) / w
    return int(w), int(h)


def resize_short(src, size, interp=2):
    """Resize so the shorter side is `size`, keeping the aspect ratio."""
    h, w = src.shape[:2]
    new_h, new_w = (size * h // w, size) if h > w else (size, size * w // h)
    return imresize(src, new_w, new_h, interp=_get_interp_method(interp, (h, w, new_h, new_w)))


def fixed_crop(src, x0, y0, w, h, size=None, interp=2):
    """The (w, h) crop at (x0, y0), resized to size (w, h) if given."""
    out = _wrap(_np(src)[y0:y0 + h, x0:x0 + w], src)
    if size is not None and (w, h) != tuple(size):
        out = imresize(out, *size, interp=_get_interp_method(interp, (h, w, size[1], size[0])))
    return out


def random_crop(src, size, interp=2):
    """A random crop of size (w, h) (scaled down to fit); returns (crop, (x0, y0, w, h))."""
    h, w = src.shape[:2]
    new_w, new_h = scale_down((w, h), size)
    rng = _random.generator()
    x0, y0 = int(rng.integers(0, w - new_w + 1)), int(rng.integers(0, h - new_h + 1))
    return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)


def center_crop(src, size, interp=2):
    """The central crop of size (w, h) (scaled down to fit); returns (crop, (x0, y0, w, h))."""
    h, w = src.shape[:2]
    new_w, new_h = scale_down((w, h), size)
    x0, y0 = int((w - new_w) / 2), int((h - new_h) / 2)
    return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)


def color_normalize(src, mean, std=None):
    """(src - mean) / std (either may be None)."""
    a = _np(src)
    a = a.astype(np.float32) if a.dtype.kind != 'f' else a
    if mean is not None:
        a = a - _np(mean).astype(a.dtype)
    if std is not None:
        a = a / _np(std).astype(a.dtype)
    return _wrap(a, src)


def random_size_crop(src, size, area, ratio, interp=2, **kwargs):
    """A crop of random area (fraction in `area`, or [area, 1]) and aspect ratio (log-uniform in `ratio`),
    resized to size; 10 tries, then center_crop. Returns (crop, (x0, y0, w, h))."""
    h, w = src.shape[:2]
    if 'min_area' in kwargs:
        area = kwargs.pop('min_area')
    if kwargs:
        raise GraphcError(f"random_size_crop: unexpected arguments {sorted(kwargs)}")
    if np.isscalar(area):
        area = (area, 1.0)
    rng = _random.generator()
    for _ in range(10):
        target = rng.uniform(area[0], area[1]) * h * w
        new_ratio = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        new_w, new_h = int(round(np.sqrt(target * new_ratio))), int(round(np.sqrt(target / new_ratio)))
        if new_w <= w and new_h <= h:
            x0, y0 = int(rng.integers(0, w - new_w + 1)), int(rng.integers(0, h - new_h + 1))
            return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)
    return center_crop(src, size, interp)


def _bilinear_sample(src, gx, gy):
    """MXNet's BilinearSampler on NumPy: src (N, C, H, W) read at grid points gx, gy (N, Ho, Wo) in [-1, 1]
    (-1: the first pixel's center, 1: the last's); corners outside the image count as 0."""
    n, c, h, w = src.shape
    x, y = (gx + 1) * (w - 1) / 2, (gy + 1) * (h - 1) / 2
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    out = np.zeros((n, c) + gx.shape[1:], np.float32)
    batch = np.arange(n)[:, None, None]
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            vals = src[batch, :, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]  # (N, Ho, Wo, C)
            out += np.moveaxis(vals * (wgt * inside)[..., None], -1, 1)
    return out


def imrotate(src, rotation_degrees, zoom_in=False, zoom_out=False):
    """Rotate a float32 CHW image (a scalar angle, degrees, counter-clockwise) or NCHW batch (a scalar or one
    angle per image) about its center, bilinearly, keeping its shape; outside the source is 0. zoom_in: scale
    so that no padding shows; zoom_out: so that the whole source stays in view (MXNet's mx.image.imrotate)."""
    import numbers
    if zoom_in and zoom_out:
        raise ValueError("imrotate: zoom_in and zoom_out cannot both be True")
    a = _np(src)
    if a.dtype != np.float32:
        raise TypeError(f"imrotate: only float32 images are supported, got {a.dtype}")
    single = a.ndim == 3
    if single:
        if not isinstance(rotation_degrees, numbers.Number):
            raise TypeError("imrotate: a single (C, H, W) image takes a scalar rotation angle")
        a = a[None]
    elif a.ndim != 4:
        raise ValueError(f"imrotate: expects a (C, H, W) image or an (N, C, H, W) batch, got shape {a.shape}")
    deg = np.full(len(a), float(rotation_degrees)) if isinstance(rotation_degrees, numbers.Number) else \
        _np(rotation_degrees).astype(np.float64).reshape(-1)
    if len(deg) != len(a):
        raise ValueError(f"imrotate: {len(a)} images but {len(deg)} rotation angles")
    rad = (np.pi * deg / 180)[:, None, None]
    h, w = a.shape[2:]
    hs, ws = (h - 1) / 2.0, (w - 1) / 2.0
    ym, xm = np.meshgrid(np.arange(h) - hs, np.arange(w) - ws, indexing='ij')
    gx = (xm * np.cos(rad) - ym * np.sin(rad)) / ws  # normalized after rotating, keeping the aspect ratio
    gy = (xm * np.sin(rad) + ym * np.cos(rad)) / hs
    if zoom_in or zoom_out:
        rho, ang = np.sqrt(h * h + w * w), np.arctan(h / w)
        r = np.abs(rad)
        max_x = np.maximum(np.abs(rho * np.cos(ang + r)), np.abs(rho * np.cos(ang - r)))
        max_y = np.maximum(np.abs(rho * np.sin(ang + r)), np.abs(rho * np.sin(ang - r)))
        scale = np.maximum(max_x / w, max_y / h) if zoom_out else np.minimum(w / max_x, h / max_y)
        gx, gy = gx * scale, gy * scale
    out = _bilinear_sample(a, gx.astype(np.float32), gy.astype(np.float32))
    out = out[0] if single else out
    return NDArray(out) if isinstance(src, NDArray) else out


def random_rotate(src, angle_limits, zoom_in=False, zoom_out=False):
    """imrotate by an angle drawn uniformly from angle_limits (lower, upper), one per image of a batch."""
    lo, hi = angle_limits
    rng = _random.generator()
    deg = float(rng.uniform(lo, hi)) if _np(src).ndim == 3 else rng.uniform(lo, hi, size=len(src))
    return imrotate(src, deg, zoom_in=zoom_in, zoom_out=zoom_out)


# ------------------------------------------------------------------ augmenters
class Augmenter:
    """Base class: __call__(src) -> augmented src; dumps() gives ['name', kwargs] JSON."""

    def __init__(self, **kwargs):
        self._kwargs = {k: (_np(v).tolist() if isinstance(v, (NDArray, np.ndarray)) else v) for k, v in kwargs.items()}

    def dumps(self):
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])

    def __call__(self, src):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._kwargs.items())})"


class SequentialAug(Augmenter):
    """The augmenters in order."""

    def __init__(self, ts):
        super().__init__()
        self.ts = list(ts)

    def dumps(self):
        return [self.__class__.__name__.lower(), [t.dumps() for t in self.ts]]

    def __call__(self, src):
        for t in self.ts:
            src = t(src)
        return src


class RandomOrderAug(SequentialAug):
    """The augmenters in a random order."""

    def __call__(self, src):
        for k in _random.generator().permutation(len(self.ts)):
            src = self.ts[k](src)
        return src


class ResizeAug(Augmenter):
    """resize_short(src, size)."""

    def __init__(self, size, interp=2):
        super().__init__(size=size, interp=interp)
        self.size, self.interp = size, interp

    def __call__(self, src):
        return resize_short(src, self.size, self.interp)


class ForceResizeAug(Augmenter):
    """Resize to size (w, h), ignoring the aspect ratio."""

    def __init__(self, size, interp=2):
        super().__init__(size=size, interp=interp)
        self.size, self.interp = size, interp

    def __call__(self, src):
        sizes = (src.shape[0], src.shape[1], self.size[1], self.size[0])
        return imresize(src, *self.size, interp=_get_interp_method(self.interp, sizes))


class RandomCropAug(Augmenter):
    def __init__(self, size, interp=2):
        super().__init__(size=size, interp=interp)
        self.size, self.interp = size, interp

    def __call__(self, src):
        return random_crop(src, self.size, self.interp)[0]


class RandomSizedCropAug(Augmenter):
    def __init__(self, size, area, ratio, interp=2, **kwargs):
        super().__init__(size=size, area=area, ratio=ratio, interp=interp)
        self.size, self.area, self.ratio, self.interp = size, kwargs.pop('min_area', area), ratio, interp
        if kwargs:
            raise GraphcError(f"RandomSizedCropAug: unexpected arguments {sorted(kwargs)}")

    def __call__(self, src):
        return random_size_crop(src, self.size, self.area, self.ratio, self.interp)[0]


class CenterCropAug(Augmenter):
    def __init__(self, size, interp=2):
        super().__init__(size=size, interp=interp)
        self.size, self.interp = size, interp

    def __call__(self, src):
        return center_crop(src, self.size, self.interp)[0]


_GRAY = np.array([0.299, 0.587, 0.114], np.float32)


class BrightnessJitterAug(Augmenter):
    """src * (1 + U(-brightness, brightness))."""

    def __init__(self, brightness):
        super().__init__(brightness=brightness)
        self.brightness = brightness

    def __call__(self, src):
        alpha = 1.0 + _random.generator().uniform(-self.brightness, self.brightness)
        return _wrap(_np(src) * np.float32(alpha), src)


class ContrastJitterAug(Augmenter):
    """alpha*src + (1-alpha)*mean gray level, alpha = 1 + U(-contrast, contrast)."""

    def __init__(self, contrast):
        super().__init__(contrast=contrast)
        self.contrast = contrast

    def __call__(self, src):
        alpha = 1.0 + _random.generator().uniform(-self.contrast, self.contrast)
        a = _np(src).astype(np.float32)
        gray = (a * _GRAY).sum() * (3.0 * (1.0 - alpha) / a.size)
        return _wrap(a * np.float32(alpha) + np.float32(gray), src)


class SaturationJitterAug(Augmenter):
    """alpha*src + (1-alpha)*per-pixel gray, alpha = 1 + U(-saturation, saturation)."""

    def __init__(self, saturation):
        super().__init__(saturation=saturation)
        self.saturation = saturation

    def __call__(self, src):
        alpha = 1.0 + _random.generator().uniform(-self.saturation, self.saturation)
        a = _np(src).astype(np.float32)
        gray = (a * _GRAY).sum(axis=2, keepdims=True) * np.float32(1.0 - alpha)
        return _wrap(a * np.float32(alpha) + gray, src)


class HueJitterAug(Augmenter):
    """Rotate the hue by U(-hue, hue) * 180 degrees in YIQ space."""
    _tyiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
    _ityiq = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.107, 1.705]])

    def __init__(self, hue):
        super().__init__(hue=hue)
        self.hue = hue

    def __call__(self, src):
        alpha = _random.generator().uniform(-self.hue, self.hue)
        u, w = np.cos(alpha * np.pi), np.sin(alpha * np.pi)
        bt = np.array([[1.0, 0.0, 0.0], [0.0, u, -w], [0.0, w, u]])
        t = (self._ityiq @ bt @ self._tyiq).T
        return _wrap(_np(src).astype(np.float32) @ t.astype(np.float32), src)


class ColorJitterAug(RandomOrderAug):
    """Brightness, contrast and saturation jitter (those that are nonzero) in a random order."""

    def __init__(self, brightness, contrast, saturation):
        ts = []
        if brightness > 0:
            ts.append(BrightnessJitterAug(brightness))
        if contrast > 0:
            ts.append(ContrastJitterAug(contrast))
        if saturation > 0:
            ts.append(SaturationJitterAug(saturation))
        super().__init__(ts)


class LightingAug(Augmenter):
    """AlexNet's PCA lighting noise: src + eigvec @ (alpha * eigval), alpha ~ N(0, alphastd) per component."""

    def __init__(self, alphastd, eigval, eigvec):
        super().__init__(alphastd=alphastd, eigval=eigval, eigvec=eigvec)
        self.alphastd, self.eigval, self.eigvec = alphastd, np.asarray(eigval), np.asarray(eigvec)

    def __call__(self, src):
        alpha = _random.generator().normal(0, self.alphastd, size=(3,))
        rgb = np.dot(self.eigvec * alpha, self.eigval)
        return _wrap(_np(src).astype(np.float32) + rgb.astype(np.float32), src)


class ColorNormalizeAug(Augmenter):
    def __init__(self, mean, std):
        super().__init__(mean=mean, std=std)
        self.mean = None if mean is None else _np(mean)
        self.std = None if std is None else _np(std)

    def __call__(self, src):
        return color_normalize(src, self.mean, self.std)


class RandomGrayAug(Augmenter):
    """With probability p, every channel becomes 0.21 R + 0.72 G + 0.07 B."""
    _mat = np.array([[0.21, 0.21, 0.21], [0.72, 0.72, 0.72], [0.07, 0.07, 0.07]], np.float32)

    def __init__(self, p):
        super().__init__(p=p)
        self.p = p

    def __call__(self, src):
        if _random.generator().random() < self.p:
            return _wrap(_np(src).astype(np.float32) @ self._mat, src)
        return src


class HorizontalFlipAug(Augmenter):
    """Flip left-right with probability p."""

    def __init__(self, p):
        super().__init__(p=p)
        self.p = p

    def __call__(self, src):
        if _random.generator().random() < self.p:
            return _wrap(_np(src)[:, ::-1], src)
        return src


class CastAug(Augmenter):
    def __init__(self, typ='float32'):
        super().__init__(type=typ)
        self.typ = typ

    def __call__(self, src):
        return _wrap(_np(src).astype(self.typ), src)


def CreateAugmenter(data_shape, resize=0, rand_crop=False, rand_resize=False, rand_mirror=False, mean=None,  # noqa: N802
                    std=None, brightness=0, contrast=0, saturation=0, hue=0, pca_noise=0, rand_gray=0,
                    inter_method=2):
    """MXNet's standard augmenter list for data_shape (C, H, W)."""
    auglist = []
    if resize > 0:
        auglist.append(ResizeAug(resize, inter_method))
    crop_size = (data_shape[2], data_shape[1])
    if rand_resize:
        if not rand_crop:
            raise GraphcError("CreateAugmenter: rand_resize needs rand_crop=True")
        auglist.append(RandomSizedCropAug(crop_size, 0.08, (3.0 / 4.0, 4.0 / 3.0), inter_method))
    elif rand_crop:
        auglist.append(RandomCropAug(crop_size, inter_method))
    else:
        auglist.append(CenterCropAug(crop_size, inter_method))
    if rand_mirror:
        auglist.append(HorizontalFlipAug(0.5))
    auglist.append(CastAug())
    if brightness or contrast or saturation:
        auglist.append(ColorJitterAug(brightness, contrast, saturation))
    if hue:
        auglist.append(HueJitterAug(hue))
    if pca_noise > 0:
        eigval = np.array([55.46, 4.794, 1.148])
        eigvec = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
        auglist.append(LightingAug(pca_noise, eigval, eigvec))
    if rand_gray > 0:
        auglist.append(RandomGrayAug(rand_gray))
    if mean is True:
        mean = np.array([123.68, 116.28, 103.53])
    if std is True:
        std = np.array([58.395, 57.12, 57.375])
    for what, v in (('mean', mean), ('std', std)):
        if v is not None and _np(v).shape[0] not in (1, 3):
            raise GraphcError(f"CreateAugmenter: {what} must have 1 or 3 values, got shape {_np(v).shape}")
    if mean is not None or std is not None:
        auglist.append(ColorNormalizeAug(mean, std))
    return auglist


# ------------------------------------------------------------------ ImageIter
class ImageIter:
    """Batches of images from a RecordIO file (path_imgrec, with path_imgidx for shuffling/partitions) or an
    image list (path_imglist: 'index<TAB>label(s)<TAB>path' lines, paths under path_root; or imglist, a list
    of [label(s), path]). Yields mx.io.DataBatch: data (batch, C, H, W) after aug_list (default
    CreateAugmenter(data_shape, **kwargs)), label (batch,) or (batch, label_width). last_batch_handle:
    'pad' (pad with the first images; batch.pad says how many), 'discard' or 'roll_over'."""

    def __init__(self, batch_size, data_shape, label_width=1, path_imgrec=None, path_imglist=None, path_root=None,
                 path_imgidx=None, shuffle=False, part_index=0, num_parts=1, aug_list=None, imglist=None,
                 data_name='data', label_name='softmax_label', dtype='float32', last_batch_handle='pad', **kwargs):
        from ..recordio import MXIndexedRecordIO, MXRecordIO
        if not (path_imgrec or path_imglist or imglist is not None):
            raise GraphcError("ImageIter: give path_imgrec, path_imglist or imglist")
        if len(data_shape) != 3 or data_shape[0] not in (1, 3):
            raise GraphcError(f"ImageIter: data_shape must be (channels 1 or 3, height, width), got {data_shape}")
        if last_batch_handle not in ('pad', 'discard', 'roll_over'):
            raise GraphcError(f"ImageIter: last_batch_handle must be 'pad', 'discard' or 'roll_over', "
                              f"got {last_batch_handle!r}")
        self.batch_size, self.data_shape, self.label_width = batch_size, tuple(data_shape), label_width
        self.dtype, self.shuffle, self.last_batch_handle = np.dtype(dtype), shuffle, last_batch_handle
        self.path_root = path_root or ''
        self.imgrec = self.imglist = None
        if path_imgrec:
            self.imgrec = (MXIndexedRecordIO(path_imgidx, path_imgrec, 'r') if path_imgidx
                           else MXRecordIO(path_imgrec, 'r'))
            self.seq = list(self.imgrec.keys) if path_imgidx else None
        else:
            entries = imglist if imglist is not None else _read_lst(path_imglist)
            self.imglist = {}
            for k, e in enumerate(entries):
                key = e[0] if path_imglist else k + 1
                label = np.asarray(e[1] if path_imglist else e[0], np.float32).reshape(-1)
                self.imglist[key] = (label, e[-1])
            self.seq = list(self.imglist)
        if self.seq is not None and num_parts > 1:
            n = len(self.seq) // num_parts
            self.seq = self.seq[part_index * n:(part_index + 1) * n]
        if self.shuffle and self.seq is None:
            raise GraphcError("ImageIter: shuffle needs random access: give path_imgidx with path_imgrec")
        self.auglist = aug_list if aug_list is not None else CreateAugmenter(data_shape, **kwargs)
        self.data_name, self.label_name = data_name, label_name
        self._cache = []  # roll_over: the images left over from the last epoch
        self.reset()

    @property
    def provide_data(self):
        return [_io().DataDesc(self.data_name, (self.batch_size,) + self.data_shape)]

    @property
    def provide_label(self):
        shape = (self.batch_size,) if self.label_width == 1 else (self.batch_size, self.label_width)
        return [_io().DataDesc(self.label_name, shape)]

    def reset(self):
        if self.seq is not None and self.shuffle:
            self.seq = [self.seq[k] for k in _random.generator().permutation(len(self.seq))]
        if self.imgrec is not None and self.seq is None:
            self.imgrec.reset()
        self.cur = 0

    def next_sample(self):
        """(label, decoded image) of the next image; StopIteration at the end."""
        if self.seq is not None:
            if self.cur >= len(self.seq):
                raise StopIteration
            key = self.seq[self.cur]
            self.cur += 1
            if self.imgrec is not None:
                from ..recordio import unpack
                header, img = unpack(self.imgrec.read_idx(key))
                return header.label, img
            label, fname = self.imglist[key]
            with open(os.path.join(self.path_root, fname), 'rb') as f:
                return label, f.read()
        from ..recordio import unpack
        s = self.imgrec.read()
        if s is None:
            raise StopIteration
        header, img = unpack(s)
        return header.label, img

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self):
        c, h, w = self.data_shape
        data = np.zeros((self.batch_size, c, h, w), self.dtype)
        label = np.zeros((self.batch_size, self.label_width), np.float32)
        i = 0
        for lab, img in self._cache:
            data[i], label[i] = img, lab
            i += 1
        self._cache = []
        try:
            while i < self.batch_size:
                lab, buf = self.next_sample()
                img = _np(self._augment(imdecode(buf, 1 if c == 3 else 0)))
                if img.shape[:2] != (h, w):
                    raise GraphcError(f"ImageIter: an augmented image is {img.shape[:2]}, data_shape wants {(h, w)}; "
                                      "add a crop or resize augmenter")
                data[i], label[i] = img.transpose(2, 0, 1), np.asarray(lab).reshape(-1)[:self.label_width]
                i += 1
        except StopIteration:
            if i == 0 or self.last_batch_handle == 'discard':
                raise
            if self.last_batch_handle == 'roll_over':
                self._cache = [(label[k], data[k]) for k in range(i)]
                raise
        pad = self.batch_size - i
        for k in range(i, self.batch_size):  # 'pad': repeat the batch's first images
            data[k], label[k] = data[k - i], label[k - i]
        lab = label[:, 0] if self.label_width == 1 else label
        return _io().DataBatch([NDArray(data)], [NDArray(lab)], pad=pad)

    def _augment(self, img):
        for aug in self.auglist:
            img = aug(img)
        return img


def _io():
    """mx.io (DataBatch, DataDesc), or their bare shapes where this graphc has no io module yet."""
    try:
        from .. import io as mxio
        return mxio
    except ImportError:
        import collections
        import types

        class DataBatch:
            def __init__(self, data, label=None, pad=None):
                self.data, self.label, self.pad = data, label, pad
        return types.SimpleNamespace(DataBatch=DataBatch,
                                     DataDesc=collections.namedtuple('DataDesc', ['name', 'shape']))


def _read_lst(path):
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.strip().split('\t')
            if not line.strip():
                continue
            if len(parts) < 3:
                raise GraphcLoadError(f"{path}: line {n}: expected 'index<TAB>label(s)<TAB>path', got {line.strip()!r}")
            try:
                out.append((int(float(parts[0])), [float(x) for x in parts[1:-1]], parts[-1]))
            except ValueError:
                raise GraphcLoadError(f"{path}: line {n}: bad index or label in {line.strip()!r}") from None
    return out
