"""``torch-brain prepare NAME --root DIR [options]``: write a bundled brainset as HDF5 files.

``torch-brain prepare nwb FILE_OR_DIR... --root DIR --brainset NAME [options]`` imports NWB files
instead (see docs/nwb.md) and prints what it found, what it skipped and why.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser"]

# options of `prepare nwb` shared with bundled preparers (same flag, same meaning)
_NWB_SHARED = ("split_ratios", "split_seed", "n_blocks")
_NWB_FLAGS = ("brainset", "behavior", "continuous", "split_by", "fix_spikes", "chunk_rows")


def _run_nwb(args: argparse.Namespace) -> int:
    from torch_brain.brainsets import prepare_nwb

    options = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_")}
    wrong = [k for k in options if k not in _NWB_SHARED]
    if wrong:
        flags = ["--" + k.replace("_", "-") for k in wrong]
        raise ValueError(f"prepare nwb does not take {flags}; see `torch-brain prepare --help`.")
    if not args.inputs:
        raise ValueError("prepare nwb: give at least one NWB file or folder, e.g. "
                         "`torch-brain prepare nwb session.nwb --root data/processed --brainset my_lab`.")
    if "split_ratios" in options:
        options["split_ratios"] = tuple(options["split_ratios"])
    out = prepare_nwb(
        args.inputs, args.root, brainset=args.nwb_brainset, behavior=args.nwb_behavior,
        continuous=args.nwb_continuous, split_by=args.nwb_split_by, fix_spikes=args.nwb_fix_spikes,
        chunk_rows=args.nwb_chunk_rows, overwrite=args.overwrite, progress=not args.no_progress,
        **options,
    )
    print(out.summary())
    return 0 if not out.failed else 1


def _run(args: argparse.Namespace) -> int:
    if args.name == "nwb":
        return _run_nwb(args)
    given = [f"--{k.replace('_', '-')}" for k in _NWB_FLAGS
             if getattr(args, f"nwb_{k}") != _NWB_DEFAULTS[k]]
    if args.inputs or given:
        raise ValueError(
            f"prepare {args.name}: input files {args.inputs} and {given} are for `prepare nwb` only."
        )
    from torch_brain.brainsets import prepare_from_args

    paths = prepare_from_args(args)
    print(f"wrote {len(paths)} file(s) under {args.root}")
    return 0


_NWB_DEFAULTS = {"brainset": "nwb", "behavior": None, "continuous": None, "split_by": "auto",
                 "fix_spikes": False, "chunk_rows": 100_000}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``prepare`` (options from :func:`torch_brain.brainsets.add_prepare_arguments`, plus the
    ``nwb`` importer's)."""
    from torch_brain.brainsets import add_prepare_arguments

    parser = subparsers.add_parser(
        "prepare", help="prepare a bundled brainset, or import NWB files (prepare nwb FILE...)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_prepare_arguments(parser)
    for action in parser._actions:  # `nwb` is not a registered brainset: it takes input files
        if action.dest == "name":
            action.choices = [*action.choices, "nwb"]
    parser.add_argument("inputs", nargs="*", metavar="FILE_OR_DIR",
                        help="prepare nwb: NWB files or folders (searched for *.nwb)")
    nwb = parser.add_argument_group("prepare nwb")
    nwb.add_argument("--brainset", dest="nwb_brainset", default="nwb", metavar="NAME",
                     help="brainset name (output folder ROOT/BRAINSET; default: nwb)")
    nwb.add_argument("--behavior", dest="nwb_behavior", nargs="+", default=None, metavar="PATH",
                     help="behaviour series to read, e.g. Position/position (default: all)")
    nwb.add_argument("--continuous", dest="nwb_continuous", nargs="+", default=None, metavar="PATH",
                     help="ElectricalSeries to copy (chunked), e.g. acquisition/lfp, or 'all'")
    nwb.add_argument("--split-by", dest="nwb_split_by", choices=["auto", "trials", "time"], default="auto",
                     help="auto: by trials when the file has trials, else by time")
    nwb.add_argument("--fix-spikes", dest="nwb_fix_spikes", action="store_true",
                     help="sort unsorted spike times and drop spikes outside obs_intervals (counted)")
    nwb.add_argument("--chunk-rows", dest="nwb_chunk_rows", type=int, default=100_000, metavar="ROWS",
                     help="samples per chunk when copying continuous data")
    parser.set_defaults(func=_run)
