"""Monocular metric depth (VPD): SiLog loss, NYU/KITTI protocols, flip + sliding-window test-time augmentation."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from vpd.configuration import ConfigError
from vpd.modeling.losses import silog_loss
from vpd.tasks.base import Task

if TYPE_CHECKING:
    from vpd.data.base import Transform
    from vpd.metrics.depth import DepthMetricAccumulator
    from vpd.modeling.depth import VPDDepth
    from vpd.training.config import EvalConfig, RunConfig


class DepthMetrics:
    """The depth protocol (per-image metrics averaged over images) over the task's batches."""

    def __init__(self, config: EvalConfig) -> None:
        from vpd.metrics.depth import DepthMetricAccumulator

        self.config = config
        crop = None if config.crop == "none" else config.crop
        self.accumulator: DepthMetricAccumulator = DepthMetricAccumulator(
            min_depth=config.min_depth, max_depth=config.max_depth, crop=crop
        )

    def update(self, prediction: torch.Tensor, batch: dict[str, Any]) -> None:
        if "depth" not in batch:
            raise ValueError("evaluation needs ground-truth depth; this dataset has none")
        self.accumulator.update(prediction.float(), batch["depth"].to(prediction.device).float(), names=batch["name"])

    def compute(self) -> dict[str, float]:
        """The metrics; ValueError when no image had a valid ground-truth pixel (a table of NaN would hide it)."""
        if self.accumulator.count == 0:
            skipped = self.accumulator.skipped_names
            names = f" (e.g. {', '.join(skipped[:3])})" if skipped else ""
            raise ValueError(
                f"no sample had valid ground truth: {self.accumulator.skipped} of {self.accumulator.skipped} "
                f"images{names} have no depth in ({self.config.min_depth:g}, {self.config.max_depth:g}) m inside "
                f"the {self.config.crop} crop; check the depth files' scale, eval.min_depth / eval.max_depth and "
                "eval.crop"
            )
        return self.accumulator.compute()

    def gather(self) -> None:
        self.accumulator.gather()

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.accumulator.rows


class DepthTask(Task):
    name: ClassVar[str] = "depth"
    primary_metric: ClassVar[str] = "rmse"
    higher_is_better: ClassVar[bool] = False

    def build_model(self, config: RunConfig, class_names: tuple[str, ...]) -> VPDDepth:
        from vpd.modeling.depth import VPDDepth, VPDDepthConfig, build_vpd_depth, tiny_vpd_depth_config

        spec = config.model
        if spec.init:
            return VPDDepth.from_pretrained(spec.init)
        names = tuple(spec.class_names) if spec.class_names else tuple(class_names)
        if not names:
            raise ConfigError("model.class_names: the training data has no scene classes; name at least one")
        base = tiny_vpd_depth_config(names) if spec.architecture == "tiny" else VPDDepthConfig()
        model_config = dataclasses.replace(
            base,
            backbone=dataclasses.replace(
                base.backbone, class_names=names, timestep=spec.timestep, scale_latents=spec.scale_latents
            ),
            max_depth=spec.max_depth,
            fused_channels=spec.fused_channels,
            deconv_channels=tuple(spec.deconv_channels),
            head_channels=spec.head_channels,
        )
        load: dict[str, Any] = {}
        if spec.original_config:
            load["original_config"] = spec.original_config
        return build_vpd_depth(
            model_config,
            stable_diffusion=spec.pretrained,
            text_encoder=spec.text_encoder,
            class_embeddings=spec.class_embeddings,
            seed=config.train.seed,
            **load,
        )

    def load_model(self, source: str, device: str | torch.device = "cpu") -> VPDDepth:
        from vpd.modeling.depth import VPDDepth

        return VPDDepth.from_pretrained(source, device=device)

    def train_transform(self, config: RunConfig) -> Transform | None:
        from vpd.data.transforms import RandomCrop, depth_train_transform

        crop = tuple(config.data.crop_size)
        if config.data.augment:
            return depth_train_transform(crop, max_depth=config.model.max_depth, cutdepth_p=config.data.cutdepth)
        return RandomCrop(crop)

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        depth = model(batch["image"], batch["class_id"]).depth
        loss = silog_loss(depth.float(), batch["depth"].float())
        return loss, {"silog": float(loss.detach())}

    def predict(self, model: torch.nn.Module, batch: dict[str, Any], config: EvalConfig) -> torch.Tensor:
        from vpd.inference.tta import predict_depth_tta

        def forward(images: torch.Tensor, class_ids: torch.Tensor | None) -> torch.Tensor:
            return model(images, class_ids).depth

        return predict_depth_tta(
            forward,
            batch["image"],
            batch.get("class_id"),
            flip=config.flip,
            windows=config.windows,
            batch_size=config.batch_size,
        )

    def metrics(self, config: EvalConfig) -> DepthMetrics:
        return DepthMetrics(config)

    def visualize(self, batch: dict[str, Any], prediction: torch.Tensor, index: int = 0) -> np.ndarray:
        from vpd.inference.visualize import colorize_depth, colorize_error, make_panel

        image = (batch["image"][index].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        pred = prediction[index, 0].float().cpu().numpy()
        if "depth" not in batch:
            return make_panel([image, colorize_depth(pred)], titles=["input", "prediction"], columns=2)
        gt = batch["depth"][index, 0].float().cpu().numpy()
        valid = gt > 0
        vmin, vmax = (float(v) for v in np.percentile(gt[valid], [2, 98])) if valid.any() else (None, None)
        error = np.abs(pred - gt) / np.maximum(gt, 1e-6)
        tiles = [
            image,
            colorize_depth(pred, vmin=vmin, vmax=vmax),
            colorize_depth(gt, vmin=vmin, vmax=vmax, invalid_mask=~valid),
            colorize_error(error, vmax=0.5, invalid_mask=~valid),
        ]
        return make_panel(tiles, titles=["input", "prediction", "ground truth", "abs rel error"], columns=4)
