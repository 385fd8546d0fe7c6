"""Dropout with the cheap CPU mask: rate, scale, gradient, modes, reproducibility."""

import math

import pytest
import torch

from torch_brain.nn import Dropout
from torch_brain.nn.dropout import dropout


@pytest.mark.parametrize("p", [0.1, 0.2, 0.4, 0.9])
def test_drop_rate_and_scale(p):
    torch.manual_seed(0)
    x = torch.rand(1001, 999) + 0.5  # no zeros: a zero output means dropped
    y = dropout(x, p)
    kept = y != 0
    n = kept.numel()
    # binomial: within 5 standard deviations of 1 - p, on even and odd positions alike (the two
    # 16-bit halves of each 32-bit draw)
    for part in (kept.flatten()[0::2], kept.flatten()[1::2]):
        rate = part.float().mean().item()
        assert abs(rate - (1 - p)) < 5 * math.sqrt(p * (1 - p) / part.numel()) + 2**-15
    p_used = round(p * 2**15) / 2**15
    torch.testing.assert_close(y[kept], x[kept] / (1 - p_used), rtol=1e-6, atol=0)
    assert n == x.numel()


def test_gradient_is_mask_times_scale():
    torch.manual_seed(1)
    x = (torch.rand(300, 7) + 0.5).requires_grad_()
    g = torch.randn(300, 7)
    y = dropout(x, 0.3)
    y.backward(g)
    keep = (y != 0).float()
    scale = 1 / (1 - round(0.3 * 2**15) / 2**15)
    torch.testing.assert_close(x.grad, g * keep * scale)


def test_modes_and_edge_probabilities():
    x = torch.randn(50, 4)
    layer = Dropout(0.5).eval()
    assert layer(x) is x
    assert Dropout(0.0).train()(x) is x
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
    assert dropout(x, 1e-6) is x  # rounds to a drop probability of 0
    with pytest.raises(ValueError, match=r"`p` must be in \[0, 1\], got 1.5"):
        Dropout(1.5)


def test_same_seed_same_mask():
    x = torch.randn(64, 64)
    torch.manual_seed(7)
    a = dropout(x, 0.25)
    torch.manual_seed(7)
    b = dropout(x, 0.25)
    assert torch.equal(a, b)
    assert not torch.equal(a, dropout(x, 0.25))
