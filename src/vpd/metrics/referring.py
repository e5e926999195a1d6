"""Referring-segmentation metrics (VPD / LAVT protocol): every sentence is one sample.

- oIoU (overall IoU): the sum of intersections over the sum of unions, over all sentences;
- mIoU: the mean of the per-sentence IoUs;
- P@t: the share of sentences whose IoU exceeds ``t`` (t = 0.5, 0.6, 0.7, 0.8, 0.9).

A sentence whose prediction and target are both empty has IoU 0 (its union is 0); pixels labelled 255 are ignored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vpd.data.base import IGNORE_INDEX

#: The IoU thresholds of the precision columns.
PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


class ReferringMetricAccumulator:
    """Accumulates per-sentence intersection and union.

    ``update(pred, target, names, texts, images)`` takes binary masks ``[B, H, W]`` (numpy or torch; target 255 =
    ignore); ``compute()`` gives ``oIoU``, ``mIoU`` and ``P@0.5`` ... ``P@0.9``; ``rows`` one row per sentence
    (name, image file, sentence, IoU) for a CSV; ``state`` / ``merge`` / ``gather`` combine processes.
    """

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._inter: list[int] = []
        self._union: list[int] = []

    def update(
        self,
        pred: np.ndarray | torch.Tensor,
        target: np.ndarray | torch.Tensor,
        names: list[str] | None = None,
        texts: list[str] | None = None,
        images: list[str] | None = None,
    ) -> None:
        p = torch.as_tensor(pred).detach().cpu()
        t = torch.as_tensor(target).detach().cpu()
        if p.shape != t.shape or p.ndim != 3:
            raise ValueError(f"referring metrics: expected [B, H, W] masks of one shape, got {tuple(p.shape)} and "
                             f"{tuple(t.shape)}")  # fmt: skip
        valid = t != IGNORE_INDEX
        p, t = (p != 0) & valid, (t == 1) & valid
        inter = (p & t).flatten(1).sum(1).tolist()
        union = (p | t).flatten(1).sum(1).tolist()
        for i, (a, b) in enumerate(zip(inter, union)):
            self._inter.append(int(a))
            self._union.append(int(b))
            self._rows.append(
                {
                    "name": names[i] if names else str(len(self._rows)),
                    "image": images[i] if images else "",
                    "sentence": texts[i] if texts else "",
                    "IoU": a / b if b else 0.0,
                    "intersection": int(a),
                    "union": int(b),
                }
            )

    @property
    def count(self) -> int:
        return len(self._rows)

    def compute(self) -> dict[str, float]:
        """``oIoU``, ``mIoU`` and the precisions; ValueError when no sentence was evaluated."""
        if not self._rows:
            raise ValueError("no sentence was evaluated")
        ious = np.array([r["IoU"] for r in self._rows], dtype=np.float64)
        union = sum(self._union)
        out = {"oIoU": sum(self._inter) / union if union else 0.0, "mIoU": float(ious.mean())}
        out.update({f"P@{t:g}": float((ious > t).mean()) for t in PRECISION_THRESHOLDS})
        return out

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows)

    def state(self) -> dict[str, Any]:
        return {"rows": list(self._rows), "inter": list(self._inter), "union": list(self._union)}

    def merge(self, state: dict[str, Any]) -> None:
        self._rows += state["rows"]
        self._inter += state["inter"]
        self._union += state["union"]

    def gather(self) -> None:
        """Collects every process's sentences (torch.distributed object all-gather; a no-op otherwise)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        states: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(states, self.state())
        self._rows, self._inter, self._union = [], [], []
        for state in states:
            self.merge(state)
