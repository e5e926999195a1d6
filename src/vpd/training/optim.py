"""Optimiser parameter groups: backbone learning-rate scaling and weight-decay exclusions, as plain functions."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

NoDecay = Literal["1d_and_bias", "bias"]


def param_groups(
    model: nn.Module,
    weight_decay: float,
    scaled: tuple[str, ...] = ("unet",),
    lr_scale: float = 0.01,
    no_decay: NoDecay = "1d_and_bias",
) -> list[dict[str, Any]]:
    """Trainable parameters split by learning-rate scale and weight decay.

    Args:
        model: the model; parameters with ``requires_grad=False`` (the frozen VAE) are left out.
        weight_decay: decay of the decayed groups.
        scaled: a parameter whose name contains one of these gets ``lr_scale`` (VPD: every name containing
            "unet" trains at 0.01 x the rate).
        lr_scale: that scale.
        no_decay: ``"1d_and_bias"`` -- no decay on 1-D parameters (norms, gamma) and biases (official VPD);
            ``"bias"`` -- biases only (mmsegmentation's ``bias_decay_mult=0``).

    Returns:
        Groups with ``params``, ``weight_decay``, ``lr_scale`` and ``names``; a schedule sets each group's ``lr`` to
        ``lr_scale * lr(step)``.
    """
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_bias = name.endswith(".bias")
        decay = 0.0 if is_bias or (no_decay == "1d_and_bias" and param.ndim <= 1) else weight_decay
        scale = lr_scale if any(s in name for s in scaled) else 1.0
        group = groups.setdefault((scale, decay), {"params": [], "names": [], "weight_decay": decay, "lr_scale": scale})
        group["params"].append(param)
        group["names"].append(name)
    return list(groups.values())


def build_adamw(
    groups: list[dict[str, Any]], lr: float, betas: tuple[float, float] = (0.9, 0.999), fused: bool | None = None
) -> torch.optim.AdamW:
    """AdamW over ``groups`` (each group's ``lr`` is ``lr_scale * lr``).

    The fused implementation is used where torch has it for the parameters' device: on CPU it makes the optimiser
    step ~1.6x faster than the per-tensor loop, which otherwise costs more than the UNet's forward and backward.
    """
    params = [p for g in groups for p in g["params"]]
    if fused is None:
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    torch_groups = [{**{k: v for k, v in g.items() if k != "names"}, "lr": lr * g["lr_scale"]} for g in groups]
    return torch.optim.AdamW(torch_groups, lr=lr, betas=betas, fused=fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
