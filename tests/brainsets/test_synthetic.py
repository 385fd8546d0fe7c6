"""Synthetic reaching generator: determinism, rates, refractoriness, tuning, trial layout, splits."""

import numpy as np
import pytest

from torch_brain.brainsets import (
    build_synthetic_reaching_session,
    simulate_reaching_session,
    subject_stats,
)

SPLITS = (0.7, 0.1, 0.2)


@pytest.fixture(scope="module")
def sim():
    return simulate_reaching_session(
        seed=3, session_index=0, stats=subject_stats(3, 0), minutes=4.0, n_units=60
    )


@pytest.fixture(scope="module")
def session():
    return build_synthetic_reaching_session(
        seed=1, session_index=0, session_id="session_00", stats=subject_stats(1, 0),
        minutes=2.0, n_units=20, split_ratios=SPLITS,
    )


def _small(seed, index=0, subject=0):
    return simulate_reaching_session(
        seed=seed, session_index=index, stats=subject_stats(seed, subject), minutes=0.5, n_units=8
    )


def test_same_seed_gives_identical_output():
    a, b = _small(5), _small(5)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("other", [dict(seed=6), dict(seed=5, index=1)])
def test_other_seed_or_session_differs(other):
    a = _small(5)
    b = _small(other["seed"], other.get("index", 0))
    assert a["spike_times"].size != b["spike_times"].size or not np.array_equal(
        a["spike_times"], b["spike_times"]
    )


def test_rates_are_realistic(sim):
    rates = np.bincount(sim["spike_unit"], minlength=60) / sim["duration"]
    assert rates.min() > 0.3 and rates.max() < 120.0
    assert 2.0 < np.median(rates) < 20.0
    assert np.percentile(rates, 90) > 10.0  # a spread of rates, some tens of Hz


def test_refractory_period_respected(sim):
    for u in range(60):  # brute force per unit
        t = sim["spike_times"][sim["spike_unit"] == u]
        if t.size > 1:
            assert np.diff(t).min() >= 0.002 - 1e-12


def test_spikes_sorted_and_inside_session(sim):
    t = sim["spike_times"]
    assert np.all(np.diff(t) >= 0)
    assert t[0] >= 0 and t[-1] < sim["duration"]


def test_trials_are_back_to_back_with_ordered_periods(sim):
    s, r, ret, e = sim["trial_start"], sim["reach_start"], sim["return_start"], sim["trial_end"]
    assert s[0] == 0.0
    np.testing.assert_allclose(s[1:], e[:-1])
    assert np.all(s < r) and np.all(r < ret) and np.all(ret < e)
    np.testing.assert_allclose(e[-1], sim["duration"])
    assert set(np.unique(sim["target_id"])) == set(range(8))
    # period lengths in the documented ranges
    assert np.all((r - s >= 0.4 - 1e-9) & (r - s <= 0.8 + 1e-9))
    assert np.all((ret - r >= 0.5 - 1e-9) & (ret - r <= 0.9 + 1e-9))


def test_reach_speed_is_bell_shaped_and_points_to_target(sim):
    speed = np.linalg.norm(sim["vel"], axis=1)
    mids, edges, errs = [], [], []
    for r, ret, tgt in zip(sim["reach_start"], sim["return_start"], sim["target_id"]):
        i0, i1 = int(round(r * 100)), int(round(ret * 100))
        seg = speed[i0:i1]
        mids.append(seg[len(seg) // 2])
        edges.append(0.5 * (seg[0] + seg[-1]))
        disp = sim["pos"][i1 - 1] - sim["pos"][i0]
        err = np.angle(np.exp(1j * (np.arctan2(disp[1], disp[0]) - 2 * np.pi * tgt / 8)))
        errs.append(abs(err))
    assert np.median(mids) > 4 * np.median(edges)
    assert np.median(mids) > 10.0  # cm/s
    assert np.max(errs) < np.deg2rad(25)


def test_units_are_tuned_to_velocity(sim):
    # independent check: regress 100 ms counts on velocity 100 ms ahead, per unit
    n_bins = int(sim["duration"] / 0.1)
    counts = np.zeros((n_bins, 60))
    b = np.minimum((sim["spike_times"] / 0.1).astype(int), n_bins - 1)
    np.add.at(counts, (b, sim["spike_unit"]), 1)
    vel = sim["vel"][5::10][:n_bins]
    v_ahead = np.roll(vel, -1, axis=0)
    x = np.column_stack([np.ones(n_bins), v_ahead])
    r = []
    for u in range(60):
        coef, *_ = np.linalg.lstsq(x, counts[:, u], rcond=None)
        r.append(np.corrcoef(x @ coef, counts[:, u])[0, 1])
    r = np.nan_to_num(np.array(r))
    tuned = sim["velocity_gain"] > 0
    assert np.mean(r[tuned] > 0.1) > 0.7
    assert np.all(r[~tuned] < 0.1)
    assert 0 < (~tuned).sum() < 30  # some untuned units, not most


def test_target_is_decodable_during_hold(sim):
    # nearest-centroid on hold-period counts: preparatory tuning makes the target decodable
    n_trials = sim["target_id"].size
    x = np.zeros((n_trials, 60))
    for k, (s, r) in enumerate(zip(sim["trial_start"], sim["reach_start"])):
        sel = (sim["spike_times"] >= s + 0.2) & (sim["spike_times"] < r)
        x[k] = np.bincount(sim["spike_unit"][sel], minlength=60) / (r - s - 0.2)
    x = np.sqrt(x)
    y = sim["target_id"]
    half = n_trials // 2
    cent = np.stack([x[:half][y[:half] == c].mean(0) for c in range(8)])
    pred = np.argmin(((x[half:, None, :] - cent[None]) ** 2).sum(-1), axis=1)
    assert np.mean(pred == y[half:]) > 0.4  # chance is 0.125


def test_session_layout(session):
    assert session.brainset.id == "synthetic_reaching"
    assert session.session.id == "session_00"
    assert session.subject.id == "subject_0"
    assert session.units.id.tolist() == [f"unit_{i:03d}" for i in range(20)]
    assert session.spikes.unit_index.dtype == np.int64
    assert session.cursor.sampling_rate == 100.0
    assert session.cursor.pos.shape == session.cursor.vel.shape == (len(session.cursor), 2)
    mp = session.movement_periods
    np.testing.assert_array_equal(mp.hold_period.start, session.trials.start)
    np.testing.assert_array_equal(mp.hold_period.end, mp.reach_period.start)
    np.testing.assert_array_equal(mp.reach_period.end, mp.return_period.start)
    np.testing.assert_array_equal(mp.return_period.end, session.trials.end)
    assert session.trials.target_id.dtype == np.int64


def test_reach_direction_samples(session):
    rd = session.reach_direction
    assert rd.direction_id.dtype == np.int64
    reach = session.movement_periods.reach_period
    for t, lab in zip(rd.timestamps, rd.direction_id):  # brute force: the reach containing t
        k = np.flatnonzero((reach.start <= t) & (t < reach.end))
        assert k.size == 1
        assert lab == session.trials.target_id[k[0]]
    # every 0.1 s inside each reach period, starting 0.05 s in
    for s, e in zip(reach.start, reach.end):
        t = rd.timestamps[(rd.timestamps >= s) & (rd.timestamps < e)]
        np.testing.assert_allclose(t, s + 0.05 + 0.1 * np.arange(t.size))
        assert t.size == sum(1 for k in range(50) if s + 0.05 + 0.1 * k < e - 1e-9)


def test_splits_disjoint_aligned_and_covering(session):
    tr, va, te = session.train_domain, session.valid_domain, session.test_domain
    pieces = sorted(
        [(s, e, n) for n, iv in [("train", tr), ("valid", va), ("test", te)]
         for s, e in zip(iv.start, iv.end)]
    )
    for (s0, e0, _), (s1, e1, _) in zip(pieces[:-1], pieces[1:]):
        assert e0 <= s1  # no overlap
    assert [p[2] for p in pieces] == ["train", "valid", "test"]
    bounds = set(session.trials.start) | set(session.trials.end)
    for s, e, _ in pieces:
        assert s in bounds and e in bounds  # aligned to trial boundaries
    assert pieces[0][0] == 0.0 and pieces[-1][1] == session.trials.end[-1]
    n = len(session.trials)
    n_test = np.sum((session.trials.start >= te.start[0]) & (session.trials.end <= te.end[0]))
    assert abs(n_test - 0.2 * n) <= 1


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="n_units must be a positive integer"):
        simulate_reaching_session(seed=0, session_index=0, stats=subject_stats(0, 0), minutes=1.0, n_units=0)
    with pytest.raises(ValueError, match="minutes is too short"):
        simulate_reaching_session(seed=0, session_index=0, stats=subject_stats(0, 0), minutes=0.01, n_units=3)
