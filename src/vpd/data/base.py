"""The sample contract every dataset follows, and the resumable sampler the trainer drives them with.

A dataset implements ``load(index) -> Sample`` (numpy, unaugmented): one type for every task, an image plus a dict
of dense targets (depth, semantic labels, masks, normals, instance ids), optional text (a referring expression), a
class id and a name. ``__getitem__`` then applies the dataset's transform with a random generator derived from
``(seed, epoch, index)`` only, so augmentation does not depend on worker count or process order, and a resumed run
draws exactly what an uninterrupted run would have. The trainer's :class:`EpochSampler` encodes the epoch in the
index it yields (``epoch * len(dataset) + i``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

#: Label of pixels that no loss or metric counts (mmsegmentation's and VPD's convention).
IGNORE_INDEX = 255


@dataclass(frozen=True)
class TargetKind:
    """How geometric transforms treat one dense target (all are resampled with nearest, never blended).

    Attributes:
        fill: the value of pixels that do not exist in the source (padding): "invalid" / "ignore".
        mirror_x: a vector field whose first channel is an x direction (surface normals): negated on a
            horizontal flip.
    """

    fill: float = 0.0
    mirror_x: bool = False


#: The dense targets vpd knows, by name. Others are allowed and get :class:`TargetKind`'s defaults.
TARGETS: dict[str, TargetKind] = {
    "depth": TargetKind(fill=0.0),  # metres, 0 = invalid
    "semantic": TargetKind(fill=IGNORE_INDEX),  # class ids, 255 = ignore
    "mask": TargetKind(fill=IGNORE_INDEX),  # a binary mask (referring segmentation), 255 = ignore
    "instance": TargetKind(fill=0),  # instance ids, 0 = none
    "normals": TargetKind(fill=0.0, mirror_x=True),  # unit vectors [H, W, 3], x first
}


#: ``Sample.meta`` numbers that batches carry: a dataset's valid depth range, which evaluation clips to.
RANGE_META = ("min_depth", "max_depth")


def target_kind(name: str) -> TargetKind:
    return TARGETS.get(name, TargetKind())


@dataclass
class Sample:
    """One unaugmented sample, in numpy, for any task.

    Attributes:
        image: uint8 ``[H, W, 3]`` RGB.
        targets: dense targets with the image's ``H, W`` by name (see :data:`TARGETS`): ``depth`` float32
            ``[H, W]`` metres (0 invalid), ``semantic`` integer ``[H, W]`` class ids (255 ignore), ``mask``,
            ``instance``, ``normals`` float32 ``[H, W, 3]``.
        class_id: index of the image's class in the dataset's ``class_names`` (the NYU scene); -1 when unknown.
        text: a sentence about the image (a referring expression), or None.
        name: a stable identifier (relative path without extension), used for output file names.
        meta: anything else a dataset wants to keep with the sample (not collated into batches, except
            ``image_file``, the image's file name for per-sample tables, and the numbers :data:`RANGE_META`).
    """

    image: np.ndarray
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    class_id: int = -1
    text: str | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def depth(self) -> np.ndarray | None:
        """``targets["depth"]`` or None."""
        return self.targets.get("depth")


Transform = Callable[[Sample, np.random.Generator], Sample]


def sample_to_tensors(sample: Sample) -> dict[str, Any]:
    """Converts a sample to the batch dict the models, tasks and the trainer read.

    Returns:
        ``image`` float32 ``[3, H, W]`` in [0, 1]; ``class_id`` int64 scalar; ``name`` str; ``text`` str (only when
        present); ``image_file`` str and ``min_depth`` / ``max_depth`` floats (when ``meta`` has them); each
        target by name: floating ``[H, W]`` -> float32 ``[1, H, W]`` (depth), integer ``[H, W]`` -> int64
        ``[H, W]`` (labels, masks, instance ids), ``[H, W, C]`` -> ``[C, H, W]``.
    """
    image = np.ascontiguousarray(sample.image)
    out: dict[str, Any] = {
        "image": torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0),
        "class_id": torch.tensor(sample.class_id, dtype=torch.long),
        "name": sample.name,
    }
    if sample.text is not None:
        out["text"] = sample.text
    if isinstance(sample.meta.get("image_file"), str):
        out["image_file"] = sample.meta["image_file"]
    for key in RANGE_META:  # a dataset's own evaluation range (the affine-invariant sets)
        if isinstance(sample.meta.get(key), (int, float)):
            out[key] = float(sample.meta[key])
    for key, value in sample.targets.items():
        array = np.ascontiguousarray(value)
        if array.ndim == 3:
            out[key] = torch.from_numpy(array).permute(2, 0, 1)
        elif np.issubdtype(array.dtype, np.floating):
            out[key] = torch.from_numpy(array.astype(np.float32, copy=False))[None]
        else:
            out[key] = torch.from_numpy(array.astype(np.int64))
    return out


def image_uint8(batch: dict[str, Any], index: int = 0) -> np.ndarray:
    """Image ``index`` of a batch back as uint8 ``[H, W, 3]`` (the inverse of :func:`sample_to_tensors`)."""
    return (batch["image"][index].permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)


class PerceptionDataset(Dataset):
    """Base class of every dataset: subclasses set ``class_names`` and implement ``__len__`` and ``load``.

    Args:
        transform: applied to each loaded sample with a generator seeded by ``(seed, epoch, index)``.
        seed: the augmentation seed.
    """

    class_names: tuple[str, ...] = ()

    def __init__(self, transform: Transform | None = None, seed: int = 0) -> None:
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        raise NotImplementedError

    def load_for_epoch(self, index: int, epoch: int) -> Sample:
        """Sample ``index`` as epoch ``epoch`` sees it (a dataset that draws per epoch overrides this)."""
        return self.load(index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        epoch, index = divmod(int(index), len(self))
        sample = self.load_for_epoch(index, epoch)
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            sample = self.transform(sample, rng)
        return sample_to_tensors(sample)


def check_files(paths: Sequence[str], what: str, root: str) -> None:
    """Raises one ``FileNotFoundError`` naming how many of ``paths`` are missing and the first few."""
    import os

    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(missing[:3])
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise FileNotFoundError(f"{what}: {len(missing)} of {len(paths)} files missing under {root}: {shown}{more}")


class EpochSampler(Sampler[int]):
    """An infinite stream of sample indices, reshuffled each epoch, sharded over processes, resumable.

    Epoch ``e`` visits the samples in a permutation seeded by ``(seed, e)``; the stream is the concatenation of the
    epochs. Position ``p`` of the stream belongs to process ``p % world_size``, so with a per-process batch ``b``
    the ``world_size`` processes together consume positions ``[t*B, (t+1)*B)`` at global step ``t`` (B = b *
    world_size). ``start`` skips that many positions (a resumed run passes the positions already consumed) without
    loading anything. Yields ``epoch * n + i`` so the dataset can seed augmentation by epoch and index.
    """

    def __init__(
        self,
        num_samples: int,
        seed: int = 0,
        shuffle: bool = True,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_samples <= 0:
            raise ValueError("EpochSampler needs a non-empty dataset")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.start = start
        self.rank = rank
        self.world_size = world_size

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)

    def __iter__(self) -> Iterator[int]:
        n = self.num_samples
        epoch, offset = divmod(self.start, n)
        while True:
            order = self.order(epoch)
            for k in range(offset, n):
                if (epoch * n + k) % self.world_size == self.rank:
                    yield epoch * n + int(order[k])
            epoch, offset = epoch + 1, 0
