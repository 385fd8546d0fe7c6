"""M1 velocity: POYO decodes hand velocity from a real macaque M1 recording, beside a ridge filter.

The recording (Stevenson et al. 2011, via spykesML; ``../shared/data/real/spykesml``) holds 171
units during 13 minutes of 2-D planar reaching, as 50 ms spike counts; the importer spreads each
bin's spikes evenly inside the bin, so timing inside a bin is lost (POYO sees pseudo spike times).
The split is by time blocks (train 70 % / valid 10 % / test 20 %).

What it shows: the config-driven workflow (:func:`torch_brain.training.fit`, ``evaluate``) on a
single-task POYO (AdamW, warm-up + cosine), and :func:`torch_brain.baselines.run_baseline` scoring a ridge (Wiener) filter
through the same evaluation windows, stitching and R² — the two numbers are directly comparable.

Run::

    python examples/m1_velocity/train.py            # about 10 minutes on 2 CPU cores
    python examples/m1_velocity/train.py --smoke    # a few steps (CI)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch_brain.baselines import run_baseline
from torch_brain.brainsets import prepare
from torch_brain.training import evaluate, fit

BRAINSET = "spykesml_m1"
TASK = "hand_velocity_2d"

DATASET_CONFIG = [{
    "selection": [{"brainset": BRAINSET}],
    "config": {"multitask_readout": [{
        "readout_id": TASK,
        "metrics": [{"metric": {"_target_": "torchmetrics.R2Score"}}],
    }]},
}]


def run_config(root: str, steps: int, smoke: bool) -> dict:
    """The run config: POYO (one task), warm-up + cosine SparseLamb, targets standardised."""
    return {
        "name": "m1_velocity",
        "data": {"root": root, "config": DATASET_CONFIG, "window_length": 1.0,
                 "batch_size": 8 if smoke else 32, "unit_dropout": None},
        "model": {"name": "poyo", "dim": 64, "depth": 2, "dim_head": 32, "cross_heads": 2,
                  "self_heads": 4, "latent_step": 0.125, "num_latents_per_step": 16,
                  "ffn_dropout": 0.1, "lin_dropout": 0.1},
        "optimizer": {"name": "adamw", "lr": 2e-3, "weight_decay": 1e-4},
        "scheduler": {"name": "warmup_cosine", "warmup_fraction": 0.1, "final_factor": 0.01},
        "trainer": {"max_steps": steps, "accelerator": "cpu", "limit_val_batches": 0,
                    "enable_progress_bar": not smoke},
        "checkpoint": {"save_top_k": 0, "save_last": True},
        "logging": {"tensorboard": False, "plots": not smoke, "quiet": True},
        "baseline": {"bin_size": 0.05, "lags": 5, "alpha": 1.0},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="./processed", help="folder of the prepared brainsets")
    parser.add_argument("--out", default="./runs/m1_velocity", help="output folder (replaced)")
    parser.add_argument("--steps", type=int, default=1200, help="training steps")
    parser.add_argument("--smoke", action="store_true", help="a few steps (CI)")
    args = parser.parse_args(argv)
    steps = 3 if args.smoke else args.steps
    if not (Path(args.root) / BRAINSET).is_dir():
        prepare(BRAINSET, args.root)

    cfg = run_config(args.root, steps, args.smoke)
    out = Path(args.out)
    fit(cfg, run_dir=out / "poyo", overwrite=True)
    poyo = evaluate(out / "poyo", stage="test", checkpoint="last")
    ridge = run_baseline(cfg, name="ridge", run_dir=out / "ridge", overwrite=True)["test"]

    def r2(result: dict) -> float:
        return next(iter(next(iter(result["sessions"].values()))[TASK].values()))

    result = {"poyo_r2": r2(poyo), "ridge_r2": r2(ridge)}
    print(f"\nM1 hand velocity, test split (stitched R²): POYO {result['poyo_r2']:.3f}   "
          f"ridge {result['ridge_r2']:.3f}\noutputs in {out}")
    return result


if __name__ == "__main__":
    main()
