"""gluon.data.vision.transforms, as MXNet Gluon 1.x: Compose, Cast, ToTensor, Normalize, Resize, CenterCrop,
RandomResizedCrop, RandomFlipLeftRight/TopBottom, RandomBrightness/Contrast/Saturation/Hue,
RandomColorJitter, RandomLighting, Rotate, RandomRotation, CropResize, RandomApply.

Transforms take an NDArray (or NumPy) image, HWC (ToTensor: HWC -> CHW; Normalize: CHW), and return the
same kind. Those marked batchable also take a batch (leading axis N), which DataLoader's fast path
uses. Random ones draw from graphc.random.generator(); the color jitters follow the formulas of
MXNet's image operators (gray = 0.299 R + 0.587 G + 0.114 B), integer images are saturated back to
their dtype as MXNet's operators do. Resizing and cropping use graphc.image (Pillow).
"""
import numpy as np

from .... import random as _random
from ....base import GraphcError
from ....ndarray.ndarray import NDArray

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


def _size(size, what):
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2 or not all(int(s) == s and s > 0 for s in size):
        raise GraphcError(f"{what}: size must be a positive int or (width, height), got {size!r}")
    return tuple(int(s) for s in size)


def _per_image(fn, x):
    """fn on an HWC image, or on each image of an NHWC batch."""
    if x.ndim == 4:
        return np.stack([fn(i) for i in x])
    if x.ndim != 3:
        raise GraphcError(f"expects an (H, W, C) image or an (N, H, W, C) batch, got shape {x.shape}")
    return fn(x)


def _saturate(out, like):
    """out (float) back to like's dtype: clipped to the range of an integer dtype, as MXNet's image ops."""
    if like.dtype.kind in 'ui':
        info = np.iinfo(like.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(like.dtype)
    return out.astype(like.dtype, copy=False)


class _Random(_Transform):
    """One image per call (each gets its own random draw)."""
    batchable = False


class Resize(_Transform):
    """Resize an HWC image (or each of an NHWC batch) to size (width, height); an int size: (size, size), or
    with keep_ratio the short side."""

    def __init__(self, size, keep_ratio=False, interpolation=1):
        self._size, self._keep, self._interp = size, keep_ratio, interpolation

    def forward(self, x):
        from ....image.image import _resize
        h, w = x.shape[-3:-1]
        if isinstance(self._size, int) and self._keep:
            _size(self._size, 'Resize')
            new_h, new_w = (self._size * h // w, self._size) if h > w else (self._size, self._size * w // h)
        else:
            new_w, new_h = _size(self._size, 'Resize')
        return _per_image(lambda i: _resize(i, new_w, new_h, self._interp), x)

    def __repr__(self):
        return f"Resize(size={self._size}, keep_ratio={self._keep}, interpolation={self._interp})"


class CenterCrop(_Transform):
    """The central (width, height) crop (scaled down to fit and resized back, as mx.image.center_crop)."""
    batchable = False

    def __init__(self, size, interpolation=1):
        self._size, self._interp = _size(size, 'CenterCrop'), interpolation

    def forward(self, x):
        from ....image import center_crop
        return center_crop(x, self._size, self._interp)[0]

    def __repr__(self):
        return f"CenterCrop(size={self._size})"


class RandomResizedCrop(_Random):
    """A crop of random area (fraction in scale) and aspect ratio (log-uniform in ratio), resized to size."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), interpolation=1):
        self._args = (_size(size, 'RandomResizedCrop'), scale, ratio, interpolation)

    def forward(self, x):
        from ....image import random_size_crop
        return random_size_crop(x, *self._args)[0]

    def __repr__(self):
        return f"RandomResizedCrop(size={self._args[0]}, scale={self._args[1]}, ratio={self._args[2]})"


class RandomFlipLeftRight(_Random):
    """Flip the width axis with probability 0.5."""

    def forward(self, x):
        return x[:, ::-1].copy() if _random.generator().random() < 0.5 else x


class RandomFlipTopBottom(_Random):
    """Flip the height axis with probability 0.5."""

    def forward(self, x):
        return x[::-1].copy() if _random.generator().random() < 0.5 else x


_GRAY = np.array([0.299, 0.587, 0.114], np.float32)


def _factor(amount):
    return _random.generator().uniform(max(0.0, 1.0 - amount), 1.0 + amount)


class RandomBrightness(_Random):
    """x * alpha, alpha ~ U(max(0, 1 - brightness), 1 + brightness)."""

    def __init__(self, brightness):
        self._brightness = brightness

    def forward(self, x):
        return _saturate(x.astype(np.float32) * np.float32(_factor(self._brightness)), x)


class RandomContrast(_Random):
    """x * alpha + (1 - alpha) * mean gray level of the image, alpha ~ U(max(0, 1 - contrast), 1 + contrast)."""

    def __init__(self, contrast):
        self._contrast = contrast

    def forward(self, x):
        alpha = np.float32(_factor(self._contrast))
        f = x.astype(np.float32)
        gray = (f[..., :3] * _GRAY).sum(axis=-1).mean()
        return _saturate(f * alpha + (1 - alpha) * gray, x)


class RandomSaturation(_Random):
    """x * alpha + (1 - alpha) * the pixel's gray level, alpha ~ U(max(0, 1 - saturation), 1 + saturation)."""

    def __init__(self, saturation):
        self._saturation = saturation

    def forward(self, x):
        alpha = np.float32(_factor(self._saturation))
        f = x.astype(np.float32)
        gray = (f[..., :3] * _GRAY).sum(axis=-1, keepdims=True)
        return _saturate(f * alpha + (1 - alpha) * gray, x)


class RandomHue(_Random):
    """Rotate the hue by U(-hue, hue) * 180 degrees in YIQ space (mx.image.HueJitterAug's transform)."""

    def __init__(self, hue):
        self._hue = hue

    def forward(self, x):
        from ....image.image import HueJitterAug
        alpha = _random.generator().uniform(-self._hue, self._hue)
        u, w = np.cos(alpha * np.pi), np.sin(alpha * np.pi)
        bt = np.array([[1.0, 0.0, 0.0], [0.0, u, -w], [0.0, w, u]])
        t = (HueJitterAug._ityiq @ bt @ HueJitterAug._tyiq).T.astype(np.float32)
        return _saturate(x.astype(np.float32) @ t, x)


class RandomColorJitter(_Random):
    """Brightness, contrast, saturation and hue jitter (the nonzero ones), in a random order."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        self._ts = [t(a) for t, a in ((RandomBrightness, brightness), (RandomContrast, contrast),
                                      (RandomSaturation, saturation), (RandomHue, hue)) if a]

    def forward(self, x):
        for k in _random.generator().permutation(len(self._ts)):
            x = self._ts[k].forward(x)
        return x


class RandomLighting(_Random):
    """AlexNet's PCA lighting noise: x + eigvec @ (a * eigval), a ~ N(0, alpha) per component (ImageNet's eigen
    decomposition, as MXNet's random_lighting)."""
    _eigval = np.array([55.46, 4.794, 1.148])
    _eigvec = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])

    def __init__(self, alpha):
        self._alpha = alpha

    def forward(self, x):
        a = _random.generator().normal(0, self._alpha, size=(3,))
        rgb = (self._eigvec * a) @ self._eigval
        return _saturate(x.astype(np.float32) + rgb.astype(np.float32), x)


class Rotate(_Transform):
    """Rotate a float32 CHW image (or NCHW batch) by rotation_degrees about its center, keeping its shape
    (mx.image.imrotate; zoom_in / zoom_out as there). Use it after ToTensor."""

    def __init__(self, rotation_degrees, zoom_in=False, zoom_out=False):
        self._args = (rotation_degrees, zoom_in, zoom_out)

    def forward(self, x):
        from ....image import imrotate
        if x.dtype != np.float32:
            raise TypeError(f"Rotate: only float32 images are supported (got {x.dtype}); call it after ToTensor")
        return imrotate(x, *self._args)

    def __repr__(self):
        return f"Rotate(rotation_degrees={self._args[0]}, zoom_in={self._args[1]}, zoom_out={self._args[2]})"


class RandomRotation(_Random):
    """With probability rotate_with_proba, rotate a float32 CHW image (or each of an NCHW batch) by an angle
    drawn uniformly from angle_limits (lower, upper) degrees."""

    def __init__(self, angle_limits, zoom_in=False, zoom_out=False, rotate_with_proba=1.0):
        lower, upper = angle_limits
        if lower >= upper:
            raise ValueError(f"RandomRotation: angle_limits must be (lower, upper) with lower < upper, got "
                             f"{angle_limits!r}")
        if not 0 <= rotate_with_proba <= 1:
            raise ValueError(f"RandomRotation: rotate_with_proba must be in [0, 1], got {rotate_with_proba}")
        self._args, self._p = (tuple(angle_limits), zoom_in, zoom_out), rotate_with_proba

    def forward(self, x):
        from ....image import random_rotate
        if _random.generator().random() > self._p:
            return x
        if x.dtype != np.float32:
            raise TypeError(f"RandomRotation: only float32 images are supported (got {x.dtype}); call it after "
                            "ToTensor")
        return random_rotate(x, *self._args)

    def __repr__(self):
        return f"RandomRotation(angle_limits={self._args[0]}, rotate_with_proba={self._p})"


class CropResize(_Transform):
    """The (width, height) crop at (x, y) of an HWC image (or NHWC batch), resized to size when given."""

    def __init__(self, x, y, width, height, size=None, interpolation=None):
        self._box, self._interp = (int(x), int(y), int(width), int(height)), interpolation
        self._size = size  # checked when called, as MXNet

    def forward(self, img):
        x, y, w, h = self._box
        if img.ndim not in (3, 4):
            raise GraphcError(f"CropResize: expects an (H, W, C) image or an (N, H, W, C) batch, got {img.shape}")
        H, W = img.shape[-3:-1]
        if w <= 0 or h <= 0:
            raise GraphcError(f"CropResize: width and height must be positive, got {w}x{h}")
        if x < 0 or y < 0 or x + w > W or y + h > H:
            raise GraphcError(f"CropResize: the box x={x}, y={y}, width={w}, height={h} leaves the {W}x{H} image")
        out = img[..., y:y + h, x:x + w, :]
        if self._size is None:
            return out.copy()
        from ....image.image import _resize
        size, interp = _size(self._size, 'CropResize'), 1 if self._interp is None else self._interp
        return _per_image(lambda i: _resize(i, *size, interp), out)

    def __repr__(self):
        return f"CropResize(box={self._box}, size={self._size})"


class RandomApply(_Random):
    """Apply `transforms` (one transform or a Compose) with probability p, else pass the image through."""

    def __init__(self, transforms, p=0.5):
        self._t, self._p = transforms, float(p)

    def __call__(self, x):
        return self._t(x) if _random.generator().random() < self._p else x

    def __repr__(self):
        return f"RandomApply({self._t!r}, p={self._p})"
