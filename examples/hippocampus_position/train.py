"""Hippocampal position: POYO+ decodes a rat's position on a linear track from place cells.

The recording (nelpy example data; ``../shared/data/real/nelpy-hippocampus``) holds 31 sorted
hippocampal units and LED-tracked position (camera pixels, dropouts removed) while the rat runs
back and forth on a linear track. The track part is cut into 5 time blocks, each split
train | valid | test, so no test window overlaps training.

What it shows: decoding a 1-D position (``linear_position``) from few units, scored by R² and
by the mean absolute position error in pixels, beside a ridge filter fitted on binned counts and
scored through the same windows and stitching.

Run::

    python examples/hippocampus_position/train.py            # a few minutes on 2 CPU cores
    python examples/hippocampus_position/train.py --smoke    # a few steps (CI)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch_brain.baselines import run_baseline
from torch_brain.brainsets import prepare
from torch_brain.training import evaluate, fit

BRAINSET = "nelpy_hippocampus"
TASK = "linear_position"

# No normalize_mean/std here: the training module standardises targets with statistics of the
# training split and reports metrics in pixels; the ridge baseline works in pixels too.
DATASET_CONFIG = [{
    "selection": [{"brainset": BRAINSET}],
    "config": {"multitask_readout": [{"readout_id": TASK, "metrics": ["r2", "mae"]}]},
}]


def run_config(root: str, steps: int, smoke: bool) -> dict:
    """The run config: POYO+ (one task), warm-up + cosine SparseLamb."""
    return {
        "name": "hippocampus_position",
        "data": {"root": root, "config": DATASET_CONFIG, "window_length": 1.0,
                 "batch_size": 8 if smoke else 32, "unit_dropout": None},
        "model": {"name": "poyo_plus", "dim": 64, "depth": 2, "dim_head": 32, "cross_heads": 2,
                  "self_heads": 4, "latent_step": 0.125, "num_latents_per_step": 16,
                  "ffn_dropout": 0.1, "lin_dropout": 0.2},
        "optimizer": {"name": "sparse_lamb", "lr": 4e-3, "weight_decay": 1e-4},
        "scheduler": {"name": "warmup_cosine", "warmup_fraction": 0.1, "final_factor": 0.01},
        "trainer": {"max_steps": steps, "accelerator": "cpu", "limit_val_batches": 0,
                    "enable_progress_bar": not smoke},
        "checkpoint": {"save_top_k": 0, "save_last": True},
        "logging": {"tensorboard": False, "plots": not smoke, "quiet": True},
        "baseline": {"bin_size": 0.1, "lags": 5, "alpha": 1.0},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="./processed", help="folder of the prepared brainsets")
    parser.add_argument("--out", default="./runs/hippocampus_position", help="output folder (replaced)")
    parser.add_argument("--steps", type=int, default=600, help="training steps")
    parser.add_argument("--smoke", action="store_true", help="a few steps (CI)")
    args = parser.parse_args(argv)
    steps = 3 if args.smoke else args.steps
    if not (Path(args.root) / BRAINSET).is_dir():
        prepare(BRAINSET, args.root)

    cfg = run_config(args.root, steps, args.smoke)
    out = Path(args.out)
    fit(cfg, run_dir=out / "poyo_plus", overwrite=True)
    model = evaluate(out / "poyo_plus", stage="test", checkpoint="last")
    ridge = run_baseline(cfg, name="ridge", run_dir=out / "ridge", overwrite=True)["test"]

    def metrics(result: dict) -> dict:
        return next(iter(result["sessions"].values()))[TASK]

    m, r = metrics(model), metrics(ridge)
    result = {"poyo_plus_r2": m["r2"], "poyo_plus_mae_px": m["mae"],
              "ridge_r2": r["r2"], "ridge_mae_px": r["mae"]}
    print(f"\nLinear-track position, test split (stitched):\n"
          f"  POYO+  R² {m['r2']:.3f}   mean abs. error {m['mae']:.1f} px\n"
          f"  ridge  R² {r['r2']:.3f}   mean abs. error {r['mae']:.1f} px\noutputs in {out}")
    return result


if __name__ == "__main__":
    main()
