"""Monocular depth metrics, evaluation masks and affine alignment (torch; CPU or GPU tensors).

The protocol (BTS, GLPDepth, VPD, Marigold): metrics are computed per image over its valid pixels, then averaged over
images (not over pixels). Valid pixels are ``min_depth < gt < max_depth`` (strict, as the official code) inside a
dataset crop: NYU's Eigen crop, or KITTI's Garg / Eigen crop of the 352x1216 KB-cropped frame.

All sums run in float64 (float32 on Apple MPS, which has no float64) so that per-image means over ~300k pixels do not
lose digits; results are returned as Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "CROPS",
    "METRIC_NAMES",
    "DepthMetricAccumulator",
    "align_scale",
    "align_scale_shift",
    "depth_metrics",
    "eval_crop_box",
    "eval_mask",
]

#: Metric keys in report order. ``d*`` are accuracies (higher is better), the rest errors (lower is better).
#: ``silog`` is the VPD/GLPDepth/mmseg definition, ``silog_bts`` the BTS/Marigold one (see :func:`depth_metrics`).
METRIC_NAMES: tuple[str, ...] = (
    "d1",
    "d2",
    "d3",
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "silog",
    "silog_bts",
)

#: Accepted values of ``crop`` in :func:`eval_mask`.
CROPS: tuple[str, ...] = ("nyu", "kitti_garg", "kitti_eigen")


def eval_crop_box(crop: str, height: int, width: int) -> tuple[int, int, int, int]:
    """The evaluation window of a named crop for a ``height x width`` map.

    - ``"nyu"``: the Eigen crop, rows 45:471 and cols 41:601 of a 480x640 map. Other sizes scale it proportionally
      with integer arithmetic (``45 * H // 480`` ...), which gives exactly 45:471, 41:601 at 480x640.
    - ``"kitti_garg"``: rows ``int(0.40810811 H):int(0.99189189 H)``, cols ``int(0.03594771 W):int(0.96405229 W)``.
    - ``"kitti_eigen"``: rows ``int(0.3324324 H):int(0.91351351 H)``, cols ``int(0.0359477 W):int(0.96405229 W)``.

    The KITTI fractions are applied to the map as given (the official code applies them after the KB crop, i.e. to
    352x1216).

    Returns:
        ``(top, bottom, left, right)``: rows ``top:bottom``, cols ``left:right``.
    """
    if crop == "nyu":
        return 45 * height // 480, 471 * height // 480, 41 * width // 640, 601 * width // 640
    if crop == "kitti_garg":
        return (
            int(0.40810811 * height),
            int(0.99189189 * height),
            int(0.03594771 * width),
            int(0.96405229 * width),
        )
    if crop == "kitti_eigen":
        return (
            int(0.3324324 * height),
            int(0.91351351 * height),
            int(0.0359477 * width),
            int(0.96405229 * width),
        )
    raise ValueError(f"crop must be one of {CROPS} or None, got {crop!r}")


def eval_mask(gt: torch.Tensor, *, min_depth: float, max_depth: float, crop: str | None = None) -> torch.Tensor:
    """Pixels that count in the evaluation.

    Args:
        gt: ground-truth depth in metres, ``[..., H, W]`` (0 or NaN = invalid).
        min_depth: exclusive lower bound (NYU 1e-3, KITTI 1e-3).
        max_depth: exclusive upper bound (NYU 10, KITTI 80).
        crop: ``"nyu"``, ``"kitti_garg"``, ``"kitti_eigen"`` (see :func:`eval_crop_box`) or ``None``.

    Returns:
        bool tensor shaped like ``gt``: ``min_depth < gt < max_depth`` and inside the crop.
    """
    valid = (gt > min_depth) & (gt < max_depth)
    if crop is not None:
        if gt.ndim < 2:
            raise ValueError(f"eval_mask: gt must be [..., H, W] to crop, got shape {tuple(gt.shape)}")
        top, bottom, left, right = eval_crop_box(crop, gt.shape[-2], gt.shape[-1])
        window = torch.zeros(gt.shape[-2:], dtype=torch.bool, device=gt.device)
        window[top:bottom, left:right] = True
        valid = valid & window
    return valid


def _work_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _batch_metrics(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, min_depth: float, max_depth: float, clamp: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image metrics of flattened maps.

    Args:
        pred, gt, mask: ``[B, N]``.

    Returns:
        ``[B, len(METRIC_NAMES)]`` metrics (NaN rows for empty masks) and ``[B]`` valid-pixel counts.
    """
    dtype = _work_dtype(pred.device)
    pred = pred.detach().to(dtype)
    gt = gt.detach().to(dtype)
    mask = mask.detach().to(device=pred.device, dtype=torch.bool)
    # As the official evaluation: inf predictions count as max_depth, NaN as min_depth (no in-place edit here).
    pred = torch.nan_to_num(pred, nan=min_depth, posinf=max_depth, neginf=max_depth)
    if clamp:
        pred = pred.clamp(min_depth, max_depth)
    # Masked-out pixels get a harmless 1 so logs and ratios stay finite before they are weighted out.
    one = torch.ones((), dtype=dtype, device=pred.device)
    p = torch.where(mask, pred, one)
    g = torch.where(mask, gt, one)
    weight = mask.to(dtype)
    count = weight.sum(dim=1)

    def mean(x: torch.Tensor) -> torch.Tensor:
        return (x * weight).sum(dim=1) / count  # 0 / 0 = NaN for an empty mask

    ratio = torch.maximum(g / p, p / g)
    diff = p - g
    log_diff = torch.log(p) - torch.log(g)
    mean_sq_log = mean(log_diff**2)
    mean_log = mean(log_diff)
    metrics = torch.stack(
        [
            mean((ratio < 1.25).to(dtype)),
            mean((ratio < 1.25**2).to(dtype)),
            mean((ratio < 1.25**3).to(dtype)),
            mean(diff.abs() / g),
            mean(diff**2 / g),
            mean(diff**2).sqrt(),
            mean_sq_log.sqrt(),
            mean((torch.log10(p) - torch.log10(g)).abs()),
            (mean_sq_log - 0.5 * mean_log**2).sqrt(),
            # a variance: clamp the rounding noise that can make it -1e-17 for a perfect prediction
            100.0 * (mean_sq_log - mean_log**2).clamp_min(0.0).sqrt(),
        ],
        dim=1,
    )
    return metrics, count


def _check_same_shape(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None, what: str) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"{what}: pred shape {tuple(pred.shape)} differs from gt shape {tuple(gt.shape)}")
    if mask is not None and mask.shape != gt.shape:
        raise ValueError(f"{what}: mask shape {tuple(mask.shape)} differs from gt shape {tuple(gt.shape)}")


def depth_metrics(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    min_depth: float = 1e-3,
    max_depth: float = 10.0,
    clamp: bool = False,
) -> dict[str, float]:
    """Depth metrics of ONE image over its masked pixels.

    With ``g`` the ground truth, ``p`` the prediction and ``d = log(p) - log(g)`` over the valid pixels:

    - ``d1, d2, d3``: fraction with ``max(g / p, p / g) < 1.25 ** k``;
    - ``abs_rel = mean(|p - g| / g)``, ``sq_rel = mean((p - g)^2 / g)``, ``rmse = sqrt(mean((p - g)^2))``,
      ``rmse_log = sqrt(mean(d^2))``, ``log10 = mean(|log10 p - log10 g|)``;
    - ``silog = sqrt(mean(d^2) - 0.5 * mean(d)^2)`` (VPD / GLPDepth / mmseg; no x100);
    - ``silog_bts = 100 * sqrt(mean(d^2) - mean(d)^2)`` (BTS / Marigold).

    Before the metrics, as the official code: ``inf`` predictions become ``max_depth`` and NaN ``min_depth``.
    Predictions must be positive; ``clamp=True`` clamps them to ``[min_depth, max_depth]`` (Marigold does; the
    official VPD evaluation does not).

    Args:
        pred: predicted depth in metres, any shape (one image, e.g. ``[H, W]`` or ``[1, 1, H, W]``).
        gt: ground truth, same shape.
        mask: bool, same shape; ``None`` uses ``min_depth < gt < max_depth`` (no crop, see :func:`eval_mask`).
        min_depth: NaN replacement and clamp floor.
        max_depth: inf replacement and clamp ceiling.
        clamp: clamp predictions to ``[min_depth, max_depth]``.

    Returns:
        ``{name: value}`` for :data:`METRIC_NAMES`; all NaN when the mask is empty.

    Raises:
        ValueError: shapes differ (both named).
    """
    _check_same_shape(pred, gt, mask, "depth_metrics")
    if mask is None:
        mask = eval_mask(gt, min_depth=min_depth, max_depth=max_depth)
    metrics, _ = _batch_metrics(
        pred.reshape(1, -1), gt.reshape(1, -1), mask.reshape(1, -1), min_depth, max_depth, clamp
    )
    return dict(zip(METRIC_NAMES, metrics[0].tolist()))


def _masked_values(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None, what: str) -> tuple[Any, Any]:
    _check_same_shape(pred, gt, mask, what)
    dtype = _work_dtype(pred.device)
    if mask is None:
        mask = torch.isfinite(gt) & (gt > 0)
    mask = mask.to(device=pred.device, dtype=torch.bool)
    return pred.detach()[mask].to(dtype), gt.detach()[mask].to(dtype)


def align_scale_shift(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, float, float]:
    """Least-squares affine fit ``scale * pred + shift ~ gt`` over the masked pixels (Marigold's protocol).

    For affine-invariant predictions (Marigold, GenPercept, relative-depth models). Fit one image at a time.

    Args:
        pred: prediction, any shape (relative depth; or disparity when ``gt`` is disparity).
        gt: ground truth, same shape.
        mask: bool, same shape; ``None`` uses finite ``gt > 0``.

    Returns:
        ``(aligned, scale, shift)``: ``aligned = scale * pred + shift`` over the whole map (pred's shape and dtype).

    Raises:
        ValueError: shapes differ, fewer than 2 valid pixels, or ``pred`` constant over them.
    """
    p, g = _masked_values(pred, gt, mask, "align_scale_shift")
    if p.numel() < 2:
        raise ValueError(f"align_scale_shift: needs at least 2 valid pixels, got {p.numel()}")
    # Centred normal equations: better conditioned than the raw 2x2 system for depths far from 0.
    p_mean, g_mean = p.mean(), g.mean()
    p_c = p - p_mean
    var = (p_c * p_c).sum()
    if not var > 0:
        raise ValueError("align_scale_shift: pred is constant over the valid pixels; scale is undetermined")
    scale = ((p_c * (g - g_mean)).sum() / var).item()
    shift = (g_mean - scale * p_mean).item()
    return pred * scale + shift, scale, shift


def _median(x: torch.Tensor) -> torch.Tensor:
    # numpy's median (mean of the two middle values for an even count); torch.median returns the lower one.
    values = x.sort().values
    n = values.numel()
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def align_scale(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None, method: str = "median"
) -> tuple[torch.Tensor, float]:
    """Scale-only alignment ``scale * pred ~ gt`` over the masked pixels (scale-invariant evaluation).

    Args:
        pred: prediction, any shape.
        gt: ground truth, same shape.
        mask: bool, same shape; ``None`` uses finite ``gt > 0``.
        method: ``"median"`` (``median(gt) / median(pred)``, the usual median scaling) or ``"lsq"``
            (``sum(pred * gt) / sum(pred^2)``).

    Returns:
        ``(aligned, scale)`` with ``aligned = scale * pred``.

    Raises:
        ValueError: shapes differ, unknown ``method``, no valid pixels, or a zero denominator.
    """
    if method not in ("median", "lsq"):
        raise ValueError(f"align_scale: method must be 'median' or 'lsq', got {method!r}")
    p, g = _masked_values(pred, gt, mask, "align_scale")
    if p.numel() == 0:
        raise ValueError("align_scale: no valid pixels")
    if method == "median":
        numerator, denominator = _median(g), _median(p)
    else:
        numerator, denominator = (p * g).sum(), (p * p).sum()
    if denominator == 0:
        raise ValueError(f"align_scale: {method} of pred is 0 over the valid pixels; scale is undetermined")
    scale = (numerator / denominator).item()
    return pred * scale, scale


def _as_batch(x: torch.Tensor, what: str) -> torch.Tensor:
    """``[H, W]`` -> ``[1, H, W]``; ``[B, H, W]`` as is; ``[B, 1, H, W]`` -> ``[B, H, W]``."""
    if x.ndim == 2:
        return x[None]
    if x.ndim == 3:
        return x
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    raise ValueError(f"{what}: expected [H, W], [B, H, W] or [B, 1, H, W], got shape {tuple(x.shape)}")


class DepthMetricAccumulator:
    """Collects per-image depth metrics over an evaluation and averages them over images.

    Keeps one row per evaluated image (for a per-sample CSV) and merges across processes through :meth:`state` /
    :meth:`merge` (or :meth:`gather` under ``torch.distributed``). Images with an empty mask are skipped and counted.

    Args:
        min_depth: exclusive lower bound of valid ground truth, NaN-prediction replacement (NYU/KITTI: 1e-3).
        max_depth: exclusive upper bound, inf-prediction replacement (NYU 10, KITTI 80).
        crop: evaluation crop for masks built by :meth:`update` (``"nyu"``, ``"kitti_garg"``, ``"kitti_eigen"``,
            ``None``).
        clamp: clamp predictions to ``[min_depth, max_depth]`` (not official for VPD; Marigold does).

    Example::

        acc = DepthMetricAccumulator(max_depth=10.0, crop="nyu")
        for batch in loader:
            acc.update(model(batch["image"]), batch["depth"], names=batch["name"])
        print(acc.compute()["rmse"])
    """

    def __init__(
        self, min_depth: float = 1e-3, max_depth: float = 10.0, crop: str | None = "nyu", clamp: bool = False
    ) -> None:
        if crop is not None and crop not in CROPS:
            raise ValueError(f"DepthMetricAccumulator: crop must be one of {CROPS} or None, got {crop!r}")
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.crop = crop
        self.clamp = clamp
        self.reset()

    def reset(self) -> None:
        """Forgets every row."""
        self._names: list[str] = []
        self._values: list[list[float]] = []
        self._skipped: list[str] = []
        self._seen = 0

    @torch.no_grad()
    def update(
        self,
        pred: torch.Tensor,
        gt: torch.Tensor,
        mask: torch.Tensor | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        """Adds a batch.

        Args:
            pred: predicted depth in metres, ``[B, 1, H, W]``, ``[B, H, W]`` or ``[H, W]``.
            gt: ground truth, same shape (0 = invalid).
            mask: bool, same shape; ``None`` builds :func:`eval_mask` with this accumulator's bounds and crop.
            names: one per image (for the rows); ``None`` numbers images in arrival order.
        """
        _check_same_shape(pred, gt, mask, "DepthMetricAccumulator.update")
        pred_b, gt_b = _as_batch(pred, "DepthMetricAccumulator.update pred"), _as_batch(gt, "gt")
        if mask is None:
            mask_b = eval_mask(gt_b, min_depth=self.min_depth, max_depth=self.max_depth, crop=self.crop)
        else:
            mask_b = _as_batch(mask, "mask")
        batch = pred_b.shape[0]
        if names is None:
            names = [str(self._seen + i) for i in range(batch)]
        elif len(names) != batch:
            raise ValueError(f"DepthMetricAccumulator.update: {len(names)} names for a batch of {batch}")
        self._seen += batch
        metrics, count = _batch_metrics(
            pred_b.reshape(batch, -1),
            gt_b.reshape(batch, -1),
            mask_b.reshape(batch, -1),
            self.min_depth,
            self.max_depth,
            self.clamp,
        )
        for name, values, n in zip(names, metrics.cpu().tolist(), count.cpu().tolist()):  # one device sync
            if n == 0:
                self._skipped.append(str(name))
            else:
                self._names.append(str(name))
                self._values.append(values)

    def compute(self) -> dict[str, float]:
        """Means over images of each metric in :data:`METRIC_NAMES` (NaN when no image was evaluated)."""
        if not self._values:
            return {name: math.nan for name in METRIC_NAMES}
        sums = torch.tensor(self._values, dtype=torch.float64).sum(dim=0)
        return dict(zip(METRIC_NAMES, (sums / len(self._values)).tolist()))

    @property
    def count(self) -> int:
        """Images evaluated (excluding skipped)."""
        return len(self._values)

    @property
    def skipped(self) -> int:
        """Images skipped because their mask was empty."""
        return len(self._skipped)

    @property
    def skipped_names(self) -> list[str]:
        """Names of the skipped images."""
        return list(self._skipped)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One ``{"name": ..., <metric>: float, ...}`` dict per evaluated image, in arrival (then merge) order."""
        return [{"name": name, **dict(zip(METRIC_NAMES, values))} for name, values in zip(self._names, self._values)]

    def state(self) -> dict[str, Any]:
        """A picklable snapshot (plain lists) to send to another process and :meth:`merge` there."""
        return {"names": list(self._names), "values": [list(v) for v in self._values], "skipped": list(self._skipped)}

    def merge(self, other: DepthMetricAccumulator | dict[str, Any]) -> None:
        """Appends another accumulator's rows (or a :meth:`state`); the result equals one pass over both inputs."""
        state = other.state() if isinstance(other, DepthMetricAccumulator) else other
        if len(state["names"]) != len(state["values"]):
            raise ValueError("DepthMetricAccumulator.merge: state has different numbers of names and values")
        self._names.extend(state["names"])
        self._values.extend(list(v) for v in state["values"])
        self._skipped.extend(state["skipped"])
        self._seen += len(state["names"]) + len(state["skipped"])

    def gather(self) -> None:
        """Under ``torch.distributed``, replaces this rank's rows by every rank's, in rank order (a no-op otherwise).

        Call on all ranks. Samplers that pad the last batch (``DistributedSampler``) produce duplicate names; drop
        them from :attr:`rows` if the count must be exact.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        states: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(states, self.state())
        self.reset()
        for state in states:
            self.merge(state)
