"""Expected-value readouts: continuous outputs decoded as a distribution over a vocabulary.

Instead of regressing a value directly, a head emits logits over a fixed vocabulary and predicts
the *expected value* under their softmax:

- ``bins``: every output dimension has ``K`` bin centres (quantiles of the training targets by
  default); the head emits ``K`` logits per dimension and predicts ``sum_k p_k * centre_k``.
- ``codebook``: ``K`` centroid vectors (k-means of the training target vectors); the head emits
  ``K`` logits and predicts ``sum_k p_k * centroid_k``, so dimensions that move together (2-D
  velocity) share one distribution.

The loss (:class:`ExpectedValueLoss`) is ``mse_weight * MSE(expected value, target) + ce_weight
* cross-entropy(logits, soft target)``; a bins task's soft target is HL-Gauss by default (the
probability mass of ``N(target, sigma^2)`` in each bin, ``sigma = sigma_ratio`` times the width of
the bin holding the target), a codebook's is the nearest centroid. ``sample_k`` computes the loss
at ``k`` random queries per batch, rescaled so that its expectation is the full loss
(:class:`SampledLoss`, usable with any readout loss).

Centres and centroids are frozen parameters (``requires_grad=False``, never touched by gradients):
they travel in every checkpoint, and DDP has no buffer to broadcast. They are fitted once, from
the training split, by :meth:`BinsHead.fit` / :meth:`CodebookHead.fit`; a head that has not been
fitted refuses to run.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torch_brain.nn.loss import _loss_dtype, weighted_mean

__all__ = [
    "BinsHead",
    "CodebookHead",
    "ExpectedValueLoss",
    "SampledLoss",
    "bin_edges",
    "expected_value",
    "hl_gauss_target",
    "kmeans",
    "make_head",
    "quantile_centres",
    "two_hot_target",
]

HEAD_KINDS = ("bins", "codebook", "linear")


def _check_num_bins(num_bins: Any, what: str = "num_bins") -> int:
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"{what} must be an int >= 2, but got {num_bins!r}; e.g. {what}=64.")
    return num_bins


def _check_fit_values(values: Any, dim: int, task: str) -> Tensor:
    values = torch.as_tensor(values, dtype=torch.float64)
    values = values.reshape(values.shape[0], -1) if values.ndim else values.reshape(1, 1)
    if values.shape[1] != dim:
        raise ValueError(f"{task}: fit values must have {dim} columns, but got shape {tuple(values.shape)}.")
    if values.shape[0] < 2:
        raise ValueError(f"{task}: fitting needs at least 2 training targets, but got {values.shape[0]}.")
    bad = ~torch.isfinite(values).all(dim=1)
    if bool(bad.any()):
        raise ValueError(
            f"{task}: {int(bad.sum())} of {values.shape[0]} training targets are NaN or inf; drop or fix "
            "them in the recording before fitting the readout's vocabulary."
        )
    return values


def quantile_centres(values: Tensor, num_bins: int, *, strategy: str = "quantile") -> Tensor:
    """Bin centres per output dimension.

    Args:
        values: (n, d) training targets.
        num_bins: K >= 2.
        strategy: ``"quantile"`` (centre k at the ``(k + 0.5) / K`` quantile: equally many
            targets per bin) or ``"uniform"`` (K equal bins between the min and the max).

    Returns:
        (d, K) strictly increasing centres per row (float32).

    Raises:
        ValueError: K < 2, an unknown strategy, or a dimension whose values are constant.
    """
    num_bins = _check_num_bins(num_bins)
    values = torch.as_tensor(values, dtype=torch.float64).reshape(len(values), -1)
    if strategy == "quantile":
        q = (torch.arange(num_bins, dtype=torch.float64) + 0.5) / num_bins
        centres = torch.quantile(values, q, dim=0).T  # (d, K)
    elif strategy == "uniform":
        lo, hi = values.min(0).values, values.max(0).values
        frac = (torch.arange(num_bins, dtype=torch.float64) + 0.5) / num_bins
        centres = lo[:, None] + (hi - lo)[:, None] * frac[None, :]
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', but got {strategy!r}.")
    spread = values.max(0).values - values.min(0).values
    for d in range(values.shape[1]):
        if not spread[d] > 0:
            raise ValueError(
                f"output dimension {d}: every training target is {float(values[0, d])!r}, so there is "
                "nothing to bin; use the linear head (kind: linear) for this task."
            )
    # quantiles of tied values repeat: nudge repeats apart so every bin has its own width
    tiny = 1e-6 * spread.clamp_min(1e-12)
    for k in range(1, num_bins):
        centres[:, k] = torch.maximum(centres[:, k], centres[:, k - 1] + tiny)
    return centres.to(torch.float32)


def bin_edges(centres: Tensor) -> Tensor:
    """(d, K + 1) edges: midpoints between centres, outer edges half a bin beyond the end centres."""
    mid = (centres[:, 1:] + centres[:, :-1]) / 2
    first = centres[:, :1] - (mid[:, :1] - centres[:, :1])
    last = centres[:, -1:] + (centres[:, -1:] - mid[:, -1:])
    return torch.cat([first, mid, last], dim=1)


def expected_value(logits: Tensor, centres: Tensor) -> Tensor:
    """``sum_k softmax(logits)_k * centres_k``.

    Shapes: logits (n, d, K) with centres (d, K) -> (n, d) [bins]; logits (n, K) with centres
    (K, d) -> (n, d) [codebook]. Half-precision logits (``bf16-mixed``) are computed in float32:
    the centres keep their float32 values and the sum over K bins does not round at every term.
    """
    probs = torch.softmax(_loss_dtype(logits), dim=-1)
    if logits.ndim == 3:
        return (probs * centres.to(probs.dtype)).sum(-1)
    # not ``probs @ centres``: autocast would run that matmul in bf16 again (K x d is small)
    return (probs.unsqueeze(-1) * centres.to(probs.dtype)).sum(-2)


def hl_gauss_target(target: Tensor, centres: Tensor, sigma_ratio: float = 0.75) -> Tensor:
    """HL-Gauss soft targets: the mass of ``N(target, sigma^2)`` in each bin, renormalised.

    ``sigma`` is ``sigma_ratio`` times the width of the bin holding the target (bins of quantile
    centres differ in width). Mass beyond the outer edges is dropped before renormalising.

    Shapes: target (n, d), centres (d, K) -> (n, d, K), each row summing to 1.
    """
    edges = bin_edges(centres).to(target.dtype)  # (d, K + 1)
    widths = edges[:, 1:] - edges[:, :-1]  # (d, K)
    k = torch.searchsorted(edges[:, 1:-1].contiguous(), target.T.contiguous()).T  # (n, d) bin of each target
    sigma = sigma_ratio * torch.gather(widths.expand(target.shape[0], -1, -1), 2, k.unsqueeze(-1))
    z = (edges.unsqueeze(0) - target.unsqueeze(-1)) / (sigma * math.sqrt(2.0))  # (n, d, K + 1)
    cdf = 0.5 * (1 + torch.erf(z))
    mass = (cdf[..., 1:] - cdf[..., :-1]).clamp_min(0)
    total = mass.sum(-1, keepdim=True)
    # a target far outside the edges has ~no mass inside: put it all in the nearest end bin
    fallback = F.one_hot(k, centres.shape[1]).to(mass.dtype)
    return torch.where(total > 1e-12, mass / total.clamp_min(1e-12), fallback)


def two_hot_target(target: Tensor, centres: Tensor) -> Tensor:
    """Two-hot soft targets: weights on the two centres around the target whose mean is the target
    (clamped to the end centres outside their range).

    Shapes: target (n, d), centres (d, K) -> (n, d, K).
    """
    n, K = target.shape[0], centres.shape[1]
    c = centres.to(target.dtype).expand(n, -1, -1)  # (n, d, K)
    y = torch.maximum(torch.minimum(target, c[..., -1]), c[..., 0])
    hi = torch.searchsorted(centres.to(target.dtype).contiguous(), y.T.contiguous()).T.clamp(1, K - 1)  # (n, d)
    lo = hi - 1
    c_lo, c_hi = torch.gather(c, 2, lo.unsqueeze(-1)).squeeze(-1), torch.gather(c, 2, hi.unsqueeze(-1)).squeeze(-1)
    w_hi = (y - c_lo) / (c_hi - c_lo)
    out = torch.zeros(c.shape, dtype=target.dtype, device=target.device)
    out.scatter_(2, lo.unsqueeze(-1), (1 - w_hi).unsqueeze(-1))
    out.scatter_add_(2, hi.unsqueeze(-1), w_hi.unsqueeze(-1))
    return out


def kmeans(values: Tensor, num_clusters: int, *, iters: int = 50, seed: int = 0) -> Tensor:
    """k-means (k-means++ seeding, then Lloyd iterations) with a private generator.

    Args:
        values: (n, d) points, n >= num_clusters.
        num_clusters: K >= 2.
        iters: Lloyd iterations (stops early when assignments no longer change).
        seed: seed of the private generator (the global RNG is untouched).

    Returns:
        (K, d) float32 centroids.
    """
    num_clusters = _check_num_bins(num_clusters, "num_clusters")
    x = torch.as_tensor(values, dtype=torch.float64).reshape(len(values), -1)
    if x.shape[0] < num_clusters:
        raise ValueError(f"kmeans needs at least num_clusters={num_clusters} points, but got {x.shape[0]}.")
    gen = torch.Generator().manual_seed(int(seed))
    centroids = x[torch.randint(len(x), (1,), generator=gen)]
    d2 = ((x - centroids[0]) ** 2).sum(1)
    for _ in range(1, num_clusters):
        if float(d2.sum()) <= 0:
            raise ValueError(
                f"kmeans: the training targets have fewer than {num_clusters} distinct values; lower "
                "num_bins or use kind: linear."
            )
        pick = torch.multinomial(d2 / d2.sum(), 1, generator=gen)
        centroids = torch.cat([centroids, x[pick]])
        d2 = torch.minimum(d2, ((x - x[pick]) ** 2).sum(1))
    assign = None
    for _ in range(iters):
        new = torch.cdist(x, centroids).argmin(1)
        if assign is not None and bool((new == assign).all()):
            break
        assign = new
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=num_clusters).to(x.dtype)
        keep = counts > 0  # an emptied cluster keeps its centroid
        centroids[keep] = sums[keep] / counts[keep, None]
    return centroids.to(torch.float32)


class _VocabHead(nn.Module):
    """Shared parts of the two expected-value heads (``_vocab_name``: the frozen vocabulary)."""

    kind = ""
    _vocab_name = ""

    @property
    def vocabulary(self) -> Tensor:
        """The fitted centres (d, K) or centroids (K, d); NaN until fitted."""
        return getattr(self, self._vocab_name)

    @property
    def is_fitted(self) -> bool:
        return not bool(torch.isnan(self.vocabulary).any())

    def load_vocabulary(self, values: Any) -> None:
        """Sets the vocabulary to ``values`` (e.g. from a cache), of the vocabulary's shape."""
        values = torch.as_tensor(values, dtype=torch.float32)
        if tuple(values.shape) != tuple(self.vocabulary.shape) or not bool(torch.isfinite(values).all()):
            raise ValueError(f"{self.kind} vocabulary must be finite with shape {tuple(self.vocabulary.shape)}, "
                             f"but got shape {tuple(values.shape)}.")
        with torch.no_grad():
            self.vocabulary.copy_(values)

    def reset_vocabulary(self) -> None:
        """Forgets the fitted vocabulary (back to NaN), so that the next fit sets a new one."""
        with torch.no_grad():
            self.vocabulary.fill_(float("nan"))

    def _check_fitted(self, buffer: Tensor) -> None:
        if bool(torch.isnan(buffer).any()):
            raise RuntimeError(
                f"this {self.kind} readout head has no vocabulary yet: call fit(training_targets) first "
                "(torch_brain.training fits it from the training split), or load a checkpoint that has one."
            )

    def _distribution_logits(self, logits: Tensor) -> Tensor:
        return logits  # (n, K): one distribution per query

    def entropy(self, logits: Tensor) -> Tensor:
        """(n,) entropy in nats of the predicted distribution (bins: averaged over output dimensions)."""
        logp = torch.log_softmax(self._distribution_logits(_loss_dtype(logits)), -1)
        ent = -(logp.exp() * logp).sum(-1)
        return ent.mean(-1) if ent.ndim == 2 else ent

    def ce_loss(self, logits: Tensor, target: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class BinsHead(_VocabHead):
    """``K`` bins per output dimension; prediction = expected bin centre.

    Args:
        dim: input embedding size.
        out_dim: output dimensions d.
        num_bins: K >= 2 (default 64).
        sigma_ratio: HL-Gauss width in bin widths (default 0.75).
        soft_target: ``"hl_gauss"`` (default) or ``"two_hot"``.
        strategy: how :meth:`fit` places the centres, ``"quantile"`` (default) or ``"uniform"``.

    Shapes: forward (n, dim) -> logits (n, d * K); predict (n, d * K) -> (n, d).
    """

    kind = "bins"
    _vocab_name = "centres"

    def __init__(self, dim: int, out_dim: int, num_bins: int = 64, *, sigma_ratio: float = 0.75,
                 soft_target: str = "hl_gauss", strategy: str = "quantile") -> None:
        super().__init__()
        self.num_bins = _check_num_bins(num_bins)
        if strategy not in ("quantile", "uniform"):
            raise ValueError(f"strategy must be 'quantile' or 'uniform', but got {strategy!r}.")
        self.strategy = strategy
        if soft_target not in ("hl_gauss", "two_hot"):
            raise ValueError(f"soft_target must be 'hl_gauss' or 'two_hot', but got {soft_target!r}.")
        if not sigma_ratio > 0:
            raise ValueError(f"sigma_ratio must be > 0, but got {sigma_ratio!r}.")
        self.out_dim, self.sigma_ratio, self.soft_target = int(out_dim), float(sigma_ratio), soft_target
        self.proj = nn.Linear(dim, self.out_dim * self.num_bins)
        # a frozen parameter, not a buffer: it travels in the state dict like a buffer, but DDP does
        # not broadcast it before every forward (a broadcast that ranks without a batch never join)
        self.centres = nn.Parameter(torch.full((self.out_dim, self.num_bins), float("nan")), requires_grad=False)

    def fit(self, values: Any, *, task: str = "bins head") -> None:
        """Set the centres from (n, d) training targets (see :func:`quantile_centres`)."""
        values = _check_fit_values(values, self.out_dim, task)
        try:
            centres = quantile_centres(values, self.num_bins, strategy=self.strategy)
        except ValueError as err:
            raise ValueError(f"{task}: {err}") from None
        with torch.no_grad():
            self.centres.copy_(centres)

    def _distribution_logits(self, logits: Tensor) -> Tensor:
        return logits.reshape(-1, self.out_dim, self.num_bins)  # (n, d, K): one per output dimension

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)

    def predict(self, logits: Tensor) -> Tensor:
        self._check_fitted(self.centres)
        return expected_value(logits.reshape(-1, self.out_dim, self.num_bins), self.centres.detach())

    def ce_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """(n,) cross-entropy against the soft targets, averaged over output dimensions."""
        logits = _loss_dtype(logits).reshape(-1, self.out_dim, self.num_bins)
        make = hl_gauss_target if self.soft_target == "hl_gauss" else two_hot_target
        centres = self.centres.detach()
        soft = make(target.to(centres.dtype), centres) if self.soft_target == "two_hot" else \
            make(target.to(centres.dtype), centres, self.sigma_ratio)
        return -(soft.to(logits.dtype) * torch.log_softmax(logits, -1)).sum(-1).mean(-1)


class CodebookHead(_VocabHead):
    """``K`` centroid vectors; prediction = expected centroid.

    Args:
        dim: input embedding size.
        out_dim: output dimensions d.
        num_bins: K >= 2 centroids (default 64).
        seed: k-means seed.

    Shapes: forward (n, dim) -> logits (n, K); predict (n, K) -> (n, d).
    """

    kind = "codebook"
    _vocab_name = "codebook"

    def __init__(self, dim: int, out_dim: int, num_bins: int = 64, *, seed: int = 0) -> None:
        super().__init__()
        self.num_bins = _check_num_bins(num_bins)
        self.out_dim, self.seed = int(out_dim), int(seed)
        self.proj = nn.Linear(dim, self.num_bins)
        self.codebook = nn.Parameter(torch.full((self.num_bins, self.out_dim), float("nan")), requires_grad=False)

    def fit(self, values: Any, *, task: str = "codebook head") -> None:
        """Set the centroids by k-means of the (n, d) training target vectors."""
        values = _check_fit_values(values, self.out_dim, task)
        if float((values.max(0).values - values.min(0).values).max()) <= 0:
            raise ValueError(
                f"{task}: every training target is {values[0].tolist()}, so there is nothing to cluster; "
                "use the linear head (kind: linear)."
            )
        with torch.no_grad():
            self.codebook.copy_(kmeans(values, self.num_bins, seed=self.seed))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)

    def predict(self, logits: Tensor) -> Tensor:
        self._check_fitted(self.codebook)
        return expected_value(logits, self.codebook.detach())

    def ce_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """(n,) cross-entropy against the nearest centroid."""
        nearest = torch.cdist(target.to(self.codebook.dtype), self.codebook.detach()).argmin(1)
        return F.cross_entropy(_loss_dtype(logits), nearest, reduction="none")


class ExpectedValueLoss(nn.Module):
    """``mse_weight * MSE(expected value, target) + ce_weight * CE(logits, soft target)``.

    Called like every readout loss, ``loss(logits, target, weights=None)``, and sample-weighted the
    same way (``sum(w * l) / sum(w)``), so the user guide's ``compute_loss`` works unchanged.

    Args:
        head: the :class:`BinsHead` / :class:`CodebookHead` whose logits are scored.
        mse_weight: weight of the expected-value MSE (averaged over output dimensions).
        ce_weight: weight of the cross-entropy.
    """

    def __init__(self, head: _VocabHead, *, mse_weight: float = 1.0, ce_weight: float = 0.1) -> None:
        super().__init__()
        for name, value in (("mse_weight", mse_weight), ("ce_weight", ce_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, but got {value!r}.")
        if mse_weight == 0 and ce_weight == 0:
            raise ValueError("mse_weight and ce_weight are both 0: the loss would be constant.")
        # a plain attribute, not a submodule: the head's parameters belong to the model
        object.__setattr__(self, "head", head)
        self.mse_weight, self.ce_weight = float(mse_weight), float(ce_weight)

    def per_sample(self, logits: Tensor, target: Tensor) -> Tensor:
        """(n,) unweighted loss of each query."""
        logits = _loss_dtype(logits)  # float32 under bf16-mixed (see expected_value)
        target = target.reshape(target.shape[0], -1).to(logits.dtype)
        out = logits.new_zeros(logits.shape[0])
        if self.mse_weight:
            err = (self.head.predict(logits) - target) ** 2
            out = out + self.mse_weight * err.mean(1)
        if self.ce_weight:
            out = out + self.ce_weight * self.head.ce_loss(logits, target).to(out.dtype)
        return out

    def forward(self, logits: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
        if logits.shape[0] != target.shape[0]:
            raise ValueError(
                f"ExpectedValueLoss: logits and target must have the same number of queries, but got "
                f"{tuple(logits.shape)} and {tuple(target.shape)}."
            )
        return weighted_mean(self.per_sample(logits, target), weights)


class SampledLoss(nn.Module):
    """Any weighted-mean readout loss evaluated at ``k`` queries drawn without replacement.

    With ``S`` the drawn queries, ``n`` all of them and ``L_S`` the loss on ``S``, the estimate is
    ``L_S * sum_S(w) / sum(w) * n / k``: its expectation over draws is exactly the full loss
    ``sum(w * l) / sum(w)``. Draws use torch's global generator, like dropout, so seeding the run
    seeds them.

    Args:
        loss_fn: ``loss_fn(pred, target, weights)``, a weighted mean over queries.
        k: queries per batch (>= 1); batches with at most ``k`` queries use them all.
    """

    def __init__(self, loss_fn: Any, k: int) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"sample_k must be a positive int or None, but got {k!r}.")
        object.__setattr__(self, "loss_fn", loss_fn)
        self.k = k

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
        n = pred.shape[0]
        if n <= self.k:
            return self.loss_fn(pred, target, weights)
        wdt = torch.promote_types(pred.dtype, torch.float32)  # bf16 weights would round
        w = torch.ones(n, device=pred.device, dtype=wdt) if weights is None else \
            torch.as_tensor(weights, device=pred.device).to(wdt)
        pick = torch.randperm(n, device=pred.device)[: self.k]
        target = torch.as_tensor(target, device=pred.device)
        part = self.loss_fn(pred[pick], target[pick], w[pick])
        total = w.sum()
        scale = w[pick].sum() / total.clamp_min(torch.finfo(total.dtype).tiny) * (n / self.k)
        return torch.where(total > 0, part * scale, part * 0.0)


def make_head(kind: str, dim: int, out_dim: int, **options: Any) -> tuple[nn.Module, ExpectedValueLoss | None]:
    """A readout head for one continuous task and its loss (None: keep the spec's default loss).

    ``sample_k`` is not applied here; wrap the returned (or default) loss in :class:`SampledLoss`.

    Args:
        kind: ``"linear"`` (``nn.Linear``, the default readout), ``"bins"`` or ``"codebook"``.
        dim: input embedding size.
        out_dim: output dimensions.
        **options: ``num_bins``, ``sigma_ratio``, ``soft_target``, ``seed`` (head) and
            ``strategy`` (head) and ``mse_weight``, ``ce_weight`` (loss).
    """
    loss_keys = {"mse_weight", "ce_weight"}
    head_keys = {"bins": {"num_bins", "sigma_ratio", "soft_target", "strategy"},
                 "codebook": {"num_bins", "seed"}, "linear": set()}
    if kind not in head_keys:
        raise ValueError(f"readout head kind must be one of {', '.join(HEAD_KINDS)}, but got {kind!r}.")
    unknown = set(options) - head_keys[kind] - (loss_keys if kind != "linear" else set())
    if unknown:
        valid = sorted(head_keys[kind] | (loss_keys if kind != "linear" else set()))
        raise ValueError(f"readout head {kind!r} has no option(s) {sorted(unknown)}; valid: {', '.join(valid)}.")
    if kind == "linear":
        return nn.Linear(dim, out_dim), None
    head_opts = {k: v for k, v in options.items() if k in head_keys[kind]}
    head = BinsHead(dim, out_dim, **head_opts) if kind == "bins" else CodebookHead(dim, out_dim, **head_opts)
    loss = ExpectedValueLoss(head, **{k: v for k, v in options.items() if k in loss_keys})
    return head, loss
