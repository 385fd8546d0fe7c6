"""``ArrayDict``: named numpy arrays that share their first dimension.

This is the base of every tabular container in :mod:`torch_brain.data` (``Interval``,
``IrregularTimeSeries``, ``RegularTimeSeries``). Columns are plain instance attributes, so reading
``obj.col`` costs one dictionary lookup. Attributes whose name starts with ``_`` are metadata
(time keys, domain, sampling rate, lazy-loading state) and are never columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _hdf5

__all__ = ["ArrayDict"]


def _as_column(owner: str, key: str, value: Any) -> np.ndarray:
    """Validate one column value and return it as a numpy array with at least one dimension."""
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, (list, tuple)):
        arr = np.asarray(value)
    else:
        raise TypeError(
            f"{owner}: column {key!r} must be a numpy array (or a list), but got "
            f"{type(value).__name__}. Wrap it with np.asarray(...); store scalars on a Data object instead."
        )
    if arr.ndim == 0:
        raise ValueError(
            f"{owner}: column {key!r} must have at least one dimension (one row per element), but got a "
            f"0-d array. Use np.atleast_1d(...) or store the scalar on a Data object instead."
        )
    return arr


class ArrayDict:
    """Named numpy arrays ("columns") that share their first dimension.

    Args:
        **columns: arrays of shape ``(N, ...)``, all with the same ``N``.

    Example:
        >>> units = ArrayDict(id=np.array(["a", "b"]), depth=np.array([10.0, 20.0]))
        >>> units.keys(), len(units)
        (['id', 'depth'], 2)
        >>> units[np.array([False, True])].id
        array(['b'], dtype='<U1')
    """

    # private attributes copied to a new object by row selection (extended by subclasses)
    _META: tuple[str, ...] = ()

    def __init__(self, **columns: np.ndarray) -> None:
        for key, value in columns.items():
            setattr(self, key, value)

    # ------------------------------------------------------------------ columns
    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
            return
        owner = type(self).__name__
        arr = _as_column(owner, name, value)
        for other in self.keys():
            if other != name:
                n = self._column_len(other)
                if arr.shape[0] != n:
                    raise ValueError(
                        f"{owner}: column {name!r} has {arr.shape[0]} rows but column {other!r} has {n}; "
                        f"every column must share the first dimension. Fix the length of {name!r}."
                    )
                break
        object.__setattr__(self, name, arr)

    def _column_len(self, key: str) -> int:
        return len(self.__dict__[key])

    def keys(self) -> list[str]:
        """Names of the columns, in insertion order."""
        return [k for k in self.__dict__ if k[0] != "_"]

    def __len__(self) -> int:
        for key in self.keys():
            return self._column_len(key)
        return 0

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def __getattr__(self, name: str) -> Any:
        # only reached when normal lookup fails
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"{type(self).__name__} has no column {name!r}; available columns: {self.keys()}."
        )

    def __repr__(self) -> str:
        cols = ", ".join(f"{k}={self._shape_of(k)}" for k in self.keys())
        return f"{type(self).__name__}({cols})"

    def _shape_of(self, key: str) -> list[int]:
        return list(getattr(self, key).shape)

    # -------------------------------------------------------------- row select
    def _eager_type(self) -> type:
        return type(self)

    def _new_like(self, columns: dict[str, np.ndarray], **meta: Any) -> ArrayDict:
        """Build an object of the same (eager) type without re-validating, copying metadata."""
        cls = self._eager_type()
        out = object.__new__(cls)
        d = out.__dict__
        for name in cls._META:
            d[name] = getattr(self, name, None)
        d.update(meta)
        d.update(columns)
        return out

    def _normalize_index(self, index: Any) -> Any:
        n = len(self)
        if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
            i = int(index)
            if not -n <= i < n:
                raise IndexError(f"{type(self).__name__}: index {i} is out of range for {n} rows.")
            i %= n
            return slice(i, i + 1)
        if isinstance(index, slice):
            return index
        arr = np.asarray(index)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise ValueError(
                    f"{type(self).__name__}: boolean mask must have shape ({n},), but got {arr.shape}. "
                    f"Build the mask from one of its columns."
                )
            return arr
        if arr.dtype.kind in "iu":
            return arr
        raise TypeError(
            f"{type(self).__name__}: rows can be selected with an int, a slice, a boolean mask or an integer "
            f"array, but got {type(index).__name__} of dtype {arr.dtype}."
        )

    def __getitem__(self, index: Any) -> ArrayDict:
        """Select rows with an int (kept as one row), a slice, a boolean mask or integer indices."""
        index = self._normalize_index(index)
        return self._new_like({k: getattr(self, k)[index] for k in self.keys()})

    def select_by_mask(self, mask: np.ndarray) -> ArrayDict:
        """Return the rows where ``mask`` (bool, shape ``(N,)``) is True, as a new object of the same type."""
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise TypeError(
                f"{type(self).__name__}.select_by_mask: mask must be a boolean array, but got dtype {mask.dtype}. "
                f"Use obj[indices] to select by integer indices."
            )
        return self[mask]

    # ----------------------------------------------------------------- helpers
    def _shallow_copy(self) -> ArrayDict:
        """A new object of the same type sharing the column arrays (and any lazy state)."""
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        return out

    def materialize(self) -> ArrayDict:
        """Load every lazily stored column into memory (no-op for in-memory objects); returns ``self``."""
        return self

    def to_dict(self) -> dict[str, np.ndarray]:
        """Columns as a plain ``{name: array}`` dict (arrays are not copied)."""
        return {k: getattr(self, k) for k in self.keys()}

    def to_hdf5(self, group: Any) -> None:
        """Write this object into an open, empty ``h5py.Group`` (layout in docs/data.md)."""
        _hdf5.write_columns(group, "ArrayDict", self.to_dict())

    @classmethod
    def from_hdf5(cls, group: Any) -> ArrayDict:
        """Read an ``ArrayDict`` group into memory (:class:`LazyArrayDict` reads on first access)."""
        _hdf5.check_group(group, "ArrayDict", f"{cls.__name__}.from_hdf5")
        return cls._from_columns({k: c.get() for k, c in _hdf5.columns_of(group).items()})

    @classmethod
    def _from_columns(cls, columns: dict[str, np.ndarray], **meta: Any) -> ArrayDict:
        """Trusted constructor (no validation): ``columns`` and private ``meta`` as they are."""
        out = object.__new__(cls)
        out.__dict__.update(meta)
        out.__dict__.update(columns)
        return out
