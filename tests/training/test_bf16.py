"""trainer.precision=bf16-mixed on CPU end to end: fit, loss, stitched evaluation, checkpoint, resume."""

import math

import lightning as L
import pytest
import torch

from torch_brain.training import evaluate, fit

from tests.training.tiny_synthetic import tiny_config


class _Kill(L.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("simulated kill")


class _Dtypes(L.Callback):
    """Records the dtypes of the training loss and of every nn.Linear output in training steps."""

    def __init__(self):
        self.loss, self.linear = set(), set()

    def on_train_start(self, trainer, pl_module):
        for module in pl_module.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(lambda mod, args, out: self.linear.add(out.dtype))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.loss.add(outputs["loss"].dtype)


@pytest.mark.slow
def test_bf16_mixed_fit_evaluate_resume(tiny_root, tmp_path):
    config = tiny_config(tiny_root, trainer={"max_steps": 6, "steps_per_epoch": 3, "precision": "bf16-mixed"},
                         checkpoint={"every_n_train_steps": 1})
    dtypes = _Dtypes()
    fit(config, run_dir=tmp_path / "straight", callbacks=[dtypes])
    assert dtypes.linear == {torch.bfloat16}  # the matmuls ran in bf16 (autocast on CPU)
    assert dtypes.loss == {torch.float32}  # the loss is reduced in float32
    ckpt = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 6
    # weights stay float32 (mixed precision autocasts the matmuls only)
    assert all(v.dtype == torch.float32 for v in ckpt["state_dict"].values()
               if torch.is_tensor(v) and v.is_floating_point())
    res = evaluate(tmp_path / "straight", stage="test")
    values = [v for task in res["sessions"].values() for m in task.values() for v in m.values()]
    assert values and all(math.isfinite(v) for v in values)
    # killed at step 4 and resumed: the very weights of the uninterrupted run
    with pytest.raises(RuntimeError, match="simulated kill"):
        fit(config, run_dir=tmp_path / "killed", callbacks=[_Kill(4)])
    fit(config, run_dir=tmp_path / "killed", resume=True)
    resumed = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 6
    for key, value in ckpt["state_dict"].items():
        if torch.is_tensor(value):
            torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=0, msg=key)
