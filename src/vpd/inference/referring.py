"""``ReferringPredictor``: images + referring expressions -> the mask of the object each sentence describes.

Example:
    >>> predictor = ReferringPredictor.from_pretrained("path/or/hub-id")               # doctest: +SKIP
    >>> out = predictor("street.jpg", ["the man on the left", "red car"])            # doctest: +SKIP
    >>> [(p.expression, p.mask.shape, p.mask.mean()) for p in out]                   # doctest: +SKIP
    [('the man on the left', (480, 640), 0.12), ('red car', (480, 640), 0.05)]

The official pipeline (RefCOCO / RefCOCO+ / RefCOCOg) resizes every image to 512 x 512 (bilinear, aspect ratio not
kept) and reads the model's 2-class logits at that size; the model's config does not record a size, so 512 is the
default (``processing_resolution=N`` runs at ``N x N`` instead). Here the softmax probability of the object class is
resized back to the input image's size (bilinear, antialiased when shrinking) and the mask is ``probability >= 0.5``,
which at the model's resolution is the task's ``argmax`` of the two logits (ties aside). All sentences of one image
share a forward pass (the image repeated; ``batch_size`` caps the pairs per pass). Sentences longer than the model's
``context_length`` tokens are truncated by CLIP's tokenizer, as in training.

``vpd predict`` writes, per image and sentence ``k``: ``<stem>_<k>_mask.png`` (0 / 255), ``<stem>_<k>_overlay.png``
(the mask tinted over the photo under a caption band with the sentence) and ``<stem>_<k>_prob.png`` (16-bit gray,
probability x 65535, so ``png >= 32768`` is the mask), plus ``<stem>_expressions.json`` mapping ``k`` to its sentence
and files, written last.
"""

from __future__ import annotations

import math
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from vpd.data.io import write_json_atomic, write_png16_atomic, write_png_atomic
from vpd.inference.base import ImageInput, ImagePredictor, is_int
from vpd.inference.outputs import Writer, register_writer
from vpd.limits import MAX_MODEL_PIXELS
from vpd.runtime import release_freed_memory

__all__ = ["REFERRING_SIZE", "Expressions", "ReferringPrediction", "ReferringPredictor", "caption"]

#: The side of the square the official referring models run at (RefCOCO / RefCOCO+ / RefCOCOg: 512 x 512).
REFERRING_SIZE = 512
#: A probability PNG stores ``round(p * PROB_PNG_SCALE)`` as uint16.
PROB_PNG_SCALE = 65535

#: One sentence, the sentences of one image, or one list of sentences per image.
Expressions = str | Sequence[str] | Sequence[Sequence[str]]


@dataclass
class ReferringPrediction:
    """What one sentence refers to in one image.

    Attributes:
        mask: bool ``[H, W]`` at the input image's size, ``probability >= 0.5`` (numpy, or torch on the model's
            device with ``output_type="pt"``).
        probability: float32 ``[H, W]`` in [0, 1]: the softmax score of the referred-object class, resized back.
        expression: the sentence.
        image_size: ``(H, W)`` of the input image.
    """

    mask: np.ndarray | torch.Tensor
    probability: np.ndarray | torch.Tensor
    expression: str
    image_size: tuple[int, int]


def _describe(value: object) -> str:
    return repr(value) if isinstance(value, str) else type(value).__name__


def _check_sentence(sentence: object, name: str) -> str:
    if not isinstance(sentence, str):
        raise ValueError(f"{name}: expected a sentence (str), got {_describe(sentence)}")
    if not sentence.strip():
        raise ValueError(f"{name}: expected a non-empty sentence, got {sentence!r}")
    return sentence


def _check_sentences(sentences: object, name: str) -> list[str]:
    if isinstance(sentences, str):
        return [_check_sentence(sentences, name)]
    if not isinstance(sentences, (list, tuple)):
        raise ValueError(f"{name}: expected a sentence or a list of sentences, got {_describe(sentences)}")
    if not sentences:
        raise ValueError(f"{name}: got an empty list; expected at least one sentence")
    return [_check_sentence(s, f"{name}[{j}]") for j, s in enumerate(sentences)]


class ReferringPredictor(ImagePredictor):
    """Runs a :class:`~vpd.modeling.referring.VPDReferring` model on user images and sentences (see the module
    docstring).

    Args:
        model: the referring model; it encodes the sentences with its own frozen CLIP (``config.text_encoder`` or a
            copy bundled in its folder).
        device: move the model there first; default: leave it where it is.
        dtype: cast the model's weights first (e.g. ``torch.bfloat16``); outputs are float32.
    """

    @classmethod
    def model_class(cls) -> Any:
        from vpd.modeling.referring import VPDReferring

        return VPDReferring

    @property
    def class_names(self) -> tuple[str, ...]:
        return ("background", "object")

    def processed_size(self, size: tuple[int, int], resolution: int) -> tuple[int, int]:
        """Every image runs at ``resolution x resolution`` (0: the official :data:`REFERRING_SIZE`)."""
        side = resolution or REFERRING_SIZE
        return side, side

    def preprocess(self, image: torch.Tensor, resolution: int, **options: Any) -> torch.Tensor:
        """``[3, H, W]`` -> ``[3, s, s]`` (bilinear, antialiased: PIL's resize of the training data)."""
        size = self.processed_size((int(image.shape[-2]), int(image.shape[-1])), resolution)
        if tuple(image.shape[-2:]) == size:
            return image
        return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]

    def _predict_batch(self, images: torch.Tensor, **options: Any) -> torch.Tensor:
        """``[n, 3, s, s]`` and ``text_embeddings`` ``[n, L, D]`` -> object probability ``[n, 1, s, s]``."""
        logits = self.model(images, options["text_embeddings"]).logits
        return logits.float().softmax(1)[:, 1:2]

    def split_expressions(self, expressions: Expressions, count: int, is_batch: bool) -> tuple[list[list[str]], bool]:
        """The sentences of each of ``count`` images, and whether each image gets one sentence (not a list).

        A str applies to every image. One image takes a list of sentences; a list of images takes one list per
        image (a flat list of sentences for several images would be ambiguous and is refused).

        Raises:
            ValueError: an empty or non-str sentence, an empty list, or as many lists as images not given.
        """
        if isinstance(expressions, str):
            return [[_check_sentence(expressions, "expressions")] for _ in range(count)], True
        if not isinstance(expressions, (list, tuple)):
            raise ValueError(
                f"expressions: expected a sentence, a list of sentences or one list per image, got "
                f"{_describe(expressions)}"
            )
        if not expressions:
            raise ValueError("expressions: got an empty list; expected at least one sentence")
        nested = [isinstance(e, (list, tuple)) for e in expressions]
        if not is_batch:
            if any(nested):
                raise ValueError("expressions: one image takes a sentence or a list of sentences, got a list of lists")
            return [_check_sentences(expressions, "expressions")], False
        if not all(nested):
            raise ValueError(
                f"expressions: for a list of {count} images pass one list of sentences per image (or one sentence "
                f"for all), got {_describe(next(e for e, n in zip(expressions, nested) if not n))} at "
                f"expressions[{nested.index(False)}]"
            )
        if len(expressions) != count:
            raise ValueError(
                f"expressions: got {len(expressions)} lists of sentences for {count} images; expected one per image"
            )
        return [_check_sentences(e, f"expressions[{i}]") for i, e in enumerate(expressions)], False

    def __call__(
        self,
        images: ImageInput | Sequence[ImageInput],
        expressions: Expressions,
        *,
        processing_resolution: int = 0,
        batch_size: int | None = None,
        output_type: Literal["np", "pt"] = "np",
        max_pixels: int | None = MAX_MODEL_PIXELS,
    ) -> Any:
        """Segments what each sentence refers to.

        Args:
            images: one image or a list (see :data:`vpd.inference.base.ImageInput`).
            expressions: for one image, a sentence or a list of sentences; for a list of images, one list of
                sentences per image, or one sentence for all of them.
            processing_resolution: the side of the square the model sees (0: :data:`REFERRING_SIZE`, the official
                512); the outputs are resized back to each image's size.
            batch_size: (image, sentence) pairs per forward pass; None: all sentences of an image in one pass.
            output_type: ``"np"`` or ``"pt"``.
            max_pixels: refuse a ``processing_resolution`` whose square has more pixels (None: no limit).

        Returns:
            Nested as the input: a :class:`ReferringPrediction` for one image and one sentence; a list of them per
            sentence for one image and a list; a list per image for a list of images (of predictions for one
            sentence, of lists of predictions for one list per image).

        Raises:
            ValueError: an argument of the wrong form (naming it) or an unreadable image.
            FileNotFoundError: an image path that does not exist.
        """
        self.check_common(images, processing_resolution, 1, output_type, max_pixels)
        if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
            raise ValueError(f"batch_size: expected None (all sentences of an image) or an integer >= 1, got "
                             f"{batch_size!r}")  # fmt: skip
        items, is_batch = self.as_list(images)
        per_image, one_each = self.split_expressions(expressions, len(items), is_batch)
        side = self.processed_size((1, 1), processing_resolution)
        if max_pixels is not None and side[0] * side[1] > max_pixels:
            raise ValueError(
                f"processing_resolution: {side[0]}x{side[1]} is more than max_pixels={max_pixels}; pass "
                f"processing_resolution={math.isqrt(max_pixels)} (or max_pixels=None)"
            )
        inputs = [self.to_tensor(item) for item in items]
        device, dtype = self.device, self.dtype
        self.model.eval()
        results: list[list[ReferringPrediction]] = []
        for tensor, sentences in zip(inputs, per_image):
            size = (int(tensor.shape[1]), int(tensor.shape[2]))
            image = self.preprocess(tensor, processing_resolution).to(device=device, dtype=dtype)
            step = batch_size or len(sentences)
            predictions = []
            for start in range(0, len(sentences), step):
                chunk = sentences[start : start + step]
                # Encoded outside inference_mode: the model caches encodings, which training may reuse later.
                with torch.no_grad():
                    embeddings = self.model.encode_expressions(chunk, device=device)
                with torch.inference_mode():
                    batch = image[None].expand(len(chunk), -1, -1, -1)
                    probability = self._predict_batch(batch, text_embeddings=embeddings)
                    probability = self._restore(probability, size).clamp_(0.0, 1.0)[:, 0]
                for sentence, prob in zip(chunk, probability):
                    mask = prob >= 0.5
                    if output_type == "np":
                        predictions.append(ReferringPrediction(mask.cpu().numpy(), prob.cpu().numpy(), sentence, size))
                    else:
                        predictions.append(ReferringPrediction(mask, prob.clone(), sentence, size))
            results.append(predictions)
            if device.type == "cpu":  # as ImagePredictor.run does after each batch
                release_freed_memory()
        if one_each:
            flat = [p[0] for p in results]
            return flat if is_batch else flat[0]
        return results if is_batch else results[0]


# -------------------------------------------------------------------------------------------------------- outputs


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int, max_lines: int) -> list[str]:
    """``text`` broken at spaces into lines of at most ``width`` pixels (a longer word cut), at most ``max_lines``;
    a shortened last line ends in "..."."""

    def fits(line: str) -> bool:
        return draw.textlength(line, font=font) <= width

    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if fits(candidate):
            current = candidate
            continue
        if current:
            lines.append(current)
        while not fits(word) and len(word) > 1:  # a word wider than the band: cut it over several lines
            cut = len(word) - 1
            while cut > 1 and not fits(word[:cut]):
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and not fits(last + "..."):
            last = last[:-1]
        lines = [*lines[: max_lines - 1], last + "..."]
    return lines or [""]


def caption(image: np.ndarray, text: str, max_lines: int = 4) -> np.ndarray:
    """``image`` (uint8 ``[H, W, 3]``) under a dark band holding ``text`` in white (Pillow's default font, scaled
    with the image's width, word-wrapped to it, at most ``max_lines`` lines, the last shortened with "..."):
    ``[H + band, W, 3]``."""
    height, width = image.shape[:2]
    # Pillow's default font draws ASCII: accents are dropped ("café" -> "cafe"); other scripts show as boxes (the
    # sentences themselves are in the index file).
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    size = max(10, width // 48)
    try:
        font: Any = ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    try:
        lines = _wrap(probe, text, font, max(1, width - 4), max_lines)
    except UnicodeEncodeError:  # the bitmap font only knows Latin-1
        text = text.encode("latin-1", "replace").decode("latin-1")
        lines = _wrap(probe, text, font, max(1, width - 4), max_lines)
    line_height = int(font.getbbox("Ag")[3]) + 2
    band = len(lines) * line_height + 4
    canvas = np.full((band + height, width, 3), 32, dtype=np.uint8)
    canvas[band:] = image[..., :3]
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for i, line in enumerate(lines):
        draw.text((2, 2 + i * line_height), line, fill=(255, 255, 255), font=font)
    return np.asarray(picture).copy()


@register_writer
class ReferringWriter(Writer):
    task = "referring"
    model_type = "vpd_referring"
    options_taken = ("expression", "expressions")
    takes_expressions = True
    #: per sentence ``k``: ``<stem>_<k><suffix>``
    suffixes: ClassVar[dict[str, str]] = {"mask": "_mask.png", "overlay": "_overlay.png", "prob": "_prob.png"}
    default_formats = ("mask", "overlay", "prob")
    preview = "overlay"
    download = "mask"
    #: the index of an image's sentences: ``<stem><INDEX>``
    INDEX = "_expressions.json"

    @staticmethod
    def predictor_class() -> type[ImagePredictor]:
        return ReferringPredictor

    @classmethod
    def output_suffixes(cls, formats: tuple[str, ...], count: int = 1) -> list[str]:
        return [f"_{k}{cls.suffixes[f]}" for k in range(count) for f in formats] + [cls.INDEX]

    def options(self, formats: tuple[str, ...]) -> dict[str, Any]:
        if self.args.flip:
            raise ValueError("--flip does not apply to referring models: a mirror swaps 'left' and 'right'")
        self.predictor.model.expression_encoder  # noqa: B018  # a missing CLIP fails here, before any image is read
        return {}

    def write(self, prediction: Any, stem: str, image: np.ndarray, formats: tuple[str, ...]) -> None:
        from vpd.inference.visualize import overlay_mask

        records = []
        for k, item in enumerate(prediction):
            mask = np.asarray(item.mask, dtype=bool)
            files: dict[str, str] = {}
            for name in formats:
                path = f"{stem}_{k}{self.suffixes[name]}"
                if name == "mask":
                    write_png_atomic(path, mask.astype(np.uint8) * 255)
                elif name == "overlay":
                    write_png_atomic(path, caption(overlay_mask(image[..., :3], mask), item.expression))
                else:
                    probability = np.asarray(item.probability, dtype=np.float64)
                    write_png16_atomic(path, np.rint(probability * PROB_PNG_SCALE).astype(np.uint16))
                files[name] = os.path.basename(path)
            records.append({"k": k, "expression": item.expression, **files})
        # Last: its presence says every file of the image is complete.
        write_json_atomic(stem + self.INDEX, {"expressions": records})
