"""Transforms: exact bookkeeping checked by brute force, randomness checked by its statistics."""

import numpy as np
import pytest

from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, RegularTimeSeries
from torch_brain.transforms import (
    Compose,
    OutputSampler,
    RandomCrop,
    RandomTimeScaling,
    UnitDropout,
    UnitFilter,
)


def _window(n_units=50, n_spikes=2000, length=1.0, seed=0):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(0, length, n_spikes))
    return Data(
        units=ArrayDict(id=np.array([f"bs/sess/u{i:03d}" for i in range(n_units)])),
        spikes=IrregularTimeSeries(
            ts, unit_index=rng.integers(0, n_units, n_spikes).astype(np.int64), domain=Interval(0.0, length)
        ),
        cursor=RegularTimeSeries(sampling_rate=100.0, vel=rng.normal(size=(int(100 * length), 2))),
        trials=Interval(start=np.array([0.1, 0.5]), end=np.array([0.4, 0.9]), target_id=np.array([3, 5])),
        movement_periods=Data(reach_period=Interval(np.array([0.2]), np.array([0.3])), domain="auto"),
        session=Data(id="bs/sess"),
        config={"k": 1},
        domain=Interval(0.0, length),
    )


def _spike_pairs(data):
    """(unit id, timestamp) of every spike: what must survive unit selection, independent of indices."""
    ids = data.units.id[data.spikes.unit_index]
    return sorted(zip(ids.tolist(), data.spikes.timestamps.tolist()))


# ------------------------------------------------------------------ UnitDropout


def test_unit_dropout_keeps_spikes_of_kept_units_exactly():
    w = _window()
    t = UnitDropout(min_units=5, mode_units=10, max_units=40, seed=0)
    for _ in range(30):
        out = t(w)
        kept = set(out.units.id.tolist())
        expected = [p for p in _spike_pairs(w) if p[0] in kept]
        assert _spike_pairs(out) == expected
        # unit order preserved and index range valid
        assert list(out.units.id) == [u for u in w.units.id if u in kept]
        assert out.spikes.unit_index.max() < len(out.units)
        assert out.spikes.unit_index.dtype == np.int64
    # input window untouched
    assert len(w.units) == 50 and len(w.spikes) == 2000


def test_unit_dropout_count_distribution_is_triangular():
    # with more units than max_units every draw is accepted: k ~ round(Triangular(a, c, b))
    a, c, b = 10, 30, 80
    w = _window(n_units=100, n_spikes=300)
    t = UnitDropout(min_units=a, mode_units=c, max_units=b, seed=1)
    ks = np.array([len(t(w).units) for _ in range(3000)])
    assert ks.min() >= a and ks.max() <= b
    assert abs(ks.mean() - (a + b + c) / 3) < 1.0
    # CDF of the triangular distribution at the mode: (c - a) / (b - a)
    assert abs(np.mean(ks <= c) - (c - a) / (b - a)) < 0.04


def test_unit_dropout_count_truncated_like_rejection_sampling():
    # fewer units (50) than max_units: same law as redrawing round(Triangular) until <= 50
    a, c, b, n = 10, 30, 80, 50
    rng = np.random.default_rng(0)
    draws = np.rint(rng.triangular(a, c, b, size=200000))
    reference = draws[draws <= n]
    w = _window(n_units=n, n_spikes=300)
    t = UnitDropout(min_units=a, mode_units=c, max_units=b, seed=4)
    ks = np.array([len(t(w).units) for _ in range(3000)])
    assert ks.max() <= n and ks.min() >= a
    assert abs(ks.mean() - reference.mean()) < 0.6
    for q in (35, 45):
        assert abs(np.mean(ks <= q) - np.mean(reference <= q)) < 0.04


def test_unit_dropout_units_chosen_uniformly():
    w = _window(n_units=20, n_spikes=200)
    t = UnitDropout(min_units=2, mode_units=10, max_units=20, seed=2)
    counts = np.zeros(20)
    n = 4000
    total = 0
    for _ in range(n):
        out = t(w)
        idx = [int(u[-3:]) for u in out.units.id]
        counts[idx] += 1
        total += len(idx)
    freq = counts / n
    assert np.allclose(freq, total / n / 20, atol=0.04)


def test_unit_dropout_small_windows_and_no_reset():
    w = _window(n_units=5, n_spikes=100)
    assert UnitDropout(min_units=10, mode_units=20, max_units=30, seed=0)(w) is w
    w = _window(n_units=50, n_spikes=500)
    out = UnitDropout(min_units=5, mode_units=6, max_units=7, reset_index=False, seed=0)(w)
    assert len(out.units) == 50
    assert 5 <= len(np.unique(out.spikes.unit_index)) <= 7
    assert _spike_pairs(out) == [p for p in _spike_pairs(w) if p[0] in set(w.units.id[out.spikes.unit_index])]


def test_unit_dropout_deterministic_by_seed():
    w = _window()
    a = [tuple(UnitDropout(5, 10, 40, seed=3)(w).units.id) for _ in range(1)]
    b = [tuple(UnitDropout(5, 10, 40, seed=3)(w).units.id) for _ in range(1)]
    assert a == b


# ------------------------------------------------------------------ UnitFilter


@pytest.mark.parametrize(
    "keep, invert, expected",
    [
        (r"u00[0-4]$", False, [f"bs/sess/u{i:03d}" for i in range(5)]),
        (r"u00[0-4]$", True, [f"bs/sess/u{i:03d}" for i in range(5, 50)]),
        (["bs/sess/u010", "bs/sess/u002", "nope"], False, ["bs/sess/u002", "bs/sess/u010"]),
        (lambda d: np.arange(len(d.units)) % 10 == 0, False, [f"bs/sess/u{i:03d}" for i in range(0, 50, 10)]),
    ],
)
def test_unit_filter(keep, invert, expected):
    w = _window()
    out = UnitFilter(keep, invert=invert)(w)
    assert list(out.units.id) == expected
    assert _spike_pairs(out) == [p for p in _spike_pairs(w) if p[0] in set(expected)]


# ------------------------------------------------------------------ RandomTimeScaling


def test_time_scaling_scales_every_time():
    w = _window()
    t = RandomTimeScaling(0.5, 2.0, seed=0)
    factors = []
    for _ in range(400):
        out = t(w)
        s = out.domain.end[0] / w.domain.end[0]
        factors.append(s)
        assert np.allclose(out.spikes.timestamps, w.spikes.timestamps * s)
        assert np.array_equal(out.spikes.unit_index, w.spikes.unit_index)
        assert np.allclose(out.spikes.domain.end, w.spikes.domain.end * s)
        assert np.allclose(out.trials.start, w.trials.start * s) and np.allclose(out.trials.end, w.trials.end * s)
        assert np.array_equal(out.trials.target_id, w.trials.target_id)
        assert np.allclose(out.movement_periods.reach_period.end, [0.3 * s])
        assert out.cursor.sampling_rate == pytest.approx(100.0 / s)
        assert np.allclose(out.cursor.timestamps, w.cursor.timestamps * s)
        assert np.array_equal(out.cursor.vel, w.cursor.vel)
        assert out.absolute_start == w.absolute_start
    factors = np.array(factors)
    assert factors.min() >= 0.5 and factors.max() <= 2.0
    assert abs(factors.mean() - 1.25) < 0.06  # uniform on [0.5, 2]
    assert np.allclose(w.spikes.timestamps[:3], _window().spikes.timestamps[:3])  # input unchanged


# ------------------------------------------------------------------ RandomCrop


def test_random_crop_matches_naive_slice_and_is_uniform():
    w = _window(length=2.0)
    t = RandomCrop(0.5, seed=0)
    starts = []
    for _ in range(500):
        out = t(w)
        s = out.absolute_start - w.absolute_start
        starts.append(s)
        mask = (w.spikes.timestamps >= s) & (w.spikes.timestamps < s + 0.5)
        assert np.allclose(out.spikes.timestamps, w.spikes.timestamps[mask] - s)
        assert out.domain.end[0] - out.domain.start[0] == pytest.approx(0.5)
    starts = np.array(starts)
    assert starts.min() >= 0 and starts.max() <= 1.5
    assert abs(starts.mean() - 0.75) < 0.05
    assert abs(starts.std() - 1.5 / np.sqrt(12)) < 0.04


def test_random_crop_too_long():
    with pytest.raises(ValueError, match=r"window is 1 s long, shorter than crop_length=2 s"):
        RandomCrop(2.0, seed=0)(_window())


# ------------------------------------------------------------------ OutputSampler


def test_output_sampler_uniform_subset_in_time_order():
    w = _window()
    t = OutputSampler("cursor", max_samples=10, seed=0)
    counts = np.zeros(100)
    for _ in range(2000):
        out = t(w)
        ts = out.cursor.timestamps
        assert len(ts) == 10 and np.all(np.diff(ts) > 0)
        rows = np.rint(ts * 100).astype(int)
        assert np.array_equal(out.cursor.vel, w.cursor.vel[rows])
        counts[rows] += 1
    assert np.allclose(counts / 2000, 0.1, atol=0.03)
    assert isinstance(w.cursor, RegularTimeSeries)  # input unchanged


def test_output_sampler_fraction_and_nested():
    w = _window()
    w.behaviour = Data(hand=IrregularTimeSeries(np.linspace(0, 0.9, 10), pos=np.arange(10.0)))
    out = OutputSampler(["cursor", "behaviour.hand"], fraction=0.25, seed=0)(w)
    assert len(out.cursor) == 25
    assert len(out.behaviour.hand) == 3
    assert np.allclose(out.behaviour.hand.pos, out.behaviour.hand.timestamps * 10)
    assert len(w.behaviour.hand) == 10  # input unchanged


# ------------------------------------------------------------------ Compose


def test_compose_order_and_final_dict():
    w = _window()
    t = Compose([UnitFilter(r"u00\d$"), lambda d: {"n_units": len(d.units), "sid": d.session.id}])
    assert t(w) == {"n_units": 10, "sid": "bs/sess"}


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: UnitDropout(min_units=50, mode_units=20, max_units=30), ValueError, "min_units <= mode_units"),
        (lambda: UnitDropout(min_units=1.5), TypeError, "min_units must be a non-negative int"),
        (lambda: UnitDropout(min_units=-1), ValueError, "min_units must be a non-negative int, got -1"),
        (lambda: UnitDropout(field="spikes.x"), ValueError, "top-level unit-indexed series"),
        (lambda: UnitFilter("(["), ValueError, "not a valid regular expression"),
        (lambda: UnitFilter(3), TypeError, "keep must be a callable"),
        (lambda: RandomTimeScaling(2.0, 1.0), ValueError, "0 < min_scale <= max_scale"),
        (lambda: RandomCrop(-1.0), ValueError, "crop_length must be a positive"),
        (lambda: OutputSampler("cursor"), ValueError, "exactly one of max_samples or fraction"),
        (lambda: OutputSampler("cursor", fraction=2.0), ValueError, r"fraction must be in \(0, 1\]"),
        (lambda: Compose([1]), TypeError, r"transforms\[0\] must be callable"),
        (lambda: UnitDropout(seed="a"), TypeError, "seed must be an int"),
    ],
)
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize(
    "transform, exc, match",
    [
        (UnitFilter(lambda d: np.ones(3, bool)), ValueError, r"bool array of shape \(50,\)"),
        (UnitDropout(1, 2, 3, field="cursor", seed=0), ValueError, "field 'cursor' has no 'unit_index'"),
        (UnitDropout(1, 2, 3, field="lfp", seed=0), ValueError, "no field 'lfp'"),
        (OutputSampler("hand", max_samples=3, seed=0), ValueError, "no field 'hand'"),
        (OutputSampler("units", max_samples=3, seed=0), TypeError, "field 'units' must be a time series"),
    ],
)
def test_bad_windows(transform, exc, match):
    with pytest.raises(exc, match=match):
        transform(_window())


def test_not_a_data_object():
    with pytest.raises(TypeError, match="expected a torch_brain.data.Data window, got dict"):
        UnitDropout(seed=0)({})
