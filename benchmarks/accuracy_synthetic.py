"""Accuracy of POYO+ on the synthetic reaching set against training wall time, beside ridge.

Trains POYO+ on cursor velocity + reach direction with the demo's recipe (``torch_brain.cli.demo``;
any key can be overridden with ``--set section.key=value``), saves a checkpoint at chosen steps
while recording the training wall time spent up to that step (checkpoint writing excluded), then
tests every checkpoint on the test split with stitched windows (``torch_brain.training.evaluate``)
and fits the ridge baseline on the same split (``torch_brain.baselines.run_baseline``).

Prints one JSON object: the curve ``[{step, train_s, r2, acc}]``, ridge's figures, the first
training time at which the mean velocity R² reached 0.73 (the reference's figure after 600 steps
/ 412 s, issue 7), and the margin over ridge at the end.

    .venv/bin/python benchmarks/accuracy_synthetic.py                        # the demo recipe
    .venv/bin/python benchmarks/accuracy_synthetic.py --steps 600 --set data.batch_size=64
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import time
import warnings
from pathlib import Path

import lightning as L
import torch

REFERENCE_R2 = 0.73  # torch-brain 0.1.2 after 600 steps (412 s on 2 cores), issue 7


class _Snapshots(L.Callback):
    """Saves a checkpoint after the given global steps; records training time up to each."""

    def __init__(self, steps: list[int], folder: Path) -> None:
        self.steps, self.folder = set(steps), folder
        self.t0 = 0.0
        self.excluded = 0.0
        self.saved: list[dict] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step in self.steps and not any(s["step"] == step for s in self.saved):
            train_s = time.perf_counter() - self.t0 - self.excluded
            t = time.perf_counter()
            path = self.folder / f"step{step:05d}.ckpt"
            trainer.save_checkpoint(path)
            self.excluded += time.perf_counter() - t
            self.saved.append({"step": step, "train_s": round(train_s, 1), "path": str(path)})


def _mean(sessions: dict, task: str) -> float:
    vals = [next(iter(t[task].values())) for t in sessions.values() if task in t]
    return float(sum(vals) / len(vals))


def main(argv: list[str] | None = None) -> dict:
    from torch_brain.baselines import run_baseline
    from torch_brain.brainsets import prepare
    from torch_brain.cli.demo import demo_config
    from torch_brain.training import apply_overrides, evaluate, fit

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the demo's)")
    parser.add_argument("--eval-at", default=None,
                        help="comma-separated steps to test at (default: 5 evenly spaced + the end)")
    parser.add_argument("--set", nargs="*", default=[], help="dotted config overrides")
    parser.add_argument("--data", default="runs/bench_synthetic_data",
                        help="prepared data (default synthetic set: 4 sessions x 10 min, seed 0)")
    parser.add_argument("--out", default="runs/bench_accuracy_synthetic")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-ridge", action="store_true")
    parser.add_argument("--velocity-weight", type=float, default=1.0,
                        help="multiply the cursor-velocity sample weights (task balance)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    root = Path(args.data)
    if not (root / "synthetic_reaching").is_dir():
        prepare("synthetic_reaching", root, progress=False)
    cfg = demo_config(root)
    if args.steps:
        cfg["trainer"]["max_steps"] = args.steps
    cfg["trainer"]["enable_progress_bar"] = False
    cfg["logging"]["plots"] = False
    cfg = apply_overrides(cfg, args.set)
    for entry in cfg["data"]["config"][0]["config"]["multitask_readout"]:
        if entry["readout_id"] == "cursor_velocity_2d" and args.velocity_weight != 1.0:
            entry["weights"] = {k: v * args.velocity_weight for k, v in entry["weights"].items()}
    steps = int(cfg["trainer"]["max_steps"])
    eval_at = ([int(s) for s in args.eval_at.split(",")] if args.eval_at
               else sorted({max(1, round(steps * k / 6)) for k in range(1, 7)}))
    out = Path(args.out)
    snaps = _Snapshots(eval_at, out / "snapshots")
    (out / "snapshots").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        fit(cfg, run_dir=out / "run", overwrite=True, callbacks=[snaps])
    fit_s = time.perf_counter() - t0

    curve = []
    for snap in snaps.saved:
        with contextlib.redirect_stdout(io.StringIO()):
            res = evaluate(out / "run", stage="test", checkpoint=snap["path"])
        curve.append({"step": snap["step"], "train_s": snap["train_s"],
                      "r2": round(_mean(res["sessions"], "cursor_velocity_2d"), 4),
                      "acc": round(_mean(res["sessions"], "reach_direction"), 4)})
        print(json.dumps(curve[-1]), flush=True)
    result: dict = {"benchmark": "accuracy_synthetic", "overrides": args.set,
                    "velocity_weight": args.velocity_weight, "steps": steps,
                    "batch_size": cfg["data"]["batch_size"], "threads": args.threads,
                    "fit_wall_s": round(fit_s, 1), "curve": curve}
    reached = [c for c in curve if c["r2"] >= REFERENCE_R2]
    result["time_to_reference_r2_s"] = reached[0]["train_s"] if reached else None
    if not args.no_ridge:
        with contextlib.redirect_stdout(io.StringIO()):
            ridge = run_baseline(cfg, name="ridge", run_dir=out / "ridge", overwrite=True)
        result["ridge_r2"] = round(_mean(ridge["test"]["sessions"], "cursor_velocity_2d"), 4)
        result["ridge_acc"] = round(_mean(ridge["test"]["sessions"], "reach_direction"), 4)
        result["final_margin_over_ridge"] = round(curve[-1]["r2"] - result["ridge_r2"], 4)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
