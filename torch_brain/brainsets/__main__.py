"""``python -m torch_brain.brainsets NAME --root DIR [...]``: prepare one bundled brainset."""

from __future__ import annotations

import argparse
import sys

from torch_brain.brainsets._registry import add_prepare_arguments, list_brainsets, prepare_from_args


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, prepare the brainset, print the files written; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m torch_brain.brainsets",
        description=f"Prepare a bundled brainset ({', '.join(list_brainsets())}).",
    )
    add_prepare_arguments(parser)
    args = parser.parse_args(argv)
    try:
        paths = prepare_from_args(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
