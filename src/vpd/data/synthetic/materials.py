"""Surface materials of the synthetic rooms: colour palettes and the choice of wall and floor finishes.

A :class:`_Material` names a procedural pattern (evaluated by :func:`vpd.data.synthetic.textures._albedo`) with its
colours and parameters. Colours are linear RGB, written as sRGB hex and converted once. Every random choice here
draws from the scene's generator, in a fixed order, so the same seed gives the same materials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Color = tuple[float, float, float]


@dataclass(frozen=True)
class _Material:
    """A procedural surface pattern evaluated in surface coordinates ``(s, t)`` in metres.

    ``params`` are pattern specific (tile sizes, stripe period, wainscot height, ...), see
    :func:`vpd.data.synthetic.textures._albedo`.
    """

    pattern: str
    color: Color
    color2: Color = (0.0, 0.0, 0.0)
    params: tuple[float, ...] = ()
    specular: float = 0.0
    salt: int = 0


def _srgb_to_linear(hex_color: str) -> Color:
    v = [int(hex_color[i : i + 2], 16) / 255.0 for i in (1, 3, 5)]
    r, g, b = ((c / 12.92) if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in v)
    return (r, g, b)


def _palette(*hexes: str) -> tuple[Color, ...]:
    return tuple(_srgb_to_linear(h) for h in hexes)


# Palettes (sRGB hex, stored linear).
_PAINT = _palette(
    "#e9e4da",
    "#d9d4c7",
    "#c9d6df",
    "#d5dcc8",
    "#e8d5c4",
    "#bfc4c9",
    "#efe9d8",
    "#d8c3c9",
    "#a9b8a0",
    "#9fb3c8",
    "#c7b9a5",
    "#e3e0d0",
)
_BATH_TILE = _palette("#f2f2ee", "#cfe3e8", "#dfe9e0", "#e6dccb", "#b8c7d6", "#ffffff", "#9ec5c9")
_GROUT = _palette("#bdbdb5", "#8c8c86", "#e0e0dc", "#a8a49c")
_FLOOR_TILE = _palette("#9a9690", "#c8c2b6", "#6f6c68", "#d9d2c3", "#8a7f72", "#b5a892")
_CHECKER = (
    _palette("#f0efe9", "#2b2b2b"),
    _palette("#e3dccd", "#7a6f62"),
    _palette("#d8d8d8", "#4a5a6a"),
    _palette("#efe6d6", "#a0523c"),
)
_WOOD_FLOOR = (
    _palette("#b58a5a", "#c79c6b"),
    _palette("#6e4a33", "#8a5e40"),
    _palette("#d2b48c", "#c4a27a"),
    _palette("#9c9186", "#b3a89c"),
    _palette("#a0673e", "#b97d4f"),
)
_CARPET = _palette("#8d8478", "#5f6b7a", "#a89f91", "#6b5b4f", "#7c8a7a", "#494e57", "#9a7f6a", "#7a5f70")
_CEILING_PAINT = _palette("#f4f3ef", "#ecebe6", "#f0ede4")
_WOOD = _palette("#8b5a2b", "#a0703c", "#5c3d24", "#c49a6c", "#d9c3a0", "#74492b")
_PAINTED = _palette("#eeeeea", "#7d8186", "#2a2a2c", "#d6d0c4", "#5d6f63", "#3d4f66")
_FABRIC = _palette("#5a6b7d", "#7d5a50", "#6d7a5a", "#8c8c88", "#3f4a5c", "#a6855f", "#b04a3c", "#d8cfc0", "#4f6f6a")
_BEDDING = _palette("#e8e4dc", "#c3cfd9", "#d9c2b0", "#9aa7b5", "#efe6d2", "#c9b3c9")
_METAL = _palette("#a8acb0", "#d7d9db", "#8c8f93")
_BRIGHT = _palette("#d23a2e", "#2e6fd2", "#e8c33a", "#3aa655", "#e27a2c", "#8e44ad", "#f0f0f0")
_LEAVES = _palette("#3f6b34", "#6e9a4a", "#2f5a3a", "#58843c")
_POT = _palette("#a0522d", "#e0ddd5", "#3a3a3a", "#6b7f8c")
_STONE = _palette("#3b3b3d", "#d9d6cf", "#6d6a66", "#b8b2a6")
_CERAMIC = _palette("#f5f5f2", "#ecefee")
_BRICK = (_palette("#9c4a32", "#cfc6b8"), _palette("#b86b4b", "#d8d0c4"), _palette("#e8e4dc", "#bdb8ae"))
_TRIM = _palette("#f4f2ec", "#e8e4da", "#5c3d24", "#8b8680")


def _color(rng: np.random.Generator, palette: Sequence[Color], jitter: float = 0.06) -> Color:
    """A palette entry with a small brightness and hue jitter, so two rooms rarely share exact colours."""
    base = np.asarray(palette[int(rng.integers(len(palette)))])
    scale = (1.0 + rng.uniform(-jitter, jitter)) * (1.0 + rng.uniform(-jitter / 2, jitter / 2, size=3))
    r, g, b = (float(v) for v in np.clip(base * scale, 0.005, 0.95))
    return (r, g, b)


def _salt(rng: np.random.Generator) -> int:
    return int(rng.integers(1, 2**31))


def _wall_material(rng: np.random.Generator, pattern: str, height: float) -> _Material:
    paint = _color(rng, _PAINT)
    salt = _salt(rng)
    if pattern == "paint":
        return _Material("paint", paint, salt=salt)
    if pattern == "stripes":
        period = rng.uniform(0.08, 0.4)
        other = tuple(float(c) * rng.uniform(0.75, 0.92) for c in paint)
        return _Material("stripes", paint, (other[0], other[1], other[2]), (period, rng.uniform(0.3, 0.6)), salt=salt)
    if pattern == "wainscot":
        return _Material(
            "wainscot",
            paint,
            _color(rng, _TRIM + _PAINT[:3] + _WOOD[:2]),
            (rng.uniform(0.8, 1.1), rng.uniform(0.4, 0.7)),
            salt=salt,
        )
    if pattern == "brick":
        brick, mortar = _BRICK[int(rng.integers(len(_BRICK)))]
        return _Material("brick", brick, mortar, (rng.uniform(0.065, 0.085), rng.uniform(0.2, 0.26)), salt=salt)
    tile = _color(rng, _BATH_TILE, 0.03)
    w = rng.uniform(0.1, 0.3)
    h = w * (0.5 if rng.random() < 0.4 else 1.0)
    grout = _color(rng, _GROUT, 0.02)
    if pattern == "tiles":
        return _Material("tiles", tile, grout, (w, h, rng.uniform(0.003, 0.006)), specular=0.25, salt=salt)
    # half_tiles: tiles up to a height, paint above
    top = rng.uniform(0.9, min(1.5, height - 0.8))
    params = (w, h, rng.uniform(0.003, 0.006), top, grout[0], grout[1], grout[2])
    return _Material("half_tiles", paint, tile, params, specular=0.2, salt=salt)


def _floor_material(rng: np.random.Generator, pattern: str) -> _Material:
    salt = _salt(rng)
    if pattern == "tiles":
        size = rng.uniform(0.3, 0.6)
        return _Material(
            "tiles",
            _color(rng, _FLOOR_TILE),
            _color(rng, _GROUT),
            (size, size * (1.0 if rng.random() < 0.7 else 0.5), rng.uniform(0.004, 0.008)),
            specular=0.2,
            salt=salt,
        )
    if pattern == "checker":
        a, b = _CHECKER[int(rng.integers(len(_CHECKER)))]
        return _Material("checker", a, b, (rng.uniform(0.25, 0.5),), specular=0.2, salt=salt)
    if pattern == "planks":
        a, b = _WOOD_FLOOR[int(rng.integers(len(_WOOD_FLOOR)))]
        return _Material("planks", a, b, (rng.uniform(0.1, 0.22), rng.uniform(0.8, 2.0)), specular=0.12, salt=salt)
    if pattern == "carpet":
        return _Material("carpet", _color(rng, _CARPET), salt=salt)
    return _Material(
        "concrete", _color(rng, _palette("#8e8c88", "#a8a49c", "#6f6d6a", "#b9b2a6")), specular=0.1, salt=salt
    )
