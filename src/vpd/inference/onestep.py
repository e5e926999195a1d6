"""Prediction with one-step models (GenPercept, E2E-FT, Lotus-D, Marigold): each project's own pre- and
post-processing, so a released checkpoint gives that project's outputs; Marigold runs diffusers' pipeline itself.

Example:
    >>> predictor = OneStepPredictor(load_onestep("prs-eth/marigold-depth-v1-1"))          # doctest: +SKIP
    >>> out = predictor("photo.jpg", num_inference_steps=4, ensemble_size=5, output_uncertainty=True)  # doctest: +SKIP
    >>> out.prediction.shape, out.uncertainty.shape                                        # doctest: +SKIP
    ((480, 640), (480, 640))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F

from vpd.data.io import save_npy_atomic, write_png16_atomic, write_png_atomic
from vpd.inference.base import MAX_MODEL_PIXELS, ImageInput, ImagePredictor
from vpd.inference.outputs import Writer, register_writer

#: File-name suffix of each output format of a one-step map.
MAP_SUFFIXES = {"npy": ".npy", "png16": ".png", "color": "_color.png"}

#: How images are resized in and maps out (diffusers' Marigold names); bilinear and bicubic are antialiased.
RESAMPLE_METHODS = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")

#: The projects' default processing resolution (the longer side; 0 = the image's own size).
DEFAULT_PROCESSING_RESOLUTION = 768


@dataclass
class OneStepPrediction:
    """One image's prediction at its own size (or the processing size with ``match_input_resolution=False``).

    Attributes:
        prediction: ``[H, W]`` in [0, 1] (depth, disparity, alpha, mask: affine-invariant for depth) or ``[H, W, 3]``
            normals in [-1, 1]; numpy or torch as ``output_type`` asks.
        target: what it is (``depth``, ``disparity``, ``normals``, ``matting``, ``dis``).
        uncertainty: ``[H, W]`` (Marigold ensembles with ``output_uncertainty``), else None.
    """

    prediction: Any
    target: str
    uncertainty: Any = None


def resize(image: torch.Tensor, size: tuple[int, int], method: str) -> torch.Tensor:
    """``[B, C, H, W]`` to ``size`` with one of :data:`RESAMPLE_METHODS` (as diffusers' Marigold image processor)."""
    if method in ("nearest", "nearest-exact", "area"):
        return F.interpolate(image, size=size, mode=method)
    return F.interpolate(image, size=size, mode=method, align_corners=False, antialias=True)


def truncated_size(size: tuple[int, int], resolution: int) -> tuple[int, int]:
    """``(int(H * f), int(W * f))`` with ``f = min(R / W, R / H)``: the size GenPercept, E2E-FT and Lotus process at
    (a truncation, not a rounding); ``resolution`` 0 keeps the size."""
    height, width = size
    if resolution == 0:
        return size
    factor = min(resolution / width, resolution / height)
    return max(1, int(height * factor)), max(1, int(width * factor))


class OneStepPredictor(ImagePredictor):
    """Runs a :class:`~vpd.modeling.onestep.OneStepModel` on user images.

    Args:
        model: the model (``load_onestep`` for a released checkpoint, ``OneStepModel.from_pretrained`` for vpd's).
        device / dtype: where and in which precision to run (default: where the model is).
    """

    resize_antialias: ClassVar[bool] = True

    @classmethod
    def model_class(cls) -> Any:
        from vpd.modeling.onestep import OneStepModel

        return OneStepModel

    @property
    def target(self) -> str:
        return str(self.model.config.target)

    @property
    def class_names(self) -> tuple[str, ...]:
        return ()

    @property
    def default_processing_resolution(self) -> int:
        """The checkpoint's (Marigold's ``default_processing_resolution``), else the projects' 768."""
        value = self.model.config.pipeline.get("default_processing_resolution")
        return DEFAULT_PROCESSING_RESOLUTION if value is None else int(value)

    # ---------------------------------------------------------------------------------------------------------
    # the project's processing (ImagePredictor hooks)

    def processed_size(self, size: tuple[int, int], resolution: int) -> tuple[int, int]:
        return truncated_size(size, resolution)

    def preprocess(self, image: torch.Tensor, resolution: int, **options: Any) -> torch.Tensor:
        """To :func:`truncated_size` with ``resample_method_input`` (the projects': bilinear with antialiasing);
        rounded back to uint8 values where the project resizes the uint8 image (GenPercept, E2E-FT)."""
        size = truncated_size((int(image.shape[-2]), int(image.shape[-1])), resolution)
        if size == tuple(image.shape[-2:]):
            return image
        method = options.get("resample_method_input") or "bilinear"
        steps = self.model.config.preprocessing
        if steps is not None and steps.round_uint8:
            resized = resize((image * 255).round()[None], size, method)
            return (resized.round().clamp(0, 255) / 255)[0]
        return resize(image[None], size, method)[0]

    def _predict_batch(self, images: torch.Tensor, **options: Any) -> torch.Tensor:
        return self.model(images, generator=options.get("generator")).prediction

    def _restore(self, output: torch.Tensor, size: tuple[int, int], **options: Any) -> torch.Tensor:
        """Back to the image's size as the project does, then clipped to the map's range."""
        if options.get("match_input_resolution", True) and tuple(output.shape[-2:]) != tuple(size):
            steps = self.model.config.preprocessing
            method = options.get("resample_method_output") or (
                "nearest-exact" if steps is not None and steps.output_resize == "nearest-exact" else "bilinear"
            )
            output = resize(output, size, method)
        return output.clip(-1, 1) if self.target == "normals" else output.clip(0, 1)

    # ---------------------------------------------------------------------------------------------------------

    def __call__(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        processing_resolution: int | None = None,
        match_input_resolution: bool = True,
        batch_size: int = 1,
        num_inference_steps: int | None = None,
        ensemble_size: int = 1,
        output_uncertainty: bool = False,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        max_pixels: int | None = MAX_MODEL_PIXELS,
        resample_method_input: str | None = None,
        resample_method_output: str | None = None,
    ) -> OneStepPrediction | list[OneStepPrediction]:
        """Predicts one image or a list (paths, PIL, numpy uint8 / uint16 / float in [0, 1], torch; gray and RGBA
        handled).

        Args:
            processing_resolution: the longer side the model sees (0: the image's size); default the checkpoint's
                (Marigold's ``default_processing_resolution``) or 768.
            match_input_resolution: resize the map back to the input's size (else the processing size).
            batch_size: images per forward pass (images of one processed size share a batch).
            num_inference_steps / ensemble_size / output_uncertainty: Marigold's multi-step, ensembled inference
                (members aligned by scale and shift, median, uncertainty); the one-step projects are deterministic
                and take 1 / 1 / False.
            generator: the noise of stochastic steps (Marigold's initial latents, Lotus's latent sampling).
            output_type: ``"np"`` or ``"pt"``.
            max_pixels: refuse a processed size above this many pixels (None: no limit).
            resample_method_input / resample_method_output: how the image is resized to the processing size and the
                map back (one of :data:`RESAMPLE_METHODS`); None: the project's own (bilinear in; bilinear out, or
                nearest-exact for the presets that do so).
        """
        config = self.model.config
        if processing_resolution is None:
            processing_resolution = self.default_processing_resolution
        self.check_common(images, processing_resolution, batch_size, output_type, max_pixels)
        marigold = config.preprocessing is None
        self.check_steps(num_inference_steps, ensemble_size, output_uncertainty)
        resample = {"resample_method_input": resample_method_input, "resample_method_output": resample_method_output}
        for name, method in resample.items():
            if method is not None and method not in RESAMPLE_METHODS:
                raise ValueError(f"{name}: expected one of {', '.join(RESAMPLE_METHODS)}, got {method!r}")
        if ensemble_size < 1:
            raise ValueError(f"ensemble_size must be >= 1, got {ensemble_size}")
        if output_uncertainty and ensemble_size < 3:
            raise ValueError("output_uncertainty needs ensemble_size >= 3 (the spread of the ensemble members)")
        if marigold:
            return self._marigold(images, processing_resolution, match_input_resolution, batch_size,
                                  num_inference_steps, ensemble_size, output_uncertainty, generator, output_type,
                                  max_pixels, resample)  # fmt: skip
        outputs, _, is_batch = self.run(
            images,
            processing_resolution=processing_resolution,
            batch_size=batch_size,
            max_pixels=max_pixels,
            generator=generator,
            match_input_resolution=match_input_resolution,
            **resample,
        )
        results = [self._result(output, None, output_type) for output in outputs]
        return results if is_batch else results[0]

    def check_steps(
        self,
        num_inference_steps: int | None,
        ensemble_size: int,
        output_uncertainty: bool = False,
        *,
        names: str = "num_inference_steps / ensemble_size / output_uncertainty",
    ) -> None:
        """Refuses several steps, an ensemble or an uncertainty map for a deterministic one-step model (``names``:
        what the message calls the options)."""
        config = self.model.config
        if config.preprocessing is not None and (
            num_inference_steps not in (None, 1) or ensemble_size != 1 or output_uncertainty
        ):
            raise ValueError(
                f"{names}: a {config.preset} model predicts in one deterministic step; only Marigold models take "
                "several steps or ensembles"
            )

    def _result(self, output: torch.Tensor, uncertainty: torch.Tensor | None, output_type: str) -> OneStepPrediction:
        """``[C, H, W]`` -> ``[H, W]`` / ``[H, W, 3]`` in the requested type."""
        value: Any = output.permute(1, 2, 0) if output.shape[0] == 3 else output[0]
        spread: Any = None if uncertainty is None else uncertainty.reshape(value.shape[:2])
        if output_type == "np":
            value = value.float().cpu().numpy()
            spread = None if spread is None else spread.float().cpu().numpy()
        return OneStepPrediction(value, self.target, spread)

    def _marigold(
        self,
        images: Any,
        processing_resolution: int,
        match_input_resolution: bool,
        batch_size: int,
        num_inference_steps: int | None,
        ensemble_size: int,
        output_uncertainty: bool,
        generator: torch.Generator | None,
        output_type: str,
        max_pixels: int | None,
        resample: dict[str, str | None],
    ) -> OneStepPrediction | list[OneStepPrediction]:
        """diffusers' Marigold pipeline on the model's own UNet, VAE, scheduler and empty-prompt embedding."""
        methods = {name: method for name, method in resample.items() if method is not None}
        items, is_batch = self.as_list(images)
        tensors = [self.to_tensor(item) for item in items]
        for i, tensor in enumerate(tensors):
            size = (int(tensor.shape[1]), int(tensor.shape[2]))
            if processing_resolution:
                scale = processing_resolution / max(size)
                size = (math.floor(size[0] * scale), math.floor(size[1] * scale))
            if max_pixels is not None and size[0] * size[1] > max_pixels:
                raise ValueError(f"images[{i}]: would run at {size[0]}x{size[1]}, more than max_pixels={max_pixels}")
        pipe = self.marigold_pipeline()
        results = []
        with torch.inference_mode():
            for tensor in tensors:  # one call per image: images of different sizes cannot share one
                out = pipe(
                    tensor[None].to(self.device),
                    num_inference_steps=num_inference_steps,
                    ensemble_size=ensemble_size,
                    processing_resolution=processing_resolution,
                    match_input_resolution=match_input_resolution,
                    batch_size=batch_size,
                    generator=generator,
                    output_type="pt",
                    output_uncertainty=output_uncertainty,
                    **methods,
                )
                prediction = out.prediction[0].float()  # [C, H, W]
                uncertainty = None if out.uncertainty is None else out.uncertainty[0].float()
                results.append(self._result(prediction, uncertainty, output_type))
        return results if is_batch else results[0]

    def marigold_pipeline(self) -> Any:
        """The diffusers ``MarigoldDepthPipeline`` / ``MarigoldNormalsPipeline`` of this model (shared modules)."""
        from diffusers import DDIMScheduler, MarigoldDepthPipeline, MarigoldNormalsPipeline

        config = self.model.config
        settings = dict(config.pipeline)
        scheduler = DDIMScheduler.from_config(config.scheduler)
        common = {"unet": self.model.unet, "vae": self.model.vae, "scheduler": scheduler, "text_encoder": None,
                  "tokenizer": None, "prediction_type": settings.get("prediction_type", config.target),
                  "default_denoising_steps": settings.get("default_denoising_steps"),
                  "default_processing_resolution": settings.get("default_processing_resolution")}  # fmt: skip
        pipe: Any
        if config.target == "normals":
            pipe = MarigoldNormalsPipeline(**common, use_full_z_range=settings.get("use_full_z_range", True))
        else:
            pipe = MarigoldDepthPipeline(
                **common,
                scale_invariant=settings.get("scale_invariant", True),
                shift_invariant=settings.get("shift_invariant", True),
            )
        pipe.empty_text_embedding = self.model.empty_text_embedding.to(self.device, self.dtype)
        pipe.set_progress_bar_config(disable=True)
        return pipe


@register_writer
class OneStepWriter(Writer):
    """``vpd predict`` for one-step models: the map as ``.npy`` (float32), a 16-bit PNG (``round(p * 65535)``;
    normals ``(n + 1) / 2`` as 16-bit RGB) and a colour PNG (Spectral; normals as 8-bit RGB)."""

    task = "onestep"
    model_type = "onestep"
    options_taken = ("steps", "ensemble_size", "resample")
    suffixes: ClassVar[dict[str, str]] = MAP_SUFFIXES  # after _<target>
    default_formats = ("npy", "png16", "color")
    preview = "color"
    download = "png16"

    @staticmethod
    def predictor_class() -> type[ImagePredictor]:
        return OneStepPredictor

    @classmethod
    def output_suffixes(cls, formats: tuple[str, ...], count: int = 1) -> list[str]:
        from vpd.modeling.onestep import TARGETS  # the model's target is not known before it loads: every one

        return [f"_{target}{cls.suffixes[f]}" for target in TARGETS for f in formats]

    def options(self, formats: tuple[str, ...]) -> dict[str, Any]:
        options = {"num_inference_steps": self.args.steps, "ensemble_size": self.args.ensemble_size or 1}
        cast(OneStepPredictor, self.predictor).check_steps(**options, names="--steps / --ensemble-size")
        if self.args.resample:
            options["resample_method_input"], options["resample_method_output"] = self.args.resample
        return options

    def write(self, prediction: Any, stem: str, image: np.ndarray, formats: tuple[str, ...]) -> None:
        write_map(f"{stem}_{prediction.target}", np.asarray(prediction.prediction, dtype=np.float32), formats)


def write_map(name: str, value: np.ndarray, formats: Sequence[str]) -> None:
    """Writes a map ``[H, W]`` in [0, 1] or normals ``[H, W, 3]`` in [-1, 1] as ``name`` + each format's suffix:
    ``npy`` float32, ``png16`` (``round(p * 65535)``; normals ``(n + 1) / 2`` as 16-bit RGB), ``color`` (Spectral;
    normals as 8-bit RGB). Each file is written atomically."""
    from vpd.inference.visualize import colorize

    normals = value.ndim == 3
    unit = np.clip((value + 1) / 2 if normals else value, 0, 1)
    if "npy" in formats:
        save_npy_atomic(name + MAP_SUFFIXES["npy"], value.astype(np.float32))
    if "png16" in formats:
        write_png16_atomic(name + MAP_SUFFIXES["png16"], np.round(unit * 65535).astype(np.uint16))
    if "color" in formats:
        color = np.round(unit * 255).astype(np.uint8) if normals else colorize(value, 0.0, 1.0, "spectral")
        write_png_atomic(name + MAP_SUFFIXES["color"], color)
