"""The shapes scenes are built from, and the ray casting against them.

A :class:`_Prim` is a box (yaw-rotated about the vertical), a sphere or a vertical cylinder. This module intersects
rays with them exactly (:func:`_hit`), gives the normal and texture coordinates at a hit (:func:`_prim_normals`),
bounds them on screen (:func:`_screen_rect`) and traces shadow rays (:func:`_shadowed`); all of it vectorised over
rays with numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vpd.data.synthetic.materials import _Material

_BOX, _SPHERE, _CYLINDER = range(3)
"""Values of :attr:`_Prim.kind`."""


@dataclass(frozen=True)
class _Prim:
    """A box (yaw-rotated about the vertical), sphere or vertical cylinder.

    ``size`` is ``(hx, hy, hz)`` half extents for a box, ``(r, r, r)`` for a sphere, ``(r, half height, r)`` for a
    cylinder; ``center`` is the centre of the shape. ``front`` replaces ``material`` on a box's local ``+z`` face
    (drawer fronts, book spines, screens). ``instance`` is the id of the object the primitive belongs to (see
    :mod:`vpd.data.synthetic.categories`); 0 until the piece of furniture it is part of is placed in a room.
    """

    kind: int
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    material: _Material
    yaw: float = 0.0
    front: _Material | None = None
    instance: int = 0


def _rect_axes(yaw: float) -> tuple[tuple[float, float], tuple[float, float]]:
    c, s = math.cos(yaw), math.sin(yaw)
    return (c, s), (-s, c)  # local x and local z axes in world (x, z)


def _inside_prim(p: _Prim, point: np.ndarray, margin: float) -> bool:
    d = point - np.asarray(p.center)
    if p.kind == _SPHERE:
        return bool(np.linalg.norm(d) < p.size[0] + margin)
    if p.kind == _CYLINDER:
        return bool(math.hypot(d[0], d[2]) < p.size[0] + margin and abs(d[1]) < p.size[1] + margin)
    (ux, uz), (vx, vz) = _rect_axes(p.yaw)
    lx, lz = d[0] * ux + d[2] * uz, d[0] * vx + d[2] * vz
    return abs(lx) < p.size[0] + margin and abs(d[1]) < p.size[1] + margin and abs(lz) < p.size[2] + margin


# Ray casting. Rays are given by origin (scalars or arrays) and direction component arrays; every function returns
# the ray parameter of the nearest entry hit beyond ``tmin`` or ``inf``. Origins are outside the shapes.


def _safe(d: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d) < 1e-12, 1e-12, d)


def _hit(
    p: _Prim,
    ox: float | np.ndarray,
    oy: float | np.ndarray,
    oz: float | np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    dz: np.ndarray,
    tmin: float,
) -> np.ndarray:
    rx, ry, rz = ox - p.center[0], oy - p.center[1], oz - p.center[2]
    if p.kind == _BOX:
        hx, hy, hz = p.size
        if p.yaw:
            c, s = math.cos(p.yaw), math.sin(p.yaw)
            rx, rz = rx * c + rz * s, rz * c - rx * s
            dx, dz = dx * c + dz * s, dz * c - dx * s
        near = np.full(np.shape(dx), -np.inf)
        far = np.full(np.shape(dx), np.inf)
        for o, d, h in ((rx, dx, hx), (ry, dy, hy), (rz, dz, hz)):
            inv = 1.0 / _safe(d)
            t1, t2 = (-h - o) * inv, (h - o) * inv
            near = np.maximum(near, np.minimum(t1, t2))
            far = np.minimum(far, np.maximum(t1, t2))
        return np.where((near <= far) & (near > tmin), near, np.inf)
    if p.kind == _SPHERE:
        r = p.size[0]
        a = dx * dx + dy * dy + dz * dz
        b = rx * dx + ry * dy + rz * dz
        disc = b * b - a * (rx * rx + ry * ry + rz * rz - r * r)
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        return np.where((disc >= 0) & (t > tmin), t, np.inf)
    r, hh = p.size[0], p.size[1]
    a = dx * dx + dz * dz
    b = rx * dx + rz * dz
    disc = b * b - a * (rx * rx + rz * rz - r * r)
    ts = (-b - np.sqrt(np.maximum(disc, 0.0))) / np.maximum(a, 1e-12)
    ys = ry + ts * dy
    t = np.where((disc >= 0) & (a > 1e-12) & (ts > tmin) & (np.abs(ys) <= hh), ts, np.inf)
    # The cap facing the origin (only reachable when the origin is above or below the cylinder).
    cap_y = np.where(ry > 0, hh, -hh)
    tc = (cap_y - ry) / _safe(dy)
    xc, zc = rx + tc * dx, rz + tc * dz
    cap = (np.abs(ry) > hh) & (tc > tmin) & (xc * xc + zc * zc <= r * r)
    return np.minimum(t, np.where(cap, tc, np.inf))


def _prim_normals(p: _Prim, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, ...]:
    """World normals ``(nx, ny, nz)`` and face-local texture coordinates ``(s, t)`` and the front-face mask."""
    rx, ry, rz = px - p.center[0], py - p.center[1], pz - p.center[2]
    n = px.size
    front = np.zeros(n, dtype=bool)
    if p.kind == _BOX:
        hx, hy, hz = p.size
        c, s = math.cos(p.yaw), math.sin(p.yaw)
        lx, lz = rx * c + rz * s, rz * c - rx * s
        # The face is the axis where the hit point is relatively closest to the box surface.
        q = np.stack([np.abs(lx) / hx, np.abs(ry) / hy, np.abs(lz) / hz])
        axis = np.argmax(q, axis=0)
        sx, sy, sz = np.sign(lx), np.sign(ry), np.sign(lz)
        on_x, on_y, on_z = axis == 0, axis == 1, axis == 2
        nlx = np.where(on_x, sx, 0.0)
        nlz = np.where(on_z, sz, 0.0)
        nx, nz = nlx * c - nlz * s, nlx * s + nlz * c
        ny = np.where(on_y, sy, 0.0)
        u = np.where(on_x, lz, lx)
        v = np.where(on_y, lz, ry)
        front = on_z & (lz > 0)
        return nx, ny, nz, u, v, front
    r = p.size[0]
    if p.kind == _SPHERE:
        u = r * np.arctan2(rz, rx)
        return rx / r, ry / r, rz / r, u, ry, front
    hh = p.size[1]
    rad = np.sqrt(rx * rx + rz * rz)
    side = np.abs(rad - r) < np.abs(np.abs(ry) - hh)
    safe = np.maximum(rad, 1e-12)
    nx = np.where(side, rx / safe, 0.0)
    nz = np.where(side, rz / safe, 0.0)
    ny = np.where(side, 0.0, np.sign(ry))
    u = np.where(side, r * np.arctan2(rz, rx), rx)
    v = np.where(side, ry, rz)
    return nx, ny, nz, u, v, front


def _aabb(p: _Prim) -> tuple[np.ndarray, np.ndarray]:
    if p.kind == _BOX:
        c, s = abs(math.cos(p.yaw)), abs(math.sin(p.yaw))
        ext = np.array([p.size[0] * c + p.size[2] * s, p.size[1], p.size[0] * s + p.size[2] * c])
    else:
        ext = np.asarray(p.size, dtype=np.float64)
    center = np.asarray(p.center, dtype=np.float64)
    return center - ext, center + ext


def _screen_rect(
    p: _Prim, cam_pos: np.ndarray, cam_rot: np.ndarray, f: float, cx: float, cy: float, height: int, width: int
) -> tuple[int, int, int, int]:
    """Pixel rows/columns ``(r0, r1, c0, c1)`` that can see ``p`` (its projected AABB), to skip the other rays."""
    lo, hi = _aabb(p)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    cam = (corners - cam_pos) @ cam_rot
    if (cam[:, 2] <= 1e-3).any():
        if (cam[:, 2] <= 1e-3).all():
            return 0, 0, 0, 0
        return 0, height, 0, width  # straddles the camera plane: no simple bound
    u = f * cam[:, 0] / cam[:, 2] + cx
    v = f * cam[:, 1] / cam[:, 2] + cy
    c0, c1 = max(0, math.floor(u.min() - 0.5) - 1), min(width, math.ceil(u.max() - 0.5) + 2)
    r0, r1 = max(0, math.floor(v.min() - 0.5) - 1), min(height, math.ceil(v.max() - 0.5) + 2)
    return r0, max(r0, r1), c0, max(c0, c1)


def _shadowed(prims: Sequence[_Prim], light: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """Whether the segment from ``light`` to each point is blocked by a primitive."""
    dx, dy, dz = px - light[0], py - light[1], pz - light[2]
    dist = np.sqrt(dx * dx + dy * dy + dz * dz)
    inv = 1.0 / np.maximum(dist, 1e-9)
    ux, uy, uz = dx * inv, dy * inv, dz * inv
    tmax = 1.0 - 2e-3 * inv  # stop 2 mm before the receiving surface: it is the first hit of a convex shape
    blocked = np.zeros(px.size, dtype=bool)
    for p in prims:
        lo, hi = _aabb(p)
        center = (lo + hi) / 2
        radius = float(np.linalg.norm(hi - lo) / 2)
        cvec = center - light
        cdist = float(np.linalg.norm(cvec))
        # Cull with the cone from the light around the bounding sphere, then ray-test what remains.
        if cdist > radius:
            cos_lim = math.sqrt(1.0 - (radius / cdist) ** 2)
            cand = ~blocked & (dist > cdist - radius)
            cand &= (ux * cvec[0] + uy * cvec[1] + uz * cvec[2]) > cos_lim * cdist
        else:
            cand = ~blocked
        idx = np.flatnonzero(cand)
        if idx.size == 0:
            continue
        t = _hit(p, light[0], light[1], light[2], dx[idx], dy[idx], dz[idx], 0.0)
        blocked[idx[t < tmax[idx]]] = True
    return blocked
