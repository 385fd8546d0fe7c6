"""Rotary embedding of continuous time (seconds) for attention."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["RotaryTimeEmbedding", "TimeGrid", "apply_rotary", "rotate"]


class TimeGrid(NamedTuple):
    """Rotary angles of timestamps (B, N) whose rows are all the same G runs of ``run`` equal times.

    A latent grid is such a set: every window of a batch has its latents at the same times
    (relative to the window start), ``num_latents_per_step`` of them per step. Made by
    :meth:`RotaryTimeEmbedding.grid`; :class:`~torch_brain.nn.RotarySelfAttention` then rotates its
    projection weights once per run time instead of its activations once per token.

    Attributes:
        cos: (G, rotate_dim // 2) cosines of the G run times, in row order.
        sin: (G, rotate_dim // 2) sines.
        run: tokens per run (N = G * run).
        batch: B.
    """

    cos: Tensor
    sin: Tensor
    run: int
    batch: int

    def per_token(self) -> tuple[Tensor, Tensor]:
        """(cos, sin), each (B, N, rotate_dim // 2): what :class:`RotaryTimeEmbedding` gives per token."""
        shape = (self.batch, self.cos.shape[0] * self.run, self.cos.shape[1])
        cos, sin = (a.repeat_interleave(self.run, dim=0).expand(shape) for a in (self.cos, self.sin))
        return cos, sin


class RotaryTimeEmbedding(nn.Module):
    """Angles of a rotary embedding of timestamps.

    The first ``rotate_dim`` features of each head are rotated in ``rotate_dim // 2`` planes; plane
    ``j`` turns with period ``t_min * (t_max / t_min) ** (j / (rotate_dim/2 - 1))`` seconds, so the
    periods are log-spaced between ``t_min`` and ``t_max``. Rotating queries and keys by their own
    times makes the attention score depend on the time difference only.

    Args:
        rotate_dim: number of rotated features (even); the remaining head features are untouched.
        t_min: shortest period in seconds.
        t_max: longest period in seconds.
        periods: the ``rotate_dim // 2`` periods (s) themselves, instead of the log-spaced ones
            (e.g. the exact float32 frequencies of a torch_brain 0.1.x checkpoint).

    Shapes:
        forward: timestamps (B, N) -> (cos, sin), each (B, N, rotate_dim // 2) float32.
    """

    def __init__(self, rotate_dim: int, t_min: float = 1e-4, t_max: float = 4.0,
                 periods: "Sequence[float] | None" = None) -> None:
        super().__init__()
        if rotate_dim < 2 or rotate_dim % 2:
            raise ValueError(f"rotate_dim must be an even int >= 2, but got {rotate_dim!r}.")
        if not 0 < t_min < t_max:
            raise ValueError(f"need 0 < t_min < t_max, but got t_min={t_min!r}, t_max={t_max!r}.")
        half = rotate_dim // 2
        exponent = torch.arange(half, dtype=torch.float64) / max(half - 1, 1)
        if periods is None:
            periods = t_min * (t_max / t_min) ** exponent
        else:
            periods = torch.as_tensor(periods, dtype=torch.float64)
            if periods.shape != (half,) or not bool((periods > 0).all()):
                raise ValueError(
                    f"periods must be {half} positive numbers (one per rotated plane), but got "
                    f"{periods.tolist()!r}."
                )
        self.rotate_dim = rotate_dim
        # float64 angular frequencies, kept out of the buffers so that model.half()/.to(dtype) does
        # not round them; angles are computed in float64 (t * omega reaches ~1e5 rad).
        self._omega = 2 * math.pi / periods
        self._omega_by_device: dict = {}

    @property
    def omega(self) -> Tensor:
        """(rotate_dim // 2,) float64 angular frequencies (rad/s)."""
        return self._omega

    def forward(self, timestamps: Tensor) -> tuple[Tensor, Tensor]:
        omega = self._omega_by_device.get(timestamps.device)
        if omega is None:
            omega = self._omega_by_device.setdefault(timestamps.device, self._omega.to(timestamps.device))
        # angle: [B, N, half] in float64; cos/sin returned in float32
        angle = timestamps.to(torch.float64).unsqueeze(-1) * omega
        return angle.cos().float(), angle.sin().float()

    def grid(self, timestamps: Tensor) -> TimeGrid | None:
        """Angles of a latent grid, or None if ``timestamps`` is not one.

        Args:
            timestamps: (B, N) times in seconds.

        Returns:
            A :class:`TimeGrid` if every row of ``timestamps`` equals the first and the first is
            made of runs of equal times, all as long as its first run; otherwise None. Its angles
            are those :meth:`forward` gives for the same times.
        """
        if timestamps.ndim != 2 or timestamps.shape[0] == 0 or timestamps.shape[1] == 0:
            return None
        row = timestamps[0]
        if not torch.equal(timestamps, row.expand_as(timestamps)):  # also False for NaN
            return None
        changes = torch.nonzero(row != row[0])
        n = row.shape[0]
        run = int(changes[0, 0]) if changes.numel() else n
        if n % run:
            return None
        runs = row.view(n // run, run)
        if not torch.equal(runs, runs[:, :1].expand_as(runs)):
            return None
        cos, sin = self(runs[:, 0])
        return TimeGrid(cos, sin, run, timestamps.shape[0])


def _rotate_out(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotation without autograd; ``cos``/``sin`` broadcast against ``x[..., :half]``."""
    half = cos.shape[-1]
    x1, x2 = x[..., :half], x[..., half : 2 * half]
    out = torch.empty_like(x)  # keeps e.g. the (B, N, H, Dh) layout of SDPA outputs: merging heads is then free
    o1, o2 = out[..., :half], out[..., half : 2 * half]
    torch.mul(x1, cos, out=o1)
    o1.addcmul_(x2, sin, value=-1.0)
    torch.mul(x2, cos, out=o2)
    o2.addcmul_(x1, sin)
    out[..., 2 * half :] = x[..., 2 * half :]
    return out


class _Rotate(torch.autograd.Function):
    """Rotation whose backward is the inverse rotation: saves only the (small) angles."""

    @staticmethod
    def forward(ctx, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        ctx.save_for_backward(cos, sin)
        return _rotate_out(x, cos, sin)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:
        cos, sin = ctx.saved_tensors
        return _rotate_out(grad, cos, -sin), None, None


def rotate(x: Tensor, cos: Tensor, sin: Tensor, inverse: bool = False) -> Tensor:
    """Rotate planes ``(j, j + half)`` of the last dim of ``x``; ``cos``/``sin`` broadcast to ``x[..., :half]``."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    if inverse:
        sin = -sin
    if cos.requires_grad or sin.requires_grad:  # differentiable angles: plain autograd ops
        half = cos.shape[-1]
        x1, x2, rest = x[..., :half], x[..., half : 2 * half], x[..., 2 * half :]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)
    return _Rotate.apply(x, cos, sin)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor, inverse: bool = False) -> Tensor:
    """Rotate the first ``2 * cos.shape[-1]`` features of ``x`` by the given angles.

    Features ``j`` and ``j + half`` form the ``j``-th rotation plane.

    Args:
        x: (B, H, N, Dh) per-head features.
        cos: (B, N, half) cosines of the angles.
        sin: (B, N, half) sines of the angles.
        inverse: rotate by the opposite angles (undo a rotation).

    Returns:
        (B, H, N, Dh) tensor.
    """
    return rotate(x, cos.unsqueeze(1), sin.unsqueeze(1), inverse=inverse)  # angles: [B, 1, N, half]
