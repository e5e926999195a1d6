"""Colour maps, depth / error colourisation and image panels, in numpy and Pillow only (no matplotlib).

Colour maps are 256-entry uint8 look-up tables; a value is normalised to [0, 1] over ``[vmin, vmax]`` and mapped to
entry ``round(x * 255)``. Directions (low value -> high value):

* ``"spectral"``: ColorBrewer *Spectral* (11 control colours, linearly interpolated, the same construction as
  matplotlib's ``Spectral``): dark red -> orange -> pale yellow -> green -> blue -> violet. Applied to depth in
  metres this puts **near = red (warm), far = blue/violet (cool)**, as Marigold's depth visualisation does.
* ``"turbo"``: Google's Turbo through its published 5th-degree polynomial approximation: dark blue -> cyan -> green
  -> yellow -> red -> dark red (near = blue for depth; low error = blue for error maps).
* ``"gray"``: black -> white (near = dark).

Invalid pixels (NaN, +-inf, or marked in ``invalid_mask``) are drawn black in every map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["COLORMAPS", "colorize", "colorize_depth", "colorize_error", "get_colormap", "make_panel"]

LUT_SIZE = 256

# ColorBrewer "Spectral" with 11 classes (Cynthia Brewer, colorbrewer2.org), low to high.
_SPECTRAL_11 = (
    (158, 1, 66),
    (213, 62, 79),
    (244, 109, 67),
    (253, 174, 97),
    (254, 224, 139),
    (255, 255, 191),
    (230, 245, 152),
    (171, 221, 164),
    (102, 194, 165),
    (50, 136, 189),
    (94, 79, 162),
)

# Turbo's polynomial approximation (Mikhailov, Google AI blog, 2019): channel(x) = sum_k c_k x^k, k = 0..5, then
# clipped to [0, 1]. Published coefficients, one row per channel.
_TURBO_COEFFICIENTS = np.array(
    [
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
    ]
)


def _to_uint8(rgb01: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(rgb01, 0.0, 1.0) * 255.0).astype(np.uint8)


def _interpolated_lut(control_colors: Sequence[tuple[int, int, int]], size: int = LUT_SIZE) -> np.ndarray:
    """Evenly spaced control colours linearly interpolated (in RGB) to ``size`` entries."""
    colors = np.asarray(control_colors, dtype=np.float64) / 255.0
    anchors = np.linspace(0.0, 1.0, len(colors))
    x = np.linspace(0.0, 1.0, size)
    return _to_uint8(np.stack([np.interp(x, anchors, colors[:, c]) for c in range(3)], axis=1))


def _turbo_lut(size: int = LUT_SIZE) -> np.ndarray:
    x = np.linspace(0.0, 1.0, size)
    powers = np.stack([x**k for k in range(_TURBO_COEFFICIENTS.shape[1])], axis=1)  # [size, 6]
    return _to_uint8(powers @ _TURBO_COEFFICIENTS.T)


def _gray_lut(size: int = LUT_SIZE) -> np.ndarray:
    return _to_uint8(np.repeat(np.linspace(0.0, 1.0, size)[:, None], 3, axis=1))


def _frozen(lut: np.ndarray) -> np.ndarray:
    lut.setflags(write=False)  # shared module-level tables: a caller's in-place edit must not recolour everyone
    return lut


#: Name -> uint8 ``[256, 3]`` RGB look-up table (read-only), low values first.
COLORMAPS: dict[str, np.ndarray] = {
    "spectral": _frozen(_interpolated_lut(_SPECTRAL_11)),
    "turbo": _frozen(_turbo_lut()),
    "gray": _frozen(_gray_lut()),
}


def get_colormap(cmap: str | np.ndarray) -> np.ndarray:
    """The look-up table of a colour map.

    Args:
        cmap: a name in :data:`COLORMAPS` (case-insensitive), or a uint8 ``[N, 3]`` table (N >= 2) used as is.

    Returns:
        uint8 ``[N, 3]`` RGB, low values first.

    Raises:
        ValueError: unknown name or malformed table.
    """
    if isinstance(cmap, str):
        lut = COLORMAPS.get(cmap.lower())
        if lut is None:
            raise ValueError(f"cmap: unknown colour map {cmap!r}; expected one of {', '.join(COLORMAPS)}")
        return lut
    lut = np.asarray(cmap)
    if lut.dtype != np.uint8 or lut.ndim != 2 or lut.shape[1] != 3 or lut.shape[0] < 2:
        raise ValueError(f"cmap: expected a colour map name or a uint8 [N, 3] table, got {lut.dtype} {lut.shape}")
    return lut


def _as_2d_float(values: object, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, possibly on a GPU or in bf16
        values = values.detach().float().cpu().numpy()
    array = np.asarray(values)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a [H, W] map, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name}: expected a numeric map, got dtype {array.dtype}")
    return array.astype(np.float64, copy=False)


def colorize(
    values: np.ndarray,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str | np.ndarray = "spectral",
    invalid_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Maps a scalar field to colours.

    Args:
        values: ``[H, W]`` (or ``[1, H, W]``) numbers; numpy or torch.
        vmin: value drawn with the first colour; default: the 2nd percentile of the valid values.
        vmax: value drawn with the last colour; default: the 98th percentile of the valid values. Values outside
            ``[vmin, vmax]`` are clipped to the end colours; ``vmin == vmax`` draws every valid pixel with the first.
        cmap: colour map name (``"spectral"``, ``"turbo"``, ``"gray"``) or a uint8 ``[N, 3]`` table.
        invalid_mask: ``[H, W]`` bool, True where a pixel has no value; drawn black like NaN and +-inf.

    Returns:
        uint8 ``[H, W, 3]`` RGB.

    Raises:
        ValueError: bad shapes, unknown ``cmap``, or ``vmin > vmax``.
    """
    array = _as_2d_float(values, "colorize: values")
    lut = get_colormap(cmap)
    valid = np.isfinite(array)
    if invalid_mask is not None:
        mask = np.asarray(invalid_mask)
        if mask.ndim == 3 and mask.shape[0] == 1:
            mask = mask[0]
        if mask.shape != array.shape:
            raise ValueError(f"colorize: invalid_mask must have the shape of values {array.shape}, got {mask.shape}")
        valid &= ~mask.astype(bool)
    out = np.zeros((*array.shape, 3), dtype=np.uint8)
    if not valid.any():
        return out
    # Percentiles rather than min/max: a few outlier pixels (sky, specular holes) would otherwise flatten the map.
    if vmin is None or vmax is None:
        low, high = np.percentile(array[valid], [2.0, 98.0])
        vmin = float(low) if vmin is None else vmin
        vmax = float(high) if vmax is None else vmax
    if vmin > vmax:
        raise ValueError(f"colorize: vmin ({vmin}) must not exceed vmax ({vmax})")
    selected = array[valid]
    scale = vmax - vmin
    normalised = np.clip((selected - vmin) / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(selected)
    index = np.rint(normalised * (len(lut) - 1)).astype(np.intp)
    out[valid] = lut[index]
    return out


def colorize_depth(
    depth_m: np.ndarray,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str | np.ndarray = "spectral",
    invalid_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Colours a depth map; with the default ``"spectral"``, near is red and far is blue/violet.

    Args:
        depth_m: ``[H, W]`` depth in metres (numpy or torch, ``[1, H, W]`` accepted). Pixels <= 0 are treated as
            invalid (the datasets' "no measurement" value) and drawn black, like NaN/inf and ``invalid_mask``.
        vmin: metres drawn with the first colour; default: the 2nd percentile of the valid depths.
        vmax: metres drawn with the last colour; default: the 98th percentile. Pass a fixed range (e.g. 0 and the
            model's ``max_depth``) to make colours comparable across images.
        cmap: see :func:`colorize`.
        invalid_mask: ``[H, W]`` bool, True = invalid.

    Returns:
        uint8 ``[H, W, 3]`` RGB.
    """
    depth = _as_2d_float(depth_m, "colorize_depth: depth_m")
    with np.errstate(invalid="ignore"):
        invalid = ~(depth > 0)  # NaN compares False, so it lands in the mask too
    if invalid_mask is not None:
        mask = np.asarray(invalid_mask)
        invalid |= (mask[0] if mask.ndim == 3 and mask.shape[0] == 1 else mask).astype(bool)
    return colorize(depth, vmin=vmin, vmax=vmax, cmap=cmap, invalid_mask=invalid)


def colorize_error(
    abs_rel_map: np.ndarray,
    vmax: float = 0.25,
    cmap: str | np.ndarray = "turbo",
    invalid_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Colours a per-pixel relative error map ``|pred - gt| / gt`` on a fixed scale from 0.

    Args:
        abs_rel_map: ``[H, W]`` non-negative relative errors (numpy or torch); NaN/inf = no ground truth.
        vmax: error drawn with the last colour. The default 0.25 is where a pixel roughly fails the
            ``delta < 1.25`` accuracy test, so saturated pixels are the ones counted as wrong by d1.
        cmap: see :func:`colorize`; the default ``"turbo"`` runs blue (exact) -> red (>= ``vmax``).
        invalid_mask: ``[H, W]`` bool, True where there is no ground truth (drawn black).

    Returns:
        uint8 ``[H, W, 3]`` RGB.

    Raises:
        ValueError: ``vmax <= 0``.
    """
    if not vmax > 0:
        raise ValueError(f"colorize_error: vmax must be > 0, got {vmax}")
    return colorize(abs_rel_map, vmin=0.0, vmax=vmax, cmap=cmap, invalid_mask=invalid_mask)


def _as_rgb_uint8(image: np.ndarray, index: int) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"make_panel: images[{index}] must be uint8, got {array.dtype} (use colorize for maps)")
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array[..., :3]
    raise ValueError(f"make_panel: images[{index}] must be [H, W], [H, W, 3] or [H, W, 4], got {array.shape}")


def _fit_text(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int
) -> str:
    """``text``, shortened with "..." until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..." if text else ""


def make_panel(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    columns: int | None = None,
    *,
    gap: int = 2,
) -> np.ndarray:
    """Tiles images into one picture, each with an optional title bar above it.

    Cells are as large as the largest image; smaller images are centred on a black background. Titles are drawn in
    white on a dark bar with Pillow's default font and shortened with "..." when wider than the cell.

    Args:
        images: uint8 ``[H, W, 3]`` RGB (``[H, W]`` gray and ``[H, W, 4]`` RGBA accepted; alpha dropped), any sizes.
        titles: one string per image, or None for no title bars.
        columns: images per row; default: all in one row.
        gap: pixels of black between cells.

    Returns:
        uint8 ``[rows * (bar + cell_h) + (rows - 1) * gap, columns * cell_w + (columns - 1) * gap, 3]``.

    Raises:
        ValueError: no images, a non-uint8 or mis-shaped image, ``titles`` of the wrong length, ``columns < 1``.
    """
    if len(images) == 0:
        raise ValueError("make_panel: images is empty")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"make_panel: got {len(titles)} titles for {len(images)} images")
    if columns is not None and columns < 1:
        raise ValueError(f"make_panel: columns must be >= 1, got {columns}")
    if gap < 0:
        raise ValueError(f"make_panel: gap must be >= 0, got {gap}")
    rgb = [_as_rgb_uint8(image, i) for i, image in enumerate(images)]
    columns = min(columns or len(rgb), len(rgb))
    rows = math.ceil(len(rgb) / columns)
    cell_h = max(a.shape[0] for a in rgb)
    cell_w = max(a.shape[1] for a in rgb)

    font = ImageFont.load_default()
    bar = 0
    if titles is not None:
        bottom = font.getbbox("Ag")[3]
        bar = int(bottom) + 4  # glyph height from the baseline origin, plus 2 px padding above and below

    panel_h = rows * (bar + cell_h) + (rows - 1) * gap
    panel_w = columns * cell_w + (columns - 1) * gap
    canvas = np.zeros((panel_h, panel_w, 3), dtype=np.uint8)
    for i, image in enumerate(rgb):
        y0 = (i // columns) * (bar + cell_h + gap)
        x0 = (i % columns) * (cell_w + gap)
        canvas[y0 : y0 + bar, x0 : x0 + cell_w] = 40
        h, w = image.shape[:2]
        top_offset = y0 + bar + (cell_h - h) // 2
        left_offset = x0 + (cell_w - w) // 2
        canvas[top_offset : top_offset + h, left_offset : left_offset + w] = image

    if titles is not None:
        picture = Image.fromarray(canvas)
        draw = ImageDraw.Draw(picture)
        for i, title in enumerate(titles):
            y0 = (i // columns) * (bar + cell_h + gap)
            x0 = (i % columns) * (cell_w + gap)
            text = _fit_text(draw, str(title), font, cell_w - 4)
            try:
                draw.text((x0 + 2, y0 + 2), text, fill=(255, 255, 255), font=font)
            except UnicodeEncodeError:  # Pillow's bitmap fallback font only knows Latin-1
                text = text.encode("latin-1", "replace").decode("latin-1")
                draw.text((x0 + 2, y0 + 2), text, fill=(255, 255, 255), font=font)
        canvas = np.asarray(picture).copy()
    return canvas


def label_palette(num_classes: int) -> np.ndarray:
    """uint8 ``[num_classes, 3]``: ADE20K's colours for the first 150 classes, then deterministic pseudo-random ones."""
    from vpd.data.classes import ADE20K_PALETTE

    base = np.asarray(ADE20K_PALETTE, dtype=np.uint8)
    if num_classes <= len(base):
        return base[:num_classes]
    extra = np.random.default_rng(150).integers(0, 256, (num_classes - len(base), 3), dtype=np.uint8)
    return np.concatenate([base, extra])


def colorize_labels(labels: np.ndarray, palette: np.ndarray | None = None, ignore_index: int = 255) -> np.ndarray:
    """Colours a label map (class ``i`` -> ``palette[i]``, ADE20K's colours by default); ignored pixels are black.

    Args:
        labels: ``[H, W]`` integer class ids (numpy or torch).
        palette: uint8 ``[N, 3]``; default: :func:`label_palette` large enough for the largest id.
        ignore_index: drawn black.

    Returns:
        uint8 ``[H, W, 3]`` RGB.

    Raises:
        ValueError: a label outside the palette (other than ``ignore_index``).
    """
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"colorize_labels: expected an integer [H, W] map, got {array.dtype} {array.shape}")
    valid = array != ignore_index
    high = int(array[valid].max()) if valid.any() else -1
    lut = label_palette(high + 1) if palette is None else np.asarray(palette, dtype=np.uint8)
    if high >= len(lut) or (valid.any() and int(array[valid].min()) < 0):
        raise ValueError(f"colorize_labels: labels outside [0, {len(lut) - 1}] (and {ignore_index} = ignore)")
    out = np.zeros((*array.shape, 3), dtype=np.uint8)
    out[valid] = lut[array[valid]]
    return out


def overlay(image: np.ndarray, colors: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``image`` and a same-sized colour map blended: ``(1 - alpha) * image + alpha * colors``, uint8."""
    if image.shape != colors.shape:
        raise ValueError(f"overlay: image {image.shape} and colours {colors.shape} differ in shape")
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colors.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


#: The colour of a referred-object mask in overlays.
MASK_COLOR = (255, 64, 64)


def overlay_mask(
    image: np.ndarray, mask: np.ndarray, color: Sequence[int] = MASK_COLOR, alpha: float = 0.5
) -> np.ndarray:
    """``image`` (uint8 ``[H, W, 3]``) with the pixels of a boolean ``[H, W]`` mask tinted by ``color``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"overlay_mask: mask {mask.shape} and image {image.shape[:2]} differ in size")
    colors = image.copy()
    colors[mask] = np.asarray(color, dtype=np.uint8)
    return overlay(image, colors, alpha)
