"""``RandomTimeScaling``: stretch or compress time by a random factor."""

from __future__ import annotations

import math

from torch_brain.data import Data

from ._random import _check_seed, _RandomMixin
from ._times import _domain_bounds, _scale_times

__all__ = ["RandomTimeScaling"]


class RandomTimeScaling(_RandomMixin):
    """Multiply every time of the window by a factor drawn uniformly from ``[min_scale, max_scale]``.

    Spike and behaviour timestamps, interval bounds and domains are scaled about the window's time
    origin (its start, since window times are relative); regular series get
    ``sampling_rate / factor``. Values (e.g. velocities) are unchanged. ``absolute_start`` is kept,
    so stitching still places the window's start correctly.

    Args:
        min_scale: smallest factor (> 0).
        max_scale: largest factor (>= min_scale).
        seed: int seed; None draws one from torch's global RNG.
    """

    def __init__(self, min_scale: float = 0.9, max_scale: float = 1.1, seed: int | None = None) -> None:
        who = "RandomTimeScaling"
        try:
            lo, hi = float(min_scale), float(max_scale)
        except (TypeError, ValueError):
            raise TypeError(f"{who}: min_scale and max_scale must be numbers, got {min_scale!r}, {max_scale!r}.") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
            raise ValueError(
                f"{who}: expected 0 < min_scale <= max_scale, got min_scale={min_scale}, max_scale={max_scale}."
            )
        self.min_scale, self.max_scale = lo, hi
        self._seed = _check_seed(seed, who)

    def __call__(self, data: Data) -> Data:
        _domain_bounds(data, "RandomTimeScaling")
        factor = float(self._rng().uniform(self.min_scale, self.max_scale))
        return _scale_times(data, factor)

    def __repr__(self) -> str:
        return f"RandomTimeScaling(min_scale={self.min_scale}, max_scale={self.max_scale})"
