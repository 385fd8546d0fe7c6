"""Per-sample weighted losses used by the readout specs.

Every loss is called as ``loss_fn(pred, target, weights=None)`` and returns a scalar: the mean of
the per-sample losses weighted by ``weights`` (``sum(w * l) / sum(w)``). A sample's loss is the
mean over its output dimensions (MSE, BCE) or the cross-entropy of its class logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "MSELoss", "weighted_mean"]

_HALF = (torch.float16, torch.bfloat16)


def _loss_dtype(x: Tensor) -> Tensor:
    """``x`` in float32 when it is float16/bfloat16 (mixed precision outputs), else unchanged.

    Losses are computed in float32 under ``bf16-mixed``/``16-mixed``: a bfloat16 target keeps 8
    significant bits (a 0.4% error on every target) and bfloat16 sums over a batch lose more.
    """
    return x.float() if x.dtype in _HALF else x


def weighted_mean(per_sample: Tensor, weights: Tensor | None) -> Tensor:
    """Weighted mean of per-sample losses.

    Args:
        per_sample: (N,) loss of each sample.
        weights: (N,) non-negative weights, or None for a plain mean.

    Returns:
        Scalar tensor. When all weights are zero (or N == 0) the result is 0 and still carries a
        gradient path, so a batch with nothing to learn from does not produce NaN.
    """
    if weights is None:
        if per_sample.numel() == 0:
            return per_sample.sum()
        return per_sample.mean()
    weights = torch.as_tensor(weights, device=per_sample.device)
    if weights.shape != per_sample.shape:
        raise ValueError(
            f"weights must have one value per sample, shape {tuple(per_sample.shape)}, "
            f"but got shape {tuple(weights.shape)}; pass the chained target_weights of this task."
        )
    weights = weights.to(per_sample.dtype)
    total = weights.sum()
    weighted = (per_sample * weights).sum()
    # no host sync (this runs every step on GPU): divide by 1 where all weights are zero
    return torch.where(total > 0, weighted / total.clamp_min(torch.finfo(total.dtype).tiny), weighted * 0.0)


def _check_batch(name: str, pred: Tensor, target: Tensor) -> None:
    if pred.shape[0] != target.shape[0]:
        raise ValueError(
            f"{name}: pred and target must have the same number of samples, but got pred shape "
            f"{tuple(pred.shape)} and target shape {tuple(target.shape)}."
        )


def _target_like(pred: Tensor, target: Tensor, name: str) -> Tensor:
    """``target`` as a tensor of ``pred``'s shape (reshaped when only the layout differs, e.g. (N,)
    for (N, 1)); raises ValueError naming the loss when the sizes differ."""
    target = torch.as_tensor(target, device=pred.device)
    if target.shape != pred.shape and target.numel() == pred.numel():
        target = target.reshape(pred.shape)
    if target.shape != pred.shape:
        raise ValueError(
            f"{name}: pred and target must have the same shape, but got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}; check the readout spec's dim."
        )
    return target


class MSELoss(nn.Module):
    """Mean squared error, averaged over output dims, weighted mean over samples.

    Shapes: pred (N, D) or (N,), target same shape as pred, weights (N,).
    """

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
        pred = _loss_dtype(pred)
        target = _target_like(pred, target, "MSELoss")
        err = (pred - target.to(pred.dtype)) ** 2  # (N, D)
        per_sample = err.reshape(err.shape[0], -1).mean(dim=1) if err.ndim > 1 else err
        return weighted_mean(per_sample, weights)


class CrossEntropyLoss(nn.Module):
    """Cross-entropy on class logits, weighted mean over samples.

    Shapes: pred (N, C) logits, target (N,) integer class indices in [0, C), weights (N,).
    """

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
        target = torch.as_tensor(target, device=pred.device)
        if target.ndim == 2 and target.shape[1] == 1:
            target = target[:, 0]
        if pred.ndim != 2 or target.ndim != 1:
            raise ValueError(
                f"CrossEntropyLoss: expected pred (N, C) logits and target (N,) class indices, but got "
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)}."
            )
        _check_batch("CrossEntropyLoss", pred, target)
        if target.is_floating_point() or target.dtype == torch.bool:
            raise TypeError(
                f"CrossEntropyLoss: target must hold integer class indices, but got dtype {target.dtype}; "
                "store categorical values as int64 labels 0..C-1."
            )
        per_sample = F.cross_entropy(_loss_dtype(pred), target.long(), reduction="none")
        return weighted_mean(per_sample, weights)


class BCEWithLogitsLoss(nn.Module):
    """Binary cross-entropy on logits, averaged over labels, weighted mean over samples.

    Shapes: pred (N, D) logits, target (N, D) (or (N,) when D == 1) in {0, 1}, weights (N,).
    """

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
        pred = _loss_dtype(pred)
        target = _target_like(pred, target, "BCEWithLogitsLoss")
        loss = F.binary_cross_entropy_with_logits(pred, target.to(pred.dtype), reduction="none")
        per_sample = loss.reshape(loss.shape[0], -1).mean(dim=1) if loss.ndim > 1 else loss
        return weighted_mean(per_sample, weights)
