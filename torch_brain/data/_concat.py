"""``concat``: join containers of one type along their rows (above the containers in the layering)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._array_dict import ArrayDict
from ._interval import Interval, _set_operation
from ._timeseries import IrregularTimeSeries

__all__ = ["concat"]


def _eager_type(obj: ArrayDict) -> type:
    return obj._eager_type()


def concat(objs: Sequence[ArrayDict], sort: bool = True) -> ArrayDict:
    """Concatenate time series (or intervals) of one type into one in-memory object.

    ``IrregularTimeSeries``: rows joined (stably sorted by ``timestamps`` when ``sort``), domain =
    the union of the domains. ``Interval``: rows joined (sorted by ``start`` then ``end`` when
    ``sort``). Every object must have the same columns and time keys.

    Args:
        objs: a non-empty list of IrregularTimeSeries, or of Intervals (lazy ones are read).
        sort: sort the rows (see above). An unsorted IrregularTimeSeries is not allowed, so
            ``sort=False`` requires the inputs to already be in time order.

    Example:
        >>> a = IrregularTimeSeries(np.array([2.0, 3.0]), v=np.array([3.0, 4.0]))
        >>> b = IrregularTimeSeries(np.array([0.0, 1.0]), v=np.array([1.0, 2.0]))
        >>> concat([a, b]).v
        array([1., 2., 3., 4.])
    """
    objs = list(objs)
    if not objs:
        raise ValueError("concat: 'objs' is empty; pass at least one IrregularTimeSeries or Interval.")
    kinds = sorted({_eager_type(o).__name__ if isinstance(o, ArrayDict) else type(o).__name__ for o in objs})
    if len(kinds) > 1:
        raise ValueError(f"concat: every object must have the same type, but got {kinds}.")
    first = objs[0]
    if not isinstance(first, (IrregularTimeSeries, Interval)):
        raise TypeError(
            f"concat: can join IrregularTimeSeries or Interval objects, but got {kinds[0]}. For a RegularTimeSeries "
            f"use .to_irregular() first."
        )
    keys = first.keys()
    for o in objs[1:]:
        if sorted(o.keys()) != sorted(keys):
            raise ValueError(f"concat: every object must have the same columns, but got {keys} and {o.keys()}.")
        if sorted(o.timekeys()) != sorted(first.timekeys()):
            raise ValueError(
                f"concat: every object must have the same time keys, but got {first.timekeys()} and {o.timekeys()}."
            )
    cols = {k: np.concatenate([getattr(o, k) for o in objs]) for k in keys}
    if isinstance(first, IrregularTimeSeries):
        order = np.argsort(cols["timestamps"], kind="stable") if sort else slice(None)
        cols = {k: v[order] for k, v in cols.items()}
        starts = np.concatenate([o.domain.start for o in objs])
        ends = np.concatenate([o.domain.end for o in objs])
        domain = Interval._from_arrays(*_set_operation(starts, ends, np.empty(0), np.empty(0), "or"))
        ts = cols.pop("timestamps")
        return IrregularTimeSeries(ts, timekeys=first.timekeys(), domain=domain, **cols)
    if sort:
        order = np.lexsort((cols["end"], cols["start"]))
        cols = {k: v[order] for k, v in cols.items()}
    return Interval(timekeys=first.timekeys(), **cols)
