"""Sort-and-segment kernels behind :func:`torch_brain.utils.stitcher.stitch`.

Everything here groups rows by an exact key (a timestamp), in three steps:

1. an *order*: a stable permutation that sorts the keys (``None`` when they already are sorted);
2. *segments*: the start of each run of equal keys in sorted order, and the run lengths;
3. a *reduction* per segment: a sum (for means) or a vote (for modes).

Two back ends implement the steps. The NumPy one serves CPU tensors: NumPy's stable sort is a
timsort that runs in near-linear time on the sorted runs that overlapping windows produce, and its
large arrays are backed by transparent huge pages, which matters at 1e7 rows. The torch one serves
CUDA tensors (and small CPU inputs, where per-call overhead dominates).

When the largest segment holds only a few rows (``K`` = number of windows overlapping a
timestamp, 2 for 50 % overlap), a segment reduction is done as ``K`` gathers over the segment
starts instead of a scatter over all rows; this is both faster and exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

__all__: list[str] = []

# below this many rows the CPU path uses torch ops (lower fixed cost than NumPy round trips)
_SMALL = 4096
# largest segment length handled by the gather-per-offset reductions
_MAX_PASSES = 8
# a presorted run structure (timsort territory) if there are at most N / _RUN_LENGTH descents
_RUN_LENGTH = 8
# the dense (segments x classes) vote table is used while it has at most this many cells per row
_DENSE_VOTE_CELLS = 64


@contextlib.contextmanager
def _torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch CPU ops on ``n`` intra-op threads inside the block.

    Small bookkeeping ops gain nothing from OpenMP threads, and on a busy machine a parallel
    region can wait milliseconds for a descheduled worker: 1000x the op itself.
    """
    previous = torch.get_num_threads()
    if previous == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype in which float values are summed: float64 stays, everything else uses float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# --------------------------------------------------------------------------------------------
# NumPy back end (CPU)
# --------------------------------------------------------------------------------------------


def _np_order(keys: np.ndarray) -> np.ndarray | None:
    """Stable permutation sorting ``keys`` (1-D); ``None`` when already sorted."""
    n = keys.shape[0]
    descents = int(np.count_nonzero(keys[1:] < keys[:-1]))
    if descents == 0:
        return None
    if descents * _RUN_LENGTH <= n:
        # long sorted runs (e.g. concatenated overlapping windows): timsort merges them fast
        return np.argsort(keys, kind="stable")
    # little presortedness: torch's sort is multithreaded and faster than timsort here
    return torch.sort(torch.from_numpy(keys), stable=True).indices.numpy()


def _np_segments(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts (U,) and lengths (U,) of the runs of equal values in ``sorted_keys`` (N,)."""
    n = sorted_keys.shape[0]
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    lengths = np.empty_like(starts)
    np.subtract(starts[1:], starts[:-1], out=lengths[:-1])
    lengths[-1] = n - starts[-1]
    return starts, lengths


def _np_rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows]`` for a 2-D ``values`` (N, F), gathering whole rows as single words if possible."""
    row_bytes = values.shape[1] * values.itemsize
    if values.flags.c_contiguous and row_bytes in (4, 8):
        word = np.int32 if row_bytes == 4 else np.int64
        flat = values.view(word).reshape(-1)
        return flat[rows].view(values.dtype).reshape(rows.shape[0], values.shape[1])
    return np.take(values, rows, axis=0)


def _np_positions(perm: np.ndarray | None, positions: np.ndarray) -> np.ndarray:
    """Map positions in sorted order to row indices of the input."""
    return positions if perm is None else perm[positions]


def _np_segment_sum(
    values: np.ndarray, perm: np.ndarray | None, starts: np.ndarray, lengths: np.ndarray, acc: np.dtype
) -> np.ndarray:
    """Per-segment sums (U, F) in dtype ``acc`` of ``values`` (N, F) grouped by (perm, starts)."""
    max_len = int(lengths.max())
    if max_len <= _MAX_PASSES:
        n = values.shape[0]
        out = _np_rows(values, _np_positions(perm, starts)).astype(acc, copy=False)
        positions = np.empty_like(starts)
        has_row = np.empty((starts.shape[0], 1), dtype=bool)
        for offset in range(1, max_len):
            # dense pass over all segments: add the offset-th row of each segment that has one
            np.add(starts, offset, out=positions)
            np.minimum(positions, n - 1, out=positions)
            np.greater(lengths, offset, out=has_row[:, 0])
            np.add(out, _np_rows(values, _np_positions(perm, positions)), out=out, where=has_row)
        return out
    ordered = values if perm is None else np.take(values, perm, axis=0)
    return np.add.reduceat(ordered.astype(acc, copy=False), starts, axis=0)


def _np_segment_mode(
    labels: np.ndarray, perm: np.ndarray | None, starts: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """Per-segment most frequent label (U,), ties going to the smallest label."""
    max_len = int(lengths.max())
    if max_len <= _MAX_PASSES:
        n = labels.shape[0]
        # column j: the j-th label of every segment (repeats the last row where there is none)
        columns = [labels[_np_positions(perm, np.minimum(starts + j, n - 1))] for j in range(max_len)]
        valid = [lengths > j for j in range(max_len)]
        best_label = columns[0]
        best_votes = np.zeros(starts.shape[0], dtype=np.int16)
        for j in range(max_len):
            votes = np.zeros(starts.shape[0], dtype=np.int16)
            for k in range(max_len):
                votes += valid[k] & (columns[k] == columns[j])
            better = valid[j] & ((votes > best_votes) | ((votes == best_votes) & (columns[j] < best_label)))
            best_label = np.where(better, columns[j], best_label)
            best_votes = np.where(better, votes, best_votes)
        return best_label
    ordered = labels if perm is None else labels[perm]
    seg_id = np.repeat(np.arange(starts.shape[0]), lengths)
    return _mode_by_segment_np(seg_id, ordered, starts.shape[0])


def _mode_by_segment_np(seg_id: np.ndarray, labels: np.ndarray, n_seg: int) -> np.ndarray:
    """Mode of ``labels`` (N,) per ``seg_id`` (N, sorted, values 0..n_seg-1)."""
    low, high = int(labels.min()), int(labels.max())
    n_cls = high - low + 1
    if n_cls <= _DENSE_VOTE_CELLS:
        votes = np.bincount(seg_id * n_cls + (labels - low), minlength=n_seg * n_cls)
        return votes.reshape(n_seg, n_cls).argmax(axis=1) + low
    # many classes: sort by (segment, label) and count runs
    order = np.lexsort((labels, seg_id))
    seg_sorted, lab_sorted = seg_id[order], labels[order]
    new_run = np.ones(seg_sorted.shape[0], dtype=bool)
    new_run[1:] = (seg_sorted[1:] != seg_sorted[:-1]) | (lab_sorted[1:] != lab_sorted[:-1])
    run_starts = np.flatnonzero(new_run)
    run_len = np.diff(np.append(run_starts, seg_sorted.shape[0]))
    run_seg, run_lab = seg_sorted[run_starts], lab_sorted[run_starts]
    # within a segment, runs are in ascending label order; pick the longest, first on ties
    key = np.lexsort((run_lab, -run_len, run_seg))
    best = np.ones(key.shape[0], dtype=bool)
    best[1:] = run_seg[key][1:] != run_seg[key][:-1]
    return run_lab[key][best]


def _stitch_numpy(timestamps: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    keys = timestamps.numpy()
    perm = _np_order(keys)
    sorted_keys = keys if perm is None else keys[perm]
    starts, lengths = _np_segments(sorted_keys)
    unique = torch.from_numpy(sorted_keys[starts].copy() if perm is None else sorted_keys[starts])
    if values.dtype == torch.long:
        return unique, torch.from_numpy(_np_segment_mode(values.numpy(), perm, starts, lengths))
    acc = _accumulation_dtype(values.dtype)
    flat = values.reshape(values.shape[0], -1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.to(acc)  # NumPy has no bfloat16; half precision is summed in float32 anyway
    sums = _np_segment_sum(flat.numpy(), perm, starts, lengths, np.dtype(str(acc).split(".")[1]))
    sums *= (1.0 / lengths).astype(sums.dtype)[:, None]
    pooled = torch.from_numpy(sums).reshape(-1, *values.shape[1:])
    return unique, pooled.to(values.dtype)


# --------------------------------------------------------------------------------------------
# torch back end (CUDA, small CPU inputs)
# --------------------------------------------------------------------------------------------


def _segment_ids(sorted_keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Segment id of every sorted row (N,), segment starts (U,) and lengths (U,)."""
    n = sorted_keys.shape[0]
    change = torch.empty(n, dtype=torch.bool, device=sorted_keys.device)
    change[0] = True
    torch.ne(sorted_keys[1:], sorted_keys[:-1], out=change[1:])
    seg_id = torch.cumsum(change, 0) - 1
    starts = torch.nonzero(change).squeeze(1)
    lengths = torch.diff(starts, append=starts.new_tensor([n]))
    return seg_id, starts, lengths


def _mode_by_segment_torch(seg_id: torch.Tensor, labels: torch.Tensor, n_seg: int) -> torch.Tensor:
    """Mode of ``labels`` (N,) per ``seg_id`` (N, sorted), ties going to the smallest label."""
    low, high = int(labels.min()), int(labels.max())
    n_cls = high - low + 1
    if n_cls <= _DENSE_VOTE_CELLS:
        votes = torch.zeros(n_seg * n_cls, dtype=torch.int32, device=labels.device)
        votes.index_add_(0, seg_id * n_cls + (labels - low), torch.ones_like(labels, dtype=torch.int32))
        # argmax returns the first maximum, i.e. the smallest class among ties
        return votes.view(n_seg, n_cls).argmax(dim=1) + low
    # many classes: order by (segment, label) with two stable sorts, then count runs
    by_label = torch.sort(labels, stable=True).indices
    order = by_label[torch.sort(seg_id[by_label], stable=True).indices]
    seg_sorted, lab_sorted = seg_id[order], labels[order]
    n = seg_sorted.shape[0]
    new_run = torch.ones(n, dtype=torch.bool, device=labels.device)
    new_run[1:] = (seg_sorted[1:] != seg_sorted[:-1]) | (lab_sorted[1:] != lab_sorted[:-1])
    run_starts = torch.nonzero(new_run).squeeze(1)
    run_len = torch.diff(run_starts, append=run_starts.new_tensor([n]))
    run_seg = seg_sorted[run_starts]
    best_len = torch.zeros(n_seg, dtype=run_len.dtype, device=labels.device)
    best_len.scatter_reduce_(0, run_seg, run_len, reduce="amax")
    # runs of one segment are in ascending label order: the first longest run wins
    candidate = torch.where(run_len == best_len[run_seg], torch.arange(run_len.shape[0], device=labels.device), n)
    first = torch.full((n_seg,), n, dtype=torch.long, device=labels.device)
    first.scatter_reduce_(0, run_seg, candidate, reduce="amin")
    return lab_sorted[run_starts[first]]


def _stitch_torch(timestamps: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    sorted_keys, perm = torch.sort(timestamps, stable=True)
    seg_id, starts, lengths = _segment_ids(sorted_keys)
    unique = sorted_keys[starts]
    n_seg = starts.shape[0]
    if values.dtype == torch.long:
        return unique, _mode_by_segment_torch(seg_id, values[perm], n_seg)
    acc = _accumulation_dtype(values.dtype)
    sums = torch.zeros((n_seg, *values.shape[1:]), dtype=acc, device=values.device)
    sums.index_add_(0, seg_id, values[perm].to(acc))
    sums /= lengths.view(-1, *([1] * (values.dim() - 1))).to(acc)
    return unique, sums.to(values.dtype)


def _stitch_sorted_segments(
    timestamps: torch.Tensor, values: torch.Tensor, backend: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatch to a back end; inputs are validated and non-empty."""
    if backend == "auto":
        use_numpy = timestamps.device.type == "cpu" and timestamps.shape[0] >= _SMALL
        backend = "numpy" if use_numpy else "torch"
    if backend == "numpy":
        return _stitch_numpy(timestamps.contiguous(), values.contiguous())
    if timestamps.device.type == "cpu" and timestamps.shape[0] < _SMALL:
        with _torch_threads(1):
            return _stitch_torch(timestamps, values)
    return _stitch_torch(timestamps, values)


def _group_sum(keys: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum ``rows`` (N, F) sharing a key; returns sorted distinct ``keys`` (U,) and sums (U, F).

    The sums keep ``rows``' dtype (use float64 for running sums that must stay exact).
    """
    if keys.shape[0] == 0:
        return keys, rows
    if keys.device.type == "cpu" and keys.shape[0] >= _SMALL:
        k = keys.contiguous().numpy()
        perm = _np_order(k)
        sorted_keys = k if perm is None else k[perm]
        starts, lengths = _np_segments(sorted_keys)
        sums = _np_segment_sum(rows.contiguous().numpy(), perm, starts, lengths, rows.numpy().dtype)
        return torch.from_numpy(np.ascontiguousarray(sorted_keys[starts])), torch.from_numpy(sums)
    sorted_keys, perm = torch.sort(keys, stable=True)
    seg_id, starts, _ = _segment_ids(sorted_keys)
    sums = torch.zeros((starts.shape[0], rows.shape[1]), dtype=rows.dtype, device=rows.device)
    sums.index_add_(0, seg_id, rows[perm])
    return sorted_keys[starts], sums
