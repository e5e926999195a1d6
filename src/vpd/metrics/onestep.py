"""Metrics of the one-step family's tasks, as their papers report them.

- Affine-invariant depth (Marigold's protocol, used by GenPercept, E2E-FT, Lotus): per image, a least-squares scale
  and shift of the prediction to the ground truth over the valid pixels (in depth, or in disparity and inverted), the
  result clipped to the dataset's range, then the depth metrics of :mod:`vpd.metrics.depth` averaged over images
  (a prediction constant over the valid pixels fits as their mean, as least squares' minimum-norm solution does).
- Surface normals (DSINE / Marigold / GenPercept): the angle between predicted and true normals pooled over all valid
  pixels of the set: mean, median, RMSE and the share under 5, 7.5, 11.25, 22.5 and 30 degrees. The median comes
  from a 0.01-degree histogram, so processes merge exactly.
- Matting (P3M-10k's evaluation code, alpha in [0, 1], whole image): SAD / 1000, MSE, MAD, gradient error
  (first-order Gaussian derivatives, sigma 1.4) / 10 and connectivity error (threshold step 0.1) / 1000, averaged
  over images.
- Dichotomous segmentation (DIS5K, the ``py_sod_metrics`` definitions, each map min-max normalised first): max F
  (beta^2 = 0.3, of the F curve averaged over images, 256 thresholds), weighted F (Margolin et al.), MAE,
  S-measure (alpha 0.5) and the mean and max of the E-measure curve.

Matting and DIS need scipy (connected components, distance transforms): ``pip install scipy``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vpd.metrics.depth import DepthMetricAccumulator, align_scale_shift, eval_mask

#: Angle thresholds (degrees) of the normals' accuracy columns.
NORMAL_THRESHOLDS = (5.0, 7.5, 11.25, 22.5, 30.0)
_ANGLE_BIN = 0.01  # degrees per histogram bin of the pooled normal errors
_EPS = float(np.finfo(np.float64).eps)


def _gather(states: Any) -> list[Any]:
    """Every process's ``states`` (torch.distributed object all-gather), or ``[states]`` in one process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [states]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, states)
    return out


def _names(names: Sequence[str] | None, seen: int, count: int) -> list[str]:
    return [str(n) for n in names] if names is not None else [str(seen + i) for i in range(count)]


# ---------------------------------------------------------------------------------------------------------------
# depth


def align_affine_depth(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, alignment: str, min_depth: float, max_depth: float
) -> torch.Tensor:
    """One image's affine-invariant prediction ``[H, W]`` as metric depth, Marigold's way.

    ``least_squares``: ``s * pred + t`` fitted to ``gt`` over ``mask``. ``least_squares_disparity``: fitted to
    ``1 / gt`` over ``mask`` and ``pred > 0``, clipped below at 1e-3 and inverted. Either way clipped to
    ``[min_depth, max_depth]`` (and to at least 1e-6). A prediction constant over the mask fits as the mean of the
    target there (what least squares' minimum-norm solution gives).
    """
    if alignment not in ("least_squares", "least_squares_disparity"):
        raise ValueError(f"alignment must be 'least_squares' or 'least_squares_disparity', got {alignment!r}")
    disparity = alignment == "least_squares_disparity"
    target = torch.where(gt > 0, 1 / gt.double().clamp_min(1e-12), 0.0) if disparity else gt.double()
    fit_mask = mask & (gt > 0) & (pred > 0) if disparity else mask
    try:
        fitted, _, _ = align_scale_shift(pred.double(), target, fit_mask)
    except ValueError:
        fitted = torch.full_like(target, float(target[fit_mask].mean()) if fit_mask.any() else 1.0)
    depth = 1 / fitted.clamp_min(1e-3) if disparity else fitted
    return depth.clamp(min_depth, max_depth).clamp_min(1e-6).to(pred.dtype)


class AffineDepthMetrics:
    """Marigold's affine-invariant depth protocol over batches of ``[B, 1, H, W]`` predictions in [0, 1].

    Args:
        min_depth, max_depth: the valid range (exclusive), also the clip range after alignment; a batch may give
            each image its own (a dataset's range).
        crop: the dataset's evaluation crop (``nyu``, ``kitti_garg``, ``kitti_eigen``) or None.
        alignment: ``least_squares`` or ``least_squares_disparity``.
    """

    def __init__(self, min_depth: float, max_depth: float, crop: str | None, alignment: str) -> None:
        self.min_depth, self.max_depth, self.crop, self.alignment = min_depth, max_depth, crop, alignment
        self.depth = DepthMetricAccumulator(min_depth=min_depth, max_depth=max_depth, crop=crop)

    @torch.no_grad()
    def update(
        self,
        pred: torch.Tensor,
        gt: torch.Tensor,
        valid: torch.Tensor | None = None,
        names: Sequence[str] | None = None,
        ranges: Sequence[tuple[float, float]] | None = None,
    ) -> None:
        """``pred`` / ``gt`` / ``valid`` (an extra mask, e.g. a dataset's own): ``[B, 1, H, W]``; ``ranges``: each
        image's ``(min_depth, max_depth)`` (default: this accumulator's). An image without 2 valid pixels is
        skipped and counted (:attr:`skipped`)."""
        labels = _names(names, self.depth._seen, pred.shape[0])
        for i in range(pred.shape[0]):
            low, high = ranges[i] if ranges is not None else (self.min_depth, self.max_depth)
            mask = eval_mask(gt[i, 0], min_depth=low, max_depth=high, crop=self.crop)
            if valid is not None:
                mask &= valid[i, 0].bool()
            if int(mask.sum()) < 2:
                mask = torch.zeros_like(mask)  # no fit: the accumulator counts the image as skipped
                aligned = pred[i, 0].float()
            else:
                aligned = align_affine_depth(pred[i, 0].float(), gt[i, 0].float(), mask, self.alignment, low, high)
            self.depth.update(aligned[None], gt[i, 0][None].float(), mask[None], names=[labels[i]])

    def compute(self) -> dict[str, float]:
        return self.depth.compute()

    @property
    def count(self) -> int:
        return self.depth.count

    @property
    def skipped(self) -> int:
        return self.depth.skipped

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.depth.rows

    def gather(self) -> None:
        self.depth.gather()


# ---------------------------------------------------------------------------------------------------------------
# normals


def angular_errors(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel angles (degrees) between ``[3, H, W]`` normals and the validity mask (``|gt| > 0.5``); both are
    normalised first."""
    valid = gt.norm(dim=0) > 0.5
    cosine = (F.normalize(pred.double(), dim=0) * F.normalize(gt.double(), dim=0)).sum(0).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cosine)), valid


class NormalMetrics:
    """Angular error of surface normals pooled over all valid pixels (mean, median, RMSE, % under thresholds)."""

    def __init__(self) -> None:
        self.histogram = np.zeros(round(180 / _ANGLE_BIN) + 1, dtype=np.int64)
        self.sum = self.sum_sq = 0.0
        self.below = np.zeros(len(NORMAL_THRESHOLDS), dtype=np.int64)
        self._rows: list[dict[str, Any]] = []

    @torch.no_grad()
    def update(self, pred: torch.Tensor, gt: torch.Tensor, names: Sequence[str] | None = None) -> None:
        """``pred`` / ``gt``: ``[B, 3, H, W]`` (zero ground-truth vectors are invalid)."""
        labels = _names(names, len(self._rows), pred.shape[0])
        for i in range(pred.shape[0]):
            angles, valid = angular_errors(pred[i].float().cpu(), gt[i].float().cpu())
            values = angles[valid]
            if values.numel() == 0:
                continue
            self.sum += float(values.sum())
            self.sum_sq += float((values**2).sum())
            self.below += np.array([int((values < t).sum()) for t in NORMAL_THRESHOLDS])
            bins = (values / _ANGLE_BIN).round().long().clamp_(0, self.histogram.size - 1).numpy()
            self.histogram += np.bincount(bins, minlength=self.histogram.size)
            self._rows.append({"name": labels[i], "mean": float(values.mean()), "median": float(values.median())})

    @property
    def count(self) -> int:
        return int(self.histogram.sum())

    def compute(self) -> dict[str, float]:
        n = self.count
        if n == 0:
            return {"mean": math.nan, "median": math.nan, "rmse": math.nan,
                    **{f"a{t:g}": math.nan for t in NORMAL_THRESHOLDS}}  # fmt: skip
        cumulative = np.cumsum(self.histogram)
        ranks = np.searchsorted(cumulative, [(n - 1) // 2 + 1, n // 2 + 1])  # numpy's median of the binned values
        median = float(ranks.mean() * _ANGLE_BIN)
        result = {"mean": self.sum / n, "median": median, "rmse": math.sqrt(self.sum_sq / n)}
        result.update({f"a{t:g}": 100 * float(c) / n for t, c in zip(NORMAL_THRESHOLDS, self.below)})
        return result

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self._rows

    def gather(self) -> None:
        states = _gather((self.histogram, self.sum, self.sum_sq, self.below, self._rows))
        if len(states) == 1:
            return
        self.__init__()  # type: ignore[misc]
        for histogram, total, total_sq, below, rows in states:
            self.histogram += histogram
            self.sum += total
            self.sum_sq += total_sq
            self.below += below
            self._rows += rows


# ---------------------------------------------------------------------------------------------------------------
# matting and dichotomous segmentation (numpy per image)


def _scipy_ndimage() -> Any:
    try:
        from scipy import ndimage
    except ImportError:
        raise ImportError("matting and DIS metrics need scipy: pip install scipy") from None
    return ndimage


def gradient_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """P3M's gradient error: squared differences of the gradient magnitudes (first-order Gaussian derivatives,
    sigma 1.4, scipy's reflected borders) summed, / 10 (alpha in [0, 1])."""
    ndimage = _scipy_ndimage()

    def magnitude(alpha: np.ndarray) -> np.ndarray:
        dx = ndimage.gaussian_filter(alpha, sigma=1.4, order=[1, 0], output=np.float32)
        dy = ndimage.gaussian_filter(alpha, sigma=1.4, order=[0, 1], output=np.float32)
        return np.sqrt(dx**2 + dy**2)

    return float(np.square(magnitude(pred) - magnitude(gt)).sum() / 10)


def connectivity_error(pred: np.ndarray, gt: np.ndarray, step: float = 0.1) -> float:
    """P3M's connectivity error (Rhemann et al.: the 4-connected largest component of the agreeing foreground at
    each threshold; a threshold where nothing agrees changes nothing), / 1000."""
    ndimage = _scipy_ndimage()
    thresholds = np.arange(0, 1 + step, step)
    level = -np.ones(gt.shape, dtype=np.float32)
    for i in range(1, len(thresholds)):
        labels, count = ndimage.label((pred >= thresholds[i]) & (gt >= thresholds[i]))
        if not count:
            continue
        largest = labels == (int(np.argmax(np.bincount(labels.ravel())[1:])) + 1)
        level[(level == -1) & ~largest] = thresholds[i - 1]
    level[level == -1] = 1
    pred_d, gt_d = pred - level, gt - level
    pred_phi = 1 - pred_d * (pred_d >= 0.15)
    gt_phi = 1 - gt_d * (gt_d >= 0.15)
    return float(np.abs(pred_phi - gt_phi).sum() / 1000)


def matting_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """One image's P3M metrics (whole image; alpha ``[H, W]`` in [0, 1])."""
    diff = pred.astype(np.float64) - gt.astype(np.float64)
    return {
        "sad": float(np.abs(diff).sum() / 1000),
        "mse": float((diff**2).mean()),
        "mad": float(np.abs(diff).mean()),
        "grad": gradient_error(pred.astype(np.float64), gt.astype(np.float64)),
        "conn": connectivity_error(pred.astype(np.float64), gt.astype(np.float64)),
    }


def _fspecial_gauss(size: int = 7, sigma: float = 5.0) -> np.ndarray:
    axis = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2 * sigma**2))
    return kernel / kernel.sum()


def weighted_f_measure(pred: np.ndarray, gt: np.ndarray, beta: float = 1.0) -> float:
    """Margolin et al.'s weighted F-measure (``py_sod_metrics.WeightedFmeasure``); ``gt`` boolean."""
    ndimage = _scipy_ndimage()
    if not gt.any():
        return 0.0
    distance, index = ndimage.distance_transform_edt(~gt, return_indices=True)
    error = np.abs(pred - gt)
    spread = error.copy()
    background = ~gt
    spread[background] = error[index[0][background], index[1][background]]
    blurred = ndimage.convolve(spread, _fspecial_gauss(), mode="constant", cval=0)
    least = error.copy()
    take = gt & (blurred < error)
    least[take] = blurred[take]
    weight = np.ones_like(gt, dtype=np.float64)
    weight[background] = 2 - np.exp(math.log(0.5) / 5 * distance[background])
    weighted = least * weight
    tp = gt.sum() - weighted[gt].sum()
    fp = weighted[background].sum()
    recall = 1 - weighted[gt].mean()
    precision = tp / (tp + fp + _EPS)
    return float((1 + beta) * recall * precision / (recall + beta * precision + _EPS))


def _s_object(pred: np.ndarray, gt: np.ndarray) -> float:
    values = pred[gt]
    if values.size == 0:
        return 0.0
    mean = values.mean()
    std = values.std(ddof=1) if values.size > 1 else 0.0
    return float(2 * mean / (mean**2 + 1 + std + _EPS))


def _ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    n = pred.size
    x, y = pred.mean(), gt.mean()
    sigma_x = ((pred - x) ** 2).sum() / (n - 1 + _EPS)
    sigma_y = ((gt - y) ** 2).sum() / (n - 1 + _EPS)
    sigma_xy = ((pred - x) * (gt - y)).sum() / (n - 1 + _EPS)
    alpha = 4 * x * y * sigma_xy
    beta = (x**2 + y**2) * (sigma_x + sigma_y)
    if alpha != 0:
        return float(alpha / (beta + _EPS))
    return 1.0 if beta == 0 else 0.0


def s_measure(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.5) -> float:
    """Fan et al.'s structure measure (``py_sod_metrics.Smeasure``); ``gt`` boolean."""
    y = gt.mean()
    if y == 0:
        return float(1 - pred.mean())
    if y == 1:
        return float(pred.mean())
    u = gt.mean()
    objects = u * _s_object(pred * gt, gt) + (1 - u) * _s_object((1 - pred) * ~gt, ~gt)
    h, w = gt.shape
    cy, cx = np.argwhere(gt).mean(axis=0).round()
    cx, cy = int(cx) + 1, int(cy) + 1  # MATLAB's 1-based centroid
    area = h * w
    first = (cx * cy / area, cy * (w - cx) / area, (h - cy) * cx / area)
    weights = (*first, 1 - sum(first))
    parts = [(slice(0, cy), slice(0, cx)), (slice(0, cy), slice(cx, w)),
             (slice(cy, h), slice(0, cx)), (slice(cy, h), slice(cx, w))]  # fmt: skip
    region = sum(wt * _ssim(pred[r, c], gt[r, c].astype(np.float64)) for wt, (r, c) in zip(weights, parts))
    return float(max(0.0, alpha * objects + (1 - alpha) * region))


def threshold_curves(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F-measure (beta^2 = 0.3) and E-measure at the 256 thresholds ``pred * 255 >= t`` (t = 0 .. 255)."""
    quantised = (pred * 255).astype(np.uint8).astype(np.int64)  # truncated, as py_sod_metrics does
    # pixels at or above each threshold, foreground / background
    fg = np.cumsum(np.bincount(quantised[gt], minlength=256)[::-1])[::-1].astype(np.float64)
    bg = np.cumsum(np.bincount(quantised[~gt], minlength=256)[::-1])[::-1].astype(np.float64)
    n_fg, n = float(gt.sum()), float(gt.size)
    precision = fg / np.maximum(fg + bg, 1)
    recall = fg / max(n_fg, 1)
    f = np.where(precision + recall > 0, 1.3 * precision * recall / np.maximum(0.3 * precision + recall, _EPS), 0)
    predicted = fg + bg
    if n_fg == 0:
        e = (n - predicted) / (n - 1 + _EPS)
    elif n_fg == n:
        e = predicted / (n - 1 + _EPS)
    else:
        mean_p, mean_g = predicted / n, n_fg / n
        total = np.zeros(256)
        counts = {(1, 1): fg, (1, 0): bg, (0, 1): n_fg - fg, (0, 0): n - n_fg - bg}
        for (p, g), count in counts.items():
            a, b = p - mean_p, g - mean_g
            align = 2 * a * b / (a**2 + b**2 + _EPS)
            total += (align + 1) ** 2 / 4 * count
        e = total / (n - 1 + _EPS)
    return f, e


class MapMetrics:
    """Matting (``kind="matting"``) or DIS (``kind="dis"``) metrics, per image then averaged (DIS: max F and the E
    curve from the curves averaged over images)."""

    def __init__(self, kind: str) -> None:
        if kind not in ("matting", "dis"):
            raise ValueError(f"kind must be 'matting' or 'dis', got {kind!r}")
        self.kind = kind
        self._rows: list[dict[str, Any]] = []
        self.f_curve = np.zeros(256)
        self.e_curve = np.zeros(256)

    def update(self, pred: torch.Tensor, gt: torch.Tensor, names: Sequence[str] | None = None) -> None:
        """``pred`` ``[B, 1, H, W]`` in [0, 1]; ``gt`` alpha in [0, 1] or a 0 / 1 mask (DIS)."""
        labels = _names(names, len(self._rows), pred.shape[0])
        for i in range(pred.shape[0]):
            p = pred[i, 0].double().clamp(0, 1).cpu().numpy()
            g = gt[i, 0].double().cpu().numpy()
            if self.kind == "matting":
                row = matting_metrics(p, g)
            else:
                mask = g > 0.5
                low, high = p.min(), p.max()
                if high > low:  # py_sod_metrics normalises each map to [0, 1]
                    p = (p - low) / (high - low)
                f, e = threshold_curves(p, mask)
                self.f_curve += f
                self.e_curve += e
                row = {"mae": float(np.abs(p - mask).mean()), "weighted_f": weighted_f_measure(p, mask),
                       "s_measure": s_measure(p, mask), "max_f": float(f.max()), "mean_e": float(e.mean())}  # fmt: skip
            self._rows.append({"name": labels[i], **row})

    @property
    def count(self) -> int:
        return len(self._rows)

    def compute(self) -> dict[str, float]:
        keys = ("sad", "mse", "mad", "grad", "conn") if self.kind == "matting" else ("mae", "weighted_f", "s_measure")
        if not self._rows:
            extra = () if self.kind == "matting" else ("max_f", "mean_e", "max_e")
            return {k: math.nan for k in (*keys, *extra)}
        result = {k: float(np.mean([row[k] for row in self._rows])) for k in keys}
        if self.kind == "dis":
            n = len(self._rows)
            result.update(max_f=float((self.f_curve / n).max()), mean_e=float((self.e_curve / n).mean()),
                          max_e=float((self.e_curve / n).max()))  # fmt: skip
        return result

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self._rows

    def gather(self) -> None:
        states = _gather((self._rows, self.f_curve, self.e_curve))
        if len(states) == 1:
            return
        self._rows, self.f_curve, self.e_curve = [], np.zeros(256), np.zeros(256)
        for rows, f, e in states:
            self._rows += rows
            self.f_curve += f
            self.e_curve += e
