"""``Data``: a recording (or a window of one) made of named containers, nested ``Data`` groups,
numpy arrays and scalar attributes, with a time ``domain``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._array_dict import ArrayDict
from ._interval import Interval
from ._timeseries import IrregularTimeSeries, RegularTimeSeries

__all__ = ["Data"]


class _Deferred:
    """A value read from disk on first use and then cached (shared by every slice of a lazy Data)."""

    __slots__ = ("_read", "_value", "_done")

    def __init__(self, read: Any) -> None:
        self._read = read
        self._value = None
        self._done = False

    def get(self) -> Any:
        if not self._done:
            self._value = self._read()
            self._done = True
            self._read = None
        return self._value


class _DeferredSlice:
    """``parent.slice(start, end, reset_origin)`` (or ``.clip`` for domains), computed on first use.

    ``parent`` is a sliceable object or another ``_DeferredSlice`` (window of a window).
    """

    __slots__ = ("_parent", "_args", "_clip", "_value")

    def __init__(self, parent: Any, start: float, end: float, reset_origin: bool, clip: bool = False) -> None:
        self._parent = parent
        self._args = (start, end, reset_origin)
        self._clip = clip
        self._value = None

    def get(self) -> Any:
        if self._parent is not None:
            parent = self._parent
            if type(parent) is _DeferredSlice:
                parent = parent.get()
            self._value = parent.clip(*self._args) if self._clip else parent.slice(*self._args)
            self._parent = None
        return self._value


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
        empty = Interval._from_arrays(np.empty(0), np.empty(0))
        return Interval._from_arrays(np.concatenate(starts), np.concatenate(ends)) | empty

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

    def to_hdf5(self, file: Any) -> None:
        """Write into an open ``h5py.File``/``Group`` opened for writing (layout: docs/data.md).

        Example:
            >>> with h5py.File("session.h5", "w") as f:
            ...     data.to_hdf5(f)
        """
        from ._hdf5 import write_object

        write_object(self, file)

    @classmethod
    def from_hdf5(cls, file: Any, lazy: bool = True) -> Data:
        """Read a Data object from an open ``h5py.File``/``Group`` (or a path when ``lazy=False``).

        Args:
            file: an open h5py File/Group, or a path (str/Path; opened read-only; with ``lazy=True``
                the file stays open for as long as the returned object is used).
            lazy: read attributes only when first accessed, and slice series reading only the rows a
                window needs. The file must stay open while the object is used.
        """
        from ._hdf5 import read_data

        return read_data(file, lazy=lazy)


_SLICEABLE = (Interval, IrregularTimeSeries, RegularTimeSeries, Data)


def _restore(cls: type, state: dict) -> Any:
    """Rebuild an object from its ``__dict__`` (used by pickle and copy)."""
    obj = object.__new__(cls)
    obj.__dict__.update(state)
    return obj
