"""Importers of the real recordings, checked against the raw files read independently here."""

import h5py
import numpy as np
import pytest
import scipy.io

from torch_brain.brainsets import (
    build_brochier_grasp,
    build_nelpy_hippocampus,
    build_spykesml_m1,
    spread_binned_counts,
)

pytestmark = pytest.mark.real_data


def _pieces(data):
    out = []
    for name in ("train", "valid", "test"):
        iv = getattr(data, f"{name}_domain")
        out += [(float(s), float(e), name) for s, e in zip(iv.start, iv.end)]
    return sorted(out)


def _assert_disjoint(pieces):
    for (s0, e0, _), (s1, e1, _) in zip(pieces[:-1], pieces[1:]):
        assert e0 <= s1, f"{(s0, e0)} overlaps {(s1, e1)}"


# ----------------------------------------------------------------------------- spread counts
def test_spread_binned_counts_hand_computed():
    counts = np.array([[2, 0], [1, 1]])
    t, u = spread_binned_counts(counts, np.array([0.0, 1.0]), np.array([1.0, 2.0]))
    np.testing.assert_allclose(t, [0.25, 0.5, 0.75, 1.5])
    np.testing.assert_array_equal(u, [0, 1, 0, 1])


def test_spread_binned_counts_ties_sorted_by_unit():
    counts = np.array([[1], [3], [1]])
    t, u = spread_binned_counts(counts, np.array([0.0]), np.array([0.3]))
    np.testing.assert_allclose(t, [0.05, 0.15, 0.15, 0.15, 0.25])
    np.testing.assert_array_equal(u, [1, 0, 1, 2, 1])


# ----------------------------------------------------------------------------- M1 (spykesML)
@pytest.fixture(scope="module")
def m1(real_data_dir):
    raw = scipy.io.loadmat(real_data_dir / "spykesml" / "m1_stevenson_2011.mat")
    return raw, build_spykesml_m1(real_data_dir / "spykesml")


def test_m1_counts_per_unit_and_bin_preserved(m1):
    raw, data = m1
    counts = raw["spikes"].astype(np.int64)  # (171, T)
    edges = np.append(raw["time"].ravel(), raw["time"].ravel()[-1] + 0.05)
    assert data.units.id.size == counts.shape[0] == 171
    assert data.spikes.timestamps.size == counts.sum() == 2352815
    rebinned = np.zeros_like(counts)
    b = np.searchsorted(edges, data.spikes.timestamps, side="right") - 1
    np.add.at(rebinned, (data.spikes.unit_index, b), 1)
    np.testing.assert_array_equal(rebinned, counts)
    np.testing.assert_array_equal(data.units.n_spikes, counts.sum(1))
    assert np.all(np.diff(data.spikes.timestamps) >= 0)


def test_m1_hand_kinematics_and_description(m1):
    raw, data = m1
    np.testing.assert_array_equal(data.hand.vel, raw["handVel"][:2].T)
    np.testing.assert_array_equal(data.hand.pos, raw["handPos"][:2].T)
    assert data.hand.sampling_rate == 20.0
    np.testing.assert_allclose(data.hand.timestamps, raw["time"].ravel(), atol=1e-3)
    assert "evenly" in data.brainset.description and "reconstructed" in data.brainset.description


def test_m1_splits_chronological_and_disjoint(m1):
    raw, data = m1
    pieces = _pieces(data)
    _assert_disjoint(pieces)
    assert [p[2] for p in pieces] == ["train", "valid", "test"]
    t = raw["time"].ravel()
    assert pieces[0][0] == t[0]
    np.testing.assert_allclose(pieces[-1][1], t[-1] + 0.05)
    for s, _, _ in pieces:
        assert s in set(t)  # aligned to bin edges
    total = pieces[-1][1] - pieces[0][0]
    np.testing.assert_allclose(pieces[2][1] - pieces[2][0], 0.2 * total, atol=0.05)


# ----------------------------------------------------------------------------- hippocampus
def _raw_hc_units(folder):
    """Independent walk (squeeze_me loading) collecting every non-empty 'time' vector."""
    mat = scipy.io.loadmat(folder / "spikes.mat", squeeze_me=True, struct_as_record=False)
    found = []

    def walk(o):
        if hasattr(o, "_fieldnames"):
            if "time" in o._fieldnames:
                t = np.atleast_1d(np.asarray(o.time, dtype=float))
                if t.size:
                    found.append(t)
        elif isinstance(o, np.ndarray) and o.dtype == object:
            for x in o.flat:
                walk(x)

    walk(mat["spikes"])
    return found


@pytest.fixture(scope="module")
def hc(real_data_dir):
    folder = real_data_dir / "nelpy-hippocampus" / "linear-track"
    return folder, build_nelpy_hippocampus(folder)


def test_hippocampus_spike_counts_per_unit(hc):
    folder, data = hc
    raw = _raw_hc_units(folder)
    assert len(raw) == data.units.id.size == 31
    assert data.spikes.timestamps.size == sum(t.size for t in raw) == 28829
    got = sorted(
        tuple(np.sort(data.spikes.timestamps[data.spikes.unit_index == u])) for u in range(31)
    )
    want = sorted(tuple(np.sort(t)) for t in raw)
    assert got == want  # same spike times per unit, as a multiset of units
    assert len(set(data.units.id.tolist())) == 31


def test_hippocampus_position_dropouts_filtered(hc):
    folder, data = hc
    raw = (folder / "trajectory.videoPositionTracking").read_bytes()
    body = raw[raw.index(b"<End settings>\n") + len(b"<End settings>\n"):]
    rec = np.frombuffer(body, dtype=[("t", "<u4"), ("x", "<u2"), ("y", "<u2"), ("a", "<u2"), ("b", "<u2")])
    assert rec.size == 118965
    pos = data.position
    assert pos.pos.shape == (pos.timestamps.size, 2) and pos.linear.shape == (pos.timestamps.size, 1)
    assert np.all(pos.pos > 20)  # no dropouts left
    assert np.all(np.diff(pos.timestamps) > 0)
    # every kept sample is a raw valid sample (brute-force lookup by tick)
    lookup = {int(t): (int(x), int(y)) for t, x, y in zip(rec["t"], rec["x"], rec["y"]) if x > 20 and y > 20}
    ticks = np.round(pos.timestamps * 30000).astype(int)
    assert all(lookup[k] == (int(a), int(b)) for k, (a, b) in zip(ticks, pos.pos))
    # track part: about 15-17 minutes from the first sample
    dur = float(data.track_period.end[0] - data.track_period.start[0])
    assert 14 * 60 < dur < 17 * 60
    # linear coordinate runs along the track: near-perfect correlation with the x/y diagonal
    r = np.corrcoef(pos.linear[:, 0], pos.pos @ np.array([0.79, 0.61]))[0, 1]
    assert r > 0.95


def test_hippocampus_splits_inside_track_part_and_disjoint(hc):
    _, data = hc
    pieces = _pieces(data)
    _assert_disjoint(pieces)
    t0, t1 = float(data.track_period.start[0]), float(data.track_period.end[0])
    assert pieces[0][0] == pytest.approx(t0) and pieces[-1][1] == pytest.approx(t1)
    assert all(t0 - 1e-9 <= s and e <= t1 + 1e-9 for s, e, _ in pieces)
    dur = {n: sum(e - s for s, e, m in pieces if m == n) for n in ("train", "valid", "test")}
    assert dur["test"] == pytest.approx(0.2 * (t1 - t0), rel=1e-6)


# ----------------------------------------------------------------------------- grasp
@pytest.fixture(scope="module")
def grasp(real_data_dir):
    folder = real_data_dir / "brochier2018-grasp-small"
    with h5py.File(folder / "Dataset2_small.mat", "r") as f:
        raw = {k: f[k][()] for k in ("D", "GRIP", "RT", "ID")}
    return raw, build_brochier_grasp(folder)


def test_grasp_counts_per_trial_and_unit(grasp):
    raw, data = grasp
    d = raw["D"]  # (134, 93, 1500)
    n_trials, n_units, _ = d.shape
    trials = data.trials
    assert len(trials) == n_trials and data.units.id.size == n_units
    t, u = data.spikes.timestamps, data.spikes.unit_index
    k = np.searchsorted(trials.start, t, side="right") - 1
    assert np.all(t < trials.end[k])  # every spike inside a trial, none in the gaps
    counts = np.zeros((n_trials, n_units), dtype=np.int64)
    np.add.at(counts, (k, u), 1)
    np.testing.assert_array_equal(counts, d.sum(axis=2).astype(np.int64))
    # exact 1 ms bin positions for one trial (brute force)
    sel = k == 5
    got = sorted(zip(u[sel], np.round((t[sel] - trials.start[5]) * 1000 - 0.5).astype(int)))
    want = sorted(zip(*np.nonzero(d[5])))
    assert got == want


def test_grasp_labels(grasp):
    raw, data = grasp
    np.testing.assert_array_equal(data.trials.grip_id, raw["GRIP"].ravel().astype(int) - 1)
    assert data.trials.grip_id.dtype == np.int64
    np.testing.assert_allclose(data.trials.reaction_time, raw["RT"].ravel() / 1000)
    g = data.grip
    assert g.grip_id.dtype == np.int64 and g.timestamps.size == 10 * len(data.trials)
    delay = data.task_periods.delay_period
    for t, lab in zip(g.timestamps, g.grip_id):  # brute force containing trial
        kk = np.flatnonzero((delay.start <= t) & (t < delay.end))
        assert kk.size == 1 and lab == data.trials.grip_id[kk[0]]
    assert data.units.id.tolist() == [f"id{int(i)}" for i in raw["ID"].ravel()]


def test_grasp_split_by_trials(grasp):
    _, data = grasp
    pieces = _pieces(data)
    _assert_disjoint(pieces)
    starts = {n: {s for s, _, m in pieces if m == n} for n in ("train", "valid", "test")}
    assert sum(len(v) for v in starts.values()) == len(data.trials)  # every trial in one split
    assert set().union(*starts.values()) == set(data.trials.start)
    for s, e, _ in pieces:
        k = np.flatnonzero(data.trials.start == s)[0]
        assert e == data.trials.end[k]  # whole trials
    test_idx = [np.flatnonzero(data.trials.start == s)[0] for s in starts["test"]]
    labels = data.trials.grip_id[test_idx]
    assert 0 < labels.mean() < 1 and len(test_idx) == 27  # stratified, both grips held out
