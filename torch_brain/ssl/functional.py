"""Pure functions of self-supervised pretraining: masks, Poisson likelihood, bits per spike, STFT loss.

Every function here is stateless tensor code; the objectives (:mod:`torch_brain.ssl.objectives`)
and the metric wrappers build on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "bits_per_spike",
    "check_mask_ratio",
    "multi_resolution_stft_loss",
    "patch_mask",
    "poisson_nll",
    "poisson_log_likelihood_terms",
]


def check_mask_ratio(mask_ratio: float, where: str = "ssl") -> float:
    """``mask_ratio`` as a float in the open interval (0, 1).

    Raises:
        ValueError: naming the argument, the value and the fix.
    """
    ok = isinstance(mask_ratio, (int, float)) and not isinstance(mask_ratio, bool) and 0 < mask_ratio < 1
    if not ok:
        raise ValueError(
            f"{where}.mask_ratio must be a number in the open interval (0, 1) (the fraction masked), "
            f"but got {mask_ratio!r}; e.g. {where}.mask_ratio=0.4."
        )
    return float(mask_ratio)


def poisson_nll(log_rate: Tensor, counts: Tensor, *, full: bool = False, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of ``counts`` under Poisson(exp(log_rate)).

    ``nll = exp(log_rate) - counts * log_rate`` (+ ``lgamma(counts + 1)`` with ``full=True``, which
    makes it exactly ``-log P(counts)``).

    Args:
        log_rate: (N,) predicted log expected counts per bin.
        counts: (N,) observed counts (float or int).
        full: add the ``log(counts!)`` term.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    counts = counts.to(log_rate.dtype)
    nll = torch.exp(log_rate) - counts * log_rate
    if full:
        nll = nll + torch.lgamma(counts + 1)
    if reduction == "none":
        return nll
    if reduction == "sum":
        return nll.sum()
    if reduction == "mean":
        return nll.mean() if nll.numel() else nll.sum()
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', but got {reduction!r}.")


def poisson_log_likelihood_terms(log_rate: Tensor, counts: Tensor) -> Tensor:
    """``counts * log_rate - exp(log_rate)`` per bin: the log-likelihood without ``-log(counts!)``."""
    return counts.to(log_rate.dtype) * log_rate - torch.exp(log_rate)


def bits_per_spike(log_rate: Tensor, counts: Tensor, unit_index: Tensor | None = None) -> Tensor:
    """Bits per spike of a Poisson rate model against a per-unit mean-rate model (NLB convention).

    ``(LL_model - LL_null) / (n_spikes * ln 2)``, where the null model predicts, for every unit, its
    mean count per bin over the given bins (so the null model sees the evaluated data, as in the
    Neural Latents Benchmark). The ``log(counts!)`` terms cancel.

    Args:
        log_rate: (N,) predicted log expected counts per bin.
        counts: (N,) observed counts.
        unit_index: (N,) unit of each bin (default: one unit).

    Returns:
        A scalar tensor (NaN when there is no spike).
    """
    counts = counts.to(torch.float64)
    log_rate = log_rate.to(torch.float64)
    if unit_index is None:
        unit_index = torch.zeros_like(counts, dtype=torch.long)
    _, inverse = torch.unique(unit_index, return_inverse=True)
    n_units = int(inverse.max()) + 1 if inverse.numel() else 0
    sums = torch.zeros(n_units, dtype=torch.float64, device=counts.device).index_add_(0, inverse, counts)
    bins = torch.zeros(n_units, dtype=torch.float64, device=counts.device).index_add_(
        0, inverse, torch.ones_like(counts))
    mean = sums / bins.clamp(min=1)
    # a unit that never fires has a null log-likelihood of 0 (rate 0 and no spikes)
    null = torch.where(sums > 0, sums * torch.log(mean.clamp(min=1e-300)) - sums, torch.zeros_like(sums))
    ll_model = poisson_log_likelihood_terms(log_rate, counts).sum()
    n_spikes = counts.sum()
    if n_spikes <= 0:
        return torch.tensor(float("nan"), dtype=torch.float64, device=counts.device)
    return (ll_model - null.sum()) / (n_spikes * math.log(2.0))


def patch_mask(batch: int, n_patches: int, mask_ratio: float, kind: str = "random", *,
               generator: torch.Generator | None = None) -> Tensor:
    """Which patches to mask: (batch, n_patches) bool, ``round(mask_ratio * n_patches)`` per row (>= 1).

    Args:
        batch: number of windows.
        n_patches: patches per window.
        mask_ratio: fraction in (0, 1).
        kind: ``"random"`` (any patches) or ``"block"`` (one contiguous run of patches).
        generator: random generator (default: torch's global one).
    """
    check_mask_ratio(mask_ratio)
    if kind not in ("random", "block"):
        raise ValueError(f"ssl.mask_type must be 'random' or 'block', but got {kind!r}.")
    n_mask = min(n_patches, max(1, int(round(mask_ratio * n_patches))))
    mask = torch.zeros(batch, n_patches, dtype=torch.bool)
    if kind == "random":
        order = torch.rand(batch, n_patches, generator=generator).argsort(dim=1)
        mask.scatter_(1, order[:, :n_mask], True)
    else:
        start = torch.randint(0, n_patches - n_mask + 1, (batch,), generator=generator)
        idx = torch.arange(n_patches)
        mask = (idx[None, :] >= start[:, None]) & (idx[None, :] < start[:, None] + n_mask)
    return mask


def multi_resolution_stft_loss(pred: Tensor, target: Tensor, fft_sizes: Sequence[int] = (16, 32, 64), *,
                               hop_fraction: float = 0.25, eps: float = 1e-5) -> Tensor:
    """Mean over FFT sizes of the L1 distance between log STFT magnitudes.

    For each ``n`` in ``fft_sizes``: a periodic Hann window of length ``n``, hop
    ``max(1, int(n * hop_fraction))``, no centring/padding; ``|X|`` the magnitude of the STFT and
    ``loss_n = mean |log(|X_pred| + eps) - log(|X_target| + eps)|``. FFT sizes longer than the
    signal are skipped (at least one must fit).

    Args:
        pred, target: (..., T) signals (e.g. (B, C, T)).
        fft_sizes: FFT (and window) lengths in samples.
        hop_fraction: hop length as a fraction of the FFT size.
        eps: added to the magnitudes before the log.

    Returns:
        A scalar tensor.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, but got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}.")
    length = pred.shape[-1]
    sizes = [int(n) for n in fft_sizes if int(n) <= length]
    if not sizes:
        raise ValueError(f"ssl.fft_sizes {list(fft_sizes)} are all longer than the window ({length} "
                         "samples); use FFT sizes <= the number of samples per window.")
    x = pred.reshape(-1, length)
    y = target.reshape(-1, length)
    losses = []
    for n in sizes:
        window = torch.hann_window(n, periodic=True, dtype=x.dtype, device=x.device)
        hop = max(1, int(n * hop_fraction))
        kwargs = dict(n_fft=n, hop_length=hop, win_length=n, window=window, center=False, return_complex=True)
        mag_x = torch.stft(x, **kwargs).abs()
        mag_y = torch.stft(y, **kwargs).abs()
        losses.append((torch.log(mag_x + eps) - torch.log(mag_y + eps)).abs().mean())
    return torch.stack(losses).mean()
