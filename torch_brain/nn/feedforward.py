"""GEGLU feed-forward block."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FeedForward"]


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
        a, gate = self.w1(self.norm(x)).chunk(2, dim=-1)
        return self.w2(self.dropout(a * F.gelu(gate)))
