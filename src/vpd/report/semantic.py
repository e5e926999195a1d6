"""The semantic demo's report: mIoU / aAcc / mAcc against the baselines, held-out rooms, per-class IoU, the loss."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from vpd.tasks.semantic import SEMANTIC_METRICS

if TYPE_CHECKING:
    from vpd.demo import DemoResult
    from vpd.training.trainer import Trainer

SEMANTIC_MODELS = ("majority", "untrained", "trained")


def class_palette(class_names: Sequence[str]) -> np.ndarray:
    """uint8 ``[len(class_names), 3]``: each ADE20K class in ADE20K's colour, any other in :func:`label_palette`'s."""
    from vpd.data.classes import ADE20K_CLASSES, ADE20K_PALETTE
    from vpd.inference.visualize import label_palette

    fallback = label_palette(len(class_names))
    ade = {name: colour for name, colour in zip(ADE20K_CLASSES, ADE20K_PALETTE)}
    return np.array([ade.get(name, tuple(fallback[i])) for i, name in enumerate(class_names)], np.uint8)


def _semantic_panels(
    trainer: Trainer, models: dict[str, torch.nn.Module], palette: np.ndarray, count: int = 3
) -> list[np.ndarray]:
    """Validation rooms: input, ground truth, untrained and trained predictions, the trained one over the input."""
    from vpd.inference.visualize import colorize_labels, make_panel, overlay
    from vpd.training.evaluate import eval_mode, single_batch

    assert trainer.val_set is not None
    device = next(models["trained"].parameters()).device
    panels = []
    for index in range(min(count, len(trainer.val_set))):
        batch = single_batch(trainer.val_set[index], device)
        image = image_uint8(batch)
        tiles = [image, colorize_labels(batch["semantic"][0].cpu().numpy(), palette)]
        titles = ["room", "ground truth"]
        for name in ("untrained", "trained"):
            with eval_mode(models[name]), torch.inference_mode():
                labels = trainer.task.predict(models[name], batch, trainer.config.eval)[0].argmax(0).cpu().numpy()
            tiles.append(colorize_labels(labels, palette))
            titles.append(name)
        tiles.append(overlay(image, tiles[-1]))
        titles.append("trained, overlaid")
        panels.append(make_panel(tiles, titles, columns=len(tiles)))
    return panels


def per_class_rows(demo: DemoResult) -> list[dict[str, Any]]:
    """The classes present in the validation labels, most pixels first: ``class``, ``index``, ``share`` (of the
    labelled validation pixels) and ``IoU`` of each model (NaN where the model's table lacks the class)."""
    reference = demo.per_class.get("trained") or next(iter(demo.per_class.values()), [])
    total = sum(row["label_area"] for row in reference) or 1
    rows = []
    for index, row in enumerate(reference):
        if row["label_area"] == 0:
            continue
        entry: dict[str, Any] = {"class": row["class"].strip(), "index": index, "share": row["label_area"] / total}
        for name, table in demo.per_class.items():
            entry[name] = float(table[index]["IoU"]) if index < len(table) else float("nan")
        rows.append(entry)
    return sorted(rows, key=lambda r: -r["share"])


def write_semantic_report(
    demo: DemoResult, trainer: Trainer, models: dict[str, torch.nn.Module], majority_class: str
) -> tuple[Path, Path]:
    """Writes the semantic demo's ``report.html`` and ``report.png`` into its output folder; returns their paths.

    ``models`` holds ``untrained`` and ``trained``; ``majority_class`` names the baseline's class.
    """
    class_names = tuple(getattr(models["trained"], "class_names", ()))
    palette = class_palette(class_names)
    losses = loss_points(demo.history)
    samples = _semantic_panels(trainer, models, palette)
    rows = per_class_rows(demo)
    config = trainer.config
    crop = tuple(getattr(config.augment, "crop_size", ()))
    summary = [
        "vpd demo --task semantic: VPD semantic segmentation on synthetic rooms, CPU, no pretrained weights",
        f"steps {trainer.step}, global batch {config.train.batch_size}, crop {crop}, {len(class_names)} classes, "
        f"wall time {demo.seconds['total']:.0f}s (training {demo.seconds['training']:.0f}s)",
    ]
    notes = [
        f"majority: the most frequent training label ('{majority_class.strip()}') everywhere. mIoU: mean IoU over the",
        "classes present in the labels or predictions of the held-out rooms; aAcc: pixel accuracy; mAcc: mean",
        "per-class accuracy.",
    ]
    metric_rows = [
        [name, *(_number(demo.metrics.get(name, {}), m) for m in SEMANTIC_METRICS)] for name in SEMANTIC_MODELS
    ]
    class_header = ["class", "pixels", *(f"IoU {name}" for name in SEMANTIC_MODELS[::-1])]
    class_rows = [
        [row["class"], f"{row['share']:.1%}", *(_number(row, n) for n in SEMANTIC_MODELS[::-1])] for row in rows
    ]
    swatches = [tuple(int(c) for c in palette[row["index"]]) for row in rows]

    width = max(max(p.shape[1] for p in samples), 640)
    png = stack_images(
        [
            text_block(summary, width),
            table_png(["model", *SEMANTIC_METRICS], metric_rows, [90, 70, 70, 70], width),
            text_block(notes, width),
            *samples,
            table_png(
                class_header,
                class_rows,
                [130, 60, 90, 100, 100],
                width,
                swatches=swatches,
                title="per-class IoU on the held-out rooms (classes by share of the labelled pixels)",
            ),
            loss_curve_png(losses, label="training loss (cross-entropy)"),
        ]
    )

    def html_rows(rows: list[list[str]], first: Sequence[str]) -> str:
        return "".join(f"<tr><th>{h}</th>{''.join(f'<td>{c}</td>' for c in r[1:])}</tr>" for h, r in zip(first, rows))

    swatch = '<span style="display:inline-block;width:1em;height:1em;background:rgb{};vertical-align:middle"></span> {}'
    metrics = html_rows(metric_rows, SEMANTIC_MODELS)
    classes = html_rows(class_rows, [swatch.format(c, html.escape(r["class"])) for c, r in zip(swatches, rows)])
    timings = ", ".join(f"{k} {v:.0f}s" for k, v in demo.seconds.items())
    body = f"""<h1>vpd demo: VPD semantic segmentation, trained on this CPU</h1>
<p>A tiny Stable-Diffusion-shaped VPD segmentation model (random init, random class tokens, no downloads) trained with
cross-entropy on procedurally rendered rooms labelled with {len(class_names)} ADE20K categories, then evaluated with
mmseg's protocol (mIoU, aAcc, mAcc over all pixels of the held-out rooms) against the untrained model and a baseline
that never looks at pixel values: the most frequent training label
(<b>{html.escape(majority_class.strip())}</b>) everywhere.</p>
<p>What this shows: whether the pipeline learns to segment the synthetic world. It is not evidence about real photos;
real-image quality needs Stable Diffusion weights and ADE20K.</p>
<h2>Metrics (held-out rooms)</h2><table><tr><th>model</th>{"".join(f"<th>{m}</th>" for m in SEMANTIC_METRICS)}</tr>
{metrics}</table>
<p>{html.escape(timings)}; {trainer.step} steps, global batch {config.train.batch_size}.</p>
<h2>Held-out rooms</h2>{"".join(img_tag(p, "validation sample") for p in samples)}
<h2>Per-class IoU (held-out rooms)</h2>
<table><tr>{"".join(f"<th>{h}</th>" for h in class_header)}</tr>
{classes}</table>
<h2>Training loss (cross-entropy)</h2>{loss_curve_svg(losses)}
<h2>Run it for real</h2>
<pre>vpd train --config configs/semantic_ade20k.yaml --set model.pretrained=&lt;SD folder or hub id&gt;</pre>
"""
    return write_report(demo.output_dir, png, body, title="vpd semantic demo report")


def _number(values: dict[str, Any], key: str) -> str:
    return f"{float(values.get(key, float('nan'))):.4f}"
