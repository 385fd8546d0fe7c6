"""Target statistics on the training split (vs numpy on the raw file) and their round trip."""

import numpy as np
import pytest
import torch

from torch_brain.registry import get_modality
from torch_brain.training.normalization import TargetNormalizer, compute_target_stats


class _FakeDataset:
    """Two sessions with known cursor velocity; the training split is part of each."""

    def __init__(self, offset: float = 0.0, scale: float = 1.0):
        from torch_brain.data import Data, Interval, RegularTimeSeries

        rng = np.random.default_rng(0)
        self.recordings, self.intervals, self.raw = {}, {}, {}
        for k, sid in enumerate(["b/s0", "b/s1"]):
            vel = offset + scale * rng.normal(loc=[k, -k], scale=[1 + k, 2], size=(1000, 2))
            self.recordings[sid] = Data(cursor=RegularTimeSeries(sampling_rate=100.0, vel=vel),
                                        domain="auto")
            self.intervals[sid] = Interval(np.array([0.0, 6.0]), np.array([3.0, 8.0]))
            t = np.arange(1000) / 100.0
            keep = ((t >= 0) & (t < 3)) | ((t >= 6) & (t < 8))
            self.raw[sid] = vel[keep]

    def get_sampling_intervals(self):
        return self.intervals

    def get_recording_data(self, rid):
        return self.recordings[rid]

    def get_config(self, rid):
        return {"multitask_readout": [{"readout_id": "cursor_velocity_2d"}, {"readout_id": "reach_direction"}]}


def _specs():
    return {"cursor_velocity_2d": get_modality("cursor_velocity_2d"),
            "reach_direction": get_modality("reach_direction")}


def test_per_session_and_global_statistics():
    ds = _FakeDataset()
    stats = compute_target_stats(ds, _specs(), mode="per_session")
    assert list(stats["tasks"]) == ["cursor_velocity_2d"]  # categorical tasks are not normalised
    entry = stats["tasks"]["cursor_velocity_2d"]
    for sid, raw in ds.raw.items():
        np.testing.assert_allclose(entry["sessions"][sid]["mean"], raw.mean(0), rtol=1e-10)
        np.testing.assert_allclose(entry["sessions"][sid]["std"], raw.std(0), rtol=1e-8)
    pooled = np.concatenate(list(ds.raw.values()))
    np.testing.assert_allclose(entry["global"]["mean"], pooled.mean(0), rtol=1e-10)
    np.testing.assert_allclose(entry["global"]["std"], pooled.std(0), rtol=1e-8)
    assert compute_target_stats(ds, _specs(), mode="global")["tasks"]["cursor_velocity_2d"]["sessions"] == {}
    assert compute_target_stats(ds, _specs(), mode="none")["tasks"] == {}
    with pytest.raises(ValueError, match="normalization.mode must be one of global, none, per_session"):
        compute_target_stats(ds, _specs(), mode="session")


def test_statistics_stay_exact_when_the_mean_dwarfs_the_spread():
    # e.g. absolute positions far from the origin: E[x²] - E[x]² cancels catastrophically here
    ds = _FakeDataset(offset=1e6, scale=1e-3)
    entry = compute_target_stats(ds, _specs(), mode="per_session")["tasks"]["cursor_velocity_2d"]
    for sid, raw in ds.raw.items():
        np.testing.assert_allclose(entry["sessions"][sid]["std"], raw.std(0), rtol=1e-6)
    pooled = np.concatenate(list(ds.raw.values()))
    np.testing.assert_allclose(entry["global"]["std"], pooled.std(0), rtol=1e-6)


def test_normalize_denormalize_round_trip_and_unknown_session():
    stats = compute_target_stats(_FakeDataset(), _specs())
    norm = TargetNormalizer(stats)
    values = torch.randn(5, 2)
    sessions, counts = ["b/s0", "b/s1", "new/session"], torch.tensor([2, 0, 3])
    z = norm.normalize("cursor_velocity_2d", values, sessions, counts)
    entry = stats["tasks"]["cursor_velocity_2d"]
    rows = [entry["sessions"]["b/s0"]] * 2 + [entry["global"]] * 3  # unseen session -> global
    mean = torch.tensor([r["mean"] for r in rows], dtype=torch.float32)
    std = torch.tensor([r["std"] for r in rows], dtype=torch.float32)
    torch.testing.assert_close(z, (values - mean) / std)
    torch.testing.assert_close(norm.denormalize("cursor_velocity_2d", z, sessions, counts), values)
    assert norm.normalize("reach_direction", values, sessions, counts) is values


def test_config_normalisation_is_not_applied_twice():
    ds = _FakeDataset()
    ds.get_config = lambda rid: {"multitask_readout": [
        {"readout_id": "cursor_velocity_2d", "normalize_mean": 0.0, "normalize_std": 2.0}]}
    stats = compute_target_stats(ds, _specs())
    assert stats["tasks"] == {}  # the tokenizer already standardises with the config's values
