"""The synthetic training sets of the one-step family: Hypersim and Virtual KITTI 2, as Marigold prepares them.

Marigold, GenPercept and E2E-FT train affine-invariant depth on a 9:1 mix of the two (:mod:`vpd.data.mixed`);
Marigold-normals, E2E-FT and Lotus train normals on Hypersim's camera-space normals.

Hypersim, in the layout Marigold's ``script/depth/dataset_preprocess/hypersim/preprocess_hypersim.py`` writes (and
its normals script ``script/normals/dataset_preprocess/hypersim/preprocess_hypersim_normals.py``)::

    hypersim/                                       (the preprocessing's output_dir)
      train/ai_001_001/rgb_cam_00_fr0000.png        uint8 RGB, 768x1024 (tone-mapped from the HDR render)
      train/ai_001_001/depth_plane_cam_00_fr0000.png  uint16 millimetres of planar depth (z, not ray distance);
                                                    0 = no geometry (render_entity_id == -1)
      train/ai_001_001/normal_cam_cam_00_fr0000.npy float [768, 1024, 3] unit camera-space normals (normals script)
      train/filename_list_train.txt                 "ai_001_001/rgb_cam_00_fr0000.png ai_001_001/depth_plane_..."
      val/..., test/...                             the same per split (filename_list_val.txt, filename_list_test.txt)

Marigold's own lists (``data_split/hypersim_depth/filename_list_{train,val,test}_filtered.txt``) have the same
two-column form, relative to the split folder; its normals lists (``data_split/hypersim_normals/*.txt``) pair
``train/ai_001_001/rgb_cam_00_fr0000.png train/ai_001_001/normal_cam_cam_00_fr0000.npy`` relative to ``hypersim/``.
Marigold trains on Hypersim resized to 480x640 (``resize_to_hw``, nearest for every raster, the photo included).

Normals convention: Hypersim's camera frame as Marigold stores it, **x right, y up, z towards the camera** (a wall
facing the camera is ``(0, 0, 1)``), unit length; E2E-FT and Lotus train with x negated (x left), which
``normals_x="left"`` gives. A zero vector marks an invalid pixel.

Virtual KITTI 2 (the official ``vkitti_2.0.3_rgb.tar`` / ``vkitti_2.0.3_depth.tar``), as Marigold's list reads it::

    vkitti/
      rgb/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg          375x1242 RGB
      depth/Scene01/clone/frames/depth/Camera_0/depth_00000.png    uint16 centimetres (65535 = sky, 655.35 m)

Lists (``data_split/vkitti_depth/vkitti_{train,val}.txt``): ``"rgb/Scene02/... depth/Scene02/..."`` relative to
``vkitti/``. Both tars extracted into one folder (``Scene01/clone/frames/{rgb,depth}/...``) are found too.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import numpy as np

from vpd.data.base import PerceptionDataset, Sample, Transform, check_files
from vpd.data.filelists import join_relative, read_path_list
from vpd.data.io import read_depth_png, read_image
from vpd.data.kitti import KB_CROP_HEIGHT, KB_CROP_WIDTH, kb_crop_box
from vpd.data.transforms import _nearest_indices

__all__ = [
    "HYPERSIM_DEPTH_SCALE",
    "VKITTI_DEPTH_SCALE",
    "Hypersim",
    "VirtualKITTI2",
    "depth_in_range",
    "resize_nearest",
]

HYPERSIM_DEPTH_SCALE = 1000.0  # depth_plane PNGs: millimetres
VKITTI_DEPTH_SCALE = 100.0  # vKITTI 2 depth PNGs: centimetres


def depth_in_range(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """``depth`` with every value outside the open interval ``(min_depth, max_depth)`` (and NaN) set to 0.

    Marigold's valid mask is ``min_depth < d < max_depth``; zeroing the rest keeps vpd's "0 = invalid" meaning it.
    """
    with np.errstate(invalid="ignore"):
        valid = (depth > min_depth) & (depth < max_depth)
    return np.where(valid, depth, 0).astype(np.float32)


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest resampling of ``[H, W, ...]`` to ``size`` with half-pixel centres (torch's ``nearest-exact``)."""
    height, width = array.shape[:2]
    if (height, width) == tuple(size):
        return array
    rows, cols = _nearest_indices(height, size[0]), _nearest_indices(width, size[1])
    return np.ascontiguousarray(array[rows][:, cols])


def _sibling(path: str, prefix: str, extension: str, what: str) -> str:
    """``.../rgb_<rest>.png`` -> ``.../<prefix><rest><extension>`` (the other files of a Hypersim frame)."""
    folder, name = os.path.split(path)
    if not name.startswith("rgb_"):
        raise ValueError(f"{path}: cannot derive the {what} file (expected an rgb_<camera>_fr<frame>.png name)")
    return os.path.join(folder, prefix + os.path.splitext(name[4:])[0] + extension)


def read_normals_npy(path: str) -> np.ndarray:
    """A ``[H, W, 3]`` normal map saved with ``np.save``, as float32; non-finite vectors become 0 (invalid)."""
    try:
        normals = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npy file ({type(exc).__name__}: {exc})") from None
    if normals.ndim != 3 or normals.shape[2] != 3 or not np.issubdtype(normals.dtype, np.floating):
        raise ValueError(f"{path}: expected a float [H, W, 3] normal map, got {normals.dtype} {normals.shape}")
    normals = normals.astype(np.float32)
    normals[~np.isfinite(normals).all(axis=2)] = 0.0
    return normals


def unit_normals(normals: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Unit vectors; vectors shorter than 1e-6 (and those outside ``valid``) become the zero vector (invalid)."""
    norm = np.linalg.norm(normals, axis=2, keepdims=True)
    keep = norm > 1e-6
    if valid is not None:
        keep &= valid[..., None]
    return np.where(keep, normals / np.maximum(norm, 1e-6), 0.0).astype(np.float32)


class Hypersim(PerceptionDataset):
    """Hypersim in Marigold's preprocessed layout (see the module docstring): depth and/or camera-space normals.

    Args:
        root: the folder the list's paths are relative to: a split folder (``hypersim/train``, for the depth lists)
            or the preprocessed root (``hypersim``, for Marigold's normals lists whose paths start with ``train/``).
        filelist: lines ``"rgb_rel depth_rel"`` (depth lists, ``filename_list_<split>[_filtered].txt``) or
            ``"rgb_rel normals_rel.npy"`` (normals lists). The file the line does not name is the frame's sibling:
            ``rgb_<rest>.png`` -> ``depth_plane_<rest>.png`` / ``normal_cam_<rest>.npy`` in the same folder.
        depth: return ``depth``.
        normals: return ``normals``.
        resize_to: ``(height, width)`` to resample every raster to with nearest (Marigold and GenPercept train at
            ``(480, 640)``); None keeps the files' 768x1024.
        min_depth, max_depth: the valid range in metres (Marigold: 1e-5..65); depth outside it becomes 0.
        normals_x: ``"right"`` (Marigold's convention, the files' own) or ``"left"`` (E2E-FT / Lotus: x negated).
        transform: paired augmentation (a horizontal flip negates the normals' x).
        seed: augmentation seed.

    Samples: ``image`` uint8 ``[H, W, 3]``; ``depth`` float32 ``[H, W]`` metres (PNG / 1000; 0 where no geometry
    or out of range); ``normals`` float32 ``[H, W, 3]`` unit vectors, x right (or left), y up, z towards the camera,
    the zero vector where the file's vector is zero / non-finite or (when ``depth`` is read too) the depth is
    invalid, as E2E-FT and GenPercept mask them; ``name`` the rgb path relative to ``root`` without extension.

    Raises (at construction):
        ValueError: neither target asked for; a bad ``normals_x`` / ``resize_to``; a malformed list line (file and
            line named).
        FileNotFoundError: the list or a referenced file is missing (count + first few named).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        filelist: str | os.PathLike[str],
        depth: bool = True,
        normals: bool = False,
        resize_to: Sequence[int] | None = None,
        min_depth: float = 1e-5,
        max_depth: float = 65.0,
        normals_x: str = "right",
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        if not (depth or normals):
            raise ValueError("Hypersim: ask for depth, normals or both (depth=False and normals=False)")
        if normals_x not in ("right", "left"):
            raise ValueError(
                f"Hypersim: normals_x must be 'right' (Marigold) or 'left' (E2E-FT, Lotus), got {normals_x!r}"
            )
        if resize_to is not None and (len(resize_to) != 2 or min(int(s) for s in resize_to) <= 0):
            raise ValueError(f"Hypersim: resize_to must be (height, width) > 0, got {resize_to!r}")
        self.root = os.fspath(root)
        self.filelist = os.fspath(filelist)
        self.resize_to = (int(resize_to[0]), int(resize_to[1])) if resize_to is not None else None
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.normals_x = normals_x
        self.target_names = tuple(name for name, on in (("depth", depth), ("normals", normals)) if on)

        rows = read_path_list(self.filelist, "rgb_path depth_path.png|normals_path.npy", (2,))
        self.image_paths = [join_relative(self.root, rgb) for rgb, _ in rows]
        self.names = [os.path.splitext(rgb.lstrip("/\\"))[0] for rgb, _ in rows]
        self.depth_paths: list[str] = []
        self.normal_paths: list[str] = []
        for image_path, (_, second) in zip(self.image_paths, rows):
            listed = join_relative(self.root, second)
            is_npy = second.lower().endswith(".npy")
            if depth:
                self.depth_paths.append(_sibling(image_path, "depth_plane_", ".png", "depth") if is_npy else listed)
            if normals:
                self.normal_paths.append(listed if is_npy else _sibling(image_path, "normal_cam_", ".npy", "normals"))
        check_files(self.image_paths + self.depth_paths + self.normal_paths, "Hypersim", self.root)

    def __len__(self) -> int:
        return len(self.image_paths)

    def load(self, index: int) -> Sample:
        image_path = self.image_paths[index]
        image = read_image(image_path)
        targets: dict[str, np.ndarray] = {}
        if self.depth_paths:
            depth = read_depth_png(self.depth_paths[index], HYPERSIM_DEPTH_SCALE)
            _check_shape(self.depth_paths[index], depth.shape, image_path, image.shape)
            targets["depth"] = depth_in_range(depth, self.min_depth, self.max_depth)
        if self.normal_paths:
            normals = read_normals_npy(self.normal_paths[index])
            _check_shape(self.normal_paths[index], normals.shape, image_path, image.shape)
            normals = unit_normals(normals, targets["depth"] > 0 if "depth" in targets else None)
            if self.normals_x == "left":
                normals[..., 0] = -normals[..., 0]
            targets["normals"] = normals
        if self.resize_to is not None:
            image = resize_nearest(image, self.resize_to)
            targets = {key: resize_nearest(value, self.resize_to) for key, value in targets.items()}
        return Sample(image=image, targets=targets, name=self.names[index])


def _check_shape(path: str, shape: tuple[int, ...], image_path: str, image_shape: tuple[int, ...]) -> None:
    if shape[:2] != image_shape[:2]:
        raise ValueError(
            f"{path}: map is {shape[0]}x{shape[1]}, image {image_path} is {image_shape[0]}x{image_shape[1]}"
        )


class VirtualKITTI2(PerceptionDataset):
    """Virtual KITTI 2 depth (see the module docstring), cropped to the KITTI benchmark window as Marigold trains it.

    Args:
        root: the folder holding ``rgb/`` and ``depth/`` (Marigold's ``vkitti``), or both tars extracted together.
        filelist: lines ``"rgb_rel depth_rel"`` relative to ``root`` (Marigold's ``vkitti_train.txt``: Scene02,
            06, 18, 20 x clone, morning, overcast, sunset, 15-deg-left/right x Camera_0/1, 20,148 frames;
            ``vkitti_val.txt``: Scene01, 5,364); lines whose depth is ``None`` are skipped. None: every
            ``Scene*/<variation>/frames/rgb/Camera_*/rgb_*.jpg`` under ``root/rgb`` (or ``root``) with
            ``.../frames/depth/Camera_*/depth_*.png`` under ``root/depth`` (or ``root``), sorted.
        kb_crop: crop image and depth to the bottom-centred 352x1216 KITTI-benchmark window (Marigold's
            ``kitti_bm_crop: true``).
        min_depth, max_depth: the valid range in metres (Marigold: 1e-5..80); depth outside it (the 655.35 m sky)
            becomes 0.
        transform: paired augmentation.
        seed: augmentation seed.

    Samples: ``image`` uint8 ``[352, 1216, 3]`` (with ``kb_crop``; the files are 375x1242), ``depth`` float32
    metres (PNG / 100, 0 invalid), ``name`` the rgb path relative to ``root`` without extension.

    Raises (at construction):
        FileNotFoundError: no frames found, the list or a referenced file is missing.
        ValueError: a malformed list line (file and line named).
    """

    target_names = ("depth",)

    def __init__(
        self,
        root: str | os.PathLike[str],
        filelist: str | os.PathLike[str] | None = None,
        kb_crop: bool = True,
        min_depth: float = 1e-5,
        max_depth: float = 80.0,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        self.root = os.fspath(root)
        self.kb_crop = kb_crop
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        if filelist is not None:
            rows = read_path_list(os.fspath(filelist), "rgb_path depth_path", (2,), none_column=1)
            relative = [(rgb.lstrip("/\\"), depth.lstrip("/\\")) for rgb, depth in rows]
        else:
            relative = self._discover(self.root)
        self.image_paths = [os.path.join(self.root, rgb) for rgb, _ in relative]
        self.depth_paths = [os.path.join(self.root, depth) for _, depth in relative]
        self.names = [os.path.splitext(rgb)[0].replace(os.sep, "/") for rgb, _ in relative]
        check_files(self.image_paths + self.depth_paths, "VirtualKITTI2", self.root)

    @staticmethod
    def _discover(root: str) -> list[tuple[str, str]]:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"VirtualKITTI2: folder {root} not found")
        pattern = os.path.join("Scene*", "*", "frames", "rgb", "Camera_*", "rgb_*.jpg")
        for rgb_dir, depth_dir in (("rgb", "depth"), ("", "")):
            found = sorted(glob.glob(os.path.join(glob.escape(os.path.join(root, rgb_dir)), pattern)))
            if found:
                pairs = []
                for path in found:
                    rgb = os.path.relpath(path, root)
                    inner = os.path.relpath(path, os.path.join(root, rgb_dir))
                    parts = inner.split(os.sep)  # Scene, variation, frames, rgb, Camera_0, rgb_NNNNN.jpg
                    parts[3], parts[5] = "depth", "depth_" + parts[5][4:-4] + ".png"
                    pairs.append((rgb, os.path.join(depth_dir, *parts)))
                return pairs
        raise FileNotFoundError(
            f"VirtualKITTI2: no [rgb/]Scene*/<variation>/frames/rgb/Camera_*/rgb_*.jpg under {root}"
        )

    def __len__(self) -> int:
        return len(self.image_paths)

    def load(self, index: int) -> Sample:
        image_path, depth_path = self.image_paths[index], self.depth_paths[index]
        image = read_image(image_path)
        depth = read_depth_png(depth_path, VKITTI_DEPTH_SCALE)
        _check_shape(depth_path, depth.shape, image_path, image.shape)
        if self.kb_crop:
            try:
                top, left = kb_crop_box(*image.shape[:2])
            except ValueError as exc:
                raise ValueError(f"{image_path}: {exc} (pass kb_crop=False for other sizes)") from None
            window = (slice(top, top + KB_CROP_HEIGHT), slice(left, left + KB_CROP_WIDTH))
            image, depth = image[window].copy(), depth[window]
        depth = depth_in_range(depth, self.min_depth, self.max_depth)
        return Sample(image=image, targets={"depth": depth}, name=self.names[index])
