"""HDF5 storage primitives in the brainsets/temporaldata layout (h5py and numpy only).

The containers write and read themselves through these functions (``to_hdf5`` / ``from_hdf5``
delegate here); this module knows nothing about the containers, so the data layer imports only
downward: ``_deferred``/``_hdf5`` → containers → lazy containers → ``Data``.

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
"""

from __future__ import annotations

import datetime as _dt
import os
import weakref
from pathlib import Path
from typing import Any

import h5py
import numpy as np

__all__: list[str] = []

_HAS_PREADV = hasattr(os, "preadv")
KNOWN_OBJECTS = ("ArrayDict", "Data", "Interval", "IrregularTimeSeries", "RegularTimeSeries")
INDEX_KEY = "timestamp_indices_1s"


# =============================================================================================
# writing
# =============================================================================================
def encode_strings(arr: np.ndarray) -> np.ndarray:
    """Unicode array -> fixed-length bytes (ASCII when possible, else UTF-8)."""
    try:
        return arr.astype("S")
    except UnicodeEncodeError:
        return np.char.encode(arr, "utf-8")


def bytes_list(names: list[str]) -> np.ndarray:
    return np.array([n.encode("utf-8") for n in names], dtype="S") if names else np.array([], dtype="S1")


def write_array(group: h5py.Group, key: str, value: np.ndarray, what: str = "column") -> bool:
    """Write one array as a dataset; returns True when it was stored as (unicode) bytes."""
    arr = np.asarray(value)
    if arr.dtype.kind == "O":
        raise TypeError(
            f"to_hdf5: {what} {group.name.rstrip('/')}/{key} has dtype object, which HDF5 cannot store. "
            f"Convert it to a numeric array or to str with arr.astype(str)."
        )
    unicode = arr.dtype.kind == "U"
    group.create_dataset(key, data=encode_strings(arr) if unicode else arr)
    return unicode


def write_columns(group: h5py.Group, kind: str, columns: dict[str, np.ndarray], always_keys: bool = True) -> None:
    """Mark ``group`` as holding a ``kind`` object and write its columns (+ ``_unicode_keys``)."""
    group.attrs["object"] = kind
    unicode_keys = [key for key, value in columns.items() if write_array(group, key, value)]
    if unicode_keys or always_keys:
        group.attrs["_unicode_keys"] = bytes_list(unicode_keys)


def timestamp_index(timestamps: np.ndarray, domain_start: np.ndarray, domain_end: np.ndarray) -> np.ndarray:
    """``searchsorted(timestamps, arange(d0, d1 + 1, 1.0))`` over the domain ``[d0, d1]``."""
    if len(domain_start) == 0:
        return np.zeros(0, dtype=np.int64)
    grid = np.arange(domain_start[0], domain_end[-1] + 1.0, 1.0)
    return np.searchsorted(timestamps, grid).astype(np.int64)


def scalar_attr(value: Any, where: str) -> Any:
    """A value storable as an HDF5 attribute (datetimes as ``str``, lists as arrays)."""
    if isinstance(value, (str, bytes, bool, int, float, np.generic)):
        return value
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return str(value)
    if isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        if arr.dtype.kind == "U":
            arr = encode_strings(arr)
        if arr.dtype.kind == "O":
            raise TypeError(f"to_hdf5: attribute {where} is a list of mixed types; HDF5 cannot store it. Use an array.")
        return arr
    raise TypeError(
        f"to_hdf5: attribute {where} is a {type(value).__name__}, which cannot be stored. Supported: containers, "
        f"Data, numpy arrays, str/int/float/bool, datetimes (stored as str), lists. Remove it or convert it."
    )


# =============================================================================================
# reading
# =============================================================================================
def str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (bytes, str)):
        value = [value]
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(value).ravel()]


def decode(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind != "S":
        return arr
    try:
        return arr.astype("U")
    except UnicodeDecodeError:
        return np.char.decode(arr, "utf-8")


def attr_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return decode(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def object_type(group: h5py.Group) -> str:
    """The ``object`` attribute of ``group`` (one of KNOWN_OBJECTS), or a ValueError that says why not."""
    kind = group.attrs.get("object")
    if isinstance(kind, bytes):
        kind = kind.decode("utf-8")
    if kind not in KNOWN_OBJECTS:
        found = "no 'object' attribute" if kind is None else f"object={kind!r}"
        raise ValueError(
            f"from_hdf5: group {group.name!r} in {group.file.filename!r} has {found}; expected one of "
            f"{list(KNOWN_OBJECTS)}. The file was not written by torch_brain/brainsets/temporaldata "
            f"(or by a newer, unsupported version); re-create it with Data.to_hdf5."
        )
    return kind


def check_group(group: Any, expected: str, reader: str) -> None:
    """Raise unless ``group`` is an h5py Group holding an ``expected`` object."""
    if not isinstance(group, h5py.Group):
        raise TypeError(
            f"{reader}: expected an open h5py.File/Group, but got {type(group).__name__}. "
            f"Use h5py.File(path, 'r')."
        )
    kind = object_type(group)
    if kind != expected:
        raise TypeError(
            f"{reader}: group {group.name!r} holds a {kind}, not a {expected} object. Read it with {kind}.from_hdf5 "
            f"(or read the whole file with Data.from_hdf5)."
        )


def open_file(path: str | Path, reader: str) -> h5py.File:
    """Open an HDF5 file read-only, with clear errors for a missing path or a non-HDF5 file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{reader}: file {str(path)!r} does not exist. Check the path (and that the brainset was prepared)."
        )
    if path.is_dir() or not h5py.is_hdf5(path):
        raise ValueError(
            f"{reader}: {str(path)!r} is not an HDF5 file (no HDF5 signature found). Pass a .h5 file written "
            f"by Data.to_hdf5 / brainsets."
        )
    try:
        return h5py.File(path, "r")
    except OSError as err:  # truncated or damaged: h5py's message alone does not name the file
        raise ValueError(
            f"{reader}: could not open {str(path)!r} ({err}); the file is truncated or damaged. "
            f"Re-create it with Data.to_hdf5 / brainsets."
        ) from None


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


class _FileState:
    """Whether the file a lazy column reads from was closed through ``Data.close`` (checked per read:
    an attribute read, where asking h5py costs microseconds)."""

    __slots__ = ("closed", "__weakref__")

    def __init__(self) -> None:
        self.closed = False


_FILE_STATES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def file_state(f: h5py.File) -> _FileState:
    """The shared open/closed state of an open file (one per open file)."""
    key = f.id.id
    state = _FILE_STATES.get(key)
    if state is None:
        state = _FileState()
        _FILE_STATES[key] = state
    return state


def mark_closed(f: h5py.File) -> None:
    """Record that ``f`` is being closed: columns read from it refuse to read from now on."""
    state = _FILE_STATES.pop(f.id.id, None)
    if state is not None:
        state.closed = True


def _closed_error() -> ValueError:
    return ValueError(
        "from_hdf5: this lazily read object's HDF5 file was closed (Data.close() or the end of a `with` block), "
        "so its unread columns are gone. Call .materialize() before closing, or keep the file open while you "
        "use the object."
    )


class Column:
    """One dataset of a lazily opened group; the full value is cached after the first full read.

    Row ranges of contiguous, unfiltered numeric datasets in files opened read-only are read with
    one ``os.preadv`` at the dataset's byte offset (the bytes h5py would read), which costs a
    fraction of h5py's generic indexing; anything else goes through h5py.
    """

    __slots__ = ("ds", "unicode", "state", "value", "nrows", "_tail", "_dtype", "_raw", "_offset", "_rowbytes")

    def __init__(self, ds: h5py.Dataset, unicode: bool, state: _FileState | None = None) -> None:
        self.ds = ds
        self.unicode = unicode
        self.state = file_state(ds.file) if state is None else state
        self.value = None
        shape = ds.shape
        self.nrows = shape[0] if shape else 0
        self._tail = tuple(shape[1:])
        self._dtype = ds.dtype
        self._raw: Any = None  # None: not checked yet; False: use h5py

    def fresh(self) -> Column:
        """A reader of the same dataset without the cached value (for deep copies)."""
        out = Column.__new__(Column)
        for name in Column.__slots__:
            if hasattr(self, name):
                setattr(out, name, getattr(self, name))
        out.value = None
        return out

    def get(self) -> np.ndarray:
        if self.value is None:
            if self.state.closed:
                raise _closed_error()
            v = self.ds[()]
            self.value = decode(v) if self.unicode else v
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
        """Rows ``lo:hi`` as a new array (never a view of the cached full column)."""
        if self.value is not None:
            return self.value[lo:hi].copy()
        if hi <= lo:
            return np.empty((0,) + self._tail, dtype=decode(np.empty(0, self._dtype)).dtype)
        if self.state.closed:
            raise _closed_error()
        if self._raw is None:
            self._check_raw()
        if self._raw:
            v = np.empty((hi - lo,) + self._tail, dtype=self._dtype)
            if os.preadv(self._raw.fd, [v], self._offset + lo * self._rowbytes) == v.nbytes:
                return v
        v = self.ds[lo:hi]
        return decode(v) if self.unicode else v


def columns_of(group: h5py.Group, skip: tuple[str, ...] = ()) -> dict[str, Column]:
    """A lazy reader per dataset of ``group`` (sub-groups and ``skip`` left out), checked for equal length."""
    unicode = set(str_list(group.attrs.get("_unicode_keys")))
    state = file_state(group.file)
    cols = {}
    for key, item in group.items():
        if key in skip or not isinstance(item, h5py.Dataset):
            continue
        cols[key] = Column(item, key in unicode, state)
    lengths = {k: c.nrows for k, c in cols.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"from_hdf5: the columns of group {group.name!r} in {group.file.filename!r} do not share their first "
            f"dimension: {lengths}. The file is corrupt; re-create it."
        )
    return cols


def require_columns(group: h5py.Group, cols: dict[str, Column], kind: str, names: tuple[str, ...]) -> None:
    for key in names:
        if key not in cols:
            raise ValueError(
                f"from_hdf5: {kind} group {group.name!r} in {group.file.filename!r} has no {key!r} dataset "
                f"(found {sorted(cols)}). The file is corrupt; re-create it."
            )


def domain_group(group: h5py.Group) -> h5py.Group | None:
    sub = group.get("domain")
    return sub if isinstance(sub, h5py.Group) else None
