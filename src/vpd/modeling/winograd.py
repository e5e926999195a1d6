"""Winograd F(4x4, 3x3) convolutions for fp32 inference on the CPU (opt-in: ``winograd=True`` / ``--winograd``).

A 3x3 convolution computed on 6x6 input tiles (Lavin & Gray 2016, points 0, 1, -1, 2, -2) takes 4x fewer
multiplications: each tile and its filter are transformed (``B^T d B``, ``G g G^T``), multiplied as 36 batched matrix
products over the channels, and transformed back (``A^T m A``) to a 4x4 output tile. The image is done in bands of
tile rows (:data:`BAND_VALUES` tiles x channels, at least :data:`MIN_BAND_TILES` tiles) so that a band's transformed
tiles stay in the caches between the three steps. Measured against oneDNN's direct convolution (one convolution,
fp32, 2-core Intel Xeon with AVX512, torch 2.13, ``benchmarks/winograd.py``): 0.42-0.6x the time from 256 channels up,
0.72-0.76x for 128 channels at 480-512 pixels, but 1.1-2.3x below 128 channels, where the transforms' memory passes
outweigh the products. So it runs for convolutions of at least :data:`MIN_CHANNELS` input channels on inputs of
:data:`MIN_PIXELS` to :data:`MAX_PIXELS` pixels; elsewhere the direct convolution, also in bf16 / fp16 (the
transforms' constants need fp32's mantissa), on other devices (cuDNN picks its own algorithms), with autograd on, and
on sizes not divisible by 4. The error against fp64 is 10-50x the direct convolution's (4e-5 to 9e-5 against 2e-6 to
4e-6 on outputs of magnitude ~1 with 128-1280 channels); on the full depth model it moved the depth by 1.4e-6 m.

Each transformed filter is 4x its weight (36 against 9 values per channel pair), made on the first call that uses the
weight, kept while the weight lives (made again if it is changed in place; never saved), so the model's memory grows by
4x the weights of the convolutions that run with it; below 64x64 pixels (the UNet's 1280-channel layers at a 512x512
image) that would be 225-450 MiB per layer for few tiles, hence :data:`MIN_PIXELS`. The convolution is one operator
(``vpd::winograd_conv2d``), so ``torch.compile`` calls it as a kernel between the graph's fused ones, with or without
weight freezing.
"""

from __future__ import annotations

import copy
import weakref

import torch
from torch import nn

#: Smallest and largest input (height x width) a convolution runs with Winograd (see the module).
MIN_PIXELS = 64 * 64
MAX_PIXELS = 512 * 512
#: Fewest input channels a convolution needs to run with Winograd (below, the transforms cost more than they save).
MIN_CHANNELS = 128

TILE = 4  # output tile side: F(4x4, 3x3), input tiles of 6x6
BAND_VALUES = 16384  # tiles x input channels per band, at least MIN_BAND_TILES (see winograd_conv2d)
MIN_BAND_TILES = 64


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


_G, _KRON_B, _KRON_A = _transforms()


def winograd_filter(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` ``[O, C, 3, 3]`` transformed (``G g G^T``, in fp64) to ``[36, O, C]`` in ``weight``'s dtype."""
    g = _G.to(weight.device)
    transformed = g @ weight.detach().double() @ g.T  # [O, C, 6, 6]
    return transformed.permute(2, 3, 0, 1).reshape(36, *weight.shape[:2]).to(weight.dtype).contiguous()


def winograd_conv2d(x: torch.Tensor, filters: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The 3x3, stride 1, padding 1 convolution of ``x`` ``[N, C, H, W]`` (H, W divisible by 4) with ``filters`` from
    :func:`winograd_filter`, in bands of tile rows of :data:`BAND_VALUES` // C tiles (at least :data:`MIN_BAND_TILES`),
    so that the transformed tiles of a band stay in the CPU's caches."""
    n, channels, height, width = x.shape
    out_channels = filters.shape[1]
    rows, cols = height // TILE, width // TILE
    band_rows = max(1, max(BAND_VALUES // channels, MIN_BAND_TILES) // cols)
    out = x.new_empty(n, out_channels, height, width)
    add = (bias if bias is not None else x.new_zeros(out_channels)).view(out_channels, 1, 1, 1, 1)
    # a band's input rows with their zero padding of 1, copied into one small buffer (zero columns at both sides)
    span, width_p = TILE * band_rows + 2, width + 2
    buffer = x.new_empty(channels, span, width_p)
    buffer[:, :, 0] = buffer[:, :, -1] = 0
    for i in range(n):
        for first in range(0, rows, band_rows):
            r = min(band_rows, rows - first)
            top = TILE * first - 1  # the input row of the buffer's first row (-1: the padding above the image)
            low, high = max(top, 0), min(top + TILE * r + 2, height)
            buffer[:, low - top : high - top, 1:-1] = x[i, :, low:high]
            if low > top:
                buffer[:, 0] = 0
            if high < top + TILE * r + 2:
                buffer[:, high - top : TILE * r + 2] = 0
            # the overlapping 6x6 input tiles of tile rows first..first+r, as [36, C * tiles] (one strided copy)
            tiles = buffer.as_strided(
                (6, 6, channels, r, cols), (width_p, 1, span * width_p, TILE * width_p, TILE)
            ).reshape(36, channels * r * cols)
            transformed = torch.mm(_KRON_B, tiles).view(36, channels, r * cols)
            products = torch.bmm(filters, transformed)  # [36, O, tiles]
            # back to 4x4 output tiles as [O * tiles, 16] (the product reads ``products`` transposed), so that the
            # scatter into the output below reads and writes runs of 4 adjacent values
            y = torch.mm(products.view(36, out_channels * r * cols).t(), _KRON_A.t())
            y = y.view(out_channels, r, cols, TILE, TILE)
            target = out[i, :, TILE * first : TILE * (first + r)].view(out_channels, r, TILE, cols, TILE)
            torch.add(y.transpose(2, 3), add, out=target)
    return out


#: the transformed filters of each weight in use: id(weight) -> (weak reference, weight version, filters)
_FILTERS: dict[int, tuple[weakref.ref[torch.Tensor], int, torch.Tensor]] = {}


def _version(tensor: torch.Tensor) -> int:
    return 0 if tensor.is_inference() else tensor._version  # inference tensors cannot change in place


def cached_filters(weight: torch.Tensor) -> torch.Tensor | None:
    """The transformed filters made for ``weight`` and still current, or None."""
    entry = _FILTERS.get(id(weight))
    return entry[2] if entry is not None and entry[0]() is weight and entry[1] == _version(weight) else None


def _filters_of(weight: torch.Tensor) -> torch.Tensor:
    """:func:`winograd_filter` of ``weight``, made once per weight (again if it is changed in place); freed with it."""
    filters = cached_filters(weight)
    if filters is None:
        key = id(weight)
        filters = winograd_filter(weight)
        _FILTERS[key] = (weakref.ref(weight, lambda _: _FILTERS.pop(key, None)), _version(weight), filters)
    return filters


@torch.library.custom_op("vpd::winograd_conv2d", mutates_args=())
def _winograd_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """:func:`winograd_conv2d` with ``weight``'s cached filters, as one operator: ``torch.compile`` calls it as a
    kernel (with the weight a constant of the graph when frozen) instead of tracing it."""
    return winograd_conv2d(x, _filters_of(weight), bias)


@_winograd_op.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty(x.shape[0], weight.shape[0], *x.shape[2:])


class WinogradConv2d(nn.Conv2d):
    """A 3x3, stride 1, padding 1 ``nn.Conv2d`` that runs with Winograd where that is faster and exact enough (see the
    module), else as usual. Same parameters and state dict as the convolution it replaces."""

    def uses_winograd(self, x: torch.Tensor) -> bool:
        height, width = x.shape[-2:]
        return (
            x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and x.device.type == "cpu"
            and not (self.training or torch.is_grad_enabled())
            and height % TILE == 0
            and width % TILE == 0
            and MIN_PIXELS <= height * width <= MAX_PIXELS
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.uses_winograd(x):
            return super().forward(x)
        return _winograd_op(x, self.weight, self.bias)


def _eligible(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d
        and module.kernel_size == (3, 3)
        and module.stride == (1, 1)
        and module.padding == (1, 1)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.in_channels >= MIN_CHANNELS
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
