"""Data-loading throughput: Dataset + RandomFixedWindowSampler (1 s windows) + collate.

Workload (issue 3): the synthetic reaching set (4 sessions x 10 min, 100 units, 100 Hz cursor,
written by ``torch_brain.brainsets.prepare``), ``split="train"``, 1 s windows from
``RandomFixedWindowSampler``, a ``DataLoader`` with ``batch_size=32``, ``num_workers=0`` and
``collate``. Each window becomes a small dict (padded spike times / unit indices + mask, padded
cursor velocity, session id, absolute start) so that it can be collated without a tokenizer.
Two variants: without augmentation, and with ``UnitDropout(min_units=20, mode_units=100)``
first; each with the default Dataset (recordings within ``memory_budget`` = 1 GiB are read into
memory on first use: here all four, 48 MB) and with ``memory_budget=0`` (every window read
lazily from the open HDF5 file, like the peer). The first pass includes reading the files. The peer (torch-brain 0.1.2 + temporaldata 0.1.6) runs the same pipeline through its own
Dataset, sampler, UnitDropout and collate on the very same files (our writer produces the
temporaldata layout), in its own virtualenv, in the same run.

Usage::

    .venv/bin/python benchmarks/bench_loader.py [--repeats 3] [--root DIR]

Prints one JSON object: windows/s for each variant (median over full passes through the
sampler), the peer's figures and the ratios ours/peer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer import run_peer  # noqa: E402

N_SESSIONS, MINUTES, N_UNITS, SEED = 4, 10.0, 100, 0
WINDOW, BATCH = 1.0, 32
DROPOUT = {"min_units": 20, "mode_units": 100}

# The same window -> dict step on both sides (only the torch_brain import differs).
_TO_DICT = """
def to_dict(w):
    return {
        "spike_timestamps": pad8(w.spikes.timestamps),
        "spike_unit_index": pad8(w.spikes.unit_index),
        "spike_mask": track_mask8(w.spikes.timestamps),
        "cursor_vel": pad(w.cursor.vel),
        "session_id": w.session.id,
        "absolute_start": w.absolute_start,
    }
"""

PEER_SOURCE = (
    """
import json, statistics, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(2)
from torch.utils.data import DataLoader
from torch_brain.data import Dataset, collate, pad, pad8, track_mask8
from torch_brain.data.sampler import RandomFixedWindowSampler
from torch_brain.transforms import Compose, UnitDropout
"""
    + _TO_DICT
    + """
root, config, repeats, window, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
dropout = json.loads(sys.argv[6])
out = {}
for name, transform in [("plain", to_dict), ("unit_dropout", Compose([UnitDropout(**dropout), to_dict]))]:
    ds = Dataset(root, config=config, split="train", transform=transform)
    rates = []
    for r in range(repeats):
        sampler = RandomFixedWindowSampler(
            sampling_intervals=ds.get_sampling_intervals(), window_length=window,
            generator=torch.Generator().manual_seed(r),
        )
        loader = DataLoader(ds, sampler=sampler, batch_size=batch, collate_fn=collate, num_workers=0)
        n = 0
        t0 = time.perf_counter()
        for b in loader:
            n += len(b["session_id"])
        rates.append(n / (time.perf_counter() - t0))
    out[name] = {"windows_per_s": statistics.median(rates), "windows_per_pass": n, "all": rates}
print(json.dumps(out))
"""
)


def _ours(root: Path, config: Path, repeats: int) -> dict:
    from torch.utils.data import DataLoader

    from torch_brain.data import Dataset, collate, pad, pad8, track_mask8
    from torch_brain.data.sampler import RandomFixedWindowSampler
    from torch_brain.transforms import Compose, UnitDropout

    namespace = {"pad": pad, "pad8": pad8, "track_mask8": track_mask8}
    exec(_TO_DICT, namespace)
    to_dict = namespace["to_dict"]
    out = {}
    variants = [
        ("plain", to_dict, {}),
        ("unit_dropout", Compose([UnitDropout(**DROPOUT, seed=0), to_dict]), {}),
        ("plain_lazy", to_dict, {"memory_budget": 0}),
        ("unit_dropout_lazy", Compose([UnitDropout(**DROPOUT, seed=0), to_dict]), {"memory_budget": 0}),
    ]
    for name, transform, kwargs in variants:
        ds = Dataset(root, config=config, split="train", transform=transform, **kwargs)
        rates = []
        n = 0
        for r in range(repeats):
            sampler = RandomFixedWindowSampler(ds.get_sampling_intervals(), window_length=WINDOW, generator=r)
            loader = DataLoader(ds, sampler=sampler, batch_size=BATCH, collate_fn=collate, num_workers=0)
            n = 0
            t0 = time.perf_counter()
            for b in loader:
                n += len(b["session_id"])
            rates.append(n / (time.perf_counter() - t0))
        out[name] = {"windows_per_s": statistics.median(rates), "windows_per_pass": n, "all": rates}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="full passes per variant (median reported)")
    parser.add_argument("--peer-repeats", type=int, default=2, help="full passes per variant for the peer")
    parser.add_argument("--root", type=Path, default=None, help="reuse/prepare the synthetic set here")
    args = parser.parse_args()
    torch.set_num_threads(2)

    from torch_brain.brainsets import prepare

    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp) / "data"
        if not (root / "synthetic_reaching").is_dir():
            prepare("synthetic_reaching", root, progress=False, n_sessions=N_SESSIONS, n_subjects=2,
                    minutes=MINUTES, n_units=N_UNITS, seed=SEED, held_out=False)
        config = Path(tmp) / "config.yaml"
        config.write_text("- selection:\n    - brainset: synthetic_reaching\n")

        ours = _ours(root, config, args.repeats)
        peer = run_peer(PEER_SOURCE, str(root), str(config), str(args.peer_repeats), str(WINDOW), str(BATCH),
                        json.dumps(DROPOUT), threads=2)

    result = {
        "benchmark": "loader",
        "workload": (f"synthetic_reaching {N_SESSIONS} sessions x {MINUTES:g} min, {N_UNITS} units; split=train; "
                     f"{WINDOW:g} s windows, RandomFixedWindowSampler, batch {BATCH}, num_workers=0, collate"),
        "ours_windows_per_s": round(ours["plain"]["windows_per_s"], 1),
        "ours_unit_dropout_windows_per_s": round(ours["unit_dropout"]["windows_per_s"], 1),
        "ours_lazy_windows_per_s": round(ours["plain_lazy"]["windows_per_s"], 1),
        "ours_lazy_unit_dropout_windows_per_s": round(ours["unit_dropout_lazy"]["windows_per_s"], 1),
        "peer_windows_per_s": round(peer["plain"]["windows_per_s"], 1),
        "peer_unit_dropout_windows_per_s": round(peer["unit_dropout"]["windows_per_s"], 1),
        "ratio": round(ours["plain"]["windows_per_s"] / peer["plain"]["windows_per_s"], 2),
        "ratio_unit_dropout": round(ours["unit_dropout"]["windows_per_s"] / peer["unit_dropout"]["windows_per_s"], 2),
        "ratio_lazy": round(ours["plain_lazy"]["windows_per_s"] / peer["plain"]["windows_per_s"], 2),
        "ratio_lazy_unit_dropout": round(
            ours["unit_dropout_lazy"]["windows_per_s"] / peer["unit_dropout"]["windows_per_s"], 2),
        "targets": {"windows_per_s": 2000, "unit_dropout_windows_per_s": 1500},
        "windows_per_pass": ours["plain"]["windows_per_pass"],
        "ours_all_passes": {k: [round(x, 1) for x in v["all"]] for k, v in ours.items()},
        "peer_all_passes": {k: [round(x, 1) for x in v["all"]] for k, v in peer.items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
