"""Converter for the official VPD ADE20K segmentation checkpoint into :class:`vpd.modeling.semantic.VPDSemantic`.

The release is an mmcv checkpoint (``{'meta', 'state_dict', ...}``) whose state dict holds ``unet.unet.
diffusion_model.*`` (with the unused ``out.*``), ``encoder_vq.*``, ``sd_model.*`` (12 DDPM schedule buffers, dropped),
``class_embeddings`` [150, 768], ``gamma``, ``text_adapter.*``, ``neck.*`` and ``decode_head.*``. A pure key map:
every key is mapped or deliberately dropped, anything else is an error naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from vpd.convert.backbone import VPD_SEG, check_all_used, convert_backbone
from vpd.convert.fpn import convert_fpn_state_dict, infer_fpn_config
from vpd.convert.registry import Converter, register, with_class_names
from vpd.modeling.semantic import VPDSemantic, VPDSemanticConfig


def is_vpd_semantic(state: Mapping[str, object]) -> bool:
    """True for the key layout of the official VPD segmentation release."""
    keys = list(state)
    return all(any(k.startswith(p) for k in keys) for p in (VPD_SEG.unet, "neck.", "decode_head."))


def convert_semantic_state_dict(
    state: Mapping[str, torch.Tensor], *, base_config: VPDSemanticConfig | None = None, num_heads: int | None = None
) -> tuple[VPDSemanticConfig, dict[str, torch.Tensor]]:
    """Maps an official VPD segmentation state dict to vpd's layout and infers the architecture from its shapes.

    Args:
        state: the source state dict.
        base_config: supplies what the weights do not hold (the class names; default ADE20K's 150).
        num_heads: UNet attention heads (not stored in any tensor; default 8, SD-1.x).

    Returns:
        ``(config, state_dict)`` ready for ``VPDSemantic(config)`` with strict loading.
    """
    base = base_config or VPDSemanticConfig()
    used: set[str] = set()
    unet_config, vae_config, out = convert_backbone(state, VPD_SEG, used, num_heads)
    out.update(convert_fpn_state_dict(state, used))
    check_all_used(state, used, "VPD semantic")
    names = base.backbone.class_names
    rows = out["backbone.class_embeddings"].shape[0]
    if rows != len(names):
        raise ValueError(f"class_embeddings has {rows} rows but the config names {len(names)} classes")
    fpn = infer_fpn_config({k: v for k, v in out.items() if k.startswith(("neck.", "head."))}, dropout=base.dropout)
    config = dataclasses.replace(
        base,
        backbone=dataclasses.replace(base.backbone, unet=unet_config, vae=vae_config),
        neck_channels=fpn.out_channels,
        head_channels=fpn.channels,
        feature_strides=fpn.feature_strides,
    )
    if tuple(fpn.in_channels) != tuple(config.backbone.feature_channels) or fpn.num_classes != len(names):
        raise ValueError(
            f"the FPN takes {fpn.in_channels} channels for {fpn.num_classes} classes, but the backbone gives "
            f"{config.backbone.feature_channels} for {len(names)} classes"
        )
    return config, out


def _convert(state: Mapping[str, torch.Tensor], settings: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    base = with_class_names(VPDSemanticConfig(), settings.get("class_names"))
    return convert_semantic_state_dict(state, base_config=base, num_heads=settings.get("num_heads"))


register(Converter("vpd-semantic", "official VPD ADE20K segmentation checkpoint (mmcv: {'meta', 'state_dict'})",
                   "semantic", is_vpd_semantic, _convert, VPDSemantic, ("num_heads", "class_names")))  # fmt: skip
