"""Typed model outputs. Heads and users read these without importing diffusers."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class BackboneOutput:
    """What the VPD backbone hands to a head.

    Attributes:
        features: four maps at strides 8, 16, 32, 64 of the padded image, ``[B, C_i, H_pad / s, W_pad / s]``. With
            attention maps enabled, the stride-16 and stride-32 maps carry them as their last ``N_tokens`` channels.
        attention_maps: ``(stride16, stride32)`` maps ``[B, N_tokens, h, w]`` (mean over heads and layers; each pixel
            sums to 1 over tokens), or None when capture is off.
        image_size: ``(H, W)`` of the input before padding.
        padded_size: ``(H_pad, W_pad)``, multiples of the backbone's ``pad_multiple``.
    """

    features: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    attention_maps: tuple[torch.Tensor, torch.Tensor] | None
    image_size: tuple[int, int]
    padded_size: tuple[int, int]


@dataclass
class DepthOutput:
    """Metric depth prediction.

    Attributes:
        depth: ``[B, 1, H, W]`` metres, in ``(0, max_depth)``.
    """

    depth: torch.Tensor


@dataclass
class SegmentationOutput:
    """Per-pixel class scores.

    Attributes:
        logits: ``[B, num_classes, H, W]`` at the input's size.
    """

    logits: torch.Tensor

    @property
    def labels(self) -> torch.Tensor:
        """``[B, H, W]`` int64: the most likely class per pixel."""
        return self.logits.argmax(1)

    @property
    def probabilities(self) -> torch.Tensor:
        """``[B, num_classes, H, W]`` softmax over classes."""
        return self.logits.float().softmax(1)


@dataclass
class ReferringOutput:
    """Referring segmentation: background / referred-object scores per pixel.

    Attributes:
        logits: ``[B, 2, H, W]`` at the input's size; channel 0 = background, channel 1 = the referred object.
    """

    logits: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``[B, H, W]`` bool: pixels where the object scores higher than the background (argmax == 1)."""
        return self.logits.argmax(1) == 1

    @property
    def probability(self) -> torch.Tensor:
        """``[B, H, W]`` float: softmax probability of the referred object."""
        return self.logits.float().softmax(1)[:, 1]
