"""The evaluation sets of Marigold's affine-invariant depth protocol, in the layouts its eval scripts read.

Marigold (and GenPercept, E2E-FT, Lotus, which reuse its protocol and lists) aligns each prediction to the ground
truth by least squares on the valid pixels, clips it to the dataset's depth range, and averages the metrics over
those pixels. Every set here returns, per sample:

- ``depth`` float32 ``[H, W]`` metres, 0 where the value itself is invalid (no measurement, or outside the set's
  open range ``(min_depth, max_depth)``; DIODE: outside its depth mask);
- ``valid`` bool ``[H, W]``: the pixels the metrics count, Marigold's ``valid_mask_raw``: ``depth > 0`` and the
  set's evaluation crop (NYU's Eigen crop, KITTI's Eigen or Garg crop); batched as int64 0/1 ``[B, H, W]``;
- ``meta``: ``min_depth`` and ``max_depth`` (the range predictions are clipped to after alignment) and
  ``eval_crop`` (the crop's name or None).

========  ============  =======================================================================================
set       range (m)     layout (paths as in Marigold's ``data_split/*`` lists, relative to ``root``)
========  ============  =======================================================================================
NYUv2     1e-3 .. 10    ``test/<scene>/rgb_0001.png depth_0001.png filled_0001.png`` (uint16 mm, 480x640), 654
KITTI     1e-5 .. 80    BTS Eigen test list (652 with ground truth), depth PNG / 256, KB-cropped to 352x1216
ETH3D     1e-5 .. inf   ``rgb/<scene>/images/dslr_images/DSC_*.JPG`` + ``depth/<scene>_dslr_depth/<scene>/
                        ground_truth_depth/dslr_images/DSC_*.JPG`` (raw float32, 4032x6048, inf = invalid), 454
ScanNet   1e-3 .. 10    ``scene0406_02/color/000300.jpg scene0406_02/depth/000300.png`` (uint16 mm), 800
DIODE     0.6 .. 350    ``{indoors,outdoor}/scene_*/scan_*/<id>.png`` + ``<id>_depth.npy`` (float32 m,
                        ``[H, W, 1]``) + ``<id>_depth_mask.npy``, 771 (325 indoors, 446 outdoor)
========  ============  =======================================================================================
"""

from __future__ import annotations

import glob
import math
import os

import numpy as np

from vpd.data.base import PerceptionDataset, Sample, Transform, check_files
from vpd.data.filelists import join_relative, read_path_list
from vpd.data.hypersim import depth_in_range
from vpd.data.io import read_depth_png, read_image
from vpd.data.kitti import KITTIEigen
from vpd.data.nyuv2 import NYU_DEPTH_SCALE, NYU_MIN_DEPTH, NYU_SCENE_CLASSES, nyu_scene_class_id

__all__ = [
    "DIODE",
    "ETH3D",
    "KITTIAffine",
    "NYUv2Affine",
    "ScanNet",
    "kitti_eval_mask",
    "nyu_eigen_mask",
]

#: NYUv2's Eigen crop at 480x640 (Marigold: rows 45:471, cols 41:601).
NYU_EIGEN_CROP = (45, 471, 41, 601)
#: KITTI's evaluation crops as fractions of the (KB-cropped) frame: (top, bottom, left, right), as BTS and Marigold.
KITTI_EVAL_CROPS = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}


def nyu_eigen_mask(height: int, width: int) -> np.ndarray:
    """NYUv2's Eigen evaluation crop, bool ``[480, 640]`` (True inside rows 45:471, cols 41:601).

    Raises:
        ValueError: another frame size (the crop is defined in pixels of the 480x640 frame).
    """
    if (height, width) != (480, 640):
        raise ValueError(f"the NYU Eigen crop is defined on 480x640 frames, got {height}x{width}")
    top, bottom, left, right = NYU_EIGEN_CROP
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def kitti_eval_mask(height: int, width: int, crop: str) -> np.ndarray:
    """KITTI's ``"eigen"`` or ``"garg"`` evaluation crop, bool ``[H, W]``: ``int(fraction * size)`` bounds."""
    if crop not in KITTI_EVAL_CROPS:
        raise ValueError(f"KITTI eval crop must be one of {sorted(KITTI_EVAL_CROPS)} or None, got {crop!r}")
    top, bottom, left, right = KITTI_EVAL_CROPS[crop]
    mask = np.zeros((height, width), dtype=bool)
    mask[int(top * height) : int(bottom * height), int(left * width) : int(right * width)] = True
    return mask


def _check_range(what: str, min_depth: float, max_depth: float) -> tuple[float, float]:
    low, high = float(min_depth), float(max_depth)
    if not (math.isfinite(low) and low >= 0 and high > low):
        raise ValueError(f"{what}: expected 0 <= min_depth < max_depth, got {min_depth}..{max_depth}")
    return low, high


def _eval_sample(
    image: np.ndarray,
    depth: np.ndarray,
    depth_path: str,
    image_path: str,
    crop: np.ndarray | None,
    crop_name: str | None,
    range_: tuple[float, float],
    name: str,
    class_id: int = -1,
) -> Sample:
    """The sample every set returns: ``depth`` (0 = invalid), ``valid`` = depth > 0 inside the crop, the range."""
    if depth.shape != image.shape[:2]:
        raise ValueError(
            f"{depth_path}: depth is {depth.shape[0]}x{depth.shape[1]}, image {image_path} is "
            f"{image.shape[0]}x{image.shape[1]}"
        )
    valid = depth > 0
    if crop is not None:
        valid &= crop
    meta = {"min_depth": range_[0], "max_depth": range_[1], "eval_crop": crop_name}
    return Sample(image=image, targets={"depth": depth, "valid": valid}, class_id=class_id, name=name, meta=meta)


class _ListedEvalSet(PerceptionDataset):
    """Shared parts of the sets read from ``(rgb, depth)`` relative paths: paths, names, ``__len__``."""

    target_names: tuple[str, ...] = ("depth", "valid")

    def __init__(
        self,
        root: str | os.PathLike[str],
        pairs: list[tuple[str, str]],
        what: str,
        min_depth: float,
        max_depth: float,
        transform: Transform | None,
        seed: int,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        self.root = os.fspath(root)
        self.range = _check_range(what, min_depth, max_depth)
        self.image_paths = [join_relative(self.root, rgb) for rgb, _ in pairs]
        self.depth_paths = [join_relative(self.root, depth) for _, depth in pairs]
        self.names = [os.path.splitext(rgb.lstrip("/\\"))[0].replace(os.sep, "/") for rgb, _ in pairs]

    def __len__(self) -> int:
        return len(self.image_paths)


def _discover(root: str, pattern: str, what: str) -> list[str]:
    """Sorted paths matching ``pattern`` under ``root``, relative to it; one-line errors when none."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{what}: folder {root} not found")
    found = sorted(glob.glob(os.path.join(glob.escape(root), pattern)))
    if not found:
        raise FileNotFoundError(f"{what}: no {pattern} under {root}")
    return [os.path.relpath(path, root) for path in found]


class NYUv2Affine(_ListedEvalSet):
    """NYUv2's 654 test frames as Marigold extracts them (``nyu_labeled_extracted``), with the Eigen crop.

    Args:
        root: the ``nyuv2`` folder holding ``test/<scene>/rgb_NNNN.png``, ``depth_NNNN.png`` (raw, uint16 mm) and
            ``filled_NNNN.png`` (colourised dense depth).
        filelist: Marigold's ``data_split/nyu_depth/labeled/filename_list_test.txt``: ``"rgb depth filled"`` (or
            ``"rgb depth"``) relative to ``root``. None: every ``test/*/rgb_*.png``, sorted.
        eigen_crop: count only the Eigen crop (rows 45:471, cols 41:601 of 480x640), as Marigold's eval config.
        filled: also return ``depth_filled`` (the filled map, same range rule; its path from the list's third
            column or the ``filled_NNNN.png`` sibling).
        min_depth, max_depth: the valid range (Marigold: 1e-3..10).
        transform, seed: as every dataset.

    Samples: see the module docstring; ``class_id`` by :func:`vpd.data.nyuv2.nyu_scene_class_id` on
    ``"<scene folder>_<file>"``, ``name`` ``"test/<scene>/rgb_NNNN"``.
    """

    class_names = NYU_SCENE_CLASSES

    def __init__(
        self,
        root: str | os.PathLike[str],
        filelist: str | os.PathLike[str] | None = None,
        eigen_crop: bool = True,
        filled: bool = False,
        min_depth: float = NYU_MIN_DEPTH,
        max_depth: float = 10.0,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        base = os.fspath(root)
        if filelist is not None:
            rows = read_path_list(os.fspath(filelist), "rgb_path depth_path [filled_path]", (2, 3))
        else:
            images = _discover(base, os.path.join("test", "*", "rgb_*.png"), "NYUv2Affine")
            rows = [[rgb, _sibling(rgb, "depth_")] for rgb in images]
        super().__init__(base, [(r[0], r[1]) for r in rows], "NYUv2Affine", min_depth, max_depth, transform, seed)
        self.eigen_crop = eigen_crop
        self.filled_paths = (
            [join_relative(self.root, r[2] if len(r) == 3 else _sibling(r[0], "filled_")) for r in rows]
            if filled
            else []
        )
        if filled:
            self.target_names = ("depth", "depth_filled", "valid")
        check_files(self.image_paths + self.depth_paths + self.filled_paths, "NYUv2Affine", self.root)

    def load(self, index: int) -> Sample:
        image_path, depth_path = self.image_paths[index], self.depth_paths[index]
        image = read_image(image_path)
        depth = depth_in_range(read_depth_png(depth_path, NYU_DEPTH_SCALE), *self.range)
        crop = None
        if self.eigen_crop:
            try:
                crop = nyu_eigen_mask(depth.shape[0], depth.shape[1])
            except ValueError as exc:
                raise ValueError(f"{depth_path}: {exc} (pass eigen_crop=False for other sizes)") from None
        folder, file_name = os.path.split(os.path.dirname(image_path))[1], os.path.basename(image_path)
        class_id = nyu_scene_class_id(f"{folder}_{file_name}")
        sample = _eval_sample(
            image, depth, depth_path, image_path, crop, "eigen" if crop is not None else None, self.range,
            self.names[index], class_id,
        )  # fmt: skip
        if self.filled_paths:
            filled = depth_in_range(read_depth_png(self.filled_paths[index], NYU_DEPTH_SCALE), *self.range)
            if filled.shape != depth.shape:
                raise ValueError(f"{self.filled_paths[index]}: filled depth is {filled.shape}, depth {depth.shape}")
            sample.targets["depth_filled"] = filled
        return sample


def _sibling(rgb_rel: str, prefix: str) -> str:
    folder, name = os.path.split(rgb_rel)
    if not name.startswith("rgb_"):
        raise ValueError(f"{rgb_rel}: expected an rgb_NNNN.png name to derive the {prefix}NNNN.png file from")
    return os.path.join(folder, prefix + name[4:])


class KITTIAffine(KITTIEigen):
    """KITTI's Eigen test split as Marigold evaluates it: KB crop, then the Eigen (or Garg) crop, 1e-5..80 m.

    Reads what :class:`vpd.data.kitti.KITTIEigen` reads (same lists, roots and depth PNGs / 256; lines with
    ``None`` depth skipped); Marigold's ``kitti_eigen_split_test`` folder holds both the rgb paths
    (``2011_09_26/<drive>/image_02/data/*.png``) and the depth paths (``<drive>/proj_depth/groundtruth/...``) of its
    ``eigen_test_files_with_gt.txt``, so ``root`` alone serves.

    Args:
        root, filelist, image_root, depth_root, kb_crop: as :class:`~vpd.data.kitti.KITTIEigen`.
        eval_crop: ``"eigen"`` (Marigold's eval config), ``"garg"`` or None; computed on the KB-cropped frame.
        min_depth, max_depth: the valid range (Marigold: 1e-5..80).
        transform, seed: as every dataset.

    Samples: see the module docstring; ``image`` ``[352, 1216, 3]`` with ``kb_crop``.
    """

    target_names = ("depth", "valid")

    def __init__(
        self,
        root: str | os.PathLike[str],
        filelist: str | os.PathLike[str],
        image_root: str | os.PathLike[str] | None = None,
        depth_root: str | os.PathLike[str] | None = None,
        kb_crop: bool = True,
        eval_crop: str | None = "eigen",
        min_depth: float = 1e-5,
        max_depth: float = 80.0,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        if eval_crop is not None and eval_crop not in KITTI_EVAL_CROPS:
            raise ValueError(f"KITTIAffine: eval_crop must be 'eigen', 'garg' or None, got {eval_crop!r}")
        self.range = _check_range("KITTIAffine", min_depth, max_depth)
        self.eval_crop = eval_crop
        super().__init__(
            root, filelist, image_root=image_root, depth_root=depth_root, kb_crop=kb_crop, skip_missing_gt=True,
            transform=transform, seed=seed,
        )  # fmt: skip

    def load(self, index: int) -> Sample:
        sample = super().load(index)
        depth = depth_in_range(sample.targets["depth"], *self.range)
        height, width = depth.shape
        crop = kitti_eval_mask(height, width, self.eval_crop) if self.eval_crop is not None else None
        depth_path = self.depth_paths[index] or ""
        return _eval_sample(
            sample.image, depth, depth_path, self.image_paths[index], crop, self.eval_crop, self.range, sample.name
        )


class ETH3D(_ListedEvalSet):
    """ETH3D's 454 high-resolution DSLR frames with their laser-scan depth (Marigold's ``eth3d`` folder).

    Args:
        root: the folder holding ``rgb/`` and ``depth/`` (see the module docstring).
        filelist: Marigold's ``data_split/eth3d_depth/eth3d_filename_list.txt`` (``"rgb_rel depth_rel"``). None:
            every ``rgb/<scene>/images/dslr_images/*.JPG`` with ``depth/<scene>_dslr_depth/<scene>/
            ground_truth_depth/dslr_images/<same name>``.
        depth_shape: ``(height, width)`` of the depth files (raw little-endian float32, row-major, no header;
            ETH3D: 4032x6048).
        min_depth, max_depth: the valid range (Marigold: 1e-5..inf; infinite values mark missing depth).
        transform, seed: as every dataset.

    Samples: see the module docstring (no crop); ``image`` 4032x6048 in the real set.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        filelist: str | os.PathLike[str] | None = None,
        depth_shape: tuple[int, int] = (4032, 6048),
        min_depth: float = 1e-5,
        max_depth: float = math.inf,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        base = os.fspath(root)
        if filelist is not None:
            pairs = [(a, b) for a, b in read_path_list(os.fspath(filelist), "rgb_path depth_path", (2,))]
        else:
            pattern = os.path.join("rgb", "*", "images", "dslr_images", "*.JPG")
            pairs = []
            for rgb in _discover(base, pattern, "ETH3D"):
                scene, file_name = rgb.split(os.sep)[1], os.path.basename(rgb)
                depth_dir = os.path.join("depth", f"{scene}_dslr_depth", scene, "ground_truth_depth", "dslr_images")
                pairs.append((rgb, os.path.join(depth_dir, file_name)))
        super().__init__(base, pairs, "ETH3D", min_depth, max_depth, transform, seed)
        if len(depth_shape) != 2 or min(depth_shape) <= 0:
            raise ValueError(f"ETH3D: depth_shape must be (height, width) > 0, got {depth_shape!r}")
        self.depth_shape = (int(depth_shape[0]), int(depth_shape[1]))
        check_files(self.image_paths + self.depth_paths, "ETH3D", self.root)

    def read_depth(self, path: str) -> np.ndarray:
        """One depth file as float32 metres ``[H, W]`` (inf kept; :meth:`load` zeroes it)."""
        height, width = self.depth_shape
        expected = height * width * 4
        size = os.path.getsize(path)
        if size != expected:
            raise ValueError(
                f"{path}: {size} bytes, expected {expected} (raw float32 {height}x{width}; set depth_shape for "
                "other sizes)"
            )
        return np.fromfile(path, dtype="<f4").reshape(height, width).astype(np.float32)

    def load(self, index: int) -> Sample:
        image_path, depth_path = self.image_paths[index], self.depth_paths[index]
        depth = depth_in_range(self.read_depth(depth_path), *self.range)
        return _eval_sample(read_image(image_path), depth, depth_path, image_path, None, None, self.range,
                            self.names[index])  # fmt: skip


class ScanNet(_ListedEvalSet):
    """Marigold's 800 frames sampled from ScanNet's validation scenes (``scannet_val_sampled_800_1``).

    Args:
        root: the folder holding ``scene*/color/*.jpg`` and ``scene*/depth/*.png`` (uint16 mm; the colour frames
            at the depth's 480x640, as in Marigold's sampled set).
        filelist: Marigold's ``data_split/scannet_depth/scannet_val_sampled_list_800_1.txt``
            (``"scene0406_02/color/000300.jpg scene0406_02/depth/000300.png"``). None: every
            ``scene*/color/*.jpg`` with ``depth/<stem>.png``.
        min_depth, max_depth: the valid range (Marigold: 1e-3..10).
        transform, seed: as every dataset.

    Samples: see the module docstring (no crop); ``name`` ``"scene0406_02/color/000300"``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        filelist: str | os.PathLike[str] | None = None,
        min_depth: float = NYU_MIN_DEPTH,
        max_depth: float = 10.0,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        base = os.fspath(root)
        if filelist is not None:
            pairs = [(a, b) for a, b in read_path_list(os.fspath(filelist), "rgb_path depth_path", (2,))]
        else:
            pairs = []
            for rgb in _discover(base, os.path.join("scene*", "color", "*.jpg"), "ScanNet"):
                scene_dir = os.path.dirname(os.path.dirname(rgb))
                stem = os.path.splitext(os.path.basename(rgb))[0]
                pairs.append((rgb, os.path.join(scene_dir, "depth", stem + ".png")))
        super().__init__(base, pairs, "ScanNet", min_depth, max_depth, transform, seed)
        check_files(self.image_paths + self.depth_paths, "ScanNet", self.root)

    def load(self, index: int) -> Sample:
        image_path, depth_path = self.image_paths[index], self.depth_paths[index]
        depth = depth_in_range(read_depth_png(depth_path, NYU_DEPTH_SCALE), *self.range)
        return _eval_sample(read_image(image_path), depth, depth_path, image_path, None, None, self.range,
                            self.names[index])  # fmt: skip


DIODE_SUBSETS = {"all": ("indoors", "outdoor"), "indoors": ("indoors",), "outdoor": ("outdoor",)}


class DIODE(_ListedEvalSet):
    """DIODE's validation split (771 frames: 325 indoors, 446 outdoor) with its own depth masks.

    Args:
        root: the ``diode_val`` folder holding ``indoors/`` and ``outdoor/`` (see the module docstring).
        filelist: Marigold's ``data_split/diode_depth/diode_val_{all,indoor,outdoor}_filename_list.txt``:
            ``"<id>.png <id>_depth.npy <id>_depth_mask.npy"`` relative to ``root``. None: every
            ``<subset>/scene_*/scan_*/*.png`` with its two ``.npy`` siblings.
        subset: ``"all"``, ``"indoors"`` or ``"outdoor"`` (also filters a list by its first folder).
        min_depth, max_depth: the range predictions are clipped to (Marigold: 0.6..350). As in Marigold, the valid
            pixels are the mask's (``mask > 0`` and depth > 0), not the range.
        transform, seed: as every dataset.

    Samples: see the module docstring (no crop); ``depth`` 0 outside the mask.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        filelist: str | os.PathLike[str] | None = None,
        subset: str = "all",
        min_depth: float = 0.6,
        max_depth: float = 350.0,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        if subset not in DIODE_SUBSETS:
            raise ValueError(f"DIODE: subset must be one of {sorted(DIODE_SUBSETS)}, got {subset!r}")
        base = os.fspath(root)
        form = "rgb.png depth.npy depth_mask.npy"
        if filelist is not None:
            rows = read_path_list(os.fspath(filelist), form, (3,))
            rows = [r for r in rows if r[0].lstrip("/\\").split("/")[0] in DIODE_SUBSETS[subset]]
            if not rows:
                raise ValueError(f"{os.fspath(filelist)}: no {subset} sample listed")
        else:
            rows = []
            for folder in DIODE_SUBSETS[subset]:
                pattern = os.path.join(folder, "scene_*", "scan_*", "*.png")
                if os.path.isdir(os.path.join(base, folder)) or subset != "all":
                    for rgb in _discover(base, pattern, "DIODE"):
                        stem = os.path.splitext(rgb)[0]
                        rows.append([rgb, stem + "_depth.npy", stem + "_depth_mask.npy"])
            if not rows:
                raise FileNotFoundError(f"DIODE: no indoors/ or outdoor/ scene_*/scan_*/*.png under {base}")
        super().__init__(base, [(r[0], r[1]) for r in rows], "DIODE", min_depth, max_depth, transform, seed)
        self.subset = subset
        self.mask_paths = [join_relative(self.root, r[2]) for r in rows]
        check_files(self.image_paths + self.depth_paths + self.mask_paths, "DIODE", self.root)

    def load(self, index: int) -> Sample:
        image_path, depth_path, mask_path = self.image_paths[index], self.depth_paths[index], self.mask_paths[index]
        depth = _read_npy_map(depth_path)
        mask = _read_npy_map(mask_path)
        if mask.shape != depth.shape:
            raise ValueError(f"{mask_path}: mask is {mask.shape}, depth {depth_path} is {depth.shape}")
        valid = (mask > 0) & np.isfinite(depth) & (depth > 0)
        depth = np.where(valid, depth, 0).astype(np.float32)
        return _eval_sample(read_image(image_path), depth, depth_path, image_path, None, None, self.range,
                            self.names[index])  # fmt: skip


def _read_npy_map(path: str) -> np.ndarray:
    """A ``[H, W]`` or ``[H, W, 1]`` numeric ``.npy`` map as float32 ``[H, W]``."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npy file ({type(exc).__name__}: {exc})") from None
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2 or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{path}: expected a numeric [H, W] or [H, W, 1] map, got {array.dtype} {array.shape}")
    return array.astype(np.float32)
