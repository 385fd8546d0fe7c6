"""Dataset over tiny brainset-layout files written with Data.to_hdf5 in a temporary folder."""

import hashlib
import os

import h5py
import numpy as np
import pytest
import torch

from torch_brain.data import (
    ArrayDict,
    Data,
    Dataset,
    DatasetIndex,
    Interval,
    IrregularTimeSeries,
    RegularTimeSeries,
    collate,
    pad,
)
from torch_brain.data.sampler import RandomFixedWindowSampler, SequentialFixedWindowSampler
from torch_brain.transforms import UnitDropout


def _recording(session, subject, n_units=4, duration=10.0, seed=0, splits=None):
    rng = np.random.default_rng(seed)
    n_spikes = int(20 * n_units * duration)
    ts = np.sort(rng.uniform(0, duration, n_spikes))
    if splits is None:
        splits = {"train": [(0.0, 6.0)], "valid": [(6.0, 8.0)], "test": [(8.0, duration)]}
    extra = {f"{k}_domain": Interval.from_list(v) for k, v in splits.items()}
    return Data(
        brainset=Data(id="bs"),
        subject=Data(id=subject),
        session=Data(id=session),
        device=Data(id="dev"),
        units=ArrayDict(id=np.array([f"unit_{i}" for i in range(n_units)])),
        spikes=IrregularTimeSeries(
            ts, unit_index=rng.integers(0, n_units, n_spikes).astype(np.int64), domain=Interval(0.0, duration)
        ),
        cursor=RegularTimeSeries(sampling_rate=100.0, vel=rng.normal(size=(int(100 * duration), 2))),
        trials=Interval(start=np.arange(0.0, duration, 2.0), end=np.arange(1.0, duration + 1, 2.0)),
        domain=Interval(0.0, duration),
        **extra,
    )


def _write(root, brainset, session, data):
    (root / brainset).mkdir(parents=True, exist_ok=True)
    with h5py.File(root / brainset / f"{session}.h5", "w") as f:
        data.to_hdf5(f)


@pytest.fixture
def root(tmp_path):
    _write(tmp_path, "bs", "s0", _recording("s0", "monkey_a", n_units=4, seed=0))
    _write(tmp_path, "bs", "s1", _recording("s1", "monkey_a", n_units=3, seed=1))
    _write(tmp_path, "bs", "s2", _recording("s2", "monkey_b", n_units=5, seed=2))
    _write(tmp_path, "other", "x", _recording("x", "rat", n_units=2, seed=3))
    return tmp_path


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.h5")):
        h.update(p.read_bytes())
    return h.hexdigest()


# ------------------------------------------------------------------ selection and ids


def test_all_recordings_and_global_ids(root):
    ds = Dataset(root)
    assert ds.get_session_ids() == ["bs/s0", "bs/s1", "bs/s2", "other/x"]
    assert ds.get_subject_ids() == ["bs/monkey_a", "bs/monkey_b", "other/rat"]
    expected_units = sorted(
        [f"bs/s0/unit_{i}" for i in range(4)] + [f"bs/s1/unit_{i}" for i in range(3)]
        + [f"bs/s2/unit_{i}" for i in range(5)] + ["other/x/unit_0", "other/x/unit_1"]
    )
    assert ds.get_unit_ids() == expected_units
    iv = ds.get_sampling_intervals()
    assert iv["bs/s0"].start.tolist() == [0.0] and iv["bs/s0"].end.tolist() == [10.0]
    assert "4 recording(s)" in repr(ds) and "14 units" in repr(ds)


def test_window_fields_match_naive_slice(root):
    ds = Dataset(root, split="train")
    src = _recording("s2", "monkey_b", n_units=5, seed=2)
    w = ds.get("bs/s2", 1.25, 2.25)
    mask = (src.spikes.timestamps >= 1.25) & (src.spikes.timestamps < 2.25)
    assert np.allclose(w.spikes.timestamps, src.spikes.timestamps[mask] - 1.25)
    assert w.spikes.timestamps.dtype == np.float64
    assert np.array_equal(w.spikes.unit_index, src.spikes.unit_index[mask])
    assert w.spikes.unit_index.dtype == np.int64
    assert list(w.units.id) == [f"bs/s2/unit_{i}" for i in range(5)]
    assert w.session.id == "bs/s2"
    assert w.subject.id == "bs/monkey_b"
    assert w.config == {}
    assert w.absolute_start == pytest.approx(1.25)
    assert w.domain.start.tolist() == [0.0] and w.domain.end[0] == pytest.approx(1.0)
    assert np.allclose(w.cursor.vel, src.cursor.vel[125:225])
    assert set(w.units.id) <= set(ds.get_unit_ids())
    assert w.session.id in ds.get_session_ids()


def test_config_selection_and_per_entry_config(root, tmp_path_factory):
    cfg_path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    cfg_path.write_text(
        """
- selection:
    - brainset: bs
      sessions: [s0, s1]
  config:
    multitask_readout:
      - readout_id: cursor_velocity_2d
        weights: {movement_periods.reach_period: 5.0}
- selection:
    - brainset: other
  config: {}
"""
    )
    ds = Dataset(root, config=cfg_path, split="valid")
    assert ds.get_session_ids() == ["bs/s0", "bs/s1", "other/x"]
    w = ds.get("bs/s1", 6.0, 7.0)
    assert w.config["multitask_readout"][0]["weights"] == {"movement_periods.reach_period": 5.0}
    assert ds.get("other/x", 6.0, 7.0).config == {}
    assert ds.get_sampling_intervals()["bs/s0"].start.tolist() == [6.0]


@pytest.mark.parametrize(
    "selection, expected",
    [
        ({"brainset": "bs"}, ["bs/s0", "bs/s1", "bs/s2"]),
        ({"brainset": "bs", "session": "s2"}, ["bs/s2"]),
        ({"brainset": "bs", "sessions": ["bs/s1"]}, ["bs/s1"]),
        ({"brainset": "bs", "subject": "monkey_a"}, ["bs/s0", "bs/s1"]),
        ({"brainset": "bs", "subjects": ["monkey_b"]}, ["bs/s2"]),
        ({"brainset": "bs", "exclude_sessions": ["s0"]}, ["bs/s1", "bs/s2"]),
        ({"brainset": "bs", "subject": "monkey_a", "exclude_sessions": ["s1"]}, ["bs/s0"]),
    ],
)
def test_selection_forms(root, selection, expected):
    ds = Dataset(root, config={"selection": [selection]})
    assert ds.get_session_ids() == expected


def test_recording_ids_argument(root):
    assert Dataset(root, recording_ids=["other/x", "bs/s1"]).get_session_ids() == ["bs/s1", "other/x"]
    ds = Dataset(root, config=[{"selection": [{"brainset": "bs"}]}], recording_ids=["bs/s2", "other/x"])
    assert ds.get_session_ids() == ["bs/s2"]


# ------------------------------------------------------------------ loader integration


def test_dataloader_with_sampler_transform_and_collate(root):
    def to_dict(w):
        return {"t": pad(w.spikes.timestamps), "sid": w.session.id, "abs": w.absolute_start}

    ds = Dataset(root, split="train", transform=lambda w: to_dict(UnitDropout(1, 2, 3, seed=0)(w)))
    sampler = RandomFixedWindowSampler(ds.get_sampling_intervals(), window_length=1.0, generator=0)
    loader = torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=8, collate_fn=collate)
    n = 0
    for batch in loader:
        assert batch["t"].ndim == 2 and len(batch["sid"]) == batch["t"].shape[0]
        assert torch.all(batch["t"] < 1.0)
        n += len(batch["sid"])
    assert n == len(sampler) == 4 * 6


def test_dataloader_workers(root):
    ds = Dataset(root, split="valid", transform=lambda w: {"n": len(w.spikes), "sid": w.session.id})
    sampler = SequentialFixedWindowSampler(ds.get_sampling_intervals(), 0.5)
    plain = [ds[i] for i in sampler]
    loader = torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=4, collate_fn=collate, num_workers=2)
    got = [x for b in loader for x in b["n"].tolist()]
    assert got == [p["n"] for p in plain]


def test_keep_files_open_false_and_lru_bound(root):
    a = Dataset(root, keep_files_open=False, memory_budget=0)
    b = Dataset(root, max_open_files=2, memory_budget=0)
    for rid in a.get_session_ids() * 2:
        wa, wb = a.get(rid, 2.0, 3.5), b.get(rid, 2.0, 3.5)
        assert np.array_equal(wa.spikes.timestamps, wb.spikes.timestamps)
        assert len(b._cache) <= 2
    assert len(a._cache) == 0


def test_many_files_do_not_exhaust_handles(tmp_path):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for i in range(24):
        _write(tmp_path, "many", f"s{i:02d}", _recording(f"s{i:02d}", "m", n_units=1, duration=2.0, seed=i,
                                                         splits={"train": [(0.0, 2.0)]}))
    in_use = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 32
    # fewer free handles (12) than files (24): only the LRU bound (4) keeps this working
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, in_use + 12), hard))
    try:
        ds = Dataset(tmp_path, split="train", max_open_files=4, memory_budget=0)
        for _ in range(3):
            for rid in ds.get_session_ids():
                ds.get(rid, 0.5, 1.5)
        assert len(ds._cache) == 4
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_in_memory_and_lazy_windows_are_identical(root):
    one_file = (root / "bs" / "s0.h5").stat().st_size
    mem = Dataset(root, split="train")
    lazy = Dataset(root, split="train", memory_budget=0)
    part = Dataset(root, split="train", memory_budget=one_file)
    sampler = RandomFixedWindowSampler(mem.get_sampling_intervals(), window_length=0.7, generator=3)
    for idx in sampler:
        a, b, c = mem[idx], lazy[idx], part[idx]
        for w in (b, c):
            assert np.array_equal(a.spikes.timestamps, w.spikes.timestamps)
            assert np.array_equal(a.spikes.unit_index, w.spikes.unit_index)
            assert np.array_equal(a.cursor.vel, w.cursor.vel)
            assert np.array_equal(a.trials.start, w.trials.start)
            assert np.array_equal(a.units.id, w.units.id) and a.session.id == w.session.id
            assert a.absolute_start == w.absolute_start
    assert len(mem._memory) == 4 and len(lazy._memory) == 0 and len(part._memory) == 1
    assert len(mem._cache) == 0  # in-memory recordings hold no file handle
    with pytest.raises(ValueError, match="memory_budget must be an int >= 0"):
        Dataset(root, memory_budget=-1)


def test_get_recording_data_and_index_types(root):
    for kwargs in ({}, {"memory_budget": 0}, {"memory_budget": 0, "keep_files_open": False}):
        full = Dataset(root, split="test", **kwargs).get_recording_data("bs/s0")
        assert full.session.id == "bs/s0" and full.units.id[0] == "bs/s0/unit_0"
        assert len(full.spikes) == 20 * 4 * 10
    ds = Dataset(root, split="test")
    assert np.array_equal(ds[DatasetIndex("bs/s0", 8.0, 9.0)].spikes.timestamps,
                          ds[("bs/s0", 8.0, 9.0)].spikes.timestamps)
    with pytest.raises(TypeError, match="index must be a DatasetIndex"):
        ds[3]


def test_pickle_roundtrip(root):
    import pickle

    ds = Dataset(root, split="train")
    ds.get("bs/s0", 0.0, 1.0)
    ds2 = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(ds2.get("bs/s0", 0.0, 1.0).spikes.timestamps, ds.get("bs/s0", 0.0, 1.0).spikes.timestamps)


# ------------------------------------------------------------------ bad input (nothing written to disk)


def test_empty_root(tmp_path):
    (tmp_path / "empty_brainset").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no brainset files found under .*<brainset>/<session>.h5"):
        Dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        Dataset(tmp_path / "nope")


@pytest.mark.parametrize(
    "config, exc, match",
    [
        ({"selection": [{"brainset": "bs", "session": "s9"}]}, ValueError,
         r"session\(s\) \['s9'\] not found in brainset 'bs'.*existing sessions: \['s0', 's1', 's2'\]"),
        ({"selection": [{"brainset": "nope"}]}, ValueError, r"brainset 'nope' not found.*\['bs', 'other'\]"),
        ({"selection": [{"brainset": "bs", "subject": "zebra"}]}, ValueError,
         r"subject \['zebra'\] not found.*\['monkey_a', 'monkey_b'\]"),
        ({"selection": [{"brainset": "bs", "sesion": "s0"}]}, ValueError, r"unknown key\(s\) \['sesion'\]"),
        ({"selection": [{"session": "s0"}]}, ValueError, "must be a dict with a 'brainset' key"),
        ({"config": {}}, ValueError, "must be a dict with a 'selection' list"),
        ([{"selection": [{"brainset": "bs"}], "config": {"a": 1}}, {"selection": [{"brainset": "bs", "session": "s0"}], "config": {"a": 2}}],
         ValueError, "recording 'bs/s0' is selected by"),
        (42, TypeError, "non-empty list of entries"),
    ],
)
def test_bad_config(root, config, exc, match):
    before = _digest(root)
    with pytest.raises(exc, match=match):
        Dataset(root, config=config)
    assert _digest(root) == before


def test_bad_config_path_and_split(root, tmp_path_factory):
    with pytest.raises(FileNotFoundError, match="config file .* does not exist"):
        Dataset(root, config=str(root / "missing.yaml"))
    bad = tmp_path_factory.mktemp("c") / "bad.yaml"
    bad.write_text("- selection: [brainset: bs\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        Dataset(root, config=bad)
    with pytest.raises(ValueError, match=r"split must be None or one of \['train', 'valid', 'test'\], got 'val'"):
        Dataset(root, split="val")
    with pytest.raises(ValueError, match=r"recording_ids \['bs/s7'\] not found"):
        Dataset(root, recording_ids=["bs/s7"])


def test_split_with_no_intervals(tmp_path):
    for s in ("a", "b"):
        _write(tmp_path, "bs", s, _recording(s, "m", splits={"train": [(0.0, 10.0)], "valid": []}))
    with pytest.raises(ValueError, match=r"split 'valid' has no intervals in any of the 2 selected recording"):
        Dataset(tmp_path, split="valid")
    with pytest.raises(ValueError, match=r"has no 'test_domain'"):
        Dataset(tmp_path, split="test")


def test_train_test_overlap_refused(tmp_path):
    _write(tmp_path, "bs", "ok", _recording("ok", "m"))
    _write(tmp_path, "bs", "leaky", _recording("leaky", "m", splits={"train": [(0.0, 6.0)], "test": [(5.5, 10.0)]}))
    before = _digest(tmp_path)
    with pytest.raises(ValueError, match=r"recording 'bs/leaky' .* overlapping train_domain and test_domain over \[5.5, 6\) s"):
        Dataset(tmp_path, split="train")
    assert _digest(tmp_path) == before


def test_corrupt_file_among_many_is_named(root):
    (root / "bs" / "s3.h5").write_bytes(b"this is not an hdf5 file" * 10)
    before = _digest(root)
    with pytest.raises(ValueError, match=r"could not read recording file '.*bs/s3.h5'"):
        Dataset(root)
    assert _digest(root) == before
    # the broken file is not read when it is not selected
    assert Dataset(root, config={"selection": [{"brainset": "bs", "sessions": ["s0"]}]}).get_session_ids() == ["bs/s0"]


def test_window_longer_than_every_interval(root):
    ds = Dataset(root, split="valid")
    with pytest.raises(ValueError, match=r"window_length=3 s is longer than 4 of 4 sampling intervals \(the longest interval is 2 s\)"):
        RandomFixedWindowSampler(ds.get_sampling_intervals(), window_length=3.0)


def test_unknown_recording_in_get(root):
    ds = Dataset(root, recording_ids=["bs/s0"])
    with pytest.raises(ValueError, match=r"recording_id 'bs/s1' is not in this dataset.*\['bs/s0'\]"):
        ds.get("bs/s1", 0.0, 1.0)
    with pytest.raises(ValueError, match="end must be > start"):
        ds.get("bs/s0", 2.0, 1.0)


def test_truncated_file_among_many_is_named(root):
    path = root / "bs" / "s1.h5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"could not read recording file '.*bs/s1.h5'"):
        Dataset(root)
