"""Weighted losses against hand-computed / naive references."""

import math

import numpy as np
import pytest
import torch

from torch_brain.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss


def test_mse_weighted_mean_hand_value():
    pred = torch.tensor([[1.0, 3.0], [0.0, 2.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    # per-sample: (1+9)/2 = 5, (0+4)/2 = 2 ; weights 2, 1 -> (10 + 2) / 3 = 4
    assert MSELoss()(pred, target, torch.tensor([2.0, 1.0])).item() == pytest.approx(4.0)
    assert MSELoss()(pred, target).item() == pytest.approx(3.5)


def test_cross_entropy_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4))
    labels = rng.integers(0, 4, size=5)
    w = rng.uniform(0.1, 2.0, size=5)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    ref = float((-(logp[np.arange(5), labels]) * w).sum() / w.sum())
    got = CrossEntropyLoss()(torch.tensor(logits), torch.tensor(labels), torch.tensor(w)).item()
    assert got == pytest.approx(ref, rel=1e-10)


def test_bce_matches_numpy():
    x = np.array([[0.5, -1.0], [2.0, 0.0]])
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    p = 1 / (1 + np.exp(-x))
    per = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(1)
    w = np.array([1.0, 0.5])
    ref = float((per * w).sum() / w.sum())
    assert BCEWithLogitsLoss()(torch.tensor(x), torch.tensor(y), torch.tensor(w)).item() == pytest.approx(ref)


def test_zero_weights_give_zero_not_nan():
    pred = torch.ones(3, 2, requires_grad=True)
    loss = MSELoss()(pred, torch.zeros(3, 2), torch.zeros(3))
    assert loss.item() == 0.0 and not math.isnan(loss.item())
    loss.backward()
    assert torch.all(pred.grad == 0)


@pytest.mark.parametrize(
    "loss,pred,target,weights,exc,match",
    [
        (MSELoss(), torch.zeros(3, 2), torch.zeros(3, 3), None, ValueError, "same shape"),
        (MSELoss(), torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(2), ValueError, "one value per sample"),
        (CrossEntropyLoss(), torch.zeros(3, 4), torch.zeros(3), None, TypeError, "integer class indices"),
        (CrossEntropyLoss(), torch.zeros(3, 4), torch.zeros(2, dtype=torch.long), None, ValueError,
         "same number of samples"),
        (BCEWithLogitsLoss(), torch.zeros(3, 2), torch.zeros(3), None, ValueError, "same shape"),
    ],
)
def test_bad_inputs(loss, pred, target, weights, exc, match):
    with pytest.raises(exc, match=match):
        loss(pred, target, weights)
