"""The user guide's "Complete Training Script", runnable.

The guide (docs/guide.md, "Complete Training Script") leaves a few placeholders; here they are
filled and nothing else changes in spirit:

- ``NeuralDecoder`` is the guide's LightningModule (its "Lightning Module Setup", "Loss
  Computation" and "Multi-Task Evaluation" sections), defined below;
- ``./processed`` is produced by the synthetic reaching brainset when it is empty;
- ``config.yaml`` is the file beside this script (cursor velocity + reach direction, with the
  guide's sample weights);
- ``val_loader`` draws overlapping windows with ``DistributedStitchingFixedWindowSampler`` and
  the evaluator's ``metrics`` are one torchmetrics metric per session and task;
- the accelerator is chosen automatically (CPU when there is no GPU), and the model is smaller
  and trained for a fixed number of steps so the script finishes in minutes on a laptop CPU
  (``--dim 256 --depth 4 --latent-step 0.05`` gives the guide's exact size).

Run from any folder (``./processed`` and ``./runs`` are created in the current folder)::

    python examples/poyo_plus/train.py            # a few minutes on CPU
    python examples/poyo_plus/train.py --smoke    # a few steps on a tiny set (CI)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
import torch
import torchmetrics
from torch.utils.data import DataLoader

from torch_brain.brainsets import prepare
from torch_brain.data import Dataset, collate
from torch_brain.data.sampler import DistributedStitchingFixedWindowSampler, RandomFixedWindowSampler
from torch_brain.models import POYOPlus
from torch_brain.optim import SparseLamb
from torch_brain.registry import DataType
from torch_brain.training import build_scheduler
from torch_brain.transforms import Compose, UnitDropout
from torch_brain.utils.stitcher import (
    DataForMultiTaskDecodingStitchEvaluator,
    MultiTaskDecodingStitchEvaluator,
)

HERE = Path(__file__).resolve().parent


class NeuralDecoder(L.LightningModule):
    """The guide's LightningModule: weighted multi-task loss, stitched validation, SparseLamb.

    Args:
        model_config: keyword arguments of POYOPlus, or a built POYOPlus (as the guide's script
            passes); its hyper-parameters are saved so ``load_from_checkpoint`` rebuilds it.
        lr: peak learning rate of SparseLamb.
    """

    def __init__(self, model_config, lr=4e-3):
        super().__init__()
        if isinstance(model_config, POYOPlus):
            model, model_config = model_config, model_config.hparams
        else:
            model = POYOPlus(**model_config)
        self.save_hyperparameters({"model_config": model_config, "lr": lr})
        self.model = model

    def forward(self, **kwargs):
        return self.model(**kwargs)

    def training_step(self, batch, batch_idx):
        output_values = self.model(**batch["model_inputs"], unpack_output=False)

        loss = self.compute_loss(
            output_values,
            batch["target_values"],
            batch["target_weights"],
            batch,
        )
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["session_id"]))
        return loss

    def compute_loss(self, output_values, target_values, target_weights, batch):
        """The guide's "Loss Computation": per-task loss, weighted by the samples holding the task."""
        total_loss = 0.0
        batch_size = len(batch["session_id"])

        for task_name in output_values.keys():
            predictions = output_values[task_name]
            targets = target_values[task_name]
            weights = target_weights.get(task_name, None)

            # Get the loss function from the modality spec
            spec = self.model.readout.readout_specs[task_name]
            task_loss = spec.loss_fn(predictions, targets, weights)

            # Weight by number of samples containing this task
            num_samples = torch.any(
                batch["model_inputs"]["output_decoder_index"] == spec.id, dim=1
            ).sum()

            total_loss += task_loss * num_samples

        return total_loss / batch_size

    def validation_step(self, batch, batch_idx):
        """The guide's "Multi-Task Evaluation": return what the stitching evaluator needs."""
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

    def configure_optimizers(self):
        optimizer = SparseLamb(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        # Linear warm-up then cosine decay: a schedule that starts at its peak learning rate can
        # stall for hundreds of steps (see benchmarks/RESULTS.md, "Accuracy and recipes").
        scheduler = build_scheduler(
            optimizer, "warmup_cosine", total_steps=self.trainer.estimated_stepping_batches,
            warmup_fraction=0.1, final_factor=0.01,
        )
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def build_metrics(dataset: Dataset, tasks: list[str]) -> dict:
    """``{session_id: {task: metric}}``: R² for continuous tasks, accuracy for class labels."""
    from torch_brain.registry import get_modality

    metrics = {}
    for session_id in dataset.get_session_ids():
        metrics[session_id] = {}
        for task in tasks:
            spec = get_modality(task)
            if spec.type == DataType.CONTINUOUS:
                metrics[session_id][task] = torchmetrics.R2Score()
            else:
                metrics[session_id][task] = torchmetrics.Accuracy(task="multiclass", num_classes=spec.dim)
    return metrics


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="./processed", help="folder of the prepared brainsets")
    parser.add_argument("--config", default=str(HERE / "config.yaml"), help="dataset config")
    parser.add_argument("--steps", type=int, default=600, help="training steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--latent-step", type=float, default=0.125)
    parser.add_argument("--out", default="./runs/poyo_plus_example", help="checkpoints and logs")
    parser.add_argument("--smoke", action="store_true", help="a few steps on a tiny set (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.batch_size = 3, 8
    L.seed_everything(0, verbose=False)

    # 0. Data: the synthetic reaching brainset in ./processed (prepared once)
    root = Path(args.root)
    if not any((root / "synthetic_reaching").glob("*.h5")):
        size = {"n_sessions": 2, "minutes": 1.5, "n_units": 30} if args.smoke else {}
        prepare("synthetic_reaching", root, **size)

    # 1. Setup model and transforms
    model = POYOPlus(
        sequence_length=1.0, latent_step=args.latent_step, dim=args.dim, depth=args.depth,
        readout_specs=["cursor_velocity_2d", "reach_direction"],
    )

    transform = Compose([
        UnitDropout(min_units=20, mode_units=100),
        model.tokenize,
    ])

    # 2. Setup datasets (validation windows are not augmented)
    train_dataset = Dataset(root, config=args.config, split="train", transform=transform)
    val_dataset = Dataset(root, config=args.config, split="valid", transform=model.tokenize)

    # 3. Initialize vocabularies
    model.unit_emb.initialize_vocab(train_dataset.get_unit_ids())
    model.session_emb.initialize_vocab(train_dataset.get_session_ids())

    # 4. Setup samplers and dataloaders
    train_sampler = RandomFixedWindowSampler(
        sampling_intervals=train_dataset.get_sampling_intervals(),
        window_length=1.0,
        generator=torch.Generator().manual_seed(0),
    )

    train_loader = DataLoader(
        train_dataset, sampler=train_sampler, batch_size=args.batch_size, collate_fn=collate,
        drop_last=True,
    )

    val_sampler = DistributedStitchingFixedWindowSampler(
        sampling_intervals=val_dataset.get_sampling_intervals(),
        window_length=1.0,
        step=0.5,  # 50% overlap
        batch_size=64,
        num_replicas=1,  # one process; with DDP: trainer.world_size and trainer.global_rank
        rank=0,
    )
    val_loader = DataLoader(val_dataset, sampler=val_sampler, batch_size=64, collate_fn=collate)

    # 5. Create Lightning module and trainer
    module = NeuralDecoder(model, lr=args.lr)
    evaluator = MultiTaskDecodingStitchEvaluator(
        metrics=build_metrics(val_dataset, ["cursor_velocity_2d", "reach_direction"])
    )

    trainer = L.Trainer(
        max_steps=args.steps,
        max_epochs=-1,
        check_val_every_n_epoch=None,
        val_check_interval=args.steps,  # validate once, at the end
        callbacks=[evaluator],
        accelerator="auto",
        devices=1,
        default_root_dir=args.out,
        num_sanity_val_steps=0,
        limit_val_batches=2 if args.smoke else None,
        log_every_n_steps=10,
    )

    # 6. Train
    trainer.fit(module, train_loader, val_loader)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if "/" in k or "average" in k}
    print(f"average_val_metric: {metrics.get('average_val_metric')}")
    return metrics


if __name__ == "__main__":
    main()
