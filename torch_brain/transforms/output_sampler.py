"""``OutputSampler``: subsample the behaviour samples a window is trained on."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from torch_brain.data import Data, IrregularTimeSeries, RegularTimeSeries

from ._copy import _shallow_copy
from ._random import _check_seed, _RandomMixin

__all__ = ["OutputSampler"]


class OutputSampler(_RandomMixin):
    """Keep a random subset of the rows of behaviour series (fewer output queries per window).

    Rows are chosen uniformly without replacement and kept in time order. A regular series becomes
    an :class:`~torch_brain.data.IrregularTimeSeries` (its samples are no longer evenly spaced).

    Args:
        fields: names of time series in the window (e.g. ``"cursor"`` or ``["cursor", "hand"]``);
            dotted paths into nested Data are allowed (``"behaviour.cursor"``).
        max_samples: keep at most this many rows of each series.
        fraction: or keep ``ceil(fraction * n)`` rows (0 < fraction <= 1). Give exactly one.
        seed: int seed; None draws one from torch's global RNG.
    """

    def __init__(
        self,
        fields: str | Sequence[str],
        max_samples: int | None = None,
        fraction: float | None = None,
        seed: int | None = None,
    ) -> None:
        who = "OutputSampler"
        self.fields = [fields] if isinstance(fields, str) else list(fields)
        if not self.fields or not all(isinstance(f, str) and f for f in self.fields):
            raise ValueError(f"{who}: fields must be a non-empty name or list of names, got {fields!r}.")
        if (max_samples is None) == (fraction is None):
            raise ValueError(
                f"{who}: give exactly one of max_samples or fraction, got max_samples={max_samples!r}, "
                f"fraction={fraction!r}."
            )
        if max_samples is not None and (
            isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) or max_samples < 1
        ):
            raise ValueError(f"{who}: max_samples must be an int >= 1, got {max_samples!r}.")
        if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
            raise ValueError(f"{who}: fraction must be in (0, 1], got {fraction!r}.")
        self.max_samples = None if max_samples is None else int(max_samples)
        self.fraction = None if fraction is None else float(fraction)
        self._seed = _check_seed(seed, who)

    def _subsample(self, series: object, path: str) -> IrregularTimeSeries:
        if isinstance(series, RegularTimeSeries):
            series = series.to_irregular()
        if not isinstance(series, IrregularTimeSeries):
            raise TypeError(
                f"OutputSampler: field {path!r} must be a time series, got {type(series).__name__}."
            )
        n = len(series)
        k = self.max_samples if self.max_samples is not None else math.ceil(self.fraction * n)
        if k >= n:
            return series
        rows = np.sort(self._rng().choice(n, size=k, replace=False))
        return series[rows]

    def __call__(self, data: Data) -> Data:
        if not isinstance(data, Data):
            raise TypeError(f"OutputSampler: expected a torch_brain.data.Data window, got {type(data).__name__}.")
        out = _shallow_copy(data)
        for path in self.fields:
            parts = path.split(".")
            # copy every Data on the way so the input window is not modified
            parent = out
            for part in parts[:-1]:
                if not isinstance(parent, Data) or part not in parent.keys():
                    raise ValueError(f"OutputSampler: the window has no field {path!r} (missing {part!r}).")
                child = _shallow_copy(getattr(parent, part))
                setattr(parent, part, child)
                parent = child
            if not isinstance(parent, Data) or parts[-1] not in parent.keys():
                avail = parent.keys() if isinstance(parent, Data) else []
                raise ValueError(f"OutputSampler: the window has no field {path!r}; available: {avail}.")
            setattr(parent, parts[-1], self._subsample(getattr(parent, parts[-1]), path))
        return out

    def __repr__(self) -> str:
        what = f"max_samples={self.max_samples}" if self.max_samples is not None else f"fraction={self.fraction}"
        return f"OutputSampler(fields={self.fields}, {what})"
