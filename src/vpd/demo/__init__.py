"""The embedded demos: a whole task pipeline on a fresh CPU machine, with no weights and no downloads.

``vpd demo`` (:mod:`vpd.demo.depth`) trains a tiny VPD depth model on synthetic rooms; ``vpd demo --task semantic``
(:mod:`vpd.demo.semantic`) a tiny VPD segmentation model; ``vpd demo --task referring`` (:mod:`vpd.demo.referring`)
a tiny VPD referring model with a tiny CLIP built locally; ``vpd demo --task onestep`` (:mod:`vpd.demo.onestep`)
tiny one-step depth and normals models. Each compares it with the untrained model and baselines on
held-out rooms and write ``report.html`` and ``report.png``; :mod:`vpd.demo.common` holds what they share, and
:mod:`vpd.demo.autoencoder` the VAE the one-step and referring demos pretrain first (the stand-in for SD's).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vpd.demo.common import DemoResult
from vpd.demo.depth import (
    DEMO_RECIPE,
    ConstantDepth,
    LayoutPrior,
    align_to,
    aligned_abs_rel,
    fit_baselines,
    middlebury_motorcycle,
    run_depth_demo,
)
from vpd.demo.depth import summary_table as depth_summary
from vpd.demo.onestep import run_onestep_demo
from vpd.demo.onestep import summary_table as onestep_summary
from vpd.demo.referring import run_referring_demo
from vpd.demo.referring import summary_table as referring_summary
from vpd.demo.semantic import MajorityClass, fit_majority, run_semantic_demo
from vpd.demo.semantic import summary_table as semantic_summary

_RUNNERS = {
    "depth": run_depth_demo,
    "semantic": run_semantic_demo,
    "referring": run_referring_demo,
    "onestep": run_onestep_demo,
}
_SUMMARIES = {
    "depth": depth_summary,
    "semantic": semantic_summary,
    "referring": referring_summary,
    "onestep": onestep_summary,
}
TASKS = tuple(_RUNNERS)
"""The tasks with a demo; ``depth`` is ``vpd demo``'s default."""

__all__ = [
    "DEMO_RECIPE",
    "TASKS",
    "ConstantDepth",
    "DemoResult",
    "LayoutPrior",
    "MajorityClass",
    "align_to",
    "aligned_abs_rel",
    "fit_baselines",
    "fit_majority",
    "middlebury_motorcycle",
    "run_demo",
    "run_depth_demo",
    "run_onestep_demo",
    "run_referring_demo",
    "run_semantic_demo",
    "summary_table",
]


def run_demo(
    output_dir: str | Path | None = None, overrides: Sequence[str] = (), progress: bool = True, *, task: str = "depth"
) -> DemoResult:
    """Runs ``task``'s demo end to end and writes ``report.html`` and ``report.png`` into ``output_dir`` (default:
    ``runs/demo`` for depth, ``runs/demo_<task>`` for the others)."""
    if task not in _RUNNERS:
        raise ValueError(f"no demo for task {task!r}; choose one of {', '.join(TASKS)}")
    if output_dir is None:
        return _RUNNERS[task](overrides=overrides, progress=progress)
    return _RUNNERS[task](output_dir, overrides, progress)


def summary_table(demo: DemoResult) -> str:
    """The demo's metrics table as ``vpd demo`` prints it."""
    return _SUMMARIES[demo.task](demo)
