"""In-memory containers: construction, indexing, slicing against naive numpy, Data behaviour."""

import numpy as np
import pytest

from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, RegularTimeSeries


def _session(seed=0):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(0.0, 10.0, 500))
    spikes = IrregularTimeSeries(ts, unit_index=rng.integers(0, 5, ts.size), domain=Interval(0.0, 10.0))
    cursor = RegularTimeSeries(sampling_rate=100.0, vel=rng.normal(size=(1000, 2)))
    trials = Interval(
        start=np.arange(0.0, 10.0, 2.0), end=np.arange(0.0, 10.0, 2.0) + 1.5, target_id=np.arange(5),
    )
    units = ArrayDict(id=np.array([f"u{i}" for i in range(5)]))
    return Data(
        spikes=spikes, cursor=cursor, trials=trials, units=units, session=Data(id="s1"),
        movement_periods=Data(reach_period=Interval([1.0, 5.0], [2.0, 6.0]), domain="auto"),
        weights=np.arange(3.0), domain=Interval(0.0, 10.0),
    )


# ------------------------------------------------------------------ ArrayDict
def test_arraydict_keys_len_and_indexing():
    a = ArrayDict(x=np.arange(5), y=np.arange(10).reshape(5, 2))
    assert a.keys() == ["x", "y"] and len(a) == 5
    mask = np.array([True, False, True, False, False])
    sub = a.select_by_mask(mask)
    assert isinstance(sub, ArrayDict)
    np.testing.assert_array_equal(sub.x, [0, 2])
    np.testing.assert_array_equal(sub.y, [[0, 1], [4, 5]])
    np.testing.assert_array_equal(a[1:3].x, [1, 2])
    np.testing.assert_array_equal(a[np.array([4, 0])].x, [4, 0])
    np.testing.assert_array_equal(a[-1].y, [[8, 9]])
    assert len(ArrayDict()) == 0


def test_arraydict_mismatched_lengths():
    with pytest.raises(ValueError, match="column 'y' has 3 rows but column 'x' has 2"):
        ArrayDict(x=np.zeros(2), y=np.zeros(3))
    a = ArrayDict(x=np.zeros(2))
    with pytest.raises(ValueError, match="share the first dimension"):
        a.z = np.zeros(4)


@pytest.mark.parametrize(
    "value, err, msg",
    [
        # scalars are converted and then refused as 0-d, as temporaldata does (ValueError)
        (3.0, ValueError, "column 'x' must have at least one dimension"),
        (np.float64(2.0), ValueError, "at least one dimension"),
        ("ab", ValueError, "at least one dimension"),
        (np.array(2.0), ValueError, "at least one dimension"),
        ({"a": 1}, TypeError, "column 'x' must be a numpy array \\(or a list/tuple\\), but got dict"),
    ],
)
def test_arraydict_bad_columns(value, err, msg):
    with pytest.raises(err, match=msg):
        ArrayDict(x=value)


def test_arraydict_bad_mask_and_missing_column():
    a = ArrayDict(x=np.arange(3))
    with pytest.raises(ValueError, match=r"boolean mask must have shape \(3,\)"):
        a[np.array([True, False])]
    with pytest.raises(TypeError, match="'mask' must be a boolean array"):
        a.select_by_mask(np.array([0, 1]))
    with pytest.raises(AttributeError, match="no column 'nope'; available columns: \\['x'\\]"):
        a.nope


# ------------------------------------------------------- IrregularTimeSeries
def test_irregular_slice_matches_naive_numpy():
    data = _session()
    ts, ui = data.spikes.timestamps, data.spikes.unit_index
    for start, end in [(0.0, 1.0), (2.5, 3.7), (9.5, 12.0), (-1.0, 0.5), (4.0, 4.0)]:
        w = data.spikes.slice(start, end)
        keep = (ts >= start) & (ts < end)
        np.testing.assert_allclose(w.timestamps, ts[keep] - start)
        np.testing.assert_array_equal(w.unit_index, ui[keep])
        w_abs = data.spikes.slice(start, end, reset_origin=False)
        np.testing.assert_array_equal(w_abs.timestamps, ts[keep])
        # domain [0, 10) clipped to the window
        lo, hi = max(start, 0.0), min(end, 10.0)
        if hi > lo:
            np.testing.assert_allclose([w.domain.start[0], w.domain.end[0]], [lo - start, hi - start])
        else:
            assert len(w.domain) == 0


def test_irregular_extra_timekeys_are_shifted():
    s = IrregularTimeSeries(np.array([1.0, 2.0]), stop=np.array([1.5, 2.5]), timekeys=["timestamps", "stop"])
    w = s.slice(0.5, 3.0)
    np.testing.assert_allclose(w.stop, [1.0, 2.0])
    assert s.timekeys() == ["timestamps", "stop"]


def test_irregular_auto_domain_and_select_by_interval():
    s = IrregularTimeSeries(np.array([0.5, 1.0, 2.0, 3.0, 4.0]), v=np.arange(5))
    np.testing.assert_array_equal([s.domain.start[0], s.domain.end[0]], [0.5, 4.0])
    sel = s.select_by_interval(Interval([0.0, 2.5], [1.0, 3.5]))
    np.testing.assert_array_equal(sel.timestamps, [0.5, 3.0])  # 1.0 excluded: half-open
    np.testing.assert_array_equal(sel.v, [0, 3])


def test_irregular_unsorted_raises():
    with pytest.raises(ValueError, match=r"'timestamps' must be sorted.*timestamps\[2\]=1\.0 < timestamps\[1\]=2\.0"):
        IrregularTimeSeries(np.array([0.0, 2.0, 1.0]))


def test_nan_times_are_rejected():
    with pytest.raises(ValueError, match=r"'timestamps' must not contain NaN, but 1 value\(s\) are NaN \(first at index 1\)"):
        IrregularTimeSeries(np.array([0.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="'end' must not contain NaN"):
        Interval([0.0], [np.nan])


def test_irregular_bad_domain_and_timekeys():
    with pytest.raises(TypeError, match="'domain' must be an Interval"):
        IrregularTimeSeries(np.array([0.0]), domain=(0, 1))
    with pytest.raises(ValueError, match="time key 'foo' is not a column"):
        IrregularTimeSeries(np.array([0.0]), timekeys=["timestamps", "foo"])


# --------------------------------------------------------- RegularTimeSeries
def test_regular_timestamps_domain_and_slice():
    fs, t0 = 100.0, 3.0
    r = RegularTimeSeries(sampling_rate=fs, domain_start=t0, x=np.arange(1000))
    naive_t = t0 + np.arange(1000) / fs
    np.testing.assert_allclose(r.timestamps, naive_t)
    np.testing.assert_allclose([r.domain.start[0], r.domain.end[0]], [3.0, 13.0])
    for start, end in [(3.0, 4.0), (5.005, 6.123), (0.0, 3.5), (12.5, 20.0), (7.0, 7.0)]:
        keep = (naive_t >= start) & (naive_t < end)
        w = r.slice(start, end)
        np.testing.assert_array_equal(w.x, np.arange(1000)[keep])
        np.testing.assert_allclose(w.timestamps, naive_t[keep] - start, atol=1e-9)
        assert w.sampling_rate == fs


def test_regular_domain_argument_and_errors():
    r = RegularTimeSeries(sampling_rate=10.0, domain=Interval(2.0, 3.0), x=np.zeros(10))
    assert r.domain_start == 2.0
    with pytest.raises(ValueError, match="'domain' ends at 5.0 but 10 samples at 10.0 Hz"):
        RegularTimeSeries(sampling_rate=10.0, domain=Interval(2.0, 5.0), x=np.zeros(10))
    with pytest.raises(ValueError, match="'sampling_rate' must be a positive"):
        RegularTimeSeries(sampling_rate=0.0, x=np.zeros(3))
    with pytest.raises(TypeError, match="only contiguous rows"):
        r[np.array([0, 2])]


def test_regular_select_by_interval_is_irregular():
    r = RegularTimeSeries(sampling_rate=10.0, x=np.arange(20))
    sel = r.select_by_interval(Interval([0.0, 1.5], [0.3, 1.7]))
    assert isinstance(sel, IrregularTimeSeries)
    np.testing.assert_array_equal(sel.x, [0, 1, 2, 15, 16])


# ---------------------------------------------------------------------- Data
def test_data_slice_shifts_everything_and_accumulates_absolute_start():
    data = _session()
    w = data.slice(2.5, 5.5)
    assert w.absolute_start == 2.5
    ts = data.spikes.timestamps
    np.testing.assert_allclose(w.spikes.timestamps, ts[(ts >= 2.5) & (ts < 5.5)] - 2.5)
    assert w.cursor.vel.shape == (300, 2)
    np.testing.assert_array_equal(w.cursor.vel, data.cursor.vel[250:550])
    # trials [2, 3.5) and [4, 5.5) overlap the window: kept whole, relative to 2.5
    np.testing.assert_allclose(w.trials.start, [-0.5, 1.5])
    np.testing.assert_allclose(w.trials.end, [1.0, 3.0])
    np.testing.assert_array_equal(w.trials.target_id, [1, 2])
    np.testing.assert_allclose(w.movement_periods.reach_period.start, [2.5])
    np.testing.assert_allclose([w.domain.start[0], w.domain.end[0]], [0.0, 3.0])
    assert w.session.id == "s1" and w.units.id[0] == "u0" and w.weights is data.weights
    w2 = w.slice(1.0, 2.0)
    assert w2.absolute_start == 3.5
    np.testing.assert_allclose(w2.spikes.timestamps, ts[(ts >= 3.5) & (ts < 4.5)] - 3.5)


def test_data_slice_does_not_share_arraydict_objects():
    data = _session()
    w = data.slice(0.0, 1.0)
    w.units.id = np.array(["x"] * 5)
    assert data.units.id[0] == "u0"


def test_data_auto_domain_nested_access_and_keys():
    data = _session()
    assert set(data.keys()) == {"spikes", "cursor", "trials", "units", "session", "movement_periods", "weights"}
    dom = data.movement_periods.domain
    np.testing.assert_array_equal(dom.start, [1.0, 5.0])
    r = data.get_nested_attribute("movement_periods.reach_period")
    assert isinstance(r, Interval)
    assert data.has_nested_attribute("cursor.vel") and not data.has_nested_attribute("cursor.nope")
    with pytest.raises(AttributeError, match="'movement_periods' has no attribute 'hold_period'"):
        data.get_nested_attribute("movement_periods.hold_period")
    auto = Data(a=Interval(0.0, 1.0), b=IrregularTimeSeries(np.array([2.0, 3.0])), domain="auto")
    np.testing.assert_array_equal(auto.domain.start, [0.0, 2.0])
    np.testing.assert_array_equal(auto.domain.end, [1.0, 3.0])
    assert Data(x=1).domain is None


def test_data_select_by_interval():
    data = _session()
    sel = data.select_by_interval(Interval([1.0, 6.0], [2.0, 7.0]))
    ts = data.spikes.timestamps
    np.testing.assert_array_equal(sel.spikes.timestamps, ts[((ts >= 1) & (ts < 2)) | ((ts >= 6) & (ts < 7))])
    np.testing.assert_array_equal(sel.trials.target_id, [0, 3])
    np.testing.assert_array_equal(sel.domain.start, [1.0, 6.0])
    assert sel.cursor.vel.shape == (200, 2)


def test_data_bad_domain():
    with pytest.raises(TypeError, match="'domain' must be an Interval"):
        Data(domain=[0, 1])
    overlapping = Interval([0.0, 1.0], [2.0, 3.0])
    with pytest.raises(ValueError, match=r"Data: 'domain' must be sorted, non-overlapping .* Use domain.coalesce\(\)"):
        Data(domain=overlapping)
    with pytest.raises(ValueError, match="IrregularTimeSeries: 'domain' must be sorted, non-overlapping"):
        IrregularTimeSeries(np.array([0.5]), domain=overlapping)
    Data(domain=overlapping.coalesce())  # the suggested fix works
