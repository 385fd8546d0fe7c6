"""stitch() against a pandas groupby reference (mean for floats, mode with ties -> smallest class)."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torch_brain.utils import _segments
from torch_brain.utils.stitcher import stitch


def _reference(timestamps: torch.Tensor, values: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Plain pandas groupby: mean of float rows, most frequent label (smallest on ties)."""
    df = pd.DataFrame({"t": timestamps.double().numpy()})
    if values.dtype == torch.long:
        df["v"] = values.numpy()
        counts = df.groupby(["t", "v"]).size().reset_index(name="n")
        best = counts.sort_values(["t", "n", "v"], ascending=[True, False, True]).groupby("t").head(1)
        return best["t"].to_numpy(), best["v"].to_numpy()
    flat = values.double().reshape(len(values), -1).numpy()
    cols = [f"v{j}" for j in range(flat.shape[1])]
    df[cols] = flat
    mean = df.groupby("t")[cols].mean()
    return mean.index.to_numpy(), mean.to_numpy().reshape(-1, *values.shape[1:])


def _check(timestamps, values):
    unique, pooled = stitch(timestamps, values)
    ref_t, ref_v = _reference(timestamps, values)
    assert unique.dtype == timestamps.dtype and pooled.dtype == values.dtype
    np.testing.assert_array_equal(unique.double().numpy(), ref_t)
    if values.dtype == torch.long:
        np.testing.assert_array_equal(pooled.numpy(), ref_v)
    else:
        tol = 1e-12 if values.dtype == torch.float64 else 1e-5
        np.testing.assert_allclose(pooled.double().numpy(), ref_v, rtol=tol, atol=tol)


@st.composite
def _inputs(draw):
    n = draw(st.integers(1, 80))
    n_times = draw(st.integers(1, n))
    grid = draw(st.sampled_from([0.25, 0.01, 1.0]))
    codes = draw(st.lists(st.integers(0, n_times - 1), min_size=n, max_size=n))
    # times from 0 on, or around 0 (negative and positive times in one block)
    shift = draw(st.sampled_from([0, n_times // 2]))
    timestamps = torch.tensor(codes, dtype=torch.float64).sub(shift) * grid
    if draw(st.booleans()):
        timestamps = torch.sort(timestamps).values
    kind = draw(st.sampled_from(["vec", "scalar", "label", "label_ties"]))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    if kind == "vec":
        values = torch.randn(n, 3, generator=g)
    elif kind == "scalar":
        values = torch.randn(n, generator=g, dtype=torch.float64)
    elif kind == "label":
        values = torch.randint(-2, draw(st.integers(1, 100)), (n,), generator=g)
    else:  # two classes, so that many timestamps get tied votes
        values = torch.randint(3, 5, (n,), generator=g)
    return timestamps, values


@settings(max_examples=150, deadline=None)
@given(_inputs(), st.booleans())
def test_stitch_matches_groupby(inputs, sparse_votes):
    saved = _segments._MAX_DENSE_CLASSES, _segments._VOTE_CELLS
    # sparse votes; or dense vote tables of a few segments each (many blocks)
    _segments._MAX_DENSE_CLASSES, _segments._VOTE_CELLS = (0, saved[1]) if sparse_votes else (saved[0], 16)
    try:
        _check(*inputs)
    finally:
        _segments._MAX_DENSE_CLASSES, _segments._VOTE_CELLS = saved


@pytest.mark.parametrize("order", ["sorted", "windows", "shuffled"])
@pytest.mark.parametrize("kind", ["float", "label", "many_classes", "deep_overlap"])
def test_stitch_large_inputs(order, kind):
    # 1 s windows of 100 Hz samples at 0.5 s step (half duplicates), like the evaluator sees
    rng = np.random.default_rng(0)
    step = 0.1 if kind == "deep_overlap" else 0.5  # 10 windows over each time: beyond the gather passes
    starts = np.arange(60) * step
    t = (starts[:, None] + np.arange(100)[None, :] / 100.0).ravel()
    t = np.round(t, 6)  # exact duplicates across windows
    if order == "sorted":
        t = np.sort(t)
    elif order == "shuffled":
        t = t[rng.permutation(len(t))]
    n = len(t)
    if kind == "float" or kind == "deep_overlap":
        values = torch.from_numpy(rng.normal(size=(n, 2)).astype(np.float32))
    elif kind == "label":
        values = torch.from_numpy(rng.integers(0, 3, n))
    else:
        values = torch.from_numpy(rng.integers(0, 1000, n))
    _check(torch.from_numpy(t), values)
    if kind == "deep_overlap":
        _check(torch.from_numpy(t), torch.from_numpy(rng.integers(0, 4, n)))


def test_stitch_docstring_examples():
    t = torch.tensor([1.0, 1.0, 2.0, 3.0, 3.0, 3.0], dtype=torch.float64)
    u, mean = stitch(t, torch.tensor([0.1, 0.3, 0.2, 0.4, 0.6, 0.8]))
    assert u.tolist() == [1.0, 2.0, 3.0]
    assert torch.allclose(mean, torch.tensor([0.2, 0.2, 0.6]))
    _, mode = stitch(t, torch.tensor([2, 1, 7, 3, 1, 3]))
    assert mode.tolist() == [1, 7, 3]  # tie at t=1 goes to the smallest class


def test_stitch_keeps_dtypes_and_shapes():
    t = torch.tensor([0, 2, 0], dtype=torch.int64)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        u, v = stitch(t, torch.ones(3, 2, 2, dtype=dtype))
        assert u.tolist() == [0, 2] and v.dtype == dtype and v.shape == (2, 2, 2)
    u, v = stitch(torch.empty(0, dtype=torch.float64), torch.empty(0, 4))
    assert u.shape == (0,) and v.shape == (0, 4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stitch_cuda_matches_cpu():
    t = torch.tensor([0.5, 0.0, 0.5, 1.0], dtype=torch.float64)
    for values in (torch.randn(4, 2), torch.tensor([3, 1, 2, 0])):
        u, p = stitch(t.cuda(), values.cuda())
        assert u.is_cuda and p.is_cuda and p.dtype == values.dtype
        u_ref, p_ref = stitch(t, values)
        assert torch.equal(u.cpu(), u_ref) and torch.allclose(p.cpu().double(), p_ref.double())


@pytest.mark.parametrize(
    "timestamps, values, error, match",
    [
        (torch.zeros(3), torch.zeros(4, 2), ValueError, "same length along dim 0, got 3 and 4"),
        (torch.zeros(3), torch.zeros(3, 2, dtype=torch.long), ValueError, r"must be 1-D \(N,\), got shape \(3, 2\)"),
        (torch.zeros(3), torch.zeros(3, dtype=torch.int32), TypeError, "floating point .* or torch.long"),
        (torch.zeros(3, dtype=torch.bool), torch.zeros(3), TypeError, "real-valued"),
        (torch.zeros(3, 1), torch.zeros(3), ValueError, r"`timestamps` must be 1-D"),
        (torch.tensor([0.0, float("nan")]), torch.zeros(2), ValueError, "1 NaN value"),
        ([0.0, 1.0], torch.zeros(2), TypeError, "`timestamps` must be a torch.Tensor, got list"),
        (torch.zeros(2), np.zeros(2), TypeError, "`values` must be a torch.Tensor, got ndarray"),
        (torch.zeros(2), torch.tensor(1.0), ValueError, "0-d"),
    ],
)
def test_stitch_bad_input(timestamps, values, error, match):
    with pytest.raises(error, match=match):
        stitch(timestamps, values)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.int64])
def test_stitch_shuffled_signed_times(dtype):
    # negative times, -0.0 == 0.0, large magnitudes
    rng = np.random.default_rng(1)
    grid = np.concatenate([np.arange(-3000, 3000) * 0.25, [-0.0, 0.0, 1e9, -1e9]])
    t = torch.from_numpy(grid[rng.integers(0, len(grid), 20000)]).to(dtype)
    _check(t, torch.from_numpy(rng.normal(size=(20000, 2))))
    _check(t, torch.from_numpy(rng.integers(0, 5, 20000)))




@pytest.mark.parametrize("where", [[0], [4999], [17, 2500, 4000]])
def test_stitch_nan_timestamps_are_refused(where):
    t = torch.arange(5000, dtype=torch.float64).div(2).floor()
    t[where] = float("nan")
    for values in (torch.randn(5000, 2), torch.randint(0, 3, (5000,))):
        with pytest.raises(ValueError, match=f"contains {len(where)} NaN value"):
            stitch(t, values)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_stitch_half_precision_times(dtype):
    # bfloat16 has no NumPy dtype: sorted by torch.sort instead
    t = torch.tensor([2.0, 0.5, 2.0, -1.0, 0.5, 0.5], dtype=dtype)
    unique, mean = stitch(t, torch.arange(6.0))
    assert unique.dtype == dtype and unique.tolist() == [-1.0, 0.5, 2.0]
    assert mean.tolist() == pytest.approx([3.0, 10 / 3, 1.0])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(-5, 5), st.floats(-10, 10)), min_size=1, max_size=60))
def test_segments_by_two_keys_match_groupby(rows):
    # the evaluator groups by (session, time): ordered by session, then time
    df = pd.DataFrame(rows, columns=["s", "t", "v"])
    reference = df.groupby(["s", "t"])["v"].agg(["sum", "count"])
    s, t = torch.tensor(df.s.to_numpy(), dtype=torch.float64), torch.tensor(df.t.to_numpy(), dtype=torch.float64)
    seg = _segments.segments(s, t)
    np.testing.assert_array_equal(seg.keys[0].numpy(), reference.index.get_level_values(0))
    np.testing.assert_array_equal(seg.keys[1].numpy(), reference.index.get_level_values(1))
    np.testing.assert_array_equal(seg.counts.numpy(), reference["count"].to_numpy())
    sums = _segments.segment_sum(seg, torch.tensor(df.v.to_numpy()).unsqueeze(1))
    np.testing.assert_allclose(sums[:, 0].numpy(), reference["sum"].to_numpy(), atol=1e-9)
