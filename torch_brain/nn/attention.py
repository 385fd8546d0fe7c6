"""Rotary cross- and self-attention on ``torch.nn.functional.scaled_dot_product_attention``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torch_brain.nn.rotary import TimeGrid, apply_rotary, rotate

__all__ = ["RotaryCrossAttention", "RotarySelfAttention"]

Rotary = tuple[Tensor, Tensor]  # (cos, sin), each (B, N, rotate_dim // 2)


def _split_heads(x: Tensor, heads: int) -> Tensor:
    # [B, N, H*Dh] -> [B, H, N, Dh]
    b, n, _ = x.shape
    return x.view(b, n, heads, -1).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    # [B, H, N, Dh] -> [B, N, H*Dh]
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def _attend(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None, dropout_p: float) -> Tensor:
    """SDPA with a key-padding mask; queries whose keys are all padding get a zero output."""
    if key_mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    if key_mask.dtype != torch.bool:
        raise TypeError(f"key padding mask must be a bool tensor (True = real token), but got {key_mask.dtype}.")
    if key_mask.shape != (k.shape[0], k.shape[2]):
        raise ValueError(
            f"key padding mask must have shape (B, N_keys) = {(k.shape[0], k.shape[2])}, but got "
            f"{tuple(key_mask.shape)}."
        )
    has_key = key_mask.any(dim=1)  # [B]
    all_have = bool(has_key.all())
    if not all_have:  # avoid NaN from an all -inf row; those outputs are zeroed below
        key_mask = key_mask | ~has_key[:, None]
    # attn_mask: [B, 1, 1, Nk], True = take part
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :], dropout_p=dropout_p)
    if not all_have:
        out = out * has_key[:, None, None, None].to(out.dtype)
    return out


class RotaryCrossAttention(nn.Module):
    """Pre-norm multi-head cross-attention with rotary time embeddings.

    Queries come from ``x``, keys/values from ``context``. Queries and keys are rotated by their
    timestamps; with ``rotate_value=True`` values are rotated by the key times and the output
    rotated back by the query times, so what is read is expressed relative to the query time.

    Args:
        dim: feature size of ``x`` (and of the output).
        context_dim: feature size of ``context`` (default ``dim``).
        heads: number of heads.
        dim_head: features per head.
        dropout: attention dropout probability (training only).
        rotate_value: rotate values and un-rotate outputs (see above).

    Shapes:
        x (B, Nq, dim), context (B, Nk, context_dim), x_rotary/context_rotary: (cos, sin) from
        :class:`~torch_brain.nn.RotaryTimeEmbedding` for Nq/Nk timestamps, context_mask (B, Nk) bool
        (True = real token) -> (B, Nq, dim). The residual is *not* added.
    """

    def __init__(self, *, dim: int, context_dim: int | None = None, heads: int = 1, dim_head: int = 64,
                 dropout: float = 0.0, rotate_value: bool = False) -> None:
        super().__init__()
        context_dim = dim if context_dim is None else context_dim
        inner = heads * dim_head
        self.heads = heads
        self.dropout = dropout
        self.rotate_value = rotate_value
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: Tensor, context: Tensor, x_rotary: Rotary, context_rotary: Rotary,
                context_mask: Tensor | None = None, context_index: Tensor | None = None) -> Tensor:
        """Attend from ``x`` to ``context``.

        Args:
            x: (B, Nq, dim) queries.
            context: (B, Nk, context_dim) keys/values, or, with ``context_index``, a table
                (U, context_dim) of distinct context rows.
            x_rotary: (cos, sin) of the query times.
            context_rotary: (cos, sin) of the key times, (B, Nk, rotate_dim // 2) each.
            context_mask: (B, Nk) bool, True for real keys.
            context_index: (B, Nk) int64 rows of ``context`` (the table) forming the keys. Norm and
                key/value projections are per-row, so running them once per distinct row and
                gathering is exact and much cheaper when tokens repeat (spikes of the same unit).

        Returns:
            (B, Nq, dim).
        """
        q = _split_heads(self.to_q(self.norm(x)), self.heads)  # [B, H, Nq, Dh]
        kv = self.to_kv(self.norm_context(context))
        if context_index is not None:
            kv = F.embedding(context_index, kv)  # [B, Nk, 2*H*Dh]
        b, nk, _ = kv.shape
        kv = kv.view(b, nk, 2 * self.heads, -1)  # [B, Nk, 2H, Dh]: keys then values
        cos, sin = context_rotary
        if self.rotate_value:
            kv = _rotate_grouped(kv, cos, sin)
            k, v = kv[:, :, : self.heads], kv[:, :, self.heads :]
        else:
            k, v = _rotate_grouped(kv[:, :, : self.heads], cos, sin), kv[:, :, self.heads :]
        k, v = k.transpose(1, 2), v.transpose(1, 2)  # [B, H, Nk, Dh]
        q = apply_rotary(q, *x_rotary)
        out = _attend(q, k, v, context_mask, self.dropout if self.training else 0.0)  # [B, H, Nq, Dh]
        if self.rotate_value:
            out = apply_rotary(out, *x_rotary, inverse=True)
        return self.to_out(_merge_heads(out))


def _rotate_grouped(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary on (B, N, G, Dh) features with (B, N, half) angles (same planes as apply_rotary)."""
    return rotate(x, cos.unsqueeze(2), sin.unsqueeze(2))  # angles: [B, N, 1, half]


class RotarySelfAttention(nn.Module):
    """Pre-norm multi-head self-attention with rotary time embeddings.

    Args:
        dim: feature size.
        heads: number of heads.
        dim_head: features per head.
        dropout: attention dropout probability (training only).
        rotate_value: rotate values by key times and outputs back by query times.

    Shapes:
        x (B, N, dim), x_rotary: (cos, sin) for the N timestamps, or a
        :class:`~torch_brain.nn.TimeGrid` for them; x_mask (B, N) bool or None -> (B, N, dim).
        The residual is *not* added.

    With a :class:`~torch_brain.nn.TimeGrid` (a latent grid: G distinct times), the rotations are
    applied to the projection weights once per time (``R(t) W``, and ``W_out R(-t)`` for the
    outputs) instead of to the activations once per token; tokens are grouped by time for the
    projections. The result is the same up to float rounding, and cheaper when G * dim is small
    against B * N (otherwise the grid is expanded to per-token angles).
    """

    def __init__(self, *, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0,
                 rotate_value: bool = True) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.dropout = dropout
        self.rotate_value = rotate_value
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: Tensor, x_rotary: Rotary | TimeGrid, x_mask: Tensor | None = None) -> Tensor:
        b, n, dim = x.shape
        if isinstance(x_rotary, TimeGrid):
            g = x_rotary.cos.shape[0]
            if (x_rotary.batch, g * x_rotary.run) != (b, n):
                raise ValueError(
                    f"x_rotary is a TimeGrid for (B, N) = {(x_rotary.batch, g * x_rotary.run)} timestamps, "
                    f"but x is {tuple(x.shape)}; make the grid from the timestamps of x."
                )
            # weights rotated per time (G x 3*inner x dim values) against activations per token
            if 4 * g * dim <= b * n:
                return self._forward_grid(x, x_rotary, x_mask)
            x_rotary = x_rotary.per_token()
        qkv = self.to_qkv(self.norm(x)).view(b, n, 3 * self.heads, -1)  # [B, N, 3H, Dh]
        cos, sin = x_rotary
        # rotate queries and keys (and values) in one pass over the fused projection
        if self.rotate_value:
            qkv = _rotate_grouped(qkv, cos, sin)
            q, k, v = qkv.split(self.heads, dim=2)
        else:
            qk = _rotate_grouped(qkv[:, :, : 2 * self.heads], cos, sin)
            (q, k), v = qk.split(self.heads, dim=2), qkv[:, :, 2 * self.heads :]
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, N, Dh]
        out = _attend(q, k, v, x_mask, self.dropout if self.training else 0.0)
        if self.rotate_value:
            out = apply_rotary(out, *x_rotary, inverse=True)
        return self.to_out(_merge_heads(out))

    def _forward_grid(self, x: Tensor, grid: TimeGrid, x_mask: Tensor | None) -> Tensor:
        """:meth:`forward` with the rotations folded into per-time weights (see the class doc)."""
        b, n, dim = x.shape
        g, run, h = grid.cos.shape[0], grid.run, self.heads
        w = self.to_qkv.weight.view(3 * h, -1, dim)  # [3H, Dh, dim]: rows are output features
        dh = w.shape[1]
        if self.rotate_value:
            w = _rotate_rows(w, grid.cos, grid.sin)  # [G, 3H, Dh, dim]
        else:
            w = torch.cat([_rotate_rows(w[: 2 * h], grid.cos, grid.sin), w[2 * h :].expand(g, h, dh, dim)], dim=1)
        qkv = torch.bmm(_by_time(self.norm(x), g, run), w.reshape(g, 3 * h * dh, dim).transpose(1, 2))
        qkv = _from_time(qkv, b, run).view(b, n, 3 * h, dh)
        q, k, v = qkv.split(h, dim=2)
        out = _merge_heads(_attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), x_mask,
                                   self.dropout if self.training else 0.0))  # [B, N, H*Dh]
        if not self.rotate_value:
            return self.to_out(out)
        # to_out(R(-t) o) = o @ (R(t) W_out^T): rows of W_out^T (input features) rotated by +t
        w_out = _rotate_rows(self.to_out.weight.t().view(h, dh, dim), grid.cos, grid.sin)  # [G, H, Dh, dim]
        y = torch.bmm(_by_time(out, g, run), w_out.reshape(g, h * dh, dim))
        return _from_time(y, b, run) + self.to_out.bias


def _rotate_rows(w: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate rows (j, j + half) of ``w`` (..., Dh, X) by each of G angles: (G, half) -> (G, ..., Dh, X).

    The rotation is :func:`~torch_brain.nn.rotate` (same planes and sign) applied along Dh.
    """
    g, half = cos.shape
    wt = w.transpose(-1, -2)  # [..., X, Dh]
    angles = (g,) + (1,) * (wt.dim() - 1) + (half,)
    return rotate(wt.expand(g, *wt.shape), cos.view(angles), sin.view(angles)).transpose(-1, -2)


def _by_time(x: Tensor, g: int, run: int) -> Tensor:
    """(B, G*run, F) -> (G, B*run, F): the tokens of each time together."""
    b, _, f = x.shape
    return x.reshape(b, g, run, f).transpose(0, 1).reshape(g, b * run, f)


def _from_time(y: Tensor, b: int, run: int) -> Tensor:
    """Inverse of :func:`_by_time`: (G, B*run, F) -> (B, G*run, F)."""
    g, _, f = y.shape
    return y.view(g, b, run, f).transpose(0, 1).reshape(b, g * run, f)
