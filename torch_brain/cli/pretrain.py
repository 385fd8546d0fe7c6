"""``torch-brain pretrain CONFIG [key=value ...]``: self-supervised pretraining of an encoder."""

from __future__ import annotations

import argparse
import json

__all__ = ["add_parser"]


def _pretrain(args: argparse.Namespace) -> int:
    from torch_brain.cli.train import split_config_and_overrides
    from torch_brain.training import pretrain

    summary = pretrain(*split_config_and_overrides(args.config, args.overrides), run_dir=args.run_dir,
                       resume=args.resume, overwrite=args.overwrite, fast=args.fast)
    print(json.dumps(summary, indent=1))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``pretrain``."""
    p = subparsers.add_parser(
        "pretrain", help="self-supervised pretraining of an encoder from a YAML config",
        description="Pretrain an encoder (masked_spikes for POYO, masked_signal for continuous signals); "
                    "writes a run directory with checkpoints, history.json, config.yaml and encoder.pt.")
    p.add_argument("config", nargs="?", default=None, help="YAML config (see configs/pretrain_*.yaml)")
    p.add_argument("overrides", nargs="*", default=[], help="dotted overrides, e.g. trainer.max_steps=100 ssl.mask_ratio=0.3")
    p.add_argument("--run-dir", default=None, help="run directory (default: config run_dir, else runs/<name>)")
    p.add_argument("--fast", action="store_true", help="a run of about a minute (20 steps, small batches)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in --run-dir from checkpoints/last.ckpt")
    group.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.set_defaults(func=_pretrain)
