"""KITTI depth on the Eigen split, as BTS and VPD read it.

Layout (KITTI raw + the annotated depth release)::

    kitti/
      raw_data/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png
      data_depth_annotated/{train,val}/2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png

Two file-list forms exist and both are read:

- VPD: ``"/raw_data/2011_09_26/.../0000000069.png /data_depth_annotated/val/.../0000000069.png"``, both relative to
  ``root`` (the default ``image_root`` and ``depth_root``);
- BTS: ``"2011_09_26/.../0000000069.png 2011_09_26_drive_0002_sync/proj_depth/.../0000000069.png 721.5377"``, with
  ``image_root=root/raw_data`` and ``depth_root=root/data_depth_annotated``; a depth path not found directly under
  ``depth_root`` is also looked for under its ``train/`` and ``val/`` sub-folders (the release ships them split, BTS
  merges them). ``None`` marks a frame without ground truth (the Eigen test list: 697 lines, 652 with depth).

Depth PNGs are uint16 with ``value / 256 = metres``; 0 is invalid.
"""

from __future__ import annotations

import os

from vpd.data.base import PerceptionDataset, Sample, Transform, check_files
from vpd.data.filelists import join_relative, parse_file_list
from vpd.data.io import read_depth_png, read_image

__all__ = ["KB_CROP_HEIGHT", "KB_CROP_WIDTH", "KITTI_DEPTH_SCALE", "KITTIEigen", "kb_crop_box"]

KITTI_DEPTH_SCALE = 256.0
KB_CROP_HEIGHT = 352
KB_CROP_WIDTH = 1216


def kb_crop_box(height: int, width: int) -> tuple[int, int]:
    """Top-left corner of the KITTI-benchmark crop (bottom-aligned, horizontally centred 352x1216 window).

    Returns:
        ``(top, left)`` with ``top = height - 352`` and ``left = (width - 1216) // 2``.

    Raises:
        ValueError: the frame is smaller than 352x1216.
    """
    if height < KB_CROP_HEIGHT or width < KB_CROP_WIDTH:
        raise ValueError(f"KB crop needs a frame of at least {KB_CROP_HEIGHT}x{KB_CROP_WIDTH}, got {height}x{width}")
    return height - KB_CROP_HEIGHT, (width - KB_CROP_WIDTH) // 2


class KITTIEigen(PerceptionDataset):
    """KITTI raw frames with the annotated (projected, accumulated) depth, listed by an Eigen-split file list.

    Args:
        root: the KITTI folder; default for both ``image_root`` and ``depth_root``.
        filelist: lines ``"rgb_rel depth_rel_or_None [focal]"`` (see the module docstring for both forms).
        image_root: folder the rgb paths are relative to (default ``root``).
        depth_root: folder the depth paths are relative to (default ``root``); ``train/`` and ``val/`` below it are
            searched too.
        kb_crop: crop image and depth to the 352x1216 KITTI-benchmark window (``top = H - 352``,
            ``left = (W - 1216) // 2``), as the official training and evaluation do.
        skip_missing_gt: drop lines whose depth is ``None``; otherwise they yield samples with ``depth=None``.
        transform: paired augmentation.
        seed: augmentation seed.

    Samples: ``image`` uint8 ``[352, 1216, 3]`` (with ``kb_crop``), ``depth`` float32 metres (PNG / 256, 0 invalid),
    ``class_id`` -1 (KITTI has no scene classes), ``name`` the rgb path relative to ``image_root`` without extension.

    Raises (at construction):
        FileNotFoundError: the list or any referenced file is missing (count + first few named).
        ValueError: a malformed list line (file and line number named), or a list left empty by ``skip_missing_gt``.
    """

    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        root: str | os.PathLike[str],
        filelist: str | os.PathLike[str],
        image_root: str | os.PathLike[str] | None = None,
        depth_root: str | os.PathLike[str] | None = None,
        kb_crop: bool = True,
        skip_missing_gt: bool = True,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(transform=transform, seed=seed)
        self.root = os.fspath(root)
        self.image_root = os.fspath(image_root) if image_root is not None else self.root
        self.depth_root = os.fspath(depth_root) if depth_root is not None else self.root
        self.kb_crop = kb_crop
        self.filelist = os.fspath(filelist)
        pairs = parse_file_list(self.filelist, allow_none_depth=True)
        if skip_missing_gt:
            pairs = [(rgb, depth) for rgb, depth in pairs if depth is not None]
            if not pairs:
                raise ValueError(f"{self.filelist}: no line has a depth path (all 'None') and skip_missing_gt=True")
        self.image_paths = [join_relative(self.image_root, rgb) for rgb, _ in pairs]
        self.depth_paths = [self._resolve_depth(depth) if depth is not None else None for _, depth in pairs]
        self.names = [os.path.splitext(rgb.lstrip("/\\"))[0] for rgb, _ in pairs]
        check_files(self.image_paths, "KITTIEigen images", self.image_root)
        check_files([p for p in self.depth_paths if p is not None], "KITTIEigen depth", self.depth_root)

    def _resolve_depth(self, rel: str) -> str:
        direct = join_relative(self.depth_root, rel)
        if os.path.isfile(direct):
            return direct
        for sub in ("train", "val"):
            candidate = join_relative(os.path.join(self.depth_root, sub), rel)
            if os.path.isfile(candidate):
                return candidate
        return direct  # reported as missing by check_files under its plain name

    def __len__(self) -> int:
        return len(self.image_paths)

    def load(self, index: int) -> Sample:
        image = read_image(self.image_paths[index])
        depth_path = self.depth_paths[index]
        depth = read_depth_png(depth_path, KITTI_DEPTH_SCALE) if depth_path is not None else None
        if depth is not None and depth.shape != image.shape[:2]:
            raise ValueError(
                f"{depth_path}: depth is {depth.shape}, image {self.image_paths[index]} is {image.shape[:2]}"
            )
        if self.kb_crop:
            try:
                top, left = kb_crop_box(*image.shape[:2])
            except ValueError as exc:
                raise ValueError(f"{self.image_paths[index]}: {exc} (pass kb_crop=False for other sizes)") from None
            window = (slice(top, top + KB_CROP_HEIGHT), slice(left, left + KB_CROP_WIDTH))
            image = image[window].copy()
            if depth is not None:
                depth = depth[window].copy()
        return Sample(image=image, targets={} if depth is None else {"depth": depth}, name=self.names[index])
