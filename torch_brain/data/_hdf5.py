"""HDF5 storage in the brainsets/temporaldata layout, eager and lazy reading.

Layout (see docs/data.md): every object is a group whose ``object`` attribute names its type.

- ``Data``: attrs ``object="Data"``, ``absolute_start`` (float), scalar attributes as group attrs
  (datetimes as ``str``); numpy arrays as datasets; containers and nested Data as subgroups; its
  ``domain`` (if any) as an ``Interval`` subgroup named ``domain``.
- ``ArrayDict``: one dataset per column; attr ``_unicode_keys`` lists the columns stored as
  fixed-length byte strings that are read back as ``str``.
- ``Interval``: as ArrayDict plus attr ``timekeys``.
- ``IrregularTimeSeries``: as Interval plus a ``domain`` subgroup and the dataset
  ``timestamp_indices_1s`` = ``searchsorted(timestamps, arange(d0, d1 + 1, 1.0))`` over the domain
  ``[d0, d1]``, used by lazy slicing to read only the rows a window needs.
- ``RegularTimeSeries``: one dataset per column, attr ``sampling_rate``, ``domain`` subgroup.

Lazy objects keep h5py datasets and read on first access; slices of a lazy series remember a row
range and a time shift and read just those rows when a column is first used.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import weakref
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._array_dict import ArrayDict
from ._data import Data, _Deferred, _DeferredSlice, _restore
from ._interval import Interval
from ._timeseries import IrregularTimeSeries, RegularTimeSeries

__all__ = ["read_data", "read_group", "write_object"]

_HAS_PREADV = hasattr(os, "preadv")
_KNOWN_OBJECTS = ("ArrayDict", "Data", "Interval", "IrregularTimeSeries", "RegularTimeSeries")
_INDEX_KEY = "timestamp_indices_1s"


# =============================================================================================
# writing
# =============================================================================================
def _encode_strings(arr: np.ndarray) -> np.ndarray:
    """Unicode array -> fixed-length bytes (ASCII when possible, else UTF-8)."""
    try:
        return arr.astype("S")
    except UnicodeEncodeError:
        return np.char.encode(arr, "utf-8")


def _bytes_list(names: list[str]) -> np.ndarray:
    return np.array([n.encode("utf-8") for n in names], dtype="S") if names else np.array([], dtype="S1")


def _write_columns(obj: ArrayDict, group: h5py.Group, where: str) -> list[str]:
    unicode_keys = []
    for key in obj.keys():
        arr = np.asarray(getattr(obj, key))
        if arr.dtype.kind == "U":
            arr = _encode_strings(arr)
            unicode_keys.append(key)
        elif arr.dtype.kind == "O":
            raise TypeError(
                f"to_hdf5: column {where}/{key} has dtype object, which HDF5 cannot store. "
                f"Convert it to a numeric array or to str with arr.astype(str)."
            )
        group.create_dataset(key, data=arr)
    return unicode_keys


def _timestamp_index(timestamps: np.ndarray, domain: Interval) -> np.ndarray:
    if len(domain) == 0:
        return np.zeros(0, dtype=np.int64)
    grid = np.arange(domain.start[0], domain.end[-1] + 1.0, 1.0)
    return np.searchsorted(timestamps, grid).astype(np.int64)


def _scalar_attr(value: Any, where: str) -> Any:
    if isinstance(value, (str, bytes, bool, int, float, np.generic)):
        return value
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return str(value)
    if isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        if arr.dtype.kind == "U":
            arr = _encode_strings(arr)
        if arr.dtype.kind == "O":
            raise TypeError(f"to_hdf5: attribute {where} is a list of mixed types; HDF5 cannot store it. Use an array.")
        return arr
    raise TypeError(
        f"to_hdf5: attribute {where} is a {type(value).__name__}, which cannot be stored. Supported: containers, "
        f"Data, numpy arrays, str/int/float/bool, datetimes (stored as str), lists. Remove it or convert it."
    )


def write_object(obj: Any, group: h5py.Group) -> None:
    """Write ``obj`` (Data or a container) into the (empty) h5py group ``group``."""
    where = group.name
    if isinstance(obj, Data):
        group.attrs["object"] = "Data"
        group.attrs["absolute_start"] = float(obj.absolute_start)
        unicode_keys = []
        for key in obj.keys():
            value = getattr(obj, key)
            if isinstance(value, (ArrayDict, Data)):
                write_object(value, group.create_group(key))
            elif isinstance(value, np.ndarray):
                if value.dtype.kind == "U":
                    group.create_dataset(key, data=_encode_strings(value))
                    unicode_keys.append(key)
                elif value.dtype.kind == "O":
                    raise TypeError(
                        f"to_hdf5: array {where}/{key} has dtype object, which HDF5 cannot store. "
                        f"Convert it to a numeric array or to str with arr.astype(str)."
                    )
                else:
                    group.create_dataset(key, data=value)
            elif value is None:
                continue
            else:
                group.attrs[key] = _scalar_attr(value, f"{where}/{key}".replace("//", "/"))
        if unicode_keys:
            group.attrs["_unicode_keys"] = _bytes_list(unicode_keys)
        if obj.domain is not None:
            write_object(obj.domain, group.create_group("domain"))
        return
    if isinstance(obj, RegularTimeSeries):
        group.attrs["object"] = "RegularTimeSeries"
        group.attrs["sampling_rate"] = float(obj.sampling_rate)
        unicode_keys = _write_columns(obj, group, where)
        if unicode_keys:
            group.attrs["_unicode_keys"] = _bytes_list(unicode_keys)
        write_object(obj.domain, group.create_group("domain"))
        return
    if isinstance(obj, IrregularTimeSeries):
        group.attrs["object"] = "IrregularTimeSeries"
        unicode_keys = _write_columns(obj, group, where)
        group.attrs["_unicode_keys"] = _bytes_list(unicode_keys)
        group.attrs["timekeys"] = _bytes_list(obj.timekeys())
        group.create_dataset(_INDEX_KEY, data=_timestamp_index(obj.timestamps, obj.domain))
        write_object(obj.domain, group.create_group("domain"))
        return
    if isinstance(obj, Interval):
        group.attrs["object"] = "Interval"
        unicode_keys = _write_columns(obj, group, where)
        group.attrs["_unicode_keys"] = _bytes_list(unicode_keys)
        group.attrs["timekeys"] = _bytes_list(obj.timekeys())
        return
    if isinstance(obj, ArrayDict):
        group.attrs["object"] = "ArrayDict"
        unicode_keys = _write_columns(obj, group, where)
        group.attrs["_unicode_keys"] = _bytes_list(unicode_keys)
        return
    raise TypeError(f"to_hdf5: cannot write a {type(obj).__name__} at {where}; expected Data or a container.")


# =============================================================================================
# reading helpers
# =============================================================================================
def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (bytes, str)):
        value = [value]
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(value).ravel()]


def _decode(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind != "S":
        return arr
    try:
        return arr.astype("U")
    except UnicodeDecodeError:
        return np.char.decode(arr, "utf-8")


def _attr_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return _decode(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _object_type(group: h5py.Group) -> str:
    kind = group.attrs.get("object")
    if isinstance(kind, bytes):
        kind = kind.decode("utf-8")
    if kind not in _KNOWN_OBJECTS:
        found = "no 'object' attribute" if kind is None else f"object={kind!r}"
        raise ValueError(
            f"from_hdf5: group {group.name!r} in {group.file.filename!r} has {found}; expected one of "
            f"{list(_KNOWN_OBJECTS)}. The file was not written by torch_brain/brainsets/temporaldata "
            f"(or by a newer, unsupported version); re-create it with Data.to_hdf5."
        )
    return kind


class _RawFile:
    """A read-only OS file descriptor on an HDF5 file, closed when no column uses it any more."""

    __slots__ = ("fd", "__weakref__")

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY)

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except OSError:  # pragma: no cover
            pass


_RAW_FILES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _raw_file(path: str) -> _RawFile:
    st = os.stat(path)
    key = (path, st.st_ino, st.st_mtime_ns)
    raw = _RAW_FILES.get(key)
    if raw is None:
        raw = _RawFile(path)
        _RAW_FILES[key] = raw
    return raw


class _Column:
    """One dataset of a lazily opened group; the full value is cached after the first full read.

    Row ranges of contiguous, unfiltered numeric datasets in files opened read-only are read with
    one ``os.preadv`` at the dataset's byte offset (the bytes h5py would read), which costs a
    fraction of h5py's generic indexing; anything else goes through h5py.
    """

    __slots__ = ("ds", "unicode", "value", "nrows", "_tail", "_dtype", "_raw", "_offset", "_rowbytes")

    def __init__(self, ds: h5py.Dataset, unicode: bool) -> None:
        self.ds = ds
        self.unicode = unicode
        self.value = None
        shape = ds.shape
        self.nrows = shape[0] if shape else 0
        self._tail = tuple(shape[1:])
        self._dtype = ds.dtype
        self._raw: Any = None  # None: not checked yet; False: use h5py

    def get(self) -> np.ndarray:
        if self.value is None:
            v = self.ds[()]
            self.value = _decode(v) if self.unicode else v
        return self.value

    def _check_raw(self) -> None:
        self._raw = False
        ds = self.ds
        try:
            f = ds.file
            if not (_HAS_PREADV and f.mode == "r" and f.driver == "sec2" and ds.chunks is None
                    and self._dtype.kind in "biuf" and self._dtype.metadata is None
                    and ds.external is None and not ds.is_virtual and self.nrows):
                return
            offset = ds.id.get_offset()
            if offset is None:
                return
            self._offset = int(offset)
            self._rowbytes = int(self._dtype.itemsize * int(np.prod(self._tail, dtype=np.int64)))
            self._raw = _raw_file(f.filename)
        except Exception:  # any doubt: h5py path
            self._raw = False

    def read(self, lo: int, hi: int) -> np.ndarray:
        if self.value is not None:  # a window never shares memory with the cached recording
            return self.value[lo:hi].copy()
        if hi <= lo:
            return np.empty((0,) + self._tail, dtype=_decode(np.empty(0, self._dtype)).dtype)
        if self._raw is None:
            self._check_raw()
        if self._raw:
            v = np.empty((hi - lo,) + self._tail, dtype=self._dtype)
            if os.preadv(self._raw.fd, [v], self._offset + lo * self._rowbytes) == v.nbytes:
                return v
        v = self.ds[lo:hi]
        return _decode(v) if self.unicode else v


def _columns_of(group: h5py.Group, skip: tuple[str, ...] = ()) -> dict[str, _Column]:
    unicode = set(_str_list(group.attrs.get("_unicode_keys")))
    cols = {}
    for key, item in group.items():
        if key in skip or not isinstance(item, h5py.Dataset):
            continue
        cols[key] = _Column(item, key in unicode)
    lengths = {k: c.nrows for k, c in cols.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"from_hdf5: the columns of group {group.name!r} in {group.file.filename!r} do not share their first "
            f"dimension: {lengths}. The file is corrupt; re-create it."
        )
    return cols


# =============================================================================================
# lazy containers
# =============================================================================================
class _LazyMixin:
    """Columns resolved on first access from ``self._columns`` (name -> _Column)."""

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
        # pickle / copy give an in-memory object (h5py datasets cannot travel between processes)
        eager = self._new_like({k: getattr(self, k) for k in self.keys()})
        return (_restore, (type(eager), eager.__dict__))

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


class LazyInterval(_LazyMixin, Interval):
    """Interval whose columns are read from HDF5 on first access (slicing reads it whole, once)."""


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
        if ts.size > 1 and not (np.all(ts[1:] >= ts[:-1]) and np.isfinite(ts[[0, -1]]).all()):
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
        od["_columns"] = d["_columns"]
        od["_n"] = d["_n"]
        od["_row_range"] = (b0 + i0, b0 + i1)
        return out


# =============================================================================================
# reading
# =============================================================================================
def _read_interval(group: h5py.Group, lazy: bool) -> Interval:
    cols = _columns_of(group)
    timekeys = _str_list(group.attrs.get("timekeys")) or ["start", "end"]
    for key in ("start", "end"):
        if key not in cols:
            raise ValueError(
                f"from_hdf5: Interval group {group.name!r} in {group.file.filename!r} has no {key!r} dataset "
                f"(found {sorted(cols)}). The file is corrupt; re-create it."
            )
    if lazy:
        out = object.__new__(LazyInterval)
        out.__dict__.update(_timekeys=timekeys, _columns=cols)
        return out
    out = object.__new__(Interval)
    out.__dict__["_timekeys"] = timekeys
    for key, col in cols.items():
        out.__dict__[key] = col.get()
    return out


def _read_domain(group: h5py.Group) -> Interval | None:
    sub = group.get("domain")
    if sub is None or not isinstance(sub, h5py.Group):
        return None
    return _read_interval(sub, lazy=False)


def read_group(group: h5py.Group, lazy: bool = False) -> Any:
    """Read the object stored in ``group`` (dispatching on its ``object`` attribute)."""
    kind = _object_type(group)
    if kind == "Data":
        return _read_data_group(group, lazy)
    if kind == "Interval":
        return _read_interval(group, lazy)
    if kind == "ArrayDict":
        cols = _columns_of(group)
        if lazy:
            out = object.__new__(LazyArrayDict)
            out.__dict__["_columns"] = cols
            return out
        out = object.__new__(ArrayDict)
        out.__dict__.update({k: c.get() for k, c in cols.items()})
        return out
    if kind == "IrregularTimeSeries":
        cols = _columns_of(group, skip=(_INDEX_KEY,))
        if "timestamps" not in cols:
            raise ValueError(
                f"from_hdf5: IrregularTimeSeries group {group.name!r} in {group.file.filename!r} has no "
                f"'timestamps' dataset (found {sorted(cols)}). The file is corrupt; re-create it."
            )
        timekeys = _str_list(group.attrs.get("timekeys")) or ["timestamps"]
        domain = _read_domain(group)
        if lazy:
            nrows = cols["timestamps"].nrows
            if domain is None:
                domain = Interval._from_arrays(np.empty(0), np.empty(0))
            index_ds = group.get(_INDEX_KEY)
            if index_ds is not None and len(domain) and isinstance(index_ds, h5py.Dataset):
                tidx = _TimeIndex(float(domain.start[0]), np.asarray(index_ds[()], dtype=np.int64), nrows)
            else:
                tidx = _TimeIndex(0.0, np.zeros(0, dtype=np.int64), nrows)
            out = object.__new__(LazyIrregularTimeSeries)
            out.__dict__.update(_timekeys=timekeys, _domain=domain, _columns=cols, _index=tidx)
            return out
        columns = {k: c.get() for k, c in cols.items()}
        ts = columns.pop("timestamps")
        return IrregularTimeSeries(
            ts, timekeys=timekeys, domain="auto" if domain is None else domain, **columns
        )
    # RegularTimeSeries
    cols = _columns_of(group)
    fs = float(group.attrs["sampling_rate"])
    domain = _read_domain(group)
    t0 = float(domain.start[0]) if domain is not None and len(domain) else float(group.attrs.get("domain_start", 0.0))
    if lazy:
        out = object.__new__(LazyRegularTimeSeries)
        n = next(iter(cols.values())).nrows if cols else 0
        out.__dict__.update(_sampling_rate=fs, _domain_start=t0, _columns=cols, _n=n)
        return out
    out = object.__new__(RegularTimeSeries)
    out.__dict__.update(_sampling_rate=fs, _domain_start=t0)
    out.__dict__.update({k: c.get() for k, c in cols.items()})
    return out


def _read_data_group(group: h5py.Group, lazy: bool) -> Data:
    out = object.__new__(Data)
    d = out.__dict__
    d["_domain"] = None
    d["_absolute_start"] = float(group.attrs.get("absolute_start", 0.0))
    unicode = set(_str_list(group.attrs.get("_unicode_keys")))
    pending = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            if key == "domain":
                d["_domain"] = _read_interval(item, lazy=False)
            else:
                d[key] = read_group(item, lazy)
        elif lazy:
            col = _Column(item, key in unicode)
            pending[key] = _Deferred(col.get)
        else:
            value = item[()]
            d[key] = _decode(value) if key in unicode else value
    for key, value in group.attrs.items():
        if key in ("object", "absolute_start", "_unicode_keys"):
            continue
        d[key] = _attr_value(value)
    if pending:
        d["_pending"] = pending
    return out


def read_data(file: Any, lazy: bool = True) -> Data:
    """Read a Data object from an open h5py File/Group or a path (opened read-only)."""
    if isinstance(file, (str, Path)):
        path = Path(file)
        if not path.exists():
            raise FileNotFoundError(
                f"Data.from_hdf5: file {str(path)!r} does not exist. Check the path (and that the brainset was prepared)."
            )
        if path.is_dir() or not h5py.is_hdf5(path):
            raise ValueError(
                f"Data.from_hdf5: {str(path)!r} is not an HDF5 file (no HDF5 signature found). Pass a .h5 file written "
                f"by Data.to_hdf5 / brainsets."
            )
        try:
            handle = h5py.File(path, "r")
        except OSError as err:  # truncated or damaged: h5py's message alone does not name the file
            raise ValueError(
                f"Data.from_hdf5: could not open {str(path)!r} ({err}); the file is truncated or damaged. "
                f"Re-create it with Data.to_hdf5 / brainsets."
            ) from None
        data = read_data(handle, lazy=lazy)
        if lazy:
            data.__dict__["_file"] = handle  # keep the file open as long as the object lives
        else:
            handle.close()
        return data
    if not isinstance(file, h5py.Group):
        raise TypeError(
            f"Data.from_hdf5: expected an open h5py.File/Group or a path, but got {type(file).__name__}. "
            f"Use h5py.File(path, 'r')."
        )
    kind = _object_type(file)
    if kind != "Data":
        raise TypeError(
            f"Data.from_hdf5: group {file.name!r} holds a {kind}, not a Data object. Read it with {kind}.from_hdf5."
        )
    return _read_data_group(file, lazy)
