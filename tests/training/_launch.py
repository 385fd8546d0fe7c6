"""Start a script the way a user starts a DDP run (``python script.py``: Lightning's launcher
starts the other ranks), once per process count and all at once, and read each rank's report."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# set by a surrounding launcher; a user's fresh shell has none of them
_LAUNCH_VARS = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
                "PL_GLOBAL_SEED", "PL_TRAINER_GPUS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranked(script: Path, tiny_root: Path, tmp_path_factory, processes: tuple[int, ...], timeout_s: int,
               extra_env: dict[str, str], prefix: str) -> dict[int, list[dict]]:
    """{N: [report of rank 0, ..., rank N-1]}: ``script tiny_root out N`` run with N processes, each
    rank writing ``out/rank<r>.json``; a run that does not end within ``timeout_s`` is killed (a hang)."""
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCH_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra_env)
    procs = {}
    for n in processes:
        out = tmp_path_factory.mktemp(f"{prefix}{n}")
        log = open(out / "log.txt", "w")
        procs[n] = (out, log, subprocess.Popen(
            [sys.executable, str(script), str(tiny_root), str(out), str(n)], cwd=out, stdout=log,
            stderr=subprocess.STDOUT, env={**env, "MASTER_PORT": str(free_port())}, start_new_session=True))
    deadline = time.monotonic() + timeout_s
    failures = []
    for n, (out, log, proc) in procs.items():
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started: the script and its ranks
            proc.wait()
        log.close()
        if proc.returncode != 0 or not all((out / f"rank{r}.json").exists() for r in range(n)):
            tail = (out / "log.txt").read_text()[-3000:]
            failures.append(f"{n} process(es): exit code {proc.returncode} (killed after {timeout_s} s if "
                            f"-9: a hang)\n{tail}")
    if failures:
        pytest.fail("\n\n".join(failures))
    return {n: [json.loads((out / f"rank{r}.json").read_text()) for r in range(n)]
            for n, (out, _, _) in procs.items()}


def run_cli(args: list[str], cwd: Path, timeout_s: int = 400) -> str:
    """``python -m torch_brain.cli ARGS`` as a user runs it (Lightning's launcher starts the other
    ranks); returns its output, failing the test on a non-zero exit or a hang (killed after
    ``timeout_s``)."""
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCH_VARS}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               OMP_NUM_THREADS="1", MASTER_PORT=str(free_port()))
    proc = subprocess.Popen([sys.executable, "-m", "torch_brain.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this test started: the CLI and its other ranks
        log, _ = proc.communicate()
        pytest.fail(f"torch-brain {' '.join(args)} did not finish in {timeout_s} s (hang)\n{log[-3000:]}")
    assert proc.returncode == 0, log[-3000:]
    return log
