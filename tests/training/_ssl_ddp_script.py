"""Pretraining under DDP, written as a user writes it (run by test_ssl_ddp.py).

    python _ssl_ddp_script.py ROOT OUT_DIR DEVICES

``SSLPretrainModule`` + ``SSLDataModule`` and a plain ``L.Trainer(strategy="ddp", devices=DEVICES,
accelerator="cpu")`` started as a script, so that Lightning's own launcher starts the other ranks
(gloo). Each rank writes ``OUT_DIR/rank{r}.json``: the validation metrics of the initial weights,
the masked cells of every training batch it trained on (a fingerprint of the batch), and after a
few training steps its step count, a checksum of every parameter and the validation metrics
of the trained weights.
"""

from __future__ import annotations

import json
import os
import sys

import lightning as L
import torch

from torch_brain.training import SSLDataModule, SSLPretrainModule

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs", "datasets",
                      "synthetic_reaching.yaml")
ENCODER = {"name": "poyo", "dim": 16, "depth": 1, "dim_head": 8, "cross_heads": 1, "self_heads": 2,
           "latent_step": 0.25, "num_latents_per_step": 2}
STEPS = 4


class Fingerprints(L.Callback):
    def __init__(self) -> None:
        self.batches: list[list] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.batches.append([list(batch["session_id"]), float(batch["target_counts"].sum()),
                             int(batch["target_counts"].numel())])


def _metrics(trainer: L.Trainer) -> dict:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}


def main(root: str, out_dir: str, devices: int) -> None:
    L.seed_everything(0, verbose=False)
    module = SSLPretrainModule({"encoder": ENCODER, "ssl": {"name": "masked_spikes", "mask_ratio": 0.3},
                                "optimizer": {"name": "adamw", "lr": 3e-3}, "scheduler": None})
    dm = SSLDataModule(root, CONFIG, batch_size=4)
    prints = Fingerprints()
    quiet = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer = L.Trainer(strategy="ddp", devices=devices, accelerator="cpu", max_steps=STEPS, callbacks=[prints],
                        **quiet)
    out: dict = {}
    try:
        trainer.validate(module, datamodule=dm, verbose=False)
        out["validate_initial"] = _metrics(trainer)
        trainer.fit(module, datamodule=dm)
        out["global_step"] = trainer.global_step
        trainer.validate(module, datamodule=dm, verbose=False)
        out["validate_trained"] = _metrics(trainer)
        out["batches"] = prints.batches
        out["checksums"] = {n: float(p.detach().double().abs().sum()) for n, p in module.named_parameters()}
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    out["rank"], out["world_size"] = trainer.global_rank, trainer.world_size
    with open(os.path.join(out_dir, f"rank{trainer.global_rank}.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    import faulthandler

    if "SSL_DDP_DUMP_AFTER_S" in os.environ:
        faulthandler.dump_traceback_later(float(os.environ["SSL_DDP_DUMP_AFTER_S"]), exit=True)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
