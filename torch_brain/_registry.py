"""One registry mechanism for every named, pluggable thing: modalities, models, metrics,
optimisers, schedules, brainsets (and later encoders and pretraining objectives).

A :class:`Registry` maps stable names to objects (classes, factories or specs). Things register
themselves where they are defined, with a decorator; users look them up by name (``list_*`` /
``create_*`` helpers wrap :meth:`Registry.names` and :meth:`Registry.create`), and an unknown
name is refused with the known ones listed and the closest one suggested.

Example:
    >>> SHAPES = Registry("shape")
    >>> @SHAPES.register("square")
    ... class Square:
    ...     def __init__(self, side=1.0):
    ...         self.side = side
    >>> SHAPES.create("square", side=2.0).side
    2.0
    >>> SHAPES.names()
    ['square']
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """A read-only mapping ``name -> object`` filled by :meth:`register`.

    Args:
        kind: what the entries are, for messages (``"model"``, ``"metric"`` ...).
        hint: how to add one, appended to the unknown-name error (e.g. the decorator to use).
    """

    def __init__(self, kind: str, *, hint: str = "") -> None:
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator that does.

        Registering the same object again under the same name is a no-op (modules may be
        re-imported); another object under a taken name is refused.

        Raises:
            TypeError: ``name`` is not a non-empty str.
            ValueError: ``name`` is taken by another object.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.kind} name must be a non-empty str, but got {name!r}.")

        def add(value: T) -> T:
            old = self._entries.get(name)
            if old is not None and old is not value and old != value:
                raise ValueError(
                    f"a {self.kind} named {name!r} is already registered ({old!r}); pick another name."
                )
            self._entries[name] = value
            return value

        return add if obj is None else add(obj)

    def get(self, name: str, default: Any = None) -> Any:  # noqa: D401 (Mapping's signature)
        """The entry registered under ``name``, or ``default``."""
        return self._entries.get(name, default)

    def lookup(self, name: Any) -> T:
        """The entry registered under ``name``.

        Raises:
            ValueError: unknown name; the message lists the registered names and the closest one.
        """
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        raise ValueError(
            f"Unknown {self.kind} {name!r}. Valid {self.kind}s are: {', '.join(self.names())}."
            + (f" Did you mean {close[0]!r}?" if close else "")
            + (f" {self.hint}" if self.hint else "")
        )

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the entry ``name`` (a class or factory) with the given arguments."""
        factory = self.lookup(name)
        if not callable(factory):
            raise TypeError(f"{self.kind} {name!r} is registered as {factory!r}, which is not callable.")
        return factory(*args, **kwargs)

    def check_options(self, name: str, options: Iterable[str], *, exclude: Iterable[str] = ()) -> None:
        """Refuses option names the entry ``name`` (a class or factory) does not take.

        The valid names are the parameters of its signature (of ``__init__`` for a class), less
        ``exclude`` (arguments the caller passes itself). An entry that takes ``**kwargs`` accepts all.

        Raises:
            ValueError: naming the option, the closest valid one and all valid ones.
        """
        entry = self.lookup(name)
        target = entry.__init__ if inspect.isclass(entry) else entry
        params = inspect.signature(target).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        valid = sorted(p for p in params if p not in ("self", *exclude))
        for key in options:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1)
                raise ValueError(
                    f"{self.kind} {name!r} has no option {key!r}."
                    + (f" Did you mean {close[0]!r}?" if close else "")
                    + f" Valid options are: {', '.join(valid)}."
                )

    def name_of(self, obj: Any) -> str:
        """The name under which ``obj`` (or, for an instance, its class) is registered.

        Raises:
            ValueError: ``obj`` is not registered.
        """
        for candidate in (obj, type(obj)):
            for name, value in self._entries.items():
                if value is candidate:
                    return name
        raise ValueError(
            f"{obj!r} is not a registered {self.kind}; registered: {', '.join(self.names())}."
        )

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

