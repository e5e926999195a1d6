"""Monocular metric depth (VPD): SiLog loss, NYU/KITTI protocols, flip + sliding-window test-time augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

import numpy as np
import torch

from vpd.configuration import check_range
from vpd.data.base import image_uint8
from vpd.data.nyuv2 import NYU_MAX_DEPTH, NYU_MIN_DEPTH
from vpd.limits import MAX_WINDOWS
from vpd.modeling.losses import silog_loss
from vpd.tasks import register_task
from vpd.tasks.base import Task
from vpd.tasks.building import build_from_recipe
from vpd.training.config import AugmentConfig, EvalConfig, ModelConfig

if TYPE_CHECKING:
    from vpd.data.base import Transform
    from vpd.metrics.depth import DepthMetricAccumulator
    from vpd.modeling.depth import VPDDepth
    from vpd.training.config import RunConfig


@dataclass(frozen=True)
class DepthModelConfig(ModelConfig):
    """``model`` for depth; null fields keep the architecture's defaults (``vpd.modeling.depth.VPDDepthConfig``).

    Attributes:
        max_depth: metres; the output is ``sigmoid(.) * max_depth`` (10 NYUv2, 80 KITTI). Also the evaluation's
            cap (``eval.max_depth``) and CutDepth's white level, unless those are set.
        fused_channels, deconv_channels, head_channels: head widths.
    """

    max_depth: float | None = None
    fused_channels: int | None = None
    deconv_channels: tuple[int, ...] | None = None
    head_channels: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("model.max_depth", self.max_depth, low=0, low_open=True, optional=True)
        for name in ("fused_channels", "head_channels"):
            check_range(f"model.{name}", getattr(self, name), low=1, optional=True)
        for i, width in enumerate(self.deconv_channels or ()):
            check_range(f"model.deconv_channels[{i}]", width, low=1)

    @property
    def output_range(self) -> float:
        """The effective ``max_depth``."""
        return self.max_depth if self.max_depth is not None else NYU_MAX_DEPTH


@dataclass(frozen=True)
class DepthAugmentConfig(AugmentConfig):
    """Official VPD depth augmentation: CutDepth, flip, random crop, brightness/contrast, gamma, hue/saturation.

    Attributes:
        enabled: false: random crop only.
        crop_size: ``(height, width)`` of the random crop (480x480 NYU, 352x704 KITTI).
        cutdepth: CutDepth probability (0 disables it).
    """

    enabled: bool = True
    crop_size: tuple[int, int] = (480, 480)
    cutdepth: float = 0.25

    def __post_init__(self) -> None:
        for i, side in enumerate(self.crop_size):
            check_range(f"augment.crop_size[{i}]", side, low=1)
        check_range("augment.cutdepth", self.cutdepth, low=0, high=1)


@dataclass(frozen=True)
class DepthEvalConfig(EvalConfig):
    """The depth protocol and test-time augmentation.

    Attributes:
        crop: ``nyu`` (Eigen crop), ``kitti_garg``, ``kitti_eigen`` or ``none``.
        min_depth, max_depth: valid ground truth is ``min_depth < gt < max_depth``; ``max_depth`` null: the
            model's ``max_depth``.
        flip: average with the horizontally flipped prediction.
        windows: square sliding windows across the long side (official: 2 at 480x640); None: the whole image.
    """

    crop: Literal["nyu", "kitti_garg", "kitti_eigen", "none"] = "nyu"
    min_depth: float = NYU_MIN_DEPTH
    max_depth: float | None = None
    flip: bool = True
    windows: int | None = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("eval.min_depth", self.min_depth, low=0)
        check_range("eval.max_depth", self.max_depth, low=self.min_depth, low_open=True, optional=True)
        check_range("eval.windows", self.windows, low=1, high=MAX_WINDOWS, optional=True)


class DepthMetrics:
    """The depth protocol (per-image metrics averaged over images) over the task's batches."""

    def __init__(self, config: DepthEvalConfig) -> None:
        from vpd.metrics.depth import DepthMetricAccumulator

        self.config = config
        crop = None if config.crop == "none" else config.crop
        max_depth = config.max_depth if config.max_depth is not None else NYU_MAX_DEPTH
        self.accumulator: DepthMetricAccumulator = DepthMetricAccumulator(
            min_depth=config.min_depth, max_depth=max_depth, crop=crop
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
                f"images{names} have no depth in ({self.config.min_depth:g}, {self.accumulator.max_depth:g}) m inside "
                f"the {self.config.crop} crop; check the depth files' scale, eval.min_depth / eval.max_depth and "
                "eval.crop"
            )
        return self.accumulator.compute()

    def gather(self) -> None:
        self.accumulator.gather()

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.accumulator.rows

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {}


@register_task
class DepthTask(Task):
    name: ClassVar[str] = "depth"
    model_config: ClassVar[type[ModelConfig]] = DepthModelConfig
    augment_config: ClassVar[type[AugmentConfig]] = DepthAugmentConfig
    eval_config: ClassVar[type[EvalConfig]] = DepthEvalConfig
    # The official VPD NYUv2 recipe (SPEC §3); recipes list what differs.
    defaults: ClassVar[dict[str, Any]] = {
        "data": {
            "train": {"kind": "nyuv2_sync", "args": {"root": "data/nyu_depth_v2"}},
            "val": {"kind": "nyuv2_sync", "args": {"root": "data/nyu_depth_v2", "split": "test"}},
        },
        "optim": {
            "lr": 5e-4,
            "min_lr": 3e-5,
            "weight_decay": 0.1,
            "schedule": "vpd",
            "param_rules": [{"key": "unet", "lr_mult": 0.01}],
            "no_decay": "1d_and_bias",
        },
        "train": {"output_dir": "runs/depth_nyuv2", "batch_size": 24},
    }
    model_types: ClassVar[tuple[str, ...]] = ("vpd_depth",)
    primary_metric: ClassVar[str] = "rmse"
    higher_is_better: ClassVar[bool] = False

    def resolve(self, config: RunConfig) -> RunConfig:
        """Fills what the recipe leaves null: ``model.max_depth`` from ``model.init``'s saved model, and
        ``eval.max_depth`` from the model's output range."""
        import dataclasses

        model = cast(DepthModelConfig, config.model)
        if model.max_depth is None and model.init:  # a fine-tuned model keeps its own range (KITTI: 80 m)
            from vpd.modeling.hub import read_config_json, resolve_checkpoint

            saved = read_config_json(resolve_checkpoint(model.init)[0]).get("max_depth", NYU_MAX_DEPTH)
            model = dataclasses.replace(model, max_depth=float(saved))
        evaluation = cast(DepthEvalConfig, config.eval)
        if evaluation.max_depth is None:
            evaluation = dataclasses.replace(evaluation, max_depth=model.output_range)
        return dataclasses.replace(config, model=model, eval=evaluation)

    def conversion_settings(self, config: RunConfig) -> dict[str, Any]:
        return {**super().conversion_settings(config), "max_depth": cast(DepthModelConfig, config.model).output_range}

    def build_model(self, config: RunConfig, class_names: tuple[str, ...]) -> VPDDepth:
        from vpd.modeling.depth import VPDDepth, VPDDepthConfig, tiny_vpd_depth_config

        return cast(
            "VPDDepth",
            build_from_recipe(
                config,
                class_names,
                model_class=VPDDepth,
                full=VPDDepthConfig,
                tiny=tiny_vpd_depth_config,
                load=self.load_model,
                what="scene classes",
                mutable=("max_depth",),
            ),
        )

    def load_model(self, source: str, device: str | torch.device = "cpu") -> VPDDepth:
        from vpd.modeling.depth import VPDDepth

        return VPDDepth.from_pretrained(source, device=device)

    def train_transform(self, config: RunConfig) -> Transform | None:
        from vpd.data.transforms import RandomCrop, depth_train_transform

        augment = cast(DepthAugmentConfig, config.augment)
        if augment.enabled:
            max_depth = cast(DepthModelConfig, config.model).output_range
            return depth_train_transform(augment.crop_size, max_depth=max_depth, cutdepth_p=augment.cutdepth)
        return RandomCrop(augment.crop_size)

    def loss(
        self, model: torch.nn.Module, batch: dict[str, Any], config: RunConfig | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        depth = model(batch["image"], batch["class_id"]).depth
        loss = silog_loss(depth.float(), batch["depth"].float())
        return loss, {"silog": float(loss.detach())}

    def predict(self, model: torch.nn.Module, batch: dict[str, Any], config: EvalConfig) -> torch.Tensor:
        settings = cast(DepthEvalConfig, config)
        return predict_depth(
            model,
            batch["image"],
            batch.get("class_id"),
            flip=settings.flip,
            windows=settings.windows,
            batch_size=settings.batch_size,
        )

    def metrics(self, config: EvalConfig, class_names: tuple[str, ...] | None = None) -> DepthMetrics:
        return DepthMetrics(cast(DepthEvalConfig, config))

    def save_prediction(self, model: torch.nn.Module, prediction: torch.Tensor, stem: Path) -> None:
        from vpd.data.io import depth_png_scale, write_depth_png

        scale = depth_png_scale(float(cast(Any, model).config.max_depth))  # the same units as `vpd predict`
        write_depth_png(stem.with_name(stem.name + ".png"), prediction[0].float().cpu().numpy(), scale)

    def visualize(self, batch: dict[str, Any], prediction: torch.Tensor, index: int = 0) -> np.ndarray:
        from vpd.inference.visualize import colorize_depth, colorize_error, make_panel

        image = image_uint8(batch, index)
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


def predict_depth(
    model: torch.nn.Module,
    images: torch.Tensor,
    class_ids: torch.Tensor | None,
    *,
    flip: bool,
    windows: int | None,
    batch_size: int,
) -> torch.Tensor:
    """Depth's test: square windows along the long side (official: 2) and flips, ``[B, 3, H, W] -> [B, 1, H, W]``."""
    from vpd.inference.grids import square_grid
    from vpd.inference.tta import predict_tta

    def forward(crops: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
        return model(crops, class_ids=ids).depth

    return predict_tta(forward, images, class_ids, grid=square_grid(windows), flip=flip, batch_size=batch_size)
