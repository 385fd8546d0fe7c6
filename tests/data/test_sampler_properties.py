"""Property tests: samplers on random interval sets against brute-force enumeration."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torch_brain.data.sampler import (
    DistributedStitchingFixedWindowSampler,
    RandomFixedWindowSampler,
    SequentialFixedWindowSampler,
)


class _Iv:
    def __init__(self, start, end):
        self.start, self.end = np.asarray(start, float), np.asarray(end, float)


@st.composite
def interval_sets(draw):
    """{recording_id: _Iv} with 1-3 recordings of 1-4 disjoint intervals on a 0.05 s grid."""
    out = {}
    for r in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 4))
        gaps = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
        lens = draw(st.lists(st.integers(20, 120), min_size=n, max_size=n))
        t, starts, ends = 0, [], []
        for g, ln in zip(gaps, lens):
            t += g
            starts.append(t * 0.05)
            t += ln
            ends.append(t * 0.05)
        out[f"b/r{r}"] = _Iv(starts, ends)
    return out


def _brute(ivs, w, step):
    out = []
    for rid in sorted(ivs):
        for a, b in zip(ivs[rid].start, ivs[rid].end):
            k = 0
            last = None
            while a + k * step + w <= b + 1e-9:
                out.append((rid, round(a + k * step, 6)))
                last = a + k * step + w
                k += 1
            if last < b - 1e-9:
                out.append((rid, round(b - w, 6)))
    return out


@settings(max_examples=40, deadline=None)
@given(interval_sets(), st.sampled_from([0.5, 1.0]), st.sampled_from([0.25, 0.5, 1.0]))
def test_sequential_and_stitching_match_brute_force(ivs, w, step_frac):
    step = w * step_frac
    brute = _brute(ivs, w, step)
    seq = [(x.recording_id, round(x.start, 6)) for x in SequentialFixedWindowSampler(ivs, w, step=step)]
    assert seq == brute
    for n in (2, 3):
        parts = [DistributedStitchingFixedWindowSampler(ivs, w, step=step, batch_size=4, num_replicas=n, rank=r)
                 for r in range(n)]
        got = sorted((x.recording_id, round(x.start, 6)) for p in parts for x in p)
        assert got == sorted(brute)
        owner = {}
        for r, p in enumerate(parts):
            for q in p.sequence_index.tolist():
                assert owner.setdefault(q, r) == r


@settings(max_examples=40, deadline=None)
@given(interval_sets(), st.sampled_from([0.5, 1.0, 1.3, 3.0]), st.integers(0, 2**31))
def test_random_windows_inside_intervals_with_expected_count(ivs, w, seed):
    expected = sum(int(np.floor((b - a) / w + 1e-9)) for iv in ivs.values() for a, b in zip(iv.start, iv.end))
    if expected == 0:  # every interval shorter than the window
        with pytest.raises(ValueError, match="longer than"):
            RandomFixedWindowSampler(ivs, w, generator=seed)
        return
    s = RandomFixedWindowSampler(ivs, w, generator=seed)
    windows = list(s)
    assert len(windows) == len(s) == expected
    for x in windows:
        iv = ivs[x.recording_id]
        assert np.any((iv.start - 1e-9 <= x.start) & (x.end <= iv.end + 1e-9))
    assert list(RandomFixedWindowSampler(ivs, w, generator=seed)) == windows
