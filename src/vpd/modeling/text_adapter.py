"""The VPD text adapter: ``x + gamma * MLP(x)``, refining CLIP text features toward the UNet's conditioning."""

from __future__ import annotations

import torch
from torch import nn


class TextAdapter(nn.Module):
    """Residual MLP ``Linear(d, d) -> GELU -> Linear(d, d)`` scaled by a learnable per-channel ``gamma``.

    Args:
        dim: text feature width (the UNet's ``cross_attention_dim``; 768 for SD-1.x).
        gamma_init: initial value of every ``gamma`` entry (1e-4 in VPD), so training starts from the raw text.
    """

    def __init__(self, dim: int, gamma_init: float = 1e-4) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.gamma = nn.Parameter(torch.full((dim,), gamma_init))

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        """``text``: ``[..., dim]`` -> same shape."""
        return text + self.gamma * self.fc(text)
