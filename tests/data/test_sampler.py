"""Samplers checked against brute-force enumeration of windows."""

from collections import Counter

import numpy as np
import pytest
import torch

from torch_brain.data.sampler import (
    DatasetIndex,
    DistributedEvaluationSamplerWrapper,
    DistributedStitchingFixedWindowSampler,
    RandomFixedWindowSampler,
    SequentialFixedWindowSampler,
    TrialSampler,
)


class _Iv:
    """Minimal stand-in for an Interval: start/end arrays."""

    def __init__(self, pairs):
        self.start = np.array([p[0] for p in pairs], dtype=np.float64)
        self.end = np.array([p[1] for p in pairs], dtype=np.float64)


def _intervals():
    return {
        "bs/b": _Iv([(0.0, 3.0), (5.0, 5.7), (10.0, 12.25)]),
        "bs/a": _Iv([(100.0, 104.5)]),
        "bs/c": _Iv([(0.0, 0.3)]),
    }


def _brute_sequential(intervals, w, step, drop_short=True):
    """Naive while-loop enumeration."""
    out = []
    for rid in sorted(intervals):
        iv = intervals[rid]
        for a, b in zip(iv.start, iv.end):
            if b - a < w - 1e-9:
                assert drop_short
                continue
            t = a
            last_end = None
            while t + w <= b + 1e-9:
                out.append((rid, t, t + w))
                last_end = t + w
                t += step
            if last_end < b - 1e-9:
                out.append((rid, b - w, b))
    return out


def _round(ws):
    return [(r, round(s, 6), round(e, 6)) for r, s, e in ws]


def _covered(windows, intervals, grid_step=0.01):
    """Every grid point of every interval lies in at least one window of that recording."""
    for rid, iv in intervals.items():
        ws = [(s, e) for r, s, e in windows if r == rid]
        for a, b in zip(iv.start, iv.end):
            for t in np.arange(a, b + 1e-12, grid_step):
                if not any(s - 1e-9 <= t <= e + 1e-9 for s, e in ws):
                    return False
    return True


# ------------------------------------------------------------------ RandomFixedWindowSampler


def test_random_counts_bounds_and_length():
    ivs = _intervals()
    w = 1.0
    sampler = RandomFixedWindowSampler(ivs, window_length=w, generator=0)
    expected_counts = {("bs/b", 0.0): 3, ("bs/b", 10.0): 2, ("bs/a", 100.0): 4}
    assert len(sampler) == sum(expected_counts.values())
    for epoch in range(20):
        windows = list(sampler)
        assert len(windows) == len(sampler)
        per_interval = Counter()
        for idx in windows:
            assert isinstance(idx, DatasetIndex)
            assert idx.end - idx.start == pytest.approx(w)
            owners = [
                (rid, a) for rid, iv in ivs.items() for a, b in zip(iv.start, iv.end)
                if rid == idx.recording_id and a - 1e-9 <= idx.start and idx.end <= b + 1e-9
            ]
            assert len(owners) == 1
            per_interval[owners[0]] += 1
        assert dict(per_interval) == expected_counts


def test_random_exact_multiple_gives_all_windows():
    # 0.3 s interval, 0.1 s windows: float rounding must not lose a window
    s = RandomFixedWindowSampler({"x/y": _Iv([(0.0, 0.3)])}, window_length=0.1, generator=1)
    assert len(s) == 3 and len(list(s)) == 3


def test_random_deterministic_and_epochs():
    ivs = _intervals()
    a = RandomFixedWindowSampler(ivs, 1.0, generator=torch.Generator().manual_seed(7))
    b = RandomFixedWindowSampler(ivs, 1.0, generator=7)
    ea0, ea1 = list(a), list(a)
    eb0, eb1 = list(b), list(b)
    assert ea0 == eb0 and ea1 == eb1
    assert ea0 != ea1  # successive epochs differ
    b.set_epoch(0)
    assert list(b) == ea0
    b.set_epoch(1)
    assert list(b) == ea1
    c = RandomFixedWindowSampler(ivs, 1.0, generator=8)
    assert list(c) != ea0


def test_random_global_seed_reproducible():
    torch.manual_seed(3)
    a = list(RandomFixedWindowSampler(_intervals(), 1.0))
    torch.manual_seed(3)
    b = list(RandomFixedWindowSampler(_intervals(), 1.0))
    assert a == b


def test_random_jitter_and_shuffle_statistics():
    ivs = {"r/s": _Iv([(0.0, 50.0)])}
    s = RandomFixedWindowSampler(ivs, 1.0, generator=0)
    offsets, first_positions = [], []
    for _ in range(200):
        ws = list(s)
        starts = np.array([x.start for x in ws])
        offsets.append(np.sort(starts)[1] % 1.0)  # second window is always on the grid
        first_positions.append(starts[0])
    offsets = np.array(offsets)
    # grid offsets are uniform on [0, 1): mean ~0.5, spread over all deciles
    assert abs(offsets.mean() - 0.5) < 0.08
    assert len(np.unique(np.floor(offsets * 10))) == 10
    # the first yielded window is shuffled over the interval, not always the earliest one
    assert np.std(first_positions) > 8.0


def test_random_many_points_covered_across_epochs():
    ivs = {"r/s": _Iv([(0.0, 5.5)])}
    s = RandomFixedWindowSampler(ivs, 1.0, generator=2)
    grid = np.arange(0.0, 5.5, 0.05)
    hit = np.zeros(grid.size, bool)
    for _ in range(50):
        for x in s:
            hit |= (grid >= x.start) & (grid <= x.end)
    assert hit.all()


# ------------------------------------------------------------------ SequentialFixedWindowSampler


@pytest.mark.parametrize("w, step", [(1.0, None), (1.0, 0.5), (0.7, 0.3), (0.3, 0.1), (2.0, 2.5)])
def test_sequential_matches_brute_force(w, step):
    ivs = _intervals()
    s = SequentialFixedWindowSampler(ivs, w, step=step, drop_short=True)
    got = _round(list(s))
    assert got == _round(_brute_sequential(ivs, w, step or w))
    assert len(s) == len(got)
    if step is None or step <= w:
        kept = {k: v for k, v in ivs.items() if k != "bs/c"}
        kept["bs/b"] = _Iv([(0.0, 3.0), (10.0, 12.25)] + ([(5.0, 5.7)] if w <= 0.7 else []))
        assert _covered(list(s), kept)


def test_sequential_last_window_aligned_to_end():
    s = SequentialFixedWindowSampler({"a/b": _Iv([(0.0, 2.5)])}, 1.0)
    assert _round(list(s)) == [("a/b", 0.0, 1.0), ("a/b", 1.0, 2.0), ("a/b", 1.5, 2.5)]


# ------------------------------------------------------------------ TrialSampler


def test_trial_sampler_yields_each_interval():
    ivs = _intervals()
    expected = [(rid, a, b) for rid in sorted(ivs) for a, b in zip(ivs[rid].start, ivs[rid].end)]
    assert [tuple(x) for x in TrialSampler(ivs)] == expected
    sh = TrialSampler(ivs, shuffle=True, generator=5)
    e0 = [tuple(x) for x in sh]
    assert sorted(e0) == sorted(expected)
    sh.set_epoch(0)
    assert [tuple(x) for x in sh] == e0
    orders = {tuple(tuple(x) for x in sh) for _ in range(20)}
    assert len(orders) > 1


# ------------------------------------------------------------------ DistributedEvaluationSamplerWrapper


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_evaluation_wrapper_partitions(n):
    base = SequentialFixedWindowSampler(_intervals(), 0.5, drop_short=True)
    all_windows = list(base)
    parts = [list(DistributedEvaluationSamplerWrapper(base, num_replicas=n, rank=r)) for r in range(n)]
    assert sorted(sum(parts, [])) == sorted(all_windows)
    assert sum(len(p) for p in parts) == len(all_windows)
    for r in range(n):
        assert len(DistributedEvaluationSamplerWrapper(base, num_replicas=n, rank=r)) == len(parts[r])
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


# ------------------------------------------------------------------ DistributedStitchingFixedWindowSampler


def _many_intervals():
    rng = np.random.default_rng(0)
    out = {}
    for k in range(5):
        starts = np.cumsum(rng.uniform(1.0, 3.0, size=4)) + 20 * k
        lengths = rng.uniform(1.0, 9.0, size=4)
        out[f"set/s{k}"] = _Iv(list(zip(starts + 10 * np.arange(4), starts + 10 * np.arange(4) + lengths)))
    return out


@pytest.mark.parametrize("n_ranks", [1, 2, 3, 4])
@pytest.mark.parametrize("step", [0.5, 1.0, 0.3])
def test_stitching_every_window_once_sequences_never_split(n_ranks, step):
    ivs = _many_intervals()
    w = 1.0
    brute = _round(_brute_sequential(ivs, w, step))
    samplers = [
        DistributedStitchingFixedWindowSampler(ivs, w, step=step, batch_size=4, num_replicas=n_ranks, rank=r)
        for r in range(n_ranks)
    ]
    union = []
    seq_rank = {}
    for r, s in enumerate(samplers):
        ws = list(s)
        assert len(ws) == len(s) == s.windows_per_rank[r]
        assert s.sequence_index.shape == (len(ws),)
        for x, q in zip(ws, s.sequence_index.tolist()):
            seq = s.sequences[q]
            assert x.recording_id == seq.recording_id
            assert seq.start - 1e-9 <= x.start and x.end <= seq.end + 1e-9
            assert seq_rank.setdefault(q, r) == r  # a sequence lives on one rank
        assert sorted(set(s.sequence_index.tolist())) == s.rank_sequences
        # windows of a sequence are contiguous in yield order
        idx = s.sequence_index.tolist()
        assert idx == sorted(idx)
        union += ws
    assert sorted(_round(union)) == sorted(brute)
    assert len(seq_rank) == len(samplers[0].sequences) == 20
    # balance: loads differ by at most the largest sequence's window count
    counts = Counter(q for s in samplers for q in s.sequence_index.tolist())
    loads = samplers[0].windows_per_rank
    assert max(loads) - min(loads) <= max(counts.values())
    assert _covered(union, ivs)


class _Echo(torch.utils.data.Dataset):
    def __getitem__(self, index):
        return index


def test_stitching_empty_ranks_work():
    ivs = {"a/b": _Iv([(0.0, 3.0)]), "a/c": _Iv([(0.0, 1.0)])}
    samplers = [DistributedStitchingFixedWindowSampler(ivs, 1.0, step=0.5, batch_size=2, num_replicas=4, rank=r) for r in range(4)]
    lens = [len(list(s)) for s in samplers]
    assert sorted(lens) == [0, 0, 1, 5]
    assert [s.num_samples for s in samplers] == lens and all(s.total_size == 6 for s in samplers)
    empty = samplers[lens.index(0)]
    assert list(empty) == [] and empty.sequence_index.numel() == 0 and empty.num_batches == 0
    # some rank is empty: no rank reports a length (Lightning would skip a rank of length 0)
    for s in samplers:
        with pytest.raises(TypeError, match=r"windows per rank: \[5, 1, 0, 0\].*num_samples"):
            len(s)
    # works in a DataLoader on the empty rank and on the others, which then have no length either
    for s, n in zip(samplers, lens):
        loader = torch.utils.data.DataLoader(_Echo(), sampler=s, batch_size=2, collate_fn=lambda b: b)
        assert sum(map(len, loader)) == n
        with pytest.raises(TypeError):
            len(loader)


@pytest.mark.parametrize("n", [2, 3])
def test_evaluation_wrapper_with_fewer_windows_than_ranks_has_no_length(n):
    base = [f"w{i}" for i in range(n - 1)]
    parts = [DistributedEvaluationSamplerWrapper(base, num_replicas=n, rank=r) for r in range(n)]
    assert [list(p) for p in parts] == [[w] for w in base] + [[]]
    assert [p.num_samples for p in parts] == [1] * (n - 1) + [0]
    for p in parts:
        with pytest.raises(TypeError, match="some rank holds no window"):
            len(p)
    # nothing anywhere, or one process: a plain length (0 or all)
    assert len(DistributedEvaluationSamplerWrapper([], num_replicas=n, rank=0)) == 0
    assert len(DistributedEvaluationSamplerWrapper(base, num_replicas=1, rank=0)) == n - 1


def test_distributed_samplers_are_torch_distributed_samplers():
    """Lightning leaves a torch DistributedSampler in the loader (use_distributed_sampler=True)."""
    ivs = {"a/b": _Iv([(0.0, 3.0)]), "a/c": _Iv([(0.0, 2.0)])}
    stitching = DistributedStitchingFixedWindowSampler(ivs, 1.0, step=0.5, num_replicas=2, rank=1)
    wrapper = DistributedEvaluationSamplerWrapper(SequentialFixedWindowSampler(ivs, 1.0), num_replicas=3, rank=2)
    for s in (stitching, wrapper):
        assert isinstance(s, torch.utils.data.DistributedSampler)
        assert s.shuffle is False and s.drop_last is False
    assert (stitching.num_replicas, stitching.rank, stitching.num_samples, stitching.total_size) == (2, 1, 3, 8)
    assert (wrapper.num_replicas, wrapper.rank, wrapper.num_samples, wrapper.total_size) == (3, 2, 1, 5)
    assert len(stitching) == 3 and len(wrapper) == 1
    stitching.set_epoch(4)
    wrapper.set_epoch(4)
    assert stitching.epoch == wrapper.epoch == 4
    assert not isinstance(RandomFixedWindowSampler(ivs, 1.0, generator=0), torch.utils.data.DistributedSampler)


def test_stitching_same_assignment_regardless_of_rank_order():
    ivs = _many_intervals()
    a = DistributedStitchingFixedWindowSampler(ivs, 1.0, step=0.5, batch_size=8, num_replicas=3, rank=1)
    b = DistributedStitchingFixedWindowSampler(ivs, 1.0, step=0.5, batch_size=8, num_replicas=3, rank=1)
    assert list(a) == list(b) and a.rank_sequences == b.rank_sequences


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: RandomFixedWindowSampler({"a/b": _Iv([(0, 1), (0, 2.5)])}, 3.0), ValueError,
         r"window_length=3 s is longer than 2 of 2 sampling intervals \(the longest interval is 2.5 s\)"),
        (lambda: RandomFixedWindowSampler({"a/b": _Iv([(0, 1), (0, 2.5)])}, 2.0, drop_short=False), ValueError,
         "longer than 1 of 2 sampling intervals"),
        (lambda: SequentialFixedWindowSampler({"a/b": _Iv([(0, 1), (0, 2.5)])}, 2.0), ValueError,
         "drop_short=True"),
        (lambda: DistributedStitchingFixedWindowSampler({"a/b": _Iv([(0, 1)])}, 2.0, num_replicas=1, rank=0),
         ValueError, "longest interval is 1 s"),
        (lambda: RandomFixedWindowSampler({}, 1.0), ValueError, "sampling_intervals is empty"),
        (lambda: RandomFixedWindowSampler([(0, 1)], 1.0), TypeError, "must be a dict"),
        (lambda: RandomFixedWindowSampler({"a/b": (0, 1)}, 1.0), TypeError, r"sampling_intervals\['a/b'\]"),
        (lambda: RandomFixedWindowSampler({"a/b": _Iv([(2, 1)])}, 1.0), ValueError, "ends before it starts"),
        (lambda: RandomFixedWindowSampler({"a/b": _Iv([(0, 1)])}, -1.0), ValueError, "window_length must be a positive"),
        (lambda: RandomFixedWindowSampler({"a/b": _Iv([(0, 1)])}, "x"), TypeError, "window_length"),
        (lambda: RandomFixedWindowSampler({"a/b": _Iv([(0, 1)])}, 1.0, generator="s"), TypeError, "generator"),
        (lambda: DistributedStitchingFixedWindowSampler({"a/b": _Iv([(0, 5)])}, 1.0, step=2.0, num_replicas=1, rank=0),
         ValueError, "step=2 s is larger than window_length"),
        (lambda: DistributedStitchingFixedWindowSampler({"a/b": _Iv([(0, 5)])}, 1.0, num_replicas=2, rank=2),
         ValueError, r"rank must be an int in \[0, num_replicas=2\)"),
        (lambda: DistributedStitchingFixedWindowSampler({"a/b": _Iv([(0, 5)])}, 1.0, batch_size=0, num_replicas=1, rank=0),
         ValueError, "batch_size"),
        (lambda: DistributedEvaluationSamplerWrapper([], num_replicas=0, rank=0), ValueError, "num_replicas"),
    ],
)
def test_bad_input(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_drop_short_skips_short_intervals():
    s = RandomFixedWindowSampler({"a/b": _Iv([(0, 1), (0, 2.5)]), "a/c": _Iv([(0, 0.5)])}, 2.0)
    assert len(s) == 1 and list(s)[0].recording_id == "a/b"
