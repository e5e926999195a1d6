"""What ``vpd predict`` writes per image, per task: a registry from a saved model's ``model_type`` to its predictor,
its output files and the command-line options that apply to it. A task's predictor module registers its writer with
:func:`register_writer`; the built-in modules are listed in ``_BUILTIN``.
"""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any, ClassVar

import numpy as np

from vpd.inference.base import ImagePredictor


class Writer:
    """Writes one task's predictions (each file atomically).

    Attributes:
        task: the task name (for messages).
        suffixes: output format -> file-name suffix (``<stem><suffix>``).
        default_formats: what is written without ``--formats``.
        model_type: the saved models it writes for.
        options: the ``vpd predict`` options (argparse destinations) only this task takes.
        takes_expressions: the predictor is called with ``expressions=`` (one list of sentences per image).
        preview: the format ``vpd serve`` shows (a colour map or an overlay).
        download: the format ``vpd serve`` offers to download (the full-precision map or the labels).
    """

    task: ClassVar[str]
    model_type: ClassVar[str]
    options_taken: ClassVar[tuple[str, ...]] = ()
    takes_expressions: ClassVar[bool] = False
    suffixes: ClassVar[dict[str, str]]
    default_formats: ClassVar[tuple[str, ...]]
    preview: ClassVar[str]
    download: ClassVar[str]

    def __init__(self, predictor: ImagePredictor, args: argparse.Namespace) -> None:
        self.predictor = predictor
        self.args = args

    @staticmethod
    def predictor_class() -> type[ImagePredictor]:
        raise NotImplementedError

    @classmethod
    def output_suffixes(cls, formats: tuple[str, ...], count: int = 1) -> list[str]:
        """Every ``<stem><suffix>`` file a run may write per image (``count``: the most sentences of an image)."""
        return [cls.suffixes[f] for f in formats]

    def options(self, formats: tuple[str, ...]) -> dict[str, Any]:
        """Keyword arguments of the predictor call from the command line (checked before any image is read)."""
        raise NotImplementedError

    def write(self, prediction: Any, stem: str, image: np.ndarray, formats: tuple[str, ...]) -> None:
        raise NotImplementedError


#: A saved model's ``model_type`` -> the writer of its task.
WRITERS: dict[str, type[Writer]] = {}
_BUILTIN = ("vpd.inference.predictor", "vpd.inference.segmentation", "vpd.inference.referring",
            "vpd.inference.onestep")


def register_writer(cls: type[Writer]) -> type[Writer]:
    """Class decorator: ``vpd predict`` writes ``cls.model_type`` models' predictions with ``cls``."""
    WRITERS[cls.model_type] = cls
    return cls


def writers() -> dict[str, type[Writer]]:
    for module in _BUILTIN:
        importlib.import_module(module)
    return WRITERS


def writer_for(model: str | os.PathLike[str]) -> type[Writer]:
    """The writer for the model saved at ``model`` (a folder or hub id), from its ``config.json`` alone."""
    from vpd.modeling.hub import read_config_json, resolve_checkpoint

    config_path, _ = resolve_checkpoint(model)
    model_type = read_config_json(config_path).get("model_type")
    if model_type not in writers():
        raise ValueError(f"{config_path}: vpd predict has no outputs for model_type {model_type!r}; known: "
                         f"{', '.join(WRITERS)}")  # fmt: skip
    return WRITERS[model_type]


def foreign_options(writer: type[Writer], args: argparse.Namespace) -> list[tuple[str, str]]:
    """``(option, task)`` for each option set on the command line that belongs to another task's writer."""
    found = []
    for other in writers().values():
        if other.task == writer.task:
            continue
        found += [(name, other.task) for name in other.options_taken if getattr(args, name) not in (None, False)]
    return found
