"""Stitching benchmark: ``stitch`` vs the peer (torch-brain 0.1.2), and the evaluator's epoch-end cost.

Workload (issue 5): N predictions whose timestamps come from 1 s windows at 0.5 s step with
100 Hz queries (so every timestamp is predicted by two windows, about half the rows are
duplicates), as float32 values of dim 2 (mean pooling) and as int64 labels over 8 classes (mode
pooling), for N = 1e6 and 1e7, on 2 threads. Rows come in window order (what an evaluator
receives from sequential evaluation windows) and, as a harder case, randomly shuffled. The data
are generated from the same seed by the same code in our process and in the peer's; each figure
is the best of at least ``--repeats`` calls spanning at least ``--min-time`` seconds, after 2
untimed warm-up calls, for both libraries alike (a fresh process pays for paging in new memory on
its first calls, and the first, cold call of each case is reported too, as
``first_call_seconds``; the time span keeps a burst of load on the machine from covering every
timed call of a fast case: 5 calls of 5 ms span 25 ms, 5 calls of 30 ms span 150 ms). Our outputs are checked against a pandas groupby reference
(mean; most frequent label, smallest on ties), and the peer's outputs against ours by checksum.

Evaluator cost: a validation epoch of 100 sessions x 2 tasks (cursor_velocity_2d, 100 Hz, and
reach_direction, 10 Hz, logits over 8 classes), 60 s per session in 1 s windows at 0.5 s step,
batches of 32 windows in the contract layout, replayed through ``trainer.validate`` with
``MultiTaskDecodingStitchEvaluator``: time spent in the per-batch hook (pooling) and in the
epoch-end hook (stitch, 200 torchmetrics updates/computes, logging), next to the time a small
POYO+ (dim 64, depth 2, the synthetic config) takes for the forward passes of the same windows
(measured on a few batches of ~1000 spikes per window and scaled to the epoch's window count).

Usage:
    .venv/bin/python benchmarks/bench_stitch.py [--sizes 1e6 1e7] [--repeats 5] [--min-time 0.25]
        [--skip-peer] [--skip-evaluator]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer import run_peer  # noqa: E402

# Shared by our process and the peer's: the data generator and the timing loop.
WORKLOAD = r'''
import json, sys, time
import numpy as np
import torch

torch.set_num_threads(2)
WARMUP = 2  # untimed calls first: a fresh process pays for paging in new memory on its first calls


def make_data(n, order, seed=0):
    """Window-ordered timestamps: window w covers [0.5 w, 0.5 w + 1) s at 100 Hz."""
    per_window, step = 100, 50
    n_windows = -(-n // per_window)
    ticks = (np.arange(n_windows)[:, None] * step + np.arange(per_window)[None, :]).reshape(-1)[:n]
    t = ticks / 100.0  # exact duplicates: equal ticks give equal floats
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n, 2), dtype=np.float32)
    labels = rng.integers(0, 8, n)
    if order == "shuffled":
        perm = rng.permutation(n)
        t, values, labels = t[perm], values[perm], labels[perm]
    return torch.from_numpy(t), torch.from_numpy(values), torch.from_numpy(labels)


def time_stitch(stitch, sizes, orders, repeats, min_time):
    out = {}
    for n in sizes:
        for order in orders:
            t, values, labels = make_data(n, order)
            for kind, v in (("float", values), ("label", labels)):
                calls = []
                while len(calls) < WARMUP + repeats or sum(calls[WARMUP:]) < min_time:
                    start = time.perf_counter()
                    u, p = stitch(t, v)
                    calls.append(time.perf_counter() - start)
                best = min(calls[WARMUP:])
                out[f"{kind}/{order}/{n}"] = {
                    "seconds": best, "mpred_per_s": n / best / 1e6, "first_call_seconds": calls[0],
                    "timed_calls": len(calls) - WARMUP,
                    "n_unique": int(u.numel()),
                    "checksum": float(p.double().sum()),
                }
                del u, p
    return out


if __name__ == "__main__":
    from torch_brain.utils.stitcher import stitch
    sizes = [int(float(x)) for x in sys.argv[1].split(",")]
    orders = sys.argv[2].split(",")
    print(json.dumps(time_stitch(stitch, sizes, orders, int(sys.argv[3]), float(sys.argv[4]))))
'''

ORDERS = ["window", "shuffled"]


def _namespace() -> dict:
    ns: dict = {"__name__": "bench_stitch_workload"}
    exec(compile(WORKLOAD, "bench_stitch_workload", "exec"), ns)
    return ns


def check_against_pandas(sizes: list[int]) -> dict:
    """Our stitch vs pandas groupby on the same data (window order and shuffled)."""
    import pandas as pd

    from torch_brain.utils.stitcher import stitch

    ns = _namespace()
    out = {}
    for n in sizes:
        for order in ORDERS:
            t, values, labels = ns["make_data"](n, order)
            df = pd.DataFrame({"t": t.numpy(), "v0": values[:, 0].numpy(), "v1": values[:, 1].numpy(),
                               "y": labels.numpy()})
            mean = df.groupby("t", sort=True)[["v0", "v1"]].mean()
            u, p = stitch(t, values)
            float_ok = np.array_equal(u.numpy(), mean.index.to_numpy()) and np.allclose(
                p.numpy(), mean.to_numpy(), rtol=1e-6, atol=1e-6)
            del u, p
            counts = df.groupby(["t", "y"], sort=True).size().rename("c").reset_index()
            counts = counts.sort_values(["t", "c", "y"], ascending=[True, False, True], kind="stable")
            mode = counts.drop_duplicates("t")
            u, p = stitch(t, labels)
            label_ok = np.array_equal(u.numpy(), mode["t"].to_numpy()) and np.array_equal(
                p.numpy(), mode["y"].to_numpy())
            out[f"{order}/{n}"] = {"float_equal": bool(float_ok), "label_equal": bool(label_ok)}
            del df, mean, counts, mode, u, p
    return out


# --------------------------------------------------------------------------------------- evaluator


def _evaluator_epoch(n_sessions: int = 100, seconds: float = 60.0, batch_size: int = 32) -> dict:
    import lightning as L
    import torchmetrics

    from torch_brain.registry import MODALITY_REGISTRY
    from torch_brain.utils import _evaluation
    from torch_brain.utils.stitcher import DataForMultiTaskDecodingStitchEvaluator, MultiTaskDecodingStitchEvaluator

    cont, cat = "cursor_velocity_2d", "reach_direction"
    ids = {cont: MODALITY_REGISTRY[cont].id, cat: MODALITY_REGISTRY[cat].id}
    rng = np.random.default_rng(0)
    rel_c, rel_r = np.arange(100) / 100.0, np.arange(10) / 10.0 + 0.05
    rel = np.concatenate([rel_c, rel_r])
    dec = np.concatenate([np.full(100, ids[cont]), np.full(10, ids[cat])])
    order = np.argsort(rel, kind="stable")
    windows = [(f"bench/session_{s:03d}", float(w) * 0.5) for s in range(n_sessions)
               for w in range(int((seconds - 1.0) / 0.5) + 1)]
    batches = []
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        b = len(chunk)
        batches.append(DataForMultiTaskDecodingStitchEvaluator(
            timestamps=torch.from_numpy(np.tile(rel[order], (b, 1))),
            preds=[{cont: torch.randn(100, 2), cat: torch.randn(10, 8)} for _ in range(b)],
            targets={cont: torch.randn(100 * b, 2), cat: torch.from_numpy(rng.integers(0, 8, 10 * b))},
            decoder_indices=torch.from_numpy(np.tile(dec[order], (b, 1))),
            eval_masks={cont: torch.ones(100 * b, dtype=torch.bool), cat: torch.ones(10 * b, dtype=torch.bool)},
            session_ids=[s for s, _ in chunk],
            absolute_starts=torch.tensor([t0 for _, t0 in chunk], dtype=torch.float64),
        ))

    timings = {"batch_hooks_s": 0.0, "epoch_end_s": 0.0}

    class Timed(MultiTaskDecodingStitchEvaluator):
        def _ingest(self, outputs):
            start = time.perf_counter()
            super()._ingest(outputs)
            timings["batch_hooks_s"] += time.perf_counter() - start

        def _epoch_end(self, trainer, pl_module, stage):
            start = time.perf_counter()
            super()._epoch_end(trainer, pl_module, stage)
            timings["epoch_end_s"] += time.perf_counter() - start

    class Replay(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)

        def validation_step(self, batch, batch_idx):
            return batch

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(batches)

    metrics = {s: {cont: {"r2": torchmetrics.R2Score()},
                   cat: {"accuracy": torchmetrics.classification.MulticlassAccuracy(8)}}
               for s in sorted({s for s, _ in windows})}
    evaluator = Timed(metrics, quiet=True)
    trainer = L.Trainer(callbacks=[evaluator], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1)
    start = time.perf_counter()
    trainer.validate(Replay(), torch.utils.data.DataLoader(Stream(), batch_size=None), verbose=False)
    total = time.perf_counter() - start
    return {"sessions": n_sessions, "tasks": 2, "windows": len(windows), "batches": len(batches),
            "queries": len(windows) * 110, **timings, "validate_total_s": total,
            "merge_threshold_rows": _evaluation._MIN_MERGE_ROWS}


def _forward_time(n_windows: int, batch_size: int = 32, n_batches: int = 2) -> dict:
    """Small POYO+ (synthetic config) eval forward passes, scaled to ``n_windows``."""
    from torch_brain.models import POYOPlus

    torch.manual_seed(0)
    n_units, spikes_per_window = 100, 1000
    model = POYOPlus(sequence_length=1.0, latent_step=0.125, num_latents_per_step=16, dim=64, depth=2,
                     dim_head=64, cross_heads=1, self_heads=8,
                     readout_specs=["cursor_velocity_2d", "reach_direction"]).eval()
    model.unit_emb.initialize_vocab([f"bench/s/u{i}" for i in range(n_units)])
    model.session_emb.initialize_vocab(["bench/s"])
    rng = np.random.default_rng(0)
    from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, RegularTimeSeries, collate

    items = []
    for w in range(batch_size):
        ts = np.sort(rng.uniform(0, 1, spikes_per_window))
        d = Data(
            units=ArrayDict(id=np.array([f"bench/s/u{i}" for i in range(n_units)])),
            spikes=IrregularTimeSeries(ts, unit_index=rng.integers(0, n_units, spikes_per_window),
                                       domain=Interval(0.0, 1.0)),
            cursor=RegularTimeSeries(sampling_rate=100.0, vel=rng.normal(size=(100, 2)),
                                     pos=rng.normal(size=(100, 2)), domain=Interval(0.0, 1.0)),
            reach_direction=IrregularTimeSeries(np.arange(10) / 10 + 0.05, direction_id=rng.integers(0, 8, 10),
                                                domain=Interval(0.0, 1.0)),
            session=Data(id="bench/s"), domain=Interval(0.0, 1.0))
        d.config = {"multitask_readout": [{"readout_id": "cursor_velocity_2d"}, {"readout_id": "reach_direction"}]}
        items.append(model.tokenize(d))
    batch = collate(items)
    with torch.no_grad():
        model(**batch["model_inputs"], unpack_output=True)  # warm-up
        start = time.perf_counter()
        for _ in range(n_batches):
            model(**batch["model_inputs"], unpack_output=True)
        per_batch = (time.perf_counter() - start) / n_batches
    return {"forward_s_per_batch_of_32": per_batch, "forward_epoch_estimate_s": per_batch * n_windows / batch_size,
            "model": "POYOPlus dim 64 depth 2 dim_head 64 self_heads 8, 16 latents/0.125 s, ~1000 spikes/window"}


def _on_device(stitch, device: torch.device):
    """``stitch`` on ``device``: each case's inputs are copied there once (the copy lands in the
    untimed warm-up call), and every call waits for the device to finish."""
    cache: dict = {}

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def run(t, v):
        key = (id(t), id(v))
        if key not in cache:
            cache.clear()
            cache[key] = (t.to(device), v.to(device))
            sync()
        u, p = stitch(*cache[key])
        sync()
        return u, p

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1e6", "1e7"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.25)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--skip-evaluator", action="store_true")
    parser.add_argument("--device", default=None,
                        help="time our stitch on this device (e.g. cuda; inputs moved there before the timed calls, "
                        "each call synchronised); the peer runs on CPU as before")
    args = parser.parse_args()
    sizes = [int(float(s)) for s in args.sizes]
    torch.set_num_threads(2)

    result: dict = {"threads": 2, "repeats": args.repeats, "min_time_s": args.min_time, "sizes": sizes,
                    "orders": ORDERS}
    ns = _namespace()
    from torch_brain.utils.stitcher import stitch

    if args.device is not None:
        stitch = _on_device(stitch, torch.device(args.device))
        result["device"] = args.device
    ours = ns["time_stitch"](stitch, sizes, ORDERS, args.repeats, args.min_time)
    result["ours"] = ours
    if not args.skip_peer:
        source = WORKLOAD.replace("from torch_brain.utils.stitcher import stitch",
                                  "from torch_brain.utils.stitcher import stitch  # the peer's")
        peer = run_peer(source, ",".join(map(str, sizes)), ",".join(ORDERS), str(args.repeats), str(args.min_time),
                        threads=2)
        result["peer"] = peer
        result["speedup_vs_peer"] = {k: peer[k]["seconds"] / ours[k]["seconds"] for k in ours}
        result["same_output_as_peer"] = {
            k: ours[k]["n_unique"] == peer[k]["n_unique"]
            and abs(ours[k]["checksum"] - peer[k]["checksum"]) <= 1e-6 * max(1.0, abs(peer[k]["checksum"]))
            for k in ours}
    result["equal_to_pandas_groupby"] = check_against_pandas(sizes)
    if not args.skip_evaluator:
        epoch = _evaluator_epoch()
        epoch.update(_forward_time(epoch["windows"]))
        epoch["epoch_end_over_forward"] = epoch["epoch_end_s"] / epoch["forward_epoch_estimate_s"]
        epoch["pooling_plus_epoch_end_over_forward"] = (
            (epoch["epoch_end_s"] + epoch["batch_hooks_s"]) / epoch["forward_epoch_estimate_s"])
        result["evaluator"] = epoch
    print(json.dumps(result))


if __name__ == "__main__":
    main()
