"""Users' own images, optionally paired with depth PNGs, for ``vpd predict`` / ``vpd eval`` and fine-tuning."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from vpd.data.base import PerceptionDataset, Sample, Transform, check_files
from vpd.data.io import MILLIMETRES, list_images, read_depth_png, read_image

__all__ = ["ImageFolderDepth"]

_LIST_SUFFIXES = (".txt", ".lst", ".list")


def _read_path_list(path: str) -> list[str]:
    """Paths from a text file, one per line; relative ones are taken relative to the list's folder."""
    base = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as handle:
        entries = [line.strip() for line in handle]
    paths = [e if os.path.isabs(e) else os.path.join(base, e) for e in entries if e and not e.startswith("#")]
    if not paths:
        raise ValueError(f"{path}: image list is empty")
    return paths


class ImageFolderDepth(PerceptionDataset):
    """Images from a folder or a list, each optionally paired with a depth PNG of the same relative path stem.

    Args:
        images: a folder (searched recursively for :data:`vpd.data.io.IMAGE_EXTENSIONS`), one image file, a text file
            (``.txt``/``.lst``/``.list``) listing image paths one per line (relative to the list's folder), or a
            sequence of image paths.
        depths: optional folder of depth PNGs: ``images/a/b.jpg`` pairs with ``depths/a/b.png``. When given, every
            image must have one.
        depth_scale: stored depth value per metre. None (default): 16-bit PNGs in millimetres (1000), 8-bit
            PNGs refused; an explicit value also accepts 8-bit PNGs (e.g. 25 for a 0-10 m map quantised to 8 bits).
        class_names: the scene classes of the model the samples are for (stored as ``self.class_names``).
        scene: a name from ``class_names`` given to every sample as its ``class_id``; ``None`` gives -1.
        recursive: search sub-folders of an ``images`` folder.
        transform: paired augmentation.
        seed: augmentation seed.

    Samples: ``image`` uint8 ``[H, W, 3]``; ``depth`` float32 ``[H, W]`` metres (0 invalid) or ``None`` without
    ``depths``; ``name`` the image path relative to the images folder (or, for a list, to the deepest folder common
    to all images), without extension, ``/``-separated.

    Raises (at construction):
        FileNotFoundError: ``images`` or ``depths`` does not exist; some images lack a depth (count + first few).
        ValueError: no images; ``scene`` not in ``class_names``.
    """

    def __init__(
        self,
        images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        depths: str | os.PathLike[str] | None = None,
        depth_scale: float | None = None,
        class_names: Sequence[str] = (),
        scene: str | None = None,
        recursive: bool = True,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        self.class_names = tuple(class_names)
        if scene is not None and scene not in self.class_names:
            raise ValueError(f"ImageFolderDepth: scene {scene!r} is not one of class_names {self.class_names}")
        self.class_id = self.class_names.index(scene) if scene is not None else -1
        if depth_scale is not None and not (math.isfinite(depth_scale) and depth_scale > 0):
            raise ValueError(f"ImageFolderDepth: depth_scale must be a finite number > 0, got {depth_scale}")
        self.allow_8bit = depth_scale is not None
        self.depth_scale = float(depth_scale) if depth_scale is not None else MILLIMETRES

        if isinstance(images, (str, os.PathLike)):
            source = os.fspath(images)
            if os.path.isfile(source) and source.lower().endswith(_LIST_SUFFIXES):
                self.image_paths = _read_path_list(source)
                base = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in self.image_paths])
            else:
                self.image_paths = list_images(source, recursive=recursive)
                base = source if os.path.isdir(source) else os.path.dirname(source)
        else:
            self.image_paths = [os.fspath(p) for p in images]
            if not self.image_paths:
                raise ValueError("ImageFolderDepth: the images list is empty")
            base = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in self.image_paths])
        check_files(self.image_paths, "ImageFolderDepth images", base or ".")

        base_abs = os.path.abspath(base or ".")
        relative_stems = [os.path.splitext(os.path.relpath(os.path.abspath(p), base_abs))[0] for p in self.image_paths]
        self.names = [stem.replace(os.sep, "/") for stem in relative_stems]

        self.depth_paths: list[str] | None = None
        if depths is not None:
            depth_dir = os.fspath(depths)
            if not os.path.isdir(depth_dir):
                raise FileNotFoundError(f"ImageFolderDepth: depths folder {depth_dir} not found")
            self.depth_paths = [os.path.join(depth_dir, stem + ".png") for stem in relative_stems]
            check_files(self.depth_paths, "ImageFolderDepth depths (one <relative stem>.png per image)", depth_dir)

    def __len__(self) -> int:
        return len(self.image_paths)

    def load(self, index: int) -> Sample:
        image = read_image(self.image_paths[index])
        depth = None
        if self.depth_paths is not None:
            depth = read_depth_png(self.depth_paths[index], self.depth_scale, allow_8bit=self.allow_8bit)
            if depth.shape != image.shape[:2]:
                raise ValueError(
                    f"{self.depth_paths[index]}: depth is {depth.shape}, image {self.image_paths[index]} is "
                    f"{image.shape[:2]}"
                )
        targets = {} if depth is None else {"depth": depth}
        return Sample(image=image, targets=targets, class_id=self.class_id, name=self.names[index])
