"""``torch-brain baseline CONFIG [key=value ...] [--name ridge|kalman]``."""

from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def _run(args: argparse.Namespace) -> int:
    from torch_brain.baselines import run_baseline
    from torch_brain.cli.train import format_table, split_config_and_overrides

    config, overrides = split_config_and_overrides(args.config, args.overrides)
    result = run_baseline(config, overrides, name=args.name, run_dir=args.run_dir,
                          overwrite=args.overwrite)
    for stage in ("validate", "test"):
        print(format_table(result[stage]["sessions"], title=f"{result['baseline']} — {stage}"))
        print(f"average metric: {result[stage]['average']}\n")
    print(f"results: {result['run_dir']}/metrics.json")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``baseline``."""
    p = subparsers.add_parser(
        "baseline", help="fit a ridge (Wiener) or Kalman decoder and score it like the models",
        description="Fit a classic decoder per session and task on binned counts of the training "
                    "split; score it on the valid and test splits through the same evaluation "
                    "windows, stitching and metrics as the neural models.")
    p.add_argument("config", nargs="?", default=None, help="YAML config (data + baseline sections)")
    p.add_argument("overrides", nargs="*", default=[],
                   help="dotted overrides, e.g. baseline.lags=10 baseline.alpha=10")
    p.add_argument("--name", choices=["ridge", "kalman"], default=None,
                   help="baseline (default: baseline.name of the config)")
    p.add_argument("--run-dir", default=None, help="output folder (default runs/<name>-<baseline>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=_run)
