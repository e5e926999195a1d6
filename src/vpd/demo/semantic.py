"""The semantic-segmentation demo (``vpd demo --task semantic``): on a fresh CPU machine, no weights, no downloads.

Synthetic rooms labelled with ADE20K categories -> train a tiny VPD segmentation model -> mIoU / aAcc / mAcc on
held-out rooms against the untrained model and a majority-class baseline -> an HTML + PNG report. The same workflow
with ``--config configs/semantic_ade20k.yaml`` and Stable Diffusion weights is the real thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vpd.demo.common import DemoResult, Stopwatch, evaluate_models, start_trainer, train
from vpd.modeling.outputs import SegmentationOutput

DEMO_RECIPE = "demo_synthetic_semantic"


class MajorityClass(nn.Module):
    """A baseline with the segmentation model's interface that predicts one class everywhere."""

    logits: torch.Tensor

    def __init__(self, label: int, class_names: Sequence[str]) -> None:
        super().__init__()
        if not 0 <= label < len(class_names):
            raise ValueError(f"label {label} is not one of the {len(class_names)} classes")
        self.label = int(label)
        self.class_names = tuple(class_names)
        self.register_buffer("logits", torch.nn.functional.one_hot(torch.tensor(label), len(class_names)).float())

    def forward(self, images: torch.Tensor) -> SegmentationOutput:
        b, _, h, w = images.shape
        return SegmentationOutput(logits=self.logits[None, :, None, None].expand(b, -1, h, w).clone())


def fit_majority(dataset: Any, class_names: Sequence[str], limit: int = 64) -> MajorityClass:
    """The majority-class baseline: the most frequent label (255 = ignore not counted) of the first ``limit``
    training rooms."""
    from vpd.data.base import IGNORE_INDEX

    counts = np.zeros(len(class_names), np.int64)
    for index in range(min(limit, len(dataset))):
        labels = np.asarray(dataset.load(index).targets["semantic"]).ravel()
        counts += np.bincount(labels[labels != IGNORE_INDEX], minlength=len(class_names))[: len(class_names)]
    return MajorityClass(int(counts.argmax()), class_names)


def run_semantic_demo(
    output_dir: str | Path = "runs/demo_semantic", overrides: Sequence[str] = (), progress: bool = True
) -> DemoResult:
    """Runs the semantic demo end to end and writes ``report.html`` and ``report.png`` into ``output_dir``."""
    from vpd.report import write_semantic_report

    output_dir = Path(output_dir)
    clock = Stopwatch()
    with clock("setup"):
        trainer, untrained = start_trainer(DEMO_RECIPE, output_dir, overrides, "VPD segmentation model", progress)
        class_names = tuple(getattr(untrained, "class_names", ()))
        majority = fit_majority(trainer.train_set, class_names)

    with clock("baselines"):
        results = evaluate_models(trainer, {"majority": majority, "untrained": untrained})

    with clock("training"):
        _, trained = train(trainer)

    with clock("evaluation"):  # the fit's final evaluation again, for the per-class table
        results.update(evaluate_models(trainer, {"trained": trained}))

    metrics = {name: result.metrics for name, result in results.items()}
    per_class = {name: result.tables.get("per_class", []) for name, result in results.items()}
    demo = DemoResult(metrics, clock.total(), output_dir, trainer.history, task="semantic", per_class=per_class)
    write_semantic_report(demo, trainer, {"trained": trained, "untrained": untrained}, class_names[majority.label])
    return demo


def summary_table(demo: DemoResult) -> str:
    """The semantic demo's printed table: mIoU, aAcc and mAcc per model."""
    from vpd.report import SEMANTIC_MODELS
    from vpd.tasks.semantic import SEMANTIC_METRICS

    lines = [f"{'model':13s}" + "".join(f" {m:>8s}" for m in SEMANTIC_METRICS)]
    for name in SEMANTIC_MODELS:
        lines.append(f"{name:13s}" + "".join(f" {demo.metrics[name][m]:8.4f}" for m in SEMANTIC_METRICS))
    return "\n".join(lines)
