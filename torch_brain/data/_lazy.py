"""Lazy containers: what ``Data.from_hdf5(..., lazy=True)`` returns for each stored container.

``LazyArrayDict``, ``LazyInterval``, ``LazyIrregularTimeSeries`` and ``LazyRegularTimeSeries`` are
subclasses of the in-memory containers (``isinstance(x, IrregularTimeSeries)`` holds for both), read
their columns from HDF5 on first access, and become the in-memory class on :meth:`materialize`.
Slices of a lazy series remember a row range and a time shift and read just those rows when a
column is first used.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import h5py
import numpy as np

from . import _hdf5
from ._array_dict import ArrayDict
from ._deferred import _DeferredSlice, _restore
from ._interval import Interval
from ._timeseries import IrregularTimeSeries, RegularTimeSeries, _clip_runs, _regular_meta

__all__ = ["LazyArrayDict", "LazyInterval", "LazyIrregularTimeSeries", "LazyRegularTimeSeries"]


# =============================================================================================
# lazy containers
# =============================================================================================
class _LazyMixin:
    """Columns resolved on first access from ``self._columns`` (name -> ``_hdf5.Column``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        eager = type(self).__mro__[2].__name__
        raise TypeError(
            f"{type(self).__name__} objects are opened from HDF5 ({type(self).__name__}.from_hdf5(group) or "
            f"Data.from_hdf5(..., lazy=True)); to build one in memory use {eager}(...)."
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        d = self.__dict__
        cols = d.get("_columns")
        if cols is not None and name in cols:
            value = self._load(name)
            d[name] = value
            return value
        if name == "_domain" and "_domain_deferred" in d:  # window domain, clipped on first use
            value = d.pop("_domain_deferred").get()
            d["_domain"] = value
            return value
        raise AttributeError(f"{type(self).__name__} has no column {name!r}; available columns: {self.keys()}.")

    def _load(self, name: str) -> np.ndarray:
        return self._columns[name].get()

    def __reduce__(self) -> tuple:
        # pickle gives an in-memory object (h5py datasets cannot travel between processes)
        eager = self._new_like({k: getattr(self, k) for k in self.keys()})
        return (_restore, (type(eager), eager.__dict__))

    def __copy__(self) -> Any:
        """A lazy object sharing the file, the column readers and any columns already read."""
        return _restore(type(self), dict(self.__dict__))

    def __deepcopy__(self, memo: dict) -> Any:
        """A lazy object on the same open file; columns already read are copied, none is shared."""
        _ = self._domain if "_domain_deferred" in self.__dict__ else None  # resolve a window's domain
        state = {}
        for key, value in self.__dict__.items():
            if key == "_columns":
                state[key] = {name: col.fresh() for name, col in value.items()}
            elif key == "_index":
                state[key] = value  # read-only
            else:
                state[key] = copy.deepcopy(value, memo)
        out = _restore(type(self), state)
        memo[id(self)] = out
        return out

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            self.__dict__["_dirty"] = True
        super().__setattr__(name, value)

    def keys(self) -> list[str]:
        d = self.__dict__
        return [k for k in d if k[0] != "_"] + [k for k in d["_columns"] if k not in d]

    def _column_len(self, key: str) -> int:
        if key in self.__dict__:
            return len(self.__dict__[key])
        return self._nrows()

    def _nrows(self) -> int:
        for col in self._columns.values():
            return col.nrows
        return 0

    def _shape_of(self, key: str) -> list[int]:
        if key in self.__dict__:
            return list(self.__dict__[key].shape)
        return [len(self)] + list(self._columns[key].ds.shape[1:])

    def _eager_type(self) -> type:
        return type(self).__mro__[2]

    def materialize(self) -> Any:
        """Read every column still on disk and become the in-memory class, in place; returns ``self``."""
        for key in self.keys():
            getattr(self, key)
        eager = self._eager_type()
        for name in eager._META:
            getattr(self, name, None)
        for name in list(self.__dict__):
            if name[0] == "_" and name not in eager._META:
                del self.__dict__[name]
        self.__class__ = eager
        return self


class LazyArrayDict(_LazyMixin, ArrayDict):
    """ArrayDict whose columns are read from HDF5 on first access."""

    @classmethod
    def from_hdf5(cls, file: Any) -> LazyArrayDict:
        """Open an ``ArrayDict`` group without reading it; the file must stay open while it is used."""
        group = file
        _hdf5.check_group(group, "ArrayDict", "LazyArrayDict.from_hdf5")
        return cls._from_columns({}, _columns=_hdf5.columns_of(group))


class LazyInterval(_LazyMixin, Interval):
    """Interval whose columns are read from HDF5 on first access (slicing reads it whole, once)."""

    @classmethod
    def from_hdf5(cls, file: Any) -> LazyInterval:
        """Open an ``Interval`` group without reading it; the file must stay open while it is used."""
        group = file
        _hdf5.check_group(group, "Interval", "LazyInterval.from_hdf5")
        cols = _hdf5.columns_of(group)
        _hdf5.require_columns(group, cols, "Interval", ("start", "end"))
        timekeys = _hdf5.str_list(group.attrs.get("timekeys")) or ["start", "end"]
        return cls._from_columns({}, _timekeys=timekeys, _columns=cols)


class _TimeIndex:
    """What a lazy irregular series needs to turn a time window into a coarse row range."""

    __slots__ = ("grid_start", "indices", "nrows")

    def __init__(self, grid_start: float, indices: np.ndarray, nrows: int) -> None:
        self.grid_start = grid_start
        self.indices = indices
        self.nrows = nrows

    def rows(self, start: float, end: float) -> tuple[int, int]:
        """Row range guaranteed to contain every row with ``start <= t < end``.

        ``indices[k]`` is the first row at or after the grid point ``grid_start + k`` (up to the
        rounding of however the writer computed its grid), so it is a lower bound for any
        ``start >= grid_start + k`` and an upper bound for any ``end <= grid_start + k``. One extra
        grid step on each side makes the bounds immune to that rounding; the exact rows are then
        found with ``searchsorted`` on the timestamps read.
        """
        idx, n, g0 = self.indices, self.nrows, self.grid_start
        m = idx.size
        if m == 0:
            return 0, n
        x = start - g0
        if not x >= 1.0:  # also -inf / nan
            lo = 0
        else:
            lo = int(idx[m - 1 if x >= m else min(math.floor(x) - 1, m - 1)])
        y = end - g0
        if not y < m - 2:  # also +inf / nan
            hi = n
        elif y <= -1.0:  # also -inf
            hi = int(idx[0])
        else:
            hi = int(idx[math.ceil(y) + 1])
        return lo, max(lo, hi)


class LazyIrregularTimeSeries(_LazyMixin, IrregularTimeSeries):
    """IrregularTimeSeries backed by HDF5.

    The object returned by the reader reads (and caches) a whole column on first access. Its
    ``slice`` does no I/O: it returns a lazy window holding a coarse row range (from
    ``timestamp_indices_1s``), the window in file time, and the time shift; the first column access
    reads the timestamps of that range, narrows it exactly and then reads only those rows.
    """

    def _nrows(self) -> int:
        self._resolve()
        rows = self.__dict__.get("_row_range")
        if rows is None:
            return self._index.nrows
        return rows[1] - rows[0]

    def _resolve(self) -> None:
        d = self.__dict__
        window = d.get("_window")
        if window is None:
            return
        lo, hi = d["_row_range"]
        ts = self._columns["timestamps"].read(lo, hi)
        if ts.size > 1 and not ((ts[1:] >= ts[:-1]).all() and math.isfinite(ts[0]) and math.isfinite(ts[-1])):
            column = self._columns["timestamps"].ds  # NaN fails ">=", so this also catches NaN
            raise ValueError(
                f"IrregularTimeSeries {column.name!r} of {column.file.filename!r}: timestamps {lo}..{hi} are not "
                "sorted and finite (NaN, inf or a decrease), so windows cannot be cut from it. Re-create the file "
                "with sorted, finite timestamps (IrregularTimeSeries checks them when built)."
            )
        a = int(ts.searchsorted(window[0], side="left"))
        b = int(ts.searchsorted(window[1], side="left"))
        d["_row_range"] = (lo + a, lo + b)
        d["_window"] = None
        if "timestamps" not in d:
            shift = d["_shift"]
            ts = ts[a:b]
            d["timestamps"] = ts - shift if shift else ts

    def _load(self, name: str) -> np.ndarray:
        d = self.__dict__
        if d.get("_row_range") is None:
            return self._columns[name].get()
        self._resolve()
        if name in d:  # timestamps, filled by _resolve
            return d[name]
        lo, hi = d["_row_range"]
        value = self._columns[name].read(lo, hi)
        shift = d["_shift"]
        if shift and name in d["_timekeys"]:
            value = value - shift
        return value

    def slice(self, start: float, end: float, reset_origin: bool = True) -> IrregularTimeSeries:
        d = self.__dict__
        if d.get("_dirty"):  # columns were replaced in memory: slice what is in memory
            return IrregularTimeSeries.slice(self._eager_copy(), start, end, reset_origin)
        shift = d.get("_shift", 0.0)
        fs, fe = shift + start, shift + end
        window = d.get("_window")
        rows = d.get("_row_range")
        if window is not None:
            fs, fe = max(fs, window[0]), min(fe, window[1])
        if fe < fs:
            fe = fs
        lo, hi = self._index.rows(fs, fe)
        if rows is not None:
            lo, hi = max(lo, rows[0]), min(hi, rows[1])
            hi = max(lo, hi)
        out = object.__new__(LazyIrregularTimeSeries)
        od = out.__dict__
        od["_timekeys"] = d["_timekeys"]
        od["_domain_deferred"] = _DeferredSlice(
            d["_domain"] if "_domain" in d else d["_domain_deferred"], start, end, reset_origin, clip=True
        )
        od["_columns"] = d["_columns"]
        od["_index"] = self._index
        od["_row_range"] = (lo, hi)
        od["_window"] = (fs, fe)
        od["_shift"] = shift + start if reset_origin else shift
        return out

    def _eager_copy(self) -> IrregularTimeSeries:
        cols = {k: getattr(self, k) for k in self.keys()}
        return self._new_like(cols)

    @classmethod
    def from_hdf5(cls, file: Any) -> LazyIrregularTimeSeries:
        """Open an ``IrregularTimeSeries`` group, reading only its domain and its 1 s time index."""
        group = file
        _hdf5.check_group(group, "IrregularTimeSeries", "LazyIrregularTimeSeries.from_hdf5")
        cols = _hdf5.columns_of(group, skip=(_hdf5.INDEX_KEY,))
        _hdf5.require_columns(group, cols, "IrregularTimeSeries", ("timestamps",))
        timekeys = _hdf5.str_list(group.attrs.get("timekeys")) or ["timestamps"]
        dom = _hdf5.domain_group(group)
        domain = Interval._from_arrays(np.empty(0), np.empty(0)) if dom is None else Interval.from_hdf5(dom)
        nrows = cols["timestamps"].nrows
        index_ds = group.get(_hdf5.INDEX_KEY)
        if index_ds is not None and len(domain) and isinstance(index_ds, h5py.Dataset):
            tidx = _TimeIndex(float(domain.start[0]), np.asarray(index_ds[()], dtype=np.int64), nrows)
        else:
            tidx = _TimeIndex(0.0, np.zeros(0, dtype=np.int64), nrows)
        return cls._from_columns({}, _timekeys=timekeys, _domain=domain, _columns=cols, _index=tidx)


class LazyRegularTimeSeries(_LazyMixin, RegularTimeSeries):
    """RegularTimeSeries backed by HDF5; slices are computed arithmetically and read only their rows."""

    def _nrows(self) -> int:
        rows = self.__dict__.get("_row_range")
        if rows is None:
            return self._n
        return rows[1] - rows[0]

    def _load(self, name: str) -> np.ndarray:
        rows = self.__dict__.get("_row_range")
        if rows is None:
            return self._columns[name].get()
        return self._columns[name].read(rows[0], rows[1])

    def _rows(self, i0: int, i1: int, shift: float) -> RegularTimeSeries:
        d = self.__dict__
        if d.get("_dirty"):
            return RegularTimeSeries._rows(self, i0, i1, shift)
        base = d.get("_row_range")
        b0 = 0 if base is None else base[0]
        out = object.__new__(LazyRegularTimeSeries)
        od = out.__dict__
        od["_sampling_rate"] = d["_sampling_rate"]
        od["_domain_start"] = d["_domain_start"] + i0 / d["_sampling_rate"] - shift
        od["_runs"] = _clip_runs(d.get("_runs"), i0, i1)
        od["_columns"] = d["_columns"]
        od["_n"] = d["_n"]
        od["_row_range"] = (b0 + i0, b0 + i1)
        return out

    @classmethod
    def from_hdf5(cls, file: Any) -> LazyRegularTimeSeries:
        """Open a ``RegularTimeSeries`` group without reading its samples."""
        group = file
        _hdf5.check_group(group, "RegularTimeSeries", "LazyRegularTimeSeries.from_hdf5")
        cols = _hdf5.columns_of(group)
        n = next(iter(cols.values())).nrows if cols else 0
        return cls._from_columns({}, _columns=cols, _n=n, **_regular_meta(group, n))
