"""The referring-segmentation demo (``vpd demo --task referring``): on a fresh CPU machine, no weights, no downloads.

Synthetic rooms with sentences that name one object each -> a tiny CLIP built locally (one token per word of the
synthetic grammar) -> train a tiny VPD referring model -> oIoU / mIoU / P@0.5 on held-out rooms against the
untrained model, a baseline that picks the largest object in the image (ignoring the sentence) and an oracle that
picks the largest object of the category the sentence names -> an HTML + PNG report. The same workflow with
``--config configs/referring_refcoco.yaml``, Stable Diffusion, CLIP and RefCOCO is the real thing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vpd.demo.autoencoder import demo_vae_override
from vpd.demo.common import DemoResult, Stopwatch, evaluate_models, sets, start_trainer, train

DEMO_RECIPE = "demo_synthetic_referring"
#: The models and baselines of the demo's table, in order.
REFERRING_MODELS = ("largest object", "largest of category", "untrained", "trained")
#: The table's columns.
REFERRING_METRICS = ("oIoU", "mIoU", "P@0.5")


def build_demo_clip(folder: Path) -> Path:
    """Saves a tiny random CLIP text encoder and its tokenizer (one token per word of the synthetic expressions) in
    ``folder``, as a user's CLIP folder would be; returns ``folder``."""
    from vpd.data.synthetic.referring import vocabulary
    from vpd.modeling.text_encoder import tiny_clip

    encoder, tokenizer = tiny_clip(vocabulary())
    folder.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def latent_cache_override(output_dir: Path, overrides: Sequence[str]) -> list[str]:
    """``["train.latent_cache=<output_dir>/latent_cache"]``, or nothing when the user's ``overrides`` set
    ``train.latent_cache`` themselves. The rooms are not augmented and every room has several sentences, so the frozen
    VAE encodes each room once and the demo spends its minutes on the UNet and the decoder (1.2-1.3x the steps)."""
    if sets(overrides, "train.latent_cache"):
        return []
    return [f"train.latent_cache={output_dir / 'latent_cache'}"]


def baseline_metrics(dataset: Any, pick: Callable[[int], np.ndarray]) -> dict[str, float]:
    """The referring protocol (:class:`~vpd.metrics.referring.ReferringMetricAccumulator`) for a baseline that
    answers sample ``i`` with the mask ``pick(i)``."""
    from vpd.metrics.referring import ReferringMetricAccumulator

    accumulator = ReferringMetricAccumulator()
    for index in range(len(dataset)):
        target = dataset.load(index).targets["mask"]
        accumulator.update(pick(index)[None], target[None])
    return accumulator.compute()


def run_referring_demo(
    output_dir: str | Path = "runs/demo_referring", overrides: Sequence[str] = (), progress: bool = True
) -> DemoResult:
    """Runs the referring demo end to end and writes ``report.html`` and ``report.png`` into ``output_dir``."""
    from vpd.report.referring import write_referring_report

    output_dir = Path(output_dir)
    clock = Stopwatch()
    with clock("VAE pretraining"):
        vae = demo_vae_override(output_dir, overrides, progress)
    with clock("setup"):
        clip = build_demo_clip(output_dir / "tiny_clip")
        settings = [f"model.text_encoder={clip}", *vae, *latent_cache_override(output_dir, overrides), *overrides]
        trainer, untrained = start_trainer(DEMO_RECIPE, output_dir, settings, "VPD referring model", progress)
        from vpd.data.synthetic import SyntheticReferringDataset

        val_set = trainer.val_set
        if not isinstance(val_set, SyntheticReferringDataset):
            raise ValueError(
                "the referring demo evaluates on held-out synthetic rooms (data.val.kind: synthetic_referring)"
            )

    with clock("baselines"):
        metrics = {
            "largest object": baseline_metrics(val_set, val_set.largest_object_mask),
            "largest of category": baseline_metrics(val_set, val_set.largest_of_category_mask),
        }
        metrics["untrained"] = evaluate_models(trainer, {"untrained": untrained})["untrained"].metrics

    with clock("training"):
        _, trained = train(trainer)

    with clock("evaluation"):
        metrics["trained"] = evaluate_models(trainer, {"trained": trained})["trained"].metrics

    demo = DemoResult(metrics, clock.total(), output_dir, trainer.history, task="referring")
    write_referring_report(demo, trainer, {"trained": trained, "untrained": untrained})
    return demo


def summary_table(demo: DemoResult) -> str:
    """The referring demo's printed table: oIoU, mIoU and P@0.5 per model and baseline."""
    lines = [f"{'model':20s}" + "".join(f" {m:>7s}" for m in REFERRING_METRICS)]
    for name in REFERRING_MODELS:
        lines.append(f"{name:20s}" + "".join(f" {demo.metrics[name][m]:7.4f}" for m in REFERRING_METRICS))
    return "\n".join(lines)
