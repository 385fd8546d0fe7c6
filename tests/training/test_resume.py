"""A run killed at step N/2 and resumed ends with exactly the weights of the uninterrupted run."""

import lightning as L
import pytest
import torch

from torch_brain.training import fit

from tests.training.tiny_synthetic import tiny_config


class _Kill(L.Callback):
    """Raises after ``step`` optimiser steps (after the checkpoint callbacks ran)."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("simulated kill")


def _weights(run_dir):
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return state["state_dict"], state["global_step"]


@pytest.mark.slow
@pytest.mark.parametrize("kill_at, validate", [(5, False), (7, True)])  # mid-epoch; epoch end
def test_resume_reproduces_uninterrupted_run(tiny_root, tmp_path, kill_at, validate):
    # 8 steps in epochs of 3 batches: the kill lands mid-epoch (after batch 2 of epoch 1);
    # model dropout and unit dropout are on, so RNG state and sampler position both matter
    config = tiny_config(
        tiny_root,
        trainer={"max_steps": 8, "steps_per_epoch": 3, "limit_val_batches": None if validate else 0},
        checkpoint={"every_n_train_steps": 1},
        data={"unit_dropout": {"min_units": 4, "mode_units": 8, "max_units": 12}},
    )
    fit(config, run_dir=tmp_path / "straight")
    with pytest.raises(RuntimeError, match="simulated kill"):
        fit(config, run_dir=tmp_path / "killed", callbacks=[_Kill(kill_at)])
    _, step = _weights(tmp_path / "killed")
    # Lightning runs checkpoint callbacks after the others: the kill came before step 5's save
    assert step == kill_at - 1
    with pytest.raises(ValueError, match="already exists"):
        fit(config, run_dir=tmp_path / "killed")
    fit(config, run_dir=tmp_path / "killed", resume=True)
    straight, n1 = _weights(tmp_path / "straight")
    resumed, n2 = _weights(tmp_path / "killed")
    assert n1 == n2 == 8
    assert straight.keys() == resumed.keys()
    for key in straight:
        if torch.is_tensor(straight[key]):
            torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=key)
