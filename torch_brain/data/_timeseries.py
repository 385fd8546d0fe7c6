"""Time series containers: ``IrregularTimeSeries`` (sorted event times + columns) and
``RegularTimeSeries`` (samples at a fixed rate, timestamps derived)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _hdf5
from ._array_dict import ArrayDict, _check_mask
from ._interval import Interval, _as_times, _check_timekeys, _register_timekey, _set_operation

__all__ = ["IrregularTimeSeries", "RegularTimeSeries"]


def _check_sorted(owner: str, key: str, ts: np.ndarray) -> None:
    if ts.size > 1:
        bad = np.flatnonzero(ts[1:] < ts[:-1])
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{owner}: {key!r} must be sorted in non-decreasing order, but {key}[{i + 1}]={float(ts[i + 1])!r} < "
                f"{key}[{i}]={float(ts[i])!r} ({bad.size} decrease(s)). Sort every column with "
                f"order = np.argsort({key}, kind='stable') before building it."
            )


def _check_domain(owner: str, domain: Any) -> Interval:
    if not isinstance(domain, Interval):
        raise TypeError(
            f"{owner}: 'domain' must be an Interval or \"auto\", but got {type(domain).__name__}. "
            f"Use Interval(start, end)."
        )
    if not (domain.is_sorted() and domain.is_disjoint()):
        raise ValueError(
            f"{owner}: 'domain' must be sorted, non-overlapping intervals, but got starts "
            f"{domain.start.tolist()[:6]} and ends {domain.end.tolist()[:6]}. Use domain.coalesce()."
        )
    return domain


def _interval_mask(ts: np.ndarray, interval: Interval) -> np.ndarray:
    """Boolean mask of sorted ``ts`` falling inside the union of ``interval`` (half-open pieces)."""
    sel_s, sel_e = _set_operation(interval.start, interval.end, np.empty(0), np.empty(0), "or")
    i0 = np.searchsorted(ts, sel_s, side="left")
    i1 = np.searchsorted(ts, sel_e, side="left")
    delta = np.zeros(ts.size + 1, dtype=np.int64)
    np.add.at(delta, i0, 1)
    np.add.at(delta, i1, -1)
    return np.cumsum(delta[:-1]) > 0


class IrregularTimeSeries(ArrayDict):
    """Events at sorted, irregular times (e.g. spikes), with per-event columns.

    Args:
        timestamps: event times in seconds, shape ``(N,)``, sorted (non-decreasing).
        timekeys: names of the columns holding times (shifted by ``slice``); defaults to
            ``["timestamps"]``.
        domain: the Interval over which the series is defined, or ``"auto"``
            (``[timestamps[0], timestamps[-1]]``).
        **columns: per-event arrays of shape ``(N, ...)``.

    Example:
        >>> spikes = IrregularTimeSeries(np.array([0.1, 0.5, 1.2]), unit_index=np.array([0, 1, 0]),
        ...                              domain=Interval(0.0, 2.0))
        >>> spikes.slice(0.4, 1.5).timestamps
        array([0.1, 0.8])
    """

    _META = ("_timekeys", "_domain")
    _REQUIRED_COLUMNS = ("timestamps",)

    def __init__(
        self,
        timestamps: Any,
        *,
        timekeys: Sequence[str] | None = None,
        domain: Interval | str = "auto",
        **columns: Any,
    ) -> None:
        ts = _as_times("IrregularTimeSeries", "timestamps", timestamps)
        _check_sorted("IrregularTimeSeries", "timestamps", ts)
        timekeys = ["timestamps"] if timekeys is None else list(timekeys)
        _check_timekeys("IrregularTimeSeries", timekeys, ["timestamps"], columns)
        object.__setattr__(self, "_timekeys", timekeys)
        if isinstance(domain, str) and domain == "auto":
            domain = Interval(ts[:1].copy(), ts[-1:].copy()) if ts.size else Interval(np.empty(0), np.empty(0))
        object.__setattr__(self, "_domain", _check_domain("IrregularTimeSeries", domain))
        super().__init__(timestamps=ts, **columns)

    @property
    def domain(self) -> Interval:
        """The Interval over which the series is defined."""
        return self._domain

    @domain.setter
    def domain(self, value: Interval) -> None:
        object.__setattr__(self, "_domain", _check_domain(type(self).__name__, value))

    def timekeys(self) -> list[str]:
        """Names of the time columns (shifted by :meth:`slice`)."""
        return list(self._timekeys)

    def is_sorted(self) -> bool:
        """True if ``timestamps`` are non-decreasing."""
        ts = self.timestamps
        return bool(np.all(ts[1:] >= ts[:-1]))

    def register_timekey(self, timekey: str) -> None:
        """Mark the existing column ``timekey`` as a time (shifted by :meth:`slice`)."""
        _register_timekey(self, timekey)

    def sort(self) -> IrregularTimeSeries:
        """Reorder every column by ``timestamps`` (stable) in place; returns ``self``.

        Timestamps are always sorted here (the constructor requires it), so this only matters for
        series whose columns were replaced; it exists for code written against temporaldata.
        """
        order = np.argsort(self.timestamps, kind="stable")
        for k in self.keys():
            self.__dict__[k] = getattr(self, k)[order]
        return self

    def slice(self, start: float, end: float, reset_origin: bool = True) -> IrregularTimeSeries:
        """Events with ``start <= timestamp < end``; domain clipped to the window.

        With ``reset_origin`` every time key is made relative to ``start``. Non-time columns are
        views into this object's arrays (no copy).
        """
        ts = self.timestamps
        i0 = int(ts.searchsorted(start, side="left"))
        i1 = int(ts.searchsorted(end, side="left"))
        shift = start if reset_origin else 0.0
        sl = slice(i0, i1)
        cols = {}
        for k in self.keys():
            col = getattr(self, k)[sl]
            cols[k] = col - shift if (shift and k in self._timekeys) else col
        return self._new_like(cols, _domain=self._domain.clip(start, end, reset_origin))

    def select_by_interval(self, interval: Interval) -> IrregularTimeSeries:
        """Events inside any interval of ``interval`` (times unchanged); domain intersected with it."""
        mask = _interval_mask(self.timestamps, interval)
        out = self[mask]
        out.__dict__["_domain"] = self.domain & interval
        return out

    def __repr__(self) -> str:
        cols = ", ".join(f"{k}={self._shape_of(k)}" for k in self.keys())
        return f"IrregularTimeSeries({cols})"

    def to_hdf5(self, group: Any) -> None:
        """Write into an open, empty ``h5py.Group`` (layout in docs/data.md)."""
        _hdf5.write_columns(group, "IrregularTimeSeries", self.to_dict())
        group.attrs["timekeys"] = _hdf5.bytes_list(self.timekeys())
        domain = self.domain
        group.create_dataset(_hdf5.INDEX_KEY, data=_hdf5.timestamp_index(self.timestamps, domain.start, domain.end))
        domain.to_hdf5(group.create_group("domain"))

    @classmethod
    def from_hdf5(cls, group: Any) -> IrregularTimeSeries:
        """Read an ``IrregularTimeSeries`` group into memory (the lazy variant reads on first access)."""
        _hdf5.check_group(group, "IrregularTimeSeries", f"{cls.__name__}.from_hdf5")
        cols = _hdf5.columns_of(group, skip=(_hdf5.INDEX_KEY,))
        _hdf5.require_columns(group, cols, "IrregularTimeSeries", ("timestamps",))
        timekeys = _hdf5.str_list(group.attrs.get("timekeys")) or ["timestamps"]
        dom = _hdf5.domain_group(group)
        columns = {k: c.get() for k, c in cols.items()}
        ts = columns.pop("timestamps")
        return cls(ts, timekeys=timekeys, domain="auto" if dom is None else Interval.from_hdf5(dom), **columns)


class RegularTimeSeries(ArrayDict):
    """Samples at a fixed rate (e.g. behaviour at 100 Hz); timestamps are derived, not stored.

    Sample ``i`` is at ``domain_start + i / sampling_rate`` and the domain is
    ``[domain_start, domain_start + N / sampling_rate)``.

    Args:
        sampling_rate: samples per second (> 0).
        domain: ``"auto"`` (from ``domain_start`` and the length) or an Interval whose start is used
            as ``domain_start`` and whose end must equal ``start + N / sampling_rate``.
        domain_start: time of the first sample (seconds) when ``domain="auto"``.
        **columns: arrays of shape ``(N, ...)``.

    Example:
        >>> cursor = RegularTimeSeries(sampling_rate=10.0, pos=np.arange(20.0))
        >>> cursor.slice(0.5, 0.8).pos
        array([5., 6., 7.])
    """

    _META = ("_sampling_rate", "_domain_start")

    def __init__(
        self,
        *,
        sampling_rate: float,
        domain: Interval | str = "auto",
        domain_start: float = 0.0,
        **columns: Any,
    ) -> None:
        try:
            fs = float(sampling_rate)
        except (TypeError, ValueError):
            raise TypeError(
                f"RegularTimeSeries: 'sampling_rate' must be a number (Hz), but got {type(sampling_rate).__name__}."
            ) from None
        if not fs > 0 or not math.isfinite(fs):
            raise ValueError(f"RegularTimeSeries: 'sampling_rate' must be a positive finite number, but got {fs}.")
        object.__setattr__(self, "_sampling_rate", fs)
        object.__setattr__(self, "_domain_start", float(domain_start))
        super().__init__(**columns)
        if not (isinstance(domain, str) and domain == "auto"):
            domain = _check_domain("RegularTimeSeries", domain)
            if len(domain) != 1:
                raise ValueError(
                    f"RegularTimeSeries: 'domain' must be a single interval, but got {len(domain)} intervals. "
                    f"Split the series into one RegularTimeSeries per contiguous piece."
                )
            t0 = float(domain.start[0])
            expected_end = t0 + len(self) / fs
            if abs(float(domain.end[0]) - expected_end) > 0.5 / fs:
                raise ValueError(
                    f"RegularTimeSeries: 'domain' ends at {float(domain.end[0])!r} but {len(self)} samples at "
                    f"{fs} Hz from {t0!r} end at {expected_end!r}. Pass domain=\"auto\" with domain_start={t0}."
                )
            object.__setattr__(self, "_domain_start", t0)

    @property
    def sampling_rate(self) -> float:
        """Samples per second."""
        return self._sampling_rate

    @property
    def domain_start(self) -> float:
        """Time of the first sample (seconds)."""
        return self._domain_start

    @property
    def domain(self) -> Interval:
        """``[domain_start, domain_start + N / sampling_rate)`` as a one-row Interval."""
        t0 = self._domain_start
        return Interval._from_arrays(np.array([t0]), np.array([t0 + len(self) / self._sampling_rate]))

    @property
    def timestamps(self) -> np.ndarray:
        """Derived sample times ``domain_start + arange(N) / sampling_rate``, shape ``(N,)``."""
        return self._domain_start + np.arange(len(self)) / self._sampling_rate

    def timekeys(self) -> list[str]:
        """The (derived) time key: ``["timestamps"]``."""
        return ["timestamps"]

    def _first_index_at_or_after(self, t: float, n: int) -> int:
        """Smallest ``i`` in ``[0, n]`` with ``domain_start + i / fs >= t`` (exact w.r.t. ``timestamps``)."""
        fs, t0 = self._sampling_rate, self._domain_start
        x = (t - t0) * fs
        if x <= 0:
            return 0
        if x >= n:
            return n
        i = int(math.ceil(x))
        while i > 0 and t0 + (i - 1) / fs >= t:
            i -= 1
        while i < n and t0 + i / fs < t:
            i += 1
        return i

    def _rows(self, i0: int, i1: int, shift: float) -> RegularTimeSeries:
        sl = slice(i0, i1)
        cols = {k: getattr(self, k)[sl] for k in self.keys()}
        t0 = self._domain_start + i0 / self._sampling_rate - shift
        return self._new_like(cols, _domain_start=t0)

    def slice(self, start: float, end: float, reset_origin: bool = True) -> RegularTimeSeries:
        """Samples with ``start <= timestamp < end`` (views, no copy); times relative to ``start``
        when ``reset_origin``."""
        n = len(self)
        i0 = self._first_index_at_or_after(start, n)
        i1 = max(i0, self._first_index_at_or_after(end, n))
        return self._rows(i0, i1, start if reset_origin else 0.0)

    def __getitem__(self, index: Any) -> RegularTimeSeries:
        """Contiguous rows only (an int or a step-1 slice); use :meth:`to_irregular` for masks."""
        index = self._normalize_index(index)
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError(
                "RegularTimeSeries: only contiguous rows (an int or a slice with step 1) can be selected, "
                f"but got {type(index).__name__}. Convert with .to_irregular() to select by mask or indices."
            )
        i0, i1, _ = index.indices(len(self))
        return self._rows(i0, max(i0, i1), 0.0)

    def select_by_mask(self, mask: np.ndarray) -> IrregularTimeSeries:
        """Rows where ``mask`` is True, as an :class:`IrregularTimeSeries` (the result is not regular)."""
        _check_mask(type(self).__name__, mask, len(self))
        return self.to_irregular().select_by_mask(mask)

    def select_by_interval(self, interval: Interval) -> IrregularTimeSeries:
        """Samples inside ``interval``, as an :class:`IrregularTimeSeries` (the result may have gaps)."""
        return self.to_irregular().select_by_interval(interval)

    def to_irregular(self) -> IrregularTimeSeries:
        """The same samples as an :class:`IrregularTimeSeries` with explicit ``timestamps``."""
        out = object.__new__(IrregularTimeSeries)
        out.__dict__.update(_timekeys=["timestamps"], _domain=self.domain, timestamps=self.timestamps)
        for k in self.keys():
            out.__dict__[k] = getattr(self, k)
        return out

    def __repr__(self) -> str:
        cols = ", ".join(f"{k}={self._shape_of(k)}" for k in self.keys())
        return f"RegularTimeSeries(sampling_rate={self._sampling_rate:g}, {cols})"

    def to_hdf5(self, group: Any) -> None:
        """Write into an open, empty ``h5py.Group`` (layout in docs/data.md)."""
        _hdf5.write_columns(group, "RegularTimeSeries", self.to_dict(), always_keys=False)
        group.attrs["sampling_rate"] = float(self.sampling_rate)
        self.domain.to_hdf5(group.create_group("domain"))

    @classmethod
    def from_hdf5(cls, group: Any) -> RegularTimeSeries:
        """Read a ``RegularTimeSeries`` group into memory (the lazy variant reads on first access)."""
        _hdf5.check_group(group, "RegularTimeSeries", f"{cls.__name__}.from_hdf5")
        cols = _hdf5.columns_of(group)
        fs, t0 = _regular_meta(group)
        return cls._from_columns({k: c.get() for k, c in cols.items()}, _sampling_rate=fs, _domain_start=t0)


def _regular_meta(group: Any) -> tuple[float, float]:
    """``(sampling_rate, domain_start)`` of a stored RegularTimeSeries."""
    fs = float(group.attrs["sampling_rate"])
    dom = _hdf5.domain_group(group)
    domain = None if dom is None else Interval.from_hdf5(dom)
    if domain is not None and len(domain):
        return fs, float(domain.start[0])
    return fs, float(group.attrs.get("domain_start", 0.0))
