"""Scene layout: the resolution-independent description of a room and how it is drawn from a seed.

:func:`_make_scene` draws everything about a scene from the generator, in a fixed order: the room type and size,
the camera, the surface materials, the furniture (placed on free floor by rejection sampling, preferring what the
camera sees), the lights, the wall decor, and the exposure and sensor settings. It also numbers the scene's objects
(instance ids, see :mod:`vpd.data.synthetic.categories`) and records each one's category.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vpd.data.synthetic.categories import CEILING_ID, FIRST_WALL_ID, FLOOR_ID, label
from vpd.data.synthetic.furniture import _TEMPLATES, FURNITURE_CATEGORIES, _Furniture
from vpd.data.synthetic.materials import (
    _BRIGHT,
    _CEILING_PAINT,
    _FABRIC,
    _METAL,
    _PAINTED,
    _TRIM,
    _WOOD,
    Color,
    _color,
    _floor_material,
    _Material,
    _palette,
    _salt,
    _srgb_to_linear,
    _wall_material,
)
from vpd.data.synthetic.primitives import _BOX, _inside_prim, _Prim, _rect_axes
from vpd.data.synthetic.styles import _STYLES, SCENE_CLASSES, _pick, _Style


@dataclass(frozen=True)
class _Decor:
    """A flat item painted on wall ``wall`` over ``[s0, s1] x [y0, y1]`` (wall coordinates in metres).

    ``instance`` is its object id; its category is ``DECOR_CATEGORIES[kind]``.
    """

    wall: int
    kind: str
    s0: float
    s1: float
    y0: float
    y1: float
    color: Color
    color2: Color
    salt: int
    instance: int = 0

    def extent(self) -> tuple[float, float, float, float]:
        """``(s0, s1, y0, y1)`` of the wall area the item covers: a door's casing belongs to the door."""
        if self.kind == "door":
            return self.s0 - 0.06, self.s1 + 0.06, self.y0, self.y1 + 0.06
        return self.s0, self.s1, self.y0, self.y1


DECOR_CATEGORIES: dict[str, str] = {
    "window": "windowpane",
    "door": "door",
    "picture": "painting",
    "mirror": "mirror",
    "board": "bulletin board",  # a whiteboard; ADE20K's closest class is "bulletin board, notice board"
}
"""The ADE20K category of each kind of wall decor."""


@dataclass
class _SceneSpec:
    scene_class: int
    room: tuple[float, float, float]  # W (x), H (y), D (z)
    cam_pos: np.ndarray  # [3] world
    cam_rot: np.ndarray  # [3, 3] columns: camera right, down, forward in world coordinates
    hfov: float  # radians
    floor: _Material
    ceiling: _Material
    walls: tuple[_Material, _Material, _Material, _Material]
    baseboard: tuple[float, Color]  # height (0: none), colour
    decor: tuple[_Decor, ...]
    prims: tuple[_Prim, ...]
    lights: tuple[tuple[np.ndarray, np.ndarray], ...]  # (position [3], rgb intensity [3])
    light_ids: tuple[int, ...]  # the instance id of each light's ceiling lamp
    categories: dict[int, int]  # instance id -> label (index into SEMANTIC_CLASSES) of every object of the scene
    fixture: tuple[str, float, Color]  # ceiling lamp shape ("disc" / "square"), radius, emitted colour
    ambient: float
    exposure: float  # target tone-mapper input of the median pixel
    tint: np.ndarray  # [3] white-balance multipliers
    vignette: float
    noise: float  # sensor noise std in sRGB units


# Inward normals (x, z) of the walls x = 0, x = W, z = 0, z = D.
_WALL_NORMALS = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))

Rect = tuple[float, float, float, float, float]  # footprint: centre x, centre z, half x, half z, yaw


def _rects_overlap(a: Rect, b: Rect) -> bool:
    """Separating-axis test of two oriented rectangles."""
    axes_a, axes_b = _rect_axes(a[4]), _rect_axes(b[4])
    dx, dz = b[0] - a[0], b[1] - a[1]
    for ax, az in (*axes_a, *axes_b):
        ra = a[2] * abs(axes_a[0][0] * ax + axes_a[0][1] * az) + a[3] * abs(axes_a[1][0] * ax + axes_a[1][1] * az)
        rb = b[2] * abs(axes_b[0][0] * ax + axes_b[0][1] * az) + b[3] * abs(axes_b[1][0] * ax + axes_b[1][1] * az)
        if abs(dx * ax + dz * az) > ra + rb:
            return False
    return True


def _rect_inside(r: Rect, width: float, depth: float, margin: float) -> bool:
    (ux, uz), (vx, vz) = _rect_axes(r[4])
    ex = r[2] * abs(ux) + r[3] * abs(vx)
    ez = r[2] * abs(uz) + r[3] * abs(vz)
    return margin <= r[0] - ex and r[0] + ex <= width - margin and margin <= r[1] - ez and r[1] + ez <= depth - margin


def _place(
    rng: np.random.Generator,
    furn: _Furniture,
    room: tuple[float, float, float],
    occupied: list[Rect],
    cam_xz: np.ndarray,
    fwd_xz: np.ndarray,
    hfov: float,
) -> Rect | None:
    """Finds a free, mostly visible footprint for ``furn`` by rejection sampling; ``None`` when none is found."""
    width, _, depth = room
    for _ in range(40):
        if furn.wall:
            wall = int(rng.integers(4))
            nx, nz = _WALL_NORMALS[wall]
            length = width if wall >= 2 else depth
            if length < 2 * furn.hx + 0.1:
                continue
            s = rng.uniform(furn.hx + 0.04, length - furn.hx - 0.04)
            off = furn.hz + rng.uniform(0.01, 0.04)
            x, z = [(off, s), (width - off, s), (s, off), (s, depth - off)][wall]
            yaw = math.atan2(-nx, nz)  # local +z points into the room
        else:
            # Free-standing pieces are often aligned with the room, sometimes turned.
            yaw = float(rng.integers(4)) * math.pi / 2 + (
                rng.normal(0, 0.08) if rng.random() < 0.6 else rng.uniform(-math.pi, math.pi)
            )
            x, z = rng.uniform(0.3, width - 0.3), rng.uniform(0.3, depth - 0.3)
        rect = (float(x), float(z), furn.hx, furn.hz, float(yaw))
        if not _rect_inside(rect, width, depth, 0.005):
            continue
        if any(_rects_overlap(rect, o) for o in occupied):
            continue
        # Prefer what the camera sees, so rooms are furnished in view rather than behind the camera.
        ahead = (x - cam_xz[0]) * fwd_xz[0] + (z - cam_xz[1]) * fwd_xz[1]
        aside = (x - cam_xz[0]) * fwd_xz[1] - (z - cam_xz[1]) * fwd_xz[0]
        if (ahead < 0.3 or abs(math.atan2(aside, ahead)) > hfov / 2 + 0.15) and rng.random() < 0.85:
            continue
        occupied.append(rect)
        return rect
    return None


def _transform_parts(furn: _Furniture, rect: Rect, first_id: int) -> list[_Prim]:
    """The parts of ``furn`` placed at ``rect`` in world coordinates; its object ``k`` gets id ``first_id + k``."""
    x, z, _, _, yaw = rect
    (ux, uz), (vx, vz) = _rect_axes(yaw)
    out = []
    for p, obj in zip(furn.parts, furn.owner):
        lx, ly, lz = p.center
        center = (x + lx * ux + lz * vx, ly, z + lx * uz + lz * vz)
        out.append(_Prim(p.kind, center, p.size, p.material, yaw if p.kind == _BOX else 0.0, p.front, first_id + obj))
    return out


def _make_decor(
    rng: np.random.Generator, style: _Style, room: tuple[float, float, float], first_id: int
) -> tuple[_Decor, ...]:
    """Windows, doors, pictures, ... on the four walls, with instance ids from ``first_id`` on."""
    width, height, depth = room
    out: list[_Decor] = []
    for wall in range(4):
        length = width if wall >= 2 else depth
        spans: list[tuple[float, float]] = []
        for _ in range(int(rng.integers(0, 3))):
            kind = _pick(rng, style.decor)
            if kind == "door":
                w, y0, y1 = rng.uniform(0.8, 0.95), 0.0, rng.uniform(2.0, min(2.15, height - 0.15))
                color, color2 = _color(rng, _WOOD + _TRIM[:2]), _color(rng, _TRIM)
            elif kind == "window":
                w = rng.uniform(0.8, 1.8)
                y0 = rng.uniform(0.8, 1.0)
                y1 = min(height - 0.25, y0 + rng.uniform(1.0, 1.5))
                color = _color(rng, _palette("#cfe0f5", "#e8eef5", "#f5efe0"), 0.03)
                color2 = _color(rng, _TRIM)
            elif kind == "picture":
                w = rng.uniform(0.3, 1.1)
                hh = w * rng.uniform(0.6, 1.3) / 2
                yc = rng.uniform(1.35, 1.75)
                y0, y1 = yc - min(hh, 0.5), yc + min(hh, 0.5)
                color, color2 = _color(rng, _BRIGHT + _FABRIC), _color(rng, _WOOD + _PAINTED[1:3] + _TRIM[:1])
            elif kind == "mirror":
                w, y0, y1 = rng.uniform(0.5, 1.0), rng.uniform(1.0, 1.15), rng.uniform(1.8, 1.95)
                color, color2 = _srgb_to_linear("#aab4bb"), _color(rng, _METAL + _TRIM[:1])
            else:  # board
                w, y0, y1 = rng.uniform(1.2, 2.0), rng.uniform(0.9, 1.0), rng.uniform(1.9, 2.05)
                color, color2 = _srgb_to_linear("#f4f4f2"), _color(rng, _METAL)
            if length < w + 0.4:
                continue
            s0 = rng.uniform(0.2, length - w - 0.2)
            if any(s0 < b + 0.15 and a - 0.15 < s0 + w for a, b in spans):
                continue
            spans.append((s0, s0 + w))
            out.append(_Decor(wall, kind, s0, s0 + w, y0, y1, color, color2, _salt(rng), first_id + len(out)))
    return tuple(out)


def _make_scene(rng: np.random.Generator, scene_class: int | None) -> _SceneSpec:
    """Draws everything about a scene from ``rng``; nothing here depends on the output resolution."""
    drawn = int(rng.integers(len(SCENE_CLASSES)))  # drawn even when given, so the stream layout is fixed
    cls = drawn if scene_class is None else int(scene_class)
    style = _STYLES[SCENE_CLASSES[cls]]
    width, depth, height = rng.uniform(*style.width), rng.uniform(*style.depth), rng.uniform(*style.height)
    room = (float(width), float(height), float(depth))

    # Camera: near one wall (the "back" wall), looking roughly across the room, slightly down, NYU-like.
    back = int(rng.integers(4))
    along, across = rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.3)
    cx, cz = [
        (across * width, along * depth),
        ((1 - across) * width, along * depth),
        (along * width, across * depth),
        (along * width, (1 - across) * depth),
    ][back]
    cx, cz = float(np.clip(cx, 0.4, width - 0.4)), float(np.clip(cz, 0.4, depth - 0.4))
    cam_h = rng.uniform(1.0, 1.8)
    to_center = math.atan2(width / 2 - cx, depth / 2 - cz)  # yaw 0 looks along +z, pi/2 along +x
    yaw = to_center + rng.uniform(-0.45, 0.45)
    pitch = rng.uniform(0.05, 0.4) if cam_h > 1.3 else rng.uniform(0.0, 0.3)  # positive looks down
    roll = float(np.clip(rng.normal(0.0, 0.025), -0.06, 0.06))
    hfov = math.radians(rng.uniform(55.0, 70.0))
    fwd = np.array([math.sin(yaw) * math.cos(pitch), -math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
    right = np.cross(fwd, [0.0, 1.0, 0.0])
    right /= math.sqrt(right[0] ** 2 + right[2] ** 2)  # plain arithmetic (no BLAS), so every machine agrees
    down = np.cross(fwd, right)
    cr, sr = math.cos(roll), math.sin(roll)
    right, down = cr * right + sr * down, -sr * right + cr * down
    cam_rot = np.stack([right, down, fwd], axis=1)
    cam_pos = np.array([cx, cam_h, cz])
    cam_xz = np.array([cx, cz])
    fwd_xz = np.array([math.sin(yaw), math.cos(yaw)])

    floor = _floor_material(rng, _pick(rng, style.floors))
    ceiling_pattern = _pick(rng, style.ceilings)
    ceiling = _Material(
        ceiling_pattern,
        _color(rng, _CEILING_PAINT, 0.02),
        _srgb_to_linear("#b8b8b4"),
        (rng.uniform(0.6, 0.62), 0.015),
        salt=_salt(rng),
    )
    wall_pattern = _pick(rng, style.walls)
    base_wall = _wall_material(rng, wall_pattern, height)
    walls = [base_wall] * 4
    if wall_pattern in ("paint", "stripes") and rng.random() < 0.35:  # an accent wall
        walls[int(rng.integers(4))] = _wall_material(rng, _pick(rng, (("paint", 2.0), ("brick", 1.0))), height)
    baseboard = (0.0, (0.0, 0.0, 0.0)) if "tiles" in wall_pattern else (rng.uniform(0.06, 0.12), _color(rng, _TRIM))

    # Furniture: anchors first, then extras, each placed by rejection sampling on free floor.
    occupied: list[Rect] = [(cx, cz, 0.5, 0.5, 0.0)]  # keep the camera clear of furniture
    n_groups = int(rng.integers(style.groups[0], style.groups[1] + 1))
    names = list(style.anchors) + [_pick(rng, style.extras) for _ in range(max(0, n_groups - len(style.anchors)))]
    # Instance ids: the room surfaces, then each placed piece followed by the objects that came with it.
    categories = {FLOOR_ID: label("floor"), CEILING_ID: label("ceiling")}
    categories.update({FIRST_WALL_ID + w: label("wall") for w in range(4)})
    prims: list[_Prim] = []
    for name in names:
        furn = _TEMPLATES[name](rng)
        rect = _place(rng, furn, room, occupied, cam_xz, fwd_xz, hfov)
        if rect is not None:
            first_id = max(categories) + 1
            prims.extend(_transform_parts(furn, rect, first_id))
            for k, category in enumerate((FURNITURE_CATEGORIES[name], *furn.items)):
                categories[first_id + k] = label(category)

    # Lights just under the ceiling, away from the walls and outside every primitive.
    lights = []
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(20):
            pos = np.array(
                [
                    rng.uniform(0.8, max(0.81, width - 0.8)),
                    height - rng.uniform(0.12, 0.3),
                    rng.uniform(0.8, max(0.81, depth - 0.8)),
                ]
            )
            if not any(_inside_prim(p, pos, 0.1) for p in prims):
                break
        warmth = rng.uniform(0.0, 1.0)
        rgb = np.array([1.0, 1.0 - 0.1 * warmth, 1.0 - 0.25 * warmth]) * rng.uniform(0.6, 1.4)
        lights.append((pos, rgb))
    fixture_color = (1.0, 0.97, 0.9)
    fixture = (style.fixture, rng.uniform(0.12, 0.25) if style.fixture == "disc" else 0.3, fixture_color)

    # Wall decor (drawn here: the generator's stream continues with the exposure and noise below), then one ceiling
    # lamp per light.
    decor = _make_decor(rng, style, room, max(categories) + 1)
    categories.update({d.instance: label(DECOR_CATEGORIES[d.kind]) for d in decor})
    light_ids = tuple(range(max(categories) + 1, max(categories) + 1 + len(lights)))
    categories.update({i: label("light") for i in light_ids})

    return _SceneSpec(
        scene_class=cls,
        room=room,
        cam_pos=cam_pos,
        cam_rot=cam_rot,
        hfov=hfov,
        floor=floor,
        ceiling=ceiling,
        walls=(walls[0], walls[1], walls[2], walls[3]),
        baseboard=baseboard,
        decor=decor,
        prims=tuple(prims),
        lights=tuple(lights),
        light_ids=light_ids,
        categories=categories,
        fixture=fixture,
        ambient=rng.uniform(0.12, 0.3),
        exposure=rng.uniform(0.3, 0.5),
        tint=1.0 + rng.uniform(-0.04, 0.04, size=3),
        vignette=rng.uniform(0.0, 0.3),
        noise=rng.uniform(0.002, 0.01),
    )
