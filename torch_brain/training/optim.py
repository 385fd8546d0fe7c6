"""Optimiser and learning-rate schedule factories, driven by names from a config.

Optimisers: ``adam``, ``adamw``, ``sgd`` (with momentum), ``sparse_lamb``
(:class:`torch_brain.optim.SparseLamb`; ``lamb`` is the same class).

Schedules (all stepped once per optimiser step unless said otherwise), with ``t`` the step
index and ``T`` the total number of steps:

- ``none``: constant learning rate.
- ``cosine``: ``lr(t) = eta_min + (lr0 - eta_min) * (1 + cos(pi * t / T)) / 2``.
- ``step``: ``lr(t) = lr0 * gamma ** floor(t / step_size)`` (``interval: epoch`` to count epochs).
- ``plateau``: multiply by ``factor`` after ``patience`` validations without improvement of
  ``monitor`` (stepped once per validation).
- ``warmup_cosine``: linear warm-up from ``lr0 * warmup_start_factor`` to ``lr0`` over
  ``warmup_steps`` (or ``warmup_fraction * T``), then cosine from ``lr0`` down to
  ``lr0 * final_factor`` at step ``T``; stays at the floor afterwards.
- ``onecycle``: :class:`torch.optim.lr_scheduler.OneCycleLR` (cosine annealing, two phases)
  peaking at ``max_lr`` (default: the optimiser's lr).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Iterable
from typing import Any

import torch

from torch_brain._registry import Registry
from torch_brain.optim import SparseLamb

__all__ = [
    "OPTIMIZERS",
    "OPTIMIZER_REGISTRY",
    "SCHEDULER_REGISTRY",
    "SCHEDULES",
    "build_optimizer",
    "build_scheduler",
    "register_optimizer",
    "register_scheduler",
    "warmup_cosine_factor",
]

#: name -> optimiser class or factory ``f(params, lr=..., **options)``; options are checked
#: against its signature, and a ``functools.partial`` carries a name's default options.
OPTIMIZER_REGISTRY: Registry[Any] = Registry(
    "optimizer", hint="Register one with torch_brain.training.register_optimizer('name', cls)."
)
#: name -> ``builder(optimizer, *, total_steps, interval, **options) -> Lightning lr_scheduler dict | None``.
SCHEDULER_REGISTRY: Registry[Any] = Registry(
    "schedule", hint="Register one with @torch_brain.training.register_scheduler('name')."
)
register_optimizer = OPTIMIZER_REGISTRY.register
register_scheduler = SCHEDULER_REGISTRY.register

register_optimizer("adam", torch.optim.Adam)
register_optimizer("adamw", functools.partial(torch.optim.AdamW, weight_decay=1e-2))
register_optimizer("sgd", functools.partial(torch.optim.SGD, momentum=0.9))
register_optimizer("sparse_lamb", SparseLamb)
register_optimizer("lamb", SparseLamb)  # the name pretraining configs use (issue 15); same class

#: the built-in names (every registered one: ``OPTIMIZER_REGISTRY.names()`` / ``SCHEDULER_REGISTRY.names()``)
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd", "sparse_lamb")
SCHEDULES: tuple[str, ...] = ("cosine", "none", "onecycle", "plateau", "step", "warmup_cosine")


def build_optimizer(
    params: Iterable[torch.nn.Parameter] | Iterable[dict] | torch.nn.Module,
    name: str = "adamw",
    *,
    lr: float = 1e-3,
    **options: Any,
) -> torch.optim.Optimizer:
    """Builds an optimiser from its name.

    Args:
        params: a module (its parameters are used), an iterable of parameters, or param groups.
        name: a registered optimiser (built in: ``adam``, ``adamw``, ``sgd``, ``sparse_lamb``).
        lr: the learning rate.
        **options: further keyword arguments of the optimiser class (``weight_decay``,
            ``betas``, ``momentum``, ``nesterov``, ``eps`` ...). ``sgd`` defaults to
            ``momentum=0.9``; ``adamw`` to ``weight_decay=0.01``.

    Returns:
        The optimiser.

    Raises:
        ValueError: unknown name (the valid ones are listed) or an option the optimiser
            does not take (the closest valid option is suggested).
    """
    factory = OPTIMIZER_REGISTRY.lookup(name)
    OPTIMIZER_REGISTRY.check_options(name, options, exclude=("params",))
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise ValueError(f"optimizer {name!r}: lr (optimizer.lr) must be a positive number, got {lr!r}.")
    try:
        return factory(params, **options, lr=float(lr))
    except ValueError as err:  # torch's own range checks ("Invalid beta parameter ...")
        raise ValueError(f"optimizer {name!r}: {err}; fix that option (optimizer.<option> in a config), "
                         f"got options {options}.") from None


def warmup_cosine_factor(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int,
    warmup_start_factor: float = 0.0,
    final_factor: float = 0.0,
) -> float:
    """Learning-rate multiplier of the ``warmup_cosine`` schedule at ``step``.

    ``step < warmup_steps``: ``s + (1 - s) * step / warmup_steps`` (``s = warmup_start_factor``);
    afterwards ``f + (1 - f) * (1 + cos(pi * p)) / 2`` with
    ``p = min(1, (step - warmup_steps) / (total_steps - warmup_steps))``, ``f = final_factor``.
    """
    if step < warmup_steps:
        return warmup_start_factor + (1.0 - warmup_start_factor) * step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _need_total(name: str, total_steps: int | None) -> int:
    if total_steps is None or int(total_steps) <= 0:
        raise ValueError(
            f"schedule {name!r} needs total_steps > 0 (the number of optimiser steps of the run), "
            f"got {total_steps!r}. Set trainer.max_steps, or trainer.max_epochs with a sized "
            "training loader."
        )
    return int(total_steps)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str = "warmup_cosine",
    *,
    total_steps: int | None = None,
    **options: Any,
) -> dict[str, Any] | None:
    """Builds a learning-rate schedule from its name, as a Lightning ``lr_scheduler`` config.

    Args:
        optimizer: the optimiser whose learning rate is scheduled.
        name: a registered schedule (built in: see :data:`SCHEDULES`).
        total_steps: number of optimiser steps of the whole run (needed by ``cosine``,
            ``warmup_cosine`` and ``onecycle``).
        **options: schedule options (see the module docstring); ``interval`` (``"step"`` or
            ``"epoch"``) chooses what ``step``/``cosine``/``warmup_cosine`` count.

    Returns:
        ``{"scheduler": ..., "interval": "step" | "epoch", "frequency": 1}`` (plus ``"monitor"``
        for ``plateau``), or ``None`` for ``none``.

    Raises:
        ValueError: unknown schedule (valid ones listed), unknown option, missing total_steps.
    """
    builder = SCHEDULER_REGISTRY.lookup(name)
    takes_interval = "interval" in inspect.signature(builder).parameters
    SCHEDULER_REGISTRY.check_options(name, options, exclude=("optimizer", "total_steps"))
    interval = options.get("interval", "step")
    if interval not in ("step", "epoch"):
        raise ValueError(f"schedule option interval must be 'step' or 'epoch', got {interval!r}.")
    if takes_interval:
        options["interval"] = interval
    return builder(optimizer, total_steps=total_steps, **options)


def _config(scheduler: Any, interval: str = "step") -> dict[str, Any]:
    return {"scheduler": scheduler, "interval": interval, "frequency": 1}


@register_scheduler("none")
def _none(optimizer: torch.optim.Optimizer, *, total_steps: int | None) -> None:
    return None


@register_scheduler("cosine")
def _cosine(optimizer: torch.optim.Optimizer, *, total_steps: int | None, eta_min: float = 0.0,
            T_max: int | None = None, interval: str = "step") -> dict[str, Any]:
    t_max = T_max or _need_total("cosine", total_steps)
    return _config(torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=int(t_max), eta_min=float(eta_min)), interval)


@register_scheduler("step")
def _step(optimizer: torch.optim.Optimizer, *, total_steps: int | None, step_size: int | None = None,
          gamma: float = 0.1, interval: str = "step") -> dict[str, Any]:
    if step_size is None:
        raise ValueError("schedule 'step' needs option step_size (steps or epochs per decay).")
    return _config(torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(step_size),
                                                   gamma=float(gamma)), interval)


@register_scheduler("plateau")
def _plateau(optimizer: torch.optim.Optimizer, *, total_steps: int | None,
             monitor: str = "average_val_metric", mode: str | None = None, factor: float = 0.1,
             patience: int = 10, threshold: float = 1e-4, min_lr: float = 0.0,
             cooldown: int = 0) -> dict[str, Any]:
    mode = mode or ("max" if monitor.startswith("average_") else "min")
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=mode, factor=factor, patience=patience, threshold=threshold, min_lr=min_lr,
        cooldown=cooldown)
    return {**_config(scheduler, "epoch"), "monitor": monitor, "strict": False}


@register_scheduler("warmup_cosine")
def _warmup_cosine(optimizer: torch.optim.Optimizer, *, total_steps: int | None,
                   warmup_steps: int | None = None, warmup_fraction: float = 0.1,
                   warmup_start_factor: float = 0.0, final_factor: float = 0.0,
                   interval: str = "step") -> dict[str, Any]:
    total = _need_total("warmup_cosine", total_steps)
    warmup = int(warmup_steps) if warmup_steps is not None else int(round(float(warmup_fraction) * total))
    if not 0 <= warmup < total:
        raise ValueError(
            f"schedule 'warmup_cosine': warmup_steps must be in [0, total_steps={total}), "
            f"got {warmup}. Lower warmup_steps/warmup_fraction or raise the step budget."
        )
    factor = _WarmupCosine(total_steps=total, warmup_steps=warmup,
                           warmup_start_factor=float(warmup_start_factor), final_factor=float(final_factor))
    return _config(torch.optim.lr_scheduler.LambdaLR(optimizer, factor), interval)


@register_scheduler("onecycle")
def _onecycle(optimizer: torch.optim.Optimizer, *, total_steps: int | None, max_lr: Any = None,
              pct_start: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4,
              anneal_strategy: str = "cos", three_phase: bool = False) -> dict[str, Any]:
    total = _need_total("onecycle", total_steps)
    if max_lr is None:
        max_lr = [group["lr"] for group in optimizer.param_groups]
    return _config(torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=total, pct_start=pct_start, div_factor=div_factor,
        final_div_factor=final_div_factor, anneal_strategy=anneal_strategy, three_phase=three_phase))


class _WarmupCosine:
    """Picklable LambdaLR multiplier (checkpoints store the schedule state)."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def __call__(self, step: int) -> float:
        return warmup_cosine_factor(step, **self.kwargs)
