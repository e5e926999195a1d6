"""Test-time augmentation for dense depth: sliding square windows and horizontal flips.

The official VPD NYUv2 evaluation (SPEC §3) predicts a 480x640 image as two 480x480 windows (columns 0:480 and 160:640),
each together with its horizontal flip. Each flipped prediction is flipped back and averaged with its partner, the
windows are summed into the full frame and every pixel is divided by the number of windows covering it.
:func:`predict_depth_tta` reproduces that arithmetic in the same order (so a deterministic model gives bit-identical
results) and generalises it to any number of windows, portrait and square images, batches of images, and a bounded
number of crops per forward call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vpd.limits import MAX_WINDOWS

__all__ = ["DepthForward", "predict_depth_tta", "sliding_windows"]

#: ``forward(images [b, 3, h, w], class_ids [b] | None) -> depth [b, 1, h, w]``.
DepthForward = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]

Window = tuple[int, int, int, int]


def sliding_windows(height: int, width: int, num_windows: int = 2) -> list[Window]:
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
        raise ValueError(f"sliding_windows: height and width must be >= 1, got {height}x{width}")
    if not 1 <= num_windows <= MAX_WINDOWS:
        raise ValueError(f"sliding_windows: num_windows must be from 1 to {MAX_WINDOWS}, got {num_windows}")
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


def predict_depth_tta(
    forward: DepthForward,
    images: torch.Tensor,
    class_ids: torch.Tensor | None = None,
    *,
    flip: bool = False,
    windows: int | None = None,
    batch_size: int = 1,
) -> torch.Tensor:
    """Depth with sliding-window and flip test-time augmentation.

    Every crop (window x {original, flipped} x image) goes through ``forward``; crops of equal size are batched,
    ``batch_size`` at a time, so peak memory is bounded whatever the number of windows and images. Per window, the
    flipped prediction is flipped back and averaged with the plain one, ``(plain + unflipped) / 2``; the windows are
    then summed into the frame and divided by the per-pixel count of windows, as the official evaluation does.

    Args:
        forward: ``forward(images [b, 3, h, w], class_ids [b] | None) -> depth [b, 1, h, w]``, e.g.
            ``lambda x, c: model(x, class_ids=c).depth``. It must treat the samples of a batch independently.
        images: ``[B, 3, H, W]`` model input (RGB in [0, 1] for vpd models), on the model's device and dtype.
        class_ids: ``[B]`` int64 scene ids, repeated for every crop of their image; None is passed on as None.
        flip: also predict the horizontally flipped crops and average.
        windows: number of sliding square windows (see :func:`sliding_windows`); None or 1: the whole image.
        batch_size: crops per ``forward`` call, >= 1.

    Returns:
        ``[B, 1, H, W]`` depth, on ``forward``'s output device, in float32 (or float64 if ``forward`` returns that):
        low-precision outputs (bf16) are accumulated in float32.

    Raises:
        ValueError: wrong ``images`` / ``class_ids`` shapes, ``windows < 1`` or ``batch_size < 1``.
    """
    if images.ndim != 4:
        raise ValueError(f"predict_depth_tta: images must be [B, 3, H, W], got shape {tuple(images.shape)}")
    if windows is not None and windows < 1:
        raise ValueError(f"predict_depth_tta: windows must be None or >= 1, got {windows}")
    if batch_size < 1:
        raise ValueError(f"predict_depth_tta: batch_size must be >= 1, got {batch_size}")
    num_images, _, height, width = images.shape
    if class_ids is not None:
        class_ids = torch.as_tensor(class_ids).reshape(-1)
        if class_ids.shape[0] != num_images:
            raise ValueError(f"predict_depth_tta: expected {num_images} class_ids, got {class_ids.shape[0]}")

    boxes = sliding_windows(height, width, windows) if windows is not None else [(0, 0, height, width)]
    # Crop order: window-major, then image, then (plain, flipped). A flip pair is thus always finished before the
    # next pair starts, and windows reach each image's accumulator in increasing offset order (the official order).
    flips = (False, True) if flip else (False,)
    jobs = [(w, b, flipped) for w in range(len(boxes)) for b in range(num_images) for flipped in flips]

    total: torch.Tensor | None = None
    count = torch.zeros((1, 1, height, width), dtype=torch.float32)
    for top, left, h, w in boxes:
        count[..., top : top + h, left : left + w] += 1
    pending: dict[tuple[int, int], torch.Tensor] = {}  # plain prediction waiting for its flipped partner

    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        crops = []
        for w, b, flipped in chunk:
            top, left, h, wd = boxes[w]
            crop = images[b, :, top : top + h, left : left + wd]
            crops.append(torch.flip(crop, dims=[-1]) if flipped else crop)
        ids = None if class_ids is None else class_ids[[b for _, b, _ in chunk]]
        depth = forward(torch.stack(crops), ids)
        if depth.ndim != 4 or depth.shape[0] != len(chunk) or depth.shape[1] != 1:
            raise ValueError(
                f"predict_depth_tta: forward must return [{len(chunk)}, 1, h, w] depth, got {tuple(depth.shape)}"
            )
        if total is None:
            dtype = torch.promote_types(depth.dtype, torch.float32)
            total = torch.zeros((num_images, 1, height, width), dtype=dtype, device=depth.device)
        for k, (w, b, flipped) in enumerate(chunk):
            pred = depth[k].to(total.dtype)
            if flip and not flipped:
                pending[(w, b)] = pred
                continue
            if flipped:
                pred = (pending.pop((w, b)) + torch.flip(pred, dims=[-1])) / 2.0
            top, left, h, wd = boxes[w]
            total[b, :, top : top + h, left : left + wd] += pred

    assert total is not None and not pending  # every job ran and every flip pair was closed
    return total / count.to(device=total.device, dtype=total.dtype)
