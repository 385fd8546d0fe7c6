"""Samplers that choose which windows of which recordings a :class:`~torch_brain.data.Dataset` reads.

Every sampler takes ``sampling_intervals``, a dict ``{recording_id: Interval}`` (what
:meth:`Dataset.get_sampling_intervals` returns; any object with ``start``/``end`` arrays works),
and yields :class:`DatasetIndex` ``(recording_id, start, end)`` tuples, in seconds, that the
dataset turns into windows.

Randomness: a sampler built with ``generator`` (a ``torch.Generator`` or an int seed) draws its
epoch ``e`` from a seed derived from (seed, e), so the same seed and epoch give the same windows on
every process. ``set_epoch(e)`` selects the epoch (Lightning calls it); without it each new
iteration advances to the next epoch. With ``generator=None`` the seed is drawn once from torch's
global RNG at construction (so ``torch.manual_seed`` / ``seed_everything`` make it reproducible).

Distributed: :class:`DistributedStitchingFixedWindowSampler` and
:class:`DistributedEvaluationSamplerWrapper` split the windows between ranks themselves. They are
subclasses of ``torch.utils.data.DistributedSampler``, which is how Lightning (its default
``use_distributed_sampler=True``) and Fabric recognise a sampler that already handles ranks and
leave it in the DataLoader. Any other sampler (e.g. :class:`RandomFixedWindowSampler` for
training) is wrapped by Lightning in its own distributed sampler: every rank draws the same epoch
(same seed and epoch) and takes its share of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = [
    "DatasetIndex",
    "DistributedEvaluationSamplerWrapper",
    "DistributedStitchingFixedWindowSampler",
    "RandomFixedWindowSampler",
    "SequentialFixedWindowSampler",
    "TrialSampler",
]

# relative tolerance (in seconds) used when deciding whether a window fits in an interval, so that
# e.g. an interval of 0.3 s holds three windows of 0.1 s despite float rounding
_TOL = 1e-9


class DatasetIndex(NamedTuple):
    """Address of one window: ``dataset[DatasetIndex(recording_id, start, end)]``.

    Attributes:
        recording_id: ``"<brainset>/<session>"``.
        start: window start, in seconds, absolute time of the recording.
        end: window end, in seconds.
    """

    recording_id: str
    start: float
    end: float


# --------------------------------------------------------------------------------------------
# validation helpers


def _intervals_to_arrays(sampling_intervals: Any, who: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Check ``sampling_intervals`` and return ``[(recording_id, start, end), ...]`` sorted by id."""
    if not isinstance(sampling_intervals, Mapping):
        raise TypeError(
            f"{who}: sampling_intervals must be a dict {{recording_id: Interval}} (as returned by "
            f"Dataset.get_sampling_intervals()), got {type(sampling_intervals).__name__}."
        )
    if len(sampling_intervals) == 0:
        raise ValueError(
            f"{who}: sampling_intervals is empty, so there is nothing to sample; check the dataset's "
            "split and recording selection (Dataset.get_sampling_intervals() returned no recording)."
        )
    out = []
    for rid in sorted(sampling_intervals):
        iv = sampling_intervals[rid]
        if not (hasattr(iv, "start") and hasattr(iv, "end")):
            raise TypeError(
                f"{who}: sampling_intervals['{rid}'] must be an Interval (with start/end arrays), got "
                f"{type(iv).__name__}."
            )
        start = np.asarray(iv.start, dtype=np.float64).reshape(-1)
        end = np.asarray(iv.end, dtype=np.float64).reshape(-1)
        if start.shape != end.shape:
            raise ValueError(
                f"{who}: sampling_intervals['{rid}'] has {start.size} starts but {end.size} ends; "
                "they must have the same length."
            )
        if not (np.all(np.isfinite(start)) and np.all(np.isfinite(end))):
            raise ValueError(f"{who}: sampling_intervals['{rid}'] has non-finite start/end values.")
        bad = np.flatnonzero(end < start)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{who}: sampling_intervals['{rid}'] interval {i} ends before it starts "
                f"(start={start[i]}, end={end[i]}); every interval needs end >= start."
            )
        out.append((str(rid), start, end))
    return out


def _check_positive(value: Any, name: str, who: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: {name} must be a positive number of seconds, got {value!r}.") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{who}: {name} must be a positive, finite number of seconds, got {value!r}.")
    return v


def _too_short_message(who: str, lengths: np.ndarray, window_length: float, n_short: int) -> str:
    longest = float(lengths.max()) if lengths.size else 0.0
    return (
        f"{who}: window_length={window_length:g} s is longer than {n_short} of {lengths.size} "
        f"sampling intervals (the longest interval is {longest:g} s). Use a window_length <= "
        f"{longest:g} s, or drop_short=True to skip the shorter intervals."
    )


def _keep_long_enough(
    arrays: list[tuple[str, np.ndarray, np.ndarray]], window_length: float, drop_short: bool, who: str
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Drop (or refuse) intervals shorter than the window; refuse if nothing is left."""
    lengths = np.concatenate([e - s for _, s, e in arrays])
    if lengths.size == 0:
        raise ValueError(
            f"{who}: every Interval in sampling_intervals is empty (recordings {[r for r, _, _ in arrays][:5]}), "
            "so there is nothing to sample; check the dataset's split (its <split>_domain may be empty)."
        )
    short = lengths + _TOL < window_length
    n_short = int(short.sum())
    if n_short == lengths.size or (n_short and not drop_short):
        raise ValueError(_too_short_message(who, lengths, window_length, n_short))
    if not n_short:
        return arrays
    kept = []
    for rid, s, e in arrays:
        keep = (e - s) + _TOL >= window_length
        if keep.any():
            kept.append((rid, s[keep], e[keep]))
    return kept


def _make_generator(generator: Any, who: str) -> int:
    """Return the base seed of a sampler from ``generator`` (Generator, int or None)."""
    if generator is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(generator, torch.Generator):
        return int(generator.initial_seed())
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return int(generator)
    raise TypeError(f"{who}: generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}.")


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    state = np.random.SeedSequence([seed % 2**64, epoch]).generate_state(2, dtype=np.uint32)
    g = torch.Generator()
    g.manual_seed(int(state[0]) << 31 ^ int(state[1]))
    return g


def _sequential_starts(start: float, end: float, window_length: float, step: float) -> np.ndarray:
    """Starts of windows stepping from ``start``; one more aligned to ``end`` if needed."""
    length = end - start
    n = max(1, int(math.floor((length - window_length) / step + _TOL)) + 1)
    starts = start + step * np.arange(n, dtype=np.float64)
    if starts[-1] + window_length < end - _TOL:
        starts = np.append(starts, end - window_length)
    return starts


class _EpochMixin:
    """``set_epoch`` support: an explicit epoch, or auto-advance on each new iteration."""

    _seed: int
    _epoch: int = 0
    _epoch_set: bool = False

    def set_epoch(self, epoch: int) -> None:
        """Use the windows of epoch ``epoch`` at the next iteration."""
        self._epoch = int(epoch)
        self._epoch_set = True

    def _next_generator(self) -> torch.Generator:
        g = _epoch_generator(self._seed, self._epoch)
        if not self._epoch_set:
            self._epoch += 1
        self._epoch_set = False
        return g


# --------------------------------------------------------------------------------------------
# samplers


class RandomFixedWindowSampler(_EpochMixin, torch.utils.data.Sampler):
    """Random windows of fixed length covering the sampling intervals, reshuffled every epoch.

    An interval of length ``L`` gives ``floor(L / window_length)`` windows per epoch, placed on a
    grid with a random offset (so window boundaries move from epoch to epoch); when the offset
    leaves room for one window fewer, the missing window is placed flush with the interval's start
    or end. All windows of all recordings are then shuffled.

    Args:
        sampling_intervals: ``{recording_id: Interval}``.
        window_length: window duration in seconds.
        generator: ``torch.Generator`` or int seed; None draws a seed from torch's global RNG.
        drop_short: skip intervals shorter than ``window_length`` (otherwise raise ValueError).

    Raises:
        ValueError: no interval is at least ``window_length`` long (the message gives how many are
            shorter and the longest length), or one is shorter and ``drop_short=False``.
    """

    def __init__(
        self,
        sampling_intervals: Mapping[str, Any],
        window_length: float,
        generator: torch.Generator | int | None = None,
        drop_short: bool = True,
    ) -> None:
        who = "RandomFixedWindowSampler"
        self.window_length = _check_positive(window_length, "window_length", who)
        self.drop_short = bool(drop_short)
        arrays = _keep_long_enough(
            _intervals_to_arrays(sampling_intervals, who), self.window_length, self.drop_short, who
        )
        self.sampling_intervals = sampling_intervals
        self._rids = [rid for rid, _, _ in arrays]
        self._rec = np.concatenate([np.full(s.size, i, dtype=np.int64) for i, (_, s, _) in enumerate(arrays)])
        self._start = np.concatenate([s for _, s, _ in arrays])
        self._end = np.concatenate([e for _, _, e in arrays])
        lengths = self._end - self._start
        self._count = np.floor(lengths / self.window_length + _TOL).astype(np.int64)  # windows per interval
        self._seed = _make_generator(generator, who)
        self._epoch = 0

    def __len__(self) -> int:
        return int(self._count.sum())

    def _window_starts(self, g: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        w = self.window_length
        k = self._count.size
        offset = torch.rand(k, generator=g, dtype=torch.float64).numpy() * w
        at_end = torch.rand(k, generator=g, dtype=torch.float64).numpy() < 0.5
        lengths = self._end - self._start
        on_grid = np.minimum(self._count, np.floor((lengths - offset) / w + _TOL).astype(np.int64))
        on_grid = np.maximum(on_grid, 0)
        # grid windows: start + offset + j * w, j < on_grid
        owner = np.repeat(np.arange(k), on_grid)
        first = np.cumsum(on_grid) - on_grid
        j = np.arange(owner.size) - first[owner]
        starts = self._start[owner] + offset[owner] + j * w
        # one flush window where the offset cost a window
        extra = np.flatnonzero(on_grid < self._count)
        extra_starts = np.where(at_end[extra], self._end[extra] - w, self._start[extra])
        return np.concatenate([starts, extra_starts]), np.concatenate([owner, extra])

    def __iter__(self) -> Iterator[DatasetIndex]:
        g = self._next_generator()
        starts, owner = self._window_starts(g)
        order = torch.randperm(starts.size, generator=g).numpy()
        w = self.window_length
        rids, rec = self._rids, self._rec
        for i in order:
            s = float(starts[i])
            yield DatasetIndex(rids[rec[owner[i]]], s, s + w)


class SequentialFixedWindowSampler(torch.utils.data.Sampler):
    """Windows stepping through every interval in order (recordings sorted by id).

    Windows start at the interval start and advance by ``step``; if the last one stops short of
    the interval end, one more window aligned to the end is added. With ``step <= window_length``
    every timestamp is covered; a larger ``step`` deliberately leaves gaps between windows
    (sparse evaluation), so use ``step <= window_length`` when predictions are to be stitched.

    Args:
        sampling_intervals: ``{recording_id: Interval}``.
        window_length: window duration in seconds.
        step: distance between window starts (default ``window_length``: no overlap).
        drop_short: skip intervals shorter than ``window_length``; otherwise they raise ValueError.
    """

    def __init__(
        self,
        sampling_intervals: Mapping[str, Any],
        window_length: float,
        step: float | None = None,
        drop_short: bool = False,
    ) -> None:
        who = "SequentialFixedWindowSampler"
        self.window_length = _check_positive(window_length, "window_length", who)
        self.step = self.window_length if step is None else _check_positive(step, "step", who)
        self.drop_short = bool(drop_short)
        self.sampling_intervals = sampling_intervals
        arrays = _keep_long_enough(
            _intervals_to_arrays(sampling_intervals, who), self.window_length, self.drop_short, who
        )
        self._windows: list[DatasetIndex] = []
        w = self.window_length
        for rid, s, e in arrays:
            for a, b in zip(s.tolist(), e.tolist()):
                self._windows.extend(DatasetIndex(rid, x, x + w) for x in _sequential_starts(a, b, w, self.step).tolist())

    def __len__(self) -> int:
        return len(self._windows)

    def __iter__(self) -> Iterator[DatasetIndex]:
        return iter(self._windows)

    def set_epoch(self, epoch: int) -> None:
        """No-op (the order is fixed); present so every sampler accepts it."""


class TrialSampler(_EpochMixin, torch.utils.data.Sampler):
    """One window per interval, spanning the whole interval (e.g. one per trial).

    Args:
        sampling_intervals: ``{recording_id: Interval}``.
        shuffle: shuffle the order every epoch (otherwise recordings sorted by id, then in time).
        generator: ``torch.Generator`` or int seed, used when shuffling.
    """

    def __init__(
        self,
        sampling_intervals: Mapping[str, Any],
        shuffle: bool = False,
        generator: torch.Generator | int | None = None,
    ) -> None:
        who = "TrialSampler"
        arrays = _intervals_to_arrays(sampling_intervals, who)
        self.sampling_intervals = sampling_intervals
        self.shuffle = bool(shuffle)
        self._windows = [
            DatasetIndex(rid, a, b) for rid, s, e in arrays for a, b in zip(s.tolist(), e.tolist())
        ]
        self._seed = _make_generator(generator, who)
        self._epoch = 0

    def __len__(self) -> int:
        return len(self._windows)

    def __iter__(self) -> Iterator[DatasetIndex]:
        if not self.shuffle:
            return iter(self._windows)
        order = torch.randperm(len(self._windows), generator=self._next_generator()).tolist()
        return iter([self._windows[i] for i in order])


def _resolve_ranks(num_replicas: int | None, rank: int | None, who: str) -> tuple[int, int]:
    if num_replicas is None or rank is None:
        dist = torch.distributed
        initialised = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if initialised else 1
        if rank is None:
            rank = dist.get_rank() if initialised else 0
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
        raise ValueError(f"{who}: num_replicas must be an int >= 1, got {num_replicas!r}.")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
        raise ValueError(f"{who}: rank must be an int in [0, num_replicas={num_replicas}), got {rank!r}.")
    return int(num_replicas), int(rank)


class _RankSplitSampler(torch.utils.data.DistributedSampler):
    """Base of the samplers that split windows between ranks themselves.

    Being a ``torch.utils.data.DistributedSampler`` is what makes Lightning (with its default
    ``use_distributed_sampler=True``) and Fabric leave the sampler in the DataLoader; any other
    sampler gets wrapped in a second distributed sampler, which hands each rank only every
    ``world_size``-th window of the share it already had. torch's ``__init__`` (which wants a
    dataset and shuffles it) is not called; the attributes it defines are set with their meaning
    here: ``num_replicas``, ``rank``, ``epoch``, ``shuffle=False``, ``seed=0``, ``drop_last=False``,
    ``num_samples`` (windows of this rank) and ``total_size`` (windows of all ranks).

    Length: when some rank holds no window while others do, ``len()`` raises TypeError on *every*
    rank (the counts are known everywhere). A DataLoader of length 0 makes Lightning skip that
    rank's whole evaluation loop, callbacks' epoch-end hooks included, so the stitching
    evaluators of the other ranks would wait for it in their metric reduction (or Lightning
    raises "zero length"); a loader without a length is iterated until exhausted on every rank,
    and the empty rank runs its hooks with no batch. It must be unsized on all ranks, since
    Lightning compares lengths across ranks (a collective) only where a loader has one.
    """

    num_replicas: int
    rank: int
    _who: str

    def _init_ranks(self, num_replicas: int | None, rank: int | None) -> None:
        self.num_replicas, self.rank = _resolve_ranks(num_replicas, rank, self._who)
        self.epoch = 0
        self.shuffle = False
        self.seed = 0
        self.drop_last = False

    def _counts(self) -> list[int]:
        """Number of windows of every rank (the same list on every rank)."""
        raise NotImplementedError

    @property
    def num_samples(self) -> int:
        """Number of windows this rank yields (also when ``len()`` is withheld)."""
        return self._counts()[self.rank]

    @property
    def total_size(self) -> int:
        """Number of windows over all ranks."""
        return sum(self._counts())

    def __len__(self) -> int:
        counts = self._counts()
        if self.num_replicas > 1 and min(counts) == 0 < sum(counts):
            raise TypeError(
                f"{self._who}: some rank holds no window (windows per rank: {counts}), so no rank "
                "reports a length: a DataLoader of length 0 would make Lightning skip that rank's "
                "evaluation loop while the other ranks wait for it in the metric reduction. "
                f"Rank {self.rank} yields {counts[self.rank]} windows (see .num_samples)."
            )
        return counts[self.rank]

    def set_epoch(self, epoch: int) -> None:
        """Record the epoch (Lightning calls it); the windows do not depend on it."""
        self.epoch = int(epoch)


class DistributedEvaluationSamplerWrapper(_RankSplitSampler):
    """Split another sampler's windows across processes without padding or duplicates.

    Rank ``r`` of ``n`` gets windows ``r, r + n, r + 2n, ...`` of the wrapped sampler's order, so
    every window is evaluated exactly once over all ranks (ranks may differ by one window).
    Overlapping windows of one sequence therefore land on different ranks: for stitched
    evaluation of overlapping windows use :class:`DistributedStitchingFixedWindowSampler`. Not
    for training either: DDP needs the same number of steps on every rank, which Lightning's own
    wrapping of a training sampler ensures by repeating a few windows.

    It is a ``torch.utils.data.DistributedSampler``, so Lightning's default
    ``use_distributed_sampler=True`` leaves it in place; when the wrapped sampler has fewer windows
    than there are ranks, ``len()`` raises TypeError on every rank, so that Lightning runs the
    evaluation loop of the empty ranks too (``num_samples`` still gives this rank's count).

    Args:
        sampler: any sampler (usually a :class:`SequentialFixedWindowSampler`).
        num_replicas: number of processes (default: the initialised process group's world size, or 1).
        rank: this process's rank (default: from the process group, or 0).
    """

    _who = "DistributedEvaluationSamplerWrapper"

    def __init__(self, sampler: Any, num_replicas: int | None = None, rank: int | None = None) -> None:
        self.sampler = sampler
        self._init_ranks(num_replicas, rank)

    def _counts(self) -> list[int]:
        n, k = len(self.sampler), self.num_replicas
        return [max(0, (n - r + k - 1) // k) for r in range(k)]

    def __iter__(self) -> Iterator[Any]:
        for i, index in enumerate(self.sampler):
            if i % self.num_replicas == self.rank:
                yield index

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped sampler (if it has ``set_epoch``)."""
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


class DistributedStitchingFixedWindowSampler(_RankSplitSampler):
    """Overlapping evaluation windows where each interval (sequence) stays on one process.

    Every sampling interval is a *sequence*. Its windows start at the interval start, advance by
    ``step`` and the last one is aligned to the interval end, so every timestamp of the interval is
    covered. Whole sequences are assigned to ranks, largest first to the least loaded rank, which
    balances the number of windows per rank; stitching therefore never needs windows from another
    process. A rank may receive no sequence of a recording, or no window at all (its iterator is
    then empty). On each rank the windows are yielded sequence by sequence, in time order.

    It is a ``torch.utils.data.DistributedSampler``, so Lightning's default
    ``use_distributed_sampler=True`` leaves it in place instead of splitting each rank's share a
    second time. When some rank holds no window, ``len()`` raises TypeError on every rank, so
    that Lightning runs every rank's evaluation loop, the empty one's included (a loader of length
    0 would be skipped and leave the others waiting); ``num_samples`` and ``windows_per_rank``
    still give the counts.

    Attributes:
        sequences: list of every sequence (over all ranks) as ``DatasetIndex(recording_id, start,
            end)``, sorted by recording id then start; a sequence's index is its position here.
        rank_sequences: sorted indices (into ``sequences``) of the sequences on this rank.
        sequence_index: int64 tensor ``(num_samples,)``: the sequence index of each window this
            rank yields, in yield order.
        num_samples: number of windows of this rank (``windows_per_rank[rank]``).
        windows_per_rank: number of windows of every rank (for checking balance).
        num_batches: ``ceil(num_samples / batch_size)``.

    Args:
        sampling_intervals: ``{recording_id: Interval}``.
        window_length: window duration in seconds.
        step: distance between window starts (default ``window_length``); must be <= window_length
            so that windows cover every timestamp.
        batch_size: evaluation batch size (used for ``num_batches``).
        num_replicas: number of processes (default: from the process group, or 1).
        rank: this process's rank (default: from the process group, or 0).
        drop_short: skip intervals shorter than ``window_length`` instead of raising ValueError.
    """

    _who = "DistributedStitchingFixedWindowSampler"

    def __init__(
        self,
        sampling_intervals: Mapping[str, Any],
        window_length: float,
        step: float | None = None,
        batch_size: int = 1,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_short: bool = False,
    ) -> None:
        who = self._who
        self.window_length = _check_positive(window_length, "window_length", who)
        self.step = self.window_length if step is None else _check_positive(step, "step", who)
        if self.step > self.window_length + _TOL:
            raise ValueError(
                f"{who}: step={self.step:g} s is larger than window_length={self.window_length:g} s, "
                "which would leave gaps that no window covers; use step <= window_length."
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"{who}: batch_size must be an int >= 1, got {batch_size!r}.")
        self.batch_size = int(batch_size)
        self._init_ranks(num_replicas, rank)
        self.sampling_intervals = sampling_intervals
        arrays = _keep_long_enough(_intervals_to_arrays(sampling_intervals, who), self.window_length, drop_short, who)

        self.sequences: list[DatasetIndex] = []
        seq_starts: list[np.ndarray] = []
        for rid, s, e in arrays:
            order = np.argsort(s, kind="stable")
            for a, b in zip(s[order].tolist(), e[order].tolist()):
                self.sequences.append(DatasetIndex(rid, a, b))
                seq_starts.append(_sequential_starts(a, b, self.window_length, self.step))

        counts = np.array([x.size for x in seq_starts], dtype=np.int64)
        owner = _balance(counts, self.num_replicas)
        self.windows_per_rank = [int(counts[owner == r].sum()) for r in range(self.num_replicas)]
        self.rank_sequences = np.flatnonzero(owner == self.rank).tolist()

        w = self.window_length
        self._windows: list[DatasetIndex] = []
        seq_of_window: list[int] = []
        for q in self.rank_sequences:
            rid = self.sequences[q].recording_id
            self._windows.extend(DatasetIndex(rid, x, x + w) for x in seq_starts[q].tolist())
            seq_of_window.extend([q] * seq_starts[q].size)
        self.sequence_index = torch.tensor(seq_of_window, dtype=torch.int64)
        self.num_batches = -(-len(self._windows) // self.batch_size)

    def _counts(self) -> list[int]:
        return self.windows_per_rank

    def __iter__(self) -> Iterator[DatasetIndex]:
        return iter(self._windows)


def _balance(counts: np.ndarray, n_ranks: int) -> np.ndarray:
    """Greedy longest-first assignment of sequences to ranks; returns the rank of each sequence."""
    owner = np.zeros(counts.size, dtype=np.int64)
    load = np.zeros(n_ranks, dtype=np.int64)
    for q in np.argsort(-counts, kind="stable"):
        r = int(np.argmin(load))  # ties -> lowest rank
        owner[q] = r
        load[r] += counts[q]
    return owner
