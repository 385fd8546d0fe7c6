"""Sort-and-segment kernels behind :func:`torch_brain.utils.stitcher.stitch`.

Everything here groups rows by an exact key (a timestamp), in three steps:

1. an *order*: a stable permutation that sorts the keys (``None`` when they already are sorted);
2. *segments*: the start of each run of equal keys in sorted order, and the run lengths;
3. a *reduction* per segment: a sum (for means) or a vote (for modes).

Two back ends implement the steps. The NumPy one serves CPU tensors; the torch one serves CUDA
tensors (and small CPU inputs, where per-call overhead dominates).

The NumPy back end has two pipelines:

- *Blocks* (rows roughly in key order, as an evaluator receives them from consecutive
  overlapping windows): rows are taken ``_BLOCK`` at a time; each block is sorted together with
  the rows carried over from earlier blocks (as integers, the floats' bit patterns, where every
  key is positive), and the runs whose key is below every later block's keys are final. Every
  temporary is block-sized, so nothing (N,)-sized is allocated and page-faulted, and the work
  stays in cache. Large inputs are cut into two halves pooled on two threads (NumPy releases
  the GIL in its kernels); only the timestamps both halves hold (the *zone*: about one window's
  worth) are pooled after the join, from their rows in row order.
- *One global sort*, for rows far from key order (the block pipeline gives up when too many
  rows wait for later blocks): NumPy's timsort on long sorted runs, otherwise torch's
  multithreaded radix sort on an integer image of the keys.

When the largest segment holds only a few rows (``K`` = number of windows overlapping a
timestamp, 2 for 50 % overlap), a segment reduction is done as ``K`` gathers over the segment
starts instead of a scatter over all rows; this is both faster and exact. A mean is the sum of
the run's rows in row order over their count, in every path (runs longer than ``_MAX_PASSES``
rows are summed by a segmented reduction, which may round differently in the last bit).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch

from torch_brain._malloc import prime_mmap_threshold as _prime_allocator

__all__: list[str] = []

# below this many rows the CPU path uses torch ops (lower fixed cost than NumPy round trips)
_SMALL = 4096
# largest segment length handled by the gather-per-offset reductions
_MAX_PASSES = 8
# a presorted run structure (timsort territory) if there are at most N / _RUN_LENGTH descents
_RUN_LENGTH = 8
# the dense (segments x classes) vote table is used while it has at most this many cells per row
_DENSE_VOTE_CELLS = 64
# np.take mode for indices that are always in range: "wrap" checks them ~15 % faster than "clip"
# (measured on 65 536 and 131 072 gathers), and both skip the "raise" mode's buffered output
_IN_RANGE = "wrap"
# rows per block in the NumPy pipeline: block temporaries stay in cache and are never page-faulted
_CHUNK = 1 << 16
# rows per block when roughly sorted rows are pooled block by block (on two threads, each NumPy
# call re-takes the GIL; measured: 2^17-row blocks make ~3x fewer GIL waits than 2^16 at the same
# per-row cost, 2^18 costs more per row)
_BLOCK = 1 << 17
# a block pipeline gives up (for one global sort) when more rows than this wait for later blocks
_MAX_CARRY = 1 << 18
# inputs with at least this many rows are stitched as two halves on two threads ...
_SPLIT = 1 << 19
# ... unless more than 1 / _SPLIT_ZONE of the rows fall in the timestamps both halves hold
_SPLIT_ZONE = 16
# (estimated from every _SAMPLE-th row)
_SAMPLE = 512

_pool: tuple[int, ThreadPoolExecutor] | None = None


class _NaNKeys(ValueError):
    """A key is NaN: NaN keys cannot be grouped. The NumPy pipelines find NaN keys in the block
    minima they compute anyway (a NaN propagates through ``np.minimum``), with no extra pass."""


def _two_threads() -> ThreadPoolExecutor:
    """A pool of two worker threads, created on first use in each process (a forked child, such
    as a DataLoader worker, does not inherit its parent's threads)."""
    global _pool
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="torch_brain_stitch"))
    return _pool[1]


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


def _positive_image(keys: np.ndarray, low: float) -> np.ndarray:
    """``keys`` themselves, or, when they are floats and ``low`` > 0, their bit patterns as
    signed integers, which NumPy sorts ~1.5x faster than floats.

    Keys >= ``low`` (positive floats and +inf) order and compare exactly like their bits. Keys
    below ``low`` (no NaN) have smaller bit patterns than those, so they all sort first, but in
    an unspecified order among themselves (negative floats sort reversed, -0.0 before them):
    callers use the image only where those rows are skipped. (``low`` <= 0 is refused: -0.0 ==
    0.0 as floats but not as bits.)"""
    if keys.dtype.kind == "f" and low > 0:
        return keys.view({2: np.int16, 4: np.int32, 8: np.int64}[keys.itemsize])
    return keys


def _np_starts(keys: np.ndarray, perm: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Sorted-order positions (U,) where a run of equal keys starts, and the longest run length.

    Works block by block, so that no (N,)-sized temporary is created: the starts are written
    into an (N,) buffer, of which only the first U entries are ever touched (and so paged in),
    then shrunk to U.
    """
    n = keys.shape[0]
    starts = np.empty(n, dtype=np.int64)
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
            idx += a
            if n_runs:
                longest = max(longest, int(idx[0] - starts[n_runs - 1]))
            if m > 1:
                longest = max(longest, int(np.max(idx[1:] - idx[:-1])))
            starts[n_runs : n_runs + m] = idx
            n_runs += m
        previous = chunk[-1]
    longest = max(longest, n - int(starts[n_runs - 1]))
    # shrink the buffer in place (no views of it exist; a large one is remapped, not copied)
    starts.resize(n_runs, refcheck=False)
    return starts, longest


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
        taken = np.take(values.view(word).reshape(-1), rows, out=flat_out, mode=_IN_RANGE)
        return taken.view(values.dtype).reshape(rows.shape[0], values.shape[1]) if out is None else out
    if out is None:
        return np.take(values, rows, axis=0, mode=_IN_RANGE)
    out[...] = np.take(values, rows, axis=0, mode=_IN_RANGE)
    return out


def _zero_rows(rows: np.ndarray, keep: np.ndarray) -> None:
    """Set ``rows[~keep] = 0`` in place for a fresh C-contiguous (U, F) array."""
    row_bytes = rows.shape[1] * rows.itemsize
    if row_bytes in (4, 8):
        words = rows.view(np.int32 if row_bytes == 4 else np.int64).reshape(-1)
        np.multiply(words, keep, out=words)  # all-zero bits are 0.0
    else:
        rows[~keep] = 0


class _Runs(NamedTuple):
    """Rows of one key array grouped into runs of equal keys (see :func:`_np_runs`)."""

    perm: np.ndarray | None  # stable sorting permutation, None when already sorted
    starts: np.ndarray  # (U,) sorted-order position where each run starts
    longest: int  # longest run


def _np_runs(keys: np.ndarray) -> _Runs:
    perm = _np_order(keys)
    return _Runs(perm, *_np_starts(keys, perm))


def _np_pool_pairs(values: np.ndarray, rows: np.ndarray, rows2: np.ndarray, out: np.ndarray,
                   scratch: np.ndarray | None = None) -> None:
    """Pool runs of one or two rows, at ``rows`` (R,) and ``rows2`` (R,) (``rows2 == rows`` for
    a single-row run), into ``out``: for float rows (N, F) the mean x / 2 + y / 2 (= (x + y) / 2
    exactly, barring subnormals; it cannot overflow, and is exactly x for a single row); for
    labels (N,) the mode, i.e. the minimum (equal labels win, a 1-1 tie goes to the smaller).
    ``scratch`` (R, ...) takes the second rows instead of a fresh array."""
    if values.ndim == 1:
        np.take(values, rows, out=out, mode=_IN_RANGE)
        np.minimum(out, np.take(values, rows2, out=scratch, mode=_IN_RANGE), out=out)
        return
    _np_take_rows(values, rows, out=out)
    y = _np_take_rows(values, rows2, out=scratch)
    y *= 0.5
    out *= 0.5
    out += y


def _np_mean_chunk(values: np.ndarray, perm: np.ndarray | None, first: np.ndarray, first_rows: np.ndarray,
                   lengths: np.ndarray, longest: int, out: np.ndarray, divide: bool) -> None:
    """Write the mean (the sum if not ``divide``) of ``values`` (N, F) over each of a block of
    runs into ``out`` (R, F); runs start at sorted positions ``first`` (R,), i.e. at rows
    ``first_rows``, and hold ``lengths`` (R,) rows, at most ``longest``."""
    n = values.shape[0] if perm is None else perm.shape[0]  # rows in sorted order
    _np_take_rows(values, first_rows, out=out)
    if longest == 1:
        return
    if longest == 2 and divide and out.dtype == values.dtype:
        second = first + (lengths > 1)
        _np_pool_pairs(values, first_rows, second if perm is None else perm[second], out)
        return
    position = np.empty_like(first)
    has_row = np.empty(first.shape[0], dtype=bool)
    for offset in range(1, longest):
        # add each run's offset-th row where the run has one (zero the others first:
        # a 1-D mask on whole-row words is far cheaper than a broadcast `where=`)
        np.add(first, offset, out=position)
        np.minimum(position, n - 1, out=position)
        np.greater(lengths, offset, out=has_row)
        rows = _np_take_rows(values, position if perm is None else perm[position])
        _zero_rows(rows, has_row)
        np.add(out, rows, out=out)
    if divide:  # the sum in row order over the count, as in every path
        out /= lengths.astype(out.dtype)[:, None]


def _np_mode_chunk(labels: np.ndarray, perm: np.ndarray | None, first: np.ndarray, first_rows: np.ndarray,
                   lengths: np.ndarray, longest: int, out: np.ndarray) -> None:
    """Write the most frequent label (the smallest on ties) of each of a block of runs into
    ``out`` (R,); arguments as in :func:`_np_mean_chunk`."""
    n = labels.shape[0] if perm is None else perm.shape[0]  # rows in sorted order
    if longest <= 2:
        second = first + (lengths > 1)
        _np_pool_pairs(labels, first_rows, second if perm is None else perm[second], out)
        return
    # column j: the j-th label of each run (clipped past the run's end; masked by `valid`)
    columns = []
    for j in range(longest):
        position = np.minimum(first + j, n - 1)
        columns.append(labels[position if perm is None else perm[position]])
    valid = [lengths > j for j in range(longest)]
    best_label, best_votes = columns[0], np.zeros(first.shape[0], dtype=np.int16)
    for j in range(longest):
        votes = np.zeros(first.shape[0], dtype=np.int16)
        for k in range(longest):
            votes += valid[k] & (columns[k] == columns[j])
        better = valid[j] & ((votes > best_votes) | ((votes == best_votes) & (columns[j] < best_label)))
        best_label = np.where(better, columns[j], best_label)
        best_votes = np.where(better, votes, best_votes)
    out[:] = best_label


def _np_fill_deep(keys: np.ndarray, values: np.ndarray, runs: _Runs, span: tuple[int, int], unique: np.ndarray,
                  pooled: np.ndarray, divide: bool) -> None:
    """:func:`_np_fill` for runs longer than ``_MAX_PASSES`` rows (deep overlap): one gather of
    the span in sorted order, then a segmented sum or vote."""
    perm, starts, _ = runs
    r0, r1 = span
    n = keys.shape[0]
    lo = int(starts[r0])
    hi = int(starts[r1]) if r1 < starts.shape[0] else n
    rows = np.arange(lo, hi) if perm is None else perm[lo:hi]
    offsets = starts[r0:r1] - lo
    unique[:] = keys[rows[offsets]]
    lengths = np.diff(offsets, append=hi - lo)
    if values.ndim == 1:
        pooled[:] = _mode_by_segment_np(np.repeat(np.arange(r1 - r0), lengths), values[rows], r1 - r0)
        return
    np.add.reduceat(np.take(values, rows, axis=0).astype(pooled.dtype, copy=False), offsets, axis=0, out=pooled)
    if divide:
        pooled /= lengths.astype(pooled.dtype)[:, None]


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


def _np_fill(keys: np.ndarray, values: np.ndarray, runs: _Runs, span: tuple[int, int], unique: np.ndarray,
             pooled: np.ndarray, divide: bool) -> None:
    """Write the keys and pooled values of runs span[0]..span[1]-1 into ``unique`` and ``pooled``:
    means (sums if not ``divide``) of float rows (N, F), or modes of (N,) integer labels."""
    perm, starts, longest = runs
    r0, r1 = span
    if r1 <= r0:
        return
    if longest > _MAX_PASSES:
        _np_fill_deep(keys, values, runs, span, unique, pooled, divide)
        return
    n = keys.shape[0]
    for a in range(r0, r1, _CHUNK):
        b = min(a + _CHUNK, r1)
        first = starts[a:b]
        first_rows = first if perm is None else perm[first]
        lengths = _chunk_lengths(starts, a, b, n)
        np.take(keys, first_rows, out=unique[a - r0 : b - r0])
        if values.ndim == 1:
            _np_mode_chunk(values, perm, first, first_rows, lengths, longest, pooled[a - r0 : b - r0])
        else:
            _np_mean_chunk(values, perm, first, first_rows, lengths, longest, pooled[a - r0 : b - r0], divide)


def _np_empty_pooled(n: int, keys: np.ndarray, values: np.ndarray, acc: np.dtype | None) -> tuple[np.ndarray, np.ndarray]:
    pooled = np.empty(n, dtype=values.dtype) if acc is None else np.empty((n, values.shape[1]), dtype=acc)
    return np.empty(n, dtype=keys.dtype), pooled


def _np_pool_serial(keys: np.ndarray, values: np.ndarray, acc: np.dtype | None,
                    divide: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sorted ``keys`` (U,) and pooled ``values``: per-key means (U, F) in dtype ``acc``
    of float rows (N, F) (sums if not ``divide``), or per-key modes (U,) of labels (N,) when
    ``acc`` is None."""
    runs = _np_runs(keys)
    unique, pooled = _np_empty_pooled(runs.starts.shape[0], keys, values, acc)
    _np_fill(keys, values, runs, (0, runs.starts.shape[0]), unique, pooled, divide)
    return unique, pooled


def _np_pool(keys: np.ndarray, values: np.ndarray, acc: np.dtype | None,
             divide: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sorted ``keys`` (U,) and pooled ``values``: per-key means (U, F) in dtype ``acc``
    of float rows (N, F) (sums if not ``divide``), or per-key modes (U,) of labels (N,) when
    ``acc`` is None.

    Rows that come roughly in key order (overlapping windows) are pooled block by block
    (:func:`_np_pool_blocks`), on two threads for large inputs (:func:`_np_pool_halves`);
    anything else, and any input on which those give up, by one global sort.

    Raises:
        _NaNKeys: if a key is NaN.
    """
    n = keys.shape[0]
    if n > _BLOCK:
        _prime_allocator()
    if n >= _SPLIT and torch.get_num_threads() >= 2 and -(-n // _BLOCK) >= 2:
        result = _np_pool_halves(keys, values, acc, divide)
    else:
        later_min = _later_minima(keys)
        if np.isnan(later_min[0]):
            raise _NaNKeys
        unique, pooled = _np_empty_pooled(n, keys, values, acc)
        done = _np_pool_blocks(keys, values, later_min, (0, later_min.shape[0]), unique, pooled, divide)
        result = None if done is None else _shrink(unique, pooled, done[0])
    if result is not None:
        return result
    if _has_nan(keys):  # the halves may give up before reading every key
        raise _NaNKeys
    return _np_pool_serial(keys, values, acc, divide)


def _later_minima(keys: np.ndarray, high: float | None = None) -> np.ndarray:
    """Smallest key of each ``_BLOCK``-row block of ``keys`` and of all blocks after it (and
    ``high``, the smallest key of rows that follow ``keys``, when given)."""
    mins = np.minimum.reduceat(keys, np.arange(0, keys.shape[0], _BLOCK))
    if high is not None:
        mins = np.append(mins, high)
    return np.minimum.accumulate(mins[::-1])[::-1]


def _np_pool_second_half(keys: np.ndarray, values: np.ndarray, p: int, unique: np.ndarray, pooled: np.ndarray,
                         divide: bool):
    """:func:`_np_pool_blocks` over the blocks from row ``p`` (a block boundary) on, setting aside
    the rows whose key is <= every key before row ``p``. None if it gives up or a key is NaN
    (then :func:`_np_pool` looks for the NaN)."""
    later_min, high = _later_minima(keys[p:]), np.max(keys[:p])
    if np.isnan(later_min[0]) or np.isnan(high):
        return None
    return _np_pool_blocks(keys, values, later_min, (p // _BLOCK, -(-keys.shape[0] // _BLOCK)), unique, pooled,
                           divide, high)


class _Scratch:
    """One reusable pair of output buffers for the second half in :func:`_np_pool_halves`.

    Freshly mapped memory is slow to page in from the worker thread (several times slower than
    from the main thread on the VMs we measured), so the worker writes into memory kept from the
    previous call, and the main thread copies it into the fresh output. At most one pair is
    kept (about half the output of the largest recent call); a call that finds it in use by
    another thread allocates its own.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buffers: tuple[np.ndarray, np.ndarray] | None = None

    def get(self, n: int, keys: np.ndarray, values: np.ndarray, acc: np.dtype | None) -> tuple[np.ndarray, np.ndarray]:
        """Buffers for ``n`` rows; call with ``lock`` held."""
        like = _np_empty_pooled(0, keys, values, acc)
        kept = self.buffers
        if (kept is None or kept[0].shape[0] < n or kept[0].dtype != like[0].dtype
                or kept[1].dtype != like[1].dtype or kept[1].shape[1:] != like[1].shape[1:]):
            self.buffers = kept = None  # drop the old pair before mapping the new one
            self.buffers = kept = _np_empty_pooled(n, keys, values, acc)
        return kept


_scratch = _Scratch()


def _shrink(unique: np.ndarray, pooled: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut fresh output buffers to their first ``m`` rows in place (large ones are remapped, not
    copied; their untouched tail was never paged in)."""
    unique.resize(m, refcheck=False)
    pooled.resize((m, *pooled.shape[1:]), refcheck=False)
    return unique, pooled


def _np_pool_sorted(sorted_keys: np.ndarray, values: np.ndarray, perm: np.ndarray, unique: np.ndarray,
                    pooled: np.ndarray, divide: bool) -> int:
    """Pool the runs of equal ``sorted_keys`` (M,) whose rows are ``values[perm]``; write the
    keys and pooled rows at the start of ``unique`` and ``pooled``; return the number of runs."""
    c = sorted_keys.shape[0]
    change = np.empty(c, dtype=bool)
    change[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=change[1:])
    first = np.flatnonzero(change)
    m = first.shape[0]
    lengths = np.diff(first, append=c)
    longest = int(lengths.max())
    unique[:m] = sorted_keys[first]
    out = pooled[:m]
    if longest > _MAX_PASSES:  # deep overlap: a segmented sum or vote over the ordered rows
        ordered = values[perm]
        if values.ndim == 1:
            out[:] = _mode_by_segment_np(np.repeat(np.arange(m), lengths), ordered, m)
            return m
        np.add.reduceat(ordered.astype(out.dtype, copy=False), first, axis=0, out=out)
        if divide:
            out /= lengths.astype(out.dtype)[:, None]
        return m
    if values.ndim == 1:
        _np_mode_chunk(values, perm, first, perm[first], lengths, longest, out)
    else:
        _np_mean_chunk(values, perm, first, perm[first], lengths, longest, out, divide)
    return m


class _Workspace:
    """Scratch arrays reused from block to block by one :func:`_np_pool_blocks` call.

    Allocating a block's temporaries afresh for every block makes the allocator map and unmap
    memory all the time, and paging it in again costs more than the work on it (measured: a
    block pipeline ~1.8x slower in a fresh process). Only ``argsort`` and ``flatnonzero`` still
    allocate per block.
    """

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        self.keys_dtype, self.values_dtype, self.row_shape = keys.dtype, values.dtype, values.shape[1:]
        self.capacity = 0

    def reserve(self, c: int) -> None:
        """Make every buffer hold at least ``c`` rows."""
        if c <= self.capacity:
            return
        c = max(c, _BLOCK + _BLOCK // 8)
        self.k, self.sorted_k = np.empty(c, self.keys_dtype), np.empty(c, self.keys_dtype)
        self.v, self.second_v = (np.empty((c, *self.row_shape), self.values_dtype) for _ in range(2))
        self.change = np.empty(c, bool)
        self.lengths, self.rows, self.rows2 = (np.empty(c, np.int64) for _ in range(3))
        self.capacity = c


def _np_pool_sorted_fast(sorted_keys: np.ndarray, values: np.ndarray, perm: np.ndarray, unique: np.ndarray,
                         pooled: np.ndarray, divide: bool, ws: _Workspace) -> int:
    """:func:`_np_pool_sorted` with temporaries in ``ws``, for runs of at most 2 rows (means of
    floats or modes of labels); other inputs go to :func:`_np_pool_sorted`."""
    c = sorted_keys.shape[0]
    change = ws.change[:c]
    change[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=change[1:])
    first = np.flatnonzero(change)
    m = first.shape[0]
    lengths = ws.lengths[:m]
    np.subtract(first[1:], first[:-1], out=lengths[:-1])
    lengths[-1] = c - first[-1]
    labels = values.ndim == 1
    if int(lengths.max()) > 2 or not (labels or (divide and pooled.dtype == values.dtype)):
        return _np_pool_sorted(sorted_keys, values, perm, unique, pooled, divide)
    np.take(sorted_keys, first, out=unique[:m], mode=_IN_RANGE)
    rows, rows2, last = ws.rows[:m], ws.rows2[:m], lengths  # (lengths are not needed any more)
    np.take(perm, first, out=rows, mode=_IN_RANGE)
    np.subtract(first[1:], 1, out=last[:-1])  # each run's last row: its second, or its only one
    last[-1] = c - 1
    np.take(perm, last, out=rows2, mode=_IN_RANGE)
    _np_pool_pairs(values, rows, rows2, pooled[:m], ws.second_v[:m])
    return m


def _np_pool_blocks(keys: np.ndarray, values: np.ndarray, later_min: np.ndarray, blocks: tuple[int, int],
                    unique: np.ndarray, pooled: np.ndarray, divide: bool, held_back=None):
    """Pool rows that come roughly in key order, block by block (``_BLOCK`` rows each).

    Each block's rows are sorted together with the rows of earlier blocks that later rows may
    still join (the *carried* rows): the block is read from the first carried row on, and the
    re-read rows that were final before sort first and are skipped. Runs whose key is below every
    key of the blocks after it are final (no later row can join them) and are written in order
    from the start of ``unique``/``pooled``; the rest are carried. All temporaries are
    block-sized: nothing (N,)-sized is allocated, so nothing is page-faulted twice. Rows with a key
    <= ``held_back`` are set aside unpooled (for :func:`_np_pool_halves`).

    Args:
        later_min: smallest key of blocks i.. for the blocks i from ``blocks[0]`` on
            (``later_min[i - b0]`` belongs to block i), one per block, or one more (the rows after
            the last block): then the last block's runs at or above it are carried too.
        blocks: the blocks [b0, b1) to pool.

    Returns:
        (runs written, carried rows as (keys, values) in key order, set-aside rows as a list of
        (keys, values)), or None when the re-read or set-aside rows outgrow ``_MAX_CARRY`` (the
        rows are far from key order: one global sort is cheaper).
    """
    b0, b1 = blocks
    n = keys.shape[0]
    written, n_aside, aside = 0, 0, []
    start = b0 * _BLOCK  # the first row that may still be pooled: rows [start, a) are re-read ...
    carried = None  # ... unless that would re-read many final rows: then the carried rows' copies
    ws = _Workspace(keys, values)
    for i in range(b0, b1):
        a, end = i * _BLOCK, min((i + 1) * _BLOCK, n)
        old = a - start if carried is None else carried[0].shape[0]  # rows before the block's own
        c = old + end - a
        ws.reserve(c)
        if carried is None:
            k, v = keys[start:end], values[start:end]
        else:
            k = np.concatenate([carried[0], keys[a:end]], out=ws.k[:c])
            v = np.concatenate([carried[1], values[a:end]], out=ws.v[:c])
        # a stable sort of rows in row order: equal keys keep row order (re-read rows that are
        # final, all below later_min[i - b0], sort first in any order; see _positive_image)
        perm = np.argsort(_positive_image(k, later_min[i - b0]), kind="stable")
        sorted_k = np.take(k, perm, out=ws.sorted_k[:c], mode=_IN_RANGE)
        # re-read rows below this block's keys were final in an earlier block
        lo = 0 if old == 0 else int(np.searchsorted(sorted_k, later_min[i - b0], side="left"))
        if held_back is not None:
            done, lo = lo, max(lo, int(np.searchsorted(sorted_k, held_back, side="right")))
            if lo > done:
                new = perm[done:lo]
                new = new[new >= old]  # re-read rows in there were set aside before
                aside.append((k[new], v[new]))
                n_aside += new.shape[0]
        last = i + 1 - b0 == later_min.shape[0]
        hi = c if last else int(np.searchsorted(sorted_k, later_min[i + 1 - b0], side="left"))
        hi = max(hi, lo)
        if hi > lo:
            written += _np_pool_sorted_fast(sorted_k[lo:hi], v, perm[lo:hi], unique[written:], pooled[written:],
                                            divide, ws)
        if hi == c:
            start, carried = end, None
            continue
        # the next block re-reads from the first carried row if it is a row of `keys` (position x
        # >= old is row a - old + x) and few final rows lie between the carried ones
        first = int(perm[hi:].min())
        if (carried is None or first >= old) and c - first <= 2 * (c - hi) + _BLOCK // 64:
            start, carried = a - old + first, None
        else:  # copies: the workspace is overwritten by the next block
            carried = (sorted_k[hi:].copy(), v[perm[hi:]])
        if c - hi > _MAX_CARRY or n_aside > _MAX_CARRY:
            return None
    # the carried rows: those at sorted positions hi.. of the last block
    return written, (sorted_k[hi:].copy(), v[perm[hi:]]), aside


def _np_pool_halves(keys: np.ndarray, values: np.ndarray, acc: np.dtype | None,
                    divide: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_np_pool_blocks` over two halves of the blocks, on two threads.

    Half A (rows [0, p)) is pooled as usual; its last carried rows are those with a key >= min(B).
    Half B (rows [p, N)) sets aside its rows with a key <= max(A). Those two sets (the zone: every
    row whose key both halves hold) are then pooled together, A's rows before B's, so every run
    is pooled from its rows in row order, as in one serial pass. Returns None when a half gives up
    (see ``_np_pool_blocks``) or when the halves' keys interleave too much for the split to pay.
    """
    n = keys.shape[0]
    n_blocks = -(-n // _BLOCK)
    mid = n_blocks // 2
    p = mid * _BLOCK
    # estimate the zone from every _SAMPLE-th row; a wrong guess costs time, never correctness
    sample_a, sample_b = keys[:p:_SAMPLE], keys[p::_SAMPLE]
    shared = np.count_nonzero(sample_a >= sample_b.min()) + np.count_nonzero(sample_b <= sample_a.max())
    if shared * _SAMPLE * _SPLIT_ZONE > n:
        return None
    own_scratch = _scratch.lock.acquire(blocking=False)
    try:
        if own_scratch:
            unique_b, pooled_b = _scratch.get(n - p, keys, values, acc)
        else:
            unique_b, pooled_b = _np_empty_pooled(n - p, keys, values, acc)
        # each thread finds the bounds it needs itself (one hand-off each way: a waiting thread
        # is slow to wake on the VMs we measured)
        half_b = _two_threads().submit(_np_pool_second_half, keys, values, p, unique_b, pooled_b, divide)
        later_a = _later_minima(keys[:p], high=np.min(keys[p:]))
        unique, pooled = _np_empty_pooled(n, keys, values, acc)
        half_a = _np_pool_blocks(keys, values, later_a, (0, mid), unique, pooled, divide)
        half_b = half_b.result()
        if half_a is None or half_b is None:
            return None
        n_a, (carry_k, carry_v), _ = half_a
        n_b, _, aside = half_b
        zone_k = np.concatenate([carry_k] + [k for k, _ in aside])
        zone_v = np.concatenate([carry_v] + [v for _, v in aside])
        n_z = 0
        if zone_k.shape[0]:
            perm = np.argsort(zone_k, kind="stable")
            n_z = _np_pool_sorted(zone_k[perm], zone_v, perm, unique[n_a:], pooled[n_a:], divide)
        at_b = n_a + n_z
        unique[at_b : at_b + n_b] = unique_b[:n_b]
        pooled[at_b : at_b + n_b] = pooled_b[:n_b]
    finally:
        if own_scratch:
            _scratch.lock.release()
    return _shrink(unique, pooled, at_b + n_b)


def _has_nan(keys: np.ndarray) -> bool:
    """Whether a 1-D float array holds a NaN (max propagates NaN: one pass, no temporary; on
    two threads for large inputs)."""
    n = keys.shape[0]
    if n < _SPLIT or torch.get_num_threads() < 2:
        return bool(np.isnan(np.max(keys)))
    half = _two_threads().submit(np.max, keys[n // 2 :])
    return bool(np.isnan(np.max(keys[: n // 2])) or np.isnan(half.result()))


def _stitch_numpy(timestamps: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    keys = timestamps.numpy()
    if values.dtype == torch.long:
        unique, modes = _np_pool(keys, values.numpy(), None)
        return torch.from_numpy(unique), torch.from_numpy(modes)
    acc = _accumulation_dtype(values.dtype)
    flat = values.reshape(values.shape[0], -1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.to(acc)  # NumPy has no bfloat16; half precision is summed in float32 anyway
    np_acc = np.dtype(np.float64 if acc == torch.float64 else np.float32)
    unique, means = _np_pool(keys, flat.contiguous().numpy(), np_acc)
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
    """Dispatch to a back end; inputs are validated and non-empty. Raises _NaNKeys on a NaN
    timestamp."""
    if backend == "auto":
        use_numpy = timestamps.device.type == "cpu" and timestamps.shape[0] >= _SMALL
        backend = "numpy" if use_numpy else "torch"
    if backend == "numpy":
        return _stitch_numpy(timestamps.contiguous(), values.contiguous())
    if timestamps.is_floating_point() and bool(torch.isnan(timestamps.max())):
        raise _NaNKeys
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
        r = rows.contiguous().numpy()
        with contextlib.suppress(_NaNKeys):  # NaN keys: each its own group, as on the torch path below
            unique, sums = _np_pool(keys.contiguous().numpy(), r, r.dtype, divide=False)
            return torch.from_numpy(unique), torch.from_numpy(sums)
    sorted_keys, perm = torch.sort(keys, stable=True)
    seg_id, starts, _ = _segment_ids(sorted_keys)
    sums = torch.zeros((starts.shape[0], rows.shape[1]), dtype=rows.dtype, device=rows.device)
    sums.index_add_(0, seg_id, rows[perm])
    return sorted_keys[starts], sums
