"""Optimiser factory and learning-rate curves against their closed-form formulas."""

import math

import pytest
import torch

from torch_brain.training.optim import build_optimizer, build_scheduler


def _params():
    return [torch.nn.Parameter(torch.zeros(3))]


def _curve(optimizer, config, steps):
    """LR seen by each of ``steps`` optimiser steps (the schedule is stepped after each)."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        config["scheduler"].step()
    return lrs


@pytest.mark.parametrize(
    "name, cls, extra",
    [
        ("adam", torch.optim.Adam, {}),
        ("adamw", torch.optim.AdamW, {"weight_decay": 0.05}),
        ("sgd", torch.optim.SGD, {"momentum": 0.8}),
    ],
)
def test_build_optimizer_types_and_options(name, cls, extra):
    opt = build_optimizer(_params(), name, lr=0.01, **extra)
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == 0.01
    for key, value in extra.items():
        assert opt.param_groups[0][key] == value


def test_sgd_defaults_to_momentum():
    assert build_optimizer(_params(), "sgd", lr=0.1).param_groups[0]["momentum"] == 0.9


def test_build_optimizer_accepts_module():
    opt = build_optimizer(torch.nn.Linear(2, 2), "adam", lr=1e-3)
    assert len(opt.param_groups[0]["params"]) == 2


def test_sparse_lamb_is_lazy_and_built():
    pytest.importorskip("torch_brain.optim")
    from torch_brain.optim import SparseLamb

    assert isinstance(build_optimizer(_params(), "sparse_lamb", lr=1e-3), SparseLamb)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: build_optimizer(_params(), "adamm"), r"Unknown optimizer 'adamm'.*adam, adamw, lamb, sgd, sparse_lamb.*Did you mean 'adam"),
        (lambda: build_optimizer(_params(), "adam", momentun=0.9), r"optimizer 'adam' has no option 'momentun'"),
        (lambda: build_optimizer(_params(), "sgd", momentun=0.9), r"Did you mean 'momentum'"),
        (lambda: build_scheduler(build_optimizer(_params()), "cosin", total_steps=5), r"Unknown schedule 'cosin'.*cosine, none, onecycle, plateau, step, warmup_cosine"),
        (lambda: build_scheduler(build_optimizer(_params()), "cosine"), r"needs total_steps > 0"),
        (lambda: build_scheduler(build_optimizer(_params()), "warmup_cosine", total_steps=10, warmup_steps=10), r"warmup_steps must be in \[0, total_steps=10\)"),
        (lambda: build_scheduler(build_optimizer(_params()), "step", gama=0.1, step_size=2), r"Did you mean 'gamma'"),
    ],
)
def test_bad_names_and_options(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_none_schedule():
    assert build_scheduler(build_optimizer(_params()), "none") is None


def test_cosine_curve():
    lr0, eta, total = 0.1, 0.01, 20
    opt = build_optimizer(_params(), "sgd", lr=lr0, momentum=0.0)
    lrs = _curve(opt, build_scheduler(opt, "cosine", total_steps=total, eta_min=eta), total)
    expected = [eta + (lr0 - eta) * (1 + math.cos(math.pi * t / total)) / 2 for t in range(total)]
    assert lrs == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_step_curve():
    lr0 = 1.0
    opt = build_optimizer(_params(), "sgd", lr=lr0, momentum=0.0)
    lrs = _curve(opt, build_scheduler(opt, "step", step_size=3, gamma=0.5), 10)
    assert lrs == pytest.approx([lr0 * 0.5 ** (t // 3) for t in range(10)])


@pytest.mark.parametrize("start, floor", [(0.0, 0.0), (0.1, 0.05)])
def test_warmup_cosine_curve(start, floor):
    lr0, total, warm = 0.004, 25, 5
    opt = build_optimizer(_params(), "adamw", lr=lr0)
    cfg = build_scheduler(
        opt, "warmup_cosine", total_steps=total, warmup_steps=warm,
        warmup_start_factor=start, final_factor=floor,
    )
    assert cfg["interval"] == "step"
    lrs = _curve(opt, cfg, total + 3)

    def ref(t):
        if t < warm:
            return lr0 * (start + (1 - start) * t / warm)
        p = min(1.0, (t - warm) / (total - warm))
        return lr0 * (floor + (1 - floor) * (1 + math.cos(math.pi * p)) / 2)

    assert lrs == pytest.approx([ref(t) for t in range(total + 3)], rel=1e-9, abs=1e-15)
    assert max(lrs) == pytest.approx(lr0) and lrs[-1] == pytest.approx(lr0 * floor, abs=1e-15)


def test_warmup_fraction():
    opt = build_optimizer(_params(), "adam", lr=1.0)
    lrs = _curve(opt, build_scheduler(opt, "warmup_cosine", total_steps=20, warmup_fraction=0.25), 6)
    assert lrs[:6] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_onecycle_curve():
    peak, total, pct, div, fdiv = 0.5, 40, 0.25, 10.0, 100.0
    opt = build_optimizer(_params(), "sgd", lr=0.1, momentum=0.9)
    cfg = build_scheduler(opt, "onecycle", total_steps=total, max_lr=peak, pct_start=pct,
                          div_factor=div, final_div_factor=fdiv)
    lrs = _curve(opt, cfg, total)
    initial, final = peak / div, peak / div / fdiv
    up_end = pct * total - 1  # torch's phase boundaries (float step indices)
    down_end = total - 1

    def cos_anneal(a, b, p):
        return b + (a - b) * (1 + math.cos(math.pi * p)) / 2

    def ref(t):
        if t <= up_end:
            return cos_anneal(initial, peak, t / up_end)
        return cos_anneal(peak, final, (t - up_end) / (down_end - up_end))

    assert lrs == pytest.approx([ref(t) for t in range(total)], rel=1e-9)


def test_plateau_config():
    opt = build_optimizer(_params(), "adam", lr=1.0)
    cfg = build_scheduler(opt, "plateau", factor=0.5, patience=1)
    assert cfg["monitor"] == "average_val_metric" and cfg["interval"] == "epoch"
    sched = cfg["scheduler"]
    lrs = []
    for metric in [0.1, 0.2, 0.2, 0.2, 0.2, 0.3]:  # mode max: improvement resets patience
        sched.step(metric)
        lrs.append(opt.param_groups[0]["lr"])
    # mode max, patience 1: a repeated 0.2 is a bad epoch; the 2nd bad one (> patience) halves
    # the lr and resets the count; 0.3 is an improvement.
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.5, 0.5])


def test_schedule_state_roundtrip():
    opt = build_optimizer(_params(), "adam", lr=1.0)
    cfg = build_scheduler(opt, "warmup_cosine", total_steps=10, warmup_steps=2)
    _curve(opt, cfg, 4)
    state = cfg["scheduler"].state_dict()
    opt2 = build_optimizer(_params(), "adam", lr=1.0)
    cfg2 = build_scheduler(opt2, "warmup_cosine", total_steps=10, warmup_steps=2)
    cfg2["scheduler"].load_state_dict(state)
    assert cfg2["scheduler"].get_last_lr() == cfg["scheduler"].get_last_lr()
