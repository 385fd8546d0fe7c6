"""Does self-supervised pretraining help a new session with few labels? (issue 15)

1. Pretrain a POYO encoder with ``masked_spikes`` on unlabelled sessions (``--config``: a dataset
   config; their behaviour is never read).
2. Keep only the first ``--label-fraction`` (10 %) of the held-out session's training domain
   (``--heldout``: a dataset config of that session; a copy of its file with the shortened
   ``train_domain`` is written to a scratch root, nothing of the user's is modified).
3. Fine-tune POYO from the encoder on those labels (new readout, new unit/session embeddings),
   and train the same POYO from scratch on the same labels, with the same number of steps (a
   frozen first phase counts), once per ``--finetune-seeds`` seed (default 0, 1, 2).
4. Test both on the held-out session's test split (stitched R², ``torch_brain.training.evaluate``);
   the figures are the means over the seeds (per seed in ``*_per_seed``).

Recipe flags (the defaults are the measured best recipe, see docs/pretraining.md):
``--pretrain-heldout`` also pretrains on the held-out session's training split (its spikes only:
its behaviour is never read, and its test split is never seen before testing), so the encoder
knows the new units before the few labels arrive; ``--freeze-encoder`` / ``--freeze-encoder-steps``
/ ``--encoder-lr-scale`` choose how the encoder is fine-tuned; ``--rate-init``, ``--mask-kind``,
``--mask-ratio``, ``--pretrain-lr`` the pretraining objective.

Also measured: the masked-count bits/spike of the pretrained encoder on the validation windows
of the pretraining sessions, and pretraining throughput (windows/s) of ``masked_spikes`` and of
``masked_signal`` (on the synthetic LFP, when the recordings have ``lfp.signal``).

Prints one JSON line. Without ``--root`` a small synthetic set is generated in a scratch folder.

    python benchmarks/ssl_transfer.py                                    # synthetic, small (~2 min)
    python benchmarks/ssl_transfer.py --root data/processed \
        --config configs/datasets/synthetic_reaching.yaml --heldout configs/datasets/synthetic_reaching_heldout.yaml
    python benchmarks/ssl_transfer.py --root ROOT --config PRETRAIN.yaml \
        --heldout configs/datasets/spykesml_m1.yaml --task hand_velocity_2d --signal-steps 0   # real M1 (~5 min)
    python benchmarks/ssl_transfer.py --work W ...; python benchmarks/ssl_transfer.py --work W --reuse-pretrain \
        --arms pretrained --freeze-encoder-steps 50                   # another fine-tuning recipe, same encoder

Other recipes: ``--pretrain-lr 2e-3`` (pretrains faster, transfers worse), ``--freeze-encoder``,
``--encoder-lr-scale 0.1``, ``--no-pretrain-heldout``, ``--mask-kind time``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _quiet() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return stack


def _few_labels_root(root: Path, heldout: str, fraction: float, out: Path) -> tuple[Path, float]:
    """Copy the held-out recordings into ``out`` with the first ``fraction`` of their train domain."""
    import h5py

    from torch_brain.brainsets._common import write_data
    from torch_brain.data import Data, Dataset, Interval

    kept = 0.0
    for rid in Dataset(root, heldout).get_recording_ids():
        brainset, session = rid.split("/", 1)
        with h5py.File(root / brainset / f"{session}.h5", "r") as f:
            data = Data.from_hdf5(f, lazy=False)
        starts, ends = np.asarray(data.train_domain.start), np.asarray(data.train_domain.end)
        budget = fraction * float(np.sum(ends - starts))
        new_s, new_e = [], []
        for s, e in zip(starts, ends):
            if budget <= 0:
                break
            new_s.append(s)
            new_e.append(min(e, s + budget))
            budget -= new_e[-1] - s
        data.train_domain = Interval(np.array(new_s), np.array(new_e))
        kept += float(np.sum(np.array(new_e) - np.array(new_s)))
        write_data(data, out / brainset / f"{session}.h5")
    return out, kept


def _one_task(path: Path, task: str) -> list:
    """The dataset config at ``path`` with only ``task`` in its readouts (POYO decodes one task)."""
    import yaml

    entries = yaml.safe_load(path.read_text())
    entries = entries if isinstance(entries, list) else [entries]
    for entry in entries:
        cfg = entry.get("config") or {}
        cfg["multitask_readout"] = [r for r in cfg.get("multitask_readout", []) if r.get("readout_id") == task]
    return entries


def _decoder_config(args: argparse.Namespace, root: Path, name: str, labelled_s: float, seed: int) -> dict:
    # a few labelled seconds make epochs of 1-2 batches: validate (20 batches, for the history only;
    # both arms are tested at their last step) about twice per run instead of every epoch
    batches = max(1, int(np.ceil(labelled_s / 16)))
    every = max(1, args.finetune_steps // (2 * batches))
    return {
        "name": name, "seed": seed,
        "data": {"root": str(root), "config": _one_task(args.heldout, args.task), "batch_size": 16},
        "model": {"name": "poyo", **args.model},
        "optimizer": {"name": "adamw", "lr": args.finetune_lr, "weight_decay": 1e-4},
        "trainer": {"max_steps": args.finetune_steps, "enable_progress_bar": False, "val_check_interval": None,
                    "check_val_every_n_epoch": every, "limit_val_batches": 20},
        "logging": {"quiet": True, "tensorboard": False, "plots": False},
        "finetune": {"skip_readout": True, "unit_identification_steps": 0,
                     "freeze_encoder": args.freeze_encoder, "freeze_encoder_steps": args.freeze_encoder_steps,
                     "encoder_lr_scale": args.encoder_lr_scale},
    }


class _LoadedCheck:
    """Lightning callback: the largest difference between the fine-tuned model's encoder weights
    at the start of training and the pretrained encoder file (0.0: the weights were loaded)."""

    def __new__(cls, encoder_file: Path):
        import lightning as L
        import torch

        class Check(L.Callback):
            def __init__(self) -> None:
                self.max_abs_diff: float | None = None

            def on_train_start(self, trainer, module) -> None:
                if self.max_abs_diff is not None:  # the first phase only
                    return
                saved = torch.load(encoder_file, map_location="cpu", weights_only=True)["state_dict"]
                state = module.model.state_dict()
                diffs = [float((state[k].float() - v.float()).abs().max()) for k, v in saved.items()
                         if torch.is_tensor(v) and v.numel() and not k.endswith("_extra_state")
                         and not k.startswith(("unit_emb", "session_emb"))]  # their tables grow with new ids
                self.max_abs_diff = max(diffs) if diffs else float("nan")

        return Check()


class _TrainTimer:
    """Lightning callback: wall time spent in training batches only (no validation, no setup)."""

    def __new__(cls):
        import lightning as L

        class Timer(L.Callback):
            def __init__(self) -> None:
                self.seconds, self.windows, self._t = 0.0, 0, 0.0

            def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
                self._t = time.perf_counter()

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
                self.seconds += time.perf_counter() - self._t
                self.windows += len(batch["session_id"])

        return Timer()


def _pretrain_data(args: argparse.Namespace) -> list | str:
    """The pretraining dataset config: ``--config``, plus the held-out session with --pretrain-heldout."""
    import yaml

    if not args.pretrain_heldout:
        return str(args.config)
    entries = []
    for path in (args.config, args.heldout):
        loaded = yaml.safe_load(Path(path).read_text())
        entries.extend(loaded if isinstance(loaded, list) else [loaded])
    return entries


def _pretrain(args: argparse.Namespace, root: Path, out: Path, encoder: dict, ssl: dict, steps: int) -> tuple[dict, float, float]:
    from torch_brain.training import pretrain

    cfg = {"name": "ssl", "seed": args.seed,
           "data": {"root": str(root), "config": _pretrain_data(args), "batch_size": args.batch_size},
           "encoder": encoder, "ssl": ssl, "optimizer": {"name": "adamw", "lr": args.pretrain_lr, "weight_decay": args.pretrain_weight_decay},
           "trainer": {"max_steps": steps, "val_check_interval": max(1, steps // 2), "steps_per_epoch": max(1, steps // 2),
                       "enable_progress_bar": False, "limit_val_batches": 20},
           "logging": {"quiet": True}}
    timer = _TrainTimer()
    t0 = time.perf_counter()
    summary = pretrain(cfg, run_dir=out, overwrite=True, callbacks=[timer])
    # windows/s of the training steps (data loading, forward, backward, optimiser; no validation)
    return summary, time.perf_counter() - t0, timer.windows / max(timer.seconds, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="prepared brainsets (default: make a small synthetic set)")
    parser.add_argument("--config", type=Path, default=REPO / "configs/datasets/synthetic_reaching.yaml",
                        help="dataset config of the unlabelled pretraining sessions")
    parser.add_argument("--heldout", type=Path, default=REPO / "configs/datasets/synthetic_reaching_heldout.yaml",
                        help="dataset config of the held-out session(s) to fine-tune on")
    parser.add_argument("--task", default="cursor_velocity_2d")
    parser.add_argument("--label-fraction", type=float, default=0.1)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=200)
    parser.add_argument("--signal-steps", type=int, default=30, help="masked_signal steps (throughput only)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-heldout", action=argparse.BooleanOptionalAction, default=True,
                        help="also pretrain on the held-out session's training split (spikes only; default on)")
    parser.add_argument("--pretrain-lr", type=float, default=2e-4,
                        help="pretraining learning rate (2e-4: the best transfer measured; 2e-3 pretrains faster but "
                             "the encoder fine-tunes worse)")
    parser.add_argument("--pretrain-weight-decay", type=float, default=1e-4)
    parser.add_argument("--rate-init", choices=("data", "constant"), default="data",
                        help="masked_spikes: start each unit at its mean rate (data) or at 5 Hz (constant)")
    parser.add_argument("--mask-kind", choices=("units", "time", "both"), default="both")
    parser.add_argument("--mask-ratio", type=float, default=0.3)
    parser.add_argument("--finetune-lr", type=float, default=2e-3)
    parser.add_argument("--freeze-encoder", action="store_true",
                        help="fine-tune only the readout and unit/session embeddings")
    parser.add_argument("--freeze-encoder-steps", type=int, default=0,
                        help="a first phase of that many steps with the encoder frozen")
    parser.add_argument("--encoder-lr-scale", type=float, default=1.0,
                        help="encoder learning rate relative to --finetune-lr")
    parser.add_argument("--arms", default="pretrained,scratch", help="which fine-tuning arms to run")
    parser.add_argument("--finetune-seeds", default="0,1,2",
                        help="seeds of the fine-tuning / scratch runs (comma-separated); R² is their mean")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--reuse-pretrain", action="store_true",
                        help="fine-tune from <work>/pretrain/encoder.pt of an earlier run instead of pretraining")
    args = parser.parse_args()
    if not 0 <= args.freeze_encoder_steps < args.finetune_steps:
        parser.error("--freeze-encoder-steps must be >= 0 and below --finetune-steps (it is part of them).")
    args.model = {"dim": args.dim, "depth": 2, "dim_head": 16, "cross_heads": 1, "self_heads": 2,
                  "latent_step": 0.125, "num_latents_per_step": 8}

    from torch_brain.training import evaluate, finetune, fit

    work = args.work or Path(tempfile.mkdtemp(prefix="ssl_transfer_"))
    t_all = time.perf_counter()
    root = args.root
    if root is None:
        from torch_brain.brainsets import prepare

        root = work / "synthetic"
        if not root.exists():
            prepare("synthetic_reaching", root, n_sessions=4, n_subjects=2, minutes=5.0, n_units=40, seed=0,
                    held_out=True, progress=False)
    result: dict = {"benchmark": "ssl_transfer", "root": str(root), "config": str(args.config),
                    "heldout": str(args.heldout), "label_fraction": args.label_fraction,
                    "recipe": {k: getattr(args, k) for k in ("pretrain_heldout", "pretrain_lr", "pretrain_weight_decay", "rate_init",
                                                             "mask_kind", "mask_ratio", "finetune_lr", "freeze_encoder",
                                                             "freeze_encoder_steps", "encoder_lr_scale")},
                    "pretrain_steps": args.pretrain_steps, "finetune_steps": args.finetune_steps,
                    "batch_size": args.batch_size, "model": args.model, "threads": os.cpu_count(),
                    "load_before": os.getloadavg()[0]}
    with _quiet():
        if args.reuse_pretrain:  # the encoder of an earlier run of this script in --work
            summary = json.loads((work / "pretrain" / "summary.json").read_text())
            result["pretrain_steps"] = summary["global_step"]
            result["pretrain_reused"] = True
        else:
            summary, wall, rate = _pretrain(args, root, work / "pretrain", {"name": "poyo", **args.model},
                                            {"name": "masked_spikes", "mask_ratio": args.mask_ratio,
                                             "mask_kind": args.mask_kind, "bin_size": 0.05,
                                             "rate_init": args.rate_init}, args.pretrain_steps)
            result["pretrain_s"] = round(wall, 1)
            result["masked_spikes_windows_per_s"] = round(rate, 1)
        result["val_bits_per_spike"] = summary["metrics"].get("val/bits_per_spike")
        result["val_masked_count_nll"] = summary["metrics"].get("val/loss")

        labels_root, kept_s = _few_labels_root(root, str(args.heldout), args.label_fraction, work / "few_labels")
        result["labelled_train_s"] = round(kept_s, 1)
        arms = {}
        seeds = [int(x) for x in str(args.finetune_seeds or args.seed).split(",")]
        for arm in [a for a in args.arms.split(",") if a]:
            r2s, walls = [], []
            for seed in seeds:
                cfg = _decoder_config(args, labels_root, arm, kept_s, seed)
                if arm == "pretrained":  # the frozen first phase counts: both arms take finetune_steps steps
                    cfg["trainer"]["max_steps"] = args.finetune_steps - args.freeze_encoder_steps
                run = work / f"{arm}_seed{seed}"
                t0 = time.perf_counter()
                if arm == "pretrained":
                    check = _LoadedCheck(work / "pretrain" / "encoder.pt")
                    finetune(cfg, checkpoint=work / "pretrain" / "encoder.pt", run_dir=run, overwrite=True,
                             callbacks=[check])
                    # (the callback runs in the last phase: after a frozen first phase the encoder is unchanged)
                    result["loaded_encoder_max_abs_diff"] = max(result.get("loaded_encoder_max_abs_diff", 0.0),
                                                                check.max_abs_diff)
                elif arm == "scratch":
                    fit(cfg, run_dir=run, overwrite=True)
                else:
                    raise SystemExit(f"--arms: unknown arm {arm!r}; use pretrained and/or scratch.")
                walls.append(time.perf_counter() - t0)
                r2s.append(evaluate(run, stage="test", checkpoint="last")["average"])
            arms[arm] = {"test_r2": float(np.mean(r2s)), "test_r2_per_seed": [round(r, 4) for r in r2s],
                         "train_s": round(float(np.mean(walls)), 1)}
        result["finetune_seeds"] = seeds
        result.update({f"{k}_{m}": v for k, d in arms.items() for m, v in d.items()})
        if len(arms) == 2:
            gains = np.subtract(arms["pretrained"]["test_r2_per_seed"], arms["scratch"]["test_r2_per_seed"])
            result["r2_gain"] = float(np.mean(gains))
            result["r2_gain_per_seed"] = [round(float(g), 4) for g in gains]

        from torch_brain.data import Dataset

        first = Dataset(root, str(args.config)).get_recording_ids()[0]
        has_lfp = hasattr(Dataset(root, str(args.config)).get_recording_data(first), "lfp")
        if has_lfp and args.signal_steps > 0:
            _, _, rate = _pretrain(args, root, work / "signal", {"name": "patch_transformer", "in_channels": 4,
                                                               "patch_size": 25, "dim": args.dim, "depth": 2},
                                {"name": "masked_signal"}, args.signal_steps)
            result["masked_signal_windows_per_s"] = round(rate, 1)
    result["total_s"] = round(time.perf_counter() - t_all, 1)
    result["load_after"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
