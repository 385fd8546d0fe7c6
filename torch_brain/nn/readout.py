"""Task readouts: per-task linear heads, and the preparation of a window's query targets.

:func:`prepare_readout` is the single place where a window's targets for one task are built (used by
both POYO and POYOPlus): timestamps and values from the spec's keys (or the config's overrides),
sample weights from interval weights (multiplied where intervals overlap), the evaluation mask from
an optional ``eval_interval``, and optional normalisation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torch_brain import registry as _registry
from torch_brain.nn.expected_value import SampledLoss, make_head

__all__ = ["MultitaskReadout", "ReadoutTargets", "in_intervals", "prepare_readout"]

_CONFIG_KEYS = {
    "readout_id", "weights", "normalize_mean", "normalize_std", "timestamp_key", "value_key",
    "metrics", "eval_interval",
}


class MultitaskReadout(nn.Module):
    """One head per task, selected per query by ``output_decoder_index``.

    Args:
        dim: size of the query embeddings.
        readout_specs: task name -> :class:`~torch_brain.registry.ModalitySpec`.
        heads: task name -> head options (default: a linear head for every task). ``kind`` is
            ``"linear"`` (``nn.Linear(dim, spec.dim)``), ``"bins"`` or ``"codebook"``
            (expected-value heads for CONTINUOUS tasks, see
            :mod:`torch_brain.nn.expected_value`); further keys are the head's and loss's options
            (``num_bins``, ``sigma_ratio``, ``soft_target``, ``seed``, ``mse_weight``,
            ``ce_weight``), and ``sample_k`` (any kind) computes the task's loss at ``k`` random
            queries per batch (:class:`~torch_brain.nn.expected_value.SampledLoss`).

    Attributes:
        readout_specs: the task name -> spec mapping; ``readout_specs[task].loss_fn`` is the loss the
            task trains with (for expected-value heads an
            :class:`~torch_brain.nn.expected_value.ExpectedValueLoss` on the head's logits).
        projections: ``nn.ModuleDict`` task name -> head.
        heads: the head options given (JSON-friendly, recorded in the model's hyper-parameters).

    Shapes:
        output_embs (B, Q, dim), output_decoder_index (B, Q) int64 (0 = padding).
        ``unpack_output=False`` -> {task: (n_task, raw)}: every query of that task in the batch, in
        sample order (the order of the chained targets); ``raw`` is ``spec.dim`` for linear heads and
        the logits of an expected-value head (what ``loss_fn`` takes). ``True`` -> list of B dicts
        {task: (n_task_in_sample, spec.dim)} of predictions (expected values for bins/codebook heads),
        holding only tasks present in that sample. Tasks without any query in the batch are left out.
    """

    def __init__(self, dim: int, readout_specs: Mapping[str, "_registry.ModalitySpec"],
                 heads: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        specs = _check_specs(readout_specs)
        heads = {} if heads is None else heads
        if not isinstance(heads, Mapping) or set(heads) - set(specs):
            extra = sorted(set(heads) - set(specs)) if isinstance(heads, Mapping) else heads
            raise ValueError(
                f"heads must map task names of readout_specs ({sorted(specs)}) to head options, but got "
                f"{extra!r}; e.g. heads={{'cursor_velocity_2d': {{'kind': 'bins'}}}}."
            )
        self.heads = {task: dict(opts) for task, opts in heads.items()}
        projections = {}
        for name, spec in specs.items():
            opts = dict(self.heads.get(name, {}))
            kind = opts.pop("kind", "linear")
            sample_k = opts.pop("sample_k", None)
            if kind != "linear" and spec.type is not _registry.DataType.CONTINUOUS:
                raise ValueError(
                    f"heads[{name!r}]: kind {kind!r} decodes CONTINUOUS tasks, but {name!r} is "
                    f"{spec.type.name}; use kind 'linear'."
                )
            head, loss = make_head(kind, dim, spec.dim, **opts)
            loss = spec.loss_fn if loss is None else loss
            if sample_k is not None:
                loss = SampledLoss(loss, sample_k)
            if loss is not spec.loss_fn:
                spec = dataclasses.replace(spec, loss_fn=loss)
            specs[name] = spec
            projections[name] = head
        self.readout_specs: dict[str, _registry.ModalitySpec] = specs
        self.projections = nn.ModuleDict(projections)

    def predict(self, task: str, raw: Tensor) -> Tensor:
        """Predictions (n, spec.dim) from a task's raw head output (identity for linear heads)."""
        head = self.projections[task]
        return head.predict(raw) if hasattr(head, "predict") else raw

    def vocabulary_heads(self) -> dict[str, nn.Module]:
        """Task -> expected-value head (the heads that need :meth:`fit` on training targets)."""
        return {t: h for t, h in self.projections.items() if hasattr(h, "fit")}

    def forward(self, output_embs: Tensor, output_decoder_index: Tensor,
                unpack_output: bool = False) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if output_embs.shape[:2] != output_decoder_index.shape:
            raise ValueError(
                f"output_embs (B, Q, dim) and output_decoder_index (B, Q) disagree: got "
                f"{tuple(output_embs.shape)} and {tuple(output_decoder_index.shape)}."
            )
        outputs: dict[str, Tensor] = {}
        counts: dict[str, list[int]] = {}
        for name, spec in self.readout_specs.items():
            mask = output_decoder_index == spec.id  # [B, Q]
            per_sample = mask.sum(dim=1)
            if not bool(per_sample.any()):
                continue
            # rows in (sample, query) order == order of the chained targets
            outputs[name] = self.projections[name](output_embs[mask])  # [n_task, raw]
            counts[name] = per_sample.tolist()
        if not unpack_output:
            return outputs
        batch = output_embs.shape[0]
        unpacked: list[dict[str, Tensor]] = [{} for _ in range(batch)]
        for name, out in outputs.items():
            out = self.predict(name, out)
            for i, chunk in enumerate(torch.split(out, counts[name])):
                if counts[name][i]:
                    unpacked[i][name] = chunk
        return unpacked


def _check_specs(readout_specs: Any) -> dict:
    if isinstance(readout_specs, _registry.ModalitySpec) or not isinstance(readout_specs, Mapping):
        raise TypeError(
            "readout_specs must be a dict task name -> ModalitySpec (e.g. torch_brain.registry."
            f"MODALITY_REGISTRY), but got {type(readout_specs).__name__}."
        )
    if not readout_specs:
        raise ValueError("readout_specs is empty; give at least one task name -> ModalitySpec.")
    ids: dict[int, str] = {}
    for name, spec in readout_specs.items():
        if not isinstance(spec, _registry.ModalitySpec):
            raise TypeError(f"readout_specs[{name!r}] must be a ModalitySpec, but got {type(spec).__name__}.")
        if not isinstance(name, str) or "." in name or not name:
            raise ValueError(f"readout task names must be non-empty str without '.', but got {name!r}.")
        if spec.id in ids:
            raise ValueError(
                f"readout_specs[{name!r}] and readout_specs[{ids[spec.id]!r}] share id {spec.id}; "
                "each task needs its own id."
            )
        ids[spec.id] = name
    return dict(readout_specs)


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
