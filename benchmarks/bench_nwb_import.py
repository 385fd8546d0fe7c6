"""NWB import benchmark: a 1-hour, 200-unit synthetic NWB file with a 1 kHz, 64-channel LFP.

The file (written once with pynwb; the LFP streamed in with hdmf's GenericDataChunkIterator, int16
with a 1 uV conversion) is imported three times, each in a fresh subprocess so that peak RSS is that
import's alone:

- ``spikes``: ``prepare_nwb`` without the LFP (units, trials, behaviour);
- ``lfp``: the same plus the LFP copied in chunks (``--continuous acquisition/lfp``);
- ``lfp_quarter``: a file whose LFP is a quarter as long, copied the same way.

Memory must not scale with the LFP: peak RSS of ``lfp`` should be close to ``spikes`` and to
``lfp_quarter``, far below the LFP's size in memory. Prints one JSON object (no peer: torch-brain
0.1.2 has no NWB importer).

Usage: ``.venv/bin/python benchmarks/bench_nwb_import.py [--minutes 60] [--units 200] [--keep DIR]``
(the fixture takes minutes to write; ``--keep DIR`` reuses it; peak RSS is each child's VmHWM)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LFP_RATE = 1000.0
LFP_CHANNELS = 64
MEAN_RATE = 5.0


class _NoiseLfp:
    """int16 noise LFP generated block by block (hdmf's GenericDataChunkIterator), never whole."""

    def __new__(cls, n: int, seed: int):
        from hdmf.data_utils import GenericDataChunkIterator

        class Noise(GenericDataChunkIterator):
            def __init__(self) -> None:
                self._n = n
                super().__init__(buffer_gb=0.05, chunk_shape=(min(20_000, n), LFP_CHANNELS), display_progress=False)

            def _get_data(self, selection):  # deterministic per block: same seed, same file
                rows = selection[0]
                start = rows.start or 0
                rng = np.random.default_rng([seed, start])
                block = rng.integers(-3000, 3000, (rows.stop - start, LFP_CHANNELS), dtype=np.int16)
                return block[:, selection[1]]

            def _get_maxshape(self):
                return (self._n, LFP_CHANNELS)

            def _get_dtype(self):
                return np.dtype(np.int16)

        return Noise()


def write_file(path: Path, minutes: float, units: int, lfp_minutes: float, seed: int) -> dict:
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import Position, SpatialSeries
    from pynwb.ecephys import ElectricalSeries

    rng = np.random.default_rng(seed)
    seconds = minutes * 60.0
    nwb = NWBFile(session_description="benchmark", identifier=f"bench-{seed}", session_id=path.stem,
                  session_start_time=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
    dev = nwb.create_device(name="probe", description="64-channel probe")
    grp = nwb.create_electrode_group(name="shank", description="shank", location="CA1", device=dev)
    for _ in range(LFP_CHANNELS):
        nwb.add_electrode(group=grp, location="CA1")
    n_spikes = 0
    for u in range(units):
        n = rng.poisson(MEAN_RATE * seconds)
        spikes = np.sort(rng.uniform(0.0, seconds, n))
        n_spikes += n
        nwb.add_unit(spike_times=spikes, electrode_group=grp, id=u)
    for s in np.arange(0.0, seconds - 4.0, 4.0):
        nwb.add_trial(start_time=float(s), stop_time=float(s + 3.5))
    t = np.arange(0.0, seconds, 0.01)
    module = nwb.create_processing_module("behavior", "tracking")
    pos = Position(name="Position")
    pos.add_spatial_series(SpatialSeries(name="position", data=np.stack([np.sin(t), np.cos(t)], 1),
                                         timestamps=t, reference_frame="centre", unit="m"))
    module.add(pos)
    module.add(TimeSeries(name="speed", data=np.abs(np.sin(t / 5)), starting_time=0.0, rate=100.0, unit="m/s"))
    n_lfp = int(lfp_minutes * 60.0 * LFP_RATE)
    data = _NoiseLfp(n_lfp, seed)
    region = nwb.create_electrode_table_region(region=list(range(LFP_CHANNELS)), description="all")
    nwb.add_acquisition(ElectricalSeries(name="lfp", data=data, electrodes=region, starting_time=0.0,
                                         rate=LFP_RATE, conversion=1e-6))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return {"n_spikes": int(n_spikes), "lfp_samples": n_lfp, "file_mb": path.stat().st_size / 2**20}


_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import pynwb  # one-off start-up (pynwb, torch under torch_brain.data), timed apart from the import
import torch_brain.data
from torch_brain.brainsets import prepare_nwb
t1 = time.perf_counter()
out = prepare_nwb([sys.argv[1]], sys.argv[2], brainset="bench", continuous=json.loads(sys.argv[3]),
                  progress=False, overwrite=True)
t2 = time.perf_counter()
# VmHWM: this process image's peak RSS (ru_maxrss would carry the parent's peak across exec)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"import_s": t2 - t1, "startup_s": t1 - t0, "peak_rss_mb": hwm / 1024,
                  "out_mb": sum(p.stat().st_size for p in out.paths) / 2**20}))
"""


def _describe(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        return {"n_spikes": int(f["units/spike_times"].shape[0]),
                "lfp_samples": int(f["acquisition/lfp/data"].shape[0]), "file_mb": path.stat().st_size / 2**20}


def run_import(nwb_path: Path, root: Path, continuous: list[str]) -> dict:
    res = subprocess.run([sys.executable, "-c", _CHILD, str(nwb_path), str(root), json.dumps(continuous)],
                         capture_output=True, text=True, check=True, env=os.environ.copy())
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default=None,
                        help="folder for the files, kept and reused by the next run (default: a temporary one)")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_nwb_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        full, quarter = folder / "full.nwb", folder / "quarter.nwb"
        t0 = time.perf_counter()
        if args.keep and full.is_file() and quarter.is_file():  # reuse the files of an earlier --keep run
            info, info_q = _describe(full), _describe(quarter)
        else:
            info = write_file(full, args.minutes, args.units, args.minutes, args.seed)
            info_q = write_file(quarter, args.minutes, args.units, args.minutes / 4, args.seed)
        write_s = time.perf_counter() - t0
        spikes = run_import(full, folder / "out_spikes", [])
        lfp = run_import(full, folder / "out_lfp", ["acquisition/lfp"])
        lfp_q = run_import(quarter, folder / "out_quarter", ["acquisition/lfp"])
        lfp_mb = info["lfp_samples"] * LFP_CHANNELS * 4 / 2**20  # as float32 in memory
        print(json.dumps({
            "benchmark": "nwb_import", "minutes": args.minutes, "units": args.units,
            "n_spikes": info["n_spikes"], "lfp": f"{LFP_CHANNELS} ch x {info['lfp_samples']} samples at {LFP_RATE:g} Hz",
            "nwb_file_mb": round(info["file_mb"], 1), "write_fixture_s": round(write_s, 1),
            "startup_s_pynwb_torch": round(spikes["startup_s"], 2),
            "spikes_import_s": round(spikes["import_s"], 2),
            "spikes_per_s": round(info["n_spikes"] / spikes["import_s"]),
            "spikes_peak_rss_mb": round(spikes["peak_rss_mb"], 1),
            "lfp_import_s": round(lfp["import_s"], 2),
            "lfp_samples_per_s": round(info["lfp_samples"] / max(lfp["import_s"] - spikes["import_s"], 1e-9)),
            "lfp_peak_rss_mb": round(lfp["peak_rss_mb"], 1),
            "lfp_quarter_peak_rss_mb": round(lfp_q["peak_rss_mb"], 1),
            "lfp_float32_in_memory_mb": round(lfp_mb, 1),
            "output_mb": round(lfp["out_mb"], 1),
            "quarter_lfp_samples": info_q["lfp_samples"],
            "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        }))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
