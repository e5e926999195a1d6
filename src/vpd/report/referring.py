"""The referring demo's report: oIoU / mIoU / P@0.5 against the baselines, held-out rooms with their sentences (the
untrained and trained predictions and the target, each under the sentence), the loss curve."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from vpd.data.base import image_uint8
from vpd.report.common import (
    img_tag,
    loss_curve_png,
    loss_curve_svg,
    loss_points,
    stack_images,
    table_png,
    text_block,
    write_report,
)

if TYPE_CHECKING:
    from vpd.demo import DemoResult
    from vpd.tasks.referring import ReferringModelConfig
    from vpd.training.trainer import Trainer


def _referring_panels(trainer: Trainer, models: dict[str, torch.nn.Module], count: int = 4) -> list[np.ndarray]:
    """Held-out samples, one row each: the room under its sentence, the untrained and trained masks and the target
    tinted over the room."""
    from vpd.inference.referring import caption
    from vpd.inference.visualize import make_panel, overlay_mask
    from vpd.training.evaluate import eval_mode, single_batch

    assert trainer.val_set is not None
    dataset = trainer.val_set
    device = next(models["trained"].parameters()).device
    step = max(1, len(dataset) // count)  # spread over the rooms and sentence kinds
    panels = []
    for index in range(0, min(len(dataset), step * count), step):
        batch = single_batch(dataset[index], device)
        image = image_uint8(batch)
        tiles, titles = [caption(image, batch["text"][0])], ["room and sentence"]
        for name in ("untrained", "trained"):
            with eval_mode(models[name]), torch.inference_mode():
                logits = trainer.task.predict(models[name], batch, trainer.config.eval)
            tiles.append(overlay_mask(image, (logits[0].argmax(0) == 1).cpu().numpy()))
            titles.append(name)
        tiles.append(overlay_mask(image, (batch["mask"][0] == 1).cpu().numpy(), color=(40, 200, 60)))
        titles.append("target")
        panels.append(make_panel(tiles, titles, columns=len(tiles)))
    return panels


def write_referring_report(demo: DemoResult, trainer: Trainer, models: dict[str, torch.nn.Module]) -> tuple[Path, Path]:
    """Writes the referring demo's ``report.html`` and ``report.png`` into its output folder; returns their paths.

    ``models`` holds ``untrained`` and ``trained``.
    """
    from vpd.demo.referring import REFERRING_METRICS, REFERRING_MODELS

    losses = loss_points(demo.history)
    samples = _referring_panels(trainer, models)
    config = trainer.config
    assert trainer.val_set is not None
    sentences = len(trainer.val_set)
    dice = cast("ReferringModelConfig", config.model).dice_loss
    loss_name = f"weighted cross-entropy + {dice:g} x Dice" if dice else "weighted cross-entropy"
    summary = [
        "vpd demo --task referring: VPD referring segmentation on synthetic rooms, CPU, no pretrained weights",
        f"steps {trainer.step}, global batch {config.train.batch_size}, {sentences} held-out sentences, "
        f"wall time {demo.seconds['total']:.0f}s (training {demo.seconds['training']:.0f}s)",
    ]
    notes = [
        "largest object: the largest object in the image, whatever the sentence says; largest of category (an oracle",
        "given the sentence's category): the largest object of that category. oIoU: summed intersections over summed",
        "unions; mIoU: mean IoU per sentence; P@0.5: the share of sentences with IoU above 0.5.",
    ]
    rows = [[name, *(f"{demo.metrics[name][m]:.4f}" for m in REFERRING_METRICS)] for name in REFERRING_MODELS]
    width = max(max(p.shape[1] for p in samples), 640)
    png = stack_images(
        [
            text_block(summary, width),
            table_png(["model", *REFERRING_METRICS], rows, [150, 70, 70, 70], width),
            text_block(notes, width),
            *samples,
            loss_curve_png(losses, label=f"training loss ({loss_name})"),
        ]
    )
    table = "".join(f"<tr><th>{html.escape(r[0])}</th>{''.join(f'<td>{c}</td>' for c in r[1:])}</tr>" for r in rows)
    timings = ", ".join(f"{k} {v:.0f}s" for k, v in demo.seconds.items())
    body = f"""<h1>vpd demo: VPD referring segmentation, trained on this CPU</h1>
<p>A tiny Stable-Diffusion-shaped VPD referring model (random UNet, no downloads; the VAE pretrained first as an
autoencoder on other rooms, the stand-in for SD's pretrained VAE) with a tiny random CLIP whose
tokenizer has one token per word of the synthetic grammar, trained with the {html.escape(loss_name)} loss to segment
the object a sentence names in procedurally rendered rooms ("the red chair", "the nearest lamp", "the sofa next to the
table"; every sentence names exactly one object in view). Evaluated with the RefCOCO protocol on held-out rooms
against the untrained model, a baseline that ignores the sentence and picks the largest object, and an oracle that
reads the sentence's category and picks the largest object of it.</p>
<p>What this shows: whether the pipeline learns to ground sentences in the synthetic world. It is not evidence about
real photos; that needs Stable Diffusion, CLIP and RefCOCO.</p>
<h2>Metrics ({sentences} held-out sentences)</h2>
<table><tr><th>model</th>{"".join(f"<th>{m}</th>" for m in REFERRING_METRICS)}</tr>{table}</table>
<p>{html.escape(timings)}; {trainer.step} steps, global batch {config.train.batch_size}.</p>
<h2>Held-out rooms (untrained, trained, target)</h2>{"".join(img_tag(p, "validation sample") for p in samples)}
<h2>Training loss</h2>{loss_curve_svg(losses)}
<h2>Run it for real</h2>
<pre>vpd train --config configs/referring_refcoco.yaml --set model.pretrained=&lt;SD folder or hub id&gt;</pre>
"""
    return write_report(demo.output_dir, png, body, title="vpd referring demo report")
