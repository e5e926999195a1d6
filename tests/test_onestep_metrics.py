"""The one-step family's metrics: affine-invariant depth, normals, matting and DIS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vpd.metrics.onestep import AffineDepthMetrics, MapMetrics, NormalMetrics, connectivity_error, gradient_error
from vpd.tasks.onestep import OneStepEvalConfig, OneStepMetrics


def _depth(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 1 + 4 * torch.rand(2, 1, 24, 32, generator=generator)


def test_affine_depth_recovers_any_scale_and_shift() -> None:
    gt = _depth()
    metrics = AffineDepthMetrics(1e-3, 10.0, None, "least_squares")
    metrics.update((gt - 1) / 7, gt, names=["a", "b"])
    result = metrics.compute()
    assert result["abs_rel"] < 1e-6 and result["d1"] == 1.0
    assert [row["name"] for row in metrics.rows] == ["a", "b"]


def test_affine_disparity_alignment_inverts_after_the_fit() -> None:
    gt = _depth(1)
    disparity_like = 0.3 / gt + 0.05
    in_disparity = AffineDepthMetrics(1e-3, 10.0, None, "least_squares_disparity")
    in_disparity.update(disparity_like, gt)
    assert in_disparity.compute()["abs_rel"] < 1e-6
    in_depth = AffineDepthMetrics(1e-3, 10.0, None, "least_squares")
    in_depth.update(disparity_like, gt)
    assert in_depth.compute()["abs_rel"] > 0.05  # a disparity map is not affine in depth


def test_affine_depth_clips_to_the_range_and_masks() -> None:
    gt = _depth()
    gt[0, 0, :4] = 0  # invalid pixels are not fitted
    pred = (gt - 1) / 7
    pred[0, 0, :4] = 100.0  # wild where the ground truth is invalid: ignored
    metrics = AffineDepthMetrics(1e-3, 10.0, None, "least_squares")
    valid = torch.ones_like(gt, dtype=torch.bool)
    valid[1, 0, :, :16] = False
    metrics.update(pred, gt, valid)
    assert metrics.compute()["abs_rel"] < 1e-6
    # a constant prediction fits as the mean of the ground truth (least squares' minimum-norm answer), and counts
    gt = _depth()[:1]
    single = AffineDepthMetrics(1e-3, 10.0, None, "least_squares")
    single.update(torch.zeros(1, 1, 24, 32), gt)
    expected = float(((gt - gt.mean()).abs() / gt).mean())
    assert single.count == 1 and single.compute()["abs_rel"] == pytest.approx(expected, rel=1e-5)
    # an image without two valid pixels has no fit: skipped and counted
    single.update(torch.rand(1, 1, 24, 32), torch.zeros(1, 1, 24, 32))
    assert single.count == 1 and single.skipped == 1


def test_affine_depth_takes_each_images_range() -> None:
    gt = _depth()
    gt[1] *= 10  # a second dataset's scale: 10..50 m
    metrics = AffineDepthMetrics(1e-3, 10.0, None, "least_squares")
    metrics.update((gt - 1) / 7, gt, ranges=[(1e-3, 10.0), (1e-3, 80.0)])
    assert metrics.count == 2 and metrics.compute()["abs_rel"] < 1e-6
    task_metrics = OneStepMetrics(OneStepEvalConfig())  # null range: the batch's (its dataset's)
    batch = {
        "depth": gt,
        "name": ["a", "b"],
        "min_depth": torch.tensor([1e-3, 1e-3]),
        "max_depth": torch.tensor([10.0, 80.0]),
    }
    task_metrics.update((gt - 1) / 7, batch)
    assert task_metrics.compute()["abs_rel"] < 1e-6


def test_normals_pooled_angles() -> None:
    angle = math.radians(10.0)
    gt = torch.zeros(1, 3, 8, 8)
    gt[:, 2] = 1
    pred = torch.zeros(1, 3, 8, 8)
    pred[:, 0], pred[:, 2] = math.sin(angle), math.cos(angle)
    pred[:, :, :4] *= 3  # unnormalised predictions are normalised
    gt[:, :, 0] = 0  # invalid row
    metrics = NormalMetrics()
    metrics.update(pred, gt, names=["x"])
    result = metrics.compute()
    assert result["mean"] == pytest.approx(10.0, abs=1e-6)
    assert result["median"] == pytest.approx(10.0, abs=0.011)
    assert result["rmse"] == pytest.approx(10.0, abs=1e-6)
    assert (result["a5"], result["a7.5"], result["a11.25"], result["a30"]) == (0.0, 0.0, 100.0, 100.0)
    assert metrics.count == 56


def test_normals_median_over_the_set() -> None:
    metrics = NormalMetrics()
    gt = torch.zeros(1, 3, 1, 3)
    gt[:, 2] = 1
    for degrees in ((0.0, 20.0, 40.0), (60.0, 80.0, 80.0)):
        pred = torch.zeros(1, 3, 1, 3)
        rad = torch.deg2rad(torch.tensor(degrees))
        pred[0, 0, 0], pred[0, 2, 0] = torch.sin(rad), torch.cos(rad)
        metrics.update(pred, gt)
    result = metrics.compute()
    assert result["median"] == pytest.approx(50.0, abs=0.011)  # pixels pooled: 0 20 40 | 60 80 80
    assert result["mean"] == pytest.approx(280 / 6, abs=1e-4)


def test_matting_metrics() -> None:
    rng = np.random.default_rng(0)
    alpha = np.clip(rng.random((30, 40)) * 1.4 - 0.2, 0, 1)
    assert gradient_error(alpha, alpha) == 0 and connectivity_error(alpha, alpha) == 0
    # P3M's connectivity: thresholds where nothing agrees change nothing, so a uniformly under-confident
    # foreground (0.85 against 1) is fully connected and costs 0
    assert connectivity_error(np.full((8, 8), 0.85), np.ones((8, 8))) == 0
    assert gradient_error(alpha, np.clip(alpha + 0.0, 0, 1) * 0.5) > 0
    metrics = MapMetrics("matting")
    pred = torch.tensor(alpha)[None, None]
    metrics.update((pred * 0.9).float(), pred.float(), names=["p"])
    result = metrics.compute()
    diff = alpha * 0.1
    assert result["sad"] == pytest.approx(diff.sum() / 1000, rel=1e-5)
    assert result["mse"] == pytest.approx((diff**2).mean(), rel=1e-4)
    assert result["mad"] == pytest.approx(diff.mean(), rel=1e-5)
    assert result["grad"] > 0 and result["conn"] > 0
    assert metrics.rows[0]["name"] == "p"


def _dis_case(trial: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((37, 53), bool)
    gt[5 + trial : 20, 10 : 30 + trial] = True
    if trial == 3:
        gt[:] = False
    if trial == 4:
        gt[:] = True
    pred = np.round(np.clip(gt * 0.7 + rng.random(gt.shape) * 0.5, 0, 1) * 255).astype(np.uint8)
    return pred, gt


def test_dis_metrics_match_py_sod_metrics() -> None:
    """Five maps (one without foreground, one all foreground) against values py_sod_metrics 1.6.2 gives for them
    (Fmeasure curve max, WeightedFmeasure, Smeasure, Emeasure curve mean / max, MAE)."""
    expected = {"max_f": 0.7818126054286152, "weighted_f": 0.4497643040512836, "s_measure": 0.6788095444780882,
                "mean_e": 0.6510370768511127, "max_e": 0.8595793988546754, "mae": 0.2927278949170543}  # fmt: skip
    rng = np.random.default_rng(0)
    metrics = MapMetrics("dis")
    for trial in range(5):
        pred, gt = _dis_case(trial, rng)
        metrics.update(torch.tensor(pred / 255.0)[None, None], torch.tensor(gt, dtype=torch.float)[None, None])
    result = metrics.compute()
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-9), key


def test_dis_perfect_prediction() -> None:
    gt = np.zeros((20, 30), bool)
    gt[4:12, 5:20] = True
    metrics = MapMetrics("dis")
    metrics.update(torch.tensor(gt, dtype=torch.float)[None, None], torch.tensor(gt, dtype=torch.float)[None, None])
    result = metrics.compute()
    assert result["mae"] == 0 and result["max_f"] == pytest.approx(1.0)
    assert result["s_measure"] == pytest.approx(1.0) and result["weighted_f"] == pytest.approx(1.0)


def test_task_metrics_pick_the_protocol_from_the_batch() -> None:
    config = OneStepEvalConfig(min_depth=1e-3, max_depth=10.0)
    gt = _depth()
    depth = OneStepMetrics(config)
    depth.update((gt - 1) / 7, {"depth": gt, "name": ["a", "b"]})
    assert depth.compute()["abs_rel"] < 1e-6 and len(depth.rows) == 2
    mask = torch.zeros(1, 20, 30, dtype=torch.long)
    mask[:, 4:12, 5:20] = 1
    dis = OneStepMetrics(config)
    dis.update(mask[:, None].float(), {"mask": mask, "name": ["m"]})
    assert dis.compute()["max_f"] == pytest.approx(1.0)
    empty = OneStepMetrics(config)
    with pytest.raises(ValueError, match="ground truth"):
        empty.update(torch.rand(1, 1, 4, 4), {"name": ["x"]})
    with pytest.raises(ValueError, match="no sample"):
        OneStepMetrics(config).compute()
