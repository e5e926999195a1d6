"""Furniture templates: each draws one piece of furniture (and what stands on it) from the scene's generator.

A template returns its footprint half extents ``(hx, hz)``, whether it stands against a wall, and its parts in a
local frame: ``x`` along its width, ``y`` up from the floor, ``z`` pointing away from the wall it backs onto (its
back is at ``z = -hz``). The piece's ADE20K category comes from the template (:data:`FURNITURE_CATEGORIES`), not
from the shapes it is built of, so a table made of boxes is a "table"; separate objects that come with a piece (a
vase on a table, a lamp on a nightstand, the television on its stand) carry their own category.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vpd.data.synthetic.categories import label
from vpd.data.synthetic.materials import (
    _BEDDING,
    _BRIGHT,
    _CERAMIC,
    _FABRIC,
    _LEAVES,
    _METAL,
    _PAINTED,
    _POT,
    _STONE,
    _WOOD,
    Color,
    _color,
    _Material,
    _palette,
    _salt,
    _srgb_to_linear,
)
from vpd.data.synthetic.primitives import _BOX, _CYLINDER, _SPHERE, _Prim


@dataclass
class _Furniture:
    """A piece of furniture in its local frame, with the separate objects that came with it.

    ``owner[i]`` is the object part ``i`` belongs to: 0 the piece itself (its category is the template's, see
    :data:`FURNITURE_CATEGORIES`), ``k >= 1`` the object ``items[k - 1]`` (an ADE20K category) that stands on it or
    hangs above it. Every object has at least one part.
    """

    hx: float
    hz: float
    wall: bool
    parts: list[_Prim] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)
    items: list[str] = field(default_factory=list)

    def item(self, category: str) -> int:
        """Starts a separate object of ADE20K ``category``; returns the ``obj`` to give its parts."""
        label(category)  # fail here, not at render time, on a category the scenes cannot label
        self.items.append(category)
        return len(self.items)

    def box(
        self,
        x0: float,
        x1: float,
        y0: float,
        y1: float,
        z0: float,
        z1: float,
        mat: _Material,
        front: _Material | None = None,
        *,
        obj: int = 0,
    ) -> None:
        self.owner.append(obj)
        self.parts.append(
            _Prim(
                _BOX,
                ((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2),
                ((x1 - x0) / 2, (y1 - y0) / 2, (z1 - z0) / 2),
                mat,
                0.0,
                front,
            )
        )

    def sphere(self, x: float, y: float, z: float, r: float, mat: _Material, *, obj: int = 0) -> None:
        self.owner.append(obj)
        self.parts.append(_Prim(_SPHERE, (x, y, z), (r, r, r), mat))

    def cylinder(self, x: float, z: float, r: float, y0: float, y1: float, mat: _Material, *, obj: int = 0) -> None:
        self.owner.append(obj)
        self.parts.append(_Prim(_CYLINDER, (x, (y0 + y1) / 2, z), (r, (y1 - y0) / 2, r), mat))


def _wood(rng: np.random.Generator) -> _Material:
    return _Material("wood", _color(rng, _WOOD), specular=0.08, salt=_salt(rng))


def _furniture_mat(rng: np.random.Generator) -> _Material:
    if rng.random() < 0.55:
        return _wood(rng)
    return _Material("solid", _color(rng, _PAINTED), specular=0.1, salt=_salt(rng))


def _fabric(rng: np.random.Generator, palette: Sequence[Color] = _FABRIC) -> _Material:
    return _Material("fabric", _color(rng, palette), salt=_salt(rng))


def _legs(f: _Furniture, w: float, d: float, h: float, thick: float, inset: float, mat: _Material) -> None:
    for sx in (-1, 1):
        for sz in (-1, 1):
            x = sx * (w / 2 - inset - thick / 2)
            z = sz * (d / 2 - inset - thick / 2)
            f.box(x - thick / 2, x + thick / 2, 0.0, h, z - thick / 2, z + thick / 2, mat)


def _small_items(rng: np.random.Generator, f: _Furniture, w: float, d: float, top: float, n_max: int = 2) -> None:
    """Puts a few small objects (vase, ball, book stack) on a surface at height ``top``, each its own object."""
    n = int(rng.integers(0, n_max + 1))
    for i in range(n):
        x = -w / 2 + (i + 1) * w / (n + 1) + rng.uniform(-0.08, 0.08) * w / (n + 1)
        z = float(rng.uniform(-0.25, 0.25) * d)
        kind = int(rng.integers(3))
        if kind == 0:
            r = rng.uniform(0.04, 0.09)
            f.cylinder(
                x,
                z,
                r,
                top,
                top + rng.uniform(0.15, 0.35),
                _Material("solid", _color(rng, _POT + _BRIGHT), specular=0.3, salt=_salt(rng)),
                obj=f.item("vase"),
            )
        elif kind == 1:
            r = rng.uniform(0.05, 0.11)
            mat = _Material("solid", _color(rng, _BRIGHT), specular=0.25, salt=_salt(rng))
            f.sphere(x, top + r, z, r, mat, obj=f.item("ball"))
        else:
            bw, bd = rng.uniform(0.15, 0.3), rng.uniform(0.12, 0.22)
            f.box(
                x - bw / 2,
                x + bw / 2,
                top,
                top + rng.uniform(0.04, 0.15),
                z - bd / 2,
                z + bd / 2,
                _Material("solid", _color(rng, _BRIGHT + _FABRIC), salt=_salt(rng)),
                obj=f.item("book"),
            )


def _front(kind: str, rng: np.random.Generator, color: Color, hx: float, hy: float, n: int = 2) -> _Material:
    """A box-front material: ``params = (count, half width, half height)`` of the face it is drawn on."""
    dark = (color[0] * 0.35, color[1] * 0.35, color[2] * 0.35)
    return _Material(kind, color, dark, (float(n), hx, hy), specular=0.1, salt=_salt(rng))


def _t_bed(rng: np.random.Generator) -> _Furniture:
    w, length, hb = rng.uniform(0.9, 1.8), rng.uniform(1.9, 2.15), rng.uniform(0.4, 0.55)
    f = _Furniture(w / 2 + 0.04, length / 2, wall=True)
    frame = _furniture_mat(rng)
    bedding = _fabric(rng, _BEDDING)
    f.box(-w / 2 - 0.04, w / 2 + 0.04, 0.0, rng.uniform(0.85, 1.2), -length / 2, -length / 2 + 0.07, frame)
    f.box(-w / 2, w / 2, 0.0, hb * 0.55, -length / 2 + 0.07, length / 2, frame)
    f.box(-w / 2 + 0.01, w / 2 - 0.01, hb * 0.55, hb + 0.05, -length / 2 + 0.07, length / 2 - 0.02, bedding)
    pillow = _fabric(rng, _BEDDING)
    n_pillows = 2 if w > 1.3 else 1
    pw = (w - 0.15) / n_pillows
    for i in range(n_pillows):
        x0 = -w / 2 + 0.06 + i * pw
        f.box(x0 + 0.02, x0 + pw - 0.02, hb + 0.05, hb + 0.17, -length / 2 + 0.12, -length / 2 + 0.5, pillow)
    if rng.random() < 0.6:  # a blanket across the foot of the bed
        f.box(-w / 2 - 0.015, w / 2 + 0.015, hb * 0.5, hb + 0.08, length / 2 - 0.7, length / 2 - 0.01, _fabric(rng))
    return f


def _t_nightstand(rng: np.random.Generator) -> _Furniture:
    w, d, h = rng.uniform(0.4, 0.55), rng.uniform(0.35, 0.45), rng.uniform(0.45, 0.62)
    f = _Furniture(w / 2, d / 2, wall=True)
    mat = _furniture_mat(rng)
    f.box(-w / 2, w / 2, 0.0, h, -d / 2, d / 2, mat, _front("drawers", rng, mat.color, w / 2, h / 2, 2))
    if rng.random() < 0.7:  # a table lamp: base, stem, shade
        lamp = f.item("lamp")
        f.cylinder(0.0, 0.0, 0.07, h, h + 0.03, _Material("solid", _color(rng, _METAL), specular=0.4), obj=lamp)
        f.cylinder(0.0, 0.0, 0.012, h + 0.03, h + 0.3, _Material("solid", _color(rng, _METAL), specular=0.4), obj=lamp)
        f.cylinder(0.0, 0.0, rng.uniform(0.1, 0.15), h + 0.22, h + 0.42, _fabric(rng, _BEDDING), obj=lamp)
    else:
        _small_items(rng, f, w, d, h, 1)
    return f


def _t_wardrobe(rng: np.random.Generator) -> _Furniture:
    w, d, h = rng.uniform(0.8, 1.8), rng.uniform(0.5, 0.62), rng.uniform(1.75, 2.1)
    f = _Furniture(w / 2, d / 2, wall=True)
    mat = _furniture_mat(rng)
    f.box(-w / 2, w / 2, 0.0, h, -d / 2, d / 2, mat, _front("doors", rng, mat.color, w / 2, h / 2, 2 if w < 1.2 else 3))
    return f


def _t_cabinet(rng: np.random.Generator) -> _Furniture:
    w, d, h = rng.uniform(0.6, 1.3), rng.uniform(0.4, 0.55), rng.uniform(0.7, 1.3)
    f = _Furniture(w / 2, d / 2, wall=True)
    mat = _furniture_mat(rng)
    kind = "drawers" if rng.random() < 0.5 else "doors"
    front = _front(kind, rng, mat.color, w / 2, h / 2, int(rng.integers(2, 5)))
    f.box(-w / 2, w / 2, 0.0, h, -d / 2, d / 2, mat, front)
    _small_items(rng, f, w, d, h, 2)
    return f


def _t_bookshelf(rng: np.random.Generator) -> _Furniture:
    w, d, h = rng.uniform(0.7, 1.3), rng.uniform(0.28, 0.4), rng.uniform(1.3, 2.0)
    f = _Furniture(w / 2, d / 2, wall=True)
    mat = _furniture_mat(rng)
    books = _Material("books", mat.color, mat.color, (rng.uniform(0.3, 0.4), w / 2, h / 2), salt=_salt(rng))
    f.box(-w / 2, w / 2, 0.0, h, -d / 2, d / 2, mat, books)
    return f


def _t_desk(rng: np.random.Generator) -> _Furniture:
    w, d, h = rng.uniform(1.0, 1.7), rng.uniform(0.55, 0.8), rng.uniform(0.72, 0.77)
    f = _Furniture(w / 2, d / 2, wall=True)
    mat = _furniture_mat(rng)
    f.box(-w / 2, w / 2, h - 0.03, h, -d / 2, d / 2, mat)
    if rng.random() < 0.5:
        _legs(f, w, d, h - 0.03, 0.045, 0.02, mat)
    else:  # side panels and a drawer unit
        f.box(-w / 2, -w / 2 + 0.03, 0.0, h - 0.03, -d / 2, d / 2, mat)
        f.box(
            w / 2 - 0.45,
            w / 2,
            0.0,
            h - 0.03,
            -d / 2,
            d / 2 - 0.02,
            mat,
            _front("drawers", rng, mat.color, 0.225, (h - 0.03) / 2, 3),
        )
    if rng.random() < 0.75:  # a monitor on a stand
        mw, mh = rng.uniform(0.45, 0.7), rng.uniform(0.28, 0.4)
        dark = _Material("solid", _color(rng, _palette("#1e1e20", "#2b2d30")), specular=0.3)
        monitor = f.item("monitor")
        f.box(-0.1, 0.1, h, h + 0.015, -d / 2 + 0.08, -d / 2 + 0.25, dark, obj=monitor)
        f.box(-0.02, 0.02, h, h + 0.12, -d / 2 + 0.12, -d / 2 + 0.15, dark, obj=monitor)
        f.box(
            -mw / 2,
            mw / 2,
            h + 0.1,
            h + 0.1 + mh,
            -d / 2 + 0.15,
            -d / 2 + 0.18,
            dark,
            _Material("screen", _srgb_to_linear("#1a2230"), params=(1.0, mw / 2, mh / 2), specular=0.5),
            obj=monitor,
        )
    _small_items(rng, f, w * 0.8, d * 0.5, h, 1)
    return f


def _t_chair(rng: np.random.Generator) -> _Furniture:
    s, h = rng.uniform(0.4, 0.5), rng.uniform(0.42, 0.47)
    f = _Furniture(s / 2, s / 2, wall=False)
    mat = _furniture_mat(rng) if rng.random() < 0.6 else _Material("solid", _color(rng, _PAINTED), specular=0.2)
    seat = mat if rng.random() < 0.5 else _fabric(rng)
    _legs(f, s, s, h - 0.04, rng.uniform(0.025, 0.04), 0.01, mat)
    f.box(-s / 2, s / 2, h - 0.04, h + 0.01, -s / 2, s / 2, seat)
    top = h + rng.uniform(0.35, 0.5)
    f.box(-s / 2, s / 2, h + 0.01, top, -s / 2, -s / 2 + 0.04, seat)
    return f


def _t_table(rng: np.random.Generator) -> _Furniture:
    w, d, h = rng.uniform(0.9, 1.8), rng.uniform(0.7, 1.0), rng.uniform(0.72, 0.78)
    f = _Furniture(w / 2, d / 2, wall=rng.random() < 0.2)
    mat = _furniture_mat(rng)
    f.box(-w / 2, w / 2, h - 0.04, h, -d / 2, d / 2, mat)
    _legs(f, w, d, h - 0.04, rng.uniform(0.04, 0.07), 0.04, mat)
    _small_items(rng, f, w, d, h, 3)
    return f


def _t_round_table(rng: np.random.Generator) -> _Furniture:
    r, h = rng.uniform(0.35, 0.6), rng.uniform(0.5, 0.76)
    f = _Furniture(r, r, wall=False)
    mat = _furniture_mat(rng)
    f.cylinder(0.0, 0.0, r, h - 0.035, h, mat)
    f.cylinder(0.0, 0.0, rng.uniform(0.035, 0.06), 0.03, h - 0.035, mat)
    f.cylinder(0.0, 0.0, r * 0.55, 0.0, 0.03, mat)
    _small_items(rng, f, r, r, h, 2)
    return f


def _t_coffee_table(rng: np.random.Generator) -> _Furniture:
    w, d, h = rng.uniform(0.8, 1.3), rng.uniform(0.5, 0.75), rng.uniform(0.35, 0.46)
    f = _Furniture(w / 2, d / 2, wall=False)
    mat = _furniture_mat(rng)
    if rng.random() < 0.5:
        f.box(-w / 2, w / 2, h - 0.04, h, -d / 2, d / 2, mat)
        _legs(f, w, d, h - 0.04, 0.05, 0.03, mat)
    else:
        f.box(-w / 2, w / 2, 0.0, h, -d / 2, d / 2, mat)
    _small_items(rng, f, w, d, h, 2)
    return f


def _t_sofa(rng: np.random.Generator) -> _Furniture:
    w, d = rng.uniform(1.6, 2.4), rng.uniform(0.85, 0.98)
    f = _Furniture(w / 2, d / 2, wall=True)
    mat = _fabric(rng)
    arm = rng.uniform(0.15, 0.22)
    seat_h, back_h, arm_h = rng.uniform(0.4, 0.46), rng.uniform(0.78, 0.9), rng.uniform(0.55, 0.65)
    f.box(-w / 2 + arm, w / 2 - arm, 0.0, seat_h, -d / 2 + 0.2, d / 2, mat)
    f.box(-w / 2, w / 2, 0.0, back_h, -d / 2, -d / 2 + 0.2, mat)
    for sx in (-1, 1):
        x0, x1 = sorted((sx * w / 2, sx * (w / 2 - arm)))
        f.box(x0, x1, 0.0, arm_h, -d / 2 + 0.2, d / 2, mat)
    cushion = _fabric(rng)
    if rng.random() < 0.7:
        for sx in (-1, 1):
            x = sx * (w / 2 - arm - 0.25)
            f.box(x - 0.2, x + 0.2, seat_h, seat_h + 0.38, -d / 2 + 0.2, -d / 2 + 0.32, cushion)
    return f


def _t_tv_stand(rng: np.random.Generator) -> _Furniture:
    w, d, h = rng.uniform(1.2, 1.8), rng.uniform(0.38, 0.5), rng.uniform(0.4, 0.55)
    f = _Furniture(w / 2, d / 2, wall=True)
    mat = _furniture_mat(rng)
    f.box(-w / 2, w / 2, 0.0, h, -d / 2, d / 2, mat, _front("doors", rng, mat.color, w / 2, h / 2, 3))
    tw = min(w - 0.1, rng.uniform(0.9, 1.4))
    th = tw * 0.58
    dark = _Material("solid", _srgb_to_linear("#1b1b1d"), specular=0.4)
    tv = f.item("television receiver")
    f.box(-0.15, 0.15, h, h + 0.02, -0.1, 0.1, dark, obj=tv)
    f.box(-0.03, 0.03, h, h + 0.1, -0.04, 0.0, dark, obj=tv)
    f.box(
        -tw / 2,
        tw / 2,
        h + 0.08,
        h + 0.08 + th,
        -0.04,
        0.0,
        dark,
        _Material("screen", _srgb_to_linear("#15191f"), params=(1.0, tw / 2, th / 2), specular=0.6),
        obj=tv,
    )
    return f


def _t_counter(rng: np.random.Generator) -> _Furniture:
    w, d, h = rng.uniform(1.4, 3.0), 0.62, rng.uniform(0.86, 0.92)
    f = _Furniture(w / 2, d / 2, wall=True)
    body = _Material("solid", _color(rng, _PAINTED + _WOOD), specular=0.15, salt=_salt(rng))
    top = _Material("concrete", _color(rng, _STONE), specular=0.35, salt=_salt(rng))
    n = max(1, round(w / 0.5))
    f.box(
        -w / 2,
        w / 2,
        0.0,
        h - 0.04,
        -d / 2,
        d / 2 - 0.03,
        body,
        _front("doors", rng, body.color, w / 2, (h - 0.04) / 2, n),
    )
    f.box(-w / 2, w / 2, h - 0.04, h, -d / 2, d / 2, top)
    if rng.random() < 0.7:  # wall cabinets above the counter (hanging, not on the floor)
        y0 = rng.uniform(1.4, 1.55)
        uw = w * rng.uniform(0.6, 1.0)
        f.box(
            -uw / 2,
            uw / 2,
            y0,
            y0 + rng.uniform(0.5, 0.7),
            -d / 2,
            -d / 2 + 0.35,
            body,
            _front("doors", rng, body.color, uw / 2, 0.3, max(1, round(uw / 0.5))),
            obj=f.item("cabinet"),
        )
    _small_items(rng, f, w, d * 0.6, h, 3)
    return f


def _t_fridge(rng: np.random.Generator) -> _Furniture:
    w, d, h = rng.uniform(0.6, 0.8), rng.uniform(0.62, 0.7), rng.uniform(1.65, 1.95)
    f = _Furniture(w / 2, d / 2, wall=True)
    mat = _Material("solid", _color(rng, _METAL + _CERAMIC), specular=0.4, salt=_salt(rng))
    f.box(-w / 2, w / 2, 0.0, h, -d / 2, d / 2, mat, _front("drawers", rng, mat.color, w / 2, h / 2, 2))
    return f


def _t_bathtub(rng: np.random.Generator) -> _Furniture:
    w, d, h = rng.uniform(1.5, 1.75), rng.uniform(0.7, 0.8), rng.uniform(0.5, 0.6)
    f = _Furniture(w / 2, d / 2, wall=True)
    f.box(-w / 2, w / 2, 0.0, h, -d / 2, d / 2, _Material("solid", _color(rng, _CERAMIC, 0.02), specular=0.5))
    return f


def _t_toilet(rng: np.random.Generator) -> _Furniture:
    f = _Furniture(0.22, 0.35, wall=True)
    mat = _Material("solid", _color(rng, _CERAMIC, 0.02), specular=0.5)
    f.box(-0.2, 0.2, 0.0, rng.uniform(0.75, 0.82), -0.35, -0.17, mat)
    f.cylinder(0.0, 0.0, 0.19, 0.0, 0.4, mat)
    return f


def _t_sink_cabinet(rng: np.random.Generator) -> _Furniture:
    w, d, h = rng.uniform(0.6, 1.0), rng.uniform(0.45, 0.55), rng.uniform(0.8, 0.88)
    f = _Furniture(w / 2, d / 2, wall=True)
    mat = _furniture_mat(rng)
    f.box(-w / 2, w / 2, 0.0, h, -d / 2, d / 2, mat, _front("doors", rng, mat.color, w / 2, h / 2, 2))
    basin = _Material("solid", _color(rng, _CERAMIC), specular=0.5)
    f.cylinder(0.0, 0.0, min(0.2, w / 2 - 0.05), h, h + 0.12, basin, obj=f.item("sink"))
    return f


def _t_plant(rng: np.random.Generator) -> _Furniture:
    r, h = rng.uniform(0.12, 0.22), rng.uniform(0.25, 0.45)
    fr = rng.uniform(0.25, 0.45)
    f = _Furniture(max(r, fr * 0.8), max(r, fr * 0.8), wall=False)
    f.cylinder(0.0, 0.0, r, 0.0, h, _Material("solid", _color(rng, _POT), specular=0.2, salt=_salt(rng)))
    leaves = _Material("leaves", _color(rng, _LEAVES), _color(rng, _LEAVES), salt=_salt(rng))
    f.sphere(0.0, h + fr * 0.8, 0.0, fr, leaves)
    return f


def _t_ball(rng: np.random.Generator) -> _Furniture:
    r = rng.uniform(0.1, 0.3)
    f = _Furniture(r, r, wall=False)
    f.sphere(0.0, r, 0.0, r, _Material("solid", _color(rng, _BRIGHT), specular=0.3, salt=_salt(rng)))
    return f


def _t_stool(rng: np.random.Generator) -> _Furniture:
    r, h = rng.uniform(0.15, 0.22), rng.uniform(0.4, 0.75)
    f = _Furniture(r, r, wall=False)
    mat = _furniture_mat(rng)
    f.cylinder(0.0, 0.0, r, h - 0.04, h, mat)
    f.cylinder(0.0, 0.0, 0.03, 0.0, h - 0.04, _Material("solid", _color(rng, _METAL), specular=0.4))
    f.cylinder(0.0, 0.0, r * 0.8, 0.0, 0.02, _Material("solid", _color(rng, _METAL), specular=0.4))
    return f


def _t_bin(rng: np.random.Generator) -> _Furniture:
    r, h = rng.uniform(0.12, 0.2), rng.uniform(0.3, 0.5)
    f = _Furniture(r, r, wall=False)
    f.cylinder(0.0, 0.0, r, 0.0, h, _Material("solid", _color(rng, _METAL + _PAINTED), specular=0.3))
    return f


def _t_floor_lamp(rng: np.random.Generator) -> _Furniture:
    h = rng.uniform(1.3, 1.65)
    f = _Furniture(0.2, 0.2, wall=False)
    metal = _Material("solid", _color(rng, _METAL + _PAINTED[2:3]), specular=0.4)
    f.cylinder(0.0, 0.0, 0.15, 0.0, 0.03, metal)
    f.cylinder(0.0, 0.0, 0.015, 0.03, h, metal)
    f.cylinder(0.0, 0.0, rng.uniform(0.17, 0.22), h - 0.05, h + 0.25, _fabric(rng, _BEDDING))
    return f


_TEMPLATES: dict[str, Callable[[np.random.Generator], _Furniture]] = {
    "bed": _t_bed,
    "nightstand": _t_nightstand,
    "wardrobe": _t_wardrobe,
    "cabinet": _t_cabinet,
    "bookshelf": _t_bookshelf,
    "desk": _t_desk,
    "chair": _t_chair,
    "table": _t_table,
    "round_table": _t_round_table,
    "coffee_table": _t_coffee_table,
    "sofa": _t_sofa,
    "tv_stand": _t_tv_stand,
    "counter": _t_counter,
    "fridge": _t_fridge,
    "bathtub": _t_bathtub,
    "toilet": _t_toilet,
    "sink_cabinet": _t_sink_cabinet,
    "plant": _t_plant,
    "ball": _t_ball,
    "stool": _t_stool,
    "bin": _t_bin,
    "floor_lamp": _t_floor_lamp,
}

FURNITURE_CATEGORIES: dict[str, str] = {
    "bed": "bed ",  # mmseg's spelling, trailing space included
    # A nightstand here is a box with drawer fronts: ADE20K's "chest of drawers, chest, bureau, dresser" is the
    # class of drawer units, while its "cabinet" is a cupboard with doors.
    "nightstand": "chest of drawers",
    "wardrobe": "wardrobe",
    "cabinet": "cabinet",
    "bookshelf": "bookcase",
    "desk": "desk",
    "chair": "chair",
    "table": "table",
    "round_table": "table",
    "coffee_table": "coffee table",
    "sofa": "sofa",
    "tv_stand": "cabinet",  # a low unit with doors; the television on it is a "television receiver" of its own
    "counter": "counter",  # base cabinets and worktop; the wall cabinets above are a "cabinet" of their own
    "fridge": "refrigerator",
    "bathtub": "bathtub",
    "toilet": "toilet",
    "sink_cabinet": "cabinet",  # the vanity unit with doors; the basin on it is a "sink" of its own
    "plant": "plant",  # the pot is part of the plant
    "ball": "ball",
    "stool": "stool",
    "bin": "ashcan",
    "floor_lamp": "lamp",
}
"""The ADE20K category of each furniture template (the piece as a whole)."""
