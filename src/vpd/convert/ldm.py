"""ldm (CompVis Stable Diffusion) -> diffusers key maps for the UNet and the VAE encoder, and config inference.

The key maps come from diffusers' own single-file converters, run once on probe tensors (each holding its source
index) so that the result is a pure ``{ldm_key: diffusers_key}`` map: every source key is accounted for, and the
map applies to checkpoints without a VAE decoder (VPD's) as well as to full ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from vpd.modeling.stable_diffusion import SD15_UNET_CONFIG, SD_VAE_CONFIG

# ldm modules VPD never runs: the UNet output layers (deleted by official depth, unused by seg/refer), the VAE
# decoder (deleted) and post_quant_conv (kept by the official code but unused).
UNUSED_UNET_PREFIXES = ("out.",)
UNUSED_VAE_PREFIXES = ("decoder.", "post_quant_conv.")


def _probe_map(keys: list[str], convert: Any, prefix: str, config: Mapping[str, Any]) -> dict[str, str]:
    probe = {prefix + key: torch.tensor([float(i)], dtype=torch.float64) for i, key in enumerate(keys)}
    converted = convert(probe, dict(config))
    mapping = {keys[int(value.item())]: target for target, value in converted.items()}
    unmapped = [k for k in keys if k not in mapping]
    if unmapped:
        raise ValueError(f"{len(unmapped)} ldm keys have no diffusers counterpart: {', '.join(unmapped[:3])}")
    return mapping


def ldm_unet_key_map(ldm_keys: list[str], unet_config: Mapping[str, Any]) -> dict[str, str]:
    """``{ldm UNet key (without 'model.diffusion_model.'): diffusers UNet2DConditionModel key}``."""
    from diffusers.loaders.single_file_utils import LDM_UNET_KEY, convert_ldm_unet_checkpoint

    return _probe_map(ldm_keys, convert_ldm_unet_checkpoint, LDM_UNET_KEY, unet_config)


def ldm_vae_key_map(ldm_keys: list[str], vae_config: Mapping[str, Any]) -> dict[str, str]:
    """``{ldm VAE key (without 'first_stage_model.'): diffusers AutoencoderKL key}``."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    return _probe_map(ldm_keys, convert_ldm_vae_checkpoint, "first_stage_model.", vae_config)


def _levels(keys: list[str], pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in keys if (m := re.match(pattern, k))})


def infer_unet_config(ldm: Mapping[str, torch.Tensor], num_heads: int | None = None) -> dict[str, Any]:
    """A diffusers UNet config from the shapes of an ldm UNet state dict (SD-1.x and SD-2.x layouts).

    Widths, depth, attention placement, context width and projection type are read off the tensors. The number of
    attention heads is not stored in any tensor: ``num_heads`` (default 8, SD-1.x) or, for linear-projection
    (SD-2.x) checkpoints, 64-channel heads.
    """
    keys = list(ldm)
    model_channels = ldm["input_blocks.0.0.weight"].shape[0]
    ops = _levels(keys, r"input_blocks\.(\d+)\.0\.op\.weight")
    if not ops:
        raise ValueError("not an ldm UNet state dict (no input_blocks.*.0.op downsamplers)")
    layers = ops[0] - 1
    num_levels = len(ops) + 1
    mults, attention = [], []
    for level in range(num_levels):
        first = 1 + level * (layers + 1)
        mults.append(ldm[f"input_blocks.{first}.0.out_layers.3.weight"].shape[0] // model_channels)
        attention.append(f"input_blocks.{first}.1.proj_in.weight" in ldm)
    k_key = next(k for k in keys if k.endswith("attn2.to_k.weight"))
    context_dim = int(ldm[k_key].shape[1])
    linear = ldm[next(k for k in keys if k.endswith("proj_in.weight"))].ndim == 2
    depth_per_block = len(_levels(keys, r"input_blocks\.1\.1\.transformer_blocks\.(\d+)\.")) or 1
    channels = [model_channels * m for m in mults]
    if num_heads is None and linear:
        heads: Any = [c // 64 for c in channels]  # SD-2.x: 64-channel heads (diffusers' attention_head_dim)
    else:
        heads = num_heads or 8
    base = SD15_UNET_CONFIG
    return {
        **base,
        "block_out_channels": channels,
        "layers_per_block": layers,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
        "cross_attention_dim": context_dim,
        "attention_head_dim": heads,
        "use_linear_projection": linear,
        "transformer_layers_per_block": depth_per_block,
        "in_channels": int(ldm["input_blocks.0.0.weight"].shape[1]),
        "out_channels": int(ldm["out.2.weight"].shape[0]) if "out.2.weight" in ldm else base["out_channels"],
    }


def infer_vae_config(ldm: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """A diffusers AutoencoderKL config from the shapes of an ldm VAE (encoder) state dict."""
    keys = list(ldm)
    ch = ldm["encoder.conv_in.weight"].shape[0]
    levels = _levels(keys, r"encoder\.down\.(\d+)\.")
    if not levels:
        raise ValueError("not an ldm VAE state dict (no encoder.down.* blocks)")
    widths = [int(ldm[f"encoder.down.{i}.block.0.conv2.weight"].shape[0]) for i in levels]
    layers = len(_levels(keys, r"encoder\.down\.0\.block\.(\d+)\."))
    latent = int(ldm["quant_conv.weight"].shape[0]) // 2 if "quant_conv.weight" in ldm else 4
    return {
        **SD_VAE_CONFIG,
        "in_channels": int(ldm["encoder.conv_in.weight"].shape[1]),
        "block_out_channels": widths,
        "down_block_types": ["DownEncoderBlock2D"] * len(widths),
        "up_block_types": ["UpDecoderBlock2D"] * len(widths),
        "layers_per_block": layers,
        "latent_channels": latent,
        "use_quant_conv": "quant_conv.weight" in ldm,
        "norm_num_groups": 32 if ch % 32 == 0 else SD_VAE_CONFIG["norm_num_groups"],
    }


def convert_unet(ldm: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """ldm UNet tensors (prefix stripped, unused ``out.*`` removed) -> diffusers names."""
    keys = [k for k in ldm if not k.startswith(UNUSED_UNET_PREFIXES)]
    mapping = ldm_unet_key_map(keys, config)
    return {mapping[k]: ldm[k] for k in keys}


def convert_vae_encoder(ldm: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """ldm VAE tensors (prefix stripped) -> diffusers names of the encoder half (decoder/post_quant_conv dropped).

    ldm's mid-block attention q/k/v/proj_out are 1x1 convolutions; diffusers' are Linear layers.
    """
    keys = [k for k in ldm if not k.startswith(UNUSED_VAE_PREFIXES)]
    mapping = ldm_vae_key_map(keys, config)
    out = {}
    for key in keys:
        tensor = ldm[key]
        if ".mid.attn_1." in key and tensor.ndim == 4:
            tensor = tensor[:, :, 0, 0]
        out[mapping[key]] = tensor
    return out
