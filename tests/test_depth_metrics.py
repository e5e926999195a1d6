"""Depth metrics: hand-computed values, crops, per-image averaging, alignment and accumulator merging."""

from __future__ import annotations

import math

import pytest
import torch

from vpd.metrics.depth import (
    METRIC_NAMES,
    DepthMetricAccumulator,
    align_scale,
    align_scale_shift,
    depth_metrics,
    eval_crop_box,
    eval_mask,
)


def _two_pixel_example() -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """gt = [2, 4], pred = [1.5, 4]: one pixel off by a factor 0.75, one exact. Expected values from the formulas."""
    gt = torch.tensor([[2.0, 4.0]])
    pred = torch.tensor([[1.5, 4.0]])
    log_err = math.log(0.75)  # d = log(pred) - log(gt) = [log 0.75, 0]
    expected = {
        "d1": 0.5,  # ratio 4/3 = 1.333 >= 1.25
        "d2": 1.0,  # 1.333 < 1.5625
        "d3": 1.0,
        "abs_rel": (0.5 / 2 + 0) / 2,
        "sq_rel": (0.25 / 2 + 0) / 2,
        "rmse": math.sqrt((0.25 + 0) / 2),
        "rmse_log": math.sqrt(log_err**2 / 2),
        "log10": abs(math.log10(0.75)) / 2,
        # mean(d^2) = L^2 / 2, mean(d) = L / 2
        "silog": math.sqrt(log_err**2 / 2 - 0.5 * (log_err / 2) ** 2),
        "silog_bts": 100 * math.sqrt(log_err**2 / 2 - (log_err / 2) ** 2),
    }
    return pred, gt, expected


def test_metric_names_order():
    assert METRIC_NAMES == ("d1", "d2", "d3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "silog_bts")


def test_hand_computed_metrics():
    pred, gt, expected = _two_pixel_example()
    got = depth_metrics(pred, gt, torch.ones_like(gt, dtype=torch.bool))
    assert list(got) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert got[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-15), name
    # the two silogs really differ: sqrt(3/8)|L| vs 100 * |L| / 2
    assert got["silog"] == pytest.approx(math.sqrt(3 / 8) * abs(math.log(0.75)))
    assert got["silog_bts"] == pytest.approx(50 * abs(math.log(0.75)))


def test_d_thresholds_hand_computed():
    gt = torch.ones(4)
    pred = torch.tensor([1.2, 1.0 / 1.5, 1.9, 3.0])  # ratios 1.2, 1.5, 1.9, 3.0
    got = depth_metrics(pred, gt, torch.ones(4, dtype=torch.bool))
    assert (got["d1"], got["d2"], got["d3"]) == (0.25, 0.5, 0.75)


def test_perfect_prediction():
    gt = torch.rand(1, 1, 30, 40, generator=torch.Generator().manual_seed(0)) * 9 + 0.5
    got = depth_metrics(gt.clone(), gt, eval_mask(gt, min_depth=1e-3, max_depth=10.0))
    assert got["d1"] == got["d2"] == got["d3"] == 1.0
    for name in METRIC_NAMES[3:]:
        assert got[name] == pytest.approx(0.0, abs=1e-12), name


def test_mask_excludes_pixels_and_empty_mask_gives_nan():
    pred, gt, expected = _two_pixel_example()
    pred = torch.cat([pred, torch.tensor([[0.0]])], dim=1)  # a zero prediction outside the mask must not poison
    gt = torch.cat([gt, torch.tensor([[0.0]])], dim=1)
    got = depth_metrics(pred, gt)  # default mask: 1e-3 < gt < 10
    assert got["rmse"] == pytest.approx(expected["rmse"])
    empty = depth_metrics(pred, gt, torch.zeros_like(gt, dtype=torch.bool))
    assert all(math.isnan(v) for v in empty.values())


def test_nan_inf_replacement_and_clamp():
    gt = torch.tensor([5.0, 5.0, 5.0], dtype=torch.float64)
    pred = torch.tensor([float("inf"), float("nan"), 12.0], dtype=torch.float64)
    before = pred.clone()
    got = depth_metrics(pred, gt, min_depth=1e-3, max_depth=10.0)
    replaced = depth_metrics(torch.tensor([10.0, 1e-3, 12.0], dtype=torch.float64), gt)
    assert got == replaced
    assert torch.equal(pred.isnan(), before.isnan()) and pred[0] == before[0]  # input not edited
    clamped = depth_metrics(pred, gt, min_depth=1e-3, max_depth=10.0, clamp=True)
    assert clamped == depth_metrics(torch.tensor([10.0, 1e-3, 10.0], dtype=torch.float64), gt)
    assert clamped["rmse"] < got["rmse"]


def test_shape_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"pred shape \(2, 3\) differs from gt shape \(3, 2\)"):
        depth_metrics(torch.ones(2, 3), torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"mask shape \(2, 2\)"):
        depth_metrics(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 2, dtype=torch.bool))


def test_crop_boxes():
    assert eval_crop_box("nyu", 480, 640) == (45, 471, 41, 601)
    assert eval_crop_box("nyu", 240, 320) == (22, 235, 20, 300)  # proportional
    assert eval_crop_box("kitti_garg", 352, 1216) == (143, 349, 43, 1172)
    assert eval_crop_box("kitti_eigen", 352, 1216) == (117, 321, 43, 1172)
    with pytest.raises(ValueError, match="crop must be one of"):
        eval_crop_box("garg", 352, 1216)


@pytest.mark.parametrize(("crop", "shape"), [("nyu", (480, 640)), ("kitti_garg", (352, 1216)), (None, (5, 7))])
def test_eval_mask_crop_region_and_strict_bounds(crop, shape):
    gt = torch.full((2, 1, *shape), 5.0)
    mask = eval_mask(gt, min_depth=1e-3, max_depth=10.0, crop=crop)
    assert mask.shape == gt.shape and mask.dtype == torch.bool
    top, bottom, left, right = eval_crop_box(crop, *shape) if crop else (0, shape[0], 0, shape[1])
    expected = torch.zeros(shape, dtype=torch.bool)
    expected[top:bottom, left:right] = True
    assert torch.equal(mask[0, 0], expected) and torch.equal(mask[1, 0], expected)
    edge = torch.tensor([1e-3, 10.0, 0.0, float("nan"), 1.1e-3, 9.99])
    assert eval_mask(edge, min_depth=1e-3, max_depth=10.0).tolist() == [False, False, False, False, True, True]


def test_accumulator_averages_over_images_not_pixels():
    # image A: 1 valid pixel with abs_rel 0.5; image B: 3 valid pixels with abs_rel 0.1
    gt = torch.tensor([[[[2.0, 0.0], [0.0, 0.0]]], [[[1.0, 1.0], [1.0, 0.0]]]])
    pred = torch.tensor([[[[3.0, 7.0], [7.0, 7.0]]], [[[1.1, 1.1], [1.1, 7.0]]]])
    acc = DepthMetricAccumulator(crop=None)
    acc.update(pred, gt, names=["a", "b"])
    per_image = (0.5 + 0.1) / 2
    per_pixel = (0.5 + 3 * 0.1) / 4
    assert acc.compute()["abs_rel"] == pytest.approx(per_image)
    assert acc.compute()["abs_rel"] != pytest.approx(per_pixel)
    assert [row["name"] for row in acc.rows] == ["a", "b"]
    assert acc.rows[0]["abs_rel"] == pytest.approx(0.5) and acc.rows[1]["abs_rel"] == pytest.approx(0.1)


def test_accumulator_skips_empty_images_and_accepts_shapes(tmp_path):
    acc = DepthMetricAccumulator(max_depth=10.0, crop=None)
    acc.update(torch.ones(3, 4), torch.full((3, 4), 2.0))  # [H, W]
    acc.update(torch.ones(2, 3, 4), torch.zeros(2, 3, 4))  # [B, H, W], nothing valid
    acc.update(torch.ones(1, 1, 3, 4), torch.full((1, 1, 3, 4), 4.0), names=["last"])
    assert acc.count == 2 and acc.skipped == 2 and acc.skipped_names == ["1", "2"]
    assert [row["name"] for row in acc.rows] == ["0", "last"]
    assert acc.compute()["abs_rel"] == pytest.approx((0.5 + 0.75) / 2)
    assert acc.rows[1]["name"] == "last" and acc.rows[1]["abs_rel"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match=r"expected \[H, W\], \[B, H, W\] or \[B, 1, H, W\]"):
        acc.update(torch.ones(2, 2, 3, 4), torch.ones(2, 2, 3, 4))
    with pytest.raises(ValueError, match="2 names for a batch of 1"):
        acc.update(torch.ones(3, 4), torch.ones(3, 4), names=["x", "y"])
    assert all(math.isnan(v) for v in DepthMetricAccumulator().compute().values())


def test_accumulator_uses_its_crop():
    gt = torch.full((1, 1, 480, 640), 3.0)
    pred = gt.clone()
    pred[..., :45, :] = 1.0  # outside the Eigen crop: ignored
    acc = DepthMetricAccumulator(crop="nyu")
    acc.update(pred, gt)
    assert acc.compute()["rmse"] == 0.0


def test_accumulator_merge_equals_single_pass():
    generator = torch.Generator().manual_seed(3)
    batches = [
        (torch.rand(2, 1, 48, 64, generator=generator) * 9 + 0.1, torch.rand(2, 1, 48, 64, generator=generator) * 9)
        for _ in range(4)
    ]
    single = DepthMetricAccumulator(crop="nyu")
    first, second = DepthMetricAccumulator(crop="nyu"), DepthMetricAccumulator(crop="nyu")
    for i, (pred, gt) in enumerate(batches):
        names = [f"{i}_{j}" for j in range(2)]
        single.update(pred, gt, names=names)
        (first if i < 2 else second).update(pred, gt, names=names)
    merged = DepthMetricAccumulator(crop="nyu")
    merged.merge(first.state())
    merged.merge(second)
    assert merged.compute() == single.compute()
    assert merged.rows == single.rows and merged.count == 8
    merged.gather()  # no process group: a no-op
    assert merged.count == 8


def test_align_scale_shift_recovers_known_affine():
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(20, 30, generator=generator, dtype=torch.float64)
    gt = 2.5 * pred + 0.7
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[0, :5] = False
    gt[0, :5] = 100.0  # outliers outside the mask must not matter
    aligned, scale, shift = align_scale_shift(pred, gt, mask)
    assert scale == pytest.approx(2.5, abs=1e-12) and shift == pytest.approx(0.7, abs=1e-12)
    assert torch.allclose(aligned[mask], gt[mask], atol=1e-12) and aligned.shape == pred.shape
    with pytest.raises(ValueError, match="constant"):
        align_scale_shift(torch.ones(4), torch.rand(4))
    with pytest.raises(ValueError, match="at least 2"):
        align_scale_shift(torch.ones(4), torch.ones(4), torch.tensor([True, False, False, False]))


def test_align_scale_median_and_lsq():
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0, 50.0])
    gt = 3.0 * pred
    aligned, scale = align_scale(pred, gt)
    assert scale == pytest.approx(3.0) and torch.allclose(aligned, gt)
    _, lsq = align_scale(pred, gt, method="lsq")
    assert lsq == pytest.approx(3.0)
    _, even = align_scale(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([2.0, 4.0, 10.0, 100.0]))
    assert even == pytest.approx(7.0 / 2.5)  # numpy-style median: (4 + 10) / 2 over (2 + 3) / 2
    with pytest.raises(ValueError, match="method"):
        align_scale(pred, gt, method="mean")
