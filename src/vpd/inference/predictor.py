"""``DepthPredictor``: images in any common form -> metric depth at the input resolution.

Example:
    >>> predictor = DepthPredictor.from_pretrained("path/or/hub-id")              # doctest: +SKIP
    >>> out = predictor("room.jpg", scene="bedroom", flip=True, windows=2)        # doctest: +SKIP
    >>> out.depth.shape, out.depth.dtype                                          # doctest: +SKIP
    ((480, 640), dtype('float32'))

Input conversion, the optional resize to ``processing_resolution`` and back, batching of equally sized images and
the pixel budget come from :class:`vpd.inference.base.ImagePredictor`; this class adds the scene conditioning and
depth's test-time augmentation (flip + square windows, :func:`vpd.inference.tta.predict_tta`). The model pads to a
multiple of 64 itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, overload

import numpy as np
import torch
from PIL import Image

from vpd.data.io import save_npy_atomic, write_png_atomic
from vpd.inference.base import ImageInput, ImagePredictor, is_int
from vpd.inference.outputs import Writer, register_writer
from vpd.limits import MAX_MODEL_PIXELS, MAX_WINDOWS

__all__ = ["DepthPrediction", "DepthPredictor", "ImageInput"]


@dataclass
class DepthPrediction:
    """Depth of one image.

    Attributes:
        depth: metres at the input resolution: float32 numpy ``[H, W]`` (``output_type="np"``) or a float32 torch
            tensor ``[1, H, W]`` on the model's device (``output_type="pt"``). Values lie in ``(0, max_depth)``.
        scene: the scene class the model was conditioned on, or None when it used the mean of all class embeddings
            (no scene given, or scene index -1).
        image_size: ``(H, W)`` of the input image.
    """

    depth: np.ndarray | torch.Tensor
    scene: str | None
    image_size: tuple[int, int]


class DepthPredictor(ImagePredictor):
    """Runs a :class:`~vpd.modeling.depth.VPDDepth` model on user images.

    Args:
        model: the depth model. It is put in eval mode; its parameters decide where and in which precision the
            predictor runs.
        device: move the model there first (e.g. ``"cuda"``); default: leave it where it is.
        dtype: cast the model's weights first (e.g. ``torch.bfloat16``, about twice as fast on CPUs and GPUs with bf16
            matrix units, at roughly 1e-2 relative depth error); default: leave them. Outputs are float32 either way.
    """

    @classmethod
    def model_class(cls) -> Any:
        from vpd.modeling.depth import VPDDepth

        return VPDDepth

    def check_inputs(
        self,
        images: Any,
        scene: str | int | None = None,
        flip: bool = False,
        windows: int | None = None,
        processing_resolution: int = 0,
        batch_size: int = 1,
        output_type: str = "np",
        max_pixels: int | None = MAX_MODEL_PIXELS,
    ) -> None:
        """Validates the arguments of :meth:`__call__` (files are only opened later).

        Raises:
            ValueError: naming the offending argument and the expected form.
        """
        self.check_common(images, processing_resolution, batch_size, output_type, max_pixels)
        self.resolve_scene(scene)
        if not isinstance(flip, (bool, np.bool_)):
            raise ValueError(f"flip: expected True or False, got {flip!r}")
        if windows is not None and (not is_int(windows) or not 1 <= windows <= MAX_WINDOWS):
            raise ValueError(
                f"windows: expected None (whole image) or an integer from 1 to {MAX_WINDOWS}, got {windows!r}"
            )

    def resolve_scene(self, scene: str | int | None) -> tuple[int | None, str | None]:
        """Looks a scene up in :attr:`class_names`.

        Args:
            scene: a class name, an index (-1 = unknown), or None (unknown).

        Returns:
            ``(class_id, class_name)``; ``(None, None)`` for an unknown scene, which selects the mean class embedding.

        Raises:
            ValueError: a name that is not a class (the message lists the valid names) or an index out of range.
        """
        names = self.class_names
        if scene is None:
            return None, None
        if isinstance(scene, str):
            if scene not in names:
                raise ValueError(f"scene: unknown scene {scene!r}; expected one of: {', '.join(names)}")
            return names.index(scene), scene
        if is_int(scene):
            index = int(scene)
            if not -1 <= index < len(names):
                raise ValueError(f"scene: index {index} out of range; expected -1 (mean) to {len(names) - 1}")
            return (None, None) if index == -1 else (index, names[index])
        raise ValueError(f"scene: expected a class name, an index or None, got {type(scene).__name__}")

    def _predict_batch(self, images: torch.Tensor, **options: Any) -> torch.Tensor:
        from vpd.tasks.depth import predict_depth

        class_id = options["class_id"]
        ids = None if class_id is None else torch.full((images.shape[0],), class_id, dtype=torch.long)
        return predict_depth(
            self.model, images, ids, flip=options["flip"], windows=options["windows"], batch_size=options["batch_size"]
        )

    # A str is itself a Sequence[str]; overloads are tried in order, so a path still gets a single prediction.
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self,
        images: str | os.PathLike[str] | Image.Image,
        *,
        scene: str | int | None = ...,
        flip: bool = ...,
        windows: int | None = ...,
        processing_resolution: int = ...,
        batch_size: int = ...,
        output_type: Literal["np", "pt"] = ...,
        max_pixels: int | None = ...,
    ) -> DepthPrediction: ...

    @overload
    def __call__(
        self,
        images: Sequence[ImageInput],
        *,
        scene: str | int | None = ...,
        flip: bool = ...,
        windows: int | None = ...,
        processing_resolution: int = ...,
        batch_size: int = ...,
        output_type: Literal["np", "pt"] = ...,
        max_pixels: int | None = ...,
    ) -> list[DepthPrediction]: ...

    @overload
    def __call__(
        self,
        images: np.ndarray | torch.Tensor,
        *,
        scene: str | int | None = ...,
        flip: bool = ...,
        windows: int | None = ...,
        processing_resolution: int = ...,
        batch_size: int = ...,
        output_type: Literal["np", "pt"] = ...,
        max_pixels: int | None = ...,
    ) -> DepthPrediction | list[DepthPrediction]: ...

    def __call__(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        scene: str | int | None = None,
        flip: bool = False,
        windows: int | None = None,
        processing_resolution: int = 0,
        batch_size: int = 1,
        output_type: Literal["np", "pt"] = "np",
        max_pixels: int | None = MAX_MODEL_PIXELS,
    ) -> DepthPrediction | list[DepthPrediction]:
        """Predicts metric depth.

        Args:
            images: one image or a list of images of any sizes (a 4-D array ``[N, H, W, C]`` / tensor
                ``[N, C, H, W]`` counts as a list). An image is a file path; a PIL image; a numpy array, uint8 or float
                in [0, 1], ``[H, W]`` (gray), ``[H, W, 3]`` or ``[H, W, 4]`` (alpha dropped); or a torch tensor, uint8
                or float in [0, 1], ``[3, H, W]`` or ``[H, W]``.
            scene: scene class to condition on, by name (one of :attr:`class_names`) or index. None (or -1): the mean
                of all class embeddings, the convention of mmsegmentation's VPD for images of unknown scene.
            flip: also predict the horizontally flipped image and average (official VPD test setting).
            windows: number of sliding square windows along the longer side (official NYUv2 test: 2); None: whole
                image at once.
            processing_resolution: 0: run at the native resolution. Otherwise the image is resized (bilinear,
                antialiased) so that its longer side has this many pixels, and the depth is resized back to the
                input size (bilinear, antialiased when shrinking), like Marigold's ``processing_resolution`` with
                ``match_input_resolution``.
            batch_size: crops per model call (windows x flips x images of equal processed size are batched
                together); bounds peak memory.
            output_type: ``"np"`` for numpy ``[H, W]`` depth, ``"pt"`` for torch ``[1, H, W]`` on the model's device.
            max_pixels: the most pixels an image may have as the model sees it (after ``processing_resolution``);
                larger ones are refused, naming the image and the ``processing_resolution`` that would fit. None: no
                limit (memory grows with the pixels: a full SD-1.5 model needs about 10 GB at 2048 x 2048).

        Returns:
            A :class:`DepthPrediction` for one image, or a list of them, in input order, for a list.

        Raises:
            ValueError: an argument of the wrong form (see :meth:`check_inputs`) or an unreadable image file.
            FileNotFoundError: an image path that does not exist.
        """
        self.check_inputs(images, scene, flip, windows, processing_resolution, batch_size, output_type, max_pixels)
        class_id, scene_name = self.resolve_scene(scene)
        outputs, sizes, is_batch = self.run(
            images,
            processing_resolution=processing_resolution,
            batch_size=batch_size,
            max_pixels=max_pixels,
            class_id=class_id,
            flip=bool(flip),
            windows=windows,
        )
        results = []
        for depth, size in zip(outputs, sizes):
            out: np.ndarray | torch.Tensor = depth.cpu().numpy()[0] if output_type == "np" else depth.clone()
            results.append(DepthPrediction(depth=out, scene=scene_name, image_size=size))
        return results if is_batch else results[0]


@register_writer
class DepthWriter(Writer):
    task = "depth"
    model_type = "vpd_depth"
    options_taken = ("scene", "windows", "png_scale", "cmap")
    suffixes: ClassVar[dict[str, str]] = {"png16": "_depth.png", "npy": "_depth.npy", "color": "_depth_color.png"}
    default_formats = ("png16", "npy", "color")
    preview = "color"
    download = "png16"

    @staticmethod
    def predictor_class() -> type[ImagePredictor]:
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
