"""Training losses."""

from __future__ import annotations

import torch


def silog_loss(pred: torch.Tensor, target: torch.Tensor, variance_focus: float = 0.5) -> torch.Tensor:
    """Scale-invariant log loss of VPD / GLPDepth on ``target > 0``: ``sqrt(mean(d^2) - lambda * mean(d)^2)``.

    ``d = log(target) - log(pred)`` over valid pixels of the whole batch, no x10 factor (as the official code).

    Args:
        pred: ``[B, 1, H, W]`` (or any shape matching ``target``) positive depth.
        target: same shape; 0 marks invalid pixels.
        variance_focus: lambda (0.5 in VPD).
    """
    if pred.shape != target.shape:
        raise ValueError(f"silog_loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    valid = target > 0
    diff = torch.log(target[valid]) - torch.log(pred[valid])
    if diff.numel() == 0:  # a batch without any valid pixel contributes nothing (keeps the graph connected)
        return pred.sum() * 0.0
    # clamp: a perfect fit would give sqrt(0), whose gradient is infinite; 1e-12 changes no real loss value.
    return torch.sqrt((diff.pow(2).mean() - variance_focus * diff.mean().pow(2)).clamp_min(1e-12))
