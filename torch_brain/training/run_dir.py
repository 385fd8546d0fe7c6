"""Run directories, atomic checkpoint writes, and the per-epoch training history.

Layout of a run directory::

    <run_dir>/
      config.yaml        the resolved config of the run
      checkpoints/       best-*.ckpt (best k by the monitored metric), last.ckpt, epoch-*.ckpt
      logs/              metrics.csv (Lightning CSVLogger), tensorboard/ (if installed)
      history.json       one entry per validation: epoch, step, every logged metric
      readout_vocab.pt   fitted bins / codebooks of expected-value heads (reused on resume)
      metrics_<stage>.json   final metrics of `validate` / `test` (per session and task)
      plots/             decoded vs true traces, confusion matrices, learning curves
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from torch_brain.models._transfer import check_torch_file

__all__ = [
    "AtomicCheckpointIO",
    "HistoryCallback",
    "atomic_write_text",
    "check_run_dir",
    "last_checkpoint",
    "prepare_run_dir",
    "read_checkpoint",
]


def _atomic_write(path: str | Path, mode: str, write: Any) -> None:
    """Calls ``write(file)`` on a temporary file next to ``path`` (opened with ``mode``), fsyncs,
    then renames it to ``path``; on any error the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    _atomic_write(path, "w", lambda f: f.write(text))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint IO that writes ``<name>.tmp`` in the same folder, fsyncs, then renames.

    A run killed while saving leaves the previous checkpoint intact and no partial file under
    the final name (``os.replace`` is atomic on POSIX and Windows).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path,
                        storage_options: Any | None = None) -> None:
        _atomic_write(path, "wb", lambda f: torch.save(checkpoint, f))


def read_checkpoint(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` on CPU, with one clear error for a file that is not
    a Lightning checkpoint (missing, another kind of file, truncated, or not a dict).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable checkpoint (names the file and what was found).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist; check the path.")
    check_torch_file(path, what, "pass a .ckpt file of a torch-brain run.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torn zip, foreign pickle: torch raises several types
        raise ValueError(f"{what} {str(path)!r} cannot be read as a checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); it is truncated, damaged or "
                         "not a torch-brain checkpoint. Use another checkpoint (e.g. a best-*.ckpt).") from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"{what} {str(path)!r} holds a {type(ckpt).__name__}, not a checkpoint dict; pass "
                         "a .ckpt file of a torch-brain run.")
    return ckpt


def check_run_dir(run_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> Path:
    """The checks of :func:`prepare_run_dir`, without creating or deleting anything."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: resume continues the run in "
                         f"{str(run_dir)!r}, overwrite deletes it. Pass only one.")
    if resume and last_checkpoint(run_dir) is None:
        raise FileNotFoundError(
            f"cannot resume: no checkpoint {str(run_dir / 'checkpoints' / 'last.ckpt')!r}. "
            "Start the run without --resume (or check --run-dir)."
        )
    if not resume and not overwrite and run_dir.is_dir() and any(run_dir.iterdir()):
        raise ValueError(
            f"run directory {str(run_dir)!r} already exists and is not empty. Pass --resume to "
            "continue that run, --overwrite to replace it, or choose another --run-dir."
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run directory {str(run_dir)!r} is a file, not a folder; pass another --run-dir.")
    return run_dir


def prepare_run_dir(run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
                    keep: Sequence[str] = ()) -> Path:
    """Creates (or reopens) a run directory, refusing to clobber an existing run.

    Args:
        run_dir: the folder.
        resume: continue the run in ``run_dir`` (its ``checkpoints/last.ckpt`` must exist).
        overwrite: delete an existing ``run_dir`` first.
        keep: names of files directly in ``run_dir`` that ``overwrite`` leaves in place (caches
            that check themselves, such as ``readout_vocab.pt``).

    Returns:
        The run directory path.

    Raises:
        ValueError: ``run_dir`` exists and is not empty, and neither flag was given; or both
            flags were given.
        FileNotFoundError: ``resume`` without a ``last.ckpt`` to resume from.
    """
    run_dir = check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    if resume:
        # half-written temporary files of a process killed while saving (the files they were
        # meant to replace are intact)
        for leftover in [*run_dir.glob(".*.tmp"), *(run_dir / "checkpoints").glob(".*.tmp")]:
            leftover.unlink()
        return run_dir
    if overwrite and run_dir.is_dir() and any(run_dir.iterdir()):
        for child in run_dir.iterdir():
            if child.name in keep and child.is_file():
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=run_dir / "checkpoints", prefix=".write-test-")
        probe.close()
    except OSError as err:
        raise ValueError(
            f"run directory {str(run_dir)!r} cannot be written ({err.strerror or err}: "
            f"{err.filename or run_dir}); pass a writable --run-dir (or set run_dir in the config)."
        ) from None
    return run_dir


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """``<run_dir>/checkpoints/last.ckpt`` if it exists, else None."""
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    return path if path.is_file() else None


def _to_number(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        value = value.item()
    if isinstance(value, (int, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    return None


class HistoryCallback(L.Callback):
    """Appends every validation's metrics to ``history.json`` (and keeps it on resume).

    Each entry: ``{"epoch": int, "step": int, "metrics": {name: float}}`` where ``metrics`` holds
    every scalar Lightning has logged so far in the epoch (``train_loss``, ``val_loss``,
    ``average_val_metric``, ``<session>/<task>/<metric>/val``, ``lr`` ...).

    Args:
        path: the json file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.history: list[dict[str, Any]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_train_start runs after a resumed checkpoint is restored (global_step is known)
        self.history = []
        if self.path.is_file():  # resume: keep what happened before the checkpoint
            with open(self.path) as f:
                old = json.load(f)
            self.history = [e for e in old if e.get("step", 0) <= trainer.global_step]

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = {}
        for key, value in trainer.callback_metrics.items():
            number = _to_number(value)
            if number is not None:
                metrics[key] = number
        entry = {"epoch": int(trainer.current_epoch), "step": int(trainer.global_step),
                 "metrics": dict(sorted(metrics.items()))}
        if self.history and self.history[-1]["step"] == entry["step"]:
            self.history[-1] = entry
        else:
            self.history.append(entry)
        if trainer.is_global_zero:
            atomic_write_text(self.path, json.dumps(self.history, indent=1))
