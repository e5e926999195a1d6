"""What every task's demo shares: the result record, timing, setting up the trainer, evaluating models, training."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from vpd.training.evaluate import EvalResult
    from vpd.training.trainer import Trainer


@dataclass
class DemoResult:
    """What a demo measured; its report shows all of it.

    Attributes:
        metrics: model -> metrics on the held-out synthetic rooms.
        seconds: phase -> wall seconds (``total`` included).
        output_dir: where the run and the report are.
        history: the trainer's log records (``train/loss`` per logged step, ``eval/*``).
        task: ``depth``, ``semantic``, ``referring`` or ``onestep``.
        middlebury: depth, onestep: model -> affine-aligned abs_rel on the real photo.
        per_class: semantic: model -> the per-class rows of its evaluation (``SegmentationMetrics.tables()``).
    """

    metrics: dict[str, dict[str, float]]
    seconds: dict[str, float]
    output_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    task: str = "depth"
    middlebury: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class Stopwatch:
    """Wall seconds per phase: ``with clock("training"): ...``; ``clock.seconds`` maps phases to seconds."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        tic = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - tic

    def total(self) -> dict[str, float]:
        """The phases and ``total``, the seconds since the stopwatch was made."""
        return {**self.seconds, "total": time.perf_counter() - self.start}


def sets(overrides: Sequence[str], key: str) -> bool:
    """Whether the user's ``KEY=VALUE`` overrides set ``key`` (then a demo leaves that setting to them)."""
    return any(o.split("=", 1)[0].strip() == key for o in overrides)


def start_trainer(
    recipe: str, output_dir: Path, overrides: Sequence[str], what: str, progress: bool
) -> tuple[Trainer, nn.Module]:
    """The trainer for ``recipe`` writing into ``output_dir``, and a frozen copy of its model before training.

    ``what`` names the model in the one-line summary printed when ``progress`` is set.
    """
    from vpd.training.config import load_run_config
    from vpd.training.trainer import Trainer

    config = load_run_config(recipe, [f"train.output_dir={output_dir}", *overrides])
    trainer = Trainer(config)
    if progress:
        print(
            f"demo: {len(trainer.train_set)} training / {len(trainer.val_set or [])} validation samples, "
            f"{sum(p.numel() for p in trainer.model.parameters()) / 1e6:.1f}M-parameter {what}, "
            f"{trainer.total_steps} steps"
        )
    untrained = copy.deepcopy(trainer.accelerator.unwrap_model(trainer.model)).eval()
    return trainer, untrained


def evaluate_models(trainer: Trainer, models: dict[str, nn.Module]) -> dict[str, EvalResult]:
    """Each model scored with the recipe's evaluation protocol on the validation rooms."""
    from vpd.training.evaluate import evaluate

    if trainer.val_set is None:
        raise ValueError("the demo needs validation rooms (data.val)")
    acc, task, dataset, config = trainer.accelerator, trainer.task, trainer.val_set, trainer.config.eval
    results = {}
    for name, model in models.items():
        model = model.to(acc.device)
        results[name] = evaluate(task, model, dataset, config, device=acc.device, progress=False, autocast=acc.autocast)
    return results


def train(trainer: Trainer) -> tuple[dict[str, float], nn.Module]:
    """Trains to the recipe's step count; returns the final validation metrics and the trained model (eval mode)."""
    result = trainer.fit()
    return result["eval"], trainer.accelerator.unwrap_model(trainer.model).eval()
