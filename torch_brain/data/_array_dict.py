"""``ArrayDict``: named numpy arrays that share their first dimension.

This is the base of every tabular container in :mod:`torch_brain.data` (``Interval``,
``IrregularTimeSeries``, ``RegularTimeSeries``). Columns are plain instance attributes, so reading
``obj.col`` costs one dictionary lookup. Attributes whose name starts with ``_`` are metadata
(time keys, domain, sampling rate, lazy-loading state) and are never columns.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np

from . import _hdf5

__all__ = ["ArrayDict"]


def _as_column(owner: str, key: str, value: Any) -> np.ndarray:
    """Validate one column value and return it as a numpy array with at least one dimension.

    Lists, tuples and scalars are converted with ``np.asarray`` (as temporaldata does); a scalar
    then fails the one-dimension check with a message that says how to fix it.
    """
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, (list, tuple, int, float, complex, bool, str, bytes, np.generic)):
        arr = np.asarray(value)
    else:
        raise TypeError(
            f"{owner}: column {key!r} must be a numpy array (or a list/tuple), but got "
            f"{type(value).__name__}. Wrap it with np.asarray(...); store other objects on a Data object instead."
        )
    if arr.ndim == 0:
        raise ValueError(
            f"{owner}: column {key!r} must have at least one dimension (one row per element), but got a "
            f"0-d value ({value!r}). Use np.atleast_1d(...) or store the scalar on a Data object instead."
        )
    return arr


def _check_mask(owner: str, mask: Any, n: int) -> np.ndarray:
    """A boolean mask of shape ``(n,)``, or a TypeError/ValueError that says what is wrong."""
    arr = np.asarray(mask)
    if arr.dtype != bool:
        raise TypeError(
            f"{owner}.select_by_mask: 'mask' must be a boolean array, but got dtype {arr.dtype}. "
            f"Compare a column (e.g. obj.x > 0) or use obj[indices] to select by integer indices."
        )
    if arr.ndim != 1:
        raise ValueError(
            f"{owner}.select_by_mask: 'mask' must be one-dimensional, but got shape {arr.shape}. "
            f"Build it from a one-dimensional column or reduce it (e.g. mask.any(axis=1))."
        )
    if arr.shape[0] != n:
        raise ValueError(
            f"{owner}.select_by_mask: 'mask' has {arr.shape[0]} elements but the object has {n} rows; "
            f"they must match."
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
    # columns from_dataframe requires (extended by subclasses)
    _REQUIRED_COLUMNS: tuple[str, ...] = ()

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
        if "_timekeys" in d:  # a list: never shared, so register_timekey on a result leaves self as is
            d["_timekeys"] = list(d["_timekeys"])
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
        """The rows where ``mask`` (bool, shape ``(N,)``) is True, as a new in-memory object of the same type.

        Columns are copied; private attributes (time keys, domain) are deep-copied, so changing the
        result never changes ``self``. The domain of a time series is kept as it is.

        Example:
            >>> ArrayDict(x=np.array([1, 2, 3])).select_by_mask(np.array([True, False, True])).x
            array([1, 3])
        """
        mask = _check_mask(type(self).__name__, mask, len(self))
        out = self._new_like({k: getattr(self, k)[mask] for k in self.keys()})
        for name in type(out)._META:
            out.__dict__[name] = copy.deepcopy(out.__dict__[name])
        return out

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

    def to_hdf5(self, file: Any) -> None:
        """Write this object into an open, empty ``h5py.Group`` (layout in docs/data.md)."""
        group = file
        _hdf5.write_columns(group, "ArrayDict", self.to_dict())

    @classmethod
    def from_hdf5(cls, file: Any) -> ArrayDict:
        """Read an ``ArrayDict`` group into memory (:class:`LazyArrayDict` reads on first access)."""
        group = file
        _hdf5.check_group(group, "ArrayDict", f"{cls.__name__}.from_hdf5")
        return cls._from_columns({k: c.get() for k, c in _hdf5.columns_of(group).items()})

    @classmethod
    def from_dataframe(cls, df: Any, unsigned_to_long: bool = True, **kwargs: Any) -> ArrayDict:
        """Build from a pandas DataFrame, one column per DataFrame column.

        Columns that cannot become a numpy array with one row per element (ragged lists, mixed
        objects) are skipped with a warning that names them; string columns become ``str`` arrays.

        Args:
            df: the DataFrame (its index is ignored).
            unsigned_to_long: convert unsigned integer columns to ``int64``.
            **kwargs: passed to the constructor (e.g. ``domain=`` for time series).

        Example:
            >>> ArrayDict.from_dataframe(pd.DataFrame({"id": ["a", "b"], "n": np.array([1, 2], np.uint8)})).n
            array([1, 2])
        """
        columns = _frame_columns(cls.__name__, df, unsigned_to_long)
        missing = [k for k in cls._REQUIRED_COLUMNS if k not in columns]
        if missing:
            raise ValueError(
                f"{cls.__name__}.from_dataframe: the DataFrame has no column(s) {missing} (columns: "
                f"{list(columns)}). Rename them, e.g. df.rename(columns={{'t': {missing[0]!r}}})."
            )
        return cls(**columns, **kwargs)

    @classmethod
    def _from_columns(cls, columns: dict[str, np.ndarray], **meta: Any) -> ArrayDict:
        """Trusted constructor (no validation): ``columns`` and private ``meta`` as they are."""
        out = object.__new__(cls)
        out.__dict__.update(meta)
        out.__dict__.update(columns)
        return out


def _frame_columns(owner: str, df: Any, unsigned_to_long: bool) -> dict[str, np.ndarray]:
    if not hasattr(df, "columns") or not hasattr(df, "to_numpy"):
        raise TypeError(f"{owner}.from_dataframe: 'df' must be a pandas DataFrame, but got {type(df).__name__}.")
    columns, skipped = {}, []
    for name in df.columns:
        arr = df[name].to_numpy()
        if arr.dtype.kind == "O":
            try:
                arr = np.array(arr.tolist())
            except ValueError:  # ragged
                arr = None
            if arr is None or arr.dtype.kind == "O" or arr.ndim == 0 or len(arr) != len(df):
                skipped.append(str(name))
                continue
        elif unsigned_to_long and arr.dtype.kind == "u":
            arr = arr.astype(np.int64)
        columns[str(name)] = arr
    if skipped:
        warnings.warn(
            f"{owner}.from_dataframe: skipped column(s) {skipped}: they do not convert to one numpy array with one "
            f"row per element (ragged lists or mixed objects). Convert them first to keep them.",
            stacklevel=3,
        )
    return columns
