"""NeuralDecoder / trainer options: checkpointed target statistics, refusal of foreign
checkpoints, precision, clipping, accumulation, early stopping, compile flag."""

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from tests.training.tiny_synthetic import tiny_config
from torch_brain.training import (
    NeuralDecoder,
    build_datamodule,
    build_trainer,
    fit,
    resolve_config,
)

# the synthetic set's dataset config without normalize_mean/std: torch_brain's own
# training-split statistics are used
_RAW_VELOCITY = [{
    "selection": [{"brainset": "synthetic_reaching", "exclude_sessions": ["heldout"]}],
    "config": {"multitask_readout": [{"readout_id": "cursor_velocity_2d"}]},
}]


@pytest.mark.slow
def test_checkpoint_holds_training_split_statistics(tiny_root, tmp_path):
    config = tiny_config(tiny_root, data={"config": _RAW_VELOCITY},
                         trainer={"max_steps": 2, "limit_val_batches": 0})
    fit(config, run_dir=tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    stats = ckpt["target_normalization"]["tasks"]["cursor_velocity_2d"]

    import h5py

    for sid in ("session_00", "session_01"):
        with h5py.File(tiny_root / "synthetic_reaching" / f"{sid}.h5") as f:
            vel = f["cursor"]["vel"][:]
            rate = float(f["cursor"].attrs["sampling_rate"])
            start = float(f["cursor"]["domain"]["start"][0])
            t = start + np.arange(len(vel)) / rate
            starts, ends = f["train_domain"]["start"][:], f["train_domain"]["end"][:]
        keep = np.zeros(len(t), bool)
        for s, e in zip(starts, ends):
            keep |= (t >= s) & (t < e)
        entry = stats["sessions"][f"synthetic_reaching/{sid}"]
        np.testing.assert_allclose(entry["mean"], vel[keep].mean(0), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(entry["std"], vel[keep].std(0), rtol=1e-6)

    module = NeuralDecoder.load_from_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert module.normalizer.stats == ckpt["target_normalization"]
    assert len(module.model.unit_emb.vocab) == 24  # vocabularies restored with the weights


@pytest.mark.slow
def test_resume_with_another_architecture_is_refused(tiny_root, tmp_path):
    config = tiny_config(tiny_root, trainer={"max_steps": 1, "limit_val_batches": 0})
    fit(config, run_dir=tmp_path / "run")
    with pytest.raises(ValueError, match=r"another model or task set:\n  model_kwargs: checkpoint .*'dim': 16"):
        fit(config, ["model.dim=8"], run_dir=tmp_path / "run", resume=True)


def _trainer(tiny_root, tmp_path, **sections):
    import torchmetrics

    cfg = resolve_config(tiny_config(tiny_root, **sections))
    metrics = {"b/s": {"cursor_velocity_2d": torchmetrics.R2Score()}}
    return build_trainer(cfg, tmp_path, metrics=metrics)


def test_trainer_options_are_passed_to_lightning(tiny_root, tmp_path):
    trainer = _trainer(tiny_root, tmp_path, trainer={
        "gradient_clip_val": 0.5, "accumulate_grad_batches": 3, "precision": "bf16-mixed",
        "deterministic": True, "max_steps": 7},
        early_stopping={"monitor": "val_loss", "mode": "min", "patience": 2},
        checkpoint={"save_top_k": 2, "every_n_epochs": 4, "every_n_train_steps": 5})
    assert trainer.gradient_clip_val == 0.5 and trainer.accumulate_grad_batches == 3
    assert trainer.precision == "bf16-mixed" and trainer.max_steps == 7
    stops = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    assert len(stops) == 1 and stops[0].monitor == "val_loss" and stops[0].patience == 2
    ckpts = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    best = [c for c in ckpts if c.monitor == "average_val_metric"]
    assert len(best) == 1 and best[0].save_top_k == 2 and best[0].mode == "max"
    assert any(c._every_n_epochs == 4 and c.save_top_k == -1 for c in ckpts)
    assert any(c._every_n_train_steps == 5 and c.save_last for c in ckpts)
    assert torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_half_precision_needs_a_gpu(tiny_root, tmp_path):
    with pytest.raises(ValueError, match="needs a GPU; on CPU use bf16-mixed or 32"):
        _trainer(tiny_root, tmp_path, trainer={"precision": "16-mixed"})
    with pytest.raises(ValueError, match="trainer.precision must be one of"):
        _trainer(tiny_root, tmp_path, trainer={"precision": "half"})


def test_compile_flag_wraps_the_model_once(tiny_root):
    cfg = resolve_config(tiny_config(tiny_root, trainer={"compile": True}))
    dm = build_datamodule(cfg)
    module = NeuralDecoder("poyo_plus", tasks=dm.tasks, compile=True,
                           model_kwargs={"dim": 16, "depth": 1, "dim_head": 8, "self_heads": 2})
    module.configure_model()
    first = module._compiled
    module.configure_model()
    assert first is not None and module._compiled is first
    assert not any(k.startswith("_orig_mod") for k in module.state_dict())


@pytest.mark.slow
def test_bf16_mixed_trains_on_cpu(tiny_root, tmp_path):
    config = tiny_config(tiny_root, trainer={"max_steps": 2, "precision": "bf16-mixed",
                                              "limit_val_batches": 0})
    summary = fit(config, run_dir=tmp_path / "bf16")
    assert summary["global_step"] == 2


def test_loss_is_the_guides_weighted_per_task_formula():
    """Hand-built batch: 3 samples; velocity in samples 0 and 2, direction in sample 1 only."""
    module = NeuralDecoder("poyo_plus", tasks=["cursor_velocity_2d", "reach_direction"],
                           model_kwargs={"dim": 8, "depth": 1, "dim_head": 4, "self_heads": 1})
    vel_id = module.specs["cursor_velocity_2d"].id
    dir_id = module.specs["reach_direction"].id
    decoder = torch.tensor([[vel_id, vel_id, 0], [dir_id, 0, 0], [vel_id, dir_id, 0]])
    # sample 2 holds both tasks; 3 velocity queries (2 + 1), 2 direction queries (1 + 1)
    torch.manual_seed(0)
    output = {"cursor_velocity_2d": torch.randn(3, 2), "reach_direction": torch.randn(2, 8)}
    batch = {
        "model_inputs": {"output_decoder_index": decoder},
        "target_values": {"cursor_velocity_2d": torch.randn(3, 2), "reach_direction": torch.tensor([3, 5])},
        "target_weights": {"cursor_velocity_2d": torch.tensor([1.0, 2.0, 0.5]),
                           "reach_direction": torch.tensor([1.0, 1.0])},
        "session_id": ["a", "b", "c"],
    }
    loss, per_task = module._loss(batch, output)

    w = batch["target_weights"]["cursor_velocity_2d"]
    sq = ((output["cursor_velocity_2d"] - batch["target_values"]["cursor_velocity_2d"]) ** 2).mean(1)
    mse = float((w * sq).sum() / w.sum())
    logits, labels = output["reach_direction"], [3, 5]
    ce = float(np.mean([-torch.log_softmax(logits[i], 0)[labels[i]].item() for i in range(2)]))
    expected = (mse * 2 + ce * 2) / 3  # velocity in 2 samples, direction in 2 samples, batch of 3
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(per_task["cursor_velocity_2d"]) == pytest.approx(mse, rel=1e-5)


def test_eval_step_returns_predictions_in_original_units():
    from torch_brain.training import TargetNormalizer

    module = NeuralDecoder("poyo_plus", tasks=["cursor_velocity_2d"],
                           model_kwargs={"dim": 8, "depth": 1, "dim_head": 4, "self_heads": 1})
    module.normalizer = TargetNormalizer({"mode": "per_session", "tasks": {"cursor_velocity_2d": {
        "global": {"mean": [0.0, 0.0], "std": [1.0, 1.0]},
        "sessions": {"s0": {"mean": [10.0, -10.0], "std": [2.0, 4.0]}}}}})
    vel_id = module.specs["cursor_velocity_2d"].id
    z = torch.tensor([[1.0, 1.0], [0.0, -1.0], [2.0, 0.5]])  # standardised model outputs
    module.forward = lambda **inputs: {"cursor_velocity_2d": z}
    batch = {
        "model_inputs": {"output_decoder_index": torch.tensor([[vel_id, vel_id], [vel_id, 0]]),
                         "output_timestamps": torch.tensor([[0.1, 0.2], [0.1, 0.0]])},
        "target_values": {"cursor_velocity_2d": torch.zeros(3, 2)},
        "target_weights": {}, "eval_mask": {"cursor_velocity_2d": torch.ones(3, dtype=torch.bool)},
        "session_id": ["s0", "unseen"], "absolute_start": torch.tensor([5.0, 7.0], dtype=torch.float64),
    }
    module.log = lambda *args, **kwargs: None
    out = module.validation_step(batch, 0)
    torch.testing.assert_close(out.preds[0]["cursor_velocity_2d"], torch.tensor([[12.0, -6.0], [10.0, -14.0]]))
    torch.testing.assert_close(out.preds[1]["cursor_velocity_2d"], torch.tensor([[2.0, 0.5]]))  # global stats


def test_check_compatible_lists_every_difference_and_ignores_unrecorded_keys():
    from torch_brain.training import check_compatible

    saved = {"model": "poyo", "tasks": ["cursor_velocity_2d"], "model_kwargs": {"dim": 16}}
    current = {"model": "poyo_plus", "tasks": ["cursor_velocity_2d"], "model_kwargs": {"dim": 8},
               "sequence_length": 2.0}
    with pytest.raises(ValueError, match=r"^run/last.ckpt was trained with another model or task set:\n"
                                         r"  model: checkpoint 'poyo' vs this run 'poyo_plus'\n"
                                         r"  model_kwargs: checkpoint \{'dim': 16\} vs this run \{'dim': 8\}\n"
                                         r"Use the run's own config"):
        check_compatible(saved, current, source="run/last.ckpt")
    check_compatible({"tasks": ["cursor_velocity_2d"]}, current, source="x")  # sequence_length not recorded


def test_eval_loss_of_a_rank_without_windows_is_silent_and_not_logged(monkeypatch):
    """A rank that got no evaluation window joins the loss's collective compute without a
    torchmetrics warning, logs nothing, and the next epoch's mean is unaffected."""
    import warnings

    module = NeuralDecoder("poyo_plus", tasks=["cursor_velocity_2d"],
                           model_kwargs={"dim": 8, "depth": 1, "dim_head": 4, "self_heads": 1})
    logged = {}
    log = lambda name, value, **kw: logged.__setitem__(name, float(value))  # noqa: E731
    module.log = log
    def refuse(*args, **kwargs):
        raise AssertionError("library code changed the process's warning filters")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        monkeypatch.setattr(warnings, "filterwarnings", refuse)
        monkeypatch.setattr(warnings, "simplefilter", refuse)
        module._log_eval_loss("val")
        monkeypatch.undo()
    assert logged == {}
    # weighted mean of the next epoch: (1 * 2 + 3 * 4) / (2 + 4)
    module._eval_loss.update(torch.tensor(1.0), weight=2)
    module._eval_loss.update(torch.tensor(3.0), weight=4)
    module._log_eval_loss("val")
    assert logged == {"val_loss": pytest.approx(14 / 6)}
