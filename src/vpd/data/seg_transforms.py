"""mmsegmentation's semantic-segmentation training augmentation as paired transforms on :class:`Sample`.

The ADE20K recipe of VPD (mmseg 0.30 / mmcv 1.7) trains on::

    Resize(img_scale=(2048, 512), ratio_range=(0.5, 2.0)) -> RandomCrop(512, cat_max_ratio=0.75)
    -> RandomFlip(0.5) -> PhotoMetricDistortion -> Normalize(mean = std = 127.5) -> Pad(512, 0 / 255)

Here each step is a callable ``(sample, rng) -> sample`` that draws its randomness only from ``rng``, in the order and
with the distributions mmseg draws from ``np.random``; :func:`seg_train_transform` chains them (normalisation is the
model's job). As in :mod:`vpd.data.transforms`, inputs are never written into, and arrays a step does not change are
passed through as the same objects.

What mmseg computes with OpenCV is reproduced in numpy:

- the label map is resized with OpenCV's ``INTER_NEAREST`` rule (source index ``floor(x * src / dst)``, not the
  half-pixel rule of :class:`~vpd.data.transforms.Resize`), exactly;
- the 8-bit HSV conversions of the photometric distortion (``cv2.COLOR_BGR2HSV`` / ``COLOR_HSV2BGR`` on uint8, hue in
  ``[0, 180)``, two degrees per unit) are re-implemented with OpenCV's integer / float32 arithmetic
  (:func:`rgb_to_hsv_u8`, :func:`hsv_u8_to_rgb`), bit for bit (checked against opencv-python 4.6 and 4.14 on every
  input); the float :func:`~vpd.data.transforms.rgb_to_hsv` would round where OpenCV truncates;
- the image is resized with bilinear interpolation at half-pixel centres and no antialiasing (as OpenCV's
  ``INTER_LINEAR``), through :class:`~vpd.data.transforms.Resize`. OpenCV computes that with 11-bit fixed-point
  weights, this in float, so pixels can differ by one grey level.

One deliberate difference: mmseg pads *after* ``Normalize``, so its padded pixels are 0 in normalised units, i.e.
the grey 127.5 for VPD's ``mean = std = 127.5``. A uint8 image cannot hold 127.5, so :func:`seg_train_transform` pads
the image with 128 (``1/255`` above mmseg's value once the model normalises); :class:`Pad` itself defaults to 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vpd.data.base import IGNORE_INDEX, Sample, target_kind
from vpd.data.transforms import Compose, HorizontalFlip, Resize
from vpd.inference.grids import ADE_CROP, ADE_IMG_SCALE, ADE_RATIO_RANGE, keep_ratio_size, ratio_range_scale

__all__ = [
    "Pad",
    "PhotoMetricDistortion",
    "RandomCropCatMax",
    "RandomResize",
    "hsv_u8_to_rgb",
    "opencv_nearest_indices",
    "resize_sample",
    "rgb_to_hsv_u8",
    "seg_train_transform",
]


def _pair(size: int | Sequence[int], what: str) -> tuple[int, int]:
    pair = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    if len(pair) != 2 or min(pair) <= 0:
        raise ValueError(f"{what}: size must be a positive int or (height, width), got {size!r}")
    return pair[0], pair[1]


def _check_uint8(sample: Sample, what: str) -> None:
    if sample.image.dtype != np.uint8 or sample.image.ndim != 3 or sample.image.shape[2] != 3:
        raise ValueError(
            f"{what}: expected a uint8 [H, W, 3] image, got {sample.image.dtype} {sample.image.shape} ({sample.name})"
        )


# --------------------------------------------------------------------------------------------------- geometric


def opencv_nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source indices OpenCV's ``INTER_NEAREST`` reads for each of ``dst`` outputs along an axis of ``src`` pixels.

    ``min(floor(x / (dst / src)), src - 1)``, computed in float64 as OpenCV does (``resizeNN``). Unlike the half-pixel
    rule this is not centred: downsampling by 2 reads pixels 0, 2, 4, ... (mmcv's ``imresize(interpolation=
    "nearest")``, which mmseg uses for label maps).
    """
    inverse = 1.0 / (dst / src)
    return np.minimum(np.floor(np.arange(dst, dtype=np.float64) * inverse).astype(np.int64), src - 1)


def resize_sample(sample: Sample, size: tuple[int, int]) -> Sample:
    """Resizes to ``size = (height, width)``: image bilinear (half-pixel, no antialias), targets OpenCV-nearest.

    Returns a new sample whose image and targets are all new arrays.
    """
    out_h, out_w = size
    image = Resize((out_h, out_w))(dataclasses.replace(sample, targets={}), np.random.default_rng(0)).image
    height, width = sample.image.shape[:2]
    rows, cols = opencv_nearest_indices(height, out_h), opencv_nearest_indices(width, out_w)
    targets = {key: value[rows][:, cols] for key, value in sample.targets.items()}  # fancy indexing copies
    return dataclasses.replace(sample, image=image, targets=targets)


class RandomResize:
    """mmseg's ``Resize(img_scale, ratio_range)`` with ``keep_ratio=True``: a random scale, then a keep-ratio resize.

    ``u = rng.random()``, ``ratio = u * (high - low) + low``, ``scale = (int(img_scale[0] * ratio),
    int(img_scale[1] * ratio))`` (:func:`vpd.inference.grids.ratio_range_scale`); the sample is then resized to
    :func:`vpd.inference.grids.keep_ratio_size` ``(h, w, scale)``: the largest size whose long side is within
    ``max(scale)`` and short side within ``min(scale)``, each side rounded half up. The image is resampled bilinearly,
    the targets with OpenCV's nearest rule (:func:`opencv_nearest_indices`).

    Args:
        img_scale: the base ``(long_edge, short_edge)`` scale (either order).
        ratio_range: ``(low, high)`` of the ratio; ``None`` resizes to ``img_scale`` itself and draws nothing.
    """

    def __init__(
        self, img_scale: tuple[int, int] = ADE_IMG_SCALE, ratio_range: tuple[float, float] | None = ADE_RATIO_RANGE
    ) -> None:
        scale = _pair(img_scale, "RandomResize")
        if ratio_range is not None and not 0 < ratio_range[0] <= ratio_range[1]:
            raise ValueError(f"RandomResize: ratio_range must be (low, high) with 0 < low <= high, got {ratio_range}")
        self.img_scale = scale
        self.ratio_range = None if ratio_range is None else (float(ratio_range[0]), float(ratio_range[1]))

    def sample_scale(self, rng: np.random.Generator) -> tuple[int, int]:
        """Draws the ``(long_edge, short_edge)`` scale (one ``rng.random()``, none without ``ratio_range``)."""
        if self.ratio_range is None:
            return self.img_scale
        return ratio_range_scale(float(rng.random()), self.img_scale, self.ratio_range)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        _check_uint8(sample, "RandomResize")
        scale = self.sample_scale(rng)
        height, width = sample.image.shape[:2]
        out_h, out_w = keep_ratio_size(height, width, scale)
        # A sliver (e.g. 1 x 5000) can round to 0 rows; OpenCV would fail there, we keep one.
        return resize_sample(sample, (max(out_h, 1), max(out_w, 1)))

    def __repr__(self) -> str:
        return f"RandomResize(img_scale={self.img_scale}, ratio_range={self.ratio_range})"


class RandomCropCatMax:
    """mmseg's ``RandomCrop(crop_size, cat_max_ratio)``: a uniform crop that avoids windows of (nearly) one class.

    The window's top-left is ``(rng.integers(0, max(H - h, 0) + 1), rng.integers(0, max(W - w, 0) + 1))``. With
    ``cat_max_ratio < 1`` the labels under the window are checked up to 10 times: a window is taken when its
    non-ignored pixels hold more than one class and the most frequent class covers less than ``cat_max_ratio`` of
    them; otherwise a new window is drawn. After 10 failed checks the 11th draw is used unchecked. A sample smaller
    than the crop along an axis keeps all of that axis (the window is cut to what exists; :class:`Pad` fills the
    rest).

    Args:
        size: ``(height, width)`` or one int for a square.
        cat_max_ratio: the largest share one class may have; 1 or more disables the check.
        ignore_index: the label not counted.
        key: the target the check reads; a sample without it is cropped unchecked.
    """

    #: Checks before the last draw is taken as is (mmseg's fixed 10).
    max_checks = 10

    def __init__(
        self,
        size: int | Sequence[int] = ADE_CROP,
        cat_max_ratio: float = 0.75,
        ignore_index: int = IGNORE_INDEX,
        key: str = "semantic",
    ) -> None:
        self.size = _pair(size, "RandomCropCatMax")
        self.cat_max_ratio = float(cat_max_ratio)
        self.ignore_index = ignore_index
        self.key = key

    def _draw(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int]:
        top = int(rng.integers(0, max(height - self.size[0], 0) + 1))
        left = int(rng.integers(0, max(width - self.size[1], 0) + 1))
        return top, left

    def accepts(self, labels: np.ndarray) -> bool:
        """Whether a window of ``labels`` passes the check (more than one class, none at ``cat_max_ratio`` or more)."""
        values, counts = np.unique(labels, return_counts=True)
        counts = counts[values != self.ignore_index]
        return len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        crop_h, crop_w = self.size
        height, width = sample.image.shape[:2]
        top, left = self._draw(height, width, rng)
        labels = sample.targets.get(self.key)
        if self.cat_max_ratio < 1.0 and labels is not None:
            for _ in range(self.max_checks):
                if self.accepts(labels[top : top + crop_h, left : left + crop_w]):
                    break
                top, left = self._draw(height, width, rng)
        window = (slice(top, top + crop_h), slice(left, left + crop_w))
        return dataclasses.replace(
            sample,
            image=sample.image[window].copy(),
            targets={key: value[window].copy() for key, value in sample.targets.items()},
        )

    def __repr__(self) -> str:
        return f"RandomCropCatMax(size={self.size}, cat_max_ratio={self.cat_max_ratio})"


class Pad:
    """Pads the image and every target at the bottom and right to ``size`` (mmseg's ``Pad(size=...)``).

    The image is filled with ``image_fill``, each target with its :class:`~vpd.data.base.TargetKind` ``fill``
    (``semantic``: 255, ignored). A sample already of ``size`` is returned as is.

    Args:
        size: ``(height, width)`` or one int for a square.
        image_fill: the image's pad value (0 as in mmseg's ``pad_val``; see the module notes on normalisation).

    Raises:
        ValueError: (on call) the sample is larger than ``size`` (mmcv's ``impad`` cannot shrink either).
    """

    def __init__(self, size: int | Sequence[int] = ADE_CROP, image_fill: int = 0) -> None:
        self.size = _pair(size, "Pad")
        if not 0 <= image_fill <= 255:
            raise ValueError(f"Pad: image_fill must be in [0, 255], got {image_fill}")
        self.image_fill = int(image_fill)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        out_h, out_w = self.size
        height, width = sample.image.shape[:2]
        if height > out_h or width > out_w:
            raise ValueError(
                f"Pad: sample {sample.name!r} of {height}x{width} is larger than the pad size {out_h}x{out_w}"
            )
        if (height, width) == (out_h, out_w):
            return sample

        def pad(array: np.ndarray, fill: float) -> np.ndarray:
            out = np.full((out_h, out_w, *array.shape[2:]), fill, dtype=array.dtype)
            out[:height, :width] = array
            return out

        return dataclasses.replace(
            sample,
            image=pad(sample.image, self.image_fill),
            targets={key: pad(value, target_kind(key).fill) for key, value in sample.targets.items()},
        )

    def __repr__(self) -> str:
        return f"Pad(size={self.size}, image_fill={self.image_fill})"


# ------------------------------------------------------------------------------------------------- photometric

_HSV_SHIFT = 12
_SDIV = np.array([0] + [round((255 << _HSV_SHIFT) / i) for i in range(1, 256)], dtype=np.int64)
_HDIV180 = np.array([0] + [round((180 << _HSV_SHIFT) / (6.0 * i)) for i in range(1, 256)], dtype=np.int64)
# OpenCV's HSV2RGB sector table: which of (v, v(1-s), v(1-s f), v(1-s(1-f))) is b, g, r in each of the 6 sectors.
_SECTORS = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]], dtype=np.int64)


def rgb_to_hsv_u8(image: np.ndarray) -> np.ndarray:
    """RGB uint8 ``[..., 3]`` -> HSV uint8 ``[..., 3]`` exactly as OpenCV's 8-bit ``COLOR_RGB2HSV``.

    ``V = max``, ``S = round(255 (max - min) / max)``, ``H = round(30 * sector position)`` in ``[0, 180)`` (two
    degrees per unit), with OpenCV's 12-bit fixed-point reciprocal tables, so the rounding matches it bit for bit.
    """
    rgb = image.astype(np.int64)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(axis=-1)
    diff = value - rgb.min(axis=-1)
    half = 1 << (_HSV_SHIFT - 1)
    saturation = (diff * _SDIV[value] + half) >> _HSV_SHIFT
    hue = np.where(value == red, green - blue, np.where(value == green, blue - red + 2 * diff, red - green + 4 * diff))
    hue = (hue * _HDIV180[diff] + half) >> _HSV_SHIFT  # arithmetic shift: floor, as in C on two's complement
    hue = np.where(hue < 0, hue + 180, hue)
    return np.stack([hue, saturation, value], axis=-1).astype(np.uint8)


def _one_minus_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # float32 ``1 - a * b`` with one rounding, as the fused multiply-add OpenCV's AVX2 build compiles it to (the
    # float64 product of two float32 values is exact).
    return (1.0 - a.astype(np.float64) * b.astype(np.float64)).astype(np.float32)


def hsv_u8_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV uint8 ``[..., 3]`` (hue in ``[0, 180)``) -> RGB uint8, as OpenCV's 8-bit ``COLOR_HSV2RGB`` computes it.

    OpenCV's vectorised float32 arithmetic, step for step: ``s, v`` scaled by ``1/255``, ``h`` by ``6/180``, the
    hexcone sector table (``1 - s * f`` fused as OpenCV's AVX2 build computes it), then ``* 255`` **truncated**
    (OpenCV 4.x's SIMD path; checked bit for bit against opencv-python 4.6 and 4.14 on all 180 x 256 x 256 inputs).
    OpenCV's scalar tail, which converts the last ``width mod 32`` pixels of each row on AVX2 machines, rounds
    instead; those pixels can differ by one level.
    """
    one = np.float32(1.0)
    h = hsv[..., 0].astype(np.float32) * (np.float32(6.0) / np.float32(180.0))
    s = hsv[..., 1].astype(np.float32) * np.float32(1.0 / 255.0)
    v = hsv[..., 2].astype(np.float32) * np.float32(1.0 / 255.0)
    pre_sector = np.trunc(h)
    f = h - pre_sector
    sector = (pre_sector - np.trunc(pre_sector * np.float32(1.0 / 6.0)) * np.float32(6.0)).astype(np.int64)
    sector = np.clip(sector, 0, 5)
    table = np.stack([v, v * (one - s), v * _one_minus_product(s, f), v * _one_minus_product(s, one - f)], axis=-1)
    picks = _SECTORS[sector]  # [..., 3]: table indices of b, g, r
    bgr = np.take_along_axis(table, picks, axis=-1)
    rgb = bgr[..., ::-1] * np.float32(255.0)
    return np.clip(np.trunc(rgb), 0, 255).astype(np.uint8)


def _affine_lut(alpha: float, beta: float) -> np.ndarray:
    # mmseg's convert(): float32(img) * alpha + beta, clipped to [0, 255], truncated to uint8; as a 256-entry table.
    values = np.arange(256, dtype=np.float32) * np.float32(alpha) + np.float32(beta)
    return np.clip(values, 0, 255).astype(np.uint8)


@dataclass
class PhotoMetricDistortion:
    """mmseg's ``PhotoMetricDistortion``: brightness, contrast, saturation and hue jitter, each with probability 1/2.

    In mmseg's order and draws: brightness (``rng.integers(2)``, then ``beta ~ U(-delta, delta)``); ``mode =
    rng.integers(2)``; contrast here if ``mode == 1``; saturation (scale ``S`` in 8-bit HSV by ``U(range)``); hue
    (add an integer ``rng.integers(-hue_delta, hue_delta)`` to the 0-180 hue, modulo 180); contrast here if
    ``mode == 0``. Brightness and contrast are ``clip(float32(x) * alpha + beta, 0, 255)`` truncated to uint8;
    saturation and hue each go through an 8-bit HSV round trip (:func:`rgb_to_hsv_u8`, :func:`hsv_u8_to_rgb`). Only
    the image changes.

    Args:
        brightness_delta: half-width of the additive brightness range, in grey levels.
        contrast_range: range of the multiplicative contrast factor.
        saturation_range: range of the saturation factor.
        hue_delta: hue shifts are integers in ``[-hue_delta, hue_delta)``, in OpenCV units (2 degrees).
    """

    brightness_delta: int = 32
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.5, 1.5)
    hue_delta: int = 18

    def _brightness(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            beta = rng.uniform(-self.brightness_delta, self.brightness_delta)
            return _affine_lut(1.0, beta)[image]
        return image

    def _contrast(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            alpha = rng.uniform(self.contrast_range[0], self.contrast_range[1])
            return _affine_lut(alpha, 0.0)[image]
        return image

    def _saturation(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            alpha = rng.uniform(self.saturation_range[0], self.saturation_range[1])
            hsv = rgb_to_hsv_u8(image)
            hsv[..., 1] = _affine_lut(alpha, 0.0)[hsv[..., 1]]
            return hsv_u8_to_rgb(hsv)
        return image

    def _hue(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            shift = int(rng.integers(-self.hue_delta, self.hue_delta))
            hsv = rgb_to_hsv_u8(image)
            hsv[..., 0] = ((hsv[..., 0].astype(np.int64) + shift) % 180).astype(np.uint8)
            return hsv_u8_to_rgb(hsv)
        return image

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        _check_uint8(sample, "PhotoMetricDistortion")
        image = self._brightness(sample.image, rng)
        mode = int(rng.integers(2))
        if mode == 1:
            image = self._contrast(image, rng)
        image = self._saturation(image, rng)
        image = self._hue(image, rng)
        if mode == 0:
            image = self._contrast(image, rng)
        if image is sample.image:
            return sample
        return dataclasses.replace(sample, image=image)


def seg_train_transform(
    crop_size: int | Sequence[int] = ADE_CROP,
    img_scale: tuple[int, int] = ADE_IMG_SCALE,
    ratio_range: tuple[float, float] | None = ADE_RATIO_RANGE,
    cat_max_ratio: float = 0.75,
    pad_image_fill: int = 128,
) -> Compose:
    """The VPD / mmseg ADE20K training augmentation, in mmseg's order (normalisation left to the model).

    :class:`RandomResize` -> :class:`RandomCropCatMax` -> ``HorizontalFlip(0.5)`` -> :class:`PhotoMetricDistortion`
    -> :class:`Pad` to ``crop_size`` (targets with their fill: labels 255).

    Args:
        crop_size: ``(height, width)`` of the crop and of every output.
        img_scale: base ``(long_edge, short_edge)`` resize scale.
        ratio_range: ``(low, high)`` of the random resize ratio.
        cat_max_ratio: the crop's largest allowed class share.
        pad_image_fill: image pad value; 128 stands for mmseg's normalised 0 (127.5), see the module notes.
    """
    return Compose(
        [
            RandomResize(img_scale, ratio_range),
            RandomCropCatMax(crop_size, cat_max_ratio=cat_max_ratio),
            HorizontalFlip(p=0.5),
            PhotoMetricDistortion(),
            Pad(crop_size, image_fill=pad_image_fill),
        ]
    )
