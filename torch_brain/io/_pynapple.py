"""Exact conversions between torch_brain containers and pynapple objects.

=======================================  ==================================================
torch_brain                              pynapple
=======================================  ==================================================
``Interval`` (+ 1-D columns)             ``IntervalSet`` (+ metadata columns)
``IrregularTimeSeries`` without columns  ``Ts``
``IrregularTimeSeries`` / ``Regular...``  ``Tsd`` (1-D column), ``TsdFrame`` (2-D column, or
                                         several 1-D columns by name), ``TsdTensor`` (N-D)
``spikes`` + ``units``                   ``TsGroup`` (``unit_id`` and unit columns as metadata)
``Data``                                 ``dict`` of the above
=======================================  ==================================================

A series' ``domain`` is the pynapple ``time_support``. Times and values are copied exactly
(pynapple keeps float64 times as given). Where pynapple would change the data (it merges
overlapping intervals, drops empty ones, shortens touching ones by 1 µs and drops samples outside
the time support) the conversion is refused with the reason instead (``exact=False`` lets pynapple
repair intervals its own way).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = [
    "decoded_to_pynapple",
    "from_pynapple",
    "spikes_from_tsgroup",
    "spikes_to_tsgroup",
    "to_pynapple",
]

_TSGROUP_COMPUTED = ("rate",)  # metadata pynapple computes itself for every TsGroup


def _nap() -> Any:
    # pynapple (and numba under it) is an optional extra ([pynapple]) and slow to import:
    # imported only when a conversion is actually asked for
    try:
        import pynapple as nap
    except ImportError:
        raise ImportError(
            "pynapple interop needs pynapple: pip install 'torch_brain[pynapple]' (or pip install pynapple)."
        ) from None
    return nap


def _interval_set(interval: Any, where: str, columns: bool = True, exact: bool = True) -> Any:
    nap = _nap()
    start = np.asarray(interval.start, dtype=np.float64)
    end = np.asarray(interval.end, dtype=np.float64)
    if start.size and exact:
        why = _pynapple_would_change(start, end)
        if why:
            raise ValueError(
                f"{where}: {why}, so the conversion would not be exact. Fix the intervals first, or pass "
                "exact=False to let pynapple repair them (with its warnings)."
            )
    meta = {}
    if columns:
        for key in interval.keys():
            if key in ("start", "end"):
                continue
            arr = np.asarray(getattr(interval, key))
            if arr.ndim != 1:
                raise ValueError(
                    f"{where}: column {key!r} has shape {arr.shape}; IntervalSet metadata columns are 1-D. "
                    f"Split it into 1-D columns first."
                )
            meta[key] = arr
    return nap.IntervalSet(start=start, end=end, metadata=meta or None)


def _pynapple_would_change(start: np.ndarray, end: np.ndarray) -> str:
    """Why pynapple's IntervalSet would alter these intervals ('' when it keeps them as they are)."""
    empty = np.flatnonzero(end <= start)
    if empty.size:
        i = int(empty[0])
        return (f"{empty.size} interval(s) have no duration (first: row {i}, [{start[i]!r}, {end[i]!r})) "
                "and pynapple's IntervalSet drops them")
    if np.any(start[1:] < start[:-1]):
        return "intervals are not sorted by start (interval.sort() sorts them) and pynapple reorders them"
    if np.any(start[1:] < end[:-1]):
        return "intervals overlap and pynapple merges them, losing their columns (interval.coalesce())"
    touching = np.flatnonzero(start[1:] == end[:-1])
    if touching.size:
        i = int(touching[0])
        return (f"{touching.size} interval(s) end where the next one starts (first: row {i} ends at "
                f"{end[i]!r}) and pynapple shortens them by 1 microsecond")
    return ""


def _support(series: Any, where: str, exact: bool = True) -> Any:
    dom = series.domain
    return _interval_set(dom, f"{where}.domain", columns=False, exact=exact) if len(dom) else None


def _series(series: Any, column: str | None, where: str, exact: bool = True) -> Any:
    nap = _nap()
    t = np.asarray(series.timestamps, dtype=np.float64)
    cols = [k for k in series.keys() if k != "timestamps" and k not in series.timekeys()]
    support = _support(series, where, exact)
    if column is not None and column not in cols:
        raise ValueError(f"{where}: column={column!r} is not a column; columns are {cols}.")
    if column is None and not cols:
        out = nap.Ts(t=t, time_support=support)
    elif column is None and len(cols) > 1:
        arrs = [np.asarray(getattr(series, c)) for c in cols]
        if any(a.ndim != 1 for a in arrs):
            raise ValueError(
                f"{where}: several columns {cols}, not all 1-D; pass column=NAME to convert one of them."
            )
        out = nap.TsdFrame(t=t, d=np.stack(arrs, axis=1), columns=cols, time_support=support)
    else:
        values = np.asarray(getattr(series, column or cols[0]))
        cls = {1: nap.Tsd, 2: nap.TsdFrame}.get(values.ndim, nap.TsdTensor)
        out = cls(t=t, d=values, time_support=support)
    if len(out) != t.size:
        raise ValueError(
            f"{where}: {t.size - len(out)} sample(s) lie outside the series' domain and pynapple would drop "
            "them; fix the domain (e.g. Interval(t[0], t[-1] + dt)) first."
        )
    return out


def spikes_to_tsgroup(spikes: Any, units: Any | None = None, where: str = "spikes", exact: bool = True) -> Any:
    """A ``TsGroup`` (key ``i`` = unit ``i``) from spikes with ``unit_index`` and optional ``units``.

    Metadata: ``unit_id`` (``units.id``) and every other 1-D column of ``units``.
    """
    nap = _nap()
    t = np.asarray(spikes.timestamps, dtype=np.float64)
    idx = np.asarray(spikes.unit_index, dtype=np.int64)
    n = int(idx.max()) + 1 if idx.size else 0
    meta: dict[str, np.ndarray] = {}
    if units is not None:
        n = max(n, len(units))
        for key in units.keys():
            arr = np.asarray(getattr(units, key))
            if arr.ndim == 1:
                meta["unit_id" if key == "id" else key] = arr
    order = np.argsort(idx, kind="stable")  # stable: each unit's times stay sorted
    bounds = np.searchsorted(idx[order], np.arange(n + 1))
    support = _support(spikes, where, exact)
    group = {u: nap.Ts(t=t[order[bounds[u]:bounds[u + 1]]], time_support=support) for u in range(n)}
    if sum(len(ts) for ts in group.values()) != t.size:
        raise ValueError(f"{where}: some spikes lie outside the domain and pynapple would drop them.")
    return nap.TsGroup(group, time_support=support, metadata=meta or None)


def spikes_from_tsgroup(group: Any) -> tuple[Any, Any]:
    """``(spikes, units)`` from a ``TsGroup``: an ``IrregularTimeSeries`` with ``unit_index`` (rows
    of ``units``, in key order) and an ``ArrayDict`` with ``id`` (metadata ``unit_id`` when present,
    else the keys as str) and the other metadata columns (pynapple's computed ``rate`` left out)."""
    from torch_brain.data import ArrayDict, IrregularTimeSeries

    keys = list(group.keys())
    times = [np.asarray(group[k].t, dtype=np.float64) for k in keys]
    t = np.concatenate(times) if times else np.empty(0)
    idx = np.concatenate([np.full(x.size, i, dtype=np.int64) for i, x in enumerate(times)]) if times else np.empty(0, np.int64)
    order = np.lexsort((idx, t))
    meta = group.metadata if hasattr(group, "metadata") else group._metadata
    columns = {c: np.asarray(meta[c].values if hasattr(meta[c], "values") else meta[c])
               for c in meta.columns if c not in _TSGROUP_COMPUTED}
    ids = columns.pop("unit_id", np.array([str(k) for k in keys]))
    columns = {k: (v.astype(str) if v.dtype.kind == "O" else v) for k, v in columns.items()}
    domain = _interval_from(group.time_support)
    spikes = IrregularTimeSeries(t[order], unit_index=idx[order], domain=domain)
    return spikes, ArrayDict(id=np.asarray(ids).astype(str), **columns)


def _interval_from(iset: Any) -> Any:
    from torch_brain.data import Interval

    start = np.asarray(iset.start, dtype=np.float64).copy()
    end = np.asarray(iset.end, dtype=np.float64).copy()
    meta = {}
    for col in getattr(iset, "metadata_columns", []) or []:
        arr = np.asarray(iset.get_info(col))
        meta[col] = arr.astype(str) if arr.dtype.kind in "OT" else arr
    return Interval(start, end, **meta)


def to_pynapple(obj: Any, *, column: str | None = None, exact: bool = True) -> Any:
    """Convert a torch_brain object to pynapple.

    Args:
        obj: an ``Interval`` (-> ``IntervalSet``), ``IrregularTimeSeries`` /
            ``RegularTimeSeries`` (-> ``Ts`` / ``Tsd`` / ``TsdFrame`` / ``TsdTensor``; spikes with a
            ``unit_index`` column -> ``TsGroup``) or a ``Data`` (-> ``dict`` of every convertible
            attribute; ``spikes`` with ``units`` -> ``"units"``: ``TsGroup``; its domain ->
            ``"domain"``: ``IntervalSet``).
        column: for a series, the column to convert (default: its only column; several 1-D columns
            become one ``TsdFrame`` whose columns are their names).
        exact: refuse intervals pynapple would change (empty, unsorted, overlapping or touching
            ones: it drops, reorders, merges, or shortens them by 1 µs). ``False`` hands them to
            pynapple as they are, which repairs them with its own warnings.

    Raises:
        ValueError: data pynapple would change (overlapping, touching, empty or unsorted intervals
            with ``exact``; samples outside the domain), or an ambiguous series without ``column``.
        ImportError: pynapple is not installed.

    Example:
        >>> group = to_pynapple(data)["units"]      # TsGroup with unit_id metadata
        >>> tsd = to_pynapple(data.position)         # TsdFrame of the position column
    """
    from torch_brain.data import Data, Interval, IrregularTimeSeries, RegularTimeSeries

    if isinstance(obj, Interval):
        return _interval_set(obj, "Interval", exact=exact)
    if isinstance(obj, IrregularTimeSeries) and "unit_index" in obj.keys() and column is None:
        return spikes_to_tsgroup(obj, exact=exact)
    if isinstance(obj, (IrregularTimeSeries, RegularTimeSeries)):
        return _series(obj, column, type(obj).__name__, exact)
    if isinstance(obj, Data):
        out: dict[str, Any] = {}
        left_out: list[str] = []
        for key in obj.keys():
            value = getattr(obj, key)
            try:
                if key == "spikes" and "units" in obj.keys():
                    out["units"] = spikes_to_tsgroup(value, obj.units, "spikes", exact)
                elif isinstance(value, Interval):
                    out[key] = _interval_set(value, key, exact=exact)
                elif isinstance(value, (IrregularTimeSeries, RegularTimeSeries)):
                    cols = [k for k in value.keys() if k not in value.timekeys()]
                    if "unit_index" in cols:
                        out[key] = spikes_to_tsgroup(value, where=key, exact=exact)
                    elif len(cols) > 1 and any(np.ndim(getattr(value, c)) != 1 for c in cols):
                        out.update({f"{key}.{c}": _series(value, c, key, exact) for c in cols})
                    else:
                        out[key] = _series(value, None, key, exact)
            except ValueError as err:  # one attribute pynapple cannot hold exactly: say so, keep the rest
                left_out.append(f"{key} ({err})")
        if left_out:
            warnings.warn(f"to_pynapple: left out {len(left_out)} attribute(s): {'; '.join(left_out)}",
                          stacklevel=2)
        if obj.domain is not None:
            out["domain"] = _interval_set(obj.domain, "domain", columns=False, exact=exact)
        return out
    raise TypeError(
        f"to_pynapple: expected an Interval, IrregularTimeSeries, RegularTimeSeries or Data, but got "
        f"{type(obj).__name__}."
    )


def from_pynapple(obj: Any, *, column: str = "data", sampling_rate: float | None = None) -> Any:
    """Convert a pynapple object (or a dict of them) to torch_brain.

    Args:
        obj: ``IntervalSet`` (-> ``Interval`` with its metadata columns), ``Ts`` / ``Tsd`` /
            ``TsdFrame`` / ``TsdTensor`` (-> ``IrregularTimeSeries``; a ``TsdFrame`` whose column
            labels are all strings becomes one column per label, else one 2-D column), ``TsGroup``
            (-> ``Data(spikes=..., units=...)``) or a ``dict`` of these (-> ``Data``; a ``TsGroup``
            under any key gives ``spikes`` and ``units``).
        column: name of the value column of a ``Tsd`` / unlabelled ``TsdFrame`` / ``TsdTensor``.
        sampling_rate: build a ``RegularTimeSeries`` instead (checked: every timestamp must equal
            ``t[0] + i / sampling_rate`` to 1e-9 s).

    Example:
        >>> trials = from_pynapple(nap.IntervalSet([0, 10], [5, 15], metadata={"go": [1, 0]}))
    """
    from torch_brain.data import Data, Interval, IrregularTimeSeries, RegularTimeSeries

    nap = _nap()
    if isinstance(obj, dict):
        attrs: dict[str, Any] = {}
        domain: Any = "auto"
        for key, value in obj.items():
            conv = from_pynapple(value, column=column)
            if key == "domain":
                domain = conv
                continue
            if isinstance(conv, Data):  # a TsGroup
                attrs["spikes"], attrs["units"] = conv.spikes, conv.units
            else:
                attrs[key] = conv
        return Data(**attrs, domain=domain)
    if isinstance(obj, nap.IntervalSet):
        return _interval_from(obj)
    if isinstance(obj, nap.TsGroup):
        spikes, units = spikes_from_tsgroup(obj)
        return Data(spikes=spikes, units=units, domain=spikes.domain)
    if not isinstance(obj, (nap.Ts, nap.Tsd, nap.TsdFrame, nap.TsdTensor)):
        raise TypeError(
            f"from_pynapple: expected a pynapple IntervalSet, Ts, Tsd, TsdFrame, TsdTensor, TsGroup or a dict "
            f"of them, but got {type(obj).__name__}."
        )
    t = np.asarray(obj.t, dtype=np.float64).copy()
    domain = _interval_from(obj.time_support)
    cols: dict[str, np.ndarray] = {}
    if isinstance(obj, nap.TsdFrame) and all(isinstance(c, str) for c in obj.columns) and \
            all(c.isidentifier() and c != "timestamps" for c in obj.columns):
        values = np.asarray(obj.values)
        cols = {c: values[:, j].copy() for j, c in enumerate(obj.columns)}
    elif isinstance(obj, (nap.Tsd, nap.TsdFrame, nap.TsdTensor)):
        cols = {column: np.asarray(obj.values).copy()}
    if sampling_rate is not None:
        fs = float(sampling_rate)
        expected = t[0] + np.arange(t.size) / fs if t.size else t
        if t.size and np.max(np.abs(expected - t)) > 1e-9:
            raise ValueError(
                f"sampling_rate={fs}: the timestamps are not t[0] + i / {fs} (largest deviation "
                f"{np.max(np.abs(expected - t)):.3g} s); leave sampling_rate=None for an IrregularTimeSeries."
            )
        return RegularTimeSeries(sampling_rate=fs, domain_start=float(t[0]) if t.size else 0.0, **cols)
    return IrregularTimeSeries(t, domain=domain if len(domain) else "auto", **cols)


def decoded_to_pynapple(timestamps: Any, predictions: Any, targets: Any | None = None,
                        columns: list[str] | None = None) -> dict[str, Any]:
    """Decoded-vs-true results as pynapple objects.

    Args:
        timestamps: ``(N,)`` seconds (stitched, in the recording's clock).
        predictions: ``(N,)`` or ``(N, D)`` decoded values (or class indices).
        targets: the true values, same shape (optional).
        columns: labels of the ``D`` dimensions (default ``0..D-1``).

    Returns:
        ``{"decoded": Tsd | TsdFrame, "true": Tsd | TsdFrame, "error": ...}`` (``error`` =
        decoded - true, for continuous values; ``true``/``error`` only with ``targets``).
    """
    nap = _nap()
    t = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    order = np.argsort(t, kind="stable")
    t = t[order]

    def make(values: Any) -> Any:
        v = np.asarray(values)[order]
        if v.ndim == 2 and v.shape[1] == 1:
            v = v[:, 0]
        if v.ndim == 1:
            return nap.Tsd(t=t, d=v)
        return nap.TsdFrame(t=t, d=v, columns=columns)

    out = {"decoded": make(predictions)}
    if targets is not None:
        out["true"] = make(targets)
        p, y = np.asarray(predictions), np.asarray(targets)
        if p.shape == y.shape and p.dtype.kind == "f":
            out["error"] = make(p - y)
    return out
