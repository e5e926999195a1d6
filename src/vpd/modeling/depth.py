"""The VPD monocular depth model: backbone (scene-conditioned) + fusion and deconvolution head."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from vpd.configuration import check_range
from vpd.data.nyuv2 import NYU_MAX_DEPTH
from vpd.modeling.backbone import BackboneConfig, VPDBackbone
from vpd.modeling.builder import build_vpd_model
from vpd.modeling.heads.depth import VPDDepthHead
from vpd.modeling.hub import PretrainedModel
from vpd.modeling.outputs import DepthOutput
from vpd.modeling.stable_diffusion import TINY_UNET_CONFIG, TINY_VAE_CONFIG


def _nyu_backbone() -> BackboneConfig:
    from vpd.data.classes import NYU_SCENE_CLASSES

    return BackboneConfig(class_names=NYU_SCENE_CLASSES, conditioning="scene")


@dataclass(frozen=True)
class VPDDepthConfig:
    """Architecture of :class:`VPDDepth` (defaults: the official NYUv2 model on SD-1.5).

    Attributes:
        backbone: the backbone; depth conditions on one scene token per image.
        max_depth: metres; the output is ``sigmoid(.) * max_depth`` (10 NYUv2, 80 KITTI).
        fused_channels: width of the fused stride-32 map.
        deconv_channels: widths of the head's deconvolutions.
        head_channels: width of the head's full-resolution convolutions.
    """

    backbone: BackboneConfig = field(default_factory=_nyu_backbone)
    max_depth: float = NYU_MAX_DEPTH
    fused_channels: int = 1536
    deconv_channels: tuple[int, ...] = (32, 32, 32)
    head_channels: int = 192

    def __post_init__(self) -> None:
        check_range("max_depth", self.max_depth, low=0, low_open=True)


class VPDDepth(PretrainedModel):
    """VPD depth estimation.

    Example:
        >>> model = VPDDepth.from_pretrained("path/or/hub-id")          # doctest: +SKIP
        >>> depth = model(images, class_ids=torch.tensor([6])).depth     # doctest: +SKIP

    Args:
        config: the architecture.
        backbone: a ready backbone (e.g. with Stable Diffusion weights); built from ``config`` when None.
    """

    model_type: ClassVar[str] = "vpd_depth"
    config_class: ClassVar[type] = VPDDepthConfig
    # compiled one graph each: the SD-size model in bf16 at 480x480 peaked 0.10-0.26 GiB lower than as one graph
    compile_parts: ClassVar[tuple[str, ...]] = ("backbone", "head")
    backbone: VPDBackbone
    head: VPDDepthHead

    def __init__(self, config: VPDDepthConfig, backbone: VPDBackbone | None = None) -> None:
        super().__init__()
        if config.backbone.conditioning != "scene" or config.backbone.attention_maps:
            raise ValueError("VPD depth conditions on one scene token per image, without attention maps")
        self.config = config
        self.backbone = backbone if backbone is not None else VPDBackbone(config.backbone)
        self.head = VPDDepthHead(
            config.backbone.feature_channels,
            fused_channels=config.fused_channels,
            deconv_channels=config.deconv_channels,
            head_channels=config.head_channels,
            max_depth=config.max_depth,
        )

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.backbone.class_names

    def forward(self, images: torch.Tensor, class_ids: torch.Tensor | None = None) -> DepthOutput:
        """Predicts metric depth.

        Args:
            images: ``[B, 3, H, W]`` RGB in [0, 1]; any size (padded to a multiple of 64 inside, cropped back).
            class_ids: ``[B]`` scene class indices into ``class_names``; -1 or None: the mean class embedding.

        Returns:
            :class:`DepthOutput` with ``depth`` ``[B, 1, H, W]`` in metres.
        """
        features = self.backbone(images, class_ids=class_ids)
        return DepthOutput(depth=self.head(features.features, features.image_size))

    #: ONNX export (:mod:`vpd.inference.export`): the graph's inputs and its output
    export_inputs: ClassVar[tuple[str, ...]] = ("images", "class_ids")
    export_output: ClassVar[str] = "depth"

    def export_forward(self, images: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        return self(images, class_ids).depth


def build_vpd_depth(
    config: VPDDepthConfig | None = None,
    *,
    stable_diffusion: str | os.PathLike[str] | None = None,
    text_encoder: str | os.PathLike[str] | None = None,
    class_embeddings: str = "clip",
    seed: int = 0,
    **load_kwargs: Any,
) -> VPDDepth:
    """Builds a VPD depth model, optionally on pretrained Stable Diffusion weights.

    Args:
        config: the architecture (default: official NYUv2). With ``stable_diffusion``, its UNet/VAE configs are
            replaced by the loaded model's.
        stable_diffusion: a diffusers folder, hub id or single-file checkpoint (see ``load_stable_diffusion``).
        text_encoder: where to load CLIP from for the class embeddings (default: ``stable_diffusion`` itself when it
            is a diffusers folder or hub id).
        class_embeddings: ``"clip"`` (encode ``class_names`` with CLIP) or ``"random"`` (seeded N(0,1) rows, for
            models without any CLIP at hand).
        seed: seed of the random initialisation (head, adapter, random class embeddings).
        load_kwargs: passed to ``load_stable_diffusion`` (``local_files_only``, ``original_config``, ...).
    """
    return build_vpd_model(
        VPDDepth,
        config or VPDDepthConfig(),
        stable_diffusion=stable_diffusion,
        text_encoder=text_encoder,
        class_embeddings=class_embeddings,
        seed=seed,
        **load_kwargs,
    )


def tiny_vpd_depth_config(
    class_names: tuple[str, ...] | None = None, max_depth: float = NYU_MAX_DEPTH
) -> VPDDepthConfig:
    """A small SD-shaped VPD depth model (~3M parameters) for tests and the CPU demo."""
    base = _nyu_backbone()
    backbone = dataclasses.replace(
        base,
        unet=dict(TINY_UNET_CONFIG),
        vae=dict(TINY_VAE_CONFIG),
        class_names=class_names if class_names is not None else base.class_names,
    )
    return VPDDepthConfig(
        backbone=backbone, max_depth=max_depth, fused_channels=128, deconv_channels=(32, 32, 32), head_channels=32
    )
