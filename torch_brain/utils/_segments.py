"""Group rows by exact key: sort, segment ids, per-segment sums and majority votes.

One kernel serves :func:`~torch_brain.utils.stitcher.stitch` (key: the timestamp) and the
stitching evaluators (key: session and time), on any device:

1. :func:`segments` sorts the keys (stably) and gives every row the id of its run of equal keys;
2. :func:`segment_sum` adds rows per segment (``index_add_``): means are sums over counts;
3. :func:`segment_mode` takes the most voted label per segment from per-segment one-hot counts,
   ties going to the smallest label.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

__all__: list[str] = []

#: a vote table (segments x classes) larger than this many cells is replaced by a sort of the
#: (segment, label) pairs (e.g. thousands of sparse class ids)
_MAX_VOTE_CELLS = 1 << 25


class Segments(NamedTuple):
    """Rows grouped by key: ``keys`` the distinct keys (one (U,) tensor per key column, in key
    order), ``ids`` (N,) the segment of every row, ``counts`` (U,) rows per segment."""

    keys: list[torch.Tensor]
    ids: torch.Tensor
    counts: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.counts.shape[0])


def _stable_argsort(key: torch.Tensor) -> torch.Tensor:
    if key.device.type == "cpu" and key.dtype != torch.bfloat16:
        # NumPy's stable sort is a timsort: near linear on rows in window order (overlapping sorted
        # runs), ~8x faster than torch.sort there at 1e6 rows
        return torch.from_numpy(np.argsort(key.numpy(), kind="stable"))
    return torch.sort(key, stable=True).indices


def segments(*keys: torch.Tensor) -> Segments:
    """Group N rows by equal keys, ordered by the first key, then the second, ...

    Args:
        keys: one or more (N,) tensors on one device; at least one row.

    Returns:
        :class:`Segments`, in key order (NaN keys sort last, each NaN its own segment).
    """
    order = _stable_argsort(keys[-1])
    for key in reversed(keys[:-1]):
        order = order.index_select(0, _stable_argsort(key.index_select(0, order)))
    ordered = [key.index_select(0, order) for key in keys]
    if len(ordered) == 1:
        unique, sorted_ids, counts = torch.unique_consecutive(ordered[0], return_inverse=True, return_counts=True)
        unique = [unique]
    else:  # (torch.unique_consecutive(dim=0) is ~1000x slower than this on CPU)
        change = torch.ones(order.shape[0], dtype=torch.bool, device=order.device)
        change[1:] = ordered[0][1:] != ordered[0][:-1]
        for key in ordered[1:]:
            change[1:] |= key[1:] != key[:-1]
        first = torch.nonzero(change).squeeze(1)
        unique = [key.index_select(0, first) for key in ordered]
        sorted_ids = torch.cumsum(change, 0) - 1
        counts = torch.diff(first, append=first.new_tensor([order.shape[0]]))
    ids = torch.empty_like(sorted_ids).scatter_(0, order, sorted_ids)
    return Segments(unique, ids, counts)


def segment_sum(seg: Segments, rows: torch.Tensor) -> torch.Tensor:
    """Sum of ``rows`` (N, ...) per segment: (U, ...) in ``rows``' dtype."""
    return rows.new_zeros((seg.n, *rows.shape[1:])).index_add_(0, seg.ids, rows)


def segment_mode(seg: Segments, labels: torch.Tensor) -> torch.Tensor:
    """Most frequent of the integer ``labels`` (N,) per segment (U,), ties to the smallest."""
    low, high = (int(x) for x in torch.aminmax(labels))
    n_classes = high - low + 1
    if seg.n * n_classes <= max(_MAX_VOTE_CELLS, 4 * labels.shape[0]):
        # one-hot sums, as one bincount over (segment, class) cells
        # (class, segment) cells: the argmax then runs over the outer dimension, contiguous in U
        cells = torch.add(seg.ids, labels if low == 0 else labels - low, alpha=seg.n)
        votes = torch.bincount(cells, minlength=seg.n * n_classes)
        # argmax returns the first maximum: the smallest class among ties
        return votes.view(n_classes, seg.n).argmax(0) + low
    # many sparse classes: count the distinct (segment, label) pairs instead of every cell
    pairs, votes = torch.unique(seg.ids * n_classes + (labels - low), return_counts=True)
    pair_seg = pairs // n_classes
    # within a segment: most votes first, then the smallest label (pairs are in label order)
    order = torch.sort(-votes, stable=True).indices
    order = order[torch.sort(pair_seg[order], stable=True).indices]
    first = torch.cumsum(torch.bincount(pair_seg, minlength=seg.n), 0) - torch.bincount(pair_seg, minlength=seg.n)
    return pairs[order[first]] % n_classes + low
