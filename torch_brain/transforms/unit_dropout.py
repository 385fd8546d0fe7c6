"""``UnitDropout``: train on a random subset of units each window."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from torch_brain.data import Data

from ._random import _check_seed, _RandomMixin
from ._units import _fields, _n_units, _select_units

__all__ = ["UnitDropout"]


class UnitDropout(_RandomMixin):
    """Keep a random subset of the window's units; spikes of the others are removed.

    The number of units kept, ``k``, is drawn from a triangular distribution on
    ``[min_units, max_units]`` with its peak at ``mode_units``, redrawn while ``k`` exceeds the
    number of units ``n`` of the window (after ``max_attempts`` draws, ``k = n``). The ``k`` units
    are chosen uniformly without replacement. Windows with ``n <= min_units`` are returned as is.

    With ``reset_index=True`` (default) the ``units`` table keeps only the chosen units (in their
    original order) and ``spikes.unit_index`` is renumbered to match it; with False the table is
    unchanged and only the spikes of dropped units are removed.

    Args:
        min_units: never keep fewer units than this.
        mode_units: most likely number of kept units.
        max_units: upper end of the distribution of kept units.
        field: unit-indexed series (or list of them) to filter; default ``"spikes"``.
        reset_index: renumber units (see above).
        max_attempts: draws before falling back to keeping every unit.
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
        max_attempts: int = 100,
        seed: int | None = None,
    ) -> None:
        who = "UnitDropout"
        for name, v in (("min_units", min_units), ("mode_units", mode_units), ("max_units", max_units)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise TypeError(f"{who}: {name} must be a non-negative int, got {v!r}.")
        if not min_units <= mode_units <= max_units or min_units == max_units:
            raise ValueError(
                f"{who}: expected min_units <= mode_units <= max_units with min_units < max_units, got "
                f"min_units={min_units}, mode_units={mode_units}, max_units={max_units}."
            )
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, (int, np.integer)) or max_attempts < 1:
            raise ValueError(f"{who}: max_attempts must be an int >= 1, got {max_attempts!r}.")
        self.min_units = int(min_units)
        self.mode_units = int(mode_units)
        self.max_units = int(max_units)
        self.fields = _fields(field, who)
        self.reset_index = bool(reset_index)
        self.max_attempts = int(max_attempts)
        self._seed = _check_seed(seed, who)

    def sample_num_units(self, n_units: int) -> int:
        """Draw how many of ``n_units`` units to keep."""
        if n_units <= self.min_units:
            return n_units
        rng = self._rng()
        left = self.max_attempts
        while left > 0:
            draws = np.rint(rng.triangular(self.min_units, self.mode_units, self.max_units, size=min(left, 8)))
            ok = np.flatnonzero((draws >= self.min_units) & (draws <= n_units))
            if ok.size:
                return int(draws[ok[0]])
            left -= draws.size
        return n_units

    def __call__(self, data: Data) -> Data:
        n = _n_units(data, "UnitDropout")
        k = self.sample_num_units(n)
        if k >= n:
            return data
        keep = np.zeros(n, dtype=bool)
        keep[self._rng().choice(n, size=k, replace=False)] = True
        return _select_units(data, keep, self.fields, self.reset_index, "UnitDropout")

    def __repr__(self) -> str:
        return (
            f"UnitDropout(min_units={self.min_units}, mode_units={self.mode_units}, "
            f"max_units={self.max_units}, field={self.fields}, reset_index={self.reset_index})"
        )
