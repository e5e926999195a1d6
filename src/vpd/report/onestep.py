"""The one-step demo's report: affine-invariant depth and normal errors against the untrained models, held-out rooms
(input, predicted and true depth and normals), the Middlebury photo, both loss curves."""

from __future__ import annotations

import html
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

if TYPE_CHECKING:
    from vpd.demo import DemoResult


def _normals_rgb(normals: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """``[3, H, W]`` unit normals -> uint8 RGB ``(n + 1) / 2`` (black where invalid)."""
    rgb = ((normals.transpose(1, 2, 0) + 1) / 2 * 255).round().clip(0, 255).astype(np.uint8)
    return rgb if valid is None else rgb * valid[..., None].astype(np.uint8)


def _room_panels(runs: dict[str, Any], count: int = 3) -> list[np.ndarray]:
    """Held-out rooms: input, trained depth (aligned to the truth), true depth, trained normals, true normals."""
    from vpd.demo.depth import align_to
    from vpd.inference.visualize import colorize_depth, make_panel
    from vpd.training.evaluate import eval_mode, single_batch

    depth_trainer, _, depth_model = runs["depth"]
    normals_trainer, _, normals_model = runs["normals"]
    assert depth_trainer.val_set is not None and normals_trainer.val_set is not None
    device = next(depth_model.parameters()).device
    panels = []
    for index in range(min(count, len(depth_trainer.val_set))):
        batch = single_batch(depth_trainer.val_set[index], device)
        with eval_mode(depth_model), eval_mode(normals_model), torch.inference_mode():
            depth = depth_trainer.task.predict(depth_model, batch, depth_trainer.config.eval)[0, 0].cpu().numpy()
            normals = normals_trainer.task.predict(normals_model, batch, normals_trainer.config.eval)[0].cpu().numpy()
        gt = batch["depth"][0, 0].cpu().numpy()
        true_normals = batch["normals"][0].float().cpu().numpy()
        vmin, vmax = float(gt[gt > 0].min()), float(gt.max())
        tiles = [
            image_uint8(batch),
            colorize_depth(align_to(depth.astype(np.float32), gt), vmin=vmin, vmax=vmax),
            colorize_depth(gt, vmin=vmin, vmax=vmax),
            _normals_rgb(normals),
            _normals_rgb(true_normals, np.linalg.norm(true_normals, axis=0) > 0.5),
        ]
        titles = ["room", "depth (aligned)", "true depth", "normals", "true normals"]
        panels.append(make_panel(tiles, titles, columns=len(tiles)))
    return panels


def _photo_panel(image: np.ndarray, gt: np.ndarray, photo: dict[str, np.ndarray]) -> np.ndarray:
    from vpd.demo.depth import align_to
    from vpd.inference.visualize import colorize_depth, make_panel

    valid = gt > 0
    vmin, vmax = float(np.percentile(gt[valid], 2)), float(np.percentile(gt[valid], 98))
    small = (slice(None, None, 2), slice(None, None, 2))
    tiles = [image[small], colorize_depth(gt[small], vmin=vmin, vmax=vmax, invalid_mask=~valid[small])]
    titles = ["Middlebury photo", "ground truth (stereo)"]
    for name in ("untrained", "trained"):
        tiles.append(colorize_depth(align_to(photo[name], gt)[small], vmin=vmin, vmax=vmax))
        titles.append(f"{name} (aligned)")
    return make_panel(tiles, titles, columns=len(tiles))


def write_onestep_report(
    demo: DemoResult, runs: dict[str, Any], image: np.ndarray, gt: np.ndarray, photo: dict[str, np.ndarray]
) -> tuple[Path, Path]:
    """Writes the one-step demo's ``report.html`` and ``report.png`` into its output folder; returns their paths.

    ``runs`` maps ``depth`` / ``normals`` to ``(trainer, untrained, trained)``; ``photo`` the Middlebury predictions.
    """
    from vpd.demo.onestep import ONESTEP_METRICS, ONESTEP_ROWS

    trainer = runs["depth"][0]
    config = trainer.config
    curves = {t: loss_points([r for r in demo.history if r.get("target") == t]) for t in ("depth", "normals")}
    summary = [
        "vpd demo --task onestep: one-step (GenPercept preset, DPT readout) depth and normals, CPU, no weights",
        f"{trainer.step} steps per model at batch {config.train.batch_size}, wall time {demo.seconds['total']:.0f}s "
        f"(training {demo.seconds['training']:.0f}s)",
    ]
    notes = [
        "depth: Marigold's protocol (per-image least-squares scale and shift, clipped to the range, per-image means);",
        "normals: angle to the true normal pooled over valid pixels (mean, median, % under 11.25 degrees);",
        "Middlebury: abs_rel of the real photo's prediction after a least-squares scale and shift.",
    ]
    rows = []
    for model, target in ONESTEP_ROWS:
        values = demo.metrics[f"{model} {target}"]
        cells = [f"{c} {values[c]:.4f}" for c in ONESTEP_METRICS[target]]
        extra = f"Middlebury {demo.middlebury[model]:.4f}" if target == "depth" else ""
        rows.append([f"{model} {target}", *cells, extra])
    panels = _room_panels(runs)
    photo_panel = _photo_panel(image, gt, photo)
    width = max(max(p.shape[1] for p in panels), photo_panel.shape[1], 640)
    png = stack_images(
        [
            text_block(summary, width),
            table_png(["model", "", "", "", ""], rows, [140, 110, 110, 110, 150], width),
            text_block(notes, width),
            *panels,
            photo_panel,
            loss_curve_png(curves["depth"], label="depth loss (MSE + SSI + gradient)"),
            loss_curve_png(curves["normals"], label="normals loss (mean angle, rad)"),
        ]
    )
    table = "".join(f"<tr><th>{html.escape(r[0])}</th>{''.join(f'<td>{c}</td>' for c in r[1:])}</tr>" for r in rows)
    timings = ", ".join(f"{k} {v:.0f}s" for k, v in demo.seconds.items())
    body = f"""<h1>vpd demo: one-step depth and normals, trained on this CPU</h1>
<p>Two tiny Stable-Diffusion-2-shaped one-step models (GenPercept's preset: the VAE encodes the room, one UNet call
at t = 1 maps its latent, a DPT head on the UNet's decoder features reads the map; random UNet, no downloads; the VAE
pretrained first as an autoencoder on other rooms, the stand-in for SD's pretrained VAE) trained on procedurally
rendered rooms: one for affine-invariant depth (GenPercept's MSE + scale-and-shift-invariant + gradient
loss on normalised depth), one for surface normals (angular loss). Evaluated on held-out rooms against the untrained
models, and on the real Middlebury <i>Motorcycle</i> photo (depth from its stereo disparity).</p>
<p>What this shows: whether the one-step pipeline learns, end to end, on this machine. It is not evidence about real
photos; that needs Stable Diffusion 2.1 and Hypersim.</p>
<h2>Metrics (held-out rooms)</h2><table>{table}</table>
<p>{"<br>".join(html.escape(n) for n in notes)}</p>
<p>{html.escape(timings)}</p>
<h2>Held-out rooms</h2>{"".join(img_tag(p, "validation sample") for p in panels)}
<h2>A real photo</h2>{img_tag(photo_panel, "Middlebury")}
<h2>Training losses</h2><h3>depth</h3>{loss_curve_svg(curves["depth"])}
<h3>normals</h3>{loss_curve_svg(curves["normals"])}
<h2>Run it for real</h2>
<pre>vpd train --config configs/onestep_genpercept_depth.yaml --set model.pretrained=&lt;SD-2.1 folder&gt;</pre>
"""
    return write_report(demo.output_dir, png, body, title="vpd one-step demo report")
