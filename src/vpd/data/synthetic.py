"""Procedural synthetic RGB-D indoor scenes: the project's embedded default data.

Without a real dataset on the machine, the demo trains a small depth network on these scenes on the CPU, so they
must carry the cues real indoor images carry (perspective floor and ceiling, occlusion, shading, cast shadows,
texture gradients) with exact ground truth. Each scene is an axis-aligned room with furniture-like boxes, spheres
and vertical cylinders, lit by point lights near the ceiling, and rendered by vectorised numpy ray casting.

Conventions:
    * World frame: ``x`` and ``z`` horizontal, ``y`` up; the room is ``[0, W] x [0, H] x [0, D]`` metres with the
      floor at ``y = 0``.
    * Camera frame: ``x`` right, ``y`` down, ``z`` forward (OpenCV). Pixel ``(row r, column c)`` has its centre at
      ``(c + 0.5, r + 0.5)`` in the coordinates of the intrinsics ``K``; the principal point is the image centre
      and pixels are square, so a ray through a pixel centre is ``K^-1 [c + 0.5, r + 0.5, 1]``.
    * Depth is z-depth (along the optical axis), not the euclidean distance along the ray.

Everything a scene contains is drawn from ``np.random.default_rng(seed)`` before the resolution is looked at, and
textures are functions of surface coordinates in metres (hashed lattice noise, analytically box-filtered line
patterns), so one seed renders the same scene at every resolution; only the sensor noise depends on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vpd.data.base import PerceptionDataset, Sample, Transform

SCENE_CLASSES: tuple[str, ...] = ("bathroom", "bedroom", "kitchen", "living_room", "office")
"""Room types; each has its own size range, surface styles, palette and furniture mix."""

SEMANTIC_CLASSES: tuple[str, ...] = ("floor", "ceiling", "wall", "box", "sphere", "cylinder")
"""Per-pixel labels of :attr:`SyntheticScene.semantic`."""

_FLOOR, _CEILING, _WALL, _BOX, _SPHERE, _CYLINDER = range(6)
_NUM_ROOM_SURFACES = 6  # surface ids 0..5: floor, ceiling, walls 0..3; primitive k has surface id 6 + k

Color = tuple[float, float, float]


# --------------------------------------------------------------------------------------------------------------
# Public result type and entry point
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """One rendered scene with exact per-pixel ground truth.

    Attributes:
        image: uint8 ``[H, W, 3]`` RGB (sRGB-encoded).
        depth: float32 ``[H, W]`` z-depth in metres along the optical axis, finite and > 0 everywhere.
        normals: float32 ``[H, W, 3]`` unit surface normals in the camera frame (x right, y down, z forward),
            facing the camera (their dot product with the unit viewing ray is <= -1e-3: the rare silhouette pixel
            seen within 0.06 degrees of grazing gets its normal tilted that little toward the camera).
        semantic: uint8 ``[H, W]`` index into :data:`SEMANTIC_CLASSES`.
        scene_class: index into :data:`SCENE_CLASSES`.
        intrinsics: float32 ``[3, 3]`` pinhole matrix ``K`` in pixels of this resolution.
    """

    image: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    semantic: np.ndarray
    scene_class: int
    intrinsics: np.ndarray


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


class SyntheticDataset(PerceptionDataset):
    """A fixed set of procedurally generated rooms, as a :class:`~vpd.data.base.PerceptionDataset`.

    Scene ``i`` is ``render_scene(self.scene_seed(i), height, width)``; per-index seeds come from
    ``np.random.SeedSequence([seed, i])``, so datasets built with different ``seed`` values (train / val) do not
    share scenes. ``load`` returns ``targets = {"depth", "normals": [H, W, 3] float32, "semantic": [H, W] uint8}``.

    Args:
        num_scenes: number of scenes (``len(dataset)``).
        height: image height in pixels.
        width: image width in pixels.
        seed: the dataset seed; also the augmentation seed handed to the transform.
        transform: applied by ``__getitem__`` with a generator seeded by ``(seed, epoch, index)``.
        cache: keep rendered scenes in memory after their first load (rendering is lazy either way).
    """

    class_names = SCENE_CLASSES

    def __init__(
        self,
        num_scenes: int,
        height: int = 240,
        width: int = 320,
        seed: int = 0,
        *,
        transform: Transform | None = None,
        cache: bool = True,
    ) -> None:
        if num_scenes < 1:
            raise ValueError(f"num_scenes must be >= 1, got {num_scenes}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        super().__init__(transform, seed)
        self.num_scenes = num_scenes
        self.height = height
        self.width = width
        self.cache = cache
        self._scenes: dict[int, SyntheticScene] = {}

    def __len__(self) -> int:
        return self.num_scenes

    def scene_seed(self, index: int) -> int:
        """The ``render_scene`` seed of scene ``index`` (a 64-bit integer derived from ``(seed, index)``)."""
        return int(np.random.SeedSequence([self.seed, index]).generate_state(1, dtype=np.uint64)[0])

    def scene(self, index: int) -> SyntheticScene:
        """Scene ``index`` in ``[0, len(self))``, rendered on first use and cached when ``cache`` is set."""
        if not 0 <= index < self.num_scenes:
            raise IndexError(f"scene index {index} out of range [0, {self.num_scenes})")
        scene = self._scenes.get(index)
        if scene is None:
            scene = render_scene(self.scene_seed(index), self.height, self.width)
            if self.cache:
                self._scenes[index] = scene
        return scene

    def load(self, index: int) -> Sample:
        """Scene ``index`` as a :class:`~vpd.data.base.Sample` (copies, so transforms cannot touch the cache)."""
        scene = self.scene(index)
        targets = {"depth": scene.depth.copy(), "normals": scene.normals.copy(), "semantic": scene.semantic.copy()}
        name = f"synthetic_{self.seed}_{index:05d}"
        return Sample(image=scene.image.copy(), targets=targets, class_id=scene.scene_class, name=name)


# --------------------------------------------------------------------------------------------------------------
# Scene description (resolution independent)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Material:
    """A procedural surface pattern evaluated in surface coordinates ``(s, t)`` in metres.

    ``params`` are pattern specific (tile sizes, stripe period, wainscot height, ...), see :func:`_albedo`.
    """

    pattern: str
    color: Color
    color2: Color = (0.0, 0.0, 0.0)
    params: tuple[float, ...] = ()
    specular: float = 0.0
    salt: int = 0


@dataclass(frozen=True)
class _Prim:
    """A box (yaw-rotated about the vertical), sphere or vertical cylinder.

    ``size`` is ``(hx, hy, hz)`` half extents for a box, ``(r, r, r)`` for a sphere, ``(r, half height, r)`` for a
    cylinder; ``center`` is the centre of the shape. ``front`` replaces ``material`` on a box's local ``+z`` face
    (drawer fronts, book spines, screens).
    """

    kind: int
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    material: _Material
    yaw: float = 0.0
    front: _Material | None = None


@dataclass(frozen=True)
class _Decor:
    """A flat item painted on wall ``wall`` over ``[s0, s1] x [y0, y1]`` (wall coordinates in metres)."""

    wall: int
    kind: str
    s0: float
    s1: float
    y0: float
    y1: float
    color: Color
    color2: Color
    salt: int


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
    fixture: tuple[str, float, Color]  # ceiling lamp shape ("disc" / "square"), radius, emitted colour
    ambient: float
    exposure: float  # target tone-mapper input of the median pixel
    tint: np.ndarray  # [3] white-balance multipliers
    vignette: float
    noise: float  # sensor noise std in sRGB units


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


@dataclass(frozen=True)
class _Style:
    """Per room type: size ranges (metres), surface options (pattern, weight) and furniture mix."""

    width: tuple[float, float]
    depth: tuple[float, float]
    height: tuple[float, float]
    floors: tuple[tuple[str, float], ...]
    walls: tuple[tuple[str, float], ...]
    ceilings: tuple[tuple[str, float], ...]
    anchors: tuple[str, ...]  # furniture placed first (what makes the room read as its type)
    extras: tuple[tuple[str, float], ...]  # further furniture, by weight
    groups: tuple[int, int]  # furniture groups, anchors included (inclusive range)
    decor: tuple[tuple[str, float], ...]
    fixture: str


_STYLES: dict[str, _Style] = {
    "bathroom": _Style(
        width=(2.6, 4.0),
        depth=(3.0, 4.5),
        height=(2.4, 2.7),
        floors=(("tiles", 3.0), ("checker", 1.0)),
        walls=(("tiles", 2.0), ("half_tiles", 2.0), ("paint", 0.5)),
        ceilings=(("paint", 1.0),),
        anchors=("bathtub", "sink_cabinet"),
        extras=(("toilet", 3.0), ("cabinet", 1.0), ("bin", 1.5), ("plant", 0.6), ("ball", 0.5), ("stool", 1.0)),
        groups=(4, 7),
        decor=(("mirror", 2.0), ("window", 1.0), ("door", 1.0)),
        fixture="disc",
    ),
    "bedroom": _Style(
        width=(3.2, 5.5),
        depth=(3.5, 6.0),
        height=(2.4, 3.0),
        floors=(("planks", 2.0), ("carpet", 2.0)),
        walls=(("paint", 3.0), ("stripes", 1.0), ("wainscot", 1.0)),
        ceilings=(("paint", 1.0),),
        anchors=("bed",),
        extras=(
            ("nightstand", 3.0),
            ("wardrobe", 2.0),
            ("desk", 1.0),
            ("chair", 1.0),
            ("plant", 0.7),
            ("ball", 0.7),
            ("floor_lamp", 1.0),
            ("cabinet", 1.0),
            ("bookshelf", 0.7),
        ),
        groups=(6, 10),
        decor=(("window", 2.0), ("picture", 2.0), ("door", 1.0)),
        fixture="disc",
    ),
    "kitchen": _Style(
        width=(3.0, 6.0),
        depth=(3.5, 6.5),
        height=(2.4, 3.0),
        floors=(("checker", 2.0), ("tiles", 2.0), ("planks", 1.0), ("concrete", 1.0)),
        walls=(("paint", 2.0), ("half_tiles", 1.5), ("brick", 1.0)),
        ceilings=(("paint", 1.0),),
        anchors=("counter", "fridge"),
        extras=(
            ("counter", 1.5),
            ("table", 2.0),
            ("round_table", 1.0),
            ("chair", 2.0),
            ("stool", 1.5),
            ("plant", 0.7),
            ("bin", 1.0),
            ("cabinet", 1.0),
        ),
        groups=(6, 10),
        decor=(("window", 2.0), ("door", 1.0), ("picture", 0.5)),
        fixture="disc",
    ),
    "living_room": _Style(
        width=(4.5, 8.0),
        depth=(4.5, 8.0),
        height=(2.5, 3.2),
        floors=(("planks", 3.0), ("carpet", 1.5), ("concrete", 0.5)),
        walls=(("paint", 3.0), ("wainscot", 1.0), ("brick", 0.7), ("stripes", 0.7)),
        ceilings=(("paint", 1.0),),
        anchors=("sofa", "coffee_table"),
        extras=(
            ("tv_stand", 2.0),
            ("bookshelf", 1.5),
            ("plant", 1.2),
            ("floor_lamp", 1.5),
            ("ball", 0.7),
            ("round_table", 1.0),
            ("chair", 1.5),
            ("sofa", 0.7),
            ("cabinet", 1.0),
            ("stool", 0.5),
        ),
        groups=(7, 10),
        decor=(("window", 2.0), ("picture", 3.0), ("door", 1.0)),
        fixture="disc",
    ),
    "office": _Style(
        width=(4.0, 7.5),
        depth=(4.0, 7.5),
        height=(2.6, 3.2),
        floors=(("carpet", 3.0), ("tiles", 1.0), ("concrete", 1.0)),
        walls=(("paint", 3.0), ("stripes", 0.3)),
        ceilings=(("panels", 3.0), ("paint", 1.0)),
        anchors=("desk", "chair"),
        extras=(
            ("desk", 2.0),
            ("chair", 2.0),
            ("cabinet", 2.0),
            ("bookshelf", 1.5),
            ("plant", 1.0),
            ("bin", 1.0),
            ("round_table", 0.7),
            ("wardrobe", 0.7),
        ),
        groups=(6, 10),
        decor=(("window", 2.0), ("board", 2.0), ("picture", 1.0), ("door", 1.0)),
        fixture="square",
    ),
}


def _pick(rng: np.random.Generator, options: Sequence[tuple[str, float]]) -> str:
    weights = np.array([w for _, w in options], dtype=np.float64)
    return options[int(rng.choice(len(options), p=weights / weights.sum()))][0]


def _color(rng: np.random.Generator, palette: Sequence[Color], jitter: float = 0.06) -> Color:
    """A palette entry with a small brightness and hue jitter, so two rooms rarely share exact colours."""
    base = np.asarray(palette[int(rng.integers(len(palette)))])
    scale = (1.0 + rng.uniform(-jitter, jitter)) * (1.0 + rng.uniform(-jitter / 2, jitter / 2, size=3))
    r, g, b = (float(v) for v in np.clip(base * scale, 0.005, 0.95))
    return (r, g, b)


def _salt(rng: np.random.Generator) -> int:
    return int(rng.integers(1, 2**31))


# --------------------------------------------------------------------------------------------------------------
# Furniture templates. A template returns its footprint half extents (hx, hz), whether it stands against a wall,
# and its parts in a local frame: x along its width, y up from the floor, z pointing away from the wall it backs
# onto (its back is at z = -hz).
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Furniture:
    hx: float
    hz: float
    wall: bool
    parts: list[_Prim] = field(default_factory=list)

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
    ) -> None:
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

    def sphere(self, x: float, y: float, z: float, r: float, mat: _Material) -> None:
        self.parts.append(_Prim(_SPHERE, (x, y, z), (r, r, r), mat))

    def cylinder(self, x: float, z: float, r: float, y0: float, y1: float, mat: _Material) -> None:
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
    """Puts a few small objects (vase, ball, book stack) on a surface at height ``top``."""
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
            )
        elif kind == 1:
            r = rng.uniform(0.05, 0.11)
            f.sphere(x, top + r, z, r, _Material("solid", _color(rng, _BRIGHT), specular=0.25, salt=_salt(rng)))
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
        f.cylinder(0.0, 0.0, 0.07, h, h + 0.03, _Material("solid", _color(rng, _METAL), specular=0.4))
        f.cylinder(0.0, 0.0, 0.012, h + 0.03, h + 0.3, _Material("solid", _color(rng, _METAL), specular=0.4))
        f.cylinder(0.0, 0.0, rng.uniform(0.1, 0.15), h + 0.22, h + 0.42, _fabric(rng, _BEDDING))
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
        f.box(-0.1, 0.1, h, h + 0.015, -d / 2 + 0.08, -d / 2 + 0.25, dark)
        f.box(-0.02, 0.02, h, h + 0.12, -d / 2 + 0.12, -d / 2 + 0.15, dark)
        f.box(
            -mw / 2,
            mw / 2,
            h + 0.1,
            h + 0.1 + mh,
            -d / 2 + 0.15,
            -d / 2 + 0.18,
            dark,
            _Material("screen", _srgb_to_linear("#1a2230"), params=(1.0, mw / 2, mh / 2), specular=0.5),
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
    f.box(-0.15, 0.15, h, h + 0.02, -0.1, 0.1, dark)
    f.box(-0.03, 0.03, h, h + 0.1, -0.04, 0.0, dark)
    f.box(
        -tw / 2,
        tw / 2,
        h + 0.08,
        h + 0.08 + th,
        -0.04,
        0.0,
        dark,
        _Material("screen", _srgb_to_linear("#15191f"), params=(1.0, tw / 2, th / 2), specular=0.6),
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
    f.cylinder(0.0, 0.0, min(0.2, w / 2 - 0.05), h, h + 0.12, _Material("solid", _color(rng, _CERAMIC), specular=0.5))
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


_TEMPLATES = {
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


# --------------------------------------------------------------------------------------------------------------
# Scene sampling
# --------------------------------------------------------------------------------------------------------------

# Inward normals (x, z) of the walls x = 0, x = W, z = 0, z = D.
_WALL_NORMALS = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))

Rect = tuple[float, float, float, float, float]  # footprint: centre x, centre z, half x, half z, yaw


def _rect_axes(yaw: float) -> tuple[tuple[float, float], tuple[float, float]]:
    c, s = math.cos(yaw), math.sin(yaw)
    return (c, s), (-s, c)  # local x and local z axes in world (x, z)


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


def _transform_parts(furn: _Furniture, rect: Rect) -> list[_Prim]:
    x, z, _, _, yaw = rect
    (ux, uz), (vx, vz) = _rect_axes(yaw)
    out = []
    for p in furn.parts:
        lx, ly, lz = p.center
        center = (x + lx * ux + lz * vx, ly, z + lx * uz + lz * vz)
        out.append(_Prim(p.kind, center, p.size, p.material, yaw if p.kind == _BOX else 0.0, p.front))
    return out


def _inside_prim(p: _Prim, point: np.ndarray, margin: float) -> bool:
    d = point - np.asarray(p.center)
    if p.kind == _SPHERE:
        return bool(np.linalg.norm(d) < p.size[0] + margin)
    if p.kind == _CYLINDER:
        return bool(math.hypot(d[0], d[2]) < p.size[0] + margin and abs(d[1]) < p.size[1] + margin)
    (ux, uz), (vx, vz) = _rect_axes(p.yaw)
    lx, lz = d[0] * ux + d[2] * uz, d[0] * vx + d[2] * vz
    return abs(lx) < p.size[0] + margin and abs(d[1]) < p.size[1] + margin and abs(lz) < p.size[2] + margin


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


def _make_decor(rng: np.random.Generator, style: _Style, room: tuple[float, float, float]) -> tuple[_Decor, ...]:
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
            out.append(_Decor(wall, kind, s0, s0 + w, y0, y1, color, color2, _salt(rng)))
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
    prims: list[_Prim] = []
    for name in names:
        furn = _TEMPLATES[name](rng)
        rect = _place(rng, furn, room, occupied, cam_xz, fwd_xz, hfov)
        if rect is not None:
            prims.extend(_transform_parts(furn, rect))

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
        decor=_make_decor(rng, style, room),
        prims=tuple(prims),
        lights=tuple(lights),
        fixture=fixture,
        ambient=rng.uniform(0.12, 0.3),
        exposure=rng.uniform(0.3, 0.5),
        tint=1.0 + rng.uniform(-0.04, 0.04, size=3),
        vignette=rng.uniform(0.0, 0.3),
        noise=rng.uniform(0.002, 0.01),
    )


# --------------------------------------------------------------------------------------------------------------
# Procedural textures: hashed lattice noise and analytically box-filtered line patterns. ``fp`` is the pixel
# footprint on the surface (metres, or pattern units where scaled), used to fade detail finer than a pixel instead
# of letting it alias, which also keeps low- and high-resolution renders of one scene alike.
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# Ray casting. Rays are given by origin (scalars or arrays) and direction component arrays; every function
# returns the ray parameter of the nearest entry hit beyond ``tmin`` or ``inf``. Origins are outside the shapes.
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------------


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
    semantic = np.zeros(n_px, dtype=np.uint8)
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
            semantic[idx] = _FLOOR if sidx == 0 else _CEILING
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
        for dec in spec.decor:
            if dec.wall == wall:
                col, emit = _apply_decor(dec, s, y, fp, col, emit)
        albedo[:, idx] = col.T
        emission[:, idx] = emit.T
        semantic[idx] = _WALL
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
        semantic[idx] = p.kind  # primitive kinds double as their semantic labels
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
    return SyntheticScene(
        image=image,
        depth=t.astype(np.float32).reshape(height, width),
        normals=normals.reshape(height, width, 3),
        semantic=semantic.reshape(height, width),
        scene_class=spec.scene_class,
        intrinsics=intrinsics,
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
