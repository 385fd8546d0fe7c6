"""``trainer.precision: bf16-mixed`` on CPU end to end: fit, checkpoint, kill, resume (weights equal
to the uninterrupted run's), evaluate (stitched metrics finite, from float predictions)."""

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
    """Records the dtype of the model's raw output and of the predictions handed to the evaluator."""

    def __init__(self):
        self.raw, self.preds = set(), set()

    def on_fit_start(self, trainer, pl_module):
        def hook(module, args, output):
            values = output.values() if isinstance(output, dict) else output
            self.raw.update(v.dtype for v in values if torch.is_tensor(v))

        pl_module.model.register_forward_hook(hook)  # no extra forward: the RNG streams stay as they are

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        for sample in outputs.preds:
            self.preds.update(p.dtype for p in sample.values())


def _state(run_dir):
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return state["state_dict"], state["global_step"]


@pytest.mark.slow
def test_bf16_mixed_fit_resume_evaluate(tiny_root, tmp_path):
    config = tiny_config(
        tiny_root,
        trainer={"max_steps": 6, "steps_per_epoch": 3, "precision": "bf16-mixed"},
        checkpoint={"every_n_train_steps": 1},
        data={"unit_dropout": {"min_units": 4, "mode_units": 8, "max_units": 12}},
    )
    dtypes = _Dtypes()
    fit(config, run_dir=tmp_path / "straight", callbacks=[dtypes])
    assert torch.bfloat16 in dtypes.raw  # the model really ran in bf16 ...
    assert dtypes.preds == {torch.float32}  # ... and the evaluator got float32 predictions
    with pytest.raises(RuntimeError, match="simulated kill"):
        fit(config, run_dir=tmp_path / "killed", callbacks=[_Kill(4)])
    fit(config, run_dir=tmp_path / "killed", resume=True)
    straight, n1 = _state(tmp_path / "straight")
    resumed, n2 = _state(tmp_path / "killed")
    assert n1 == n2 == 6
    for key in straight:
        if torch.is_tensor(straight[key]):
            assert straight[key].dtype != torch.bfloat16, key  # weights stay float32 under mixed precision
            torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=key)
    result = evaluate(tmp_path / "killed", stage="test")
    assert math.isfinite(result["average"]) and math.isfinite(result["loss"])
    for tasks in result["sessions"].values():
        for metrics in tasks.values():
            assert all(math.isfinite(v) for v in metrics.values())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_mixed_fit_and_evaluate_on_cuda(tiny_root, tmp_path):
    config = tiny_config(tiny_root, trainer={"max_steps": 4, "precision": "bf16-mixed", "accelerator": "gpu"})
    fit(config, run_dir=tmp_path / "run")
    result = evaluate(tmp_path / "run", stage="test")
    assert math.isfinite(result["average"]) and math.isfinite(result["loss"])
