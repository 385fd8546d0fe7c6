"""Apply a function to every time value of a window (used by RandomTimeScaling)."""

from __future__ import annotations

import numpy as np

from torch_brain.data import Data, Interval, IrregularTimeSeries, RegularTimeSeries

from ._copy import _shallow_copy

__all__: list[str] = []


def _scale_interval(iv: Interval, s: float) -> Interval:
    out = iv[slice(None)]  # new object, columns shared
    for key in iv.timekeys():
        setattr(out, key, getattr(iv, key) * s)
    return out


def _scale_times(obj: object, s: float) -> object:
    """Return ``obj`` with every time (timestamps, interval bounds, domains) multiplied by ``s``."""
    if isinstance(obj, Interval):
        return _scale_interval(obj, s)
    if isinstance(obj, IrregularTimeSeries):
        out = obj[slice(None)]
        for key in obj.timekeys():
            setattr(out, key, getattr(obj, key) * s)
        out.domain = _scale_interval(obj.domain, s)
        return out
    if isinstance(obj, RegularTimeSeries):
        cols = {k: getattr(obj, k) for k in obj.keys()}
        return RegularTimeSeries(
            sampling_rate=obj.sampling_rate / s, domain_start=obj.domain_start * s, **cols
        )
    if isinstance(obj, Data):
        out = _shallow_copy(obj)
        for key in obj.keys():
            value = getattr(obj, key)
            if isinstance(value, (Interval, IrregularTimeSeries, RegularTimeSeries, Data)):
                setattr(out, key, _scale_times(value, s))
        if obj.domain is not None:
            out.domain = _scale_interval(obj.domain, s)
        return out
    return obj


def _domain_bounds(data: Data, who: str) -> tuple[float, float]:
    if not isinstance(data, Data):
        raise TypeError(f"{who}: expected a torch_brain.data.Data window, got {type(data).__name__}.")
    dom = data.domain
    if dom is None or len(dom) == 0:
        raise ValueError(f"{who}: the window has no domain (data.domain is {dom!r}); it needs a time extent.")
    return float(np.min(dom.start)), float(np.max(dom.end))
