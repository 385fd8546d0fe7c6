"""``torch-brain fit`` on two processes with Lightning's defaults (issue 13).

The runner used to pass ``use_distributed_sampler=False`` to hide that Lightning re-split the
stitching sampler; it no longer does. Lightning's launcher starts rank 1 by running the same
command again, so the run directory is prepared by rank 0 only. The validation that the
two-process run logs at its last step must equal a one-process evaluation of its last checkpoint.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.training._launch import run_cli
from tests.training.tiny_synthetic import tiny_config



@pytest.mark.slow
def test_cli_fit_on_two_processes_validates_every_window(tiny_root, tmp_path):
    config = tiny_config(tiny_root, trainer={"devices": 2, "accelerator": "cpu"})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    log = run_cli(["fit", str(tmp_path / "run.yaml"), "--run-dir", str(run_dir)], cwd=tmp_path)
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log  # really two processes

    history = json.loads((run_dir / "history.json").read_text())
    last = history[-1]
    assert last["step"] == config["trainer"]["max_steps"]

    from torch_brain.training import evaluate

    single = evaluate(run_dir, ["trainer.devices=1"], stage="validate", checkpoint="last")
    assert single["average"] == pytest.approx(last["metrics"]["average_val_metric"], abs=1e-6)
    per_session = {k: v for k, v in single["metrics"].items() if k.endswith("/val") and k.count("/") == 4}
    assert len(per_session) == 4  # two sessions x two tasks
    for key, value in per_session.items():
        assert last["metrics"][key] == pytest.approx(value, abs=1e-6), key


def test_runner_trainer_keeps_lightnings_distributed_sampler_default(tiny_root, tmp_path):
    import torchmetrics

    from torch_brain.training.runner import build_trainer, resolve_config

    metrics = {"synthetic_reaching/session_00": {"cursor_velocity_2d": torchmetrics.R2Score()}}
    trainer = build_trainer(resolve_config(tiny_config(tiny_root), []), tmp_path, metrics=metrics)
    assert trainer._accelerator_connector.use_distributed_sampler is True
