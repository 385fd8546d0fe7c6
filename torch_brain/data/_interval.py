"""``Interval``: a table of half-open time intervals ``[start, end)`` with extra columns, and the
set algebra on them (``&``, ``|``, ``difference``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from . import _hdf5
from ._array_dict import ArrayDict

__all__ = ["Interval"]


def _as_times(owner: str, key: str, value: Any) -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{owner}: {key!r} must be numbers (seconds), but got {type(value).__name__}: {err}."
        ) from None
    if arr.ndim != 1:
        raise ValueError(f"{owner}: {key!r} must be one-dimensional, but got shape {arr.shape}. Flatten it.")
    nan = np.isnan(arr)
    if nan.any():
        raise ValueError(
            f"{owner}: {key!r} must not contain NaN, but {int(nan.sum())} value(s) are NaN (first at index "
            f"{int(np.argmax(nan))}). Drop those rows (e.g. keep = ~np.isnan({key}))."
        )
    return arr


def _sweep(
    a_start: np.ndarray, a_end: np.ndarray, b_start: np.ndarray, b_end: np.ndarray, op: str
) -> tuple[np.ndarray, np.ndarray]:
    """Union / intersection / difference of two sets of half-open intervals of positive length.

    Each input may be unsorted or overlapping; the output is sorted, disjoint and coalesced
    (touching pieces are merged). Works by sweeping the sorted unique boundaries and keeping the
    elementary segments ``[u_i, u_{i+1})`` whose membership satisfies ``op``.
    """
    points = np.concatenate([a_start, a_end, b_start, b_end])
    if points.size == 0:
        return np.empty(0), np.empty(0)
    uniq, inverse = np.unique(points, return_inverse=True)
    na, nb = a_start.size, b_start.size
    da = np.concatenate([np.ones(na), -np.ones(na), np.zeros(2 * nb)])
    db = np.concatenate([np.zeros(2 * na), np.ones(nb), -np.ones(nb)])
    count_a = np.cumsum(np.bincount(inverse, weights=da, minlength=uniq.size))[:-1]
    count_b = np.cumsum(np.bincount(inverse, weights=db, minlength=uniq.size))[:-1]
    in_a, in_b = count_a > 0.5, count_b > 0.5
    if op == "and":
        keep = in_a & in_b
    elif op == "or":
        keep = in_a | in_b
    else:  # difference
        keep = in_a & ~in_b
    # runs of consecutive kept segments become one interval
    edges = np.diff(np.concatenate([[False], keep, [False]]).astype(np.int8))
    first = np.flatnonzero(edges == 1)
    last = np.flatnonzero(edges == -1)  # exclusive segment index
    return uniq[first].astype(np.float64), uniq[last].astype(np.float64)


def _touches(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """For each point, whether it lies in some closed ``[start, end]`` (inputs in any order)."""
    if points.size == 0 or start.size == 0:
        return np.zeros(points.shape, dtype=bool)
    order = np.argsort(start, kind="stable")
    s, reach = start[order], np.maximum.accumulate(end[order])
    i = np.searchsorted(s, points, side="right") - 1
    return (i >= 0) & (reach[np.maximum(i, 0)] >= points)


def _set_operation(
    a_start: np.ndarray, a_end: np.ndarray, b_start: np.ndarray, b_end: np.ndarray, op: str
) -> tuple[np.ndarray, np.ndarray]:
    """Union (``"or"``) / intersection (``"and"``) / difference of two sets of intervals.

    Intervals of positive length are the half-open sets ``[start, end)``; a point interval
    ``[t, t]`` is the instant ``t`` and counts as inside an interval ``[s, e]`` when
    ``s <= t <= e`` (as in temporaldata). The result is sorted and disjoint: positive-length
    pieces are coalesced (except where a point of ``b`` cuts a piece of ``a - b`` in two), and a
    point is kept only where no piece of the result touches it.
    """
    pa, pb = a_end > a_start, b_end > b_start
    if pa.all() and pb.all():  # no points: the common case
        return _sweep(a_start, a_end, b_start, b_end, op)
    s, e = _sweep(a_start[pa], a_end[pa], b_start[pb], b_end[pb], op)
    qa, qb = a_start[~pa], b_start[~pb]
    if op == "and":
        q = np.concatenate([qa[_touches(qa, b_start, b_end)], qb[_touches(qb, a_start, a_end)]])
    elif op == "or":
        q = np.concatenate([qa, qb])
    else:
        q = qa[~_touches(qa, b_start, b_end)]
        if s.size and qb.size:  # a point of b strictly inside a piece cuts it in two
            cut = np.unique(qb)
            i = np.maximum(np.searchsorted(s, cut, side="right") - 1, 0)
            cut = cut[(s[i] < cut) & (cut < e[i])]
            s, e = np.sort(np.concatenate([s, cut])), np.sort(np.concatenate([e, cut]))
    q = np.unique(q)
    q = q[~_touches(q, s, e)]
    if q.size == 0:
        return s, e
    starts, ends = np.concatenate([s, q]), np.concatenate([e, q])
    order = np.lexsort((ends, starts))
    return starts[order], ends[order]


class Interval(ArrayDict):
    """Half-open intervals ``[start, end)`` in seconds, with optional extra columns.

    Args:
        start: interval starts, shape ``(N,)`` (a scalar gives one interval).
        end: interval ends, shape ``(N,)``; each ``end >= start``.
        timekeys: names of the columns holding times (shifted by ``slice``); defaults to
            ``["start", "end"]`` and must contain both.
        **columns: extra per-interval columns of shape ``(N, ...)``.

    Example:
        >>> trials = Interval(start=[0.0, 2.0], end=[1.0, 3.0], target=np.array([3, 5]))
        >>> (trials & Interval(0.5, 2.5)).start
        array([0.5, 2. ])
    """

    _META = ("_timekeys",)
    _REQUIRED_COLUMNS = ("start", "end")

    def __init__(
        self,
        start: Any,
        end: Any,
        *,
        timekeys: Sequence[str] | None = None,
        **columns: Any,
    ) -> None:
        start = _as_times("Interval", "start", start)
        end = _as_times("Interval", "end", end)
        if start.shape != end.shape:
            raise ValueError(
                f"Interval: 'start' has {start.size} rows but 'end' has {end.size}; give one end per start."
            )
        bad = np.flatnonzero(end < start)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"Interval: 'end' must be >= 'start' for every interval, but {bad.size} interval(s) end before "
                f"they start (first: row {i}, start={float(start[i])!r}, end={float(end[i])!r}). Swap or drop those rows."
            )
        timekeys = ["start", "end"] if timekeys is None else list(timekeys)
        _check_timekeys("Interval", timekeys, ["start", "end"], columns)
        object.__setattr__(self, "_timekeys", timekeys)
        super().__init__(start=start, end=end, **columns)

    # ------------------------------------------------------------ constructors
    @classmethod
    def _from_arrays(cls, start: np.ndarray, end: np.ndarray) -> Interval:
        """Trusted fast constructor (no validation) used internally."""
        out = object.__new__(cls)
        out.__dict__.update(_timekeys=["start", "end"], start=start, end=end)
        return out

    @classmethod
    def from_list(cls, interval_list: Sequence[tuple[float, float]]) -> Interval:
        """Build from ``[(start, end), ...]``."""
        arr = np.asarray(interval_list, dtype=np.float64)
        if arr.size == 0:
            return cls(np.empty(0), np.empty(0))
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(
                f"Interval.from_list: expected a list of (start, end) pairs, but got an array of shape {arr.shape}."
            )
        return cls(arr[:, 0].copy(), arr[:, 1].copy())

    @classmethod
    def linspace(cls, start: float, end: float, steps: int) -> Interval:
        """``steps`` contiguous intervals of equal length covering ``[start, end)``."""
        if int(steps) < 1:
            raise ValueError(f"Interval.linspace: 'steps' must be >= 1, but got {steps}.")
        edges = np.linspace(start, end, int(steps) + 1)
        return cls(edges[:-1].copy(), edges[1:].copy())

    @classmethod
    def arange(cls, start: float, end: float, step: float, include_end: bool = True) -> Interval:
        """Contiguous intervals of length ``step`` from ``start``; the last one is cut at ``end``
        (and dropped when ``include_end`` is False and it is shorter than ``step``)."""
        if not step > 0:
            raise ValueError(f"Interval.arange: 'step' must be > 0, but got {step}.")
        if end < start:
            raise ValueError(f"Interval.arange: 'end' ({end}) must be >= 'start' ({start}).")
        n_full = int(np.floor((end - start) / step + 1e-9))
        starts = start + step * np.arange(n_full, dtype=np.float64)
        ends = starts + step
        if n_full and ends[-1] > end:
            ends[-1] = end
        if include_end and start + n_full * step < end - 1e-12:
            starts = np.append(starts, start + n_full * step)
            ends = np.append(ends, end)
        return cls(starts, ends)

    # ---------------------------------------------------------------- queries
    def timekeys(self) -> list[str]:
        """Names of the time columns (shifted by :meth:`slice`)."""
        return list(self._timekeys)

    def register_timekey(self, timekey: str) -> None:
        """Mark the existing column ``timekey`` as a time (shifted by :meth:`slice`)."""
        _register_timekey(self, timekey)

    def __iter__(self) -> Iterator[tuple[float, float]]:
        """``(start, end)`` of each interval, in row order (other columns are not included).

        Example:
            >>> [(float(s), float(e)) for s, e in Interval(start=[0.0, 1.0], end=[1.0, 2.0])]
            [(0.0, 1.0), (1.0, 2.0)]
        """
        return zip(self.start, self.end)

    def is_sorted(self) -> bool:
        """True if starts are non-decreasing."""
        s = self.start
        return bool(np.all(s[1:] >= s[:-1]))

    def is_disjoint(self) -> bool:
        """True if no two intervals overlap (touching ``[a, b)``, ``[b, c)`` is allowed)."""
        if len(self) < 2:
            return True
        order = np.argsort(self.start, kind="stable")
        s, e = self.start[order], self.end[order]
        return bool(np.all(s[1:] >= e[:-1]))

    @property
    def duration(self) -> np.ndarray:
        """``end - start`` per interval, shape ``(N,)``."""
        return self.end - self.start

    def total_duration(self) -> float:
        """Sum of ``end - start`` (seconds)."""
        return float(np.sum(self.end - self.start))

    # -------------------------------------------------------------- reordering
    def sort(self) -> Interval:
        """Sort the rows by ``start`` (ties by ``end``) in place, reordering every column; returns ``self``."""
        order = np.lexsort((self.end, self.start))
        for k in self.keys():
            self.__dict__[k] = getattr(self, k)[order]
        return self

    def coalesce(self, eps: float = 1e-6) -> Interval:
        """Merge overlapping intervals and intervals separated by a gap smaller than ``eps``.

        With the default ``eps`` touching intervals (``[0, 1)``, ``[1, 2)``) merge; with ``eps=0``
        only overlapping ones do. Returns a new sorted, disjoint Interval with only ``start`` and
        ``end`` (other columns cannot be merged).

        Example:
            >>> iv = Interval(start=[0.0, 1.0, 2.0, 5.0, 5.5, 10.0], end=[1.0, 2.0, 3.0, 5.5, 7.0, 12.0])
            >>> iv.coalesce().start, iv.coalesce().end
            (array([ 0.,  5., 10.]), array([ 3.,  7., 12.]))
        """
        if not eps >= 0:
            raise ValueError(f"Interval.coalesce: 'eps' must be >= 0 (seconds), but got {eps}.")
        if len(self) == 0:
            return Interval(np.empty(0), np.empty(0))
        order = np.lexsort((self.end, self.start))
        s, e = self.start[order], self.end[order]
        reach = np.maximum.accumulate(e)
        new_group = np.concatenate([[True], s[1:] - reach[:-1] >= eps])
        group = np.cumsum(new_group) - 1
        starts = s[new_group]
        ends = np.zeros(starts.size)
        np.maximum.at(ends, group, e)
        ends = np.maximum(ends, starts)
        return Interval(starts, ends)

    def dilate(self, size: float, max_len: float | None = None) -> Interval:
        """Grow each interval by ``size`` seconds on both sides without overlapping its neighbours.

        Neighbours that would collide meet in the middle of their gap. With ``max_len``, an interval
        grows at most until its length reaches ``max_len`` (longer ones are unchanged).
        Requires sorted, disjoint intervals; returns a new Interval (extra columns kept).
        """
        if size < 0:
            raise ValueError(f"Interval.dilate: 'size' must be >= 0, but got {size}.")
        if not (self.is_sorted() and self.is_disjoint()):
            raise ValueError(
                "Interval.dilate: intervals must be sorted and disjoint, but they are not. "
                "Call .sort() and .coalesce() first."
            )
        s, e = self.start, self.end
        grow = np.full(s.shape, float(size))
        if max_len is not None:
            grow = np.minimum(grow, np.maximum(0.0, (max_len - (e - s)) / 2.0))
        new_s, new_e = s - grow, e + grow
        if s.size > 1:
            mid = (e[:-1] + s[1:]) / 2.0
            new_e[:-1] = np.minimum(new_e[:-1], np.maximum(mid, e[:-1]))
            new_s[1:] = np.maximum(new_s[1:], np.minimum(mid, s[1:]))
        cols = {k: getattr(self, k) for k in self.keys()}
        cols["start"], cols["end"] = new_s, new_e
        return self._new_like(cols)

    def subdivide(self, step: float, drop_short: bool = False) -> Interval:
        """Cut each interval into consecutive pieces of length ``step`` (the last one may be shorter).

        Every other column is repeated for each piece of its interval (time keys other than
        ``start``/``end`` keep their value). A piece shorter than ``step`` (an interval's remainder,
        or a whole interval shorter than ``step``) is kept unless ``drop_short``; zero-length
        intervals give no piece. Lengths within 1e-9 of a multiple of ``step`` count as that multiple.

        Example:
            >>> Interval(start=[0.0], end=[10.0], trial=[7]).subdivide(3.0).end
            array([ 3.,  6.,  9., 10.])
        """
        if not (isinstance(step, (int, float, np.integer, np.floating)) and step > 0 and np.isfinite(step)):
            raise ValueError(
                f"Interval.subdivide: 'step' must be a positive finite number (seconds), but got {step!r}."
            )
        s, e = self.start, self.end
        ratio = (e - s) / step
        whole = np.floor(ratio + 1e-9).astype(np.int64)
        exact = np.abs(ratio - np.round(ratio)) <= 1e-9
        short = ~exact & (ratio > whole)  # a shorter last piece remains
        counts = whole + (short & (not drop_short))
        counts[e <= s] = 0
        row = np.repeat(np.arange(len(self)), counts)
        k = np.arange(row.size) - np.repeat(np.cumsum(counts) - counts, counts)
        starts = s[row] + k * step
        ends = np.minimum(starts + step, e[row])
        # the last piece of an interval covered to its end ends exactly there (no rounding drift)
        snap = (k == counts[row] - 1) & (exact | (short & (not drop_short)))[row]
        ends[snap] = e[row][snap]
        cols = {key: getattr(self, key)[row] for key in self.keys()}
        cols["start"], cols["end"] = starts, ends
        return self._new_like(cols)

    # ------------------------------------------------------------------ algebra
    def _other(self, other: Any, op: str) -> Interval:
        if not isinstance(other, Interval):
            raise TypeError(f"Interval {op}: the other operand must be an Interval, but got {type(other).__name__}.")
        for side, obj in (("left", self), ("right", other)):
            if not obj.is_sorted() or not obj.is_disjoint():
                what = "disjoint (no overlapping intervals)" if obj.is_sorted() else "sorted by start"
                raise ValueError(
                    f"Interval {op}: the {side} operand must be sorted and disjoint, but it is not {what} "
                    f"(starts {obj.start.tolist()[:6]}, ends {obj.end.tolist()[:6]}). Merge it with .coalesce() "
                    f"(or .sort() when it is only unsorted)."
                )
        return other

    def __and__(self, other: Interval) -> Interval:
        """Intersection (as sets of time points); result is sorted, disjoint, without extra columns.

        Both operands must be sorted and disjoint. Point intervals ``[t, t]`` follow the rules of
        :func:`_set_operation` (a point inside the closed other interval is kept).
        """
        other = self._other(other, "&")
        return Interval._from_arrays(*_set_operation(self.start, self.end, other.start, other.end, "and"))

    def __or__(self, other: Interval) -> Interval:
        """Union (as sets of time points); result is sorted, disjoint, without extra columns."""
        other = self._other(other, "|")
        return Interval._from_arrays(*_set_operation(self.start, self.end, other.start, other.end, "or"))

    def difference(self, other: Interval) -> Interval:
        """Time points in ``self`` and not in ``other``; sorted, disjoint, without extra columns."""
        other = self._other(other, "difference")
        return Interval._from_arrays(*_set_operation(self.start, self.end, other.start, other.end, "difference"))

    def __sub__(self, other: Interval) -> Interval:
        return self.difference(other)

    # ------------------------------------------------------------------ slicing
    def _is_monotonic(self, s: np.ndarray, e: np.ndarray) -> bool:
        """Whether both ``start`` and ``end`` are non-decreasing (cached per pair of arrays)."""
        d = self.__dict__
        cached = d.get("_monotonic")
        if cached is not None and cached[0] is s and cached[1] is e:
            return cached[2]
        flag = s.size < 2 or bool(np.all(s[1:] >= s[:-1]) and np.all(e[1:] >= e[:-1]))
        d["_monotonic"] = (s, e, flag)
        return flag

    def slice(self, start: float, end: float, reset_origin: bool = True) -> Interval:
        """Rows that overlap ``[start, end)``, kept whole (as in temporaldata: not clipped).

        A zero-length row ``[x, x]`` is kept when ``start <= x < end``. With ``reset_origin``
        every time key is made relative to ``start``. Use :meth:`clip` to also cut rows at the
        window edges.
        """
        return self._window(start, end, reset_origin, False)

    def clip(self, start: float, end: float, reset_origin: bool = True) -> Interval:
        """Like :meth:`slice`, but ``start``/``end`` are cut to the window ``[start, end)``.

        This is how the ``domain`` of a sliced object is computed.
        """
        return self._window(start, end, reset_origin, True)

    def _window(self, start: float, end: float, reset_origin: bool, clip: bool) -> Interval:
        # hot path of Data.slice: kept lean (one pass over the columns, views where possible)
        s, e = self.start, self.end
        sel: Any = None
        if end <= start:
            sel = slice(0, 0)
        elif self._is_monotonic(s, e):
            # sorted starts and ends: the kept rows are one contiguous block
            i0 = int(e.searchsorted(start, side="right"))
            i1 = int(s.searchsorted(end, side="left"))
            if not (i0 > 0 and e[i0 - 1] == start and s[i0 - 1] == start):  # else: zero-length rows at start
                sel = slice(i0, i1 if i1 > i0 else i0)
        if sel is None:
            sel = (s < end) & ((e > start) | ((s == e) & (s >= start)))
        shift = start if reset_origin else 0.0
        timekeys = self._timekeys
        cols = {}
        d = self.__dict__
        items = (
            [(k, getattr(self, k)) for k in self.keys()] if "_columns" in d
            else [(k, v) for k, v in d.items() if k[0] != "_"]
        )
        for k, col in items:
            col = col[sel]
            if k in timekeys:
                if clip and k == "start":
                    col = np.maximum(col, start)
                elif clip and k == "end":
                    col = np.minimum(col, end)
                if shift:
                    col = col - shift
            cols[k] = col
        out = self._new_like(cols)
        if isinstance(sel, slice):
            out.__dict__["_monotonic"] = (cols["start"], cols["end"], True)
        return out

    def select_by_interval(self, interval: Interval) -> Interval:
        """Rows that overlap any interval of ``interval`` (kept whole, times unchanged)."""
        if len(interval) == 0 or len(self) == 0:
            return self[np.zeros(len(self), dtype=bool)]
        sel_s, sel_e = _set_operation(interval.start, interval.end, np.empty(0), np.empty(0), "or")
        # row overlaps the (disjoint, sorted) selection iff some piece has piece.start < end and piece.end > start
        k = np.searchsorted(sel_e, self.start, side="right")  # first piece ending after each start
        ok = k < sel_s.size
        piece_start = sel_s[np.minimum(k, sel_s.size - 1)]
        # overlap: piece.start < end; a zero-length row [x, x] counts as the point x
        mask = ok & ((piece_start < self.end) | (piece_start <= self.start))
        return self[mask]

    def split(
        self,
        sizes: Sequence[float] | dict[str, float],
        shuffle: bool = False,
        random_seed: int | None = None,
    ) -> list[Interval] | dict[str, Interval]:
        """Split the rows into consecutive groups by ratios (summing to 1) or counts (summing to N).

        Args:
            sizes: list of ratios/counts (returns a list) or ``{name: ratio}`` (returns a dict).
            shuffle: assign rows to groups at random instead of in order (each group stays in order).
            random_seed: seed for ``shuffle``.
        """
        names = list(sizes.keys()) if isinstance(sizes, dict) else None
        values = np.asarray(list(sizes.values()) if names is not None else list(sizes), dtype=np.float64)
        n = len(self)
        if values.size == 0 or np.any(values < 0):
            raise ValueError(f"Interval.split: 'sizes' must be non-negative and non-empty, but got {sizes!r}.")
        if np.all(values == np.round(values)) and values.sum() == n and n > 1:
            counts = values.astype(int)
        elif abs(values.sum() - 1.0) < 1e-6:
            bounds = np.round(np.cumsum(values) * n).astype(int)
            bounds[-1] = n
            counts = np.diff(np.concatenate([[0], bounds]))
        else:
            raise ValueError(
                f"Interval.split: 'sizes' must be ratios summing to 1 or counts summing to len={n}, but they "
                f"sum to {values.sum():g}. Normalise them."
            )
        order = np.arange(n)
        if shuffle:
            order = np.random.default_rng(random_seed).permutation(n)
        parts, offset = [], 0
        for c in counts:
            idx = np.sort(order[offset : offset + c])
            parts.append(self[idx])
            offset += c
        return dict(zip(names, parts)) if names is not None else parts

    def __repr__(self) -> str:
        cols = ", ".join(f"{k}={self._shape_of(k)}" for k in self.keys())
        return f"Interval({cols})"

    # ---------------------------------------------------------------------- io
    def to_hdf5(self, file: Any) -> None:
        """Write into an open, empty ``h5py.Group`` (layout in docs/data.md)."""
        group = file
        _hdf5.write_columns(group, "Interval", self.to_dict())
        group.attrs["timekeys"] = _hdf5.bytes_list(self.timekeys())

    @classmethod
    def from_hdf5(cls, file: Any) -> Interval:
        """Read an ``Interval`` group into memory (:class:`LazyInterval` reads on first access)."""
        group = file
        _hdf5.check_group(group, "Interval", f"{cls.__name__}.from_hdf5")
        cols = _hdf5.columns_of(group)
        _hdf5.require_columns(group, cols, "Interval", ("start", "end"))
        timekeys = _hdf5.str_list(group.attrs.get("timekeys")) or ["start", "end"]
        return cls._from_columns({k: c.get() for k, c in cols.items()}, _timekeys=timekeys)


def _check_timekeys(owner: str, timekeys: list[str], required: list[str], columns: dict[str, Any]) -> None:
    for key in required:
        if key not in timekeys:
            raise ValueError(f"{owner}: 'timekeys' must contain {key!r}, but got {timekeys}. Add {key!r}.")
    for key in timekeys:
        if key not in required and key not in columns:
            raise ValueError(
                f"{owner}: time key {key!r} is not a column; columns are {required + list(columns)}. "
                f"Remove it from 'timekeys' or add the column."
            )


def _register_timekey(obj: Any, timekey: str) -> None:
    if timekey not in obj.keys():
        raise ValueError(
            f"{type(obj).__name__}.register_timekey: {timekey!r} is not a column; columns are {obj.keys()}. "
            f"Add the column first."
        )
    if timekey not in obj._timekeys:
        obj.__dict__["_timekeys"] = list(obj._timekeys) + [timekey]
