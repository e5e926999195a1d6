"""The VPD backbone: a frozen VAE encoder and a Stable Diffusion UNet run once on the clean image latent.

Built from stock diffusers parts (``UNet2DConditionModel`` and the ``AutoencoderKL`` encoder); features are read
with forward hooks on the exact sub-modules the official code taps, and cross-attention maps with an attention
processor (see ``attention.py``). The official numerics (wl-zhao/VPD @ 92095ab) are the defaults:

- image in [0, 1] -> [-1, 1] -> zero padding (bottom/right, in [-1, 1] space) to a multiple of 64;
- latent = posterior mode (mean) of the VAE encoder, no gradient; the SD latent scale factor is NOT applied;
- one UNet call at t = 1, no noise; the UNet's output layers (GroupNorm, SiLU, conv_out) are removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.autoencoders.vae import Encoder
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from torch import nn

from vpd.modeling.attention import configure_attention_maps, cross_attention_layers
from vpd.modeling.layout import conv_layout
from vpd.modeling.outputs import BackboneOutput
from vpd.modeling.stable_diffusion import SD15_UNET_CONFIG, SD_VAE_CONFIG, clean_component_config
from vpd.modeling.text_adapter import TextAdapter

if TYPE_CHECKING:
    from vpd.training.latent_cache import LatentCache

Conditioning = Literal["scene", "classes", "text"]


@dataclass(frozen=True)
class BackboneConfig:
    """Architecture and numerics of :class:`VPDBackbone`.

    Attributes:
        unet: a diffusers ``UNet2DConditionModel`` config (any SD-1.x / SD-2.x shape with 4 resolution levels).
        vae: a diffusers ``AutoencoderKL`` config; only its encoder half is built.
        class_names: the classes whose text embeddings condition the UNet (NYU scenes, ADE20K classes, ...).
        conditioning: ``"scene"`` one token per image, the embedding of its class (VPD depth); ``"classes"`` all
            class tokens for every image (VPD semantic segmentation); ``"text"`` a token sequence passed in
            (VPD referring segmentation).
        timestep: the UNet timestep (official code: 1).
        scale_latents: multiply latents by the VAE's ``scaling_factor`` (official VPD: no).
        pad_multiple: images are zero-padded bottom/right to a multiple of this (64 keeps every UNet level whole).
        context_length: ``"text"`` conditioning: tokens per text (40 for RefCOCO, 77 for RefCOCOg); the attention maps
            then add that many channels.
        attention_maps: append the mean cross-attention maps to the stride-16 and stride-32 features.
        attention_map_grad: let gradients flow through the captured maps (official: they carry none).
        gamma_init: initial text-adapter gamma.
    """

    unet: dict[str, Any] = field(default_factory=lambda: dict(SD15_UNET_CONFIG))
    vae: dict[str, Any] = field(default_factory=lambda: dict(SD_VAE_CONFIG))
    class_names: tuple[str, ...] = ()
    conditioning: Conditioning = "scene"
    timestep: int = 1
    scale_latents: bool = False
    pad_multiple: int = 64
    context_length: int | None = None
    attention_maps: bool = False
    attention_map_grad: bool = False
    gamma_init: float = 1e-4

    @property
    def text_dim(self) -> int:
        return int(self.unet["cross_attention_dim"])

    @property
    def num_tokens(self) -> int:
        """Tokens of the UNet context: 1 (a scene), the number of classes, or the text length."""
        if self.conditioning == "scene":
            return 1
        if self.conditioning == "classes":
            return len(self.class_names)
        if self.context_length is None:
            raise ValueError("text conditioning needs context_length (tokens per text)")
        return self.context_length

    @property
    def feature_channels(self) -> tuple[int, int, int, int]:
        """Channels of the four features (strides 8, 16, 32, 64), attention maps (one channel per token) included."""
        c = self.unet["block_out_channels"]
        extra = self.num_tokens if self.attention_maps else 0
        return (c[0], c[1] + extra, c[2] + extra, c[3])


class LatentEncoder(nn.Module):
    """The encoder half of an ``AutoencoderKL`` (encoder + quant_conv) returning the posterior mode.

    The decoder is not kept: VPD never decodes, and it would double the VAE's memory.
    """

    def __init__(self, encoder: Encoder, quant_conv: nn.Conv2d | None, scaling_factor: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.quant_conv = quant_conv
        self.scaling_factor = scaling_factor

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LatentEncoder:
        latent = int(config.get("latent_channels", 4))
        encoder = Encoder(
            in_channels=int(config.get("in_channels", 3)),
            out_channels=latent,
            down_block_types=tuple(config["down_block_types"]),
            block_out_channels=tuple(config["block_out_channels"]),
            layers_per_block=int(config.get("layers_per_block", 2)),
            norm_num_groups=int(config.get("norm_num_groups", 32)),
            act_fn=str(config.get("act_fn", "silu")),
            double_z=True,
            mid_block_add_attention=bool(config.get("mid_block_add_attention", True)),
        )
        quant = nn.Conv2d(2 * latent, 2 * latent, 1) if config.get("use_quant_conv", True) else None
        return cls(encoder, quant, float(config.get("scaling_factor", 0.18215)))

    @classmethod
    def from_autoencoder(cls, vae: AutoencoderKL) -> LatentEncoder:
        """Takes the encoder modules of a loaded ``AutoencoderKL`` (no copy); its decoder can then be freed."""
        config: Any = vae.config
        return cls(vae.encoder, vae.quant_conv, float(config.scaling_factor))

    @property
    def dtype(self) -> torch.dtype:
        return next(self.encoder.parameters()).dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, 3, H, W]`` in [-1, 1] -> posterior mean ``[B, latent_channels, H/8, W/8]``."""
        moments = self.encoder(x)
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        return moments.chunk(2, dim=1)[0]  # DiagonalGaussianDistribution.mode() is its mean


class _TapHook:
    """Forward hook keeping its module's latest output.

    A callable object rather than a closure over the backbone: ``copy.deepcopy`` (and pickling) copies it together
    with the module it hooks, so a copied model taps its own modules, not the original's.
    """

    def __init__(self) -> None:
        self.output: torch.Tensor | None = None

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        self.output = output[0] if isinstance(output, tuple) else output


class VPDBackbone(nn.Module):
    """Frozen VAE encoder + trainable SD UNet + text adapter -> four multi-scale features.

    Args:
        config: the architecture; ``config.unet`` / ``config.vae`` build random components when none are given.
        unet: a loaded UNet (e.g. Stable Diffusion's); its config must equal ``config.unet``.
        vae: a loaded latent encoder; its config must match ``config.vae``.

    Feature taps (ldm ``output_blocks`` 1, 4, 7, 11 of the official code), for 4 resolution levels:
        stride 64: ``up_blocks[0]`` second layer (``resnets[1]``, or ``attentions[1]`` when the block has attention);
        stride 32: ``up_blocks[1]`` second resnet+attention pair; stride 16: ``up_blocks[2]`` likewise;
        stride 8: the output of ``up_blocks[3]`` (the UNet's output once its output layers are removed).
    """

    class_embeddings: torch.Tensor
    unet: UNet2DConditionModel
    vae: LatentEncoder
    #: training's opt-in disk cache of the VAE encoder's outputs (:mod:`vpd.training.latent_cache`)
    latent_cache: LatentCache | None = None

    def __init__(
        self, config: BackboneConfig, unet: UNet2DConditionModel | None = None, vae: LatentEncoder | None = None
    ) -> None:
        super().__init__()
        self.config = config
        unet_config = clean_component_config(config.unet)
        self.unet = unet if unet is not None else UNet2DConditionModel.from_config(unet_config)
        self._check_unet(self.unet)
        # The UNet's output layers are never used by VPD (the official code deletes `out`); removing them makes
        # the UNet's output the stride-8 tap and keeps them out of the state dict.
        self.unet.conv_norm_out = None
        self.unet.conv_act = None
        self.unet.conv_out = nn.Identity()

        self.vae = vae if vae is not None else LatentEncoder.from_config(config.vae)
        self.vae.requires_grad_(False)
        self.text_adapter = TextAdapter(config.text_dim, config.gamma_init)
        self.register_buffer("class_embeddings", torch.zeros(len(config.class_names), config.text_dim))
        if config.conditioning in ("scene", "classes") and not config.class_names:
            raise ValueError(f"conditioning={config.conditioning!r} needs class_names")

        self._taps: dict[str, _TapHook] = {}
        self._attention: dict[str, torch.Tensor] = {}
        for name, module in self._tap_modules().items():
            self._taps[name] = _TapHook()
            module.register_forward_hook(self._taps[name])
        self._map_layers: tuple[list[str], list[str]] | None = None
        if config.attention_maps:
            self._map_layers = (cross_attention_layers(self.unet, 1), cross_attention_layers(self.unet, 2))
            if not all(self._map_layers):
                raise ValueError("attention_maps needs cross-attention at UNet levels 1 and 2")
            configure_attention_maps(
                self.unet, self._attention, self._map_layers[0] + self._map_layers[1], config.attention_map_grad
            )

    @staticmethod
    def _check_unet(unet: UNet2DConditionModel) -> None:
        cfg: Any = unet.config
        if len(cfg.block_out_channels) != 4:
            raise ValueError(
                f"VPD needs a UNet with 4 resolution levels, got block_out_channels={cfg.block_out_channels}"
            )
        layers = cfg.layers_per_block if isinstance(cfg.layers_per_block, int) else min(cfg.layers_per_block)
        if layers < 1:  # the taps read the second layer of an up block, which has layers_per_block + 1
            raise ValueError("VPD needs layers_per_block >= 1")
        if cfg.cross_attention_dim is None:
            raise ValueError("VPD needs a text-conditioned UNet (cross_attention_dim is None)")

    def _tap_modules(self) -> dict[str, nn.Module]:
        def second_layer(block: Any) -> nn.Module:
            attentions = getattr(block, "attentions", None)
            return attentions[1] if attentions is not None else block.resnets[1]

        up: Any = self.unet.up_blocks
        return {"s64": second_layer(up[0]), "s32": second_layer(up[1]), "s16": second_layer(up[2])}

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def cached_encoder(self) -> nn.Module:
        """The frozen module ``latent_cache`` keeps the outputs of."""
        return self.vae

    def enable_gradient_checkpointing(self) -> None:
        self.unet.enable_gradient_checkpointing()

    def context(
        self,
        batch_size: int,
        class_ids: torch.Tensor | None = None,
        text_embeddings: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The UNet's cross-attention context ``[B, N_tokens, text_dim]`` for the configured conditioning.

        Args:
            batch_size: B.
            class_ids: ``"scene"`` only: ``[B]`` int64 class indices; -1 (or None for all) selects the mean of the
                class embeddings, the fallback for images without a known class (mmsegmentation's convention).
            text_embeddings: ``"text"`` only: ``[B, L, text_dim]`` (CLIP ``last_hidden_state`` of the expression).
        """
        kind = self.config.conditioning
        if kind == "text":
            if text_embeddings is None or text_embeddings.ndim != 3 or text_embeddings.shape[0] != batch_size:
                shape = None if text_embeddings is None else tuple(text_embeddings.shape)
                raise ValueError(f"text_embeddings: expected [{batch_size}, L, {self.config.text_dim}], got {shape}")
            return self.text_adapter(text_embeddings.to(self.dtype))
        embeddings = self.class_embeddings.to(self.dtype)
        if kind == "classes":
            return self.text_adapter(embeddings).unsqueeze(0).expand(batch_size, -1, -1)
        if class_ids is None:
            class_ids = torch.full((batch_size,), -1, dtype=torch.long)
        class_ids = torch.as_tensor(class_ids).long().reshape(-1)
        if class_ids.shape[0] != batch_size:
            raise ValueError(f"class_ids: expected {batch_size} ids, got {class_ids.shape[0]}")
        # ids come from the data pipeline on the host: checking costs no sync (and is left out of compiled graphs,
        # where reading a value would split the graph)
        if class_ids.device.type == "cpu" and not torch.compiler.is_compiling():
            num = embeddings.shape[0]
            low, high = int(class_ids.min()), int(class_ids.max())
            if low < -1 or high >= num:
                raise ValueError(f"class_ids must lie in [-1, {num - 1}] (-1 = unknown), got [{low}, {high}]")
        table = torch.cat([embeddings, embeddings.mean(0, keepdim=True)])  # row -1: the mean embedding
        return self.text_adapter(table[class_ids.to(embeddings.device)]).unsqueeze(1)

    def forward(
        self,
        images: torch.Tensor,
        class_ids: torch.Tensor | None = None,
        text_embeddings: torch.Tensor | None = None,
    ) -> BackboneOutput:
        """Runs the backbone.

        Args:
            images: ``[B, 3, H, W]`` RGB in [0, 1], any H, W.
            class_ids: see :meth:`context`.
            text_embeddings: see :meth:`context`.

        Returns:
            :class:`BackboneOutput` with features at strides 8/16/32/64 of the padded image.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected [B, 3, H, W], got {tuple(images.shape)}")
        height, width = images.shape[-2:]
        m = self.config.pad_multiple
        pad_h, pad_w = (-height) % m, (-width) % m
        x = images.to(self.vae.dtype) * 2.0 - 1.0
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), value=0.0)  # official: zeros in [-1, 1] space, bottom/right
        # Images made from HWC arrays are channels-last strided: the layout is chosen here, per dtype (fp32: NCHW,
        # the official numerics; bf16 / fp16: channels-last, over 2x faster; see vpd.modeling.layout)
        x = conv_layout(x)

        with torch.no_grad():
            latents = self.vae(x) if self.latent_cache is None else self.latent_cache(x, self.vae)
        if self.config.scale_latents:
            latents = latents * self.vae.scaling_factor
        context = self.context(images.shape[0], class_ids, text_embeddings)

        self._attention.clear()
        try:
            sample = conv_layout(latents.to(self.dtype))  # bf16: channels-last, 1.16 s against 1.33 s at 512
            s8 = self.unet(sample, self.config.timestep, encoder_hidden_states=context).sample
            taps = [self._taps[name].output for name in ("s16", "s32", "s64")]
            assert all(t is not None for t in taps), "a feature tap did not fire"
            features: list[torch.Tensor] = [s8, *taps]  # type: ignore[list-item]
            maps = None
            if self._map_layers is not None:
                maps16 = self._mean_map(self._map_layers[0], features[1])
                maps32 = self._mean_map(self._map_layers[1], features[2])
                features[1] = torch.cat([features[1], maps16.to(features[1].dtype)], dim=1)
                features[2] = torch.cat([features[2], maps32.to(features[2].dtype)], dim=1)
                maps = (maps16, maps32)
        finally:  # hold no activations between calls
            for hook in self._taps.values():
                hook.output = None
            self._attention.clear()
        return BackboneOutput(
            # the heads' convolutions in the dtype's fastest layout (bf16: channels-last, the depth head 0.28 s
            # against 0.56 s at 480x480, bitwise equal; fp32: NCHW as before)
            features=(
                conv_layout(features[0]),
                conv_layout(features[1]),
                conv_layout(features[2]),
                conv_layout(features[3]),
            ),
            attention_maps=maps,
            image_size=(height, width),  # ints (symbolic when traced: int() would fix a traced graph's size)
            padded_size=(height + pad_h, width + pad_w),
        )

    def _mean_map(self, layers: list[str], feature: torch.Tensor) -> torch.Tensor:
        """Plain mean of the layers' maps ``[B, HW, N]`` -> ``[B, N, h, w]`` on ``feature``'s grid."""
        maps = torch.stack([self._attention[name] for name in layers]).mean(0)
        batch, _, tokens = maps.shape
        h, w = feature.shape[-2:]
        return maps.transpose(1, 2).reshape(batch, tokens, h, w)
