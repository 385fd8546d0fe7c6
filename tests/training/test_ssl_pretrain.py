"""Pretraining on the user's path: SSLPretrainModule + plain Trainer, pretrain(), encoder -> POYO fine-tuning."""

import json

import lightning as L
import pytest
import torch

from torch_brain.training import SSLDataModule, SSLPretrainModule, load_ssl_config
from tests.training.tiny_synthetic import DATASET_CONFIG, HELDOUT_CONFIG, TINY_MODEL, tiny_config

ENCODER = {"name": "poyo", **TINY_MODEL}


def ssl_config(root, **sections):
    config = {
        "name": "tiny_ssl",
        "seed": 1,
        "data": {"root": str(root), "config": str(DATASET_CONFIG), "batch_size": 8},
        "encoder": dict(ENCODER),
        "ssl": {"name": "masked_spikes", "mask_ratio": 0.3, "bin_size": 0.05},
        "optimizer": {"name": "adamw", "lr": 3e-3},
        "trainer": {"max_steps": 24, "val_check_interval": 8, "steps_per_epoch": 8, "enable_progress_bar": False},
        "logging": {"quiet": True},
    }
    for key, value in sections.items():
        config.setdefault(key, {}).update(value)
    return config


@pytest.fixture(scope="module")
def ssl_run(tiny_root, tmp_path_factory):
    from torch_brain.training import pretrain

    # every unit starts at 5 Hz (rate_init constant): the loss must fall as the model learns the rates
    config = ssl_config(tiny_root, ssl={"rate_init": "constant"})
    run = tmp_path_factory.mktemp("ssl") / "run"
    summary = pretrain(config, run_dir=run)
    summary["initial"] = _validate(SSLPretrainModule(load_ssl_config(config)), tiny_root)
    return run, summary


def _validate(module, root):
    """val/loss and val/bits_per_spike of ``module`` on the tiny set's validation windows."""
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(module, datamodule=SSLDataModule.from_config(load_ssl_config(ssl_config(root))))
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_rate_init_starts_every_unit_at_its_mean_count_per_bin(tiny_root):
    """The untrained masked_spikes model predicts each unit's training mean rate (counted here by hand)."""
    import numpy as np

    module = SSLPretrainModule(load_ssl_config(ssl_config(tiny_root)))
    dm = SSLDataModule.from_config(load_ssl_config(ssl_config(tiny_root)))
    module.init_vocab(dm)
    module.init_objective(dm)
    obj, enc = module.objective, module.encoder
    ds = dm.train_dataset
    for rid, intervals in ds.get_sampling_intervals().items():
        counts, seconds = {}, 0.0
        for a, b in zip(intervals.start, intervals.end):  # window by window through the public API
            window = ds.get(rid, float(a), float(b))
            for u in np.asarray(window.units.id)[np.asarray(window.spikes.unit_index)]:
                counts[u] = counts.get(u, 0) + 1
            seconds += float(b - a)
        ids = list(ds.get_recording_data(rid).units.id)
        rows = torch.as_tensor(enc.unit_emb.tokenizer(ids))
        predicted = torch.exp(obj.head.bias + obj.unit_log_rate[rows]).detach().numpy()
        expected = np.array([max(counts.get(u, 0), 0.01 * seconds) * 0.05 / seconds for u in ids])
        np.testing.assert_allclose(predicted, expected, rtol=1e-5)
    # so the untrained model is about as good as the per-unit mean-rate model on the validation cells
    bits = _validate(module, tiny_root)["val/bits_per_spike"]
    constant = _validate(SSLPretrainModule(load_ssl_config(ssl_config(tiny_root), ["ssl.rate_init=constant"])),
                         tiny_root)["val/bits_per_spike"]
    assert -0.15 < bits < 0.0 and constant < bits - 0.1


class _Kill(L.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("simulated kill")


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["masked_spikes", "masked_signal"])
def test_resumed_pretraining_equals_the_uninterrupted_run(tiny_root, tmp_path, objective):
    """Killed mid-epoch, resumed from last.ckpt: the same windows, masks, dropout and weights."""
    from torch_brain.training import pretrain

    sections = {"trainer": {"max_steps": 8, "steps_per_epoch": 3, "val_check_interval": None,
                            "limit_val_batches": 2},
                "checkpoint": {"every_n_train_steps": 1},
                "encoder": {"ffn_dropout": 0.2}}
    if objective == "masked_signal":
        sections["encoder"] = {"name": "patch_transformer", "in_channels": 4, "patch_size": 25, "dim": 16,
                               "depth": 1, "heads": 2, "dropout": 0.2}
        sections["ssl"] = {"name": "masked_signal", "field": "lfp.signal"}
    config = ssl_config(tiny_root, **sections)
    if objective == "masked_signal":
        config["encoder"] = sections["encoder"]
        config["ssl"] = sections["ssl"]
    pretrain(config, run_dir=tmp_path / "straight")
    with pytest.raises(RuntimeError, match="simulated kill"):
        pretrain(config, run_dir=tmp_path / "killed", callbacks=[_Kill(5)])
    assert torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    pretrain(config, run_dir=tmp_path / "killed", resume=True)
    straight = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert straight["global_step"] == resumed["global_step"] == 8
    assert straight["state_dict"].keys() == resumed["state_dict"].keys()
    for key, value in straight["state_dict"].items():
        if torch.is_tensor(value):
            torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=0, msg=key)
        else:  # extra states (vocabularies)
            assert resumed["state_dict"][key] == value, key


def test_masked_count_loss_falls_and_run_dir_is_complete(ssl_run):
    run, summary = ssl_run
    history = json.loads((run / "history.json").read_text())
    # the untrained module's masked-count loss on the same validation windows vs after 24 steps
    losses = [e["metrics"]["val/loss"] for e in history]
    assert len(losses) == 3 and losses[-1] < summary["initial"]["val/loss"] - 0.02
    assert history[-1]["metrics"]["val/bits_per_spike"] > summary["initial"]["val/bits_per_spike"]
    for name in ("config.yaml", "encoder.pt", "summary.json", "checkpoints/last.ckpt", "logs/metrics.csv"):
        assert (run / name).is_file(), name
    assert summary["best_checkpoint"] and summary["global_step"] == 24
    logged = set(history[-1]["metrics"])
    assert {"train/loss_epoch", "train/bits_per_spike", "val/loss", "val/bits_per_spike", "lr"} <= logged


def test_module_with_a_plain_trainer_and_every_optimizer(tiny_root):
    """The user's path: SSLPretrainModule(config) + SSLDataModule + L.Trainer defaults."""
    from torch_brain.training import SSLDataModule, SSLPretrainModule

    for opt, sched in [("adam", "cosine"), ("sgd", "step"), ("lamb", "warmup_cosine"), ("adamw", "plateau")]:
        options = {"step_size": 2} if sched == "step" else {}
        module = SSLPretrainModule({"encoder": ENCODER, "ssl": {"name": "masked_spikes"},
                                    "optimizer": {"name": opt, "lr": 1e-3}, "scheduler": {"name": sched, **options}})
        dm = SSLDataModule(tiny_root, DATASET_CONFIG, batch_size=4)
        trainer = L.Trainer(max_steps=2, limit_val_batches=1, val_check_interval=2, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(module, datamodule=dm)
        assert trainer.global_step == 2
        assert "val/loss" in trainer.callback_metrics


def test_encoder_loads_into_poyo_and_poyo_plus(ssl_run):
    from torch_brain.models import POYO, POYOPlus
    from torch_brain.ssl import load_encoder, load_pretrained_encoder

    run, _ = ssl_run
    encoder = load_encoder(run / "encoder.pt")
    for model in (POYO.load_pretrained(run / "encoder.pt", readout_spec="cursor_velocity_2d"),
                  POYOPlus.load_pretrained(run / "encoder.pt", readout_specs=["cursor_velocity_2d", "reach_direction"]),
                  load_pretrained_encoder(run, "poyo")):
        state = model.state_dict()
        for key, value in encoder.state_dict().items():
            if not key.endswith("_extra_state"):
                assert torch.equal(state[key], value), key
        assert model.unit_emb.vocab == encoder.unit_emb.vocab


def test_frozen_encoder_trains_only_readout_and_embeddings(ssl_run):
    from torch_brain.ssl import load_pretrained_encoder

    model = load_pretrained_encoder(ssl_run[0] / "encoder.pt", "poyo", freeze=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"readout.weight", "readout.bias", "unit_emb.weight", "session_emb.weight"}


def test_finetune_from_the_encoder_on_a_new_session(ssl_run, tiny_root, tmp_path):
    from torch_brain.training import finetune

    config = tiny_config(tiny_root, data={"config": str(HELDOUT_CONFIG)},
                         finetune={"checkpoint": str(ssl_run[0] / "encoder.pt"), "skip_readout": True},
                         trainer={"max_steps": 3})
    summary = finetune(config, run_dir=tmp_path / "ft")
    assert summary["global_step"] == 3 and summary["new_sessions"]


def test_loading_an_encoder_of_another_kind_or_dim_is_refused(ssl_run, tmp_path):
    from torch_brain.models import POYO
    from torch_brain.ssl import create_encoder, save_encoder

    path = save_encoder(create_encoder("patch_transformer", in_channels=2), tmp_path / "signal.pt")
    with pytest.raises(ValueError, match="holds a 'patch_transformer' encoder; POYO loads only 'poyo' encoders"):
        POYO.load_pretrained(path)
    with pytest.raises(ValueError, match=r"do not match the POYO architecture"):
        POYO.load_pretrained(ssl_run[0] / "encoder.pt", dim=32)


def test_config_errors_name_the_fix(tiny_root):
    from torch_brain.training import SSLPretrainModule, load_ssl_config, pretrain

    with pytest.raises(ValueError, match="Unknown encoder 'transformer'. Valid encoders are: patch_transformer, poyo"):
        SSLPretrainModule({"encoder": {"name": "transformer"}, "ssl": {"name": "masked_spikes"}})
    with pytest.raises(ValueError, match="Unknown objective 'mae'. Valid objectives are: masked_signal, masked_spikes"):
        SSLPretrainModule({"encoder": {"name": "poyo"}, "ssl": {"name": "mae"}})
    with pytest.raises(ValueError, match=r"open interval \(0, 1\)"):
        SSLPretrainModule(load_ssl_config(ssl_config(tiny_root), ["ssl.mask_ratio=1.0"]))
    with pytest.raises(ValueError, match="Did you mean 'trainer.max_steps'"):
        load_ssl_config(ssl_config(tiny_root), ["trainer.max_step=3"])


def test_masked_signal_on_spikes_only_data_is_refused_before_training(tiny_root, tmp_path):
    from torch_brain.training import pretrain

    config = ssl_config(tiny_root)
    config["encoder"] = {"name": "patch_transformer", "in_channels": 4}
    config["ssl"] = {"name": "masked_signal", "field": "ecog.signal"}
    with pytest.raises(ValueError, match=r"needs a continuous signal data.ecog.signal"):
        pretrain(config, run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()  # refused before the run directory is written


def test_cli_pretrain_fast_and_resume(tiny_root, tmp_path, capsys):
    from torch_brain.cli import main

    args = ["pretrain", "configs/pretrain_poyo_synthetic.yaml", "--fast", f"data.root={tiny_root}",
            "encoder.dim=16", "encoder.depth=1", "encoder.dim_head=8", "encoder.self_heads=2",
            "encoder.latent_step=0.25", "encoder.num_latents_per_step=2", "trainer.enable_progress_bar=false",
            "--run-dir", str(tmp_path / "run")]
    assert main(args) == 0
    run = tmp_path / "run"
    assert (run / "encoder.pt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert json.loads((run / "summary.json").read_text())["global_step"] == 20
    assert main(args[:-2] + ["--run-dir", str(run)]) == 2  # exists: refused
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["trainer.max_steps=30", "--resume"]) == 0
    assert json.loads((run / "summary.json").read_text())["global_step"] == 30
    assert main(["pretrain", "configs/pretrain_poyo_synthetic.yaml", "encoder.name=transformr",
                 "--run-dir", str(tmp_path / "bad")]) == 2
    assert "Valid encoders are: patch_transformer, poyo" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before anything is written


def test_masked_signal_pretraining_on_the_synthetic_lfp(tiny_root, tmp_path):
    """The continuous-input path: lfp.signal windows, patch transformer, loss falls; also via the CLI."""
    from torch_brain.cli import main
    from torch_brain.ssl import load_encoder

    run = tmp_path / "signal"
    args = ["pretrain", "configs/pretrain_signal_synthetic.yaml", "--fast", f"data.root={tiny_root}", "encoder.dim=16",
            "encoder.depth=1", "trainer.max_steps=30", "trainer.enable_progress_bar=false", "--run-dir", str(run)]
    assert main(args) == 0
    history = json.loads((run / "history.json").read_text())
    first, last = history[0]["metrics"], history[-1]["metrics"]
    assert {"val/loss", "val/msm_loss", "val/stft_loss", "train/msm_loss"} <= set(last)
    assert last["val/loss"] < first["val/loss"]
    assert load_encoder(run).kind == "patch_transformer"


def _encoder_weights(state, prefix=""):
    """The encoder's weights in a state dict (without the unit/session tables, which grow on new ids)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and torch.is_tensor(v)
            and not k[len(prefix):].startswith(("unit_emb", "session_emb", "readout", "task_emb"))}


@pytest.mark.parametrize("finetune_options, frozen_at_end", [
    ({"freeze_encoder": True}, True),
    ({"freeze_encoder_steps": 2}, False),
])
def test_finetune_with_a_frozen_encoder(ssl_run, tiny_root, tmp_path, finetune_options, frozen_at_end):
    from torch_brain.training import finetune

    encoder = torch.load(ssl_run[0] / "encoder.pt", weights_only=True)["state_dict"]
    config = tiny_config(tiny_root, data={"config": str(HELDOUT_CONFIG)},
                         finetune={"checkpoint": str(ssl_run[0] / "encoder.pt"), **finetune_options},
                         trainer={"max_steps": 3})
    summary = finetune(config, run_dir=tmp_path / "ft")
    state = torch.load(tmp_path / "ft" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    tuned = _encoder_weights(state, "model.")
    reference = _encoder_weights(encoder)
    assert tuned.keys() == reference.keys() and len(reference) > 10
    same = [torch.equal(tuned[k], reference[k]) for k in reference]
    assert all(same) if frozen_at_end else not any(same)
    assert summary["frozen_encoder_steps"] == ("all" if frozen_at_end else 2)
    if not frozen_at_end:  # the frozen first phase ran (its own checkpoints) before the 3 full steps
        phase = torch.load(tmp_path / "ft" / "checkpoints" / "frozen_encoder" / "last.ckpt", weights_only=True)
        assert phase["global_step"] == 2 and summary["global_step"] == 3
        first = _encoder_weights(phase["state_dict"], "model.")
        assert all(torch.equal(first[k], reference[k]) for k in reference)  # frozen in the first phase


def test_encoder_learning_rate_scale_makes_two_parameter_groups(ssl_run):
    from torch_brain.ssl import load_pretrained_encoder
    from torch_brain.training import NeuralDecoder

    model = load_pretrained_encoder(ssl_run[0], "poyo", readout_spec="cursor_velocity_2d")
    module = NeuralDecoder(model, optimizer={"name": "adamw", "lr": 1e-3}, encoder_lr_scale=0.1)
    groups = module.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-4])
    names = {id(p): n for n, p in model.named_parameters()}
    new = sorted(names[id(p)].split(".")[0] for p in groups[0]["params"])
    assert set(new) == {"readout", "unit_emb", "session_emb"}
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))
    assert all(not names[id(p)].startswith(("readout", "unit_emb", "session_emb")) for p in groups[1]["params"])


@pytest.mark.parametrize("option, match", [
    ({"freeze_encoder_steps": -1}, "finetune.freeze_encoder_steps must be an int >= 0"),
    ({"encoder_lr_scale": 0}, "finetune.encoder_lr_scale must be a number > 0"),
    ({"freeze_encoder": True, "freeze_encoder_steps": 5}, "set one of the two"),
])
def test_bad_freeze_options_are_refused_before_writing(ssl_run, tiny_root, tmp_path, option, match):
    from torch_brain.training import finetune

    config = tiny_config(tiny_root, finetune={"checkpoint": str(ssl_run[0] / "encoder.pt"), **option})
    config["data"]["config"] = str(HELDOUT_CONFIG)
    with pytest.raises(ValueError, match=match):
        finetune(config, run_dir=tmp_path / "ft")
    assert not (tmp_path / "ft").exists()


def test_ddp_validation_with_fewer_windows_than_processes_is_refused(tiny_root):
    """A process without a validation window would hang the others: every rank refuses alike."""
    from types import SimpleNamespace

    from torch_brain.data.sampler import SequentialFixedWindowSampler
    from torch_brain.training import SSLDataModule, SSLPretrainModule

    module = SSLPretrainModule({"encoder": ENCODER, "ssl": {"name": "masked_spikes"},
                                "optimizer": {"name": "adamw", "lr": 1e-3}})
    dm = SSLDataModule(tiny_root, DATASET_CONFIG, batch_size=4)
    dm.setup("fit")
    dm.objective = module.objective
    n = len(SequentialFixedWindowSampler(dm.val_dataset.get_sampling_intervals(), dm.window_length,
                                         step=dm.window_length, drop_short=True))
    assert n >= 1
    dm.trainer = SimpleNamespace(world_size=n, global_rank=n - 1)
    assert len(list(iter(dm.val_dataloader().sampler))) >= 1  # n processes: one window each at least
    for rank in (0, n):
        dm.trainer = SimpleNamespace(world_size=n + 1, global_rank=rank)
        with pytest.raises(ValueError, match=f"{n} window.*{n + 1} processes"):
            dm.val_dataloader()
