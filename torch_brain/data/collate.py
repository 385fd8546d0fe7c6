"""Batching of variable-length samples.

:func:`collate` turns a list of samples (nested dicts of numpy arrays, tensors, numbers and
strings) into one batch. How a variable-length field is combined is chosen per field by wrapping
it in the sample, before collation:

==================  ===========================================================================
wrapper             result after :func:`collate` for samples with ``n_i`` rows each
==================  ===========================================================================
``pad(x)``          ``(B, max n_i, ...)`` tensor, zero padded at the end of each sample
``pad8(x)``         same, with the padded length rounded up to a multiple of 8
``chain(x)``        ``(sum n_i, ...)`` tensor, samples concatenated in batch order
``track_mask(x)``   ``(B, max n_i)`` bool tensor, True where a row is real (pairs with ``pad``)
``track_mask8(x)``  same, padded length rounded up to a multiple of 8 (pairs with ``pad8``)
``track_batch(x)``  ``(sum n_i,)`` int64 tensor: the batch index of each row (pairs with ``chain``)
==================  ===========================================================================

Fields that are not wrapped use default collation: tensors and numeric numpy arrays of equal
shape are stacked, Python floats become a float64 tensor, ints an int64 tensor, bools a bool
tensor, strings (and ``None``) a list, dicts are collated key by key and lists/tuples position by
position.

Example:
    >>> import numpy as np
    >>> from torch_brain.data import collate, pad, track_mask
    >>> batch = collate([
    ...     {"x": pad(np.array([1.0, 2.0])), "mask": track_mask(np.array([1.0, 2.0])), "id": "a"},
    ...     {"x": pad(np.array([3.0])), "mask": track_mask(np.array([3.0])), "id": "b"},
    ... ])
    >>> batch["x"]
    tensor([[1., 2.],
            [3., 0.]], dtype=torch.float64)
    >>> batch["mask"]
    tensor([[ True,  True],
            [ True, False]])
    >>> batch["id"]
    ['a', 'b']
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["chain", "collate", "pad", "pad8", "track_batch", "track_mask", "track_mask8"]


class _Wrapped:
    """A field value tagged with how it must be combined across the batch."""

    __slots__ = ("obj",)
    kind = ""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __repr__(self) -> str:
        return f"{type(self).__name__[1:].lower()}({self.obj!r})"


class _Pad(_Wrapped):
    __slots__ = ()
    kind = "pad"


class _Pad8(_Wrapped):
    __slots__ = ()
    kind = "pad8"


class _Chain(_Wrapped):
    __slots__ = ()
    kind = "chain"


class _TrackMask(_Wrapped):
    __slots__ = ()
    kind = "track_mask"


class _TrackMask8(_Wrapped):
    __slots__ = ()
    kind = "track_mask8"


class _TrackBatch(_Wrapped):
    __slots__ = ()
    kind = "track_batch"


def pad(obj: Any) -> _Pad:
    """Mark ``obj`` (an array/tensor with a first dimension, or a dict/list of them) to be padded.

    After :func:`collate` the field is a tensor of shape ``(B, max_len, *rest)`` where
    ``max_len`` is the longest first dimension in the batch; padding value 0 (False for bools).
    """
    return _Pad(obj)


def pad8(obj: Any) -> _Pad8:
    """Like :func:`pad`, but ``max_len`` is rounded up to a multiple of 8."""
    return _Pad8(obj)


def chain(obj: Any) -> _Chain:
    """Mark ``obj`` to be concatenated along its first dimension across the batch.

    After :func:`collate` the field has shape ``(sum_i len_i, *rest)``, samples in batch order.
    A chained field may be absent from some samples (e.g. a task missing in a window): those
    samples contribute no rows.
    """
    return _Chain(obj)


def track_mask(obj: Any) -> _TrackMask:
    """Record the padding mask of ``obj`` (only its first dimension is used).

    After :func:`collate` the field is a bool tensor ``(B, max_len)``, True for real rows.
    """
    return _TrackMask(obj)


def track_mask8(obj: Any) -> _TrackMask8:
    """Like :func:`track_mask`, but ``max_len`` is rounded up to a multiple of 8."""
    return _TrackMask8(obj)


def track_batch(obj: Any) -> _TrackBatch:
    """Record which sample each row of ``obj`` comes from (only its first dimension is used).

    After :func:`collate` the field is an int64 tensor ``(sum_i len_i,)`` holding the batch index
    of each row, matching a :func:`chain` of the same field.
    """
    return _TrackBatch(obj)


# --------------------------------------------------------------------------------------------
# helpers


def _name(path: str) -> str:
    return f"field '{path}'" if path else "the batch"


def _as_tensor(x: Any, path: str) -> torch.Tensor:
    """Convert one array-like leaf to a tensor (numpy arrays share memory when possible)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "OUSV":
            raise TypeError(
                f"collate: {_name(path)} is a numpy array of dtype {x.dtype}, which cannot become a "
                "tensor; store strings as a plain Python list/str field, or convert to numbers first."
            )
        if not x.flags.writeable:
            x = np.array(x, order="C")  # torch cannot share read-only memory
        elif not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        return torch.from_numpy(x)
    if isinstance(x, (bool, np.bool_)):
        return torch.tensor(bool(x))
    if isinstance(x, numbers.Integral):
        return torch.tensor(int(x), dtype=torch.int64)
    if isinstance(x, numbers.Real):
        return torch.tensor(float(x), dtype=torch.float64)
    if isinstance(x, (list, tuple)):
        return torch.as_tensor(np.asarray(x))
    raise TypeError(
        f"collate: {_name(path)} is a {type(x).__name__}; pad/pad8/chain expect a numpy array, a "
        "tensor or a list of numbers (or a dict/list of those)."
    )


def _first_dims(items: list, path: str, kind: str) -> list[int]:
    lens = []
    for i, x in enumerate(items):
        if isinstance(x, (torch.Tensor, np.ndarray)):
            if x.ndim == 0:
                raise ValueError(
                    f"collate: {_name(path)} of sample {i} is 0-dimensional, but {kind} needs a first "
                    "dimension to pad/chain along; wrap an array of shape (n, ...) instead."
                )
            lens.append(int(x.shape[0]))
        elif isinstance(x, (list, tuple)):
            lens.append(len(x))
        else:
            raise TypeError(
                f"collate: {_name(path)} of sample {i} is a {type(x).__name__}; {kind} expects a numpy "
                "array, a tensor or a list."
            )
    return lens


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8


def _leaves(items: list, path: str, kind: str) -> list:
    """Unify leaves as all-numpy (the fast path: numpy is single threaded and allocates lazily
    zeroed memory) or, if any leaf is a tensor, all tensors; check shapes and dtypes."""
    if any(isinstance(x, torch.Tensor) for x in items):
        arrays = [_as_tensor(x, path) for x in items]
    else:
        arrays = []
        for x in items:
            if not isinstance(x, np.ndarray):
                if isinstance(x, (list, tuple, numbers.Number, np.generic)):
                    x = np.asarray(x)  # scalars become 0-d and are refused by _first_dims
                else:
                    _as_tensor(x, path)  # raises the right TypeError for other objects
            if x.dtype.kind in "OUSV":
                _as_tensor(x, path)  # raises: strings cannot become tensors
            arrays.append(x)
    _first_dims(arrays, path, kind)
    ref = arrays[0]
    for i, t in enumerate(arrays):
        if t.shape[1:] != ref.shape[1:]:
            raise ValueError(
                f"collate: {_name(path)} ({kind}) needs the same trailing shape in every sample, but "
                f"sample 0 has {tuple(ref.shape)} and sample {i} has {tuple(t.shape)}."
            )
        if t.dtype != ref.dtype:
            raise TypeError(
                f"collate: {_name(path)} ({kind}) has dtype {ref.dtype} in sample 0 but {t.dtype} in "
                f"sample {i}; give every sample the same dtype."
            )
    return arrays


def _pad_leaves(items: list, path: str, multiple8: bool) -> torch.Tensor:
    arrays = _leaves(items, path, "pad8" if multiple8 else "pad")
    max_len = max(a.shape[0] for a in arrays)
    if multiple8:
        max_len = _round8(max_len)
    shape = (len(arrays), max_len, *arrays[0].shape[1:])
    if isinstance(arrays[0], torch.Tensor):
        out_t = torch.zeros(shape, dtype=arrays[0].dtype)  # out: [B, max_len, *rest]
        for i, t in enumerate(arrays):
            out_t[i, : t.shape[0]] = t
        return out_t
    out = np.zeros(shape, dtype=arrays[0].dtype)  # out: [B, max_len, *rest]
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return torch.from_numpy(out)


def _chain_leaves(items: list, path: str) -> Any:
    if all(isinstance(x, np.ndarray) and x.dtype.kind in "US" for x in items):
        return np.concatenate(items)  # strings stay a numpy array of str
    arrays = _leaves(items, path, "chain")
    if isinstance(arrays[0], torch.Tensor):
        return torch.cat(arrays, dim=0)
    return torch.from_numpy(np.concatenate(arrays, axis=0))  # [sum n_i, *rest]


def _mask_leaves(items: list, path: str, multiple8: bool) -> torch.Tensor:
    lens = np.asarray(_first_dims(items, path, "track_mask8" if multiple8 else "track_mask"))
    max_len = int(lens.max())
    if multiple8:
        max_len = _round8(max_len)
    # mask: [B, max_len]
    return torch.from_numpy(np.arange(max_len)[None, :] < lens[:, None])


def _batch_leaves(items: list, path: str, sample_index: list[int]) -> torch.Tensor:
    lens = _first_dims(items, path, "track_batch")
    return torch.from_numpy(np.repeat(np.asarray(sample_index, dtype=np.int64), lens))


def _collate_wrapped(kind: str, items: list, path: str, sample_index: list[int]) -> Any:
    """Collate the unwrapped contents of same-kind wrappers (recursing into dicts/lists)."""
    first = items[0]
    if isinstance(first, Mapping):
        keys = list(first.keys())
        for i, x in enumerate(items):
            if not isinstance(x, Mapping) or set(x.keys()) != set(keys):
                raise ValueError(
                    f"collate: {_name(path)} ({kind}) is a dict with keys {sorted(keys)} in the first "
                    f"sample but {sorted(x.keys()) if isinstance(x, Mapping) else type(x).__name__} "
                    f"in sample {sample_index[i]}; every sample needs the same keys."
                )
        return {
            k: _collate_wrapped(kind, [x[k] for x in items], _join(path, k), sample_index) for k in keys
        }
    if kind == "pad":
        return _pad_leaves(items, path, multiple8=False)
    if kind == "pad8":
        return _pad_leaves(items, path, multiple8=True)
    if kind == "chain":
        return _chain_leaves(items, path)
    if kind == "track_mask":
        return _mask_leaves(items, path, multiple8=False)
    if kind == "track_mask8":
        return _mask_leaves(items, path, multiple8=True)
    return _batch_leaves(items, path, sample_index)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


_MISSING = object()


def _collate(items: list, path: str, sample_index: list[int]) -> Any:
    first = items[0]

    if isinstance(first, _Wrapped):
        kind = first.kind
        for i, x in enumerate(items):
            if not isinstance(x, _Wrapped) or x.kind != kind:
                got = x.kind if isinstance(x, _Wrapped) else f"an unwrapped {type(x).__name__}"
                raise TypeError(
                    f"collate: {_name(path)} is wrapped with {kind}() in sample {sample_index[0]} but is "
                    f"{got} in sample {sample_index[i]}; wrap the field the same way in every sample."
                )
        return _collate_wrapped(kind, [x.obj for x in items], path, sample_index)

    if isinstance(first, Mapping):
        keys: list = []
        seen = set()
        for x in items:
            if not isinstance(x, Mapping):
                raise TypeError(
                    f"collate: {_name(path)} is a dict in one sample and a {type(x).__name__} in "
                    "another; every sample needs the same structure."
                )
            for k in x.keys():
                if k not in seen:
                    seen.add(k)
                    keys.append(k)
        out = {}
        for k in keys:
            values = [x.get(k, _MISSING) for x in items]
            present = [j for j, v in enumerate(values) if v is not _MISSING]
            if len(present) < len(values):
                # only chain/track_batch fields may be absent from some samples
                kinds = {v.kind if isinstance(v, _Wrapped) else None for v in values if v is not _MISSING}
                if not kinds <= {"chain", "track_batch"}:
                    missing = [sample_index[j] for j, v in enumerate(values) if v is _MISSING]
                    raise ValueError(
                        f"collate: {_name(_join(path, k))} is missing from sample(s) {missing[:10]}; "
                        "only fields wrapped with chain() or track_batch() may be absent from some "
                        "samples. Add the field to every sample or wrap it with chain()."
                    )
                out[k] = _collate(
                    [values[j] for j in present], _join(path, k), [sample_index[j] for j in present]
                )
            else:
                out[k] = _collate(values, _join(path, k), sample_index)
        return out

    if isinstance(first, torch.Tensor) or (isinstance(first, np.ndarray) and first.dtype.kind not in "OUSV"):
        all_numpy = all(isinstance(x, np.ndarray) for x in items)
        arrays = items if all_numpy else [_as_tensor(x, path) for x in items]
        shape = arrays[0].shape
        for i, t in enumerate(arrays):
            if t.shape != shape:
                raise ValueError(
                    f"collate: {_name(path)} has shape {tuple(shape)} in sample {sample_index[0]} but "
                    f"{tuple(t.shape)} in sample {sample_index[i]}; default collation stacks equal "
                    "shapes only. Wrap variable-length fields with pad(), pad8() or chain()."
                )
        if all_numpy:
            return torch.from_numpy(np.stack(arrays, axis=0))
        return torch.stack(arrays, dim=0)

    if isinstance(first, str) or first is None or isinstance(first, np.ndarray):
        return list(items)

    if isinstance(first, (bool, np.bool_)):
        return torch.tensor([bool(x) for x in items], dtype=torch.bool)

    if isinstance(first, numbers.Integral):
        _check_numbers(items, path, sample_index, numbers.Integral)
        return torch.tensor([int(x) for x in items], dtype=torch.int64)

    if isinstance(first, numbers.Real):
        _check_numbers(items, path, sample_index, numbers.Real)
        return torch.tensor([float(x) for x in items], dtype=torch.float64)

    if isinstance(first, Sequence):
        n = len(first)
        for i, x in enumerate(items):
            if not isinstance(x, Sequence) or isinstance(x, str) or len(x) != n:
                raise ValueError(
                    f"collate: {_name(path)} is a sequence of length {n} in sample {sample_index[0]} but "
                    f"{len(x) if isinstance(x, Sequence) else type(x).__name__} in sample "
                    f"{sample_index[i]}; wrap variable-length lists with pad() or chain()."
                )
        collated = [_collate([x[j] for x in items], _join(path, j), sample_index) for j in range(n)]
        return tuple(collated) if isinstance(first, tuple) else collated

    raise TypeError(
        f"collate: {_name(path)} is a {type(first).__name__}, which collate does not know how to "
        "batch; use numpy arrays, tensors, numbers, strings, or dicts/lists of those."
    )


def _check_numbers(items: list, path: str, sample_index: list[int], kind: type) -> None:
    for i, x in enumerate(items):
        if not isinstance(x, numbers.Real) or isinstance(x, (bool, np.bool_)):
            raise TypeError(
                f"collate: {_name(path)} is a number in sample {sample_index[0]} but a "
                f"{type(x).__name__} in sample {sample_index[i]}; every sample needs the same type."
            )


def collate(batch: Sequence[Any]) -> Any:
    """Combine a list of samples into a batch.

    Args:
        batch: list of ``B`` samples with the same structure (typically dicts, possibly nested).
            Variable-length fields are wrapped with :func:`pad`, :func:`pad8`, :func:`chain`,
            :func:`track_mask`, :func:`track_mask8` or :func:`track_batch`.

    Returns:
        The batch with the same nesting; see the module docstring for what each field becomes.

    Raises:
        ValueError: empty batch, mismatched shapes, or a non-chained field missing in a sample.
        TypeError: a field whose type or wrapping differs between samples, or cannot be batched.
    """
    if isinstance(batch, (str, bytes)) or not isinstance(batch, Sequence):
        raise TypeError(
            f"collate: batch must be a list of samples, got {type(batch).__name__}; pass the list the "
            "DataLoader gives (collate_fn=collate)."
        )
    if len(batch) == 0:
        raise ValueError("collate: batch is empty (0 samples); a batch needs at least one sample.")
    return _collate(list(batch), "", list(range(len(batch))))
