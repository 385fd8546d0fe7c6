"""Hand-built evaluation batches in the contract layout, a tiny Lightning model that returns them,
and an independent (pandas/numpy) computation of the stitched metrics they should give."""

from __future__ import annotations

import lightning as L
import numpy as np
import pandas as pd
import torch
import torchmetrics

from torch_brain.registry import MODALITY_REGISTRY
from torch_brain.utils.stitcher import (
    DataForDecodingStitchEvaluator,
    DataForMultiTaskDecodingStitchEvaluator,
)

CONT, CAT = "cursor_velocity_2d", "reach_direction"
SESSIONS = ["bs/s0", "bs/s1", "bs/s2"]
WINDOW, STEP = 1.0, 0.5
N_CLASSES = MODALITY_REGISTRY[CAT].dim


def _truth(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([np.sin(t), np.cos(3 * t)], 1), (np.floor(t * 2).astype(np.int64) % N_CLASSES)


def make_windows(session: str, n_windows: int, offset: float) -> list[dict]:
    """Overlapping windows of one session; query times on grids of 50 ms (cursor) and 200 ms (reach)."""
    seed = SESSIONS.index(session)
    out = []
    for w in range(n_windows):
        start = offset + w * STEP
        rng = np.random.default_rng(1000 * seed + w)
        rel_c = np.arange(0, WINDOW, 0.05)
        rel_r = np.arange(0.1, WINDOW, 0.2)
        t_c, t_r = start + rel_c, start + rel_r
        y_c, _ = _truth(t_c)
        _, y_r = _truth(t_r)
        p_c = (y_c + rng.normal(0, 0.5, y_c.shape)).astype(np.float32)  # differs between windows
        logits = rng.normal(0, 1, (len(t_r), N_CLASSES)).astype(np.float32)
        logits[np.arange(len(t_r)), y_r] += rng.uniform(0, 2.5, len(t_r)).astype(np.float32)
        mask_c = np.ones(len(t_c), bool)
        mask_c[::7] = False  # some queries are not evaluated
        out.append(dict(session=session, start=start, rel_c=rel_c, rel_r=rel_r, y_c=y_c.astype(np.float32),
                        y_r=y_r, p_c=p_c, p_r=logits, m_c=mask_c, m_r=np.ones(len(t_r), bool)))
    return out


def collate_multitask(windows: list[dict]) -> dict:
    """Contract layout: (B, Q) padded timestamps/decoder ids; targets etc. chained per task."""
    ids = {CONT: MODALITY_REGISTRY[CONT].id, CAT: MODALITY_REGISTRY[CAT].id}
    rows = []
    for w in windows:
        # interleave the two tasks' queries, as a tokenizer might order them
        q = [(t, CONT, i) for i, t in enumerate(w["rel_c"])] + [(t, CAT, i) for i, t in enumerate(w["rel_r"])]
        q.sort(key=lambda x: (x[0], x[1]))
        rows.append(q)
    width = max(len(r) for r in rows)
    ts = torch.zeros(len(windows), width, dtype=torch.float64)
    dec = torch.zeros(len(windows), width, dtype=torch.long)
    preds, targets, masks = [], {CONT: [], CAT: []}, {CONT: [], CAT: []}
    for b, (w, q) in enumerate(zip(windows, rows)):
        sample = {CONT: [], CAT: []}
        for j, (t, task, i) in enumerate(q):
            ts[b, j] = t
            dec[b, j] = ids[task]
            key = "c" if task == CONT else "r"
            sample[task].append(w[f"p_{key}"][i])
            targets[task].append(w[f"y_{key}"][i])
            masks[task].append(w[f"m_{key}"][i])
        preds.append({task: torch.from_numpy(np.stack(v)) for task, v in sample.items() if v})
    return dict(
        timestamps=ts, decoder_indices=dec, preds=preds,
        targets={CONT: torch.from_numpy(np.stack(targets[CONT])), CAT: torch.tensor(targets[CAT], dtype=torch.long)},
        eval_masks={task: torch.tensor(m) for task, m in masks.items()},
        session_ids=[w["session"] for w in windows],
        absolute_starts=torch.tensor([w["start"] for w in windows], dtype=torch.float64),
    )


def collate_single(windows: list[dict]) -> dict:
    """Single-task (cursor) layout: (B, Q) padded timestamps, list of preds, chained targets."""
    width = max(len(w["rel_c"]) for w in windows)
    ts = torch.zeros(len(windows), width, dtype=torch.float64)
    for b, w in enumerate(windows):
        ts[b, : len(w["rel_c"])] = torch.from_numpy(w["rel_c"])
    return dict(
        timestamps=ts, preds=[torch.from_numpy(w["p_c"]) for w in windows],
        targets=torch.from_numpy(np.concatenate([w["y_c"] for w in windows])),
        eval_masks=torch.from_numpy(np.concatenate([w["m_c"] for w in windows])),
        session_ids=[w["session"] for w in windows],
        absolute_starts=torch.tensor([w["start"] for w in windows], dtype=torch.float64),
    )


def batches(windows: list[dict], batch_size: int, multitask: bool = True) -> list[dict]:
    fn = collate_multitask if multitask else collate_single
    return [fn(windows[i : i + batch_size]) for i in range(0, len(windows), batch_size)]


class ReplayModel(L.LightningModule):
    """A 'model' whose evaluation steps return the hand-built batch in the evaluator's format."""

    def __init__(self, multitask: bool = True) -> None:
        super().__init__()
        self.multitask = multitask
        self.layer = torch.nn.Linear(1, 1)

    def _step(self, batch):
        if self.multitask:
            return DataForMultiTaskDecodingStitchEvaluator(**batch)
        return DataForDecodingStitchEvaluator(**batch)

    def validation_step(self, batch, batch_idx):
        return self._step(batch)

    def test_step(self, batch, batch_idx):
        return self._step(batch)


class ListStream(torch.utils.data.IterableDataset):
    """Yields prepared batches (no __len__, so a rank with none still runs the epoch hooks)."""

    def __init__(self, items: list) -> None:
        self.items = items

    def __iter__(self):
        return iter(self.items)


def loader(items: list) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(ListStream(items), batch_size=None)


def make_metrics(sessions=SESSIONS) -> dict:
    def r2():
        return torchmetrics.R2Score()

    return {s: {CONT: {"r2": r2()}, CAT: torchmetrics.classification.MulticlassAccuracy(N_CLASSES, average="micro")}
            for s in sessions}


def reference_metrics(windows: list[dict], stage: str) -> dict[str, float]:
    """Independent stitching (pandas groupby on rounded absolute times) and numpy R2/accuracy."""
    rec = {CONT: [], CAT: []}
    for w in windows:
        for t, p, y, m in zip(w["start"] + w["rel_c"], w["p_c"], w["y_c"], w["m_c"]):
            if m:
                rec[CONT].append((w["session"], round(t, 6), p[0], p[1], y[0], y[1]))
        for t, p, y, m in zip(w["start"] + w["rel_r"], w["p_r"], w["y_r"], w["m_r"]):
            if m:
                rec[CAT].append((w["session"], round(t, 6), int(np.argmax(p)), int(y)))
    out = {}
    df = pd.DataFrame(rec[CONT], columns=["s", "t", "p0", "p1", "y0", "y1"])
    for s, g in df.groupby("s"):
        m = g.groupby("t").mean(numeric_only=True)
        p, y = m[["p0", "p1"]].to_numpy(), m[["y0", "y1"]].to_numpy()
        r2 = 1 - ((y - p) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
        out[f"{s}/{CONT}/r2/{stage}"] = float(r2.mean())
    df = pd.DataFrame(rec[CAT], columns=["s", "t", "p", "y"])
    for s, g in df.groupby("s"):
        def mode(x):
            c = x.value_counts()
            return int(c[c == c.max()].index.min())

        m = g.groupby("t").agg(p=("p", mode), y=("y", mode))
        out[f"{s}/{CAT}/MulticlassAccuracy/{stage}"] = float((m.p == m.y).mean())
    out[f"average_{stage}_metric"] = float(np.mean(list(out.values())))
    return out


# ------------------------------------------------------------------------------------------------
# Two-process DDP (gloo) worker: each rank gets whole sessions, as DistributedStitchingFixedWindowSampler
# guarantees; rank 1 has no window of bs/s0 and bs/s1 in "validate", and no window at all in "test".
# ------------------------------------------------------------------------------------------------

def all_windows() -> list[dict]:
    return make_windows("bs/s0", 6, 10.0) + make_windows("bs/s1", 5, 3.25) + make_windows("bs/s2", 4, 0.0)


def rank_batches(rank: int, stage: str) -> list[dict]:
    windows = all_windows()
    if stage == "val":
        mine = [w for w in windows if (w["session"] == "bs/s2") == (rank == 1)]
    else:
        mine = windows if rank == 0 else []
    return batches(mine, 3)


def ddp_worker(rank: int, port: int, out_dir: str) -> None:
    import json
    import os

    from torch_brain.utils.stitcher import MultiTaskDecodingStitchEvaluator

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank), NODE_RANK="0")
    torch.set_num_threads(1)
    evaluator = MultiTaskDecodingStitchEvaluator(make_metrics(), quiet=True)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", callbacks=[evaluator], logger=False,
                        enable_progress_bar=False, enable_model_summary=False)
    out = {}
    model = ReplayModel()
    try:
        trainer.validate(model, loader(rank_batches(rank, "val")), verbose=False)
        out["val"] = {k: float(v) for k, v in trainer.callback_metrics.items()}
        trainer.test(model, loader(rank_batches(rank, "test")), verbose=False)
        out["test"] = {k: float(v) for k, v in trainer.callback_metrics.items()}
    finally:
        # leave no gloo process group for interpreter exit to tear down (an abort race otherwise)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(out, f)
