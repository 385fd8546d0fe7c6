"""Losses and expected-value heads given bfloat16 outputs (``bf16-mixed``) compute in float32:
checked against a float64 computation on the same (bf16-valued) predictions and the unrounded
float32 targets / centres."""

import pytest
import torch

from torch_brain.nn import loss as L_
from torch_brain.nn.expected_value import BinsHead, CodebookHead, ExpectedValueLoss, expected_value


def _bf16(x):
    return x.to(torch.bfloat16)


def test_mse_keeps_float32_targets():
    g = torch.Generator().manual_seed(0)
    pred = _bf16(100 + torch.randn(64, 2, generator=g))
    target = 100 + torch.randn(64, 2, generator=g)  # bf16 steps are 0.5 near 100: rounding would show
    w = torch.rand(64, generator=g)
    got = L_.MSELoss()(pred, target, w)
    per = ((pred.double() - target.double()) ** 2).mean(1)
    ref = (per * w.double()).sum() / w.double().sum()
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(ref), rel=1e-5)


def test_bce_and_ce_in_float32():
    g = torch.Generator().manual_seed(1)
    logits = _bf16(torch.randn(32, 3, generator=g))
    labels = (torch.rand(32, 3, generator=g) > 0.5).float()
    got = L_.BCEWithLogitsLoss()(logits, labels)
    x = logits.double()
    ref = (torch.clamp(x, min=0) - x * labels.double() + torch.log1p(torch.exp(-x.abs()))).mean()
    assert got.dtype == torch.float32 and float(got) == pytest.approx(float(ref), rel=1e-5)
    classes = torch.randint(0, 3, (32,), generator=g)
    got = L_.CrossEntropyLoss()(logits, classes)
    ref = -(x.log_softmax(1)[torch.arange(32), classes]).mean()
    assert got.dtype == torch.float32 and float(got) == pytest.approx(float(ref), rel=1e-5)


def test_expected_value_uses_float32_centres():
    g = torch.Generator().manual_seed(2)
    logits = _bf16(torch.randn(16, 2, 8, generator=g))
    centres = 1000 + 0.01 * torch.arange(16.0).reshape(2, 8)  # bf16 would round them all to 1000
    got = expected_value(logits, centres)
    ref = (logits.double().softmax(-1) * centres.double()).sum(-1)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=0, atol=1e-3)  # bf16 centres: off by up to 0.15
    book = 1000 + 0.01 * torch.arange(16.0).reshape(8, 2)
    flat = _bf16(torch.randn(16, 8, generator=g))
    torch.testing.assert_close(expected_value(flat, book).double(), flat.double().softmax(-1) @ book.double(),
                               rtol=0, atol=1e-3)  # bf16 centres: off by up to 0.15


@pytest.mark.parametrize("head_cls", [BinsHead, CodebookHead])
def test_expected_value_loss_under_autocast_matches_float64(head_cls):
    torch.manual_seed(3)
    head = head_cls(8, 2, num_bins=6)
    targets = 50 + torch.randn(200, 2)
    head.fit(targets)
    loss_fn = ExpectedValueLoss(head, mse_weight=1.0, ce_weight=0.1)
    x, y = torch.randn(40, 8), 50 + torch.randn(40, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(x)
        got = loss_fn(logits, y)
    assert logits.dtype == torch.bfloat16  # the head really ran in bf16
    assert got.dtype == torch.float32
    # reference: the same bf16 logits, everything after them in float64
    head64 = head_cls(8, 2, num_bins=6).double()
    head64.load_state_dict(head.state_dict())
    ref = ExpectedValueLoss(head64, mse_weight=1.0, ce_weight=0.1)(logits.double(), y.double())
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-4)
