"""Training losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def dice_loss(probability: torch.Tensor, mask: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss, averaged over the batch: per sample ``1 - (2 * sum(p * m) + s) / (sum(p) + sum(m) + s)``.

    It scores each sample's mask as a whole, whatever its size, so a small object weighs as much as a large one
    (a pixel-mean cross-entropy barely sees a target of a few percent of the image).

    Args:
        probability: ``[B, ...]`` foreground probability in [0, 1].
        mask: same shape, 0/1 (or bool) ground truth.
        smooth: ``s``, keeps an empty mask and an empty prediction at loss 0.
    """
    if probability.shape != mask.shape:
        raise ValueError(f"dice_loss: probability {tuple(probability.shape)} and mask {tuple(mask.shape)} differ")
    p, m = probability.float().flatten(1), mask.float().flatten(1)
    return (1.0 - (2.0 * (p * m).sum(1) + smooth) / (p.sum(1) + m.sum(1) + smooth)).mean()


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    count = mask.sum()
    return (values * mask).sum() / count.clamp_min(1) if count > 0 else values.sum() * 0.0


def normalize_depth(depth: torch.Tensor, valid: torch.Tensor, low: float = 0.02, high: float = 0.98) -> torch.Tensor:
    """Marigold's / GenPercept's affine-invariant training target: per image, the ``low`` and ``high`` quantiles of
    the valid depths map to -1 and 1 (clipped to [-1, 1]). ``[B, 1, H, W]``; invalid pixels are 0."""
    out = torch.zeros_like(depth)
    for i in range(depth.shape[0]):
        values = depth[i][valid[i]]
        if values.numel() < 2:
            continue
        lo, hi = torch.quantile(values.float(), torch.tensor([low, high], device=depth.device)).to(depth.dtype)
        scaled = (depth[i] - lo) / (hi - lo).clamp_min(1e-6) * 2 - 1
        out[i] = torch.where(valid[i], scaled.clamp(-1, 1), torch.zeros_like(scaled))
    return out


def align_least_squares(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``s * pred + t`` with per-image ``(s, t)`` minimising the squared error to ``target`` over ``valid``
    (closed form, differentiable). ``[B, 1, H, W]``."""
    m = valid.to(pred.dtype)
    n = m.sum(dim=(1, 2, 3)).clamp_min(1)
    sp, st = (pred * m).sum(dim=(1, 2, 3)), (target * m).sum(dim=(1, 2, 3))
    spp, spt = (pred * pred * m).sum(dim=(1, 2, 3)), (pred * target * m).sum(dim=(1, 2, 3))
    det = n * spp - sp * sp
    ok = det.abs() > 1e-12
    scale = torch.where(ok, (n * spt - sp * st) / torch.where(ok, det, torch.ones_like(det)), torch.ones_like(det))
    shift = (st - scale * sp) / n
    return scale.view(-1, 1, 1, 1) * pred + shift.view(-1, 1, 1, 1)


def gradient_matching_loss(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, scales: int = 4
) -> torch.Tensor:
    """MiDaS' multi-scale gradient matching: the mean absolute x / y gradient of the residual ``pred - target`` over
    pixel pairs that are both valid, at ``scales`` resolutions (every 2^k-th pixel), summed over scales."""
    total = pred.sum() * 0.0
    residual = (pred - target) * valid
    for k in range(scales):
        step = 2**k
        r, m = residual[..., ::step, ::step], valid[..., ::step, ::step].to(pred.dtype)
        gx = (r[..., :, 1:] - r[..., :, :-1]).abs() * (m[..., :, 1:] * m[..., :, :-1])
        gy = (r[..., 1:, :] - r[..., :-1, :]).abs() * (m[..., 1:, :] * m[..., :-1, :])
        count = m.sum().clamp_min(1)
        total = total + (gx.sum() + gy.sum()) / count
    return total


def affine_depth_loss(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, *, ssi_weight: float = 0.5, grad_weight: float = 2.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """GenPercept's depth loss on normalised maps: ``MSE + ssi_weight * MSE after least-squares scale and shift +
    grad_weight * multi-scale gradient matching`` (of the aligned prediction), over ``valid`` pixels."""
    mse = _masked_mean((pred - target) ** 2, valid)
    aligned = align_least_squares(pred, target, valid)
    ssi = _masked_mean((aligned - target) ** 2, valid)
    grad = gradient_matching_loss(aligned, target, valid)
    loss = mse + ssi_weight * ssi + grad_weight * grad
    return loss, {"mse": float(mse.detach()), "ssi": float(ssi.detach()), "grad": float(grad.detach())}


def angular_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean angle (radians) between predicted and true normals ``[B, 3, H, W]`` over ``valid`` ``[B, 1, H, W]``
    pixels; the prediction is normalised first, the cosine clamped away from +-1 (finite gradients)."""
    cosine = F.cosine_similarity(pred, target, dim=1, eps=1e-6).unsqueeze(1)
    angle = torch.acos(cosine.clamp(-1 + 1e-6, 1 - 1e-6))
    return _masked_mean(angle, valid)
