"""Learning-rate schedules as plain functions of the iteration (tested against the published formulas)."""

from __future__ import annotations

import math


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
    warmup_iters: int = 0,
    warmup_ratio: float = 1e-6,
    power: float = 1.0,
    min_lr: float = 0.0,
) -> float:
    """Linear warm-up from ``warmup_ratio * base`` then polynomial decay ``(1 - step/total) ** power`` to ``min_lr``."""
    if step < warmup_iters:
        return base_lr * (warmup_ratio + (1 - warmup_ratio) * step / warmup_iters)
    return (base_lr - min_lr) * max(0.0, 1 - step / total) ** power + min_lr


def cosine_lr(step: int, total: int, base_lr: float, warmup_iters: int = 0, min_lr: float = 0.0) -> float:
    """Linear warm-up then cosine decay to ``min_lr``."""
    if step < warmup_iters:
        return base_lr * (step + 1) / warmup_iters
    progress = min(1.0, (step - warmup_iters) / max(1, total - warmup_iters))
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))
