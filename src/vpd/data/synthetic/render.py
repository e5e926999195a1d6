"""Rendering: the ray caster and shading that turn a scene layout into an image with exact ground truth.

:func:`render_scene` draws a scene's layout from its seed (:mod:`vpd.data.synthetic.layout`) and renders it by
vectorised numpy ray casting: primary rays against the room box and the primitives, procedural textures filtered
to the pixel footprint, ambient light with fake occlusion (room corners, contact shadows under furniture),
Lambertian point lights with shadow rays and a little Blinn-Phong specular, ceiling lamps and windows that glow,
auto exposure, a soft tone shoulder, vignetting, sRGB encoding and sensor noise. The result,
:class:`SyntheticScene`, carries the image with its z-depth, camera-frame normals, per-pixel object categories and
instance ids, and the intrinsics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vpd.data.base import IGNORE_INDEX
from vpd.data.synthetic.categories import CEILING_ID, FIRST_WALL_ID, FLOOR_ID
from vpd.data.synthetic.layout import _Decor, _make_scene, _SceneSpec
from vpd.data.synthetic.primitives import (
    _BOX,
    _SPHERE,
    _hit,
    _Prim,
    _prim_normals,
    _screen_rect,
    _shadowed,
)
from vpd.data.synthetic.styles import SCENE_CLASSES
from vpd.data.synthetic.textures import _albedo, _fbm, _mix, _rect, _span

_NUM_ROOM_SURFACES = 6  # surface ids 0..5: floor, ceiling, walls 0..3; primitive k has surface id 6 + k


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """One rendered scene with exact per-pixel ground truth.

    Attributes:
        image: uint8 ``[H, W, 3]`` RGB (sRGB-encoded).
        depth: float32 ``[H, W]`` z-depth in metres along the optical axis, finite and > 0 everywhere.
        normals: float32 ``[H, W, 3]`` unit surface normals in the camera frame (x right, y down, z forward),
            facing the camera (their dot product with the unit viewing ray is <= -1e-3: the rare silhouette pixel
            seen within 0.06 degrees of grazing gets its normal tilted that little toward the camera).
        semantic: uint8 ``[H, W]``: the ADE20K category of the object each pixel shows, an index into
            :data:`~vpd.data.synthetic.categories.SEMANTIC_CLASSES` (every pixel shows an object, so none is 255).
        scene_class: index into :data:`~vpd.data.synthetic.styles.SCENE_CLASSES`.
        intrinsics: float32 ``[3, 3]`` pinhole matrix ``K`` in pixels of this resolution.
        instance: int32 ``[H, W]``: the id (>= 1) of the object each pixel shows. Every object has its own id: the
            floor, the ceiling, each wall, each piece of furniture as a whole, each object standing on one, each
            wall decor item and each ceiling lamp. Ids are numbered when the scene is drawn (see
            :mod:`vpd.data.synthetic.categories`), so one seed gives the same ids at every resolution.
        instance_categories: the label (index into ``SEMANTIC_CLASSES``) of every object of the scene by instance
            id, including objects out of view or hidden (they have no pixels); ``semantic`` is this applied to
            ``instance``.
    """

    image: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    semantic: np.ndarray
    scene_class: int
    intrinsics: np.ndarray
    instance: np.ndarray
    instance_categories: dict[int, int]


def render_scene(seed: int, height: int = 240, width: int = 320, *, scene_class: int | None = None) -> SyntheticScene:
    """Renders the synthetic room drawn from ``seed``.

    Deterministic: the same ``(seed, height, width, scene_class)`` gives bit-identical arrays. The same seed at
    another resolution renders the same room from the same camera (intrinsics scaled; the horizontal field of view
    is fixed, pixels are square), so a scene can be previewed small and rendered large.

    Args:
        seed: non-negative integer seed of ``np.random.default_rng``.
        height: image height in pixels.
        width: image width in pixels.
        scene_class: index into :data:`SCENE_CLASSES`; ``None`` draws the room type from the seed.

    Returns:
        The rendered :class:`SyntheticScene`.

    Raises:
        ValueError: on a non-positive resolution or an out-of-range ``scene_class``.
    """
    if height < 1 or width < 1:
        raise ValueError(f"resolution must be positive, got {height}x{width}")
    if scene_class is not None and not 0 <= scene_class < len(SCENE_CLASSES):
        raise ValueError(f"scene_class must be in [0, {len(SCENE_CLASSES)}), got {scene_class}")
    rng = np.random.default_rng(seed)
    spec = _make_scene(rng, scene_class)
    # The sensor noise is drawn last, from the same generator: the scene itself never depends on the resolution.
    return _render(spec, height, width, rng)


_LUT_SIZE = 4096


def _srgb_lut() -> np.ndarray:
    """sRGB code values (0..255, float32) of ``_LUT_SIZE`` evenly spaced linear intensities in [0, 1]."""
    lin = np.linspace(0.0, 1.0, _LUT_SIZE)
    enc = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.power(lin, 1 / 2.4) - 0.055)
    return (enc * 255.0).astype(np.float32)


_SRGB_LUT = _srgb_lut()


def _render(spec: _SceneSpec, height: int, width: int, rng: np.random.Generator) -> SyntheticScene:
    room_w, room_h, room_d = spec.room
    f = width / (2.0 * math.tan(spec.hfov / 2.0))  # square pixels: fx = fy
    cx, cy = width / 2.0, height / 2.0
    rot = spec.cam_rot
    ox, oy, oz = (float(v) for v in spec.cam_pos)

    # Primary rays with camera-frame direction (x, y, 1): the ray parameter is then the z-depth itself.
    xs = ((np.arange(width) + 0.5 - cx) / f)[None, :]
    ys = ((np.arange(height) + 0.5 - cy) / f)[:, None]
    dx = rot[0, 0] * xs + rot[0, 1] * ys + rot[0, 2]
    dy = rot[1, 0] * xs + rot[1, 1] * ys + rot[1, 2]
    dz = rot[2, 0] * xs + rot[2, 1] * ys + rot[2, 2]

    # The room from inside: the exit of the box, i.e. the nearest of the three planes the ray points at.
    # Written with |d| so that a ray exactly parallel to a wall gets a huge positive distance, never a negative one.
    tx = np.where(dx > 0, room_w - ox, ox) / np.maximum(np.abs(dx), 1e-12)
    ty = np.where(dy > 0, room_h - oy, oy) / np.maximum(np.abs(dy), 1e-12)
    tz = np.where(dz > 0, room_d - oz, oz) / np.maximum(np.abs(dz), 1e-12)
    t = np.minimum(np.minimum(tx, ty), tz)
    sid = np.where(
        ty <= np.minimum(tx, tz),
        np.where(dy < 0, 0, 1),
        np.where(tx <= tz, np.where(dx < 0, 2, 3), np.where(dz < 0, 4, 5)),
    ).astype(np.int32)

    for k, p in enumerate(spec.prims):
        r0, r1, c0, c1 = _screen_rect(p, spec.cam_pos, rot, f, cx, cy, height, width)
        if r1 <= r0 or c1 <= c0:
            continue
        tk = _hit(p, ox, oy, oz, dx[r0:r1, c0:c1], dy[r0:r1, c0:c1], dz[r0:r1, c0:c1], 1e-6)
        closer = tk < t[r0:r1, c0:c1]
        np.copyto(t[r0:r1, c0:c1], tk, where=closer)
        np.copyto(sid[r0:r1, c0:c1], _NUM_ROOM_SURFACES + k, where=closer)

    n_px = height * width
    t, sid = t.ravel(), sid.ravel()
    dx, dy, dz = (np.ascontiguousarray(a).ravel() for a in (dx, dy, dz))
    px, py, pz = ox + t * dx, oy + t * dy, oz + t * dz
    ray_len = np.sqrt(dx * dx + dy * dy + dz * dz)
    dist = t * ray_len

    nx, ny, nz = np.zeros(n_px), np.zeros(n_px), np.zeros(n_px)
    # Colour buffers are channel-first [3, N]: per-channel passes over contiguous memory.
    albedo = np.zeros((3, n_px))
    emission = np.zeros((3, n_px))
    specular = np.zeros(n_px)
    instance = np.zeros(n_px, dtype=np.int32)
    ao = np.ones(n_px)

    order = np.argsort(sid, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(sid, minlength=_NUM_ROOM_SURFACES + len(spec.prims)))])

    def footprint(idx: np.ndarray) -> np.ndarray:
        # Pixel footprint on the surface: distance / focal, widened (less than 1/cos, to not over-blur) at grazing.
        cos = np.abs(nx[idx] * dx[idx] + ny[idx] * dy[idx] + nz[idx] * dz[idx]) / ray_len[idx]
        return dist[idx] / f / np.maximum(cos, 0.15) ** 0.6

    def corner_ao(d: np.ndarray, strength: float = 0.35) -> np.ndarray:
        return 1.0 - strength * np.exp(-np.maximum(d, 0.0) / 0.25)

    # Room surfaces: floor (0), ceiling (1), walls x=0, x=W, z=0, z=D (2..5).
    room_normals = ((0, 1, 0), (0, -1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, 1), (0, 0, -1))
    for sidx in range(_NUM_ROOM_SURFACES):
        idx = order[bounds[sidx] : bounds[sidx + 1]]
        if idx.size == 0:
            continue
        nx[idx], ny[idx], nz[idx] = room_normals[sidx]
        fp = footprint(idx)
        x, y, z = px[idx], py[idx], pz[idx]
        if sidx <= 1:
            mat = spec.floor if sidx == 0 else spec.ceiling
            albedo[:, idx] = _albedo(mat, x, z, fp).T
            instance[idx] = FLOOR_ID if sidx == 0 else _ceiling_ids(spec, x, z)
            ao[idx] = corner_ao(np.minimum(np.minimum(x, room_w - x), np.minimum(z, room_d - z)))
            if sidx == 0:
                ao[idx] *= _floor_occlusion(spec.prims, x, z)
            else:
                emission[:, idx] = _fixtures(spec, x, z, fp).T
            continue
        wall = sidx - 2
        s = z if wall < 2 else x
        length = room_d if wall < 2 else room_w
        col = _albedo(spec.walls[wall], s, y, fp)
        bb_h, bb_c = spec.baseboard
        if bb_h > 0:
            col = _mix(col, bb_c, _span(y, -1.0, bb_h, fp))
            col *= (1.0 - 0.3 * _span(y, bb_h, bb_h + 0.01, fp))[:, None]
        emit = np.zeros((idx.size, 3))
        ids = np.full(idx.size, FIRST_WALL_ID + wall, dtype=np.int32)
        for dec in spec.decor:
            if dec.wall == wall:
                col, emit = _apply_decor(dec, s, y, fp, col, emit)
                s0, s1, y0, y1 = dec.extent()
                ids[(s >= s0) & (s <= s1) & (y >= y0) & (y <= y1)] = dec.instance
        albedo[:, idx] = col.T
        emission[:, idx] = emit.T
        instance[idx] = ids
        ao[idx] = corner_ao(y) * corner_ao(room_h - y, 0.25) * corner_ao(np.minimum(s, length - s), 0.3)
        specular[idx] = spec.walls[wall].specular

    for k, p in enumerate(spec.prims):
        idx = order[bounds[_NUM_ROOM_SURFACES + k] : bounds[_NUM_ROOM_SURFACES + k + 1]]
        if idx.size == 0:
            continue
        pnx, pny, pnz, u, v, front = _prim_normals(p, px[idx], py[idx], pz[idx])
        nx[idx], ny[idx], nz[idx] = pnx, pny, pnz
        fp = footprint(idx)
        col = _albedo(p.material, u, v, fp)
        if p.front is not None and front.any():
            col[front] = _albedo(p.front, u[front], v[front], fp[front])
        albedo[:, idx] = col.T
        specular[idx] = p.material.specular
        instance[idx] = p.instance
        # Hemisphere occlusion: surfaces facing down (under tables, sphere bottoms) see less of the bright room.
        ao[idx] = 0.75 + 0.25 * np.clip(0.5 + 0.5 * pny, 0.0, 1.0) ** 0.5

    # Lighting: ambient (with fake occlusion), Lambertian point lights with inverse-square falloff and shadow rays,
    # and a little Blinn-Phong specular on glossy materials.
    mean_i = float(np.mean([rgb.mean() for _, rgb in spec.lights]))
    # Downward-facing surfaces (the ceiling) also get the light bounced off the lit floor.
    ambient = spec.ambient * mean_i * 3.0 / room_h**2 * ao * (1.0 + 0.6 * np.maximum(-ny, 0.0))
    irradiance = np.repeat(ambient[None, :], 3, axis=0)
    highlight = np.zeros((3, n_px))
    glossy = specular > 0
    for pos, rgb in spec.lights:
        lx, ly, lz = pos[0] - px, pos[1] - py, pos[2] - pz
        d2 = lx * lx + ly * ly + lz * lz
        inv = 1.0 / np.sqrt(d2)
        ndl = (nx * lx + ny * ly + nz * lz) * inv
        lit = np.flatnonzero(ndl > 0)
        lit = lit[~_shadowed(spec.prims, pos, px[lit], py[lit], pz[lit])]
        power = ndl[lit] * 3.0 / (d2[lit] + 0.4)  # inverse-square falloff, softened right next to the lamp
        for ch in range(3):
            irradiance[ch, lit] += rgb[ch] * power
        g = lit[glossy[lit]]
        if g.size:
            inv_len = 1.0 / ray_len[g]
            hx = lx[g] * inv[g] - dx[g] * inv_len
            hy = ly[g] * inv[g] - dy[g] * inv_len
            hz = lz[g] * inv[g] - dz[g] * inv_len
            ndh = np.clip((nx[g] * hx + ny[g] * hy + nz[g] * hz) / (np.sqrt(hx * hx + hy * hy + hz * hz) + 1e-12), 0, 1)
            spot = specular[g] * ndh**40 * 3.0 / (d2[g] + 0.4)
            for ch in range(3):
                highlight[ch, g] += rgb[ch] * spot

    radiance = albedo * irradiance + highlight
    lum = 0.2126 * radiance[0] + 0.7152 * radiance[1] + 0.0722 * radiance[2]
    # Auto exposure on the median pixel, held back where that would blow out the brightest lit surfaces.
    median, bright = np.percentile(lum, [50.0, 98.0])
    scale = min(spec.exposure / max(float(median), 1e-6), 2.0 / max(float(bright), 1e-6))
    linear = radiance * (scale * spec.tint)[:, None] + emission
    # Soft shoulder (bright lamps and windows saturate gracefully), then vignetting.
    linear = 1.0 - np.exp(-linear)
    cols = (np.arange(width) + 0.5 - cx) / f
    rows = (np.arange(height) + 0.5 - cy) / f
    rr = ((cols**2)[None, :] + (rows**2)[:, None]) * (f**2 / (cx**2 + cy**2))
    linear *= (1.0 - spec.vignette * rr).ravel()[None, :]
    # sRGB encoding through a lookup table (cheaper than a power per pixel; 1/16 of a grey level of error), then
    # sensor noise in sRGB units.
    code = _SRGB_LUT[np.clip(linear * (_LUT_SIZE - 1) + 0.5, 0, _LUT_SIZE - 1).astype(np.intp)]
    code += rng.standard_normal(code.shape, dtype=np.float32) * np.float32(spec.noise * 255.0)
    image = np.rint(np.clip(code, 0.0, 255.0)).astype(np.uint8).reshape(3, height, width).transpose(1, 2, 0)

    # Normals to the camera frame (dot products with the camera axes). At grazing angles rounding could tip a
    # normal to face away from the ray; nudge those few toward the viewer.
    ncx = nx * rot[0, 0] + ny * rot[1, 0] + nz * rot[2, 0]
    ncy = nx * rot[0, 1] + ny * rot[1, 1] + nz * rot[2, 1]
    ncz = nx * rot[0, 2] + ny * rot[1, 2] + nz * rot[2, 2]
    rnorm = np.sqrt(rr * ((cx**2 + cy**2) / f**2) + 1.0).ravel()
    rcx = np.broadcast_to(cols[None, :], (height, width)).ravel() / rnorm
    rcy = np.broadcast_to(rows[:, None], (height, width)).ravel() / rnorm
    rcz = 1.0 / rnorm
    facing = ncx * rcx + ncy * rcy + ncz * rcz
    bad = np.flatnonzero(facing > -1e-3)
    if bad.size:
        push = facing[bad] + 1e-3
        ncx[bad] -= push * rcx[bad]
        ncy[bad] -= push * rcy[bad]
        ncz[bad] -= push * rcz[bad]
        norm = np.sqrt(ncx[bad] ** 2 + ncy[bad] ** 2 + ncz[bad] ** 2)
        ncx[bad] /= norm
        ncy[bad] /= norm
        ncz[bad] /= norm
    normals = np.stack([ncx, ncy, ncz], axis=-1).astype(np.float32)

    intrinsics = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=np.float32)
    label_of = np.full(max(spec.categories) + 1, IGNORE_INDEX, dtype=np.uint8)  # instance id -> label
    label_of[list(spec.categories)] = list(spec.categories.values())
    return SyntheticScene(
        image=image,
        depth=t.astype(np.float32).reshape(height, width),
        normals=normals.reshape(height, width, 3),
        semantic=label_of[instance].reshape(height, width),
        scene_class=spec.scene_class,
        intrinsics=intrinsics,
        instance=instance.reshape(height, width),
        instance_categories=dict(spec.categories),
    )


def _floor_occlusion(prims: Sequence[_Prim], x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Ambient occlusion of floor points by the primitives above them: contact shadows that ground the furniture.

    Each primitive darkens the floor near its footprint, less and more softly the higher its underside is.
    """
    out = np.ones_like(x)
    for p in prims:
        bottom = p.center[1] - p.size[1]
        if bottom > 1.2:
            continue
        strength = 0.55 * math.exp(-bottom / 0.6)
        reach = 0.06 + 0.35 * bottom + 0.15 * min(p.size[1], 0.5)
        rx, rz = x - p.center[0], z - p.center[2]
        if p.kind == _BOX:
            c, s = math.cos(p.yaw), math.sin(p.yaw)
            lx, lz = rx * c + rz * s, rz * c - rx * s
            ex = np.maximum(np.abs(lx) - p.size[0], 0.0)
            ez = np.maximum(np.abs(lz) - p.size[2], 0.0)
            d = np.sqrt(ex * ex + ez * ez)
        else:
            r = p.size[0] * (0.6 if p.kind == _SPHERE else 1.0)
            d = np.maximum(np.sqrt(rx * rx + rz * rz) - r, 0.0)
        near = d < reach * 5
        if near.any():
            out[near] *= 1.0 - strength * np.exp(-d[near] / reach)
    return out


def _fixtures(spec: _SceneSpec, x: np.ndarray, z: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Emission ``[n, 3]`` of the ceiling lamps drawn above each point light."""
    shape, radius, color = spec.fixture
    cov = np.zeros_like(x)
    for pos, _ in spec.lights:
        if shape == "disc":
            d = np.sqrt((x - pos[0]) ** 2 + (z - pos[2]) ** 2)
            cov = np.maximum(cov, _span(d, -1.0, radius, fp))
        else:
            cov = np.maximum(cov, _rect(x, z, pos[0] - radius, pos[0] + radius, pos[2] - radius, pos[2] + radius, fp))
    return cov[:, None] * (np.asarray(color) * 3.0)[None, :]


def _ceiling_ids(spec: _SceneSpec, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Instance ids of ceiling points: a lamp's where the point lies on the lamp :func:`_fixtures` draws."""
    shape, radius, _ = spec.fixture
    ids = np.full(x.size, CEILING_ID, dtype=np.int32)
    for (pos, _), lamp in zip(spec.lights, spec.light_ids):
        if shape == "disc":
            on = (x - pos[0]) ** 2 + (z - pos[2]) ** 2 <= radius**2
        else:
            on = (np.abs(x - pos[0]) <= radius) & (np.abs(z - pos[2]) <= radius)
        ids[on] = lamp
    return ids


def _apply_decor(
    dec: _Decor, s: np.ndarray, y: np.ndarray, fp: np.ndarray, col: np.ndarray, emit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Paints a wall item over albedo ``col`` and emission ``emit`` (both ``[n, 3]``)."""
    inside = (s > dec.s0 - 0.1) & (s < dec.s1 + 0.1) & (y > dec.y0 - 0.1) & (y < dec.y1 + 0.1)
    if not inside.any():
        return col, emit
    i = np.flatnonzero(inside)
    ss, yy, ff = s[i], y[i], fp[i]
    c, e = col[i], emit[i]
    outer = _rect(ss, yy, dec.s0, dec.s1, dec.y0, dec.y1, ff)
    c1, c2 = np.asarray(dec.color), np.asarray(dec.color2)
    if dec.kind == "window":
        fw = 0.06
        glass = _rect(ss, yy, dec.s0 + fw, dec.s1 - fw, dec.y0 + fw, dec.y1 - fw, ff)
        mid_s, mid_y = (dec.s0 + dec.s1) / 2, dec.y0 + (dec.y1 - dec.y0) * 0.62
        bars = np.maximum(_span(ss, mid_s - 0.025, mid_s + 0.025, ff), _span(yy, mid_y - 0.025, mid_y + 0.025, ff))
        glass = glass * (1.0 - bars)
        c = _mix(_mix(c, c2, outer), (0.04, 0.045, 0.05), glass)
        sky = c1[None, :] * (2.2 + 1.2 * ((yy - dec.y0) / (dec.y1 - dec.y0)))[:, None]
        e = e + sky * glass[:, None]
    elif dec.kind == "door":
        casing = _rect(ss, yy, dec.s0 - 0.06, dec.s1 + 0.06, dec.y0, dec.y1 + 0.06, ff)
        c = _mix(c, c2, casing)
        leaf = c1[None, :] * (1.0 + 0.06 * _fbm(ss * 2, yy * 20, dec.salt, 3, ff * 20))[:, None]
        c = _mix(c, leaf, outer)
        w, h = dec.s1 - dec.s0, dec.y1 - dec.y0
        panels = np.zeros_like(ss)
        for a, b in ((0.1, 0.45), (0.55, 0.92)):
            inner = _rect(ss, yy, dec.s0 + 0.15 * w, dec.s1 - 0.15 * w, dec.y0 + a * h, dec.y0 + b * h, ff)
            ring = _rect(
                ss,
                yy,
                dec.s0 + 0.15 * w - 0.02,
                dec.s1 - 0.15 * w + 0.02,
                dec.y0 + a * h - 0.02,
                dec.y0 + b * h + 0.02,
                ff,
            )
            panels = np.maximum(panels, ring - inner)
        c = c * (1.0 - 0.3 * panels)[:, None]
        knob = _rect(ss, yy, dec.s1 - 0.1, dec.s1 - 0.06, 0.98, 1.02, ff)
        c = _mix(c, (0.5, 0.45, 0.3), knob)
    elif dec.kind == "picture":
        fw = min(0.05, (dec.s1 - dec.s0) / 8)
        c = _mix(c, c2, outer)
        art = _rect(ss, yy, dec.s0 + fw, dec.s1 - fw, dec.y0 + fw, dec.y1 - fw, ff)
        n1 = _fbm(ss * 2.5, yy * 2.5, dec.salt, 3, ff * 2.5)
        n2 = _fbm(ss * 4.0, yy * 4.0, dec.salt + 1, 2, ff * 4.0)
        other = np.array([c1[1], c1[2], c1[0]])
        content = _mix(
            _mix(np.broadcast_to(c1, (ss.size, 3)), other, np.clip(0.5 + 2 * n1, 0, 1)),
            (0.9, 0.88, 0.8),
            np.clip(0.5 + 2 * n2, 0, 1) * 0.5,
        )
        c = _mix(c, content, art)
    elif dec.kind == "mirror":
        c = _mix(c, c2, outer)
        glass = _rect(ss, yy, dec.s0 + 0.03, dec.s1 - 0.03, dec.y0 + 0.03, dec.y1 - 0.03, ff)
        c = _mix(c, c1 * 0.5, glass)
        e = e + (c1 * 0.5)[None, :] * (glass * (0.8 + 0.3 * (yy - dec.y0) / (dec.y1 - dec.y0)))[:, None]
    else:  # board
        c = _mix(c, c2, outer)
        surf = _rect(ss, yy, dec.s0 + 0.025, dec.s1 - 0.025, dec.y0 + 0.025, dec.y1 - 0.025, ff)
        scribble = np.clip(2.0 * _fbm(ss * 6, yy * 12, dec.salt, 2, ff * 12) - 0.4, 0, 1) * 0.4
        c = _mix(c, c1, surf)
        c = _mix(c, (0.15, 0.2, 0.45), surf * scribble * _span(yy, dec.y0 + 0.3, dec.y1 - 0.2, ff))
    col = col.copy()
    emit = emit.copy()
    col[i], emit[i] = c, e
    return col, emit
