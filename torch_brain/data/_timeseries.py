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
        if np.isinf(ts).any():  # an inf passes the sortedness check when it comes last
            raise ValueError(f"IrregularTimeSeries: 'timestamps' must be finite, but {int(np.isinf(ts).sum())} value(s) "
                             f"are inf (first at index {int(np.argmax(np.isinf(ts)))}). Drop those rows.")
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

    @classmethod
    def from_dataframe(
        cls, df: Any, domain: Interval | str = "auto", unsigned_to_long: bool = True
    ) -> IrregularTimeSeries:
        """Build from a pandas DataFrame with a ``timestamps`` column (see :meth:`ArrayDict.from_dataframe`)."""
        return super().from_dataframe(df, unsigned_to_long=unsigned_to_long, domain=domain)

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

    def to_hdf5(self, file: Any) -> None:
        """Write into an open, empty ``h5py.Group`` (layout in docs/data.md)."""
        group = file
        _hdf5.write_columns(group, "IrregularTimeSeries", self.to_dict())
        group.attrs["timekeys"] = _hdf5.bytes_list(self.timekeys())
        domain = self.domain
        group.create_dataset(_hdf5.INDEX_KEY, data=_hdf5.timestamp_index(self.timestamps, domain.start, domain.end))
        domain.to_hdf5(group.create_group("domain"))

    @classmethod
    def from_hdf5(cls, file: Any) -> IrregularTimeSeries:
        """Read an ``IrregularTimeSeries`` group into memory (the lazy variant reads on first access)."""
        group = file
        _hdf5.check_group(group, "IrregularTimeSeries", f"{cls.__name__}.from_hdf5")
        cols = _hdf5.columns_of(group, skip=(_hdf5.INDEX_KEY,))
        _hdf5.require_columns(group, cols, "IrregularTimeSeries", ("timestamps",))
        timekeys = _hdf5.str_list(group.attrs.get("timekeys")) or ["timestamps"]
        dom = _hdf5.domain_group(group)
        columns = {k: c.get() for k, c in cols.items()}
        ts = columns.pop("timestamps")
        return cls(ts, timekeys=timekeys, domain="auto" if dom is None else Interval.from_hdf5(dom), **columns)


def _clip_runs(runs: np.ndarray | None, i0: int, i1: int) -> np.ndarray | None:
    """Runs of real samples ``[first, end)`` (row indices) of rows ``i0:i1``, relative to ``i0``.

    ``None`` stands for "every row is a real sample" (a contiguous series).
    """
    if runs is None:
        return None
    r = np.clip(runs - i0, 0, i1 - i0)
    r = r[r[:, 1] > r[:, 0]]
    if i1 == i0 or (len(r) == 1 and r[0, 0] == 0 and r[0, 1] == i1 - i0):
        return None
    return r


def _runs_from_domain(owner: str, domain: Interval, fs: float, n: int, tol: float = 1e-3) -> np.ndarray | None:
    """Row runs of a (gappy) domain whose pieces start and end on the sample grid of its first start."""
    t0 = float(domain.start[0])
    lo, hi = (domain.start - t0) * fs, (domain.end - t0) * fs
    runs = np.stack([np.round(lo), np.round(hi)], axis=1).astype(np.int64)
    off = max(float(np.max(np.abs(lo - runs[:, 0]))), float(np.max(np.abs(hi - runs[:, 1]))))
    if off > tol:
        raise ValueError(
            f"{owner}: the pieces of 'domain' must start and end on the sample grid (multiples of 1/{fs:g} s from "
            f"{t0!r}), but one is {off:.3g} samples off. Build the series with RegularTimeSeries.from_gappy_timeseries."
        )
    if runs[-1, 1] != n:
        raise ValueError(
            f"{owner}: 'domain' ends at {float(domain.end[-1])!r} but {n} samples at {fs:g} Hz from {t0!r} end at "
            f"{t0 + n / fs!r}; the last piece must end one sample after the last sample."
        )
    return _clip_runs(runs, 0, n)


_GAP_VALUES = {"b": False, "i": -1, "u": 0, "f": np.nan, "c": np.nan}


class RegularTimeSeries(ArrayDict):
    """Samples at a fixed rate (e.g. behaviour at 100 Hz); timestamps are derived, not stored.

    Sample ``i`` is at ``domain_start + i / sampling_rate``. The domain is
    ``[domain_start, domain_start + N / sampling_rate)``, or, for a *gappy* series (see
    :meth:`from_gappy_timeseries`), several intervals: the samples outside them are fill values
    (:meth:`index_mask` is False there).

    Args:
        sampling_rate: samples per second (> 0).
        domain: ``"auto"`` (from ``domain_start`` and the length) or an Interval: its first start is
            used as ``domain_start``, its pieces must lie on the sample grid and its last end must be
            ``domain_start + N / sampling_rate``; several pieces make a gappy series.
        domain_start: time of the first sample (seconds) when ``domain="auto"``.
        **columns: arrays of shape ``(N, ...)``.

    Example:
        >>> cursor = RegularTimeSeries(sampling_rate=10.0, pos=np.arange(20.0))
        >>> cursor.slice(0.5, 0.8).pos
        array([5., 6., 7.])
    """

    _META = ("_sampling_rate", "_domain_start", "_runs")

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
        object.__setattr__(self, "_runs", None)
        super().__init__(**columns)
        if not (isinstance(domain, str) and domain == "auto"):
            domain = _check_domain("RegularTimeSeries", domain)
            if len(domain) == 0:
                raise ValueError("RegularTimeSeries: 'domain' is empty; pass domain=\"auto\" with domain_start=.")
            t0 = float(domain.start[0])
            if len(domain) > 1:
                object.__setattr__(self, "_runs", _runs_from_domain("RegularTimeSeries", domain, fs, len(self)))
            else:
                expected_end = t0 + len(self) / fs
                if abs(float(domain.end[0]) - expected_end) > 0.5 / fs:
                    raise ValueError(
                        f"RegularTimeSeries: 'domain' ends at {float(domain.end[0])!r} but {len(self)} samples at "
                        f"{fs} Hz from {t0!r} end at {expected_end!r}. Pass domain=\"auto\" with domain_start={t0}."
                    )
            object.__setattr__(self, "_domain_start", t0)

    @classmethod
    def from_gappy_timeseries(
        cls,
        timestamps: Any,
        sampling_rate: float,
        gap_value: Any = None,
        rtol: float = 1e-3,
        **columns: Any,
    ) -> RegularTimeSeries:
        """Put nearly regular samples with missing ones on a regular grid, filling the gaps.

        Sample times are snapped to the grid ``timestamps[0] + k / sampling_rate``; grid points with
        no sample get ``gap_value`` and lie outside the (gappy) :attr:`domain`.

        Args:
            timestamps: strictly increasing sample times, shape ``(N,)`` (N >= 2), each within
                ``rtol`` samples of the grid.
            sampling_rate: samples per second.
            gap_value: fill value: None (-1 for signed ints, 0 for unsigned, NaN for floats, False
                for bools), one scalar for every column, or ``{dtype.kind: value}``.
            rtol: largest allowed distance to the grid, in samples.
            **columns: arrays of shape ``(N, ...)``.

        Example:
            >>> rts = RegularTimeSeries.from_gappy_timeseries([0.0, 0.01, 0.03, 0.04], sampling_rate=100.0,
            ...                                                 raw=np.array([1.0, 2.0, 3.0, 4.0]))
            >>> rts.raw, rts.domain.start, rts.domain.end
            (array([ 1.,  2., nan,  3.,  4.]), array([0.  , 0.03]), array([0.02, 0.05]))
        """
        owner = "RegularTimeSeries.from_gappy_timeseries"
        ts = _as_times(owner, "timestamps", timestamps)
        fs = float(sampling_rate)
        if not (fs > 0 and math.isfinite(fs)):
            raise ValueError(f"{owner}: 'sampling_rate' must be a positive finite number, but got {sampling_rate!r}.")
        if ts.size < 2:
            raise ValueError(f"{owner}: 'timestamps' must have at least 2 entries, but got {ts.size}.")
        if np.any(np.diff(ts) <= 0):
            raise ValueError(f"{owner}: 'timestamps' must be strictly increasing; sort them and drop duplicates first.")
        x = (ts - ts[0]) * fs
        idx = np.round(x).astype(np.int64)
        off = float(np.max(np.abs(x - idx)))
        if off > rtol:
            raise ValueError(
                f"{owner}: 'timestamps' are up to {off:.3g} samples off the {fs:g} Hz grid, more than rtol={rtol}. "
                f"Check 'sampling_rate', raise 'rtol', or use an IrregularTimeSeries."
            )
        step = int(np.min(np.diff(idx)))
        if step > 1:
            raise ValueError(
                f"{owner}: consecutive timestamps are at least {step} grid steps apart at {fs:g} Hz, so "
                f"'sampling_rate' looks too high (about {fs / step:g} Hz would fit). Fix 'sampling_rate'."
            )
        n = int(idx[-1]) + 1
        filled = {}
        for key, value in columns.items():
            arr = _as_column_array(owner, key, value, ts.size)
            fill = _gap_fill(owner, key, arr, gap_value)
            out = np.full((n,) + arr.shape[1:], fill, dtype=arr.dtype)
            out[idx] = arr
            filled[key] = out
        breaks = np.flatnonzero(np.diff(idx) > 1)
        runs = np.stack([idx[np.concatenate([[0], breaks + 1])], idx[np.concatenate([breaks, [idx.size - 1]])] + 1], 1)
        obj = cls(sampling_rate=fs, domain_start=float(ts[0]), **filled)
        object.__setattr__(obj, "_runs", _clip_runs(runs, 0, n))
        return obj

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
        """``[domain_start, domain_start + N / sampling_rate)``, or the pieces with real samples of a gappy series."""
        t0, fs = self._domain_start, self._sampling_rate
        runs = self.__dict__.get("_runs")
        if runs is None:
            return Interval._from_arrays(np.array([t0]), np.array([t0 + len(self) / fs]))
        return Interval._from_arrays(t0 + runs[:, 0] / fs, t0 + runs[:, 1] / fs)

    def is_gappy(self) -> bool:
        """True if the domain has more than one interval (some samples are gap fill)."""
        runs = self.__dict__.get("_runs")
        return runs is not None and len(runs) > 1

    def index_mask(self) -> np.ndarray:
        """Boolean mask, shape ``(N,)``: True for real samples, False for gap fill."""
        n = len(self)
        runs = self.__dict__.get("_runs")
        if runs is None:
            return np.ones(n, dtype=bool)
        delta = np.zeros(n + 1, dtype=np.int64)
        np.add.at(delta, runs[:, 0], 1)
        np.add.at(delta, runs[:, 1], -1)
        return np.cumsum(delta[:-1]) > 0

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
        return self._new_like(cols, _domain_start=t0, _runs=_clip_runs(self.__dict__.get("_runs"), i0, i1))

    def slice(self, start: float, end: float, reset_origin: bool = True, eps: float = 1e-9) -> RegularTimeSeries:
        """Samples with ``start <= timestamp < end`` (views, no copy); times relative to ``start``
        when ``reset_origin``. Row indices are found exactly against :attr:`timestamps`, so ``eps``
        (temporaldata's rounding buffer) is accepted and not needed.

        Of a gappy series, fill samples at the start and end of the window are dropped (the
        result starts and ends on real samples) and gaps inside it are kept.
        """
        n = len(self)
        i0 = self._first_index_at_or_after(start, n)
        i1 = max(i0, self._first_index_at_or_after(end, n))
        runs = self.__dict__.get("_runs")
        if runs is not None:
            r = _clip_runs(runs, i0, i1)
            if r is not None:
                i0, i1 = (i0 + int(r[0, 0]), i0 + int(r[-1, 1])) if len(r) else (i0, i0)
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
        """The real samples (gap fill dropped) as an :class:`IrregularTimeSeries` with explicit
        ``timestamps``; its arrays and domain are copies."""
        keep = self.index_mask() if self.__dict__.get("_runs") is not None else slice(None)
        out = object.__new__(IrregularTimeSeries)
        out.__dict__.update(_timekeys=["timestamps"], _domain=self.domain, timestamps=self.timestamps[keep])
        for k in self.keys():
            out.__dict__[k] = np.array(getattr(self, k)[keep])
        return out

    def __repr__(self) -> str:
        cols = ", ".join(f"{k}={self._shape_of(k)}" for k in self.keys())
        return f"RegularTimeSeries(sampling_rate={self._sampling_rate:g}, {cols})"

    def to_hdf5(self, file: Any) -> None:
        """Write into an open, empty ``h5py.Group`` (layout in docs/data.md)."""
        group = file
        _hdf5.write_columns(group, "RegularTimeSeries", self.to_dict(), always_keys=False)
        group.attrs["sampling_rate"] = float(self.sampling_rate)
        self.domain.to_hdf5(group.create_group("domain"))

    @classmethod
    def from_hdf5(cls, file: Any) -> RegularTimeSeries:
        """Read a ``RegularTimeSeries`` group into memory (the lazy variant reads on first access)."""
        group = file
        _hdf5.check_group(group, "RegularTimeSeries", f"{cls.__name__}.from_hdf5")
        cols = _hdf5.columns_of(group)
        meta = _regular_meta(group, next(iter(cols.values())).nrows if cols else 0)
        return cls._from_columns({k: c.get() for k, c in cols.items()}, **meta)


def _regular_meta(group: Any, n: int) -> dict[str, Any]:
    """``_sampling_rate``, ``_domain_start`` and ``_runs`` of a stored RegularTimeSeries of ``n`` samples."""
    fs = float(group.attrs["sampling_rate"])
    dom = _hdf5.domain_group(group)
    domain = None if dom is None else Interval.from_hdf5(dom)
    if domain is None or not len(domain):
        return {"_sampling_rate": fs, "_domain_start": float(group.attrs.get("domain_start", 0.0)), "_runs": None}
    runs = _runs_from_domain(f"from_hdf5 ({group.name})", domain, fs, n) if len(domain) > 1 else None
    return {"_sampling_rate": fs, "_domain_start": float(domain.start[0]), "_runs": runs}


def _as_column_array(owner: str, key: str, value: Any, n: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise ValueError(f"{owner}: column {key!r} has shape {arr.shape}; it needs {n} rows, one per timestamp.")
    return arr


def _gap_fill(owner: str, key: str, arr: np.ndarray, gap_value: Any) -> Any:
    kind = arr.dtype.kind
    if gap_value is None:
        if kind not in _GAP_VALUES:
            raise ValueError(
                f"{owner}: no default gap value for column {key!r} of dtype {arr.dtype}; pass gap_value= "
                f"(a scalar or {{{kind!r}: value}})."
            )
        return _GAP_VALUES[kind]
    if isinstance(gap_value, dict):
        if kind not in gap_value:
            raise KeyError(
                f"{owner}: gap_value has no entry for dtype kind {kind!r} (column {key!r}, dtype {arr.dtype}); "
                f"known kinds: {sorted(gap_value)}."
            )
        return gap_value[kind]
    return gap_value
