"""SparseLamb against a plain numpy LAMB; rows without gradient stay untouched."""

import numpy as np
import pytest
import torch

from torch_brain.optim import SparseLamb


def _numpy_lamb(w, grads, lr, b1, b2, eps, wd, cap=10.0):
    w = w.astype(np.float64).copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        u = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps) + wd * w
        wn, un = np.linalg.norm(w), np.linalg.norm(u)
        r = min(wn / un, cap) if wn > 0 and un > 0 else 1.0
        w = w - lr * r * u
    return w


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_dense_matches_numpy_reference(wd):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 3))
    grads = [rng.normal(size=(4, 3)) for _ in range(5)]
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = SparseLamb([p], lr=0.01, betas=(0.9, 0.99), eps=1e-6, weight_decay=wd)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), _numpy_lamb(w0, grads, 0.01, 0.9, 0.99, 1e-6, wd), rtol=1e-10)


def test_rows_without_gradient_are_untouched():
    rng = np.random.default_rng(1)
    table = torch.nn.Parameter(torch.tensor(rng.normal(size=(5, 3))))
    opt = SparseLamb([table], lr=0.05, weight_decay=0.5)
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
    # dense mode decays every row
    dense = torch.nn.Parameter(w0.clone())
    dense.grad = g1.clone()
    SparseLamb([dense], lr=0.05, weight_decay=0.5, sparse=False).step()
    assert not torch.equal(dense.detach()[1], w0[1])


def test_zero_grad_vector_and_none_grad_skipped():
    bias = torch.nn.Parameter(torch.ones(3))
    other = torch.nn.Parameter(torch.ones(2))
    opt = SparseLamb([bias, other], lr=0.1, weight_decay=1.0)
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
    ],
)
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SparseLamb([torch.nn.Parameter(torch.ones(1))], **kwargs)
