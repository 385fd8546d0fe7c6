"""Rotary attention against a naive float64 softmax(QK^T)V with explicit masks."""

import math

import numpy as np
import pytest
import torch

from torch_brain.nn import RotaryCrossAttention, RotarySelfAttention, RotaryTimeEmbedding, apply_rotary

T_MIN, T_MAX = 1e-4, 4.0


def _layer_norm(x, ln):
    w, b = ln.weight.detach().double().numpy(), ln.bias.detach().double().numpy()
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + ln.eps) * w + b


def _rotate(x, t, rotate_dim, sign=1.0):
    """Rotate features (j, j + half) of x (N, Dh) as complex numbers by exp(i * omega_j * t)."""
    half = rotate_dim // 2
    periods = T_MIN * (T_MAX / T_MIN) ** (np.arange(half) / max(half - 1, 1))
    omega = 2 * math.pi / periods
    z = (x[:, :half] + 1j * x[:, half:rotate_dim]) * np.exp(1j * sign * np.outer(t, omega))
    return np.concatenate([z.real, z.imag, x[:, rotate_dim:]], axis=1)


def _naive_attention(mod, x, ctx, tq, tk, mask, heads, dh, rotate_value, self_attn=False):
    """Float64 reference for one sample: x (Nq, D), ctx (Nk, D), mask (Nk,) bool."""
    rot = dh // 2 // 2 * 2
    if self_attn:
        w = mod.to_qkv.weight.detach().double().numpy()
        h = _layer_norm(x, mod.norm)
        q, k, v = np.split(h @ w.T, 3, axis=1)
    else:
        wq = mod.to_q.weight.detach().double().numpy()
        wkv = mod.to_kv.weight.detach().double().numpy()
        q = _layer_norm(x, mod.norm) @ wq.T
        k, v = np.split(_layer_norm(ctx, mod.norm_context) @ wkv.T, 2, axis=1)
    outs = []
    for hh in range(heads):
        sl = slice(hh * dh, (hh + 1) * dh)
        qh, kh, vh = _rotate(q[:, sl], tq, rot), _rotate(k[:, sl], tk, rot), v[:, sl]
        if rotate_value:
            vh = _rotate(vh, tk, rot)
        scores = qh @ kh.T / math.sqrt(dh)
        scores = np.where(mask[None, :], scores, -np.inf)
        p = np.exp(scores - scores.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        oh = p @ vh
        if rotate_value:
            oh = _rotate(oh, tq, rot, sign=-1.0)
        outs.append(oh)
    wo = mod.to_out.weight.detach().double().numpy()
    bo = mod.to_out.bias.detach().double().numpy()
    return np.concatenate(outs, axis=1) @ wo.T + bo


@pytest.mark.parametrize("heads,dh,rotate_value", [(1, 8, True), (2, 8, False), (3, 6, True)])
def test_cross_attention_matches_naive(heads, dh, rotate_value):
    torch.manual_seed(0)
    b, nq, nk, d = 3, 5, 11, 12
    mod = RotaryCrossAttention(dim=d, heads=heads, dim_head=dh, rotate_value=rotate_value)
    with torch.no_grad():  # non-trivial norms
        for ln in (mod.norm, mod.norm_context):
            ln.weight.normal_(1.0, 0.2)
            ln.bias.normal_(0.0, 0.2)
    rope = RotaryTimeEmbedding(dh // 2 // 2 * 2, t_min=T_MIN, t_max=T_MAX)
    x, ctx = torch.randn(b, nq, d), torch.randn(b, nk, d)
    tq, tk = torch.rand(b, nq), torch.rand(b, nk)
    mask = torch.rand(b, nk) > 0.4
    mask[:, 0] = True
    out = mod(x, ctx, rope(tq), rope(tk), mask)
    for i in range(b):
        ref = _naive_attention(mod, x[i].double().numpy(), ctx[i].double().numpy(), tq[i].double().numpy(),
                               tk[i].double().numpy(), mask[i].numpy(), heads, dh, rotate_value)
        np.testing.assert_allclose(out[i].detach().numpy(), ref, atol=1e-5, rtol=0)


def test_self_attention_matches_naive():
    torch.manual_seed(1)
    b, n, d, heads, dh = 2, 7, 16, 4, 8
    mod = RotarySelfAttention(dim=d, heads=heads, dim_head=dh, rotate_value=True)
    rope = RotaryTimeEmbedding(dh // 2, t_min=T_MIN, t_max=T_MAX)
    x, t = torch.randn(b, n, d), torch.rand(b, n)
    out = mod(x, rope(t))
    for i in range(b):
        ref = _naive_attention(mod, x[i].double().numpy(), None, t[i].double().numpy(), t[i].double().numpy(),
                               np.ones(n, bool), heads, dh, True, self_attn=True)
        np.testing.assert_allclose(out[i].detach().numpy(), ref, atol=1e-5, rtol=0)


def test_rotary_scores_depend_on_time_difference_only():
    rope = RotaryTimeEmbedding(8, t_min=0.01, t_max=2.0)
    q, k = torch.randn(1, 1, 1, 8).double(), torch.randn(1, 1, 1, 8).double()
    scores = []
    for shift in (0.0, 0.3, 0.77):
        cq, sq = rope(torch.tensor([[0.5 + shift]], dtype=torch.float64))
        ck, sk = rope(torch.tensor([[0.2 + shift]], dtype=torch.float64))
        scores.append(float((apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum()))
    assert scores[1] == pytest.approx(scores[0], abs=1e-5) and scores[2] == pytest.approx(scores[0], abs=1e-5)


def _padded_inputs(seed=0):
    torch.manual_seed(seed)
    d = 8
    mod = RotaryCrossAttention(dim=d, heads=2, dim_head=4, rotate_value=True)
    rope = RotaryTimeEmbedding(2)
    x, tq = torch.randn(1, 3, d), torch.rand(1, 3)
    ctx, tk = torch.randn(1, 6, d), torch.rand(1, 6)
    return mod, rope, x, tq, ctx, tk


def test_padding_does_not_change_output_and_gets_zero_grad():
    mod, rope, x, tq, ctx, tk = _padded_inputs()
    ref = mod(x, ctx, rope(tq), rope(tk), torch.ones(1, 6, dtype=torch.bool))
    # append 10 padding tokens with arbitrary content
    ctx_pad = torch.cat([ctx, 100 * torch.randn(1, 10, 8)], dim=1).requires_grad_(True)
    tk_pad = torch.cat([tk, torch.rand(1, 10)], dim=1)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[:, :6] = True
    out = mod(x, ctx_pad, rope(tq), rope(tk_pad), mask)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    out.sum().backward()
    assert torch.all(ctx_pad.grad[:, 6:] == 0)
    assert torch.any(ctx_pad.grad[:, :6] != 0)


def test_sample_without_keys_gives_zeros_not_nan():
    mod, rope, x, tq, ctx, tk = _padded_inputs()
    x2, tq2 = x.repeat(2, 1, 1), tq.repeat(2, 1)
    ctx2, tk2 = ctx.repeat(2, 1, 1).requires_grad_(True), tk.repeat(2, 1)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1] = False
    out = mod(x2, ctx2, rope(tq2), rope(tk2), mask)
    assert torch.isfinite(out).all()
    bias = mod.to_out.bias.detach()
    torch.testing.assert_close(out[1], bias.expand(3, -1))
    out.sum().backward()
    assert torch.all(ctx2.grad[1] == 0)


@pytest.mark.parametrize(
    "mask,exc,match",
    [
        (torch.ones(1, 6), TypeError, "must be a bool tensor"),
        (torch.ones(1, 5, dtype=torch.bool), ValueError, r"must have shape \(B, N_keys\)"),
    ],
)
def test_bad_mask(mask, exc, match):
    mod, rope, x, tq, ctx, tk = _padded_inputs()
    with pytest.raises(exc, match=match):
        mod(x, ctx, rope(tq), rope(tk), mask)


@pytest.mark.parametrize(
    "kwargs,match",
    [(dict(rotate_dim=3), "rotate_dim must be an even int"), (dict(rotate_dim=4, t_min=2.0, t_max=1.0), "t_min < t_max"),
     (dict(rotate_dim=4, periods=[1.0]), r"periods must be 2 positive numbers.*\[1\.0\]"),
     (dict(rotate_dim=4, periods=[1.0, 0.0]), "periods must be 2 positive numbers")],
)
def test_rotary_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RotaryTimeEmbedding(**kwargs)


def test_rotary_explicit_periods_replace_the_log_spaced_ones():
    rope = RotaryTimeEmbedding(4, t_min=0.01, t_max=2.0, periods=[0.3, 0.7])
    np.testing.assert_allclose(rope.omega.numpy(), 2 * math.pi / np.array([0.3, 0.7]), rtol=1e-15)
    cos, sin = rope(torch.tensor([[0.15]], dtype=torch.float64))
    np.testing.assert_allclose(cos.numpy().ravel(), np.cos(2 * math.pi * 0.15 / np.array([0.3, 0.7])), atol=1e-7)


def test_context_table_with_index_equals_dense_context():
    torch.manual_seed(2)
    mod = RotaryCrossAttention(dim=8, heads=2, dim_head=4, rotate_value=True)
    rope = RotaryTimeEmbedding(2)
    table = torch.randn(5, 8, requires_grad=True)
    index = torch.randint(0, 5, (3, 9))
    x, tq, tk = torch.randn(3, 4, 8), torch.rand(3, 4), torch.rand(3, 9)
    mask = torch.rand(3, 9) > 0.3
    mask[:, 0] = True
    dense_ctx = table.detach()[index].requires_grad_(True)
    a = mod(x, table, rope(tq), rope(tk), mask, context_index=index)
    b = mod(x, dense_ctx, rope(tq), rope(tk), mask)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    a.sum().backward()
    b.sum().backward()
    expected = torch.zeros(5, 8).index_add_(0, index.reshape(-1), dense_ctx.grad.reshape(-1, 8))
    torch.testing.assert_close(table.grad, expected, atol=1e-5, rtol=0)


def test_rotate_and_geglu_gradients():
    from torch_brain.nn import geglu, rotate

    x = torch.randn(2, 3, 2, 8, dtype=torch.float64, requires_grad=True)
    ang = torch.rand(2, 3, 1, 3, dtype=torch.float64) * 5
    assert torch.autograd.gradcheck(lambda x: rotate(x, ang.cos(), ang.sin()), (x,))
    assert torch.autograd.gradcheck(lambda x: rotate(x, ang.cos(), ang.sin(), inverse=True), (x,))
    h = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(geglu, (h,))
    a, g = h.detach().chunk(2, -1)
    ref = a * 0.5 * g * (1 + torch.erf(g / 2**0.5))
    torch.testing.assert_close(geglu(h), ref)


@pytest.mark.parametrize("recompute", [False, True])
def test_feedforward_matches_plain_ops_and_grads(recompute):
    from torch_brain.nn import FeedForward

    torch.manual_seed(3)
    ff = FeedForward(6, mult=2, recompute=recompute).double()
    x = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ff, (x,))
    h = ff.w1(ff.norm(x))
    a, g = h.chunk(2, -1)
    ref = ff.w2(a * 0.5 * g * (1 + torch.erf(g / 2**0.5)))
    torch.testing.assert_close(ff(x), ref)
    ref.sum().backward()
    ref_grads = [p.grad.clone() for p in ff.parameters()]
    ff.zero_grad()
    ff(x).sum().backward()
    for p, r in zip(ff.parameters(), ref_grads):
        torch.testing.assert_close(p.grad, r)


def _grid_times(b, g, run, step=0.125):
    return ((torch.arange(g, dtype=torch.float32) + 0.5) * step).repeat_interleave(run).expand(b, g * run).contiguous()


def test_time_grid_is_found_only_for_a_shared_grid_and_matches_per_token_angles():
    rope = RotaryTimeEmbedding(8, t_min=T_MIN, t_max=T_MAX)
    t = _grid_times(3, 4, 5)
    grid = rope.grid(t)
    assert grid is not None and (grid.run, grid.batch, tuple(grid.cos.shape)) == (5, 3, (4, 4))
    cos, sin = rope(t)
    assert torch.equal(grid.per_token()[0], cos) and torch.equal(grid.per_token()[1], sin)
    assert rope.grid(torch.full((2, 6), 0.5)).run == 6  # one run
    other_row = t.clone()
    other_row[1] += 1.0  # a window that starts elsewhere
    uneven = torch.tensor([[0.1, 0.1, 0.2, 0.2, 0.2, 0.3]])
    with_nan = t.clone()
    with_nan[:, 0] = float("nan")
    for bad in (other_row, uneven, with_nan, torch.zeros(0, 4), torch.zeros(2, 0)):
        assert rope.grid(bad) is None


@pytest.mark.parametrize("rotate_value", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_self_attention_on_a_time_grid_matches_per_token_rotation(rotate_value, masked, monkeypatch):
    torch.manual_seed(4)
    b, g, run, d, heads, dh = 4, 2, 8, 8, 3, 8  # 4 * G * d = 64 <= B * N = 64: the grid path is taken
    mod = RotarySelfAttention(dim=d, heads=heads, dim_head=dh, rotate_value=rotate_value)
    with torch.no_grad():
        mod.to_out.bias.normal_()
    rope = RotaryTimeEmbedding(dh // 2, t_min=T_MIN, t_max=T_MAX)
    t = _grid_times(b, g, run)
    mask = None
    if masked:
        mask = torch.rand(b, g * run) > 0.3
        mask[:, 0] = True
    taken = []
    grid_forward = RotarySelfAttention._forward_grid
    monkeypatch.setattr(RotarySelfAttention, "_forward_grid", lambda *a: taken.append(1) or grid_forward(*a))
    x = torch.randn(b, g * run, d, requires_grad=True)
    out = mod(x, rope.grid(t), mask)
    assert taken == [1]
    for i in range(b):  # the float64 reference
        keys = np.ones(g * run, bool) if mask is None else mask[i].numpy()
        ref = _naive_attention(mod, x[i].detach().double().numpy(), None, t[i].double().numpy(),
                               t[i].double().numpy(), keys, heads, dh, rotate_value, self_attn=True)
        np.testing.assert_allclose(out[i].detach().numpy(), ref, atol=1e-5, rtol=0)
    # gradients equal those of the per-token rotation
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), [x, *mod.parameters()])
    ref_out = mod(x, rope(t), mask)
    ref_grads = torch.autograd.grad((ref_out * weights).sum(), [x, *mod.parameters()])
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-4)


def test_self_attention_expands_a_grid_that_does_not_pay(monkeypatch):
    torch.manual_seed(5)
    b, g, run, d = 2, 4, 2, 16  # 4 * G * d = 256 > B * N = 16: per-token angles
    mod = RotarySelfAttention(dim=d, heads=2, dim_head=8)
    rope = RotaryTimeEmbedding(4, t_min=T_MIN, t_max=T_MAX)
    t = _grid_times(b, g, run)
    monkeypatch.setattr(RotarySelfAttention, "_forward_grid", lambda *a: pytest.fail("grid path taken"))
    x = torch.randn(b, g * run, d)
    torch.testing.assert_close(mod(x, rope.grid(t)), mod(x, rope(t)), atol=0, rtol=0)
    with pytest.raises(ValueError, match="TimeGrid for"):
        mod(x[:1], rope.grid(t))
