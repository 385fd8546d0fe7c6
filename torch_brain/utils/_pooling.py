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
# rows per block in the NumPy pipeline: block temporaries stay in cache and are never page-faulted
_CHUNK = 1 << 16


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
    # little presortedness: torch's multithreaded sort beats timsort here, and on integer keys it is
    # a radix sort, so floats are sorted through an order-preserving integer image of their bits
    return torch.sort(torch.from_numpy(_sortable_integers(keys)), stable=True).indices.numpy()


def _sortable_integers(keys: np.ndarray) -> np.ndarray:
    """Integers that sort (and compare equal) exactly like the float ``keys`` (no NaN)."""
    if keys.dtype.kind != "f":
        return keys
    word = {2: np.int16, 4: np.int32, 8: np.int64}[keys.itemsize]
    bits = (keys + keys.dtype.type(0)).view(word)  # + 0 turns -0.0 into 0.0
    # negative floats: flip the magnitude bits so that larger magnitudes sort first
    flipped = np.where(bits < 0, bits ^ np.iinfo(word).max, bits)
    return flipped.astype(np.int64, copy=False)


def _np_starts(keys: np.ndarray, perm: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Sorted-order positions (U,) where a run of equal keys starts, the distinct keys (U,) and
    the longest run length.

    Works block by block, so that no (N,)-sized temporary is created: the results are written
    into (N,) buffers, of which only the first U entries are ever touched (and so paged in),
    then shrunk to U.
    """
    n = keys.shape[0]
    starts, unique = np.empty(n, dtype=np.int64), np.empty(n, dtype=keys.dtype)
    n_runs, longest, previous = 0, 1, None
    for a in range(0, n, _CHUNK):
        b = min(a + _CHUNK, n)
        chunk = keys[a:b] if perm is None else keys[perm[a:b]]
        change = np.empty(b - a, dtype=bool)
        change[0] = previous is None or chunk[0] != previous
        np.not_equal(chunk[1:], chunk[:-1], out=change[1:])
        idx = np.flatnonzero(change)
        m = idx.shape[0]
        if m:
            unique[n_runs : n_runs + m] = chunk[idx]
            idx += a
            if n_runs:
                longest = max(longest, int(idx[0] - starts[n_runs - 1]))
            if m > 1:
                longest = max(longest, int(np.max(idx[1:] - idx[:-1])))
            starts[n_runs : n_runs + m] = idx
            n_runs += m
        previous = chunk[-1]
    longest = max(longest, n - int(starts[n_runs - 1]))
    # shrink the buffers in place (no views of them exist; large ones are remapped, not copied)
    starts.resize(n_runs, refcheck=False)
    unique.resize(n_runs, refcheck=False)
    return starts, unique, longest


def _chunk_lengths(starts: np.ndarray, a: int, b: int, n: int) -> np.ndarray:
    """Run lengths of runs a..b-1 (``starts`` holds every run start, ``n`` rows in all)."""
    lengths = np.empty(b - a, dtype=np.int64)
    np.subtract(starts[a + 1 : b], starts[a : b - 1], out=lengths[:-1])
    lengths[-1] = (starts[b] if b < starts.shape[0] else n) - starts[b - 1]
    return lengths


def _np_take_rows(values: np.ndarray, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``values[rows]`` for a C-contiguous 2-D ``values`` (N, F); rows of 4 or 8 bytes move as one word."""
    row_bytes = values.shape[1] * values.itemsize
    if row_bytes in (4, 8) and (out is None or out.dtype == values.dtype):
        word = np.int32 if row_bytes == 4 else np.int64
        flat_out = None if out is None else out.view(word).reshape(-1)
        taken = np.take(values.view(word).reshape(-1), rows, out=flat_out, mode="clip")
        return taken.view(values.dtype).reshape(rows.shape[0], values.shape[1]) if out is None else out
    if out is None:
        return np.take(values, rows, axis=0, mode="clip")
    out[...] = np.take(values, rows, axis=0, mode="clip")
    return out


def _zero_rows(rows: np.ndarray, keep: np.ndarray) -> None:
    """Set ``rows[~keep] = 0`` in place for a fresh C-contiguous (U, F) array."""
    row_bytes = rows.shape[1] * rows.itemsize
    if row_bytes in (4, 8):
        words = rows.view(np.int32 if row_bytes == 4 else np.int64).reshape(-1)
        np.multiply(words, keep, out=words)  # all-zero bits are 0.0
    else:
        rows[~keep] = 0


def _np_mean_by_runs(values: np.ndarray, perm: np.ndarray | None, starts: np.ndarray, longest: int,
                     acc: np.dtype, divide: bool = True) -> np.ndarray:
    """Per-run means (U, F) in dtype ``acc`` of ``values`` (N, F), runs given in sorted order
    (sums if ``divide`` is False)."""
    n, n_runs = values.shape[0], starts.shape[0]
    if longest > _MAX_PASSES:  # deep overlap: one gather of everything, then a segmented sum
        ordered = values if perm is None else np.take(values, perm, axis=0)
        sums = np.add.reduceat(ordered.astype(acc, copy=False), starts, axis=0)
        if divide:
            sums /= np.diff(starts, append=n).astype(acc)[:, None]
        return sums
    out = np.empty((n_runs, values.shape[1]), dtype=acc)
    for a in range(0, n_runs, _CHUNK):
        b = min(a + _CHUNK, n_runs)
        first = starts[a:b]
        lengths = _chunk_lengths(starts, a, b, n)
        block = out[a:b]
        _np_take_rows(values, first if perm is None else perm[first], out=block)
        position = np.empty_like(first)
        has_row = np.empty(b - a, dtype=bool)
        for offset in range(1, longest):
            # add each run's offset-th row where the run has one (zero the others first:
            # a 1-D mask on whole-row words is far cheaper than a broadcast `where=`)
            np.add(first, offset, out=position)
            np.minimum(position, n - 1, out=position)
            np.greater(lengths, offset, out=has_row)
            rows = _np_take_rows(values, position if perm is None else perm[position])
            _zero_rows(rows, has_row)
            np.add(block, rows, out=block)
        if divide and longest > 1:
            block *= (1.0 / lengths).astype(acc)[:, None]
    return out


def _np_mode_by_runs(labels: np.ndarray, perm: np.ndarray | None, starts: np.ndarray, longest: int) -> np.ndarray:
    """Per-run most frequent label (U,), ties going to the smallest label."""
    n, n_runs = labels.shape[0], starts.shape[0]
    if longest > _MAX_PASSES:
        ordered = labels if perm is None else labels[perm]
        lengths = np.diff(starts, append=n)
        return _mode_by_segment_np(np.repeat(np.arange(n_runs), lengths), ordered, n_runs)
    out = np.empty(n_runs, dtype=labels.dtype)
    for a in range(0, n_runs, _CHUNK):
        b = min(a + _CHUNK, n_runs)
        first = starts[a:b]
        lengths = _chunk_lengths(starts, a, b, n)
        # column j: the j-th label of each run (clipped past the run's end; masked by `valid`)
        columns = []
        for j in range(longest):
            position = np.minimum(first + j, n - 1)
            columns.append(labels[position if perm is None else perm[position]])
        valid = [lengths > j for j in range(longest)]
        best_label, best_votes = columns[0], np.zeros(b - a, dtype=np.int16)
        for j in range(longest):
            votes = np.zeros(b - a, dtype=np.int16)
            for k in range(longest):
                votes += valid[k] & (columns[k] == columns[j])
            better = valid[j] & ((votes > best_votes) | ((votes == best_votes) & (columns[j] < best_label)))
            best_label = np.where(better, columns[j], best_label)
            best_votes = np.where(better, votes, best_votes)
        out[a:b] = best_label
    return out


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
    starts, unique, longest = _np_starts(keys, perm)
    if values.dtype == torch.long:
        return torch.from_numpy(unique), torch.from_numpy(_np_mode_by_runs(values.numpy(), perm, starts, longest))
    acc = _accumulation_dtype(values.dtype)
    flat = values.reshape(values.shape[0], -1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.to(acc)  # NumPy has no bfloat16; half precision is summed in float32 anyway
    np_acc = np.float64 if acc == torch.float64 else np.float32
    means = _np_mean_by_runs(flat.contiguous().numpy(), perm, starts, longest, np.dtype(np_acc))
    return torch.from_numpy(unique), torch.from_numpy(means).reshape(-1, *values.shape[1:]).to(values.dtype)


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
        starts, unique, longest = _np_starts(k, perm)
        r = rows.contiguous().numpy()
        sums = _np_mean_by_runs(r, perm, starts, longest, r.dtype, divide=False)
        return torch.from_numpy(unique), torch.from_numpy(sums)
    sorted_keys, perm = torch.sort(keys, stable=True)
    seg_id, starts, _ = _segment_ids(sorted_keys)
    sums = torch.zeros((starts.shape[0], rows.shape[1]), dtype=rows.dtype, device=rows.device)
    sums.index_add_(0, seg_id, rows[perm])
    return sorted_keys[starts], sums
