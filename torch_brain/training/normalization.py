"""Target normalisation: statistics of continuous targets on the training split.

Continuous targets are standardised, ``(y - mean) / std``, before the loss; predictions are
mapped back, ``pred * std + mean``, before metrics, so metrics are in the original units. The
statistics come from the training split only, either per session (each session its own
mean/std, falling back to the global ones for a session never seen) or global (pooled over all
training sessions). They travel in the checkpoint (``checkpoint["target_normalization"]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["NORMALIZATION_MODES", "TargetNormalizer", "compute_target_stats", "training_targets"]

NORMALIZATION_MODES: tuple[str, ...] = ("global", "none", "per_session")
_MIN_STD = 1e-6


def _inside(timestamps: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Boolean mask of timestamps inside any ``[start, end)`` interval (sorted, disjoint)."""
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    k = np.searchsorted(starts, timestamps, side="right") - 1
    ok = k >= 0
    out = np.zeros(timestamps.shape, dtype=bool)
    out[ok] = timestamps[ok] < ends[k[ok]]
    return out


def training_targets(dataset: Any, tasks: Mapping[str, Any], *,
                     progress: Callable[[Iterable, int], Iterable] | None = None,
                     ) -> Iterator[tuple[str, str, np.ndarray, bool]]:
    """Every task's targets inside each recording's training sampling intervals.

    Args:
        dataset: a training-split :class:`~torch_brain.data.Dataset`.
        tasks: {task name: ModalitySpec}.
        progress: ``progress(recordings, count)`` wraps the loop over recordings (e.g. to show a
            bar); None: no progress.

    Yields:
        ``(task, recording_id, values (n, dim) float64, normalized)`` for every recording that
        decodes the task; ``normalized`` is True when the dataset config normalises the task there
        (``normalize_mean`` / ``normalize_std``, already applied to ``values``, as the tokenizer
        does). Values may hold NaN; callers decide.
    """
    recordings = dataset.get_sampling_intervals()
    items: Iterable = recordings.items() if progress is None else progress(recordings.items(), len(recordings))
    for rid, intervals in items:
        data = dataset.get_recording_data(rid)
        starts = np.asarray(intervals.start, dtype=np.float64)
        ends = np.asarray(intervals.end, dtype=np.float64)
        readouts = {}
        if hasattr(dataset, "get_config"):
            config = dataset.get_config(rid) or {}
            readouts = {r["readout_id"]: r for r in config.get("multitask_readout", []) or []}
        for name, spec in tasks.items():
            entry = readouts.get(name, {})
            if readouts and name not in readouts:
                continue  # this session does not decode the task
            tkey = entry.get("timestamp_key") or spec.timestamp_key
            vkey = entry.get("value_key") or spec.value_key
            if not (data.has_nested_attribute(tkey) and data.has_nested_attribute(vkey)):
                continue
            ts = np.asarray(data.get_nested_attribute(tkey), dtype=np.float64).reshape(-1)
            values = np.asarray(data.get_nested_attribute(vkey), dtype=np.float64)
            values = values.reshape(len(values), -1)[_inside(ts, starts, ends)]
            mean, std = entry.get("normalize_mean"), entry.get("normalize_std")
            if mean is not None:
                values = values - np.asarray(mean, dtype=np.float64)
            if std is not None:
                values = values / np.asarray(std, dtype=np.float64)
            yield name, rid, values, mean is not None or std is not None


def compute_target_stats(
    dataset: Any,
    tasks: Mapping[str, Any],
    mode: str = "per_session",
) -> dict[str, Any]:
    """Mean and std of every continuous task's targets inside the training sampling intervals.

    Args:
        dataset: a training-split :class:`~torch_brain.data.Dataset` (``get_sampling_intervals``,
            ``get_recording_data``).
        tasks: {task name: ModalitySpec}; non-continuous tasks are skipped.
        mode: ``"per_session"``, ``"global"`` or ``"none"``.

    Returns:
        ``{"mode": mode, "tasks": {task: {"global": {"mean": [...], "std": [...]},
        "sessions": {session_id: {"mean": [...], "std": [...]}}}}}`` (lists of floats, one per
        output dimension; std floored at 1e-6 -> replaced by 1).
    """
    if mode not in NORMALIZATION_MODES:
        raise ValueError(
            f"normalization.mode must be one of {', '.join(NORMALIZATION_MODES)}, got {mode!r}."
        )
    stats: dict[str, Any] = {"mode": mode, "tasks": {}}
    if mode == "none":
        return stats
    continuous = {n: s for n, s in tasks.items() if getattr(s.type, "name", "") == "CONTINUOUS"}
    sums: dict[str, dict[str, list]] = {n: {} for n in continuous}
    identity: dict[str, set[str]] = {n: set() for n in continuous}
    for name, rid, values, normalized in training_targets(dataset, continuous):
        if normalized:
            identity[name].add(rid)  # the dataset config already normalises this task
            continue
        values = values[np.all(np.isfinite(values), axis=1)]
        if len(values):
            mean = values.mean(0)
            sums[name][rid] = (len(values), mean, ((values - mean) ** 2).sum(0))
    for name, per_session in sums.items():
        if not per_session:
            continue
        entry: dict[str, Any] = {"sessions": {}}
        total = None
        for rid, moments in per_session.items():
            entry["sessions"][rid] = _mean_std(*moments)
            total = moments if total is None else _combine(total, moments)
        entry["global"] = _mean_std(*total)
        if mode == "global":
            entry["sessions"] = {}
        dim = len(entry["global"]["mean"])
        for rid in identity[name]:
            entry["sessions"][rid] = {"mean": [0.0] * dim, "std": [1.0] * dim}
        stats["tasks"][name] = entry
    return stats


def _combine(a: tuple, b: tuple) -> tuple:
    """Pool two ``(count, mean, sum of squared deviations)`` moments (Chan et al.'s update), which
    stays exact when the mean is large next to the spread (unlike E[x²] - E[x]²)."""
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), m2a + m2b + delta**2 * (na * nb / n)


def _mean_std(n: int, mean: np.ndarray, m2: np.ndarray) -> dict[str, list[float]]:
    std = np.sqrt(m2 / n)
    std = np.where(std < _MIN_STD, 1.0, std)
    return {"mean": mean.tolist(), "std": std.tolist()}


class TargetNormalizer:
    """Applies / undoes the standardisation of :func:`compute_target_stats`.

    Args:
        stats: the dict returned by :func:`compute_target_stats` (or None: identity).
    """

    def __init__(self, stats: Mapping[str, Any] | None = None) -> None:
        self.stats: dict[str, Any] = dict(stats) if stats else {"mode": "none", "tasks": {}}
        self._cache: dict[tuple[str, str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def tasks(self) -> list[str]:
        """Tasks with statistics (the ones that get normalised)."""
        return sorted(self.stats.get("tasks", {}))

    def _rows(self, task: str, session_ids: Sequence[str], counts: torch.Tensor | None,
              like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, dim) mean and std: one session per sample, repeated ``counts[i]`` times."""
        entry = self.stats["tasks"][task]
        means, stds = [], []
        for sid in session_ids:
            key = (task, sid, str(like.device))
            if key not in self._cache:
                chosen = entry["sessions"].get(sid, entry["global"])
                self._cache[key] = (
                    torch.tensor(chosen["mean"], dtype=torch.float32, device=like.device),
                    torch.tensor(chosen["std"], dtype=torch.float32, device=like.device),
                )
            m, s = self._cache[key]
            means.append(m)
            stds.append(s)
        shape = tuple(like.shape[1:])
        if not means:
            empty = like.new_zeros((0,) + shape)
            return empty, empty
        mean = torch.stack(means).to(like.dtype)
        std = torch.stack(stds).to(like.dtype)
        if counts is not None:
            counts = counts.to(like.device)
            mean = mean.repeat_interleave(counts, dim=0)
            std = std.repeat_interleave(counts, dim=0)
        return mean.reshape((-1,) + shape), std.reshape((-1,) + shape)

    def normalize(self, task: str, values: torch.Tensor, session_ids: Sequence[str],
                  counts: torch.Tensor | None = None) -> torch.Tensor:
        """``(values - mean) / std``.

        Args:
            task: task name (tasks without statistics are returned unchanged).
            values: (n, dim) targets.
            session_ids: one session id per sample (or per row when ``counts`` is None).
            counts: (n_samples,) number of rows of each sample (rows are chained in sample order).
        """
        if task not in self.stats.get("tasks", {}):
            return values
        mean, std = self._rows(task, session_ids, counts, values)
        return (values - mean) / std

    def denormalize(self, task: str, values: torch.Tensor, session_ids: Sequence[str],
                    counts: torch.Tensor | None = None) -> torch.Tensor:
        """``values * std + mean``; arguments as in :meth:`normalize`."""
        if task not in self.stats.get("tasks", {}):
            return values
        mean, std = self._rows(task, session_ids, counts, values)
        return values * std + mean
