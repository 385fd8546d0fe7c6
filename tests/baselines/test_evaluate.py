"""Baselines scored through windows + stitching equal a direct score on every test timestamp."""

import numpy as np
import pytest
import torch
import torchmetrics

from tests.training.tiny_synthetic import DATASET_CONFIG
from torch_brain.baselines import evaluate_baseline, fit_session_decoder, run_baseline
from torch_brain.registry import get_modality
from torch_brain.training import DecodingDataModule


@pytest.mark.parametrize("name", ["ridge", "kalman"])
def test_windowed_score_equals_direct_score(tiny_root, name):
    dm = DecodingDataModule(tiny_root, str(DATASET_CONFIG), window_length=1.0, eval_step=0.3)
    spec = get_modality("cursor_velocity_2d")
    train, test = dm.dataset("train"), dm.dataset("test")
    decoders = {}
    for rid, intervals in train.get_sampling_intervals().items():
        decoders[(rid, "cursor_velocity_2d")] = fit_session_decoder(
            name, train.get_recording_data(rid), intervals, spec, {}, bin_size=0.05, lags=3)
    result = evaluate_baseline(dm, decoders, "test")

    # direct: every cursor sample inside the test intervals, the bin holding it, no windows
    for rid, intervals in test.get_sampling_intervals().items():
        data = test.get_recording_data(rid)
        t = np.asarray(data.cursor.timestamps)
        y = np.asarray(data.cursor.vel) / 8.6  # the dataset config's normalize_std
        start, end = float(intervals.start[0]), float(intervals.end[0])
        keep = (t >= start) & (t < end)
        (seg_start, pred), = decoders[(rid, "cursor_velocity_2d")].predict_segments(data, intervals)
        idx = np.floor((t[keep] - seg_start) / 0.05 + 1e-9).astype(int)
        expected = torchmetrics.functional.r2_score(torch.tensor(pred[idx]).float(),
                                                    torch.tensor(y[keep]).float())
        got = result["sessions"][rid]["cursor_velocity_2d"]["r2score"]
        assert got == pytest.approx(float(expected), abs=1e-5)


def test_run_baseline_writes_metrics_and_refuses_overwrite(tiny_root, tmp_path):
    cfg = {"name": "b", "data": {"root": str(tiny_root), "config": str(DATASET_CONFIG)},
           "baseline": {"lags": 2}}
    result = run_baseline(cfg, run_dir=tmp_path / "ridge")
    assert (tmp_path / "ridge" / "metrics.json").is_file()
    sessions = result["test"]["sessions"]
    assert set(sessions["synthetic_reaching/session_00"]) == {"cursor_velocity_2d", "reach_direction"}
    with pytest.raises(ValueError, match="already exists"):
        run_baseline(cfg, run_dir=tmp_path / "ridge")
    with pytest.raises(ValueError, match="Unknown baseline 'lasso'. Valid baselines are: kalman, ridge"):
        run_baseline(cfg, name="lasso", run_dir=tmp_path / "x")
