"""``torch-brain fit`` on two processes with Lightning's defaults (issue 13).

The runner used to pass ``use_distributed_sampler=False`` to hide that Lightning re-split the
stitching sampler; it no longer does. Lightning's launcher starts rank 1 by running the same
command again, so the run directory is prepared by rank 0 only. The validation that the
two-process run logs at its last step must equal a one-process evaluation of its last checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.training.tiny_synthetic import tiny_config

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_cli_fit_on_two_processes_validates_every_window(tiny_root, tmp_path):
    config = tiny_config(tiny_root, trainer={"devices": 2, "accelerator": "cpu"})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items()
           if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "PL_GLOBAL_SEED")}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               OMP_NUM_THREADS="1", MASTER_PORT=str(_free_port()))
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "torch_brain.cli", "fit", str(tmp_path / "run.yaml"),
                             "--run-dir", str(run_dir)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this test started: the CLI and its rank 1
        log, _ = proc.communicate()
        pytest.fail(f"two-process fit did not finish in 400 s (hang)\n{log[-3000:]}")
    assert proc.returncode == 0, log[-3000:]
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
