"""Referring expressions for the synthetic scenes: sentences that name exactly one visible object of a room.

For each scene a *scene graph* is built from its instance, category, image and depth maps (:func:`scene_graph`):
every instance with at least ``present_fraction`` of the image's pixels, with its category, pixel count, centroid,
mean depth, colour name (its mean image colour mapped to a small palette) and the instances it touches in the image.
Candidate expressions are then proposed for the *eligible* objects (furniture, objects on it, wall decor and lamps
with at least ``min_fraction`` of the pixels) and each is kept only if :func:`resolve`, which evaluates the
expression's meaning on the scene graph, returns exactly its target. The kinds:

    * ``category``: ``"the sofa"`` (the only sofa in view);
    * ``colour``: ``"the red chair"`` (no other chair in view has that colour name);
    * ``position``: ``"the chair on the left / on the right / in the middle"`` (horizontal centroids, with a margin);
    * ``depth``: ``"the nearest / farthest chair"`` (mean z-depth, with a relative margin);
    * ``size``: ``"the largest / smallest chair"`` (pixel counts, with a ratio margin);
    * ``relation``: ``"the chair next to the table"`` (the only chair touching the only table in view).

Superlatives and positions are only proposed among two or more objects of the category, colours among two or more
too, so those kinds need the attribute to disambiguate. "In view" counts every instance above ``present_fraction``
(0.2% of the image by default), so a small visible piece of a second chair makes "the chair" ambiguous.

Everything is a function of the rendered scene and ``(seed, scene index)``, so a dataset is deterministic.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vpd.data.base import PerceptionDataset, Sample, Transform
from vpd.data.synthetic.categories import CEILING_ID, FIRST_WALL_ID, FLOOR_ID, SEMANTIC_CLASSES
from vpd.data.synthetic.dataset import SyntheticDataset
from vpd.data.synthetic.render import SyntheticScene

__all__ = [
    "EXPRESSION_KINDS",
    "ReferringExpression",
    "SceneObject",
    "SyntheticReferringDataset",
    "colour_name",
    "display_name",
    "generate_expressions",
    "resolve",
    "scene_graph",
    "vocabulary",
]

#: The colour names of :func:`colour_name`.
COLOUR_NAMES = ("black", "white", "grey", "brown", "red", "orange", "yellow", "green", "blue", "purple", "pink")

#: The expression kinds, in the order they are described above.
EXPRESSION_KINDS: tuple[str, ...] = ("category", "colour", "position", "depth", "size", "relation")

_SURFACE_IDS = frozenset({FLOOR_ID, CEILING_ID, *(FIRST_WALL_ID + w for w in range(4))})

#: How ADE20K category names read in a sentence (others: the name without surrounding spaces).
_DISPLAY = {
    "windowpane": "window",
    "television receiver": "television",
    "ashcan": "trash can",
    "bed ": "bed",
}

# Margins that make an attribute clearly true of one object and not of another.
_POSITION_MARGIN = 0.08  # of the image width, between horizontal centroids
_DEPTH_MARGIN = 0.15  # relative difference of mean depths
_SIZE_RATIO = 1.5  # ratio of pixel counts


def display_name(category: str) -> str:
    """How an ADE20K category (as in :data:`SEMANTIC_CLASSES`) reads in an expression: ``"windowpane"`` -> window."""
    return _DISPLAY.get(category, category.strip())


def colour_name(rgb: np.ndarray | tuple[float, float, float]) -> str:
    """The name of an sRGB colour (0-255) in a small palette: black, white, grey, brown, red, orange, yellow, green,
    blue, purple, pink."""
    r, g, b = (float(c) / 255.0 for c in rgb)
    hue, saturation, value = colorsys.rgb_to_hsv(r, g, b)
    degrees = hue * 360.0
    if value < 0.2:
        return "black"
    if saturation < 0.18:
        return "white" if value > 0.8 else "grey"
    if 10.0 <= degrees < 45.0 and value < 0.65:
        return "brown"
    if degrees < 12.0 or degrees >= 340.0:
        return "red"
    if degrees < 40.0:
        return "orange"
    if degrees < 70.0:
        return "yellow"
    if degrees < 165.0:
        return "green"
    if degrees < 255.0:
        return "blue"
    if degrees < 295.0:
        return "purple"
    return "pink"


@dataclass(frozen=True)
class SceneObject:
    """One visible instance of a scene.

    Attributes:
        id: the instance id.
        category: the ADE20K category name (an entry of :data:`SEMANTIC_CLASSES`).
        pixels: visible pixel count.
        cx: horizontal centroid, as a fraction of the image width (0 left, 1 right).
        depth: mean z-depth of its pixels in metres.
        colour: :func:`colour_name` of its mean image colour.
        neighbours: ids of the non-surface objects it touches in the image (4-connected).
        surface: the floor, the ceiling or a wall.
    """

    id: int
    category: str
    pixels: int
    cx: float
    depth: float
    colour: str
    neighbours: frozenset[int] = field(default_factory=frozenset)
    surface: bool = False


@dataclass(frozen=True)
class ReferringExpression:
    """An expression and the instance it names.

    Attributes:
        text: the sentence.
        target: the instance id it names.
        kind: one of :data:`EXPRESSION_KINDS`.
        category: the target's ADE20K category name.
        attribute: the colour name, ``left``/``right``/``middle``, ``nearest``/``farthest``, ``largest``/``smallest``
            or, for ``relation``, the other object's category; None for ``category``.
    """

    text: str
    target: int
    kind: str
    category: str
    attribute: str | None = None


def scene_graph(
    instance: np.ndarray,
    instance_categories: dict[int, int],
    image: np.ndarray,
    depth: np.ndarray,
    present_fraction: float = 0.002,
) -> dict[int, SceneObject]:
    """The visible objects of a scene (at least ``present_fraction`` of its pixels), by instance id."""
    height, width = instance.shape
    total = instance.size
    ids, counts = np.unique(instance, return_counts=True)
    present = {int(i): int(c) for i, c in zip(ids, counts) if c >= max(1.0, present_fraction * total)}
    objects = {i for i in present if i not in _SURFACE_IDS}
    # Touching pairs: 4-connected pixel neighbours with different ids, both non-surface present objects.
    touching: dict[int, set[int]] = {i: set() for i in present}
    for a, b in ((instance[:, :-1], instance[:, 1:]), (instance[:-1, :], instance[1:, :])):
        differ = a != b
        if not differ.any():
            continue
        pairs = np.unique(np.stack([a[differ], b[differ]], axis=1), axis=0)
        for p, q in ((int(x), int(y)) for x, y in pairs):
            if p in objects and q in objects:
                touching[p].add(q)
                touching[q].add(p)
    cols = np.broadcast_to(np.arange(width, dtype=np.float64) + 0.5, (height, width))
    flat = instance.ravel()
    index = np.searchsorted(ids, flat)
    sums_x = np.bincount(index, weights=cols.ravel(), minlength=ids.size)
    sums_d = np.bincount(index, weights=depth.astype(np.float64).ravel(), minlength=ids.size)
    sums_rgb = [
        np.bincount(index, weights=image[..., c].astype(np.float64).ravel(), minlength=ids.size) for c in range(3)
    ]
    graph: dict[int, SceneObject] = {}
    for k, i in enumerate(ids.tolist()):
        if i not in present:
            continue
        n = float(counts[k])
        mean_rgb = (sums_rgb[0][k] / n, sums_rgb[1][k] / n, sums_rgb[2][k] / n)
        graph[i] = SceneObject(
            id=i,
            category=SEMANTIC_CLASSES[instance_categories[i]],
            pixels=int(counts[k]),
            cx=float(sums_x[k] / n / width),
            depth=float(sums_d[k] / n),
            colour=colour_name(mean_rgb),
            neighbours=frozenset(touching[i]),
            surface=i in _SURFACE_IDS,
        )
    return graph


def _of_category(graph: dict[int, SceneObject], category: str) -> list[SceneObject]:
    return [o for o in graph.values() if o.category == category]


def resolve(graph: dict[int, SceneObject], expression: ReferringExpression) -> list[int]:
    """The ids of the scene graph's objects that ``expression`` can mean (sorted); exactly one when it is unambiguous.

    Superlatives and positions return every object within the margin of the extreme (so a near tie gives several);
    ``relation`` returns ``[]`` when the other category is not a single object in view.
    """
    same = _of_category(graph, expression.category)
    kind, attribute = expression.kind, expression.attribute
    chosen: list[SceneObject]
    if kind == "category":
        chosen = same
    elif kind == "colour":
        chosen = [o for o in same if o.colour == attribute]
    elif kind == "position":
        xs = sorted(o.cx for o in same)
        if attribute == "left":
            chosen = [o for o in same if o.cx < xs[0] + _POSITION_MARGIN]
        elif attribute == "right":
            chosen = [o for o in same if o.cx > xs[-1] - _POSITION_MARGIN]
        elif attribute == "middle":
            if len(same) != 3:
                return sorted(o.id for o in same)
            ordered = sorted(same, key=lambda o: o.cx)
            clear = (
                ordered[1].cx - ordered[0].cx >= _POSITION_MARGIN and ordered[2].cx - ordered[1].cx >= _POSITION_MARGIN
            )
            chosen = [ordered[1]] if clear else same
        else:
            raise ValueError(f"unknown position {attribute!r}")
    elif kind == "depth":
        depths = [o.depth for o in same]
        if attribute == "nearest":
            chosen = [o for o in same if o.depth < min(depths) * (1.0 + _DEPTH_MARGIN)]
        elif attribute == "farthest":
            chosen = [o for o in same if o.depth > max(depths) / (1.0 + _DEPTH_MARGIN)]
        else:
            raise ValueError(f"unknown depth attribute {attribute!r}")
    elif kind == "size":
        sizes = [o.pixels for o in same]
        if attribute == "largest":
            chosen = [o for o in same if o.pixels * _SIZE_RATIO > max(sizes)]
        elif attribute == "smallest":
            chosen = [o for o in same if o.pixels < min(sizes) * _SIZE_RATIO]
        else:
            raise ValueError(f"unknown size attribute {attribute!r}")
    elif kind == "relation":
        others = _of_category(graph, str(attribute))
        if len(others) != 1 or attribute == expression.category:
            return []
        chosen = [o for o in same if others[0].id in o.neighbours]
    else:
        raise ValueError(f"unknown expression kind {kind!r}; known: {', '.join(EXPRESSION_KINDS)}")
    return sorted(o.id for o in chosen)


def _text(kind: str, category: str, attribute: str | None) -> str:
    name = display_name(category)
    if kind == "category":
        return f"the {name}"
    if kind == "colour":
        return f"the {attribute} {name}"
    if kind == "position":
        return f"the {name} in the middle" if attribute == "middle" else f"the {name} on the {attribute}"
    if kind in ("depth", "size"):
        return f"the {attribute} {name}"
    return f"the {name} next to the {display_name(str(attribute))}"


def vocabulary() -> tuple[str, ...]:
    """Every word an expression can contain (the grammar of :func:`_text` over all categories, colours and
    attributes), sorted: what a tokenizer for the synthetic expressions needs (the CPU demo's tiny CLIP)."""
    words = {"the", "in", "middle", "on", "left", "right", "next", "to", "nearest", "farthest", "largest", "smallest"}
    words.update(COLOUR_NAMES)
    for category in SEMANTIC_CLASSES:
        words.update(display_name(category).split())
    return tuple(sorted(words))


def _propose(graph: dict[int, SceneObject], target: SceneObject) -> list[tuple[str, str | None]]:
    same = _of_category(graph, target.category)
    proposals: list[tuple[str, str | None]] = [("category", None)]
    if len(same) >= 2:
        proposals.append(("colour", target.colour))
        proposals += [("position", p) for p in ("left", "right", "middle")]
        proposals += [("depth", d) for d in ("nearest", "farthest")]
        proposals += [("size", s) for s in ("largest", "smallest")]
    for other in sorted({graph[n].category for n in target.neighbours if n in graph}):
        if other != target.category:
            proposals.append(("relation", other))
    return proposals


def generate_expressions(
    graph: dict[int, SceneObject], total_pixels: int, min_fraction: float = 0.01, surfaces: bool = False
) -> list[ReferringExpression]:
    """Every unambiguous expression (verified with :func:`resolve`) for the graph's eligible objects.

    Args:
        graph: :func:`scene_graph` of the scene.
        total_pixels: the image's pixel count.
        min_fraction: the least share of the image a target must cover.
        surfaces: target the floor, ceiling and walls instead of the objects (a fallback for empty rooms).

    Returns:
        Expressions sorted by target id, then in the order of :data:`EXPRESSION_KINDS`.
    """
    found: list[ReferringExpression] = []
    for target in sorted(graph.values(), key=lambda o: o.id):
        if target.surface != surfaces or target.pixels < min_fraction * total_pixels:
            continue
        for kind, attribute in _propose(graph, target):
            expression = ReferringExpression(
                _text(kind, target.category, attribute), target.id, kind, target.category, attribute
            )
            if resolve(graph, expression) == [target.id]:
                found.append(expression)
    return found


def _pick(expressions: list[ReferringExpression], count: int, rng: np.random.Generator) -> list[ReferringExpression]:
    """``count`` expressions, spread over kinds (round-robin in a random kind order) and, within a kind, over
    targets; cycles when the scene has fewer."""
    by_kind: dict[str, list[ReferringExpression]] = {}
    for e in expressions:
        by_kind.setdefault(e.kind, []).append(e)
    for kind in by_kind:
        order = rng.permutation(len(by_kind[kind]))
        by_kind[kind] = [by_kind[kind][int(i)] for i in order]
    kinds = [k for k in EXPRESSION_KINDS if k in by_kind]
    kinds = [kinds[int(i)] for i in rng.permutation(len(kinds))]
    chosen: list[ReferringExpression] = []
    while len(chosen) < count and any(by_kind[k] for k in kinds):
        for kind in kinds:
            if by_kind[kind] and len(chosen) < count:
                chosen.append(by_kind[kind].pop())
    base = list(chosen)
    while len(chosen) < count:
        chosen.append(base[len(chosen) % len(base)])
    return chosen


class SyntheticReferringDataset(PerceptionDataset):
    """Synthetic rooms (:class:`~vpd.data.synthetic.SyntheticDataset`'s scenes) with referring expressions.

    Sample ``i`` is expression ``i % expressions_per_scene`` of scene ``i // expressions_per_scene``; each scene's
    expressions are drawn by a generator seeded with ``(seed, scene index)`` from :func:`generate_expressions`,
    spread over the kinds and targets (repeated when a scene has fewer unambiguous ones; a room with no eligible
    object falls back to its floor, ceiling or walls).

    Args:
        num_scenes: number of scenes.
        height: image height.
        width: image width.
        seed: the dataset seed (scenes as ``SyntheticDataset(seed=seed)``; augmentation seed).
        expressions_per_scene: samples per scene.
        transform: paired augmentation.
        min_fraction: the least share of the image a target covers.
        present_fraction: the least share of the image an object needs to count as in view (for ambiguity).
        cache: keep rendered scenes and their expressions in memory.

    Samples: ``image`` uint8 ``[H, W, 3]``; ``targets["mask"]`` uint8 ``[H, W]`` 0 / 1 (the target instance);
    ``text`` the expression; ``name`` ``"synthetic_ref_<seed>_<scene>_<k>"``; ``meta`` ``category`` (as written in
    the expression), ``kind``, ``attribute``, ``target_id``, ``scene``. For baselines,
    :meth:`largest_object_mask` and :meth:`largest_of_category_mask` give the masks of two text-blind / text-light
    guesses.
    """

    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        num_scenes: int,
        height: int = 240,
        width: int = 320,
        seed: int = 0,
        expressions_per_scene: int = 3,
        transform: Transform | None = None,
        *,
        min_fraction: float = 0.01,
        present_fraction: float = 0.002,
        cache: bool = True,
    ) -> None:
        if expressions_per_scene < 1:
            raise ValueError(f"expressions_per_scene must be >= 1, got {expressions_per_scene}")
        if not 0.0 <= present_fraction <= min_fraction <= 1.0:
            raise ValueError(
                f"need 0 <= present_fraction <= min_fraction <= 1, got {present_fraction} and {min_fraction}"
            )
        super().__init__(transform=transform, seed=seed)
        self.scenes = SyntheticDataset(num_scenes, height, width, seed, cache=cache)
        self.expressions_per_scene = expressions_per_scene
        self.min_fraction = min_fraction
        self.present_fraction = present_fraction
        self.cache = cache
        self._expressions: dict[int, tuple[dict[int, SceneObject], list[ReferringExpression]]] = {}

    def __len__(self) -> int:
        return len(self.scenes) * self.expressions_per_scene

    def scene(self, scene_index: int) -> SyntheticScene:
        """The rendered scene ``scene_index``."""
        return self.scenes.scene(scene_index)

    def graph(self, scene_index: int) -> dict[int, SceneObject]:
        """:func:`scene_graph` of scene ``scene_index``."""
        return self._scene_expressions(scene_index)[0]

    def expressions(self, scene_index: int) -> list[ReferringExpression]:
        """The ``expressions_per_scene`` expressions of scene ``scene_index``."""
        return self._scene_expressions(scene_index)[1]

    def _scene_expressions(self, scene_index: int) -> tuple[dict[int, SceneObject], list[ReferringExpression]]:
        cached = self._expressions.get(scene_index)
        if cached is not None:
            return cached
        scene = self.scene(scene_index)
        graph = scene_graph(scene.instance, scene.instance_categories, scene.image, scene.depth, self.present_fraction)
        candidates = generate_expressions(graph, scene.instance.size, self.min_fraction)
        if not candidates:
            candidates = generate_expressions(graph, scene.instance.size, self.min_fraction, surfaces=True)
        if not candidates:
            raise RuntimeError(
                f"synthetic scene {scene_index} (seed {self.seed}) has no unambiguous object to refer to"
            )
        rng = np.random.default_rng([self.seed, scene_index, 0x5EF])
        result = (graph, _pick(candidates, self.expressions_per_scene, rng))
        if self.cache:
            self._expressions[scene_index] = result
        return result

    def expression(self, index: int) -> tuple[int, ReferringExpression]:
        """``(scene index, expression)`` of sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} out of range [0, {len(self)})")
        scene_index, k = divmod(index, self.expressions_per_scene)
        return scene_index, self.expressions(scene_index)[k]

    def load(self, index: int) -> Sample:
        scene_index, expression = self.expression(index)
        scene = self.scene(scene_index)
        mask = (scene.instance == expression.target).astype(np.uint8)
        meta: dict[str, Any] = {
            "category": display_name(expression.category),
            "kind": expression.kind,
            "attribute": display_name(expression.attribute)
            if expression.kind == "relation" and expression.attribute is not None
            else expression.attribute,
            "target_id": expression.target,
            "scene": scene_index,
        }
        name = f"synthetic_ref_{self.seed}_{scene_index:05d}_{index % self.expressions_per_scene}"
        return Sample(image=scene.image.copy(), targets={"mask": mask}, text=expression.text, name=name, meta=meta)

    def largest_object_mask(self, index: int) -> np.ndarray:
        """Baseline: the mask (uint8 0 / 1) of the largest object in view of sample ``index``'s image, ignoring the
        text (floor, ceiling and walls excluded unless the room shows nothing else)."""
        scene_index, _ = self.expression(index)
        graph = self.graph(scene_index)
        objects = [o for o in graph.values() if not o.surface] or list(graph.values())
        best = max(objects, key=lambda o: (o.pixels, -o.id))
        return (self.scene(scene_index).instance == best.id).astype(np.uint8)

    def largest_of_category_mask(self, index: int) -> np.ndarray:
        """Baseline: the mask (uint8 0 / 1) of the largest object in view of the category sample ``index`` names."""
        scene_index, expression = self.expression(index)
        same = _of_category(self.graph(scene_index), expression.category)
        best = max(same, key=lambda o: (o.pixels, -o.id))
        return (self.scene(scene_index).instance == best.id).astype(np.uint8)
