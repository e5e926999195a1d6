"""Paired augmentations on :class:`~vpd.data.base.Sample` (numpy, no OpenCV, no albumentations).

Every transform is a callable ``(sample, rng) -> sample`` that draws its randomness only from ``rng`` (the dataset
seeds it from ``(seed, epoch, index)``), so a sample's augmentation is reproducible and independent of worker count
and of resuming. Transforms never write into their input arrays: they return a new sample whose changed arrays are
new memory (never views of the input); arrays a transform does not change (e.g. depth under a photometric one) are
passed through as the same objects, so no transform may write into an array it received.

Geometric transforms move the image and every dense target alike (targets are resampled with nearest, so invalid zeros
and labels never blend); photometric ones touch the image only. Each transform says whether it is ``random`` (whether a
sample can come out differently from one epoch to the next: what training's latent cache needs to know). The photometric
defaults are albumentations' defaults, which the official VPD/GLPDepth recipe uses unchanged:
``RandomBrightnessContrast()``, ``RandomGamma()``, ``HueSaturationValue()``, each with p = 0.5.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vpd.data.base import Sample, Transform, target_kind
from vpd.data.nyuv2 import NYU_MAX_DEPTH

__all__ = [
    "CenterCrop",
    "Compose",
    "CutDepth",
    "HorizontalFlip",
    "HueSaturationValue",
    "RandomBrightnessContrast",
    "RandomCrop",
    "RandomGamma",
    "Resize",
    "depth_train_transform",
    "hsv_to_rgb",
    "rgb_to_hsv",
]


def _pair(size: int | Sequence[int], what: str) -> tuple[int, int]:
    pair = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    if len(pair) != 2 or min(pair) <= 0:
        raise ValueError(f"{what}: size must be a positive int or (height, width), got {size!r}")
    return pair[0], pair[1]


def _map_spatial(sample: Sample, fn: Callable[[np.ndarray], np.ndarray]) -> Sample:
    """Applies one spatial op to the image and every target (all ``[H, W, ...]``)."""
    return dataclasses.replace(
        sample, image=fn(sample.image), targets={key: fn(value) for key, value in sample.targets.items()}
    )


def _check_uint8(sample: Sample, what: str) -> None:
    if sample.image.dtype != np.uint8 or sample.image.ndim != 3 or sample.image.shape[2] != 3:
        raise ValueError(
            f"{what}: expected a uint8 [H, W, 3] image, got {sample.image.dtype} {sample.image.shape} ({sample.name})"
        )


class Compose:
    """Applies transforms in order, threading the same ``rng`` through them.

    Args:
        transforms: callables ``(sample, rng) -> sample``.
    """

    @property
    def random(self) -> bool:
        return any(getattr(t, "random", True) for t in self.transforms)  # unknown: assume random

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


# --------------------------------------------------------------------------------------------------- geometric


class RandomCrop:
    """Crops a uniformly placed ``size`` window from the image and its targets (no padding).

    Args:
        size: ``(height, width)`` or one int for a square.

    Raises:
        ValueError: (on call) the sample is smaller than ``size``.
    """

    random = True

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "RandomCrop")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        crop_h, crop_w = self.size
        height, width = sample.image.shape[:2]
        if height < crop_h or width < crop_w:
            raise ValueError(
                f"RandomCrop: crop {crop_h}x{crop_w} is larger than sample {sample.name!r} of {height}x{width}"
            )
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        return _map_spatial(sample, lambda a: a[top : top + crop_h, left : left + crop_w].copy())

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size})"


class CenterCrop:
    """Crops the central ``size`` window (top-left at ``((H - h) // 2, (W - w) // 2)``); deterministic.

    Args:
        size: ``(height, width)`` or one int for a square.
    """

    random = False

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "CenterCrop")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        crop_h, crop_w = self.size
        height, width = sample.image.shape[:2]
        if height < crop_h or width < crop_w:
            raise ValueError(
                f"CenterCrop: crop {crop_h}x{crop_w} is larger than sample {sample.name!r} of {height}x{width}"
            )
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        return _map_spatial(sample, lambda a: a[top : top + crop_h, left : left + crop_w].copy())

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class HorizontalFlip:
    """Mirrors the image and every target left-right with probability ``p``.

    Vector targets (``"normals"``, ``[H, W, 3]`` with x first; see ``TargetKind.mirror_x``) also get their x
    component negated, since mirroring the scene mirrors the direction each surface faces.

    Args:
        p: probability of flipping.
    """

    @property
    def random(self) -> bool:
        return 0 < self.p < 1

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        flipped = _map_spatial(sample, lambda a: a[:, ::-1].copy())
        for key, value in flipped.targets.items():
            if target_kind(key).mirror_x:
                value[..., 0] = -value[..., 0]  # a fresh copy, so this does not touch the input
        return flipped

    def __repr__(self) -> str:
        return f"HorizontalFlip(p={self.p})"


def _nearest_indices(src: int, dst: int) -> np.ndarray:
    # Half-pixel centres (like torch's "nearest-exact"), so up/down-sampling stays centred.
    return np.minimum(((np.arange(dst) + 0.5) * (src / dst)).astype(np.int64), src - 1)


class Resize:
    """Resizes to ``size``: bilinear image, nearest targets (so invalid zeros and labels never blend).

    The image is resampled with half-pixel centres and no antialiasing (``align_corners=False``, as OpenCV's
    ``INTER_LINEAR`` that the official code uses), then rounded to uint8. Nearest picks the source pixel whose centre
    is closest (half-pixel rule).

    Args:
        size: ``(height, width)`` or one int for a square.
    """

    random = False

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "Resize")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        _check_uint8(sample, "Resize")
        out_h, out_w = self.size
        height, width = sample.image.shape[:2]
        if (height, width) == (out_h, out_w):
            return _map_spatial(sample, lambda a: a.copy())
        image = torch.from_numpy(np.ascontiguousarray(sample.image)).permute(2, 0, 1)[None].float()
        image = F.interpolate(image, size=(out_h, out_w), mode="bilinear", align_corners=False)
        resized = image[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        rows, cols = _nearest_indices(height, out_h), _nearest_indices(width, out_w)

        def nearest(a: np.ndarray) -> np.ndarray:
            return a[rows][:, cols]  # fancy indexing copies

        return dataclasses.replace(
            sample, image=resized, targets={key: nearest(value) for key, value in sample.targets.items()}
        )

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


# ------------------------------------------------------------------------------------------------- photometric


@dataclass
class RandomBrightnessContrast:
    """``out = img * alpha + beta * 255`` with probability ``p`` (albumentations' ``brightness_by_max=True``).

    ``alpha ~ U(1 - contrast_limit, 1 + contrast_limit)``, ``beta ~ U(-brightness_limit, brightness_limit)``; the
    result is clipped to [0, 255] and rounded (albumentations truncates, which darkens by half a level on average).

    Args:
        brightness_limit: half-width of the brightness range, as a fraction of 255.
        contrast_limit: half-width of the contrast-factor range around 1.
        p: probability of applying.
    """

    random = True

    brightness_limit: float = 0.2
    contrast_limit: float = 0.2
    p: float = 0.5

    def sample_params(self, rng: np.random.Generator) -> dict[str, float]:
        """Draws ``{"alpha", "beta"}``."""
        alpha = 1.0 + rng.uniform(-self.contrast_limit, self.contrast_limit)
        beta = rng.uniform(-self.brightness_limit, self.brightness_limit)
        return {"alpha": float(alpha), "beta": float(beta)}

    @staticmethod
    def apply(image: np.ndarray, alpha: float, beta: float) -> np.ndarray:
        """Applies fixed parameters to a uint8 image (returns a new array)."""
        lut = np.clip(np.rint(np.arange(256, dtype=np.float64) * alpha + beta * 255.0), 0, 255).astype(np.uint8)
        return lut[image]

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        _check_uint8(sample, "RandomBrightnessContrast")
        return dataclasses.replace(sample, image=self.apply(sample.image, **self.sample_params(rng)))


@dataclass
class RandomGamma:
    """``out = 255 * (img / 255) ** gamma`` with probability ``p``, ``gamma ~ U(gamma_limit) / 100``.

    Args:
        gamma_limit: range of ``100 * gamma`` (albumentations' convention); the default gives gamma in [0.8, 1.2].
        p: probability of applying.
    """

    random = True

    gamma_limit: tuple[float, float] = (80.0, 120.0)
    p: float = 0.5

    def sample_params(self, rng: np.random.Generator) -> dict[str, float]:
        """Draws ``{"gamma"}``."""
        return {"gamma": float(rng.uniform(self.gamma_limit[0], self.gamma_limit[1]) / 100.0)}

    @staticmethod
    def apply(image: np.ndarray, gamma: float) -> np.ndarray:
        """Applies a fixed gamma to a uint8 image (returns a new array; rounded, so gamma 1 is the identity)."""
        lut = np.clip(np.rint(255.0 * (np.arange(256, dtype=np.float64) / 255.0) ** gamma), 0, 255).astype(np.uint8)
        return lut[image]

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        _check_uint8(sample, "RandomGamma")
        return dataclasses.replace(sample, image=self.apply(sample.image, **self.sample_params(rng)))


def rgb_to_hsv(image: np.ndarray) -> np.ndarray:
    """RGB uint8 ``[..., 3]`` -> float32 HSV ``[..., 3]``: hue in degrees [0, 360), saturation and value in [0, 255].

    Saturation and value use OpenCV's 8-bit scale (``S = 255 * (max - min) / max``, ``V = max``); hue is in degrees
    (OpenCV's 8-bit hue is degrees / 2).
    """
    rgb = image.astype(np.float32)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(axis=-1)
    chroma = value - rgb.min(axis=-1)
    safe_chroma = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(
        value == red,
        np.mod((green - blue) / safe_chroma, 6.0),
        np.where(value == green, (blue - red) / safe_chroma + 2.0, (red - green) / safe_chroma + 4.0),
    )
    hue = np.where(chroma > 0, hue * 60.0, 0.0)
    saturation = np.where(value > 0, 255.0 * chroma / np.where(value > 0, value, 1.0), 0.0)
    return np.stack([hue, saturation, value], axis=-1).astype(np.float32)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_hsv`: float HSV (degrees, 0-255, 0-255) -> RGB uint8, rounded and clipped."""
    hue, saturation, value = hsv[..., 0], hsv[..., 1] / 255.0, hsv[..., 2]
    channels = []
    for n in (5.0, 3.0, 1.0):  # R, G, B: the piecewise-linear closed form of the HSV hexcone
        k = np.mod(n + hue / 60.0, 6.0)
        channels.append(value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
    return np.clip(np.rint(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)


@dataclass
class HueSaturationValue:
    """Shifts hue, saturation and value with probability ``p`` (albumentations ``HueSaturationValue`` defaults).

    Shifts are drawn uniformly in ``[-limit, limit]``. Units follow OpenCV's 8-bit HSV that albumentations works in:
    hue in OpenCV units (degrees / 2, so 20 = 40 degrees, wrapping around), saturation and value on 0-255 (clipped).
    Computed in float (no OpenCV), so results can differ from albumentations by the rounding of OpenCV's 8-bit HSV
    (its hue is quantised to 2 degrees).

    Args:
        hue_shift_limit: in OpenCV hue units.
        sat_shift_limit: on the 0-255 saturation scale.
        val_shift_limit: on the 0-255 value scale.
        p: probability of applying.
    """

    random = True

    hue_shift_limit: float = 20.0
    sat_shift_limit: float = 30.0
    val_shift_limit: float = 20.0
    p: float = 0.5

    def sample_params(self, rng: np.random.Generator) -> dict[str, float]:
        """Draws ``{"hue_shift", "sat_shift", "val_shift"}`` (OpenCV hue units, 0-255, 0-255)."""
        return {
            "hue_shift": float(rng.uniform(-self.hue_shift_limit, self.hue_shift_limit)),
            "sat_shift": float(rng.uniform(-self.sat_shift_limit, self.sat_shift_limit)),
            "val_shift": float(rng.uniform(-self.val_shift_limit, self.val_shift_limit)),
        }

    @staticmethod
    def apply(image: np.ndarray, hue_shift: float, sat_shift: float, val_shift: float) -> np.ndarray:
        """Applies fixed shifts to a uint8 RGB image (returns a new array)."""
        hsv = rgb_to_hsv(image)
        hsv[..., 0] = np.mod(hsv[..., 0] + 2.0 * hue_shift, 360.0)
        hsv[..., 1] = np.clip(hsv[..., 1] + sat_shift, 0.0, 255.0)
        hsv[..., 2] = np.clip(hsv[..., 2] + val_shift, 0.0, 255.0)
        return hsv_to_rgb(hsv)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        _check_uint8(sample, "HueSaturationValue")
        return dataclasses.replace(sample, image=self.apply(sample.image, **self.sample_params(rng)))


# ----------------------------------------------------------------------------------------------------- CutDepth


@dataclass
class CutDepth:
    """CutDepth (GLPDepth/VPD): paste a vertical strip of the depth map into the image, with probability ``p``.

    With ``alpha, beta ~ U(0, 1)``: ``l = int(alpha * W)``, ``w = int(max((W - alpha * W) * beta * max_ratio, 1))``,
    and image columns ``l:l + w`` (all three channels) are replaced by the depth of those columns.

    Deviations from the official code, both deliberate:

    - The official loader applies it to every 4th sample of a per-worker counter; here each sample is cut with
      probability ``p = 0.25`` drawn from its own ``rng`` (the same rate, but reproducible under any worker count and
      when a run resumes).
    - The official code writes the raw depth-PNG values (millimetres) into the uint8 image, which wraps modulo 256.
      We hold depth in metres, so we write ``depth / max_depth * 255`` clipped to [0, 255] and rounded: near is dark,
      far is bright, invalid (0) is black.

    Args:
        p: probability of cutting.
        max_ratio: the official ``p = 0.75``, the largest strip width as a fraction of the columns right of ``l``.
        max_depth: depth (metres) mapped to 255 (10 for NYU, 80 for KITTI).
    """

    random = True

    p: float = 0.25
    max_ratio: float = 0.75
    max_depth: float = NYU_MAX_DEPTH

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if sample.depth is None or rng.random() >= self.p:
            return sample
        _check_uint8(sample, "CutDepth")
        width = sample.image.shape[1]
        alpha, beta = float(rng.random()), float(rng.random())
        left = int(alpha * width)
        strip = int(max((width - alpha * width) * beta * self.max_ratio, 1))
        image = sample.image.copy()
        columns = sample.depth[:, left : left + strip].astype(np.float64)
        values = np.clip(np.rint(columns / self.max_depth * 255.0), 0, 255).astype(np.uint8)
        image[:, left : left + strip, :] = values[..., None]
        return dataclasses.replace(sample, image=image)


def depth_train_transform(
    crop_size: int | Sequence[int] = (480, 480), max_depth: float = NYU_MAX_DEPTH, cutdepth_p: float = 0.25
) -> Compose:
    """The official VPD depth training augmentation, in the official order.

    CutDepth -> HorizontalFlip (0.5) -> RandomCrop(crop_size) -> brightness/contrast (0.5) -> gamma (0.5) ->
    hue/saturation/value (0.5).

    Args:
        crop_size: ``(height, width)``: 480x480 for NYU, 352x352 for KITTI in the official recipes.
        max_depth: the dataset's depth cap in metres (CutDepth's 255 level).
        cutdepth_p: CutDepth probability (0 disables it).
    """
    return Compose(
        [
            CutDepth(p=cutdepth_p, max_depth=max_depth),
            HorizontalFlip(p=0.5),
            RandomCrop(crop_size),
            RandomBrightnessContrast(),
            RandomGamma(),
            HueSaturationValue(),
        ]
    )
