"""Evaluation under DDP when some rank holds no evaluation window (issue 5).

With fewer sequences than ranks, DistributedStitchingFixedWindowSampler gives some rank no window.
Lightning skips the evaluation loop (hooks included) of a rank whose loader has length 0, so that
rank would never join the metric reduction. The sampler then reports no length on any rank, so
neither does the datamodule's loader; these tests check that Lightning still runs the hooks of the
empty rank, and that a real two-process run with Lightning's defaults (use_distributed_sampler=True)
finishes with the metrics of a one-process run.
"""

from __future__ import annotations

import copy
import json
import socket
import time
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.multiprocessing as mp
from lightning.fabric.utilities.data import sized_len

from tests.training.tiny_synthetic import DATASET_CONFIG, TINY_MODEL
from torch_brain.training import DecodingDataModule, NeuralDecoder

# one session: its validation split is a single interval, i.e. one sequence for two ranks
_ONE_SESSION = [{
    "selection": [{"brainset": "synthetic_reaching", "sessions": ["session_00"]}],
    "config": {"multitask_readout": [{"readout_id": "cursor_velocity_2d"}]},
}]


def _fake_trainer(world: int, rank: int, use_distributed_sampler: bool = True) -> SimpleNamespace:
    return SimpleNamespace(world_size=world, global_rank=rank, _accelerator_connector=SimpleNamespace(
        use_distributed_sampler=use_distributed_sampler))


def _datamodule(root, rank: int | None = None, world: int = 2) -> DecodingDataModule:
    dm = DecodingDataModule(root, _ONE_SESSION, window_length=1.0, eval_batch_size=4)
    if rank is not None:
        dm.trainer = _fake_trainer(world, rank)
    return dm


class _HookCounter(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.calls = {"start": 0, "end": 0, "steps": 0}

    def validation_step(self, batch, batch_idx):
        self.calls["steps"] += 1

    def on_validation_epoch_start(self) -> None:
        self.calls["start"] += 1

    def on_validation_epoch_end(self) -> None:
        self.calls["end"] += 1


def _run_hooks(loader) -> dict[str, int]:
    module = _HookCounter()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    trainer.validate(module, loader, verbose=False)
    return module.calls


def test_rank_without_windows_gets_an_unsized_empty_loader_whose_hooks_run(tiny_root):
    n_windows = len(_datamodule(tiny_root).val_dataloader().sampler)  # one process: every window
    assert n_windows > 0
    owner, empty = _datamodule(tiny_root, rank=0), _datamodule(tiny_root, rank=1)
    loader0, loader1 = owner.val_dataloader(), empty.val_dataloader()
    assert loader0.sampler.windows_per_rank == [n_windows, 0]
    # no length on either rank: Lightning's cross-rank length check (a collective) is skipped on
    # both, and it iterates each loader until it is exhausted
    assert sized_len(loader0) is None and sized_len(loader1) is None
    assert list(iter(loader1)) == []
    assert len(list(loader0.sampler)) == n_windows
    # the empty rank's evaluation loop still runs its epoch hooks (a length-0 loader would not)
    assert _run_hooks(loader1) == {"start": 1, "end": 1, "steps": 0}
    assert _run_hooks(torch.utils.data.DataLoader([])) == {"start": 0, "end": 0, "steps": 0}
    # the test loader follows the same rule
    assert sized_len(empty.test_dataloader()) is None


def test_loaders_keep_their_length_when_every_rank_has_windows(tiny_root):
    dm = DecodingDataModule(tiny_root, str(DATASET_CONFIG), window_length=1.0, eval_batch_size=4)
    dm.trainer = _fake_trainer(2, 1)  # two sessions, one sequence each: both ranks have windows
    loader = dm.val_dataloader()
    assert min(loader.sampler.windows_per_rank) > 0
    assert len(loader) == -(-len(loader.sampler) // 4)


def test_loaders_are_left_alone_under_lightnings_default_distributed_sampler(tiny_root):
    """Lightning wraps a loader's sampler unless it is a torch DistributedSampler (issue 13)."""
    dm = DecodingDataModule(tiny_root, str(DATASET_CONFIG), window_length=1.0, eval_batch_size=4)
    dm.trainer = _fake_trainer(2, 1, use_distributed_sampler=True)
    dm.tokenizer = lambda data: data
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        assert isinstance(loader.sampler, torch.utils.data.DistributedSampler)
        assert (loader.sampler.num_replicas, loader.sampler.rank) == (2, 1)


# ------------------------------------------------------------------ real two-process run
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _validate(module: NeuralDecoder, root, devices: int) -> dict[str, float]:
    from torch_brain.utils.stitcher import MultiTaskDecodingStitchEvaluator

    dm = _datamodule(root)
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                        logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False,
                        callbacks=[MultiTaskDecodingStitchEvaluator(dm.get_metrics("valid"), quiet=True)])
    trainer.validate(module, datamodule=dm, verbose=False)
    out = {k: float(v) for k, v in trainer.callback_metrics.items()}
    out["windows_of_this_rank"] = trainer.val_dataloaders.sampler.num_samples
    return out


def _ddp_worker(rank: int, port: int, out_dir: str, module: NeuralDecoder, root: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank), NODE_RANK="0")
    torch.set_num_threads(1)
    try:
        metrics = _validate(module, root, devices=2)
    finally:
        # leave no gloo process group for interpreter exit to tear down (an abort race otherwise)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(metrics, f)


@pytest.mark.slow
def test_two_process_validation_with_an_empty_rank_matches_one_process(tiny_root, tmp_path):
    torch.manual_seed(0)
    dm = _datamodule(tiny_root)
    module = NeuralDecoder("poyo_plus", tasks=dm.tasks, model_kwargs=TINY_MODEL, normalization="none")
    module.init_vocab(dm)
    module_ddp = copy.deepcopy(module)
    single = _validate(module, tiny_root, devices=1)
    assert "average_val_metric" in single

    context = mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path), module_ddp, str(tiny_root)),
                       nprocs=2, join=False)
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("two-process validation with an empty rank did not finish in 120 s (hang)")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["windows_of_this_rank"] for r in ranks] == [single["windows_of_this_rank"], 0]
    for rank in ranks:  # every rank logs the reduced values of the whole validation set
        for key in ("average_val_metric", "val_loss"):
            assert rank[key] == pytest.approx(single[key], abs=1e-6), key


def test_a_sampler_rewrapped_by_lightning_is_refused_before_evaluating(tiny_root):
    """A non-distributed evaluation sampler under DDP would be dealt out round-robin by Lightning."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    from torch_brain.data.sampler import SequentialFixedWindowSampler
    from torch_brain.training.module import _refuse_rewrapped_eval_sampler

    dm = _datamodule(tiny_root, rank=0)
    ours = dm.val_dataloader()
    wrapped = torch.utils.data.DataLoader([], sampler=DistributedSamplerWrapper(
        SequentialFixedWindowSampler(dm.dataset("valid").get_sampling_intervals(), 1.0), num_replicas=2, rank=0))
    two = SimpleNamespace(world_size=2)
    _refuse_rewrapped_eval_sampler(two, ours, "validation")  # ours is left alone: fine
    _refuse_rewrapped_eval_sampler(SimpleNamespace(world_size=1), wrapped, "test")  # one process: fine
    with pytest.raises(ValueError, match=r"validation loader's sampler \(SequentialFixedWindowSampler\) was "
                                         r"wrapped.*DistributedStitchingFixedWindowSampler"):
        _refuse_rewrapped_eval_sampler(two, [ours, wrapped], "validation")
