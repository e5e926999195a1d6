"""Stable Diffusion components: reference configs and loading from a diffusers folder, a hub id or a single file.

Loading goes through diffusers' own ``from_pretrained`` / ``from_single_file`` (and transformers' for CLIP), so
every format diffusers reads works here, offline included (``local_files_only=True`` or ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# diffusers' config of the Stable Diffusion 1.x UNet (runwayml/stable-diffusion-v1-5, unet/config.json).
SD15_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}

# diffusers' config of the Stable Diffusion 2.1 UNet (stabilityai/stable-diffusion-2-1, unet/config.json): what
# GenPercept, Marigold, E2E-FT and Lotus fine-tune.
SD21_UNET_CONFIG: dict[str, Any] = {
    **SD15_UNET_CONFIG,
    "sample_size": 96,
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "upcast_attention": True,
}

# The SD 1.x / 2.x VAE (vae/config.json).
SD_VAE_CONFIG: dict[str, Any] = {
    "sample_size": 512,
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "scaling_factor": 0.18215,
}

# A tiny SD-shaped UNet/VAE pair (2.1M + 0.1M parameters) for tests and the CPU demo: same topology, narrow.
TINY_UNET_CONFIG: dict[str, Any] = {
    **SD15_UNET_CONFIG,
    "sample_size": 8,
    "block_out_channels": [32, 64, 64, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": 4,
    "norm_num_groups": 16,
}
TINY_VAE_CONFIG: dict[str, Any] = {
    **SD_VAE_CONFIG,
    "sample_size": 64,
    "block_out_channels": [16, 32, 32, 32],
    "layers_per_block": 1,
    "norm_num_groups": 8,
}

SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors", ".pt", ".pth", ".bin")


def clean_component_config(config: Any) -> dict[str, Any]:
    """A diffusers config as a plain dict without its private bookkeeping keys (``_class_name``, ...)."""
    return {str(k): (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items() if not k.startswith("_")}


def is_single_file(source: str | os.PathLike[str]) -> bool:
    """True for an original (ldm) checkpoint file or URL rather than a diffusers folder or hub repo id."""
    return str(source).lower().endswith(SINGLE_FILE_SUFFIXES)


@dataclass
class StableDiffusionParts:
    """The parts of a Stable Diffusion model that VPD uses."""

    unet: Any  # diffusers.UNet2DConditionModel
    vae: Any  # diffusers.AutoencoderKL


def load_stable_diffusion(
    source: str | os.PathLike[str],
    *,
    torch_dtype: torch.dtype | None = None,
    local_files_only: bool | None = None,
    revision: str | None = None,
    original_config: str | dict[str, Any] | None = None,
    config: str | None = None,
) -> StableDiffusionParts:
    """Loads the UNet and VAE of a Stable Diffusion model.

    Args:
        source: a diffusers-format folder (with ``unet/`` and ``vae/``), a hub repo id
            (``"stable-diffusion-v1-5/stable-diffusion-v1-5"``), or an original single-file checkpoint
            (``.ckpt`` / ``.safetensors``, a local path or URL).
        torch_dtype: dtype to load the weights in (default float32).
        local_files_only: never reach the network (also set by ``HF_HUB_OFFLINE=1``).
        revision: hub revision.
        original_config: single files only: the ldm yaml (path, URL or parsed dict), so that no config has to be
            fetched from the hub; e.g. ``v1-inference.yaml``.
        config: single files only: a diffusers folder or repo id whose ``unet/`` and ``vae/`` configs to use.

    Raises:
        FileNotFoundError / ValueError: with one line naming the source and what is missing.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel

    source = str(source)
    if is_single_file(source):
        from diffusers.loaders.single_file_utils import load_single_file_checkpoint

        if "://" not in source and not os.path.isfile(source):
            raise FileNotFoundError(f"{source}: no such checkpoint file")

        checkpoint = load_single_file_checkpoint(source, local_files_only=local_files_only, revision=revision)
        kwargs: dict[str, Any] = {"torch_dtype": torch_dtype, "local_files_only": local_files_only}
        if original_config is not None:
            kwargs["original_config"] = original_config
        parts = []
        for cls, subfolder in ((UNet2DConditionModel, "unet"), (AutoencoderKL, "vae")):
            sub_kwargs = dict(kwargs)
            if config is not None:
                sub_kwargs.update(config=config, subfolder=subfolder)
            try:
                parts.append(cls.from_single_file(checkpoint, **sub_kwargs))
            except (OSError, ValueError, KeyError) as err:
                hint = "" if original_config or config else " (offline? pass original_config= the ldm yaml)"
                raise ValueError(
                    f"{source}: cannot build the SD {subfolder} from this checkpoint{hint}: {err}"
                ) from err
        return StableDiffusionParts(unet=parts[0], vae=parts[1])

    if os.path.isdir(source):
        for sub in ("unet", "vae"):
            if not (Path(source) / sub / "config.json").is_file():
                raise FileNotFoundError(
                    f"{source}: not a diffusers Stable Diffusion folder ({sub}/config.json missing)"
                )
    common = {"torch_dtype": torch_dtype, "local_files_only": local_files_only, "revision": revision}
    try:
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", **common)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", **common)
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OSError(f"{source}: not a local diffusers folder nor a reachable hub repo id ({first})") from err
    return StableDiffusionParts(unet=unet, vae=vae)


def load_vae(
    source: str | os.PathLike[str],
    *,
    torch_dtype: torch.dtype | None = None,
    local_files_only: bool | None = None,
    revision: str | None = None,
) -> Any:
    """Loads a diffusers ``AutoencoderKL``: a VAE folder or hub id (``"stabilityai/sd-vae-ft-mse"``), or a Stable
    Diffusion folder or hub id (its ``vae/`` subfolder).

    Raises:
        FileNotFoundError / OSError: with one line naming the source and what is missing.
    """
    from diffusers import AutoencoderKL

    source = str(source)
    common: dict[str, Any] = {"torch_dtype": torch_dtype, "local_files_only": local_files_only, "revision": revision}
    if os.path.isdir(source):
        for subfolder in ("", "vae"):
            if (Path(source) / subfolder / "config.json").is_file():
                return AutoencoderKL.from_pretrained(source, subfolder=subfolder or None, **common)
        raise FileNotFoundError(f"{source}: not a diffusers VAE folder (config.json or vae/config.json missing)")
    if is_single_file(source):
        raise ValueError(f"{source}: a VAE is loaded from a diffusers folder or hub id, not a single file")
    try:  # a hub id: a VAE repo first, then a Stable Diffusion repo's vae/
        return AutoencoderKL.from_pretrained(source, **common)
    except OSError:
        pass
    try:
        return AutoencoderKL.from_pretrained(source, subfolder="vae", **common)
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OSError(f"{source}: not a local VAE folder nor a reachable hub repo id ({first})") from err


def load_clip_text_encoder(
    source: str | os.PathLike[str],
    *,
    local_files_only: bool | None = None,
    revision: str | None = None,
) -> tuple[Any, Any]:
    """Loads a CLIP text encoder and its tokenizer (transformers).

    ``source`` is a Stable Diffusion folder / repo id (``text_encoder/`` and ``tokenizer/`` subfolders) or a CLIP
    folder / repo id itself (e.g. ``"openai/clip-vit-large-patch14"``, what official VPD used).
    """
    from transformers import CLIPTextModel, CLIPTokenizer

    source = str(source)
    common: dict[str, Any] = {"local_files_only": local_files_only, "revision": revision}

    def load(sd_layout: bool) -> tuple[Any, Any]:
        model_sub, tokenizer_sub = ("text_encoder", "tokenizer") if sd_layout else ("", "")
        return (
            CLIPTextModel.from_pretrained(source, subfolder=model_sub, **common),
            CLIPTokenizer.from_pretrained(source, subfolder=tokenizer_sub, **common),
        )

    if os.path.isdir(source):
        if (Path(source) / "text_encoder" / "config.json").is_file():
            return load(sd_layout=True)
        if (Path(source) / "config.json").is_file():
            return load(sd_layout=False)
        raise FileNotFoundError(
            f"{source}: no CLIP text encoder (text_encoder/config.json) to compute class embeddings; pass "
            "text_encoder= a CLIP folder or hub id (e.g. openai/clip-vit-large-patch14), or class_embeddings='random'"
        )
    try:  # a hub id: a Stable Diffusion repo first, then a plain CLIP repo
        return load(sd_layout=True)
    except OSError:
        return load(sd_layout=False)
