"""Referring metrics: oIoU sums before dividing, mIoU averages sentences, P@t counts IoU > t, 255 is ignored."""

from __future__ import annotations

import numpy as np
import pytest

from vpd.metrics.referring import ReferringMetricAccumulator


def test_overall_and_mean_iou_and_precision():
    acc = ReferringMetricAccumulator()
    target = np.zeros((3, 4, 4), np.uint8)
    pred = np.zeros((3, 4, 4), np.uint8)
    target[0, :2] = 1  # 8 pixels
    pred[0, :2, :3] = 1  # 6 of them: IoU 6/8
    target[1, :, :1] = 1  # 4 pixels
    pred[1, :, 3:] = 1  # disjoint: IoU 0, union 8
    target[2, 0, 0] = 255  # an ignored pixel predicted positive, nothing else: union 0 -> IoU 0
    pred[2, 0, 0] = 1
    acc.update(pred[:2], target[:2], names=["a", "b"], texts=["the chair", "the lamp"])
    acc.update(pred[2:], target[2:])
    metrics = acc.compute()
    assert metrics["oIoU"] == pytest.approx(6 / (8 + 8))
    assert metrics["mIoU"] == pytest.approx((0.75 + 0 + 0) / 3)
    assert metrics["P@0.5"] == pytest.approx(1 / 3) and metrics["P@0.8"] == 0.0
    assert [r["IoU"] for r in acc.rows] == pytest.approx([0.75, 0.0, 0.0])
    assert acc.rows[0]["sentence"] == "the chair"


def test_merge_equals_one_pass_and_errors():
    rng = np.random.default_rng(0)
    pred, target = rng.integers(0, 2, (6, 8, 8)), rng.integers(0, 2, (6, 8, 8))
    whole = ReferringMetricAccumulator()
    whole.update(pred, target)
    a, b = ReferringMetricAccumulator(), ReferringMetricAccumulator()
    a.update(pred[:3], target[:3])
    b.update(pred[3:], target[3:])
    a.merge(b.state())
    assert a.compute() == whole.compute()
    with pytest.raises(ValueError, match="no sentence"):
        ReferringMetricAccumulator().compute()
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        whole.update(pred[0], target[0])
