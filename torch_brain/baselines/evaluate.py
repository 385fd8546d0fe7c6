"""Fit classic decoders on the training split and score them like the neural models.

For every session and task a decoder (:class:`RidgeDecoder` or :class:`KalmanDecoder`) is fitted
on binned spike counts of the training split's intervals. Predictions are made per bin over each
evaluation interval, read out at the very query timestamps that the neural models are scored on
(the same overlapping evaluation windows from
:class:`~torch_brain.data.sampler.DistributedStitchingFixedWindowSampler`, the same targets and
eval masks from :func:`~torch_brain.models.tokenizer.prepare_readout`), stitched with
:func:`~torch_brain.utils.stitcher.stitch`, and scored with the datamodule's per-session metrics
(:meth:`DecodingDataModule.get_metrics`). The numbers are therefore directly comparable.

Categorical tasks are decoded by ridge regression onto one-hot labels (the scores act as logits);
the Kalman filter is used for continuous tasks only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torch_brain.baselines.linear import KalmanDecoder, RidgeDecoder, bin_spikes, lagged

__all__ = ["BASELINES", "evaluate_baseline", "fit_session_decoder", "run_baseline"]

BASELINES: tuple[str, ...] = ("kalman", "ridge")


def _segments(intervals: Any) -> list[tuple[float, float]]:
    return [(float(s), float(e)) for s, e in zip(np.asarray(intervals.start), np.asarray(intervals.end))]


def _targets(data: Any, spec: Any, entry: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    tkey = entry.get("timestamp_key") or spec.timestamp_key
    vkey = entry.get("value_key") or spec.value_key
    ts = np.asarray(data.get_nested_attribute(tkey), dtype=np.float64).reshape(-1)
    values = np.asarray(data.get_nested_attribute(vkey))
    if spec.type.name == "CONTINUOUS":
        values = values.astype(np.float64).reshape(len(ts), -1)
        mean, std = entry.get("normalize_mean"), entry.get("normalize_std")
        if mean is not None or std is not None:  # same targets as the neural model sees
            values = (values - np.asarray(mean if mean is not None else 0.0)) / \
                np.asarray(std if std is not None else 1.0)
    return ts, values


class _SessionDecoder:
    """One decoder for one (session, task): bins, features, predictions per segment."""

    def __init__(self, name: str, spec: Any, bin_size: float, lags: int, alpha: float) -> None:
        self.name, self.spec = name, spec
        self.bin_size, self.lags = float(bin_size), int(lags)
        self.categorical = spec.type.name != "CONTINUOUS"
        if name == "kalman" and not self.categorical:
            self.decoder: Any = KalmanDecoder(alpha=min(alpha, 1e-3) if alpha else 1e-3)
        else:
            self.decoder = RidgeDecoder(alpha=alpha, lags=0)  # lags are built here (see _features)

    def _counts(self, data: Any, start: float, end: float) -> np.ndarray:
        return bin_spikes(np.asarray(data.spikes.timestamps), np.asarray(data.spikes.unit_index),
                          len(data.units.id), start, end, self.bin_size)

    def _features(self, counts: np.ndarray) -> np.ndarray:
        return counts if isinstance(self.decoder, KalmanDecoder) else lagged(counts, self.lags)

    def _bin_targets(self, ts: np.ndarray, values: np.ndarray, start: float, n_bins: int
                     ) -> tuple[np.ndarray, np.ndarray]:
        """(targets per bin, bins that have a target)."""
        centres = start + (np.arange(n_bins) + 0.5) * self.bin_size
        if not self.categorical:
            if len(ts) == 0:
                return np.zeros((n_bins, values.shape[1] if values.ndim == 2 else 1)), np.zeros(n_bins, bool)
            out = np.stack([np.interp(centres, ts, values[:, k]) for k in range(values.shape[1])], 1)
            inside = (centres >= ts.min()) & (centres <= ts.max())
            return out, inside
        onehot = np.zeros((n_bins, self.spec.dim))
        has = np.zeros(n_bins, bool)
        idx = np.floor((ts - start) / self.bin_size).astype(np.int64)
        ok = (idx >= 0) & (idx < n_bins)
        np.add.at(onehot, (idx[ok], np.asarray(values, dtype=np.int64)[ok]), 1.0)
        has[idx[ok]] = True
        rows = onehot.sum(1, keepdims=True)
        onehot = np.divide(onehot, rows, out=onehot, where=rows > 0)
        return onehot, has

    def fit(self, data: Any, intervals: Any, entry: Mapping[str, Any]) -> _SessionDecoder:
        ts, values = _targets(data, self.spec, entry)
        xs, ys = [], []
        for start, end in _segments(intervals):
            counts = self._counts(data, start, end)
            y, has = self._bin_targets(ts, values, start, len(counts))
            feats = self._features(counts)
            if isinstance(self.decoder, KalmanDecoder):
                if has.sum() > 2:  # contiguous run of bins with targets
                    first, last = np.flatnonzero(has)[[0, -1]]
                    xs.append(feats[first:last + 1])
                    ys.append(y[first:last + 1])
            elif has.any():
                xs.append(feats[has])
                ys.append(y[has])
        if not xs:
            raise ValueError(f"baseline: no training bins with targets for task {self.spec.name!r} "
                             f"in session {data.session.id!r}.")
        if isinstance(self.decoder, KalmanDecoder):
            self.decoder.fit(xs, ys)
        else:
            self.decoder.fit(np.concatenate(xs), np.concatenate(ys))
        return self

    def predict_segments(self, data: Any, intervals: Any) -> list[tuple[float, np.ndarray]]:
        """[(segment start, predictions per bin)] over the evaluation intervals."""
        out = []
        for start, end in _segments(intervals):
            counts = self._counts(data, start, end)
            out.append((start, self.decoder.predict(self._features(counts))))
        return out


def fit_session_decoder(name: str, data: Any, intervals: Any, spec: Any, entry: Mapping[str, Any],
                        *, bin_size: float = 0.05, lags: int = 5, alpha: float = 1.0) -> Any:
    """Fits one baseline (``"ridge"`` or ``"kalman"``) for one session and task.

    Args:
        name: baseline name.
        data: the whole recording (``Dataset.get_recording_data``).
        intervals: training intervals (``Dataset.get_sampling_intervals()[recording_id]``).
        spec: the task's ModalitySpec; ``entry``: its multitask_readout config entry.
        bin_size, lags, alpha: binning (s), number of past bins, ridge penalty.
    """
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}. Valid baselines are: {', '.join(BASELINES)}.")
    return _SessionDecoder(name, spec, bin_size, lags, alpha).fit(data, intervals, entry)


def _lookup(segments: list[tuple[float, np.ndarray]], abs_t: np.ndarray, bin_size: float,
            dim: int) -> np.ndarray:
    out = np.zeros((len(abs_t), dim))
    for start, pred in segments:
        idx = np.floor((abs_t - start) / bin_size + 1e-9).astype(np.int64)
        ok = (idx >= 0) & (idx < len(pred))
        out[ok] = pred[idx[ok]]
    return out


def evaluate_baseline(dm: Any, decoders: Mapping[tuple[str, str], Any], split: str) -> dict[str, Any]:
    """Scores fitted decoders on ``split`` through the evaluation windows, stitching and metrics.

    Returns:
        ``{"average": float, "sessions": {session: {task: {metric: value}}}}``.
    """
    from torch_brain.data.sampler import DistributedStitchingFixedWindowSampler
    from torch_brain.models.tokenizer import prepare_readout
    from torch_brain.utils.stitcher import stitch

    ds = dm.dataset(split)
    metrics = dm.get_metrics(split)
    intervals = ds.get_sampling_intervals()
    sampler = DistributedStitchingFixedWindowSampler(
        intervals, window_length=dm.window_length, step=dm.eval_step, batch_size=1,
        num_replicas=1, rank=0, drop_short=True)
    cache: dict[tuple[str, str], dict[str, list]] = {}
    predictions: dict[tuple[str, str], list] = {}
    for index in sampler:
        rid = index.recording_id
        window = ds.get(rid, index.start, index.end)
        readouts = {r["readout_id"]: r for r in (window.config or {}).get("multitask_readout", [])}
        for task in metrics.get(rid, {}):
            key = (rid, task)
            if key not in decoders:
                continue
            if key not in predictions:
                predictions[key] = decoders[key].predict_segments(ds.get_recording_data(rid), intervals[rid])
            dec = decoders[key]
            targets = prepare_readout(window, dec.spec, readouts.get(task, {}), task=task)
            abs_t = np.asarray(targets.timestamps, dtype=np.float64) + float(window.absolute_start)
            # the same sample seen from two windows must get the same time to be stitched
            abs_t = np.round(abs_t, 6)
            dim = dec.spec.dim
            pred = _lookup(predictions[key], abs_t, dec.bin_size, dim)
            mask = np.asarray(targets.eval_mask, dtype=bool)
            store = cache.setdefault(key, {"t": [], "p": [], "y": []})
            store["t"].append(abs_t[mask])
            store["p"].append(pred[mask])
            store["y"].append(np.asarray(targets.values)[mask])
    sessions: dict[str, dict[str, dict[str, float]]] = {}
    values = []
    for (rid, task), store in sorted(cache.items()):
        dec = decoders[(rid, task)]
        t = torch.from_numpy(np.concatenate(store["t"]))
        p = torch.from_numpy(np.concatenate(store["p"])).float()
        y = torch.from_numpy(np.concatenate(store["y"]))
        if dec.categorical:
            _, p_s = stitch(t, p.argmax(1).long())
            _, y_s = stitch(t, y.long())
        else:
            _, p_s = stitch(t, p)
            _, y_s = stitch(t, y.float().reshape(len(y), -1))
            if p_s.shape[1] == 1:
                p_s, y_s = p_s[:, 0], y_s[:, 0]
        for mname, metric in metrics[rid][task].items():
            metric.reset()
            metric.update(p_s, y_s)
            value = float(metric.compute())
            sessions.setdefault(rid, {}).setdefault(task, {})[mname] = value
            values.append(value)
    return {"average": float(np.mean(values)) if values else None, "sessions": sessions}


def run_baseline(
    config: str | Path | Mapping[str, Any] | None,
    overrides: Sequence[str] = (),
    *,
    name: str | None = None,
    run_dir: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fits a baseline per session and task on the training split; scores valid and test.

    Args:
        config: YAML path or dict of a run config (``data`` and ``baseline`` sections are used).
        name: ``"ridge"`` or ``"kalman"`` (default ``baseline.name``).
        run_dir: output folder (default ``runs/<name>-<baseline>``).
        overwrite: replace an existing output folder.

    Returns:
        ``{"baseline", "run_dir", "validate": {...}, "test": {...}}`` (also in ``metrics.json``).
    """
    from torch_brain.registry import get_modality
    from torch_brain.training.config import dump_config
    from torch_brain.training.datamodule import DecodingDataModule
    from torch_brain.training.run_dir import atomic_write_text, prepare_run_dir
    from torch_brain.training.runner import resolve_config

    cfg = resolve_config(config, overrides)
    b = cfg["baseline"]
    name = name or b["name"]
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}. Valid baselines are: {', '.join(BASELINES)}.")
    cfg["baseline"]["name"] = name
    out = Path(run_dir) if run_dir else Path("runs") / f"{cfg['name']}-{name}"
    prepare_run_dir(out, overwrite=overwrite)
    dump_config(cfg, out / "config.yaml")
    dm = DecodingDataModule.from_config(cfg)
    train = dm.dataset("train")
    decoders = {}
    for rid, intervals in train.get_sampling_intervals().items():
        config_r = train.get_config(rid) or {}
        readouts = {r["readout_id"]: r for r in config_r.get("multitask_readout", []) or []}
        data = train.get_recording_data(rid)
        for task in dm.tasks:
            if task not in readouts:
                continue
            decoders[(rid, task)] = fit_session_decoder(
                name, data, intervals, get_modality(task), readouts[task],
                bin_size=float(b["bin_size"]), lags=int(b["lags"]), alpha=float(b["alpha"]))
    result = {"baseline": name, "run_dir": str(out),
              "validate": evaluate_baseline(dm, decoders, "valid"),
              "test": evaluate_baseline(dm, decoders, "test")}
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=1))
    return result
