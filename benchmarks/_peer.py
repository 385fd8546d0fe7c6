"""Run a workload on the peer: torch-brain 0.1.2 (with temporaldata 0.1.6) from PyPI.

The peer is also a package called ``torch_brain``, so it lives in its own virtualenv
(``.bench-venv/peer`` at the repository root), created on first use with torch pinned by
``constraints.txt``. Benchmarks call :func:`run_peer` with the source of a small script; the
script must print one JSON object on its last line of stdout, which is returned as a dict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / ".bench-venv" / "peer"
PEER_PACKAGES = ["torch==2.13.0", "torch-brain==0.1.2", "temporaldata==0.1.6"]

__all__ = ["PEER_VENV", "peer_python", "run_peer"]


def peer_python() -> Path:
    """Return the peer virtualenv's python, creating the virtualenv if needed."""
    py = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / ".installed"
    if not stamp.exists():
        print(f"[peer] creating {PEER_VENV} with {' '.join(PEER_PACKAGES)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), *PEER_PACKAGES],
            check=True,
        )
        stamp.touch()
    return py


def run_peer(source: str, *args: str, threads: int | None = None, timeout: float = 3600) -> dict:
    """Run ``source`` with the peer's python (never importing our torch_brain) and parse its JSON.

    Args:
        source: Python source of the workload; its last stdout line must be a JSON object.
        *args: command-line arguments passed to the script.
        threads: if given, sets OMP/MKL thread counts for the peer process.
        timeout: seconds before the peer run is killed.
    """
    py = peer_python()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "peer_workload.py"
        script.write_text(source)
        # cwd is the temp dir so that our checkout's torch_brain/ is not importable there
        out = subprocess.run(
            [str(py), str(script), *args], cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout
        )
    if out.returncode != 0:
        raise RuntimeError(f"peer workload failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    lines = [line for line in out.stdout.strip().splitlines() if line.strip()]
    return json.loads(lines[-1])
