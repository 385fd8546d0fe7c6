"""Keep a subset of units in a window: the units table and every unit-indexed series agree."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from torch_brain.data import Data

from ._copy import _shallow_copy

__all__: list[str] = []


def _fields(field: str | Sequence[str], who: str) -> list[str]:
    fields = [field] if isinstance(field, str) else list(field)
    for f in fields:
        if not isinstance(f, str) or not f or "." in f:
            raise ValueError(
                f"{who}: field must name a top-level unit-indexed series of the window (e.g. 'spikes'), "
                f"got {f!r}."
            )
    return fields


def _n_units(data: Data, who: str) -> int:
    if not isinstance(data, Data):
        raise TypeError(f"{who}: expected a torch_brain.data.Data window, got {type(data).__name__}.")
    if "units" not in data.keys():
        raise ValueError(f"{who}: the window has no 'units' table; available attributes: {data.keys()}.")
    return len(data.units)


def _select_units(data: Data, keep: np.ndarray, fields: list[str], reset_index: bool, who: str) -> Data:
    """Return a new Data keeping only the units where ``keep`` (bool, (n_units,)) is True.

    Events of dropped units are removed from every series in ``fields``; with ``reset_index`` the
    units table is subset and ``unit_index`` renumbered to ``0..n_kept-1`` in the original order.
    """
    out = _shallow_copy(data)  # shallow: attributes not touched below are shared with ``data``
    for name in fields:
        if name not in data.keys():
            raise ValueError(f"{who}: the window has no field {name!r}; available attributes: {data.keys()}.")
        series = getattr(data, name)
        if "unit_index" not in series.keys():
            raise ValueError(
                f"{who}: field {name!r} has no 'unit_index' column (columns: {series.keys()}); pass the "
                "name of a unit-indexed series with field=..."
            )
        unit_index = series.unit_index
        kept_rows = keep[unit_index]
        new = series[kept_rows]
        if reset_index:
            new_index = np.cumsum(keep, dtype=np.int64) - 1  # old unit -> new unit
            new.unit_index = new_index[new.unit_index].astype(unit_index.dtype, copy=False)
        setattr(out, name, new)
    if reset_index:
        out.units = data.units[np.flatnonzero(keep)]
    return out
