"""Expected-value readouts (bins, codebook), their soft targets, losses and sampled loss positions,
checked against hand computations, scipy and numpy references."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from torch_brain.nn import MSELoss
from torch_brain.nn.expected_value import (
    BinsHead,
    CodebookHead,
    ExpectedValueLoss,
    SampledLoss,
    bin_edges,
    expected_value,
    hl_gauss_target,
    kmeans,
    quantile_centres,
    two_hot_target,
)


def test_expected_value_of_a_one_hot_softmax_is_the_bin_centre():
    centres = torch.tensor([[-1.0, 0.0, 2.0, 5.0], [10.0, 20.0, 30.0, 40.0]])
    logits = torch.full((1, 2, 4), -1e4)
    logits[0, 0, 2] = logits[0, 1, 3] = 0.0
    assert expected_value(logits, centres).tolist() == [[2.0, 40.0]]
    codebook = torch.tensor([[1.0, 2.0], [3.0, -4.0], [0.5, 0.5]])
    one_hot = torch.tensor([[-1e4, 0.0, -1e4]])
    assert expected_value(one_hot, codebook).tolist() == [[3.0, -4.0]]
    # uniform logits: the plain mean of the centres
    assert torch.allclose(expected_value(torch.zeros(1, 2, 4), centres), centres.mean(1, keepdim=True).T)


def test_quantile_centres_match_numpy_and_uniform_bins_split_the_range():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 2)) * [1.0, 5.0]
    got = quantile_centres(torch.tensor(x), 8)
    want = np.quantile(x, (np.arange(8) + 0.5) / 8, axis=0).T
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    uni = quantile_centres(torch.tensor([[0.0], [1.0], [10.0]]), 5, strategy="uniform")
    np.testing.assert_allclose(uni.numpy(), [[1.0, 3.0, 5.0, 7.0, 9.0]])
    np.testing.assert_allclose(bin_edges(uni).numpy(), [[0.0, 2.0, 4.0, 6.0, 8.0, 10.0]])


def test_hl_gauss_targets_sum_to_one_and_their_mean_is_the_target():
    centres = torch.arange(0.5, 20.0, 1.0)[None, :]  # uniform bins of width 1 on [0, 20]
    y = torch.tensor([[4.2], [10.0], [13.77]])
    soft = hl_gauss_target(y, centres, sigma_ratio=0.75)
    np.testing.assert_allclose(soft.sum(-1).numpy(), 1.0, rtol=1e-6)
    # independent reference: normal CDF differences over the edges (scipy), renormalised
    edges = np.arange(0.0, 21.0, 1.0)
    for i, t in enumerate(y[:, 0].tolist()):
        mass = np.diff(norm.cdf(edges, loc=t, scale=0.75))
        np.testing.assert_allclose(soft[i, 0].numpy(), mass / mass.sum(), atol=1e-6)
    means = (soft * centres).sum(-1)
    np.testing.assert_allclose(means.numpy(), y.numpy(), atol=1e-3)  # away from the edges


def test_two_hot_mean_is_exactly_the_target_and_clamps_outside():
    centres = torch.tensor([[0.0, 1.0, 3.0, 7.0]])
    y = torch.tensor([[0.25], [2.0], [6.0], [9.0], [-3.0]])
    soft = two_hot_target(y, centres)
    np.testing.assert_allclose(soft.sum(-1).numpy(), 1.0)
    np.testing.assert_allclose((soft * centres).sum(-1).numpy()[:3, 0], [0.25, 2.0, 6.0], atol=1e-6)
    assert soft[3, 0].tolist() == [0.0, 0.0, 0.0, 1.0] and soft[4, 0].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_kmeans_finds_hand_made_clusters():
    rng = np.random.default_rng(1)
    means = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([m + 0.1 * rng.normal(size=(50, 2)) for m in means])
    got = kmeans(torch.tensor(x), 3, seed=0).numpy()
    got = got[np.lexsort((got[:, 1], got[:, 0]))]
    want = np.array([x[i * 50:(i + 1) * 50].mean(0) for i in range(3)])
    want = want[np.lexsort((want[:, 1], want[:, 0]))]
    np.testing.assert_allclose(got, want, atol=1e-5)
    state = torch.get_rng_state()
    kmeans(torch.tensor(x), 3, seed=5)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is untouched


def test_loss_is_weighted_mse_of_expected_value_plus_ce_by_hand():
    head = BinsHead(4, 1, num_bins=3, soft_target="two_hot")
    head.centres.copy_(torch.tensor([[0.0, 1.0, 2.0]]))
    logits = torch.tensor([[0.0, 1.0, 2.0], [2.0, 0.0, 0.0]])
    target = torch.tensor([[1.5], [0.0]])
    weights = torch.tensor([1.0, 3.0])
    loss = ExpectedValueLoss(head, mse_weight=1.0, ce_weight=0.5)(logits, target, weights)
    p = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True)
    ev = p @ np.array([0.0, 1.0, 2.0])
    soft = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    ce = -(soft * np.log(p)).sum(1)
    per = (ev - target.numpy()[:, 0]) ** 2 + 0.5 * ce
    assert float(loss) == pytest.approx(float((per * [1, 3]).sum() / 4), rel=1e-6)


def test_sampled_loss_is_unbiased():
    torch.manual_seed(0)
    pred, target = torch.randn(20, 2), torch.randn(20, 2)
    weights = torch.rand(20) * 3
    full = float(MSELoss()(pred, target, weights))
    sampled = SampledLoss(MSELoss(), 5)
    draws = [float(sampled(pred, target, weights)) for _ in range(20000)]
    assert np.mean(draws) == pytest.approx(full, rel=0.02)
    assert float(SampledLoss(MSELoss(), 50)(pred, target, weights)) == pytest.approx(full)  # k >= n: exact


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: BinsHead(4, 1, num_bins=1), ValueError, "num_bins must be an int >= 2, but got 1"),
        (lambda: CodebookHead(4, 2, num_bins=0), ValueError, "num_bins must be an int >= 2, but got 0"),
        (lambda: BinsHead(4, 1).fit(np.array([[1.0], [np.nan], [np.inf], [2.0]]), task="vel"), ValueError,
         "vel: 2 of 4 training targets are NaN or inf"),
        (lambda: BinsHead(4, 2, num_bins=4).fit(np.c_[np.arange(10.0), np.full(10, 3.0)]), ValueError,
         "output dimension 1: every training target is 3.0"),
        (lambda: CodebookHead(4, 1, num_bins=4).fit(np.full((10, 1), 2.0)), ValueError, "nothing to cluster"),
        (lambda: BinsHead(4, 1).predict(torch.zeros(1, 64)), RuntimeError, "has no vocabulary yet: call fit"),
        (lambda: SampledLoss(MSELoss(), 0), ValueError, "sample_k must be a positive int"),
        (lambda: BinsHead(4, 1, strategy="log"), ValueError, "strategy must be 'quantile' or 'uniform', but got 'log'"),
        (lambda: ExpectedValueLoss(BinsHead(4, 1), mse_weight=0, ce_weight=0), ValueError, "both 0"),
    ],
)
def test_bad_input(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_a_bins_head_fits_with_its_own_strategy():
    head = BinsHead(4, 1, num_bins=5, strategy="uniform")
    head.fit(np.array([[0.0], [1.0], [10.0]]))
    np.testing.assert_allclose(head.centres.detach().numpy(), [[1.0, 3.0, 5.0, 7.0, 9.0]])


def test_entropy_of_the_predicted_distribution_by_hand():
    bins = BinsHead(4, 2, num_bins=4)
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, float(np.log(3.0)), 0.0]])  # dim 1: p = (1, 1, 3, 1) / 6
    p1 = np.array([1, 1, 3, 1]) / 6
    want = (np.log(4) - (p1 * np.log(p1)).sum()) / 2  # averaged over the 2 output dimensions
    assert float(bins.entropy(logits)) == pytest.approx(want, rel=1e-6)
    codebook = CodebookHead(4, 2, num_bins=2)
    p = np.array([0.25, 0.75])
    assert float(codebook.entropy(torch.tensor([[0.0, float(np.log(3.0))]]))) == pytest.approx(-(p * np.log(p)).sum())
