"""DecodingDataModule: tasks, per-session metrics, loaders, bad input."""

import numpy as np
import pytest
import torch
import torchmetrics

from tests.training.tiny_synthetic import DATASET_CONFIG
from torch_brain.registry import get_modality
from torch_brain.training import DecodingDataModule, build_metric


def test_tasks_and_metrics_from_the_dataset_config(tiny_root):
    dm = DecodingDataModule(tiny_root, str(DATASET_CONFIG), batch_size=4)
    assert dm.tasks == ["cursor_velocity_2d", "reach_direction"]
    metrics = dm.get_metrics("valid")
    assert sorted(metrics) == ["synthetic_reaching/session_00", "synthetic_reaching/session_01"]
    for per_task in metrics.values():
        assert isinstance(per_task["cursor_velocity_2d"]["r2score"], torchmetrics.R2Score)
        acc = per_task["reach_direction"]["accuracy"]
        assert isinstance(acc, torchmetrics.classification.MulticlassAccuracy) and acc.num_classes == 8
    # every session gets its own metric objects
    a, b = metrics.values()
    assert a["cursor_velocity_2d"]["r2score"] is not b["cursor_velocity_2d"]["r2score"]


def test_tasks_without_a_dataset_config(tiny_root):
    dm = DecodingDataModule(tiny_root, tasks=["cursor_velocity_2d"])
    assert dm.tasks == ["cursor_velocity_2d"]
    metrics = dm.get_metrics("test")
    assert "synthetic_reaching/heldout" in metrics  # every brainset file under root
    assert list(metrics["synthetic_reaching/heldout"]["cursor_velocity_2d"]) == ["r2"]


def test_eval_loader_covers_overlapping_windows(tiny_root):
    dm = DecodingDataModule(tiny_root, str(DATASET_CONFIG), window_length=1.0, eval_step=0.25,
                            eval_batch_size=5)
    loader = dm.val_dataloader()
    windows = list(loader.sampler)
    intervals = dm.dataset("valid").get_sampling_intervals()
    for rid, iv in intervals.items():
        mine = sorted(w.start for w in windows if w.recording_id == rid)
        assert mine[0] == pytest.approx(float(iv.start[0]))
        assert mine[-1] + 1.0 == pytest.approx(float(iv.end[0]))
        assert max(b - a for a, b in zip(mine, mine[1:])) <= 0.25 + 1e-9


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({}, ValueError, "no tasks to decode"),
        ({"tasks": ["cursor_velocity_3d"]}, ValueError, r"unknown task\(s\) \['cursor_velocity_3d'\]; registered tasks: .*cursor_velocity_2d"),
        ({"dataset_config": "nope.yaml"}, FileNotFoundError, "data.config 'nope.yaml' does not exist"),
        ({"dataset_config": str(DATASET_CONFIG), "tasks": ["running_speed"]}, ValueError, r"data.tasks \['running_speed'\] are not in the dataset config"),
        ({"tasks": ["cursor_velocity_2d"], "window_length": 0}, ValueError, "window_length must be > 0"),
    ],
)
def test_bad_input(tiny_root, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        DecodingDataModule(tiny_root, **kwargs)


def test_build_metric():
    spec = get_modality("reach_direction")
    name, metric = build_metric("balanced_accuracy", spec)
    assert name == "balanced_accuracy" and metric.average == "macro"
    name, metric = build_metric({"metric": {"_target_": "torchmetrics.MeanSquaredError"}}, spec)
    assert name == "meansquarederror"
    with pytest.raises(ValueError, match="Unknown metric 'acuracy'.*Did you mean 'accuracy'"):
        build_metric("acuracy", spec)
    with pytest.raises(TypeError, match="metrics entry must be a metric name"):
        build_metric(3, spec)


def test_pearson_of_a_2d_task_is_one_number_the_mean_over_dims():
    # the evaluators log float(metric.compute()): a per-dim vector would be logged as NaN
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    target[:, 0] += pred[:, 0]
    expected = np.mean([np.corrcoef(pred[:, k], target[:, k])[0, 1] for k in range(2)])
    name, metric = build_metric("pearson", get_modality("cursor_velocity_2d"))
    metric.update(torch.tensor(pred, dtype=torch.float32), torch.tensor(target, dtype=torch.float32))
    assert name == "pearson" and float(metric.compute()) == pytest.approx(expected, abs=1e-5)


def test_training_batches_split_across_ranks_and_resume_skips():
    from torch_brain.training.datamodule import _ResumableBatchSampler

    windows = list(range(23))
    single = [[w for w, _ in b] for b in _ResumableBatchSampler(windows, 4, seed=0)]
    assert single == [windows[i:i + 4] for i in range(0, 23, 4)]
    ranks = [[[w for w, _ in b] for b in _ResumableBatchSampler(windows, 4, seed=0, num_replicas=2, rank=r)]
             for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 3  # 6 batches -> 3 each, no rank waits
    assert ranks[0] == single[0:6:2] and ranks[1] == single[1:6:2]
    sampler = _ResumableBatchSampler(windows, 4, seed=0)
    sampler.resume = {"epoch": 0, "batches_done": 4}
    resumed = list(sampler)
    assert [[w for w, _ in b] for b in resumed] == single[4:]
    # seeds of the replayed batches are those of the uninterrupted epoch
    assert [s for _, s in resumed[0]] == [s for _, s in list(_ResumableBatchSampler(windows, 4, seed=0))[4]]
    assert [[w for w, _ in b] for b in sampler] == single  # the skip applies once
