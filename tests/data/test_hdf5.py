"""HDF5 storage: a raw-h5py fixture in the brainsets/temporaldata layout, round trips, eager vs lazy,
partial reads, read-only opening, bad files."""

import hashlib
import os

import h5py
import numpy as np
import pytest

from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, RegularTimeSeries


# ------------------------------------------------------------------ fixtures
def _write_raw_fixture(path):
    """Write a brainset-like file by hand with h5py, following the documented layout (not our writer)."""
    ts = np.array([0.2, 0.7, 1.1, 1.9, 2.4, 3.05, 3.5, 4.99])
    with h5py.File(path, "w") as f:
        f.attrs["object"] = "Data"
        f.attrs["absolute_start"] = 0.0

        def interval(g, start, end, **cols):
            g.attrs["object"] = "Interval"
            g.attrs["timekeys"] = np.array([b"start", b"end"])
            uk = [k for k, v in cols.items() if v.dtype.kind == "S"]
            g.attrs["_unicode_keys"] = np.array([k.encode() for k in uk], dtype="S") if uk else np.array([], dtype="S1")
            g.create_dataset("start", data=np.asarray(start, dtype=float))
            g.create_dataset("end", data=np.asarray(end, dtype=float))
            for k, v in cols.items():
                g.create_dataset(k, data=v)

        interval(f.create_group("domain"), [0.0], [5.0])
        for name, sid in [("brainset", "toy_brainset"), ("subject", "monkey_a"), ("session", "day1")]:
            g = f.create_group(name)
            g.attrs["object"] = "Data"
            g.attrs["absolute_start"] = 0.0
            g.attrs["id"] = sid
        f["session"].attrs["recording_date"] = "2020-01-02 03:04:05"
        f["session"].attrs["n_trials"] = np.int64(2)
        units = f.create_group("units")
        units.attrs["object"] = "ArrayDict"
        units.attrs["_unicode_keys"] = np.array([b"id"])
        units.create_dataset("id", data=np.array([b"u0", b"u1", b"u22"]))
        units.create_dataset("depth", data=np.array([10.0, 20.0, 30.0]))
        spikes = f.create_group("spikes")
        spikes.attrs["object"] = "IrregularTimeSeries"
        spikes.attrs["timekeys"] = np.array([b"timestamps"])
        spikes.attrs["_unicode_keys"] = np.array([], dtype="S1")
        spikes.create_dataset("timestamps", data=ts)
        spikes.create_dataset("unit_index", data=np.array([0, 1, 2, 0, 1, 2, 0, 1]))
        spikes.create_dataset("amplitude", data=np.arange(8, dtype=">f4") * 0.5)  # big-endian on disk
        # searchsorted(ts, [0, 1, ..., 5]) by hand: number of spikes before each whole second
        spikes.create_dataset("timestamp_indices_1s", data=np.array([0, 2, 4, 5, 7, 8]))
        interval(spikes.create_group("domain"), [0.0], [5.0])
        cursor = f.create_group("cursor")
        cursor.attrs["object"] = "RegularTimeSeries"
        cursor.attrs["sampling_rate"] = 10.0
        cursor.create_dataset("pos", data=np.arange(100.0).reshape(50, 2))
        interval(cursor.create_group("domain"), [0.0], [5.0])
        interval(f.create_group("trials"), [0.5, 2.5], [2.0, 4.0], target_id=np.array([3, 7]),
                 label=np.array([b"left", b"right"]))
        mp = f.create_group("movement_periods")
        mp.attrs["object"] = "Data"
        mp.attrs["absolute_start"] = 0.0
        interval(mp.create_group("reach_period"), [1.0, 3.0], [1.5, 3.5])
        interval(f.create_group("train_domain"), [0.0], [3.0])
        interval(f.create_group("valid_domain"), [3.0], [4.0])
        interval(f.create_group("test_domain"), [4.0], [5.0])
        f.create_dataset("channel_gain", data=np.array([1.5, 2.5]))
    return ts


def _rich_data(seed=0, duration=20.0):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(0.0, duration, 2000))
    starts = np.arange(0.5, duration - 1.0, 2.0)
    return Data(
        spikes=IrregularTimeSeries(ts, unit_index=rng.integers(0, 7, ts.size).astype(np.int64),
                                   waveform=rng.normal(size=(ts.size, 4)).astype(np.float32),
                                   domain=Interval(0.0, duration)),
        lfp=RegularTimeSeries(sampling_rate=50.0, domain_start=0.0, x=rng.normal(size=(int(duration * 50), 3))),
        trials=Interval(start=starts, end=starts + 1.2, target_id=np.arange(starts.size),
                        name=np.array([f"trial_é{i}" for i in range(starts.size)])),
        units=ArrayDict(id=np.array([f"unit{i}" for i in range(7)]), good=np.ones(7, dtype=bool)),
        session=Data(id="sess", n=3, rate=2.5, flag=True),
        movement_periods=Data(reach_period=Interval(starts + 0.2, starts + 0.8)),
        gains=np.arange(4.0),
        labels=np.array(["a", "bb"]),
        domain=Interval(0.0, duration),
    )


def _assert_same(a, b, path="root"):
    """Structural equality written independently of the library (compares plain numpy values)."""
    assert type(a).__name__.replace("Lazy", "") == type(b).__name__.replace("Lazy", ""), path
    if isinstance(a, Data):
        assert sorted(a.keys()) == sorted(b.keys()), path
        assert a.absolute_start == pytest.approx(b.absolute_start), path
        assert (a.domain is None) == (b.domain is None), path
        if a.domain is not None:
            _assert_same(a.domain, b.domain, path + ".domain")
        for k in a.keys():
            _assert_same(getattr(a, k), getattr(b, k), f"{path}.{k}")
    elif isinstance(a, ArrayDict):
        assert sorted(a.keys()) == sorted(b.keys()), path
        assert len(a) == len(b), path
        for k in a.keys():
            x, y = getattr(a, k), getattr(b, k)
            assert x.dtype.kind == y.dtype.kind, f"{path}.{k}"
            if x.dtype.kind == "f":
                np.testing.assert_allclose(x, y, atol=1e-9, err_msg=f"{path}.{k}")
            else:
                np.testing.assert_array_equal(x, y, err_msg=f"{path}.{k}")
        if isinstance(a, RegularTimeSeries):
            assert a.sampling_rate == b.sampling_rate
            np.testing.assert_allclose(a.timestamps, b.timestamps, atol=1e-9)
        if isinstance(a, IrregularTimeSeries):
            _assert_same(a.domain, b.domain, path + ".domain")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        assert a == b, path


@pytest.fixture
def raw_file(tmp_path):
    path = tmp_path / "toy.h5"
    _write_raw_fixture(path)
    return path


@pytest.fixture
def rich_file(tmp_path):
    data = _rich_data()
    path = tmp_path / "rich.h5"
    with h5py.File(path, "w") as f:
        data.to_hdf5(f)
    return data, path


# -------------------------------------------------------------- raw fixture
@pytest.mark.parametrize("lazy", [False, True])
def test_reads_raw_h5py_fixture(raw_file, lazy):
    with h5py.File(raw_file, "r") as f:
        data = Data.from_hdf5(f, lazy=lazy)
        assert data.brainset.id == "toy_brainset" and data.subject.id == "monkey_a" and data.session.id == "day1"
        assert data.session.recording_date == "2020-01-02 03:04:05" and data.session.n_trials == 2
        np.testing.assert_array_equal(data.units.id, ["u0", "u1", "u22"])
        assert data.units.id.dtype.kind == "U"
        np.testing.assert_array_equal(data.spikes.unit_index, [0, 1, 2, 0, 1, 2, 0, 1])
        np.testing.assert_array_equal(data.trials.label, ["left", "right"])
        np.testing.assert_array_equal(data.channel_gain, [1.5, 2.5])
        assert isinstance(data.movement_periods.reach_period, Interval)
        np.testing.assert_array_equal(data.train_domain.end, [3.0])
        np.testing.assert_array_equal(data.domain.end, [5.0])
        np.testing.assert_array_equal(data.cursor.timestamps[:3], [0.0, 0.1, 0.2])
        w = data.slice(1.0, 3.0)
        # hand computed: spikes at 1.1, 1.9, 2.4 -> relative 0.1, 0.9, 1.4
        np.testing.assert_allclose(w.spikes.timestamps, [0.1, 0.9, 1.4])
        np.testing.assert_array_equal(w.spikes.unit_index, [2, 0, 1])
        np.testing.assert_array_equal(w.spikes.amplitude, [1.0, 1.5, 2.0])
        if lazy:  # lazily read windows are writable copies, even when the recording's column is cached
            w.spikes.unit_index += 1
            np.testing.assert_array_equal(data.spikes.unit_index[2:5], [2, 0, 1])
            np.testing.assert_array_equal(data.slice(1.0, 3.0).spikes.unit_index, [2, 0, 1])
        np.testing.assert_array_equal(w.cursor.pos[:, 0], np.arange(20, 60, 2.0))
        np.testing.assert_allclose(w.trials.start, [-0.5, 1.5])
        np.testing.assert_array_equal(w.trials.target_id, [3, 7])
        np.testing.assert_allclose(w.movement_periods.reach_period.start, [0.0])
        np.testing.assert_allclose([w.domain.start[0], w.domain.end[0]], [0.0, 2.0])
        assert w.absolute_start == 1.0


# ---------------------------------------------------------------- round trip
def test_writer_layout_matches_documented_layout(rich_file):
    data, path = rich_file
    with h5py.File(path, "r") as f:
        assert f.attrs["object"] == "Data" and f.attrs["absolute_start"] == 0.0
        assert f["spikes"].attrs["object"] == "IrregularTimeSeries"
        assert [k.decode() for k in f["spikes"].attrs["timekeys"]] == ["timestamps"]
        assert f["spikes/domain"].attrs["object"] == "Interval"
        ts = f["spikes/timestamps"][()]
        idx = f["spikes/timestamp_indices_1s"][()]
        # brute force: for each whole second k of the domain [0, 20], the number of spikes before k
        expected = [int(np.sum(ts < k)) for k in range(0, 21)]
        np.testing.assert_array_equal(idx, expected)
        assert f["lfp"].attrs["object"] == "RegularTimeSeries" and f["lfp"].attrs["sampling_rate"] == 50.0
        np.testing.assert_array_equal([f["lfp/domain/start"][0], f["lfp/domain/end"][0]], [0.0, 20.0])
        assert f["trials"].attrs["object"] == "Interval"
        assert [k.decode() for k in f["trials"].attrs["_unicode_keys"]] == ["name"]
        assert f["trials/name"].dtype.kind == "S"
        assert f["units"].attrs["object"] == "ArrayDict" and f["units/id"].dtype.kind == "S"
        assert f["session"].attrs["object"] == "Data" and f["session"].attrs["id"] == "sess"
        assert "domain" not in f["session"]
        assert f["domain"].attrs["object"] == "Interval"


@pytest.mark.parametrize("lazy", [False, True])
def test_round_trip(rich_file, lazy):
    data, path = rich_file
    with h5py.File(path, "r") as f:
        back = Data.from_hdf5(f, lazy=lazy)
        _assert_same(data, back)
        assert back.trials.name[3] == "trial_é3"


def test_round_trip_of_a_window_and_datetime(tmp_path):
    import datetime

    data = _rich_data()
    data.session.date = datetime.datetime(2021, 5, 6, 7, 8, 9)
    w = data.slice(3.0, 7.0)
    with h5py.File(tmp_path / "w.h5", "w") as f:
        w.to_hdf5(f)
    with h5py.File(tmp_path / "w.h5", "r") as f:
        back = Data.from_hdf5(f, lazy=False)
    assert back.absolute_start == 3.0 and back.session.date == "2021-05-06 07:08:09"
    np.testing.assert_allclose(back.spikes.timestamps, w.spikes.timestamps)


def test_eager_vs_lazy_and_naive_on_random_windows(rich_file):
    data, path = rich_file
    ts, ui, wf = data.spikes.timestamps, data.spikes.unit_index, data.spikes.waveform
    lfp_t = np.arange(1000) / 50.0
    rng = np.random.default_rng(1)
    with h5py.File(path, "r") as f:
        eager = Data.from_hdf5(f, lazy=False)
        lazy = Data.from_hdf5(f, lazy=True)
        for start in rng.uniform(-2.0, 21.0, 40):
            length = rng.choice([0.0, 0.3, 1.0, 2.7])
            end = start + length
            we, wl = eager.slice(start, end), lazy.slice(start, end)
            _assert_same(we, wl)
            keep = (ts >= start) & (ts < end)
            np.testing.assert_allclose(wl.spikes.timestamps, ts[keep] - start)
            np.testing.assert_array_equal(wl.spikes.unit_index, ui[keep])
            np.testing.assert_array_equal(wl.spikes.waveform, wf[keep])
            np.testing.assert_array_equal(wl.lfp.x, data.lfp.x[(lfp_t >= start) & (lfp_t < end)])
            # nested window of a lazy window
            s2, e2 = start + 0.1, end + 0.5
            _assert_same(we.slice(0.1, length + 0.5), wl.slice(0.1, length + 0.5))
            keep2 = (ts >= s2) & (ts < min(end, e2))
            np.testing.assert_allclose(wl.slice(0.1, length + 0.5).spikes.timestamps, ts[keep2] - s2)


def test_lazy_slice_reads_only_the_window(tmp_path, monkeypatch):
    n = 200_000
    ts = np.linspace(0.0, 1000.0, n, endpoint=False)
    data = Data(spikes=IrregularTimeSeries(ts, unit_index=np.arange(n) % 50, domain=Interval(0.0, 1000.0)),
                cursor=RegularTimeSeries(sampling_rate=100.0, vel=np.zeros((100_000, 2))),
                domain=Interval(0.0, 1000.0))
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:
        data.to_hdf5(f)
    reads = []
    original = h5py.Dataset.__getitem__
    original_preadv = os.preadv if hasattr(os, "preadv") else None

    def spy(self, sel):
        out = original(self, sel)
        reads.append((self.name, np.size(out)))
        return out

    def spy_preadv(fd, buffers, offset):
        reads.append(("preadv", sum(np.size(b) for b in buffers)))
        return original_preadv(fd, buffers, offset)

    with h5py.File(path, "r") as f:
        lazy = Data.from_hdf5(f, lazy=True)
        monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
        if original_preadv is not None:
            monkeypatch.setattr(os, "preadv", spy_preadv)
        w = lazy.slice(500.0, 501.0)
        _ = w.spikes.timestamps, w.spikes.unit_index, w.cursor.vel
        monkeypatch.undo()
    assert len(w.spikes) == 200 and w.cursor.vel.shape == (100, 2)
    assert reads, "the window must have been read from the file"
    assert sum(n for _, n in reads) < 3 * 200 * 2 + 2 * 100 * 2, f"read more than a few windows' worth: {reads}"
    np.testing.assert_array_equal(w.spikes.unit_index, (np.arange(100_000, 100_200)) % 50)
    np.testing.assert_allclose(w.spikes.timestamps, ts[100_000:100_200] - 500.0)


def test_opening_never_modifies_the_file(rich_file):
    _, path = rich_file
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    data = Data.from_hdf5(path, lazy=True)
    data.slice(1.0, 2.0).materialize()
    data.materialize()
    Data.from_hdf5(path, lazy=False)
    with h5py.File(path, "r") as f:
        Data.from_hdf5(f, lazy=True).slice(0.0, 5.0).spikes.timestamps
    del data
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_materialize_makes_plain_objects(rich_file):
    data, path = rich_file
    with h5py.File(path, "r") as f:
        lazy = Data.from_hdf5(f, lazy=True)
        w = lazy.slice(2.0, 4.0).materialize()
        lazy.materialize()
    # file closed: everything must already be in memory
    for obj in (lazy, w):
        for key in obj.keys():
            assert not type(getattr(obj, key)).__name__.startswith("Lazy")
    _assert_same(data, lazy)
    np.testing.assert_allclose(w.spikes.timestamps, data.slice(2.0, 4.0).spikes.timestamps)


def test_lazy_window_with_replaced_column_slices_in_memory(rich_file):
    _, path = rich_file
    with h5py.File(path, "r") as f:
        w = Data.from_hdf5(f, lazy=True).slice(2.0, 6.0)
        w.spikes.unit_index = w.spikes.unit_index + 100
        w2 = w.slice(1.0, 2.0)
        assert np.all(w2.spikes.unit_index >= 100)
        np.testing.assert_allclose(w2.spikes.timestamps, w.spikes.timestamps[(w.spikes.timestamps >= 1.0)
                                                                              & (w.spikes.timestamps < 2.0)] - 1.0)


def test_window_units_are_independent_of_the_recording(rich_file):
    _, path = rich_file
    with h5py.File(path, "r") as f:
        rec = Data.from_hdf5(f, lazy=True)
        w = rec.slice(0.0, 1.0)
        w.units.id = np.array(["brainset/session/" + u for u in w.units.id])
        assert rec.units.id[0] == "unit0"
        assert rec.slice(0.0, 1.0).units.id[0] == "unit0"


# ------------------------------------------------------------------ bad input
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"file '.*nope\.h5' does not exist"):
        Data.from_hdf5(tmp_path / "nope.h5")


def test_not_hdf5(tmp_path):
    p = tmp_path / "notes.h5"
    p.write_text("hello, not hdf5")
    with pytest.raises(ValueError, match="is not an HDF5 file"):
        Data.from_hdf5(p)


def test_unknown_and_missing_object(tmp_path):
    p = tmp_path / "odd.h5"
    with h5py.File(p, "w") as f:
        f.attrs["object"] = "Data"
        f.create_group("thing").attrs["object"] = "SpikeTrainSet"
    with h5py.File(p, "r") as f:
        with pytest.raises(ValueError, match=r"group '/thing' in .* has object='SpikeTrainSet'; expected one of"):
            Data.from_hdf5(f)
    with h5py.File(p, "w") as f:
        f.attrs["object"] = "Data"
        f.create_group("bare")
    with h5py.File(p, "r") as f:
        with pytest.raises(ValueError, match="group '/bare' .* has no 'object' attribute"):
            Data.from_hdf5(f, lazy=True)


def test_root_that_is_not_data(tmp_path):
    p = tmp_path / "iv.h5"
    with h5py.File(p, "w") as f:
        Interval(0.0, 1.0).to_hdf5(f)
    with h5py.File(p, "r") as f:
        with pytest.raises(TypeError, match="holds a Interval, not a Data object"):
            Data.from_hdf5(f)
        assert Interval.from_hdf5(f).end[0] == 1.0


def test_corrupt_columns_and_unsorted_timestamps(tmp_path):
    p = tmp_path / "bad.h5"
    with h5py.File(p, "w") as f:
        f.attrs["object"] = "Data"
        g = f.create_group("units")
        g.attrs["object"] = "ArrayDict"
        g.create_dataset("a", data=np.zeros(3))
        g.create_dataset("b", data=np.zeros(4))
    with h5py.File(p, "r") as f:
        with pytest.raises(ValueError, match=r"columns of group '/units' .* do not share their first dimension"):
            Data.from_hdf5(f)
    p2 = tmp_path / "unsorted.h5"
    with h5py.File(p2, "w") as f:
        f.attrs["object"] = "Data"
        g = f.create_group("spikes")
        g.attrs["object"] = "IrregularTimeSeries"
        g.create_dataset("timestamps", data=np.array([0.0, 2.0, 1.0]))
    with h5py.File(p2, "r") as f:
        with pytest.raises(ValueError, match="'timestamps' must be sorted"):
            Data.from_hdf5(f, lazy=False)


def test_unwritable_values(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        with pytest.raises(TypeError, match=r"attribute /cfg is a dict, which cannot be stored"):
            Data(cfg={"a": 1}).to_hdf5(f)
    with h5py.File(tmp_path / "y.h5", "w") as f:
        with pytest.raises(TypeError, match=r"column /units/x has dtype object"):
            Data(units=ArrayDict(x=np.array([1, None], dtype=object))).to_hdf5(f)


def test_from_hdf5_wrong_argument_type():
    with pytest.raises(TypeError, match="expected an open h5py.File/Group or a path, but got int"):
        Data.from_hdf5(3)


def test_windows_pickle_as_plain_objects_deepcopy_stays_lazy(rich_file):
    import copy
    import pickle

    data, path = rich_file
    with h5py.File(path, "r") as f:
        w = Data.from_hdf5(f, lazy=True).slice(2.0, 4.0)
        blob = pickle.dumps(w)
        shallow = copy.copy(w)
        deep = copy.deepcopy(w)  # as in temporaldata: lazy parts stay lazy on the same open file
        assert type(deep.units).__name__ == "LazyArrayDict"
        _assert_same(data.slice(2.0, 4.0), deep)
        deep_eager = copy.deepcopy(copy.deepcopy(w).materialize())
    back = pickle.loads(blob)
    for obj in (back, deep_eager):
        for key in obj.keys():
            assert not type(getattr(obj, key)).__name__.startswith("Lazy")
        _assert_same(data.slice(2.0, 4.0), obj)
    assert shallow.absolute_start == 2.0 and sorted(shallow.keys()) == sorted(data.keys())
    eager_window = data.slice(1.0, 2.0)
    _assert_same(pickle.loads(pickle.dumps(eager_window)), data.slice(1.0, 2.0))


@pytest.mark.parametrize("start, end", [(-np.inf, 3.3), (17.2, np.inf), (-np.inf, np.inf), (-np.inf, -np.inf),
                                        (-50.0, -40.0), (40.0, 50.0), (5.0, 5.0)])
def test_lazy_slice_with_infinite_or_outside_windows(rich_file, start, end):
    data, path = rich_file
    ts = data.spikes.timestamps
    keep = (ts >= start) & (ts < end)
    with h5py.File(path, "r") as f:
        w = Data.from_hdf5(f, lazy=True).spikes.slice(start, end, reset_origin=False)
        np.testing.assert_array_equal(w.timestamps, ts[keep])
        np.testing.assert_array_equal(w.unit_index, data.spikes.unit_index[keep])
