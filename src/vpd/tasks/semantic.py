"""Semantic segmentation (VPD on ADE20K): cross-entropy, mmseg's slide / multi-scale test, mIoU."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

import numpy as np
import torch

from vpd.configuration import ConfigError, check_range
from vpd.data.base import IGNORE_INDEX, image_uint8
from vpd.inference.grids import ADE_CROP, ADE_IMG_SCALE, ADE_RATIO_RANGE, ADE_STRIDE
from vpd.tasks import register_task
from vpd.tasks.base import Task
from vpd.tasks.building import build_from_recipe
from vpd.training.config import AugmentConfig, EvalConfig, ModelConfig
from vpd.training.optim import UNET_TRANSFORMER_NORMS

if TYPE_CHECKING:
    from vpd.data.base import PerceptionDataset, Transform
    from vpd.modeling.semantic import VPDSemantic
    from vpd.training.config import RunConfig


#: What the semantic evaluation reports (mmseg's ADE20K table), in its order.
SEMANTIC_METRICS = ("mIoU", "aAcc", "mAcc")


@dataclass(frozen=True)
class SemanticModelConfig(ModelConfig):
    """``model`` for semantic segmentation; null fields keep ``vpd.modeling.semantic.VPDSemanticConfig``'s defaults.

    Attributes:
        neck_channels, head_channels: FPN widths.
        dropout: before the classifier.
    """

    neck_channels: int | None = None
    head_channels: int | None = None
    dropout: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("model.neck_channels", self.neck_channels, low=1, optional=True)
        check_range("model.head_channels", self.head_channels, low=1, optional=True)
        check_range("model.dropout", self.dropout, low=0, high=1, optional=True)


@dataclass(frozen=True)
class SemanticAugmentConfig(AugmentConfig):
    """mmseg's ADE20K train pipeline: ratio-range resize, random crop with cat_max_ratio, flip, photometric
    distortion, pad (``vpd.data.seg_transforms``).

    Attributes:
        enabled: false: pad / crop to ``crop_size`` only.
        crop_size: ``(height, width)`` of the crop and the padding.
        img_scale: the resize's base ``(long, short)`` scale.
        ratio_range: the resize's ratio range.
        cat_max_ratio: a crop may not be covered by one class beyond this fraction (up to 10 redraws).
    """

    enabled: bool = True
    crop_size: tuple[int, int] = ADE_CROP
    img_scale: tuple[int, int] = ADE_IMG_SCALE
    ratio_range: tuple[float, float] = ADE_RATIO_RANGE
    cat_max_ratio: float = 0.75

    def __post_init__(self) -> None:
        for i, side in enumerate((*self.crop_size, *self.img_scale)):
            check_range(f"augment.crop_size / img_scale[{i}]", side, low=1)
        check_range("augment.ratio_range[0]", self.ratio_range[0], low=0, low_open=True)
        check_range("augment.ratio_range[1]", self.ratio_range[1], low=self.ratio_range[0])
        check_range("augment.cat_max_ratio", self.cat_max_ratio, low=0, low_open=True, high=1)


@dataclass(frozen=True)
class SemanticEvalConfig(EvalConfig):
    """mmseg's test: keep-ratio resize, then sliding windows (or the whole image), optional multi-scale + flip.

    Attributes:
        img_scale: the keep-ratio test resize ``(long, short)``; null: the native size.
        mode: ``slide`` (windows of ``crop`` every ``stride``, logits averaged over overlaps) or ``whole``.
        crop, stride: the slide grid.
        ratios: scales of the views, multiples of ``img_scale`` (official ms: 1.0 ... 1.5).
        flip: add a mirrored view per scale; views are averaged as softmax probabilities.
    """

    img_scale: tuple[int, int] | None = ADE_IMG_SCALE
    mode: Literal["slide", "whole"] = "slide"
    crop: tuple[int, int] = ADE_CROP
    stride: tuple[int, int] = ADE_STRIDE
    ratios: tuple[float, ...] = (1.0,)
    flip: bool = False
    batch_size: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        for i, side in enumerate((*self.crop, *self.stride)):
            check_range(f"eval.crop / stride[{i}]", side, low=1)
        if not self.ratios:
            raise ConfigError("eval.ratios: give at least one scale, e.g. [1.0]")
        for i, ratio in enumerate(self.ratios):
            check_range(f"eval.ratios[{i}]", ratio, low=0, low_open=True, high=8)
        if self.img_scale is None and self.ratios != (1.0,):
            raise ConfigError("eval.ratios scale eval.img_scale; set eval.img_scale to use them")


class SegmentationMetrics:
    """mIoU / aAcc / mAcc (mmseg's protocol) over the task's batches; a per-class table (``tables``)."""

    def __init__(self, class_names: tuple[str, ...]) -> None:
        from vpd.metrics.segmentation import SegmentationMetricAccumulator

        # Created up front: every process joins the cross-process sum, also one that was given no image.
        self.accumulator = SegmentationMetricAccumulator(len(class_names), class_names)

    def update(self, prediction: torch.Tensor, batch: dict[str, Any]) -> None:
        if "semantic" not in batch:
            raise ValueError("evaluation needs ground-truth labels (target 'semantic'); this dataset has none")
        self.accumulator.update(prediction.argmax(1).cpu(), batch["semantic"].cpu(), names=batch["name"])

    def compute(self) -> dict[str, float]:
        if self.accumulator.count == 0:
            raise ValueError("no sample was evaluated")
        metrics = self.accumulator.compute()
        if not np.isfinite(metrics["mIoU"]):
            raise ValueError("no pixel had a valid label (all 255): the labels or their reduction are wrong")
        return {k: metrics[k] for k in SEMANTIC_METRICS}

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """``per_class``: IoU, accuracy, intersection and union per class (with names)."""
        return {"per_class": self.accumulator.per_class()}

    def gather(self) -> None:
        self.accumulator.gather()

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.accumulator.rows


@register_task
class SemanticTask(Task):
    name: ClassVar[str] = "semantic"
    model_config: ClassVar[type[ModelConfig]] = SemanticModelConfig
    augment_config: ClassVar[type[AugmentConfig]] = SemanticAugmentConfig
    eval_config: ClassVar[type[EvalConfig]] = SemanticEvalConfig
    # The official VPD ADE20K recipe (SPEC §4; fpn_vpd_sd1-5_512x512_gpu8x2.py): mmcv's custom_keys in vpd's
    # parameter names. mmcv's "norm" key matches the UNet's transformer norms (SpatialTransformer.norm and
    # transformer_blocks.*.norm1-3: full lr, no decay) and beats "unet"; the ResBlock GroupNorms, named in_layers.0 /
    # out_layers.0 in ldm, are not matched (ours are resnets.*.norm1/2, hence the narrower pattern).
    defaults: ClassVar[dict[str, Any]] = {
        "data": {
            "train": {"kind": "ade20k", "args": {"root": "data/ade/ADEChallengeData2016", "split": "training"}},
            "val": {"kind": "ade20k", "args": {"root": "data/ade/ADEChallengeData2016", "split": "validation"}},
        },
        "optim": {
            "lr": 8e-5,
            "weight_decay": 1e-3,
            "schedule": "poly",
            "poly_power": 1.0,
            "min_lr": 0.0,
            "warmup": "linear",
            "warmup_steps": 1500,
            "warmup_ratio": 1e-6,
            "param_rules": [
                {"key": UNET_TRANSFORMER_NORMS, "decay_mult": 0.0},
                {"key": "unet", "lr_mult": 0.1},
            ],
            "no_decay": "none",
        },
        "train": {"output_dir": "runs/semantic_ade20k", "max_steps": 80000, "batch_size": 16},
    }
    model_types: ClassVar[tuple[str, ...]] = ("vpd_semantic",)
    primary_metric: ClassVar[str] = "mIoU"
    higher_is_better: ClassVar[bool] = True

    def dataset_classes(self, dataset: PerceptionDataset) -> tuple[str, ...]:
        """The label classes (a dataset serving several tasks names them ``semantic_class_names``)."""
        return tuple(getattr(dataset, "semantic_class_names", None) or dataset.class_names)

    def build_model(self, config: RunConfig, class_names: tuple[str, ...]) -> VPDSemantic:
        from vpd.modeling.semantic import VPDSemantic, VPDSemanticConfig, tiny_vpd_semantic_config

        return cast(
            "VPDSemantic",
            build_from_recipe(
                config,
                class_names,
                model_class=VPDSemantic,
                full=VPDSemanticConfig,
                tiny=tiny_vpd_semantic_config,
                load=self.load_model,
                what="label classes",
                mutable=("dropout",),
            ),
        )

    def load_model(self, source: str, device: str | torch.device = "cpu") -> VPDSemantic:
        from vpd.modeling.semantic import VPDSemantic

        return VPDSemantic.from_pretrained(source, device=device)

    def train_transform(self, config: RunConfig) -> Transform | None:
        from vpd.data.seg_transforms import Pad, RandomCropCatMax, seg_train_transform
        from vpd.data.transforms import Compose

        augment = cast(SemanticAugmentConfig, config.augment)
        if augment.enabled:
            return seg_train_transform(augment.crop_size, augment.img_scale, augment.ratio_range, augment.cat_max_ratio)
        # Unaugmented: a plain random crop (images smaller than the crop keep all they have), padded to the crop.
        return Compose([RandomCropCatMax(augment.crop_size, cat_max_ratio=1.0), Pad(augment.crop_size)])

    def loss(
        self, model: torch.nn.Module, batch: dict[str, Any], config: RunConfig | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        from vpd.modeling.semantic import segmentation_loss

        loss = segmentation_loss(model(batch["image"]).logits, batch["semantic"])
        return loss, {"ce": float(loss.detach())}

    def predict(self, model: torch.nn.Module, batch: dict[str, Any], config: EvalConfig) -> torch.Tensor:
        return predict_segmentation(model, batch["image"], cast(SemanticEvalConfig, config))

    def metrics(self, config: EvalConfig, class_names: tuple[str, ...] | None = None) -> SegmentationMetrics:
        if not class_names:
            raise ValueError("segmentation metrics need the model's class names")
        return SegmentationMetrics(class_names)

    def save_prediction(self, model: torch.nn.Module, prediction: torch.Tensor, stem: Path) -> None:
        from vpd.data.io import write_png_atomic

        labels = prediction.argmax(0).cpu().numpy()
        if labels.max(initial=0) >= IGNORE_INDEX:  # ids 0..254 in an 8-bit PNG; 255 means "ignore"
            raise ValueError(f"more than {IGNORE_INDEX} classes do not fit an 8-bit label PNG")
        write_png_atomic(stem.with_name(stem.name + ".png"), labels.astype(np.uint8))

    def visualize(self, batch: dict[str, Any], prediction: torch.Tensor, index: int = 0) -> np.ndarray:
        from vpd.inference.visualize import colorize_labels, make_panel

        image = image_uint8(batch, index)
        labels = prediction[index].argmax(0).cpu().numpy()
        tiles, titles = [image, colorize_labels(labels)], ["input", "prediction"]
        if "semantic" in batch:
            tiles.append(colorize_labels(batch["semantic"][index].cpu().numpy()))
            titles.append("ground truth")
        return make_panel(tiles, titles=titles, columns=len(tiles))


def predict_segmentation(model: torch.nn.Module, images: torch.Tensor, config: SemanticEvalConfig) -> torch.Tensor:
    """mmseg's test on ``[B, 3, H, W]`` images -> ``[B, C, H, W]`` scores at the input size.

    Each view (a scale of ``config.img_scale`` times a ratio, keep-ratio resized; mirrored too with ``flip``) is
    predicted over the slide grid (or whole), its logits averaged over window overlaps and resized back to the input.
    One view gives logits; several are averaged as softmax probabilities (the official ms+flip test).
    """
    from vpd.inference.grids import crop_stride_grid, multi_scale_views
    from vpd.inference.tta import multi_scale_tta, predict_tta

    height, width = int(images.shape[-2]), int(images.shape[-1])
    if config.img_scale is None:
        sizes = [(height, width)]
    else:
        views = multi_scale_views(height, width, config.ratios, False, config.img_scale, config.crop, config.stride)
        sizes = [view.resized_hw for view in views]
    grid = crop_stride_grid(config.crop, config.stride) if config.mode == "slide" else None

    def view(x: torch.Tensor) -> torch.Tensor:
        return predict_tta(lambda crops, _: model(crops).logits, x, grid=grid, batch_size=config.batch_size)

    single = len(sizes) == 1 and not config.flip
    return multi_scale_tta(view, images, sizes, flip=config.flip, activation=None if single else _softmax)


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.softmax(1)
