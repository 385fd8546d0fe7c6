"""A run config with an expected-value head: bins fitted on the training split as the loss sees
the targets (normalised), stored in the checkpoint, and predictions evaluated in original units."""

import h5py
import numpy as np
import pytest
import torch

from tests.training.tiny_synthetic import tiny_config
from torch_brain.training import NeuralDecoder, evaluate, fit

_RAW_VELOCITY = [{
    "selection": [{"brainset": "synthetic_reaching", "exclude_sessions": ["heldout"]}],
    "config": {"multitask_readout": [{"readout_id": "cursor_velocity_2d"}]},
}]


@pytest.mark.slow
def test_bins_head_from_a_run_config(tiny_root, tmp_path):
    heads = {"cursor_velocity_2d": {"kind": "bins", "num_bins": 8, "sample_k": 16}}
    config = tiny_config(tiny_root, data={"config": _RAW_VELOCITY}, model={"readout_heads": heads},
                         trainer={"max_steps": 3, "limit_val_batches": 0})
    fit(config, run_dir=tmp_path / "run")
    ckpt_path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    centres = ckpt["state_dict"]["model.readout.projections.cursor_velocity_2d.centres"].numpy()

    # independent reference: the training-split targets of both sessions, standardised per session
    # with the checkpoint's statistics, pooled, and their (k + 0.5) / 8 quantiles
    stats = ckpt["target_normalization"]["tasks"]["cursor_velocity_2d"]["sessions"]
    pooled = []
    for sid in ("session_00", "session_01"):
        with h5py.File(tiny_root / "synthetic_reaching" / f"{sid}.h5") as f:
            vel = f["cursor"]["vel"][:]
            t = float(f["cursor"]["domain"]["start"][0]) + np.arange(len(vel)) / float(f["cursor"].attrs["sampling_rate"])
            keep = np.zeros(len(t), bool)
            for s, e in zip(f["train_domain"]["start"][:], f["train_domain"]["end"][:]):
                keep |= (t >= s) & (t < e)
        entry = stats[f"synthetic_reaching/{sid}"]
        pooled.append((vel[keep] - entry["mean"]) / np.asarray(entry["std"]))
    want = np.quantile(np.concatenate(pooled), (np.arange(8) + 0.5) / 8, axis=0).T
    np.testing.assert_allclose(centres, want, rtol=1e-4, atol=1e-4)

    module = NeuralDecoder.load_from_checkpoint(ckpt_path)
    assert module.fit_readout_vocabularies(None) == []  # already fitted: nothing recomputed
    result = evaluate(tmp_path / "run", stage="test")
    r2 = [v for s in result["sessions"].values() for t in s.values() for v in t.values()]
    assert r2 and all(np.isfinite(r2))
