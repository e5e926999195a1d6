"""Test-time augmentation over C-channel dense outputs: window grids, flips, and multi-scale averaging.

One engine for every task. :func:`predict_tta` runs a model over the windows of a grid (``vpd.inference.grids``:
depth's square windows along the long side, mmseg's crop/stride grid) with optional horizontal flips, and averages
overlapping windows by count. :func:`multi_scale_tta` adds views at other sizes (and flipped views), each resized
back to the input size and averaged after an optional activation (mmseg's ms+flip test averages softmax
probabilities).

The official VPD NYUv2 evaluation (SPEC §3) predicts a 480x640 image as two 480x480 windows (columns 0:480 and
160:640), each together with its horizontal flip. Each flipped prediction is flipped back and averaged with its
partner, the windows are summed into the full frame and every pixel is divided by the number of windows covering it.
:func:`predict_tta` reproduces that arithmetic in the same order (so a deterministic model gives bit-identical
results), for any number of windows, portrait and square images, batches of images, and a bounded number of crops
per forward call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from vpd.inference.grids import Box

__all__ = ["Forward", "Grid", "multi_scale_tta", "predict_tta"]

#: ``forward(images [b, 3, h, w], per_image [b] | None) -> [b, C, h, w]``.
Forward = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]

#: ``grid(height, width) -> windows`` as ``(top, left, height, width)`` boxes.
Grid = Callable[[int, int], list[Box]]


def predict_tta(
    forward: Forward,
    images: torch.Tensor,
    per_image: torch.Tensor | None = None,
    *,
    grid: Grid | None = None,
    flip: bool = False,
    batch_size: int = 1,
) -> torch.Tensor:
    """A dense prediction with window and flip test-time augmentation.

    Every crop (window x {original, flipped} x image) goes through ``forward``; crops of equal size are batched,
    ``batch_size`` at a time, so peak memory is bounded whatever the number of windows and images. Per window, the
    flipped prediction is flipped back and averaged with the plain one, ``(plain + unflipped) / 2``; the windows are
    then summed into the frame and divided by the per-pixel count of windows, as the official evaluations do.

    Args:
        forward: ``forward(images [b, 3, h, w], per_image [b] | None) -> [b, C, h, w]``, e.g.
            ``lambda x, c: model(x, class_ids=c).depth``. It must treat the samples of a batch independently.
        images: ``[B, 3, H, W]`` model input (RGB in [0, 1] for vpd models), on the model's device and dtype.
        per_image: ``[B]`` values (depth: scene ids) repeated for every crop of their image; None is passed on.
        grid: the windows (``vpd.inference.grids``); None: the whole image.
        flip: also predict the horizontally flipped crops and average.
        batch_size: crops per ``forward`` call, >= 1.

    Returns:
        ``[B, C, H, W]`` on ``forward``'s output device, in float32 (or float64 if ``forward`` returns that):
        low-precision outputs (bf16) are accumulated in float32.

    Raises:
        ValueError: wrong ``images`` / ``per_image`` shapes, windows that leave pixels uncovered, a ``forward``
            output of the wrong shape, or ``batch_size < 1``.
    """
    if images.ndim != 4:
        raise ValueError(f"predict_tta: images must be [B, 3, H, W], got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"predict_tta: batch_size must be >= 1, got {batch_size}")
    num_images, _, height, width = images.shape
    if per_image is not None:
        per_image = torch.as_tensor(per_image).reshape(-1)
        if per_image.shape[0] != num_images:
            raise ValueError(f"predict_tta: expected {num_images} per-image values, got {per_image.shape[0]}")

    boxes = grid(height, width) if grid is not None else [(0, 0, height, width)]
    # Crop order: window-major, then image, then (plain, flipped). A flip pair is thus always finished before the
    # next pair starts, and windows reach each image's accumulator in increasing offset order (the official order).
    flips = (False, True) if flip else (False,)
    jobs = [(w, b, flipped) for w in range(len(boxes)) for b in range(num_images) for flipped in flips]

    total: torch.Tensor | None = None
    count = torch.zeros((1, 1, height, width), dtype=torch.float32)
    for top, left, h, w in boxes:
        count[..., top : top + h, left : left + w] += 1
    if not bool((count > 0).all()):
        raise ValueError(f"predict_tta: the windows leave pixels of the {height}x{width} image uncovered")
    pending: dict[tuple[int, int], torch.Tensor] = {}  # plain prediction waiting for its flipped partner

    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        crops = []
        for w, b, flipped in chunk:
            top, left, h, wd = boxes[w]
            crop = images[b, :, top : top + h, left : left + wd]
            crops.append(torch.flip(crop, dims=[-1]) if flipped else crop)
        ids = None if per_image is None else per_image[[b for _, b, _ in chunk]]
        batch = torch.stack(crops)
        out = forward(batch, ids)
        expected = (len(chunk), out.shape[1] if total is None else total.shape[1], *batch.shape[-2:])
        if tuple(out.shape) != expected:
            raise ValueError(f"predict_tta: forward must return {list(expected)}, got {list(out.shape)}")
        if total is None:
            dtype = torch.promote_types(out.dtype, torch.float32)
            total = torch.zeros((num_images, out.shape[1], height, width), dtype=dtype, device=out.device)
        for k, (w, b, flipped) in enumerate(chunk):
            pred = out[k].to(total.dtype)
            if flip and not flipped:
                pending[(w, b)] = pred
                continue
            if flipped:
                pred = (pending.pop((w, b)) + torch.flip(pred, dims=[-1])) / 2.0
            top, left, h, wd = boxes[w]
            total[b, :, top : top + h, left : left + wd] += pred

    assert total is not None and not pending  # every job ran and every flip pair was closed
    return total / count.to(device=total.device, dtype=total.dtype)


def multi_scale_tta(
    predict: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    sizes: Sequence[tuple[int, int]],
    *,
    flip: bool = False,
    activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The mean over views at several sizes (and flipped), each resized back to the input size.

    For each size (and, with ``flip``, its mirrored copy) the images are resized (bilinear, ``align_corners=False``),
    predicted with ``predict`` (e.g. :func:`predict_tta` over a window grid), resized back to the input size the same
    way, passed through ``activation`` (mmseg's ms+flip test: softmax), flipped back, and averaged over the views. A
    single view at the input size is returned as ``predict`` gives it (no resize, no activation).

    Args:
        predict: ``[B, 3, h, w] -> [B, C, h, w]``.
        images: ``[B, 3, H, W]``.
        sizes: ``(h, w)`` per scale.
        flip: add a flipped view per size.
        activation: applied to each view's output before averaging.
    """
    height, width = images.shape[-2:]
    views = [(size, flipped) for size in sizes for flipped in ((False, True) if flip else (False,))]
    if not views:
        raise ValueError("multi_scale_tta: no sizes given")
    if len(views) == 1 and tuple(views[0][0]) == (height, width) and not views[0][1]:
        return predict(images)
    total: torch.Tensor | None = None
    for size, flipped in views:
        x = images if tuple(size) == (height, width) else _resize(images, size)
        out = predict(torch.flip(x, dims=[-1]) if flipped else x)
        out = _resize(out.to(torch.promote_types(out.dtype, torch.float32)), (height, width))
        if activation is not None:
            out = activation(out)
        if flipped:
            out = torch.flip(out, dims=[-1])
        total = out if total is None else total + out
    assert total is not None
    return total / len(views)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
