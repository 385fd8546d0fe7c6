"""Optimiser and learning-rate schedule factories, driven by names from a config.

Optimisers: ``adam``, ``adamw``, ``sgd`` (with momentum), ``sparse_lamb``
(:class:`torch_brain.optim.SparseLamb`, imported only when asked for).

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

import difflib
import inspect
import math
from collections.abc import Iterable
from typing import Any

import torch

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "build_optimizer",
    "build_scheduler",
    "warmup_cosine_factor",
]


def _sparse_lamb() -> type:
    from torch_brain.optim import SparseLamb  # lazy: only needed when asked for

    return SparseLamb


# name -> (factory returning the optimiser class, default options)
_OPTIMIZERS: dict[str, tuple[Any, dict[str, Any]]] = {
    "adam": (lambda: torch.optim.Adam, {}),
    "adamw": (lambda: torch.optim.AdamW, {"weight_decay": 1e-2}),
    "sgd": (lambda: torch.optim.SGD, {"momentum": 0.9}),
    "sparse_lamb": (_sparse_lamb, {}),
}
OPTIMIZERS: tuple[str, ...] = tuple(sorted(_OPTIMIZERS))
SCHEDULES: tuple[str, ...] = ("cosine", "none", "onecycle", "plateau", "step", "warmup_cosine")


def _closest(name: str, valid: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(valid), n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


def _unknown_name(kind: str, name: Any, valid: Iterable[str]) -> ValueError:
    valid = sorted(valid)
    return ValueError(
        f"Unknown {kind} {name!r}. Valid {kind}s are: {', '.join(valid)}."
        f"{_closest(str(name), valid)}"
    )


def _check_options(kind: str, name: str, options: dict[str, Any], valid: Iterable[str]) -> None:
    valid = sorted(valid)
    for key in options:
        if key not in valid:
            raise ValueError(
                f"{kind} {name!r} has no option {key!r}.{_closest(key, valid)} "
                f"Valid options are: {', '.join(valid)}."
            )


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
        name: one of :data:`OPTIMIZERS` (``adam``, ``adamw``, ``sgd``, ``sparse_lamb``).
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
    if name not in _OPTIMIZERS:
        raise _unknown_name("optimizer", name, OPTIMIZERS)
    factory, defaults = _OPTIMIZERS[name]
    cls = factory()
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params")]
    _check_options("optimizer", name, options, valid)
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise ValueError(f"optimizer {name!r}: lr (optimizer.lr) must be a positive number, got {lr!r}.")
    kwargs = {**defaults, **options, "lr": float(lr)}
    try:
        return cls(params, **kwargs)
    except ValueError as err:  # torch's own range checks ("Invalid beta parameter ...")
        raise ValueError(f"optimizer {name!r}: {err}; fix that option (optimizer.<option> in a config), "
                         f"got options {kwargs}.") from None


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


_SCHEDULE_OPTIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    "cosine": ("eta_min", "T_max", "interval"),
    "step": ("step_size", "gamma", "interval"),
    "plateau": ("monitor", "mode", "factor", "patience", "threshold", "min_lr", "cooldown"),
    "warmup_cosine": (
        "warmup_steps",
        "warmup_fraction",
        "warmup_start_factor",
        "final_factor",
        "interval",
    ),
    "onecycle": (
        "max_lr",
        "pct_start",
        "div_factor",
        "final_div_factor",
        "anneal_strategy",
        "three_phase",
    ),
}


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
        name: one of :data:`SCHEDULES`.
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
    if name not in _SCHEDULE_OPTIONS:
        raise _unknown_name("schedule", name, SCHEDULES)
    _check_options("schedule", name, options, _SCHEDULE_OPTIONS[name])
    sched = torch.optim.lr_scheduler
    interval = options.pop("interval", "step")
    if interval not in ("step", "epoch"):
        raise ValueError(f"schedule option interval must be 'step' or 'epoch', got {interval!r}.")
    if name == "none":
        return None
    if name == "cosine":
        t_max = options.get("T_max") or _need_total(name, total_steps)
        scheduler = sched.CosineAnnealingLR(
            optimizer, T_max=int(t_max), eta_min=float(options.get("eta_min", 0.0))
        )
    elif name == "step":
        if "step_size" not in options:
            raise ValueError("schedule 'step' needs option step_size (steps or epochs per decay).")
        scheduler = sched.StepLR(
            optimizer, step_size=int(options["step_size"]), gamma=float(options.get("gamma", 0.1))
        )
    elif name == "plateau":
        monitor = options.pop("monitor", "average_val_metric")
        mode = options.pop("mode", "max" if monitor.startswith("average_") else "min")
        scheduler = sched.ReduceLROnPlateau(optimizer, mode=mode, **options)
        return {"scheduler": scheduler, "interval": "epoch", "frequency": 1, "monitor": monitor,
                "strict": False}
    elif name == "warmup_cosine":
        total = _need_total(name, total_steps)
        if "warmup_steps" in options:
            warmup = int(options["warmup_steps"])
        else:
            warmup = int(round(float(options.get("warmup_fraction", 0.1)) * total))
        if not 0 <= warmup < total:
            raise ValueError(
                f"schedule 'warmup_cosine': warmup_steps must be in [0, total_steps={total}), "
                f"got {warmup}. Lower warmup_steps/warmup_fraction or raise the step budget."
            )
        kwargs = {
            "total_steps": total,
            "warmup_steps": warmup,
            "warmup_start_factor": float(options.get("warmup_start_factor", 0.0)),
            "final_factor": float(options.get("final_factor", 0.0)),
        }
        scheduler = sched.LambdaLR(optimizer, _WarmupCosine(**kwargs))
    else:  # onecycle
        total = _need_total(name, total_steps)
        max_lr = options.pop("max_lr", None)
        if max_lr is None:
            max_lr = [group["lr"] for group in optimizer.param_groups]
        scheduler = sched.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total, **options)
        interval = "step"
    return {"scheduler": scheduler, "interval": interval, "frequency": 1}


class _WarmupCosine:
    """Picklable LambdaLR multiplier (checkpoints store the schedule state)."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def __call__(self, step: int) -> float:
        return warmup_cosine_factor(step, **self.kwargs)
