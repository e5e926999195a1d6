"""``SemanticPredictor``: images in any common form -> per-pixel class labels (and probabilities) at the input size.

Example:
    >>> predictor = SemanticPredictor.from_pretrained("path/or/hub-id")          # doctest: +SKIP
    >>> out = predictor("room.jpg")                                              # doctest: +SKIP
    >>> out.labels.shape, predictor.class_names[int(out.labels[0, 0])]           # doctest: +SKIP
    ((480, 640), 'wall')

The test-time options are the evaluation's (``vpd.tasks.semantic.SemanticEvalConfig``, mmseg's protocol): a
keep-ratio resize to ``img_scale`` (official (2048, 512)), a sliding-window grid (``crop`` / ``stride``) or the
whole image, optional extra scales (``ratios``) and a mirrored view, averaged as softmax probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from vpd.data.io import save_npy_atomic, write_png_atomic
from vpd.inference.base import ImageInput, ImagePredictor
from vpd.inference.grids import ADE_CROP, ADE_IMG_SCALE, ADE_STRIDE
from vpd.inference.outputs import Writer, register_writer
from vpd.limits import MAX_MODEL_PIXELS

__all__ = ["SemanticPrediction", "SemanticPredictor"]


@dataclass
class SemanticPrediction:
    """Segmentation of one image.

    Attributes:
        labels: int64 ``[H, W]`` class ids into ``class_names`` (numpy, or torch on the model's device).
        probabilities: float32 ``[C, H, W]`` softmax scores when asked for (``return_probabilities=True``), else None.
        class_names: the model's classes.
        image_size: ``(H, W)`` of the input image.
    """

    labels: np.ndarray | torch.Tensor
    probabilities: np.ndarray | torch.Tensor | None
    class_names: tuple[str, ...]
    image_size: tuple[int, int]


class SemanticPredictor(ImagePredictor):
    """Runs a :class:`~vpd.modeling.semantic.VPDSemantic` model on user images (see the module docstring)."""

    resize_antialias = False  # scores are resized back like mmseg's logits: bilinear, no antialiasing

    @classmethod
    def model_class(cls) -> Any:
        from vpd.modeling.semantic import VPDSemantic

        return VPDSemantic

    def _restore(self, output: torch.Tensor, size: tuple[int, int], **options: Any) -> torch.Tensor:
        """Without probabilities, labels are taken at the processing resolution and resized with nearest: the
        ``C``-channel scores of a large photo at full size would need ``C`` times its pixels in memory."""
        if options["return_probabilities"]:
            return super()._restore(output, size)
        labels = output.argmax(1, keepdim=True).float()
        if tuple(labels.shape[-2:]) == tuple(size):
            return labels
        return torch.nn.functional.interpolate(labels, size=size, mode="nearest-exact")

    def _predict_batch(self, images: torch.Tensor, **options: Any) -> torch.Tensor:
        from vpd.tasks.semantic import predict_segmentation

        return predict_segmentation(self.model, images, options["settings"])

    def __call__(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        img_scale: tuple[int, int] | None = ADE_IMG_SCALE,
        mode: Literal["slide", "whole"] = "slide",
        crop: tuple[int, int] = ADE_CROP,
        stride: tuple[int, int] = ADE_STRIDE,
        ratios: Sequence[float] = (1.0,),
        flip: bool = False,
        processing_resolution: int = 0,
        batch_size: int = 1,
        return_probabilities: bool = False,
        output_type: Literal["np", "pt"] = "np",
        max_pixels: int | None = MAX_MODEL_PIXELS,
    ) -> SemanticPrediction | list[SemanticPrediction]:
        """Segments images.

        Args:
            images: one image or a list (see :data:`vpd.inference.base.ImageInput`).
            img_scale: keep-ratio resize ``(long, short)`` before the model (official (2048, 512)); None: native.
            mode: ``slide`` (windows of ``crop`` every ``stride``, overlaps averaged) or ``whole``.
            crop, stride: the slide grid.
            ratios: scales of ``img_scale`` to average (official multi-scale: 1.0, 1.125, 1.25, 1.375, 1.5).
            flip: add a mirrored view per scale.
            processing_resolution: resize the longer side to this first (0: no); scores are resized back.
            batch_size: windows per model call.
            return_probabilities: also return the ``[C, H, W]`` softmax scores.
            output_type: ``"np"`` or ``"pt"``.
            max_pixels: refuse larger images as the model sees them (see ``ImagePredictor.run``).

        Returns:
            A :class:`SemanticPrediction`, or a list of them in input order for a list.

        Raises:
            ValueError: an argument of the wrong form or an unreadable image.
            FileNotFoundError: an image path that does not exist.
        """
        from vpd.tasks.semantic import SemanticEvalConfig

        self.check_common(images, processing_resolution, batch_size, output_type, max_pixels)
        if not isinstance(flip, (bool, np.bool_)):
            raise ValueError(f"flip: expected True or False, got {flip!r}")
        try:
            settings = SemanticEvalConfig(
                img_scale=None if img_scale is None else (int(img_scale[0]), int(img_scale[1])),
                mode=mode,
                crop=(int(crop[0]), int(crop[1])),
                stride=(int(stride[0]), int(stride[1])),
                ratios=tuple(float(r) for r in ratios),
                flip=bool(flip),
                batch_size=batch_size,
            )
        except (TypeError, IndexError) as err:
            raise ValueError(f"img_scale / crop / stride: expected pairs of integers ({err})") from None
        if mode not in ("slide", "whole"):
            raise ValueError(f"mode: expected 'slide' or 'whole', got {mode!r}")
        outputs, sizes, is_batch = self.run(
            images,
            processing_resolution=processing_resolution,
            batch_size=1,  # images of a size share a batch; windows are batched by `settings.batch_size`
            max_pixels=max_pixels,
            settings=settings,
            return_probabilities=return_probabilities,
        )
        averaged = flip or len(settings.ratios) > 1  # several views come back as mean probabilities already
        results = []
        for scores, size in zip(outputs, sizes):
            if return_probabilities:
                probabilities = scores if averaged else scores.softmax(0)
                labels = scores.argmax(0)
            else:  # ``_restore`` gave the labels as one channel
                probabilities, labels = None, scores[0]
            labels = labels.long()
            if output_type == "np":
                as_np = None if probabilities is None else probabilities.cpu().numpy()
                results.append(SemanticPrediction(labels.cpu().numpy(), as_np, self.class_names, size))
            else:
                results.append(SemanticPrediction(labels, probabilities, self.class_names, size))
        return results if is_batch else results[0]


@register_writer
class SemanticWriter(Writer):
    task = "semantic"
    model_type = "vpd_semantic"
    options_taken = ("ms",)
    suffixes: ClassVar[dict[str, str]] = {
        "labels": "_labels.png",
        "color": "_labels_color.png",
        "overlay": "_overlay.png",
        "probs": "_probs.npy",
    }
    default_formats = ("labels", "color", "overlay")
    preview = "overlay"
    download = "labels"

    @staticmethod
    def predictor_class() -> type[ImagePredictor]:
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
