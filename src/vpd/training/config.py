"""The run configuration: what a recipe file (``configs/*.yaml``) sets, over typed defaults.

Defaults reproduce the official VPD NYUv2 depth recipe (SPEC §3); a recipe lists only what differs, and
``--set section.key=value`` overrides anything from the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from vpd.configuration import ConfigError, check_range, load_config
from vpd.limits import MAX_WINDOWS


@dataclass(frozen=True)
class DatasetConfig:
    """A dataset: ``kind`` (see ``vpd.data.registry``) and its constructor arguments."""

    kind: str = "nyuv2_sync"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    train: DatasetConfig = field(default_factory=lambda: DatasetConfig("nyuv2_sync", {"root": "data/nyu_depth_v2"}))
    val: DatasetConfig | None = field(
        default_factory=lambda: DatasetConfig("nyuv2_sync", {"root": "data/nyu_depth_v2", "split": "test"})
    )
    crop_size: tuple[int, int] = (480, 480)
    augment: bool = True
    cutdepth: float = 0.25
    num_workers: int = 2

    def __post_init__(self) -> None:
        for i, side in enumerate(self.crop_size):
            check_range(f"data.crop_size[{i}]", side, low=1)
        check_range("data.cutdepth", self.cutdepth, low=0, high=1)
        check_range("data.num_workers", self.num_workers, low=0)


@dataclass(frozen=True)
class ModelConfig:
    """What to build. ``init`` (a vpd checkpoint) wins; else Stable Diffusion from ``pretrained``; else random.

    Attributes:
        task: the task (head, loss, metrics).
        pretrained: Stable Diffusion: diffusers folder, hub id or single-file checkpoint.
        text_encoder: CLIP for the class embeddings (default: ``pretrained``'s text encoder).
        original_config: ldm yaml for single-file checkpoints (so no config is fetched).
        init: a vpd checkpoint (folder or hub id) to start from -- e.g. a converted official model.
        architecture: UNet/VAE shapes when nothing is loaded: ``"sd15"`` or ``"tiny"`` (tests, CPU demo).
        class_names: the scene classes; default: the training dataset's.
        class_embeddings: ``"clip"`` or ``"random"``.
    """

    task: Literal["depth"] = "depth"
    pretrained: str | None = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    text_encoder: str | None = None
    original_config: str | None = None
    init: str | None = None
    architecture: Literal["sd15", "tiny"] = "sd15"
    class_names: tuple[str, ...] | None = None
    class_embeddings: Literal["clip", "random"] = "clip"
    max_depth: float = 10.0
    fused_channels: int = 1536
    deconv_channels: tuple[int, ...] = (32, 32, 32)
    head_channels: int = 192
    timestep: int = 1
    scale_latents: bool = False

    def __post_init__(self) -> None:
        check_range("model.max_depth", self.max_depth, low=0, low_open=True)
        for name in ("fused_channels", "head_channels"):
            check_range(f"model.{name}", getattr(self, name), low=1)
        for i, width in enumerate(self.deconv_channels):
            check_range(f"model.deconv_channels[{i}]", width, low=1)
        check_range("model.timestep", self.timestep, low=0, high=999)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and the learning-rate schedule.

    Attributes:
        lr: peak learning rate (``max_lr`` of the official schedule; mmseg's base rate).
        min_lr: floor of the ``vpd`` / ``poly`` / ``cosine`` schedules.
        schedule: ``vpd`` (official depth, per iteration), ``mmseg`` (linear warm-up, poly, constant),
            ``poly``, ``cosine`` or ``constant``.
        warmup_steps: warm-up of ``poly`` / ``cosine``; for ``mmseg`` the linear phase (12000).
        unet_lr_scale: every parameter whose name contains "unet" trains at this multiple of the rate.
        no_decay: ``1d_and_bias`` (official) or ``bias`` (mmseg).
        grad_clip: max gradient norm, or None.
    """

    lr: float = 5e-4
    min_lr: float = 3e-5
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["vpd", "mmseg", "poly", "cosine", "constant"] = "vpd"
    warmup_steps: int = 0
    poly_end_step: int = 24000
    unet_lr_scale: float = 0.01
    no_decay: Literal["1d_and_bias", "bias"] = "1d_and_bias"
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        check_range("optim.lr", self.lr, low=0, low_open=True)
        check_range("optim.min_lr", self.min_lr, low=0)
        check_range("optim.weight_decay", self.weight_decay, low=0)
        for i, beta in enumerate(self.betas):
            check_range(f"optim.betas[{i}]", beta, low=0, high=0.999999)
        check_range("optim.warmup_steps", self.warmup_steps, low=0)
        check_range("optim.poly_end_step", self.poly_end_step, low=1)
        check_range("optim.unet_lr_scale", self.unet_lr_scale, low=0)
        check_range("optim.grad_clip", self.grad_clip, low=0, low_open=True, optional=True)


@dataclass(frozen=True)
class TrainConfig:
    """The loop. ``batch_size`` is global (per optimiser step); each process takes
    ``batch_size / (processes * grad_accum)``, so one recipe runs unchanged on one CPU or many GPUs.
    """

    output_dir: str = "runs/depth_nyuv2"
    epochs: int = 25
    max_steps: int | None = None
    batch_size: int = 24
    grad_accum: int = 1
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_checkpointing: bool = False
    seed: int = 0
    log_every: int = 20
    eval_every: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    resume: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        check_range("train.epochs", self.epochs, low=1)
        check_range("train.max_steps", self.max_steps, low=1, optional=True)
        for name in ("batch_size", "grad_accum", "log_every"):
            check_range(f"train.{name}", getattr(self, name), low=1)
        for name in ("eval_every", "checkpoint_every"):  # 0 = never (the final step always evaluates and saves)
            check_range(f"train.{name}", getattr(self, name), low=0)
        # The newest checkpoint is what a killed run resumes from: it is always kept.
        check_range("train.keep_checkpoints", self.keep_checkpoints, low=1)


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol and test-time augmentation.

    Attributes:
        crop: ``nyu`` (Eigen crop), ``kitti_garg``, ``kitti_eigen`` or ``none``.
        min_depth, max_depth: valid ground truth is ``min_depth < gt < max_depth``.
        flip: average with the horizontally flipped prediction.
        windows: square sliding windows across the long side (official: 2 at 480x640); None: the whole image.
        max_samples: evaluate only the first N samples (quick checks), None for all.
    """

    crop: Literal["nyu", "kitti_garg", "kitti_eigen", "none"] = "nyu"
    min_depth: float = 1e-3
    max_depth: float = 10.0
    flip: bool = True
    windows: int | None = 2
    batch_size: int = 4
    max_samples: int | None = None

    def __post_init__(self) -> None:
        check_range("eval.min_depth", self.min_depth, low=0)
        check_range("eval.max_depth", self.max_depth, low=self.min_depth, low_open=True)
        check_range("eval.windows", self.windows, low=1, high=MAX_WINDOWS, optional=True)
        check_range("eval.batch_size", self.batch_size, low=1)
        check_range("eval.max_samples", self.max_samples, low=1, optional=True)


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def packaged_recipes() -> list[str]:
    """Names of the recipes shipped with vpd (``vpd/configs/*.yaml``)."""
    return sorted(p.name[:-5] for p in resources.files("vpd.configs").iterdir() if p.name.endswith(".yaml"))


def recipe_path(name: str | Path) -> Path:
    """A recipe file: an existing path, or the name of a packaged recipe (``depth_nyuv2``)."""
    path = Path(name)
    if path.is_file():
        return path
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    if stem in packaged_recipes():
        return Path(str(resources.files("vpd.configs") / f"{stem}.yaml"))
    raise ConfigError(f"config {name}: no such file, nor a packaged recipe ({', '.join(packaged_recipes())})")


def load_run_config(recipe: str | Path | None, overrides: Sequence[str] = ()) -> RunConfig:
    """Typed defaults, then the recipe (path or packaged name), then ``key=value`` overrides."""
    return load_config(RunConfig, recipe_path(recipe) if recipe is not None else None, overrides)
