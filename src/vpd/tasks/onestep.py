"""One-step perception (GenPercept, E2E-FT, Lotus-D) on the one trainer: affine-invariant depth / disparity,
surface normals, matting and dichotomous segmentation.

The model (:class:`vpd.modeling.onestep.OneStepModel`) is built from Stable Diffusion 2 (``model.pretrained``), a
tiny architecture, or a vpd one-step folder (``model.init``); ``model.preset`` picks the project's settings and
``model.target`` what is predicted. Losses act on the decoded output before any clipping, so gradients reach the
UNet through the frozen VAE decoder (E2E-FT's end-to-end training; the decoder never runs under ``no_grad``):

- depth / disparity: GenPercept's ``MSE + 0.5 SSI-MSE + 2 gradient matching`` against targets normalised per image
  (2 % / 98 % quantiles to [-1, 1]; disparity = 1 / depth first);
- normals: the mean angle to the ground truth;
- matting / dis: pixel MSE against the alpha / mask mapped to [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F

from vpd.configuration import ConfigError, check_range
from vpd.data.base import image_uint8
from vpd.data.nyuv2 import NYU_MAX_DEPTH, NYU_MIN_DEPTH
from vpd.tasks import register_task
from vpd.tasks.base import Task
from vpd.training.config import AugmentConfig, EvalConfig, ModelConfig

if TYPE_CHECKING:
    from vpd.data.base import Transform
    from vpd.modeling.onestep import OneStepModel
    from vpd.training.config import RunConfig

#: The targets the one-step task trains, and the batch key of each one's ground truth.
GROUND_TRUTH = {"depth": "depth", "disparity": "depth", "normals": "normals", "matting": "alpha", "dis": "mask"}
LATENT_LOSS_NEEDS_VAE = "model.latent_loss needs the VAE readout (model.readout=vae): a DPT head predicts no latent"
#: The presets that train one-step (Marigold trains as a multi-step diffusion model: fine-tune it as ``e2eft``).
TRAINABLE_PRESETS = ("genpercept", "genpercept-dpt", "e2eft", "lotus-d")


@dataclass(frozen=True)
class OneStepModelConfig(ModelConfig):
    """``model`` for one-step perception.

    Attributes:
        preset: the project whose settings the model takes (:data:`vpd.modeling.onestep.PRESETS`).
        target: ``depth``, ``disparity``, ``normals``, ``matting`` or ``dis``.
        readout: ``vae`` or ``dpt``; null: the preset's.
        dpt_features: the DPT head's width (null: 256; the tiny architecture 32).
        empty_text_embedding: a file with the empty-prompt embedding (``.pt`` / ``.safetensors`` / ``.npy``); null:
            computed from ``pretrained``'s (or ``text_encoder``'s) CLIP; the tiny architecture uses a seeded one.
        lora_rank, lora_alpha: train LoRA adapters of this rank (scale ``alpha / rank``; alpha null: the rank) on
            the UNet's attention projections instead of the whole UNet (peft: ``pip install 'vpd[lora]'``); null: the
            whole UNet trains, as the projects do.
        latent_loss: training: the weight of an added latent-space MSE between the predicted target latent and the
            VAE encoding of the normalised ground truth (Marigold's objective; VAE readout only); 0: none.
    """

    pretrained: str | None = "stabilityai/stable-diffusion-2-1"
    preset: str = "genpercept"
    target: Literal["depth", "disparity", "normals", "matting", "dis"] = "depth"
    readout: Literal["vae", "dpt"] | None = None
    dpt_features: int | None = None
    empty_text_embedding: str | None = None
    lora_rank: int | None = None
    lora_alpha: int | None = None
    latent_loss: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("model.latent_loss", self.latent_loss, low=0)
        check_range("model.lora_rank", self.lora_rank, low=1, optional=True)
        check_range("model.lora_alpha", self.lora_alpha, low=0, low_open=True, optional=True)
        if self.preset not in TRAINABLE_PRESETS:
            raise ConfigError(
                f"model.preset: {self.preset!r} does not train one-step here; choose one of "
                f"{', '.join(TRAINABLE_PRESETS)} (fine-tune a Marigold checkpoint with e2eft, E2E-FT's recipe)"
            )
        check_range("model.dpt_features", self.dpt_features, low=2, optional=True)


@dataclass(frozen=True)
class OneStepAugmentConfig(AugmentConfig):
    """Training augmentation (Marigold / GenPercept: a random horizontal flip; normals' x flips with it).

    Attributes:
        flip: probability of a horizontal flip.
        crop_size: random crops of this size (null: whole images; a batch needs one size).
    """

    flip: float = 0.5
    crop_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        check_range("augment.flip", self.flip, low=0, high=1)
        for i, side in enumerate(self.crop_size or ()):
            check_range(f"augment.crop_size[{i}]", side, low=8)


@dataclass(frozen=True)
class OneStepEvalConfig(EvalConfig):
    """The affine-invariant protocol of Marigold / GenPercept (depth) and the normals / matting / DIS metrics.

    Attributes:
        processing_resolution: the longer side the model sees (0: the image's own size), resized back after.
        alignment: depth: ``least_squares`` (scale and shift in depth) or ``least_squares_disparity`` (in
            disparity, then inverted); null: in disparity for disparity models, else in depth.
        min_depth, max_depth: the valid range (clipped to after alignment): NYUv2 1e-3..10, KITTI 1e-5..80, ...;
            null: each sample's dataset's own (the affine evaluation sets carry theirs), else NYUv2's.
        crop: an evaluation crop applied here (the affine evaluation sets bring their own ``valid`` mask, crop
            included: leave ``none`` for them).
    """

    processing_resolution: int = 0
    alignment: Literal["least_squares", "least_squares_disparity"] | None = None
    min_depth: float | None = None
    max_depth: float | None = None
    crop: Literal["none", "nyu", "kitti_garg", "kitti_eigen"] = "none"
    batch_size: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("eval.processing_resolution", self.processing_resolution, low=0)
        check_range("eval.min_depth", self.min_depth, low=0, low_open=True, optional=True)
        check_range("eval.max_depth", self.max_depth, low=self.min_depth or 0, low_open=True, optional=True)


def _tiny_components(preset: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """SD-2-shaped tiny UNet / VAE configs for ``preset`` (tests, the CPU demo)."""
    from vpd.modeling.onestep import PRESETS
    from vpd.modeling.stable_diffusion import TINY_UNET_CONFIG, TINY_VAE_CONFIG

    unet = {**TINY_UNET_CONFIG, "use_linear_projection": True}
    if PRESETS[preset]["unet_input"] != "latent":
        unet["in_channels"] = 8
    if PRESETS[preset].get("task_embedding") is not None:
        unet.update(class_embed_type="projection", projection_class_embeddings_input_dim=4)
    return unet, dict(TINY_VAE_CONFIG)


def widen_conv_in(unet: Any) -> Any:
    """An 8-channel ``conv_in`` for a 4-channel SD UNet: the weights duplicated and halved, so the UNet starts out
    computing what it did (Marigold's initialisation)."""
    conv = unet.conv_in
    wide = torch.nn.Conv2d(8, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
    with torch.no_grad():
        wide.weight.copy_(torch.cat([conv.weight, conv.weight], dim=1) / 2)
        if conv.bias is not None and wide.bias is not None:
            wide.bias.copy_(conv.bias)
    unet.conv_in = wide
    unet.register_to_config(in_channels=8)
    return unet


#: Each target's headline metric and whether higher is better (``model_best``).
BEST_METRIC = {"depth": ("abs_rel", False), "disparity": ("abs_rel", False), "normals": ("mean", False),
               "matting": ("sad", False), "dis": ("max_f", True)}  # fmt: skip


class OneStepMetrics:
    """The protocol of what is evaluated, picked from the first batch: normals for 3-channel predictions, else
    matting (ground truth ``alpha``), DIS (``mask``) or affine-invariant depth (``depth``); see
    :mod:`vpd.metrics.onestep`. A dataset's own validity mask (target ``valid``) narrows the depth pixels."""

    def __init__(self, config: OneStepEvalConfig) -> None:
        self.config = config
        self.inner: Any = None

    def _start(self, prediction: torch.Tensor, batch: dict[str, Any]) -> Any:
        from vpd.metrics.onestep import AffineDepthMetrics, MapMetrics, NormalMetrics

        if prediction.shape[1] == 3:
            if "normals" not in batch:
                raise ValueError("evaluating a normals model needs ground-truth normals; this dataset has none")
            return NormalMetrics()
        for key, kind in (("alpha", "matting"), ("mask", "dis")):
            if key in batch:
                return MapMetrics(kind)
        if "depth" not in batch:
            raise ValueError("evaluation needs ground truth (depth, alpha or mask); this dataset has none")
        crop = None if self.config.crop == "none" else self.config.crop
        low, high = self._range(batch, 0)
        return AffineDepthMetrics(low, high, crop, self.config.alignment or "least_squares")

    def _range(self, batch: dict[str, Any], i: int) -> tuple[float, float]:
        """Image ``i``'s valid depth range: the recipe's, else its dataset's, else NYUv2's."""
        low, high = self.config.min_depth, self.config.max_depth
        if low is None:
            low = float(batch["min_depth"][i]) if "min_depth" in batch else NYU_MIN_DEPTH
        if high is None:
            high = float(batch["max_depth"][i]) if "max_depth" in batch else NYU_MAX_DEPTH
        return low, high

    def update(self, prediction: torch.Tensor, batch: dict[str, Any]) -> None:
        from vpd.metrics.onestep import AffineDepthMetrics, NormalMetrics

        if self.inner is None:
            self.inner = self._start(prediction, batch)
        prediction = prediction.float().cpu()
        names = batch.get("name")
        if isinstance(self.inner, NormalMetrics):
            self.inner.update(prediction, batch["normals"].float(), names=names)
        elif isinstance(self.inner, AffineDepthMetrics):
            valid = batch.get("valid")
            valid = None if valid is None else valid.bool().reshape(prediction.shape)  # a dataset's own mask
            ranges = [self._range(batch, i) for i in range(prediction.shape[0])]
            self.inner.update(prediction, batch["depth"].float(), valid, names, ranges)
        else:
            truth = batch["alpha"] if self.inner.kind == "matting" else batch["mask"]
            self.inner.update(prediction, truth.float().reshape(prediction.shape), names=names)

    def compute(self) -> dict[str, float]:
        if self.inner is None or self.inner.count == 0:
            raise ValueError(
                "no sample had valid ground truth (at least 2 pixels in range); check the ground truth's units and "
                "eval.min_depth / eval.max_depth"
            )
        return cast(dict[str, float], self.inner.compute())

    def gather(self) -> None:
        if self.inner is not None:
            self.inner.gather()

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [] if self.inner is None else list(self.inner.rows)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {}


@register_task
class OneStepTask(Task):
    name: ClassVar[str] = "onestep"
    model_config: ClassVar[type[ModelConfig]] = OneStepModelConfig
    augment_config: ClassVar[type[AugmentConfig]] = OneStepAugmentConfig
    eval_config: ClassVar[type[EvalConfig]] = OneStepEvalConfig
    # GenPercept's / Marigold's recipe: Adam 3e-5 (no weight decay), IterExponential to 1 % at 25k of 30k
    # iterations after 100 warm-up steps, effective batch 32 through accumulation, mixed precision on GPUs.
    defaults: ClassVar[dict[str, Any]] = {
        "optim": {
            "lr": 3e-5,
            "weight_decay": 0.0,
            "schedule": "exponential",
            "final_ratio": 0.01,
            "decay_steps": 25000,
            "warmup": "linear",
            "warmup_steps": 100,
        },
        "train": {"output_dir": "runs/onestep", "max_steps": 30000, "batch_size": 32, "grad_accum": 16},
    }
    model_types: ClassVar[tuple[str, ...]] = ("onestep",)
    primary_metric: ClassVar[str] = "abs_rel"
    higher_is_better: ClassVar[bool] = False

    def dataset_classes(self, dataset: Any) -> tuple[str, ...]:
        return ()

    def conversion_settings(self, config: RunConfig) -> dict[str, Any]:
        return {}

    def build_model(self, config: RunConfig, class_names: tuple[str, ...]) -> OneStepModel:
        spec = cast(OneStepModelConfig, config.model)
        model = self._build(config, spec)
        if spec.latent_loss and model.config.readout != "vae":
            raise ConfigError(LATENT_LOSS_NEEDS_VAE)
        return model

    def _build(self, config: RunConfig, spec: OneStepModelConfig) -> OneStepModel:
        from vpd.modeling.onestep import OneStepModel, preset_config

        overrides: dict[str, Any] = {}
        if spec.readout is not None:
            overrides["readout"] = spec.readout
        if spec.dpt_features is not None:
            overrides["dpt_features"] = spec.dpt_features
        if spec.lora_rank is not None:
            overrides.update(lora_rank=spec.lora_rank, lora_alpha=spec.lora_alpha)
        if spec.init:
            model = self.load_model(spec.init)
            if spec.lora_rank is not None and model.config.lora_rank is None:  # LoRA on a released checkpoint
                model.add_lora(spec.lora_rank, spec.lora_alpha)
            wanted = {"preset": spec.preset, "target": spec.target, **overrides}
            wrong = [f"model.{k}={v!r} (the model has {getattr(model.config, k)!r})"
                     for k, v in wanted.items() if getattr(model.config, k) != v]  # fmt: skip
            if wrong:
                raise ConfigError(f"model.init {spec.init} contradicts the recipe: {'; '.join(wrong)}")
            return model
        if spec.architecture == "tiny":
            unet_config, vae_config = _tiny_components(spec.preset)
            if spec.readout == "dpt" and spec.dpt_features is None:
                overrides["dpt_features"] = 32
            cfg = preset_config(spec.preset, spec.target, unet_config, vae_config, **overrides)
            generator = torch.Generator().manual_seed(config.train.seed)
            torch.manual_seed(config.train.seed)
            embedding = torch.randn(1, cfg.text_tokens, int(unet_config["cross_attention_dim"]), generator=generator)
            if spec.empty_text_embedding:
                embedding = _read_embedding(spec.empty_text_embedding)
            return OneStepModel(cfg, empty_text_embedding=embedding)
        if not spec.pretrained:
            raise ConfigError(
                "model.pretrained: a one-step model starts from Stable Diffusion 2 (a diffusers folder, hub id or "
                "single file), from model.init, or from model.architecture=tiny"
            )
        return _from_stable_diffusion(spec, overrides)

    def load_model(self, source: str, device: str | torch.device = "cpu") -> OneStepModel:
        from vpd.modeling.onestep import OneStepModel

        return OneStepModel.from_pretrained(source, device=device)

    def train_transform(self, config: RunConfig) -> Transform | None:
        from vpd.data.transforms import Compose, HorizontalFlip, RandomCrop

        augment = cast(OneStepAugmentConfig, config.augment)
        steps: list[Any] = [RandomCrop(augment.crop_size)] if augment.crop_size else []
        if augment.flip > 0:
            steps.append(HorizontalFlip(augment.flip))
        return Compose(steps) if steps else None

    def loss(
        self, model: torch.nn.Module, batch: dict[str, Any], config: RunConfig | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        one_step = cast("OneStepModel", _unwrap(model))
        target_kind = one_step.config.target
        truth = _ground_truth(batch, target_kind)
        out = model(batch["image"])
        loss, logs, target, valid = _pixel_loss(out.raw, truth, target_kind)
        weight = cast(OneStepModelConfig, config.model).latent_loss if config is not None else 0.0
        if weight:
            if out.latent is None:
                raise ConfigError(LATENT_LOSS_NEEDS_VAE)
            with torch.no_grad():
                wanted = one_step.encode_target(target)
            # as Marigold: only latent cells whose pixels are all valid count
            factor = target.shape[-1] // out.latent.shape[-1]
            cells = ~F.max_pool2d((~valid).float(), factor).bool()
            error = ((out.latent.float() - wanted.float()) ** 2).mean(1, keepdim=True)
            latent = (error * cells).sum() / cells.sum().clamp_min(1)
            loss = loss + weight * latent
            logs["latent"] = float(latent.detach())
        return loss, logs

    def predict(self, model: torch.nn.Module, batch: dict[str, Any], config: EvalConfig) -> torch.Tensor:
        from vpd.inference.onestep import OneStepPredictor

        spec = cast(OneStepEvalConfig, config)
        predictor = OneStepPredictor(cast("OneStepModel", _unwrap(model)))
        images = batch["image"]
        size = (int(images.shape[-2]), int(images.shape[-1]))
        outputs = []
        for image in images:
            x = predictor.preprocess(image, spec.processing_resolution)[None]
            out = model(x).prediction.float()
            outputs.append(predictor._restore(out, size))
        return torch.cat(outputs)

    def resolve(self, config: RunConfig) -> RunConfig:
        """``eval.alignment`` left null: in disparity for a disparity model, else in depth."""
        import dataclasses

        evaluation = cast(OneStepEvalConfig, config.eval)
        if evaluation.alignment is not None:
            return config
        target = cast(OneStepModelConfig, config.model).target
        alignment: Literal["least_squares", "least_squares_disparity"] = (
            "least_squares_disparity" if target == "disparity" else "least_squares"
        )
        return dataclasses.replace(config, eval=dataclasses.replace(evaluation, alignment=alignment))

    def best_metric(self, config: RunConfig) -> tuple[str, bool]:
        return BEST_METRIC[cast(OneStepModelConfig, config.model).target]

    def metrics(self, config: EvalConfig, class_names: tuple[str, ...] | None = None) -> OneStepMetrics:
        return OneStepMetrics(cast(OneStepEvalConfig, config))

    def save_prediction(self, model: torch.nn.Module, prediction: torch.Tensor, stem: Path) -> None:
        from vpd.inference.onestep import write_map

        value = prediction.float().cpu()
        array = value.permute(1, 2, 0).numpy() if value.shape[0] == 3 else value[0].numpy()
        write_map(str(stem), array, ("png16",))

    def visualize(self, batch: dict[str, Any], prediction: torch.Tensor, index: int = 0) -> np.ndarray:
        from vpd.inference.visualize import colorize, make_panel

        image = image_uint8(batch, index)
        pred = prediction[index].float().cpu()

        def show(value: torch.Tensor, valid: np.ndarray | None = None) -> np.ndarray:
            if value.shape[0] == 3:  # normals in [-1, 1] as RGB
                rgb = ((value.permute(1, 2, 0).numpy() + 1) / 2 * 255).round().clip(0, 255).astype(np.uint8)
                return rgb if valid is None else rgb * valid[..., None]
            return colorize(value[0].numpy(), invalid_mask=None if valid is None else ~valid)

        tiles, titles = [image, show(pred)], ["input", "prediction"]
        keys = ("normals",) if pred.shape[0] == 3 else ("depth", "alpha", "mask")
        for name in keys:
            if name in batch:
                truth = batch[name][index].float().cpu()
                truth = truth[None] if truth.ndim == 2 else truth  # integer masks come as [H, W]
                if name == "normals":
                    valid = truth.norm(dim=0) > 0.5
                elif name == "depth":
                    valid = truth[0] > 0
                else:
                    valid = truth[0] != 255
                tiles.append(show(truth.clamp(0, 1) if name == "mask" else truth, valid.numpy()))
                titles.append("ground truth")
                break
        return make_panel(tiles, titles=titles, columns=len(tiles))


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside an accelerate / DDP wrapper."""
    return getattr(model, "module", model)


def _pixel_loss(
    raw: torch.Tensor, truth: torch.Tensor, target_kind: str
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor]:
    """The target's pixel loss on the decoded output ``raw``, its logs, the map it compared with (in [-1, 1]:
    normalised depth / disparity, normals, the alpha or mask mapped) and the valid pixels ``[B, 1, H, W]``."""
    from vpd.modeling.losses import affine_depth_loss, angular_loss, normalize_depth

    if raw.shape[-2:] != truth.shape[-2:]:  # the decoder gives 8x the latent: sizes not multiples of 8 differ
        raw = F.interpolate(raw, size=truth.shape[-2:], mode="bilinear", align_corners=False)
    if target_kind == "normals":
        valid = truth.norm(dim=1, keepdim=True) > 0.5
        loss = angular_loss(raw, truth, valid)
        return loss, {"angular": float(loss.detach())}, truth, valid
    pred = raw.mean(1, keepdim=True) if raw.shape[1] == 3 else raw
    if target_kind in ("depth", "disparity"):
        valid = truth > 0
        values = torch.where(valid, 1 / truth.clamp_min(1e-6), truth) if target_kind == "disparity" else truth
        target = normalize_depth(values, valid)
        loss, logs = affine_depth_loss(pred, target, valid)
        return loss, logs, target, valid
    truth = truth.reshape(pred.shape)  # DIS masks come as [B, H, W] integers
    valid = truth != 255 if target_kind == "dis" else torch.ones_like(truth, dtype=torch.bool)
    target = torch.where(valid, truth.float(), torch.zeros_like(truth, dtype=torch.float)) * 2 - 1
    loss = ((pred - target) ** 2 * valid).sum() / valid.sum().clamp_min(1)
    return loss, {"mse": float(loss.detach())}, target, valid


def _ground_truth(batch: dict[str, Any], target: str) -> torch.Tensor:
    key = GROUND_TRUTH[target]
    if key not in batch:
        raise ValueError(f"training a {target} model needs target {key!r} in the data; this dataset has none")
    return cast(torch.Tensor, batch[key])


def _read_embedding(path: str) -> torch.Tensor:
    from vpd.modeling.onestep_loading import _read_tensor

    tensor = _read_tensor(path).float()
    return tensor[None] if tensor.ndim == 2 else tensor


def _from_stable_diffusion(spec: OneStepModelConfig, overrides: dict[str, Any]) -> OneStepModel:
    from vpd.modeling.onestep import PRESETS, OneStepModel, preset_config
    from vpd.modeling.onestep_loading import encode_empty_prompt
    from vpd.modeling.stable_diffusion import clean_component_config, load_stable_diffusion

    assert spec.pretrained is not None
    parts = load_stable_diffusion(spec.pretrained, original_config=spec.original_config)
    unet = parts.unet
    if PRESETS[spec.preset]["unet_input"] != "latent":
        unet = widen_conv_in(unet)
    if PRESETS[spec.preset].get("task_embedding") is not None:
        raise ConfigError(
            "model.preset: lotus-d adds a task embedding to the UNet; start it from a Lotus checkpoint "
            "(vpd convert ... then model.init) rather than from Stable Diffusion"
        )
    if spec.empty_text_embedding:
        embedding = _read_embedding(spec.empty_text_embedding)
    else:
        embedding = encode_empty_prompt(spec.text_encoder or spec.pretrained)
    components = (clean_component_config(unet.config), clean_component_config(parts.vae.config))
    cfg = preset_config(spec.preset, spec.target, *components, text_tokens=int(embedding.shape[1]), **overrides)
    return OneStepModel(cfg, unet=unet, vae=parts.vae, empty_text_embedding=embedding)
