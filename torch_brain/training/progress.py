"""Progress reporting that suits where the output goes.

On a terminal Lightning's tqdm bar redraws one line in place. In a pipe, a file or a cluster log
every redraw becomes a line of its own (thousands per run), so there :class:`LineProgressBar`
prints one plain line every ``every_n_steps`` training steps and one at the end of each epoch and
evaluation instead. :func:`progress_iter` does the same for a pass over sessions (the readout
statistics): a tqdm bar on a terminal, a line before and a line after in a pipe.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

__all__ = ["LineProgressBar", "make_progress_bar", "progress_iter"]

_T = TypeVar("_T")


class LineProgressBar(ProgressBar):
    """Plain-line progress for non-interactive output.

    Args:
        every_n_steps: print a line every this many training steps (> 0).
        stream: where to print; default ``sys.stdout`` (looked up at print time).

    Example line: ``train step 200/1200 (epoch 0) 3.1 steps/s train_loss=0.412``.
    """

    def __init__(self, every_n_steps: int = 50, stream: TextIO | None = None) -> None:
        super().__init__()
        if not isinstance(every_n_steps, int) or every_n_steps <= 0:
            raise ValueError(
                f"every_n_steps must be a positive int, got {every_n_steps!r}; e.g. every_n_steps=50."
            )
        self.every_n_steps = every_n_steps
        self._stream = stream
        self._enabled = True
        self._t0 = 0.0
        self._step0 = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._enabled:
            print(*args, file=self._stream or sys.stdout, flush=True, **kwargs)

    def _metrics_text(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        metrics = self.get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0, self._step0 = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step == 0 or step % self.every_n_steps:
            return
        rate = (step - self._step0) / max(time.perf_counter() - self._t0, 1e-9)
        total = f"/{trainer.max_steps}" if trainer.max_steps and trainer.max_steps > 0 else ""
        self.print(f"train step {step}{total} (epoch {trainer.current_epoch}) {rate:.2f} steps/s "
                   f"{self._metrics_text(trainer, pl_module)}".rstrip())

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.print(f"epoch {trainer.current_epoch} done at step {trainer.global_step} "
                   f"{self._metrics_text(trainer, pl_module)}".rstrip())

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.print(f"validation done at step {trainer.global_step}")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.print("test done")


def make_progress_bar(every_n_steps: int = 50, stream: TextIO | None = None) -> ProgressBar:
    """Lightning's tqdm bar when ``stream`` (default stdout) is a terminal, else a :class:`LineProgressBar`."""
    out = stream or sys.stdout
    if getattr(out, "isatty", lambda: False)():
        return TQDMProgressBar()
    return LineProgressBar(every_n_steps=every_n_steps, stream=stream)


def progress_iter(items: Iterable[_T], *, total: int, desc: str, unit: str = "session",
                  stream: TextIO | None = None) -> Iterator[_T]:
    """Yields ``items`` while showing progress where ``stream`` (default stdout) goes.

    On a terminal a tqdm bar (removed when done); otherwise one line before
    (``"<desc>: 12 sessions"``) and one after (``"<desc>: 12 sessions in 3.4 s"``), never a line
    per item.

    Args:
        items: what to iterate.
        total: number of items (for the bar and the lines).
        desc: what the pass does, e.g. ``"readout statistics"``.
        unit: singular name of one item.
        stream: where to print; default ``sys.stdout`` (looked up at call time).
    """
    out = stream or sys.stdout
    if getattr(out, "isatty", lambda: False)():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit=unit, file=out, leave=False)
        return
    units = f"{total} {unit}{'' if total == 1 else 's'}"
    print(f"{desc}: {units}", file=out, flush=True)
    t0 = time.perf_counter()
    yield from items
    print(f"{desc}: {units} in {time.perf_counter() - t0:.1f} s", file=out, flush=True)
