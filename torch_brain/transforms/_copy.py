"""Cheap shallow copies of a window."""

from __future__ import annotations

from torch_brain.data import Data

__all__: list[str] = []


def _shallow_copy(data: Data) -> Data:
    """A new Data sharing every attribute with ``data``, without resolving deferred attributes.

    (``copy.copy`` would go through ``Data.__reduce__``, which reads and slices every attribute
    of a lazily sliced window.) Setting an attribute on the copy never changes ``data``: Data
    replaces, never mutates, its table of deferred attributes.
    """
    out = object.__new__(type(data))
    out.__dict__.update(data.__dict__)
    return out
