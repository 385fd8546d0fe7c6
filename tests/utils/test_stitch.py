"""stitch() against a pandas groupby reference (mean for floats, mode with ties -> smallest class)."""

import contextlib
import platform
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torch_brain.utils._pooling import _stitch_sorted_segments
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


def _check(timestamps, values, backend="auto"):
    if backend == "auto":
        unique, pooled = stitch(timestamps, values)
    else:
        unique, pooled = _stitch_sorted_segments(timestamps, values, backend)
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
@given(_inputs(), st.sampled_from(["auto", "numpy", "torch"]))
def test_stitch_matches_groupby(inputs, backend):
    _check(*inputs, backend=backend)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("order", ["sorted", "windows", "shuffled"])
@pytest.mark.parametrize("kind", ["float", "label", "many_classes", "deep_overlap"])
def test_stitch_large_inputs(backend, order, kind):
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
    _check(torch.from_numpy(t), values, backend)
    if kind == "deep_overlap":
        _check(torch.from_numpy(t), torch.from_numpy(rng.integers(0, 4, n)), backend)


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
    # negative times, -0.0 == 0.0, large magnitudes: exercises the integer image used for sorting
    rng = np.random.default_rng(1)
    grid = np.concatenate([np.arange(-3000, 3000) * 0.25, [-0.0, 0.0, 1e9, -1e9]])
    t = torch.from_numpy(grid[rng.integers(0, len(grid), 20000)]).to(dtype)
    _check(t, torch.from_numpy(rng.normal(size=(20000, 2))), "numpy")
    _check(t, torch.from_numpy(rng.integers(0, 5, 20000)), "numpy")


@settings(max_examples=100, deadline=None)
@given(_inputs(), st.sampled_from([1, 2, 3, 8]))
def test_stitch_block_boundaries(inputs, chunk):
    # the NumPy pipeline works in blocks of _CHUNK rows; tiny blocks put runs across block edges
    from torch_brain.utils import _pooling

    saved = _pooling._CHUNK
    _pooling._CHUNK = chunk
    try:
        _check(*inputs, backend="numpy")
    finally:
        _pooling._CHUNK = saved


@pytest.mark.parametrize("order", ["windows", "shuffled"])
def test_stitch_block_boundaries_large(monkeypatch, order):
    from torch_brain.utils import _pooling

    monkeypatch.setattr(_pooling, "_CHUNK", 97)
    rng = np.random.default_rng(3)
    t = ((np.arange(40)[:, None] * 50 + np.arange(100)[None, :]) / 100.0).ravel()
    if order == "shuffled":
        t = t[rng.permutation(len(t))]
    _check(torch.from_numpy(t), torch.from_numpy(rng.normal(size=(len(t), 2)).astype(np.float32)), "numpy")
    _check(torch.from_numpy(t), torch.from_numpy(rng.integers(0, 3, len(t))), "numpy")


@contextlib.contextmanager
def _pipeline(block: int, split_at: int | None = None, max_carry: int = 1 << 30):
    """Shrink the NumPy pipeline's block size (so that tiny inputs span many blocks), and cut every
    input of at least ``split_at`` rows into two halves on two threads, however much the halves'
    timestamps overlap (None: never)."""
    from torch_brain.utils import _pooling

    names = ("_BLOCK", "_MAX_CARRY", "_SPLIT", "_SPLIT_ZONE", "_SAMPLE")
    saved = [getattr(_pooling, name) for name in names] + [torch.get_num_threads()]
    new = (block, max_carry, 1 << 62 if split_at is None else split_at, 0, 1)
    for name, value in zip(names, new):
        setattr(_pooling, name, value)
    torch.set_num_threads(2)
    try:
        yield
    finally:
        for name, value in zip(names, saved):
            setattr(_pooling, name, value)
        torch.set_num_threads(saved[-1])


@settings(max_examples=150, deadline=None)
@given(_inputs(), st.sampled_from([1, 2, 3, 7]), st.sampled_from([None, 2, 16]), st.sampled_from([1, 4, 1 << 30]))
def test_stitch_blocks_and_halves(inputs, block, split_at, max_carry):
    # rows pooled block by block (carrying the rows later blocks may join), in two halves whose
    # timestamps overlap anywhere, or given up on for one global sort: all pool as groupby does
    with _pipeline(block, split_at, max_carry):
        _check(*inputs, backend="numpy")


@pytest.mark.parametrize("order", ["sorted", "windows", "shuffled", "deep_overlap", "late_outlier"])
@pytest.mark.parametrize("split_at", [None, 1000])
def test_stitch_pipelines_equal_one_global_sort(order, split_at):
    from torch_brain.utils import _pooling

    rng = np.random.default_rng(5)
    step = 10 if order == "deep_overlap" else 50
    t = ((np.arange(300)[:, None] * step + np.arange(100)[None, :]) / 100.0).ravel()
    if order == "sorted":
        t = np.sort(t)
    elif order == "shuffled":
        t = t[rng.permutation(len(t))]
    elif order == "late_outlier":  # the last row's time precedes everything: no block is final early
        t[-1] = -1.0
    t = torch.from_numpy(t)
    for values in (torch.from_numpy(rng.normal(size=(len(t), 2)).astype(np.float32)),
                   torch.from_numpy(rng.integers(0, 4, len(t)))):
        _check(t, values, "numpy")
        with _pipeline(256, split_at, max_carry=4096):
            unique, pooled = stitch(t, values)
        acc = None if values.dtype == torch.long else np.dtype(np.float32)
        unique_1, pooled_1 = _pooling._np_pool_serial(t.numpy(), values.numpy(), acc)
        # every run's rows are pooled in the order one global sort gives them: bit for bit, except
        # that runs of more than _MAX_PASSES rows may be summed by a different kernel in a block
        np.testing.assert_array_equal(unique.numpy(), unique_1)
        if order == "deep_overlap" and values.dtype != torch.long:
            np.testing.assert_allclose(pooled.numpy(), pooled_1, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(pooled.numpy(), pooled_1)


def test_stitch_large_window_order_uses_two_threads(monkeypatch):
    # above the real threshold, with the real block size and zone estimate
    from torch_brain.utils import _pooling

    n = 2 * _pooling._SPLIT + 123
    t = ((np.arange(n // 100 + 1)[:, None] * 50 + np.arange(100)[None, :]) / 100.0).ravel()[:n]
    rng = np.random.default_rng(6)
    values = rng.normal(size=(n, 2)).astype(np.float32)
    labels = rng.integers(0, 8, n)
    outcomes = []
    real = _pooling._np_pool_halves
    monkeypatch.setattr(_pooling, "_np_pool_halves", lambda *a: outcomes.append(real(*a)) or outcomes[-1])
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _check(torch.from_numpy(t), torch.from_numpy(values))
        _check(torch.from_numpy(t), torch.from_numpy(labels))
    finally:
        torch.set_num_threads(previous)
    assert len(outcomes) == 2 and all(result is not None for result in outcomes)


def _stitch_in_child(queue):
    t = torch.arange(4000, dtype=torch.float64).repeat(2)
    unique, pooled = stitch(t, torch.ones(8000, 1))
    queue.put((unique.shape[0], float(pooled.sum())))


def test_stitch_threads_after_fork():
    # a forked child (e.g. a DataLoader worker) must not reuse the parent's dead thread pool
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("needs fork")
    with _pipeline(256, split_at=1000):
        stitch(torch.arange(4000, dtype=torch.float64), torch.ones(4000, 1))  # creates the pool
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_stitch_in_child, args=(queue,))
        child.start()
        child.join(60)
        if child.is_alive():
            child.kill()
            pytest.fail("stitch hung in a forked child")
        assert queue.get(timeout=5) == (4000, 4000.0)


@pytest.mark.parametrize("split_at", [None, 8])
def test_stitch_keeps_first_rows_timestamp(split_at):
    # -0.0 == 0.0 pool together and report the first row's value, also when the two rows fall in
    # different blocks or halves (the zone is pooled with the first half's rows first)
    for first_zero in (-0.0, 0.0):
        t = torch.tensor([3.0, 2.0, 1.0, first_zero, 4.0, 5.0, -first_zero, 6.0, 7.0, 8.0], dtype=torch.float64)
        for block in (2, 3, 4):
            with _pipeline(block, split_at):
                unique, mean = _stitch_sorted_segments(t, torch.arange(10.0).unsqueeze(1), "numpy")
            assert unique.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
            assert bool(torch.signbit(unique[0])) == (str(first_zero) == "-0.0") and mean[0, 0].item() == 4.5


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_positive_image_sorts_and_compares_like_the_floats(dtype):
    # the block loop sorts positive float keys through their bit patterns: the order and the
    # equal runs must be the floats' own, subnormals, the largest float and +inf included
    from torch_brain.utils._pooling import _positive_image

    info = np.finfo(dtype)
    special = np.array([info.smallest_subnormal, info.smallest_normal, info.max, np.inf, 1.0, 1.0], dtype=dtype)
    rng = np.random.default_rng(0)
    keys = np.concatenate([special, np.exp(rng.uniform(-8, 8, 500)).astype(dtype)])
    keys = np.concatenate([keys, keys[rng.integers(0, len(keys), 200)]])[rng.permutation(len(keys) + 200)]
    image = _positive_image(keys, keys.min())
    assert image.dtype.kind == "i"
    order = np.argsort(keys, kind="stable")
    np.testing.assert_array_equal(np.argsort(image, kind="stable"), order)
    np.testing.assert_array_equal(image[order][1:] == image[order][:-1], keys[order][1:] == keys[order][:-1])
    # zero or below: the keys themselves (-0.0 == 0.0 as floats, not as bits)
    for low in (0.0, -1.0):
        assert _positive_image(keys, dtype(low)) is keys


@pytest.mark.parametrize("order", ["windows", "shuffled"])
@pytest.mark.parametrize("split_at", [None, 1000, "sampled"])
@pytest.mark.parametrize("where", [0, 1999, 2500, 4999])
def test_stitch_nan_timestamp_found_on_every_path(order, split_at, where):
    # the NumPy pipelines find NaN times in the block minima (serial blocks, either half of a
    # split) or, where they give up (shuffled rows, or a split refused because a sample of the
    # halves interleaves), before the global sort; stitch names the count
    from torch_brain.utils import _pooling

    t = ((np.arange(100)[:, None] * 50 + np.arange(100)[None, :]) / 100.0).ravel()[:5000]
    if order == "shuffled":
        t = t[np.random.default_rng(0).permutation(len(t))]
    t[where] = np.nan
    for values in (torch.randn(len(t), 2), torch.randint(0, 3, (len(t),))):
        with _pipeline(256, 1000 if split_at == "sampled" else split_at):
            if split_at == "sampled":  # the real refusal rule (_pipeline restores both on exit)
                _pooling._SPLIT_ZONE, _pooling._SAMPLE = 16, 7
            with pytest.raises(ValueError, match="contains 1 NaN value"):
                stitch(torch.from_numpy(t), values)


def test_group_sum_keeps_nan_keys_apart():
    # the evaluator's running sums: a NaN time is its own group (not an error), on both back ends
    from torch_brain.utils._pooling import _group_sum

    keys = torch.arange(5000, dtype=torch.float64).div(2).floor()
    keys[[10, 4000]] = float("nan")
    rows = torch.arange(5000, dtype=torch.float64).unsqueeze(1)
    for n in (5000, 100):  # NumPy pipeline, torch
        unique, sums = _group_sum(keys[:n], rows[:n])
        finite = ~torch.isnan(keys[:n])
        expected_t, expected = _reference(keys[:n][finite], rows[:n][finite])
        n_nan = int((~finite).sum())
        np.testing.assert_array_equal(unique[:-n_nan].numpy(), expected_t)
        assert torch.isnan(unique[-n_nan:]).all()
        counts = torch.bincount(torch.from_numpy(np.unique(keys[:n][finite].numpy(), return_inverse=True)[1]))
        np.testing.assert_allclose(sums[:-n_nan].numpy(), expected * counts.numpy()[:, None])
        assert sorted(sums[-n_nan:, 0].tolist()) == rows[:n][~finite, 0].tolist()


_FAULTS_SCRIPT = r"""
import resource, numpy as np, torch
from torch_brain.utils import _pooling
from torch_brain.utils.stitcher import stitch
torch.set_num_threads(1)
n = 600_000
t = torch.from_numpy(((np.arange(n // 50 + 2)[:, None] * 50 + np.arange(100)[None, :]).ravel()[:n]) / 100.0)
v = torch.randn(n, 2)

def later_faults():
    faults = []
    for _ in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        u, p = stitch(t, v)
        del u, p
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return sum(faults[1:])

prime, _pooling._prime_allocator = _pooling._prime_allocator, lambda: None
unprimed = later_faults()
_pooling._prime_allocator = prime
print(unprimed, later_faults())
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc")
def test_block_temporaries_are_recycled_after_the_first_call():
    # the one-off 32 MiB allocation makes glibc keep freed block temporaries in its heap, so calls
    # after the first page in (almost) nothing; without it every call pages its temporaries in again
    out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], capture_output=True, text=True, check=True)
    unprimed, primed = map(int, out.stdout.split()[-2:])
    assert primed < 300 < unprimed, (primed, unprimed)
