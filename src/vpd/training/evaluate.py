"""The evaluation loop shared by periodic evaluation in training and ``vpd eval``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from vpd.errors import iterate
from vpd.tasks.base import Task
from vpd.training.config import EvalConfig


@dataclass
class EvalResult:
    """Dataset-level metrics, per-sample rows (for a CSV), further tables (per class), and how long it took."""

    metrics: dict[str, float]
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def single_batch(sample: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """One dataset sample as a batch of one (what a DataLoader would collate), on ``device``."""
    return to_device({k: v[None] if isinstance(v, torch.Tensor) else [v] for k, v in sample.items()}, device)


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Runs a block with every module of ``model`` in eval mode, then restores each module's own flag.

    Evaluation must not change the model: in train mode BatchNorm would fold validation statistics into its running
    buffers. Restoring per module (not ``model.train(was_training)``) keeps parts that were deliberately in eval mode
    during training (a frozen VAE) as they were.
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


@torch.inference_mode()
def evaluate(
    task: Task,
    model: torch.nn.Module,
    dataset: Dataset,
    config: EvalConfig,
    *,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    progress: bool = True,
    autocast: Callable[[], Any] | None = None,
    on_batch: Callable[[dict[str, Any], torch.Tensor], None] | None = None,
) -> EvalResult:
    """Runs ``task``'s protocol over ``dataset`` (each process takes every ``world_size``-th sample).

    Samples go one at a time (evaluation images may differ in size); the task's test-time augmentation batches the
    crops and flips of each image itself. ``on_batch(batch, prediction)`` sees every prediction (to save outputs).
    """
    start = time.perf_counter()
    count = len(dataset)  # type: ignore[arg-type]
    if config.max_samples is not None:
        count = min(count, config.max_samples)
    subset = Subset(dataset, list(range(rank, count, world_size)))
    loader = DataLoader(subset, batch_size=1, num_workers=num_workers)
    metrics = task.metrics(config, class_names=getattr(model, "class_names", None))
    bar = tqdm(iterate(loader), total=len(loader), desc="evaluating", disable=not progress or rank != 0, leave=False,
               dynamic_ncols=True)  # fmt: skip
    with eval_mode(model):
        for batch in bar:
            batch = to_device(batch, device)
            with autocast() if autocast is not None else nullcontext():
                prediction = task.predict(model, batch, config)
            metrics.update(prediction, batch)
            if on_batch is not None:
                on_batch(batch, prediction)
    if world_size > 1:
        metrics.gather()
    values = metrics.compute()
    return EvalResult(values, metrics.rows, time.perf_counter() - start, metrics.tables())
