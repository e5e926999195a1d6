"""The VPD referring segmentation model: backbone (expression tokens + cross-attention maps) + LAVT-style decoder.

The official model (wl-zhao/VPD ``refer/``, ``VPDRefer`` + ``SimpleDecoding``) runs the UNet on the image latent with
the adapted CLIP ``last_hidden_state`` of the expression as context, appends the mean cross-attention maps (one channel
per token) to the stride-16 and stride-32 features, and decodes top-down:

- stride 64 -> bilinear (``align_corners=True``) to stride 32, concatenated with the stride-32 feature,
  ``[conv3x3 (no bias) -> BN -> ReLU] x 2`` to ``hidden_channels``;
- the same onto the stride-16 and then the stride-8 feature;
- conv1x1 -> 2 classes (background, referred object); bilinear (``align_corners=True``) to the input size.

``hidden_channels`` is half the stride-64 width in the official code (640 on SD-1.5). Training uses cross-entropy with
class weights (0.9, 1.1) (:func:`referring_loss`).

Where the CLIP comes from: the frozen text encoder is not part of the weights (the official checkpoints do not hold
it either). ``config.text_encoder`` names it -- a CLIP folder / hub id, or a Stable Diffusion one with
``text_encoder/`` and ``tokenizer/`` -- so the config travels with the weights; the official models used
``openai/clip-vit-large-patch14`` (the text encoder of SD-1.5 itself). With ``bundle_text_encoder`` the model folder
holds a copy in ``text_encoder/`` + ``tokenizer/`` and needs nothing else. A bundled copy in the folder the model was
loaded from wins over ``config.text_encoder``. It is loaded on the first :meth:`VPDReferring.encode_expressions`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vpd.configuration import check_range
from vpd.modeling.backbone import BackboneConfig, VPDBackbone
from vpd.modeling.builder import build_vpd_model
from vpd.modeling.float32 import Float32Conv2d
from vpd.modeling.hub import PretrainedModel
from vpd.modeling.outputs import ReferringOutput
from vpd.modeling.stable_diffusion import TINY_UNET_CONFIG, TINY_VAE_CONFIG, load_clip_text_encoder
from vpd.modeling.text_encoder import ExpressionEncoder

#: Background and the referred object.
NUM_CLASSES = 2
#: Official cross-entropy class weights (background, object).
CLASS_WEIGHTS = (0.9, 1.1)
#: Where a bundled CLIP lives inside a model folder (the Stable Diffusion layout, so the folder loads as a CLIP source).
BUNDLED_TEXT_ENCODER, BUNDLED_TOKENIZER = "text_encoder", "tokenizer"
#: The CLIP the official referring models encode expressions with (``refer/train.py``).
OFFICIAL_TEXT_ENCODER = "openai/clip-vit-large-patch14"


def _refcoco_backbone(context_length: int = 40) -> BackboneConfig:
    return BackboneConfig(conditioning="text", context_length=context_length, attention_maps=True)


@dataclass(frozen=True)
class VPDReferringConfig:
    """Architecture of :class:`VPDReferring` (defaults: the official RefCOCO model on SD-1.5).

    The decoder's input widths follow from the backbone: its four feature widths, the stride-16/32 maps carrying one
    attention channel per text token (``context_length``: 40 for RefCOCO/RefCOCO+, 77 for G-Ref).

    Attributes:
        backbone: conditioned on the expression's tokens (``conditioning="text"``), with cross-attention maps.
        hidden_channels: width of the decoder's conv blocks (official: half the stride-64 width, 640 on SD-1.5).
        text_encoder: the frozen CLIP that encodes expressions (folder or hub id; see the module docstring).
        bundle_text_encoder: save a copy of that CLIP inside the model folder.
    """

    backbone: BackboneConfig = field(default_factory=_refcoco_backbone)
    hidden_channels: int = 640
    text_encoder: str | None = OFFICIAL_TEXT_ENCODER
    bundle_text_encoder: bool = False

    def __post_init__(self) -> None:
        check_range("hidden_channels", self.hidden_channels, low=1)
        if self.bundle_text_encoder and not self.text_encoder:
            raise ValueError("bundle_text_encoder needs text_encoder (the CLIP to copy into the model folder)")
        if self.backbone.conditioning != "text":
            raise ValueError("VPD referring segmentation conditions on the expression's tokens (conditioning='text')")
        if self.backbone.context_length is None:
            raise ValueError("VPD referring segmentation needs backbone.context_length (tokens per expression)")
        check_range("backbone.context_length", self.backbone.context_length, low=1)


class _FuseBlock(nn.Sequential):
    """``[conv3x3 (no bias) -> BN -> ReLU] x 2`` on the concatenation of the upsampled coarse map and a finer one."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )


class ReferringDecoder(nn.Module):
    """The LAVT-style top-down decoder of VPD referring segmentation (official ``SimpleDecoding``).

    Args:
        in_channels: widths of the backbone features at strides 8, 16, 32, 64 (attention channels included).
        hidden_channels: width of every fuse block.
        num_classes: output channels (2: background, object).

    ``fuse[0]`` merges strides 64 and 32, ``fuse[1]`` adds stride 16, ``fuse[2]`` stride 8; ``classifier`` is a conv1x1
    with bias. Default PyTorch initialisation, as the official code.
    """

    def __init__(self, in_channels: Sequence[int], hidden_channels: int, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"in_channels: expected 4 widths (strides 8, 16, 32, 64), got {tuple(in_channels)}")
        c8, c16, c32, c64 = (int(c) for c in in_channels)
        self.fuse = nn.ModuleList(
            [
                _FuseBlock(c64 + c32, hidden_channels),
                _FuseBlock(hidden_channels + c16, hidden_channels),
                _FuseBlock(hidden_channels + c8, hidden_channels),
            ]
        )
        self.classifier = Float32Conv2d(hidden_channels, num_classes, 1)  # float32 logits in a bf16 model

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``features`` at strides 8, 16, 32, 64 -> logits ``[B, num_classes, h8, w8]`` at stride 8."""
        s8, s16, s32, s64 = features
        x = s64
        for block, skip in zip(self.fuse, (s32, s16, s8)):
            if x.shape[-2:] != skip.shape[-2:]:
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
            x = block(torch.cat([x, skip], dim=1))
        return self.classifier(x)


class VPDReferring(PretrainedModel):
    """VPD referring segmentation: which pixels the expression refers to.

    Example:
        >>> model = VPDReferring.from_pretrained("path/or/hub-id")       # doctest: +SKIP
        >>> out = model(images, text_embeddings)                        # doctest: +SKIP
        >>> out.logits.shape, out.mask.shape                            # doctest: +SKIP
        (torch.Size([1, 2, 512, 512]), torch.Size([1, 512, 512]))

    Args:
        config: the architecture.
        backbone: a ready backbone (e.g. with Stable Diffusion weights); built from ``config`` when None.
    """

    model_type: ClassVar[str] = "vpd_referring"
    config_class: ClassVar[type] = VPDReferringConfig
    backbone: VPDBackbone

    def __init__(self, config: VPDReferringConfig, backbone: VPDBackbone | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else VPDBackbone(config.backbone)
        self.head = ReferringDecoder(config.backbone.feature_channels, config.hidden_channels)
        self._expressions: ExpressionEncoder | None = None  # not a submodule: never in the weights

    @property
    def context_length(self) -> int:
        return int(self.config.backbone.num_tokens)

    # ------------------------------------------------------------------ expressions
    def _bundled_source(self) -> str | None:
        """The folder / hub id this model was loaded from, when it holds a bundled ``text_encoder/``."""
        source = self.pretrained_source
        if source is None:
            return None
        if os.path.isdir(source):
            return source if os.path.isfile(os.path.join(source, BUNDLED_TEXT_ENCODER, "config.json")) else None
        try:
            from huggingface_hub import file_exists

            return source if file_exists(source, f"{BUNDLED_TEXT_ENCODER}/config.json") else None
        except Exception:  # offline, or not a hub id: fall back to config.text_encoder
            return None

    @property
    def expression_encoder(self) -> ExpressionEncoder:
        """The frozen CLIP tokenizer + text encoder (loaded on first use; see the module docstring)."""
        if self._expressions is None:
            source = self._bundled_source() or self.config.text_encoder
            if not source:
                raise ValueError(
                    "this referring model names no text encoder (config.text_encoder is null): pass text "
                    "embeddings, or set one with model.attach_text_encoder(...)"
                )
            encoder, tokenizer = load_clip_text_encoder(source)
            self.attach_text_encoder(encoder, tokenizer)
        assert self._expressions is not None
        return self._expressions

    def attach_text_encoder(self, text_encoder: Any, tokenizer: Any) -> None:
        """Uses this transformers ``CLIPTextModel`` and ``CLIPTokenizer`` for expressions (instead of loading
        ``config.text_encoder``); its width must be the backbone's text width."""
        width = int(text_encoder.config.hidden_size)
        if width != self.config.backbone.text_dim:
            raise ValueError(
                f"text encoder: its width {width} is not the model's text width {self.config.backbone.text_dim}"
            )
        self._expressions = ExpressionEncoder(text_encoder, tokenizer, length=self.context_length)

    def encode_expressions(self, expressions: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
        """``[B, context_length, text_dim]`` CLIP ``last_hidden_state`` of the sentences (cached per sentence),
        on ``device`` (default: the model's) in the model's dtype. The frozen CLIP follows the model: it runs on
        that device and is stored in the model's dtype (a bf16 model encodes with a bf16 CLIP)."""
        parameter = next(self.head.parameters())
        encoder = self.expression_encoder
        on = parameter.device if device is None else torch.device(device)
        current = next(encoder.text_encoder.parameters())
        if (current.device != on or current.dtype != parameter.dtype) and on.type != "meta":
            if current.dtype != parameter.dtype:
                encoder.clear_cache()  # the cached encodings were made in the other precision
            encoder.text_encoder.to(on, parameter.dtype)
        return encoder(list(expressions), device=on).to(parameter.dtype)

    def _save_extras(self, directory: Path) -> None:
        if not self.config.bundle_text_encoder:
            return
        encoder = self.expression_encoder
        encoder.text_encoder.save_pretrained(directory / BUNDLED_TEXT_ENCODER)
        encoder.tokenizer.save_pretrained(directory / BUNDLED_TOKENIZER)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        images: torch.Tensor,
        text_embeddings: torch.Tensor | None = None,
        *,
        expressions: Sequence[str] | None = None,
    ) -> ReferringOutput:
        """Segments what each expression refers to.

        Args:
            images: ``[B, 3, H, W]`` RGB in [0, 1] (the official recipe resizes to 512x512); other sizes are padded
                to a multiple of 64 inside, the logits are resized to the padded size and cropped back.
            text_embeddings: ``[B, context_length, text_dim]``: the CLIP text encoder's ``last_hidden_state`` of the
                expressions, padding tokens included (the official forward uses no attention mask).
            expressions: instead of ``text_embeddings``, ``B`` sentences, encoded by :meth:`encode_expressions`.

        Returns:
            :class:`ReferringOutput` with ``logits`` ``[B, 2, H, W]``: the decoder's stride-8 logits resized to the
            input (bilinear, ``align_corners=True``, as the official forward).
        """
        if (text_embeddings is None) == (expressions is None):
            raise ValueError("pass exactly one of text_embeddings and expressions")
        if expressions is not None:
            if isinstance(expressions, str) or len(expressions) != images.shape[0]:
                raise ValueError(
                    f"expressions: expected a list of {images.shape[0]} sentences (one per image), got {expressions!r}"
                )
            text_embeddings = self.encode_expressions(expressions, device=images.device)
        assert text_embeddings is not None
        expected = self.context_length
        if text_embeddings.ndim != 3 or text_embeddings.shape[1] != expected:
            raise ValueError(
                f"text_embeddings: expected [B, {expected}, {self.config.backbone.text_dim}] (the model was built for "
                f"{expected} tokens per expression), got {tuple(text_embeddings.shape)}"
            )
        features = self.backbone(images, text_embeddings=text_embeddings)
        logits = self.head(features.features)
        height, width = features.image_size
        logits = F.interpolate(logits, size=features.padded_size, mode="bilinear", align_corners=True)
        return ReferringOutput(logits=logits[..., :height, :width])


def referring_loss(
    logits: torch.Tensor, mask: torch.Tensor, class_weights: Sequence[float] = CLASS_WEIGHTS
) -> torch.Tensor:
    """The official loss: ``F.cross_entropy(logits, mask, weight=class_weights)``, i.e. the class-weighted mean
    ``sum_i w[y_i] * nll_i / sum_i w[y_i]`` over all pixels of the batch.

    Args:
        logits: ``[B, 2, H, W]``.
        mask: ``[B, H, W]`` 0/1 (or bool) ground truth, 1 = the referred object.
        class_weights: (background, object) weights; official (0.9, 1.1).
    """
    if mask.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match logits {tuple(logits.shape)}")
    if len(class_weights) != logits.shape[1]:
        raise ValueError(f"class_weights: expected {logits.shape[1]} weights, got {len(class_weights)}")
    weight = torch.tensor(tuple(class_weights), dtype=torch.float32, device=logits.device)
    return F.cross_entropy(logits.float(), mask.long(), weight=weight)


def build_vpd_referring(
    config: VPDReferringConfig | None = None,
    *,
    stable_diffusion: str | os.PathLike[str] | None = None,
    seed: int = 0,
    **load_kwargs: Any,
) -> VPDReferring:
    """Builds a VPD referring segmentation model, optionally on pretrained Stable Diffusion (see
    :func:`vpd.modeling.builder.build_vpd_model`). The expressions' CLIP embeddings are an input, so no text encoder
    is loaded here."""
    return build_vpd_model(
        VPDReferring,
        config or VPDReferringConfig(),
        stable_diffusion=stable_diffusion,
        seed=seed,
        **load_kwargs,
    )


def tiny_vpd_referring_config(context_length: int = 40, text_encoder: str | None = None) -> VPDReferringConfig:
    """A small SD-shaped VPD referring model for tests and the CPU demo (text width 32, as
    :func:`vpd.modeling.text_encoder.tiny_clip`); ``text_encoder`` names a CLIP of that width.

    Not the shape of the ``vpd_refer_tiny`` parity fixture (UNet widths 64-256, text width 768): converted checkpoints
    carry their own shapes.
    """
    backbone = dataclasses.replace(
        _refcoco_backbone(context_length), unet=dict(TINY_UNET_CONFIG), vae=dict(TINY_VAE_CONFIG)
    )
    return VPDReferringConfig(
        backbone=backbone,
        hidden_channels=TINY_UNET_CONFIG["block_out_channels"][-1] // 2,
        text_encoder=text_encoder,
    )
