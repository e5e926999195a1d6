"""``DepthPredictor``: images in any common form -> metric depth at the input resolution.

Example:
    >>> predictor = DepthPredictor.from_pretrained("path/or/hub-id")              # doctest: +SKIP
    >>> out = predictor("room.jpg", scene="bedroom", flip=True, windows=2)        # doctest: +SKIP
    >>> out.depth.shape, out.depth.dtype                                          # doctest: +SKIP
    ((480, 640), dtype('float32'))

The predictor owns pre- and post-processing in one place: conversion to float RGB in [0, 1], the optional resize to
``processing_resolution`` and back, batching of equally sized images, and test-time augmentation
(:func:`vpd.inference.tta.predict_tta`). The model pads to a multiple of 64 itself.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union, overload

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vpd.data.io import read_image
from vpd.inference.grids import square_grid
from vpd.inference.tta import predict_tta
from vpd.limits import MAX_MODEL_PIXELS, MAX_PROCESSING_RESOLUTION, MAX_WINDOWS
from vpd.modeling.depth import VPDDepth

__all__ = ["DepthPrediction", "DepthPredictor", "ImageInput"]

#: One image: a file path, a PIL image, a numpy array (uint8 or float in [0, 1]; ``[H, W]``, ``[H, W, 1|3|4]``) or a
#: torch tensor (uint8 or float in [0, 1]; ``[H, W]`` or ``[1|3, H, W]``).
ImageInput = Union[str, "os.PathLike[str]", Image.Image, np.ndarray, torch.Tensor]

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


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


def _describe(item: object) -> str:
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return f"{type(item).__name__} of shape {tuple(item.shape)} and dtype {item.dtype}"
    return type(item).__name__


class DepthPredictor:
    """Runs a :class:`~vpd.modeling.depth.VPDDepth` model on user images.

    Args:
        model: the depth model. It is put in eval mode; its parameters decide where and in which precision the
            predictor runs.
        device: move the model there first (e.g. ``"cuda"``); default: leave it where it is.
        dtype: cast the model's weights first (e.g. ``torch.bfloat16``, about twice as fast on CPUs and GPUs with bf16
            matrix units, at roughly 1e-2 relative depth error); default: leave them. Outputs are float32 either way.
    """

    def __init__(
        self, model: VPDDepth, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"{type(self).__name__}(model): expected a VPDDepth model, got {_describe(model)}; to load a saved "
                f"model from a folder or hub id use {type(self).__name__}.from_pretrained({model!r})"
                if isinstance(model, (str, os.PathLike))
                else f"{type(self).__name__}(model): expected a VPDDepth model, got {_describe(model)}"
            )
        if device is not None or dtype is not None:
            model = model.to(device=device, dtype=dtype)
        self.model = model.eval()

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> DepthPredictor:
        """Loads a model saved by ``VPDDepth.save_pretrained`` (a folder or a hub repo id).

        Args:
            source: folder holding ``config.json`` + ``model.safetensors``, or a hub id ``"org/name"``.
            device: where the weights are loaded.
            dtype: cast the weights (see the class docstring).
            kwargs: passed to ``VPDDepth.from_pretrained`` (``revision``, ``local_files_only``).

        Raises:
            FileNotFoundError: no checkpoint at ``source``.
            ValueError: the checkpoint is not a VPD depth model or does not fit its config.
        """
        return cls(VPDDepth.from_pretrained(source, device=device, dtype=dtype, **kwargs))

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the model's parameters (the compute precision)."""
        return next(self.model.parameters()).dtype

    @property
    def class_names(self) -> tuple[str, ...]:
        """Scene classes the model can be conditioned on (NYUv2: 27 scene types)."""
        return self.model.class_names

    # ----------------------------------------------------------------------------------------------------------
    # input checking and conversion

    @staticmethod
    def _as_list(images: Any) -> tuple[list[Any], bool]:
        """``(items, is_batch)``: a list/tuple or a 4-D array/tensor is a batch, anything else one image."""
        if isinstance(images, (list, tuple)):
            return list(images), True
        if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
            return list(images), True
        return [images], False

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
        items, _ = self._as_list(images)
        if not items:
            raise ValueError("images: got an empty list; expected at least one image")
        for i, item in enumerate(items):
            self._check_image(item, f"images[{i}]" if len(items) > 1 or isinstance(images, (list, tuple)) else "images")
        self.resolve_scene(scene)
        if not isinstance(flip, (bool, np.bool_)):
            raise ValueError(f"flip: expected True or False, got {flip!r}")
        if windows is not None and (not _is_int(windows) or not 1 <= windows <= MAX_WINDOWS):
            raise ValueError(
                f"windows: expected None (whole image) or an integer from 1 to {MAX_WINDOWS}, got {windows!r}"
            )
        if not _is_int(processing_resolution) or not 0 <= processing_resolution <= MAX_PROCESSING_RESOLUTION:
            raise ValueError(
                f"processing_resolution: expected an integer from 0 (native resolution) to "
                f"{MAX_PROCESSING_RESOLUTION}, got {processing_resolution!r}"
            )
        if max_pixels is not None and (not _is_int(max_pixels) or max_pixels < 1):
            raise ValueError(f"max_pixels: expected None (no limit) or an integer >= 1, got {max_pixels!r}")
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
        if output_type not in ("np", "pt"):
            raise ValueError(
                f"output_type: expected 'np' (numpy [H, W]) or 'pt' (torch [1, H, W]), got {output_type!r}"
            )

    @staticmethod
    def _check_image(item: Any, name: str) -> None:
        if isinstance(item, (str, os.PathLike)):
            return  # read_image names a missing or unreadable file itself
        if isinstance(item, Image.Image):
            if item.mode in ("F", "I;32F"):
                raise ValueError(f"{name}: floating-point PIL image (mode {item.mode}); expected 8- or 16-bit pixels")
            return
        if isinstance(item, np.ndarray):
            ok_shape = item.ndim == 2 or (item.ndim == 3 and item.shape[2] in (1, 3, 4))
            if not ok_shape:
                raise ValueError(f"{name}: numpy image must be [H, W] or [H, W, 1|3|4], got shape {item.shape}")
            height, width = item.shape[:2]
            is_uint8, is_float = item.dtype == np.uint8, bool(np.issubdtype(item.dtype, np.floating))
        elif isinstance(item, torch.Tensor):
            ok_shape = item.ndim == 2 or (item.ndim == 3 and item.shape[0] in (1, 3))
            if not ok_shape:
                raise ValueError(
                    f"{name}: torch image must be [H, W] or [1|3, H, W] (channels first), got shape {tuple(item.shape)}"
                )
            height, width = item.shape[-2:]
            is_uint8, is_float = item.dtype == torch.uint8, item.is_floating_point()
        else:
            raise ValueError(
                f"{name}: expected a path, PIL image, numpy array or torch tensor (or a list of them), "
                f"got {_describe(item)}"
            )
        if height < 1 or width < 1:
            raise ValueError(f"{name}: image is empty ({_describe(item)})")
        if is_uint8:
            return
        if not is_float:
            raise ValueError(f"{name}: expected uint8 pixels or floats in [0, 1], got {_describe(item)}")
        values = torch.as_tensor(item).detach()
        low, high = float(values.min()), float(values.max())
        if not (low >= 0.0 and high <= 1.0):  # also False for NaN
            raise ValueError(f"{name}: float image values must lie in [0, 1], got range [{low:g}, {high:g}]")

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
        if _is_int(scene):
            index = int(scene)
            if not -1 <= index < len(names):
                raise ValueError(f"scene: index {index} out of range; expected -1 (mean) to {len(names) - 1}")
            return (None, None) if index == -1 else (index, names[index])
        raise ValueError(f"scene: expected a class name, an index or None, got {type(scene).__name__}")

    @staticmethod
    def _to_tensor(item: ImageInput) -> torch.Tensor:
        """float32 ``[3, H, W]`` RGB in [0, 1] on the CPU (checked by :meth:`_check_image` before)."""
        if isinstance(item, (str, os.PathLike)):
            item = read_image(item)
        if isinstance(item, Image.Image):
            if item.mode in _SIXTEEN_BIT_MODES:
                gray = np.asarray(item).astype(np.int64)
                item = ((np.clip(gray, 0, 65535) + 128) // 257).astype(np.uint8)  # round(v / 257), as read_image does
            else:
                item = np.asarray(item.convert("RGB"))
        if isinstance(item, np.ndarray):
            array = item[..., None] if item.ndim == 2 else item
            # Copy only when needed; torch warns on (and must not write to) read-only arrays such as PIL's.
            tensor = torch.from_numpy(np.require(array, requirements=["C_CONTIGUOUS", "WRITEABLE"])).permute(2, 0, 1)
        else:
            tensor = item.detach().cpu()
            tensor = tensor[None] if tensor.ndim == 2 else tensor
        tensor = tensor[:3]  # drop alpha (numpy HxWx4); alpha is not composited, as in read_image
        tensor = tensor.float() / 255.0 if tensor.dtype == torch.uint8 else tensor.float()
        return tensor.expand(3, -1, -1).contiguous() if tensor.shape[0] == 1 else tensor.contiguous()

    # ----------------------------------------------------------------------------------------------------------

    def _forward(self, images: torch.Tensor, class_ids: torch.Tensor | None) -> torch.Tensor:
        return self.model(images, class_ids=class_ids).depth

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
        items, is_batch = self._as_list(images)
        class_id, scene_name = self.resolve_scene(scene)
        inputs = [self._to_tensor(item) for item in items]
        sizes = [(int(t.shape[1]), int(t.shape[2])) for t in inputs]
        for i, size in enumerate(sizes):
            height, width = processed_size(size, processing_resolution)
            if max_pixels is not None and height * width > max_pixels:
                name = f"images[{i}]" if is_batch else "images"
                raise ValueError(
                    f"{name}: {size[0]}x{size[1]} would run at {height}x{width}, more than max_pixels={max_pixels}; "
                    f"pass processing_resolution={fitting_resolution(size, max_pixels)} (or max_pixels=None)"
                )
        processed = [_resize_longer_side(t, processing_resolution) for t in inputs]

        # Only images of equal processed size can share a batch; grouping keeps the output order via the indices.
        groups: dict[tuple[int, int], list[int]] = {}
        for i, tensor in enumerate(processed):
            groups.setdefault((int(tensor.shape[1]), int(tensor.shape[2])), []).append(i)

        device, dtype = self.device, self.dtype
        depths: list[torch.Tensor | None] = [None] * len(items)
        self.model.eval()
        with torch.inference_mode():
            for indices in groups.values():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    batch = torch.stack([processed[i] for i in chunk]).to(device=device, dtype=dtype)
                    ids = None if class_id is None else torch.full((len(chunk),), class_id, dtype=torch.long)
                    depth = predict_tta(
                        self._forward, batch, ids, grid=square_grid(windows), flip=bool(flip), batch_size=batch_size
                    ).float()
                    for k, i in enumerate(chunk):
                        single = depth[k : k + 1]
                        if tuple(single.shape[-2:]) != sizes[i]:
                            single = F.interpolate(
                                single, size=sizes[i], mode="bilinear", align_corners=False, antialias=True
                            )
                        depths[i] = single[0]

        results = []
        for i, depth_i in enumerate(depths):
            assert depth_i is not None
            out: np.ndarray | torch.Tensor = depth_i.cpu().numpy()[0] if output_type == "np" else depth_i.clone()
            results.append(DepthPrediction(depth=out, scene=scene_name, image_size=sizes[i]))
        return results if is_batch else results[0]


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def processed_size(size: tuple[int, int], resolution: int) -> tuple[int, int]:
    """``(H, W)`` of an image of ``size`` resized so that its longer side is ``resolution`` (0: unchanged)."""
    height, width = size
    if resolution == 0 or max(height, width) == resolution:
        return height, width
    scale = resolution / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def fitting_resolution(size: tuple[int, int], max_pixels: int) -> int:
    """The largest ``processing_resolution`` at which an image of ``size`` has at most ``max_pixels`` pixels."""
    resolution = max(1, int(max(size) * math.sqrt(max_pixels / (size[0] * size[1]))))
    while resolution > 1 and math.prod(processed_size(size, resolution)) > max_pixels:
        resolution -= 1
    return resolution


def _resize_longer_side(image: torch.Tensor, resolution: int) -> torch.Tensor:
    """``[3, H, W]`` resized (bilinear, antialiased) so that ``max(H, W) == resolution``; unchanged for 0."""
    size = processed_size((int(image.shape[-2]), int(image.shape[-1])), resolution)
    if size == tuple(image.shape[-2:]):
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
