"""The VPD semantic segmentation model: backbone (all class tokens + cross-attention maps) + Semantic FPN."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from vpd.configuration import check_range
from vpd.data.base import IGNORE_INDEX
from vpd.modeling.backbone import BackboneConfig, VPDBackbone
from vpd.modeling.builder import build_vpd_model
from vpd.modeling.heads.fpn import FPNHead, FPNNeck, resize_logits
from vpd.modeling.hub import PretrainedModel
from vpd.modeling.outputs import SegmentationOutput
from vpd.modeling.stable_diffusion import TINY_UNET_CONFIG, TINY_VAE_CONFIG


def _ade_backbone() -> BackboneConfig:
    from vpd.data.classes import ADE20K_CLASSES

    return BackboneConfig(class_names=ADE20K_CLASSES, conditioning="classes", attention_maps=True)


@dataclass(frozen=True)
class VPDSemanticConfig:
    """Architecture of :class:`VPDSemantic` (defaults: the official ADE20K model on SD-1.5).

    The neck's input widths and the number of classes follow from the backbone: its four feature widths (the
    stride-16/32 maps carry one attention channel per class) and its ``class_names``.

    Attributes:
        backbone: conditioned on all class tokens, with cross-attention maps.
        neck_channels: width of the FPN neck's outputs (256).
        head_channels: width of the FPN head's conv blocks (256).
        feature_strides: the head's nominal strides (mmseg's config says 4..32; only their ratios matter).
        dropout: Dropout2d before the classifier.
    """

    backbone: BackboneConfig = field(default_factory=_ade_backbone)
    neck_channels: int = 256
    head_channels: int = 256
    feature_strides: tuple[int, ...] = (4, 8, 16, 32)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_range("neck_channels", self.neck_channels, low=1)
        check_range("head_channels", self.head_channels, low=1)
        check_range("dropout", self.dropout, low=0, high=1)
        if self.backbone.conditioning != "classes":
            raise ValueError("VPD semantic segmentation conditions on all class tokens (conditioning='classes')")


class VPDSemantic(PretrainedModel):
    """VPD semantic segmentation.

    Example:
        >>> model = VPDSemantic.from_pretrained("path/or/hub-id")      # doctest: +SKIP
        >>> out = model(images)                                        # doctest: +SKIP
        >>> out.logits.shape, out.labels.shape                         # doctest: +SKIP
        (torch.Size([1, 150, 512, 683]), torch.Size([1, 512, 683]))

    Args:
        config: the architecture.
        backbone: a ready backbone (e.g. with Stable Diffusion weights); built from ``config`` when None.
    """

    model_type: ClassVar[str] = "vpd_semantic"
    config_class: ClassVar[type] = VPDSemanticConfig
    backbone: VPDBackbone

    def __init__(self, config: VPDSemanticConfig, backbone: VPDBackbone | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else VPDBackbone(config.backbone)
        self.neck = FPNNeck(config.backbone.feature_channels, config.neck_channels)
        self.head = FPNHead(
            config.neck_channels,
            config.head_channels,
            len(config.backbone.class_names),
            config.feature_strides,
            config.dropout,
        )

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.backbone.class_names

    #: ONNX export (:mod:`vpd.inference.export`): the graph's inputs and its output
    export_inputs: ClassVar[tuple[str, ...]] = ("images",)
    export_output: ClassVar[str] = "logits"

    def export_forward(self, images: torch.Tensor) -> torch.Tensor:
        return self(images).logits

    def forward(self, images: torch.Tensor) -> SegmentationOutput:
        """Segments images.

        Args:
            images: ``[B, 3, H, W]`` RGB in [0, 1]; any size (padded to a multiple of 64 inside).

        Returns:
            :class:`SegmentationOutput` with ``logits`` ``[B, num_classes, H, W]``: the head's stride-8 logits of the
            padded image resized to it (bilinear, ``align_corners=False``, as the official ``encode_decode``) and
            cropped to the input.
        """
        features = self.backbone(images)
        logits = self.head(self.neck(features.features))
        height, width = features.image_size
        logits = resize_logits(logits, features.padded_size)[..., :height, :width]
        return SegmentationOutput(logits=logits)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy as mmseg 0.30's ``CrossEntropyLoss`` computes it (``avg_non_ignore=False``): per-pixel losses
    with pixels labelled 255 counted as 0, averaged over all pixels.

    Args:
        logits: ``[B, C, H, W]``.
        labels: ``[B, H, W]`` int64 class ids, 255 = ignore.
    """
    if labels.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)}")
    per_pixel = F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORE_INDEX, reduction="none")
    return per_pixel.mean()


def build_vpd_semantic(
    config: VPDSemanticConfig | None = None,
    *,
    stable_diffusion: str | os.PathLike[str] | None = None,
    text_encoder: str | os.PathLike[str] | None = None,
    class_embeddings: str = "clip",
    seed: int = 0,
    **load_kwargs: Any,
) -> VPDSemantic:
    """Builds a VPD segmentation model, optionally on pretrained Stable Diffusion (see
    :func:`vpd.modeling.builder.build_vpd_model` for the arguments)."""
    return build_vpd_model(
        VPDSemantic,
        config or VPDSemanticConfig(),
        stable_diffusion=stable_diffusion,
        text_encoder=text_encoder,
        class_embeddings=class_embeddings,
        seed=seed,
        **load_kwargs,
    )


def tiny_vpd_semantic_config(class_names: tuple[str, ...]) -> VPDSemanticConfig:
    """A small SD-shaped VPD segmentation model for tests and the CPU demo."""
    backbone = dataclasses.replace(
        _ade_backbone(), unet=dict(TINY_UNET_CONFIG), vae=dict(TINY_VAE_CONFIG), class_names=tuple(class_names)
    )
    return VPDSemanticConfig(backbone=backbone, neck_channels=32, head_channels=32)
