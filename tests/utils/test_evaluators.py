"""Stitching evaluators driven by a tiny Lightning model through trainer.validate / test / fit,
checked against an independent pandas/numpy stitching of the same hand-built windows."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import torchmetrics
from ._stitch_helpers import (
    CAT,
    CONT,
    SESSIONS,
    ReplayModel,
    batches,
    loader,
    make_metrics,
    make_windows,
    reference_metrics,
)
from lightning.pytorch.callbacks import ModelCheckpoint

from torch_brain.registry import MODALITY_REGISTRY
from torch_brain.utils import _evaluation
from torch_brain.utils.stitcher import (
    DataForMultiTaskDecodingStitchEvaluator,
    DecodingStitchEvaluator,
    MultiTaskDecodingStitchEvaluator,
)


def _trainer(callbacks, **kwargs) -> L.Trainer:
    return L.Trainer(callbacks=callbacks, logger=False, enable_progress_bar=False, enable_model_summary=False,
                     accelerator="cpu", devices=1, **kwargs)


def _windows():
    # session windows are interleaved across batches, batches mix sessions
    w0, w1, w2 = make_windows("bs/s0", 6, 10.0), make_windows("bs/s1", 5, 3.25), make_windows("bs/s2", 4, 0.0)
    out = []
    for i in range(6):
        out += [w[i] for w in (w0, w1, w2) if i < len(w)]
    return out


def _assert_close(got: dict, ref: dict) -> None:
    for key, value in ref.items():
        assert key in got, f"{key} not logged; logged: {sorted(got)}"
        assert float(got[key]) == pytest.approx(value, abs=1e-5), key


@pytest.mark.parametrize("stage", ["val", "test"])
def test_multitask_matches_reference(stage, capsys):
    windows = _windows()
    evaluator = MultiTaskDecodingStitchEvaluator(make_metrics())
    trainer = _trainer([evaluator])
    run = trainer.validate if stage == "val" else trainer.test
    result = run(ReplayModel(), loader(batches(windows, 4)), verbose=False)[0]
    _assert_close(result, reference_metrics(windows, stage))
    assert all(task.session == [] and task.sums == [] for task in evaluator._tasks.values())  # rows freed
    # the stitched rows the metrics scored stay readable (for plots), equal to a pandas groupby
    rows = [(round(t, 6), *p, *y) for w in windows if w["session"] == "bs/s1"
            for t, p, y, m in zip(w["start"] + w["rel_c"], w["p_c"], w["y_c"], w["m_c"]) if m]
    ref = pd.DataFrame(rows, columns=["t", "p0", "p1", "y0", "y1"]).groupby("t").mean()
    seconds, pred, target = evaluator.stitched[("bs/s1", CONT)]
    np.testing.assert_allclose(seconds.numpy(), ref.index.to_numpy(), atol=1e-9)
    np.testing.assert_allclose(pred.numpy(), ref[["p0", "p1"]].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(target.numpy(), ref[["y0", "y1"]].to_numpy(), atol=1e-6)
    table = capsys.readouterr().out
    assert f"average_{stage}_metric" in table and "bs/s2" in table and "reach_direction" in table


def test_multitask_is_independent_of_batching_and_order():
    windows = _windows()
    results = []
    for size, order in ((1, windows), (7, windows[::-1])):
        trainer = _trainer([MultiTaskDecodingStitchEvaluator(make_metrics(), quiet=True)])
        results.append(trainer.validate(ReplayModel(), loader(batches(order, size)), verbose=False)[0])
    _assert_close(results[0], results[1])


def test_pool_merging_is_exact(monkeypatch):
    # force many merges of pending rows into the pooled table; results must not change
    monkeypatch.setattr(_evaluation, "_MIN_MERGE_ROWS", 5)
    windows = _windows()
    evaluator = MultiTaskDecodingStitchEvaluator(make_metrics(), quiet=True)
    result = _trainer([evaluator]).validate(ReplayModel(), loader(batches(windows, 2)), verbose=False)[0]
    _assert_close(result, reference_metrics(windows, "val"))


def test_rows_follow_distinct_times(monkeypatch):
    # the same 50 times of two sessions predicted by 40 windows: a rank keeps ~one row per time
    monkeypatch.setattr(_evaluation, "_MIN_MERGE_ROWS", 100)
    task = _evaluation._StitchedTask(CONT, ["a", "b"], {0: {"r2": torchmetrics.R2Score()}})
    times = torch.arange(50) * 1000
    for w in range(40):
        session = torch.full((50,), w % 2)
        task.update(session, times, torch.full((50, 2), float(w)), torch.ones(50, 2))
        held = sum(s.shape[0] for s in task.session)
        assert held <= 100 + 100 + 50, held
    task._merge()
    assert task.session[0].shape[0] == 100 and task.sums[0].shape[0] == 100 * 5
    counts = task.sums[0].view(100, 5)[:, 0]
    assert torch.equal(counts, torch.full((100,), 20.0, dtype=torch.float64))
    # session a saw the even windows 0, 2, ..., 38: mean prediction 19
    out = task.compute()
    assert set(out) == {"a"} and out["a"]["times"] == 50
    seconds, pred, target = task.stitched["a"]
    assert torch.allclose(seconds, times.double() * 1e-6) and torch.equal(pred, torch.full((50, 2), 19.0))


def test_single_task_default_metric_from_spec():
    windows = _windows()
    spec = MODALITY_REGISTRY[CONT]
    evaluator = DecodingStitchEvaluator(session_ids=SESSIONS, modality_spec=spec, quiet=True)
    model = ReplayModel(multitask=False)
    result = _trainer([evaluator]).validate(model, loader(batches(windows, 3, multitask=False)), verbose=False)[0]
    ref = {k: v for k, v in reference_metrics(windows, "val").items() if CONT in k}
    ref["average_val_metric"] = float(np.mean(list(ref.values())))
    _assert_close(result, ref)
    assert isinstance(evaluator.metrics["bs/s0"][CONT]["r2"], torchmetrics.R2Score)


def test_single_task_metric_factory_and_default_categorical():
    factory = DecodingStitchEvaluator(["a"], metric_factory=lambda: {"mse": torchmetrics.MeanSquaredError()})
    assert set(factory.metrics["a"]["output"]) == {"mse"}
    cat = DecodingStitchEvaluator(["a"], modality_spec=MODALITY_REGISTRY[CAT])
    metric = cat.metrics["a"][CAT]["accuracy"]
    assert isinstance(metric, torchmetrics.classification.MulticlassAccuracy) and metric.num_classes == 8


def test_default_categorical_accuracy_is_the_fraction_correct():
    # imbalanced labels: 3 of 4 correct (0.75), while the per-class mean recall would be 0.5
    metric = DecodingStitchEvaluator(["a"], modality_spec=MODALITY_REGISTRY[CAT]).metrics["a"][CAT]["accuracy"]
    metric.update(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0, 0, 1]))
    assert float(metric.compute()) == pytest.approx(0.75)


def test_checkpoint_monitors_average_val_metric(tmp_path):
    windows = _windows()

    class Trainable(ReplayModel):
        def training_step(self, batch, batch_idx):
            return self.layer(torch.ones(1, 1)).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="average_val_metric", mode="max", save_top_k=1)
    trainer = _trainer([checkpoint, MultiTaskDecodingStitchEvaluator(make_metrics(), quiet=True)],
                       max_epochs=2, num_sanity_val_steps=2)
    data = loader(batches(windows, 4))
    trainer.fit(Trainable(), train_dataloaders=data, val_dataloaders=data)
    ref = reference_metrics(windows, "val")["average_val_metric"]
    assert float(checkpoint.best_model_score) == pytest.approx(ref, abs=1e-5)
    assert list(tmp_path.glob("*.ckpt"))


# ---------------------------------------------------------------------------------------- bad input


def _validate(evaluator, items):
    return _trainer([evaluator]).validate(ReplayModel(), loader(items), verbose=False)[0]


def test_nonfinite_predictions_are_reported_not_fatal():
    windows = _windows()
    items = batches(windows, 4)
    bad = next(i for i, b in enumerate(items) if "bs/s1" in b["session_ids"])
    sample = items[bad]["session_ids"].index("bs/s1")
    items[bad]["preds"][sample][CONT][3, 0] = float("nan")
    with pytest.warns(UserWarning, match=r"non-finite .*bs/s1/cursor_velocity_2d \(1 rows\)"):
        result = _validate(MultiTaskDecodingStitchEvaluator(make_metrics(), quiet=True), items)
    assert math.isnan(result[f"bs/s1/{CONT}/r2/val"]) and math.isnan(result["average_val_metric"])
    ref = reference_metrics(windows, "val")
    assert result[f"bs/s0/{CONT}/r2/val"] == pytest.approx(ref[f"bs/s0/{CONT}/r2/val"], abs=1e-5)


def test_unknown_session_is_named_with_known_ones():
    items = batches(make_windows("bs/s2", 2, 0.0), 2)
    evaluator = MultiTaskDecodingStitchEvaluator(make_metrics(["bs/s0", "bs/s1"]), quiet=True)
    with pytest.raises(ValueError, match=r"session id 'bs/s2' .* known session ids: \['bs/s0', 'bs/s1'\]"):
        _validate(evaluator, items)


def test_empty_epoch_logs_nan_average_with_warning():
    with pytest.warns(UserWarning, match="delivered no predictions"):
        result = _validate(MultiTaskDecodingStitchEvaluator(make_metrics(), quiet=True), [])
    assert math.isnan(result["average_val_metric"])
    assert not any(k.startswith("bs/") for k in result)


def test_session_without_windows_is_not_scored():
    windows = make_windows("bs/s0", 3, 0.0)
    with pytest.warns(UserWarning, match=r"no predictions in validation for 4 session/task pair"):
        result = _validate(MultiTaskDecodingStitchEvaluator(make_metrics(), quiet=True), batches(windows, 2))
    assert f"bs/s0/{CONT}/r2/val" in result and not any("bs/s1" in k for k in result)


def _mutate(fn):
    items = batches(make_windows("bs/s0", 2, 0.0), 2)
    fn(items[0])
    return items


@pytest.mark.parametrize(
    "mutate, error, match",
    [
        (lambda b: b["preds"][0].update({CONT: b["preds"][0][CONT][:-1]}), ValueError,
         r"sample 0 .* 20 queries of task 'cursor_velocity_2d' but preds\[0\] has 19"),
        (lambda b: b["targets"].update({CONT: b["targets"][CONT][:-2]}), ValueError,
         "40 queries of this task, but 40 predictions and 38 targets"),
        (lambda b: b["eval_masks"].update({CAT: b["eval_masks"][CAT][:3]}), ValueError,
         "eval_masks has 3 entries for 10 queries"),
        (lambda b: b["targets"][CAT].__setitem__(0, 8), ValueError, r"target classes must be in \[0, 8\)"),
        (lambda b: b.update(absolute_starts=b["absolute_starts"][:1]), ValueError, "one start per sample"),
        (lambda b: b.update(session_ids=b["session_ids"][:1]), ValueError, "1 session ids"),
        (lambda b: b.update(preds=torch.zeros(3)), TypeError, "unpack_output=True"),
    ],
)
def test_bad_batches(mutate, error, match):
    items = _mutate(mutate)
    evaluator = MultiTaskDecodingStitchEvaluator(make_metrics(), quiet=True)
    with pytest.raises(error, match=match):
        _validate(evaluator, items)


def test_step_must_return_evaluator_data():
    class Wrong(ReplayModel):
        def validation_step(self, batch, batch_idx):
            return {"loss": torch.tensor(0.0)}

    evaluator = MultiTaskDecodingStitchEvaluator(make_metrics(), quiet=True)
    with pytest.raises(TypeError, match="return a DataForMultiTaskDecodingStitchEvaluator, got dict"):
        _trainer([evaluator]).validate(Wrong(), loader(batches(make_windows("bs/s0", 1, 0.0), 1)), verbose=False)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(metrics={}), TypeError, "non-empty dict"),
        (dict(metrics={"s": {CONT: 3}}), TypeError, r"metrics\['s'\]\['cursor_velocity_2d'\] must be a torchmetrics"),
        (dict(metrics={"s": {"no_such_task": torchmetrics.R2Score()}}), ValueError,
         "'no_such_task', which is not a registered modality"),
    ],
)
def test_bad_metrics(kwargs, error, match):
    with pytest.raises(error, match=match):
        MultiTaskDecodingStitchEvaluator(**kwargs)


def test_single_task_needs_spec_or_factory():
    with pytest.raises(ValueError, match="modality_spec .* or metric_factory; got neither"):
        DecodingStitchEvaluator(session_ids=["a"])
    with pytest.raises(ValueError, match="non-empty list of session id strings"):
        DecodingStitchEvaluator(session_ids="a", modality_spec=MODALITY_REGISTRY[CONT])


def test_float32_relative_times_still_stitch():
    # float32 relative times: absolute times differ by < 1 µs between windows and must still match
    windows = _windows()
    items = batches(windows, 4)
    for b in items:
        b["timestamps"] = b["timestamps"].float()
    result = _validate(MultiTaskDecodingStitchEvaluator(make_metrics(), quiet=True), items)
    _assert_close(result, reference_metrics(windows, "val"))


def test_data_class_fields_follow_the_guide():
    names = [f for f in DataForMultiTaskDecodingStitchEvaluator.__dataclass_fields__]
    assert names == ["timestamps", "preds", "targets", "decoder_indices", "eval_masks", "session_ids",
                     "absolute_starts"]


def test_one_dimensional_task_preds_n1_targets_n():
    # running_speed: the model predicts (n, 1), targets are (n,); scored as (U,) vs (U,)
    rng = np.random.default_rng(0)
    items, rows = [], []
    for w in range(4):
        start = 0.5 * w
        rel = np.arange(0, 1, 0.1)
        y = np.sin(start + rel)
        p = y + rng.normal(0, 0.3, len(rel))
        rows += [(round(start + r, 6), a, b) for r, a, b in zip(rel, p, y)]
        items.append(dict(timestamps=torch.from_numpy(rel)[None], preds=[torch.from_numpy(p).float()[:, None]],
                          targets=torch.from_numpy(y).float(), eval_masks=None, session_ids=["s"],
                          absolute_starts=torch.tensor([start], dtype=torch.float64)))
    evaluator = DecodingStitchEvaluator(["s"], modality_spec=MODALITY_REGISTRY["running_speed"], quiet=True)
    result = _trainer([evaluator]).validate(ReplayModel(multitask=False), loader(items), verbose=False)[0]
    import pandas as pd

    m = pd.DataFrame(rows, columns=["t", "p", "y"]).groupby("t").mean()
    ref = 1 - ((m.y - m.p) ** 2).sum() / ((m.y - m.y.mean()) ** 2).sum()
    assert result["s/running_speed/r2/val"] == pytest.approx(ref, abs=1e-5)


def test_metric_that_cannot_be_computed_is_nan_with_warning():
    # one timestamp only: R2 needs two; the epoch goes on, the value is NaN
    item = dict(timestamps=torch.zeros(1, 1, dtype=torch.float64), preds=[torch.ones(1, 2)],
                targets=torch.zeros(1, 2), eval_masks=None, session_ids=["s"],
                absolute_starts=torch.tensor([5.0], dtype=torch.float64))
    evaluator = DecodingStitchEvaluator(["s"], modality_spec=MODALITY_REGISTRY[CONT], quiet=True)
    with pytest.warns(UserWarning, match=r"s/cursor_velocity_2d/r2/val: R2Score could not be computed"):
        result = _trainer([evaluator]).validate(ReplayModel(multitask=False), loader([item]), verbose=False)[0]
    assert math.isnan(result["s/cursor_velocity_2d/r2/val"])


def test_task_without_metrics_is_warned_once_and_skipped():
    windows = make_windows("bs/s0", 4, 0.0)
    metrics = {"bs/s0": {CONT: {"r2": torchmetrics.R2Score()}}}
    with pytest.warns(UserWarning, match="task 'reach_direction' of session 'bs/s0' has no metrics") as record:
        result = _validate(MultiTaskDecodingStitchEvaluator(metrics, quiet=True), batches(windows, 2))
    assert sum("has no metrics" in str(w.message) for w in record) == 1
    ref = reference_metrics(windows, "val")[f"bs/s0/{CONT}/r2/val"]
    assert result[f"bs/s0/{CONT}/r2/val"] == pytest.approx(ref, abs=1e-5)
    assert result["average_val_metric"] == pytest.approx(ref, abs=1e-5)


def test_task_that_changes_kind_within_an_epoch_is_refused():
    task = _evaluation._StitchedTask(CAT, ["a"], {0: {"acc": torchmetrics.classification.MulticlassAccuracy(8)}})
    task.update(torch.zeros(3, dtype=torch.long), torch.arange(3), torch.randn(3, 8), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="predictions changed kind within the epoch"):
        task.update(torch.zeros(3, dtype=torch.long), torch.arange(3), torch.randn(3, 4), torch.tensor([1, 2, 3]))
