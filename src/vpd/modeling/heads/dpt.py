"""GenPercept's DPT-style head on the UNet's up-block outputs (the ``unet_*_dpt_head`` checkpoints).

The head reads the four up-block outputs of the UNet (coarse to fine), refines them with DPT's fusion stage and
predicts one channel at twice the fused map's size. Parameter names are those of GenPercept's released
``dpt_head`` weights (``feature_upsample_0``, ``neck.convs``, ``neck.fusion_stage.layers``, ``head``), so the
official ``model.safetensors`` loads strictly.

Sizes follow the coarsest feature: the fusion stage doubles the running map at every level and resizes each finer
feature to it, so a latent that is not a multiple of 8 gives an output of another aspect ratio than the image
(GenPercept's behaviour, which the caller resizes away).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vpd.modeling.float32 import Float32Conv2d


class _PreActResidual(nn.Module):
    """``x + conv(relu(conv(relu(x))))`` with bias-free 3x3 convolutions (DPT's pre-activation residual unit)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.convolution1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.convolution2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.convolution2(F.relu(self.convolution1(F.relu(x))))


class _FusionLayer(nn.Module):
    """One DPT fusion level: add the (resized) level feature through a residual unit, refine, upsample x2, project.

    The coarsest level has no feature to add (``with_level=False``), as in GenPercept's weights.
    """

    def __init__(self, channels: int, with_level: bool) -> None:
        super().__init__()
        if with_level:
            self.residual_layer1 = _PreActResidual(channels)
        self.residual_layer2 = _PreActResidual(channels)
        self.projection = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, level: torch.Tensor | None = None) -> torch.Tensor:
        if level is not None:
            if level.shape[-2:] != x.shape[-2:]:
                level = F.interpolate(level, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = x + self.residual_layer1(level)
        x = self.residual_layer2(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.projection(x)


class _Neck(nn.Module):
    def __init__(self, in_channels: Sequence[int], features: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, features, 3, padding=1, bias=False) for c in in_channels)
        self.fusion_stage = nn.Module()
        self.fusion_stage.layers = nn.ModuleList(
            _FusionLayer(features, with_level=i > 0) for i in range(len(in_channels))
        )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``features`` fine to coarse -> the fused map (twice the coarsest level's size per level)."""
        projected = [conv(f) for conv, f in zip(self.convs, features)]
        fused: torch.Tensor | None = None
        layers: nn.ModuleList = self.fusion_stage.layers  # type: ignore[assignment]
        for layer, level in zip(layers, reversed(projected)):
            fused = layer(level) if fused is None else layer(fused, level)
        assert fused is not None
        return fused


class _Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class _DepthHead(nn.Module):
    def __init__(self, features: int, out_channels: int = 1) -> None:
        super().__init__()
        self.projection = nn.Conv2d(features, features, 3, padding=1)
        self.head = nn.Sequential(
            nn.Conv2d(features, features // 2, 3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(features // 2, 32, 3, padding=1),
            nn.ReLU(),
            Float32Conv2d(32, out_channels, 1),  # float32 output, no activation (unlike transformers' DPT)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.projection(x)))


class DPTHead(nn.Module):
    """GenPercept's DPT head.

    Args:
        up_channels: channels of the UNet's up-block outputs, coarse to fine (SD-2.1: 1280, 1280, 640, 320).
        features: the fusion width (GenPercept: 256).
        out_channels: 1 (GenPercept's depth / disparity); 3 for normals (a vpd extension).
    """

    def __init__(self, up_channels: Sequence[int], features: int = 256, out_channels: int = 1) -> None:
        super().__init__()
        fine_to_coarse = list(reversed(up_channels))
        self.feature_upsample_0 = _Upsample(fine_to_coarse[0])
        self.neck = _Neck(fine_to_coarse, features)
        self.head = _DepthHead(features, out_channels)

    def forward(self, up_features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``up_features``: the four up-block outputs, coarse to fine -> ``[B, out_channels, h, w]`` (unnormalised)."""
        fine_to_coarse = list(reversed(up_features))
        fine_to_coarse[0] = self.feature_upsample_0(fine_to_coarse[0])
        return self.head(self.neck(fine_to_coarse))
