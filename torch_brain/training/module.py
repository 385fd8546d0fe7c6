"""``NeuralDecoder``: the user guide's LightningModule, generalised to POYO and POYO+ from a config.

- training: the guide's weighted per-task loss (each task's loss times the number of samples
  holding that task, divided by the batch size) on standardised continuous targets;
- validation/test: predictions mapped back to the original units and returned as
  :class:`~torch_brain.utils.stitcher.DataForMultiTaskDecodingStitchEvaluator`, which a
  :class:`~torch_brain.utils.stitcher.MultiTaskDecodingStitchEvaluator` callback stitches and
  scores (POYO's single task is presented in the same multi-task form);
- optimiser and schedule from names (:mod:`torch_brain.training.optim`);
- target statistics, task list and model hyper-parameters travel in the checkpoint.

Example:
    >>> dm = DecodingDataModule("data/processed", "configs/datasets/synthetic_reaching.yaml")
    >>> module = NeuralDecoder("poyo_plus", tasks=dm.tasks, model_kwargs={"dim": 64})
    >>> trainer = L.Trainer(max_steps=600, callbacks=[
    ...     MultiTaskDecodingStitchEvaluator(metrics=dm.get_metrics())])  # doctest: +SKIP
    >>> trainer.fit(module, datamodule=dm)  # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from torch_brain.models import MODEL_REGISTRY
from torch_brain.training.normalization import TargetNormalizer, compute_target_stats
from torch_brain.training.optim import build_optimizer, build_scheduler
from torch_brain.training.readout_vocab import fit_readout_vocabularies

__all__ = ["MODELS", "NeuralDecoder", "build_model", "check_compatible"]

#: the built-in model names (every registered one: :func:`torch_brain.models.list_models`)
MODELS: tuple[str, ...] = ("poyo", "poyo_plus")


def build_model(name: str, tasks: Sequence[str], *, sequence_length: float = 1.0,
                **kwargs: Any) -> nn.Module:
    """Builds a registered model (``"poyo"``: one task, ``"poyo_plus"``: any) with readouts for ``tasks``.

    Args:
        name: a name from :func:`torch_brain.models.list_models`.
        tasks: registered modality names.
        sequence_length: window length in seconds.
        **kwargs: constructor arguments of the model (``dim``, ``depth``, ``latent_step`` ...).

    Raises:
        ValueError: unknown model name (valid ones listed), unknown task, POYO with != 1 task,
            or a constructor argument the model does not take (closest one suggested).
    """
    from torch_brain.registry import get_modality

    cls = MODEL_REGISTRY.lookup(name)
    extra = cls.task_kwargs({t: get_modality(t) for t in tasks})
    MODEL_REGISTRY.check_options(name, kwargs)
    return cls(sequence_length=sequence_length, **kwargs, **extra)


_COMPATIBILITY_KEYS = ("model", "tasks", "model_kwargs", "sequence_length")


def check_compatible(saved: Mapping[str, Any], current: Mapping[str, Any], *, source: str) -> None:
    """Refuses a checkpoint whose model, task set or architecture differs from this run's.

    The one compatibility check of :class:`NeuralDecoder` checkpoints (used on load and before a
    resume). Only keys the checkpoint records are compared.

    Args:
        saved: the checkpoint's ``hyper_parameters``.
        current: this run's ``NeuralDecoder.hparams``.
        source: what the checkpoint is, for the message (e.g. its path).

    Raises:
        ValueError: listing every differing key with both values, and the fix.
    """
    diffs = [f"{k}: checkpoint {saved.get(k)!r} vs this run {current.get(k)!r}"
             for k in _COMPATIBILITY_KEYS if k in saved and saved.get(k) != current.get(k)]
    if diffs:
        raise ValueError(f"{source} was trained with another model or task set:\n  " + "\n  ".join(diffs)
                         + "\nUse the run's own config (config.yaml in its run directory), or `finetune` to "
                         "change the tasks or the model.")


def _rng_state() -> dict[str, Any]:
    """Global RNG states in a form ``torch.load(weights_only=True)`` accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": list(random.getstate()[1]),
        "python_version": int(random.getstate()[0]),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    random.setstate((state["python_version"], tuple(state["python"]), None))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _refuse_rewrapped_eval_sampler(trainer: Any, loaders: Any, stage: str) -> None:
    """Raise if Lightning split an evaluation loader's windows between ranks itself.

    Lightning (``use_distributed_sampler=True``, its default) wraps every sampler that is not a
    ``torch.utils.data.DistributedSampler`` in its ``DistributedSamplerWrapper``, which deals the
    windows out round-robin (and repeats some to even the ranks): overlapping windows of one
    sequence end up on different ranks and the stitched metrics silently cover a subset.
    """
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    if trainer is None or trainer.world_size <= 1 or loaders is None:
        return
    for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
        sampler = getattr(loader, "sampler", None)
        if isinstance(sampler, DistributedSamplerWrapper):
            inner = type(getattr(sampler.dataset, "_sampler", None)).__name__
            raise ValueError(
                f"NeuralDecoder: the {stage} loader's sampler ({inner}) was wrapped by Lightning's "
                f"DistributedSamplerWrapper under DDP ({trainer.world_size} processes), which gives "
                "each rank every n-th window, so the stitched metrics would cover only part of each "
                "sequence. Use DistributedStitchingFixedWindowSampler(..., num_replicas="
                "trainer.world_size, rank=trainer.global_rank) for evaluation (Lightning leaves it in "
                "place), as DecodingDataModule does."
            )


class NeuralDecoder(L.LightningModule):
    """A ready LightningModule that trains POYO / POYO+ decoders.

    Args:
        model: ``"poyo"`` or ``"poyo_plus"`` (built with :func:`build_model`), or a model
            instance (its readout specs give the tasks).
        tasks: task names (required with a model name).
        sequence_length: window length in seconds (= the datamodule's ``window_length``).
        model_kwargs: constructor arguments of the model.
        optimizer: ``{"name": ..., "lr": ..., **options}`` for :func:`build_optimizer`.
        scheduler: ``{"name": ..., **options}`` for :func:`build_scheduler` (``None``: constant).
        normalization: ``"per_session"``, ``"global"`` or ``"none"``: how continuous targets
            are standardised (statistics from the training split, computed in :meth:`setup`).
        compile: run the model through ``torch.compile``.
        log_readout_distribution: also log, in validation and test, the mean cross-entropy of every
            expected-value (bins / codebook) head against its soft target and the mean entropy of
            its predicted distribution, in nats (``val_readout_ce/<task>``,
            ``val_readout_entropy/<task>``, ``test_...``).
        readout_vocab_cache: a file where the fitted bins / codebooks are cached and reused from
            when they were computed from the same data (see
            :mod:`torch_brain.training.readout_vocab`; the runner uses
            ``<run_dir>/readout_vocab.pt``). None (default): no cache. Not saved in checkpoints.
        encoder_lr_scale: learning rate of the encoder (every weight but the readout, task and
            unit/session embeddings) relative to ``optimizer.lr``, e.g. 0.1 when fine-tuning a
            pretrained encoder (see :func:`torch_brain.ssl.encoder_param_groups`).
    """

    def __init__(
        self,
        model: str | nn.Module = "poyo_plus",
        *,
        tasks: Sequence[str] | None = None,
        sequence_length: float = 1.0,
        model_kwargs: Mapping[str, Any] | None = None,
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        normalization: str = "per_session",
        compile: bool = False,
        log_readout_distribution: bool = False,
        readout_vocab_cache: str | Path | None = None,
        encoder_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(model, nn.Module):
            specs = getattr(model, "readout", None)
            specs = getattr(specs, "readout_specs", None)
            if specs is None and hasattr(model, "readout_spec"):
                specs = {model.readout_spec.name: model.readout_spec}
            if not specs:
                raise TypeError("model must be 'poyo', 'poyo_plus' or a POYO/POYOPlus instance; got "
                                f"{type(model).__name__} without readout specs.")
            tasks = list(specs)
            model_name = MODEL_REGISTRY.name_of(model)
            hp = dict(getattr(model, "hparams", {}))
            hp.pop("readout_specs", None)
            hp.pop("readout_spec", None)
            sequence_length = hp.pop("sequence_length", sequence_length)
            model_kwargs = hp
            self.model = model
        else:
            if not tasks:
                raise ValueError("tasks must list at least one task name when model is a name, "
                                 "e.g. tasks=['cursor_velocity_2d'].")
            model_name = model
            self.model = build_model(model, list(tasks), sequence_length=sequence_length,
                                     **dict(model_kwargs or {}))
        self.save_hyperparameters({
            "model": model_name,
            "tasks": list(tasks),
            "sequence_length": float(sequence_length),
            "model_kwargs": dict(model_kwargs or {}),
            "optimizer": dict(optimizer or {"name": "adamw", "lr": 1e-3}),
            "scheduler": dict(scheduler) if scheduler else None,
            "normalization": normalization,
            "compile": bool(compile),
            "log_readout_distribution": bool(log_readout_distribution),
            "encoder_lr_scale": float(encoder_lr_scale),
        })
        self.readout_vocab_cache = None if readout_vocab_cache is None else Path(readout_vocab_cache)
        from torch_brain.registry import get_modality

        self.specs = {t: get_modality(t) for t in tasks}
        self.normalizer = TargetNormalizer()
        self._compiled: Any = None
        import torchmetrics

        # val/test loss: a mean over the epoch's windows, reduced across ranks by torchmetrics in
        # the epoch-end hook, which runs on every rank, also on one that had no evaluation batch
        # (a per-step ``self.log(..., sync_dist=True)`` would be reduced only by ranks that logged)
        self._eval_loss = torchmetrics.MeanMetric()
        # per expected-value head: mean CE and entropy over the epoch's queries (reduced like the loss)
        heads = getattr(self.model, "vocabulary_heads", dict)() if log_readout_distribution else {}
        self._readout_stats = nn.ModuleDict({t: nn.ModuleDict({"ce": torchmetrics.MeanMetric(),
                                                               "entropy": torchmetrics.MeanMetric()})
                                             for t in heads})

    # ---------------------------------------------------------------- setup
    def setup(self, stage: str) -> None:
        """Links the datamodule: tokenizer, unit/session vocabularies, target statistics."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None:
            return
        if hasattr(dm, "tokenizer") and dm.tokenizer is None:
            dm.tokenizer = self.model.tokenize
        missing = [t for t in getattr(dm, "tasks", []) if t not in self.specs]
        if missing:
            raise ValueError(
                f"the data has task(s) {missing} that this model has no readout for (model tasks: "
                f"{list(self.specs)}); fine-tune with these tasks or remove them from the data config."
            )
        if stage == "fit":
            self.init_vocab(dm)
        else:
            self._check_eval_sessions(dm, "valid" if stage == "validate" else "test")
        if stage == "fit" and not self.normalizer.stats.get("tasks") and \
                self.hparams.normalization != "none":
            self.normalizer = TargetNormalizer(compute_target_stats(
                dm.dataset("train"), self.specs, mode=self.hparams.normalization))
        if stage == "fit":
            trainer = self.trainer
            # progress where the trainer shows it (the runner's enable_progress_bar), on rank 0 only
            show = trainer.progress_bar_callback is not None and trainer.is_global_zero
            self.fit_readout_vocabularies(dm.dataset("train"), progress=show,
                                          main_process=trainer.is_global_zero)

    def fit_readout_vocabularies(self, dataset: Any, *, progress: bool = False,
                                 main_process: bool = True) -> list[str]:
        """Fits the bins / codebooks of expected-value heads that have none yet, from ``dataset``'s
        training targets as the loss sees them (normalised), or reuses them from
        ``readout_vocab_cache`` (see :func:`~torch_brain.training.readout_vocab.fit_readout_vocabularies`).
        Returns the tasks fitted or reused.

        Raises:
            ValueError: NaN/inf training targets (the session and count are named), constant
                targets, or a task without any training target.
        """
        heads = getattr(self.model, "vocabulary_heads", dict)()
        return fit_readout_vocabularies(heads, dataset, self.specs, self.normalizer,
                                        cache=self.readout_vocab_cache, progress=progress,
                                        main_process=main_process)

    def _check_eval_sessions(self, dm: Any, split: str) -> None:
        """Evaluation needs trained embeddings of every session and unit it reads."""
        for emb_name, ids in (("session_emb", dm.dataset(split).get_session_ids),
                              ("unit_emb", dm.dataset(split).get_unit_ids)):
            emb = getattr(self.model, emb_name, None)
            if emb is None:
                continue
            if emb.is_lazy():
                raise ValueError(
                    f"model.{emb_name} has no vocabulary: evaluate a trained model (e.g. "
                    "NeuralDecoder.load_from_checkpoint) or call trainer.fit first.")
            unknown = [i for i in ids() if i not in emb.vocab]
            if unknown:
                raise ValueError(
                    f"the {split} data has {len(unknown)} {emb_name.split('_')[0]} id(s) the model "
                    f"was not trained on, e.g. {unknown[:3]}; fine-tune on them first "
                    "(`torch-brain finetune`), or evaluate the sessions the model was trained on.")

    def init_vocab(self, dm: Any) -> None:
        """Initialises (or extends, for new sessions) the unit and session vocabularies."""
        for emb_name, ids in (("unit_emb", dm.get_unit_ids), ("session_emb", dm.get_session_ids)):
            emb = getattr(self.model, emb_name, None)
            if emb is None:
                continue
            wanted = list(ids())
            if emb.is_lazy():
                emb.initialize_vocab(wanted)
            else:
                known = set(emb.vocab)
                new = [i for i in wanted if i not in known]
                if new:
                    emb.extend_vocab(new)

    def configure_model(self) -> None:
        if self.hparams.compile and self._compiled is None:
            # window sizes vary from batch to batch: compile for dynamic shapes once
            object.__setattr__(self, "_compiled", torch.compile(self.model, dynamic=True))

    def forward(self, **inputs: Any) -> Any:
        fn = self._compiled if self._compiled is not None else self.model
        return fn(**inputs)

    # ---------------------------------------------------------------- batch helpers
    def _multitask_view(self, batch: Mapping[str, Any], output: Any) -> tuple[dict, dict, dict, dict, torch.Tensor]:
        """(outputs, targets, weights, eval masks) as {task: chained}, and decoder indices (B, Q)."""
        inputs = batch["model_inputs"]
        if "output_decoder_index" in inputs:
            return (output, batch["target_values"], batch.get("target_weights", {}),
                    batch.get("eval_mask", {}), inputs["output_decoder_index"])
        task = next(iter(self.specs))  # POYO: one task, chained tensors
        decoder = inputs["output_mask"].long() * self.specs[task].id

        def wrap(x: Any) -> dict:
            return {} if x is None else {task: x}

        return (wrap(output), wrap(batch["target_values"]), wrap(batch.get("target_weights")),
                wrap(batch.get("eval_mask")), decoder)

    def _readout_spec(self, task: str) -> Any:
        """The task's spec as the model's readout trains it (its head's loss)."""
        get = getattr(self.model, "readout_loss_spec", None)
        return get(task) if get is not None else self.specs[task]

    def _predict(self, task: str, raw: torch.Tensor) -> torch.Tensor:
        """Predictions from a task's raw head output (expected values for bins/codebook heads)."""
        predict = getattr(self.model, "predict", None)
        return predict(task, raw) if predict is not None else raw

    def _counts(self, decoder: torch.Tensor, task: str) -> torch.Tensor:
        return (decoder == self.specs[task].id).sum(dim=1)  # (B,) queries of task per sample

    def _target(self, task: str, pred: torch.Tensor, target: torch.Tensor, sessions: Sequence[str],
                counts: torch.Tensor) -> torch.Tensor:
        """The target as the loss sees it (continuous ones normalised)."""
        if self.specs[task].type.name != "CONTINUOUS":
            return target
        # float32 at least: under bf16-mixed the head's output is bfloat16, the target must not be
        return self.normalizer.normalize(task, target.to(torch.promote_types(pred.dtype, torch.float32)),
                                         sessions, counts)

    def _loss(self, batch: Mapping[str, Any], output: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outputs, targets, weights, _, decoder = self._multitask_view(batch, output)
        sessions = batch["session_id"]
        batch_size = decoder.shape[0]
        total = decoder.new_zeros((), dtype=torch.float32)
        per_task = {}
        for task, pred in outputs.items():
            counts = self._counts(decoder, task)
            target = self._target(task, pred, targets[task], sessions, counts)
            loss = self._readout_spec(task).loss_fn(pred, target, weights.get(task))
            per_task[task] = loss.detach()
            total = total + loss * (counts > 0).sum()
        return total / batch_size, per_task

    # ---------------------------------------------------------------- steps
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        output = self(**batch["model_inputs"], unpack_output=False)
        loss, per_task = self._loss(batch, output)
        bs = len(batch["session_id"])
        self.log("train_loss", loss, prog_bar=True, batch_size=bs, on_step=True, on_epoch=True)
        for task, value in per_task.items():
            self.log(f"train_loss/{task}", value, batch_size=bs)
        if self.trainer is not None and self.trainer.optimizers:
            self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=bs)
        return loss

    def _eval_step(self, batch: Mapping[str, Any], stage: str) -> Any:
        from torch_brain.utils.stitcher import DataForMultiTaskDecodingStitchEvaluator

        output = self(**batch["model_inputs"], unpack_output=False)
        loss, _ = self._loss(batch, output)
        bs = len(batch["session_id"])
        self._eval_loss.update(loss.detach().float(), weight=bs)
        outputs, targets, _, masks, decoder = self._multitask_view(batch, output)
        sessions = list(batch["session_id"])
        preds: list[dict[str, torch.Tensor]] = [{} for _ in sessions]
        for task, pred in outputs.items():
            counts = self._counts(decoder, task)
            if task in self._readout_stats:
                self._update_readout_stats(task, pred, self._target(task, pred, targets[task], sessions, counts),
                                           masks.get(task))
            pred = self._predict(task, pred)
            pred = pred.to(torch.promote_types(pred.dtype, torch.float32))  # bf16-mixed: evaluator gets float32
            if self.specs[task].type.name == "CONTINUOUS":
                pred = self.normalizer.denormalize(task, pred, sessions, counts)
            for i, chunk in enumerate(torch.split(pred, counts.tolist())):
                if counts[i] > 0:
                    preds[i][task] = chunk
        timestamps = batch["model_inputs"]["output_timestamps"]
        return DataForMultiTaskDecodingStitchEvaluator(
            timestamps=timestamps, preds=preds, targets=targets, decoder_indices=decoder,
            eval_masks=masks, session_ids=sessions, absolute_starts=batch["absolute_start"],
        )

    @torch.no_grad()
    def _update_readout_stats(self, task: str, logits: torch.Tensor, target: torch.Tensor,
                              mask: torch.Tensor | None) -> None:
        """Accumulates the CE and entropy of a vocabulary head's queries (those the metrics score)."""
        head = self.model.vocabulary_heads()[task]
        ce, entropy = head.ce_loss(logits, target.reshape(len(target), -1)), head.entropy(logits)  # (n,) each
        if mask is not None:
            keep = mask.reshape(-1).bool()
            ce, entropy = ce[keep], entropy[keep]
        if ce.numel():
            self._readout_stats[task]["ce"].update(ce.float())
            self._readout_stats[task]["entropy"].update(entropy.float())

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> Any:
        return self._eval_step(batch, "val")

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> Any:
        return self._eval_step(batch, "test")

    def _log_mean(self, metric: Any, name: str) -> None:
        if not metric.update_called:
            # a rank without evaluation windows still joins the collective compute: a zero-weight
            # update leaves the mean unchanged (and, on every rank, gives nan: logged as nothing)
            metric.update(torch.zeros((), device=self.device), weight=0.0)
        value = metric.compute()  # collective: every rank calls it
        metric.reset()
        if not torch.isnan(value):  # nan: no evaluation window on any rank
            # already the same reduced value on every rank; sync_dist=True (a mean of equal
            # values, called by every rank) only tells Lightning so
            self.log(name, value, sync_dist=True)

    def _log_eval_loss(self, stage: str) -> None:
        self._log_mean(self._eval_loss, f"{stage}_loss")
        for task, stats in self._readout_stats.items():  # same order on every rank
            for kind, metric in stats.items():
                self._log_mean(metric, f"{stage}_readout_{kind}/{task}")

    def on_validation_start(self) -> None:
        _refuse_rewrapped_eval_sampler(self.trainer, self.trainer.val_dataloaders, "validation")

    def on_test_start(self) -> None:
        _refuse_rewrapped_eval_sampler(self.trainer, self.trainer.test_dataloaders, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_eval_loss("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval_loss("test")

    # ---------------------------------------------------------------- optimisers
    def configure_optimizers(self) -> Any:
        opt_cfg = dict(self.hparams.optimizer)
        scale = self.hparams.get("encoder_lr_scale", 1.0)
        if scale == 1.0:
            params: Any = [p for p in self.model.parameters() if p.requires_grad]
        else:
            from torch_brain.ssl.finetune import encoder_param_groups

            params = encoder_param_groups(self.model, opt_cfg.get("lr", 1e-3), scale)
        optimizer = build_optimizer(params, opt_cfg.pop("name", "adamw"), **opt_cfg)
        sched_cfg = dict(self.hparams.scheduler or {"name": "none"})
        name = sched_cfg.pop("name", "none")
        total = None
        if self._trainer is not None:
            total = self.trainer.max_steps if self.trainer.max_steps and self.trainer.max_steps > 0 \
                else int(self.trainer.estimated_stepping_batches)
        scheduler = build_scheduler(optimizer, name, total_steps=total, **sched_cfg)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    # ---------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["target_normalization"] = self.normalizer.stats
        checkpoint["rng_state"] = _rng_state()
        checkpoint["torch_brain"] = {"tasks": list(self.specs),
                                     "specs": {t: s.to_dict() for t, s in self.specs.items()}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.normalizer = TargetNormalizer(checkpoint.get("target_normalization"))
        check_compatible(checkpoint.get("hyper_parameters", {}), self.hparams, source="this checkpoint")
        if self._trainer is not None and self.trainer.state.fn == "fit" and "rng_state" in checkpoint:
            _set_rng_state(checkpoint["rng_state"])
