"""prepare(), the registry, the command line, and the files written."""

import argparse

import h5py
import numpy as np
import pytest

from torch_brain.brainsets import (
    add_prepare_arguments,
    list_brainsets,
    prepare,
    prepare_from_args,
)
from torch_brain.brainsets.__main__ import main
from torch_brain.data import Data

TINY = dict(n_sessions=2, n_subjects=2, minutes=0.3, n_units=6)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("processed")
    paths = prepare("synthetic_reaching", root, progress=False, **TINY)
    return root, paths


def test_registry_lists_bundled_sets():
    assert list_brainsets() == ["brochier_grasp", "nelpy_hippocampus", "spykesml_m1", "synthetic_reaching"]


def test_prepare_writes_one_file_per_session(tiny_root):
    root, paths = tiny_root
    names = sorted(p.name for p in (root / "synthetic_reaching").glob("*.h5"))
    assert names == ["heldout.h5", "session_00.h5", "session_01.h5"]
    assert sorted(p.name for p in paths) == names
    assert not list((root / "synthetic_reaching").glob(".*tmp"))


def test_written_file_layout_and_round_trip(tiny_root):
    root, _ = tiny_root
    with h5py.File(root / "synthetic_reaching" / "session_01.h5", "r") as f:
        assert f.attrs["object"] == "Data"
        for key in ("units", "spikes", "cursor", "trials", "movement_periods", "reach_direction",
                    "brainset", "subject", "session", "device", "train_domain", "valid_domain",
                    "test_domain", "domain"):
            assert key in f, key
        assert f["cursor"].attrs["object"] == "RegularTimeSeries"
        assert f["spikes"].attrs["object"] == "IrregularTimeSeries"
        assert f["movement_periods"]["reach_period"].attrs["object"] == "Interval"
        data = Data.from_hdf5(f, lazy=False)
        assert data.session.id == "session_01" and data.subject.id == "subject_1"
        assert data.brainset.id == "synthetic_reaching"
        assert data.units.id.tolist() == [f"unit_{i:03d}" for i in range(6)]
        assert data.cursor.sampling_rate == 100.0
        assert data.reach_direction.direction_id.dtype == np.int64
        assert data.spikes.timestamps.size == np.asarray(f["spikes"]["timestamps"]).size > 0


def test_held_out_session_new_units_same_subject_stats(tiny_root):
    root, _ = tiny_root
    with h5py.File(root / "synthetic_reaching" / "heldout.h5", "r") as f0, h5py.File(
        root / "synthetic_reaching" / "session_00.h5", "r"
    ) as f1:
        held, s0 = Data.from_hdf5(f0, lazy=False), Data.from_hdf5(f1, lazy=False)
        assert held.subject.id == s0.subject.id == "subject_0"
        assert not np.allclose(held.units.preferred_direction, s0.units.preferred_direction)


def test_prepare_is_deterministic(tmp_path, tiny_root):
    root, _ = tiny_root
    prepare("synthetic_reaching", tmp_path, progress=False, held_out=False, **TINY)
    for name in ("session_00.h5", "session_01.h5"):
        with h5py.File(root / "synthetic_reaching" / name) as a, h5py.File(tmp_path / "synthetic_reaching" / name) as b:
            np.testing.assert_array_equal(a["spikes"]["timestamps"][()], b["spikes"]["timestamps"][()])
            np.testing.assert_array_equal(a["cursor"]["vel"][()], b["cursor"]["vel"][()])
    assert not (tmp_path / "synthetic_reaching" / "heldout.h5").exists()


@pytest.mark.parametrize(
    "name, kwargs, exc, match",
    [
        ("synthetic_reachin", {}, ValueError, "Did you mean 'synthetic_reaching'"),
        ("synthetic_reaching", {"n_session": 2}, TypeError, r"unknown option\(s\) \['n_session'\]"),
        ("synthetic_reaching", {"n_sessions": 2.5}, TypeError, "'n_sessions' must be an integer"),
        ("synthetic_reaching", {"n_sessions": 0}, ValueError, "n_sessions must be a positive integer"),
        ("synthetic_reaching", {"n_sessions": 1, "n_subjects": 2}, ValueError, r"n_subjects \(2\) must be <="),
        ("synthetic_reaching", {"split_ratios": (0.5, 0.1, 0.1)}, ValueError, "sum to 1"),
        ("spykesml_m1", {"raw_dir": "/nonexistent/dir"}, FileNotFoundError, "m1_stevenson_2011.mat"),
        ("brochier_grasp", {"n_units": 3}, TypeError, "valid options are"),
    ],
)
def test_bad_input_raises_and_writes_nothing(tmp_path, name, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        prepare(name, tmp_path, progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_root_must_be_a_folder(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="exists but is not a folder"):
        prepare("synthetic_reaching", tmp_path / "afile", progress=False)


def test_numpy_option_values_accepted(tmp_path):
    (path,) = prepare("synthetic_reaching", tmp_path, progress=False, n_sessions=np.int64(1),
                      n_subjects=1, minutes=np.float32(0.1), n_units=3, held_out=False,
                      split_ratios=np.array([0.6, 0.2, 0.2]))
    assert path.name == "session_00.h5"


def test_existing_files_need_overwrite(tmp_path):
    opts = dict(TINY, minutes=0.1, n_sessions=1, n_subjects=1, held_out=False)
    (path,) = prepare("synthetic_reaching", tmp_path, progress=False, **opts)
    before = path.stat().st_mtime_ns
    with pytest.raises(ValueError, match="already exist.*overwrite=True"):
        prepare("synthetic_reaching", tmp_path, progress=False, **opts)
    assert path.stat().st_mtime_ns == before
    prepare("synthetic_reaching", tmp_path, progress=False, overwrite=True, **opts)


def test_stray_files_warned(tmp_path):
    (tmp_path / "synthetic_reaching").mkdir()
    (tmp_path / "synthetic_reaching" / "old_session.h5").write_bytes(b"")
    with pytest.warns(UserWarning, match="old_session.h5"):
        prepare("synthetic_reaching", tmp_path, progress=False, n_sessions=1, n_subjects=1,
                minutes=0.1, n_units=3, held_out=False)


def test_argparse_helpers(tmp_path):
    parser = add_prepare_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        ["synthetic_reaching", "--root", str(tmp_path), "--n-sessions", "1", "--n-subjects", "1",
         "--minutes", "0.1", "--n-units", "3", "--held-out", "false", "--split-ratios", "0.6", "0.2",
         "0.2", "--no-progress"]
    )
    paths = prepare_from_args(args)
    assert [p.name for p in paths] == ["session_00.h5"]
    bad = parser.parse_args(["spykesml_m1", "--root", str(tmp_path), "--n-units", "3"])
    with pytest.raises(ValueError, match=r"does not take \['--n-units'\]"):
        prepare_from_args(bad)


def test_module_main(tmp_path, capsys):
    rc = main(["synthetic_reaching", "--root", str(tmp_path), "--n-sessions", "1", "--n-subjects",
               "1", "--minutes", "0.1", "--n-units", "3", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in out] == ["session_00.h5", "heldout.h5"]
    with pytest.raises(SystemExit):
        main(["synthetic_reaching", "--root", str(tmp_path), "--n-sessions", "1", "--n-subjects",
              "1", "--minutes", "0.1", "--n-units", "3", "--no-progress"])
    assert "already exist" in capsys.readouterr().err


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["spykesml_m1", "nelpy_hippocampus", "brochier_grasp"])
def test_importers_write_readable_files(real_data_dir, tmp_path, name):
    (path,) = prepare(name, tmp_path, raw_dir=str(real_data_dir), progress=False)
    with h5py.File(path, "r") as f:
        data = Data.from_hdf5(f, lazy=False)
        assert data.brainset.id == name and path.stem == data.session.id
        assert data.spikes.unit_index.max() < data.units.id.size
        for split in ("train", "valid", "test"):
            assert len(getattr(data, f"{split}_domain")) > 0
