"""mx.image: decoding (imread, imdecode), resizing and cropping, augmenters and ImageIter, on Pillow."""
from .image import (imread, imdecode, imresize, copyMakeBorder, scale_down, resize_short, fixed_crop, random_crop,  # noqa: F401
                    center_crop, color_normalize, random_size_crop, imrotate, random_rotate, Augmenter,
                    SequentialAug, RandomOrderAug, ResizeAug, ForceResizeAug, RandomCropAug, RandomSizedCropAug, CenterCropAug,
                    BrightnessJitterAug, ContrastJitterAug, SaturationJitterAug, HueJitterAug, ColorJitterAug,
                    LightingAug, ColorNormalizeAug, RandomGrayAug, HorizontalFlipAug, CastAug, CreateAugmenter,
                    ImageIter)
