"""Cross-attention map capture through diffusers' attention-processor API (no patched classes).

Only the layers whose maps a task needs get :class:`AttentionMapProcessor`; every other attention keeps diffusers'
SDPA processor. The processor computes the same attention as SDPA, explicitly, and stores the head-averaged
post-softmax probabilities ``B x HW x N_tokens`` in a shared dict keyed by layer name. Keys are overwritten, never
appended, so a layer that runs again under gradient checkpointing (during backward) leaves one map, not two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel


class AttentionMapProcessor:
    """Attention that also records its head-mean probabilities in ``store[name]``.

    Args:
        store: the dict shared by all capturing layers of one backbone.
        name: the layer's processor name (``down_blocks.1.attentions.0.transformer_blocks.0.attn2.processor``).
        keep_grad: when False (the official behaviour: VPD's ldm checkpointing stores maps computed without
            gradient), the stored map is detached; the attention output itself always keeps its gradient.
    """

    def __init__(self, store: dict[str, torch.Tensor], name: str, keep_grad: bool = False) -> None:
        self.store = store
        self.name = name
        self.keep_grad = keep_grad

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: object,
        **kwargs: object,
    ) -> torch.Tensor:
        # The SD transformer blocks call attn2 on B x HW x C with no spatial/group norm, no residual and no mask;
        # anything else would need the general path, so fail loudly rather than compute something else.
        if attn.spatial_norm is not None or attn.group_norm is not None or attention_mask is not None:
            raise NotImplementedError(f"{self.name}: map capture supports plain (cross-)attention layers only")
        if hidden_states.ndim != 3:
            raise NotImplementedError(
                f"{self.name}: expected B x HW x C hidden states, got {tuple(hidden_states.shape)}"
            )
        residual = hidden_states
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)

        batch, _, _ = hidden_states.shape
        query = attn.to_q(hidden_states)
        key = attn.to_k(context)
        value = attn.to_v(context)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)  # B, h, HW, d
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)  # B, h, N, d
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        scores = torch.matmul(query, key.transpose(-1, -2)) * attn.scale
        probs = F.softmax(scores.float() if attn.upcast_softmax else scores, dim=-1).to(value.dtype)  # B, h, HW, N
        head_mean = probs.mean(dim=1)  # B, HW, N
        self.store[self.name] = head_mean if self.keep_grad else head_mean.detach()

        out = torch.matmul(probs, value).transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def cross_attention_layers(unet: UNet2DConditionModel, level: int) -> list[str]:
    """Processor names of the cross-attention (``attn2``) layers at UNet resolution ``level`` (0 = latent size).

    Down block ``level`` and up block ``num_levels - 1 - level`` work at ``latent / 2**level``; the mid block is
    never included (the official selection keeps ``input_blocks`` and ``output_blocks`` only). Order: down block
    first, then up block, each in layer order -- the order in which the official code stacks them.
    """
    num_levels = len(unet.down_blocks)
    prefixes = (f"down_blocks.{level}.", f"up_blocks.{num_levels - 1 - level}.")
    names = [name for name in unet.attn_processors if name.endswith("attn2.processor")]
    return [name for prefix in prefixes for name in names if name.startswith(prefix)]


def configure_attention_maps(
    unet: UNet2DConditionModel, store: dict[str, torch.Tensor], layers: list[str], keep_grad: bool = False
) -> None:
    """Gives ``layers`` a map-storing processor and every other attention diffusers' SDPA processor."""
    processors: dict[str, object] = {}
    wanted = set(layers)
    for name in unet.attn_processors:
        processors[name] = AttentionMapProcessor(store, name, keep_grad) if name in wanted else AttnProcessor2_0()
    unet.set_attn_processor(processors)  # type: ignore[arg-type]
