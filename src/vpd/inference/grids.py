"""Test-time and train-time geometry of the VPD segmentation recipe (ADE20K), as pure integer functions.

Everything here reproduces mmcv 1.7.2 / mmseg 0.30 exactly (checked against the official pipeline's numbers in
``tests/fixtures/reference/vpd_seg_head/geometry.json``):

- :func:`keep_ratio_size`: mmcv ``rescale_size`` with ``keep_ratio=True``, the size every test view (and every
  train image) is resized to before the network sees it;
- :func:`ratio_scale` / :func:`multi_scale_views`: the ms+flip views of ``test.py --aug-test``
  (``MultiScaleFlipAug(img_scale=(2048, 512), img_ratios=MS_RATIOS, flip=True)``);
- :func:`crop_stride_windows`: the windows of mmseg's ``slide_inference`` (crop 512, stride 341);
- :func:`ratio_range_scale`: the target scale of the train ``Resize(img_scale=(2048, 512), ratio_range=(0.5, 2.0))``
  for a given uniform draw.

Sizes are ``(height, width)``; scales are mmcv's ``(long_edge, short_edge)`` pairs such as ``(2048, 512)``, which
bound the long and the short side of the resized image whatever its orientation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from vpd.limits import MAX_WINDOWS

__all__ = [
    "ADE_CROP",
    "ADE_IMG_SCALE",
    "ADE_RATIO_RANGE",
    "ADE_STRIDE",
    "MS_RATIOS",
    "Box",
    "MultiScaleView",
    "crop_stride_windows",
    "keep_ratio_scale_factor",
    "keep_ratio_size",
    "multi_scale_views",
    "ratio_range_scale",
    "ratio_scale",
]

#: ``(top, left, height, width)`` of a window, in pixels of the image it is cut from.
Box = tuple[int, int, int, int]

#: The test (and base train) scale of the ADE20K recipe: long side at most 2048, short side at most 512.
ADE_IMG_SCALE: tuple[int, int] = (2048, 512)
#: Slide-inference window size ``(height, width)`` (``test_cfg.crop_size``).
ADE_CROP: tuple[int, int] = (512, 512)
#: Slide-inference stride ``(height, width)`` (``test_cfg.stride``; 341 = 2/3 of 512, rounded down).
ADE_STRIDE: tuple[int, int] = (341, 341)
#: ``img_ratios`` of the ms+flip test (``--aug-test``): scales (2048, 512), (2304, 576) ... (3072, 768).
MS_RATIOS: tuple[float, ...] = (1.0, 1.125, 1.25, 1.375, 1.5)
#: ``ratio_range`` of the train ``Resize``.
ADE_RATIO_RANGE: tuple[float, float] = (0.5, 2.0)


def _check_size(height: int, width: int, what: str) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"{what}: height and width must be >= 1, got {height}x{width}")


def keep_ratio_scale_factor(height: int, width: int, scale: tuple[int, int] = ADE_IMG_SCALE) -> float:
    """The factor mmcv's keep-ratio rescale applies to both sides.

    ``sf = min(max(scale) / max(h, w), min(scale) / min(h, w))``: the largest factor that keeps the long side within
    ``max(scale)`` and the short side within ``min(scale)``. Usually the short-side bound binds (a 375x500 image gets
    ``512 / 375 = 1.3653...``); for very elongated images the long-side bound does (100x1000 gets ``2048 / 1000``).
    This is mmcv's ``rescale_factor``, not the per-axis ``scale_factor`` mmseg stores (see :func:`keep_ratio_size`).

    Args:
        height: input height in pixels, >= 1.
        width: input width in pixels, >= 1.
        scale: ``(long_edge, short_edge)`` bound, in either order (mmcv takes max and min).

    Returns:
        The factor, a float (> 1 enlarges).

    Raises:
        ValueError: a size below 1, or a non-positive scale.
    """
    _check_size(height, width, "keep_ratio_scale_factor")
    if min(scale) <= 0:
        raise ValueError(f"keep_ratio_scale_factor: scale must be positive, got {tuple(scale)}")
    return min(max(scale) / max(height, width), min(scale) / min(height, width))


def keep_ratio_size(height: int, width: int, scale: tuple[int, int] = ADE_IMG_SCALE) -> tuple[int, int]:
    """The size mmcv's ``imrescale`` / mmseg's ``Resize(keep_ratio=True)`` gives an image (mmcv ``rescale_size``).

    ``(h', w') = (int(h * sf + 0.5), int(w * sf + 0.5))`` with ``sf`` from :func:`keep_ratio_scale_factor`: each side
    is rounded half up separately, so the aspect ratio is kept only to the pixel (375x500 -> 512x683, 1000x2100 ->
    512x1075). mmseg then records ``scale_factor = float32([w'/w, h'/h])``, which can differ slightly from ``sf``.

    Args:
        height: input height in pixels, >= 1.
        width: input width in pixels, >= 1.
        scale: ``(long_edge, short_edge)`` bound; ``(2048, 512)`` is the single-scale test and base train scale, and
            :func:`ratio_scale` / :func:`ratio_range_scale` give the others.

    Returns:
        ``(height', width')`` in pixels.

    Raises:
        ValueError: a size below 1, or a non-positive scale.
    """
    factor = keep_ratio_scale_factor(height, width, scale)
    return int(height * factor + 0.5), int(width * factor + 0.5)


def ratio_scale(ratio: float, img_scale: tuple[int, int] = ADE_IMG_SCALE) -> tuple[int, int]:
    """The scale of one ms test view: ``(int(img_scale[0] * ratio), int(img_scale[1] * ratio))`` (truncated).

    mmseg's ``MultiScaleFlipAug`` with ``img_ratios``: ratio 1.125 gives ``(2304, 576)``, 1.5 gives ``(3072, 768)``.

    Args:
        ratio: one of the ``img_ratios`` (see :data:`MS_RATIOS`), > 0.
        img_scale: the base ``(long_edge, short_edge)`` scale.

    Returns:
        The ``(long_edge, short_edge)`` scale to pass to :func:`keep_ratio_size`.

    Raises:
        ValueError: a non-positive ratio.
    """
    if not ratio > 0:
        raise ValueError(f"ratio_scale: ratio must be > 0, got {ratio}")
    return int(img_scale[0] * ratio), int(img_scale[1] * ratio)


def ratio_range_scale(
    u: float, img_scale: tuple[int, int] = ADE_IMG_SCALE, ratio_range: tuple[float, float] = ADE_RATIO_RANGE
) -> tuple[int, int]:
    """The target scale of mmseg's train ``Resize(img_scale, ratio_range)`` for a uniform draw ``u``.

    As mmseg's ``Resize.random_sample_ratio``: ``ratio = u * (max_ratio - min_ratio) + min_ratio`` (with
    ``u = np.random.random_sample()`` in ``[0, 1)``; for ADE20K ``ratio = 1.5 u + 0.5``), then
    ``scale = (int(img_scale[0] * ratio), int(img_scale[1] * ratio))``. The resized size is then
    ``keep_ratio_size(h, w, scale)`` (image bilinear, seg map nearest), before the 512x512 random crop.
    E.g. ``u = 0`` -> ``(1024, 256)``, ``u = 0.5`` -> ``(2560, 640)``, ``u = 0.999999`` -> ``(4095, 1023)``.

    Args:
        u: the uniform draw, in ``[0, 1]`` (1 is outside numpy's range but allowed here).
        img_scale: the base ``(long_edge, short_edge)`` scale.
        ratio_range: ``(min_ratio, max_ratio)``.

    Returns:
        The ``(long_edge, short_edge)`` scale.

    Raises:
        ValueError: ``u`` outside ``[0, 1]`` or ``min_ratio > max_ratio``.
    """
    if not 0.0 <= u <= 1.0:
        raise ValueError(f"ratio_range_scale: u must be in [0, 1], got {u}")
    min_ratio, max_ratio = ratio_range
    if min_ratio > max_ratio:
        raise ValueError(f"ratio_range_scale: ratio_range must be (min, max), got {tuple(ratio_range)}")
    ratio = u * (max_ratio - min_ratio) + min_ratio
    return int(img_scale[0] * ratio), int(img_scale[1] * ratio)


def _axis_starts(size: int, crop: int, stride: int) -> list[tuple[int, int]]:
    """``(start, length)`` of each window along one axis, as mmseg's slide_inference computes them."""
    count = max(size - crop + stride - 1, 0) // stride + 1
    spans = []
    for i in range(count):
        start = i * stride
        end = min(start + crop, size)
        start = max(end - crop, 0)
        spans.append((start, end - start))
    return spans


def crop_stride_windows(
    height: int, width: int, crop: tuple[int, int] = ADE_CROP, stride: tuple[int, int] = ADE_STRIDE
) -> list[Box]:
    """The windows of mmseg 0.30's ``slide_inference`` on a ``height x width`` image.

    Per axis (rows shown; columns alike): ``n = max(H - crop + stride - 1, 0) // stride + 1`` windows; window ``i``
    has ``y1 = i * stride``, ``y2 = min(y1 + crop, H)``, then ``y1 = max(y2 - crop, 0)``: the last window is pushed
    back flush with the edge, and an axis shorter than the crop gets one window of the full (shorter) length. Windows
    are listed as mmseg loops, rows outer and columns inner. Near-duplicates are kept as mmseg has them (width 854
    gives column ranges 341:853 and 342:854); the logits of all windows are summed and divided by the per-pixel count.

    Args:
        height: image height in pixels, >= 1 (the resized test view).
        width: image width in pixels, >= 1.
        crop: window ``(height, width)``, >= 1.
        stride: step ``(height, width)``, >= 1.

    Returns:
        ``(top, left, height, width)`` per window; rows ``top:top + height``, cols ``left:left + width``.

    Raises:
        ValueError: a size, crop or stride below 1.
    """
    _check_size(height, width, "crop_stride_windows")
    if min(crop) < 1 or min(stride) < 1:
        raise ValueError(f"crop_stride_windows: crop and stride must be >= 1, got {tuple(crop)}, {tuple(stride)}")
    rows = _axis_starts(height, crop[0], stride[0])
    cols = _axis_starts(width, crop[1], stride[1])
    return [(top, left, h, w) for top, h in rows for left, w in cols]


class MultiScaleView(NamedTuple):
    """One view of the ms+flip test (see :func:`multi_scale_views`)."""

    #: ``(long_edge, short_edge)`` scale of the view.
    scale: tuple[int, int]
    #: whether the view is flipped horizontally (its probabilities are flipped back before averaging).
    flip: bool
    #: ``(height, width)`` the image is resized to.
    resized_hw: tuple[int, int]
    #: slide windows on the resized image, ``(top, left, height, width)``.
    windows: list[Box]


def multi_scale_views(
    height: int,
    width: int,
    ratios: Sequence[float] = MS_RATIOS,
    flip: bool = True,
    img_scale: tuple[int, int] = ADE_IMG_SCALE,
    crop: tuple[int, int] = ADE_CROP,
    stride: tuple[int, int] = ADE_STRIDE,
) -> list[MultiScaleView]:
    """The views of the official ms+flip test (``test.py --aug-test``), in mmseg's order.

    For each ratio (scale :func:`ratio_scale`), a view without and (when ``flip``) one with a horizontal flip; each is
    resized with :func:`keep_ratio_size` and slid with :func:`crop_stride_windows`. The official test rescales each
    view's slide-averaged logits bilinearly (align_corners False) to the original size, softmaxes them, flips
    flipped views back, and argmaxes the mean probability of all views (10 with the defaults). ``ratios=(1.0,)`` and
    ``flip=False`` give the single-scale test.

    Args:
        height: original image height, >= 1.
        width: original image width, >= 1.
        ratios: ``img_ratios``.
        flip: add a flipped view per scale.
        img_scale: base ``(long_edge, short_edge)`` scale.
        crop: slide window ``(height, width)``.
        stride: slide step ``(height, width)``.

    Returns:
        ``len(ratios) * (2 if flip else 1)`` views.
    """
    views = []
    for ratio in ratios:
        scale = ratio_scale(ratio, img_scale)
        resized = keep_ratio_size(height, width, scale)
        windows = crop_stride_windows(*resized, crop=crop, stride=stride)
        for flipped in (False, True) if flip else (False,):
            views.append(MultiScaleView(scale, flipped, resized, list(windows)))
    return views


def square_windows(height: int, width: int, num_windows: int = 2) -> list[Box]:
    """Square windows that cover an image along its longer side (the official VPD test-time scheme).

    A landscape image gets ``num_windows`` windows of side ``height`` spread across the width: the first starts at
    column 0, consecutive ones are ``(width - height) // (num_windows - 1)`` columns apart (the official interval) and
    the last one is placed flush with the right edge (the same place when ``num_windows - 1`` divides
    ``width - height``, e.g. 480x640 with 2 windows -> columns 0:480 and 160:640). A portrait image gets vertical
    windows of side ``width`` in the same way; a square image (or ``num_windows=1``) is a single window, the whole
    image. Windows that would repeat (more windows than distinct offsets) are returned once; when ``num_windows`` is
    too small to cover a long image without a gap (e.g. 2 windows on a 480x1200 image), windows are added until
    every pixel is covered.

    Args:
        height: image height in pixels, >= 1.
        width: image width in pixels, >= 1.
        num_windows: windows along the longer side, >= 1.

    Returns:
        ``(top, left, h, w)`` per window, ordered by offset.

    Raises:
        ValueError: a size or ``num_windows`` below 1, ``num_windows`` above :data:`vpd.limits.MAX_WINDOWS`, or an
            image so elongated that covering it needs more than that many windows.
    """
    if height < 1 or width < 1:
        raise ValueError(f"square_windows: height and width must be >= 1, got {height}x{width}")
    if not 1 <= num_windows <= MAX_WINDOWS:
        raise ValueError(f"square_windows: num_windows must be from 1 to {MAX_WINDOWS}, got {num_windows}")
    if num_windows == 1 or height == width:
        return [(0, 0, height, width)]
    side = min(height, width)
    span = max(height, width) - side  # room the window slides over
    # Too few windows for a long image would leave columns that no window covers (the official two windows do
    # beyond a 1:2 aspect ratio), i.e. a 0/0 average there: add windows until consecutive ones touch. The last gap,
    # span - (n - 2) * interval, is the largest one.
    num_windows = min(num_windows, span + 1)  # more would only repeat offsets (or, with interval 0, leave gaps)
    while span - (num_windows - 2) * (span // (num_windows - 1)) > side:
        num_windows += 1
        if num_windows > MAX_WINDOWS:
            raise ValueError(
                f"sliding windows: a {height}x{width} image needs more than {MAX_WINDOWS} square windows of side "
                f"{side} to be covered; predict it without windows, or crop it first"
            )
    interval = span // (num_windows - 1)
    offsets: list[int] = []
    for i in range(num_windows):
        # The official code uses i * interval throughout; pinning the last window to the edge only differs when the
        # division has a remainder, where the official scheme would leave the last columns uncovered.
        offset = span if i == num_windows - 1 else i * interval
        if offset not in offsets:
            offsets.append(offset)
    if width > height:
        return [(0, offset, side, side) for offset in offsets]
    return [(offset, 0, side, side) for offset in offsets]


def square_grid(num_windows: int | None) -> Callable[[int, int], list[Box]] | None:
    """Depth's grid: :func:`square_windows` with ``num_windows`` (None or 1: the whole image, no grid)."""
    if num_windows is None or num_windows == 1:
        return None
    return lambda height, width: square_windows(height, width, num_windows)


def crop_stride_grid(
    crop: tuple[int, int] = ADE_CROP, stride: tuple[int, int] = ADE_STRIDE
) -> Callable[[int, int], list[Box]]:
    """mmseg's slide grid: :func:`crop_stride_windows` with ``crop`` and ``stride``."""
    return lambda height, width: crop_stride_windows(height, width, crop, stride)
