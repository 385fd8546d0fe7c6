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
                         trainer={"max_steps": 3, "limit_val_batches": 0}, logging={"readout_distribution": True})
    fit(config, run_dir=tmp_path / "run")
    ckpt_path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt["hyper_parameters"]["log_readout_distribution"] is True  # from logging.readout_distribution
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
    # logging.readout_distribution: the distribution's CE and entropy (nats) among the test metrics
    assert 0 < result["metrics"]["test_readout_entropy/cursor_velocity_2d"] <= np.log(8)
    assert result["metrics"]["test_readout_ce/cursor_velocity_2d"] > 0
    quiet = evaluate(tmp_path / "run", ["logging.readout_distribution=false"], stage="test")
    assert not any("readout" in k for k in quiet["metrics"])


def test_ce_and_entropy_of_the_predicted_distribution_are_logged_when_asked(tiny_root):
    import lightning as L

    from tests.training.tiny_synthetic import TINY_MODEL
    from torch_brain.nn.expected_value import hl_gauss_target
    from torch_brain.training import DecodingDataModule

    task = "cursor_velocity_2d"
    # scored only during reaches: the logged means cover the evaluated queries, like the metrics
    reaching = [{**_RAW_VELOCITY[0], "config": {"multitask_readout": [
        {"readout_id": task, "eval_interval": "movement_periods.reach_period"}]}}]
    dm = DecodingDataModule(tiny_root, reaching, batch_size=8)
    heads = {task: {"kind": "bins", "num_bins": 8}}
    torch.manual_seed(0)
    module = NeuralDecoder("poyo_plus", tasks=dm.tasks, model_kwargs={**TINY_MODEL, "readout_heads": heads},
                           log_readout_distribution=True)
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                 accelerator="cpu")
    L.Trainer(max_steps=2, limit_val_batches=0, **quiet).fit(module, datamodule=dm)
    trainer = L.Trainer(**quiet)
    logged = trainer.validate(module, datamodule=dm, verbose=False)[0]

    # independent: numpy softmax entropy and cross-entropy against HL-Gauss targets, over every
    # evaluated query of the validation windows
    module.eval()
    centres = module.model.readout.projections[task].centres.detach().double()
    ce, entropy, evaluated = [], [], []
    with torch.no_grad():
        for batch in dm.val_dataloader():
            logits = module.model(**batch["model_inputs"])[task].double().numpy().reshape(-1, 2, 8)
            counts = (batch["model_inputs"]["output_decoder_index"] == module.specs[task].id).sum(1)
            target = module.normalizer.normalize(task, batch["target_values"][task].float(),
                                                 batch["session_id"], counts).double()
            logp = logits - logits.max(-1, keepdims=True)
            logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
            soft = hl_gauss_target(target, centres, 0.75).numpy()
            keep = batch["eval_mask"][task].numpy().astype(bool)
            evaluated.append(keep.mean())
            ce.append((-(soft * logp).sum(-1).mean(-1))[keep])
            entropy.append((-(np.exp(logp) * logp).sum(-1).mean(-1))[keep])
    assert logged[f"val_readout_ce/{task}"] == pytest.approx(np.concatenate(ce).mean(), rel=1e-4)
    assert logged[f"val_readout_entropy/{task}"] == pytest.approx(np.concatenate(entropy).mean(), rel=1e-4)
    assert 0 < logged[f"val_readout_entropy/{task}"] <= np.log(8)
    assert 0.1 < np.mean(evaluated) < 0.9  # the mask matters here

    # off by default
    assert not any("readout" in k for k in trainer.validate(NeuralDecoder(module.model), datamodule=dm,
                                                            verbose=False)[0])
