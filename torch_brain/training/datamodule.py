"""``DecodingDataModule``: datasets, samplers and loaders for training and stitched evaluation.

Training windows come from :class:`~torch_brain.data.sampler.RandomFixedWindowSampler`
(re-drawn every epoch from ``(seed, epoch)``); validation and test windows from
:class:`~torch_brain.data.sampler.DistributedStitchingFixedWindowSampler` (overlapping windows,
each sequence on one process) so the stitching evaluators see every timestamp.

Under DDP every rank draws the same window order and takes every ``world_size``-th batch. Both
loaders' samplers are ``torch.utils.data.DistributedSampler`` subclasses that split the work
between ranks themselves, so Lightning's default ``use_distributed_sampler=True`` leaves them in
place (the training loader yields whole batches from its sampler, ``batch_size=None``).

Exact resume: the module's ``state_dict`` (saved in every Lightning checkpoint) holds the epoch
and the number of batches already trained in it. On resume the training batch sampler replays
the same epoch's window order and skips those batches; every window's augmentation is seeded
from ``(seed, epoch, batch, position)``, so a resumed run sees exactly the batches of the
uninterrupted one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from torch_brain.training.metrics import DEFAULT_METRICS, build_metric

__all__ = ["DecodingDataModule"]

def _seed_of(*parts: int) -> int:
    """A 63-bit seed derived from integers (stable across processes and Python versions)."""
    digest = hashlib.blake2b(repr(tuple(int(p) for p in parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class _EpochTracker(torch.utils.data.Sampler):
    """Wraps a window sampler; remembers the epoch Lightning gives to ``set_epoch``."""

    def __init__(self, sampler: Any) -> None:
        self.inner = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(self.epoch)  # replay exactly this epoch's windows
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)


class _ResumableBatchSampler(torch.utils.data.DistributedSampler):
    """Batches of ``(window index, sample seed)``; can skip the batches of an interrupted epoch.

    Used as the loader's ``sampler`` (with ``batch_size=None``): it already gives each rank its
    batches, and being a ``DistributedSampler`` keeps Lightning from wrapping it. torch's
    ``__init__`` (which wants a dataset) is not called.
    """

    def __init__(self, sampler: Any, batch_size: int, seed: int, drop_last: bool = False,
                 num_replicas: int = 1, rank: int = 0) -> None:
        self.sampler = _EpochTracker(sampler)  # set_epoch (below) forwards the epoch to it
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.resume: dict[str, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls it on the loader's sampler at the start of every epoch."""
        self.sampler.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def _global_batches(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        # every rank gets the same number of batches (a remainder would make ranks wait)
        n = self._global_batches()
        return n if self.num_replicas == 1 else n // self.num_replicas

    def __iter__(self) -> Iterator[list[tuple[Any, int]]]:
        epoch = self.sampler.epoch
        skip = 0
        if self.resume is not None:
            if self.resume["epoch"] == epoch:
                skip = int(self.resume["batches_done"])
            self.resume = None
        limit = len(self)
        local = 0
        batch: list[Any] = []
        b = 0  # global batch index: every rank sees the same order and takes b % replicas == rank

        def emit(items: list[Any], b: int) -> list[tuple[Any, int]]:
            return [(x, _seed_of(self.seed, epoch, b, i)) for i, x in enumerate(items)]

        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                if b % self.num_replicas == self.rank:
                    if local >= limit:
                        return
                    if local >= skip:
                        yield emit(batch, b)
                    local += 1
                batch, b = [], b + 1
        if batch and not self.drop_last and b % self.num_replicas == self.rank and skip <= local < limit:
            yield emit(batch, b)


class _ResumableLoader(DataLoader):
    """A DataLoader that tells Lightning it can resume mid-epoch.

    The position itself is saved by :meth:`DecodingDataModule.state_dict` (epoch, batches done)
    and replayed by the batch sampler; these methods only mark the loader as resumable.
    """

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        return None


class _SeededWindows(torch.utils.data.Dataset):
    """Reads ``(index, seed)``: seeds the augmentations of that window, then loads it."""

    def __init__(self, dataset: Any, unit_dropout: Mapping[str, Any] | None,
                 tokenizer: Callable[[], Callable | None]) -> None:
        self.dataset = dataset
        self.unit_dropout = dict(unit_dropout) if unit_dropout else None
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return 0

    def __getitem__(self, batch: list[tuple[Any, int]]) -> list[Any]:
        """A whole batch (the loader's sampler yields batches): its windows, in order."""
        return [self._window(index, seed) for index, seed in batch]

    def _window(self, index: Any, seed: int) -> Any:
        # anything else random in the window's pipeline (CPU generator only: torch.manual_seed
        # would also queue CUDA seeding, which costs more than loading the window)
        torch.default_generator.manual_seed(seed)
        np.random.seed(seed % 2**32)
        data = self.dataset.get(index.recording_id, index.start, index.end)
        if self.unit_dropout is not None:
            from torch_brain.transforms import UnitDropout

            data = UnitDropout(**self.unit_dropout, seed=seed)(data)
        return _tokenize(self.tokenizer(), data)


class _EvalWindows(torch.utils.data.Dataset):
    def __init__(self, dataset: Any, tokenizer: Callable[[], Callable | None]) -> None:
        self.dataset = dataset
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return 0

    def __getitem__(self, index: Any) -> Any:
        return _tokenize(self.tokenizer(), self.dataset.get(index.recording_id, index.start, index.end))


def _tokenize(tokenizer: Callable | None, data: Any) -> Any:
    if tokenizer is None:
        raise ValueError(
            "DecodingDataModule.tokenizer is not set: give the datamodule the model's tokenizer "
            "(datamodule.tokenizer = model.tokenize), or train through NeuralDecoder, which sets it."
        )
    return tokenizer(data)


def _readouts(config: Any) -> list[dict[str, Any]]:
    if not isinstance(config, Mapping):
        return []
    entries = list(config.get("multitask_readout", []) or [])
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "readout_id" not in entry:
            raise ValueError(f"dataset config: multitask_readout entry {i} needs a 'readout_id' (the task, e.g. "
                             f"cursor_velocity_2d), got {entry!r}.")
    return entries


class DecodingDataModule(L.LightningDataModule):
    """Datasets, samplers and loaders built from a data config.

    Args:
        root: folder of prepared brainsets (``<root>/<brainset>/<session>.h5``).
        dataset_config: the dataset selection config (YAML path, dict or list) as accepted by
            :class:`~torch_brain.data.Dataset`; its ``multitask_readout`` entries choose the tasks.
            None: every brainset under ``root``, decoding ``tasks``.
        tasks: task names (required when ``dataset_config`` is None; otherwise checked against it).
        window_length: window duration in seconds (the model's ``sequence_length``).
        batch_size: training batch size.
        eval_batch_size: validation/test batch size (default ``batch_size``).
        eval_step: stride of the overlapping evaluation windows (default ``window_length / 2``).
        num_workers: DataLoader worker processes.
        train_split, val_split, test_split: split names of the recordings' domains.
        unit_dropout: keyword arguments of :class:`~torch_brain.transforms.UnitDropout` applied
            to training windows, or None.
        keep_files_open: passed to the Dataset.
        seed: seed of the training window order and augmentations.
        tokenizer: ``model.tokenize`` (set automatically by :class:`NeuralDecoder`).
    """

    def __init__(
        self,
        root: str | Path,
        dataset_config: Any = None,
        *,
        tasks: Sequence[str] | None = None,
        window_length: float = 1.0,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        eval_step: float | None = None,
        num_workers: int = 0,
        train_split: str = "train",
        val_split: str = "valid",
        test_split: str = "test",
        unit_dropout: Mapping[str, Any] | None = None,
        keep_files_open: bool = True,
        seed: int = 0,
        tokenizer: Callable | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        if window_length <= 0:
            raise ValueError(f"window_length must be > 0 seconds (data.window_length), got {window_length}.")
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size or batch_size)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1 (data.{name}), got {value}.")
        if eval_step is not None and not 0 < eval_step <= window_length:
            raise ValueError(f"eval_step must be in (0, window_length={window_length:g}] seconds (data.eval_step) so "
                             f"that evaluation windows cover every timestamp, got {eval_step}; null means window_length / 2.")
        if int(num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0 (data.num_workers; 0 loads in the main process), got {num_workers}.")
        self.window_length = float(window_length)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.eval_step = float(eval_step) if eval_step else self.window_length / 2
        self.num_workers = int(num_workers)
        self.splits = {"train": train_split, "valid": val_split, "test": test_split}
        self.unit_dropout = dict(unit_dropout) if unit_dropout else None
        self.keep_files_open = bool(keep_files_open)
        self.seed = int(seed)
        self.tokenizer = tokenizer
        self.dataset_config = self._resolve_config(dataset_config, tasks)
        self.tasks = self._resolve_tasks(tasks)
        self._datasets: dict[str, Any] = {}
        self._readout_configs: dict[str, dict[str, Any]] = {}  # session -> {task: readout entry}
        self._train_batch_sampler: _ResumableBatchSampler | None = None
        self._resume_state: dict[str, int] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kwargs: Any) -> DecodingDataModule:
        """Builds the datamodule from a run config's ``data`` section (and ``seed``)."""
        data = dict(config["data"])
        return cls(
            root=data["root"], dataset_config=data.get("config"), tasks=data.get("tasks"),
            window_length=data["window_length"], batch_size=data["batch_size"],
            eval_batch_size=data.get("eval_batch_size"), eval_step=data.get("eval_step"),
            num_workers=data.get("num_workers", 0), train_split=data.get("train_split", "train"),
            val_split=data.get("val_split", "valid"), test_split=data.get("test_split", "test"),
            unit_dropout=data.get("unit_dropout"), keep_files_open=data.get("keep_files_open", True),
            seed=config.get("seed", 0), **kwargs,
        )

    # ---------------------------------------------------------------- config and tasks
    def _resolve_config(self, dataset_config: Any, tasks: Sequence[str] | None) -> Any:
        if dataset_config is not None:
            if isinstance(dataset_config, (str, Path)):
                path = Path(dataset_config)
                if not path.is_file():
                    raise FileNotFoundError(
                        f"data.config {str(path)!r} does not exist; pass a dataset config YAML "
                        "(see configs/datasets/) or leave it null and set data.tasks."
                    )
                import yaml

                with open(path) as f:
                    return yaml.safe_load(f)
            return dataset_config
        if not tasks:
            raise ValueError(
                "no tasks to decode: set data.config (a dataset config with multitask_readout) or "
                "data.tasks (e.g. data.tasks=[cursor_velocity_2d])."
            )
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"data.root {str(self.root)!r} does not exist; prepare data first, e.g. "
                f"`torch-brain prepare synthetic_reaching --root {self.root}`."
            )
        brainsets = sorted(p.name for p in self.root.iterdir() if p.is_dir() and any(p.glob("*.h5")))
        if not brainsets:
            raise FileNotFoundError(f"data.root {str(self.root)!r} holds no <brainset>/<session>.h5 files.")
        return [{
            "selection": [{"brainset": b} for b in brainsets],
            "config": {"multitask_readout": [{"readout_id": t} for t in tasks]},
        }]

    def _resolve_tasks(self, tasks: Sequence[str] | None) -> list[str]:
        entries = self.dataset_config if isinstance(self.dataset_config, list) else [self.dataset_config]
        found: list[str] = []
        for entry in entries:
            if isinstance(entry, Mapping):
                for readout in _readouts(entry.get("config", {})):
                    if readout["readout_id"] not in found:
                        found.append(readout["readout_id"])
        if not found:
            raise ValueError(
                "the dataset config lists no task (no config.multitask_readout with readout_id "
                "entries); add one or set data.tasks with data.config null."
            )
        if tasks:
            missing = [t for t in tasks if t not in found]
            if missing:
                raise ValueError(
                    f"data.tasks {missing} are not in the dataset config's multitask_readout "
                    f"({found}); add them there or remove them from data.tasks."
                )
        from torch_brain.registry import MODALITY_REGISTRY

        unknown = [t for t in found if t not in MODALITY_REGISTRY]
        if unknown:
            raise ValueError(
                f"unknown task(s) {unknown}; registered tasks: {', '.join(sorted(MODALITY_REGISTRY))}. "
                "Register new ones with torch_brain.registry.register_modality."
            )
        return found

    # ---------------------------------------------------------------- datasets
    def dataset(self, split: str) -> Any:
        """The Dataset of ``split`` (``"train"``, ``"valid"`` or ``"test"``), built once."""
        if split not in self.splits:
            raise ValueError(f"split must be one of train, valid, test; got {split!r}.")
        if split not in self._datasets:
            from torch_brain.data import Dataset

            self._datasets[split] = Dataset(
                str(self.root), config=self.dataset_config, split=self.splits[split],
                keep_files_open=self.keep_files_open,
            )
        return self._datasets[split]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.dataset("train")
            self.dataset("valid")
        if stage == "validate":
            self.dataset("valid")
        if stage in (None, "test", "predict"):
            self.dataset("test")

    def get_unit_ids(self) -> list[str]:
        """Global unit ids of every split (units are shared by splits of one session)."""
        return self.dataset("train").get_unit_ids()

    def get_session_ids(self) -> list[str]:
        """Global session ids (= recording ids) of the training split."""
        return self.dataset("train").get_session_ids()

    def _session_tasks(self, split: str) -> dict[str, list[str]]:
        """{session_id: tasks configured for it} over the split's recordings."""
        ds = self.dataset(split)
        out: dict[str, list[str]] = {}
        for rid in ds.get_sampling_intervals():
            readouts = {r["readout_id"]: r for r in _readouts(ds.get_config(rid))}
            self._readout_configs.setdefault(rid, readouts)
            out[rid] = [t for t in self.tasks if t in readouts]
        return out

    def get_metrics(self, split: str = "valid") -> dict[str, dict[str, dict[str, Any]]]:
        """``{session_id: {task: {metric_name: torchmetrics metric}}}`` for the split's sessions.

        Metrics come from the readout's ``metrics`` entry in the dataset config, else the task
        type's default (R² for continuous tasks, accuracy for categorical ones).
        """
        from torch_brain.registry import get_modality

        out: dict[str, dict[str, dict[str, Any]]] = {}
        for sid, tasks in self._session_tasks(split).items():
            out[sid] = {}
            for task in tasks:
                spec = get_modality(task)
                entries = self._readout_configs.get(sid, {}).get(task, {}).get("metrics")
                if not entries:
                    entries = DEFAULT_METRICS[spec.type]
                out[sid][task] = dict(build_metric(e, spec) for e in entries)
        return out

    # ---------------------------------------------------------------- loaders
    def _tokenizer(self) -> Callable | None:
        return self.tokenizer

    def train_dataloader(self) -> DataLoader:
        from torch_brain.data import collate
        from torch_brain.data.sampler import RandomFixedWindowSampler

        ds = self.dataset("train")
        sampler = RandomFixedWindowSampler(
            sampling_intervals=ds.get_sampling_intervals(), window_length=self.window_length,
            generator=_seed_of(self.seed, 1),
        )
        trainer = getattr(self, "trainer", None)
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        batch_sampler = _ResumableBatchSampler(sampler, self.batch_size, seed=self.seed,
                                               num_replicas=world, rank=rank)
        if self._resume_state is not None:
            batch_sampler.resume = dict(self._resume_state)
            self._resume_state = None
        self._train_batch_sampler = batch_sampler
        return _ResumableLoader(
            _SeededWindows(ds, self.unit_dropout, self._tokenizer), sampler=batch_sampler, batch_size=None,
            collate_fn=collate, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # workers' base seed from a private generator: the global RNG stays untouched
            generator=torch.Generator().manual_seed(_seed_of(self.seed, 2)),
        )

    def _eval_loader(self, split: str) -> DataLoader:
        from torch_brain.data import collate
        from torch_brain.data.sampler import DistributedStitchingFixedWindowSampler

        ds = self.dataset(split)
        trainer = getattr(self, "trainer", None)
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        # a torch DistributedSampler: Lightning leaves it in place. When it gives some rank no
        # window, it has no length on any rank, so every rank runs the evaluation loop and the
        # evaluators' reduction (a loader of length 0 would be skipped, the others left waiting).
        sampler = DistributedStitchingFixedWindowSampler(
            sampling_intervals=ds.get_sampling_intervals(), window_length=self.window_length,
            step=self.eval_step, batch_size=self.eval_batch_size, num_replicas=world, rank=rank,
            drop_short=True,
        )
        return DataLoader(_EvalWindows(ds, self._tokenizer), sampler=sampler,
                          batch_size=self.eval_batch_size, collate_fn=collate,
                          num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("valid")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    # ---------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        """Training position (epoch, batches trained in it): saved in every checkpoint."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": int(trainer.current_epoch), "batches_done": int(progress.processed),
                "seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict and "epoch" in state_dict:
            self._resume_state = {"epoch": int(state_dict["epoch"]),
                                  "batches_done": int(state_dict["batches_done"])}
