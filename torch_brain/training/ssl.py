"""Self-supervised pretraining: ``SSLPretrainModule``, its data module, configs and ``pretrain``.

The module is agnostic to encoder and objective: both come from the registries of
:mod:`torch_brain.ssl` by name (config sections ``encoder`` and ``ssl``); the optimiser and
schedule come from :mod:`torch_brain.training.optim` (sections ``optimizer`` and ``scheduler``).

Example:
    >>> module = SSLPretrainModule({"encoder": {"name": "poyo", "dim": 64},
    ...                             "ssl": {"name": "masked_spikes", "mask_ratio": 0.3}})
    >>> dm = SSLDataModule("data/processed", "configs/datasets/synthetic_reaching.yaml")  # doctest: +SKIP
    >>> L.Trainer(max_steps=500).fit(module, datamodule=dm)  # doctest: +SKIP
    >>> module.save_encoder("encoder.pt")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torchmetrics
from torch.utils.data import DataLoader

from torch_brain.ssl import create_encoder, create_objective, save_encoder
from torch_brain.training.config import _fix_numbers, _parse_override, _read_yaml, dump_config, merge_config
from torch_brain.training.optim import build_optimizer, build_scheduler

__all__ = [
    "FAST_OVERRIDES",
    "SSL_DEFAULT_CONFIG",
    "SSLDataModule",
    "SSLPretrainModule",
    "load_ssl_config",
    "pretrain",
]

SSL_DEFAULT_CONFIG: dict[str, Any] = {
    "name": "pretrain",
    "seed": 0,
    "run_dir": None,  # default: runs/<name>
    "data": {
        "root": "data/processed",
        "config": None,  # dataset selection (Dataset config); behaviour in it is never read
        "window_length": 1.0,
        "batch_size": 32,
        "num_workers": 0,
        "train_split": "train",
        "val_split": "valid",
    },
    "encoder": {"name": "poyo"},
    "ssl": {"name": "masked_spikes"},
    "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
    "scheduler": {"name": "warmup_cosine", "warmup_fraction": 0.1, "final_factor": 0.01},
    "trainer": {
        "max_steps": 1000,
        "max_epochs": -1,
        "accelerator": "auto",
        "devices": 1,
        "precision": "32",
        "gradient_clip_val": 1.0,
        "log_every_n_steps": 10,
        "val_check_interval": None,
        "check_val_every_n_epoch": 1,
        "limit_val_batches": None,
        "steps_per_epoch": None,
        "enable_progress_bar": True,
        "progress_every_n_steps": 50,
    },
    "checkpoint": {"save_top_k": 1, "save_last": True, "every_n_epochs": None, "every_n_train_steps": None},
    "logging": {"csv": True, "quiet": False},
}
_OPEN = ("data.config", "encoder", "ssl", "optimizer", "scheduler")

#: what ``--fast`` applies before the user's overrides (a run of about a minute on 2 CPU cores)
FAST_OVERRIDES: tuple[str, ...] = (
    "trainer.max_steps=20", "trainer.limit_val_batches=4", "trainer.val_check_interval=10",
    "trainer.steps_per_epoch=10", "data.batch_size=8",
)


def _validate(config: Mapping[str, Any], defaults: Mapping[str, Any], prefix: str = "") -> None:
    import difflib

    for key, value in config.items():
        path = f"{prefix}{key}"
        if key == "base" and not prefix:
            continue
        if key not in defaults:
            valid = sorted(f"{prefix}{k}" for k in defaults)
            close = difflib.get_close_matches(path, valid, n=1, cutoff=0.5)
            raise ValueError(f"Unknown pretraining config key {path!r}."
                             + (f" Did you mean {close[0]!r}?" if close else "")
                             + f" Valid keys here are: {', '.join(valid)}.")
        if path in _OPEN:
            if key in ("encoder", "ssl") and not isinstance(value, Mapping):
                raise TypeError(f"config section {path!r} must be a mapping with a 'name', got {value!r}.")
            continue
        if isinstance(defaults[key], dict):
            if not isinstance(value, Mapping):
                raise TypeError(f"config key {path!r} is a section ({', '.join(sorted(defaults[key]))}); "
                                f"got {value!r}.")
            _validate(value, defaults[key], path + ".")


def load_ssl_config(source: str | Path | Mapping[str, Any] | None = None,
                    overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A full pretraining config: :data:`SSL_DEFAULT_CONFIG` <- YAML file / dict / run dir <- overrides.

    Raises:
        FileNotFoundError: the YAML file does not exist.
        ValueError: unknown key (closest valid key named) or malformed override.
    """
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        source = Path(source) / "config.yaml"
    if source is None:
        user: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        user = _fix_numbers(copy.deepcopy(dict(source)))
    else:
        user = _read_yaml(Path(source))
    _validate(user, SSL_DEFAULT_CONFIG)
    config = merge_config(SSL_DEFAULT_CONFIG, user)
    for section in ("encoder", "ssl"):  # a new name replaces the section (no option leaks)
        if "name" in user.get(section, {}):
            config[section] = copy.deepcopy(dict(user[section]))
    for item in overrides:
        parts, value = _parse_override(item)
        update: Any = value
        for part in reversed(parts):
            update = {part: update}
        _validate(update, SSL_DEFAULT_CONFIG)
        node = config
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if len(parts) == 2 and parts[0] in ("encoder", "ssl", "optimizer", "scheduler") and parts[1] == "name" \
                and node.get("name") != value:
            node.clear()
        node[parts[-1]] = value
    return config


def _encoder_options(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    enc = dict(config.get("encoder") or {})
    name = enc.pop("name", None)
    if not name:
        raise ValueError("config section 'encoder' needs a name, e.g. encoder: {name: poyo}. Registered: "
                         + ", ".join(__import__("torch_brain.ssl", fromlist=["x"]).list_encoders()) + ".")
    window = (config.get("data") or {}).get("window_length")
    if name == "poyo" and window is not None:
        enc.setdefault("sequence_length", float(window))
    return name, enc


class SSLPretrainModule(L.LightningModule):
    """Self-supervised pretraining of any registered encoder with any registered objective.

    Args:
        config: a dict or YAML path with sections ``encoder`` (``name`` + options),
            ``ssl`` (``name`` + options), ``optimizer``, ``scheduler`` (optional) and optionally
            ``data.window_length`` (the POYO encoder's ``sequence_length``).

    Logged: ``train/loss`` (step and epoch), ``val/loss``, every metric of the objective as
    ``train/<metric>`` and ``val/<metric>``, and ``lr``.

    Raises:
        ValueError: unknown encoder or objective (the registered ones are listed), an option they
            do not take, a mask ratio outside (0, 1), or an objective that cannot use the encoder.
    """

    def __init__(self, config: str | Path | Mapping[str, Any]) -> None:
        super().__init__()
        if isinstance(config, (str, Path)):
            config = load_ssl_config(config)
        config = _fix_numbers(copy.deepcopy(dict(config)))
        self.save_hyperparameters({"config": config})
        name, options = _encoder_options(config)
        self.encoder = create_encoder(name, **options)
        ssl = dict(config.get("ssl") or {})
        objective = ssl.pop("name", None)
        if not objective:
            raise ValueError("config section 'ssl' needs a name, e.g. ssl: {name: masked_spikes}.")
        self.objective = create_objective(objective, self.encoder, **ssl)
        self.optimizer_config = dict(config.get("optimizer") or {"name": "adamw", "lr": 1e-3})
        self.scheduler_config = dict(config["scheduler"]) if config.get("scheduler") else None
        # means over the whole validation set, reduced across ranks by torchmetrics
        self._val_loss = torchmetrics.MeanMetric()
        self._val_means = torch.nn.ModuleDict()

    # ---------------------------------------------------------------- data link
    def setup(self, stage: str) -> None:
        """Links the datamodule: its tokenizer, the data check and the unit/session vocabularies."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None:
            return
        if hasattr(dm, "objective") and dm.objective is None:
            dm.objective = self.objective
        if hasattr(dm, "check_data"):
            dm.check_data(self.objective)
        self.init_vocab(dm)
        self.init_objective(dm)

    def init_objective(self, dm: Any) -> None:
        """Data-dependent start of the objective (``masked_spikes``: each unit's mean rate), once.

        Runs when the objective asks for it (``rate_init="data"``) and has not been initialised
        yet; a resumed run's checkpoint then overwrites it with the trained values.
        """
        init = getattr(self.objective, "init_unit_rates", None)
        dataset = getattr(dm, "train_dataset", None)
        if init is None or dataset is None or getattr(self.objective, "rate_init", None) != "data" \
                or self.objective.unit_log_rate.numel():
            return
        init(*self.objective.unit_rates_from(dataset))

    def init_vocab(self, dm: Any) -> None:
        """Initialises (or extends) the encoder's unit and session vocabularies from ``dm``."""
        for emb_name, ids in (("unit_emb", getattr(dm, "get_unit_ids", None)),
                              ("session_emb", getattr(dm, "get_session_ids", None))):
            emb = getattr(self.encoder, emb_name, None)
            if emb is None or ids is None:
                continue
            wanted = list(ids())
            if emb.is_lazy():
                emb.initialize_vocab(wanted)
            else:
                new = [i for i in wanted if i not in set(emb.vocab)]
                if new:
                    emb.extend_vocab(new)

    # ---------------------------------------------------------------- steps
    def forward(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """``(loss, metrics)`` of the objective on a collated batch."""
        return self.objective(self.encoder, batch)

    @staticmethod
    def _batch_size(batch: Mapping[str, Any]) -> int:
        ids = batch.get("session_id")
        return len(ids) if isinstance(ids, (list, tuple)) else 1

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss, metrics = self(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretraining loss is {loss.item()} at step {self.global_step}; lower "
                                     "optimizer.lr or check the inputs for NaN.")
        bs = self._batch_size(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        for key, value in metrics.items():
            if torch.is_tensor(value) and torch.isfinite(value):
                self.log(f"train/{key}", value, on_step=False, on_epoch=True, batch_size=bs)
        if self._trainer is not None and self.trainer.optimizers:
            self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=bs)
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss, metrics = self(batch)
        bs = self._batch_size(batch)
        # the batch loss is a mean over loss_weight(batch) terms (masked cells, windows): weighting
        # by it makes val/loss the mean over every term of the set, whatever the batches and ranks
        weight = getattr(self.objective, "loss_weight", None)
        self._val_loss.update(loss.detach(), weight=float(weight(batch)) if weight else float(bs))
        for key, value in metrics.items():
            if isinstance(value, torchmetrics.Metric):
                self.log(f"val/{key}", value, on_step=False, on_epoch=True)
            elif torch.is_tensor(value):
                if key not in self._val_means:
                    self._val_means[key] = torchmetrics.MeanMetric().to(self.device)
                self._val_means[key].update(value.detach().float(), weight=float(bs))  # mean over windows
        return loss

    def on_validation_epoch_end(self) -> None:
        self.log("val/loss", self._val_loss.compute(), prog_bar=True)
        self._val_loss.reset()
        for key, metric in self._val_means.items():
            self.log(f"val/{key}", metric.compute())
            metric.reset()

    def configure_optimizers(self) -> Any:
        opt = dict(self.optimizer_config)
        optimizer = build_optimizer(self.parameters(), opt.pop("name", "adamw"), **opt)
        if not self.scheduler_config:
            return optimizer
        sch = dict(self.scheduler_config)
        total = None
        if self._trainer is not None:
            total = int(self.trainer.estimated_stepping_batches)
        config = build_scheduler(optimizer, sch.pop("name"), total_steps=total, **sch)
        if config is None:
            return optimizer
        if "monitor" in config and config["monitor"] == "average_val_metric":
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}

    # ---------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from torch_brain.training.module import _rng_state

        checkpoint["rng_state"] = _rng_state()  # dropout: a resumed run draws what the first would have

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from torch_brain.training.module import _set_rng_state

        if self._trainer is not None and self.trainer.state.fn == "fit" and "rng_state" in checkpoint:
            _set_rng_state(checkpoint["rng_state"])

    # ---------------------------------------------------------------- encoder
    def get_encoder(self) -> torch.nn.Module:
        """The encoder being pretrained."""
        return self.encoder

    def save_encoder(self, path: str | Path) -> Path:
        """Writes the encoder (kind, hyper-parameters, weights, vocabularies) to ``path``.

        ``POYO.load_pretrained(path, readout_spec=..., skip_readout=True)`` (or
        :func:`torch_brain.ssl.load_pretrained_encoder`) builds a decoder around a ``poyo`` encoder;
        :func:`torch_brain.ssl.load_encoder` rebuilds the encoder itself.
        """
        return save_encoder(self.encoder, path)


class _SeededTokens(torch.utils.data.Dataset):
    """Training: reads a batch of ``(window index, seed)`` and tokenizes each window with its seed."""

    def __init__(self, dataset: Any, objective: Any) -> None:
        self.dataset, self.objective = dataset, objective

    def __len__(self) -> int:
        return 0

    def __getitem__(self, batch: list[tuple[Any, int]]) -> list[Any]:
        return [self.objective.tokenize(self.dataset.get(index.recording_id, index.start, index.end),
                                        train=True, seed=seed) for index, seed in batch]


class _Tokens(torch.utils.data.Dataset):
    """Validation: a window index -> the tokenized window (mask from the window alone)."""

    def __init__(self, dataset: Any, objective: Any) -> None:
        self.dataset, self.objective = dataset, objective

    def __len__(self) -> int:
        return 0

    def __getitem__(self, index: Any) -> Any:
        return self.objective.tokenize(self.dataset.get(index.recording_id, index.start, index.end), train=False)


class SSLDataModule(L.LightningDataModule):
    """Windows for pretraining: random windows of the train split, consecutive windows of the
    validation split, tokenized by the objective (set by :class:`SSLPretrainModule` in ``setup``).

    Only the units, spikes, session and the objective's signal field are read: behaviour in the
    recordings (and readouts in the dataset config) is ignored.

    Training windows are those of :class:`~torch_brain.training.DecodingDataModule`: re-drawn
    every epoch from ``(seed, epoch)``, batched, each batch given to one rank under DDP, and each
    window tokenized with a seed derived from ``(seed, epoch, batch, position)`` (its mask comes
    from it). The position in the epoch is saved in every checkpoint (``state_dict``), so a
    resumed run trains on exactly the windows and masks of the uninterrupted one, with any number
    of workers. Validation windows are split between ranks without padding or repeats
    (:class:`~torch_brain.data.sampler.DistributedEvaluationSamplerWrapper`), their masks depend
    only on the window, so ``val/`` figures are the same on any number of processes.

    Args:
        root: folder of prepared ``<brainset>/<session>.h5`` files.
        config: dataset selection config (path, dict or list; see :class:`~torch_brain.data.Dataset`).
        window_length: seconds per window.
        batch_size: windows per batch.
        num_workers: DataLoader workers.
        train_split, val_split: split names.
        seed: seed of the training windows and of their masks.
    """

    def __init__(self, root: str | Path, config: Any = None, *, window_length: float = 1.0, batch_size: int = 32,
                 num_workers: int = 0, train_split: str = "train", val_split: str | None = "valid",
                 seed: int = 0) -> None:
        super().__init__()
        from torch_brain.data import Dataset

        self.window_length, self.batch_size = float(window_length), int(batch_size)
        self.num_workers, self.seed = int(num_workers), int(seed)
        self.train_dataset = Dataset(root, config, split=train_split)
        self.val_dataset = Dataset(root, config, split=val_split) if val_split else None
        self.objective: Any = None
        self._resume_state: dict[str, int] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SSLDataModule:
        d = config["data"]
        return cls(d["root"], d["config"], window_length=d["window_length"], batch_size=d["batch_size"],
                   num_workers=d["num_workers"], train_split=d["train_split"], val_split=d["val_split"],
                   seed=int(config.get("seed", 0)))

    def check_data(self, objective: Any) -> None:
        """Every recording holds what the objective reads (clear error otherwise)."""
        for ds in (self.train_dataset, self.val_dataset):
            if ds is None:
                continue
            for rid in ds.get_recording_ids():
                objective.check_data(ds.get_recording_data(rid), f"recording {rid!r}")

    def get_unit_ids(self) -> list[str]:
        return sorted(set(self.train_dataset.get_unit_ids())
                      | set(self.val_dataset.get_unit_ids() if self.val_dataset else ()))

    def get_session_ids(self) -> list[str]:
        return sorted(set(self.train_dataset.get_session_ids())
                      | set(self.val_dataset.get_session_ids() if self.val_dataset else ()))

    def _check_objective(self) -> None:
        if self.objective is None:
            raise ValueError("SSLDataModule has no objective: fit it with an SSLPretrainModule (its setup "
                             "links the objective's tokenizer), or set datamodule.objective.")

    def _ranks(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def train_dataloader(self) -> DataLoader:
        from torch_brain.data import collate
        from torch_brain.data.sampler import RandomFixedWindowSampler
        from torch_brain.training.datamodule import _ResumableBatchSampler, _ResumableLoader, _seed_of

        self._check_objective()
        world, rank = self._ranks()
        sampler = RandomFixedWindowSampler(self.train_dataset.get_sampling_intervals(), self.window_length,
                                           generator=self.seed)
        batches = _ResumableBatchSampler(sampler, self.batch_size, seed=self.seed, num_replicas=world, rank=rank)
        if self._resume_state is not None:
            batches.resume, self._resume_state = dict(self._resume_state), None
        return _ResumableLoader(_SeededTokens(self.train_dataset, self.objective), sampler=batches, batch_size=None,
                                collate_fn=collate, num_workers=self.num_workers,
                                persistent_workers=self.num_workers > 0,
                                generator=torch.Generator().manual_seed(_seed_of(self.seed, 2)))

    def val_dataloader(self) -> DataLoader | list:
        from torch_brain.data import collate
        from torch_brain.data.sampler import DistributedEvaluationSamplerWrapper, SequentialFixedWindowSampler

        if self.val_dataset is None:
            return []
        self._check_objective()
        world, rank = self._ranks()
        windows = SequentialFixedWindowSampler(self.val_dataset.get_sampling_intervals(), self.window_length,
                                               step=self.window_length, drop_short=True)
        if world > 1 and len(windows) < world:  # every rank sees the same count: all refuse alike
            raise ValueError(
                f"SSLDataModule: the validation split has {len(windows)} window(s) of {self.window_length:g} s "
                f"for {world} processes; under DDP every process needs at least one validation window (a "
                "process without one would leave the others waiting in the metrics' reduction). Use fewer "
                "processes, a longer validation split or a shorter window_length, or validate on 1 process."
            )
        sampler = DistributedEvaluationSamplerWrapper(windows, num_replicas=world, rank=rank)
        return DataLoader(_Tokens(self.val_dataset, self.objective), sampler=sampler, batch_size=self.batch_size,
                          collate_fn=collate, num_workers=self.num_workers)

    # ---------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        """Training position (epoch, batches trained in it): saved in every checkpoint."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": int(trainer.current_epoch), "batches_done": int(progress.processed), "seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict and "epoch" in state_dict:
            self._resume_state = {"epoch": int(state_dict["epoch"]), "batches_done": int(state_dict["batches_done"])}


def _run_dir_of(config: Mapping[str, Any], run_dir: str | Path | None) -> Path:
    if run_dir is not None:
        return Path(run_dir)
    return Path(config["run_dir"]) if config.get("run_dir") else Path("runs") / str(config.get("name", "pretrain"))


def _trainer(config: Mapping[str, Any], out: Path, callbacks: Sequence[L.Callback]) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from torch_brain.training.progress import make_progress_bar
    from torch_brain.training.run_dir import AtomicCheckpointIO, HistoryCallback

    t, ck = config["trainer"], config["checkpoint"]
    validating = t["limit_val_batches"] != 0 and config["data"]["val_split"]
    ckpt_dir = out / "checkpoints"
    cbs: list[L.Callback] = [HistoryCallback(out / "history.json")]
    if ck["save_top_k"] and validating:
        cbs.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best-{epoch:03d}-{step:06d}", monitor="val/loss",
                                   mode="min", save_top_k=int(ck["save_top_k"]), auto_insert_metric_name=False))
    if ck["every_n_epochs"]:
        cbs.append(ModelCheckpoint(dirpath=ckpt_dir, filename="epoch-{epoch:03d}",
                                   every_n_epochs=int(ck["every_n_epochs"]), save_top_k=-1))
    if ck["save_last"]:
        cbs.append(ModelCheckpoint(dirpath=ckpt_dir, save_top_k=0, save_last=True,
                                   every_n_train_steps=int(ck["every_n_train_steps"] or 0) or None))
    if t["enable_progress_bar"]:
        cbs.append(make_progress_bar(every_n_steps=int(t["progress_every_n_steps"])))
    cbs.extend(callbacks)
    kwargs: dict[str, Any] = {
        "max_steps": int(t["max_steps"]), "max_epochs": int(t["max_epochs"]), "accelerator": t["accelerator"],
        "devices": t["devices"], "precision": str(t["precision"]), "gradient_clip_val": t["gradient_clip_val"],
        "log_every_n_steps": int(t["log_every_n_steps"]), "check_val_every_n_epoch": t["check_val_every_n_epoch"],
        "enable_progress_bar": bool(t["enable_progress_bar"]), "num_sanity_val_steps": 0,
        "default_root_dir": str(out), "plugins": [AtomicCheckpointIO()], "callbacks": cbs,
        "logger": [CSVLogger(save_dir=str(out), name="logs", version="")] if config["logging"]["csv"] else False,
        "enable_model_summary": not config["logging"]["quiet"],
    }
    if not validating:
        kwargs["limit_val_batches"] = 0
    elif t["limit_val_batches"] is not None:
        kwargs["limit_val_batches"] = t["limit_val_batches"]
    if t["val_check_interval"] is not None:
        kwargs["val_check_interval"] = t["val_check_interval"]
        kwargs["check_val_every_n_epoch"] = None if isinstance(t["val_check_interval"], int) else kwargs[
            "check_val_every_n_epoch"]
    if t["steps_per_epoch"] is not None:
        kwargs["limit_train_batches"] = int(t["steps_per_epoch"])
    return L.Trainer(**kwargs)


def pretrain(config: str | Path | Mapping[str, Any] | None, overrides: Sequence[str] = (), *,
             run_dir: str | Path | None = None, resume: bool = False, overwrite: bool = False, fast: bool = False,
             callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Pretrains an encoder from a config; writes a run directory and returns a summary.

    The run directory holds ``config.yaml`` (resolved), ``checkpoints/`` (best by ``val/loss``,
    ``last.ckpt``, periodic), ``history.json`` (every validation's metrics), ``logs/metrics.csv``,
    ``encoder.pt`` (the encoder of the best checkpoint, else of the last step) and ``summary.json``.

    Args:
        config: YAML path, dict, or run directory; ``overrides`` are dotted ``key=value`` strings.
        run_dir: output folder (default: ``config.run_dir`` or ``runs/<name>``).
        resume: continue from ``<run_dir>/checkpoints/last.ckpt``.
        overwrite: replace an existing run directory.
        fast: apply :data:`FAST_OVERRIDES` (before ``overrides``) for a run of about a minute.
        callbacks: extra Lightning callbacks.
    """
    from torch_brain.training.run_dir import atomic_write_text, last_checkpoint, prepare_run_dir

    if resume and config is None and run_dir is not None:
        config = Path(run_dir) / "config.yaml"
    cfg = load_ssl_config(config, (FAST_OVERRIDES if fast else ()) + tuple(overrides))
    L.seed_everything(int(cfg["seed"]), workers=True, verbose=False)  # the initial weights follow the seed
    module = SSLPretrainModule(cfg)  # refuses a bad encoder/objective before anything is written
    dm = SSLDataModule.from_config(cfg)
    dm.check_data(module.objective)  # e.g. masked_signal on spikes-only data: refused before writing
    out = _run_dir_of(cfg, run_dir)
    prepare_run_dir(out, resume=resume, overwrite=overwrite)
    if not resume:
        dump_config(cfg, out / "config.yaml")
    ckpt = last_checkpoint(out) if resume else None
    trainer = _trainer(cfg, out, callbacks)
    trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if ckpt else None)
    best = None
    from lightning.pytorch.callbacks import ModelCheckpoint

    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.monitor and cb.best_model_path:
            best = cb.best_model_path
    if best:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    module.save_encoder(out / "encoder.pt")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    summary = {"run_dir": str(out), "global_step": int(trainer.global_step), "best_checkpoint": best,
               "encoder": str(out / "encoder.pt"), "metrics": dict(sorted(metrics.items()))}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary
