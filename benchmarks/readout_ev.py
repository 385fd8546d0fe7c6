"""Expected-value readouts against the MSE head: stitched test R² and step time, same recipe.

Trains the model of a run config with its plain linear (MSE) head and with each expected-value
head (``bins``, ``codebook``) on every continuous task, same recipe, step budget and seeds, then
tests each run on the test split with stitched windows (``torch_brain.training.evaluate``).
Prints one JSON line: per head the mean ± spread (max - min) over seeds of the mean continuous-task
R², the per-seed values, the median training step time, and the bins head's step-time overhead.

    .venv/bin/python benchmarks/readout_ev.py --root data/processed \\
        --config configs/poyo_plus_synthetic.yaml --steps 300 --seeds 0,1,2
    .venv/bin/python benchmarks/readout_ev.py --root data/processed \\
        --config configs/poyo_plus_nelpy_hippocampus.yaml --steps 300

``--root`` must hold the prepared brainset the config reads (``torch-brain prepare NAME --root``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import logging
import statistics
import time
import warnings
from pathlib import Path

import lightning as L
import torch

HEADS = {
    "mse": None,
    "bins": {"kind": "bins", "num_bins": 64},
    "codebook": {"kind": "codebook", "num_bins": 64},
}


class _StepTimer(L.Callback):
    """Wall time of every training step (forward, backward, optimiser)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter() - self._t)


def _continuous_tasks(cfg: dict) -> list[str]:
    from torch_brain.registry import DataType, get_modality
    from torch_brain.training import build_datamodule

    tasks = build_datamodule(cfg).tasks
    return [t for t in tasks if get_modality(t).type is DataType.CONTINUOUS]


def _with_head(cfg: dict, head: dict | None, tasks: list[str]) -> dict:
    cfg = copy.deepcopy(cfg)
    if head is None:
        return cfg
    if cfg["model"].get("name") == "poyo":
        cfg["model"]["readout_head"] = dict(head)
    else:
        cfg["model"]["readout_heads"] = {t: dict(head) for t in tasks}
    return cfg


def _mean_r2(result: dict, tasks: list[str]) -> float:
    vals = [next(iter(t[task].values())) for t in result["sessions"].values() for task in tasks if task in t]
    return float(sum(vals) / len(vals))


def main(argv: list[str] | None = None) -> dict:
    from torch_brain.training import apply_overrides, evaluate, fit, resolve_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="folder with the prepared brainset(s)")
    parser.add_argument("--config", required=True, help="run config (YAML)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--heads", default="mse,bins,codebook", help=f"any of {','.join(HEADS)}")
    parser.add_argument("--set", nargs="*", default=[], help="dotted config overrides")
    parser.add_argument("--out", default="runs/bench_readout_ev")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (set here, in this script)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)  # an application setting, explicit in the benchmark
    warnings.simplefilter("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    base = resolve_config(args.config, [f"data.root={args.root}", f"trainer.max_steps={args.steps}",
                                        "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false",
                                        "logging.plots=false", "logging.tensorboard=false",
                                        "checkpoint.every_n_train_steps=null", *args.set])
    tasks = _continuous_tasks(base)
    seeds = [int(s) for s in args.seeds.split(",")]
    result: dict = {"benchmark": "readout_ev", "config": args.config, "steps": args.steps, "seeds": seeds,
                    "threads": args.threads, "tasks": tasks, "heads": {}}
    for head_name in args.heads.split(","):
        per_seed, step_ms = [], []
        for seed in seeds:
            cfg = apply_overrides(_with_head(base, HEADS[head_name], tasks), [f"seed={seed}"])
            run = Path(args.out) / f"{Path(args.config).stem}-{head_name}-s{seed}"
            timer = _StepTimer()
            with contextlib.redirect_stdout(io.StringIO()):
                fit(cfg, run_dir=run, overwrite=True, callbacks=[timer])
                res = evaluate(run, stage="test", checkpoint="last")
            per_seed.append(round(_mean_r2(res, tasks), 4))
            step_ms.append(1000 * statistics.median(timer.times[5:] or timer.times))
            print(json.dumps({"head": head_name, "seed": seed, "r2": per_seed[-1],
                              "step_ms": round(step_ms[-1], 1)}), flush=True)
        result["heads"][head_name] = {
            "r2_mean": round(statistics.mean(per_seed), 4),
            "r2_spread": round(max(per_seed) - min(per_seed), 4),
            "r2_per_seed": per_seed,
            "step_ms": round(statistics.median(step_ms), 1),
        }
    heads = result["heads"]
    if "mse" in heads and "bins" in heads:
        result["bins_step_overhead"] = round(heads["bins"]["step_ms"] / heads["mse"]["step_ms"] - 1, 3)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
