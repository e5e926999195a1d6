"""Learning-rate schedules as plain functions of the iteration (tested against the published formulas)."""

from __future__ import annotations

import math
from typing import Any


def vpd_depth_lr(step: int, iters_per_epoch: int, epochs: int, max_lr: float, min_lr: float) -> float:
    """The official VPD depth schedule, evaluated at 1-based iteration ``step`` (as the official loop counts).

    Over the first ``N * (epochs // 2)`` iterations (N = iterations per epoch; 12 of 25 epochs officially) the rate
    rises as ``(max - min) * (step / (N * half)) ** 0.9 + min``; afterwards it falls as
    ``max(min, (min - max) * (step / (N * half) - 1) ** 0.9 + max)``, reaching ``min_lr`` one half-period later.
    """
    half = iters_per_epoch * (epochs // 2)
    if half <= 0:
        raise ValueError(f"vpd_depth_lr needs epochs >= 2 and iters_per_epoch >= 1 (got {epochs}, {iters_per_epoch})")
    progress = step / half
    if step < half:
        return (max_lr - min_lr) * progress**0.9 + min_lr
    return max(min_lr, (min_lr - max_lr) * (progress - 1) ** 0.9 + max_lr)


def mmseg_depth_lr(
    step: int,
    base_lr: float = 1e-3,
    warmup_iters: int = 12000,
    poly_end: int = 24000,
    start_factor: float = 3e-2,
    min_ratio: float = 3e-2,
    power: float = 0.9,
) -> float:
    """mmsegmentation's VPD NYU schedule at 0-based iteration ``step`` (``schedule_25k``).

    ``LinearLR`` from ``start_factor * base`` to ``base`` over ``[0, warmup_iters)``, then ``PolyLRRatio`` down to
    ``min_ratio * base`` over ``[warmup_iters, poly_end)``, then ``ConstantLR(factor=1)``, which keeps the rate the
    poly phase ended at: ``min_ratio * base``.
    """
    if step < warmup_iters:
        return base_lr * (start_factor + (1 - start_factor) * step / warmup_iters)
    eta_min = base_lr * min_ratio
    if step < poly_end:
        progress = (step - warmup_iters) / (poly_end - warmup_iters)
        return (base_lr - eta_min) * (1 - progress) ** power + eta_min
    return eta_min


def poly_lr(
    step: int,
    total: int,
    base_lr: float,
    power: float = 1.0,
    min_lr: float = 0.0,
    warmup_iters: int = 0,
    warmup_ratio: float = 1e-6,
) -> float:
    """mmcv's ``PolyLrUpdaterHook`` at 0-based iteration ``step``: ``(base - min) * (1 - step/total) ** power + min``;
    during a linear warm-up (``step < warmup_iters``) that already-decayed value is scaled by
    ``1 - (1 - step / warmup_iters) * (1 - warmup_ratio)``, as mmcv does (so the warm-up ends below ``base_lr``)."""
    regular = (base_lr - min_lr) * max(0.0, 1 - step / total) ** power + min_lr
    if step < warmup_iters:
        return regular * (1 - (1 - step / warmup_iters) * (1 - warmup_ratio))
    return regular


def cosine_lr(step: int, total: int, base_lr: float, warmup_iters: int = 0, min_lr: float = 0.0) -> float:
    """Linear warm-up then cosine decay to ``min_lr``."""
    if step < warmup_iters:
        return base_lr * (step + 1) / warmup_iters
    progress = min(1.0, (step - warmup_iters) / max(1, total - warmup_iters))
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))


def exponential_lr(step: int, base_lr: float, decay_steps: int, final_ratio: float, warmup_iters: int = 0) -> float:
    """Marigold's / GenPercept's ``IterExponential``: linear rise over ``warmup_iters`` (from 0), then
    ``base_lr * final_ratio ** ((step - warmup_iters) / (decay_steps - warmup_iters))``, ``base_lr * final_ratio``
    from ``decay_steps`` on (their recipe: 25000 of a 30000-iteration run, ratio 0.01, 100 warm-up steps)."""
    if step < warmup_iters:
        return base_lr * step / warmup_iters
    if step >= decay_steps:
        return base_lr * final_ratio
    return base_lr * math.exp((step - warmup_iters) / (decay_steps - warmup_iters) * math.log(final_ratio))


def group_lr(optim: Any, step: int, total: int, iters_per_epoch: int, epochs: int, lr_scale: float = 1.0) -> float:
    """The learning rate of a parameter group with multiplier ``lr_scale`` at 0-based step ``step``.

    ``poly`` follows mmcv: each group runs the formula from its own initial rate ``lr * lr_scale`` (bit-exact with
    mmcv's per-group values). The depth schedules scale the base schedule: ``lr_scale * f(lr)``.

    Args:
        optim: an ``OptimConfig``.
        total: steps of the run; iters_per_epoch, epochs: for the official depth schedule.
    """
    o = optim
    if o.schedule == "poly":
        warmup = o.warmup_steps if o.warmup == "linear" else 0
        return poly_lr(step, total, o.lr * lr_scale, o.poly_power, o.min_lr, warmup, o.warmup_ratio)
    if o.schedule == "vpd":
        base = vpd_depth_lr(step + 1, iters_per_epoch, epochs, o.lr, o.min_lr)  # the official loop counts from 1
    elif o.schedule == "mmseg":
        base = mmseg_depth_lr(step, o.lr, o.warmup_steps, o.poly_end_step)
    elif o.schedule == "cosine":
        base = cosine_lr(step, total, o.lr, o.warmup_steps if o.warmup == "linear" else 0, o.min_lr)
    elif o.schedule == "exponential":
        warmup = o.warmup_steps if o.warmup == "linear" else 0
        base = exponential_lr(step, o.lr, o.decay_steps or total, o.final_ratio, warmup)
    else:
        base = o.lr
    return base * lr_scale
