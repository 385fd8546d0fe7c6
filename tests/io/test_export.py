"""Prediction export: npz, pynapple and a copy of the source NWB file with a new module."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from torch_brain.io import export_predictions

T = np.array([0.5, 1.0, 1.5, 2.0])
P = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]])
Y = P + 1.0


def test_npz_per_session_and_task(tmp_path):
    paths = export_predictions({"lab/ses01": {"position_2d": (T, P, Y)}}, tmp_path, "npz")
    assert [p.name for p in paths] == ["lab_ses01__position_2d.npz"]
    with np.load(paths[0]) as z:
        np.testing.assert_array_equal(z["timestamps"], T)
        np.testing.assert_array_equal(z["predictions"], P)
        np.testing.assert_array_equal(z["targets"], Y)


def test_pynapple_files_load_with_pynapple(tmp_path):
    nap = pytest.importorskip("pynapple")
    paths = export_predictions({"lab/ses01": {"position_2d": (T, P, Y)}}, tmp_path, "pynapple")
    decoded = nap.load_file(str(paths[0]))
    true = nap.load_file(str(paths[1]))
    np.testing.assert_array_equal(decoded.t, T)
    np.testing.assert_array_equal(decoded.values, P)
    np.testing.assert_array_equal(true.values, Y)


def test_nwb_copy_gets_a_module_and_the_source_is_untouched(tmp_path):
    pytest.importorskip("pynwb")
    from pynwb import NWBHDF5IO

    from tests.brainsets.nwb_files import write_nwb
    from torch_brain.brainsets import prepare_nwb

    src = tmp_path / "ses01.nwb"
    write_nwb(src, seconds=6.0, n_units=3)
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    prepare_nwb([src], tmp_path / "proc", brainset="lab", progress=False)
    preds = {"lab/ses01": {"position_2d": (T, P, Y), "running_speed": (T, P[:, 0], Y[:, 0])}}
    out = export_predictions(preds, tmp_path / "export", "nwb", data_root=tmp_path / "proc")
    again = export_predictions(preds, tmp_path / "export", "nwb", data_root=tmp_path / "proc")
    assert out == again == [tmp_path / "export" / "lab_ses01.nwb"]
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before
    with NWBHDF5IO(str(out[0]), "r") as io:
        nwb = io.read()
        module = nwb.processing["torch_brain_decoding"]
        np.testing.assert_array_equal(module["position_2d_decoded"].timestamps[:], T)
        np.testing.assert_array_equal(module["position_2d_decoded"].data[:], P)
        np.testing.assert_array_equal(module["position_2d_true"].data[:], Y)
        np.testing.assert_array_equal(module["running_speed_decoded"].data[:], P[:, 0])
        # the original content is still there, next to the predictions
        assert "behavior" in nwb.processing and len(nwb.units) == 3


def test_bad_format_and_non_nwb_session(tmp_path):
    with pytest.raises(ValueError, match="export format must be one of"):
        export_predictions({}, tmp_path, "csv")
    from torch_brain.brainsets import prepare

    prepare("synthetic_reaching", tmp_path / "proc", n_sessions=1, n_subjects=1, minutes=0.5, n_units=5,
            held_out=False, progress=False)
    with pytest.raises(ValueError, match="was not imported from an NWB file.*--export npz"):
        export_predictions({"synthetic_reaching/session_00": {"x": (T, P, Y)}}, tmp_path / "e", "nwb",
                           data_root=tmp_path / "proc")
