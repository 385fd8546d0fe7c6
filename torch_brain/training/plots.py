"""Plots of a run (matplotlib is optional: without it these functions write nothing).

- :func:`plot_traces`: decoded vs true traces of continuous tasks over a stretch of time;
- :func:`plot_confusion`: confusion matrix of a categorical task;
- :func:`plot_history`: learning curves from ``history.json`` entries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["matplotlib_available", "plot_confusion", "plot_history", "plot_traces", "safe_name"]


def matplotlib_available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def safe_name(text: str) -> str:
    """A file-name friendly version of a session/task id (``/`` -> ``__``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.replace("/", "__"))


def plot_traces(timestamps: np.ndarray, preds: np.ndarray, targets: np.ndarray, path: str | Path,
                *, title: str = "", seconds: float = 20.0) -> Path | None:
    """Decoded (orange) vs true (black) values over the first ``seconds`` of ``timestamps``.

    Args:
        timestamps: (n,) sorted times in seconds.
        preds, targets: (n,) or (n, d) values; one panel per dimension.
        path: output png.
        title: figure title.
        seconds: length of the stretch shown.
    """
    if not matplotlib_available() or len(timestamps) == 0:
        return None
    plt = _pyplot()
    t = np.asarray(timestamps)
    keep = t <= t[0] + seconds
    p = np.asarray(preds).reshape(len(t), -1)[keep]
    y = np.asarray(targets).reshape(len(t), -1)[keep]
    d = p.shape[1]
    fig, axes = plt.subplots(d, 1, figsize=(10, 2.2 * d), sharex=True, squeeze=False)
    for k in range(d):
        ax = axes[k, 0]
        ax.plot(t[keep], y[:, k], color="black", lw=1.2, label="true")
        ax.plot(t[keep], p[:, k], color="tab:orange", lw=1.0, label="decoded")
        ax.set_ylabel(f"dim {k}")
    axes[0, 0].legend(loc="upper right", frameon=False)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_confusion(preds: np.ndarray, targets: np.ndarray, num_classes: int, path: str | Path,
                   *, title: str = "") -> Path | None:
    """Row-normalised confusion matrix (rows: true class, columns: decoded class).

    Args:
        preds: (n,) predicted labels or (n, C) logits.
        targets: (n,) true labels.
    """
    if not matplotlib_available() or len(targets) == 0:
        return None
    plt = _pyplot()
    preds = np.asarray(preds)
    if preds.ndim == 2:
        preds = preds.argmax(1)
    matrix = np.zeros((num_classes, num_classes))
    np.add.at(matrix, (np.asarray(targets, dtype=int), preds.astype(int)), 1)
    rows = matrix.sum(1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xlabel("decoded")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_history(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """Learning curves: losses and ``average_val_metric`` against the step."""
    if not matplotlib_available() or not history:
        return None
    plt = _pyplot()
    steps = [e["step"] for e in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for key in ("train_loss_epoch", "train_loss", "train_loss_step", "val_loss"):
        values = [e["metrics"].get(key) for e in history]
        if any(v is not None for v in values):
            axes[0].plot(steps, [np.nan if v is None else v for v in values], marker="o", label=key)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss")
    axes[0].legend(frameon=False)
    values = [e["metrics"].get("average_val_metric") for e in history]
    axes[1].plot(steps, [np.nan if v is None else v for v in values], marker="o", color="tab:green")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("average_val_metric")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
