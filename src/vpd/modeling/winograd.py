"""Winograd F(4x4, 3x3) convolutions for fp32 inference on the CPU (opt-in: ``winograd=True`` / ``--winograd``).

A 3x3 convolution computed on 6x6 input tiles (Lavin & Gray 2016, points 0, 1, -1, 2, -2) takes 4x fewer
multiplications: each tile and its filter are transformed (``B^T d B``, ``G g G^T``), multiplied as 36 batched matrix
products over the channels, and transformed back (``A^T m A``) to a 4x4 output tile. The matrix products run at about
90-135 GFLOP/s on 2 AVX2 cores against ~155 for oneDNN's direct convolution, and the transforms cost memory passes, so
it pays only where the products dominate: measured on a 2-core AMD EPYC (AVX2, torch 2.13, one convolution, fp32), 512
channels at 64x64 0.55x and at 128x128 0.66x the direct time, 320 at 64x64 0.64x, but 256 at 256x256 0.97x and 128 at
512x512 1.54x. So it runs on inputs of :data:`MIN_PIXELS` to :data:`MAX_PIXELS` pixels (for a 512x512 image: the VAE
encoder's two deepest stages and the UNet's first), elsewhere the direct convolution; also in bf16 / fp16 (the
transforms' constants need fp32's mantissa), on other devices (cuDNN picks its own algorithms), with autograd on, and on
sizes not divisible by 4. The error against fp64 is 3-10x the direct convolution's (1e-5 to 6e-5 against 1e-6 to 2e-5
on outputs of magnitude ~3, growing with the channels); on the full depth model it moved the depth by 1.4e-6 m.

Each transformed filter is 4x its weight (36 against 9 values per channel pair) and made on the first call that uses it
(not saved; 669 MiB for the convolutions the full depth model uses at 512x512; below 64x64 the UNet's 1280-channel
layers would need 225 MiB each for few tiles), so this is for inference in eager mode:
under ``torch.compile`` it is refused (:func:`use_winograd` is applied by the predictor, which checks that).
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from torch import nn

#: Smallest and largest input (height x width) a convolution runs with Winograd (see the module).
MIN_PIXELS = 64 * 64
MAX_PIXELS = 128 * 128

TILE = 4  # output tile side: F(4x4, 3x3), input tiles of 6x6


@functools.cache
def _transforms() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(``G`` [6, 3] in fp64; ``kron(B^T, B^T)`` [36, 36] and ``kron(A^T, A^T)`` [16, 36] in fp32)."""
    b_t = torch.tensor(
        [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        dtype=torch.float64,
    )  # fmt: skip
    g = torch.tensor(
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        dtype=torch.float64,
    )  # fmt: skip
    a_t = torch.tensor(
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=torch.float64
    )
    return g, torch.kron(b_t, b_t).float(), torch.kron(a_t, a_t).float()


def winograd_filter(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` ``[O, C, 3, 3]`` transformed (``G g G^T``, in fp64) to ``[36, O, C]`` in ``weight``'s dtype."""
    g = _transforms()[0].to(weight.device)
    transformed = g @ weight.detach().double() @ g.T  # [O, C, 6, 6]
    return transformed.permute(2, 3, 0, 1).reshape(36, *weight.shape[:2]).to(weight.dtype).contiguous()


def winograd_conv2d(x: torch.Tensor, filters: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The 3x3, stride 1, padding 1 convolution of ``x`` ``[N, C, H, W]`` (H, W divisible by 4) with ``filters`` from
    :func:`winograd_filter`."""
    _, kron_b, kron_a = _transforms()
    n, channels, height, width = x.shape
    out_channels = filters.shape[1]
    rows, cols = height // TILE, width // TILE
    tiles = rows * cols
    add = (bias if bias is not None else x.new_zeros(out_channels)).view(out_channels, 1, 1)
    outputs = []
    for image in x.split(1):
        patches = F.unfold(image, 6, padding=1, stride=TILE).view(channels, 36, tiles)  # overlapping 6x6 input tiles
        transformed = torch.matmul(kron_b, patches)  # [C, 36, tiles]
        products = torch.bmm(filters, transformed.transpose(0, 1))  # [36, O, tiles]
        out = torch.baddbmm(add, kron_a.expand(out_channels, 16, 36), products.transpose(0, 1))  # [O, 16, tiles]
        outputs.append(F.pixel_shuffle(out.view(1, out_channels * 16, rows, cols), TILE))
    return torch.cat(outputs) if n > 1 else outputs[0]


class WinogradConv2d(nn.Conv2d):
    """A 3x3, stride 1, padding 1 ``nn.Conv2d`` that runs with Winograd where that is faster and exact enough (see the
    module), else as usual. Same parameters and state dict as the convolution it replaces."""

    _filters: torch.Tensor | None = None

    def uses_winograd(self, x: torch.Tensor) -> bool:
        height, width = x.shape[-2:]
        return (
            x.dtype == torch.float32
            and x.device.type == "cpu"
            and not (self.training or torch.is_grad_enabled())
            and height % TILE == 0
            and width % TILE == 0
            and MIN_PIXELS <= height * width <= MAX_PIXELS
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.uses_winograd(x):
            return super().forward(x)
        if self._filters is None or self._filters.device != x.device or self._filters.dtype != x.dtype:
            self._filters = winograd_filter(self.weight.to(x.dtype))
        return winograd_conv2d(x, self._filters, self.bias)


def _eligible(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d
        and module.kernel_size == (3, 3)
        and module.stride == (1, 1)
        and module.padding == (1, 1)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.padding_mode == "zeros"
    )


def use_winograd(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``model`` (sharing its parameters and buffers; ``model`` is not changed) whose 3x3, stride 1, padding
    1 convolutions are :class:`WinogradConv2d`, and how many there are."""
    shared = {id(tensor): tensor for tensor in [*model.parameters(), *model.buffers()]}
    result = copy.deepcopy(model, memo=shared)
    convolutions = [module for module in result.modules() if _eligible(module)]
    for module in convolutions:
        module.__class__ = WinogradConv2d
    return result, len(convolutions)
