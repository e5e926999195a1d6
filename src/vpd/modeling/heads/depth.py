"""The VPD depth head: multi-scale fusion to stride 32, then a deconvolution decoder back to full resolution."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vpd.data.nyuv2 import NYU_MAX_DEPTH
from vpd.modeling.float32 import Float32Conv2d


class VPDDepthHead(nn.Module):
    """Fuses the four backbone features and decodes metric depth.

    Fusion (at stride 32): stride-8 -> [conv3x3 s2, GroupNorm(16), ReLU, conv3x3 s2]; stride-16 -> conv3x3 s2;
    stride-64 -> nearest x2, concatenated with stride-32; all concatenated -> conv1x1 -> GroupNorm(16) -> ReLU.
    Decoder: ``len(deconv_channels)`` x [ConvTranspose2d k2 s2 (no bias), BN, ReLU], conv3x3 -> BN -> ReLU,
    two bilinear x2 upsamplings, conv3x3 -> ReLU -> conv3x3 -> sigmoid * max_depth.

    Args:
        in_channels: channels of the stride 8, 16, 32, 64 features.
        fused_channels: width of the fused stride-32 map (1536 in VPD).
        deconv_channels: output widths of the deconvolution layers (32, 32, 32 in VPD).
        head_channels: width of the full-resolution convolutions (192 in VPD).
        max_depth: the sigmoid's scale in metres (10 NYU, 80 KITTI).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        fused_channels: int = 1536,
        deconv_channels: Sequence[int] = (32, 32, 32),
        head_channels: int = 192,
        max_depth: float = NYU_MAX_DEPTH,
    ) -> None:
        super().__init__()
        c8, c16, c32, c64 = in_channels
        self.max_depth = max_depth
        self.fuse_s8 = nn.Sequential(
            nn.Conv2d(c8, c8, 3, stride=2, padding=1),
            nn.GroupNorm(16, c8),
            nn.ReLU(),
            nn.Conv2d(c8, c8, 3, stride=2, padding=1),
        )
        self.fuse_s16 = nn.Conv2d(c16, c16, 3, stride=2, padding=1)
        self.fuse_out = nn.Sequential(
            nn.Conv2d(c8 + c16 + c32 + c64, fused_channels, 1), nn.GroupNorm(16, fused_channels), nn.ReLU()
        )
        layers: list[nn.Module] = []
        width = fused_channels
        for channels in deconv_channels:
            layers += [
                nn.ConvTranspose2d(width, channels, 2, stride=2, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            ]
            width = channels
        self.deconv = nn.Sequential(*layers)
        self.conv = nn.Sequential(
            nn.Conv2d(width, head_channels, 3, padding=1), nn.BatchNorm2d(head_channels), nn.ReLU()
        )
        self.predict = nn.Sequential(
            nn.Conv2d(head_channels, head_channels, 3, padding=1),
            nn.ReLU(inplace=True),  # full resolution: one map fewer in memory
            Float32Conv2d(head_channels, 1, 3, padding=1),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation: fusion trunc-normal(0.02); decoder N(0, 0.001), BN (1, 0); biases 0."""
        for module in [*self.fuse_s8, self.fuse_s16, *self.fuse_out]:
            if isinstance(module, nn.Conv2d) and module.bias is not None:
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        for module in [*self.deconv, *self.conv, *self.predict]:
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, std=0.001)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def fuse(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Backbone features -> the fused stride-32 map ``[B, fused_channels, H_pad/32, W_pad/32]``."""
        s8, s16, s32, s64 = features
        s64_up = F.interpolate(s64, size=s32.shape[-2:], mode="nearest")
        return self.fuse_out(torch.cat([self.fuse_s8(s8), self.fuse_s16(s16), s32, s64_up], dim=1))

    def forward(self, features: Sequence[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """Features of the padded image -> depth ``[B, 1, H, W]`` in metres for the unpadded ``image_size``.

        The fused map is cropped to ``ceil(H/32) x ceil(W/32)`` before decoding (VPD: 16 -> 15 for 480 padded to
        512, 12 -> 11 for 352 padded to 384), and the decoded map to ``H x W``.
        """
        height, width = image_size
        x = self.fuse(features)
        x = x[..., : -(-height // 32), : -(-width // 32)]  # ceil in integers (symbolic sizes stay exact)
        x = self.conv(self.deconv(x))
        # the full-resolution map is a temporary here, so that it is freed once self.predict's first layer has run
        depth = torch.sigmoid(self.predict(upsample_x4(x))) * self.max_depth  # float32 (Float32Conv2d) in any dtype
        return depth[..., :height, :width]


def upsample_x4(x: torch.Tensor) -> torch.Tensor:
    """VPD's two bilinear x2 upsamplings (not one x4: the official numerics)."""
    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
