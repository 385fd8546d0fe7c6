"""Stitched test R² after the same steps: our AdamW recipe, our SparseLamb, the reference's SparseLamb.

Issue 13: the user guide's optimiser is ``SparseLamb(lr=4e-3, weight_decay=1e-4)`` with a linear
warm-up over 10 % of the steps then cosine. This benchmark trains the demo's model and data
(``torch_brain.cli.demo.demo_config``: POYO+ dim 64, depth 2, latent step 0.125 s, 16 latents
per step, batch 32, synthetic reaching set of 4 sessions, gradient clip 1.0, targets standardised
per session) for the same number of steps with three optimisers, and tests each run on the test
split (stitched windows, ``torch_brain.training.evaluate``):

- ``adamw``: our default recipe, AdamW lr 2e-3, weight decay 1e-4;
- ``sparse_lamb``: ``torch_brain.optim.SparseLamb`` with the guide's recipe (lr 4e-3, weight decay
  1e-4, its defaults otherwise);
- ``reference_sparse_lamb``: torch-brain 0.1.2's ``SparseLamb`` with the same arguments, loaded
  from the peer virtualenv (``.bench-venv/peer``, see ``_peer.py``) by file path and run unchanged
  inside our training loop, so that the optimiser is the only difference.

Every (arm, seed) runs in its own process (``--jobs`` at a time, ``--threads`` torch threads each).
Prints one JSON line per run as it ends, then one JSON object with all runs, the mean test
velocity R² per arm and the wall times.

    .venv/bin/python benchmarks/accuracy_optimizers.py                          # 600 steps, seeds 0,1
    .venv/bin/python benchmarks/accuracy_optimizers.py --steps 100 --seeds 0 --jobs 3
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("adamw", "sparse_lamb", "reference_sparse_lamb")
# the figures for the reference after 600 steps (seeds 0 and 1): 0.73, 0.55
TARGET_MEAN_R2 = 0.64


def _reference_sparse_lamb() -> type:
    """torch-brain 0.1.2's SparseLamb class, loaded from the peer virtualenv's file."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _peer import peer_python

    py = peer_python()
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    spec = importlib.util.spec_from_file_location("_reference_optim", Path(site) / "torch_brain" / "optim.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SparseLamb


def _mean(sessions: dict, task: str) -> float:
    vals = [next(iter(t[task].values())) for t in sessions.values() if task in t]
    return float(sum(vals) / len(vals))


def _worker(arm: str, seed: int, steps: int, threads: int, data: Path, out: Path) -> dict:
    import torch

    from torch_brain.brainsets import prepare
    from torch_brain.cli.demo import demo_config
    from torch_brain.training import evaluate, fit
    from torch_brain.training import optim as training_optim

    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not (data / "synthetic_reaching").is_dir():
        prepare("synthetic_reaching", data, progress=False)
    cfg = demo_config(data, seed=seed)
    cfg["trainer"]["max_steps"] = steps
    cfg["trainer"]["enable_progress_bar"] = False
    cfg["logging"]["plots"] = False
    if arm != "adamw":
        if arm == "reference_sparse_lamb":  # registered for this process only
            register = getattr(training_optim, "register_optimizer", None)
            if register is not None:
                register(arm, _reference_sparse_lamb())
            else:  # before the public registry: its private table
                training_optim._OPTIMIZERS[arm] = (_reference_sparse_lamb, {})
        cfg["optimizer"] = {"name": arm, "lr": 4e-3, "weight_decay": 1e-4}
    run_dir = out / f"{arm}_seed{seed}"
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        fit(cfg, run_dir=run_dir, overwrite=True)
    fit_s = time.perf_counter() - t0
    with contextlib.redirect_stdout(io.StringIO()):
        res = evaluate(run_dir, stage="test")
    return {"arm": arm, "seed": seed, "steps": steps, "optimizer": cfg["optimizer"],
            "r2": round(_mean(res["sessions"], "cursor_velocity_2d"), 4),
            "acc": round(_mean(res["sessions"], "reach_direction"), 4),
            "fit_wall_s": round(fit_s, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one process each)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--data", default="runs/bench_synthetic_data",
                        help="prepared data (default synthetic set: 4 sessions x 10 min, seed 0)")
    parser.add_argument("--out", default="runs/bench_accuracy_optimizers")
    parser.add_argument("--worker", nargs=2, metavar=("ARM", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        arm, seed = args.worker[0], int(args.worker[1])
        result = _worker(arm, seed, args.steps, args.threads, Path(args.data), Path(args.out))
        print(json.dumps(result), flush=True)
        return result

    arms = [a for a in args.arms.split(",") if a]
    for arm in arms:
        if arm not in ARMS:
            raise ValueError(f"--arms: unknown arm {arm!r}; expected some of {', '.join(ARMS)}.")
    seeds = [int(s) for s in args.seeds.split(",")]
    todo = [(arm, seed) for seed in seeds for arm in arms]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    base = [sys.executable, str(Path(__file__).resolve()), "--steps", str(args.steps), "--threads",
            str(args.threads), "--data", args.data, "--out", args.out]
    t0 = time.perf_counter()
    running: list[subprocess.Popen] = []
    runs: list[dict] = []

    def reap(block: bool) -> None:
        for proc in list(running):
            if block or proc.poll() is not None:
                stdout, stderr = proc.communicate()
                running.remove(proc)
                if proc.returncode != 0:
                    raise RuntimeError(f"run {proc.args[-2:]} failed:\n{stderr[-4000:]}")
                runs.append(json.loads(stdout.strip().splitlines()[-1]))
                print(json.dumps(runs[-1]), flush=True)
                return

    for arm, seed in todo:
        while len(running) >= args.jobs:
            reap(block=False)
            time.sleep(1.0)
        running.append(subprocess.Popen([*base, "--worker", arm, str(seed)], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    while running:
        reap(block=True)
    by_arm = {arm: [r for r in runs if r["arm"] == arm] for arm in arms}
    result = {
        "benchmark": "accuracy_optimizers", "steps": args.steps, "seeds": seeds, "jobs": args.jobs,
        "threads": args.threads, "wall_s": round(time.perf_counter() - t0, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "mean_r2": {arm: round(sum(r["r2"] for r in rs) / len(rs), 4) for arm, rs in by_arm.items()},
        "target_mean_r2_sparse_lamb": TARGET_MEAN_R2,
        "runs": sorted(runs, key=lambda r: (r["arm"], r["seed"])),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
