"""Semantic segmentation data: ADE20K (SceneParsing, ``ADEChallengeData2016``) and users' image + label-PNG folders.

On-disk layout of ADE20K as distributed (and as mmsegmentation reads it)::

    ADEChallengeData2016/
      images/training/ADE_train_00000001.jpg ...         (20,210 images)
      images/validation/ADE_val_00000001.jpg ...         (2,000 images)
      annotations/training/ADE_train_00000001.png ...    (8-bit single-channel class ids, 0 = "other")
      annotations/validation/ADE_val_00000001.png ...

With ``reduce_zero_label`` (the ADE20K convention), annotation value 0 becomes the ignore label 255 and every other
value ``v`` becomes ``v - 1`` (class ids 0..149 index :data:`~vpd.data.classes.ADE20K_CLASSES`); 255 stays 255, as in
mmsegmentation's ``LoadAnnotations(reduce_zero_label=True)``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import numpy as np

from vpd.data.base import IGNORE_INDEX, PerceptionDataset, Sample, Transform, check_files
from vpd.data.classes import ADE20K_CLASSES
from vpd.data.io import SIXTEEN_BIT_GRAY_MODES, _open_checked, list_images, read_image
from vpd.metrics.segmentation import reduce_zero_label

__all__ = ["ADE20K", "SegmentationFolder", "read_classes", "read_label_png"]

def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads a label image of class ids (single channel: 8-bit gray, palette indices, or 16-bit gray up to 255).

    Returns:
        uint8 ``[H, W]``, the stored values (palette images give their indices, not their colours).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not an image, corrupt, more than one channel (e.g. RGB colour-coded labels), or 16-bit values
            above 255, in one line naming the file.
    """
    path = os.fspath(path)
    with _open_checked(path) as image:
        mode = image.mode
        if mode in ("L", "P"):
            return np.array(image, dtype=np.uint8)
        if mode == "1":
            return np.array(image, dtype=np.uint8)  # 0 / 1
        if mode in SIXTEEN_BIT_GRAY_MODES:
            values = np.asarray(image)
            if values.size and (int(values.max()) > 255 or int(values.min()) < 0):
                raise ValueError(
                    f"{path}: 16-bit label values {int(values.min())}..{int(values.max())} do not fit the 0-255 class "
                    "id range"
                )
            return values.astype(np.uint8)
        raise ValueError(
            f"{path}: a label PNG must be single-channel class ids, got mode {mode} ({len(image.getbands())} "
            "channels); convert colour-coded labels to class-id images first"
        )


def read_classes(classes: str | os.PathLike[str] | Sequence[str]) -> tuple[str, ...]:
    """Class names from a text file (one per line, kept verbatim; trailing blank lines ignored) or a sequence.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no names, a blank line between names, more than 255 names (255 is the ignore label), or a
            sequence that is not of strings.
    """
    if isinstance(classes, (str, os.PathLike)):
        path = os.fspath(classes)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: class list not found (a text file with one class name per line)")
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise ValueError(f"{path}:{number}: blank line in the class list (one class name per line)")
        names = tuple(lines)
        where = path
    else:
        names = tuple(classes)
        if not all(isinstance(name, str) for name in names):
            raise ValueError(f"classes: expected a file path or a sequence of names, got {names[:3]!r}...")
        where = "classes"
    if not names:
        raise ValueError(f"{where}: no class names")
    if len(names) > IGNORE_INDEX:
        raise ValueError(f"{where}: {len(names)} classes; at most {IGNORE_INDEX} fit (label {IGNORE_INDEX} is ignore)")
    return names


class _SemanticPairs(PerceptionDataset):
    """Images paired with label PNGs; subclasses fill the paths, names and class count."""

    image_paths: list[str]
    label_paths: list[str]
    names: list[str]
    reduce_zero_label: bool
    num_label_values: int  # labels must be < this or 255

    def __len__(self) -> int:
        return len(self.image_paths)

    def load(self, index: int) -> Sample:
        image_path, label_path = self.image_paths[index], self.label_paths[index]
        image = read_image(image_path)
        labels = read_label_png(label_path)
        if labels.shape != image.shape[:2]:
            raise ValueError(
                f"{label_path}: label map is {labels.shape[0]}x{labels.shape[1]}, image {image_path} is "
                f"{image.shape[0]}x{image.shape[1]}"
            )
        if self.reduce_zero_label:
            labels = reduce_zero_label(labels)
        bad = (labels >= self.num_label_values) & (labels != IGNORE_INDEX)
        if bad.any():
            values = np.unique(labels[bad])
            shown = ", ".join(str(v) for v in values[:5]) + (", ..." if values.size > 5 else "")
            after = " after reduce_zero_label" if self.reduce_zero_label else ""
            raise ValueError(
                f"{label_path}: label values {shown}{after} are not class ids of the {self.num_label_values} "
                f"classes (0..{self.num_label_values - 1}, {IGNORE_INDEX} = ignore)"
            )
        return Sample(image=image, targets={"semantic": labels}, name=self.names[index])


class ADE20K(_SemanticPairs):
    """ADE20K SceneParsing in the ``ADEChallengeData2016`` layout (see the module docstring).

    Args:
        root: the ``ADEChallengeData2016`` folder.
        split: ``"training"`` or ``"validation"``.
        reduce_zero_label: map annotation 0 to 255 (ignore) and ``v`` to ``v - 1`` (the ADE20K convention; class ids
            then index :data:`ADE20K_CLASSES`). Off: labels are the raw annotation values (0 = "other", class ``i``
            stored as ``i + 1``), checked against 0..150.
        transform: paired augmentation, e.g. :func:`vpd.data.seg_transforms.seg_train_transform`.
        seed: augmentation seed.

    Samples: ``image`` uint8 ``[H, W, 3]``; ``targets["semantic"]`` uint8 ``[H, W]`` (255 = ignore); ``name`` the file
    stem (``"ADE_val_00000001"``). Images are every ``images/<split>/*.jpg``, sorted by name (as mmseg lists them).

    Raises:
        ValueError: (at construction) bad ``split``; (on load) an annotation of another size than its image, one that
            is not single-channel, or label values outside the classes, each in one line naming the files.
        FileNotFoundError: (at construction) the split folder or its images are missing; annotations are missing
            (how many, and the first few).
    """

    class_names = ADE20K_CLASSES

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "training",
        reduce_zero_label: bool = True,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        if split not in ("training", "validation"):
            raise ValueError(f"ADE20K: split must be 'training' or 'validation', got {split!r}")
        if not reduce_zero_label:
            raise ValueError(
                "ADE20K: reduce_zero_label=false keeps annotation value 0 ('other') as a 151st label, but the dataset "
                "names 150 classes; ADE20K is always read with reduce_zero_label=true"
            )
        self.root = os.fspath(root)
        self.split = split
        self.reduce_zero_label = reduce_zero_label
        self.num_label_values = len(ADE20K_CLASSES) + (0 if reduce_zero_label else 1)
        image_dir = os.path.join(self.root, "images", split)
        annotation_dir = os.path.join(self.root, "annotations", split)
        if not os.path.isdir(image_dir):
            raise FileNotFoundError(
                f"ADE20K: folder {image_dir} not found (expected <root>/images/{split} of ADEChallengeData2016)"
            )
        self.image_paths = sorted(glob.glob(os.path.join(glob.escape(image_dir), "*.jpg")))
        if not self.image_paths:
            raise FileNotFoundError(f"ADE20K: no .jpg images in {image_dir}")
        self.names = [os.path.splitext(os.path.basename(p))[0] for p in self.image_paths]
        self.label_paths = [os.path.join(annotation_dir, name + ".png") for name in self.names]
        check_files(self.label_paths, f"ADE20K {split} annotations (one <image stem>.png per image)", annotation_dir)


class SegmentationFolder(_SemanticPairs):
    """A user's images, each paired with a label PNG of class ids at the same relative path stem.

    ``images/a/b.jpg`` pairs with ``labels/a/b<label_suffix>``. Label images are single-channel class ids (8-bit gray,
    palette indices, or 16-bit gray up to 255); 255 is ignored.

    Args:
        images: a folder searched for :data:`vpd.data.io.IMAGE_EXTENSIONS` (files under ``labels``, if that lies
            inside it, are skipped).
        labels: the folder of label images.
        classes: a text file with one class name per line (kept verbatim; line ``i`` is class id ``i - 1``), or a
            sequence of names. Labels must be below ``len(classes)`` or 255.
        label_suffix: the label file ending that replaces each image's extension.
        reduce_zero_label: map 0 to 255 (ignore) and ``v`` to ``v - 1`` first (ADE20K-style "0 = unlabelled" maps).
        recursive: search sub-folders of ``images``.
        transform: paired augmentation.
        seed: augmentation seed.

    Samples: as :class:`ADE20K`, with ``name`` the image path relative to ``images`` without extension,
    ``/``-separated.

    Raises:
        FileNotFoundError: (at construction) ``images``, ``labels`` or the class file does not exist; labels are
            missing (how many, and the first few).
        ValueError: (at construction) no images, a bad class list; (on load) a label map of another size than its
            image, not single-channel, or with values ``>= len(classes)`` other than 255, in one line naming the file.
    """

    def __init__(
        self,
        images: str | os.PathLike[str],
        labels: str | os.PathLike[str],
        classes: str | os.PathLike[str] | Sequence[str],
        label_suffix: str = ".png",
        reduce_zero_label: bool = False,
        recursive: bool = True,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        self.class_names = read_classes(classes)
        self.reduce_zero_label = reduce_zero_label
        self.num_label_values = len(self.class_names)
        image_dir, label_dir = os.fspath(images), os.fspath(labels)
        if not os.path.isdir(image_dir):
            raise FileNotFoundError(f"SegmentationFolder: images folder {image_dir} not found")
        if not os.path.isdir(label_dir):
            raise FileNotFoundError(f"SegmentationFolder: labels folder {label_dir} not found")
        label_abs = os.path.abspath(label_dir)
        self.image_paths = [
            p
            for p in list_images(image_dir, recursive=recursive)
            if os.path.commonpath([os.path.abspath(p), label_abs]) != label_abs
        ]
        if not self.image_paths:
            raise ValueError(f"SegmentationFolder: no images in {image_dir} outside the labels folder {label_dir}")
        base = os.path.abspath(image_dir)
        stems = [os.path.splitext(os.path.relpath(os.path.abspath(p), base))[0] for p in self.image_paths]
        self.names = [stem.replace(os.sep, "/") for stem in stems]
        self.label_paths = [os.path.join(label_dir, stem + label_suffix) for stem in stems]
        check_files(
            self.label_paths, f"SegmentationFolder labels (one <relative stem>{label_suffix} per image)", label_dir
        )
