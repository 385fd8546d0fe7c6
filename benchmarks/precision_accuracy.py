"""Stitched test accuracy of the synthetic recipe after the same number of steps in fp32 and in
bf16-mixed on CPU (issue 21): must stay within 0.01 R² of float32.

Runs ``torch_brain.training.fit`` then ``evaluate`` (test split, last checkpoint) on the recipe
``configs/poyo_plus_synthetic.yaml`` twice in one process, same seed, only ``trainer.precision``
differing; validation is off during training (the comparison is of the final weights). The
prepared set is made with ``torch-brain prepare synthetic_reaching --root ROOT``.

Usage:
    .venv/bin/python benchmarks/precision_accuracy.py --root data/processed [--steps 100] [--threads 2]

Prints one JSON object: per precision the test R² (mean over sessions), reach accuracy, average
metric, wall seconds and train steps/s, and the load average before and after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from torch_brain.training import evaluate, fit, load_config

ROOT = Path(__file__).resolve().parents[1]


def _run(config: dict, precision: str, run_dir: Path) -> dict:
    cfg = json.loads(json.dumps(config))
    cfg["trainer"]["precision"] = precision
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    res = fit(cfg, run_dir=run_dir)
    fit_s = time.perf_counter() - t0
    out = evaluate(run_dir, checkpoint=res["last_checkpoint"], stage="test")
    per_task: dict[str, list[float]] = {}
    for tasks in out["sessions"].values():
        for task, metrics in tasks.items():
            per_task.setdefault(task, []).extend(metrics.values())
    return {
        "precision": precision, "steps": res["global_step"], "fit_s": fit_s,
        "steps_per_s": res["global_step"] / fit_s,
        "test_mean": {task: sum(v) / len(v) for task, v in per_task.items()},
        "test_average": out["average"], "test_loss": out["loss"], "sessions": out["sessions"],
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder holding the prepared synthetic_reaching/")
    parser.add_argument("--steps", type=int, default=100, help="optimiser steps of each run")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (set here, in the application)")
    parser.add_argument("--config", default=str(ROOT / "configs" / "poyo_plus_synthetic.yaml"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    config["data"]["root"] = args.root
    config["data"]["config"] = str(ROOT / "configs" / "datasets" / "synthetic_reaching.yaml")
    config["trainer"].update(max_steps=args.steps, limit_val_batches=0, enable_progress_bar=False)
    config["checkpoint"].update(every_n_train_steps=None, save_top_k=0)
    config.setdefault("logging", {}).update(quiet=True, tensorboard=False)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("32", "bf16-mixed"):
            runs[precision] = _run(config, precision, Path(tmp) / precision.replace("-", "_"))
    fp32, bf16 = runs["32"], runs["bf16-mixed"]
    print(json.dumps({
        "benchmark": "precision_accuracy", "config": args.config, "steps": args.steps, "threads": args.threads,
        "fp32": fp32, "bf16_mixed": bf16,
        "r2_diff_bf16_minus_fp32": {t: bf16["test_mean"][t] - fp32["test_mean"][t] for t in fp32["test_mean"]},
        "fit_speed_bf16_over_fp32": bf16["steps_per_s"] / fp32["steps_per_s"],
    }))


if __name__ == "__main__":
    main()
