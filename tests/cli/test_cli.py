"""``torch-brain`` end to end on a tiny synthetic set: fit, validate, test, finetune, baseline."""

import json

import pytest
import yaml

from torch_brain.cli import main
from tests.training.tiny_synthetic import HELDOUT_CONFIG, tiny_config


@pytest.fixture()
def config_file(tiny_root, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tiny_root)))
    return path


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("prepare", "fit", "validate", "test", "finetune", "baseline"):
        assert command in out


@pytest.mark.slow
def test_fit_validate_test_finetune_baseline(config_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", str(config_file), "trainer.max_steps=4", "--run-dir", str(run)]) == 0
    for name in ("config.yaml", "history.json", "summary.json", "logs/metrics.csv",
                 "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    history = json.loads((run / "history.json").read_text())
    assert history and "average_val_metric" in history[-1]["metrics"]
    assert any(k.endswith("/val") for k in history[-1]["metrics"])  # per-session table
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_steps"] == 4

    # a second fit into the same directory is refused; --resume continues it
    assert main(["fit", str(config_file), "--run-dir", str(run)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["fit", str(config_file), "trainer.max_steps=6", "--run-dir", str(run), "--resume"]) == 0
    assert json.loads((run / "summary.json").read_text())["global_step"] == 6
    history = json.loads((run / "history.json").read_text())
    assert [e["step"] for e in history] == [4, 6]  # the resumed run appends to the history

    assert main(["validate", str(run)]) == 0
    assert main(["test", str(run), "--checkpoint", "last"]) == 0
    result = json.loads((run / "metrics_test.json").read_text())
    assert set(result["sessions"]) == {"synthetic_reaching/session_00", "synthetic_reaching/session_01"}
    assert result["average"] is not None
    assert list((run / "plots" / "test").glob("*.png"))
    out = capsys.readouterr().out
    assert "synthetic_reaching/session_00" in out

    ft = tmp_path / "ft"
    assert main(["finetune", str(config_file), f"data.config={HELDOUT_CONFIG}",
                 "finetune.unit_identification_steps=2", "trainer.max_steps=3",
                 "--checkpoint", str(run / "checkpoints" / "last.ckpt"), "--run-dir", str(ft)]) == 0
    summary = json.loads((ft / "summary.json").read_text())
    assert summary["new_sessions"] == ["synthetic_reaching/heldout"] and summary["new_units"] == 12
    assert main(["test", str(ft)]) == 0
    assert set(json.loads((ft / "metrics_test.json").read_text())["sessions"]) == {"synthetic_reaching/heldout"}

    base = tmp_path / "ridge"
    assert main(["baseline", str(config_file), "baseline.lags=2", "--run-dir", str(base)]) == 0
    metrics = json.loads((base / "metrics.json").read_text())
    assert metrics["baseline"] == "ridge" and metrics["test"]["average"] is not None


@pytest.mark.parametrize(
    "args, message",
    [
        (["trainer.max_step=3"], "Did you mean 'trainer.max_steps'"),
        (["optimizer.name=lambb"], "Unknown optimizer 'lambb'. Valid optimizers are: adam, adamw, lamb, sgd, sparse_lamb"),
        (["scheduler.name=cosin"], "Unknown schedule 'cosin'"),
        (["model.name=poyoplus"], "Unknown model 'poyoplus'. Valid models are: poyo, poyo_plus"),
        (["model.dimm=3"], "model 'poyo_plus' has no option 'dimm'. Did you mean 'dim'"),
        (["data.tasks=[cursor_velocity_3d]", "data.config=null"], "unknown task"),
    ],
)
def test_bad_input_is_reported(config_file, tmp_path, capsys, args, message):
    assert main(["fit", str(config_file), *args, "--run-dir", str(tmp_path / "r"),
                 "trainer.max_steps=1", "trainer.limit_val_batches=0"]) == 2
    assert message in capsys.readouterr().err


def test_resume_without_checkpoint_and_missing_config(tmp_path, config_file, capsys):
    assert main(["fit", str(config_file), "--run-dir", str(tmp_path / "none"), "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_single_task_poyo_fit_and_test(tiny_root, tmp_path):
    config = tiny_config(tiny_root, model={"name": "poyo"}, data={"config": [{
        "selection": [{"brainset": "synthetic_reaching", "exclude_sessions": ["heldout"]}],
        "config": {"multitask_readout": [{"readout_id": "cursor_velocity_2d", "metrics": ["r2", "mse"]}]},
    }]})
    path = tmp_path / "poyo.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "poyo"
    assert main(["fit", str(path), "trainer.max_steps=3", "--run-dir", str(run)]) == 0
    assert main(["test", str(run)]) == 0
    sessions = json.loads((run / "metrics_test.json").read_text())["sessions"]
    assert set(sessions["synthetic_reaching/session_01"]["cursor_velocity_2d"]) == {"r2", "mse"}


@pytest.mark.slow
def test_testing_on_unseen_sessions_is_refused(config_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", str(config_file), "trainer.max_steps=1", "trainer.limit_val_batches=0",
                 "--run-dir", str(run)]) == 0
    assert main(["test", str(run), f"data.config={HELDOUT_CONFIG}"]) == 2
    assert "was not trained on, e.g. ['synthetic_reaching/heldout']; fine-tune" in capsys.readouterr().err


def test_prepare_delegates_to_brainsets(tmp_path, capsys):
    args = ["prepare", "synthetic_reaching", "--root", str(tmp_path), "--n-sessions", "1",
            "--n-subjects", "1", "--minutes", "0.5", "--n-units", "4", "--held-out", "false",
            "--no-progress"]
    assert main(args) == 0
    assert (tmp_path / "synthetic_reaching" / "session_00.h5").is_file()
    assert "wrote 1 file(s)" in capsys.readouterr().out
    assert main(args) == 2  # existing files are not replaced without --overwrite
    assert "torch-brain prepare: error:" in capsys.readouterr().err


def test_finetune_from_a_torch_brain_0_1_2_checkpoint(config_file, tmp_path):
    """`torch-brain finetune --checkpoint` takes a checkpoint written by torch_brain 0.1.2."""
    from pathlib import Path

    from torch_brain.models import POYOPlus

    legacy = Path(__file__).parents[1] / "models" / "data" / "poyo_plus_0_1_2.ckpt"
    ft = tmp_path / "ft"
    assert main(["finetune", str(config_file), "trainer.max_steps=2", "--checkpoint", str(legacy),
                 "--run-dir", str(ft)]) == 0
    summary = json.loads((ft / "summary.json").read_text())
    assert summary["pretrained"] == str(legacy) and summary["new_units"] == 24
    # the fine-tuned model keeps the 0.1.2 architecture and vocabulary (plus the new ids)
    model = POYOPlus.load_pretrained(ft / "checkpoints" / "last.ckpt")
    assert model.dim == 8 and model.dim_head == 16 and len(model.rotary_periods) == 4
    assert list(model.unit_emb.vocab)[:3] == ["200", "201", "202"]
