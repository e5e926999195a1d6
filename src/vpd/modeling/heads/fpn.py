"""The semantic-segmentation decoder of VPD: an FPN neck and a Semantic-FPN head (mmseg's ``FPN`` + ``FPNHead``).

The neck turns the four backbone features (strides 8, 16, 32, 64) into four maps of equal width; the head refines
each level with conv3x3 -> BN -> ReLU blocks and bilinear x2 upsamplings until it reaches the finest level, sums the
levels and classifies every pixel. The logits come out at the finest level's resolution (1/8 of the image) and are
resized to the image by :func:`resize_logits`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class FPNConfig:
    """The shape of the neck and head (what a checkpoint's tensors determine, see ``vpd.convert.fpn``).

    Attributes:
        in_channels: channels of the backbone features, finest first (VPD: 320, 790, 1430, 1280).
        out_channels: width of the neck's outputs, which is also the head's input width (256).
        channels: width of the head's conv blocks (256).
        num_classes: number of classes the head scores (150 for ADE20K).
        feature_strides: the nominal stride of each level. Only the ratios matter: level ``i`` gets
            ``max(1, log2(stride_i / stride_0))`` conv blocks. VPD's config says (4, 8, 16, 32), while the real strides
            are 8 to 64; the ratios are the same.
        dropout: Dropout2d probability before the classifier (0.1).
    """

    in_channels: tuple[int, ...] = (320, 790, 1430, 1280)
    out_channels: int = 256
    channels: int = 256
    num_classes: int = 150
    feature_strides: tuple[int, ...] = (4, 8, 16, 32)
    dropout: float = 0.1


class FPNNeck(nn.Module):
    """The FPN neck (no extra levels, no norm, no activation).

    ``l_i = lateral_i(x_i)`` (conv1x1 with bias); from the coarsest level down, ``l_{i-1} += nearest(l_i)`` resized to
    ``l_{i-1}``'s size; ``o_i = output_i(l_i)`` (conv3x3 with bias).

    Args:
        in_channels: channels of the input features, finest first.
        out_channels: channels of every output.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """mmcv's ConvModule initialisation, which is what the official neck ends up with: Kaiming normal
        (fan_out, ReLU gain), biases 0."""
        for conv in [*self.lateral, *self.output]:
            assert isinstance(conv, nn.Conv2d)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            assert conv.bias is not None
            nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Features ``[B, in_channels[i], H_i, W_i]`` (finest first) -> ``[B, out_channels, H_i, W_i]`` per level."""
        if len(features) != len(self.lateral):
            raise ValueError(f"the FPN neck takes {len(self.lateral)} feature maps, got {len(features)}")
        laterals = [conv(x) for conv, x in zip(self.lateral, features)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest"
            )
        return [conv(x) for conv, x in zip(self.output, laterals)]


class ConvBNReLU(nn.Module):
    """conv3x3 (no bias) -> BatchNorm -> ReLU; the submodules are named ``conv`` and ``bn`` as in mmcv.

    The official config uses SyncBN; in one process that is plain BatchNorm (the same keys and eval computation).
    """

    def __init__(self, in_channels: int, out_channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Upsample2x(nn.Module):
    """Bilinear x2 upsampling, ``align_corners=False`` (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class FPNHead(nn.Module):
    """The Semantic-FPN head: per-level [ConvBNReLU, Upsample2x] stacks, summed at the finest level, then classified.

    Level ``i`` runs ``n_i = max(1, log2(stride_i / stride_0))`` :class:`ConvBNReLU` blocks, each followed by an
    :class:`Upsample2x` when ``i > 0``; so with four levels
    ``y = CBR(o0) + U(CBR(o1)) + U(CBR(U(CBR(o2)))) + U(CBR(U(CBR(U(CBR(o3))))))``. A level whose upsampled size
    still differs from level 0's (inputs not a multiple of the coarsest stride) is resized to it bilinearly. Then
    Dropout2d and ``conv_seg`` (conv1x1 with bias) give the logits at level 0's resolution.

    ``scale_heads[i][j]`` is the ``j``-th module of level ``i``: blocks at even ``j``, upsamplings at odd ``j``.

    Args:
        in_channels: channels of each input level (an int: the same for all).
        channels: width of the conv blocks.
        num_classes: number of output channels.
        feature_strides: nominal stride per level, finest first (see :class:`FPNConfig`).
        dropout: Dropout2d probability before ``conv_seg`` (0 for none).
        eps: BatchNorm epsilon.
    """

    def __init__(
        self,
        in_channels: int | Sequence[int] = 256,
        channels: int = 256,
        num_classes: int = 150,
        feature_strides: Sequence[int] = (4, 8, 16, 32),
        dropout: float = 0.1,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        widths = [in_channels] * len(feature_strides) if isinstance(in_channels, int) else list(in_channels)
        if len(widths) != len(feature_strides):
            raise ValueError(f"{len(widths)} input widths for {len(feature_strides)} feature strides")
        if sorted(feature_strides) != list(feature_strides):
            raise ValueError(f"feature_strides must be finest first, got {tuple(feature_strides)}")
        self.scale_heads = nn.ModuleList()
        for i, (width, stride) in enumerate(zip(widths, feature_strides)):
            layers: list[nn.Module] = []
            for k in range(num_scale_blocks(stride, feature_strides[0])):
                layers.append(ConvBNReLU(width if k == 0 else channels, channels, eps))
                if i > 0:
                    layers.append(Upsample2x())
            self.scale_heads.append(nn.Sequential(*layers))
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation: blocks Kaiming normal (fan_out, ReLU gain), BN (1, 0); ``conv_seg``
        N(0, 0.01), bias 0."""
        for module in self.scale_heads.modules():
            if isinstance(module, ConvBNReLU):
                nn.init.kaiming_normal_(module.conv.weight, mode="fan_out", nonlinearity="relu")
                nn.init.ones_(module.bn.weight)
                nn.init.zeros_(module.bn.bias)
        nn.init.normal_(self.conv_seg.weight, std=0.01)
        assert self.conv_seg.bias is not None
        nn.init.zeros_(self.conv_seg.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Neck outputs (finest first) -> logits ``[B, num_classes, H_0, W_0]`` at the finest level's size."""
        if len(features) != len(self.scale_heads):
            raise ValueError(f"the FPN head takes {len(self.scale_heads)} feature maps, got {len(features)}")
        out = self.scale_heads[0](features[0])
        for scale_head, x in zip(self.scale_heads[1:], features[1:]):
            y = scale_head(x)
            if y.shape[-2:] != out.shape[-2:]:
                y = F.interpolate(y, size=out.shape[-2:], mode="bilinear", align_corners=False)
            out = out + y
        return self.conv_seg(self.dropout(out))


def num_scale_blocks(stride: int, finest_stride: int) -> int:
    """How many conv blocks the head runs on a level: ``max(1, log2(stride / finest_stride))`` (mmseg's rule)."""
    ratio = stride / finest_stride
    steps = round(math.log2(ratio))
    if ratio < 1 or 2**steps != ratio:
        raise ValueError(f"feature stride {stride} is not a power-of-two multiple of the finest stride {finest_stride}")
    return max(1, steps)


def resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """VPD's final resize: logits to the image size, bilinear, ``align_corners=False``, no antialiasing."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
