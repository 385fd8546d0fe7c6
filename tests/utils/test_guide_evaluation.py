"""The user guide's evaluation sections, run as written with the real POYO / POYO+ tokenizers,
collate and models, checked against an independent stitching of the models' chained outputs."""

from __future__ import annotations

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import torchmetrics

from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, RegularTimeSeries, collate
from torch_brain.models import POYO, POYOPlus
from torch_brain.registry import MODALITY_REGISTRY
from torch_brain.utils.stitcher import (
    DataForDecodingStitchEvaluator,
    DataForMultiTaskDecodingStitchEvaluator,
    DecodingStitchEvaluator,
    MultiTaskDecodingStitchEvaluator,
)

TINY = dict(sequence_length=1.0, latent_step=0.25, num_latents_per_step=2, dim=16, depth=1, dim_head=8,
            cross_heads=1, self_heads=2, ffn_dropout=0.0, lin_dropout=0.0, atn_dropout=0.0)
SESSIONS = ["bs/s0", "bs/s1"]
TASKS = ["cursor_velocity_2d", "reach_direction"]


def _recording(session: str, seed: int, duration: float = 3.0) -> Data:
    rng = np.random.default_rng(seed)
    n_spikes = 300
    reach_t = np.arange(0.05, duration, 0.1)
    rec = Data(
        units=ArrayDict(id=np.array([f"{session}/u{i}" for i in range(4)])),
        spikes=IrregularTimeSeries(np.sort(rng.uniform(0, duration, n_spikes)),
                                   unit_index=rng.integers(0, 4, n_spikes), domain=Interval(0.0, duration)),
        cursor=RegularTimeSeries(sampling_rate=20.0, vel=rng.normal(size=(int(duration * 20), 2)),
                                 pos=rng.normal(size=(int(duration * 20), 2)), domain=Interval(0.0, duration)),
        reach_direction=IrregularTimeSeries(reach_t, direction_id=rng.integers(0, 8, len(reach_t)),
                                            domain=Interval(0.0, duration)),
        session=Data(id=session),
        domain=Interval(0.0, duration),
    )
    return rec


def _windows(tasks) -> list[Data]:
    out = []
    for j, session in enumerate(SESSIONS):
        rec = _recording(session, j)
        for start in np.arange(0.0, 2.01, 0.5):  # 1 s windows at 0.5 s step
            w = rec.slice(float(start), float(start) + 1.0)
            w.config = {"multitask_readout": [{"readout_id": t} for t in tasks]}
            out.append(w)
    return out


def _reference(rows: list[tuple], kind: str) -> dict[str, float]:
    """pandas groupby on absolute times rounded to 1 µs; numpy R2 / accuracy."""
    df = pd.DataFrame(rows, columns=["s", "t", "p", "y"])
    out = {}
    for s, g in df.groupby("s"):
        if kind == "r2":
            m = g.groupby("t").agg(p=("p", lambda x: np.mean(np.stack(x), 0)), y=("y", lambda x: np.mean(np.stack(x), 0)))
            p, y = np.stack(m.p), np.stack(m.y)
            out[s] = float(np.mean(1 - ((y - p) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)))
        else:
            def mode(x):
                c = pd.Series(list(x)).value_counts()
                return int(c[c == c.max()].index.min())

            m = g.groupby("t").agg(p=("p", mode), y=("y", mode))
            out[s] = float((m.p == m.y).mean())
    return out


class _GuideMultiTask(L.LightningModule):
    def __init__(self, model):
        super().__init__()
        self.model = model

    # -- the guide's validation_step, verbatim --
    def validation_step(self, batch, batch_idx):
        output = self.model(**batch["model_inputs"], unpack_output=True)

        return DataForMultiTaskDecodingStitchEvaluator(
            timestamps=batch["model_inputs"]["output_timestamps"],
            preds=output,
            targets=batch["target_values"],
            decoder_indices=batch["model_inputs"]["output_decoder_index"],
            eval_masks=batch["eval_mask"],
            session_ids=batch["session_id"],
            absolute_starts=batch["absolute_start"],
        )


class _GuideSingleTask(L.LightningModule):
    def __init__(self, model):
        super().__init__()
        self.model = model

    # -- the guide's validation_step, verbatim --
    def validation_step(self, batch, batch_idx):
        output = self.model(**batch["model_inputs"], unpack_output=True)

        return DataForDecodingStitchEvaluator(
            timestamps=batch["model_inputs"]["output_timestamps"],
            preds=output,
            targets=batch["target_values"],
            eval_masks=batch["eval_mask"],
            session_ids=batch["session_id"],
            absolute_starts=batch["absolute_start"],
        )


def _trainer(evaluator):
    return L.Trainer(callbacks=[evaluator], logger=False, enable_progress_bar=False, enable_model_summary=False,
                     accelerator="cpu", devices=1)


def _init(model):
    model.unit_emb.initialize_vocab([f"{s}/u{i}" for s in SESSIONS for i in range(4)])
    model.session_emb.initialize_vocab(SESSIONS)
    return model.eval()


def test_guide_multitask_with_poyo_plus():
    torch.manual_seed(0)
    model = _init(POYOPlus(**TINY, readout_specs=TASKS))
    items = [model.tokenize(w) for w in _windows(TASKS)]
    batches = [collate(items[i : i + 3]) for i in range(0, len(items), 3)]

    # independent route: chained outputs (unpack_output=False) and decoder ids -> rows per task
    rows = {t: [] for t in TASKS}
    with torch.no_grad():
        for batch in batches:
            out = model(**batch["model_inputs"], unpack_output=False)
            inputs = batch["model_inputs"]
            for task in TASKS:
                sel = inputs["output_decoder_index"] == MODALITY_REGISTRY[task].id
                b_idx = sel.nonzero()[:, 0]
                t_abs = batch["absolute_start"].double()[b_idx] + inputs["output_timestamps"].double()[sel]
                mask = batch["eval_mask"][task]
                for k in range(len(b_idx)):
                    if mask[k]:
                        p = out[task][k].numpy()
                        p = int(p.argmax()) if task == "reach_direction" else p
                        rows[task].append((batch["session_id"][int(b_idx[k])], round(float(t_abs[k]), 6), p,
                                           batch["target_values"][task][k].numpy()))
    ref_r2, ref_acc = _reference(rows["cursor_velocity_2d"], "r2"), _reference(rows["reach_direction"], "acc")

    metrics = {s: {"cursor_velocity_2d": {"r2": torchmetrics.R2Score()},
                   "reach_direction": {"acc": torchmetrics.classification.MulticlassAccuracy(
                       8, average="micro")}} for s in SESSIONS}
    evaluator = MultiTaskDecodingStitchEvaluator(metrics=metrics)
    loader = torch.utils.data.DataLoader(items, batch_size=3, collate_fn=collate)
    result = _trainer(evaluator).validate(_GuideMultiTask(model), loader, verbose=False)[0]
    for s in SESSIONS:
        assert result[f"{s}/cursor_velocity_2d/r2/val"] == pytest.approx(ref_r2[s], abs=1e-5)
        assert result[f"{s}/reach_direction/acc/val"] == pytest.approx(ref_acc[s], abs=1e-6)
    expected = np.mean(list(ref_r2.values()) + list(ref_acc.values()))
    assert result["average_val_metric"] == pytest.approx(expected, abs=1e-5)


def test_guide_single_task_with_poyo():
    torch.manual_seed(0)
    readout_spec = MODALITY_REGISTRY["cursor_velocity_2d"]
    model = _init(POYO(**TINY, readout_spec=readout_spec))
    items = [model.tokenize(w) for w in _windows(["cursor_velocity_2d"])]
    batches = [collate(items[i : i + 4]) for i in range(0, len(items), 4)]
    rows = []
    with torch.no_grad():
        for batch in batches:
            out = model(**batch["model_inputs"], unpack_output=True)
            chained_t = []
            for i, p in enumerate(out):
                t = batch["absolute_start"].double()[i] + batch["model_inputs"]["output_timestamps"][i, : len(p)].double()
                chained_t += [(batch["session_id"][i], round(float(x), 6), row.numpy()) for x, row in zip(t, p)]
            for (s, t, p), y, m in zip(chained_t, batch["target_values"], batch["eval_mask"]):
                if m:
                    rows.append((s, t, p, y.numpy()))
    ref = _reference(rows, "r2")

    evaluator = DecodingStitchEvaluator(session_ids=SESSIONS, modality_spec=readout_spec)
    loader = torch.utils.data.DataLoader(items, batch_size=4, collate_fn=collate)
    result = _trainer(evaluator).validate(_GuideSingleTask(model), loader, verbose=False)[0]
    for s in SESSIONS:
        assert result[f"{s}/cursor_velocity_2d/r2/val"] == pytest.approx(ref[s], abs=1e-5)
    assert result["average_val_metric"] == pytest.approx(np.mean(list(ref.values())), abs=1e-5)
