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

#: cells of one block's vote table (classes x segments, int64): 16 MiB, few blocks (few torch calls),
#: and small enough for glibc to recycle the block's memory instead of mapping it anew
_VOTE_CELLS = 1 << 21
#: with more classes than this (e.g. sparse class ids) votes are counted per distinct (segment,
#: label) pair instead
_MAX_DENSE_CLASSES = 1 << 12


class Segments(NamedTuple):
    """Rows grouped by key: ``keys`` the distinct keys (one (U,) tensor per key column, in key
    order), ``order`` (N,) the rows in key order, ``ids`` (N,) the segment of each of them
    (non-decreasing), ``counts`` (U,) rows per segment."""

    keys: list[torch.Tensor]
    order: torch.Tensor
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
    return Segments(unique, order, sorted_ids, counts)


def segment_sum(seg: Segments, rows: torch.Tensor) -> torch.Tensor:
    """Sum of ``rows`` (N, ...) per segment: (U, ...) in ``rows``' dtype."""
    return rows.new_zeros((seg.n, *rows.shape[1:])).index_add_(0, seg.ids, rows.index_select(0, seg.order))


def segment_mode(seg: Segments, labels: torch.Tensor) -> torch.Tensor:
    """Most frequent of the integer ``labels`` (N,) per segment (U,), ties to the smallest."""
    low, high = (int(x) for x in torch.aminmax(labels))
    n_classes = high - low + 1
    labels = labels.index_select(0, seg.order)
    if n_classes > _MAX_DENSE_CLASSES:
        return _sparse_mode(seg, labels)
    # one-hot sums: a (classes x segments) vote table per block of segments, so that memory stays
    # bounded (one table for all segments would be 8 x N int64 values at N / 2 timestamps); each
    # cell holds votes * C + (C - 1 - class): a segment's largest cell has the most votes and, among
    # ties, the smallest class (one amax; torch's argmax over classes is ~20x slower)
    block = max(1, min(seg.n, _VOTE_CELLS // n_classes))
    cells = torch.add(seg.ids % block, labels - low, alpha=block)  # class-major cells of each block
    ends = torch.cumsum(seg.counts, 0)[block - 1 :: block].tolist() + [labels.shape[0]]  # rows per block
    reverse = torch.arange(n_classes - 1, -1, -1, device=labels.device).view(n_classes, 1)
    out = torch.cat([
        torch.add(reverse, torch.bincount(cells[start:end], minlength=n_classes * block).view(n_classes, block),
                  alpha=n_classes).amax(0)
        for start, end in zip([0, *ends[:-1]], ends)
    ])[: seg.n]
    return (n_classes - 1 + low) - out % n_classes


def _sparse_mode(seg: Segments, labels: torch.Tensor) -> torch.Tensor:
    """:func:`segment_mode` for labels (in key order) spread over many classes: counts the runs of
    equal (segment, label) instead of every (segment, class) cell."""
    o = torch.sort(labels, stable=True).indices
    o = o.index_select(0, torch.sort(seg.ids.index_select(0, o), stable=True).indices)  # by segment, then label
    ids, labels = seg.ids.index_select(0, o), labels.index_select(0, o)
    new = torch.ones_like(ids, dtype=torch.bool)
    new[1:] = (ids[1:] != ids[:-1]) | (labels[1:] != labels[:-1])
    starts = torch.nonzero(new).squeeze(1)
    votes, run_seg = torch.diff(starts, append=starts.new_tensor([ids.shape[0]])), ids[starts]
    r = torch.sort(-votes, stable=True).indices
    r = r[torch.sort(run_seg[r], stable=True).indices]  # by segment, most votes first, then the smallest label
    per_segment = torch.bincount(run_seg, minlength=seg.n)
    return labels[starts[r[torch.cumsum(per_segment, 0) - per_segment]]]
