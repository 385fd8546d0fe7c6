"""The user guide's Lightning code under DDP, written as a user writes it (run by test_guide_ddp.py).

    python _guide_ddp_script.py ROOT OUT_DIR DEVICES

A default ``L.Trainer(strategy="ddp", devices=DEVICES)`` (Lightning's ``use_distributed_sampler=True``)
and Lightning's own launcher, which starts the other ranks by running this script again. The
LightningModule follows the guide: ``training_step`` with the per-task weighted loss,
``validation_step`` returning ``DataForMultiTaskDecodingStitchEvaluator``, the stitching evaluator
as a callback, and ``val_dataloader`` / ``test_dataloader`` building
``DistributedStitchingFixedWindowSampler(..., num_replicas=trainer.world_size,
rank=trainer.global_rank)``. The training loader is the guide's ``RandomFixedWindowSampler`` in a
plain DataLoader. The learning rate is 0 so that the weights, hence the metrics, are the same
whatever the number of processes.

Each rank writes ``OUT_DIR/rank{r}.json``: per case (``fit`` = the validation inside
``trainer.fit``, ``validate``, ``test``, ``validate_one_session`` = a single sequence, so ranks
1.. hold no window), the logged metrics and the windows the rank evaluated; and the training
windows it drew in its one epoch, beside the sampler's own one-process epoch 0.
"""

from __future__ import annotations

import copy
import json
import os
import sys

import lightning as L
import torch
import torchmetrics
from torch.utils.data import DataLoader

from torch_brain.data import Dataset, collate
from torch_brain.data.sampler import DistributedStitchingFixedWindowSampler, RandomFixedWindowSampler
from torch_brain.models import POYOPlus
from torch_brain.utils.stitcher import DataForMultiTaskDecodingStitchEvaluator, MultiTaskDecodingStitchEvaluator

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs", "datasets",
                      "synthetic_reaching.yaml")
TASKS = ["cursor_velocity_2d", "reach_direction"]
WINDOW, BATCH = 1.0, 4


class NeuralDecoder(L.LightningModule):
    def __init__(self, model, eval_datasets):
        super().__init__()
        self.model = model
        self.eval_datasets = eval_datasets  # {"val": Dataset, "test": Dataset}
        self.seen = {"train": [], "val": [], "test": []}

    def training_step(self, batch, batch_idx):
        self.seen["train"] += _windows_of(batch)
        output_values = self.model(**batch["model_inputs"], unpack_output=False)
        loss = self.compute_loss(output_values, batch["target_values"], batch["target_weights"], batch)
        self.log("train_loss", loss)
        return loss

    def compute_loss(self, output_values, target_values, target_weights, batch):
        total_loss = 0.0
        batch_size = len(batch["session_id"])
        for task_name in output_values.keys():
            predictions = output_values[task_name]
            targets = target_values[task_name]
            weights = target_weights.get(task_name, None)
            spec = self.model.readout.readout_specs[task_name]
            task_loss = spec.loss_fn(predictions, targets, weights)
            num_samples = torch.any(batch["model_inputs"]["output_decoder_index"] == spec.id, dim=1).sum()
            total_loss += task_loss * num_samples
        return total_loss / batch_size

    def validation_step(self, batch, batch_idx):
        if not self.trainer.sanity_checking:
            self.seen["test" if self.trainer.testing else "val"] += _windows_of(batch)
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

    def test_step(self, batch, batch_idx):
        return self.validation_step(batch, batch_idx)

    def _eval_loader(self, dataset):
        sampler = DistributedStitchingFixedWindowSampler(
            sampling_intervals=dataset.get_sampling_intervals(),
            window_length=WINDOW,
            step=WINDOW / 2,  # 50% overlap
            batch_size=BATCH,
            num_replicas=self.trainer.world_size,
            rank=self.trainer.global_rank,
        )
        return DataLoader(dataset, sampler=sampler, batch_size=BATCH, collate_fn=collate)

    def val_dataloader(self):
        return self._eval_loader(self.eval_datasets["val"])

    def test_dataloader(self):
        return self._eval_loader(self.eval_datasets["test"])

    def configure_optimizers(self):
        # lr 0: the weights stay those of rank 0's initialisation, so every run evaluates one model
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _windows_of(batch) -> list:
    return [[s, round(float(t), 6)] for s, t in zip(batch["session_id"], batch["absolute_start"].tolist())]


def _metrics(session_ids) -> dict:
    return {s: {"cursor_velocity_2d": {"r2": torchmetrics.R2Score()},
                "reach_direction": {"acc": torchmetrics.classification.MulticlassAccuracy(8, average="micro")}}
            for s in session_ids}


def main(root: str, out_dir: str, devices: int) -> None:
    L.seed_everything(0, verbose=False)
    model = POYOPlus(sequence_length=WINDOW, latent_step=0.25, num_latents_per_step=2, dim=16, depth=1,
                     dim_head=8, cross_heads=1, self_heads=2, readout_specs=TASKS)
    train_dataset = Dataset(root, config=CONFIG, split="train", transform=model.tokenize)
    val_dataset = Dataset(root, config=CONFIG, split="valid", transform=model.tokenize)
    test_dataset = Dataset(root, config=CONFIG, split="test", transform=model.tokenize)
    one_session = Dataset(root, config=CONFIG, split="valid", transform=model.tokenize,
                          recording_ids=["synthetic_reaching/session_00"])
    model.unit_emb.initialize_vocab(train_dataset.get_unit_ids())
    model.session_emb.initialize_vocab(train_dataset.get_session_ids())

    train_sampler = RandomFixedWindowSampler(
        sampling_intervals=train_dataset.get_sampling_intervals(),
        window_length=WINDOW,
    )
    one_process_epoch = copy.deepcopy(train_sampler)
    one_process_epoch.set_epoch(0)
    reference = [[w.recording_id, round(w.start, 6)] for w in one_process_epoch]
    train_loader = DataLoader(train_dataset, sampler=train_sampler, batch_size=BATCH, collate_fn=collate)

    module = NeuralDecoder(model, {"val": val_dataset, "test": test_dataset})
    evaluator = MultiTaskDecodingStitchEvaluator(metrics=_metrics(train_dataset.get_session_ids()), quiet=True)
    quiet = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer = L.Trainer(strategy="ddp", devices=devices, accelerator="cpu", callbacks=[evaluator], **quiet)
    # Training as the guide writes it, plain "ddp": some batches hold no reach_direction query, so
    # on some ranks that readout head is absent from the batch (the readout ties it in with weight
    # 0 so that DDP's gradient reductions stay paired)
    fit_trainer = L.Trainer(strategy="ddp", devices=devices, accelerator="cpu",
                            max_epochs=1, callbacks=[evaluator], **quiet)

    out = {"train_reference": reference}

    def record(case: str, stage: str, run: L.Trainer) -> None:
        metrics = {k: float(v) for k, v in run.callback_metrics.items() if k.endswith(f"_{stage}_metric")
                   or k.endswith(f"/{stage}")}
        out[case] = {"metrics": metrics, "windows": module.seen[stage]}
        module.seen[stage] = []

    try:
        trainer.validate(module, verbose=False)
        record("validate", "val", trainer)
        trainer.test(module, verbose=False)
        record("test", "test", trainer)
        fit_trainer.fit(module, train_loader)
        out["train"] = module.seen["train"]
        record("fit", "val", fit_trainer)
        module.eval_datasets["val"] = one_session
        trainer.validate(module, verbose=False)
        record("validate_one_session", "val", trainer)
    finally:
        # leave no gloo process group for interpreter exit to tear down (an abort race otherwise)
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    out["rank"], out["world_size"] = trainer.global_rank, trainer.world_size
    with open(os.path.join(out_dir, f"rank{trainer.global_rank}.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    import faulthandler

    # a hung rank prints its stack to the log before the test kills it
    if "GUIDE_DDP_DUMP_AFTER_S" in os.environ:
        faulthandler.dump_traceback_later(float(os.environ["GUIDE_DDP_DUMP_AFTER_S"]), exit=True)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
