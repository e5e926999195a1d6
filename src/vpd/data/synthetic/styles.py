"""Room types: the scene classes and, per class, its size ranges, surface finishes, furniture mix and decor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SCENE_CLASSES: tuple[str, ...] = ("bathroom", "bedroom", "kitchen", "living_room", "office")
"""Room types; each has its own size range, surface styles, palette and furniture mix."""


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
