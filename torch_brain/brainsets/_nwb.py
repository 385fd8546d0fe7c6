"""Import NWB files (Neurodata Without Borders, e.g. from DANDI) as torch_brain recordings.

What is read (every other object is listed as skipped, with the reason):

* ``units``: spike times (ragged) -> ``spikes`` (``IrregularTimeSeries`` with ``unit_index``);
  unit ids and every scalar column (quality labels, names, ...) plus the electrode group's name and
  location -> ``units``; ``obs_intervals`` -> ``obs_intervals`` (``Interval`` with ``unit_index``);
* ``trials``, ``epochs``, ``invalid_times`` and every other ``TimeIntervals`` table -> ``Interval``
  with all scalar columns (``start_time``/``stop_time`` become ``start``/``end``);
* ``processing["behavior"]``: ``Position`` / ``CompassDirection`` (their ``SpatialSeries``),
  ``BehavioralTimeSeries`` (its ``TimeSeries``) and plain ``TimeSeries`` -> one
  ``IrregularTimeSeries`` (``timestamps`` form) or ``RegularTimeSeries`` (``starting_time`` +
  ``rate``) per series with the values (``data * conversion + offset``) in column ``data``; the
  unit, the NWB path and the reference frame are kept in ``series_info.<name>``. NaN samples are
  never interpolated: their rows are dropped, the gap is cut out of the series' domain and counted;
* continuous ``ElectricalSeries`` (acquisition, ``processing["ecephys"]`` LFP), only when asked,
  only by :func:`prepare_nwb` (copied in chunks, never loaded whole) -> ``RegularTimeSeries``;
* subject, session id/description/start time, devices -> ``subject``, ``session``, ``device``;
* splits: ``train_domain`` / ``valid_domain`` / ``test_domain`` by trials (a seeded random
  assignment of whole trials) when the file has trials, otherwise by time (blocks cut
  train | valid | test), both deterministic.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import re
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from torch_brain.brainsets import _common

__all__ = [
    "NwbImport",
    "NwbPrepared",
    "SPLIT_MODES",
    "from_nwb",
    "list_behavior_paths",
    "prepare_nwb",
    "read_nwb",
]

SPLIT_MODES = ("auto", "trials", "time")
# attribute names the importer itself uses; behaviour / interval tables with these names get a prefix
_RESERVED = {
    "brainset", "subject", "session", "device", "units", "spikes", "obs_intervals", "domain",
    "train_domain", "valid_domain", "test_domain", "series_info", "config", "trials",
}
# built-in modalities a behaviour series can be decoded as, first match wins: (word groups, dim,
# modality); every group needs a word of the series' path starting with one of its prefixes
_TASK_RULES = (
    ((("cursor",), ("vel",)), 2, "cursor_velocity_2d"),
    ((("cursor",), ("pos",)), 2, "cursor_position_2d"),
    ((("hand",), ("vel",)), 2, "hand_velocity_2d"),
    ((("arm",), ("vel",)), 2, "arm_velocity_2d"),
    ((("position", "pos", "xy", "location"),), 2, "position_2d"),
    ((("linear", "position", "pos", "track"),), 1, "linear_position"),
    ((("speed",),), 1, "running_speed"),
)
_END_PAD = 1e-6  # the recording's domain is half-open: the last event must lie inside it


@dataclasses.dataclass
class NwbImport:
    """The result of :func:`read_nwb`.

    Attributes:
        data: the recording (:class:`torch_brain.data.Data`).
        found: one line per object read (``"units: 12 units, 3400 spikes"``).
        skipped: ``(nwb path, reason)`` for every object not read.
        tasks: ``{modality name: {"timestamp_key": ..., "value_key": ...}}`` - the behaviour series
            that a registered modality can decode.
        continuous: NWB paths of the ``ElectricalSeries`` available for a chunked copy.
    """

    data: Any
    found: list[str]
    skipped: list[tuple[str, str]]
    tasks: dict[str, dict[str, str]]
    continuous: list[str]


def _need_pynwb() -> Any:
    # pynwb is an optional extra ([nwb]): imported only when NWB files are actually read
    try:
        import pynwb
    except ImportError:
        raise ImportError(
            "Reading NWB files needs pynwb: pip install 'torch_brain[nwb]' (or pip install pynwb)."
        ) from None
    return pynwb


def _sanitize(name: str) -> str:
    out = re.sub(r"[^0-9a-zA-Z_]+", "_", str(name)).strip("_").lower()
    return out if out and not out[0].isdigit() else f"x_{out}"


def _check_nwb_path(path: str | os.PathLike) -> Path:
    import h5py

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a path to an .nwb file (str or Path), but got {type(path).__name__}.")
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"path: NWB file {str(p)!r} does not exist (or is not a file).")
    if not h5py.is_hdf5(p):
        raise ValueError(
            f"path: {str(p)!r} is not an HDF5 file, so it is not an NWB 2.x file (NWB Zarr and NWB 1.x "
            "are not supported). Convert it with pynwb / NeuroConv to an HDF5 .nwb file."
        )
    with h5py.File(p, "r") as f:
        if "nwb_version" not in f.attrs:
            raise ValueError(
                f"path: {str(p)!r} is an HDF5 file without the 'nwb_version' attribute, so it is not an NWB "
                "file. If it is a torch_brain/brainsets file, load it with Data.from_hdf5 or put it under a "
                "Dataset root instead."
            )
    return p


def _open_nwb(path: Path) -> tuple[Any, Any]:
    pynwb = _need_pynwb()
    io = pynwb.NWBHDF5IO(str(path), mode="r", load_namespaces=True)
    try:
        with warnings.catch_warnings():
            # cached-namespace / version notices from hdmf are about the file, not about our use of it
            warnings.simplefilter("ignore")
            nwb = io.read()
    except Exception as err:
        io.close()
        raise ValueError(f"path: pynwb could not read {str(path)!r} as NWB: {err}") from None
    return io, nwb


# ---------------------------------------------------------------------------------- tables
def _column_values(col: Any) -> np.ndarray | None:
    """A scalar column as a numpy array (object references become their names), or None."""
    values = col.data[:]
    arr = np.asarray(values)
    if arr.dtype.kind == "O":
        items = list(values)
        if all(isinstance(v, bytes) for v in items):
            return np.array([v.decode("utf-8") for v in items], dtype=str)
        if all(isinstance(v, str) for v in items):
            return np.array(items, dtype=str)
        if all(hasattr(v, "name") for v in items):
            return np.array([str(v.name) for v in items], dtype=str)
        return None
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "utf-8")
    if arr.dtype.kind not in "biufU" or arr.ndim != 1:
        return None
    return arr


def _table_columns(table: Any, where: str, skip: Sequence[str],
                   skipped: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """Every scalar column of an hdmf DynamicTable; the others are reported in ``skipped``."""
    from hdmf.common.table import DynamicTableRegion, VectorIndex

    out: dict[str, np.ndarray] = {}
    for name in table.colnames:
        if name in skip:
            continue
        col = table[name]
        if isinstance(col, VectorIndex):
            skipped.append((f"{where}/{name}", "ragged column (a list per row); not a scalar column"))
            continue
        if isinstance(col, DynamicTableRegion):
            skipped.append((f"{where}/{name}", "reference to another table's rows"))
            continue
        try:
            arr = _column_values(col)
        except Exception as err:  # an exotic column type: report it, import the rest
            arr, why = None, f"could not be read ({err})"
        else:
            why = "not a 1-D number/string/bool column"
        if arr is None:
            skipped.append((f"{where}/{name}", why))
            continue
        out[_sanitize(name)] = arr
    return out


def _interval_table(table: Any, where: str, skipped: list[tuple[str, str]]) -> Any:
    from torch_brain.data import Interval

    start = np.asarray(table["start_time"].data[:], dtype=np.float64)
    end = np.asarray(table["stop_time"].data[:], dtype=np.float64)
    cols = _table_columns(table, where, ("start_time", "stop_time"), skipped)
    cols["id"] = np.asarray(table.id[:])
    order = np.lexsort((end, start))
    if np.any(order != np.arange(order.size)):
        cols = {k: v[order] for k, v in cols.items()}
        start, end = start[order], end[order]
    return Interval(start, end, **cols)


# ---------------------------------------------------------------------------------- units
def _read_units(nwb: Any, path: Path, fix_spikes: bool, found: list[str],
                skipped: list[tuple[str, str]]) -> dict[str, Any]:
    from torch_brain.data import ArrayDict, Interval

    units = nwb.units
    if units is None or "spike_times" not in units.colnames:
        raise ValueError(
            f"path: {str(path)!r} has no units table with spike times (nwb.units is "
            f"{'missing' if units is None else 'without spike_times'}); torch_brain decodes from sorted "
            "spikes. Add the sorting output (e.g. with NeuroConv / SpikeInterface) as the Units table."
        )
    ids = np.asarray(units.id[:])
    names = ids.astype(str)
    uniq, counts = np.unique(names, return_counts=True)
    if np.any(counts > 1):
        dup = uniq[counts > 1].tolist()
        raise ValueError(
            f"path: {str(path)!r}: the units table has duplicate unit ids {dup[:10]}; every unit needs its "
            "own id (it names the unit's embedding). Fix the ids in the file (a copy of it)."
        )
    ends = np.asarray(units.spike_times_index.data[:], dtype=np.int64)
    flat = np.asarray(units.spike_times.data[:], dtype=np.float64)
    counts = np.diff(np.concatenate([[0], ends]))
    unit_index = np.repeat(np.arange(ids.size, dtype=np.int64), counts)
    # per unit: sorted?  d < 0 inside a unit's run of spikes
    d = np.diff(flat)
    same_unit = unit_index[1:] == unit_index[:-1]
    back = np.flatnonzero((d < 0) & same_unit)
    if back.size:
        bad_units = np.unique(unit_index[back + 1])
        if not fix_spikes:
            raise ValueError(
                f"path: {str(path)!r}: spike times of {bad_units.size} unit(s) are not sorted (first: unit "
                f"{names[bad_units[0]]!r}, spike {int(back[0] + 1 - (ends[bad_units[0]] - counts[bad_units[0]]))}"
                f" at {flat[back[0] + 1]!r} s after {flat[back[0]]!r} s). Pass fix_spikes=True "
                "(--fix-spikes) to sort them, or fix the file."
            )
        found.append(f"units: sorted the spike times of {bad_units.size} unit(s) (fix_spikes)")
    obs = None
    if "obs_intervals" in units.colnames:
        o_ends = np.asarray(units.obs_intervals_index.data[:], dtype=np.int64)
        o_flat = np.asarray(units.obs_intervals.data[:], dtype=np.float64).reshape(-1, 2)
        o_unit = np.repeat(np.arange(ids.size, dtype=np.int64), np.diff(np.concatenate([[0], o_ends])))
        order = np.lexsort((o_flat[:, 1], o_flat[:, 0]))
        obs = Interval(o_flat[order, 0], o_flat[order, 1], unit_index=o_unit[order])
        inside = np.zeros(flat.size, dtype=bool)
        for u in range(ids.size):  # per unit: spike inside any of its [start, end] observation intervals
            lo, hi = ends[u] - counts[u], ends[u]
            sel = o_unit == u
            if not sel.any():  # no observation intervals given for this unit: nothing to check
                inside[lo:hi] = True
                continue
            order_u = np.argsort(o_flat[sel, 0], kind="stable")
            s_u = o_flat[sel, 0][order_u]
            reach = np.maximum.accumulate(o_flat[sel, 1][order_u])  # overlapping intervals are fine
            t = flat[lo:hi]
            k = np.searchsorted(s_u, t, side="right") - 1
            ok = k >= 0
            ok[ok] = t[ok] <= reach[k[ok]]
            inside[lo:hi] = ok
        n_out = int((~inside).sum())
        if n_out:
            bad_u = np.unique(unit_index[~inside])
            if not fix_spikes:
                first = int(np.argmax(~inside))
                raise ValueError(
                    f"path: {str(path)!r}: {n_out} spike(s) of {bad_u.size} unit(s) lie outside their unit's "
                    f"obs_intervals (first: unit {names[unit_index[first]]!r} at {flat[first]!r} s). Pass "
                    "fix_spikes=True (--fix-spikes) to drop them, or fix the file."
                )
            found.append(f"units: dropped {n_out} spike(s) outside obs_intervals of {bad_u.size} unit(s) (fix_spikes)")
            flat, unit_index = flat[inside], unit_index[inside]
    # unit_index is non-decreasing here, so a stable sort by time orders ties by unit, as
    # lexsort((unit_index, flat)) would, in about half the time
    order = np.argsort(flat, kind="stable")
    spike_times, unit_index = flat[order], unit_index[order]
    columns = _table_columns(units, "units", ("spike_times", "obs_intervals", "electrode_group"), skipped)
    if "electrode_group" in units.colnames:
        groups = list(units["electrode_group"].data[:])
        columns["electrode_group"] = np.array([str(g.name) for g in groups], dtype=str)
        columns["location"] = np.array([str(getattr(g, "location", "") or "") for g in groups], dtype=str)
    columns.pop("id", None)
    columns["n_spikes"] = np.bincount(unit_index, minlength=ids.size).astype(np.int64)
    found.append(f"units: {ids.size} units, {spike_times.size} spikes"
                 + (f", columns {sorted(k for k in columns if k != 'n_spikes')}" if len(columns) > 1 else ""))
    return {
        "units": ArrayDict(id=names, **columns),
        "spike_times": spike_times,
        "unit_index": unit_index,
        "obs": obs,
    }


# ---------------------------------------------------------------------------------- behaviour
def _iter_behavior(nwb: Any) -> Iterator[tuple[str, Any, Any]]:
    """``(path inside processing/behavior, series, container)`` for every TimeSeries there."""
    from pynwb import TimeSeries

    module = nwb.processing.get("behavior")
    if module is None:
        return
    for iname, iface in module.data_interfaces.items():
        if isinstance(iface, TimeSeries):
            yield iname, iface, None
            continue
        inner = getattr(iface, "spatial_series", None) or getattr(iface, "time_series", None) or {}
        for sname, series in inner.items():
            yield f"{iname}/{sname}", series, iface


def list_behavior_paths(path: str | os.PathLike) -> list[str]:
    """Paths (``"Position/position"``, ``"speed"``) of the behaviour series in an NWB file."""
    p = _check_nwb_path(path)
    io, nwb = _open_nwb(p)
    try:
        return [name for name, _, _ in _iter_behavior(nwb)]
    finally:
        io.close()


def _series_values(series: Any) -> np.ndarray:
    data = np.asarray(series.data[:])
    if data.dtype.kind not in "biuf":
        raise TypeError(f"values of dtype {data.dtype}")
    values = data.astype(np.float64) * float(getattr(series, "conversion", 1.0) or 1.0)
    offset = float(getattr(series, "offset", 0.0) or 0.0)
    return values + offset if offset else values


def _gaps(times: np.ndarray, bad: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Spans ``[first NaN sample, next valid sample)`` of every run of NaN rows."""
    d = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
    lo, hi = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    starts = times[lo]
    ends = np.where(hi < times.size, times[np.minimum(hi, times.size - 1)], times[-1] + step)
    return starts, ends


def _read_series(series: Any) -> tuple[Any, dict[str, Any], str]:
    """One behaviour TimeSeries as a container, its info and a one-line summary."""
    from torch_brain.data import Interval, IrregularTimeSeries, RegularTimeSeries

    values = _series_values(series)
    n = values.shape[0]
    if series.timestamps is not None:
        times = np.asarray(series.timestamps[:], dtype=np.float64)
        regular = False
        step = float(np.median(np.diff(times))) if n > 1 else 0.0
    else:
        rate = float(series.rate)
        t0 = float(series.starting_time or 0.0)
        times = t0 + np.arange(n) / rate
        regular, step = True, 1.0 / rate
    if times.size != n:
        raise ValueError(f"{times.size} timestamps for {n} samples")
    if n > 1 and np.any(np.diff(times) < 0):
        raise ValueError("timestamps are not sorted")
    bad = np.isnan(values.reshape(n, -1)).any(axis=1) if values.dtype.kind == "f" else np.zeros(n, bool)
    n_bad = int(bad.sum())
    end = float(times[-1] + step) if n else 0.0
    domain = Interval(np.array([times[0]]), np.array([end])) if n else Interval(np.empty(0), np.empty(0))
    info = {"unit": str(series.unit), "n_samples": n, "n_nan_samples": n_bad}
    note = ""
    if n_bad:
        g_start, g_end = _gaps(times, bad, step)
        domain = domain.difference(Interval(g_start, g_end))
        info.update(n_gaps=int(g_start.size), gap_seconds=float(np.sum(g_end - g_start)))
        note = (f"; {n_bad} NaN sample(s) in {g_start.size} gap(s) ({info['gap_seconds']:.3g} s) kept as gaps "
                "(rows dropped, never interpolated)")
        keep = ~bad
        obj = IrregularTimeSeries(times[keep], data=values[keep], domain=domain)
    elif regular:
        obj = RegularTimeSeries(sampling_rate=1.0 / step, domain_start=float(times[0]) if n else 0.0,
                                data=values)
    else:
        obj = IrregularTimeSeries(times, data=values, domain=domain)
    kind = f"{1.0 / step:g} Hz regular" if regular else "timestamps"
    shape = "x".join(str(s) for s in values.shape)
    return obj, info, f"{shape} ({kind}, unit {series.unit!r}){note}"


def _task_for(name: str, dim: int, used: set[str]) -> str | None:
    # words of the path: "Position/position_xy" -> position, position, xy; camelCase is split too
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+", name)]
    for groups, rule_dim, modality in _TASK_RULES:
        if dim == rule_dim and modality not in used and all(
                any(w.startswith(k) for k in group for w in words) for group in groups):
            return modality
    return None


def _read_behavior(nwb: Any, path: Path, behavior: Sequence[str] | None, found: list[str],
                   skipped: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, str]]]:
    from torch_brain.data import Data

    available = {name: (series, iface) for name, series, iface in _iter_behavior(nwb)}
    if behavior is not None:
        if isinstance(behavior, str):
            behavior = [behavior]
        wanted = [str(b).removeprefix("processing/behavior/") for b in behavior]
        missing = [w for w in wanted if w not in available]
        if missing:
            raise ValueError(
                f"behavior: {missing} not found in {str(path)!r}; the behaviour series in "
                f"processing['behavior'] are {sorted(available) or '(none)'}."
            )
    else:
        wanted = list(available)
    attrs: dict[str, Any] = {}
    infos: dict[str, Any] = {}
    tasks: dict[str, dict[str, str]] = {}
    for name in available:
        if name not in wanted:
            skipped.append((f"processing/behavior/{name}", "not in the requested behavior list"))
    for name in wanted:
        series, iface = available[name]
        leaf = _sanitize(name.split("/")[-1])
        attr = leaf if leaf not in attrs and leaf not in _RESERVED else _sanitize(name)
        if attr in attrs or attr in _RESERVED:
            attr = f"behavior_{_sanitize(name)}"
        try:
            obj, info, summary = _read_series(series)
        except (TypeError, ValueError, AttributeError) as err:
            skipped.append((f"processing/behavior/{name}", f"could not be read as a time series ({err})"))
            continue
        info.update(nwb_path=f"processing/behavior/{name}", neurodata_type=type(series).__name__)
        if iface is not None:
            info["container"] = type(iface).__name__
        frame = getattr(series, "reference_frame", None)
        if frame:
            info["reference_frame"] = str(frame)
        attrs[attr] = obj
        infos[attr] = Data(**info)
        dim = int(np.prod(obj.data.shape[1:])) if obj.data.ndim > 1 else 1
        task = _task_for(f"{name} {type(iface).__name__ if iface is not None else ''}", dim, set(tasks))
        if task is not None and len(obj):
            tasks[task] = {"timestamp_key": f"{attr}.timestamps", "value_key": f"{attr}.data"}
        found.append(f"behavior: {name} -> {attr}: {summary}"
                     + (f"; task {task}" if task else "; no registered modality of this name/dim (kept as data)"))
    return attrs, infos, tasks


# ---------------------------------------------------------------------------------- continuous
def _iter_electrical(nwb: Any) -> Iterator[tuple[str, Any]]:
    """(path, series) of every ElectricalSeries in acquisition and in processing modules, also
    those held by containers such as LFP."""
    from pynwb.ecephys import ElectricalSeries

    places = [(f"acquisition/{name}", obj) for name, obj in nwb.acquisition.items()]
    places += [(f"processing/{mname}/{iname}", iface) for mname, module in nwb.processing.items()
               for iname, iface in module.data_interfaces.items()]
    for where, obj in places:
        if isinstance(obj, ElectricalSeries):
            yield where, obj
        elif hasattr(obj, "electrical_series"):
            for sname, series in obj.electrical_series.items():
                yield f"{where}/{sname}", series


def _series_rate(series: Any) -> float:
    if series.rate is not None:
        return float(series.rate)
    raise ValueError("it has timestamps instead of starting_time + rate (irregular sampling)")


# ---------------------------------------------------------------------------------- splits
def _splits(domain: Any, trials: Any | None, split_by: str, ratios: tuple[float, float, float],
            split_seed: int, n_blocks: int) -> tuple[dict[str, Any], str]:
    from torch_brain.data import Interval

    if split_by not in SPLIT_MODES:
        raise ValueError(f"split_by must be one of {list(SPLIT_MODES)}, but got {split_by!r}.")
    use_trials = split_by == "trials" or (split_by == "auto" and trials is not None and len(trials) >= 3)
    if use_trials:
        if trials is None or len(trials) < 3:
            raise ValueError(
                f"split_by='trials' needs a trials table with at least 3 trials, but the file has "
                f"{0 if trials is None else len(trials)}; use split_by='time' (--split-by time)."
            )
        parts = _common.stratified_trial_split(np.zeros(len(trials)), ratios, split_seed)
        taken = Interval(np.empty(0), np.empty(0))
        out = {}
        for name in _common.SPLIT_NAMES:
            idx = parts[name]
            piece = Interval(trials.start[idx], trials.end[idx]).coalesce(eps=0.0)
            # overlapping trials of different splits: the earlier split keeps the overlap (no leak)
            piece = piece.difference(taken) if len(taken) else piece
            out[name] = piece
            taken = taken | piece
        return out, f"by trials: {len(parts['train'])}/{len(parts['valid'])}/{len(parts['test'])} trials (seed {split_seed})"
    start, end = float(domain.start[0]), float(domain.end[-1])
    pieces = _common.block_split_of_span(start, end, ratios, n_blocks)
    out = {k: Interval(*v) for k, v in pieces.items()}
    return out, f"by time: {n_blocks} block(s) of {(end - start) / n_blocks:.4g} s, each cut {ratios}"


# ---------------------------------------------------------------------------------- entry points
def read_nwb(
    path: str | os.PathLike,
    *,
    brainset: str = "nwb",
    session_id: str | None = None,
    behavior: Sequence[str] | None = None,
    split_by: str = "auto",
    split_ratios: Sequence[float] = _common.DEFAULT_SPLIT_RATIOS,
    split_seed: int = 0,
    n_blocks: int = 5,
    fix_spikes: bool = False,
) -> NwbImport:
    """Read an NWB file into a :class:`~torch_brain.data.Data` and say what was read and skipped.

    Continuous ``ElectricalSeries`` are not read here (they are listed in ``continuous``);
    :func:`prepare_nwb` copies them in chunks.

    Args:
        path: an NWB 2.x HDF5 file. It is opened read-only and never modified.
        brainset: value of ``data.brainset.id``.
        session_id: session id (default: the file's ``session_id``, else the file name's stem).
        behavior: paths of the behaviour series to read (``"Position/position"``; default: all of
            ``processing["behavior"]``). A missing path is an error that lists the existing ones.
        split_by: ``"auto"`` (by trials when the file has at least 3 trials, else by time),
            ``"trials"`` or ``"time"``.
        split_ratios: (train, valid, test) fractions of the trials or of each time block.
        split_seed: seed of the random assignment of trials to splits.
        n_blocks: by time: the recording is cut into this many equal blocks, each split
            train | valid | test in time order.
        fix_spikes: sort unsorted spike times and drop spikes outside their unit's
            ``obs_intervals`` (counted in ``found``); without it both are errors.

    Returns:
        :class:`NwbImport` (``data``, ``found``, ``skipped``, ``tasks``, ``continuous``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an NWB/HDF5 file, no units, duplicate unit ids, unsorted spikes or spikes
            outside ``obs_intervals`` (without ``fix_spikes``), a requested behaviour path that
            does not exist, bad split options.
        ImportError: pynwb is not installed (``pip install 'torch_brain[nwb]'``).
    """
    ratios = _common.check_ratios(split_ratios)
    if split_by not in SPLIT_MODES:
        raise ValueError(f"split_by must be one of {list(SPLIT_MODES)}, but got {split_by!r}.")
    if not (isinstance(n_blocks, (int, np.integer)) and not isinstance(n_blocks, bool) and n_blocks >= 1):
        raise ValueError(f"n_blocks must be a positive integer, but got {n_blocks!r}.")
    p = _check_nwb_path(path)
    _need_pynwb()
    io, nwb = _open_nwb(p)
    try:
        return _read_open(nwb, p, brainset=brainset, session_id=session_id, behavior=behavior,
                          split_by=split_by, ratios=ratios, split_seed=int(split_seed),
                          n_blocks=int(n_blocks), fix_spikes=bool(fix_spikes))
    finally:
        io.close()


def _description(obj: Any, fields: Sequence[str]) -> dict[str, Any]:
    out = {}
    for f in fields:
        v = getattr(obj, f, None) if obj is not None else None
        if v is None or (isinstance(v, str) and not v):
            continue
        if isinstance(v, (_dt.datetime, _dt.date)):
            v = v.isoformat()
        elif isinstance(v, (list, tuple, np.ndarray)):
            v = ", ".join(str(x) for x in v)
        elif not isinstance(v, (str, int, float, bool)):
            v = str(v)
        out[f] = v
    return out


def _read_open(nwb: Any, path: Path, *, brainset: str, session_id: str | None,
               behavior: Sequence[str] | None, split_by: str, ratios: tuple[float, float, float],
               split_seed: int, n_blocks: int, fix_spikes: bool) -> NwbImport:
    from torch_brain.data import Data, Interval, IrregularTimeSeries

    found: list[str] = []
    skipped: list[tuple[str, str]] = []
    units = _read_units(nwb, path, fix_spikes, found, skipped)
    attrs: dict[str, Any] = {}
    # interval tables
    tables: dict[str, Any] = {}
    if nwb.trials is not None:
        tables["trials"] = nwb.trials
    for name, table in (nwb.intervals or {}).items():
        if table is not nwb.trials:
            tables.setdefault(_sanitize(name), table)
    for name, table in tables.items():
        where = f"intervals/{table.name}"
        try:
            interval = _interval_table(table, where, skipped)
        except (KeyError, ValueError, TypeError) as err:
            skipped.append((where, f"could not be read as intervals ({err})"))
            continue
        attr = name if name == "trials" or name not in _RESERVED else f"intervals_{name}"
        attrs[attr] = interval
        cols = [k for k in interval.keys() if k not in ("start", "end", "id")]
        found.append(f"intervals: {table.name} -> {attr}: {len(interval)} rows, columns {cols}")
    beh, infos, tasks = _read_behavior(nwb, path, behavior, found, skipped)
    clash = set(beh) & set(attrs)
    for name in clash:  # a behaviour series named like an interval table
        beh[f"behavior_{name}"] = beh.pop(name)
        infos[f"behavior_{name}"] = infos.pop(name)
    attrs.update(beh)
    # other processing modules and acquisition objects: reported, not read
    continuous = []
    for cpath, series in _iter_electrical(nwb):
        try:
            rate = _series_rate(series)
            shape = "x".join(str(s) for s in series.data.shape)
            continuous.append(cpath)
            skipped.append((cpath, f"ElectricalSeries {shape} at {rate:g} Hz: continuous data is copied only "
                                   "when asked (continuous=[...] / --continuous PATH)"))
        except ValueError as err:
            skipped.append((cpath, f"ElectricalSeries not importable: {err}"))
    known = set(continuous) | {f"processing/behavior/{n}" for n, _, _ in _iter_behavior(nwb)}
    for name, obj in nwb.acquisition.items():
        if f"acquisition/{name}" not in known and not any(c.startswith(f"acquisition/{name}/") for c in continuous):
            skipped.append((f"acquisition/{name}", f"{type(obj).__name__}: not a supported type"))
    for mname, module in nwb.processing.items():
        if mname == "behavior":
            continue
        for iname, iface in module.data_interfaces.items():
            ipath = f"processing/{mname}/{iname}"
            if ipath not in known and not any(c.startswith(ipath + "/") for c in continuous):
                skipped.append((ipath, f"{type(iface).__name__} outside processing['behavior']: not read"))
    # domain: the span of everything read
    starts, ends = [units["spike_times"][:1]], [units["spike_times"][-1:]]
    for value in attrs.values():
        dom = value.domain if hasattr(value, "domain") else value
        if len(dom):
            starts.append(dom.start[:1] if dom.is_sorted() else np.array([dom.start.min()]))
            ends.append(np.array([dom.end.max()]))
    if units["obs"] is not None and len(units["obs"]):
        starts.append(np.array([units["obs"].start.min()]))
        ends.append(np.array([units["obs"].end.max()]))
    if not any(s.size for s in starts):
        raise ValueError(f"path: {str(path)!r} holds no spikes and no timed data; nothing to import.")
    t0 = float(min(np.min(s) for s in starts if s.size))
    t1 = float(max(np.max(e) for e in ends if e.size)) + _END_PAD
    domain = Interval(np.array([t0]), np.array([t1]))
    splits, split_note = _splits(domain, attrs.get("trials"), split_by, ratios, split_seed, n_blocks)
    invalid = attrs.get("invalid_times")
    if invalid is not None and len(invalid):
        # NWB's invalid_times mark data not to analyse: no split samples from them
        cut = Interval(invalid.start, invalid.end)
        splits = {k: v.difference(cut) for k, v in splits.items()}
        split_note += f"; {len(invalid)} invalid_times interval(s) ({cut.coalesce().total_duration():.4g} s) cut out"
    found.append(f"splits: {split_note}")
    sid = session_id or nwb.session_id or path.stem
    subject = _description(nwb.subject, ("subject_id", "species", "sex", "age", "genotype", "strain",
                                         "description", "weight"))
    subject_id = subject.pop("subject_id", None) or "unknown"
    devices = list(nwb.devices.values())
    device = {"id": devices[0].name if devices else f"{sid}_device"}
    if devices:
        device.update(_description(devices[0], ("description", "manufacturer")))
        model = getattr(devices[0], "model", None)  # NWB 2.9+: maker and model name on a DeviceModel
        if model is not None and not isinstance(model, str):
            device.update({f"model_{k}": v for k, v in _description(model, ("name", "manufacturer")).items()})
        if len(devices) > 1:
            device["all"] = ", ".join(d.name for d in devices)
    data = Data(
        brainset=_common.description(id=brainset, source=path.name,
                                     description=f"imported from NWB file {path.name} by torch_brain"),
        subject=Data(id=str(subject_id), **subject),
        session=Data(id=str(sid), **_description(nwb, (
            "session_description", "identifier", "session_start_time", "experimenter", "lab",
            "institution", "experiment_description")), nwb_file=str(path.resolve())),
        device=Data(**device),
        units=units["units"],
        spikes=IrregularTimeSeries(units["spike_times"], unit_index=units["unit_index"], domain=domain),
        **attrs,
        series_info=Data(**infos),
        train_domain=splits["train"],
        valid_domain=splits["valid"],
        test_domain=splits["test"],
        domain=domain,
    )
    if units["obs"] is not None:
        data.obs_intervals = units["obs"]
    if nwb.subject is None:
        skipped.append(("general/subject", "absent: subject id set to 'unknown'"))
    return NwbImport(data=data, found=found, skipped=skipped, tasks=tasks, continuous=continuous)


def from_nwb(path: str | os.PathLike, **options: Any) -> Any:
    """Read an NWB file as a :class:`~torch_brain.data.Data` recording.

    Same options as :func:`read_nwb` (``brainset``, ``session_id``, ``behavior``, ``split_by``,
    ``split_ratios``, ``split_seed``, ``n_blocks``, ``fix_spikes``); use :func:`read_nwb` for the
    list of what was read and skipped, and :func:`prepare_nwb` to write brainset files.

    Example:
        >>> from torch_brain.brainsets import from_nwb
        >>> data = from_nwb("sub-01_ses-01.nwb", behavior=["Position/position"])
        >>> data.spikes.timestamps.shape, data.position.data.shape
    """
    return read_nwb(path, **options).data


# ---------------------------------------------------------------------------------- prepare
@dataclasses.dataclass
class NwbPrepared:
    """What :func:`prepare_nwb` wrote and why it left things out.

    Attributes:
        paths: the session files written (``<root>/<brainset>/<session>.h5``).
        dataset_config: the dataset config YAML written (tasks of every session).
        run_config: a run config YAML for ``torch-brain fit`` (data.root, data.config set).
        reports: ``{input file: NwbImport without data}``.
        failed: ``(input file, reason)`` of the inputs that were not imported.
    """

    paths: list[Path]
    dataset_config: Path | None
    run_config: Path | None
    reports: dict[str, NwbImport]
    failed: list[tuple[str, str]]

    def summary(self) -> str:
        """A human-readable account: found / skipped per file, the tasks, the next command."""
        lines = []
        for src, rep in self.reports.items():
            lines.append(f"{src}:")
            lines += [f"  found   {line}" for line in rep.found]
            lines += [f"  skipped {what}: {why}" for what, why in rep.skipped]
            lines.append(f"  tasks   {sorted(rep.tasks) or '(none: no behaviour series matches a registered modality)'}")
        for src, why in self.failed:
            lines.append(f"{src}: NOT IMPORTED: {why}")
        if self.paths:
            lines.append(f"wrote {len(self.paths)} session file(s) under {self.paths[0].parent}")
        if self.dataset_config is not None:
            lines.append(f"dataset config: {self.dataset_config}")
        elif self.paths:
            lines.append("no dataset config written: no behaviour series matches a registered modality; register "
                         "one (torch_brain.registry.register_modality) and write a multitask_readout entry "
                         "with its timestamp_key / value_key (docs/nwb.md)")
        if self.run_config is not None:
            lines.append(f"train with:     torch-brain fit {self.run_config}")
        return "\n".join(lines)


def _nwb_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[Path] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(p.rglob("*.nwb"))
            if not found:
                raise FileNotFoundError(f"inputs: folder {str(p)!r} holds no *.nwb file.")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"inputs: {str(p)!r} is neither an NWB file nor a folder.")
    if not files:
        raise ValueError("inputs: give at least one .nwb file or folder.")
    return files


def _write_continuous(nwb: Any, cpath: str, group: Any, chunk_rows: int, progress: bool) -> str:
    """Copy one ElectricalSeries into ``group`` as a RegularTimeSeries, ``chunk_rows`` rows at a time."""
    from tqdm.auto import tqdm

    from torch_brain.data import Interval

    series = dict(_iter_electrical(nwb))[cpath]
    rate = _series_rate(series)
    src = series.data
    n = int(src.shape[0])
    shape = tuple(int(s) for s in src.shape)
    conv = float(series.conversion or 1.0)
    off = float(getattr(series, "offset", 0.0) or 0.0)
    t0 = float(series.starting_time or 0.0)
    group.attrs["object"] = "RegularTimeSeries"
    group.attrs["sampling_rate"] = rate
    rows = max(1, min(chunk_rows, n))
    out = group.create_dataset("data", shape=shape, dtype=np.float32,
                               chunks=(min(rows, 65536),) + shape[1:] if n else None)
    with tqdm(total=n, desc=f"copy {cpath}", unit="sample", unit_scale=True, disable=not progress) as bar:
        for i in range(0, n, rows):
            block = np.asarray(src[i:i + rows], dtype=np.float32)
            if conv != 1.0:
                block *= np.float32(conv)
            if off:
                block += np.float32(off)
            out[i:i + rows] = block
            bar.update(block.shape[0])
    Interval(np.array([t0]), np.array([t0 + n / rate])).to_hdf5(group.create_group("domain"))
    return f"{'x'.join(map(str, shape))} at {rate:g} Hz (volts, float32)"


def _readout_entries(tasks: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    from torch_brain.registry import get_modality

    entries = []
    for task in sorted(tasks):
        spec = get_modality(task)
        entry: dict[str, Any] = {"readout_id": task, **tasks[task]}
        if spec.type.name == "CONTINUOUS":
            entry["metrics"] = [{"metric": {"_target_": "torchmetrics.R2Score"}}]
        entries.append(entry)
    return entries


def _write_configs(root: Path, brainset: str, sessions: dict[str, dict[str, dict[str, str]]]) -> tuple[Path | None, Path | None]:
    import yaml

    folder = root / brainset
    # sessions with the same tasks (and keys) share one entry
    groups: dict[str, tuple[dict, list[str]]] = {}
    for sid, tasks in sorted(sessions.items()):
        if not tasks:
            continue
        key = repr(sorted((k, sorted(v.items())) for k, v in tasks.items()))
        groups.setdefault(key, (tasks, []))[1].append(sid)
    if not groups:
        return None, None
    config = [{"selection": [{"brainset": brainset, "sessions": sids}],
               "config": {"multitask_readout": _readout_entries(tasks)}}
              for tasks, sids in groups.values()]
    dataset_path = folder / "dataset.yaml"
    header = (f"# Written by `torch-brain prepare nwb` for the brainset {brainset!r}: one entry per group of\n"
              "# sessions with the same decodable behaviour. Edit freely; re-running prepare overwrites it.\n")
    dataset_path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    run = {"name": f"nwb_{brainset}",
           "data": {"root": str(root.resolve()), "config": str(dataset_path.resolve())}}
    run_path = folder / "fit.yaml"
    run_path.write_text(
        f"# Train on the imported brainset {brainset!r}:  torch-brain fit {run_path}\n"
        "# Any key can be changed on the command line, e.g. trainer.max_steps=200 model.dim=32.\n"
        + yaml.safe_dump(run, sort_keys=False))
    return dataset_path, run_path


def prepare_nwb(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    root: str | os.PathLike,
    *,
    brainset: str = "nwb",
    behavior: Sequence[str] | None = None,
    continuous: Sequence[str] | None = None,
    split_by: str = "auto",
    split_ratios: Sequence[float] = _common.DEFAULT_SPLIT_RATIOS,
    split_seed: int = 0,
    n_blocks: int = 5,
    fix_spikes: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    chunk_rows: int = 100_000,
) -> NwbPrepared:
    """Import NWB files as the brainset ``brainset``: ``<root>/<brainset>/<session>.h5`` plus a
    dataset config (``dataset.yaml``) naming the decodable tasks and a run config (``fit.yaml``).

    Inputs that cannot be imported (not NWB, no units, ...) are reported in ``failed`` and the
    others are written; if none can be imported the first error is raised. Inputs are opened
    read-only and never modified.

    Args:
        inputs: NWB files and/or folders (searched recursively for ``*.nwb``).
        root: output root (the ``data.root`` of the run config).
        brainset: the brainset name (output folder).
        behavior: behaviour series to read (default all); see :func:`read_nwb`.
        continuous: NWB paths of ElectricalSeries to copy (``"acquisition/lfp"``,
            ``"processing/ecephys/LFP/lfp"``), or ``["all"]``; they are copied ``chunk_rows``
            samples at a time (memory does not grow with their length), converted to volts.
        split_by, split_ratios, split_seed, n_blocks, fix_spikes: see :func:`read_nwb`.
        overwrite: replace existing session files.
        progress: progress bars on stderr.
        chunk_rows: samples per chunk of the continuous copy.

    Returns:
        :class:`NwbPrepared`; ``summary()`` is what the CLI prints.

    Example:
        >>> from torch_brain.brainsets import prepare_nwb
        >>> out = prepare_nwb(["sub-01_ses-01.nwb"], "data/processed", brainset="my_lab")
        >>> print(out.summary())
    """
    import h5py

    if not isinstance(brainset, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", brainset):
        raise ValueError(f"brainset must be a folder name (letters, digits, _ . -), but got {brainset!r}.")
    if int(chunk_rows) < 1:
        raise ValueError(f"chunk_rows must be a positive integer, but got {chunk_rows!r}.")
    if isinstance(continuous, str):
        continuous = [continuous]
    files = _nwb_inputs(inputs)
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise ValueError(f"root: {root} exists but is not a folder; pass a folder path as root.")
    options = dict(brainset=brainset, behavior=behavior, split_by=split_by, split_ratios=split_ratios,
                   split_seed=split_seed, n_blocks=n_blocks, fix_spikes=fix_spikes)
    reports: dict[str, NwbImport] = {}
    failed: list[tuple[str, str]] = []
    first_error: Exception | None = None
    planned: dict[str, Path] = {}
    for src in files:
        try:
            rep = read_nwb(src, **options)
        except (ValueError, TypeError, FileNotFoundError) as err:
            failed.append((str(src), str(err)))
            first_error = first_error or err
            continue
        sid = _sanitize(str(rep.data.session.id)) if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(rep.data.session.id)) \
            else str(rep.data.session.id)
        if sid in planned:
            raise ValueError(
                f"inputs: {str(src)!r} and {str(planned[sid])!r} have the same session id {sid!r}; a brainset "
                "needs one id per session. Import them into different brainsets or give distinct session_id."
            )
        rep.data.session.id = sid
        planned[sid] = src
        reports[str(src)] = rep
    if not reports:
        raise first_error  # type: ignore[misc]  (every input failed: the first reason is the error)
    targets = {sid: root / brainset / f"{sid}.h5" for sid in planned}
    _common.check_targets(list(targets.values()), overwrite)
    written: list[Path] = []
    for sid, src in _tqdm_iter(planned.items(), progress, brainset):
        rep = reports[str(src)]
        wanted = list(rep.continuous) if continuous and list(continuous) == ["all"] else list(continuous or [])
        missing = [c for c in wanted if c not in rep.continuous]
        if missing:
            raise ValueError(
                f"continuous: {missing} not found in {str(src)!r}; its ElectricalSeries are "
                f"{rep.continuous or '(none)'}."
            )
        path = targets[sid]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with h5py.File(tmp, "w") as f:
                rep.data.to_hdf5(f)
                if wanted:
                    io, nwb = _open_nwb(Path(src))
                    try:
                        for cpath in wanted:
                            name = _sanitize(cpath.split("/")[-1])
                            while name in f:
                                name = f"continuous_{name}"
                            what = _write_continuous(nwb, cpath, f.create_group(name), int(chunk_rows), progress)
                            rep.found.append(f"continuous: {cpath} -> {name}: {what}")
                            rep.skipped[:] = [s for s in rep.skipped if s[0] != cpath]
                    finally:
                        io.close()
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        written.append(path)
    _common.warn_about_strays(root / brainset, written)
    dataset_path, run_path = _write_configs(root, brainset, {str(r.data.session.id): r.tasks for r in reports.values()})
    return NwbPrepared(written, dataset_path, run_path, reports, failed)


def _tqdm_iter(items: Any, progress: bool, brainset: str) -> Any:
    from tqdm.auto import tqdm

    items = list(items)
    return tqdm(items, desc=f"{brainset}: sessions", unit="session", disable=not progress or len(items) < 2)
