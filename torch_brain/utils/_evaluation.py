"""Stitching evaluators: Lightning callbacks that pool window predictions and score them.

Data flow, per (session, task):

- ``on_{validation,test}_batch_end`` receives the step's :class:`DataForDecodingStitchEvaluator`
  or :class:`DataForMultiTaskDecodingStitchEvaluator`, turns every evaluated query into an
  absolute time (``absolute_start + relative timestamp``, matched at 1 µs) and a row of running
  sums: ``[1, prediction..., target...]`` for mean-pooled tasks, ``[1, one-hot predicted class,
  one-hot target class]`` for categorical ones (the vote counts of the mode).
- :class:`_TimePool` keeps those rows summed per distinct time: new rows wait in a short list and
  are merged into the pooled table once they outnumber it, so memory follows the number of
  distinct timestamps, not windows x overlap.
- at epoch end every rank turns its pools into stitched predictions/targets, updates the
  torchmetrics metrics, and calls ``compute()`` on every metric in the order of the ``metrics``
  dict, so torchmetrics' cross-rank reduction lines up on all ranks (a rank without data of a
  session takes part with empty states). Which (session, task) pairs have data at all, and which
  saw non-finite predictions, is agreed across ranks through one small torchmetrics metric.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torchmetrics

from torch_brain.utils._pooling import _group_sum, _torch_threads

__all__ = [
    "DataForDecodingStitchEvaluator",
    "DataForMultiTaskDecodingStitchEvaluator",
    "DecodingStitchEvaluator",
    "MultiTaskDecodingStitchEvaluator",
]

#: absolute times are matched on this grid (seconds): 1 µs absorbs float rounding of
#: ``absolute_start + relative time`` (and float32 relative times) across windows.
_TIME_RESOLUTION = 1e-6
#: pending rows are merged into the pooled table once there are this many (or more than pooled)
_MIN_MERGE_ROWS = 1 << 16
_STAGE_NAMES = {"val": "validation", "test": "test"}


# ------------------------------------------------------------------------------------------------
# What validation_step / test_step return
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DataForDecodingStitchEvaluator:
    """One evaluation batch of a single-task model, for :class:`DecodingStitchEvaluator`.

    Attributes:
        timestamps: (B, Q) query times relative to each window's start, padded at the end
            (``batch["model_inputs"]["output_timestamps"]``).
        preds: list of B tensors (n_i, dim), the model output with ``unpack_output=True``; sample
            i's predictions belong to its first n_i queries. Logits for categorical tasks.
        targets: (sum n_i, ...) targets chained over the batch in sample order (class indices,
            int64, for categorical tasks).
        eval_masks: (sum n_i,) bool, chained like ``targets``; only True queries are scored.
            ``None`` scores all.
        session_ids: B session ids (``batch["session_id"]``).
        absolute_starts: (B,) float64 absolute start time of each window (seconds).
    """

    timestamps: torch.Tensor
    preds: Sequence[torch.Tensor]
    targets: torch.Tensor
    eval_masks: torch.Tensor | None
    session_ids: Sequence[str]
    absolute_starts: torch.Tensor | Sequence[float]


@dataclasses.dataclass
class DataForMultiTaskDecodingStitchEvaluator:
    """One evaluation batch of a multi-task model, for :class:`MultiTaskDecodingStitchEvaluator`.

    Attributes:
        timestamps: (B, Q) query times relative to each window's start, padded.
        preds: list of B dicts ``{task: (n_task_i, dim)}`` (``unpack_output=True``); a task may be
            absent from a sample that has no query of it.
        targets: ``{task: (sum_i n_task_i, ...)}`` chained over the batch in sample order.
        decoder_indices: (B, Q) modality id of each query (``output_decoder_index``), 0 = padding.
        eval_masks: ``{task: (sum_i n_task_i,) bool}`` chained like ``targets``; a missing task
            (or ``None``) scores all its queries.
        session_ids: B session ids.
        absolute_starts: (B,) float64 absolute start time of each window (seconds).
    """

    timestamps: torch.Tensor
    preds: Sequence[Mapping[str, torch.Tensor]]
    targets: Mapping[str, torch.Tensor]
    decoder_indices: torch.Tensor
    eval_masks: Mapping[str, torch.Tensor] | None
    session_ids: Sequence[str]
    absolute_starts: torch.Tensor | Sequence[float]


# ------------------------------------------------------------------------------------------------
# Running per-timestamp sums
# ------------------------------------------------------------------------------------------------


class _TimePool:
    """Rows summed per integer time key, merged lazily (amortised O(rows log rows))."""

    def __init__(self, categorical: bool, n_classes: int, pred_shape: tuple, target_shape: tuple,
                 pred_dtype: torch.dtype, target_dtype: torch.dtype) -> None:
        self.categorical = categorical
        self.n_classes = n_classes
        self.pred_shape = pred_shape  # trailing shape of one prediction, e.g. (2,)
        self.target_shape = target_shape
        self.pred_dtype = pred_dtype
        self.target_dtype = target_dtype
        self.keys: torch.Tensor | None = None  # (U,) int64, sorted distinct
        self.sums: torch.Tensor | None = None  # (U, F) float64
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._n_pending = 0
        self.nonfinite = 0  # rows dropped from pooling because a prediction/target was not finite

    def add(self, keys: torch.Tensor, rows: torch.Tensor) -> None:
        if keys.shape[0] == 0:
            return
        self._pending.append((keys, rows))
        self._n_pending += keys.shape[0]
        pooled = 0 if self.keys is None else self.keys.shape[0]
        if self._n_pending >= max(_MIN_MERGE_ROWS, pooled):
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        keys = [k for k, _ in self._pending]
        rows = [r for _, r in self._pending]
        if self.keys is not None:
            keys.insert(0, self.keys)
            rows.insert(0, self.sums)
        self.keys, self.sums = _group_sum(torch.cat(keys), torch.cat(rows))
        self._pending, self._n_pending = [], 0

    @property
    def n_times(self) -> int:
        self._merge()
        return 0 if self.keys is None else int(self.keys.shape[0])

    def stitched(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled (preds, targets): means, or the most voted class (smallest on ties)."""
        self._merge()
        counts = self.sums[:, :1]
        if self.categorical:
            c = self.n_classes
            # argmax returns the first maximum: ties go to the smallest class
            return self.sums[:, 1 : 1 + c].argmax(1), self.sums[:, 1 + c :].argmax(1)
        n_pred = math.prod(self.pred_shape)
        # a (n, 1) prediction of an (n,) target (or the like) is scored in the target's shape
        shape = self.target_shape if n_pred == math.prod(self.target_shape) else self.pred_shape
        pred = (self.sums[:, 1 : 1 + n_pred] / counts).reshape(-1, *shape)
        target = (self.sums[:, 1 + n_pred :] / counts).reshape(-1, *self.target_shape)
        return pred.to(self.pred_dtype), target.to(self.target_dtype)


class _Coverage(torchmetrics.Metric):
    """Per (session, task) pair, reduced over ranks: distinct times pooled and non-finite rows
    (sums), and the trailing width of the stitched predictions/targets (max; -1 = no data, 0 = a
    scalar per time), so that ranks without data can give metrics empty inputs of the right shape.
    """

    full_state_update = False

    def __init__(self, n_pairs: int) -> None:
        super().__init__()
        zeros = torch.zeros(n_pairs, dtype=torch.float64)
        self.add_state("times", zeros.clone(), dist_reduce_fx="sum")
        self.add_state("nonfinite", zeros.clone(), dist_reduce_fx="sum")
        self.add_state("pred_width", zeros - 1, dist_reduce_fx="max")
        self.add_state("target_width", zeros - 1, dist_reduce_fx="max")
        self.add_state("categorical", zeros.clone(), dist_reduce_fx="max")

    def update(self, **local: torch.Tensor) -> None:
        for name, value in local.items():
            setattr(self, name, value.to(getattr(self, name)))

    def compute(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self._defaults}


def _width(shape: tuple) -> int:
    return math.prod(shape) if shape else 0


def _empty_like_width(width: float, categorical: bool, device: torch.device) -> torch.Tensor:
    if categorical:
        return torch.zeros(0, dtype=torch.long, device=device)
    return torch.zeros((0,) if width <= 0 else (0, int(width)), device=device)


# ------------------------------------------------------------------------------------------------
# Shared callback machinery
# ------------------------------------------------------------------------------------------------


def _as_metric_dict(value: Any, where: str) -> dict[str, torchmetrics.Metric]:
    if isinstance(value, torchmetrics.Metric):
        return {type(value).__name__: value}
    if isinstance(value, Mapping) and value and all(isinstance(m, torchmetrics.Metric) for m in value.values()):
        return {str(name): m for name, m in value.items()}
    raise TypeError(
        f"metrics{where} must be a torchmetrics Metric or a non-empty dict {{name: Metric}}, got "
        f"{type(value).__name__}: {value!r:.200}."
    )


def _known(names: Sequence[str], limit: int = 10) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return f"[{shown}{more}]"


def _check_tensor(value: Any, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}.")
    return value


class _StitchEvaluatorBase(L.Callback):
    """Pools per (session, task) during an epoch; scores, logs and prints at its end."""

    def __init__(self, metrics: Mapping[str, Mapping[str, Any]], quiet: bool = False) -> None:
        super().__init__()
        if not isinstance(metrics, Mapping) or not metrics:
            raise TypeError(
                "metrics must be a non-empty dict {session_id: {task: Metric or {name: Metric}}}, got "
                f"{type(metrics).__name__}: {metrics!r:.200}."
            )
        self.metrics: dict[str, dict[str, dict[str, torchmetrics.Metric]]] = {}
        for session, tasks in metrics.items():
            if not isinstance(tasks, Mapping) or not tasks:
                raise TypeError(
                    f"metrics[{session!r}] must be a non-empty dict {{task: Metric or {{name: Metric}}}}, got "
                    f"{type(tasks).__name__}: {tasks!r:.200}."
                )
            self.metrics[str(session)] = {
                str(task): _as_metric_dict(value, f"[{session!r}][{task!r}]") for task, value in tasks.items()
            }
        self.quiet = quiet
        self._pairs = [(s, t) for s, tasks in self.metrics.items() for t in tasks]
        self._pools: dict[tuple[str, str], _TimePool] = {}
        self._warned: set[tuple[str, str]] = set()

    # ----------------------------------------------------------------- Lightning hooks
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pools = {}

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pools = {}

    # the bookkeeping below runs on one torch thread: its ops are small, and OpenMP start-up
    # would cost more than they do (a lot more on a busy machine)
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        with _torch_threads(1):
            self._ingest(outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        with _torch_threads(1):
            self._ingest(outputs)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        with _torch_threads(1):
            self._epoch_end(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        with _torch_threads(1):
            self._epoch_end(trainer, pl_module, "test")

    # ----------------------------------------------------------------- batch side
    def _ingest(self, outputs: Any) -> None:
        raise NotImplementedError

    def _check_session(self, session: str) -> None:
        if session not in self.metrics:
            raise ValueError(
                f"{type(self).__name__}: session id {session!r} of this batch has no metrics; known session "
                f"ids: {_known(self.metrics)}. Build the evaluator with the metrics (or session_ids) of the "
                "split being evaluated."
            )

    @staticmethod
    def _absolute_keys(timestamps: torch.Tensor, query_mask: torch.Tensor,
                       absolute_starts: Any, n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer time keys (µs) and sample index of the queries selected by ``query_mask`` (B, Q)."""
        if timestamps.device.type == "mps":  # float64 times: not on MPS
            timestamps, query_mask = timestamps.cpu(), query_mask.cpu()
        starts = torch.as_tensor(absolute_starts, dtype=torch.float64).to(timestamps.device).reshape(-1)
        if starts.shape[0] != n_samples:
            raise ValueError(
                f"absolute_starts must hold one start per sample (B={n_samples}), got shape {tuple(starts.shape)}."
            )
        sample, position = torch.nonzero(query_mask, as_tuple=True)  # row-major = chained order
        absolute = starts[sample] + timestamps[sample, position].to(torch.float64)
        return torch.round(absolute / _TIME_RESOLUTION).to(torch.long), sample

    def _add(self, session_ids: Sequence[str], task: str, keys: torch.Tensor, sample: torch.Tensor,
             preds: torch.Tensor, targets: torch.Tensor, eval_mask: torch.Tensor | None) -> None:
        """Pool one task's chained queries of a batch into the per-session pools."""
        if preds.device.type == "mps" or keys.device != preds.device:  # float64 sums: not on MPS
            keys, sample, preds, targets = keys.cpu(), sample.cpu(), preds.cpu(), targets.cpu()
            eval_mask = None if eval_mask is None else eval_mask.cpu()
        n = keys.shape[0]
        if preds.shape[0] != n or targets.shape[0] != n:
            raise ValueError(
                f"task {task!r}: the batch has {n} queries of this task, but {preds.shape[0]} predictions and "
                f"{targets.shape[0]} targets; targets must be chained over the batch in sample order, one "
                "row per query."
            )
        if eval_mask is not None:
            eval_mask = _check_tensor(eval_mask, f"eval_masks[{task!r}]").to(keys.device).reshape(-1)
            if eval_mask.shape[0] != n:
                raise ValueError(
                    f"task {task!r}: eval_masks has {eval_mask.shape[0]} entries for {n} queries; it must be "
                    "chained like the targets."
                )
            keep = eval_mask.bool()
        else:
            keep = torch.ones(n, dtype=torch.bool, device=keys.device)
        categorical = not targets.is_floating_point()
        if categorical:
            if preds.dim() != 2 or not preds.is_floating_point():
                raise ValueError(
                    f"task {task!r}: integer targets mean a categorical task, whose predictions must be "
                    f"logits of shape (n, n_classes); got {preds.dtype} of shape {tuple(preds.shape)}."
                )
            n_classes = preds.shape[1]
            targets = targets.reshape(-1)
            bad = (targets < 0) | (targets >= n_classes)
            if bool(bad.any()):
                raise ValueError(
                    f"task {task!r}: target classes must be in [0, {n_classes}) (the logits' width), got "
                    f"{targets[bad][:5].tolist()}."
                )
            finite = torch.isfinite(preds).all(1)
        else:
            n_classes = 0
            finite = torch.isfinite(preds.reshape(n, -1)).all(1) & torch.isfinite(targets.reshape(n, -1)).all(1)
        # one sample -> session lookup per batch (sessions in a batch are few)
        codes: dict[str, int] = {}
        sample_code = torch.tensor([codes.setdefault(s, len(codes)) for s in session_ids], device=keys.device)
        query_code = sample_code[sample]
        for session, code in codes.items():
            self._check_session(session)
            if task not in self.metrics[session]:
                if (session, task) not in self._warned:
                    self._warned.add((session, task))
                    warnings.warn(
                        f"{type(self).__name__}: task {task!r} of session {session!r} has no metrics (metrics for "
                        f"this session: {_known(self.metrics[session])}); its predictions are not scored.",
                        stacklevel=3,
                    )
                continue
            in_session = (query_code == code) & keep
            pool = self._pool(session, task, categorical, n_classes, preds, targets)
            if pool.categorical != categorical or pool.n_classes != n_classes:
                raise ValueError(
                    f"session {session!r}, task {task!r}: predictions changed kind within the epoch "
                    f"(categorical={pool.categorical}, classes={pool.n_classes} before; now "
                    f"categorical={categorical}, classes={n_classes})."
                )
            pool.nonfinite = pool.nonfinite + (in_session & ~finite).sum()  # a tensor: no device sync per batch
            sel = in_session & finite
            pool.add(keys[sel], self._rows(preds[sel], targets[sel], categorical, n_classes))

    def _pool(self, session, task, categorical, n_classes, preds, targets) -> _TimePool:
        pool = self._pools.get((session, task))
        if pool is None:
            # metrics see float32 at least: bf16-mixed predictions were pooled in float64 anyway
            pool = _TimePool(categorical, n_classes, tuple(preds.shape[1:]), tuple(targets.shape[1:]),
                             torch.promote_types(preds.dtype, torch.float32),
                             torch.promote_types(targets.dtype, torch.float32) if targets.is_floating_point()
                             else targets.dtype)
            self._pools[(session, task)] = pool
        return pool

    @staticmethod
    def _rows(preds: torch.Tensor, targets: torch.Tensor, categorical: bool, n_classes: int) -> torch.Tensor:
        """(n, F) float64 rows of running sums: [count, prediction, target]."""
        n = preds.shape[0]
        ones = torch.ones(n, 1, dtype=torch.float64, device=preds.device)
        if categorical:
            votes = torch.zeros(n, 2 * n_classes, dtype=torch.float64, device=preds.device)
            rows = torch.arange(n, device=preds.device)
            votes[rows, preds.argmax(1)] = 1.0
            votes[rows, n_classes + targets] = 1.0
            return torch.cat([ones, votes], dim=1)
        return torch.cat([ones, preds.reshape(n, -1).double(), targets.reshape(n, -1).double()], dim=1)

    # ----------------------------------------------------------------- epoch side
    def _epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        device = pl_module.device
        pools, self._pools = self._pools, {}  # free the cache whatever happens below
        n_pairs = len(self._pairs)
        local = {name: torch.zeros(n_pairs, dtype=torch.float64) for name in ("times", "nonfinite", "categorical")}
        local.update(pred_width=torch.full((len(self._pairs),), -1.0, dtype=torch.float64),
                     target_width=torch.full((len(self._pairs),), -1.0, dtype=torch.float64))
        for i, pair in enumerate(self._pairs):
            pool = pools.get(pair)
            if pool is not None:
                local["times"][i] = pool.n_times
                local["nonfinite"][i] = float(pool.nonfinite)
                local["categorical"][i] = float(pool.categorical)
                scored_pred_shape = pool.target_shape if math.prod(pool.pred_shape) == math.prod(
                    pool.target_shape) else pool.pred_shape  # as in _TimePool.stitched
                local["pred_width"][i] = 0 if pool.categorical else _width(scored_pred_shape)
                local["target_width"][i] = 0 if pool.categorical else _width(pool.target_shape)
        # agree across ranks on which pairs have data, and their shapes (one reduction, by torchmetrics)
        coverage = _Coverage(len(self._pairs)).to(device)
        coverage.update(**local)
        # (reshape: torchmetrics squeezes one-element results to 0-d)
        agreed = {name: value.cpu().reshape(-1) for name, value in coverage.compute().items()}
        times, nonfinite = agreed["times"], agreed["nonfinite"]

        values: dict[str, float] = {}
        table: list[tuple[str, str, str, float | None, int]] = []
        for i, (session, task) in enumerate(self._pairs):
            pool = pools.get((session, task))
            stitched = pool.stitched() if pool is not None and pool.n_times > 0 else None
            for name, metric in self.metrics[session][task].items():
                key = f"{session}/{task}/{name}/{stage}"
                if nonfinite[i] > 0 or times[i] == 0:
                    # same decision on every rank: nobody computes, so nobody waits
                    value = float("nan") if nonfinite[i] > 0 else None
                else:
                    metric.to(device)
                    if stitched is not None:
                        metric.update(stitched[0].to(device), stitched[1].to(device))
                    else:
                        self._empty_update(metric, agreed, i, device)
                    with warnings.catch_warnings():
                        warnings.filterwarnings("ignore", message=r".*compute.* was called before the ``update``")
                        try:
                            value = float(metric.compute())
                        except ValueError as err:  # raised after the states were reduced: same on all ranks
                            warnings.warn(
                                f"{key}: {type(metric).__name__} could not be computed ({err}); logged as NaN.",
                                stacklevel=2,
                            )
                            value = float("nan")
                metric.reset()
                if value is not None:
                    values[key] = value
                table.append((session, task, name, value, int(times[i])))
        del pools

        average = sum(values.values()) / len(values) if values else float("nan")
        values[f"average_{stage}_metric"] = average
        for key, value in values.items():
            # identical on every rank already; sync_dist only keeps Lightning's reduction consistent
            pl_module.log(key, value, sync_dist=True)

        sanity = getattr(trainer, "sanity_checking", False)
        if not sanity:
            self._warn_problems(stage, nonfinite, times)
        if not self.quiet and not sanity and trainer.is_global_zero:
            print(self._format_table(stage, table, average, trainer.current_epoch))

    @staticmethod
    def _empty_update(metric: torchmetrics.Metric, agreed: dict, i: int, device: torch.device) -> None:
        """Give a rank without data of this pair an empty update, so that metric states whose shape
        follows the data (e.g. R2Score's per-output sums) match the other ranks' before reduction."""
        categorical = bool(agreed["categorical"][i] > 0)
        preds = _empty_like_width(float(agreed["pred_width"][i]), categorical, device)
        targets = _empty_like_width(float(agreed["target_width"][i]), categorical, device)
        try:
            metric.update(preds, targets)
        except (RuntimeError, ValueError):
            metric.reset()  # metrics that refuse empty input keep fixed-shape default states

    def _warn_problems(self, stage: str, nonfinite: torch.Tensor, times: torch.Tensor) -> None:
        bad = [f"{s}/{t} ({int(nonfinite[i])} rows)" for i, (s, t) in enumerate(self._pairs) if nonfinite[i] > 0]
        if bad:
            warnings.warn(
                f"{type(self).__name__}: non-finite predictions or targets (NaN/inf) in {_STAGE_NAMES[stage]} for "
                f"{len(bad)} session/task pair(s): {_known(bad)}; their metrics are logged as NaN, so "
                f"average_{stage}_metric is NaN for this epoch.",
                stacklevel=3,
            )
        if not bool((times > 0).any()):
            warnings.warn(
                f"{type(self).__name__}: the {_STAGE_NAMES[stage]} epoch delivered no predictions for any session "
                f"(is the dataloader empty, or did the steps not return the evaluator's data?); "
                f"average_{stage}_metric is NaN.",
                stacklevel=3,
            )
        else:
            empty = [f"{s}/{t}" for i, (s, t) in enumerate(self._pairs) if times[i] == 0]
            if empty:
                warnings.warn(
                    f"{type(self).__name__}: no predictions in {_STAGE_NAMES[stage]} for {len(empty)} session/task "
                    f"pair(s), not scored: {_known(empty)}.",
                    stacklevel=3,
                )

    @staticmethod
    def _format_table(stage, table, average, epoch) -> str:
        head = ("session", "task", "metric", "value", "times")
        rows = [(s, t, m, "no data" if v is None else f"{v:.4f}", str(n)) for s, t, m, v, n in table]
        widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" if j < 3 else f"{{:>{w}}}" for j, w in enumerate(widths))
        lines = [f"Stitched {_STAGE_NAMES[stage]} metrics (epoch {epoch}): average_{stage}_metric = {average:.4f}",
                 fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*r) for r in rows]
        return "\n".join(lines)


def _expect_type(outputs: Any, cls: type, evaluator: str) -> None:
    if not isinstance(outputs, cls):
        raise TypeError(
            f"{evaluator} expects validation_step/test_step to return a {cls.__name__}, got "
            f"{type(outputs).__name__}. Return {cls.__name__}(timestamps=..., preds=..., ...) from the step."
        )


# ------------------------------------------------------------------------------------------------
# Public callbacks
# ------------------------------------------------------------------------------------------------


class DecodingStitchEvaluator(_StitchEvaluatorBase):
    """Stitch and score a single-task model's predictions per session (Lightning callback).

    Each ``validation_step`` / ``test_step`` returns a :class:`DataForDecodingStitchEvaluator`.
    At epoch end, predictions of each session are pooled by absolute time (mean, or mode of the
    argmax class for categorical tasks), scored with torchmetrics, and logged as
    ``"{session}/{task}/{metric}/{val|test}"`` plus ``average_{val|test}_metric`` (the mean
    over all logged metrics).

    Args:
        session_ids: ids of the sessions that will be evaluated.
        modality_spec: the task's :class:`~torch_brain.registry.ModalitySpec`; sets the task name
            in logs (``spec.name``) and the default metric: R² (``r2``) for CONTINUOUS,
            multiclass accuracy (``accuracy``, the fraction of correct labels) for MULTINOMIAL,
            binary/multilabel accuracy for BINARY/MULTILABEL.
        metric_factory: zero-argument callable returning a torchmetrics Metric or a dict
            ``{name: Metric}``, called once per session; overrides the default metric.
        quiet: if True, do not print the per-session table.

    Raises:
        ValueError: if neither ``modality_spec`` nor ``metric_factory`` is given, or
            ``session_ids`` is empty.
    """

    def __init__(self, session_ids: Sequence[str], modality_spec: Any = None,
                 metric_factory: Callable[[], Any] | None = None, quiet: bool = False) -> None:
        if isinstance(session_ids, str) or not isinstance(session_ids, Sequence | set | frozenset) or not session_ids:
            raise ValueError(
                f"session_ids must be a non-empty list of session id strings (e.g. dataset.get_session_ids()), "
                f"got {session_ids!r:.200}."
            )
        if metric_factory is None:
            if modality_spec is None:
                raise ValueError(
                    "DecodingStitchEvaluator needs modality_spec (for the default metric) or metric_factory; "
                    "got neither."
                )
            metric_factory = _default_metric_factory(modality_spec)
        elif not callable(metric_factory):
            raise TypeError(f"metric_factory must be a zero-argument callable, got {type(metric_factory).__name__}.")
        self.task = (getattr(modality_spec, "name", "") or "output") if modality_spec is not None else "output"
        self.modality_spec = modality_spec
        super().__init__({str(s): {self.task: metric_factory()} for s in session_ids}, quiet=quiet)

    def _ingest(self, outputs: Any) -> None:
        _expect_type(outputs, DataForDecodingStitchEvaluator, type(self).__name__)
        timestamps = _check_tensor(outputs.timestamps, "timestamps")
        if timestamps.dim() != 2:
            raise ValueError(f"timestamps must be (B, Q) padded query times, got shape {tuple(timestamps.shape)}.")
        preds = outputs.preds
        if isinstance(preds, torch.Tensor) or not isinstance(preds, Sequence):
            raise TypeError(
                "preds must be a list of (n_i, dim) tensors, one per sample: call the model with "
                f"unpack_output=True. Got {type(preds).__name__}."
            )
        batch, width = timestamps.shape
        if len(preds) != batch or len(outputs.session_ids) != batch:
            raise ValueError(
                f"the batch has {batch} samples (timestamps {tuple(timestamps.shape)}) but {len(preds)} prediction "
                f"tensors and {len(outputs.session_ids)} session ids."
            )
        counts = torch.tensor([_check_tensor(p, f"preds[{i}]").shape[0] for i, p in enumerate(preds)],
                              device=timestamps.device)
        if batch and int(counts.max()) > width:
            raise ValueError(f"a sample has {int(counts.max())} predictions but timestamps has only {width} columns.")
        query_mask = torch.arange(width, device=timestamps.device)[None, :] < counts[:, None]
        keys, sample = self._absolute_keys(timestamps, query_mask, outputs.absolute_starts, batch)
        flat_preds = torch.cat(list(preds)) if batch else timestamps.new_zeros(0)
        targets = _check_tensor(outputs.targets, "targets")
        self._add(outputs.session_ids, self.task, keys, sample, flat_preds, targets, outputs.eval_masks)


class MultiTaskDecodingStitchEvaluator(_StitchEvaluatorBase):
    """Stitch and score a multi-task model's predictions per session and task (Lightning callback).

    Each ``validation_step`` / ``test_step`` returns a :class:`DataForMultiTaskDecodingStitchEvaluator`.
    Queries are assigned to tasks through ``decoder_indices`` and
    ``torch_brain.registry.MODALITY_REGISTRY[task].id``. At epoch end each (session, task) is
    pooled by absolute time (mean for float targets; mode of the argmax class when targets are
    integer class indices), scored, and logged as ``"{session}/{task}/{metric}/{val|test}"``
    plus ``average_{val|test}_metric``. Works under DDP: each rank pools its own windows and
    torchmetrics reduces the metric states.

    Args:
        metrics: ``{session_id: {task: Metric or {name: Metric}}}``, e.g. a datamodule's
            ``get_metrics()``. A plain Metric is logged under its class name.
        quiet: if True, do not print the per-session table.

    Raises:
        TypeError: if ``metrics`` does not have that shape.
        ValueError: if a task is not in the modality registry.
    """

    def __init__(self, metrics: Mapping[str, Mapping[str, Any]], quiet: bool = False) -> None:
        super().__init__(metrics, quiet=quiet)
        from torch_brain.registry import MODALITY_REGISTRY

        self._task_ids: dict[str, int] = {}
        for _, task in self._pairs:
            if task not in MODALITY_REGISTRY:
                raise ValueError(
                    f"metrics name task {task!r}, which is not a registered modality; registered: "
                    f"{_known(sorted(MODALITY_REGISTRY), 20)}. Register it with "
                    "torch_brain.registry.register_modality first."
                )
            self._task_ids[task] = MODALITY_REGISTRY[task].id

    def _task_id(self, task: str) -> int:
        if task not in self._task_ids:
            from torch_brain.registry import MODALITY_REGISTRY

            if task not in MODALITY_REGISTRY:
                raise ValueError(
                    f"targets hold task {task!r}, which is not a registered modality; registered: "
                    f"{_known(sorted(MODALITY_REGISTRY), 20)}."
                )
            self._task_ids[task] = MODALITY_REGISTRY[task].id
        return self._task_ids[task]

    def _ingest(self, outputs: Any) -> None:
        _expect_type(outputs, DataForMultiTaskDecodingStitchEvaluator, type(self).__name__)
        timestamps = _check_tensor(outputs.timestamps, "timestamps")
        decoder = _check_tensor(outputs.decoder_indices, "decoder_indices").to(timestamps.device)
        if timestamps.dim() != 2 or decoder.shape != timestamps.shape:
            raise ValueError(
                "timestamps and decoder_indices must both be (B, Q) padded, got shapes "
                f"{tuple(timestamps.shape)} and {tuple(decoder.shape)}."
            )
        batch = timestamps.shape[0]
        preds = outputs.preds
        if isinstance(preds, Mapping) or not isinstance(preds, Sequence):
            raise TypeError(
                "preds must be a list (one per sample) of {task: (n, dim)} dicts: call the model with "
                f"unpack_output=True. Got {type(preds).__name__}."
            )
        if len(preds) != batch or len(outputs.session_ids) != batch:
            raise ValueError(
                f"the batch has {batch} samples (timestamps {tuple(timestamps.shape)}) but {len(preds)} prediction "
                f"dicts and {len(outputs.session_ids)} session ids."
            )
        targets = outputs.targets
        if not isinstance(targets, Mapping):
            raise TypeError(f"targets must be a dict {{task: chained tensor}}, got {type(targets).__name__}.")
        eval_masks = outputs.eval_masks or {}
        tasks = list(targets)
        for sample_preds in preds:
            for task in sample_preds:
                if task not in targets:
                    raise ValueError(
                        f"preds hold task {task!r} but targets do not (targets tasks: {_known(tasks)})."
                    )
        for task in tasks:
            query_mask = decoder == self._task_id(task)
            per_sample = query_mask.sum(1).tolist()
            chunks = []
            for i, sample_preds in enumerate(preds):
                p = sample_preds.get(task)
                n_pred = 0 if p is None else _check_tensor(p, f"preds[{i}][{task!r}]").shape[0]
                if n_pred != per_sample[i]:
                    raise ValueError(
                        f"sample {i} (session {outputs.session_ids[i]!r}): decoder_indices has {per_sample[i]} "
                        f"queries of task {task!r} but preds[{i}] has {n_pred} predictions for it."
                    )
                if p is not None and n_pred:
                    chunks.append(p)
            if not chunks:
                continue
            keys, sample = self._absolute_keys(timestamps, query_mask, outputs.absolute_starts, batch)
            target = _check_tensor(targets[task], f"targets[{task!r}]").to(timestamps.device)
            self._add(outputs.session_ids, task, keys, sample, torch.cat(chunks), target, eval_masks.get(task))


def _default_metric_factory(spec: Any) -> Callable[[], dict[str, torchmetrics.Metric]]:
    """Default metrics from a modality spec's type (a DataType or its name)."""
    kind = getattr(getattr(spec, "type", None), "name", str(getattr(spec, "type", "")))
    dim = int(getattr(spec, "dim", 1))
    if kind == "CONTINUOUS":
        return lambda: {"r2": torchmetrics.R2Score()}
    if kind == "MULTINOMIAL":
        # average="micro": the fraction of correct labels (the class default, "macro", is the
        # balanced accuracy), as the datamodule's "accuracy" metric
        return lambda: {"accuracy": torchmetrics.classification.MulticlassAccuracy(num_classes=dim, average="micro")}
    if kind == "BINARY":
        return lambda: {"accuracy": torchmetrics.classification.BinaryAccuracy()}
    if kind == "MULTILABEL":
        return lambda: {"accuracy": torchmetrics.classification.MultilabelAccuracy(num_labels=dim)}
    raise ValueError(
        f"modality_spec.type must be CONTINUOUS, MULTINOMIAL, BINARY or MULTILABEL, got {kind!r}; "
        "or pass metric_factory."
    )
