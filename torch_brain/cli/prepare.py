"""``torch-brain prepare NAME --root DIR [options]``: write a bundled brainset as HDF5 files."""

from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def _run(args: argparse.Namespace) -> int:
    from torch_brain.brainsets import prepare_from_args

    paths = prepare_from_args(args)
    print(f"wrote {len(paths)} file(s) under {args.root}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``prepare`` (options from :func:`torch_brain.brainsets.add_prepare_arguments`)."""
    from torch_brain.brainsets import add_prepare_arguments

    parser = subparsers.add_parser(
        "prepare", help="prepare a bundled brainset (synthetic or real recordings)",
        description=__doc__,
    )
    add_prepare_arguments(parser)
    parser.set_defaults(func=_run)
