"""The depth demo (``vpd demo``): the whole depth pipeline on a fresh CPU machine, with no weights and no downloads.

Synthetic rooms -> train a tiny VPD depth model -> NYU-style metrics against the untrained model and a constant-depth
baseline -> predict a real photo with real ground truth (scikit-image's Middlebury motorcycle) -> an HTML + PNG
report. The same workflow with ``--config configs/depth_nyuv2.yaml`` and Stable Diffusion weights is the real thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vpd.demo.common import DemoResult, Stopwatch, evaluate_models, start_trainer, train
from vpd.modeling.outputs import DepthOutput

DEMO_RECIPE = "demo_synthetic_depth"

# Middlebury 2014 "Motorcycle", as downsampled (x4) in scikit-image: calibration from skimage.data.stereo_motorcycle.
MIDDLEBURY_FOCAL_PX = 994.978
MIDDLEBURY_BASELINE_M = 0.193001
MIDDLEBURY_DOFFS_PX = 31.086


def middlebury_motorcycle() -> tuple[np.ndarray, np.ndarray]:
    """The left image (uint8 ``[500, 741, 3]``) and its metric depth (float32 metres, 0 where unknown).

    depth = focal * baseline / (disparity + doffs), with the calibration scikit-image documents.
    """
    try:
        from skimage import data
    except ImportError:
        raise ImportError("the demo's real photo comes from scikit-image: pip install 'vpd[demo]'") from None
    left, _, disparity = data.stereo_motorcycle()
    valid = np.isfinite(disparity) & (disparity > 0)
    depth = np.zeros(disparity.shape, np.float32)
    depth[valid] = MIDDLEBURY_FOCAL_PX * MIDDLEBURY_BASELINE_M / (disparity[valid] + MIDDLEBURY_DOFFS_PX)
    return np.ascontiguousarray(left), depth


class ConstantDepth(nn.Module):
    """A baseline with the depth model's interface that predicts one value everywhere."""

    value: torch.Tensor

    def __init__(self, value: float) -> None:
        super().__init__()
        self.register_buffer("value", torch.tensor(float(value)))

    def forward(self, images: torch.Tensor, class_ids: torch.Tensor | None = None) -> DepthOutput:
        b, _, h, w = images.shape
        return DepthOutput(depth=self.value.expand(b, 1, h, w).clone())


class LayoutPrior(nn.Module):
    """A cue-free baseline: depth rising linearly from ``bottom`` (the image's last row) to ``top`` (its first row).

    It sees no pixel values, only where a pixel is: what any indoor photo's layout (floor near, far wall high up)
    gives for free. A model that does not beat it on a real photo has not shown that it reads the image.
    """

    ramp: torch.Tensor

    def __init__(self, bottom: float, top: float) -> None:
        super().__init__()
        self.register_buffer("ramp", torch.tensor([float(bottom), float(top)]))

    def depth(self, height: int, width: int) -> torch.Tensor:
        """``[height, width]`` float32 depth."""
        t = torch.linspace(1.0, 0.0, height) if height > 1 else torch.zeros(1)  # 1 at the top row, 0 at the bottom
        column = self.ramp[0] + (self.ramp[1] - self.ramp[0]) * t
        return column[:, None].expand(height, width).contiguous()

    def forward(self, images: torch.Tensor, class_ids: torch.Tensor | None = None) -> DepthOutput:
        b, _, h, w = images.shape
        depth = self.depth(h, w).to(images.device)
        return DepthOutput(depth=depth.expand(b, 1, h, w).clone())


def _training_depths(dataset: Any, limit: int = 64) -> list[np.ndarray]:
    return [dataset.load(i).depth for i in range(min(limit, len(dataset)))]


def fit_baselines(dataset: Any, limit: int = 64) -> tuple[ConstantDepth, LayoutPrior]:
    """The constant baseline (median training depth) and the layout prior (least-squares line of depth against
    the row's height in the image), both fitted on the first ``limit`` training rooms."""
    depths = _training_depths(dataset, limit)
    constant = ConstantDepth(float(np.median(np.concatenate([d[d > 0] for d in depths]))))
    rows, values = [], []
    for depth in depths:
        height = depth.shape[0]
        t = np.broadcast_to(np.linspace(1.0, 0.0, height)[:, None], depth.shape)
        rows.append(t[depth > 0])
        values.append(depth[depth > 0])
    t, d = np.concatenate(rows), np.concatenate(values)
    slope, intercept = np.polyfit(t, d, 1)  # d ~ intercept + slope * t: bottom = intercept, top = intercept + slope
    return constant, LayoutPrior(intercept, intercept + slope)


def align_to(prediction: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``prediction`` after the least-squares scale and shift that best fit ``gt`` (> 0 where valid).

    A (numerically) constant prediction has no scale to fit: its best affine fit is the mean of the ground truth.
    """
    from vpd.metrics.depth import align_scale_shift

    valid = torch.from_numpy(gt > 0)
    try:
        return align_scale_shift(torch.from_numpy(prediction), torch.from_numpy(gt), valid)[0].numpy()
    except ValueError:
        return np.full(gt.shape, float(gt[gt > 0].mean()), np.float32)


def aligned_abs_rel(prediction: np.ndarray, gt: np.ndarray) -> float:
    """Mean ``|aligned - gt| / gt`` over valid pixels, after :func:`align_to`."""
    valid = gt > 0
    return float((np.abs(align_to(prediction, gt)[valid] - gt[valid]) / gt[valid]).mean())


def run_depth_demo(
    output_dir: str | Path = "runs/demo", overrides: Sequence[str] = (), progress: bool = True
) -> DemoResult:
    """Runs the depth demo end to end and writes ``report.html`` and ``report.png`` into ``output_dir``."""
    from vpd.inference.predictor import DepthPredictor
    from vpd.report import write_depth_report

    output_dir = Path(output_dir)
    clock = Stopwatch()
    with clock("setup"):
        trainer, untrained = start_trainer(DEMO_RECIPE, output_dir, overrides, "VPD depth model", progress)
        constant, layout = fit_baselines(trainer.train_set)

    with clock("baselines"):
        models = {"untrained": untrained, "constant": constant, "layout prior": layout}
        metrics = {name: result.metrics for name, result in evaluate_models(trainer, models).items()}

    with clock("training"):
        metrics["trained"], trained = train(trainer)

    with clock("middlebury"):
        image, gt = middlebury_motorcycle()
        args = trainer.config.data.train.args
        resolution = max(args.get("height", 128), args.get("width", 160))
        predictions: dict[str, np.ndarray] = {}
        for name, model in (("trained", trained), ("untrained", untrained)):
            prediction = DepthPredictor(model)(image, processing_resolution=resolution, flip=True)
            assert not isinstance(prediction, list)
            predictions[name] = np.asarray(prediction.depth)
        predictions["constant"] = np.full(gt.shape, float(constant.value), np.float32)
        predictions["layout prior"] = layout.depth(*gt.shape).numpy()
        middlebury = {name: aligned_abs_rel(pred, gt) for name, pred in predictions.items()}

    demo = DemoResult(metrics, clock.total(), output_dir, trainer.history, task="depth", middlebury=middlebury)
    write_depth_report(demo, trainer, {"trained": trained, "untrained": untrained}, image, gt, predictions)
    return demo


def summary_table(demo: DemoResult) -> str:
    """The depth demo's printed table: abs_rel, rmse, d1 and the real photo's aligned abs_rel per model."""
    from vpd.report import MODELS

    lines = [f"{'model':13s} {'abs_rel':>8s} {'rmse':>8s} {'d1':>8s}   {'Middlebury abs_rel (aligned)':>28s}"]
    for name in MODELS:
        m = demo.metrics[name]
        lines.append(f"{name:13s} {m['abs_rel']:8.4f} {m['rmse']:8.4f} {m['d1']:8.4f}   {demo.middlebury[name]:28.4f}")
    return "\n".join(lines)
