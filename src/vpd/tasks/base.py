"""The task protocol: everything task-specific that the trainer, the evaluator and the CLI need."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch

from vpd.training.config import AugmentConfig, EvalConfig, ModelConfig

if TYPE_CHECKING:
    from vpd.data.base import PerceptionDataset, Transform
    from vpd.modeling.hub import PretrainedModel
    from vpd.training.config import RunConfig


class Metrics(Protocol):
    """Accumulates per-sample results; ``compute`` gives the dataset-level numbers."""

    def update(self, prediction: torch.Tensor, batch: dict[str, Any]) -> None: ...
    def compute(self) -> dict[str, float]: ...
    def gather(self) -> None: ...
    @property
    def rows(self) -> list[dict[str, Any]]: ...
    def tables(self) -> dict[str, list[dict[str, Any]]]: ...


class Task(ABC):
    """One perception task. Subclasses are stateless; the trainer passes configs in.

    Attributes:
        name: what ``model.task`` says.
        model_config, augment_config, eval_config: the task's sections of the run config.
        defaults: the task's official recipe as a nested dict over the generic defaults (``optim``, ``train``,
            ``data``, ...); a recipe file lists only what differs from it.
        model_types: the ``model_type`` names (``vpd.modeling.hub``) this task's models save as.
        primary_metric, higher_is_better: what "best" means for ``model_best``.
    """

    name: ClassVar[str]
    model_config: ClassVar[type[ModelConfig]] = ModelConfig
    augment_config: ClassVar[type[AugmentConfig]] = AugmentConfig
    eval_config: ClassVar[type[EvalConfig]] = EvalConfig
    defaults: ClassVar[dict[str, Any]] = {}
    model_types: ClassVar[tuple[str, ...]] = ()
    primary_metric: ClassVar[str]
    higher_is_better: ClassVar[bool]

    def resolve(self, config: RunConfig) -> RunConfig:
        """Fills values a recipe may leave to other sections (depth: ``eval.max_depth`` from the model's range)."""
        return config

    def best_metric(self, config: RunConfig) -> tuple[str, bool]:
        """The metric ``model_best`` follows for this run and whether higher is better (default: the class's)."""
        return self.primary_metric, self.higher_is_better

    def dataset_classes(self, dataset: PerceptionDataset) -> tuple[str, ...]:
        """The classes a model for ``dataset`` is built with (depth: its scene classes)."""
        return tuple(dataset.class_names)

    def conversion_settings(self, config: RunConfig) -> dict[str, Any]:
        """What converting a released checkpoint for this recipe needs that the weights do not hold."""
        return {"class_names": config.model.class_names}

    @abstractmethod
    def build_model(self, config: RunConfig, class_names: tuple[str, ...]) -> PretrainedModel:
        """The model to train (from ``config.model``), for a dataset with these classes."""

    @abstractmethod
    def load_model(self, source: str, device: str | torch.device = "cpu") -> PretrainedModel:
        """A trained model in vpd's format (folder or hub id)."""

    @abstractmethod
    def train_transform(self, config: RunConfig) -> Transform | None:
        """Paired augmentation for training samples."""

    @abstractmethod
    def loss(
        self, model: torch.nn.Module, batch: dict[str, Any], config: RunConfig | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss of a batch (on the model's device) and scalars to log; ``config``: the run (a task's loss
        options live in its sections; None: the defaults)."""

    @abstractmethod
    def predict(self, model: torch.nn.Module, batch: dict[str, Any], config: EvalConfig) -> torch.Tensor:
        """Evaluation-time prediction (with the configured test-time augmentation)."""

    @abstractmethod
    def metrics(self, config: EvalConfig, class_names: tuple[str, ...] | None = None) -> Metrics:
        """A fresh accumulator implementing the task's evaluation protocol (``class_names`` name table rows)."""

    @abstractmethod
    def save_prediction(self, model: torch.nn.Module, prediction: torch.Tensor, stem: Path) -> None:
        """Writes one evaluation prediction (``[C, H, W]``) as ``stem`` + the task's suffix, atomically."""

    @abstractmethod
    def visualize(self, batch: dict[str, Any], prediction: torch.Tensor, index: int = 0) -> np.ndarray:
        """A uint8 ``[H, W, 3]`` panel of one sample: input, prediction, ground truth, error."""
