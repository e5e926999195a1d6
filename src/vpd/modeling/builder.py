"""Building a VPD model on Stable Diffusion: the one place that loads SD, swaps the component configs into the
model config and fills the class embeddings. Every VPD model builder (depth, semantic, ...) calls
:func:`build_vpd_model`."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, TypeVar

import torch

from vpd.modeling.backbone import LatentEncoder, VPDBackbone
from vpd.modeling.hub import PretrainedModel
from vpd.modeling.stable_diffusion import clean_component_config, load_clip_text_encoder, load_stable_diffusion
from vpd.modeling.text_encoder import encode_class_names, random_class_embeddings

M = TypeVar("M", bound=PretrainedModel)


def build_vpd_model(
    model_cls: type[M],
    config: Any,
    *,
    stable_diffusion: str | os.PathLike[str] | None = None,
    text_encoder: str | os.PathLike[str] | None = None,
    class_embeddings: str = "clip",
    seed: int = 0,
    **load_kwargs: Any,
) -> M:
    """Builds ``model_cls(config, backbone=...)``, optionally on pretrained Stable Diffusion weights.

    Args:
        model_cls: a VPD model class whose config has a ``backbone`` (:class:`~vpd.modeling.backbone.BackboneConfig`)
            and whose constructor takes ``(config, backbone=None)``.
        config: the architecture. With ``stable_diffusion``, its UNet/VAE configs are replaced by the loaded model's.
        stable_diffusion: a diffusers folder, hub id or single-file checkpoint (see ``load_stable_diffusion``).
        text_encoder: where to load CLIP from for the class embeddings (default: ``stable_diffusion`` itself when it
            is a diffusers folder or hub id).
        class_embeddings: ``"clip"`` (encode the class names with CLIP) or ``"random"`` (seeded N(0,1) rows, for
            models without any CLIP at hand). Ignored for text conditioning, which has no class embeddings.
        seed: seed of the random initialisation (head, adapter, random class embeddings).
        load_kwargs: passed to ``load_stable_diffusion`` (``local_files_only``, ``original_config``, ...).
    """
    if class_embeddings not in ("clip", "random"):
        raise ValueError(f"class_embeddings must be 'clip' or 'random', got {class_embeddings!r}")
    torch.manual_seed(seed)
    backbone = None
    if stable_diffusion is not None:
        parts = load_stable_diffusion(stable_diffusion, **load_kwargs)
        bcfg = dataclasses.replace(
            config.backbone,
            unet=clean_component_config(parts.unet.config),
            vae=clean_component_config(parts.vae.config),
        )
        config = dataclasses.replace(config, backbone=bcfg)
        backbone = VPDBackbone(bcfg, unet=parts.unet, vae=LatentEncoder.from_autoencoder(parts.vae))
        del parts  # the VAE decoder is not referenced any more and is freed here
    model = model_cls(config, backbone=backbone)
    backbone_config = config.backbone
    if backbone_config.conditioning == "text":
        return model
    table: torch.Tensor = getattr(model, "backbone").class_embeddings  # noqa: B009 (typed as Tensor | Module)
    names = backbone_config.class_names
    if class_embeddings == "random" or (stable_diffusion is None and text_encoder is None):
        table.copy_(random_class_embeddings(len(names), backbone_config.text_dim, seed))
        return model
    source = text_encoder or stable_diffusion
    if source is None or (text_encoder is None and str(source).lower().endswith((".ckpt", ".safetensors"))):
        raise ValueError(
            "class embeddings need a CLIP text encoder: pass text_encoder= (e.g. openai/clip-vit-large-patch14)"
        )
    encoder, tokenizer = load_clip_text_encoder(source, local_files_only=load_kwargs.get("local_files_only"))
    table.copy_(encode_class_names(names, encoder, tokenizer))
    return model
