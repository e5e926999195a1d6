"""Procedural synthetic RGB-D indoor scenes: the project's embedded default data.

Without a real dataset on the machine, the demo trains a small depth network on these scenes on the CPU, so they
must carry the cues real indoor images carry (perspective floor and ceiling, occlusion, shading, cast shadows,
texture gradients) with exact ground truth. Each scene is an axis-aligned room with furniture built of boxes,
spheres and vertical cylinders, lit by point lights near the ceiling, and rendered by vectorised numpy ray casting.
Besides depth and normals, every pixel is labelled with the ADE20K category of the object it shows and that
object's instance id.

The parts:
    * :mod:`~vpd.data.synthetic.styles`: the room types (scene classes), their sizes, finishes and furniture mix;
    * :mod:`~vpd.data.synthetic.materials`: colour palettes and materials, and the choice of wall and floor finish;
    * :mod:`~vpd.data.synthetic.textures`: procedural textures (lattice noise, filtered line patterns, albedo);
    * :mod:`~vpd.data.synthetic.primitives`: boxes, spheres, cylinders and ray casting against them;
    * :mod:`~vpd.data.synthetic.furniture`: the furniture templates and their categories;
    * :mod:`~vpd.data.synthetic.categories`: the ADE20K categories, instance-id numbering, the ADE20K mapping;
    * :mod:`~vpd.data.synthetic.layout`: drawing a room's layout (camera, furniture placement, lights, decor);
    * :mod:`~vpd.data.synthetic.render`: shading and rendering, :class:`SyntheticScene` and :func:`render_scene`;
    * :mod:`~vpd.data.synthetic.dataset`: :class:`SyntheticDataset`;
    * :mod:`~vpd.data.synthetic.referring`: referring expressions and :class:`SyntheticReferringDataset`.

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

from vpd.data.synthetic.categories import SEMANTIC_CLASSES, SEMANTIC_TO_ADE20K, to_ade20k
from vpd.data.synthetic.dataset import SyntheticDataset
from vpd.data.synthetic.furniture import FURNITURE_CATEGORIES
from vpd.data.synthetic.layout import DECOR_CATEGORIES
from vpd.data.synthetic.materials import _Material as _Material
from vpd.data.synthetic.primitives import _BOX as _BOX
from vpd.data.synthetic.primitives import _CYLINDER as _CYLINDER
from vpd.data.synthetic.primitives import _SPHERE as _SPHERE
from vpd.data.synthetic.primitives import _hit as _hit
from vpd.data.synthetic.primitives import _Prim as _Prim
from vpd.data.synthetic.primitives import _prim_normals as _prim_normals
from vpd.data.synthetic.primitives import _shadowed as _shadowed
from vpd.data.synthetic.referring import SyntheticReferringDataset
from vpd.data.synthetic.render import SyntheticScene, render_scene
from vpd.data.synthetic.styles import SCENE_CLASSES

__all__ = [
    "DECOR_CATEGORIES",
    "FURNITURE_CATEGORIES",
    "SCENE_CLASSES",
    "SEMANTIC_CLASSES",
    "SEMANTIC_TO_ADE20K",
    "SyntheticDataset",
    "SyntheticReferringDataset",
    "SyntheticScene",
    "render_scene",
    "to_ade20k",
]
