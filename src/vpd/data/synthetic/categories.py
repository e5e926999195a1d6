"""Object categories and instance ids of the synthetic scenes.

Every pixel of a scene belongs to one object, and its ``semantic`` label is that object's category, named exactly as
in ADE20K's class list (:data:`vpd.data.classes.ADE20K_CLASSES`, mmsegmentation's spelling, ``"bed "`` with its
trailing space), so that a segmentation model built for ADE20K's classes can read and predict the labels.
:data:`SEMANTIC_CLASSES` lists the categories the generator can produce, in ADE20K order; a label is an index into
it and :func:`to_ade20k` maps labels to ADE20K class ids.

Instance ids (``SyntheticScene.instance``) are ``>= 1`` and unique within a scene, and are assigned while the scene
is drawn, before the resolution is known, so one seed gives the same ids at every resolution:

    * ``1`` the floor, ``2`` the ceiling, ``3 + w`` wall ``w`` (walls ``x = 0``, ``x = W``, ``z = 0``, ``z = D``);
    * then the furniture in the order it was placed, each piece as a whole, followed by the separate objects that
      came with it (a lamp on a nightstand, a vase on a table, the television on its stand);
    * then the wall decor (windows, doors, pictures, ...);
    * then the ceiling lamps, one per light.
"""

from __future__ import annotations

import numpy as np

from vpd.data.base import IGNORE_INDEX
from vpd.data.classes import ADE20K_CLASSES

_CATEGORY_NAMES = frozenset(
    {
        # room surfaces and what is painted on them
        "wall",
        "floor",
        "ceiling",
        "light",
        "windowpane",
        "door",
        "painting",
        "mirror",
        "bulletin board",
        # furniture
        "bed ",
        "chest of drawers",
        "wardrobe",
        "cabinet",
        "bookcase",
        "desk",
        "chair",
        "table",
        "coffee table",
        "sofa",
        "counter",
        "refrigerator",
        "bathtub",
        "toilet",
        "sink",
        "plant",
        "ball",
        "stool",
        "ashcan",
        "lamp",
        # objects standing on furniture
        "vase",
        "book",
        "monitor",
        "television receiver",
    }
)

SEMANTIC_CLASSES: tuple[str, ...] = tuple(name for name in ADE20K_CLASSES if name in _CATEGORY_NAMES)
"""The ADE20K categories of :attr:`SyntheticScene.semantic`, in ADE20K order; labels index this tuple."""

if len(SEMANTIC_CLASSES) != len(_CATEGORY_NAMES):  # a typo would otherwise drop a category silently
    raise RuntimeError(f"not ADE20K class names: {sorted(_CATEGORY_NAMES - set(SEMANTIC_CLASSES))}")

SEMANTIC_TO_ADE20K: tuple[int, ...] = tuple(ADE20K_CLASSES.index(name) for name in SEMANTIC_CLASSES)
"""The ADE20K class id (index into :data:`~vpd.data.classes.ADE20K_CLASSES`) of each synthetic label."""

FLOOR_ID, CEILING_ID, FIRST_WALL_ID = 1, 2, 3
"""Instance ids of the room surfaces: wall ``w`` is ``FIRST_WALL_ID + w``."""


def label(name: str) -> int:
    """The label (index into :data:`SEMANTIC_CLASSES`) of ADE20K category ``name``.

    Raises:
        ValueError: when ``name`` is not one of :data:`SEMANTIC_CLASSES`.
    """
    try:
        return SEMANTIC_CLASSES.index(name)
    except ValueError:
        raise ValueError(f"{name!r} is not a synthetic category; known: {', '.join(SEMANTIC_CLASSES)}") from None


def to_ade20k(semantic: np.ndarray) -> np.ndarray:
    """Maps synthetic labels to ADE20K class ids (indices into ``ADE20K_CLASSES``); 255 (ignore) stays 255.

    Args:
        semantic: integer labels, indices into :data:`SEMANTIC_CLASSES` or 255, any shape.

    Returns:
        uint8 ADE20K class ids of the same shape.

    Raises:
        ValueError: on a label that is neither a synthetic class nor 255.
    """
    labels = np.asarray(semantic)
    bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= len(SEMANTIC_CLASSES)))
    if bad.any():
        raise ValueError(f"labels must be in [0, {len(SEMANTIC_CLASSES)}) or {IGNORE_INDEX}, got {labels[bad][0]}")
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lut[: len(SEMANTIC_TO_ADE20K)] = SEMANTIC_TO_ADE20K
    return lut[np.where(labels == IGNORE_INDEX, IGNORE_INDEX, labels).astype(np.intp)]
