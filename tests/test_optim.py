"""SparseLamb against hand-computed LAMB steps and a plain numpy LAMB; sparse rows; training."""

import math

import numpy as np
import pytest
import torch

from torch_brain.optim import SparseLamb


def _numpy_lamb(w, grads, lr, b1, b2, eps, wd, clamp=10.0, debias=False, adam=False):
    """LAMB as published (You et al. 2019): the trust ratio clamps the weight norm."""
    w = w.astype(np.float64).copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mh, vh = (m / (1 - b1**t), v / (1 - b2**t)) if debias else (m, v)
        u = mh / (np.sqrt(vh) + eps) + wd * w
        wn, un = min(np.linalg.norm(w), clamp), np.linalg.norm(u)
        r = wn / un if wn > 0 and un > 0 and not adam else 1.0
        w = w - lr * r * u
    return w


def _one_step(w, g, **kwargs):
    p = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))
    p.grad = torch.tensor(g, dtype=torch.float64)
    SparseLamb([p], **kwargs).step()
    return p.detach().numpy()


# By hand, first step, betas (0.9, 0.999), g = (1, -2): m = (0.1, -0.2), v = (0.001, 0.004), so
# without bias correction u = m / sqrt(v) = sqrt(10) * (1, -1), ||u|| = sqrt(20), and the step is
# lr * min(||w||, 10) / sqrt(20) * sqrt(10) * (1, -1) = lr * min(||w||, 10) / sqrt(2) * (1, -1).
@pytest.mark.parametrize(
    "w, expected",
    [
        ((3.0, 4.0), (3.0 - 0.5 / math.sqrt(2), 4.0 + 0.5 / math.sqrt(2))),  # ||w|| = 5: step 0.1 * 5
        ((30.0, 40.0), (30.0 - 1.0 / math.sqrt(2), 40.0 + 1.0 / math.sqrt(2))),  # ||w|| = 50, clamped to 10
        ((0.0, 0.0), (-0.1 * math.sqrt(10), 0.1 * math.sqrt(10))),  # ||w|| = 0: ratio 1, step lr * u
    ],
)
def test_first_step_by_hand(w, expected):
    got = _one_step(w, (1.0, -2.0), lr=0.1, eps=1e-12)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_clamp_value_adam_and_debias_by_hand():
    # clamp_value 100 leaves ||w|| = 50 unclamped: step 0.1 * 50 / sqrt(2) per coordinate
    np.testing.assert_allclose(_one_step((30.0, 40.0), (1.0, -2.0), lr=0.1, eps=1e-12, clamp_value=100.0),
                               (30.0 - 5 / math.sqrt(2), 40.0 + 5 / math.sqrt(2)), rtol=1e-9)
    # adam=True: no trust ratio, step lr * u = 0.1 * sqrt(10) per coordinate
    np.testing.assert_allclose(_one_step((3.0, 4.0), (1.0, -2.0), lr=0.1, eps=1e-12, adam=True),
                               (3.0 - 0.1 * math.sqrt(10), 4.0 + 0.1 * math.sqrt(10)), rtol=1e-9)
    # debias=True with adam=True: m' = g, v' = g^2, u = sign(g) = (1, -1); + weight decay 0.5 * w
    np.testing.assert_allclose(
        _one_step((3.0, 4.0), (1.0, -2.0), lr=0.1, eps=1e-12, adam=True, debias=True, weight_decay=0.5),
        (3.0 - 0.1 * (1 + 1.5), 4.0 - 0.1 * (-1 + 2.0)), rtol=1e-9)


@pytest.mark.parametrize("wd", [0.0, 0.1])
@pytest.mark.parametrize("debias", [False, True])
@pytest.mark.parametrize("scale", [0.1, 10.0])  # ||w|| below and above clamp_value
def test_dense_matches_numpy_reference(wd, debias, scale):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 3)) * scale
    grads = [rng.normal(size=(4, 3)) for _ in range(5)]
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = SparseLamb([p], lr=0.01, betas=(0.9, 0.99), eps=1e-6, weight_decay=wd, debias=debias)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    ref = _numpy_lamb(w0, grads, 0.01, 0.9, 0.99, 1e-6, wd, debias=debias)
    np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-10)


def test_step_norm_does_not_depend_on_gradient_scale():
    # LAMB's step is lr * min(||w||, clamp_value) along the update's direction: a gradient a
    # million times smaller (well below eps) must not shrink it
    rng = np.random.default_rng(2)
    w0, g = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    steps = [np.linalg.norm(_one_step(w0, g * s, lr=0.01) - w0) for s in (1.0, 1e-6, 1e-9)]
    np.testing.assert_allclose(steps, 0.01 * np.linalg.norm(w0), rtol=1e-6)


def test_rows_without_gradient_are_untouched_when_sparse():
    rng = np.random.default_rng(1)
    table = torch.nn.Parameter(torch.tensor(rng.normal(size=(5, 3))))
    opt = SparseLamb([table], lr=0.05, weight_decay=0.5, sparse=True)
    w0 = table.detach().clone()
    g1 = torch.tensor(rng.normal(size=(5, 3)))
    g1[[1, 3]] = 0.0  # units 1 and 3 absent from the batch
    table.grad = g1
    opt.step()
    assert torch.equal(table.detach()[[1, 3]], w0[[1, 3]])
    state = opt.state[table]
    assert torch.all(state["exp_avg"][[1, 3]] == 0) and torch.all(state["exp_avg_sq"][[1, 3]] == 0)
    # the active rows move exactly like LAMB on those rows alone (norms over active rows)
    active = [0, 2, 4]
    ref = _numpy_lamb(w0[active].numpy(), [g1[active].numpy()], 0.05, 0.9, 0.999, 1e-6, 0.5)
    np.testing.assert_allclose(table.detach()[active].numpy(), ref, rtol=1e-10)
    # the default (dense LAMB) decays every row
    dense = torch.nn.Parameter(w0.clone())
    dense.grad = g1.clone()
    SparseLamb([dense], lr=0.05, weight_decay=0.5).step()
    assert not torch.equal(dense.detach()[1], w0[1])
    np.testing.assert_allclose(dense.detach().numpy(), _numpy_lamb(w0.numpy(), [g1.numpy()], 0.05, 0.9, 0.999,
                                                                   1e-6, 0.5), rtol=1e-10)


def test_zero_grad_vector_and_none_grad_skipped_when_sparse():
    bias = torch.nn.Parameter(torch.ones(3))
    other = torch.nn.Parameter(torch.ones(2))
    opt = SparseLamb([bias, other], lr=0.1, weight_decay=1.0, sparse=True)
    bias.grad = torch.zeros(3)
    opt.step()
    assert torch.equal(bias.detach(), torch.ones(3)) and torch.equal(other.detach(), torch.ones(2))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lr=-1.0), "lr must be >= 0"),
        (dict(betas=(1.0, 0.9)), r"betas must be in \[0, 1\)"),
        (dict(eps=0.0), "eps must be > 0"),
        (dict(weight_decay=-0.1), "weight_decay must be >= 0"),
        (dict(clamp_value=0.0), "clamp_value must be > 0"),
    ],
)
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SparseLamb([torch.nn.Parameter(torch.ones(1))], **kwargs)
