"""bf16-mixed predictions reach the evaluator's metrics as float32 and score like the float64
reference stitching of the same (bf16-rounded) predictions."""

import lightning as L
import numpy as np
import pytest
import torch
import torchmetrics

from torch_brain.utils.stitcher import MultiTaskDecodingStitchEvaluator

from ._stitch_helpers import CAT, CONT, SESSIONS, N_CLASSES, ReplayModel, batches, loader, make_windows, \
    reference_metrics


class _DtypeR2(torchmetrics.R2Score):
    seen: list = []

    def update(self, preds, target):
        _DtypeR2.seen.append((preds.dtype, target.dtype))
        super().update(preds, target)


def test_bf16_predictions_are_scored_in_float32():
    windows = make_windows(SESSIONS[0], 5, 2.0) + make_windows(SESSIONS[1], 4, 0.0)
    for w in windows:  # what a bf16-mixed model emits: bf16-rounded values
        w["p_c"] = torch.from_numpy(w["p_c"]).to(torch.bfloat16).float().numpy()
        w["p_r"] = torch.from_numpy(w["p_r"]).to(torch.bfloat16).float().numpy()
    items = batches(windows, 3)
    for b in items:
        b["preds"] = [{k: v.to(torch.bfloat16) for k, v in p.items()} for p in b["preds"]]
    metrics = {s: {CONT: {"r2": _DtypeR2()},
                   CAT: torchmetrics.classification.MulticlassAccuracy(N_CLASSES, average="micro")}
               for s in SESSIONS[:2]}
    _DtypeR2.seen.clear()
    trainer = L.Trainer(callbacks=[MultiTaskDecodingStitchEvaluator(metrics, quiet=True)], logger=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
    got = trainer.validate(ReplayModel(), loader(items), verbose=False)[0]
    assert _DtypeR2.seen and all(p == torch.float32 and t == torch.float32 for p, t in _DtypeR2.seen)
    ref = reference_metrics(windows, "val")
    for key, value in ref.items():
        assert float(got[key]) == pytest.approx(value, abs=1e-5), key
    assert np.isfinite(got["average_val_metric"])
