"""Fine-tuning: transfer a pretrained POYO+ to a recording session it has never seen.

The held-out session of the synthetic reaching set ("heldout") has units the pretrained model
never saw. Transfer, step by step with the library's building blocks:

1. ``POYOPlus.load_pretrained(checkpoint, readout_specs=..., skip_readout=True)``: weights,
   hyper-parameters and unit/session vocabularies from the checkpoint; fresh readout heads;
2. the new session's unit and session ids are added to the vocabularies (``extend_vocab``, done
   by ``NeuralDecoder.init_vocab``);
3. unit identification: ``freeze_for_unit_identification`` freezes every weight except the new
   embedding rows, which are trained for a few steps;
4. full fine-tuning of every weight, then a stitched test on the held-out session.

For comparison the same model is trained from scratch on the held-out session with the same
number of steps (``--no-scratch`` skips it).

Run::

    python examples/finetune/finetune.py                               # pretrains first (minutes)
    python examples/finetune/finetune.py --checkpoint runs/demo/poyo_plus/checkpoints/last.ckpt
    python examples/finetune/finetune.py --smoke                       # a few steps (CI)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L

from torch_brain.brainsets import prepare
from torch_brain.models import POYOPlus, freeze_for_unit_identification
from torch_brain.registry import get_modality
from torch_brain.training import DecodingDataModule, NeuralDecoder, fit, session_table
from torch_brain.utils.stitcher import MultiTaskDecodingStitchEvaluator

REPO = Path(__file__).resolve().parents[2]
TRAIN_CONFIG = REPO / "configs" / "datasets" / "synthetic_reaching.yaml"
HELDOUT_CONFIG = REPO / "configs" / "datasets" / "synthetic_reaching_heldout.yaml"
TASKS = ["cursor_velocity_2d", "reach_direction"]
OPTIMIZER = {"name": "adamw", "lr": 2e-3, "weight_decay": 1e-4}
SCHEDULER = {"name": "warmup_cosine", "warmup_fraction": 0.1, "final_factor": 0.01}
MODEL = {"dim": 64, "depth": 2, "dim_head": 32, "cross_heads": 2, "self_heads": 4,
         "latent_step": 0.125, "num_latents_per_step": 16, "ffn_dropout": 0.0, "lin_dropout": 0.0}


def pretrain(root: Path, out: Path, steps: int, batch_size: int) -> Path:
    """Trains POYO+ on the training sessions (the held-out one excluded); returns last.ckpt."""
    config = {
        "name": "pretrain",
        "data": {"root": str(root), "config": str(TRAIN_CONFIG), "batch_size": batch_size},
        "model": {"name": "poyo_plus", **MODEL},
        "optimizer": OPTIMIZER,
        "scheduler": SCHEDULER,
        "trainer": {"max_steps": steps, "accelerator": "cpu", "limit_val_batches": 0},
        "checkpoint": {"save_top_k": 0, "save_last": True},
        "logging": {"tensorboard": False, "plots": False, "quiet": True},
    }
    fit(config, run_dir=out, overwrite=True)
    return out / "checkpoints" / "last.ckpt"


def _trainer(steps: int, out: Path, callbacks: list | None = None) -> L.Trainer:
    return L.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", devices=1,
                     default_root_dir=str(out), callbacks=callbacks or [], logger=False,
                     enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0,
                     enable_model_summary=False, log_every_n_steps=10)


def _test(module: NeuralDecoder, dm: DecodingDataModule, out: Path) -> dict:
    evaluator = MultiTaskDecodingStitchEvaluator(metrics=dm.get_metrics("test"))
    trainer = _trainer(1, out, [evaluator])
    trainer.test(module, datamodule=dm, verbose=False)
    return session_table({k: float(v) for k, v in trainer.callback_metrics.items()}, "test")


def transfer(checkpoint: Path, root: Path, out: Path, uid_steps: int, steps: int,
             batch_size: int) -> dict:
    """Transfers ``checkpoint`` to the held-out session; returns its test metrics."""
    # 1. pretrained weights and vocabularies, fresh readouts for the tasks of the new session
    model = POYOPlus.load_pretrained(
        checkpoint, readout_specs={t: get_modality(t) for t in TASKS}, skip_readout=True,
    )
    known_units = set(model.unit_emb.vocab)
    known_sessions = set(model.session_emb.vocab)

    # 2. the new session's data; its units and session are added to the vocabularies
    dm = DecodingDataModule(root, HELDOUT_CONFIG, batch_size=batch_size)
    module = NeuralDecoder(model, optimizer=OPTIMIZER, scheduler=SCHEDULER)
    module.init_vocab(dm)
    new_units = [u for u in dm.get_unit_ids() if u not in known_units]
    new_sessions = [s for s in dm.get_session_ids() if s not in known_sessions]
    print(f"transfer: {len(new_units)} new units, new session(s) {new_sessions}")

    # 3. unit identification: only the new embedding rows learn
    handle = freeze_for_unit_identification(model, new_units, new_sessions)
    _trainer(uid_steps, out).fit(module, datamodule=dm)
    handle.remove()

    # 4. full fine-tuning, then the stitched test
    _trainer(steps, out).fit(module, datamodule=dm)
    return _test(module, dm, out)


def from_scratch(root: Path, out: Path, steps: int, batch_size: int) -> dict:
    """The same model trained on the held-out session alone, for the same number of steps."""
    dm = DecodingDataModule(root, HELDOUT_CONFIG, batch_size=batch_size)
    module = NeuralDecoder("poyo_plus", tasks=TASKS, model_kwargs=MODEL, optimizer=OPTIMIZER,
                           scheduler=SCHEDULER)
    _trainer(steps, out).fit(module, datamodule=dm)
    return _test(module, dm, out)


def _print(name: str, table: dict) -> None:
    for session, tasks in table.items():
        values = "   ".join(f"{task} {m}={v:.3f}" for task, ms in tasks.items() for m, v in ms.items())
        print(f"  {name:<22} {session}: {values}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="./processed", help="folder of the prepared brainsets")
    parser.add_argument("--out", default="./runs/finetune_example", help="output folder")
    parser.add_argument("--checkpoint", default=None,
                        help="pretrained checkpoint (default: pretrain on the training sessions)")
    parser.add_argument("--pretrain-steps", type=int, default=600)
    parser.add_argument("--unit-id-steps", type=int, default=100, help="unit identification steps")
    parser.add_argument("--steps", type=int, default=200, help="full fine-tuning steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-scratch", action="store_true", help="skip the from-scratch comparison")
    parser.add_argument("--smoke", action="store_true", help="a few steps on a tiny set (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.pretrain_steps, args.unit_id_steps, args.steps, args.batch_size = 2, 2, 2, 8
    L.seed_everything(0, verbose=False)
    root, out = Path(args.root), Path(args.out)

    if not (root / "synthetic_reaching" / "heldout.h5").is_file():
        size = {"n_sessions": 2, "minutes": 1.5, "n_units": 30} if args.smoke else {}
        prepare("synthetic_reaching", root, **size)
    checkpoint = Path(args.checkpoint) if args.checkpoint else \
        pretrain(root, out / "pretrain", args.pretrain_steps, args.batch_size)

    result = {"transfer": transfer(checkpoint, root, out / "transfer", args.unit_id_steps, args.steps,
                                   args.batch_size)}
    if not args.no_scratch:
        result["scratch"] = from_scratch(root, out / "scratch", args.unit_id_steps + args.steps,
                                         args.batch_size)
    print("\nHeld-out session, test split (stitched):")
    _print("transfer (fine-tuned)", result["transfer"])
    if "scratch" in result:
        _print("from scratch", result["scratch"])
    return result


if __name__ == "__main__":
    main()
