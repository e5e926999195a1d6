"""Dataset kinds that recipes name (``data.train.kind``), built from ``args`` with one-line errors."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from vpd.configuration import ConfigError
from vpd.data.base import PerceptionDataset, Transform


def _kinds() -> dict[str, Callable[..., PerceptionDataset]]:
    from vpd.data.ade20k import ADE20K, SegmentationFolder
    from vpd.data.affine_eval import DIODE, ETH3D, KITTIAffine, NYUv2Affine, ScanNet
    from vpd.data.folder import ImageFolderDepth
    from vpd.data.hypersim import Hypersim, VirtualKITTI2
    from vpd.data.kitti import KITTIEigen
    from vpd.data.matting import DIS5K, P3M10k
    from vpd.data.mixed import MixedDataset
    from vpd.data.nyuv2 import NYUv2Labeled, NYUv2Sync
    from vpd.data.refcoco import RefCOCO, ReferringFolder
    from vpd.data.synthetic import SyntheticDataset, SyntheticReferringDataset

    return {
        "nyuv2_sync": NYUv2Sync,
        "nyuv2_labeled": NYUv2Labeled,
        "kitti_eigen": KITTIEigen,
        "folder": ImageFolderDepth,
        "synthetic": SyntheticDataset,
        "ade20k": ADE20K,
        "segmentation_folder": SegmentationFolder,
        "refcoco": RefCOCO,
        "referring_folder": ReferringFolder,
        "synthetic_referring": SyntheticReferringDataset,
        "hypersim": Hypersim,
        "vkitti2": VirtualKITTI2,
        "mixed": MixedDataset,
        "nyuv2_affine": NYUv2Affine,
        "kitti_affine": KITTIAffine,
        "eth3d": ETH3D,
        "scannet": ScanNet,
        "diode": DIODE,
        "p3m10k": P3M10k,
        "dis5k": DIS5K,
    }


def build_dataset(
    kind: str, args: Mapping[str, Any], *, transform: Transform | None = None, seed: int = 0, where: str = "data"
) -> PerceptionDataset:
    """Builds dataset ``kind`` with ``args`` (its constructor's keyword arguments) plus the transform and seed."""
    kinds = _kinds()
    if kind not in kinds:
        raise ConfigError(f"{where}.kind: unknown dataset {kind!r}; known: {', '.join(sorted(kinds))}")
    cls = kinds[kind]
    kwargs = {"seed": seed, **args, "transform": transform}  # a dataset's own seed (synthetic scenes) wins
    signature = inspect.signature(cls)
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        accepted = [n for n in signature.parameters if n not in ("transform", "self")]
        raise ConfigError(f"{where}.args for {kind}: {err}; accepted: {', '.join(accepted)}") from None
    return cls(**kwargs)
