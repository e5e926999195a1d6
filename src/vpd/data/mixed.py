"""A training set drawn from several datasets with fixed probabilities (Marigold's 9:1 Hypersim : Virtual KITTI mix).

Recipe form (``data.train``)::

    kind: mixed
    args:
      datasets:
        - {kind: hypersim, args: {root: .../hypersim/train, filelist: .../filename_list_train_filtered.txt,
                                  resize_to: [480, 640]}}
        - {kind: vkitti2, args: {root: .../vkitti, filelist: .../vkitti_train.txt}}
      weights: [0.9, 0.1]
      batch_size: 8            # optional: one source per batch, as Marigold's MixedBatchSampler does

Which source serves sample ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``: every position draws a source
with the given probabilities, and each source walks its own samples in a permutation seeded by
``(seed, e, source)`` (a source drawn more often than it has samples starts a fresh permutation, so no sample
repeats before all of its source's have been seen). The children are built through the registry without a
transform; the mixed set's transform then runs once, on the drawn sample, seeded like any dataset's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vpd.configuration import ConfigError
from vpd.data.base import EpochSampler, PerceptionDataset, Sample, Transform

__all__ = ["MixedDataset"]

_SOURCE_SALT = 0x6D6978  # keeps the source draw's stream apart from augmentation's (seed, epoch, index)


def target_names(dataset: PerceptionDataset) -> tuple[str, ...]:
    """The dense targets a dataset yields: its ``target_names`` if it declares them, else those of sample 0."""
    declared = getattr(dataset, "target_names", None)
    if declared is not None:
        return tuple(sorted(declared))
    return tuple(sorted(dataset.load(0).targets))


class MixedDataset(PerceptionDataset):
    """Samples drawn from child datasets with fixed probabilities, deterministically by ``(seed, epoch, index)``.

    Args:
        datasets: the children, each ``{"kind": <registry name>, "args": {...}}`` (built with
            :func:`vpd.data.registry.build_dataset`, no transform, this set's seed).
        weights: one probability per child (any positive numbers, normalised); None: proportional to the
            children's lengths.
        length: samples per epoch; None: the children's total length (Marigold's epoch).
        batch_size: None: every sample draws its source. A batch size: the source is drawn per block of
            ``batch_size`` consecutive positions of the trainer's sample stream (:class:`EpochSampler` with this
            seed), so each batch comes from one child and children of different image sizes can be mixed
            (Marigold's 480x640 Hypersim with 352x1216 vKITTI). Give the recipe's ``train.batch_size`` (or any
            multiple of the per-process batch x processes).
        transform: applied once, to the drawn sample.
        seed: the draw's and the augmentation's seed (the trainer passes ``train.seed``).

    Samples: the child's sample with ``name`` ``"<kind>/<child name>"`` and ``meta["source"]`` the child's kind.
    ``class_names`` are the children's when all agree, else empty.

    Raises (at construction):
        ConfigError: a malformed ``datasets`` entry, a child's bad args, bad ``weights`` / ``length`` /
            ``batch_size``, an empty child, or children whose targets differ (each child's targets named).
    """

    def __init__(
        self,
        datasets: Sequence[Mapping[str, Any]],
        weights: Sequence[float] | None = None,
        length: int | None = None,
        batch_size: int | None = None,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        from vpd.data.registry import build_dataset  # the registry imports this module

        super().__init__(transform=transform, seed=seed)
        if isinstance(datasets, (str, bytes)) or not isinstance(datasets, Sequence) or not datasets:
            raise ConfigError("mixed.datasets: expected a non-empty list of {kind, args} entries")
        self.children: list[PerceptionDataset] = []
        self.kinds: list[str] = []
        for j, entry in enumerate(datasets):
            where = f"mixed.datasets[{j}]"
            if not isinstance(entry, Mapping) or not isinstance(entry.get("kind"), str):
                raise ConfigError(f"{where}: expected {{kind: <dataset>, args: {{...}}}}, got {entry!r}")
            unknown = set(entry) - {"kind", "args"}
            if unknown:
                raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; expected kind and args")
            args = entry.get("args") or {}
            if not isinstance(args, Mapping):
                raise ConfigError(f"{where}.args: expected a mapping, got {type(args).__name__}")
            if entry["kind"] == "mixed":
                raise ConfigError(f"{where}: a mixed dataset cannot contain another mixed dataset")
            child = build_dataset(entry["kind"], args, transform=None, seed=seed, where=where)
            if len(child) == 0:
                raise ConfigError(f"{where}: dataset {entry['kind']!r} has no samples")
            self.children.append(child)
            self.kinds.append(entry["kind"])

        names = [target_names(child) for child in self.children]
        if any(n != names[0] for n in names):
            listed = "; ".join(f"{k}: {', '.join(n) or 'none'}" for k, n in zip(self.kinds, names))
            raise ConfigError(f"mixed.datasets: the children's targets differ ({listed}); they must agree")
        self.target_names = names[0]

        if weights is None:
            weights = [float(len(child)) for child in self.children]
        if len(weights) != len(self.children):
            raise ConfigError(f"mixed.weights: {len(weights)} weights for {len(self.children)} datasets")
        try:
            values = [float(w) for w in weights]
        except (TypeError, ValueError):
            values = [math.nan]
        if not all(math.isfinite(w) and w > 0 for w in values):
            raise ConfigError(f"mixed.weights: expected positive finite numbers, got {list(weights)}")
        total = sum(values)
        self.weights = np.array([w / total for w in values])
        self.length = sum(len(child) for child in self.children) if length is None else int(length)
        if self.length <= 0:
            raise ConfigError(f"mixed.length: expected a positive number of samples, got {length}")
        if batch_size is not None and int(batch_size) <= 0:
            raise ConfigError(f"mixed.batch_size: expected a positive integer, got {batch_size}")
        self.batch_size = int(batch_size) if batch_size is not None else None
        class_names = {child.class_names for child in self.children}
        self.class_names = class_names.pop() if len(class_names) == 1 else ()
        self._plan_epoch: int | None = None
        self._plan: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def _pick(self, uniform: np.ndarray) -> np.ndarray:
        """Sources for uniform draws in [0, 1): source j covers ``[w_0 + .. + w_(j-1), w_0 + .. + w_j)``."""
        picked = np.searchsorted(np.cumsum(self.weights), uniform, side="right")
        return np.minimum(picked, len(self.weights) - 1).astype(np.int64)

    def _source_draws(self, epoch: int) -> np.ndarray:
        """The source index of each sample index ``0..n-1`` in ``epoch``."""
        n = self.length
        if self.batch_size is None:
            return self._pick(np.random.default_rng([self.seed, epoch, _SOURCE_SALT]).random(n))
        # Stream position p = epoch * n + k holds sample order[k]; its block is p // batch_size. Blocks that
        # straddle two epochs draw the same source in both, as the draw depends on the block alone.
        size = self.batch_size
        blocks = (epoch * n + np.arange(n)) // size
        first = int(blocks[0])
        per_block = np.array(
            [np.random.default_rng([self.seed, b, _SOURCE_SALT]).random() for b in range(first, int(blocks[-1]) + 1)]
        )
        by_position = self._pick(per_block[blocks - first])
        order = EpochSampler(n, seed=self.seed).order(epoch)
        sources = np.empty(n, dtype=np.int64)
        sources[order] = by_position
        return sources

    def plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(source, child_index)`` of every sample index in ``epoch`` (cached for the last epoch asked)."""
        if self._plan_epoch != epoch or self._plan is None:
            sources = self._source_draws(epoch)
            child_index = np.zeros(self.length, dtype=np.int64)
            for j, child in enumerate(self.children):
                slots = np.flatnonzero(sources == j)
                if not len(slots):
                    continue
                rounds = -(-len(slots) // len(child))
                rng = np.random.default_rng([self.seed, epoch, j, _SOURCE_SALT])
                walk = np.concatenate([rng.permutation(len(child)) for _ in range(rounds)])
                child_index[slots] = walk[: len(slots)]
            self._plan_epoch, self._plan = epoch, (sources, child_index)
        return self._plan

    def load(self, index: int) -> Sample:
        return self.load_for_epoch(index, 0)

    def load_for_epoch(self, index: int, epoch: int) -> Sample:
        sources, child_index = self.plan(epoch)
        j, k = int(sources[index]), int(child_index[index])
        sample = self.children[j].load_for_epoch(k, epoch)
        if tuple(sorted(sample.targets)) != self.target_names:
            raise ValueError(
                f"mixed: {self.kinds[j]} sample {k} ({sample.name}) has targets {sorted(sample.targets)}, "
                f"expected {list(self.target_names)}"
            )
        sample.name = f"{self.kinds[j]}/{sample.name}"
        sample.meta = {**sample.meta, "source": self.kinds[j]}
        return sample
