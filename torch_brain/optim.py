"""Optimisers: :class:`SparseLamb`, LAMB (layer-wise adaptive moments) with an option to leave
rows without gradient untouched."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["SparseLamb"]


class SparseLamb(Optimizer):
    """LAMB (You et al., 2019, arXiv:1904.00962), optionally skipping rows without gradient.

    Per parameter tensor ``w`` with gradient ``g``, at step ``t``::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        u = m' / (sqrt(v') + eps) + weight_decay * w
        r = min(||w||, clamp_value) / ||u||     (1 if either norm is 0, or if adam=True)
        w = w - lr * r * u

    where ``m' = m / (1 - beta1**t)`` and ``v' = v / (1 - beta2**t)`` if ``debias`` else ``m`` and
    ``v``. The step therefore has the norm ``lr * min(||w||, clamp_value)`` whatever the size of
    the gradient: each tensor moves by at most the fraction ``lr`` of its own norm, and a tensor
    whose norm exceeds ``clamp_value`` by ``lr * clamp_value``. The defaults (``debias=False``,
    ``clamp_value=10``, ``sparse=False``) are LAMB as published and as torch-brain 0.1.x users
    know it; the weight norm is clamped, not the ratio, so a tensor whose gradient is small or
    noisy still takes a full-size step.

    Sparse rows (``sparse=True``): for a tensor with ``ndim >= 2`` (e.g. an embedding table), a
    row (index along dim 0) whose gradient is entirely zero this step is left untouched: no
    weight decay, no moment decay, and it does not enter the two norms. Units absent from a batch
    are therefore neither decayed nor moved by stale momentum. A 1-D tensor whose gradient is
    entirely zero is skipped. Parameters whose ``grad`` is None are skipped as by every torch
    optimiser.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (the largest fraction of its norm a tensor moves per step).
        betas: moment decay rates, each in [0, 1).
        eps: added to ``sqrt(v')``.
        weight_decay: decoupled weight decay, added to the update before the trust ratio.
        clamp_value: upper bound of the weight norm in the trust ratio (> 0).
        adam: if True the trust ratio is 1 (Adam with decoupled weight decay), for comparison.
        debias: if True the moments are bias-corrected (``m'``, ``v'`` above). The step count
            is per tensor, also with ``sparse=True``.
        sparse: if True, leave rows without gradient untouched (see above).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, clamp_value: float = 10.0,
                 adam: bool = False, debias: bool = False, sparse: bool = False) -> None:
        if not lr >= 0.0:
            raise ValueError(f"SparseLamb: lr must be >= 0, but got {lr!r}.")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"SparseLamb: betas must be in [0, 1), but got {betas!r}.")
        if not eps > 0.0:
            raise ValueError(f"SparseLamb: eps must be > 0, but got {eps!r}.")
        if not weight_decay >= 0.0:
            raise ValueError(f"SparseLamb: weight_decay must be >= 0, but got {weight_decay!r}.")
        if not clamp_value > 0.0:
            raise ValueError(
                f"SparseLamb: clamp_value must be > 0, but got {clamp_value!r} "
                "(use a large value, e.g. 1e4, to effectively disable the clamp)."
            )
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        clamp_value=clamp_value, adam=bool(adam), debias=bool(debias), sparse=bool(sparse))
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Perform one optimisation step; returns the closure's loss if a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise TypeError("SparseLamb works on dense gradients; build embeddings with sparse=False.")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                rows = None
                if group["sparse"]:
                    if p.ndim >= 2:
                        active = grad.reshape(grad.shape[0], -1).ne(0).any(dim=1)  # [rows]
                        n_active = int(active.sum())
                        if n_active == 0:
                            continue
                        if n_active < active.shape[0]:
                            rows = active.nonzero().squeeze(1)
                    elif not bool(grad.ne(0).any()):
                        continue
                state["step"] += 1
                if rows is None:
                    self._update(p, grad, state["exp_avg"], state["exp_avg_sq"], group, state["step"])
                else:
                    w, m, v = p[rows], state["exp_avg"][rows], state["exp_avg_sq"][rows]
                    self._update(w, grad[rows], m, v, group, state["step"])
                    p[rows] = w
                    state["exp_avg"][rows] = m
                    state["exp_avg_sq"][rows] = v
        return loss

    @staticmethod
    def _update(w: Tensor, g: Tensor, m: Tensor, v: Tensor, group: dict, step: int) -> None:
        """In-place LAMB update of ``w`` with moments ``m``, ``v`` (all the same shape)."""
        beta1, beta2 = group["betas"]
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        if group["debias"]:
            update = (m / (1 - beta1**step)).div_((v / (1 - beta2**step)).sqrt_().add_(group["eps"]))
        else:
            update = m / v.sqrt().add_(group["eps"])
        if group["weight_decay"]:
            update.add_(w, alpha=group["weight_decay"])
        if group["adam"]:
            w.sub_(update, alpha=group["lr"])
            return
        w_norm = torch.linalg.vector_norm(w).clamp_(max=group["clamp_value"])
        u_norm = torch.linalg.vector_norm(update)
        # a zero norm (a tensor initialised at zero, or no update) falls back to the plain step
        ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm.clamp_min(1e-30), torch.ones_like(w_norm))
        w.sub_(update.mul_(ratio * group["lr"]))
