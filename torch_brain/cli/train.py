"""``torch-brain fit | validate | test | finetune CONFIG [key=value ...]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_parser", "format_table", "split_config_and_overrides"]

_OVERRIDES_HELP = "dotted config overrides, e.g. trainer.max_steps=100 model.dim=64"


def split_config_and_overrides(config: str | None, overrides: list[str]) -> tuple[str | None, list[str]]:
    """``fit trainer.max_steps=5`` (no config file): the first positional is an override."""
    if config is not None and "=" in config and not Path(config).exists():
        return None, [config, *overrides]
    return config, list(overrides)


def format_table(sessions: dict, title: str = "") -> str:
    """A per-session text table: one row per session, one column per task/metric."""
    columns = sorted({(t, m) for tasks in sessions.values() for t, ms in tasks.items() for m in ms})
    if not columns:
        return f"{title}\n(no metrics)"
    heads = ["session"] + [f"{t}/{m}" for t, m in columns]
    rows = [[sid] + [
        f"{sessions[sid].get(t, {}).get(m):.4f}" if m in sessions[sid].get(t, {}) else "-"
        for t, m in columns] for sid in sorted(sessions)]
    widths = [max(len(r[i]) for r in [heads] + rows) for i in range(len(heads))]
    line = "  ".join(h.ljust(w) for h, w in zip(heads, widths))
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(([title] if title else []) + [line, "-" * len(line)] + body)


def _fit(args: argparse.Namespace) -> int:
    from torch_brain.training import fit

    summary = fit(*split_config_and_overrides(args.config, args.overrides), run_dir=args.run_dir, resume=args.resume,
                  overwrite=args.overwrite)
    print(json.dumps(summary, indent=1))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from torch_brain.training import evaluate

    result = evaluate(*split_config_and_overrides(args.config, args.overrides), stage=args.command, checkpoint=args.checkpoint,
                      run_dir=args.run_dir, export=getattr(args, "export", None))
    print(format_table(result["sessions"], title=f"{args.command}: {result['checkpoint']}"))
    print(f"average metric: {result['average']}")
    for path in result.get("exported", []):
        print(f"exported: {path}")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from torch_brain.training import finetune

    summary = finetune(*split_config_and_overrides(args.config, args.overrides), checkpoint=args.checkpoint, run_dir=args.run_dir,
                       resume=args.resume, overwrite=args.overwrite)
    print(json.dumps(summary, indent=1))
    return 0


def _common(parser: argparse.ArgumentParser, config_help: str) -> None:
    parser.add_argument("config", nargs="?", default=None, help=config_help)
    parser.add_argument("overrides", nargs="*", default=[], help=_OVERRIDES_HELP)
    parser.add_argument("--run-dir", default=None,
                        help="run directory (default: config run_dir, else runs/<name>)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``fit``, ``validate``, ``test`` and ``finetune``."""
    p = subparsers.add_parser("fit", help="train a decoder from a YAML config",
                              description="Train POYO/POYO+ from a config; writes a run directory.")
    _common(p, "YAML config (see configs/)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --run-dir from checkpoints/last.ckpt")
    group.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.set_defaults(func=_fit)

    for name, split in (("validate", "valid"), ("test", "test")):
        p = subparsers.add_parser(
            name, help=f"stitched per-session metrics on the {split} split",
            description=f"Evaluate a checkpoint on the {split} split (stitched windows); writes "
                        f"metrics_{name}.json{' and plots' if name == 'test' else ''} in the run dir.")
        _common(p, "a run directory or a YAML config")
        p.add_argument("--checkpoint", default=None,
                       help="best (default when known), last, or a checkpoint path")
        p.add_argument("--export", choices=["npz", "nwb", "pynapple"], default=None,
                       help="also write the stitched predictions (timestamps, predictions, targets) per "
                            "session and task under RUN/predictions/; nwb: into a copy of the source file")
        p.set_defaults(func=_evaluate)

    p = subparsers.add_parser(
        "finetune", help="fine-tune a pretrained checkpoint (e.g. on a new session)",
        description="Rebuild a model from a checkpoint with load_pretrained(skip_readout=...), "
                    "optionally train only new unit/session embeddings first, then everything.")
    _common(p, "YAML config of the new data (see configs/finetune_synthetic.yaml)")
    p.add_argument("--checkpoint", default=None, help="pretrained checkpoint (default: finetune.checkpoint)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue from checkpoints/last.ckpt")
    group.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.set_defaults(func=_finetune)
