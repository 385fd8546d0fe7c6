"""GEGLU feed-forward block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torch_brain.nn.dropout import Dropout

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


class _LinearGEGLU(torch.autograd.Function):
    """``geglu(x @ W.T + b)`` that saves only ``x`` and recomputes the (wide) projection in backward."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight, bias)
        h = F.linear(x, weight, bias)  # [..., 2 * hidden]
        a, gate = h.chunk(2, dim=-1)
        return a * F.gelu(gate)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:
        x, weight, bias = ctx.saved_tensors
        h = F.linear(x, weight, bias)
        a, gate = h.chunk(2, dim=-1)
        grad_h = torch.empty_like(h)
        grad_a, grad_gate = grad_h.chunk(2, dim=-1)
        torch.mul(grad, F.gelu(gate), out=grad_a)
        grad_gate.copy_(torch.ops.aten.gelu_backward(grad * a, gate))
        grad_h2 = grad_h.reshape(-1, grad_h.shape[-1])  # [T, 2 * hidden]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad_h2 @ weight).view(x.shape)
        if ctx.needs_input_grad[1]:
            grad_w = grad_h2.t() @ x.reshape(-1, x.shape[-1])
        if ctx.needs_input_grad[2]:
            grad_b = grad_h2.sum(dim=0)
        return grad_x, grad_w, grad_b


class FeedForward(nn.Module):
    """Pre-norm GEGLU feed-forward: ``W2 · dropout(a * gelu(g))`` with ``[a, g] = W1 · norm(x)``.

    Args:
        dim: input and output size.
        mult: hidden size is ``mult * dim``.
        dropout: dropout on the hidden activations.
        recompute: store only the block's (narrow) input and recompute the ``2 * mult * dim`` wide
            projection in backward: less activation memory, one more matmul.

    Shapes:
        x (..., dim) -> (..., dim). The residual is *not* added.
    """

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0, recompute: bool = False) -> None:
        super().__init__()
        self.recompute = recompute
        self.norm = nn.LayerNorm(dim)
        self.w1 = nn.Linear(dim, 2 * mult * dim)
        self.dropout = Dropout(dropout)
        self.w2 = nn.Linear(mult * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        if self.recompute:  # the wide projection is recomputed in backward instead of being stored
            hidden = _LinearGEGLU.apply(self.norm(x), self.w1.weight, self.w1.bias)
        else:
            hidden = geglu(self.w1(self.norm(x)))
        return self.w2(self.dropout(hidden))
