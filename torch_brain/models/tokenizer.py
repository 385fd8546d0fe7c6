"""Tokenization: a window (``torch_brain.data.Data``) becomes model inputs and per-task targets.

The one home of everything the models' ``tokenize`` methods do with a window:

- :func:`tokenize_spikes`: spike tokens, start/end tokens per unit and the latent grid;
- :func:`prepare_readout`: one task's query timestamps, targets, sample weights and evaluation mask
  (used by both POYO and POYOPlus, and by the baselines): values from the spec's keys (or the
  config's overrides), weights from interval weights (multiplied where intervals overlap), the mask
  from an optional ``eval_interval``, and optional normalisation;
- :func:`task_configs`: the window's ``multitask_readout`` entries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from torch_brain import registry as _registry
from torch_brain.data import pad8, track_mask8

__all__ = ["ReadoutTargets", "in_intervals", "prepare_readout", "task_configs", "tokenize_spikes"]

# Token types of input tokens.
SPIKE_TOKEN, UNIT_START_TOKEN, UNIT_END_TOKEN = 0, 1, 2

_CONFIG_KEYS = {
    "readout_id", "weights", "normalize_mean", "normalize_std", "timestamp_key", "value_key",
    "metrics", "eval_interval",
}


@dataclasses.dataclass
class ReadoutTargets:
    """Query targets of one task in one window.

    Attributes:
        timestamps: (n,) float64 query times, relative to the window start.
        values: (n, dim) float32 for CONTINUOUS/BINARY/MULTILABEL, (n,) int64 for MULTINOMIAL.
        weights: (n,) float32 sample weights.
        eval_mask: (n,) bool, True where the query counts for evaluation.
    """

    timestamps: np.ndarray
    values: np.ndarray
    weights: np.ndarray
    eval_mask: np.ndarray


def in_intervals(t: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Whether each time lies in the union of the half-open intervals ``[start_i, end_i)``.

    Intervals may be unsorted or overlapping.

    Shapes:
        t (n,), start (m,), end (m,) -> (n,) bool.
    """
    t = np.asarray(t, dtype=np.float64)
    start = np.asarray(start, dtype=np.float64).reshape(-1)
    end = np.asarray(end, dtype=np.float64).reshape(-1)
    if start.size == 0:
        return np.zeros(t.shape, dtype=bool)
    order = np.argsort(start, kind="stable")
    start, end = start[order], np.maximum.accumulate(end[order])
    idx = np.searchsorted(start, t, side="right") - 1  # last interval starting at or before t
    return (idx >= 0) & (t < end[np.clip(idx, 0, None)])


def _session_name(data: Any) -> str:
    try:
        return str(data.session.id)
    except AttributeError:
        return "<no data.session.id>"


def _get(data: Any, key: str, what: str, task: str, spec: Any) -> Any:
    try:
        return data.get_nested_attribute(key)
    except (AttributeError, KeyError) as err:
        raise ValueError(
            f"readout {task!r}: {what} {key!r} is not in the sample of session {_session_name(data)!r} "
            f"(spec {spec.to_dict()}); add it to the recording, set '{what}' in this task's "
            f"multitask_readout config, or drop the task for this session. ({err})"
        ) from None


def _check_finite(array: np.ndarray, key: str, task: str, data: Any, timestamps: np.ndarray | None = None) -> None:
    """NaN/inf targets would turn the loss into NaN without a word: refuse them by name."""
    bad = ~np.isfinite(array)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(array.shape[0], -1).any(axis=1))
        where = f" (first at t={float(timestamps[rows[0]]):.6g} s in the window)" if timestamps is not None else ""
        raise ValueError(
            f"readout {task!r}: {key!r} holds {int(bad.sum())} NaN/inf value(s) in {rows.size} row(s) of session "
            f"{_session_name(data)!r}{where}. Targets must be finite: interpolate or drop those samples when "
            "preparing the data, or leave their times out of the split's sampling intervals."
        )


def prepare_readout(data: Any, spec: "_registry.ModalitySpec", config: Mapping | None = None,
                    task: str | None = None) -> ReadoutTargets:
    """Build one task's query targets for one window.

    Args:
        data: the window (a ``torch_brain.data.Data`` with ``get_nested_attribute``).
        spec: the task's modality spec.
        config: this task's ``multitask_readout`` entry (all keys optional): ``timestamp_key`` /
            ``value_key`` override the spec's; ``weights`` maps interval paths to factors
            (multiplied where intervals overlap; queries outside all of them keep weight 1);
            ``eval_interval`` is the path of the Interval where queries are evaluated (default:
            everywhere); ``normalize_mean`` / ``normalize_std`` (scalars or per-dim lists) are
            applied to CONTINUOUS values as ``(v - mean) / std``.
        task: task name used in error messages (default ``spec.name``).

    Returns:
        :class:`ReadoutTargets`.

    Raises:
        ValueError: a key missing from the window (names key, session and spec), mismatched
            lengths or dims, out-of-range class labels, unknown config keys.
    """
    config = {} if config is None else config
    task = task or spec.name or f"id {spec.id}"
    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        raise ValueError(
            f"readout {task!r}: unknown config keys {sorted(unknown)}; allowed: {sorted(_CONFIG_KEYS)}."
        )
    tkey = config.get("timestamp_key") or spec.timestamp_key
    vkey = config.get("value_key") or spec.value_key
    timestamps = np.asarray(_get(data, tkey, "timestamp_key", task, spec), dtype=np.float64).reshape(-1)
    values = np.asarray(_get(data, vkey, "value_key", task, spec))
    n = timestamps.shape[0]
    if values.shape[:1] != (n,):
        raise ValueError(
            f"readout {task!r}: {vkey!r} has {values.shape[0] if values.ndim else 0} rows but {tkey!r} has "
            f"{n} timestamps in session {_session_name(data)!r}; they must match."
        )

    _check_finite(timestamps, tkey, task, data)
    if values.dtype.kind == "f":
        _check_finite(values, vkey, task, data, timestamps)
    if spec.type is _registry.DataType.MULTINOMIAL:
        values = values.reshape(n)
        if values.dtype.kind not in "iub":
            if values.dtype.kind == "f" and np.all(values == np.round(values)):
                values = values.astype(np.int64)
            else:
                raise TypeError(
                    f"readout {task!r}: {vkey!r} must hold integer class labels, but got dtype {values.dtype}."
                )
        values = values.astype(np.int64, copy=False)
        if n and (values.min() < 0 or values.max() >= spec.dim):
            raise ValueError(
                f"readout {task!r}: class labels in {vkey!r} must be in [0, {spec.dim}), but got range "
                f"[{values.min()}, {values.max()}] in session {_session_name(data)!r}."
            )
    else:
        values = values.astype(np.float32).reshape(n, -1)
        if values.shape[1] != spec.dim:
            raise ValueError(
                f"readout {task!r}: {vkey!r} has {values.shape[1]} values per timestamp but the spec's dim "
                f"is {spec.dim}; check value_key or the spec."
            )
        mean, std = config.get("normalize_mean"), config.get("normalize_std")
        if mean is not None:
            values = values - np.asarray(mean, dtype=np.float32)
        if std is not None:
            std = np.asarray(std, dtype=np.float32)
            if not np.all(np.isfinite(std) & (std != 0)):
                raise ValueError(f"readout {task!r}: normalize_std must be finite and non-zero, got {std.tolist()}.")
            values = values / std

    weights = np.ones(n, dtype=np.float32)
    for path, factor in (config.get("weights") or {}).items():
        interval = _get(data, path, "weights interval", task, spec)
        weights[in_intervals(timestamps, interval.start, interval.end)] *= np.float32(factor)

    eval_path = config.get("eval_interval")
    if eval_path:
        interval = _get(data, eval_path, "eval_interval", task, spec)
        eval_mask = in_intervals(timestamps, interval.start, interval.end)
    else:
        eval_mask = np.ones(n, dtype=bool)
    return ReadoutTargets(timestamps=timestamps, values=values, weights=weights, eval_mask=eval_mask)


def _session_id(data: Any) -> str:
    try:
        return str(data.session.id)
    except AttributeError:
        raise ValueError("tokenize: the sample has no data.session.id; windows from Dataset.get have one.") from None


def _column(data: Any, group: str, column: str) -> np.ndarray:
    try:
        return getattr(getattr(data, group), column)
    except AttributeError:
        raise ValueError(
            f"tokenize: the sample of session {_session_id(data)!r} has no data.{group}.{column}; "
            "a spike window needs units.id, spikes.timestamps and spikes.unit_index."
        ) from None


def _window_bounds(data: Any) -> tuple[float, float]:
    domain = getattr(data, "domain", None)
    start = getattr(domain, "start", None)
    end = getattr(domain, "end", None)
    if start is None or end is None or len(start) == 0:
        raise ValueError(
            f"tokenize: the sample of session {_session_id(data)!r} has no domain (an Interval); windows "
            "from Dataset.get carry data.domain."
        )
    return float(np.min(start)), float(np.max(end))


def tokenize_spikes(data: Any, *, lookup: Callable[[str, Any], Any], sequence_length: float,
                    latent_index: np.ndarray, latent_timestamps: np.ndarray) -> tuple[dict[str, Any], int]:
    """Input tokens of one window: one per spike, and a start and an end token per unit.

    Args:
        data: the window (``units.id``, ``spikes.timestamps``, ``spikes.unit_index``,
            ``session.id``, ``domain``).
        lookup: ``lookup("unit_emb" | "session_emb", ids)`` -> embedding rows of the ids.
        sequence_length: the model's window length (s); longer windows are refused.
        latent_index: (L,) int64 latent ids of one window; latent_timestamps: (L,) float32 times of
            the latent grid relative to the window start.

    Returns:
        ``({input_unit_index, input_timestamps, input_token_type, input_mask (padded to a multiple
        of 8), latent_index, latent_timestamps}, session_row)``.
    """
    start, end = _window_bounds(data)
    length = end - start
    if length > sequence_length + 1e-6:
        raise ValueError(
            f"tokenize: the window of session {_session_id(data)!r} is {length:.6g} s long but the model's "
            f"sequence_length is {sequence_length:g} s; sample windows of at most sequence_length."
        )
    units = lookup("unit_emb", _column(data, "units", "id"))  # [U]
    spike_ts = np.asarray(_column(data, "spikes", "timestamps"), dtype=np.float32)
    spike_unit = np.asarray(_column(data, "spikes", "unit_index"), dtype=np.int64)
    if spike_unit.size and (spike_unit.min() < 0 or spike_unit.max() >= len(units)):
        raise ValueError(
            f"tokenize: data.spikes.unit_index must index data.units (0..{len(units) - 1}), but got range "
            f"[{spike_unit.min()}, {spike_unit.max()}] in session {_session_id(data)!r}."
        )
    n_units = len(units)
    unit_index = np.concatenate([units[spike_unit], units, units])
    timestamps = np.concatenate([
        spike_ts,
        np.full(n_units, start, dtype=np.float32),
        np.full(n_units, end, dtype=np.float32),
    ])
    token_type = np.concatenate([
        np.full(spike_ts.shape[0], SPIKE_TOKEN, dtype=np.int64),
        np.full(n_units, UNIT_START_TOKEN, dtype=np.int64),
        np.full(n_units, UNIT_END_TOKEN, dtype=np.int64),
    ])
    session_index = int(lookup("session_emb", _session_id(data)))
    inputs = {
        "input_unit_index": pad8(unit_index),
        "input_timestamps": pad8(timestamps),
        "input_token_type": pad8(token_type),
        "input_mask": track_mask8(unit_index),
        "latent_index": latent_index,
        # the latent grid starts at the window start (0 for windows from Dataset.get)
        "latent_timestamps": latent_timestamps if start == 0 else latent_timestamps + np.float32(start),
    }
    return inputs, session_index


def task_configs(data: Any) -> list[Mapping]:
    """The ``multitask_readout`` entries of a window's config (list of dicts)."""
    config = getattr(data, "config", None)
    entries = config.get("multitask_readout") if isinstance(config, Mapping) else None
    if not entries:
        raise ValueError(
            f"tokenize: data.config of session {_session_id(data)!r} has no 'multitask_readout' entries, "
            "so there is nothing to decode; add a multitask_readout list (readout_id: ...) to the "
            "dataset config's `config` section."
        )
    for entry in entries:
        if not isinstance(entry, Mapping) or "readout_id" not in entry:
            raise ValueError(
                f"every multitask_readout entry needs a 'readout_id', but got {entry!r} "
                f"(session {_session_id(data)!r})."
            )
    return list(entries)
