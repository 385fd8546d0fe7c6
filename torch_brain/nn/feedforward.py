"""GEGLU feed-forward block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FeedForward", "geglu"]


class _GEGLU(torch.autograd.Function):
    """``a * gelu(g)`` for ``[a, g] = h.chunk(2, -1)``; saves only ``h`` and recomputes gelu."""

    @staticmethod
    def forward(ctx, h: Tensor) -> Tensor:
        a, gate = h.chunk(2, dim=-1)
        ctx.save_for_backward(h)
        return a * F.gelu(gate)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (h,) = ctx.saved_tensors
        a, gate = h.chunk(2, dim=-1)
        grad_h = torch.empty_like(h)
        grad_a, grad_gate = grad_h.chunk(2, dim=-1)
        torch.mul(grad, F.gelu(gate), out=grad_a)
        grad_gate.copy_(torch.ops.aten.gelu_backward(grad * a, gate))
        return grad_h


def geglu(h: Tensor) -> Tensor:
    """GEGLU activation: (..., 2 * n) -> (..., n), ``a * gelu(g)`` with ``a, g = h.chunk(2, -1)``."""
    return _GEGLU.apply(h)


class FeedForward(nn.Module):
    """Pre-norm GEGLU feed-forward: ``W2 · dropout(a * gelu(g))`` with ``[a, g] = W1 · norm(x)``.

    Args:
        dim: input and output size.
        mult: hidden size is ``mult * dim``.
        dropout: dropout on the hidden activations.

    Shapes:
        x (..., dim) -> (..., dim). The residual is *not* added.
    """

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.w1 = nn.Linear(dim, 2 * mult * dim)
        self.dropout = nn.Dropout(dropout)
        self.w2 = nn.Linear(mult * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(self.dropout(geglu(self.w1(self.norm(x)))))
