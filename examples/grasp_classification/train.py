"""Grasp classification: POYO+ tells side grip from precision grip in real macaque motor cortex.

The recording (Brochier et al. 2018, reach-to-grasp; ``../shared/data/real/brochier2018-grasp-small``)
holds 134 trials of 93 units as 1 ms rasters, from 200 ms before the grip cue to the go signal.
The instructed grip is a per-trial label, sampled every 0.1 s during the 1 s delay period; trials
are split (stratified by grip) into train / valid / test, so test trials are never seen.

What it shows: a categorical task (``grip_type``, cross-entropy, class logits) evaluated only
inside an interval (``eval_interval: task_periods.delay_period``), with stitched (majority-vote)
accuracy on held-out trials, beside a ridge classifier on binned counts scored the same way.

Run::

    python examples/grasp_classification/train.py            # a few minutes on 2 CPU cores
    python examples/grasp_classification/train.py --smoke    # a few steps (CI)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch_brain.baselines import run_baseline
from torch_brain.brainsets import prepare
from torch_brain.training import evaluate, fit

BRAINSET = "brochier_grasp"
TASK = "grip_type"

DATASET_CONFIG = [{
    "selection": [{"brainset": BRAINSET}],
    "config": {"multitask_readout": [{
        "readout_id": TASK,
        "eval_interval": "task_periods.delay_period",
        "metrics": ["accuracy"],
    }]},
}]


def run_config(root: str, steps: int, smoke: bool) -> dict:
    """The run config: POYO+ (one task), warm-up + cosine SparseLamb, unit dropout."""
    return {
        "name": "grasp_classification",
        "data": {"root": root, "config": DATASET_CONFIG, "window_length": 1.0,
                 "batch_size": 8 if smoke else 32, "eval_step": 0.25,
                 "unit_dropout": None},
        "model": {"name": "poyo_plus", "dim": 64, "depth": 2, "dim_head": 32, "cross_heads": 2,
                  "self_heads": 4, "latent_step": 0.125, "num_latents_per_step": 16,
                  "ffn_dropout": 0.2, "lin_dropout": 0.4},
        "optimizer": {"name": "sparse_lamb", "lr": 4e-3, "weight_decay": 1e-4},
        "scheduler": {"name": "warmup_cosine", "warmup_fraction": 0.1, "final_factor": 0.01},
        "trainer": {"max_steps": steps, "accelerator": "cpu", "limit_val_batches": 0,
                    "enable_progress_bar": not smoke},
        "checkpoint": {"save_top_k": 0, "save_last": True},
        "logging": {"tensorboard": False, "plots": not smoke, "quiet": True},
        "baseline": {"bin_size": 0.1, "lags": 5, "alpha": 10.0},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="./processed", help="folder of the prepared brainsets")
    parser.add_argument("--out", default="./runs/grasp_classification", help="output folder (replaced)")
    parser.add_argument("--steps", type=int, default=400, help="training steps")
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

    def accuracy(result: dict) -> float:
        return next(iter(result["sessions"].values()))[TASK]["accuracy"]

    result = {"poyo_plus_accuracy": accuracy(model), "ridge_accuracy": accuracy(ridge)}
    print(f"\nGrip type on held-out trials (stitched accuracy during the delay period):\n"
          f"  POYO+ {result['poyo_plus_accuracy']:.3f}   ridge {result['ridge_accuracy']:.3f}\n"
          f"outputs in {out}")
    return result


if __name__ == "__main__":
    main()
