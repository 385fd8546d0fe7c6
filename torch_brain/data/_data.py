"""``Data``: a recording (or a window of one) made of named containers, nested ``Data`` groups,
numpy arrays and scalar attributes, with a time ``domain``."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

from . import _hdf5
from ._array_dict import ArrayDict
from ._deferred import _Deferred, _DeferredSlice, _restore
from ._interval import Interval, _set_operation
from ._lazy import LazyArrayDict, LazyInterval, LazyIrregularTimeSeries, LazyRegularTimeSeries
from ._timeseries import IrregularTimeSeries, RegularTimeSeries

__all__ = ["Data"]


class Data:
    """A recording or a window of it: named containers plus plain attributes.

    Attributes can be :class:`ArrayDict`, :class:`Interval`, :class:`IrregularTimeSeries`,
    :class:`RegularTimeSeries`, nested :class:`Data`, numpy arrays, or scalars/strings.

    Args:
        domain: ``None`` (no time extent), ``"auto"`` (union of the domains of the time-based
            attributes) or an :class:`Interval`.
        **attrs: the attributes.

    Example:
        >>> data = Data(spikes=IrregularTimeSeries(np.array([0.5, 1.5, 2.5]), domain=Interval(0.0, 3.0)),
        ...             session=Data(id="s1"), domain="auto")
        >>> window = data.slice(1.0, 2.0)
        >>> window.spikes.timestamps, window.absolute_start
        (array([0.5]), 1.0)
    """

    def __init__(self, *, domain: Interval | str | None = None, **attrs: Any) -> None:
        d = self.__dict__
        d["_domain"] = None
        d["_absolute_start"] = 0.0
        for key, value in attrs.items():
            setattr(self, key, value)
        if isinstance(domain, str) and domain == "auto":
            domain = self._auto_domain()
        self.domain = domain

    # ------------------------------------------------------------ attributes
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "domain":
            if value is not None:
                if not isinstance(value, Interval):
                    raise TypeError(
                        f"Data: 'domain' must be an Interval, \"auto\" or None, but got {type(value).__name__}. "
                        f"Use Interval(start, end)."
                    )
                if not (value.is_sorted() and value.is_disjoint()):
                    raise ValueError(
                        f"Data: 'domain' must be sorted, non-overlapping intervals, but got starts "
                        f"{value.start.tolist()[:6]} and ends {value.end.tolist()[:6]}. Use domain.coalesce()."
                    )
            self.__dict__["_domain"] = value
            return
        if name == "absolute_start":
            self.__dict__["_absolute_start"] = float(value)
            return
        pending = self.__dict__.get("_pending")
        if pending and name in pending:
            pending = dict(pending)
            del pending[name]
            self.__dict__["_pending"] = pending
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        pending = self.__dict__.get("_pending")
        if pending and name in pending:
            pending = dict(pending)
            del pending[name]
            self.__dict__["_pending"] = pending
            self.__dict__.pop(name, None)
            return
        object.__delattr__(self, name)

    def __getattr__(self, name: str) -> Any:
        # only reached when normal lookup fails: lazily stored arrays, or a missing attribute
        if name.startswith("__"):
            raise AttributeError(name)
        pending = self.__dict__.get("_pending")
        if pending and name in pending:
            value = pending[name].get()
            self.__dict__[name] = value
            return value
        raise AttributeError(f"Data has no attribute {name!r}; available attributes: {self.keys()}.")

    @property
    def domain(self) -> Interval | None:
        """The time extent of this object (an Interval), or None."""
        dom = self.__dict__["_domain"]
        if type(dom) is _DeferredSlice:
            dom = dom.get()
            self.__dict__["_domain"] = dom
        return dom

    @property
    def absolute_start(self) -> float:
        """Time (seconds, in the original recording) that time 0 of this object corresponds to."""
        return self.__dict__["_absolute_start"]

    def keys(self) -> list[str]:
        """Names of the attributes (not ``domain`` / ``absolute_start``)."""
        keys = [k for k in self.__dict__ if k[0] != "_"]
        pending = self.__dict__.get("_pending")
        if pending:
            keys += [k for k in pending if k not in self.__dict__]
        return keys

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def __reduce__(self) -> tuple:
        # pickle / copy: resolve deferred attributes; never carry open files or un-sliced parents
        state = {k: getattr(self, k) for k in self.keys()}
        state["_domain"] = self.domain
        state["_absolute_start"] = self.absolute_start
        return (_restore, (Data, state))

    def get_nested_attribute(self, path: str) -> Any:
        """Follow a dotted path, e.g. ``"movement_periods.reach_period"`` or ``"cursor.vel"``."""
        obj: Any = self
        walked = []
        for part in path.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                where = ".".join(walked) or "<root>"
                avail = obj.keys() if hasattr(obj, "keys") else []
                raise AttributeError(
                    f"Data.get_nested_attribute({path!r}): {where!r} has no attribute {part!r}; "
                    f"available: {list(avail)}."
                ) from None
            walked.append(part)
        return obj

    def set_nested_attribute(self, path: str, value: Any) -> Data:
        """Set the attribute at a dotted path in place, e.g. ``"session.id"``; returns ``self``.

        Every part but the last must exist (an AttributeError names the missing one); the last is
        created or replaced.
        """
        parent_path, _, name = path.rpartition(".")
        parent = self.get_nested_attribute(parent_path) if parent_path else self
        setattr(parent, name, value)
        return self

    def set_train_domain(self, interval: Interval) -> None:
        """Deprecated (as in temporaldata): sets ``self.train_domain``; assign the attribute instead."""
        self._set_split_domain("train", interval)

    def set_valid_domain(self, interval: Interval) -> None:
        """Deprecated (as in temporaldata): sets ``self.valid_domain``; assign the attribute instead."""
        self._set_split_domain("valid", interval)

    def set_test_domain(self, interval: Interval) -> None:
        """Deprecated (as in temporaldata): sets ``self.test_domain``; assign the attribute instead."""
        self._set_split_domain("test", interval)

    def _set_split_domain(self, split: str, interval: Interval) -> None:
        warnings.warn(
            f"Data.set_{split}_domain() is deprecated; assign the attribute instead: data.{split}_domain = interval.",
            DeprecationWarning,
            stacklevel=3,
        )
        setattr(self, f"{split}_domain", interval)

    @property
    def start(self) -> float | None:
        """Start of the domain (seconds), or None without a domain."""
        dom = self.domain
        return None if dom is None or len(dom) == 0 else float(dom.start[0])

    @property
    def end(self) -> float | None:
        """End of the domain (seconds), or None without a domain."""
        dom = self.domain
        return None if dom is None or len(dom) == 0 else float(dom.end[-1])

    def has_nested_attribute(self, path: str) -> bool:
        """True if :meth:`get_nested_attribute` would succeed."""
        try:
            self.get_nested_attribute(path)
        except AttributeError:
            return False
        return True

    def _auto_domain(self) -> Interval | None:
        starts, ends = [], []
        for key in self.keys():
            value = getattr(self, key)
            dom = None
            if isinstance(value, Interval):
                dom = value
            elif isinstance(value, (IrregularTimeSeries, RegularTimeSeries)):
                dom = value.domain
            elif isinstance(value, Data):
                dom = value.domain
            if dom is not None:
                starts.append(dom.start)
                ends.append(dom.end)
        if not starts:
            return None
        union = _set_operation(np.concatenate(starts), np.concatenate(ends), np.empty(0), np.empty(0), "or")
        return Interval._from_arrays(*union)

    # ---------------------------------------------------------------- slicing
    def slice(self, start: float, end: float, reset_origin: bool = True) -> Data:
        """The window ``[start, end)``.

        Every time-based attribute is sliced (and nested Data recursively): series keep the samples
        in the window, Intervals keep the rows overlapping it (whole), ``domain`` is clipped to it.
        With ``reset_origin`` times become relative to ``start`` and ``absolute_start`` grows by
        ``start``. Non-temporal
        ArrayDicts are shallow-copied (columns shared, so adding a column to the window does not
        change the recording); arrays and scalars are shared.
        """
        start = float(start)
        end = float(end)
        out = object.__new__(Data)
        od = out.__dict__
        src = self.__dict__
        # every time-based attribute is sliced on first access (a training step rarely reads all)
        deferred = {}
        for key, value in src.items():
            if key[0] == "_":
                continue
            if isinstance(value, _SLICEABLE):
                deferred[key] = _DeferredSlice(value, start, end, reset_origin)
            elif isinstance(value, ArrayDict):
                od[key] = value._shallow_copy()
            else:
                od[key] = value
        pending = src.get("_pending")
        if pending:
            for key, item in pending.items():
                if key in src:
                    continue
                deferred[key] = _DeferredSlice(item, start, end, reset_origin) if type(item) is _DeferredSlice else item
        if deferred:
            od["_pending"] = deferred
        dom = src["_domain"]
        od["_domain"] = None if dom is None else _DeferredSlice(dom, start, end, reset_origin, clip=True)
        od["_absolute_start"] = src["_absolute_start"] + start if reset_origin else src["_absolute_start"]
        return out

    def select_by_interval(self, interval: Interval) -> Data:
        """Keep only what lies inside ``interval`` (times unchanged).

        Irregular series keep their events inside it, regular series become irregular ones,
        Intervals keep rows that overlap it, nested Data recurse, and ``domain`` is intersected.
        """
        if not isinstance(interval, Interval):
            raise TypeError(
                f"Data.select_by_interval: 'interval' must be an Interval, but got {type(interval).__name__}."
            )
        out = object.__new__(Data)
        od = out.__dict__
        for key in self.keys():
            value = getattr(self, key)
            if isinstance(value, (Interval, IrregularTimeSeries, RegularTimeSeries, Data)):
                od[key] = value.select_by_interval(interval)
            elif isinstance(value, ArrayDict):
                od[key] = value._shallow_copy()
            else:
                od[key] = value
        dom = self.domain
        od["_domain"] = None if dom is None else dom & interval
        od["_absolute_start"] = self.absolute_start
        return out

    # ------------------------------------------------------------------ misc
    def materialize(self) -> Data:
        """Read everything still on disk into memory (recursively, in place); returns ``self``."""
        for key in self.keys():
            value = getattr(self, key)
            if isinstance(value, (ArrayDict, Data)):
                value.materialize()
        self.__dict__.pop("_pending", None)
        _ = self.domain  # resolves a deferred window domain
        return self

    def __repr__(self) -> str:
        parts = []
        for key in self.keys():
            value = self.__dict__.get(key)
            if value is None and key not in self.__dict__:
                parts.append(f"{key}=<not loaded>")
            elif isinstance(value, np.ndarray):
                parts.append(f"{key}=array{list(value.shape)}")
            else:
                parts.append(f"{key}={value!r}")
        return f"Data({', '.join(parts)})"

    # -------------------------------------------------------------------- io
    def to_hdf5(self, file: Any, serialize_fn_map: dict[type, Callable[[Any], Any]] | None = None) -> None:
        """Write into an open ``h5py.File``/``Group`` opened for writing (layout: docs/data.md).

        Args:
            file: the open group.
            serialize_fn_map: ``{type: fn}``; an attribute (here or in nested Data) that is an instance
                of ``type`` is written as ``fn(value)`` (e.g. ``{MyEnum: str}``).

        Example:
            >>> with h5py.File("session.h5", "w") as f:
            ...     data.to_hdf5(f)
        """
        group = file
        where = group.name.rstrip("/")
        group.attrs["object"] = "Data"
        group.attrs["absolute_start"] = float(self.absolute_start)
        unicode_keys = []
        for key in self.keys():
            value = getattr(self, key)
            for kind, fn in (serialize_fn_map or {}).items():
                if isinstance(value, kind):
                    value = fn(value)
                    break
            if isinstance(value, Data):
                value.to_hdf5(group.create_group(key), serialize_fn_map)
            elif isinstance(value, ArrayDict):
                value.to_hdf5(group.create_group(key))
            elif isinstance(value, np.ndarray):
                if _hdf5.write_array(group, key, value, what="array"):
                    unicode_keys.append(key)
            elif value is not None:
                group.attrs[key] = _hdf5.scalar_attr(value, f"{where}/{key}")
        if unicode_keys:
            group.attrs["_unicode_keys"] = _hdf5.bytes_list(unicode_keys)
        if self.domain is not None:
            self.domain.to_hdf5(group.create_group("domain"))

    def save(self, path: str | Path) -> None:
        """Write to a new HDF5 file at ``path`` (overwritten if it exists)."""
        with h5py.File(path, "w") as f:
            self.to_hdf5(f)

    @classmethod
    def from_hdf5(cls, file: Any, lazy: bool = True) -> Data:
        """Read a Data object from an open ``h5py.File``/``Group`` (or a path).

        Args:
            file: an open h5py File/Group, or a path (str/Path; opened read-only).
            lazy: read attributes only when first accessed, and slice series reading only the rows a
                window needs. The file must stay open while the object is used: :attr:`file` is the
                handle, :meth:`close` (or a ``with`` block) closes it. With ``lazy=False`` and a path,
                everything is read and the file is closed before returning.
        """
        if isinstance(file, (str, Path)):
            handle = _hdf5.open_file(file, "Data.from_hdf5")
            try:
                data = cls.from_hdf5(handle, lazy=lazy)
            except BaseException:
                handle.close()
                raise
            if not lazy:
                handle.close()
            return data
        if not isinstance(file, h5py.Group):
            raise TypeError(
                f"Data.from_hdf5: expected an open h5py.File/Group or a path, but got {type(file).__name__}. "
                f"Pass the path of a .h5 file or h5py.File(path, 'r')."
            )
        _hdf5.check_group(file, "Data", "Data.from_hdf5")
        data = _read_data(file, lazy)
        if lazy:
            data.__dict__["_file"] = file.file
        return data

    @classmethod
    def load(cls, path: str | Path, lazy: bool = True) -> Data:
        """Open the HDF5 file at ``path``; with ``lazy=True`` close it with :meth:`close` or ``with``.

        Example:
            >>> with Data.load("session.h5") as data:
            ...     window = data.slice(1.0, 2.0).materialize()
        """
        return cls.from_hdf5(path, lazy=lazy)

    @property
    def file(self) -> h5py.File | None:
        """The open HDF5 file a lazily read object reads from, or None (in memory, or closed)."""
        f = self.__dict__.get("_file")
        return f if f is not None and f.id.valid else None

    def close(self, strict: bool = False) -> None:
        """Close the HDF5 file of a lazily read object; parts not yet read can no longer be read.

        Args:
            strict: raise a ValueError when no file is open (default: do nothing).
        """
        f = self.file
        if f is None:
            if strict:
                raise ValueError(
                    "Data.close(strict=True): no HDF5 file is open for this object (it was built in memory, read "
                    "with lazy=False, or already closed)."
                )
            return
        _hdf5.mark_closed(f)
        f.close()
        self.__dict__["_file"] = None

    def __enter__(self) -> Data:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def to_dict(self) -> dict[str, Any]:
        """The attributes as ``{name: value}`` (not the file handle, ``domain`` or ``absolute_start``)."""
        return {k: getattr(self, k) for k in self.keys()}

    def __copy__(self) -> Data:
        """A new Data sharing every attribute (and the open file, if any)."""
        out = _restore(Data, {k: v for k, v in self.__dict__.items() if k != "_pending"})
        pending = self.__dict__.get("_pending")
        if pending:
            out.__dict__["_pending"] = dict(pending)
        return out

    def __deepcopy__(self, memo: dict) -> Data:
        """Copies of every attribute; lazy containers stay lazy on the same open file (shared)."""
        out = object.__new__(Data)
        memo[id(self)] = out
        od = out.__dict__
        for key in self.keys():
            od[key] = copy.deepcopy(getattr(self, key), memo)
        od["_domain"] = copy.deepcopy(self.domain, memo)
        od["_absolute_start"] = self.absolute_start
        if "_file" in self.__dict__:
            od["_file"] = self.__dict__["_file"]
        return out


_SLICEABLE = (Interval, IrregularTimeSeries, RegularTimeSeries, Data)



_EAGER = {"ArrayDict": ArrayDict, "Interval": Interval, "IrregularTimeSeries": IrregularTimeSeries,
          "RegularTimeSeries": RegularTimeSeries}
_LAZY = {"ArrayDict": LazyArrayDict, "Interval": LazyInterval, "IrregularTimeSeries": LazyIrregularTimeSeries,
         "RegularTimeSeries": LazyRegularTimeSeries}


def _read_data(group: h5py.Group, lazy: bool) -> Data:
    """Read a ``Data`` group; sub-groups dispatch on their ``object`` attribute."""
    out = object.__new__(Data)
    d = out.__dict__
    d["_domain"] = None
    d["_absolute_start"] = float(group.attrs.get("absolute_start", 0.0))
    unicode = set(_hdf5.str_list(group.attrs.get("_unicode_keys")))
    state = _hdf5.file_state(group.file)
    pending = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            if key == "domain":
                d["_domain"] = Interval.from_hdf5(item)
                continue
            kind = _hdf5.object_type(item)
            d[key] = _read_data(item, lazy) if kind == "Data" else (_LAZY if lazy else _EAGER)[kind].from_hdf5(item)
        elif lazy:
            pending[key] = _Deferred(_hdf5.Column(item, key in unicode, state).get)
        else:
            value = item[()]
            d[key] = _hdf5.decode(value) if key in unicode else value
    for key, value in group.attrs.items():
        if key not in ("object", "absolute_start", "_unicode_keys"):
            d[key] = _hdf5.attr_value(value)
    if pending:
        d["_pending"] = pending
    return out
