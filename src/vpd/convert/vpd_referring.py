"""Converter for the official VPD referring segmentation checkpoints into
:class:`vpd.modeling.referring.VPDReferring`.

The release (wl-zhao/VPD ``refer/train.py``) is ``{'model', 'optimizer', 'epoch', 'args', 'lr_scheduler'}``, with an
``argparse.Namespace`` in ``args`` (allowed by :func:`vpd.convert.checkpoint_io.load_checkpoint`). Its state dict holds
``unet.unet.diffusion_model.*`` (with the unused ``out.*``), ``encoder_vq.*`` (no VAE decoder), ``text_adapter.fc.*``,
``gamma`` and ``classifier.*`` (LAVT's ``SimpleDecoding``); the CLIP text encoder is not inside. A pure key map: every
key is mapped or deliberately dropped, anything else is an error naming it.

``classifier.*`` -> ``head.*``:

- ``conv1_4, bn1_4, conv2_4, bn2_4`` (strides 64 + 32) -> ``fuse.0.{0, 1, 3, 4}``;
- ``*_3`` (+ stride 16) -> ``fuse.1.*``; ``*_2`` (+ stride 8) -> ``fuse.2.*``;
- ``conv1_1`` (conv1x1 -> 2 classes) -> ``classifier``.

The tokens per expression (``context_length``: 40 RefCOCO/+, 77 G-Ref) are the attention-map channels the decoder's
first convolutions take, so they are read off the weights; a given ``context_length`` setting is checked against them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from vpd.convert.backbone import VPD_REFER, check_all_used, convert_backbone, take
from vpd.convert.registry import Converter, register
from vpd.modeling.referring import NUM_CLASSES, VPDReferring, VPDReferringConfig

_DECODER = "classifier."
# official SimpleDecoding level suffix -> our fuse block
_LEVELS = {"4": 0, "3": 1, "2": 2}
# official layer name -> index inside our fuse block (conv, BN, ReLU, conv, BN, ReLU)
_LAYERS = {"conv1": 0, "bn1": 1, "conv2": 3, "bn2": 4}


def is_vpd_referring(state: Mapping[str, object]) -> bool:
    """True for the key layout of the official VPD referring release."""
    keys = list(state)
    has = all(any(k.startswith(p) for k in keys) for p in (VPD_REFER.unet, _DECODER + "conv1_1."))
    return has and not any(k.startswith(("neck.", "decode_head.")) for k in keys)


def _decoder_key(name: str) -> str:
    """``conv1_4.weight`` -> ``head.fuse.0.0.weight``; ValueError for a name SimpleDecoding does not have."""
    module, _, param = name.partition(".")
    if module == "conv1_1":
        return f"head.classifier.{param}"
    layer, _, level = module.rpartition("_")
    if layer not in _LAYERS or level not in _LEVELS or not param:
        raise ValueError(f"unexpected key in the VPD referring checkpoint: {_DECODER}{name}")
    return f"head.fuse.{_LEVELS[level]}.{_LAYERS[layer]}.{param}"


def convert_referring_state_dict(
    state: Mapping[str, torch.Tensor],
    *,
    base_config: VPDReferringConfig | None = None,
    num_heads: int | None = None,
    context_length: int | None = None,
) -> tuple[VPDReferringConfig, dict[str, torch.Tensor]]:
    """Maps an official VPD referring state dict to vpd's layout and infers the architecture from its shapes.

    Args:
        state: the source state dict.
        base_config: supplies the numerics the weights do not hold (default: the official RefCOCO model).
        num_heads: UNet attention heads (not stored in any tensor; default 8, SD-1.x).
        context_length: expected tokens per expression; checked against the decoder's widths when given.

    Returns:
        ``(config, state_dict)`` ready for ``VPDReferring(config)`` with strict loading.
    """
    base = base_config or VPDReferringConfig()
    used: set[str] = set()
    unet_config, vae_config, out = convert_backbone(state, VPD_REFER, used, num_heads)
    decoder = take(state, _DECODER, used)
    check_all_used(state, used, "VPD referring")
    required = ("conv1_4.weight", "conv1_3.weight", "conv1_2.weight", "conv2_4.weight", "conv1_1.weight")
    missing = [_DECODER + k for k in required if k not in decoder]
    if missing:
        raise ValueError(f"the VPD referring checkpoint has no {', '.join(missing)}")
    out.update({_decoder_key(k): v for k, v in decoder.items()})

    widths = [int(c) for c in unet_config["block_out_channels"]]
    hidden = int(decoder["conv2_4.weight"].shape[0])
    classes = int(decoder["conv1_1.weight"].shape[0])
    if classes != NUM_CLASSES:
        raise ValueError(f"{_DECODER}conv1_1 predicts {classes} classes, referring segmentation has {NUM_CLASSES}")
    # the stride-32 map and the stride-16 map each carry one attention channel per token
    tokens = int(decoder["conv1_4.weight"].shape[1]) - widths[3] - widths[2]
    if tokens < 1:
        raise ValueError(
            f"{_DECODER}conv1_4 takes {decoder['conv1_4.weight'].shape[1]} channels: no room for attention maps "
            f"next to the UNet's {widths[3]} + {widths[2]}"
        )
    if context_length is not None and context_length != tokens:
        raise ValueError(
            f"context_length {context_length} given, but the decoder takes attention maps of {tokens} tokens"
        )
    backbone = dataclasses.replace(
        base.backbone,
        unet=unet_config,
        vae=vae_config,
        class_names=(),
        context_length=tokens,
        attention_maps=True,
    )
    config = dataclasses.replace(base, backbone=backbone, hidden_channels=hidden)
    c8, c16, _, _ = backbone.feature_channels
    expected = {
        "conv1_3.weight": hidden + c16,
        "conv1_2.weight": hidden + c8,
        "conv2_4.weight": hidden,
        "conv1_1.weight": hidden,
    }
    wrong = [
        f"{_DECODER}{k} takes {decoder[k].shape[1]} channels, expected {v}"
        for k, v in expected.items()
        if int(decoder[k].shape[1]) != v
    ]
    if wrong:
        raise ValueError("the decoder does not fit the backbone: " + "; ".join(wrong))
    out["backbone.class_embeddings"] = torch.zeros(0, backbone.text_dim, dtype=out["backbone.text_adapter.gamma"].dtype)
    return config, out


def _convert(state: Mapping[str, torch.Tensor], settings: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The checkpoint holds no CLIP: ``text_encoder`` names the one its expressions are encoded with (default: the
    official ``openai/clip-vit-large-patch14``); ``bundle_text_encoder`` copies it into the saved folder."""
    config, out = convert_referring_state_dict(
        state, num_heads=settings.get("num_heads"), context_length=settings.get("context_length")
    )
    text = {k: settings[k] for k in ("text_encoder", "bundle_text_encoder") if settings.get(k) is not None}
    return dataclasses.replace(config, **text), out


register(Converter("vpd-referring",
                   "official VPD referring checkpoint ({'model', 'optimizer', 'epoch', 'args', 'lr_scheduler'})",
                   "referring", is_vpd_referring, _convert, VPDReferring,
                   ("num_heads", "context_length", "text_encoder", "bundle_text_encoder")))  # fmt: skip
