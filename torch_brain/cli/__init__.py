"""The ``torch-brain`` command.

Subcommands live in their own modules; each exposes ``add_parser(subparsers)`` which creates its
sub-parser and sets ``func`` (``func(args) -> int`` exit status). :data:`COMMAND_MODULES` lists
them in help order; a module that cannot be imported (e.g. an optional one not written yet) is
skipped. To add a command, write ``torch_brain/cli/<name>.py`` with ``add_parser`` and add its
module path here.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

COMMAND_MODULES: tuple[str, ...] = (
    "torch_brain.cli.prepare",
    "torch_brain.cli.train",  # fit, validate, test, finetune
    "torch_brain.cli.pretrain",
    "torch_brain.cli.baseline",
    "torch_brain.cli.stream",
    "torch_brain.cli.demo",  # optional: the README demo (added by its own module)
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="torch-brain",
        description="Prepare data, train and evaluate POYO/POYO+ decoders, run classic baselines.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # the optional module itself is absent
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``torch-brain`` console script; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # overrides (key=value) may also come after options: `fit cfg.yaml --run-dir d a.b=1`
    overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    unknown = [a for a in extra if a not in overrides]
    if unknown or (overrides and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
    if overrides:
        args.overrides = list(args.overrides) + overrides
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"torch-brain {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"torch-brain {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
