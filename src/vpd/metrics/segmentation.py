"""Semantic segmentation metrics (mIoU, mAcc, aAcc, Dice, F-score), as mmseg 0.30's ``eval_metrics`` computes them.

The protocol (mmseg, hence VPD's ADE20K numbers): per class ``c`` and over the WHOLE evaluation set (not per image),

- ``I_c`` = pixels predicted ``c`` whose label is ``c`` (intersection), ``P_c`` = pixels predicted ``c``,
  ``L_c`` = pixels labelled ``c``, ``U_c = P_c + L_c - I_c`` (union);
- only pixels whose LABEL is not ``ignore_index`` (255) count, in all four (a prediction on an ignored pixel is
  dropped, whatever it is);
- ``IoU_c = I_c / U_c``, ``Acc_c = I_c / L_c``, ``aAcc = sum(I) / sum(L)``, ``Dice_c = 2 I_c / (P_c + L_c)``,
  ``Precision_c = I_c / P_c``, ``Recall_c = Acc_c``, ``Fscore_c = 2 Pr Re / (Pr + Re)``;
- a class absent from both predictions and labels has ``IoU = Acc = NaN``; predicted but never labelled:
  ``IoU = 0``, ``Acc = NaN``; labelled but never predicted: ``IoU = Acc = 0``;
- ``mIoU``, ``mAcc``, ... are ``np.nanmean`` over the classes: NaN classes are skipped, prediction-only classes count
  as 0 in mIoU.

Counts are exact int64 (mmseg sums per-image float32 histograms into float64, which is the same for any realistic
set); the scores are float64 and match mmseg's ``eval_metrics`` to the last bit or so. mmseg's ``dataset.evaluate``
then reports ``round(100 * mean, 2) / 100``; this module returns the unrounded means.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, overload

import numpy as np
import torch

__all__ = [
    "CLASS_SCORES",
    "SUMMARY_NAMES",
    "SegmentationMetricAccumulator",
    "reduce_zero_label",
]

#: Per-class scores of :meth:`SegmentationMetricAccumulator.class_scores`, in mmseg's order.
CLASS_SCORES: tuple[str, ...] = ("IoU", "Acc", "Dice", "Fscore", "Precision", "Recall")

#: Keys of :meth:`SegmentationMetricAccumulator.compute`: ``aAcc`` then the ``nanmean`` of each class score.
SUMMARY_NAMES: tuple[str, ...] = ("aAcc", "mIoU", "mAcc", "mDice", "mFscore", "mPrecision", "mRecall")

ArrayLike = torch.Tensor | np.ndarray


@overload
def reduce_zero_label(label: torch.Tensor) -> torch.Tensor: ...
@overload
def reduce_zero_label(label: np.ndarray) -> np.ndarray: ...
def reduce_zero_label(label: ArrayLike) -> ArrayLike:
    """mmseg's ``reduce_zero_label``: raw ADE20K labels (0 = "other", 1..150 = classes) to 0-based class ids.

    Raw 0 -> 255 (ignored), raw ``k`` -> ``k - 1`` for 1..254, and 255 stays 255; i.e. mmseg's three steps
    ``label[label == 0] = 255; label = label - 1; label[label == 254] = 255``, but on a copy: the input is never
    modified (mmseg's ``eval_metrics`` rewrites the caller's numpy arrays in place).

    Args:
        label: integer label map (numpy array or torch tensor, any shape; ADE20K ships uint8).

    Returns:
        A new array of the same kind, dtype, device and shape.
    """
    out = label.clone() if isinstance(label, torch.Tensor) else np.array(label, copy=True)
    out[out == 0] = 255
    out = out - 1
    out[out == 254] = 255
    return out


def _as_long_tensor(x: ArrayLike, what: str, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.is_floating_point() or t.is_complex():
            raise ValueError(f"SegmentationMetricAccumulator.update: {what} must be integer class ids, got {t.dtype}")
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "iub":
            raise ValueError(f"SegmentationMetricAccumulator.update: {what} must be integer class ids, got {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.int64)
        if not arr.flags.writeable:  # torch.from_numpy warns on read-only arrays
            arr = arr.copy()
        t = torch.from_numpy(arr)
    return t.to(device=device if device is not None else t.device, dtype=torch.int64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` in float64 with mmseg's (torch's) IEEE semantics: x/0 = inf, 0/0 = NaN, no warnings."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)


def _nanmean(x: np.ndarray) -> float:
    """``np.nanmean`` without the all-NaN warning (an all-NaN input gives NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(x))


class SegmentationMetricAccumulator:
    """Accumulates per-class intersection / union / prediction / label areas over an evaluation set (mmseg 0.30).

    :meth:`update` takes predicted class ids and (already reduced, see :func:`reduce_zero_label`) labels of any
    number of images; :meth:`compute` gives the set-level ``aAcc`` / ``mIoU`` / ``mAcc`` / ``mDice`` / ``mFscore``
    (see the module docstring for the definitions and NaN rules). Per-image rows (pixel accuracy, the image's own
    mIoU) are kept for a per-sample CSV; they do not enter the set-level scores. Combine processes with
    :meth:`state` / :meth:`merge`, or :meth:`gather` under ``torch.distributed``.

    Args:
        num_classes: number of classes (ADE20K: 150); valid ids are ``0 .. num_classes - 1``.
        class_names: one name per class for :meth:`per_class`; ``None`` uses ``"0"``, ``"1"``, ...
        ignore_index: label value that marks pixels to skip (mmseg: 255). Must not be a valid class id.

    Example::

        acc = SegmentationMetricAccumulator(150, class_names=names)  # e.g. the dataset's 150 class names
        for batch in loader:
            acc.update(model(batch["image"]).argmax(1), batch["label"], names=batch["name"])
        print(acc.compute()["mIoU"])
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"SegmentationMetricAccumulator: num_classes must be >= 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(
                f"SegmentationMetricAccumulator: ignore_index {ignore_index} is a valid class id (< {num_classes})"
            )
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"SegmentationMetricAccumulator: {len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.class_names: list[str] = (
            [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(num_classes)]
        )
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Forgets every image."""
        self._intersect = np.zeros(self.num_classes, dtype=np.int64)
        self._pred = np.zeros(self.num_classes, dtype=np.int64)
        self._label = np.zeros(self.num_classes, dtype=np.int64)
        self._rows: list[dict[str, Any]] = []
        self._seen = 0

    @torch.no_grad()
    def update(self, pred: ArrayLike, label: ArrayLike, names: Sequence[str] | None = None) -> None:
        """Adds a batch of images.

        Args:
            pred: predicted class ids, integer torch tensor or numpy array, ``[..., H, W]``: ``[H, W]`` is one
                image, ``[B, H, W]`` or ``[B, 1, H, W]`` are ``B`` (every leading dim counts). Values on counted
                pixels must be in ``[0, num_classes)``.
            label: class ids, same shape; ``ignore_index`` marks skipped pixels. Labels must already be reduced
                (ADE20K: :func:`reduce_zero_label`). Neither input is modified.
            names: one per image (for :attr:`rows`); ``None`` numbers images in arrival order.

        Raises:
            ValueError: shapes differ (both named), float inputs, a wrong number of names, or an out-of-range
                prediction or label on a counted pixel. (mmseg silently drops out-of-range values from its
                histograms; here they are reported, since they mean a wrong ``num_classes`` or an unreduced label.)
        """
        if tuple(pred.shape) != tuple(label.shape):
            raise ValueError(
                f"SegmentationMetricAccumulator.update: pred shape {tuple(pred.shape)} differs from label shape "
                f"{tuple(label.shape)}"
            )
        if len(pred.shape) < 2:
            raise ValueError(
                f"SegmentationMetricAccumulator.update: expected [..., H, W], got shape {tuple(pred.shape)}"
            )
        pred_t = _as_long_tensor(pred, "pred")
        label_t = _as_long_tensor(label, "label", device=pred_t.device)
        batch = math.prod(pred.shape[:-2])
        if names is None:
            names = [str(self._seen + i) for i in range(batch)]
        elif len(names) != batch:
            raise ValueError(f"SegmentationMetricAccumulator.update: {len(names)} names for a batch of {batch}")
        c = self.num_classes
        pred_t = pred_t.reshape(batch, -1)
        label_t = label_t.reshape(batch, -1)
        valid = label_t != self.ignore_index  # mmseg: the mask comes from the label only
        bad_label = valid & ((label_t < 0) | (label_t >= c))
        bad_pred = valid & ((pred_t < 0) | (pred_t >= c))
        n_bad_label, n_bad_pred = torch.stack([bad_label.sum(), bad_pred.sum()]).tolist()
        if n_bad_label or n_bad_pred:
            raise ValueError(
                f"SegmentationMetricAccumulator.update: {n_bad_label} labels and {n_bad_pred} predictions outside "
                f"[0, {c}) on non-ignored pixels (num_classes={c}, ignore_index={self.ignore_index}; "
                "ADE20K labels need reduce_zero_label)"
            )
        # One bincount per quantity over the whole batch: image b's class k goes to bin b * C + k.
        offset = torch.arange(batch, device=pred_t.device, dtype=torch.int64)[:, None] * c
        correct = valid & (pred_t == label_t)
        areas = torch.stack(
            [
                torch.bincount((label_t + offset)[correct], minlength=batch * c),
                torch.bincount((pred_t + offset)[valid], minlength=batch * c),
                torch.bincount((label_t + offset)[valid], minlength=batch * c),
            ]
        )
        per_image = areas.reshape(3, batch, c).cpu().numpy()  # one device sync
        intersect, pred_area, label_area = per_image
        self._intersect += intersect.sum(axis=0)
        self._pred += pred_area.sum(axis=0)
        self._label += label_area.sum(axis=0)
        union = pred_area + label_area - intersect
        iou = _ratio(intersect, union)  # NaN for classes absent from the image
        for name, i_b, l_b, iou_b in zip(names, intersect, label_area, iou):
            n_pixels = int(l_b.sum())
            self._rows.append(
                {
                    "name": str(name),
                    "pixel_acc": int(i_b.sum()) / n_pixels if n_pixels else math.nan,
                    "mIoU": _nanmean(iou_b),
                    "n_pixels": n_pixels,
                }
            )
        self._seen += batch

    @property
    def area_intersect(self) -> np.ndarray:
        """``I_c``: pixels predicted ``c`` and labelled ``c``, float64 ``[num_classes]`` (mmseg's name and dtype)."""
        return self._intersect.astype(np.float64)

    @property
    def area_pred_label(self) -> np.ndarray:
        """``P_c``: counted pixels predicted ``c``, float64 ``[num_classes]``."""
        return self._pred.astype(np.float64)

    @property
    def area_label(self) -> np.ndarray:
        """``L_c``: pixels labelled ``c``, float64 ``[num_classes]``."""
        return self._label.astype(np.float64)

    @property
    def area_union(self) -> np.ndarray:
        """``U_c = P_c + L_c - I_c``, float64 ``[num_classes]``."""
        return (self._pred + self._label - self._intersect).astype(np.float64)

    def class_scores(self) -> dict[str, np.ndarray]:
        """Per-class scores over everything seen, float64 ``[num_classes]`` each, keys :data:`CLASS_SCORES`.

        ``IoU = I/U``, ``Acc = Recall = I/L``, ``Dice = 2I/(P+L)``, ``Precision = I/P``,
        ``Fscore = 2 Pr Re / (Pr + Re)``, each NaN where its denominator is 0 (mmseg's values, bit for bit).
        """
        i, p, lab, u = self.area_intersect, self.area_pred_label, self.area_label, self.area_union
        precision = _ratio(i, p)
        recall = _ratio(i, lab)
        with np.errstate(invalid="ignore"):
            fscore = _ratio((1 + 1**2) * (precision * recall), 1**2 * precision + recall)  # mmseg's f_score, beta 1
        return {
            "IoU": _ratio(i, u),
            "Acc": recall.copy(),
            "Dice": _ratio(2 * i, p + lab),
            "Fscore": fscore,
            "Precision": precision,
            "Recall": recall,
        }

    def compute(self) -> dict[str, float]:
        """Set-level scores, keys :data:`SUMMARY_NAMES`.

        ``aAcc = sum(I) / sum(L)`` is the overall pixel accuracy; ``mIoU``, ``mAcc``, ``mDice``, ``mFscore``,
        ``mPrecision``, ``mRecall`` are ``np.nanmean`` over the classes of :meth:`class_scores` (the unrounded
        values; mmseg's log shows ``round(100 * x, 2)``). All NaN before any labelled pixel.
        """
        scores = self.class_scores()
        total = int(self._label.sum())
        summary = {"aAcc": int(self._intersect.sum()) / total if total else math.nan}
        for key in CLASS_SCORES:
            summary[f"m{key}"] = _nanmean(scores[key])
        return {name: summary[name] for name in SUMMARY_NAMES}

    def per_class(self) -> list[dict[str, Any]]:
        """One row per class, in class order.

        Each row: ``class`` (name), the float scores of :data:`CLASS_SCORES` (NaN where undefined), and the integer
        pixel counts ``intersection``, ``union``, ``pred_area``, ``label_area``.
        """
        scores = self.class_scores()
        union = self._pred + self._label - self._intersect
        rows = []
        for k, name in enumerate(self.class_names):
            row: dict[str, Any] = {"class": name}
            row.update({key: float(scores[key][k]) for key in CLASS_SCORES})
            row.update(
                intersection=int(self._intersect[k]),
                union=int(union[k]),
                pred_area=int(self._pred[k]),
                label_area=int(self._label[k]),
            )
            rows.append(row)
        return rows

    @property
    def count(self) -> int:
        """Images seen (including images whose pixels are all ignored)."""
        return self._seen

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Per image, in arrival (then merge) order: ``name``, ``pixel_acc`` (correct / counted pixels), ``mIoU`` (the
        nanmean of the image's own class IoUs, classes present in its prediction or label) and ``n_pixels`` (counted
        pixels). NaN scores for an image without counted pixels."""
        return [dict(row) for row in self._rows]

    def state(self) -> dict[str, Any]:
        """A picklable snapshot (plain ints and lists) to send to another process and :meth:`merge` there."""
        return {
            "num_classes": self.num_classes,
            "intersect": self._intersect.tolist(),
            "pred": self._pred.tolist(),
            "label": self._label.tolist(),
            "count": self._seen,
            "rows": self.rows,
        }

    def merge(self, other: SegmentationMetricAccumulator | dict[str, Any]) -> None:
        """Adds another accumulator's areas and rows (or a :meth:`state`); the result equals one pass over both.

        Raises:
            ValueError: the other side has a different ``num_classes``.
        """
        state = other.state() if isinstance(other, SegmentationMetricAccumulator) else other
        if state["num_classes"] != self.num_classes:
            raise ValueError(
                f"SegmentationMetricAccumulator.merge: {state['num_classes']} classes vs {self.num_classes}"
            )
        self._intersect += np.asarray(state["intersect"], dtype=np.int64)
        self._pred += np.asarray(state["pred"], dtype=np.int64)
        self._label += np.asarray(state["label"], dtype=np.int64)
        self._seen += int(state["count"])
        self._rows.extend(dict(row) for row in state["rows"])

    def gather(self) -> None:
        """Under ``torch.distributed``, makes every rank hold the totals of all ranks (a no-op otherwise).

        The areas and the image count are summed with one ``all_reduce`` (on the current CUDA device under NCCL);
        the rows are gathered in rank order. Call on all ranks. Samplers that pad the last batch
        (``DistributedSampler``) evaluate some images twice, which adds their pixels twice: shard the set without
        padding when the score must be exact.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        totals = torch.from_numpy(
            np.concatenate([self._intersect, self._pred, self._label, np.array([self._seen], dtype=np.int64)])
        ).to(device)
        dist.all_reduce(totals)
        totals_np = totals.cpu().numpy()
        c = self.num_classes
        rows: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(rows, self._rows)
        self._intersect = totals_np[:c].copy()
        self._pred = totals_np[c : 2 * c].copy()
        self._label = totals_np[2 * c : 3 * c].copy()
        self._seen = int(totals_np[3 * c])
        self._rows = [row for rank_rows in rows for row in rank_rows]
