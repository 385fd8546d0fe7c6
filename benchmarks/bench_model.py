"""Model training-step benchmark: POYOPlus + SparseLamb, ours vs the peer (torch-brain 0.1.2).

Workload (issue 4): POYOPlus dim 64, depth 2, dim_head 64, cross_heads 1, self_heads 8,
latent_step 0.125, 16 latents per step, 1 s windows, batch 32, ~1000 spikes per window (100 units
at ~10 Hz, plus one start and one end token per unit), 100 cursor-velocity queries and 2-7
8-class queries per window (drifting_gratings_orientation: reach_direction is not in the peer's
registry); SparseLamb (sparse rows), forward + loss + backward + step on 2
threads. Token batches are generated directly (same seed, same tensors for both), so only the
model/optimiser step is timed. Also: dim 128, and inference-only windows/s (eval, no grad).

The same workload source runs in a fresh process for us and for the peer (both packages expose
``torch_brain.models.POYOPlus``, ``torch_brain.optim.SparseLamb`` and
``torch_brain.registry.MODALITY_REGISTRY``); peak RSS is the process's ``ru_maxrss``.

Usage:
    .venv/bin/python benchmarks/bench_model.py [--steps 15] [--infer 8] [--rounds 2] [--threads 2] [--skip-peer]
        [--profile STEPS] [--precision fp32,bf16-mixed] [--dims 64,128]

``--precision`` takes one or more of fp32 / bf16-mixed (``torch.autocast`` bfloat16 around forward
and loss, weights and optimiser in float32: what Lightning's ``bf16-mixed`` does); each round runs
every precision of ours and then of the peer, interleaved, so that ratios between precisions see
the same machine load. With more than one precision the entries are ``dim<D>_<precision>`` and
``precision_summary`` gives ours bf16/fp32 and the peer's best precision.

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

WORKLOAD = r'''
import json, resource, sys, time
import numpy as np
import torch

DIM, STEPS, INFER, THREADS, PROFILE = (int(a) for a in sys.argv[1:6])
# optional (gpu.sh / --precision): precision fp32|bf16-mixed, batch size, device, and torch.compile:
# 0 (off), 1 (the default inductor backend) or a backend name (gpu.sh --dry-run: "eager")
PRECISION, B, DEVICE, COMPILE = (sys.argv[6:10] + ["fp32", "32", "cpu", "0"][len(sys.argv[6:10]):])
B, COMPILE = int(B), {"0": None, "1": "inductor"}.get(COMPILE, COMPILE)
torch.set_num_threads(THREADS)
from torch_brain.models import POYOPlus
from torch_brain.optim import SparseLamb
from torch_brain.registry import MODALITY_REGISTRY

N_SESSIONS, N_UNITS, RATE, SEQ, STEP, PER_STEP = 4, 100, 10.0, 1.0, 0.125, 16
# the categorical task: "reach_direction" is not in the peer's registry; an 8-class built-in of both is used
TASKS = ("cursor_velocity_2d", "drifting_gratings_orientation")
CURSOR, REACH = (MODALITY_REGISTRY[t].id for t in TASKS)


def pad(rows, dtype):
    n = -(-max(len(r) for r in rows) // 8) * 8
    out = np.zeros((len(rows), n) + rows[0].shape[1:], dtype=dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out)


def make_batch(rng):
    f = {k: [] for k in ("unit", "ts", "type", "mask", "osess", "ots", "odec")}
    vel, vel_w, reach, reach_w = [], [], [], []
    for _ in range(B):
        s = int(rng.integers(N_SESSIONS))
        counts = rng.poisson(RATE * SEQ, N_UNITS)
        unit = np.repeat(np.arange(N_UNITS), counts)
        ts = rng.uniform(0, SEQ, unit.size)
        order = np.argsort(ts)
        units = np.arange(N_UNITS)
        f["unit"].append(np.concatenate([unit[order], units, units]) + s * N_UNITS + 1)
        f["ts"].append(np.concatenate([ts[order], np.zeros(N_UNITS), np.full(N_UNITS, SEQ)]).astype(np.float32))
        f["type"].append(np.concatenate([np.zeros(unit.size), np.ones(N_UNITS), np.full(N_UNITS, 2)]).astype(np.int64))
        f["mask"].append(np.ones(unit.size + 2 * N_UNITS, dtype=bool))
        n_reach = int(rng.integers(2, 8))
        t_out = np.concatenate([(np.arange(100) + 0.5) / 100, np.sort(rng.uniform(0, SEQ, n_reach))])
        f["ots"].append(t_out.astype(np.float32))
        f["odec"].append(np.concatenate([np.full(100, CURSOR), np.full(n_reach, REACH)]).astype(np.int64))
        f["osess"].append(np.full(t_out.size, s + 1, dtype=np.int64))
        vel.append(rng.normal(size=(100, 2)).astype(np.float32))
        vel_w.append(np.ones(100, dtype=np.float32))
        reach.append(rng.integers(0, 8, n_reach))
        reach_w.append(np.ones(n_reach, dtype=np.float32))
    n_lat = int(round(SEQ / STEP))
    lat_idx = np.tile(np.arange(PER_STEP), n_lat)
    lat_ts = np.repeat((np.arange(n_lat) + 0.5) * STEP, PER_STEP).astype(np.float32)
    inputs = dict(
        input_unit_index=pad(f["unit"], np.int64), input_timestamps=pad(f["ts"], np.float32),
        input_token_type=pad(f["type"], np.int64), input_mask=pad(f["mask"], bool),
        latent_index=torch.from_numpy(np.tile(lat_idx, (B, 1))),
        latent_timestamps=torch.from_numpy(np.tile(lat_ts, (B, 1))),
        output_session_index=pad(f["osess"], np.int64), output_timestamps=pad(f["ots"], np.float32),
        output_decoder_index=pad(f["odec"], np.int64),
    )
    targets = {TASKS[0]: torch.from_numpy(np.concatenate(vel)), TASKS[1]: torch.from_numpy(np.concatenate(reach))}
    weights = {TASKS[0]: torch.from_numpy(np.concatenate(vel_w)), TASKS[1]: torch.from_numpy(np.concatenate(reach_w))}
    return inputs, targets, weights


rng = np.random.default_rng(0)
batches = [make_batch(rng) for _ in range(4)]
spikes_per_window = float(np.mean([b[0]["input_token_type"].eq(0).logical_and(b[0]["input_mask"]).sum().item() / B
                                   for b in batches]))
tokens_per_batch = float(np.mean([b[0]["input_mask"].sum().item() for b in batches]))
# padding waste: padded / all slots of the (B, N) input and (B, Q) output tensors
input_padding = float(np.mean([1 - b[0]["input_mask"].float().mean().item() for b in batches]))
output_padding = float(np.mean([1 - (b[0]["output_session_index"] > 0).float().mean().item() for b in batches]))
dev = torch.device(DEVICE)
batches = [tuple({k: v.to(dev) for k, v in part.items()} for part in b) for b in batches]
cuda = dev.type == "cuda"
torch.manual_seed(0)
model = POYOPlus(sequence_length=SEQ, latent_step=STEP, num_latents_per_step=PER_STEP, dim=DIM, depth=2,
                 dim_head=64, cross_heads=1, self_heads=8)  # readout_specs: the default (whole registry)
model.unit_emb.initialize_vocab([f"u{i}" for i in range(N_SESSIONS * N_UNITS + 1)])  # +1: peer reserves row 0
model.session_emb.initialize_vocab([f"s{i}" for i in range(N_SESSIONS + 1)])
model.to(dev)
specs = model.readout.readout_specs
opt = SparseLamb(model.parameters(), lr=1e-3, sparse=True)
forward = torch.compile(model, backend=COMPILE) if COMPILE else model
autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=PRECISION == "bf16-mixed")


def train_step(batch):
    inputs, targets, weights = batch
    opt.zero_grad(set_to_none=True)
    with autocast:
        out = forward(**inputs, unpack_output=False)
        loss = sum(specs[t].loss_fn(out[t], targets[t], weights[t]) for t in out)
    loss.backward()
    opt.step()
    return loss.item()


model.train()
for i in range(3):
    train_step(batches[i % len(batches)])
if cuda:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
step_s = []
for i in range(STEPS):
    t0 = time.perf_counter()
    train_step(batches[i % len(batches)])
    step_s.append(time.perf_counter() - t0)
train_s = sum(step_s)
gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
rss_train = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

kernels = None
if PROFILE:  # per-step time of the attention kernels, of the matmuls, and of everything else
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(PROFILE):
            train_step(batches[i % len(batches)])
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    sdpa = sum(e.self_cpu_time_total for e in events if "scaled_dot_product" in e.key or "flash_attention" in e.key)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm"))
    kernels = {"sdpa_ms": sdpa / PROFILE / 1e3, "matmul_ms": matmul / PROFILE / 1e3,
               "other_ms": (total - sdpa - matmul) / PROFILE / 1e3, "profiled_steps": PROFILE}

windows_per_s = None
if INFER:
    model.eval()
    with torch.no_grad(), autocast:
        for i in range(2):
            forward(**batches[i][0])
        infer_s = []
        for i in range(INFER):
            t0 = time.perf_counter()
            forward(**batches[i % len(batches)][0])
            if cuda:
                torch.cuda.synchronize()
            infer_s.append(time.perf_counter() - t0)
        windows_per_s = B / float(np.median(infer_s))
print(json.dumps({
    "dim": DIM, "steps": STEPS, "steps_per_s": 1.0 / float(np.median(step_s)), "steps_per_s_mean": STEPS / train_s,
    "step_ms": [round(1e3 * t, 1) for t in step_s], "peak_rss_mib_train": rss_train,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "inference_windows_per_s": windows_per_s, "spikes_per_window": spikes_per_window, "profile": kernels,
    "torch": torch.__version__, "precision": PRECISION, "batch_size": B, "device": DEVICE, "compile": COMPILE,
    "tokens_per_s": tokens_per_batch / float(np.median(step_s)), "input_tokens_per_batch": tokens_per_batch,
    "input_padding_fraction": input_padding, "output_padding_fraction": output_padding,
    "peak_gpu_mib": gpu_peak,
}))
'''


def _run_ours(*args: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=args[3], MKL_NUM_THREADS=args[3])
    out = subprocess.run([sys.executable, "-c", WORKLOAD, *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"our workload failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best(runs: list[dict]) -> dict:
    """Fastest round's figures; the peak RSS is the largest of all rounds."""
    best = dict(max(runs, key=lambda r: r["steps_per_s"]))
    best["inference_windows_per_s"] = max(r["inference_windows_per_s"] for r in runs)
    best["peak_rss_mib_train"] = max(r["peak_rss_mib_train"] for r in runs)
    best["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    best["steps_per_s_rounds"] = [round(r["steps_per_s"], 3) for r in runs]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="timed training steps per configuration")
    parser.add_argument("--infer", type=int, default=8, help="timed inference batches (dim 64 and 128)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating ours/peer rounds per dim")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each side (the issue: 2)")
    parser.add_argument("--skip-peer", action="store_true", help="only measure ours")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="also run STEPS training steps under torch.profiler (after the timed ones) and report "
                        "the per-step time of the SDPA kernels, of the matmuls and of everything else")
    parser.add_argument("--precision", default="fp32", help="comma-separated: fp32, bf16-mixed (both sides)")
    parser.add_argument("--dims", default="64,128", help="comma-separated model dims")
    args = parser.parse_args()
    precisions = args.precision.split(",")
    if not precisions or any(p not in ("fp32", "bf16-mixed") for p in precisions):
        parser.error(f"--precision must list fp32 and/or bf16-mixed, got {args.precision!r}")

    results: dict = {"benchmark": "model_training_step", "threads": args.threads, "batch_size": 32,
                     "rounds": args.rounds, "statistic": "steps/s and windows/s from the median step time; "
                     "best round (highest steps/s) of each side; peak RSS: largest of the rounds"}
    results["load_average_start"] = os.getloadavg()
    for dim in (int(d) for d in args.dims.split(",")):
        ours_runs = {p: [] for p in precisions}
        peer_runs = {p: [] for p in precisions}
        for _ in range(args.rounds):  # alternate, so that both sides see the same machine load
            for prec in precisions:
                argv = (str(dim), str(args.steps), str(args.infer), str(args.threads), str(args.profile), prec)
                ours_runs[prec].append(_run_ours(*argv))
            for prec in precisions:
                if not args.skip_peer:
                    argv = (str(dim), str(args.steps), str(args.infer), str(args.threads), str(args.profile), prec)
                    peer_runs[prec].append(run_peer(WORKLOAD, *argv, threads=args.threads, timeout=900))
        for prec in precisions:
            entry = {"ours": _best(ours_runs[prec])}
            if peer_runs[prec]:
                peer = _best(peer_runs[prec])
                ours = entry["ours"]
                entry["peer"] = peer
                entry["steps_per_s_ratio"] = ours["steps_per_s"] / peer["steps_per_s"]
                entry["peak_rss_train_ratio"] = ours["peak_rss_mib_train"] / peer["peak_rss_mib_train"]
                entry["inference_ratio"] = ours["inference_windows_per_s"] / peer["inference_windows_per_s"]
            results[f"dim{dim}" if precisions == ["fp32"] else f"dim{dim}_{prec}"] = entry
        if len(precisions) > 1:
            summary = results.setdefault("precision_summary", {})
            by = {p: results[f"dim{dim}_{p}"] for p in precisions}
            line = {f"ours_{p}_steps_per_s": by[p]["ours"]["steps_per_s"] for p in precisions}
            if "fp32" in by and "bf16-mixed" in by:
                line["ours_bf16_over_fp32"] = by["bf16-mixed"]["ours"]["steps_per_s"] / by["fp32"]["ours"]["steps_per_s"]
            if not args.skip_peer:
                best = max(precisions, key=lambda p: by[p]["peer"]["steps_per_s"])
                line["peer_best_precision"] = best
                line["peer_best_steps_per_s"] = by[best]["peer"]["steps_per_s"]
                fastest = max(precisions, key=lambda p: by[p]["ours"]["steps_per_s"])
                line["ours_best_precision"] = fastest
                line["ours_best_over_peer_best"] = by[fastest]["ours"]["steps_per_s"] / line["peer_best_steps_per_s"]
            summary[f"dim{dim}"] = line
    results["load_average_end"] = os.getloadavg()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
