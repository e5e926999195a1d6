"""The pieces every demo report shares: inline images, loss curves, text and tables drawn for the PNG, and writing
``report.html`` (self-contained: images inline, an SVG loss curve) and ``report.png`` (the same content)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def img_tag(image: np.ndarray, alt: str) -> str:
    data = base64.b64encode(_png_bytes(image)).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _curve(points: Sequence[tuple[int, float]], width: int, height: int, pad: int = 40) -> tuple[Any, Any, Any, Any]:
    """Pixel coordinates of (step, loss) points on linear axes, and the steps and losses themselves."""
    steps, losses = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    x = pad + (steps - steps.min()) / max(1e-9, np.ptp(steps)) * (width - 2 * pad)
    y = height - pad - (losses - losses.min()) / max(1e-9, np.ptp(losses)) * (height - 2 * pad)
    return x, y, steps, losses


def loss_curve_svg(points: Sequence[tuple[int, float]], width: int = 640, height: int = 240) -> str:
    """An SVG polyline of (step, loss) on linear axes, with min/max labels."""
    if len(points) < 2:
        return "<p>(not enough logged steps for a curve)</p>"
    x, y, steps, losses = _curve(points, width, height)
    pad = 40
    line = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y))
    return (
        f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" font-size="12">'
        f'<rect width="100%" height="100%" fill="white" stroke="#ccc"/>'
        f'<polyline fill="none" stroke="#d7301f" stroke-width="2" points="{line}"/>'
        f'<text x="4" y="{pad - 8}">loss {losses.max():.3f}</text>'
        f'<text x="4" y="{height - pad + 14}">{losses.min():.3f}</text>'
        f'<text x="{pad}" y="{height - 8}">step {int(steps.min())}</text>'
        f'<text x="{width - pad - 60}" y="{height - 8}">step {int(steps.max())}</text></svg>'
    )


def loss_curve_png(
    points: Sequence[tuple[int, float]], width: int = 640, height: int = 240, label: str = "training loss"
) -> np.ndarray:
    """The same curve drawn with Pillow, for the PNG report; ``label`` names the loss above its maximum."""
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.rectangle([0, 0, width - 1, height - 1], outline=(204, 204, 204))
    if len(points) >= 2:
        x, y, steps, losses = _curve(points, width, height)
        pad = 40
        draw.line(list(zip(x.tolist(), y.tolist())), fill=(215, 48, 31), width=2)
        draw.text((4, pad - 20), f"{label} {losses.max():.3f}", fill="black", font=font)
        draw.text((4, height - pad + 4), f"{losses.min():.3f}", fill="black", font=font)
        draw.text((pad, height - 16), f"step {int(steps.min())}", fill="black", font=font)
        draw.text((width - pad - 70, height - 16), f"step {int(steps.max())}", fill="black", font=font)
    return np.asarray(canvas)


def text_block(lines: Sequence[str], width: int) -> np.ndarray:
    """Monospace-ish lines of text on white, for the PNG report."""
    font = ImageFont.load_default()
    height = 14 * len(lines) + 10
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((6, 5 + 14 * i), line, fill="black", font=font)
    return np.asarray(canvas)


def stack_images(images: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    width = max(im.shape[1] for im in images)
    rows = []
    for im in images:
        padded = np.full((im.shape[0] + gap, width, 3), 255, np.uint8)
        padded[: im.shape[0], : im.shape[1]] = im
        rows.append(padded)
    return np.concatenate(rows)


def loss_points(history: Sequence[dict[str, Any]]) -> list[tuple[int, float]]:
    """The (step, training loss) pairs of a trainer's log."""
    return [(int(r["step"]), float(r["train/loss"])) for r in history if "train/loss" in r]


PAGE_STYLE = """<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}img{max-width:100%}</style>"""


def write_report(out: Path, png: np.ndarray, body: str, title: str = "vpd demo report") -> tuple[Path, Path]:
    """Writes ``report.png`` and ``report.html`` (``body`` in a styled page) into ``out`` atomically."""
    from vpd.data.io import write_png_atomic

    png_path = out / "report.png"
    write_png_atomic(png_path, png)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
{PAGE_STYLE}</head><body>
{body}</body></html>
"""
    html_path = out / "report.html"
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(page)
    tmp.replace(html_path)
    return html_path, png_path


def table_png(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths: Sequence[int],
    width: int,
    swatches: Sequence[Sequence[int]] | None = None,
    title: str = "",
) -> np.ndarray:
    """A table drawn in aligned columns (Pillow's default font is proportional): the first column left-aligned, the
    others right-aligned in ``widths`` pixels each; optional colour swatches before the first column."""
    font = ImageFont.load_default()
    lines = ([title] if title else []) + [""] * (len(rows) + 1)
    canvas = Image.fromarray(text_block(lines, width))
    draw = ImageDraw.Draw(canvas)
    left = 6 + (16 if swatches is not None else 0)
    for i, cells in enumerate([header, *rows]):
        y = 5 + 14 * (i + bool(title))
        x = left + widths[0]
        draw.text((left, y), cells[0], fill="black", font=font)
        for cell, w in zip(cells[1:], widths[1:]):
            x += w
            draw.text((x - draw.textlength(cell, font=font), y), cell, fill="black", font=font)
        if swatches is not None and i > 0:
            draw.rectangle([6, y + 1, 16, y + 11], fill=tuple(int(c) for c in swatches[i - 1]), outline=(0, 0, 0))
    return np.asarray(canvas)
