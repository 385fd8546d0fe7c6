"""Dropout with a cheap random mask on CPU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Dropout"]

# the keep/drop decision compares a 15-bit uniform integer with round(p * 2**15)
_LEVELS = 1 << 15


def _drop_threshold(p: float) -> int:
    return int(round(p * _LEVELS))


def _keep_mask(shape: torch.Size, p: float, device: torch.device) -> Tensor:
    """Bool mask of ``shape``, each element True with probability ``1 - round(p * 2**15) / 2**15``.

    ``torch.bernoulli`` draws one double per element; here one 32-bit draw of torch's default
    generator (so ``torch.manual_seed`` governs it) gives two 15-bit uniforms: about 4x cheaper.
    """
    n = shape.numel()
    words = torch.empty((n + 1) // 2, dtype=torch.int32, device=device).random_()  # 31 uniform bits
    uniform = words.view(torch.int16)[:n].bitwise_and_(_LEVELS - 1)  # 0 .. 2**15 - 1 (low and high halves)
    return (uniform >= _drop_threshold(p)).view(shape)


class _MaskedScale(torch.autograd.Function):
    """``x * keep * scale``; saves the bool mask only (1 byte per element)."""

    @staticmethod
    def forward(ctx, x: Tensor, keep: Tensor, scale: float) -> Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.mul(x, keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:
        (keep,) = ctx.saved_tensors
        return torch.mul(grad, keep).mul_(ctx.scale), None, None


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Inverted dropout: zero each element with probability ``p``, scale the rest by ``1 / (1 - p)``.

    On CPU the mask comes from 15-bit uniforms, so the drop probability is ``p`` rounded to a
    multiple of ``2**-15`` (within 1.6e-5 of ``p``) and the scale uses that probability (the
    output stays unbiased). Elsewhere, and for ``p`` in {0, 1}, this is ``F.dropout``.
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0 or not x.is_floating_point():
        return F.dropout(x, p, training=True)
    p_used = _drop_threshold(p) / _LEVELS
    if p_used == 0.0:
        return x
    return _MaskedScale.apply(x, _keep_mask(x.shape, p, x.device), 1.0 / (1.0 - p_used))


class Dropout(nn.Module):
    """Drop-in for :class:`torch.nn.Dropout` with a ~4x cheaper mask on CPU (see :func:`dropout`).

    Args:
        p: drop probability, in [0, 1].

    Shapes:
        x (...) -> (...).
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: `p` must be in [0, 1], got {p!r}.")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
