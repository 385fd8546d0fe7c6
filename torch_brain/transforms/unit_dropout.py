"""``UnitDropout``: train on a random subset of units each window."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from torch_brain.data import Data

from ._random import _check_seed, _RandomMixin
from ._units import _fields, _n_units, _select_units

__all__ = ["UnitDropout"]


class UnitDropout(_RandomMixin):
    """Keep a random subset of the window's units; spikes of the others are removed.

    The number of units kept, ``k``, is a triangular random variable on ``[min_units, max_units]``
    with its peak at ``mode_units``, rounded to an integer and conditioned on ``k <= n``, the
    number of units of the window (as if redrawn until it fits; sampled directly by inverting the
    truncated CDF). The ``k`` units are chosen uniformly without replacement. Windows with
    ``n <= min_units`` are returned as is.

    With ``reset_index=True`` (default) the ``units`` table keeps only the chosen units (in their
    original order) and ``spikes.unit_index`` is renumbered to match it; with False the table is
    unchanged and only the spikes of dropped units are removed.

    Args:
        min_units: never keep fewer units than this.
        mode_units: most likely number of kept units.
        max_units: upper end of the distribution of kept units.
        field: unit-indexed series (or list of them) to filter; default ``"spikes"``.
        reset_index: renumber units (see above).
        seed: int seed; None draws one from torch's global RNG.

    Example:
        >>> dropout = UnitDropout(min_units=20, mode_units=100, max_units=300, seed=0)
        >>> window = dropout(window)  # fewer units, spikes re-indexed
    """

    def __init__(
        self,
        min_units: int = 20,
        mode_units: int = 100,
        max_units: int = 300,
        field: str | Sequence[str] = "spikes",
        reset_index: bool = True,
        seed: int | None = None,
    ) -> None:
        who = "UnitDropout"
        for name, v in (("min_units", min_units), ("mode_units", mode_units), ("max_units", max_units)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{who}: {name} must be a non-negative int, got {v!r}.")
            if v < 0:
                raise ValueError(f"{who}: {name} must be a non-negative int, got {v!r}.")
        if not min_units <= mode_units <= max_units or min_units == max_units:
            raise ValueError(
                f"{who}: expected min_units <= mode_units <= max_units with min_units < max_units, got "
                f"min_units={min_units}, mode_units={mode_units}, max_units={max_units}."
            )
        self.min_units = int(min_units)
        self.mode_units = int(mode_units)
        self.max_units = int(max_units)
        self.fields = _fields(field, who)
        self.reset_index = bool(reset_index)
        self._seed = _check_seed(seed, who)

    def _cdf(self, x: float) -> float:
        a, c, b = self.min_units, self.mode_units, self.max_units
        if x <= a:
            return 0.0
        if x >= b:
            return 1.0
        if x <= c:
            return (x - a) ** 2 / ((b - a) * (c - a))
        return 1.0 - (b - x) ** 2 / ((b - a) * (b - c))

    def sample_num_units(self, n_units: int) -> int:
        """Draw how many of ``n_units`` units to keep."""
        if n_units <= self.min_units:
            return n_units
        a, c, b = self.min_units, self.mode_units, self.max_units
        # u uniform below F(n + 0.5): the rounded draw is <= n (truncation without rejection)
        u = self._rng().random() * self._cdf(n_units + 0.5)
        if u < (c - a) / (b - a):
            x = a + math.sqrt(u * (b - a) * (c - a))
        else:
            x = b - math.sqrt((1.0 - u) * (b - a) * (b - c))
        return min(max(int(round(x)), a), n_units)

    def __call__(self, data: Data) -> Data:
        n = _n_units(data, "UnitDropout")
        k = self.sample_num_units(n)
        if k >= n:
            return data
        keep = np.zeros(n, dtype=bool)
        keep[self._rng().permutation(n)[:k]] = True
        return _select_units(data, keep, self.fields, self.reset_index, "UnitDropout")

    def __repr__(self) -> str:
        return (
            f"UnitDropout(min_units={self.min_units}, mode_units={self.mode_units}, "
            f"max_units={self.max_units}, field={self.fields}, reset_index={self.reset_index})"
        )
