"""``torch-brain fit`` killed with SIGKILL and started again with ``--resume`` ends with exactly the
weights of the uninterrupted run (CPU), and ``last.ckpt`` is loadable after every kill.

Each run is a real ``python -m torch_brain.cli`` process. One test kills at seeded random moments
(timed against the uninterrupted run); the other kills halfway through writing a checkpoint
(``_kill_driver.py`` replaces ``torch.save`` in the child process).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.training.tiny_synthetic import tiny_config

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("_kill_driver.py")
MAX_STEPS = 12


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def config_file(tiny_root, tmp_path_factory):
    # mid-epoch kills (4 batches an epoch), validation at epoch ends, dropout on: the resumed run
    # must restore optimiser, schedule, sampler position and every RNG
    config = tiny_config(
        tiny_root,
        trainer={"max_steps": MAX_STEPS, "steps_per_epoch": 4},
        checkpoint={"every_n_train_steps": 1},
        data={"unit_dropout": {"min_units": 4, "mode_units": 8, "max_units": 12}},
        model={"ffn_dropout": 0.2, "lin_dropout": 0.2},
        logging={"quiet": True, "tensorboard": False, "plots": False},
    )
    path = tmp_path_factory.mktemp("kill_resume") / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def straight(config_file):
    """The uninterrupted run: (run directory, seconds from its first last.ckpt to its end)."""
    run = config_file.parent / "straight"
    proc = _fit(config_file, "--run-dir", run)
    first = _wait_for_checkpoint(proc, run)
    _finish(proc)
    return run, time.monotonic() - first


def _fit(*args: str | Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "torch_brain.cli", "fit", *map(str, args)],
                            cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]


def _last(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def _assert_same_weights(run: Path, reference: Path) -> None:
    got, want = _last(run), _last(reference)
    assert got["global_step"] == want["global_step"] == MAX_STEPS
    assert got["state_dict"].keys() == want["state_dict"].keys()
    for key, value in want["state_dict"].items():
        if torch.is_tensor(value):
            torch.testing.assert_close(got["state_dict"][key], value, rtol=0, atol=0, msg=key)


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns if path.is_file() else -1


def _wait_for_checkpoint(proc: subprocess.Popen, run: Path, old: int = -1) -> float:
    """Waits until the process has written a last.ckpt newer than ``old`` (or has ended)."""
    while _mtime(run / "checkpoints" / "last.ckpt") == old and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() in (None, 0), proc.communicate()[1].decode()[-3000:]
    return time.monotonic()


@pytest.mark.slow
def _kill_twice(config_file: Path, run: Path, rng: random.Random, span: float) -> list[int]:
    """Starts a run, SIGKILLs it at up to two random moments (each within ``span`` seconds after the
    process wrote a checkpoint), resumes it each time, and returns the step of every kill."""
    proc = _fit(config_file, "--run-dir", run)
    steps = []
    for _ in range(2):
        _wait_for_checkpoint(proc, run, _mtime(run / "checkpoints" / "last.ckpt"))
        time.sleep(rng.uniform(0.0, span))
        if proc.poll() is not None:  # finished before the kill
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        steps.append(_last(run)["global_step"])  # last.ckpt loads after every kill
        proc = _fit("--resume", "--run-dir", run)
    _finish(proc)
    return steps


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(config_file, straight, tmp_path):
    reference, train_seconds = straight
    rng = random.Random(13)
    for attempt in range(3):  # a loaded machine can finish a run before the first kill: try sooner
        run = tmp_path / f"killed_{attempt}"
        steps = _kill_twice(config_file, run, rng, 0.6 * train_seconds / 2**attempt)
        if steps:
            break
    print(f"killed at steps {steps} (attempt {attempt})")
    assert steps and all(0 < s <= MAX_STEPS for s in steps), steps
    _assert_same_weights(run, reference)
    assert not list((run / "checkpoints").glob(".*.tmp"))  # no half-written leftovers


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_then_resume(config_file, straight, tmp_path):
    run = tmp_path / "killed"
    # saves 1..12 are the per-step last.ckpt (+ epoch-end ones): kill inside one mid-run
    save = random.Random(5).randint(3, 9)
    proc = subprocess.run([sys.executable, str(DRIVER), str(save), "fit", str(config_file), "--run-dir", str(run)],
                          cwd=REPO, env=_env(), capture_output=True, timeout=300)
    # the driver sends SIGKILL only from inside torch.save, after writing half the file
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]
    step = _last(run)["global_step"]  # the previous checkpoint, intact and loadable
    assert 0 < step < MAX_STEPS
    _finish(_fit("--resume", "--run-dir", run))
    _assert_same_weights(run, straight[0])
    assert not list((run / "checkpoints").glob(".*.tmp"))
