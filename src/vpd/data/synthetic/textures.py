"""Procedural textures: hashed lattice noise, analytically box-filtered line patterns and the material albedo.

Textures are functions of surface coordinates in metres, so a surface looks the same at every resolution. ``fp`` is
the pixel footprint on the surface (metres, or pattern units where scaled), used to fade detail finer than a pixel
instead of letting it alias, which also keeps low- and high-resolution renders of one scene alike. The lattice
values come from an integer hash, not a random generator, so they are the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vpd.data.synthetic.materials import _Material


def _splitmix64(v: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 (wrapping arithmetic by design)."""
    v = v + np.uint64(0x9E3779B97F4A7C15)
    v = (v ^ (v >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    v = (v ^ (v >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return v ^ (v >> np.uint64(31))


def _lattice_table() -> np.ndarray:
    """A fixed 256 x 256 table of uniform [0, 1) values, padded to 257 x 257 with wrap-around and flattened.

    Looking lattice values up here is several times cheaper than hashing every lattice point; the table comes from
    an integer hash (no random generator), so it is the same on every machine.
    """
    values = (_splitmix64(np.arange(256 * 256, dtype=np.uint64)) >> np.uint64(11)).astype(np.float64) / 2.0**53
    grid = values.reshape(256, 256)
    return np.ascontiguousarray(np.pad(grid, ((0, 1), (0, 1)), mode="wrap")).ravel()


_TABLE = _lattice_table()
_ROW = 257  # row stride of _TABLE


def _offsets(salt: int) -> tuple[int, int]:
    """Per-salt lattice offsets, so differently salted patterns (and neighbouring salts) are decorrelated."""
    h = int(_splitmix64(np.array([salt], dtype=np.uint64))[0])
    return h & 255, (h >> 8) & 255


def _hash01(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) per integer lattice point ``(i, j)`` (periodic over 256 lattice units)."""
    a, b = _offsets(salt)
    return _TABLE[((i.astype(np.int64) + a) & 255) * _ROW + ((j.astype(np.int64) + b) & 255)]


def _value_noise(x: np.ndarray, y: np.ndarray, salt: int) -> np.ndarray:
    """Smooth value noise in [0, 1): bilinear interpolation (smoothstep weights) of lattice values."""
    a, b = _offsets(salt)
    xi, yi = np.floor(x), np.floor(y)
    fx, fy = x - xi, y - yi
    fx = fx * fx * (3.0 - 2.0 * fx)
    fy = fy * fy * (3.0 - 2.0 * fy)
    base = ((xi.astype(np.int64) + a) & 255) * _ROW + ((yi.astype(np.int64) + b) & 255)
    v00, v01 = _TABLE[base], _TABLE[base + 1]
    v10, v11 = _TABLE[base + _ROW], _TABLE[base + _ROW + 1]
    top = v00 + (v10 - v00) * fx
    return top + (v01 + (v11 - v01) * fx - top) * fy


def _fbm(x: np.ndarray, y: np.ndarray, salt: int, octaves: int, fp: np.ndarray) -> np.ndarray:
    """Zero-mean fractal noise in about [-1, 1]; octaves finer than the footprint ``fp`` (noise units) fade out."""
    total = np.zeros_like(x)
    norm = 0.0
    for o in range(octaves):
        freq, amp = 2.0**o, 0.5**o
        fade = np.clip(1.5 - 2.0 * fp * freq, 0.0, 1.0)
        norm += amp
        if not fade.any():
            break
        total += amp * fade * (2.0 * _value_noise(x * freq, y * freq, salt + 7919 * o) - 1.0)
    return total / norm


def _stripe_integral(x: np.ndarray, period: float, width: float) -> np.ndarray:
    k = np.floor(x / period)
    return k * width + np.minimum(x - k * period, width)


def _lines(x: np.ndarray, period: float, width: float, fp: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] of lines of ``width`` centred on multiples of ``period``, box-filtered over ``fp``."""
    fp = np.maximum(fp, 1e-6)
    xs = x + width / 2
    return np.clip(
        (_stripe_integral(xs + fp / 2, period, width) - _stripe_integral(xs - fp / 2, period, width)) / fp, 0.0, 1.0
    )


def _span(x: np.ndarray, a: float | np.ndarray, b: float | np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Box-filtered coverage in [0, 1] of the interval ``[a, b]``."""
    half = np.maximum(fp, 1e-6) / 2
    return np.clip((np.minimum(x + half, b) - np.maximum(x - half, a)) / (2 * half), 0.0, 1.0)


def _rect(s: np.ndarray, t: np.ndarray, s0: float, s1: float, t0: float, t1: float, fp: np.ndarray) -> np.ndarray:
    return _span(s, s0, s1, fp) * _span(t, t0, t1, fp)


def _mix(a: np.ndarray, b: np.ndarray | Sequence[float], m: np.ndarray) -> np.ndarray:
    """Per-pixel blend of colours ``a`` and ``b`` (``[n, 3]`` or ``[3]``) by weight ``m`` ``[n]``."""
    return a + (np.asarray(b) - a) * m[:, None]


def _tiles(
    c1: np.ndarray,
    c2: np.ndarray,
    s: np.ndarray,
    t: np.ndarray,
    tw: float,
    th: float,
    grout: float,
    salt: int,
    fp: np.ndarray,
) -> np.ndarray:
    row = np.floor(t / th)
    jitter = _hash01(np.floor(s / tw), row, salt) - 0.5
    col = c1[None, :] * (1.0 + 0.1 * jitter)[:, None]
    seam = 1.0 - (1.0 - _lines(s, tw, grout, fp)) * (1.0 - _lines(t, th, grout, fp))
    return _mix(col, c2, seam)


def _albedo(m: _Material, s: np.ndarray, t: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Linear RGB albedo ``[n, 3]`` of material ``m`` at surface coordinates ``(s, t)`` (metres)."""
    c1, c2 = np.asarray(m.color), np.asarray(m.color2)
    p, k = m.params, m.pattern
    if k in ("paint", "solid"):
        amp = 0.05 if k == "paint" else 0.03
        f = 1.0 + amp * _fbm(s * 1.3, t * 1.3, m.salt, 3, fp * 1.3) + 0.02 * _fbm(s * 9, t * 9, m.salt + 1, 2, fp * 9)
        return c1[None, :] * f[:, None]
    if k == "stripes":
        period, duty = p
        cov = _lines(s, period, period * duty, fp)
        f = 1.0 + 0.04 * _fbm(s * 1.3, t * 1.3, m.salt, 3, fp * 1.3)
        return _mix(np.broadcast_to(c1, (s.size, 3)), c2, cov) * f[:, None]
    if k == "wainscot":
        top, spacing = p
        f = 1.0 + 0.04 * _fbm(s * 1.3, t * 1.3, m.salt, 3, fp * 1.3)
        col = _mix(np.broadcast_to(c1, (s.size, 3)), c2, _span(t, -1.0, top, fp)) * f[:, None]
        groove = _lines(s, spacing, 0.012, fp) * _span(t, 0.15, top - 0.12, fp)
        groove = np.maximum(groove, _span(t, top - 0.035, top, fp) * 0.6)  # the rail casts a thin dark line
        return col * (1.0 - 0.35 * groove)[:, None]
    if k == "brick":
        bh, bw = p
        row = np.floor(t / bh)
        sp = s + (row % 2) * bw / 2
        tone = _hash01(np.floor(sp / bw), row, m.salt)
        col = c1[None, :] * (0.8 + 0.35 * tone + 0.1 * _fbm(s * 8, t * 8, m.salt, 2, fp * 8))[:, None]
        mortar = 1.0 - (1.0 - _lines(t, bh, 0.012, fp)) * (1.0 - _lines(sp, bw, 0.012, fp))
        return _mix(col, c2, mortar)
    if k == "tiles":
        return _tiles(c1, c2, s, t, p[0], p[1], p[2], m.salt, fp)
    if k == "half_tiles":
        tw, th, grout, top, gr, gg, gb = p
        tiled = _tiles(c2, np.array([gr, gg, gb]), s, t, tw, th, grout, m.salt, fp)
        f = 1.0 + 0.05 * _fbm(s * 1.3, t * 1.3, m.salt, 3, fp * 1.3)
        painted = c1[None, :] * f[:, None]
        edge = np.maximum(_span(t, top - 0.03, top, fp), 0.0)
        return _mix(_mix(painted, tiled, _span(t, -1.0, top, fp)), c2 * 0.8, edge * 0.5)
    if k == "checker":
        size = p[0]
        cs = (_stripe_integral(s + fp / 2, 2 * size, size) - _stripe_integral(s - fp / 2, 2 * size, size)) / np.maximum(
            fp, 1e-6
        )
        ct = (_stripe_integral(t + fp / 2, 2 * size, size) - _stripe_integral(t - fp / 2, 2 * size, size)) / np.maximum(
            fp, 1e-6
        )
        cs, ct = np.clip(cs, 0, 1), np.clip(ct, 0, 1)
        col = _mix(np.broadcast_to(c1, (s.size, 3)), c2, cs * (1 - ct) + ct * (1 - cs))
        f = 1.0 + 0.04 * _fbm(s * 3, t * 3, m.salt, 2, fp * 3)
        return col * f[:, None]
    if k == "planks":
        w, length = p
        row = np.floor(t / w)
        sp = s + _hash01(row, row * 0, m.salt) * length
        tone = _hash01(np.floor(sp / length), row, m.salt + 1)
        grain = _fbm(sp * 1.5, t * 30.0, m.salt + 2, 3, fp * 30.0)
        col = _mix(np.broadcast_to(c1, (s.size, 3)), c2, tone) * (1.0 + 0.15 * grain)[:, None]
        seam = 1.0 - (1.0 - _lines(t, w, 0.004, fp)) * (1.0 - _lines(sp, length, 0.004, fp))
        return col * (1.0 - 0.55 * seam)[:, None]
    if k == "carpet":
        f = 1.0 + 0.07 * _fbm(s * 2, t * 2, m.salt, 3, fp * 2) + 0.12 * _fbm(s * 50, t * 50, m.salt + 1, 2, fp * 50)
        return c1[None, :] * f[:, None]
    if k == "concrete":
        f = (
            1.0
            + 0.12 * _fbm(s * 0.8, t * 0.8, m.salt, 4, fp * 0.8)
            + 0.05 * _fbm(s * 15, t * 15, m.salt + 1, 2, fp * 15)
        )
        return c1[None, :] * f[:, None]
    if k == "panels":
        size, line = p
        f = 1.0 + 0.03 * _fbm(s * 6, t * 6, m.salt, 2, fp * 6)
        seam = 1.0 - (1.0 - _lines(s, size, line, fp)) * (1.0 - _lines(t, size, line, fp))
        return _mix(c1[None, :] * f[:, None], c2, seam)
    if k == "wood":
        grain = _fbm(s * 2.0, t * 25.0, m.salt, 3, fp * 25.0)
        return c1[None, :] * (1.0 + 0.12 * grain + 0.06 * _fbm(s * 0.7, t * 0.7, m.salt + 1, 2, fp))[:, None]
    if k == "fabric":
        f = 1.0 + 0.05 * _fbm(s * 3, t * 3, m.salt, 2, fp * 3) + 0.08 * _fbm(s * 60, t * 60, m.salt + 1, 2, fp * 60)
        return c1[None, :] * f[:, None]
    if k == "leaves":
        clumps = _fbm(s * 10, t * 10, m.salt, 3, fp * 10)
        return (
            _mix(np.broadcast_to(c1, (s.size, 3)), c2, np.clip(0.5 + clumps, 0, 1))
            * (0.75 + 0.5 * np.clip(0.5 + 1.5 * _fbm(s * 25, t * 25, m.salt + 1, 2, fp * 25), 0, 1))[:, None]
        )
    if k in ("doors", "drawers"):
        n, hx, hy = int(p[0]), p[1], p[2]
        col = c1[None, :] * (1.0 + 0.03 * _fbm(s * 2, t * 2, m.salt, 2, fp * 2))[:, None]
        if k == "doors":
            pitch = 2 * hx / n
            seam = _lines(s + hx, pitch, 0.008, fp)
            handle = np.zeros_like(s)
            for i in range(n):
                hs = -hx + (i + (0.85 if i % 2 == 0 else 0.15)) * pitch
                handle = np.maximum(handle, _rect(s, t, hs - 0.012, hs + 0.012, hy * 0.1, hy * 0.1 + 0.12, fp))
        else:
            pitch = 2 * hy / n
            seam = _lines(t + hy, pitch, 0.008, fp)
            handle = np.zeros_like(s)
            for i in range(n):
                ht = -hy + (i + 0.75) * pitch
                handle = np.maximum(handle, _rect(s, t, -0.08, 0.08, ht - 0.01, ht + 0.01, fp))
        col = col * (1.0 - 0.6 * seam)[:, None]
        return _mix(col, (0.35, 0.35, 0.36), handle)
    if k == "books":
        shelf, hx, hy = p
        frame = np.maximum(_span(np.abs(s), hx - 0.025, hx + 1.0, fp), _span(t, hy - 0.025, hy + 1.0, fp))
        tr = t + hy
        row = np.floor(tr / shelf)
        board = _lines(tr, shelf, 0.05, fp)
        bid = np.floor(s / 0.035 + _hash01(row, row * 0, m.salt) * 50.0)
        r, g, b = (_hash01(bid, row, m.salt + i) for i in range(3))
        spine = np.stack([0.08 + 0.45 * r, 0.06 + 0.35 * g, 0.05 + 0.35 * b], axis=1)
        book_top = (np.floor(tr / shelf) + 0.55 + 0.35 * _hash01(bid, row, m.salt + 5)) * shelf
        back = c1 * 0.25
        col = _mix(spine, back, _span(tr, book_top, 1e3, fp))
        # Fine book edges would alias: blend the spine colours toward their mean where a book is sub-pixel.
        col = _mix(col, np.array([0.3, 0.22, 0.2]), np.clip(fp / 0.035 - 0.5, 0.0, 1.0) * 0.7)
        return _mix(_mix(col, c1, board), c1, frame)
    if k == "screen":
        hy = p[2]
        f = 0.8 + 0.4 * (t + hy) / (2 * hy)
        return c1[None, :] * f[:, None]
    raise ValueError(f"unknown pattern {k!r}")
