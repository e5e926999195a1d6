"""The key map of the VPD backbone (SD UNet, VAE encoder, text adapter, class embeddings) shared by all releases.

Every official VPD model (depth, semantic, referring) and mmsegmentation's port store the same backbone parts under
different prefixes; a :class:`BackboneLayout` names them, and :func:`convert_backbone` maps them to vpd's
``backbone.*`` keys while inferring the UNet and VAE configs from the tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from vpd.convert.ldm import convert_unet, convert_vae_encoder, infer_unet_config, infer_vae_config


@dataclass(frozen=True)
class BackboneLayout:
    """Where a release keeps the backbone parts.

    Attributes:
        unet: prefix of the ldm UNet keys.
        vae: prefix of the ldm VAE (``AutoencoderKL``) keys.
        adapter: prefix of the text adapter's MLP (``fc.0``, ``fc.2``).
        gamma: key of the text adapter's gamma.
        class_embeddings: key of the class-embedding buffer, or None when the model has none (referring).
        ignore: prefixes of stored modules the forward never runs (e.g. seg's DDPM schedule buffers).
    """

    unet: str
    vae: str
    adapter: str
    gamma: str
    class_embeddings: str | None
    ignore: tuple[str, ...] = ()


VPD_DEPTH = BackboneLayout(
    unet="encoder.unet.unet.diffusion_model.",
    vae="encoder.encoder_vq.",
    adapter="encoder.text_adapter.fc.",
    gamma="encoder.gamma",
    class_embeddings="encoder.class_embeddings",
)
MMSEG_VPD = BackboneLayout(
    unet="backbone.unet.unet.diffusion_model.",
    vae="backbone.encoder_vq.",
    adapter="backbone.text_adapter.fc.",
    gamma="backbone.gamma",
    class_embeddings="backbone.class_embeddings",
)
VPD_SEG = BackboneLayout(
    unet="unet.unet.diffusion_model.",
    vae="encoder_vq.",
    adapter="text_adapter.fc.",
    gamma="gamma",
    class_embeddings="class_embeddings",
    ignore=("sd_model.",),  # the 12 DDPM schedule buffers of ldm's LatentDiffusion, unused
)
VPD_REFER = BackboneLayout(
    unet="unet.unet.diffusion_model.",
    vae="encoder_vq.",
    adapter="text_adapter.fc.",
    gamma="gamma",
    class_embeddings=None,
)


def take(state: Mapping[str, torch.Tensor], prefix: str, used: set[str]) -> dict[str, torch.Tensor]:
    """The entries under ``prefix`` (prefix stripped); their source keys are added to ``used``."""
    part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    used.update(prefix + k for k in part)
    return part


def convert_backbone(
    state: Mapping[str, torch.Tensor], layout: BackboneLayout, used: set[str], num_heads: int | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, torch.Tensor]]:
    """Maps the backbone part of ``state`` to vpd's ``backbone.*`` keys.

    Args:
        state: the whole source state dict.
        layout: where the parts live.
        used: collects every consumed (or deliberately ignored) source key, for the caller's unexpected-key check.
        num_heads: UNet attention heads (see ``infer_unet_config``).

    Returns:
        ``(unet_config, vae_config, tensors)`` -- diffusers configs inferred from the shapes, and the mapped tensors.
    """
    unet_ldm = take(state, layout.unet, used)
    vae_ldm = take(state, layout.vae, used)
    if not unet_ldm or not vae_ldm:
        raise ValueError(f"no UNet ({layout.unet}*) or no VAE ({layout.vae}*) keys in the checkpoint")
    unet_config = infer_unet_config(unet_ldm, num_heads)
    vae_config = infer_vae_config(vae_ldm)
    out: dict[str, torch.Tensor] = {}
    out.update({"backbone.unet." + k: v for k, v in convert_unet(unet_ldm, unet_config).items()})
    out.update({"backbone.vae." + k: v for k, v in convert_vae_encoder(vae_ldm, vae_config).items()})
    out.update({"backbone.text_adapter.fc." + k: v for k, v in take(state, layout.adapter, used).items()})
    if layout.gamma not in state:
        raise ValueError(f"the checkpoint has no text-adapter gamma ({layout.gamma})")
    out["backbone.text_adapter.gamma"] = state[layout.gamma]
    used.add(layout.gamma)
    if layout.class_embeddings is not None:
        if layout.class_embeddings not in state:
            raise ValueError(f"the checkpoint has no class embeddings ({layout.class_embeddings})")
        out["backbone.class_embeddings"] = state[layout.class_embeddings]
        used.add(layout.class_embeddings)
    for prefix in layout.ignore:
        take(state, prefix, used)
    return unet_config, vae_config, out


def check_all_used(state: Mapping[str, Any], used: set[str], what: str) -> None:
    """Raises naming the source keys that were neither mapped nor deliberately ignored."""
    unexpected = sorted(set(state) - used)
    if unexpected:
        more = f" (+{len(unexpected) - 3} more)" if len(unexpected) > 3 else ""
        names = ", ".join(unexpected[:3])
        raise ValueError(f"{len(unexpected)} unexpected keys in the {what} checkpoint: {names}{more}")
