"""Stitching evaluators: Lightning callbacks that pool window predictions and score them.

Data flow, per task:

- ``on_{validation,test}_batch_end`` receives the step's :class:`DataForDecodingStitchEvaluator`
  or :class:`DataForMultiTaskDecodingStitchEvaluator`, turns every evaluated query into an
  absolute time (``absolute_start + relative timestamp``, matched at 1 µs) and updates the task's
  :class:`_StitchedTask`, a torchmetrics metric whose states are (session, time, running-sum) rows,
  summed per distinct (session, time) on each rank as they arrive.
- at epoch end, every rank calls each task's ``compute()``: torchmetrics gathers the rows of all
  ranks (``dist_reduce_fx="cat"``), and every rank stitches them (sums per (session, time) over
  counts, or the most voted class) and scores each session with its metrics. The logged values
  are the same on every rank, whichever rank evaluated which windows.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torchmetrics

from torchmetrics.utilities import dim_zero_cat

from torch_brain.utils._segments import segment_sum, segments

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
# One task's rows: a torchmetrics metric whose states are gathered with "cat"
# ------------------------------------------------------------------------------------------------

_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32)
_MAX_TRAILING_DIMS = 3
# layout: kind (0 continuous, 1 categorical), classes, pred dtype, target dtype, then the scored
# trailing shapes of predictions and targets, each as (ndim, d0, d1, d2); -1 = not seen on this rank
_LAYOUT_SIZE = 4 + 2 * (1 + _MAX_TRAILING_DIMS)


def _never_distributed() -> bool:
    return False


def _encode_layout(categorical: bool, n_classes: int, pred: torch.Tensor, target: torch.Tensor,
                   task: str) -> torch.Tensor:
    if categorical:
        pred_shape = target_shape = ()
    else:
        target_shape = tuple(target.shape[1:])
        pred_shape = tuple(pred.shape[1:])
        # a (n, 1) prediction of an (n,) target (or the like) is scored in the target's shape
        if math.prod(pred_shape) == math.prod(target_shape):
            pred_shape = target_shape
    if max(len(pred_shape), len(target_shape)) > _MAX_TRAILING_DIMS:
        raise ValueError(
            f"task {task!r}: predictions and targets may have at most {_MAX_TRAILING_DIMS} dimensions after the "
            f"first, got shapes {tuple(pred.shape)} and {tuple(target.shape)}; flatten them in the step."
        )
    code = [float(categorical), float(n_classes),
            float(_DTYPES.index(pred.dtype) if pred.dtype in _DTYPES else 0),
            float(_DTYPES.index(target.dtype) if target.dtype in _DTYPES else 0)]
    for shape in (pred_shape, target_shape):
        code += [float(len(shape))] + [float(d) for d in shape] + [-1.0] * (_MAX_TRAILING_DIMS - len(shape))
    return torch.tensor(code, dtype=torch.float64)


def _decode_layout(code: torch.Tensor) -> tuple[bool, int, torch.dtype, torch.dtype, tuple, tuple]:
    c = [int(v) for v in code.tolist()]
    shapes = []
    for at in (4, 5 + _MAX_TRAILING_DIMS):
        shapes.append(tuple(c[at + 1 : at + 1 + c[at]]))
    return bool(c[0]), c[1], _DTYPES[c[2]], _DTYPES[c[3]], shapes[0], shapes[1]


class _StitchedTask(torchmetrics.Metric):
    """Stitch and score one task of many sessions: a torchmetrics metric wrapper.

    ``update`` adds (session, time, row) rows, the row holding running sums:
    ``[1, prediction..., target...]`` for mean-pooled tasks, ``[1, one-hot predicted class,
    one-hot target class]`` (vote counts) for categorical ones. Rows sharing a (session, time)
    are summed on each rank as they arrive, so a rank holds one row per distinct time.
    ``compute()`` gathers every rank's rows (states reduced with ``"cat"``: torchmetrics and
    Lightning do the cross-rank work), sums them per (session, time) again, turns the sums into
    stitched predictions and targets (means; most voted class, the smallest on ties), and scores
    them with each session's metrics. Those see the stitched rows of all ranks, so they are
    computed without a reduction of their own.
    """

    full_state_update = False

    def __init__(self, task: str, sessions: Sequence[str], metrics: Mapping[int, Mapping[str, torchmetrics.Metric]]):
        super().__init__()
        self.task = task
        self.sessions = list(sessions)
        self.scorers = {int(i): dict(m) for i, m in metrics.items()}
        for scorer in self.scorers.values():
            for metric in scorer.values():
                for module in metric.modules():
                    if isinstance(module, torchmetrics.Metric):
                        module.distributed_available_fn = _never_distributed
        # 1-D float64 states: a rank without rows joins the gather with torchmetrics' stand-in for an
        # empty "cat" state, a 1-D tensor of the metric's dtype (float64, see `dtype`)
        self.add_state("session", [], dist_reduce_fx="cat")
        self.add_state("time", [], dist_reduce_fx="cat")  # integer µs, exact in float64 up to 285 years
        self.add_state("sums", [], dist_reduce_fx="cat")  # (rows * width,) flattened
        self.add_state("layout", torch.full((_LAYOUT_SIZE,), -1.0, dtype=torch.float64), dist_reduce_fx="max")
        self.add_state("nonfinite", torch.zeros(len(self.sessions), dtype=torch.float64), dist_reduce_fx="sum")
        self._pending = self._pooled = 0
        self._layout: tuple | None = None  # kind, classes, dtypes and shapes seen by this rank's first update
        self.stitched: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @property
    def dtype(self) -> torch.dtype:
        # every state is float64 (torchmetrics resets its own dtype record to float32 on .to(device))
        return torch.float64

    @property
    def update_called(self) -> bool:
        # a rank without rows of this task still joins compute()'s gather, with empty states
        return True

    def reset(self) -> None:
        super().reset()
        self._pending = self._pooled = 0
        self._layout = None

    def update(self, session: torch.Tensor, time: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor) -> None:
        """Add rows: ``session`` (n,) session indices, ``time`` (n,) integer µs, ``preds`` (n, ...)
        (logits (n, classes) when ``targets`` (n,) are integer classes), ``targets`` (n, ...)."""
        n = preds.shape[0]
        categorical = not targets.is_floating_point()
        n_classes = preds.shape[1] if categorical else 0
        kind = (categorical, n_classes, preds.dtype, targets.dtype, preds.shape[1:], targets.shape[1:])
        if self._layout is None:
            self._layout = kind
            self.layout = _encode_layout(categorical, n_classes, preds, targets, self.task).to(self.layout.device)
        elif kind != self._layout:
            raise ValueError(
                f"task {self.task!r}: predictions changed kind within the epoch (categorical, classes, dtypes, "
                f"trailing shapes of predictions and targets: {self._layout} before, {kind} now)."
            )
        if categorical:
            finite = torch.isfinite(preds).all(1)
            rows = torch.zeros(n, 1 + 2 * n_classes, dtype=torch.float64, device=preds.device)
            rows[torch.arange(n, device=preds.device), 1 + preds.argmax(1)] = 1.0
            rows[torch.arange(n, device=preds.device), 1 + n_classes + targets.reshape(-1)] = 1.0
            rows[:, 0] = 1.0
        else:
            p, y = preds.reshape(n, -1).double(), targets.reshape(n, -1).double()
            finite = torch.isfinite(p).all(1) & torch.isfinite(y).all(1)
            rows = torch.cat([torch.ones(n, 1, dtype=torch.float64, device=preds.device), p, y], dim=1)
        if not bool(finite.all()):  # rows with NaN/inf are counted, not pooled
            self.nonfinite += torch.bincount(session[~finite], minlength=len(self.sessions)).to(self.nonfinite)
            session, time, rows = session[finite], time[finite], rows[finite]
        self.session.append(session.double())
        self.time.append(time.double())
        self.sums.append(rows.reshape(-1))
        self._pending += int(session.shape[0])
        if self._pending >= max(_MIN_MERGE_ROWS, self._pooled):
            self._merge()

    def _pooled_rows(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows summed per (session, time), ordered by session then time."""
        session, time = dim_zero_cat(self.session), dim_zero_cat(self.time)
        sums = dim_zero_cat(self.sums).view(session.shape[0], -1)
        seg = segments(session, time)
        return seg.keys[0], seg.keys[1], segment_sum(seg, sums)

    def _merge(self) -> None:
        session, time, sums = self._pooled_rows()
        self.session, self.time, self.sums = [session], [time], [sums.reshape(-1)]
        self._pending, self._pooled = 0, int(session.shape[0])

    def compute(self) -> dict[str, dict[str, Any]]:
        """Per session: ``{"values": {name: float}, "errors": {name: message}, "times": int,
        "nonfinite": int}`` (sessions without metrics for this task are left out); the stitched
        ``(times in s, preds, targets)`` per session go to :attr:`stitched`."""
        results: dict[str, dict[str, Any]] = {}
        self.stitched = {}
        has_rows = (isinstance(self.session, torch.Tensor) or bool(self.session)) and dim_zero_cat(self.session).numel() > 0
        session, time, sums = self._pooled_rows() if has_rows else (None, None, None)
        per_session = [0] * len(self.sessions)
        if has_rows:
            categorical, n_classes, pred_dtype, target_dtype, pred_shape, target_shape = _decode_layout(self.layout)
            per_session = torch.bincount(session.long(), minlength=len(self.sessions)).tolist()
        offsets = [0, *itertools.accumulate(per_session)]  # rows are ordered by session
        for i, scorer in self.scorers.items():
            name = self.sessions[i]
            out = results[name] = {"values": {}, "errors": {}, "times": per_session[i],
                                   "nonfinite": int(self.nonfinite[i])}
            if out["nonfinite"]:
                out["values"] = {metric_name: float("nan") for metric_name in scorer}
            if per_session[i] == 0:
                continue
            rows = sums[offsets[i] : offsets[i + 1]]
            if categorical:
                pred = rows[:, 1 : 1 + n_classes].argmax(1)  # the first maximum: ties to the smaller class
                target = rows[:, 1 + n_classes :].argmax(1)
            else:
                count, width = rows[:, :1], math.prod(pred_shape)
                # metrics see float32 at least: bf16-mixed predictions were pooled in float64 anyway
                pred = (rows[:, 1 : 1 + width] / count).reshape(-1, *pred_shape).to(
                    torch.promote_types(pred_dtype, torch.float32))
                target = (rows[:, 1 + width :] / count).reshape(-1, *target_shape).to(
                    torch.promote_types(target_dtype, torch.float32))
            seconds = time[offsets[i] : offsets[i + 1]] * _TIME_RESOLUTION
            self.stitched[name] = (seconds, pred, target)
            if out["nonfinite"]:
                continue
            for metric_name, metric in scorer.items():
                metric.to(pred.device)
                metric.update(pred, target)
                try:
                    out["values"][metric_name] = float(metric.compute())
                except ValueError as err:
                    out["errors"][metric_name] = f"{type(metric).__name__} could not be computed ({err})"
                    out["values"][metric_name] = float("nan")
                metric.reset()
        return results


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
    """Feeds each task's :class:`_StitchedTask` during an epoch; logs and prints at its end."""

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
            # clones: the evaluator turns their own cross-rank reduction off (see _StitchedTask)
            self.metrics[str(session)] = {
                str(task): {name: m.clone() for name, m in _as_metric_dict(value, f"[{session!r}][{task!r}]").items()}
                for task, value in tasks.items()
            }
        self.quiet = quiet
        self._pairs = [(s, t) for s, tasks in self.metrics.items() for t in tasks]
        self._session_index = {s: i for i, s in enumerate(self.metrics)}
        tasks = dict.fromkeys(t for _, t in self._pairs)
        self._tasks = {
            task: _StitchedTask(task, list(self.metrics), {
                i: self.metrics[s][task] for s, i in self._session_index.items() if task in self.metrics[s]})
            for task in tasks
        }
        self._warned: set[tuple[str, str]] = set()
        self.stitched: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        """``{(session, task): (times in seconds (U,), preds (U, ...), targets (U, ...))}``: the
        stitched predictions of the last evaluation epoch (e.g. for plots)."""

    # ----------------------------------------------------------------- Lightning hooks
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start(pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start(pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._ingest(outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._ingest(outputs)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_end(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_end(trainer, pl_module, "test")

    def _epoch_start(self, pl_module: L.LightningModule) -> None:
        device = pl_module.device if pl_module.device.type != "mps" else torch.device("cpu")  # float64: not on MPS
        for stitched in self._tasks.values():
            stitched.reset()
            stitched.to(device)

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
        """Check one task's chained queries of a batch and add the evaluated ones to its rows."""
        n = keys.shape[0]
        if preds.shape[0] != n or targets.shape[0] != n:
            raise ValueError(
                f"task {task!r}: the batch has {n} queries of this task, but {preds.shape[0]} predictions and "
                f"{targets.shape[0]} targets; targets must be chained over the batch in sample order, one "
                "row per query."
            )
        stitched = self._tasks.get(task)
        device = stitched.layout.device if stitched is not None else keys.device
        keys, sample, preds, targets = keys.to(device), sample.to(device), preds.to(device), targets.to(device)
        keep = torch.ones(n, dtype=torch.bool, device=device)
        if eval_mask is not None:
            eval_mask = _check_tensor(eval_mask, f"eval_masks[{task!r}]").to(device).reshape(-1)
            if eval_mask.shape[0] != n:
                raise ValueError(
                    f"task {task!r}: eval_masks has {eval_mask.shape[0]} entries for {n} queries; it must be "
                    "chained like the targets."
                )
            keep = eval_mask.bool()
        if not targets.is_floating_point():
            if preds.dim() != 2 or not preds.is_floating_point():
                raise ValueError(
                    f"task {task!r}: integer targets mean a categorical task, whose predictions must be "
                    f"logits of shape (n, n_classes); got {preds.dtype} of shape {tuple(preds.shape)}."
                )
            targets = targets.reshape(-1)
            bad = (targets < 0) | (targets >= preds.shape[1])
            if bool(bad.any()):
                raise ValueError(
                    f"task {task!r}: target classes must be in [0, {preds.shape[1]}) (the logits' width), got "
                    f"{targets[bad][:5].tolist()}."
                )
        # sample -> index of its session in self.metrics (sessions in a batch are few)
        sample_session = []
        for session in session_ids:
            self._check_session(session)
            if task not in self.metrics[session]:
                sample_session.append(-1)
                if (session, task) not in self._warned:
                    self._warned.add((session, task))
                    warnings.warn(
                        f"{type(self).__name__}: task {task!r} of session {session!r} has no metrics (metrics for "
                        f"this session: {_known(self.metrics[session])}); its predictions are not scored.",
                        stacklevel=3,
                    )
            else:
                sample_session.append(self._session_index[session])
        session = torch.tensor(sample_session, dtype=torch.long, device=device)[sample]
        keep &= session >= 0
        if stitched is None or not bool(keep.any()):
            return
        if not bool(keep.all()):
            session, keys, preds, targets = session[keep], keys[keep], preds[keep], targets[keep]
        stitched.update(session, keys, preds, targets)

    # ----------------------------------------------------------------- epoch side
    def _epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # every rank computes every task, in the same order: each compute() gathers that task's rows
        results = {task: stitched.compute() for task, stitched in self._tasks.items()}
        self.stitched = {(session, task): out for task, stitched in self._tasks.items()
                         for session, out in stitched.stitched.items()}
        for stitched in self._tasks.values():
            stitched.reset()  # free the rows
        values: dict[str, float] = {}
        table: list[tuple[str, str, str, float | None, int]] = []
        nonfinite, times = [], []
        for session, task in self._pairs:
            out = results[task][session]
            nonfinite.append(out["nonfinite"])
            times.append(out["times"])
            for name in self.metrics[session][task]:
                key = f"{session}/{task}/{name}/{stage}"
                value = out["values"].get(name)
                if name in out["errors"]:
                    warnings.warn(f"{key}: {out['errors'][name]}; logged as NaN.", stacklevel=2)
                if value is not None:
                    values[key] = value
                table.append((session, task, name, value, out["times"]))

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

    def _warn_problems(self, stage: str, nonfinite: list[int], times: list[int]) -> None:
        bad = [f"{s}/{t} ({nonfinite[i]} rows)" for i, (s, t) in enumerate(self._pairs) if nonfinite[i] > 0]
        if bad:
            warnings.warn(
                f"{type(self).__name__}: non-finite predictions or targets (NaN/inf) in {_STAGE_NAMES[stage]} for "
                f"{len(bad)} session/task pair(s): {_known(bad)}; their metrics are logged as NaN, so "
                f"average_{stage}_metric is NaN for this epoch.",
                stacklevel=3,
            )
        if not any(n > 0 for n in times) and not bad:
            warnings.warn(
                f"{type(self).__name__}: the {_STAGE_NAMES[stage]} epoch delivered no predictions for any session "
                f"(is the dataloader empty, or did the steps not return the evaluator's data?); "
                f"average_{stage}_metric is NaN.",
                stacklevel=3,
            )
        else:
            empty = [f"{s}/{t}" for i, (s, t) in enumerate(self._pairs) if times[i] == 0 and nonfinite[i] == 0]
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
