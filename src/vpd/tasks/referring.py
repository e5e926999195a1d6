"""Referring segmentation (VPD on RefCOCO / RefCOCO+ / RefCOCOg): the object a sentence describes.

Each sample is one (image, sentence, mask); the model encodes the sentence with its frozen CLIP
(:meth:`vpd.modeling.referring.VPDReferring.encode_expressions`), trains with the official class-weighted
cross-entropy and is evaluated by oIoU / mIoU / P@0.5..0.9 (:mod:`vpd.metrics.referring`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import torch

from vpd.configuration import ConfigError, check_range
from vpd.data.base import image_uint8
from vpd.tasks import register_task
from vpd.tasks.base import Task
from vpd.tasks.building import build_from_recipe
from vpd.training.config import EvalConfig, ModelConfig
from vpd.training.optim import UNET_TRANSFORMER_NORMS

if TYPE_CHECKING:
    from vpd.data.base import Transform
    from vpd.modeling.referring import VPDReferring
    from vpd.training.config import RunConfig


#: What the referring evaluation reports, in its order (the official test's numbers).
REFERRING_METRICS = ("oIoU", "mIoU", "P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9")

_REFCOCO = {"root": "data/refer", "dataset": "refcoco"}


@dataclass(frozen=True)
class ReferringModelConfig(ModelConfig):
    """``model`` for referring segmentation; null fields keep ``VPDReferringConfig``'s defaults.

    ``text_encoder`` (generic) names the frozen CLIP for the expressions; null: ``pretrained`` when it is a diffusers
    folder or hub id (SD-1.5's text encoder is CLIP ViT-L/14, what the official models used), else
    ``openai/clip-vit-large-patch14``. The model's config keeps it, so the weights find their CLIP again.

    Attributes:
        context_length: tokens per expression (40 for RefCOCO / RefCOCO+, 77 for RefCOCOg).
        hidden_channels: decoder width.
        bundle_text_encoder: save a copy of the CLIP inside every saved model folder.
        dice_loss: training: the weight of a soft Dice term on the object's probability
            (:func:`vpd.modeling.losses.dice_loss`) added to the official cross-entropy; 0 (the official loss) by
            default. The CPU demo uses 1: its targets cover a few percent of a room, and within minutes the
            cross-entropy alone left the masks thin (held-out oIoU 0.40 against 0.46 with the term).
    """

    loss_fields: ClassVar[tuple[str, ...]] = ("dice_loss",)

    context_length: int | None = None
    hidden_channels: int | None = None
    bundle_text_encoder: bool | None = None
    dice_loss: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("model.dice_loss", self.dice_loss, low=0)
        check_range("model.context_length", self.context_length, low=1, high=77, optional=True)
        check_range("model.hidden_channels", self.hidden_channels, low=1, optional=True)


class ReferringMetrics:
    """oIoU / mIoU / P@k over the sentences; one CSV row per sentence (name, image, sentence, IoU)."""

    def __init__(self) -> None:
        from vpd.metrics.referring import ReferringMetricAccumulator

        self.accumulator = ReferringMetricAccumulator()

    def update(self, prediction: torch.Tensor, batch: dict[str, Any]) -> None:
        if "mask" not in batch:
            raise ValueError("evaluation needs ground-truth masks (target 'mask'); this dataset has none")
        images = batch.get("image_file")
        self.accumulator.update(
            prediction.argmax(1).cpu(), batch["mask"].cpu(), names=list(batch["name"]), texts=list(batch["text"]),
            images=list(images) if images is not None else None,
        )  # fmt: skip

    def compute(self) -> dict[str, float]:
        metrics = self.accumulator.compute()
        return {k: metrics[k] for k in REFERRING_METRICS}

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {}

    def gather(self) -> None:
        self.accumulator.gather()

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.accumulator.rows


def text_encoder_source(spec: ModelConfig) -> str:
    """Where the CLIP for the expressions comes from (see :class:`ReferringModelConfig`); local folders absolute."""
    from vpd.modeling.referring import OFFICIAL_TEXT_ENCODER
    from vpd.modeling.stable_diffusion import is_single_file

    source = spec.text_encoder
    if source is None and spec.pretrained and not is_single_file(spec.pretrained):
        source = spec.pretrained
    if source is None:
        source = OFFICIAL_TEXT_ENCODER
    return os.path.abspath(source) if os.path.isdir(source) else source


@register_task
class ReferringTask(Task):
    name: ClassVar[str] = "referring"
    model_config: ClassVar[type[ModelConfig]] = ReferringModelConfig
    # The official recipe (refer/train.py): AdamW 5e-5, weight decay 0.01 except on parameters named "norm" (in ldm
    # names: only the UNet's transformer norms; the decoder and adapter have none), poly 0.9 per iteration to 0, no
    # warm-up, 40 epochs at batch 32. The code also builds an "lr_scale" of 0.01 for the UNet, but no scheduler
    # reads that key, so the official run trained the UNet at the full rate: so does this default. The scale is
    # one rule away: optim.param_rules += [{key: unet, lr_mult: 0.01}] (see configs/referring_refcoco.yaml).
    defaults: ClassVar[dict[str, Any]] = {
        "model": {"text_encoder": "openai/clip-vit-large-patch14", "context_length": 40},
        "data": {
            "train": {"kind": "refcoco", "args": {**_REFCOCO, "split": "train", "sentences": "one_per_ref"}},
            "val": {"kind": "refcoco", "args": {**_REFCOCO, "split": "val"}},
        },
        "optim": {
            "lr": 5e-5,
            "weight_decay": 0.01,
            "schedule": "poly",
            "poly_power": 0.9,
            "min_lr": 0.0,
            "warmup": "none",
            "param_rules": [{"key": UNET_TRANSFORMER_NORMS, "decay_mult": 0.0}],
            "no_decay": "none",
        },
        "train": {"output_dir": "runs/referring_refcoco", "epochs": 40, "batch_size": 32},
    }
    model_types: ClassVar[tuple[str, ...]] = ("vpd_referring",)
    primary_metric: ClassVar[str] = "oIoU"
    higher_is_better: ClassVar[bool] = True

    def dataset_classes(self, dataset: Any) -> tuple[str, ...]:
        return ()

    def conversion_settings(self, config: RunConfig) -> dict[str, Any]:
        spec = cast(ReferringModelConfig, config.model)
        settings: dict[str, Any] = {"text_encoder": text_encoder_source(spec)}
        if spec.context_length is not None:
            settings["context_length"] = spec.context_length
        return settings

    def build_model(self, config: RunConfig, class_names: tuple[str, ...]) -> VPDReferring:
        from vpd.modeling.referring import VPDReferring, VPDReferringConfig, tiny_vpd_referring_config

        spec = cast(ReferringModelConfig, config.model)
        if spec.architecture == "tiny" and spec.text_encoder is None and not spec.init:
            raise ConfigError(
                "model.text_encoder: a tiny referring model needs a CLIP of its text width (32) -- a folder such as "
                "the one `vpd demo --task referring` writes"
            )
        source = text_encoder_source(spec)
        model = cast(
            "VPDReferring",
            build_from_recipe(
                config,
                class_names,
                model_class=VPDReferring,
                full=lambda: dataclasses.replace(VPDReferringConfig(), text_encoder=source),
                tiny=lambda _: tiny_vpd_referring_config(text_encoder=source),
                load=self.load_model,
                what=None,
                mutable=("bundle_text_encoder",),
            ),
        )
        if spec.init and spec.text_encoder is not None and model.config.text_encoder != source:
            model.config = dataclasses.replace(model.config, text_encoder=source)
        return model

    def load_model(self, source: str, device: str | torch.device = "cpu") -> VPDReferring:
        from vpd.modeling.referring import VPDReferring

        return VPDReferring.from_pretrained(source, device=device)

    def train_transform(self, config: RunConfig) -> Transform | None:
        # The official pipeline resizes to 512x512 (the datasets' ``size``) and does not flip: a mirror would swap
        # "left" and "right" in the sentences.
        return None

    def loss(
        self, model: torch.nn.Module, batch: dict[str, Any], config: RunConfig | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        from vpd.modeling.losses import dice_loss
        from vpd.modeling.referring import referring_loss

        logits = model(batch["image"], expressions=_texts(batch)).logits
        loss = referring_loss(logits, batch["mask"])
        logs = {"ce": float(loss.detach())}
        weight = cast(ReferringModelConfig, config.model).dice_loss if config is not None else 0.0
        if weight:
            dice = dice_loss(logits.float().softmax(1)[:, 1], batch["mask"])
            logs["dice"] = float(dice.detach())
            loss = loss + weight * dice
        return loss, logs

    def predict(self, model: torch.nn.Module, batch: dict[str, Any], config: EvalConfig) -> torch.Tensor:
        return cast(torch.Tensor, model(batch["image"], expressions=_texts(batch)).logits)

    def metrics(self, config: EvalConfig, class_names: tuple[str, ...] | None = None) -> ReferringMetrics:
        return ReferringMetrics()

    def save_prediction(self, model: torch.nn.Module, prediction: torch.Tensor, stem: Path) -> None:
        from vpd.data.io import write_png_atomic

        mask = (prediction.argmax(0) == 1).cpu().numpy()
        write_png_atomic(stem.with_name(stem.name + ".png"), mask.astype(np.uint8) * 255)

    def visualize(self, batch: dict[str, Any], prediction: torch.Tensor, index: int = 0) -> np.ndarray:
        from vpd.inference.visualize import make_panel, overlay_mask

        image = image_uint8(batch, index)
        mask = (prediction[index].argmax(0) == 1).cpu().numpy()
        tiles, titles = [image, overlay_mask(image, mask)], [f'"{_texts(batch)[index]}"', "prediction"]
        if "mask" in batch:
            tiles.append(overlay_mask(image, batch["mask"][index].cpu().numpy() == 1))
            titles.append("ground truth")
        return make_panel(tiles, titles=titles, columns=len(tiles))


def _texts(batch: dict[str, Any]) -> list[str]:
    if "text" not in batch:
        raise ValueError("referring segmentation needs a sentence per sample (batch 'text'); this dataset has none")
    texts = batch["text"]
    return [texts] if isinstance(texts, str) else list(texts)
