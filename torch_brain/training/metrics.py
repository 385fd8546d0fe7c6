"""The metric registry: torchmetrics metrics by stable name, each for the task types it can score.

A metric is registered with the :class:`~torch_brain.registry.DataType` values it applies to and
a factory ``factory(spec) -> torchmetrics.Metric`` (the task's ``ModalitySpec`` gives the number
of outputs or classes). :data:`DEFAULT_METRICS` says which metric scores a task type when the
dataset config names none.

Example:
    >>> @register_metric("median_ae", types=[DataType.CONTINUOUS])
    ... def _median_ae(spec):
    ...     return MyMedianAbsoluteError()  # doctest: +SKIP
    >>> create_metric("r2", get_modality("cursor_velocity_2d"))
    R2Score()
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torchmetrics

from torch_brain._registry import Registry
from torch_brain.registry import DataType, ModalitySpec

__all__ = [
    "DEFAULT_METRICS",
    "METRIC_REGISTRY",
    "build_metric",
    "create_metric",
    "list_metrics",
    "register_metric",
]


@dataclasses.dataclass(frozen=True)
class _MetricEntry:
    factory: Callable[[ModalitySpec], torchmetrics.Metric]
    types: frozenset[DataType]


#: name -> (factory, task types it scores).
METRIC_REGISTRY: Registry[_MetricEntry] = Registry(
    "metric", hint="Register one with @torch_brain.training.register_metric('name', types=[...])."
)

#: the metric that scores a task type when the dataset config names none
DEFAULT_METRICS: dict[DataType, tuple[str, ...]] = {
    DataType.CONTINUOUS: ("r2",),
    DataType.MULTINOMIAL: ("accuracy",),
    DataType.BINARY: ("accuracy",),
    DataType.MULTILABEL: ("f1",),
}


def register_metric(name: str, *, types: Iterable[DataType | str]) -> Callable:
    """Decorator registering ``factory(spec) -> torchmetrics.Metric`` under ``name`` for ``types``."""
    kinds = frozenset(DataType.parse(t) for t in types)

    def deco(factory: Callable[[ModalitySpec], torchmetrics.Metric]) -> Callable:
        METRIC_REGISTRY.register(name, _MetricEntry(factory, kinds))
        return factory

    return deco


def list_metrics(type: DataType | str | None = None) -> list[str]:
    """Registered metric names, sorted; with ``type``, only those that score that task type."""
    if type is None:
        return METRIC_REGISTRY.names()
    kind = DataType.parse(type)
    return [n for n in METRIC_REGISTRY.names() if kind in METRIC_REGISTRY[n].types]


def create_metric(name: str, spec: ModalitySpec) -> torchmetrics.Metric:
    """A fresh metric ``name`` for the task ``spec``.

    Raises:
        ValueError: unknown name (known ones listed), or a metric that cannot score ``spec``'s type.
    """
    entry = METRIC_REGISTRY.lookup(name)
    if spec.type not in entry.types:
        raise ValueError(
            f"metric {name!r} does not score {spec.type.name} tasks like {spec.name!r}; metrics for "
            f"{spec.type.name}: {', '.join(list_metrics(spec.type))}."
        )
    return entry.factory(spec)


def build_metric(entry: Any, spec: ModalitySpec) -> tuple[str, torchmetrics.Metric]:
    """A ``(name, torchmetrics metric)`` from a dataset-config entry.

    ``entry`` is a registered name (``r2``, ``mse``, ``mae``, ``pearson``, ``accuracy``,
    ``balanced_accuracy``, ``f1`` ...) or the torch_brain 0.1.x form
    ``{"metric": {"_target_": "torchmetrics.R2Score", ...kwargs}}``.
    """
    if isinstance(entry, str):
        return entry, create_metric(entry, spec)
    if isinstance(entry, Mapping):
        target = entry.get("metric", entry)
        if isinstance(target, Mapping) and "_target_" in target:
            path = target["_target_"]
            module_name, _, cls_name = path.rpartition(".")
            try:
                cls = getattr(importlib.import_module(module_name), cls_name)
            except (ImportError, AttributeError, ValueError) as err:
                raise ValueError(f"metric _target_ {path!r} cannot be imported: {err}.") from None
            kwargs = {k: v for k, v in target.items() if k != "_target_"}
            return cls_name.lower(), cls(**kwargs)
    raise TypeError(
        f"a metrics entry must be a metric name or {{metric: {{_target_: ...}}}}, got {entry!r}."
    )


class _MeanPearsonCorrCoef(torchmetrics.PearsonCorrCoef):
    """Pearson correlation averaged over output dims (one number, like ``R2Score``'s default)."""

    def compute(self) -> torch.Tensor:
        return super().compute().mean()


def _classification_task(spec: ModalitySpec) -> dict[str, Any]:
    if spec.type is DataType.MULTINOMIAL:
        return {"task": "multiclass", "num_classes": spec.dim}
    if spec.type is DataType.MULTILABEL:
        return {"task": "multilabel", "num_labels": spec.dim}
    return {"task": "binary"}


_CONT = [DataType.CONTINUOUS]
_CLASS = [DataType.MULTINOMIAL, DataType.BINARY, DataType.MULTILABEL]


@register_metric("r2", types=_CONT)
def _r2(spec: ModalitySpec) -> torchmetrics.Metric:
    return torchmetrics.R2Score()  # multi-output: uniform average over dims


@register_metric("mse", types=_CONT)
def _mse(spec: ModalitySpec) -> torchmetrics.Metric:
    return torchmetrics.MeanSquaredError()


@register_metric("mae", types=_CONT)
def _mae(spec: ModalitySpec) -> torchmetrics.Metric:
    return torchmetrics.MeanAbsoluteError()


@register_metric("pearson", types=_CONT)
def _pearson(spec: ModalitySpec) -> torchmetrics.Metric:
    return _MeanPearsonCorrCoef(num_outputs=spec.dim)  # multi-output: mean over dims


@register_metric("accuracy", types=_CLASS)
def _accuracy(spec: ModalitySpec) -> torchmetrics.Metric:
    return torchmetrics.Accuracy(**_classification_task(spec))


@register_metric("balanced_accuracy", types=_CLASS)
def _balanced_accuracy(spec: ModalitySpec) -> torchmetrics.Metric:
    return torchmetrics.Accuracy(average="macro", **_classification_task(spec))


@register_metric("f1", types=_CLASS)
def _f1(spec: ModalitySpec) -> torchmetrics.Metric:
    return torchmetrics.F1Score(average="macro", **_classification_task(spec))
