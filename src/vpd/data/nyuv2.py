"""NYU Depth V2: the BTS/VPD "sync" folders (training and the usual 654-image test set) and the official labeled .mat.

On-disk layout of the sync form (as BTS distributes it and VPD reads it)::

    nyu_depth_v2/
      sync/<scene>_<NNNN>[a-z]/rgb_00045.jpg, sync_depth_00045.png      (training, 24,231 pairs in the official list)
      official_splits/test/<scene>/rgb_00045.jpg, sync_depth_00045.png  (test, 654 pairs; extracted from the .mat)

Depth PNGs hold millimetres (uint16); 0 is invalid.
"""

from __future__ import annotations

import glob
import os
from typing import Any

import numpy as np

from vpd.data.base import PerceptionDataset, Sample, Transform, check_files
from vpd.data.classes import NYU_SCENE_CLASSES  # defined once there (official order, "excercise" sic); re-exported
from vpd.data.filelists import join_relative, parse_file_list
from vpd.data.io import read_depth_png, read_image

__all__ = ["NYU_SCENE_CLASSES", "NYUv2Labeled", "NYUv2Sync", "nyu_scene_class_id", "parse_file_list"]

NYU_DEPTH_SCALE = 1000.0  # sync depth PNGs store millimetres
NYU_MAX_DEPTH = 10.0  # metres: the NYUv2 protocol's cap and the official model's sigmoid scale
NYU_MIN_DEPTH = 1e-3  # metres: the NYUv2 protocol's lower bound of valid ground truth


def nyu_scene_class_id(key: str) -> int:
    """The official VPD scene-class rule: the index of the first class (in list order) that is a substring of ``key``.

    ``key`` is ``"<folder>_<file>"``, e.g. ``"study_room_0005_rgb_00045.jpg"``. Being a substring test in list order,
    it maps ``study_room`` to ``"study"`` (id 3, listed before ``"study_room"``) and ``office_kitchen`` to
    ``"kitchen"`` (id 6). The official checkpoints were trained with these ids, so they are kept.

    Returns:
        The class id in ``[0, 27)``, or -1 when no class name occurs in ``key``.
    """
    for class_id, name in enumerate(NYU_SCENE_CLASSES):
        if name in key:
            return class_id
    return -1


class NYUv2Sync(PerceptionDataset):
    """NYUv2 in the BTS/VPD "sync" layout (the one the official VPD recipe trains and tests on).

    Args:
        root: the ``nyu_depth_v2`` folder holding ``sync/`` and ``official_splits/``.
        split: ``"train"`` (files under ``root/sync``) or ``"test"`` (under ``root/official_splits/test``).
        filelist: a BTS/VPD list (``"/scene/rgb_00045.jpg /scene/sync_depth_00045.png [focal]"``, paths relative to
            the split folder). ``None`` discovers every ``<scene>/rgb_NNNNN.jpg`` with its ``sync_depth_NNNNN.png``,
            sorted by scene and file name; for the official 24,231 / 654 samples pass the official lists.
        transform: paired augmentation, see :mod:`vpd.data.transforms`.
        seed: augmentation seed.

    Samples: ``image`` uint8 ``[H, W, 3]``, ``depth`` float32 ``[H, W]`` metres (PNG / 1000, 0 invalid),
    ``class_id`` by :func:`nyu_scene_class_id` on ``"<scene folder>_<file name>"`` (-1 if none matches),
    ``name`` ``"<scene folder>/<rgb stem>"``.

    Raises (at construction):
        ValueError: bad ``split``; a malformed list line (file and line number named).
        FileNotFoundError: the split folder or list is missing; referenced files are missing (count + first few).
    """

    class_names = NYU_SCENE_CLASSES

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        filelist: str | os.PathLike[str] | None = None,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        if split not in ("train", "test"):
            raise ValueError(f"NYUv2Sync: split must be 'train' or 'test', got {split!r}")
        self.root = os.fspath(root)
        self.split = split
        self.data_dir = (
            os.path.join(self.root, "sync") if split == "train" else os.path.join(self.root, "official_splits", "test")
        )
        if filelist is not None:
            pairs = parse_file_list(os.fspath(filelist))
            self.image_paths = [join_relative(self.data_dir, rgb) for rgb, _ in pairs]
            self.depth_paths = [join_relative(self.data_dir, depth) for _, depth in pairs if depth is not None]
        else:
            self.image_paths, self.depth_paths = self._discover(self.data_dir)
        check_files(self.image_paths + self.depth_paths, f"NYUv2Sync {split}", self.data_dir)

    @staticmethod
    def _discover(data_dir: str) -> tuple[list[str], list[str]]:
        if not os.path.isdir(data_dir):
            raise FileNotFoundError(
                f"NYUv2Sync: folder {data_dir} not found (expected <root>/sync or <root>/official_splits/test)"
            )
        images = sorted(glob.glob(os.path.join(glob.escape(data_dir), "*", "rgb_*.jpg")))
        if not images:
            raise FileNotFoundError(f"NYUv2Sync: no <scene>/rgb_*.jpg files under {data_dir}")
        depths = [os.path.join(os.path.dirname(p), "sync_depth_" + os.path.basename(p)[4:-4] + ".png") for p in images]
        return images, depths

    def __len__(self) -> int:
        return len(self.image_paths)

    def load(self, index: int) -> Sample:
        image_path = self.image_paths[index]
        folder = os.path.basename(os.path.dirname(image_path))
        file_name = os.path.basename(image_path)
        image = read_image(image_path)
        depth = read_depth_png(self.depth_paths[index], NYU_DEPTH_SCALE)
        if depth.shape != image.shape[:2]:
            raise ValueError(
                f"{self.depth_paths[index]}: depth is {depth.shape}, image {image_path} is {image.shape[:2]}"
            )
        return Sample(
            image=image,
            targets={"depth": depth},
            class_id=nyu_scene_class_id(f"{folder}_{file_name}"),
            name=f"{folder}/{os.path.splitext(file_name)[0]}",
        )


def _require_h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ImportError("NYUv2Labeled needs h5py to read the MATLAB v7.3 file: pip install vpd[nyu]") from None
    return h5py


def _read_split_indices(splits_path: str, split: str) -> np.ndarray:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError("NYUv2Labeled needs scipy to read splits.mat: pip install vpd[nyu]") from None
    key = "testNdxs" if split == "test" else "trainNdxs"
    try:
        mat = loadmat(splits_path)
    except Exception as exc:
        raise ValueError(f"{splits_path}: not a readable MATLAB v5 file ({type(exc).__name__}: {exc})") from None
    if key not in mat:
        raise ValueError(f"{splits_path}: no {key!r} entry (expected the official NYUv2 splits.mat)")
    return np.asarray(mat[key]).astype(np.int64).reshape(-1)


class NYUv2Labeled(PerceptionDataset):
    """The official labeled NYUv2 set (``nyu_depth_v2_labeled.mat``, 1449 frames) with the official ``splits.mat``.

    Reads the .mat (MATLAB v7.3, i.e. HDF5) lazily with h5py; the handle is opened on first use in each process and
    never pickled, so DataLoader workers each open their own.

    Args:
        mat_path: ``nyu_depth_v2_labeled.mat``.
        splits_path: ``splits.mat`` (``testNdxs`` 654 and ``trainNdxs`` 795 entries, 1-based).
        split: ``"test"`` (default) or ``"train"``.
        depth_key: ``"rawDepths"`` (default; the raw maps BTS/VPD extract as test ground truth, 0 = invalid) or
            ``"depths"`` (the colourisation-inpainted dense maps).
        black_border: zero the image outside rows 7:H-6, cols 7:W-8 (rows 7:474, cols 7:632 at 480x640) like the BTS
            extraction, which hides the white frame left by the Kinect registration.
        transform: paired augmentation.
        seed: augmentation seed.

    Samples: ``image`` uint8 ``[H, W, 3]`` (480x640 in the real file), ``depth`` float32 ``[H, W]`` metres,
    ``class_id`` from ``"<sceneType>_rgb_<i:05d>"``, ``name`` ``"<sceneType>/rgb_<i:05d>"`` with ``i`` the 0-based
    frame index in the .mat (the names the BTS extraction gives the test files).

    Note: the extracted sync test PNGs hold the raw depth truncated to whole millimetres; this loader returns the
    .mat's float values, so metrics can differ from the PNG route by well under a millimetre.
    """

    class_names = NYU_SCENE_CLASSES

    def __init__(
        self,
        mat_path: str | os.PathLike[str],
        splits_path: str | os.PathLike[str],
        split: str = "test",
        depth_key: str = "rawDepths",
        black_border: bool = True,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        if split not in ("train", "test"):
            raise ValueError(f"NYUv2Labeled: split must be 'train' or 'test', got {split!r}")
        if depth_key not in ("rawDepths", "depths"):
            raise ValueError(f"NYUv2Labeled: depth_key must be 'rawDepths' or 'depths', got {depth_key!r}")
        self.mat_path = os.fspath(mat_path)
        self.splits_path = os.fspath(splits_path)
        self.split = split
        self.depth_key = depth_key
        self.black_border = black_border
        check_files([self.mat_path, self.splits_path], "NYUv2Labeled", os.path.dirname(self.mat_path) or ".")

        h5py = _require_h5py()
        try:
            handle = h5py.File(self.mat_path, "r")
        except OSError as exc:
            raise ValueError(f"{self.mat_path}: not an HDF5 (MATLAB v7.3) file ({exc})") from None
        with handle:
            for key in ("images", depth_key, "sceneTypes"):
                if key not in handle:
                    raise ValueError(f"{self.mat_path}: no {key!r} dataset (expected nyu_depth_v2_labeled.mat)")
            images, depths = handle["images"], handle[depth_key]
            if images.ndim != 4 or images.shape[1] != 3 or depths.shape != (images.shape[0], *images.shape[2:]):
                raise ValueError(
                    f"{self.mat_path}: expected images [N, 3, W, H] and {depth_key} [N, W, H], got "
                    f"{images.shape} and {depths.shape}"
                )
            num_frames = int(images.shape[0])
            refs = np.asarray(handle["sceneTypes"]).reshape(-1)
            if refs.shape[0] != num_frames:
                raise ValueError(f"{self.mat_path}: {refs.shape[0]} sceneTypes for {num_frames} images")
            self.scene_types = ["".join(chr(int(c)) for c in np.asarray(handle[ref]).reshape(-1)) for ref in refs]

        indices = _read_split_indices(self.splits_path, split)
        bad = indices[(indices < 1) | (indices > num_frames)]
        if bad.size:
            raise ValueError(
                f"{self.splits_path}: {bad.size} {split} indices outside 1..{num_frames} (1-based), "
                f"e.g. {bad[:3].tolist()}"
            )
        self.indices = (indices - 1).tolist()  # MATLAB is 1-based
        self._file: Any = None
        self._file_pid: int | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def _handle(self) -> Any:
        # Reopen after a fork too: an HDF5 handle inherited from the parent process is not safe to share.
        if self._file is None or self._file_pid != os.getpid():
            self._file = _require_h5py().File(self.mat_path, "r")
            self._file_pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_file_pid"] = None
        return state

    def close(self) -> None:
        """Closes this process's HDF5 handle (reopened on the next ``load``)."""
        if self._file is not None and self._file_pid == os.getpid():
            self._file.close()
        self._file = None
        self._file_pid = None

    def load(self, index: int) -> Sample:
        frame = self.indices[index]
        handle = self._handle()
        # MATLAB stores column-major, so h5py sees the axes reversed: images [N, 3, W, H] -> [H, W, 3].
        image = np.ascontiguousarray(np.asarray(handle["images"][frame], dtype=np.uint8).transpose(2, 1, 0))
        depth = np.ascontiguousarray(np.asarray(handle[self.depth_key][frame], dtype=np.float32).T)
        if self.black_border:
            height, width = image.shape[:2]
            framed = np.zeros_like(image)
            framed[7 : height - 6, 7 : width - 8] = image[7 : height - 6, 7 : width - 8]
            image = framed
        scene = self.scene_types[frame]
        stem = f"rgb_{frame:05d}"
        return Sample(
            image=image,
            targets={"depth": depth},
            class_id=nyu_scene_class_id(f"{scene}_{stem}"),
            name=f"{scene}/{stem}",
        )
