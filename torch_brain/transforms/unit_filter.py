"""``UnitFilter``: keep only the units that match a rule."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from torch_brain.data import Data

from ._units import _fields, _n_units, _select_units

__all__ = ["UnitFilter"]


class UnitFilter:
    """Keep the units selected by ``keep`` (deterministic; see :class:`UnitDropout` for random).

    Args:
        keep: which units to keep, one of
            - a callable ``keep(data) -> bool array (n_units,)``;
            - a regular expression (str), kept where ``re.search(pattern, unit_id)`` matches
              (ids are the global ``"<brainset>/<session>/<unit>"`` strings of a Dataset window);
            - an iterable of unit ids to keep.
        invert: keep the units that do NOT match instead.
        field: unit-indexed series (or list) whose events of removed units are dropped.
        reset_index: subset the ``units`` table and renumber ``unit_index`` (default), or keep the
            table and indices and only drop events.

    Example:
        >>> UnitFilter(r"/unit_00[0-4]$")(window)  # keep five units
    """

    def __init__(
        self,
        keep: Callable[[Data], np.ndarray] | str | Iterable[str],
        invert: bool = False,
        field: str | Sequence[str] = "spikes",
        reset_index: bool = True,
    ) -> None:
        who = "UnitFilter"
        if isinstance(keep, str):
            try:
                self._pattern = re.compile(keep)
            except re.error as err:
                raise ValueError(f"{who}: keep={keep!r} is not a valid regular expression: {err}.") from None
            self._ids = None
            self._fn = None
        elif callable(keep):
            self._fn, self._pattern, self._ids = keep, None, None
        elif isinstance(keep, Iterable):
            self._ids = {str(x) for x in keep}
            self._fn, self._pattern = None, None
        else:
            raise TypeError(
                f"{who}: keep must be a callable, a regex string or an iterable of unit ids, got "
                f"{type(keep).__name__}."
            )
        self.keep = keep
        self.invert = bool(invert)
        self.fields = _fields(field, who)
        self.reset_index = bool(reset_index)

    def _mask(self, data: Data, n: int) -> np.ndarray:
        if self._fn is not None:
            mask = np.asarray(self._fn(data))
            if mask.dtype != bool or mask.shape != (n,):
                raise ValueError(
                    f"UnitFilter: keep(data) must return a bool array of shape ({n},) (one per unit), got "
                    f"dtype {mask.dtype} and shape {mask.shape}."
                )
            return mask
        ids = data.units.id
        if self._pattern is not None:
            return np.fromiter((self._pattern.search(str(u)) is not None for u in ids), bool, count=n)
        return np.fromiter((str(u) in self._ids for u in ids), bool, count=n)

    def __call__(self, data: Data) -> Data:
        n = _n_units(data, "UnitFilter")
        keep = self._mask(data, n)
        if self.invert:
            keep = ~keep
        if keep.all():
            return data
        return _select_units(data, keep, self.fields, self.reset_index, "UnitFilter")

    def __repr__(self) -> str:
        return f"UnitFilter(keep={self.keep!r}, invert={self.invert}, field={self.fields})"
