"""The one-step demo (``vpd demo --task onestep``): on a fresh CPU machine, no weights, no downloads.

Synthetic rooms -> train a tiny one-step model (GenPercept's preset, DPT readout) for affine-invariant depth, and a
second one for surface normals -> Marigold's affine-invariant abs_rel and the pooled angular error on held-out rooms
against the untrained models -> the real Middlebury photo's aligned abs_rel -> an HTML + PNG report. The same workflow
with ``--config configs/onestep_genpercept_depth.yaml``, Stable Diffusion 2.1 and Hypersim is the real thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vpd.demo.autoencoder import demo_vae_override
from vpd.demo.common import DemoResult, Stopwatch, evaluate_models, start_trainer, train

DEMO_RECIPE = "demo_synthetic_onestep"
#: The rows of the demo's table: (model, target).
ONESTEP_ROWS = (("untrained", "depth"), ("trained", "depth"), ("untrained", "normals"), ("trained", "normals"))
#: The columns per target.
ONESTEP_METRICS = {"depth": ("abs_rel", "d1", "rmse"), "normals": ("mean", "median", "a11.25")}


def run_onestep_demo(
    output_dir: str | Path = "runs/demo_onestep", overrides: Sequence[str] = (), progress: bool = True
) -> DemoResult:
    """Runs the one-step demo (a depth run into ``output_dir/depth``, a normals run into ``output_dir/normals``) and
    writes ``report.html`` and ``report.png`` into ``output_dir``."""
    from vpd.demo.depth import aligned_abs_rel, middlebury_motorcycle
    from vpd.inference.onestep import OneStepPredictor
    from vpd.report.onestep import write_onestep_report

    output_dir = Path(output_dir)
    clock = Stopwatch()
    metrics: dict[str, dict[str, float]] = {}
    runs = {}
    with clock("VAE pretraining"):
        vae = demo_vae_override(output_dir, overrides, progress)
    for target in ("depth", "normals"):
        with clock("setup"):
            settings = [f"model.target={target}", *vae, *overrides]
            trainer, untrained = start_trainer(
                DEMO_RECIPE, output_dir / target, settings, f"one-step {target} model", progress
            )
        with clock("baselines"):
            metrics[f"untrained {target}"] = evaluate_models(trainer, {"untrained": untrained})["untrained"].metrics
        with clock("training"):
            _, trained = train(trainer)
        with clock("evaluation"):
            metrics[f"trained {target}"] = evaluate_models(trainer, {"trained": trained})["trained"].metrics
        runs[target] = (trainer, untrained, trained)

    with clock("middlebury"):
        image, gt = middlebury_motorcycle()
        trainer, untrained, trained = runs["depth"]
        args = trainer.config.data.train.args
        resolution = max(args.get("height", 128), args.get("width", 160))
        photo: dict[str, np.ndarray] = {}
        for name, model in (("trained", trained), ("untrained", untrained)):
            prediction = OneStepPredictor(model)(image, processing_resolution=resolution)
            assert not isinstance(prediction, list)
            photo[name] = np.asarray(prediction.prediction)
        middlebury = {name: aligned_abs_rel(prediction, gt) for name, prediction in photo.items()}

    history = [{**record, "target": target} for target, (t, _, _) in runs.items() for record in t.history]
    demo = DemoResult(metrics, clock.total(), output_dir, history, task="onestep", middlebury=middlebury)
    write_onestep_report(demo, runs, image, gt, photo)
    return demo


def summary_table(demo: DemoResult) -> str:
    """The one-step demo's printed table: depth (affine-invariant) and normals metrics per model."""
    lines = []
    for target in ("depth", "normals"):
        columns = ONESTEP_METRICS[target]
        extra = "   Middlebury abs_rel (aligned)" if target == "depth" else ""
        lines.append(f"{target:17s}" + "".join(f" {c:>8s}" for c in columns) + extra)
        for model, row_target in ONESTEP_ROWS:
            if row_target != target:
                continue
            values = demo.metrics[f"{model} {target}"]
            line = f"  {model:15s}" + "".join(f" {values[c]:8.4f}" for c in columns)
            if target == "depth":
                line += f"   {demo.middlebury[model]:28.4f}"
            lines.append(line)
    return "\n".join(lines)
