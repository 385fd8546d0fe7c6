"""Optimisers: :class:`SparseLamb`, LAMB that leaves rows without gradient untouched."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["SparseLamb"]


class SparseLamb(Optimizer):
    """LAMB (layer-wise adaptive moments) that skips rows whose gradient is all zero this step.

    For each parameter, Adam-style moments give the update ``u = m_hat / (sqrt(v_hat) + eps) +
    weight_decay * p`` and the step is ``p -= lr * r * u`` with the trust ratio
    ``r = ||p|| / ||u||`` (1 when either norm is 0, capped at ``max_trust_ratio``).

    Sparse rows: for a tensor with ``ndim >= 2`` (e.g. an embedding table), a row (index along
    dim 0) whose gradient is entirely zero is left untouched: no weight decay, no moment update,
    and it does not enter the trust-ratio norms. Units absent from a batch are therefore not
    decayed. A 1-D tensor whose gradient is entirely zero is likewise skipped. Parameters whose
    ``grad`` is None are skipped as in every torch optimiser.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: moment decay rates.
        eps: added to the denominator.
        weight_decay: decoupled weight decay inside the LAMB update.
        max_trust_ratio: upper bound of the trust ratio.
        sparse: if False, behave as dense LAMB (every row updated).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, max_trust_ratio: float = 10.0,
                 sparse: bool = True) -> None:
        if not lr >= 0.0:
            raise ValueError(f"SparseLamb: lr must be >= 0, but got {lr!r}.")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"SparseLamb: betas must be in [0, 1), but got {betas!r}.")
        if not eps > 0.0:
            raise ValueError(f"SparseLamb: eps must be > 0, but got {eps!r}.")
        if not weight_decay >= 0.0:
            raise ValueError(f"SparseLamb: weight_decay must be >= 0, but got {weight_decay!r}.")
        if not max_trust_ratio > 0.0:
            raise ValueError(f"SparseLamb: max_trust_ratio must be > 0, but got {max_trust_ratio!r}.")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        max_trust_ratio=max_trust_ratio, sparse=sparse)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Perform one optimisation step; returns the closure's loss if a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise TypeError("SparseLamb works on dense gradients; build embeddings with sparse=False.")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
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
                bias1 = 1 - beta1 ** state["step"]
                bias2 = 1 - beta2 ** state["step"]
                if rows is None:
                    self._update(p, grad, state["exp_avg"], state["exp_avg_sq"], group, bias1, bias2)
                else:
                    w, m, v = p[rows], state["exp_avg"][rows], state["exp_avg_sq"][rows]
                    self._update(w, grad[rows], m, v, group, bias1, bias2)
                    p[rows] = w
                    state["exp_avg"][rows] = m
                    state["exp_avg_sq"][rows] = v
        return loss

    @staticmethod
    def _update(w: Tensor, g: Tensor, m: Tensor, v: Tensor, group: dict, bias1: float, bias2: float) -> None:
        """In-place LAMB update of ``w`` with moments ``m``, ``v`` (all the same shape)."""
        beta1, beta2 = group["betas"]
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        update = (m / bias1).div_((v / bias2).sqrt_().add_(group["eps"]))
        if group["weight_decay"]:
            update.add_(w, alpha=group["weight_decay"])
        w_norm = torch.linalg.vector_norm(w)
        u_norm = torch.linalg.vector_norm(update)
        ratio = torch.where(
            (w_norm > 0) & (u_norm > 0), w_norm / u_norm.clamp_min(1e-30), torch.ones_like(w_norm)
        ).clamp_(max=group["max_trust_ratio"])
        w.sub_(update.mul_(ratio * group["lr"]))
