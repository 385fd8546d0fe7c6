"""Interval: construction, helpers, algebra on hand-computed cases, bad input."""

import numpy as np
import pytest

from torch_brain.data import Interval


def _pairs(iv):
    return list(zip(iv.start.tolist(), iv.end.tolist()))


def test_construction_and_helpers():
    iv = Interval.from_list([(0.0, 1.0), (2.0, 3.5)])
    assert _pairs(iv) == [(0.0, 1.0), (2.0, 3.5)] and iv.timekeys() == ["start", "end"]
    assert _pairs(Interval(1.0, 2.0)) == [(1.0, 2.0)]
    assert _pairs(Interval.linspace(0.0, 1.0, 4)) == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    np.testing.assert_allclose(_pairs(Interval.arange(0.0, 1.0, 0.4)), [(0.0, 0.4), (0.4, 0.8), (0.8, 1.0)])
    np.testing.assert_allclose(_pairs(Interval.arange(0.0, 1.0, 0.4, include_end=False)), [(0.0, 0.4), (0.4, 0.8)])
    assert len(Interval.from_list([])) == 0


def test_sorted_disjoint_sort():
    iv = Interval(start=[3.0, 0.0, 1.0], end=[4.0, 1.0, 2.5], tag=np.array([30, 0, 10]))
    assert not iv.is_sorted() and iv.is_disjoint()
    iv.sort()
    assert iv.is_sorted() and _pairs(iv) == [(0.0, 1.0), (1.0, 2.5), (3.0, 4.0)]
    np.testing.assert_array_equal(iv.tag, [0, 10, 30])
    assert not Interval([0.0, 1.0], [2.0, 3.0]).is_disjoint()


def test_algebra_hand_computed():
    a = Interval.from_list([(0.0, 2.0), (4.0, 6.0)])
    b = Interval.from_list([(1.0, 5.0), (7.0, 8.0)])
    assert _pairs(a & b) == [(1.0, 2.0), (4.0, 5.0)]
    assert _pairs(a | b) == [(0.0, 6.0), (7.0, 8.0)]
    assert _pairs(a.difference(b)) == [(0.0, 1.0), (5.0, 6.0)]
    assert _pairs(b.difference(a)) == [(2.0, 4.0), (7.0, 8.0)]
    # touching pieces merge in a union; touching is not an intersection
    assert _pairs(Interval(0.0, 1.0) | Interval(1.0, 2.0)) == [(0.0, 2.0)]
    assert len(Interval(0.0, 1.0) & Interval(1.0, 2.0)) == 0


def test_coalesce_and_dilate():
    iv = Interval.from_list([(0.0, 1.0), (0.5, 2.0), (2.0, 3.0), (5.0, 6.0)])
    assert _pairs(iv.coalesce()) == [(0.0, 3.0), (5.0, 6.0)]
    assert _pairs(Interval.from_list([(0.0, 1.0), (1.05, 2.0)]).coalesce(eps=0.1)) == [(0.0, 2.0)]
    d = Interval.from_list([(0.0, 1.0), (2.0, 3.0), (10.0, 11.0)]).dilate(1.0)
    # neighbours 1 s apart meet in the middle of their gap
    assert _pairs(d) == [(-1.0, 1.5), (1.5, 4.0), (9.0, 12.0)]
    assert _pairs(Interval.from_list([(0.0, 1.0), (5.0, 9.0)]).dilate(1.0, max_len=2.0)) == [
        (-0.5, 1.5), (5.0, 9.0)]
    with pytest.raises(ValueError, match="must be sorted and disjoint"):
        Interval([0.0, 0.5], [1.0, 2.0]).dilate(1.0)


def test_slice_keeps_overlapping_rows_whole_and_clip_cuts_them():
    iv = Interval(start=[0.0, 2.0, 5.0], end=[1.0, 4.0, 6.0], go=np.array([0.5, 3.0, 5.5]),
                  timekeys=["start", "end", "go"])
    w = iv.slice(0.5, 3.0)
    assert _pairs(w) == [(-0.5, 0.5), (1.5, 3.5)]
    np.testing.assert_allclose(w.go, [0.0, 2.5])
    assert _pairs(iv.slice(0.5, 3.0, reset_origin=False)) == [(0.0, 1.0), (2.0, 4.0)]
    assert _pairs(iv.clip(0.5, 3.0)) == [(0.0, 0.5), (1.5, 2.5)]
    assert _pairs(iv.clip(0.5, 3.0, reset_origin=False)) == [(0.5, 1.0), (2.0, 3.0)]
    assert len(iv.slice(1.0, 2.0)) == 0 and len(iv.slice(3.0, 3.0)) == 0
    # a zero-length row is a point: kept when start <= x < end
    pts = Interval([1.0, 2.0], [1.0, 2.0])
    assert _pairs(pts.slice(1.0, 2.0, reset_origin=False)) == [(1.0, 1.0)]


def test_select_by_mask_and_interval():
    iv = Interval(start=[0.0, 2.0, 5.0], end=[1.0, 4.0, 6.0], k=np.arange(3))
    np.testing.assert_array_equal(iv.select_by_mask(np.array([True, False, True])).k, [0, 2])
    np.testing.assert_array_equal(iv.select_by_interval(Interval(0.9, 2.1)).k, [0, 1])
    np.testing.assert_array_equal(iv.select_by_interval(Interval(1.0, 2.0)).k, [])


def test_split_ratios_counts_and_names():
    iv = Interval.arange(0.0, 10.0, 1.0)
    parts = iv.split([0.6, 0.2, 0.2])
    assert [len(p) for p in parts] == [6, 2, 2]
    assert parts[0].start[0] == 0.0 and parts[2].start[-1] == 9.0
    named = iv.split({"train": 0.8, "valid": 0.1, "test": 0.1}, shuffle=True, random_seed=0)
    assert sorted(named) == ["test", "train", "valid"]
    allstarts = np.sort(np.concatenate([p.start for p in named.values()]))
    np.testing.assert_array_equal(allstarts, iv.start)
    assert all(p.is_sorted() for p in named.values())
    assert [len(p) for p in iv.split([3, 7])] == [3, 7]
    with pytest.raises(ValueError, match="ratios summing to 1 or counts summing to len=10, but they sum to 0.5"):
        iv.split([0.25, 0.25])


@pytest.mark.parametrize(
    "kwargs, err, msg",
    [
        (dict(start=[0.0, 2.0], end=[1.0, 1.5]), ValueError, r"end before they start \(first: row 1, start=2.0, end=1.5\)"),
        (dict(start=[0.0, 1.0], end=[1.0]), ValueError, "'start' has 2 rows but 'end' has 1"),
        (dict(start="abc", end=[1.0]), TypeError, "'start' must be numbers"),
        (dict(start=[0.0], end=[1.0], extra=np.zeros(2)), ValueError, "column 'extra' has 2 rows"),
        (dict(start=[0.0], end=[1.0], timekeys=["start"]), ValueError, "'timekeys' must contain 'end'"),
    ],
)
def test_bad_input(kwargs, err, msg):
    with pytest.raises(err, match=msg):
        Interval(**kwargs)


def test_algebra_rejects_non_interval():
    with pytest.raises(TypeError, match="other operand must be an Interval"):
        Interval(0.0, 1.0) & (0.0, 1.0)
