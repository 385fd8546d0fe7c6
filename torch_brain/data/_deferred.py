"""Values computed on first use, shared by every window of a lazily read recording.

This module sits at the bottom of the data layer: it imports nothing from :mod:`torch_brain.data`.
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


class _Deferred:
    """A value read on first use and then cached (e.g. a dataset of a lazily read Data)."""

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


def _restore(cls: type, state: dict) -> Any:
    """Rebuild an object from its ``__dict__`` (used by pickle and copy)."""
    obj = object.__new__(cls)
    obj.__dict__.update(state)
    return obj
