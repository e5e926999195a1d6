"""One-step perception: the diffusion UNet as a deterministic image-to-image map (GenPercept, E2E-FT, Lotus-D, and
Marigold's networks).

The VAE encodes the photo, the UNet maps the RGB latent to the target's latent in one call, and the VAE decoder (or
GenPercept's DPT head on the UNet's up-block outputs) gives the dense map. The projects differ only in settings, so
one model takes them all as :class:`OneStepConfig` fields and each released project is a named preset
(:data:`PRESETS`):

========================  ==========  ========  ============  =====================  ==========================
preset                    UNet input  timestep  prediction    latent                 readout
========================  ==========  ========  ============  =====================  ==========================
``genpercept``            z           1         v, beta = 1   posterior mean         VAE decoder
``genpercept-dpt``        z           1         (up blocks)   posterior mean         DPT head, min-max
``e2eft``                 z, zeros    999       v, SD betas   posterior mean         VAE decoder
``lotus-d``               z           999       x0 (sample)   posterior sample       VAE decoder
``marigold``              z, noise    DDIM      v, zero SNR   posterior mean         VAE decoder (diffusers)
========================  ==========  ========  ============  =====================  ==========================

Outputs are in vpd's conventions whatever the project: scalar maps (depth, disparity, alpha, mask) ``[B, 1, h, w]``
in [0, 1]; surface normals ``[B, 3, h, w]`` in [-1, 1] (a project that writes normals in [0, 1] is mapped by
``2 p - 1``, exactly). What each project does around the network (how it resizes the input and the output) is part
of the preset too (:class:`Preprocessing`), and :class:`vpd.inference.onestep.OneStepPredictor` applies it; Marigold's
multi-step, ensembled inference is diffusers' ``MarigoldDepthPipeline`` / ``MarigoldNormalsPipeline`` itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import nn

from vpd.configuration import check_range
from vpd.modeling.hub import PretrainedModel
from vpd.modeling.layout import conv_layout

if TYPE_CHECKING:
    from vpd.training.latent_cache import LatentCache

#: What a one-step model predicts. ``depth`` and ``disparity`` are affine-invariant maps in [0, 1].
OneStepTarget = Literal["depth", "disparity", "normals", "matting", "dis"]
TARGETS: tuple[str, ...] = ("depth", "disparity", "normals", "matting", "dis")

#: GenPercept's scheduler (its hf_configs/scheduler_beta_1.0_1.0): betas of 1 make every alpha-bar 0, so the
#: v-prediction read as x0 is exactly ``-v``.
GENPERCEPT_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 1.0,
    "beta_end": 1.0,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "timestep_spacing": "leading",
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "clip_sample": False,
}
#: Stable Diffusion 2's DDIM schedule with trailing spacing (E2E-FT's scheduler).
SD2_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "clip_sample": False,
    "rescale_betas_zero_snr": False,
}
#: Marigold v1-1's scheduler: SD-2's with zero terminal SNR and trailing spacing.
MARIGOLD_SCHEDULER: dict[str, Any] = {**SD2_SCHEDULER, "rescale_betas_zero_snr": True}
#: Lotus-D's task switcher for its depth and normal checkpoints: ``[sin 1, sin 0, cos 1, cos 0]``.
LOTUS_TASK_EMBEDDING: tuple[float, ...] = (0.8414709848078965, 0.0, 0.5403023058681398, 1.0)


@dataclass(frozen=True)
class Preprocessing:
    """What a project's pipeline does around the network (Marigold's is diffusers' own pipeline, so it has none).

    Attributes:
        round_uint8: the image resized to the processing resolution R is rounded back to uint8 (GenPercept and
            E2E-FT resize the uint8 tensor). The size is ``int(H * f), int(W * f)`` with ``f = min(R / H, R / W)``
            (a truncation) in all three projects, resized bilinear with antialiasing, without padding.
        output_resize: how the map returns to the input size: ``"bilinear-antialias"`` or ``"nearest-exact"``
            (Lotus); then it is clipped to its range.
    """

    round_uint8: bool = False
    output_resize: Literal["bilinear-antialias", "nearest-exact"] = "bilinear-antialias"


#: The UNet modules LoRA adapts by default: the attention projections (diffusers' LoRA training scripts).
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


@dataclass(frozen=True)
class OneStepConfig:
    """Architecture and numerics of :class:`OneStepModel` (defaults: GenPercept's depth model on SD-2.1).

    Attributes:
        unet: a diffusers ``UNet2DConditionModel`` config (``in_channels`` 4, or 8 with ``unet_input`` taking a
            second latent; Lotus: ``class_embed_type="projection"``).
        vae: a diffusers ``AutoencoderKL`` config (the decoder is not built for the DPT readout).
        target: what the map is (:data:`TARGETS`).
        preset: the project the settings come from (informative; see :data:`PRESETS`).
        unet_input: ``"latent"`` the RGB latent alone; ``"latent+zeros"`` with a zero latent (E2E-FT);
            ``"latent+noise"`` with a Gaussian latent (Marigold).
        timestep: the one UNet timestep.
        prediction: how the UNet output is read: ``"v"`` (x0 = sqrt(a) z_t - sqrt(1 - a) v, with a the scheduler's
            alpha-bar at ``timestep`` and z_t the target latent the UNet was given: the RGB latent for 4-channel
            UNets) or ``"sample"`` (x0 directly, Lotus).
        scheduler: the project's DDIM scheduler config (alpha-bar for ``"v"``; Marigold's multi-step sampling).
        latent_scale: the latent scale factor (the pipelines' 0.18215).
        latent_sampling: ``"mean"`` the posterior mean; ``"sample"`` mean + std * noise (Lotus).
        text_tokens: tokens of the stored empty-prompt embedding (``""`` tokenized without padding: 2).
        task_embedding: Lotus's class label (``class_labels`` of the UNet), or None.
        readout: ``"vae"`` the VAE decoder; ``"dpt"`` GenPercept's DPT head on the up-block outputs.
        dpt_features: the DPT head's fusion width.
        decode: how the decoded image becomes the map (see :func:`decoded_to_map`): ``"mean-clip"`` (GenPercept:
            channel mean, clip to [-1, 1], to [0, 1]), ``"mean-clip-minmax"`` (E2E-FT depth: then min-max per image),
            ``"clamp-mean"`` (Lotus: to [0, 1] and clamp, then the channel mean), ``"normals-clip"`` (clip to
            [-1, 1]), ``"normals-unit"`` (E2E-FT: ``n / (|n| + 1e-5)`` twice), ``"normals-clamp"`` (Lotus: to [0, 1],
            clamp, back to [-1, 1]), ``"normals-clip-unit"`` (Marigold: clip, then unit length). The DPT readout
            is min-max normalised per image (GenPercept), or made unit length for normals (a vpd extension: the
            head then predicts 3 channels).
        preprocessing: the pipeline's resizing (:class:`Preprocessing`); None: diffusers' Marigold pipeline runs
            the model (multi-step, ensembles), configured by ``pipeline``.
        pipeline: the settings of a diffusers pipeline's ``model_index.json`` (Marigold: ``prediction_type``,
            ``default_denoising_steps``, ``default_processing_resolution``, ``scale_invariant``, ...).
        lora_rank: LoRA adapters of this rank on the UNet's attention projections (peft, through diffusers'
            ``add_adapter``): the UNet's own weights are frozen, the adapters (and a DPT head) train; None: none.
        lora_alpha: the adapters' scale numerator (``alpha / rank`` multiplies them); None: the rank.
        lora_targets: the UNet modules that get adapters (peft's ``target_modules``).
    """

    unet: dict[str, Any] = field(default_factory=dict)
    vae: dict[str, Any] = field(default_factory=dict)
    target: OneStepTarget = "depth"
    preset: str = "genpercept"
    unet_input: Literal["latent", "latent+zeros", "latent+noise"] = "latent"
    timestep: int = 1
    prediction: Literal["v", "sample"] = "v"
    scheduler: dict[str, Any] = field(default_factory=lambda: dict(GENPERCEPT_SCHEDULER))
    latent_scale: float = 0.18215
    latent_sampling: Literal["mean", "sample"] = "mean"
    text_tokens: int = 2
    task_embedding: tuple[float, ...] | None = None
    readout: Literal["vae", "dpt"] = "vae"
    dpt_features: int = 256
    decode: str = "mean-clip"
    preprocessing: Preprocessing | None = field(default_factory=Preprocessing)
    pipeline: dict[str, Any] = field(default_factory=dict)
    lora_rank: int | None = None
    lora_alpha: int | None = None
    lora_targets: tuple[str, ...] = LORA_TARGETS

    def __post_init__(self) -> None:
        check_range("lora_rank", self.lora_rank, low=1, optional=True)
        check_range("lora_alpha", self.lora_alpha, low=0, low_open=True, optional=True)
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        check_range("timestep", self.timestep, low=0, high=int(self.scheduler.get("num_train_timesteps", 1000)) - 1)
        check_range("latent_scale", self.latent_scale, low=0, low_open=True)
        check_range("text_tokens", self.text_tokens, low=1)
        if self.decode not in DECODERS:
            raise ValueError(f"decode must be one of {', '.join(DECODERS)}, got {self.decode!r}")
        normals = self.target == "normals"
        if self.readout == "vae" and normals != self.decode.startswith("normals"):
            raise ValueError(f"decode {self.decode!r} does not give {self.target} maps")
        channels = int(self.unet.get("in_channels", 4)) if self.unet else None
        wanted = 4 if self.unet_input == "latent" else 8
        if channels is not None and channels != wanted:
            raise ValueError(
                f"unet_input {self.unet_input!r} needs a UNet with {wanted} input channels, not {channels}"
            )

    @property
    def out_channels(self) -> int:
        return 3 if self.target == "normals" else 1


_DECODER_FOR_TARGET = {"genpercept": "mean-clip", "e2eft": "mean-clip-minmax", "lotus-d": "clamp-mean"}
_NORMALS_DECODER = {"genpercept": "normals-clip", "e2eft": "normals-unit", "lotus-d": "normals-clamp"}

#: Each released project as settings (UNet / VAE configs come with the weights). Marigold's networks run one step
#: here as E2E-FT does; its multi-step, ensembled inference is diffusers' pipeline (``OneStepPredictor``).
PRESETS: dict[str, dict[str, Any]] = {
    "genpercept": {
        "unet_input": "latent",
        "timestep": 1,
        "prediction": "v",
        "scheduler": GENPERCEPT_SCHEDULER,
        "preprocessing": Preprocessing(round_uint8=True),
    },
    "genpercept-dpt": {
        "unet_input": "latent",
        "timestep": 1,
        "prediction": "v",
        "scheduler": GENPERCEPT_SCHEDULER,
        "readout": "dpt",
        "preprocessing": Preprocessing(round_uint8=True),
    },
    "e2eft": {
        "unet_input": "latent+zeros",
        "timestep": 999,
        "prediction": "v",
        "scheduler": SD2_SCHEDULER,
        "preprocessing": Preprocessing(round_uint8=True),
    },
    "lotus-d": {
        "unet_input": "latent",
        "timestep": 999,
        "prediction": "sample",
        "scheduler": SD2_SCHEDULER,
        "latent_sampling": "sample",
        "task_embedding": LOTUS_TASK_EMBEDDING,
        "preprocessing": Preprocessing(output_resize="nearest-exact"),
    },
    "marigold": {
        "unet_input": "latent+noise",
        "timestep": 999,
        "prediction": "v",
        "scheduler": MARIGOLD_SCHEDULER,
        "decode": "mean-clip",
        "preprocessing": None,
    },
}  # fmt: skip


def preset_config(
    preset: str, target: str, unet: dict[str, Any], vae: dict[str, Any], **overrides: Any
) -> OneStepConfig:
    """The :class:`OneStepConfig` of ``preset`` for ``target`` with the given component configs."""
    if preset not in PRESETS:
        raise ValueError(f"unknown one-step preset {preset!r}; known: {', '.join(PRESETS)}")
    settings = dict(PRESETS[preset])
    if "decode" not in settings and settings.get("readout", "vae") == "vae":
        family = preset.split("-dpt")[0]
        settings["decode"] = (_NORMALS_DECODER if target == "normals" else _DECODER_FOR_TARGET)[family]
    if preset == "marigold" and target == "normals":
        settings["decode"] = "normals-clip-unit"
    settings.update(overrides)
    return OneStepConfig(unet=dict(unet), vae=dict(vae), target=target, preset=preset, **settings)  # type: ignore[arg-type]


def _mean_clip(x: torch.Tensor) -> torch.Tensor:
    return (x.mean(1, keepdim=True).clip(-1, 1) + 1) / 2


def _minmax(x: torch.Tensor) -> torch.Tensor:
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    high = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - low) / (high - low)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / (x.norm(dim=1, keepdim=True) + 1e-5)


DECODERS = {
    "mean-clip": _mean_clip,
    "mean-clip-minmax": lambda x: _minmax(_mean_clip(x)),
    "clamp-mean": lambda x: (x / 2 + 0.5).clamp(0, 1).mean(1, keepdim=True),
    "normals-clip": lambda x: x.clip(-1, 1),
    "normals-unit": lambda x: _unit(_unit(x)),
    "normals-clip-unit": lambda x: (n := x.clip(-1, 1)) / n.norm(dim=1, keepdim=True).clamp_min(1e-6),
    "normals-clamp": lambda x: (x / 2 + 0.5).clamp(0, 1) * 2 - 1,
}


def decoded_to_map(decoded: torch.Tensor, decode: str) -> torch.Tensor:
    """The VAE decoder's ``[B, 3, h, w]`` output -> the map in vpd's convention (``decode``: see OneStepConfig)."""
    return DECODERS[decode](decoded)


@dataclass
class OneStepOutput:
    """A one-step model's prediction at the processing size.

    Attributes:
        prediction: ``[B, 1, h, w]`` in [0, 1] (depth, disparity, alpha, mask) or ``[B, 3, h, w]`` unit-ish
            normals in [-1, 1].
        raw: what the losses train, before any clipping or normalisation: the decoded image ``[B, 3, h, w]`` in
            the VAE's [-1, 1] space, or the DPT head's output.
        latent: the predicted target latent x0 (scaled, as the UNet sees latents), or None for the DPT readout.
        unet_output: the UNet's raw output (v or x0), or None for the DPT readout.
    """

    prediction: torch.Tensor
    raw: torch.Tensor
    latent: torch.Tensor | None = None
    unet_output: torch.Tensor | None = None


class OneStepModel(PretrainedModel):
    """A one-step diffusion perception model (see the module docstring for the presets).

    Args:
        config: the settings.
        unet / vae / dpt_head: ready components (loaded weights); built from ``config`` when None.
        empty_text_embedding: the text encoder's output for the empty prompt ``[1, text_tokens, D]`` (zeros when
            None: loading fills it).
    """

    model_type: ClassVar[str] = "onestep"
    config_class: ClassVar[type] = OneStepConfig
    vae_module: ClassVar[str] = "vae"
    #: training's opt-in disk cache of the VAE encoder's outputs (:mod:`vpd.training.latent_cache`)
    latent_cache: LatentCache | None = None
    unet: Any  # diffusers.UNet2DConditionModel
    vae: Any  # diffusers.AutoencoderKL
    empty_text_embedding: torch.Tensor
    task_embedding: torch.Tensor | None

    @property
    def vae_scaling_factor(self) -> float:
        return float(self.config.latent_scale)

    def __init__(
        self,
        config: OneStepConfig,
        unet: nn.Module | None = None,
        vae: nn.Module | None = None,
        dpt_head: nn.Module | None = None,
        empty_text_embedding: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        from diffusers import AutoencoderKL, UNet2DConditionModel

        from vpd.modeling.float32 import keep_float32
        from vpd.modeling.heads.dpt import DPTHead

        self.config = config
        # the scheduler's alpha-bar at the timestep, read once (a constant to traced and exported graphs)
        with torch.device("cpu"):  # real numbers even when the model is built on the meta device
            self._alpha_cumprod = float(_alphas_cumprod(config.scheduler)[config.timestep])
        self.unet = unet if unet is not None else UNet2DConditionModel(**config.unet)
        self.vae = vae if vae is not None else AutoencoderKL(**config.vae)
        self.dpt_head: nn.Module | None = None
        if config.readout == "dpt":
            # GenPercept's DPT checkpoints drop the UNet's output layers and never decode: neither is built.
            self.unet.conv_norm_out = None
            self.unet.conv_out = nn.Identity()
            for name in ("decoder", "post_quant_conv"):
                if hasattr(self.vae, name):
                    delattr(self.vae, name)
            up_channels = list(reversed(config.unet["block_out_channels"]))
            out = config.out_channels
            self.dpt_head = dpt_head if dpt_head is not None else DPTHead(up_channels, config.dpt_features, out)
        else:
            keep_float32(self.vae.decoder.conv_out)  # the decoded map in float32 in a bf16 model
        dim = int(config.unet["cross_attention_dim"])
        if empty_text_embedding is None:
            empty_text_embedding = torch.zeros(1, config.text_tokens, dim)
        shape = list(empty_text_embedding.shape)
        if shape != [1, config.text_tokens, dim]:
            raise ValueError(f"empty_text_embedding: expected [1, {config.text_tokens}, {dim}], got {shape}")
        self.register_buffer("empty_text_embedding", empty_text_embedding.detach().clone().float())
        if config.task_embedding is not None:
            self.register_buffer("task_embedding", torch.tensor([config.task_embedding], dtype=torch.float32))
        else:
            self.task_embedding = None
        self.vae.requires_grad_(False)
        if config.lora_rank is not None:
            self.unet.requires_grad_(False)
            add_lora(self.unet, config.lora_rank, config.lora_alpha, config.lora_targets)

    def add_lora(self, rank: int, alpha: int | None = None, targets: Sequence[str] = LORA_TARGETS) -> None:
        """Freezes the UNet and adds LoRA adapters to it (see ``OneStepConfig.lora_rank``); the config records them,
        so the saved model loads with them."""
        if self.config.lora_rank is not None:
            raise ValueError(f"this model already has LoRA adapters (rank {self.config.lora_rank})")
        self.unet.requires_grad_(False)
        add_lora(self.unet, rank, alpha, targets)
        self.config = dataclasses.replace(self.config, lora_rank=rank, lora_alpha=alpha, lora_targets=tuple(targets))

    # ---------------------------------------------------------------------------------------------------------

    @property
    def alpha_cumprod(self) -> float:
        """The scheduler's alpha-bar at ``config.timestep`` (what ``"v"`` reads x0 with)."""
        return self._alpha_cumprod

    def cached_encoder(self) -> nn.Module:
        """The frozen module ``latent_cache`` keeps the outputs of (the posterior's moments: sampling stays random)."""
        return self.vae.encoder

    def encode(self, images: torch.Tensor, eps: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """``[B, 3, h, w]`` in [0, 1] -> the scaled RGB latent (posterior mean, or a sample for ``"sample"``)."""
        mean, logvar = self._posterior(images * 2 - 1)
        if self.config.latent_sampling == "sample":
            std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
            if eps is None:
                eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            mean = mean + std * eps
        return mean * self.config.latent_scale

    def encode_target(self, target: torch.Tensor) -> torch.Tensor:
        """A ground-truth map ``[B, 1 or 3, h, w]`` in [-1, 1] -> its scaled latent (posterior mean; a scalar map
        repeated to 3 channels), the target of the latent-space loss."""
        if target.shape[1] == 1:
            target = target.expand(-1, 3, -1, -1)
        return self._posterior(target.to(next(self.vae.encoder.parameters()).dtype))[0] * self.config.latent_scale

    def _posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` in [-1, 1] -> the VAE posterior's (mean, log-variance)."""
        encoder = self.vae.encoder
        x = conv_layout(x)
        moments = encoder(x) if self.latent_cache is None else self.latent_cache(x, encoder)
        if self.vae.quant_conv is not None:
            moments = self.vae.quant_conv(moments)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar

    def unet_input(self, latent: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(UNet input, z_t)``: z_t is the target latent the UNet sees (zeros, noise, or the RGB latent)."""
        mode = self.config.unet_input
        if mode == "latent":
            return latent, latent
        if mode == "latent+zeros":
            target = torch.zeros_like(latent)
        else:
            if noise is None:
                raise ValueError("this model takes a noise latent (unet_input 'latent+noise'): pass noise=")
            target = noise
        return torch.cat([latent, target], dim=1), target

    def run_unet(self, sample: torch.Tensor) -> torch.Tensor:
        batch = sample.shape[0]
        context = self.empty_text_embedding.to(sample.dtype).expand(batch, -1, -1)
        class_labels = None
        if self.task_embedding is not None:
            class_labels = self.task_embedding.to(sample.dtype).expand(batch, -1)
        timestep = torch.tensor(self.config.timestep, device=sample.device)
        return self.unet(sample, timestep, encoder_hidden_states=context, class_labels=class_labels).sample

    def to_x0(self, output: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        """The predicted target latent from the UNet output (``prediction``)."""
        if self.config.prediction == "sample":
            return output
        alpha = torch.tensor(self._alpha_cumprod, device=output.device, dtype=output.dtype)
        return alpha**0.5 * z_t - (1 - alpha) ** 0.5 * output

    #: ONNX export (:mod:`vpd.inference.export`): the graph's output; its inputs are :attr:`export_inputs`
    export_output: ClassVar[str] = "prediction"

    @property
    def export_inputs(self) -> tuple[str, ...]:
        """The graph's inputs: the images, and the posterior's noise for a model that samples its latent (Lotus-D).

        Raises:
            ValueError: a Marigold model, which denoises over several scheduler steps.
        """
        if self.config.preset == "marigold":
            raise ValueError("a Marigold model denoises in several scheduler steps; ONNX export takes one-step models")
        return ("images", "noise") if self.config.latent_sampling == "sample" else ("images",)

    def export_forward(self, images: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self(images, eps=noise).prediction

    def forward(
        self,
        images: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        eps: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> OneStepOutput:
        """``images`` ``[B, 3, h, w]`` in [0, 1] (h, w multiples of 8 keep the sizes whole) -> :class:`OneStepOutput`.

        ``noise`` is the target latent of ``"latent+noise"`` models; ``eps`` the posterior noise of ``"sample"``
        encoding (drawn from ``generator`` when None).
        """
        latent = self.encode(images, eps=eps, generator=generator)
        sample, z_t = self.unet_input(latent, noise)
        if self.dpt_head is not None:
            head = self.dpt_head(self._up_features(sample))
            prediction = _unit(head) if self.config.target == "normals" else _minmax(head)
            return OneStepOutput(prediction, raw=head)
        output = self.run_unet(sample)
        x0 = self.to_x0(output, z_t)
        decoded = self.vae.decode(conv_layout(x0 / self.config.latent_scale)).sample
        return OneStepOutput(decoded_to_map(decoded, self.config.decode), raw=decoded, latent=x0, unet_output=output)

    def _up_features(self, sample: torch.Tensor) -> list[torch.Tensor]:
        """The UNet's four up-block outputs, coarse to fine (hooks on the blocks; no extra cost)."""
        captured: list[torch.Tensor] = []
        handles = [
            block.register_forward_hook(lambda _m, _a, out: captured.append(out)) for block in self.unet.up_blocks
        ]
        try:
            self.run_unet(sample)
        finally:
            for handle in handles:
                handle.remove()
        return captured


def add_lora(unet: nn.Module, rank: int, alpha: int | None, targets: Sequence[str]) -> None:
    """Adds trainable LoRA adapters (peft, named ``default``) to ``unet``'s ``targets``, through diffusers'
    ``add_adapter``; the adapters start as a no-op (their up-projections are zero).

    Raises:
        ImportError: peft is not installed (one line: how to install it).
    """
    try:
        from peft import LoraConfig
    except ImportError:
        raise ImportError(f"LoRA adapters (lora_rank {rank}) need peft: pip install 'vpd[lora]'") from None
    config = LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian", target_modules=list(targets))
    unet.add_adapter(config)  # type: ignore[operator]


def _alphas_cumprod(scheduler: dict[str, Any]) -> torch.Tensor:
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(scheduler).alphas_cumprod
