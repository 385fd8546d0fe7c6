"""Poisson NLL, bits/spike, patch masks and the STFT loss against independent references."""

import numpy as np
import pytest
import torch
from scipy import stats

from torch_brain.ssl import bits_per_spike, check_mask_ratio, multi_resolution_stft_loss, patch_mask, poisson_nll


def test_poisson_nll_full_is_minus_scipy_logpmf():
    rng = np.random.default_rng(0)
    rate = rng.uniform(0.05, 4.0, 50)
    k = rng.poisson(rate * 1.3)
    got = poisson_nll(torch.tensor(np.log(rate)), torch.tensor(k), full=True, reduction="none")
    np.testing.assert_allclose(got.numpy(), -stats.poisson.logpmf(k, rate), rtol=1e-10)
    partial = poisson_nll(torch.tensor(np.log(rate)), torch.tensor(k)).item()
    assert partial == pytest.approx(np.mean(rate - k * np.log(rate)), rel=1e-10)


def test_bits_per_spike_against_scipy_and_per_unit_null():
    rng = np.random.default_rng(1)
    units = np.repeat(np.arange(4), 30)
    true_rate = np.array([0.2, 1.0, 2.5, 0.5])[units] * rng.uniform(0.5, 1.5, units.size)
    k = rng.poisson(true_rate)
    pred = true_rate * 0.9
    null = np.array([k[units == u].mean() for u in range(4)])[units]
    ll_model = stats.poisson.logpmf(k, pred).sum()
    ll_null = np.where(null > 0, stats.poisson.logpmf(k, np.maximum(null, 1e-300)), 0.0).sum()
    expected = (ll_model - ll_null) / (k.sum() * np.log(2))
    got = bits_per_spike(torch.tensor(np.log(pred)), torch.tensor(k), torch.tensor(units)).item()
    assert got == pytest.approx(expected, rel=1e-9)
    # the null model itself scores 0 bits/spike
    assert bits_per_spike(torch.tensor(np.log(null)), torch.tensor(k), torch.tensor(units)).item() == pytest.approx(0, abs=1e-9)


def _numpy_stft_loss(x, y, sizes, hop_fraction=0.25, eps=1e-5):
    out = []
    for n in sizes:
        hop = max(1, int(n * hop_fraction))
        win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic Hann
        starts = range(0, x.shape[-1] - n + 1, hop)
        fx = np.stack([np.abs(np.fft.rfft(x[..., s:s + n] * win, axis=-1)) for s in starts], -1)
        fy = np.stack([np.abs(np.fft.rfft(y[..., s:s + n] * win, axis=-1)) for s in starts], -1)
        out.append(np.mean(np.abs(np.log(fx + eps) - np.log(fy + eps))))
    return float(np.mean(out))


def test_stft_loss_against_numpy():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(3, 2, 150)), rng.normal(size=(3, 2, 150))
    got = multi_resolution_stft_loss(torch.tensor(x), torch.tensor(y), (8, 16, 32, 256)).item()  # 256 > T: skipped
    assert got == pytest.approx(_numpy_stft_loss(x, y, (8, 16, 32)), rel=1e-9)
    assert multi_resolution_stft_loss(torch.tensor(x), torch.tensor(x)).item() == 0.0
    with pytest.raises(ValueError, match="longer than the window"):
        multi_resolution_stft_loss(torch.tensor(x), torch.tensor(y), (512,))


@pytest.mark.parametrize("kind", ["random", "block"])
def test_patch_mask_counts_and_blocks(kind):
    mask = patch_mask(64, 10, 0.4, kind, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (64, 10) and (mask.sum(1) == 4).all()
    if kind == "block":
        idx = mask.float().argmax(1)
        for row, start in zip(mask, idx):
            assert row[start:start + 4].all()
    else:
        assert len({tuple(r.tolist()) for r in mask}) > 5  # not always the same patches


@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.2, True, "0.3", None])
def test_mask_ratio_outside_open_interval_is_refused(ratio):
    with pytest.raises(ValueError, match=r"mask_ratio must be a number in the open interval \(0, 1\)"):
        check_mask_ratio(ratio)
