"""Portrait matting (P3M-10k) and dichotomous image segmentation (DIS5K), the one-step family's 2D tasks.

P3M-10k, as released (GenPercept trains matting on its training split)::

    P3M-10k/
      train/blurred_image/p_0a2b1b9a.jpg       face-blurred portraits (9,421)
      train/mask/p_0a2b1b9a.png                alpha matte, 8-bit grey (0 = background, 255 = foreground)
      validation/P3M-500-P/blurred_image/*.jpg, mask/*.png, trimap/*.png     (500, face-blurred)
      validation/P3M-500-NP/original_image/*.jpg, mask/*.png, trimap/*.png   (500, not blurred)

Trimaps are 8-bit: 0 background, 128 unknown, 255 foreground.

DIS5K, as released (GenPercept trains dichotomous segmentation on DIS-TR)::

    DIS5K/
      DIS-TR/im/<name>.jpg, DIS-TR/gt/<name>.png     (3,000; gt 8-bit grey, foreground 255)
      DIS-VD/im, gt                                  (470)
      DIS-TE1/im, gt ... DIS-TE4/im, gt              (500 each)

A ground-truth value above 128 is foreground, as IS-Net's evaluation (``gt > 128``) counts it.
"""

from __future__ import annotations

import os

import numpy as np

from vpd.data.base import PerceptionDataset, Sample, Transform, check_files
from vpd.data.io import list_images, read_image

__all__ = ["DIS5K", "DIS5K_SPLITS", "P3M10K_SPLITS", "P3M10k", "read_gray"]

#: P3M-10k split -> (folder under the root, image folder name).
P3M10K_SPLITS = {
    "train": ("train", "blurred_image"),
    "P3M-500-P": (os.path.join("validation", "P3M-500-P"), "blurred_image"),
    "P3M-500-NP": (os.path.join("validation", "P3M-500-NP"), "original_image"),
}
#: DIS5K split -> the folders it reads ("DIS-TE" is the four test subsets together).
DIS5K_SPLITS = {
    "DIS-TR": ("DIS-TR",),
    "DIS-VD": ("DIS-VD",),
    "DIS-TE1": ("DIS-TE1",),
    "DIS-TE2": ("DIS-TE2",),
    "DIS-TE3": ("DIS-TE3",),
    "DIS-TE4": ("DIS-TE4",),
    "DIS-TE": ("DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4"),
}


def read_gray(path: str) -> np.ndarray:
    """An 8-bit grey map (an alpha matte, a trimap, a mask) as uint8 ``[H, W]``.

    Grey, palette and RGB(A) files whose three colour channels are equal are accepted (alpha channel dropped);
    16-bit files are rounded to 8 bits (:func:`vpd.data.io.read_image`).

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable, or a colour image (channels differ).
    """
    rgb = read_image(path)
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
        raise ValueError(f"{path}: a colour image; expected a single-channel grey map")
    return np.ascontiguousarray(rgb[..., 0])


def _paired(image_dir: str, what: str, folders: dict[str, str], root: str) -> tuple[list[str], dict[str, list[str]]]:
    """The images of ``image_dir`` and, per key of ``folders``, the ``<folder>/<stem>.png`` of each."""
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"{what}: folder {image_dir} not found")
    images = list_images(image_dir, recursive=False)
    stems = [os.path.splitext(os.path.basename(p))[0] for p in images]
    paired = {key: [os.path.join(folder, s + ".png") for s in stems] for key, folder in folders.items()}
    check_files(images + [p for paths in paired.values() for p in paths], what, root)
    return images, paired


class P3M10k(PerceptionDataset):
    """P3M-10k portrait matting (see the module docstring).

    Args:
        root: the ``P3M-10k`` folder.
        split: ``"train"``, ``"P3M-500-P"`` or ``"P3M-500-NP"``.
        trimap: also return ``trimap``; None: when the split has a ``trimap`` folder (the validation splits).
        transform: paired augmentation.
        seed: augmentation seed.

    Samples: ``image`` uint8 ``[H, W, 3]``; ``alpha`` float32 ``[H, W]`` in [0, 1] (PNG / 255); ``trimap`` uint8
    ``[H, W]`` (0 / 128 / 255) when asked; ``name`` the image's file stem.

    Raises (at construction):
        ValueError: an unknown ``split``; an image folder without images.
        FileNotFoundError: the split's folders are missing; an image lacks its mask (or trimap).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        trimap: bool | None = None,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        if split not in P3M10K_SPLITS:
            raise ValueError(f"P3M10k: split must be one of {', '.join(P3M10K_SPLITS)}, got {split!r}")
        self.root = os.fspath(root)
        self.split = split
        folder, image_folder = P3M10K_SPLITS[split]
        split_dir = os.path.join(self.root, folder)
        trimap_dir = os.path.join(split_dir, "trimap")
        self.with_trimap = os.path.isdir(trimap_dir) if trimap is None else bool(trimap)
        folders = {"alpha": os.path.join(split_dir, "mask")}
        if self.with_trimap:
            folders["trimap"] = trimap_dir
        self.image_paths, paired = _paired(os.path.join(split_dir, image_folder), f"P3M10k {split}", folders, split_dir)
        self.alpha_paths = paired["alpha"]
        self.trimap_paths = paired.get("trimap", [])
        self.target_names = ("alpha", "trimap") if self.with_trimap else ("alpha",)

    def __len__(self) -> int:
        return len(self.image_paths)

    def load(self, index: int) -> Sample:
        image_path = self.image_paths[index]
        image = read_image(image_path)
        alpha_path = self.alpha_paths[index]
        alpha = read_gray(alpha_path)
        _same_size(alpha_path, alpha, image_path, image)
        targets = {"alpha": alpha.astype(np.float32) / np.float32(255.0)}
        if self.trimap_paths:
            trimap = read_gray(self.trimap_paths[index])
            _same_size(self.trimap_paths[index], trimap, image_path, image)
            targets["trimap"] = trimap
        return Sample(image=image, targets=targets, name=os.path.splitext(os.path.basename(image_path))[0])


def _same_size(path: str, array: np.ndarray, image_path: str, image: np.ndarray) -> None:
    if array.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"{path}: map is {array.shape[0]}x{array.shape[1]}, image {image_path} is {image.shape[0]}x{image.shape[1]}"
        )


class DIS5K(PerceptionDataset):
    """DIS5K dichotomous image segmentation (see the module docstring).

    Args:
        root: the ``DIS5K`` folder.
        split: ``"DIS-TR"``, ``"DIS-VD"``, ``"DIS-TE1"`` .. ``"DIS-TE4"``, or ``"DIS-TE"`` (all four test subsets).
        transform: paired augmentation.
        seed: augmentation seed.

    Samples: ``image`` uint8 ``[H, W, 3]``; ``mask`` uint8 ``[H, W]``: 1 where the ground truth is above 128, else
    0 (the files have no ignore label, so 255 never occurs); ``name`` ``"<subset>/<stem>"``.

    Raises (at construction):
        ValueError: an unknown ``split``; an ``im`` folder without images.
        FileNotFoundError: a subset's ``im`` folder is missing; an image lacks its ``gt/<stem>.png``.
    """

    target_names = ("mask",)

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "DIS-TR",
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        if split not in DIS5K_SPLITS:
            raise ValueError(f"DIS5K: split must be one of {', '.join(DIS5K_SPLITS)}, got {split!r}")
        self.root = os.fspath(root)
        self.split = split
        self.image_paths: list[str] = []
        self.gt_paths: list[str] = []
        self.names: list[str] = []
        for subset in DIS5K_SPLITS[split]:
            subset_dir = os.path.join(self.root, subset)
            gt_dir = os.path.join(subset_dir, "gt")
            images, paired = _paired(os.path.join(subset_dir, "im"), f"DIS5K {subset}", {"gt": gt_dir}, subset_dir)
            self.image_paths += images
            self.gt_paths += paired["gt"]
            self.names += [f"{subset}/{os.path.splitext(os.path.basename(p))[0]}" for p in images]

    def __len__(self) -> int:
        return len(self.image_paths)

    def load(self, index: int) -> Sample:
        image_path, gt_path = self.image_paths[index], self.gt_paths[index]
        image = read_image(image_path)
        gt = read_gray(gt_path)
        _same_size(gt_path, gt, image_path, image)
        return Sample(image=image, targets={"mask": (gt > 128).astype(np.uint8)}, name=self.names[index])
