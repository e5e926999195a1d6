"""The image processor every task's predictor shares: input checks and conversion (paths, PIL, numpy, torch),
the optional resize to a processing resolution and back, grouping by size, batching, and the pixel budget.

A task's predictor subclasses :class:`ImagePredictor`, names its model class, and implements
``_predict_batch(images [n, 3, h, w], **options) -> [n, C, h, w]``; :meth:`ImagePredictor.run` does the rest and
hands back one ``[C, H, W]`` float32 tensor per input image, at the input's size.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vpd.data.io import SIXTEEN_BIT_GRAY_MODES, read_image, sixteen_to_eight
from vpd.inference.compiled import cache_dir
from vpd.limits import MAX_MODEL_PIXELS, MAX_PROCESSING_RESOLUTION
from vpd.runtime import release_freed_memory

__all__ = ["ImageInput", "ImagePredictor", "fitting_resolution", "processed_size"]

#: One image: a file path, a PIL image, a numpy array (uint8 or float in [0, 1]; ``[H, W]``, ``[H, W, 1|3|4]``) or a
#: torch tensor (uint8 or float in [0, 1]; ``[H, W]`` or ``[1|3, H, W]``).
ImageInput = Union[str, "os.PathLike[str]", Image.Image, np.ndarray, torch.Tensor]


def describe(item: object) -> str:
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return f"{type(item).__name__} of shape {tuple(item.shape)} and dtype {item.dtype}"
    return type(item).__name__


def is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


class ImagePredictor:
    """Runs a vpd model on user images (base class of the task predictors).

    Args:
        model: the model. It is put in eval mode; its parameters decide where and in which precision the predictor
            runs.
        device: move the model there first (e.g. ``"cuda"``); default: leave it where it is.
        dtype: cast the model's weights first (e.g. ``torch.bfloat16``); default: leave them. Outputs are float32.
        compile: run the model through ``torch.compile`` (see :meth:`from_pretrained`).
        freeze_weights: with ``compile``, inductor's weight freezing where it is exact (see :meth:`from_pretrained`).
        winograd: Winograd 3x3 convolutions where they are faster, fp32 on the CPU only (see :meth:`from_pretrained`).
        pack_weights: pack the bf16 convolution weights for oneDNN (see :meth:`from_pretrained`); this changes
            ``model`` in place (it is then for CPU inference only), so a model handed in is packed only when asked.
    """

    #: how the output is resized back from the processing resolution (depth: antialiased when shrinking)
    resize_antialias: ClassVar[bool] = True

    @property
    def default_processing_resolution(self) -> int:
        """The ``processing_resolution`` ``vpd predict`` uses when none is given (0: the image's own size)."""
        return 0

    @classmethod
    def model_class(cls) -> Any:
        """The model class this predictor runs (imported on first use)."""
        raise NotImplementedError

    def __init__(
        self,
        model: Any,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        compile: bool = False,
        freeze_weights: bool = False,
        winograd: bool = False,
        pack_weights: bool = False,
    ) -> None:
        name = type(self).__name__
        _check_options(name, compile, freeze_weights, pack_weights)
        expected = self.model_class().__name__
        if not isinstance(model, torch.nn.Module):
            hint = f"; to load a saved model from a folder or hub id use {name}.from_pretrained({model!r})"
            raise TypeError(
                f"{name}(model): expected a {expected} model, got {describe(model)}"
                + (hint if isinstance(model, (str, os.PathLike)) else "")
            )
        if not isinstance(model, self.model_class()):
            raise TypeError(f"{name}(model): expected a {expected} model, got a {type(model).__name__}")
        if device is not None or dtype is not None:
            model = model.to(device=device, dtype=dtype)
        self.model = model.eval()
        if winograd:
            self.model = _with_winograd(name, self.model)
        if pack_weights:
            _with_packed_weights(name, self.model)
        self.compiled_sizes: set[tuple[int, ...]] | None = None  # input shapes compiled so far (None: eager)
        if compile:
            from vpd.inference.compiled import compile_model

            self.model = compile_model(self.model, freeze=freeze_weights)
            self.compiled_sizes = set()

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        *,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype | None = "auto",
        compile: bool = False,
        freeze_weights: bool = False,
        winograd: bool = False,
        pack_weights: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Loads a model saved by ``save_pretrained`` (a folder or a hub repo id) and wraps it.

        Args:
            source: folder holding ``config.json`` + ``model.safetensors``, or a hub id ``"org/name"``.
            device: where the weights are loaded.
            dtype: the compute precision: ``"auto"`` (bf16 on CUDA and on CPUs with bf16 matrix units, else fp32;
                see :func:`vpd.runtime.resolve_dtype`; the choice is printed once), ``"fp32"``, ``"bf16"``,
                ``"fp16"`` or a torch dtype; None keeps the saved dtype. The weights are read straight into it.
            compile: run the model through ``torch.compile`` (:mod:`vpd.inference.compiled`): minutes on the first
                call at each input size (printed), then faster; the kernels are cached on disk.
            freeze_weights: with ``compile``, inductor's weight freezing (the weights become constants of the
                compiled graph, prepacked for the CPU's kernels) on every part of the model where a probe shows it
                exact on the installed torch: faster on a CPU, but about twice the peak memory while compiling.
            winograd: run the 3x3 convolutions of at least 128 input channels on 64x64 to 512x512 inputs with
                Winograd F(4x4, 3x3) (:mod:`vpd.modeling.winograd`): fewer multiplications, 10-50x the direct
                convolution's rounding error, transformed filters 4x the size of those weights; also with
                ``compile``; fp32 on the CPU only.
            pack_weights: hold the bf16 convolution weights in oneDNN's own layout (:mod:`vpd.modeling.packed`), in
                place of the plain ones, instead of reordering them on every call: faster on the CPU, no more
                memory, the same outputs; the model is then for CPU inference only. Default (None): on for a bf16
                model on the CPU, unless ``freeze_weights`` (which packs them itself).
            kwargs: passed to the model's ``from_pretrained`` (``revision``, ``local_files_only``).

        Raises:
            FileNotFoundError: no checkpoint at ``source``.
            ValueError: the checkpoint is not this task's model, or does not fit its config; an unknown dtype.
        """
        from vpd.runtime import announce_precision, resolve_dtype

        _check_options(cls.__name__, compile, freeze_weights, pack_weights)  # before minutes of loading
        torch_dtype = None
        if dtype is not None:
            torch_dtype, reason = resolve_dtype(dtype, device)
            announce_precision(torch_dtype, reason, device)
        model = cls.model_class().from_pretrained(source, device=device, dtype=torch_dtype, **kwargs)
        if pack_weights is None:  # this predictor owns the model: packed where that pays
            pack_weights = _packs(model) and not freeze_weights
        return cls(model, compile=compile, freeze_weights=freeze_weights, winograd=winograd, pack_weights=pack_weights)

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
        return tuple(self.model.class_names)

    # ----------------------------------------------------------------------------------------------------------
    # input checking and conversion

    @staticmethod
    def as_list(images: Any) -> tuple[list[Any], bool]:
        """``(items, is_batch)``: a list/tuple or a 4-D array/tensor is a batch, anything else one image."""
        if isinstance(images, (list, tuple)):
            return list(images), True
        if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
            return list(images), True
        return [images], False

    def check_common(
        self,
        images: Any,
        processing_resolution: int = 0,
        batch_size: int = 1,
        output_type: str = "np",
        max_pixels: int | None = MAX_MODEL_PIXELS,
    ) -> None:
        """Validates the arguments every predictor takes (files are only opened later).

        Raises:
            ValueError: naming the offending argument and the expected form.
        """
        items, _ = self.as_list(images)
        if not items:
            raise ValueError("images: got an empty list; expected at least one image")
        for i, item in enumerate(items):
            self._check_image(item, f"images[{i}]" if len(items) > 1 or isinstance(images, (list, tuple)) else "images")
        if not is_int(processing_resolution) or not 0 <= processing_resolution <= MAX_PROCESSING_RESOLUTION:
            raise ValueError(
                f"processing_resolution: expected an integer from 0 (native resolution) to "
                f"{MAX_PROCESSING_RESOLUTION}, got {processing_resolution!r}"
            )
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
        if output_type not in ("np", "pt"):
            raise ValueError(f"output_type: expected 'np' (numpy) or 'pt' (torch), got {output_type!r}")
        if max_pixels is not None and (not is_int(max_pixels) or max_pixels < 1):
            raise ValueError(f"max_pixels: expected None (no limit) or an integer >= 1, got {max_pixels!r}")

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
                f"got {describe(item)}"
            )
        if height < 1 or width < 1:
            raise ValueError(f"{name}: image is empty ({describe(item)})")
        if is_uint8:
            return
        if not is_float:
            raise ValueError(f"{name}: expected uint8 pixels or floats in [0, 1], got {describe(item)}")
        values = torch.as_tensor(item).detach()
        low, high = float(values.min()), float(values.max())
        if not (low >= 0.0 and high <= 1.0):  # also False for NaN
            raise ValueError(f"{name}: float image values must lie in [0, 1], got range [{low:g}, {high:g}]")

    @staticmethod
    def to_tensor(item: ImageInput) -> torch.Tensor:
        """float32 ``[3, H, W]`` RGB in [0, 1] on the CPU (checked by :meth:`_check_image` before)."""
        if isinstance(item, (str, os.PathLike)):
            item = read_image(item)
        if isinstance(item, Image.Image):
            if item.mode in SIXTEEN_BIT_GRAY_MODES:
                item = sixteen_to_eight(np.asarray(item))  # as read_image does
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

    def processed_size(self, size: tuple[int, int], resolution: int) -> tuple[int, int]:
        """The size an image of ``size`` is processed at (longer side ``resolution``, rounded; 0: unchanged)."""
        return processed_size(size, resolution)

    def resolution_within(self, size: tuple[int, int], resolution: int, max_pixels: int) -> int:
        """``resolution`` where an image of ``size`` runs within ``max_pixels`` there, else the largest that does."""
        if math.prod(self.processed_size(size, resolution)) <= max_pixels:
            return resolution
        resolution = fitting_resolution(size, max_pixels)
        while resolution > 1 and math.prod(self.processed_size(size, resolution)) > max_pixels:
            resolution -= 1  # a predictor that keeps no aspect ratio (referring: a square)
        return resolution

    def preprocess(self, image: torch.Tensor, resolution: int, **options: Any) -> torch.Tensor:
        """``[3, H, W]`` in [0, 1] -> the model's input at ``processed_size`` (bilinear, antialiased); ``options``
        are the call's (what :meth:`run` was given)."""
        return resize_longer_side(image, resolution)

    def _predict_batch(self, images: torch.Tensor, **options: Any) -> torch.Tensor:
        """``[n, 3, h, w]`` images on the model's device and dtype -> ``[n, C, h, w]`` outputs."""
        raise NotImplementedError

    def _restore(self, output: torch.Tensor, size: tuple[int, int], **options: Any) -> torch.Tensor:
        """``[1, C, h, w]`` at the processing resolution -> ``[1, C', H, W]`` at the image's size (bilinear)."""
        if tuple(output.shape[-2:]) == tuple(size):
            return output
        shrink = output.shape[-2] > size[0]
        antialias = self.resize_antialias and shrink
        return F.interpolate(output, size=size, mode="bilinear", align_corners=False, antialias=antialias)

    def run(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        processing_resolution: int = 0,
        batch_size: int = 1,
        max_pixels: int | None = MAX_MODEL_PIXELS,
        **options: Any,
    ) -> tuple[list[torch.Tensor], list[tuple[int, int]], bool]:
        """Converts, resizes, groups by size, batches and predicts.

        Returns:
            ``(outputs, sizes, is_batch)``: one float32 ``[C, H, W]`` tensor per image on the model's device, at the
            image's size ``(H, W)``; whether the input was a batch.

        Raises:
            ValueError: an image whose processed size exceeds ``max_pixels`` (naming the resolution that fits).
        """
        items, is_batch = self.as_list(images)
        inputs = [self.to_tensor(item) for item in items]
        sizes = [(int(t.shape[1]), int(t.shape[2])) for t in inputs]
        for i, size in enumerate(sizes):
            height, width = self.processed_size(size, processing_resolution)
            if max_pixels is not None and height * width > max_pixels:
                name = f"images[{i}]" if is_batch else "images"
                raise ValueError(
                    f"{name}: {size[0]}x{size[1]} would run at {height}x{width}, more than max_pixels={max_pixels}; "
                    f"pass processing_resolution={fitting_resolution(size, max_pixels)} (or max_pixels=None)"
                )
        processed = [self.preprocess(t, processing_resolution, **options) for t in inputs]

        # Only images of equal processed size can share a batch; grouping keeps the output order via the indices.
        groups: dict[tuple[int, int], list[int]] = {}
        for i, tensor in enumerate(processed):
            groups.setdefault((int(tensor.shape[1]), int(tensor.shape[2])), []).append(i)

        device, dtype = self.device, self.dtype
        outputs: list[torch.Tensor | None] = [None] * len(items)
        self.model.eval()
        with torch.inference_mode():
            for indices in groups.values():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    batch = torch.stack([processed[i] for i in chunk]).to(device=device, dtype=dtype)
                    tic = time.perf_counter()
                    out = self._predict_batch(batch, batch_size=batch_size, **options).float()
                    if self.compiled_sizes is not None and tuple(batch.shape) not in self.compiled_sizes:
                        self.compiled_sizes.add(tuple(batch.shape))
                        seconds = time.perf_counter() - tic
                        print(f"vpd: compiled for {'x'.join(map(str, batch.shape))} in {seconds:.1f} s (the first "
                              f"call at a size; kernels cached in {cache_dir()})", file=sys.stderr)  # fmt: skip
                    for k, i in enumerate(chunk):
                        outputs[i] = self._restore(out[k : k + 1], sizes[i], **options)[0]
                    del out, batch
                    if device.type == "cpu":  # the forward's freed maps go back to the system: 10-15 ms a batch
                        release_freed_memory()
        assert all(o is not None for o in outputs)
        return outputs, sizes, is_batch  # type: ignore[return-value]


def _check_options(name: str, compile: bool, freeze_weights: bool, pack_weights: bool | None) -> None:
    if freeze_weights and not compile:
        raise ValueError(f"{name}: freeze_weights=True needs compile=True (freezing is part of compiling)")
    if freeze_weights and pack_weights:
        raise ValueError(f"{name}: pack_weights=True and freeze_weights=True: freezing packs the weights itself; "
                         "choose one")  # fmt: skip


def _packs(model: torch.nn.Module) -> bool:
    """Whether ``model`` runs in a dtype :mod:`vpd.modeling.packed` packs (bf16) on a CPU that runs it packed."""
    from vpd.modeling.packed import PACKED_DTYPES, packing_supported

    weight = next(model.parameters())
    return weight.dtype in PACKED_DTYPES and weight.device.type == "cpu" and packing_supported()


def _with_packed_weights(name: str, model: torch.nn.Module) -> None:
    """Packs ``model``'s bf16 convolutions in place, after checking that it is a bf16 model on a CPU with oneDNN's
    bf16 convolutions; says how many."""
    from vpd.modeling.packed import pack_weights
    from vpd.runtime import dtype_name

    weight = next(model.parameters())
    if not _packs(model):
        where = "" if weight.device.type != "cpu" else " (this CPU / torch build has no oneDNN bf16 convolutions)"
        raise ValueError(f"{name}: pack_weights=True packs bf16 convolutions on the CPU; the model is "
                         f"{dtype_name(weight.dtype)} on {weight.device.type}{where}")  # fmt: skip
    count = pack_weights(model)
    if count:
        print(f"vpd: {count} convolutions run on weights packed for oneDNN ({dtype_name(weight.dtype)}, CPU)",
              file=sys.stderr)  # fmt: skip


def _with_winograd(name: str, model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with Winograd 3x3 convolutions (a copy sharing its weights), after checking it is fp32 on the CPU."""
    from vpd.modeling.winograd import MAX_PIXELS, MIN_CHANNELS, MIN_PIXELS, use_winograd

    weight = next(model.parameters())
    if weight.dtype != torch.float32 or weight.device.type != "cpu":
        raise ValueError(f"{name}: winograd=True runs fp32 on the CPU only; the model is {str(weight.dtype)[6:]} on "
                         f"{weight.device.type} (use dtype='fp32' on the CPU)")  # fmt: skip
    model, count = use_winograd(model)
    low, high = round(MIN_PIXELS**0.5), round(MAX_PIXELS**0.5)
    print(f"vpd: Winograd convolutions in {count} 3x3 layers of {MIN_CHANNELS}+ input channels, used on inputs of "
          f"{low}x{low} to {high}x{high} pixels", file=sys.stderr)  # fmt: skip
    return model


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


def resize_longer_side(image: torch.Tensor, resolution: int) -> torch.Tensor:
    """``[3, H, W]`` resized (bilinear, antialiased) so that ``max(H, W) == resolution``; unchanged for 0."""
    size = processed_size((int(image.shape[-2]), int(image.shape[-1])), resolution)
    if size == tuple(image.shape[-2:]):
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
