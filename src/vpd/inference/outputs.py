"""What ``vpd predict`` writes per image, per task: a registry from a saved model's ``model_type`` to its predictor,
its output files and the command-line options that apply to it. A task's predictor plugs in with one entry in
:data:`WRITERS`.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, ClassVar

import numpy as np

from vpd.data.io import save_npy_atomic, write_png_atomic
from vpd.inference.base import ImagePredictor

#: Options of ``vpd predict`` and the tasks they apply to (others refuse them by name).
TASK_OPTIONS = {"scene": "depth", "windows": "depth", "png_scale": "depth", "cmap": "depth", "ms": "semantic"}


class Writer:
    """Writes one task's predictions (each file atomically).

    Attributes:
        task: the task name (for messages).
        suffixes: output format -> file-name suffix (``<stem><suffix>``).
        default_formats: what is written without ``--formats``.
    """

    task: ClassVar[str]
    suffixes: ClassVar[dict[str, str]]
    default_formats: ClassVar[tuple[str, ...]]

    def __init__(self, predictor: ImagePredictor, args: argparse.Namespace) -> None:
        self.predictor = predictor
        self.args = args

    @staticmethod
    def predictor_class() -> type[ImagePredictor]:
        raise NotImplementedError

    def options(self, formats: tuple[str, ...]) -> dict[str, Any]:
        """Keyword arguments of the predictor call from the command line (checked before any image is read)."""
        raise NotImplementedError

    def write(self, prediction: Any, stem: str, image: np.ndarray, formats: tuple[str, ...]) -> None:
        raise NotImplementedError


class DepthWriter(Writer):
    task = "depth"
    suffixes: ClassVar[dict[str, str]] = {"png16": "_depth.png", "npy": "_depth.npy", "color": "_depth_color.png"}
    default_formats = ("png16", "npy", "color")

    @staticmethod
    def predictor_class() -> type[ImagePredictor]:
        from vpd.inference.predictor import DepthPredictor

        return DepthPredictor

    def options(self, formats: tuple[str, ...]) -> dict[str, Any]:
        from vpd.data.io import depth_png_scale

        predictor: Any = self.predictor
        scene: str | int | None = self.args.scene
        if isinstance(scene, str) and scene not in predictor.class_names and scene.lstrip("-").isdigit():
            scene = int(scene)
        predictor.resolve_scene(scene)  # an unknown scene fails here, before any image is read
        try:
            self.png_scale = depth_png_scale(float(predictor.model.config.max_depth), self.args.png_scale)
        except ValueError as err:
            raise ValueError(f"--png-scale: {err}") from None
        return {"scene": scene, "flip": self.args.flip, "windows": self.args.windows}

    def write(self, prediction: Any, stem: str, image: np.ndarray, formats: tuple[str, ...]) -> None:
        from vpd.data.io import write_depth_png
        from vpd.inference.visualize import colorize_depth

        depth = np.asarray(prediction.depth)  # float32 [H, W] metres
        if "png16" in formats:
            write_depth_png(stem + self.suffixes["png16"], depth, scale=self.png_scale)
        if "npy" in formats:
            save_npy_atomic(stem + self.suffixes["npy"], depth)
        if "color" in formats:
            write_png_atomic(stem + self.suffixes["color"], colorize_depth(depth, cmap=self.args.cmap or "spectral"))


class SemanticWriter(Writer):
    task = "semantic"
    suffixes: ClassVar[dict[str, str]] = {
        "labels": "_labels.png",
        "color": "_labels_color.png",
        "overlay": "_overlay.png",
        "probs": "_probs.npy",
    }
    default_formats = ("labels", "color", "overlay")

    @staticmethod
    def predictor_class() -> type[ImagePredictor]:
        from vpd.inference.segmentation import SemanticPredictor

        return SemanticPredictor

    def options(self, formats: tuple[str, ...]) -> dict[str, Any]:
        from vpd.data.base import IGNORE_INDEX
        from vpd.inference.grids import MS_RATIOS

        if len(self.predictor.class_names) > IGNORE_INDEX:  # ids 0..254 in an 8-bit PNG; 255 means "ignore"
            raise ValueError(f"the model has more than {IGNORE_INDEX} classes, which an 8-bit label PNG cannot hold")
        ratios = MS_RATIOS if self.args.ms else (1.0,)
        return {"flip": self.args.flip, "ratios": ratios, "return_probabilities": "probs" in formats}

    def write(self, prediction: Any, stem: str, image: np.ndarray, formats: tuple[str, ...]) -> None:
        from vpd.inference.visualize import colorize_labels, label_palette, overlay

        labels = np.asarray(prediction.labels)
        palette = label_palette(len(prediction.class_names))
        colors = colorize_labels(labels, palette)
        if "labels" in formats:
            write_png_atomic(stem + self.suffixes["labels"], labels.astype(np.uint8))
        if "color" in formats:
            write_png_atomic(stem + self.suffixes["color"], colors)
        if "overlay" in formats:
            write_png_atomic(stem + self.suffixes["overlay"], overlay(image, colors))
        if "probs" in formats:
            save_npy_atomic(stem + self.suffixes["probs"], np.asarray(prediction.probabilities, dtype=np.float16))


#: A saved model's ``model_type`` -> the writer of its task.
WRITERS: dict[str, type[Writer]] = {"vpd_depth": DepthWriter, "vpd_semantic": SemanticWriter}


def writer_for(model: str | os.PathLike[str]) -> type[Writer]:
    """The writer for the model saved at ``model`` (a folder or hub id), from its ``config.json`` alone."""
    from vpd.modeling.hub import read_config_json, resolve_checkpoint

    config_path, _ = resolve_checkpoint(model)
    model_type = read_config_json(config_path).get("model_type")
    if model_type not in WRITERS:
        raise ValueError(f"{config_path}: vpd predict has no outputs for model_type {model_type!r}; known: "
                         f"{', '.join(WRITERS)}")  # fmt: skip
    return WRITERS[model_type]
