"""``torch-brain stream``: replay a prepared recording through the streaming decoder."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping

__all__ = ["add_parser"]


def _pacing_note(threads: int, environ: Mapping[str, str]) -> str | None:
    """The advice printed after a real-time replay on several threads with sleeping OpenMP workers, else None."""
    if threads <= 1 or environ.get("OMP_WAIT_POLICY", "").upper() == "ACTIVE":
        return None
    return (f"note: with {threads} threads, idle OpenMP workers fall asleep between real-time updates and waking "
            "them adds latency; start the process with OMP_WAIT_POLICY=ACTIVE (one core then spins between "
            "updates), pass --busy-wait (the replay loop spins instead of sleeping) or pass --threads 1 "
            "(docs/streaming.md, 'Real-time pacing').")


def _run(args: argparse.Namespace) -> int:
    import torch

    from torch_brain.inference._replay import replay_recording

    if args.busy_wait and not args.realtime:
        raise ValueError("--busy-wait paces a real-time replay; pass --realtime as well (or drop --busy-wait).")
    if args.threads is not None:  # an application option: the process's torch thread count
        torch.set_num_threads(args.threads)
    source = args.checkpoint if args.checkpoint is not None else args.run_dir
    result = replay_recording(source, args.data, args.recording, start=args.start, seconds=args.seconds,
                              hop=args.hop, chunk=args.chunk, window_length=args.window_length,
                              realtime=args.realtime, busy_wait=args.busy_wait, compare=not args.no_compare)
    lat = result["latency_ms"]
    mode = ("real time, busy-waiting" if args.busy_wait else "real time") if args.realtime else "as fast as possible"
    print(f"streamed {result['updates']} updates of {args.recording} ({mode}, hop {args.hop * 1e3:g} ms, "
          f"{result['torch_threads']} threads)")
    print("latency per update (ms): " + "  ".join(f"{k} {v:.2f}" for k, v in lat.items()))
    note = _pacing_note(result["torch_threads"], os.environ) if args.realtime and not args.busy_wait else None
    if note:
        print(note)
    for task, agreement in result.get("agreement", {}).items():
        print(f"{task}: streaming vs stitched offline: " + "  ".join(f"{k} {v:.4f}" for k, v in agreement.items()))
    if args.json:
        print(json.dumps(result))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``stream``."""
    p = subparsers.add_parser(
        "stream", help="replay a prepared recording through the real-time (streaming) decoder",
        description="Push a recording's spikes into torch_brain.inference.StreamingDecoder chunk by chunk, "
                    "as fast as possible or in real time, decode every hop, print latency percentiles and "
                    "the agreement of the causal estimates with the stitched offline predictions.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-dir", help="a training run directory (its best, else last, checkpoint)")
    src.add_argument("--checkpoint", help="a checkpoint file")
    p.add_argument("--data", required=True, help="folder of prepared recordings (<brainset>/<session>.h5)")
    p.add_argument("--recording", required=True, help="recording id <brainset>/<session> (a session the model knows)")
    p.add_argument("--seconds", type=float, default=10.0, help="replayed duration (default 10)")
    p.add_argument("--start", type=float, default=None, help="first update time (default: recording start + window)")
    p.add_argument("--hop", type=float, default=0.02, help="seconds between updates (default 0.02)")
    p.add_argument("--chunk", type=float, default=None, help="seconds of spikes per push (default: hop)")
    p.add_argument("--window-length", type=float, default=None, help="causal window (default: the model's)")
    p.add_argument("--realtime", action="store_true", help="push each chunk when the wall clock reaches it")
    p.add_argument("--busy-wait", action="store_true",
                   help="with --realtime, wait for each chunk by polling the clock instead of sleeping (keeps a core "
                        "busy; lower latency on several threads)")
    p.add_argument("--threads", type=int, default=None, help="torch threads of this process")
    p.add_argument("--no-compare", action="store_true", help="skip the stitched offline comparison")
    p.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    p.set_defaults(func=_run)
