"""The run configuration: what a recipe file (``configs/*.yaml``) sets, over typed defaults.

A run has six sections. ``data``, ``optim`` and ``train`` are the same for every task; ``model``, ``augment`` and
``eval`` are owned by the task that ``model.task`` names (each task subclasses :class:`ModelConfig`,
:class:`AugmentConfig` and :class:`EvalConfig` with its own fields, see ``vpd.tasks``). Loading reads the task
first, then parses the rest against that task's schema, over the task's defaults (its official recipe), so a
segmentation recipe is never merged onto depth defaults. A recipe lists only what differs, and
``--set section.key=value`` overrides anything from the command line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from vpd.configuration import ConfigError, check_range, load_config, merge, parse_override, to_dict


@dataclass(frozen=True)
class DatasetConfig:
    """A dataset: ``kind`` (see ``vpd.data.registry``) and its constructor arguments."""

    kind: str = "synthetic"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    """Training and validation sets. ``val`` null: no evaluation (then ``train.eval_every`` must be 0)."""

    train: DatasetConfig = field(default_factory=DatasetConfig)
    val: DatasetConfig | None = None
    num_workers: int = 2

    def __post_init__(self) -> None:
        check_range("data.num_workers", self.num_workers, low=0)


@dataclass(frozen=True)
class ModelConfig:
    """What to build, for every task. ``init`` (a vpd checkpoint) wins; else Stable Diffusion from ``pretrained``;
    else random. Tasks add their architecture fields; those left null take the architecture's own defaults.

    Attributes:
        task: the task (model, loss, metrics); selects the schema of ``model``, ``augment`` and ``eval``.
        pretrained: Stable Diffusion: diffusers folder, hub id or single-file checkpoint.
        text_encoder: CLIP for the class embeddings (default: ``pretrained``'s text encoder).
        original_config: ldm yaml for single-file checkpoints (so no config is fetched).
        init: a vpd checkpoint (folder or hub id) to start from -- e.g. a converted official model. Fields set in
            the recipe are applied to it where they can be (``timestep``, ``scale_latents``, a task's output range)
            and refused by name where they contradict its weights (widths, class names).
        architecture: UNet/VAE shapes when nothing is loaded: ``"sd15"`` or ``"tiny"`` (tests, CPU demo).
        vae: a diffusers VAE folder or hub id (or a Stable Diffusion one, its ``vae/``) whose weights replace the
            built model's VAE, as diffusers' ``vae=`` does (e.g. ``stabilityai/sd-vae-ft-mse``); same architecture.
        class_names: the classes; default: the training dataset's.
        class_embeddings: ``"clip"`` or ``"random"``.
        timestep, scale_latents: backbone numerics (null: the official ones, t = 1 and no latent scaling).

    A task's ``loss_fields`` name its fields that weigh training losses (read by its ``loss``), not the architecture.
    """

    loss_fields: ClassVar[tuple[str, ...]] = ()

    task: str = "depth"
    pretrained: str | None = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    text_encoder: str | None = None
    original_config: str | None = None
    init: str | None = None
    architecture: Literal["sd15", "tiny"] = "sd15"
    vae: str | None = None
    class_names: tuple[str, ...] | None = None
    class_embeddings: Literal["clip", "random"] = "clip"
    timestep: int | None = None
    scale_latents: bool | None = None

    def __post_init__(self) -> None:
        check_range("model.timestep", self.timestep, low=0, high=999, optional=True)


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation; each task adds its fields (crop size, probabilities)."""


@dataclass(frozen=True)
class ParamRule:
    """One optimiser rule: parameters whose name matches ``key`` (a regular expression searched in the dotted name;
    a plain substring works) train at ``lr_mult`` x the rate with ``decay_mult`` x the weight decay."""

    key: str
    lr_mult: float = 1.0
    decay_mult: float = 1.0

    def __post_init__(self) -> None:
        try:
            re.compile(self.key)
        except re.error as err:
            raise ConfigError(f"optim.param_rules: key {self.key!r} is not a regular expression ({err})") from None
        check_range("optim.param_rules.lr_mult", self.lr_mult, low=0)
        check_range("optim.param_rules.decay_mult", self.decay_mult, low=0)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, its parameter rules and the learning-rate schedule.

    Attributes:
        lr: peak learning rate (``max_lr`` of the official depth schedule; mmcv's base rate).
        min_lr: floor of the ``vpd`` / ``poly`` / ``cosine`` schedules.
        schedule: ``vpd`` (official depth, per iteration), ``mmseg`` (mmseg's depth: linear warm-up, poly,
            constant), ``poly`` (mmcv's PolyLrUpdaterHook), ``cosine``, ``exponential`` (Marigold's / GenPercept's
            IterExponential: to ``final_ratio`` of the rate at ``decay_steps``, then constant) or ``constant``.
        poly_power: exponent of ``poly``.
        warmup: ``linear`` or ``none``; ``poly`` warms up as mmcv (scaling the already-decayed rate by
            ``1 - (1 - i / warmup_steps) * (1 - warmup_ratio)``), ``cosine`` rises linearly to the peak; ``mmseg``'s
            linear phase is always ``warmup_steps`` long (its recipe: 12000); ``vpd`` has its own rise.
        param_rules: ordered rules; the first whose key matches a parameter's name decides its multipliers alone
            (mmcv's ``custom_keys``); no match: 1 and 1.
        no_decay: parameters that never decay, whatever the rules say: ``1d_and_bias`` (official VPD depth),
            ``bias`` (mmseg's ``bias_decay_mult=0``) or ``none``.
        final_ratio, decay_steps: ``exponential``'s end ratio and length (None: the whole run).
        grad_clip: max gradient norm, or None.
    """

    lr: float = 1e-4
    min_lr: float = 0.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["vpd", "mmseg", "poly", "cosine", "exponential", "constant"] = "constant"
    poly_power: float = 1.0
    warmup: Literal["none", "linear"] = "none"
    warmup_steps: int = 0
    warmup_ratio: float = 1e-6
    poly_end_step: int = 24000
    final_ratio: float = 0.01
    decay_steps: int | None = None
    param_rules: tuple[ParamRule, ...] = ()
    no_decay: Literal["1d_and_bias", "bias", "none"] = "none"
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        check_range("optim.lr", self.lr, low=0, low_open=True)
        check_range("optim.min_lr", self.min_lr, low=0)
        check_range("optim.weight_decay", self.weight_decay, low=0)
        for i, beta in enumerate(self.betas):
            check_range(f"optim.betas[{i}]", beta, low=0, high=0.999999)
        check_range("optim.poly_power", self.poly_power, low=0, low_open=True)
        check_range("optim.warmup_steps", self.warmup_steps, low=0)
        check_range("optim.warmup_ratio", self.warmup_ratio, low=0, high=1)
        check_range("optim.poly_end_step", self.poly_end_step, low=1)
        check_range("optim.final_ratio", self.final_ratio, low=0, high=1, low_open=True)
        check_range("optim.decay_steps", self.decay_steps, low=1, optional=True)
        check_range("optim.grad_clip", self.grad_clip, low=0, low_open=True, optional=True)
        if self.warmup == "linear" and self.warmup_steps < 1:
            raise ConfigError("optim.warmup=linear needs optim.warmup_steps >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """The loop. ``batch_size`` is global (per optimiser step); each process takes
    ``batch_size / (processes * grad_accum)``, so one recipe runs unchanged on one CPU or many GPUs.
    ``latent_cache``: a folder where the frozen VAE encoder's outputs are kept, keyed by image content, so that each
    training image is encoded once (:mod:`vpd.training.latent_cache`); only for augmentation that is not random.
    """

    output_dir: str = "runs/vpd"
    epochs: int = 25
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "no"
    gradient_checkpointing: bool = False
    seed: int = 0
    log_every: int = 20
    eval_every: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    resume: bool = True
    progress: bool = True
    latent_cache: str | None = None

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
    """The evaluation protocol; each task adds its fields (crop, ranges, test-time augmentation).

    Attributes:
        batch_size: crops per model call in test-time augmentation.
        max_samples: evaluate only the first N samples (quick checks), None for all.
    """

    batch_size: int = 4
    max_samples: int | None = None

    def __post_init__(self) -> None:
        check_range("eval.batch_size", self.batch_size, low=1)
        check_range("eval.max_samples", self.max_samples, low=1, optional=True)


@dataclass(frozen=True)
class RunConfig:
    """A whole run; ``model``, ``augment`` and ``eval`` hold the task's own subclasses (:func:`run_config_class`)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


_RUN_CLASSES: dict[str, type[RunConfig]] = {}


def run_config_class(task: str) -> type[RunConfig]:
    """The :class:`RunConfig` subclass whose ``model`` / ``augment`` / ``eval`` are ``task``'s config classes."""
    if task not in _RUN_CLASSES:
        from vpd.tasks import task_class

        cls = task_class(task)
        _RUN_CLASSES[task] = dataclasses.make_dataclass(
            f"{cls.__name__.removesuffix('Task')}RunConfig",
            [
                ("model", cls.model_config, field(default_factory=cls.model_config)),
                ("augment", cls.augment_config, field(default_factory=cls.augment_config)),
                ("eval", cls.eval_config, field(default_factory=cls.eval_config)),
            ],
            bases=(RunConfig,),
            frozen=True,
        )
    return _RUN_CLASSES[task]


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


def _recipe_task(path: Path | None, overrides: Sequence[str]) -> str:
    """``model.task`` as the overrides (last one wins), else the recipe file, else the default, say."""
    for text in reversed(overrides):
        keys, value = parse_override(text)
        if keys == ["model", "task"]:
            return str(value)
        if keys == ["model"] and isinstance(value, Mapping) and "task" in value:
            return str(value["task"])
    if path is not None and path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            loaded = {}  # load_config reports the file's own error
        model = loaded.get("model") if isinstance(loaded, Mapping) else None
        if isinstance(model, Mapping) and "task" in model:
            return str(model["task"])
    return ModelConfig.task


def load_run_config(recipe: str | Path | None, overrides: Sequence[str] = ()) -> RunConfig:
    """The task's defaults (its official recipe), then the recipe (path or packaged name), then ``key=value``
    overrides, parsed against the schema of the task that ``model.task`` names."""
    from vpd.tasks import task_class

    path = recipe_path(recipe) if recipe is not None else None
    task = task_class(_recipe_task(path, overrides))
    cls = run_config_class(task.name)
    base = merge(cls, to_dict(cls()), task.defaults)
    return task().resolve(load_config(cls, path, overrides, base=base))
