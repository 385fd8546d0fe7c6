"""Config-driven runs: ``fit``, ``evaluate`` (validate / test), ``finetune``.

These are what the ``torch-brain`` command calls; from Python::

    from torch_brain.training import fit, evaluate
    result = fit("configs/poyo_plus_synthetic.yaml", overrides=["trainer.max_steps=100"])
    metrics = evaluate(result["run_dir"], stage="test")

Each run writes a run directory (see :mod:`torch_brain.training.run_dir`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from torch_brain.models import MODEL_REGISTRY
from torch_brain.ssl import freeze_encoder
from torch_brain.training.config import dump_config, load_config
from torch_brain.training.datamodule import DecodingDataModule
from torch_brain.training.module import NeuralDecoder, check_compatible
from torch_brain.training.progress import make_progress_bar
from torch_brain.training.readout_vocab import CACHE_NAME as READOUT_VOCAB_CACHE
from torch_brain.training.run_dir import (
    AtomicCheckpointIO,
    HistoryCallback,
    atomic_write_text,
    check_run_dir,
    last_checkpoint,
    prepare_run_dir,
    read_checkpoint,
)

__all__ = [
    "build_datamodule",
    "build_module",
    "build_trainer",
    "evaluate",
    "finetune",
    "fit",
    "resolve_config",
    "session_table",
]

_PRECISIONS = ("32", "32-true", "64", "64-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true")


def resolve_config(config: str | Path | Mapping[str, Any] | None,
                   overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A full run config from a YAML path / dict / run directory, plus dotted overrides."""
    if isinstance(config, (str, Path)) and Path(config).is_dir():
        config = Path(config) / "config.yaml"
    return load_config(config, overrides)


def _run_dir_of(config: Mapping[str, Any], run_dir: str | Path | None) -> Path:
    if run_dir is not None:
        return Path(run_dir)
    if config.get("run_dir"):
        return Path(config["run_dir"])
    return Path("runs") / str(config.get("name", "run"))


def build_datamodule(config: Mapping[str, Any]) -> DecodingDataModule:
    """The :class:`DecodingDataModule` of a run config."""
    return DecodingDataModule.from_config(config)


def build_module(config: Mapping[str, Any], tasks: Sequence[str]) -> NeuralDecoder:
    """A fresh :class:`NeuralDecoder` from a run config."""
    model_cfg = dict(config["model"])
    name = model_cfg.pop("name", "poyo_plus")
    return NeuralDecoder(
        name, tasks=list(tasks), sequence_length=float(config["data"]["window_length"]),
        model_kwargs=model_cfg, optimizer=config["optimizer"], scheduler=config["scheduler"],
        normalization=config["normalization"]["mode"], compile=bool(config["trainer"]["compile"]),
        log_readout_distribution=bool(config["logging"]["readout_distribution"]),
    )


def _loggers(config: Mapping[str, Any], run_dir: Path) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger

    loggers: list[Any] = []
    if config["logging"]["csv"]:
        loggers.append(CSVLogger(save_dir=str(run_dir), name="logs", version=""))
    if config["logging"]["tensorboard"]:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            try:
                import tensorboardX  # noqa: F401
            except ImportError:
                pass
            else:
                from lightning.pytorch.loggers import TensorBoardLogger

                loggers.append(TensorBoardLogger(save_dir=str(run_dir / "logs"), name="tensorboard", version=""))
        else:
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(save_dir=str(run_dir / "logs"), name="tensorboard", version=""))
    return loggers


def _make_evaluator(metrics: Mapping[str, Any], quiet: bool) -> L.Callback:
    import inspect

    from torch_brain.utils.stitcher import MultiTaskDecodingStitchEvaluator

    kwargs: dict[str, Any] = {"metrics": metrics}
    if "quiet" in inspect.signature(MultiTaskDecodingStitchEvaluator.__init__).parameters:
        kwargs["quiet"] = quiet
    return MultiTaskDecodingStitchEvaluator(**kwargs)


def _check_trainer_numbers(t: Mapping[str, Any]) -> None:
    """Lightning accepts some of these silently (a negative clip flips gradients) or fails deep inside."""
    if not isinstance(t["accumulate_grad_batches"], int) or t["accumulate_grad_batches"] < 1:
        raise ValueError(f"trainer.accumulate_grad_batches must be an int >= 1, got {t['accumulate_grad_batches']!r}.")
    for key in ("check_val_every_n_epoch", "steps_per_epoch"):
        if t[key] is not None and (not isinstance(t[key], int) or t[key] < 1):
            raise ValueError(f"trainer.{key} must be an int >= 1 or null, got {t[key]!r}.")
    clip = t["gradient_clip_val"]
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip < 0):
        raise ValueError(f"trainer.gradient_clip_val must be a number >= 0 (0 or null: no clipping), got {clip!r}.")


def _check_precision(trainer_cfg: Mapping[str, Any]) -> str:
    precision = str(trainer_cfg["precision"])
    if precision not in _PRECISIONS:
        raise ValueError(f"trainer.precision must be one of {', '.join(_PRECISIONS)}, got {precision!r}.")
    if precision.startswith("16") and not torch.cuda.is_available():
        raise ValueError(
            f"trainer.precision={precision} needs a GPU; on CPU use bf16-mixed or 32."
        )
    return precision


class _FinalValidation(L.Callback):
    """Validates (and so checkpoints and records) the model of the very last training step.

    Lightning validates at epoch ends; a run stopped by ``max_steps`` mid-epoch would otherwise
    end without scoring its final weights. Setting ``trainer.should_stop`` on the last step makes
    Lightning run validation before it stops.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if trainer.max_steps and trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True


def build_trainer(
    config: Mapping[str, Any],
    run_dir: Path,
    *,
    metrics: Mapping[str, Any],
    max_steps: int | None = None,
    checkpoint_dir: Path | None = None,
    fit: bool = True,
    callbacks: Sequence[L.Callback] = (),
) -> L.Trainer:
    """A Lightning Trainer configured from ``config["trainer"]``, ``checkpoint``,
    ``early_stopping`` and ``logging``, with the stitching evaluator for ``metrics``."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    t = config["trainer"]
    _check_trainer_numbers(t)
    quiet = bool(config["logging"]["quiet"])
    evaluating = not fit or t["limit_val_batches"] != 0
    cbs: list[L.Callback] = [_make_evaluator(metrics, quiet)] if evaluating else []
    if fit:
        ck = config["checkpoint"]
        ckpt_dir = checkpoint_dir or (run_dir / "checkpoints")
        if ck["save_top_k"] and evaluating:
            cbs.append(ModelCheckpoint(
                dirpath=ckpt_dir, filename="best-{epoch:03d}-{step:06d}", monitor=ck["monitor"],
                mode=ck["mode"], save_top_k=int(ck["save_top_k"]), save_last=False,
            ))
        if ck["every_n_epochs"]:
            cbs.append(ModelCheckpoint(
                dirpath=ckpt_dir, filename="epoch-{epoch:03d}", every_n_epochs=int(ck["every_n_epochs"]),
                save_top_k=-1, save_last=False,
            ))
        if ck["save_last"]:
            cbs.append(ModelCheckpoint(dirpath=ckpt_dir, save_top_k=0, save_last=True))
            if ck["every_n_train_steps"]:
                cbs.append(ModelCheckpoint(dirpath=ckpt_dir, save_top_k=0, save_last=True,
                                           every_n_train_steps=int(ck["every_n_train_steps"])))
        es = config["early_stopping"]
        if es["monitor"] and (evaluating or not es["monitor"].startswith(("val", "average_val"))):
            cbs.append(EarlyStopping(monitor=es["monitor"], mode=es["mode"], patience=int(es["patience"]),
                                     min_delta=float(es["min_delta"]), check_on_train_epoch_end=False))
        cbs.append(HistoryCallback(run_dir / "history.json"))
        if evaluating:
            cbs.append(_FinalValidation())
    if t["enable_progress_bar"]:
        cbs.append(make_progress_bar(every_n_steps=int(t["progress_every_n_steps"])))
    cbs.extend(callbacks)
    kwargs: dict[str, Any] = {
        "max_steps": int(max_steps if max_steps is not None else t["max_steps"]),
        "max_epochs": int(t["max_epochs"]),
        "accelerator": t["accelerator"],
        "devices": t["devices"],
        "precision": _check_precision(t),
        "gradient_clip_val": t["gradient_clip_val"],
        "gradient_clip_algorithm": t["gradient_clip_algorithm"],
        "accumulate_grad_batches": int(t["accumulate_grad_batches"]),
        "deterministic": bool(t["deterministic"]),
        "check_val_every_n_epoch": t["check_val_every_n_epoch"],
        "log_every_n_steps": int(t["log_every_n_steps"]),
        "enable_progress_bar": bool(t["enable_progress_bar"]),
        "num_sanity_val_steps": 0,
        "default_root_dir": str(run_dir),
        "plugins": [AtomicCheckpointIO()],
        "logger": _loggers(config, run_dir) if fit else False,
        "callbacks": cbs,
        "enable_model_summary": not quiet,
    }
    if kwargs["max_steps"] <= 0 and kwargs["max_epochs"] <= 0:
        raise ValueError("set trainer.max_steps > 0 or trainer.max_epochs > 0 (both are <= 0).")
    if t["val_check_interval"] is not None:
        kwargs["val_check_interval"] = t["val_check_interval"]
    if t["limit_val_batches"] is not None:
        kwargs["limit_val_batches"] = t["limit_val_batches"]
    if t["steps_per_epoch"] is not None:
        kwargs["limit_train_batches"] = int(t["steps_per_epoch"])
    return L.Trainer(**kwargs)


def _val_metrics(config: Mapping[str, Any], dm: DecodingDataModule) -> dict[str, Any]:
    return {} if config["trainer"]["limit_val_batches"] == 0 else dm.get_metrics("valid")


def _seed(config: Mapping[str, Any]) -> None:
    L.seed_everything(int(config["seed"]), workers=True, verbose=False)


def _final_summary(run_dir: Path, trainer: L.Trainer) -> dict[str, Any]:
    from lightning.pytorch.callbacks import ModelCheckpoint

    best_path, best_score = None, None
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.monitor and cb.best_model_path:
            best_path = cb.best_model_path
            best_score = float(cb.best_model_score) if cb.best_model_score is not None else None
    summary = {
        "run_dir": str(run_dir),
        "global_step": int(trainer.global_step),
        "epoch": int(trainer.current_epoch),
        "best_checkpoint": best_path,
        "best_score": best_score,
        "last_checkpoint": str(last_checkpoint(run_dir)) if last_checkpoint(run_dir) else None,
    }
    if trainer.is_global_zero:
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    return summary


def _launched_as_rank_zero() -> bool:
    """False in a process that a DDP launcher started as another rank than 0.

    Lightning's launcher starts ranks 1.. by running the same command again with ``LOCAL_RANK``
    (and ``NODE_RANK``) set; torchrun sets ``RANK``.
    """
    import os

    return all(os.environ.get(key, "0") == "0" for key in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def _plot_history(config: Mapping[str, Any], run_dir: Path) -> None:
    if not config["logging"]["plots"] or not (run_dir / "history.json").is_file():
        return
    from torch_brain.training.plots import plot_history

    with open(run_dir / "history.json") as f:
        plot_history(json.load(f), run_dir / "plots" / "learning_curves.png")


def _check_resume_compatible(module: NeuralDecoder, ckpt: Path) -> None:
    """Refuses to resume from a checkpoint of another architecture / task set (before any writing)."""
    saved = read_checkpoint(ckpt, "the checkpoint to resume from").get("hyper_parameters", {})
    check_compatible(saved, module.hparams, source=f"cannot resume: {str(ckpt)!r}")


def _check_before_writing(config: Mapping[str, Any], dm: DecodingDataModule) -> None:
    """Builds the datasets, samplers and a throw-away optimiser / schedule, so that a bad split,
    selection, window or optimiser option is refused before the run directory is created
    (Lightning would build them only inside ``trainer.fit``)."""
    from torch_brain.data.sampler import DistributedStitchingFixedWindowSampler, RandomFixedWindowSampler
    from torch_brain.training.optim import build_optimizer, build_scheduler

    dm.setup("fit")
    RandomFixedWindowSampler(dm.dataset("train").get_sampling_intervals(), window_length=dm.window_length,
                             generator=0)
    if config["trainer"]["limit_val_batches"] != 0:
        DistributedStitchingFixedWindowSampler(
            dm.dataset("valid").get_sampling_intervals(), window_length=dm.window_length, step=dm.eval_step,
            batch_size=dm.eval_batch_size, num_replicas=1, rank=0, drop_short=True)
    opt = dict(config["optimizer"])
    optimizer = build_optimizer([torch.zeros(1, requires_grad=True)], opt.pop("name", "adamw"), **opt)
    sched = dict(config["scheduler"] or {"name": "none"})
    max_steps = config["trainer"]["max_steps"]
    if max_steps and int(max_steps) > 0:
        build_scheduler(optimizer, sched.pop("name", "none"), total_steps=int(max_steps), **sched)


def fit(
    config: str | Path | Mapping[str, Any] | None,
    overrides: Sequence[str] = (),
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> dict[str, Any]:
    """Trains a decoder from a config; returns a summary (run_dir, best/last checkpoint, step).

    Args:
        config: YAML path, dict or run directory; ``overrides`` are dotted ``key=value`` strings.
        run_dir: output folder (default: ``config.run_dir`` or ``runs/<name>``).
        resume: continue from ``<run_dir>/checkpoints/last.ckpt`` (optimiser, schedule, sampler
            position and RNG state are restored).
        overwrite: replace an existing run directory.
        callbacks: extra Lightning callbacks.
    """
    if resume and config is None and run_dir is not None:
        check_run_dir(run_dir, resume=True)
        config = Path(run_dir) / "config.yaml"
    cfg = resolve_config(config, overrides)
    # other DDP ranks re-run this command after rank 0 made the folder: only rank 0 checks and writes it
    rank_zero = _launched_as_rank_zero()
    out = _run_dir_of(cfg, run_dir)
    if rank_zero:
        check_run_dir(out, resume=resume, overwrite=overwrite)
    # everything that can refuse the config runs before the run directory is touched
    _seed(cfg)
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm.tasks)
    module.readout_vocab_cache = out / READOUT_VOCAB_CACHE  # bins / codebooks reused on resume
    ckpt = last_checkpoint(out) if resume else None
    if ckpt is not None:
        _check_resume_compatible(module, ckpt)
    trainer = build_trainer(cfg, out, metrics=_val_metrics(cfg, dm), callbacks=callbacks)
    _check_before_writing(cfg, dm)
    if rank_zero:
        prepare_run_dir(out, resume=resume, overwrite=overwrite, keep=(READOUT_VOCAB_CACHE,))
        dump_config(cfg, out / "config.yaml")
    trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if ckpt else None)
    summary = _final_summary(out, trainer)
    if trainer.is_global_zero:
        _plot_history(cfg, out)
    return summary


def _pick_checkpoint(run_dir: Path, checkpoint: str | Path | None) -> Path:
    if checkpoint not in (None, "best", "last"):
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist.")
        return path
    summary_path = run_dir / "summary.json"
    if checkpoint != "last" and summary_path.is_file():
        with open(summary_path) as f:
            best = json.load(f).get("best_checkpoint")
        if best and Path(best).is_file():
            return Path(best)
    last = last_checkpoint(run_dir)
    if last is None:
        raise FileNotFoundError(
            f"no checkpoint in {str(run_dir / 'checkpoints')!r}; train first (`torch-brain fit`) or "
            "pass --checkpoint PATH."
        )
    return last


def _parse_metric_key(key: str, stage: str) -> tuple[str, str, str] | None:
    """``"<session>/<task>/<metric>/<stage>"`` -> (session, task, metric); sessions hold '/'."""
    parts = key.split("/")
    if len(parts) < 4 or parts[-1] != stage:
        return None
    return "/".join(parts[:-3]), parts[-3], parts[-2]


def session_table(metrics: Mapping[str, float], stage: str) -> dict[str, dict[str, dict[str, float]]]:
    """``{session: {task: {metric: value}}}`` from logged ``session/task/metric/stage`` keys."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for key, value in metrics.items():
        parsed = _parse_metric_key(key, stage)
        if parsed is not None:
            s, t, m = parsed
            table.setdefault(s, {}).setdefault(t, {})[m] = float(value)
    return {s: table[s] for s in sorted(table)}


def _evaluator_stitched(trainer: L.Trainer) -> dict[str, dict[str, tuple[np.ndarray, ...]]]:
    """``{session: {task: (times (s), predictions, targets)}}`` as NumPy arrays, from the
    evaluator's stitched rows of the last evaluation (the ones the metrics scored)."""
    from torch_brain.utils.stitcher import MultiTaskDecodingStitchEvaluator

    out: dict[str, dict[str, tuple[np.ndarray, ...]]] = {}
    for evaluator in trainer.callbacks:
        if isinstance(evaluator, MultiTaskDecodingStitchEvaluator):
            for (sid, task), rows in evaluator.stitched.items():
                out.setdefault(sid, {})[task] = tuple(x.detach().cpu().numpy() for x in rows)
    return out


def _write_eval_plots(config: Mapping[str, Any], trainer: L.Trainer, specs: Mapping[str, Any],
                      folder: Path) -> list[Path]:
    """Plots of the evaluator's stitched predictions (the ones the metrics scored)."""
    from torch_brain.training.plots import plot_confusion, plot_traces, safe_name
    from torch_brain.utils.stitcher import MultiTaskDecodingStitchEvaluator

    written = []
    for evaluator in trainer.callbacks:
        if not isinstance(evaluator, MultiTaskDecodingStitchEvaluator):
            continue
        for (sid, task), stitched in evaluator.stitched.items():
            t, p, y = (x.cpu().numpy() if not x.is_floating_point() else x.cpu().double().numpy() for x in stitched)
            spec = specs[task]
            name = f"{safe_name(sid)}__{task}"
            if spec.type.name == "CONTINUOUS":
                path = plot_traces(t, p, y, folder / f"{name}.png", title=f"{sid} — {task}",
                                   seconds=float(config["logging"]["plot_seconds"]))
            else:
                path = plot_confusion(p, y, spec.dim, folder / f"{name}_confusion.png",
                                      title=f"{sid} — {task}")
            if path is not None:
                written.append(path)
    return written


def evaluate(
    config: str | Path | Mapping[str, Any] | None,
    overrides: Sequence[str] = (),
    *,
    stage: str = "test",
    checkpoint: str | Path | None = None,
    run_dir: str | Path | None = None,
    export: str | None = None,
) -> dict[str, Any]:
    """Validates or tests a trained decoder with stitched per-session metrics.

    Args:
        config: YAML path, dict, or the run directory (its ``config.yaml`` is used).
        stage: ``"validate"`` (valid split) or ``"test"`` (test split).
        checkpoint: a checkpoint path, ``"best"`` (default when known) or ``"last"``.
        run_dir: the run directory (default: from the config).
        export: also write the stitched predictions with their timestamps and targets:
            ``"npz"``, ``"pynapple"`` or ``"nwb"`` (a copy of each session's source NWB file with a
            new processing module), under ``<run_dir>/predictions/<stage>/<format>/`` (see
            :func:`torch_brain.io.export_predictions`).

    Returns:
        ``{"checkpoint", "average", "sessions": {session: {task: {metric: value}}}, "metrics"}``
        (plus ``"exported"``: the files written, with ``export``);
        also written to ``<run_dir>/metrics_<stage>.json``, with plots under
        ``<run_dir>/plots/<stage>/`` for the test stage.
    """
    if stage not in ("validate", "test"):
        raise ValueError(f"stage must be 'validate' or 'test', got {stage!r}.")
    if config is None and run_dir is not None:
        config = Path(run_dir)
    if isinstance(config, (str, Path)) and Path(config).is_dir() and run_dir is None:
        run_dir = Path(config)
    if export is not None:
        from torch_brain.io import EXPORT_FORMATS

        if export not in EXPORT_FORMATS:
            raise ValueError(f"export must be one of {list(EXPORT_FORMATS)} or None, but got {export!r}.")
    cfg = resolve_config(config, overrides)
    out = _run_dir_of(cfg, run_dir)
    ckpt = _pick_checkpoint(out, checkpoint)
    _seed(cfg)
    dm = build_datamodule(cfg)
    try:
        module = NeuralDecoder.load_from_checkpoint(
            str(ckpt), map_location="cpu",
            log_readout_distribution=bool(cfg["logging"]["readout_distribution"]))
    except Exception:
        read_checkpoint(ckpt)  # names a file that is not a readable checkpoint
        raise
    split = "valid" if stage == "validate" else "test"
    trainer = build_trainer(cfg, out, metrics=dm.get_metrics(split), fit=False)
    run = trainer.validate if stage == "validate" else trainer.test
    run(module, datamodule=dm)
    tag = "val" if stage == "validate" else "test"
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()
              if isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1)}
    result = {
        "checkpoint": str(ckpt),
        "stage": stage,
        "average": logged.get(f"average_{tag}_metric"),
        "loss": logged.get(f"{tag}_loss"),
        "sessions": session_table(logged, tag),
        "metrics": dict(sorted(logged.items())),
    }
    atomic_write_text(out / f"metrics_{stage}.json", json.dumps(result, indent=1))
    if export is not None:
        from torch_brain.io import export_predictions

        result["exported"] = [str(p) for p in export_predictions(
            _evaluator_stitched(trainer), out / "predictions" / stage / export, export, data_root=dm.root,
            description=f"torch_brain {stage} predictions of {ckpt.name}")]
    if stage == "test" and cfg["logging"]["plots"]:
        result["plots"] = [str(p) for p in _write_eval_plots(cfg, trainer, module.specs, out / "plots" / stage)]
    return result


def _freeze_options(ft: Mapping[str, Any]) -> tuple[int, bool, float]:
    """``(freeze_encoder_steps, freeze_encoder, encoder_lr_scale)`` of the finetune section, checked."""
    steps, frozen, scale = ft["freeze_encoder_steps"], ft["freeze_encoder"], ft["encoder_lr_scale"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"finetune.freeze_encoder_steps must be an int >= 0 (steps with the encoder frozen "
                         f"before it trains too), but got {steps!r}.")
    if not isinstance(frozen, bool):
        raise ValueError(f"finetune.freeze_encoder must be true or false, but got {frozen!r}.")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
        raise ValueError(f"finetune.encoder_lr_scale must be a number > 0 (e.g. 0.1: the encoder learns ten "
                         f"times slower than the readout; freeze it with finetune.freeze_encoder), but got {scale!r}.")
    if frozen and steps:
        raise ValueError(f"finetune.freeze_encoder=true keeps the encoder frozen for the whole run, so "
                         f"finetune.freeze_encoder_steps={steps} has no effect; set one of the two.")
    return int(steps), frozen, float(scale)


def finetune(
    config: str | Path | Mapping[str, Any] | None,
    overrides: Sequence[str] = (),
    *,
    checkpoint: str | Path | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> dict[str, Any]:
    """Fine-tunes a pretrained decoder on the data of ``config`` (e.g. a new session).

    The model is rebuilt from ``checkpoint`` (default ``config.finetune.checkpoint``) with
    ``load_pretrained(skip_readout=finetune.skip_readout)``; unit/session vocabularies are
    extended with the new ids. Expected-value heads keep the pretrained bins / codebooks of the
    tasks the checkpoint knows, unless ``finetune.refit_readout_vocabularies`` fits them again on
    this run's training split. With ``finetune.unit_identification_steps > 0`` a first phase
    trains only the new unit/session embeddings; with ``finetune.freeze_encoder_steps > 0`` a
    (next) phase trains the readout and the unit/session embeddings with the encoder frozen; then
    every weight is trained for ``trainer.max_steps`` steps (the encoder at
    ``finetune.encoder_lr_scale`` x ``optimizer.lr``), or, with ``finetune.freeze_encoder``,
    everything but the encoder.
    """
    from torch_brain.models import freeze_for_unit_identification
    from torch_brain.models._legacy import legacy_model_name
    from torch_brain.registry import get_modality

    if resume and config is None and run_dir is not None:
        config = Path(run_dir) / "config.yaml"
    cfg = resolve_config(config, overrides)
    ft = cfg["finetune"]
    ckpt_in = Path(checkpoint or ft["checkpoint"] or "")
    if not ckpt_in.is_file():
        raise FileNotFoundError(
            f"finetune needs a pretrained checkpoint; {str(ckpt_in)!r} does not exist. Pass "
            "--checkpoint PATH or set finetune.checkpoint."
        )
    cfg["finetune"]["checkpoint"] = str(ckpt_in)
    rank_zero = _launched_as_rank_zero()  # other DDP ranks re-run this command: rank 0 made the folder
    out = _run_dir_of(cfg, run_dir)
    if rank_zero:
        check_run_dir(out, resume=resume, overwrite=overwrite)
    _seed(cfg)
    dm = build_datamodule(cfg)
    saved = read_checkpoint(ckpt_in, "the pretrained checkpoint (--checkpoint / finetune.checkpoint)")
    # a torch_brain 0.1.x checkpoint keeps its model config (a dict) under hyper_parameters["model"]
    model_name = legacy_model_name(saved) or saved.get("hyper_parameters", {}).get("model", cfg["model"]["name"])
    specs = {t: get_modality(t) for t in dm.tasks}
    cls = MODEL_REGISTRY.lookup(model_name)
    model = cls.load_pretrained(ckpt_in, **cls.task_kwargs(specs), skip_readout=bool(ft["skip_readout"]))
    if ft["refit_readout_vocabularies"]:
        for head in model.vocabulary_heads().values():
            head.reset_vocabulary()  # fitted again on this run's training split in setup
    freeze_steps, freeze_all, lr_scale = _freeze_options(ft)
    module = NeuralDecoder(model, optimizer=cfg["optimizer"], scheduler=cfg["scheduler"],
                           normalization=cfg["normalization"]["mode"],
                           compile=bool(cfg["trainer"]["compile"]),
                           log_readout_distribution=bool(cfg["logging"]["readout_distribution"]),
                           readout_vocab_cache=out / READOUT_VOCAB_CACHE, encoder_lr_scale=lr_scale)
    build_trainer(cfg, out, metrics=_val_metrics(cfg, dm), max_steps=1)  # throw-away: checks the settings
    _check_before_writing(cfg, dm)
    if rank_zero:
        prepare_run_dir(out, resume=resume, overwrite=overwrite, keep=(READOUT_VOCAB_CACHE,))
        dump_config(cfg, out / "config.yaml")
    known_units = set(model.unit_emb.vocab or {})
    known_sessions = set(model.session_emb.vocab or {})
    module.init_vocab(dm)
    new_units = [u for u in dm.get_unit_ids() if u not in known_units]
    new_sessions = [s for s in dm.get_session_ids() if s not in known_sessions]
    ckpt_resume = last_checkpoint(out) if resume else None
    steps_uid = int(ft["unit_identification_steps"] or 0)
    if steps_uid > 0 and ckpt_resume is None and (new_units or new_sessions):
        handle = freeze_for_unit_identification(model, new_units, new_sessions)
        opt = dict(cfg["optimizer"])
        if ft["unit_identification_lr"]:
            opt["lr"] = float(ft["unit_identification_lr"])
        module.hparams.optimizer = opt
        module.hparams.scheduler = None  # constant learning rate in the short first phase
        phase_cfg = {**cfg, "early_stopping": {**cfg["early_stopping"], "monitor": None},
                     "checkpoint": {**cfg["checkpoint"], "save_top_k": 0, "every_n_epochs": None}}
        trainer = build_trainer(phase_cfg, out, metrics=_val_metrics(cfg, dm), max_steps=steps_uid,
                                checkpoint_dir=out / "checkpoints" / "unit_identification")
        trainer.fit(module, datamodule=dm)
        handle.remove()
        module.hparams.optimizer = dict(cfg["optimizer"])
        module.hparams.scheduler = dict(cfg["scheduler"]) if cfg["scheduler"] else None
    if freeze_steps > 0 and ckpt_resume is None and not freeze_all:
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        freeze_encoder(model)  # the readout and embeddings warm up on a fixed encoder
        module.hparams.scheduler = None  # constant learning rate in the first phase
        phase_cfg = {**cfg, "early_stopping": {**cfg["early_stopping"], "monitor": None},
                     "checkpoint": {**cfg["checkpoint"], "save_top_k": 0, "every_n_epochs": None}}
        trainer = build_trainer(phase_cfg, out, metrics=_val_metrics(cfg, dm), max_steps=freeze_steps,
                                checkpoint_dir=out / "checkpoints" / "frozen_encoder")
        trainer.fit(module, datamodule=dm)
        for name, param in model.named_parameters():  # as before the phase (fixed vocabularies stay fixed)
            param.requires_grad_(name in trainable)
        module.hparams.scheduler = dict(cfg["scheduler"]) if cfg["scheduler"] else None
    if freeze_all:
        freeze_encoder(model)
    trainer = build_trainer(cfg, out, metrics=_val_metrics(cfg, dm), callbacks=callbacks)
    trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_resume) if ckpt_resume else None)
    summary = _final_summary(out, trainer)
    summary.update({"pretrained": str(ckpt_in), "new_units": len(new_units),
                    "new_sessions": new_sessions, "unit_identification_steps": steps_uid,
                    "frozen_encoder_steps": "all" if freeze_all else freeze_steps})
    if trainer.is_global_zero:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
        _plot_history(cfg, out)
    return summary
