"""The synthetic scenes as a dataset: a fixed, lazily rendered set of rooms with per-index seeds."""

from __future__ import annotations

import numpy as np

from vpd.data.base import PerceptionDataset, Sample, Transform
from vpd.data.synthetic.categories import SEMANTIC_CLASSES
from vpd.data.synthetic.render import SyntheticScene, render_scene
from vpd.data.synthetic.styles import SCENE_CLASSES


class SyntheticDataset(PerceptionDataset):
    """A fixed set of procedurally generated rooms, as a :class:`~vpd.data.base.PerceptionDataset`.

    Scene ``i`` is ``render_scene(self.scene_seed(i), height, width)``; per-index seeds come from
    ``np.random.SeedSequence([seed, i])``, so datasets built with different ``seed`` values (train / val) do not
    share scenes. ``load`` returns ``targets = {"depth", "normals": [H, W, 3] float32, "semantic": [H, W] uint8,
    "instance": [H, W] int32}`` and ``meta = {"instance_categories": {instance id: label}}`` (see
    :class:`~vpd.data.synthetic.render.SyntheticScene`).

    ``class_names`` are the room types (the scene classes depth conditions on); ``semantic_class_names`` are the
    ADE20K categories that ``semantic`` indexes, for building a segmentation model.

    Args:
        num_scenes: number of scenes (``len(dataset)``).
        height: image height in pixels.
        width: image width in pixels.
        seed: the dataset seed; also the augmentation seed handed to the transform.
        transform: applied by ``__getitem__`` with a generator seeded by ``(seed, epoch, index)``.
        cache: keep rendered scenes in memory after their first load (rendering is lazy either way).
    """

    class_names = SCENE_CLASSES
    semantic_class_names = SEMANTIC_CLASSES

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
        targets = {
            "depth": scene.depth.copy(),
            "normals": scene.normals.copy(),
            "semantic": scene.semantic.copy(),
            "instance": scene.instance.copy(),
        }
        name = f"synthetic_{self.seed}_{index:05d}"
        meta = {"instance_categories": dict(scene.instance_categories)}
        return Sample(image=scene.image.copy(), targets=targets, class_id=scene.scene_class, name=name, meta=meta)
