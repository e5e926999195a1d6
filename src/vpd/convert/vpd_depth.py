"""Converters for released VPD depth checkpoints into :class:`vpd.modeling.depth.VPDDepth`.

Two layouts:

- ``"vpd"``: the official wl-zhao/VPD release (``{'model': state_dict}``, 839 keys): ``encoder.unet.unet.
  diffusion_model.*``, ``encoder.encoder_vq.*``, ``encoder.{layer1,layer2,out_layer,text_adapter,gamma,
  class_embeddings}``, ``decoder.*``, ``last_layer_depth.*``.
- ``"mmseg"``: mmsegmentation's port (``{'meta', 'state_dict'}``): ``backbone.*`` (the same SD parts, possibly with
  the VAE decoder and UNet ``out`` still inside) and ``decode_head.{conv1,conv2,conv_aggregation,decoder,
  depth_pred_layer}.*``; its class-embedding buffer carries a 28th row, the mean of the 27 scene embeddings, used
  for unknown scenes -- vpd computes that row on the fly, so it is checked and dropped.

Both are pure key maps: every source key is either mapped, or named in a list of modules VPD never runs; anything
else is an error naming the keys.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import torch

from vpd.convert.backbone import MMSEG_VPD, VPD_DEPTH, check_all_used, convert_backbone, take
from vpd.convert.registry import Converter, register, with_class_names
from vpd.modeling.depth import VPDDepth, VPDDepthConfig

Layout = Literal["vpd", "mmseg"]

_BACKBONES = {"vpd": VPD_DEPTH, "mmseg": MMSEG_VPD}
# (source prefix, our prefix) of the fusion and head, per layout.
_HEAD_MAPS: dict[str, list[tuple[str, str]]] = {
    "vpd": [
        ("encoder.layer1.", "head.fuse_s8."),
        ("encoder.layer2.0.", "head.fuse_s16."),
        ("encoder.out_layer.", "head.fuse_out."),
        ("decoder.deconv_layers.", "head.deconv."),
        ("decoder.conv_layers.", "head.conv."),
        ("last_layer_depth.", "head.predict."),
    ],
    "mmseg": [
        ("decode_head.conv1.", "head.fuse_s8."),
        ("decode_head.conv2.", "head.fuse_s16."),
        ("decode_head.conv_aggregation.", "head.fuse_out."),
        ("decode_head.decoder.deconv_layers.", "head.deconv."),
        ("decode_head.decoder.conv_layers.", "head.conv."),
        ("decode_head.depth_pred_layer.", "head.predict."),
    ],
}


def detect_layout(state: Mapping[str, Any]) -> Layout:
    """``"vpd"`` or ``"mmseg"`` from the key prefixes; ValueError when neither fits."""
    if any(k.startswith(VPD_DEPTH.unet) for k in state):
        return "vpd"
    if any(k.startswith(MMSEG_VPD.unet) for k in state) and any(k.startswith("decode_head.") for k in state):
        return "mmseg"
    raise ValueError(
        "not a VPD depth checkpoint: expected keys under encoder.unet.unet.diffusion_model. (official VPD) "
        "or backbone.unet.unet.diffusion_model. + decode_head. (mmsegmentation)"
    )


def convert_depth_state_dict(
    state: Mapping[str, torch.Tensor],
    layout: Layout | None = None,
    *,
    base_config: VPDDepthConfig | None = None,
    num_heads: int | None = None,
) -> tuple[VPDDepthConfig, dict[str, torch.Tensor]]:
    """Maps a VPD depth state dict to vpd's layout and infers the architecture from its shapes.

    Args:
        state: the source state dict (see the module docstring).
        layout: ``"vpd"`` or ``"mmseg"``; detected when None.
        base_config: supplies what the weights do not hold (class names, max_depth); default: official NYUv2.
        num_heads: UNet attention heads (not stored in any tensor; default 8, SD-1.x).

    Returns:
        ``(config, state_dict)`` ready for ``VPDDepth(config).load_state_dict(state_dict, strict=True)``.
    """
    layout = layout or detect_layout(state)
    base = base_config or VPDDepthConfig()
    used: set[str] = set()
    unet_config, vae_config, out = convert_backbone(state, _BACKBONES[layout], used, num_heads)
    for source, target in _HEAD_MAPS[layout]:
        for key, value in take(state, source, used).items():
            out[target + key] = value
    check_all_used(state, used, layout)

    embeddings = out["backbone.class_embeddings"]
    names = base.backbone.class_names
    if layout == "mmseg" and embeddings.shape[0] == len(names) + 1:
        # mmseg appends the mean embedding (class id -1); vpd derives it, so the row must be exactly that mean.
        if not torch.allclose(embeddings[-1], embeddings[:-1].mean(0), atol=1e-4):
            raise ValueError("mmseg class_embeddings: the last row is not the mean of the others")
        embeddings = embeddings[:-1]
        out["backbone.class_embeddings"] = embeddings
    if embeddings.shape[0] != len(names):
        raise ValueError(f"class_embeddings has {embeddings.shape[0]} rows but the config names {len(names)} classes")

    deconv = sorted(int(k.split(".")[2]) for k in out if k.startswith("head.deconv.") and k.endswith(".weight"))
    config = dataclasses.replace(
        base,
        backbone=dataclasses.replace(base.backbone, unet=unet_config, vae=vae_config),
        fused_channels=int(out["head.fuse_out.0.weight"].shape[0]),
        deconv_channels=tuple(int(out[f"head.deconv.{i}.weight"].shape[1]) for i in deconv if i % 3 == 0),
        head_channels=int(out["head.conv.0.weight"].shape[0]),
    )
    return config, out


def convert_vpd_depth(
    checkpoint: str | os.PathLike[str] | Mapping[str, Any],
    layout: Layout | None = None,
    *,
    base_config: VPDDepthConfig | None = None,
    num_heads: int | None = None,
    allow_globals: Iterable[Any] = (),
) -> VPDDepth:
    """Loads an official VPD or mmsegmentation VPD depth checkpoint into a :class:`VPDDepth` (strictly).

    Args:
        checkpoint: a file (``.pth`` / ``.ckpt`` / ``.safetensors``) or an already loaded dict.
        layout, base_config, num_heads: see :func:`convert_depth_state_dict`.
        allow_globals: see :func:`vpd.convert.checkpoint_io.load_checkpoint`.
    """
    from vpd.convert.registry import convert_checkpoint

    base = base_config or VPDDepthConfig()
    model = convert_checkpoint(
        checkpoint,
        {"vpd": "vpd-depth", "mmseg": "mmseg-vpd-depth", None: None}[layout],
        task="depth",
        allow_globals=allow_globals,
        num_heads=num_heads,
        max_depth=base.max_depth,
        class_names=base.backbone.class_names,
    )
    assert isinstance(model, VPDDepth)
    return model


def _convert(layout: Layout) -> Callable[[Mapping[str, torch.Tensor], dict[str, Any]], tuple[Any, dict[str, Any]]]:
    def convert(state: Mapping[str, torch.Tensor], settings: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        base = with_class_names(VPDDepthConfig(), settings.get("class_names"))
        if settings.get("max_depth") is not None:
            base = dataclasses.replace(base, max_depth=float(settings["max_depth"]))
        return convert_depth_state_dict(state, layout, base_config=base, num_heads=settings.get("num_heads"))

    return convert


def _detects(layout: Layout) -> Callable[[Mapping[str, Any]], bool]:
    def detect(state: Mapping[str, Any]) -> bool:
        try:
            return detect_layout(state) == layout
        except ValueError:
            return False

    return detect


_SETTINGS = ("num_heads", "max_depth", "class_names")
register(Converter("vpd-depth", "official wl-zhao/VPD NYUv2 / KITTI depth checkpoint ({'model': state_dict})",
                   "depth", _detects("vpd"), _convert("vpd"), VPDDepth, _SETTINGS))
register(Converter("mmseg-vpd-depth", "mmsegmentation VPD depth checkpoint ({'meta', 'state_dict'})", "depth",
                   _detects("mmseg"), _convert("mmseg"), VPDDepth, _SETTINGS))  # fmt: skip
