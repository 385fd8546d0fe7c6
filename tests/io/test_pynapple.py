"""pynapple interop: exact both ways, refusals where pynapple would change the data."""

from __future__ import annotations

import numpy as np
import pytest

nap = pytest.importorskip("pynapple")

from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, RegularTimeSeries  # noqa: E402
from torch_brain.io import (  # noqa: E402
    decoded_to_pynapple,
    from_pynapple,
    spikes_from_tsgroup,
    spikes_to_tsgroup,
    to_pynapple,
)

RNG = np.random.default_rng(0)


def _trials() -> Interval:
    return Interval(np.array([0.0, 2.5, 7.125]), np.array([1.0, 3.0, 9.0]),
                    go=np.array([1, 0, 1]), reward=np.array([0.5, 0.0, 1.25]),
                    condition=np.array(["a", "b", "c"]), hit=np.array([True, False, True]))


def test_interval_to_intervalset_and_back_exact():
    trials = _trials()
    iset = to_pynapple(trials)
    assert isinstance(iset, nap.IntervalSet)
    np.testing.assert_array_equal(iset.start, trials.start)
    np.testing.assert_array_equal(iset.end, trials.end)
    assert sorted(iset.metadata_columns) == ["condition", "go", "hit", "reward"]
    np.testing.assert_array_equal(np.asarray(iset.get_info("reward")), trials.reward)
    back = from_pynapple(iset)
    for key in ("start", "end", "go", "reward", "condition", "hit"):
        np.testing.assert_array_equal(getattr(back, key), getattr(trials, key), err_msg=key)
    # and starting from pynapple
    iset2 = nap.IntervalSet(start=[1.0, 4.0], end=[2.0, 8.0], metadata={"label": ["x", "y"]})
    again = to_pynapple(from_pynapple(iset2))
    np.testing.assert_array_equal(again.start, iset2.start)
    assert list(np.asarray(again.get_info("label"))) == ["x", "y"]


@pytest.mark.parametrize("start, end, match", [
    ([0.0, 1.0], [2.0, 3.0], "overlap"),
    ([0.0, 5.0], [0.0, 6.0], "no duration"),
    ([5.0, 0.0], [6.0, 1.0], "not sorted"),
    ([0.0, 1.0], [1.0, 2.0], "end where the next one starts .* shortens them by 1 microsecond"),
])
def test_interval_refused_where_pynapple_would_change_it(start, end, match):
    with pytest.raises(ValueError, match=match):
        to_pynapple(Interval(np.array(start), np.array(end)))


def test_touching_intervals_with_exact_false_are_pynapples_to_repair():
    with pytest.warns(UserWarning, match="Removing 1 microsecond"):
        iset = to_pynapple(Interval(np.array([0.0, 1.0]), np.array([1.0, 2.0])), exact=False)
    np.testing.assert_allclose(iset.end, [1.0 - 1e-6, 2.0])


def test_series_forms_round_trip_exact():
    t = np.sort(RNG.uniform(0, 10, 50))
    dom = Interval(0.0, 10.0)
    one = IrregularTimeSeries(t, data=RNG.normal(size=50), domain=dom)
    two = IrregularTimeSeries(t, data=RNG.normal(size=(50, 2)), domain=dom)
    three = IrregularTimeSeries(t, data=RNG.normal(size=(50, 2, 3)), domain=dom)
    named = IrregularTimeSeries(t, x=RNG.normal(size=50), y=RNG.normal(size=50), domain=dom)
    bare = IrregularTimeSeries(t, domain=dom)
    for obj, cls in [(one, nap.Tsd), (two, nap.TsdFrame), (three, nap.TsdTensor), (named, nap.TsdFrame),
                     (bare, nap.Ts)]:
        p = to_pynapple(obj)
        assert type(p) is cls
        np.testing.assert_array_equal(p.t, t)
        np.testing.assert_array_equal(p.time_support.start, [0.0])
        back = from_pynapple(p)
        np.testing.assert_array_equal(back.timestamps, t)
        np.testing.assert_array_equal(back.domain.end, [10.0])
        assert sorted(back.keys()) == sorted(obj.keys())
        for key in obj.keys():
            np.testing.assert_array_equal(getattr(back, key), getattr(obj, key))
    assert list(to_pynapple(named).columns) == ["x", "y"]
    with pytest.raises(ValueError, match="not all 1-D; pass column=NAME"):
        to_pynapple(IrregularTimeSeries(t, a=np.zeros(50), b=np.zeros((50, 2)), domain=dom))


def test_samples_outside_domain_refused():
    ts = IrregularTimeSeries(np.array([0.5, 1.5, 4.0]), data=np.arange(3.0), domain=Interval(0.0, 2.0))
    with pytest.raises(ValueError, match="1 sample"):
        to_pynapple(ts)


def test_regular_series_round_trip_with_sampling_rate():
    rts = RegularTimeSeries(sampling_rate=250.0, domain_start=3.0, data=RNG.normal(size=(1000, 4)))
    frame = to_pynapple(rts)
    np.testing.assert_array_equal(frame.t, rts.timestamps)
    back = from_pynapple(frame, sampling_rate=250.0)
    assert isinstance(back, RegularTimeSeries) and back.domain_start == 3.0
    np.testing.assert_array_equal(back.data, rts.data)
    irregular = from_pynapple(frame)
    assert isinstance(irregular, IrregularTimeSeries)
    with pytest.raises(ValueError, match="not t\\[0\\] \\+ i / 249"):
        from_pynapple(frame, sampling_rate=249.0)


def test_spikes_tsgroup_round_trip_exact():
    times = [np.sort(RNG.uniform(0, 20, n)) for n in (30, 0, 12, 51)]
    t = np.concatenate(times)
    u = np.concatenate([np.full(x.size, i) for i, x in enumerate(times)])
    order = np.lexsort((u, t))
    spikes = IrregularTimeSeries(t[order], unit_index=u[order], domain=Interval(0.0, 20.0))
    units = ArrayDict(id=np.array(["e1_a", "e1_b", "e2_a", "e3_a"]), quality=np.array(["good", "mua", "good", "good"]),
                      depth=np.array([10.0, 20.0, 30.0, 40.0]))
    group = spikes_to_tsgroup(spikes, units)
    assert isinstance(group, nap.TsGroup) and list(group.keys()) == [0, 1, 2, 3]
    for i, x in enumerate(times):
        np.testing.assert_array_equal(group[i].t, x)
    assert list(np.asarray(group.get_info("unit_id"))) == list(units.id)
    s2, u2 = spikes_from_tsgroup(group)
    np.testing.assert_array_equal(s2.timestamps, spikes.timestamps)
    np.testing.assert_array_equal(s2.unit_index, spikes.unit_index)
    assert sorted(u2.keys()) == ["depth", "id", "quality"]  # pynapple's computed rate left out
    np.testing.assert_array_equal(u2.id, units.id)
    np.testing.assert_array_equal(u2.quality, units.quality)
    np.testing.assert_array_equal(u2.depth, units.depth)


def test_data_to_dict_and_back():
    t = np.sort(RNG.uniform(0, 10, 40))
    data = Data(
        spikes=IrregularTimeSeries(t, unit_index=RNG.integers(0, 3, 40), domain=Interval(0.0, 10.0)),
        units=ArrayDict(id=np.array(["a", "b", "c"])),
        trials=_trials(),
        position=IrregularTimeSeries(t, data=RNG.normal(size=(40, 2)), domain=Interval(0.0, 10.0)),
        domain=Interval(0.0, 10.0),
    )
    out = to_pynapple(data)
    assert set(out) == {"units", "trials", "position", "domain"}
    assert isinstance(out["units"], nap.TsGroup) and isinstance(out["position"], nap.TsdFrame)
    back = from_pynapple(out)
    np.testing.assert_array_equal(back.domain.end, [10.0])
    order = np.lexsort((data.spikes.unit_index, data.spikes.timestamps))
    np.testing.assert_array_equal(back.spikes.timestamps, data.spikes.timestamps[order])
    np.testing.assert_array_equal(back.spikes.unit_index, data.spikes.unit_index[order])
    np.testing.assert_array_equal(back.units.id, data.units.id)
    np.testing.assert_array_equal(back.position.data, data.position.data)
    np.testing.assert_array_equal(back.trials.condition, data.trials.condition)


def test_decoded_vs_true():
    t = np.array([0.3, 0.1, 0.2])
    pred = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    true = pred + 0.5
    out = decoded_to_pynapple(t, pred, true, columns=["x", "y"])
    np.testing.assert_array_equal(out["decoded"].t, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(out["decoded"].values, pred[[1, 2, 0]])
    np.testing.assert_array_equal(out["true"].values, true[[1, 2, 0]])
    np.testing.assert_array_equal(out["error"].values, np.full((3, 2), -0.5))
    assert list(out["decoded"].columns) == ["x", "y"]
    one = decoded_to_pynapple(t, np.array([1, 0, 1]))
    assert isinstance(one["decoded"], nap.Tsd) and "true" not in one


def test_nwb_import_to_pynapple(tmp_path):
    pytest.importorskip("pynwb")
    from tests.brainsets.nwb_files import write_nwb
    from torch_brain.brainsets import from_nwb

    ref = write_nwb(tmp_path / "s.nwb", seconds=12.0, n_units=4)
    data = from_nwb(tmp_path / "s.nwb")
    with pytest.warns(UserWarning, match=r"left out .*obs_intervals \(obs_intervals: intervals overlap"):
        out = to_pynapple(data)
    for u, spk in enumerate(ref["spikes"]):
        np.testing.assert_array_equal(out["units"][u].t, spk)
    assert list(np.asarray(out["units"].get_info("quality"))) == ["good", "mua", "good", "mua"]
    np.testing.assert_array_equal(out["position"].values, ref["pos"])
    assert list(np.asarray(out["trials"].get_info("condition")))[:3] == ["c0", "c1", "c2"]
    np.testing.assert_array_equal(out["speed"].values, ref["speed"])


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0.001, 10.0), st.floats(0.001, 5.0), st.integers(-5, 5)), min_size=1, max_size=20))
def test_interval_round_trip_property(rows):
    """Sorted, separated, non-empty intervals with columns survive Interval -> IntervalSet -> Interval
    (touching ones are refused: pynapple shortens them)."""
    lengths, gaps, labels = (np.array(x) for x in zip(*rows))
    start = np.cumsum(gaps + np.concatenate([[0.0], lengths[:-1]]))
    end = start + lengths
    keep = end > start  # float rounding may collapse a tiny interval: pynapple would drop it
    iv = Interval(start[keep], end[keep], label=labels[keep], score=lengths[keep] * 0.5)
    if np.any(iv.start[1:] <= iv.end[:-1]):  # rounding made two touch: refused, as documented
        with pytest.raises(ValueError, match="end where the next one starts|overlap"):
            to_pynapple(iv)
        return
    back = from_pynapple(to_pynapple(iv))
    for key in ("start", "end", "label", "score"):
        np.testing.assert_array_equal(getattr(back, key), getattr(iv, key))
