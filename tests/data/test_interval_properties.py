"""Property tests (hypothesis): Interval algebra against brute-force membership on a fine time grid,
and slicing of every container against naive numpy masks (eager and lazy)."""

import os
import tempfile

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torch_brain.data import Data, Interval, IrregularTimeSeries, RegularTimeSeries

# endpoints on a 0.5 s lattice, windows on a 0.25 s lattice, grid every 1/8 s: any non-empty
# overlap between them has length >= 0.25 and so contains grid points
GRID = np.arange(-2.0, 24.0, 0.125)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def intervals(draw, min_len=0, max_size=8):
    n = draw(st.integers(0, max_size))
    starts = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    lens = draw(st.lists(st.integers(min_len, 10), min_size=n, max_size=n))
    s = np.array(starts, dtype=float) * 0.5
    e = s + np.array(lens, dtype=float) * 0.5
    return Interval(s, e)


def member(iv, x=GRID):
    """Brute force: is each grid point in some [start, end)?"""
    if len(iv) == 0:
        return np.zeros(x.shape, dtype=bool)
    return np.any((x[:, None] >= iv.start[None, :]) & (x[:, None] < iv.end[None, :]), axis=1)


def assert_canonical(iv):
    """Sorted, non-empty pieces, separated by gaps (touching pieces would have been merged)."""
    assert np.all(iv.end > iv.start)
    assert np.all(iv.start[1:] > iv.end[:-1])


def _closed_has(iv, t):
    return bool(np.any((iv.start <= t) & (t <= iv.end)))


def _at(t):
    return int(round((t - GRID[0]) * 8))


def _reference(a, b, op):
    """Brute force on the grid: membership of the positive-length part, the isolated points, the cuts.

    A point ``[t, t]`` is the instant t and lies in ``[s, e]`` when s <= t <= e (temporaldata's rule);
    a result point is dropped when a positive-length piece of the result touches it.
    """
    pa, pb = a.end > a.start, b.end > b.start
    ma, mb = member(a[pa]), member(b[pb])
    m = {"and": ma & mb, "or": ma | mb, "difference": ma & ~mb}[op]
    qa, qb = a.start[~pa].tolist(), b.start[~pb].tolist()
    if op == "and":
        cand = [t for t in qa if _closed_has(b, t)] + [t for t in qb if _closed_has(a, t)]
    elif op == "or":
        cand = qa + qb
    else:
        cand = [t for t in qa if not _closed_has(b, t)]
    points = sorted({t for t in cand if not (m[_at(t)] or m[_at(t) - 1])})
    cuts = sorted({t for t in qb if m[_at(t)] and m[_at(t) - 1]}) if op == "difference" else []
    return m, points, cuts


@SETTINGS
@given(intervals(), intervals())
def test_and_or_difference_match_brute_force(a, b):
    # the operands must be sorted and disjoint (as in temporaldata); eps=0 keeps touching rows apart
    a, b = a.coalesce(eps=0.0), b.coalesce(eps=0.0)
    for op, result in [("and", a & b), ("or", a | b), ("difference", a.difference(b))]:
        m, points, cuts = _reference(a, b, op)
        pos = result.end > result.start
        np.testing.assert_array_equal(member(result[pos]), m)
        assert result.start[~pos].tolist() == points, op
        ps, pe = result.start[pos], result.end[pos]
        assert ps[1:][ps[1:] == pe[:-1]].tolist() == cuts, op
        assert np.all(ps[1:] >= pe[:-1]) and result.is_sorted() and result.is_disjoint()


@SETTINGS
@given(intervals())
def test_coalesce_keeps_membership(a):
    c = a.coalesce()
    np.testing.assert_array_equal(member(c), member(a))
    # zero-length rows are kept (as points) unless they touch another row; rows are separated by gaps
    assert np.all(c.end >= c.start) and np.all(c.start[1:] - c.end[:-1] > 1e-6)
    assert len(c) <= len(a)


@SETTINGS
@given(intervals(min_len=1), st.integers(0, 6))
def test_dilate_properties(a, k):
    a = a.coalesce()
    size = k * 0.25
    d = a.dilate(size)
    m_a, m_d = member(a), member(d)
    assert np.all(m_d[m_a]), "dilation must contain the original"
    if len(a):
        dist = np.min(np.maximum(np.maximum(a.start[None, :] - GRID[:, None], GRID[:, None] - a.end[None, :]), 0), 1)
        assert np.all(dist[m_d] <= size + 1e-9), "dilation grows by at most size"
        assert len(d) == len(a) and d.is_disjoint() and d.is_sorted()
        # an interval whose neighbours are more than 2 * size away grows by exactly size on each side
        gaps_before = np.concatenate([[np.inf], a.start[1:] - a.end[:-1]])
        gaps_after = np.concatenate([a.start[1:] - a.end[:-1], [np.inf]])
        free = (gaps_before >= 2 * size) & (gaps_after >= 2 * size)
        np.testing.assert_allclose(d.start[free], a.start[free] - size)
        np.testing.assert_allclose(d.end[free], a.end[free] + size)


@SETTINGS
@given(intervals(min_len=1))
def test_is_disjoint_matches_brute_force(a):
    covered_twice = np.any(
        ((GRID[:, None] >= a.start[None, :]) & (GRID[:, None] < a.end[None, :])).sum(1) > 1
    ) if len(a) else False
    assert a.is_disjoint() == (not covered_twice)


@SETTINGS
@given(intervals(), st.integers(-4, 90), st.integers(0, 30))
def test_interval_slice_and_clip_match_brute_force(a, i, k):
    start, end = i * 0.25, i * 0.25 + k * 0.25
    in_window = (GRID >= start) & (GRID < end)
    expected_rows = []
    for s, e in zip(a.start, a.end):
        if s == e:
            expected_rows.append(start <= s < end)
        else:
            expected_rows.append(bool(np.any((GRID >= s) & (GRID < e) & in_window)))
    w = a.slice(start, end)
    np.testing.assert_allclose(w.start, a.start[expected_rows] - start)
    np.testing.assert_allclose(w.end, a.end[expected_rows] - start)
    c = a.clip(start, end, reset_origin=False)
    np.testing.assert_array_equal(member(c), member(a) & in_window)


@SETTINGS
@given(intervals(), st.lists(st.integers(0, 5), min_size=1, max_size=4), st.booleans())
def test_split_partitions_rows(a, weights, shuffle):
    if sum(weights) == 0:
        weights = [1] + weights[1:]
    ratios = np.array(weights, dtype=float) / sum(weights)
    parts = a.split(list(ratios), shuffle=shuffle, random_seed=0)
    assert sum(len(p) for p in parts) == len(a)
    got = sorted(zip(np.concatenate([p.start for p in parts]).tolist(), np.concatenate([p.end for p in parts]).tolist()))
    assert got == sorted(zip(a.start.tolist(), a.end.tolist()))


# ---------------------------------------------------------------- series slicing
sorted_times = st.lists(st.integers(0, 400), min_size=0, max_size=60).map(lambda v: np.sort(np.array(v, float) / 20.0))
window = st.tuples(st.integers(-20, 440), st.integers(0, 200)).map(lambda t: (t[0] / 20.0 + 0.013, (t[0] + t[1]) / 20.0))


@SETTINGS
@given(sorted_times, window)
def test_irregular_slice_vs_numpy(ts, win):
    start, end = win
    s = IrregularTimeSeries(ts, v=np.arange(ts.size), domain=Interval(0.0, 20.0))
    keep = (ts >= start) & (ts < end)
    w = s.slice(start, end)
    np.testing.assert_allclose(w.timestamps, ts[keep] - start)
    np.testing.assert_array_equal(w.v, np.arange(ts.size)[keep])


@SETTINGS
@given(st.sampled_from([1.0, 7.0, 10.0, 30.0, 100.0, 1000.0 / 3]), st.integers(-50, 50), st.integers(0, 300),
       st.floats(-5, 20, allow_nan=False), st.floats(0, 10, allow_nan=False))
def test_regular_slice_vs_numpy(fs, t0_ticks, n, start, length):
    t0 = t0_ticks * 0.1
    r = RegularTimeSeries(sampling_rate=fs, domain_start=t0, x=np.arange(n))
    naive_t = t0 + np.arange(n) / fs
    end = start + length
    keep = (naive_t >= start) & (naive_t < end)
    w = r.slice(start, end)
    np.testing.assert_array_equal(w.x, np.arange(n)[keep])
    np.testing.assert_allclose(w.timestamps, naive_t[keep] - start, atol=1e-9)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sorted_times, st.lists(window, min_size=1, max_size=5))
def test_lazy_equals_eager_and_numpy(ts, windows):
    data = Data(spikes=IrregularTimeSeries(ts, v=np.arange(ts.size), domain=Interval(0.0, 20.0)),
                beh=RegularTimeSeries(sampling_rate=10.0, y=np.arange(200)), domain=Interval(0.0, 20.0))
    fd, path = tempfile.mkstemp(suffix=".h5")
    os.close(fd)
    try:
        with h5py.File(path, "w") as f:
            data.to_hdf5(f)
        with h5py.File(path, "r") as f:
            lazy = Data.from_hdf5(f, lazy=True)
            for start, end in windows:
                wl, we = lazy.slice(start, end), data.slice(start, end)
                keep = (ts >= start) & (ts < end)
                np.testing.assert_allclose(wl.spikes.timestamps, ts[keep] - start)
                np.testing.assert_array_equal(wl.spikes.v, np.arange(ts.size)[keep])
                np.testing.assert_array_equal(wl.beh.y, we.beh.y)
                np.testing.assert_allclose(wl.domain.end, we.domain.end)
                assert len(wl.spikes) == int(keep.sum())
    finally:
        os.unlink(path)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0.0, 0.3, -2.7, 12345.678, 1e5 + 0.1]),
       st.lists(st.integers(0, 200), min_size=1, max_size=80),
       st.lists(st.tuples(st.integers(-20, 220), st.integers(0, 60)), min_size=1, max_size=6))
def test_lazy_row_ranges_at_grid_points_and_large_offsets(d0, ticks, wins):
    # timestamps and window edges fall exactly on (or next to) the whole-second grid of the index
    ts = np.sort(d0 + np.array(ticks, dtype=float) / 10.0)
    data = Data(spikes=IrregularTimeSeries(ts, v=np.arange(ts.size), domain=Interval(d0, d0 + 20.0)))
    fd, path = tempfile.mkstemp(suffix=".h5")
    os.close(fd)
    try:
        with h5py.File(path, "w") as f:
            data.to_hdf5(f)
        with h5py.File(path, "r") as f:
            lazy = Data.from_hdf5(f, lazy=True)
            for a, k in wins:
                start = d0 + a / 10.0
                end = start + k / 10.0
                keep = (ts >= start) & (ts < end)
                w = lazy.spikes.slice(start, end, reset_origin=False)
                np.testing.assert_array_equal(w.v, np.arange(ts.size)[keep])
                np.testing.assert_array_equal(w.timestamps, ts[keep])
    finally:
        os.unlink(path)
