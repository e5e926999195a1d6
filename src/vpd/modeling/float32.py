"""Output layers that stay in float32 when the rest of a model runs in bf16 or fp16.

A model's last convolution turns features into the map a user saves (depth in metres, a probability as a 16-bit
PNG). In bf16 its output would carry 8 significant bits: depths of 4-8 m on 3 cm steps, a [0, 1] map on 1/256 steps.
Kept in float32, the layer sums many bf16 inputs in float32 and its output is smooth again, at the cost of one small
convolution. Its parameters keep their names, so checkpoints are unchanged. A bf16 / fp16 input is cast to float32
:data:`CAST_CHANNELS` channels at a time, the partial convolutions summed: cast whole, the depth head's 192-channel
full-resolution input (169 MiB in float32 at 480x480) was the largest tensor of the depth model's bf16 forward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

#: Input channels cast to float32 at a time when the input is in a lower precision (see the module).
CAST_CHANNELS = 48


class Float32Conv2d(nn.Conv2d):
    """A ``Conv2d`` that keeps float32 weights whatever dtype the model is cast to, and computes in float32 (also
    under autocast). Its output is float32."""

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Any:
        before = {name: p.data for name, p in self.named_parameters(recurse=False) if p.dtype == torch.float32}
        super()._apply(fn, recurse)
        for name, parameter in self.named_parameters(recurse=False):
            if parameter.is_floating_point() and parameter.dtype != torch.float32:  # a cast: keep the float32 values
                kept = before.get(name)
                parameter.data = parameter.data.float() if kept is None else kept.to(parameter.device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            channels = x.shape[1]
            if x.dtype == torch.float32 or self.groups != 1 or channels <= CAST_CHANNELS:
                return super().forward(x.float())
            out = None
            for start in range(0, channels, CAST_CHANNELS):
                part = slice(start, start + CAST_CHANNELS)
                y = self._conv_forward(x[:, part].float(), self.weight[:, part], None)
                out = y if out is None else out.add_(y)
            assert out is not None
            return out if self.bias is None else out.add_(self.bias.view(1, -1, 1, 1))


def keep_float32(conv: nn.Conv2d) -> Float32Conv2d:
    """Turns ``conv`` (e.g. a diffusers VAE decoder's ``conv_out``) into a :class:`Float32Conv2d` in place."""
    if type(conv) not in (nn.Conv2d, Float32Conv2d):
        raise TypeError(f"keep_float32: expected a plain nn.Conv2d, got {type(conv).__name__}")
    conv.__class__ = Float32Conv2d
    return conv.float()  # type: ignore[return-value]
