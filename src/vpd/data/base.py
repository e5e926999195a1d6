"""The sample contract every dataset follows, and the resumable sampler the trainer drives them with.

A dataset implements ``load(index) -> DepthSample`` (numpy, unaugmented). ``__getitem__`` then applies the
dataset's transform with a random generator derived from ``(seed, epoch, index)`` only, so augmentation does not
depend on worker count or process order, and a resumed run draws exactly what an uninterrupted run would have.
The trainer's :class:`EpochSampler` encodes the epoch in the index it yields (``epoch * len(dataset) + i``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


@dataclass
class DepthSample:
    """One unaugmented sample, in numpy.

    Attributes:
        image: uint8 ``[H, W, 3]`` RGB.
        depth: float32 ``[H, W]`` metric depth in metres, 0 where invalid; ``None`` when the sample has none.
        class_id: index of the scene class in the dataset's ``class_names``; -1 when unknown.
        name: a stable identifier (relative path without extension), used for output file names.
        extras: further dense targets with the same ``H, W`` (``normals`` ``[H, W, 3]``, ``semantic`` ``[H, W]``).
    """

    image: np.ndarray
    depth: np.ndarray | None = None
    class_id: int = -1
    name: str = ""
    extras: dict[str, np.ndarray] = field(default_factory=dict)


Transform = Callable[[DepthSample, np.random.Generator], DepthSample]


def sample_to_tensors(sample: DepthSample) -> dict[str, Any]:
    """Converts a sample to the batch dict the models and the trainer read.

    Returns:
        ``image`` float32 ``[3, H, W]`` in [0, 1]; ``depth`` float32 ``[1, H, W]`` (only when present);
        ``class_id`` int64 scalar; ``name`` str; each extra as a tensor (channels first when 3-D).
    """
    image = np.ascontiguousarray(sample.image)
    out: dict[str, Any] = {
        "image": torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0),
        "class_id": torch.tensor(sample.class_id, dtype=torch.long),
        "name": sample.name,
    }
    if sample.depth is not None:
        out["depth"] = torch.from_numpy(np.ascontiguousarray(sample.depth, dtype=np.float32))[None]
    for key, value in sample.extras.items():
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        out[key] = tensor.permute(2, 0, 1) if tensor.ndim == 3 else tensor
    return out


class DepthDataset(Dataset):
    """Base class: subclasses set ``class_names`` and implement ``__len__`` and ``load``.

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

    def load(self, index: int) -> DepthSample:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        epoch, index = divmod(int(index), len(self))
        sample = self.load(index)
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
