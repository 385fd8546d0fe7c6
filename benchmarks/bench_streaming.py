"""Streaming-decoder latency: StreamingDecoder vs recomputing every window, ours and the peer's (torch-brain 0.1.2).

Workload (issue 17): POYOPlus dim 64, depth 2 (dim_head 64, cross_heads 1, self_heads 8, latent_step
0.125, 16 latents per step: the library defaults and those of bench_model.py), 100 units firing at 20 Hz
(Poisson), 1 s causal window, one update every 20 ms. Per update:

* ``streaming``: ``decoder.push(<the 20 ms of spikes>)`` + ``decoder.poll()`` (one decode), timed together;
* ``recompute``: slice the spikes of ``[t - 1, t)``, build the model's input tensors (spike tokens, one
  start and one end token per unit, the latent grid, one cursor-velocity query at the window end) and
  run the whole ``model(...)`` forward under ``torch.no_grad()``. The same source runs with our
  package and, in its own virtualenv, with the peer's (both expose ``torch_brain.models.POYOPlus`` with
  this forward signature), so both do identical work.

Configurations: dim 64 on 2 threads and on 1, dim 128 on 2 threads. Each method runs alone over all
updates, as a closed loop runs it: the streaming updates, then our recompute of the same windows (same
process), then the peer's recompute in its own process. ``max_abs_diff_offline`` is the largest
difference between the streaming outputs and our model's batched offline forward over the same windows. The load average (``os.getloadavg``) is
recorded before and after each run: the machine is shared.

Besides wall-clock latency, each update's process CPU time is recorded (``cpu_*``): on a shared machine the
wall time mostly measures the wait for a core, the CPU time what the work costs.

``streaming`` runs the updates back to back. ``streaming_paced`` runs them as a closed loop does: one
``push`` + ``poll`` per 20 ms of wall-clock time, the process idle in between. With more than one
thread, idle OpenMP workers go to sleep between paced updates, and waking them costs more than the
update itself (see ``docs/streaming.md``). So for multi-thread configurations the paced loop is also
run once more with ``OMP_WAIT_POLICY=ACTIVE`` (``ours_omp_active``). That is a process-wide switch an
application may set; the library does not. The other application-level remedy is a loop that waits for
the next update by polling the clock instead of sleeping (``ours_busy_wait``, OpenMP defaults): it costs
one core, as dedicated closed-loop machines often spend anyway.

Usage:
    .venv/bin/python benchmarks/bench_streaming.py [--updates 300] [--skip-peer] [--configs 64x2,64x1,128x2]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer import run_peer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

COMMON = r'''
import json, os, sys, time
import numpy as np
import torch

DIM, THREADS, UPDATES, STREAM = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(THREADS)
from torch_brain.models import POYOPlus
from torch_brain.registry import MODALITY_REGISTRY

N_UNITS, RATE, WINDOW, HOP, WARMUP = 100, 20.0, 1.0, 0.02, 20
TASK = "cursor_velocity_2d"
rng = np.random.default_rng(0)
seconds = WINDOW + (UPDATES + WARMUP + 2) * HOP
counts = rng.poisson(RATE * seconds, N_UNITS)
spike_units = np.repeat(np.arange(N_UNITS), counts)
spike_times = rng.uniform(0, seconds, spike_units.size)
order = np.argsort(spike_times)
spike_times, spike_units = spike_times[order] + 100.0, spike_units[order]  # clock starting at 100 s
torch.manual_seed(0)
model = POYOPlus(sequence_length=1.0, latent_step=0.125, num_latents_per_step=16, dim=DIM, depth=2, dim_head=64,
                 cross_heads=1, self_heads=8).eval()
# row 0 unused: the peer reserves it
model.unit_emb.initialize_vocab(["pad"] + [f"s/u{i}" for i in range(N_UNITS)])
model.session_emb.initialize_vocab(["pad", "s"])
lat_idx = torch.from_numpy(np.tile(np.arange(16), 8))[None]
lat_ts = torch.from_numpy(np.repeat((np.arange(8) + 0.5) * 0.125, 16).astype(np.float32))[None]
units = np.arange(N_UNITS) + 1


def window_tensors(t):
    """Model inputs of the window [t - 1, t) (spikes, start/end tokens, latents, one query at the end)."""
    start = t - WINDOW
    i0, i1 = np.searchsorted(spike_times, [start, t], side="left")
    n = i1 - i0
    ts = np.concatenate([(spike_times[i0:i1] - start).astype(np.float32), np.zeros(N_UNITS, np.float32),
                         np.full(N_UNITS, np.float32(t - start))])
    size = -(-ts.size // 8) * 8  # padded to a multiple of 8, like collate
    pad = lambda a, dtype: torch.from_numpy(np.pad(a.astype(dtype), (0, size - a.size)))[None]
    return dict(
        input_unit_index=pad(np.concatenate([spike_units[i0:i1] + 1, units, units]), np.int64),
        input_timestamps=pad(ts, np.float32),
        input_token_type=pad(np.concatenate([np.zeros(n), np.ones(N_UNITS), np.full(N_UNITS, 2)]), np.int64),
        input_mask=pad(np.ones(ts.size, bool), bool),
        latent_index=lat_idx, latent_timestamps=lat_ts,
        output_session_index=torch.tensor([[1]]), output_timestamps=torch.tensor([[np.float32(t - start)]]),
        output_decoder_index=torch.tensor([[MODALITY_REGISTRY[TASK].id]]),
    )


def recompute(t):
    with torch.no_grad():
        return model(**window_tensors(t))[TASK][0]


def stats(ms, cpu):
    ms, cpu = np.asarray(ms[WARMUP:]), np.asarray(cpu[WARMUP:])
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
            "mean_ms": float(ms.mean()), "updates": int(ms.size),
            # CPU time of the process per update (all threads): what the work costs, whatever the wait for a core
            "cpu_p50_ms": float(np.percentile(cpu, 50)), "cpu_mean_ms": float(cpu.mean())}


k0 = int(np.ceil((spike_times[0] + WINDOW) / HOP))
update_times = [(k0 + i) * HOP for i in range(UPDATES + WARMUP)]
load_before = os.getloadavg()
result = {"dim": DIM, "threads": THREADS, "spikes_per_window": float(RATE * N_UNITS), "torch": torch.__version__}
'''

RECOMPUTE_ONLY = COMMON + r'''
lat, cpu = [], []
for t in update_times:
    t0, c0 = time.perf_counter(), time.process_time()
    recompute(t)
    lat.append(1e3 * (time.perf_counter() - t0))
    cpu.append(1e3 * (time.process_time() - c0))
result["recompute"] = stats(lat, cpu)
result["load_before"], result["load_after"] = load_before, os.getloadavg()
print(json.dumps(result))
'''

PACED = r'''
from torch_brain.inference import StreamingDecoder

dec = StreamingDecoder(model, "s", hop=HOP, unit_ids=[f"s/u{i}" for i in range(N_UNITS)], tasks=[TASK])


def push_history():
    """Reset the decoder and push the spikes before the first timed update; returns the next spike's index."""
    dec.reset()
    first = update_times[0] - HOP
    i = int(np.searchsorted(spike_times, first, side="left"))
    dec.push(spike_times[:i], spike_units[:i], until=first)
    dec.poll()
    return i


def paced(busy_wait=False):
    """push + poll once per HOP of wall-clock time, as a closed loop runs: the process sleeps between updates
    (or, with ``busy_wait``, polls the clock)."""
    i = push_history()
    lat, cpu = [], []
    tick = time.perf_counter()
    for t in update_times:
        tick += HOP
        while tick - time.perf_counter() > 0:
            if not busy_wait:
                time.sleep(tick - time.perf_counter())
        j = int(np.searchsorted(spike_times, t, side="left"))
        t0, c0 = time.perf_counter(), time.process_time()
        dec.push(spike_times[i:j], spike_units[i:j], until=t)
        dec.poll()
        lat.append(1e3 * (time.perf_counter() - t0))
        cpu.append(1e3 * (time.process_time() - c0))
        i = j
    return stats(lat, cpu)
'''

PACED_ONLY = COMMON + PACED + r'''
result["streaming_paced"] = paced(busy_wait=len(sys.argv) > 5 and sys.argv[5] == "busy_wait")
result["load_before"], result["load_after"] = load_before, os.getloadavg()
print(json.dumps(result))
'''

STREAMING = COMMON + PACED + r'''
i = push_history()
# each method alone, as the peer's recompute runs and as a closed loop runs: first the streaming updates ...
lat_stream, cpu_stream, outs, times = [], [], [], []
for t in update_times:
    j = int(np.searchsorted(spike_times, t, side="left"))
    chunk_t, chunk_u = spike_times[i:j], spike_units[i:j]
    t0, c0 = time.perf_counter(), time.process_time()
    dec.push(chunk_t, chunk_u, until=t)
    got = dec.poll()
    lat_stream.append(1e3 * (time.perf_counter() - t0))
    cpu_stream.append(1e3 * (time.process_time() - c0))
    i = j
    times += [u for u, _ in got]
    outs += [o[TASK] for _, o in got]
# ... then recomputing the same windows with our model
lat_full, cpu_full = [], []
for t in update_times:
    t0, c0 = time.perf_counter(), time.process_time()
    recompute(t)
    lat_full.append(1e3 * (time.perf_counter() - t0))
    cpu_full.append(1e3 * (time.process_time() - c0))
assert np.allclose(times, update_times), "one update per hop"
# offline: the same windows, one batched forward (padded like collate)
from torch_brain.data import collate
batch = [window_tensors(t) for t in update_times]
with torch.no_grad():
    keys = ("input_unit_index", "input_timestamps", "input_token_type", "input_mask")
    n = max(b["input_unit_index"].shape[1] for b in batch)
    stacked = {k: torch.cat([torch.nn.functional.pad(b[k], (0, n - b[k].shape[1])) for b in batch]) for k in keys}
    for k in ("latent_index", "latent_timestamps", "output_session_index", "output_timestamps", "output_decoder_index"):
        stacked[k] = torch.cat([b[k] for b in batch])
    offline = model(**stacked)[TASK]
result["streaming"] = stats(lat_stream, cpu_stream)
result["recompute"] = stats(lat_full, cpu_full)
result["streaming_paced"] = paced()
result["max_abs_diff_offline"] = float((torch.stack(outs) - offline).abs().max())
result["load_before"], result["load_after"] = load_before, os.getloadavg()
print(json.dumps(result))
'''


def _run_ours(source: str, *args: str, **env_extra: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=args[1], MKL_NUM_THREADS=args[1], PYTHONPATH=str(ROOT), **env_extra)
    out = subprocess.run([sys.executable, "-c", source, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"our workload failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300, help="timed updates per configuration (after 20 warm-up)")
    parser.add_argument("--skip-peer", action="store_true", help="only measure ours")
    parser.add_argument("--configs", default="64x2,64x1,128x2", help="DIMxTHREADS list (default: the issue's three)")
    args = parser.parse_args()
    results = {"benchmark": "streaming", "hop_s": 0.02, "window_s": 1.0, "units": 100, "rate_hz": 20.0,
               "load_start": os.getloadavg(), "configs": {}}
    for dim, threads in (tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")):
        argv = (str(dim), str(threads), str(args.updates), "1")
        entry = {"ours": _run_ours(STREAMING, *argv)}
        if threads > 1:  # the application-level OpenMP switch that keeps idle workers spinning (see the docstring)
            entry["ours_omp_active"] = _run_ours(PACED_ONLY, *argv, OMP_WAIT_POLICY="ACTIVE")
            entry["ours_busy_wait"] = _run_ours(PACED_ONLY, *argv, "busy_wait")  # the loop itself keeps a core busy
        if not args.skip_peer:
            entry["peer"] = run_peer(RECOMPUTE_ONLY, *argv, threads=threads, timeout=1800)
            entry["speedup_p50_vs_peer_recompute"] = entry["peer"]["recompute"]["p50_ms"] / entry["ours"]["streaming"]["p50_ms"]
            entry["speedup_p99_vs_peer_recompute"] = entry["peer"]["recompute"]["p99_ms"] / entry["ours"]["streaming"]["p99_ms"]
            entry["cpu_ratio_vs_peer_recompute"] = entry["peer"]["recompute"]["cpu_mean_ms"] / entry["ours"]["streaming"]["cpu_mean_ms"]
        entry["speedup_p50_vs_our_recompute"] = entry["ours"]["recompute"]["p50_ms"] / entry["ours"]["streaming"]["p50_ms"]
        results["configs"][f"dim{dim}_threads{threads}"] = entry
    results["load_end"] = os.getloadavg()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
