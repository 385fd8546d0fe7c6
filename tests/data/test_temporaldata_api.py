"""temporaldata 0.1.6 API parity: names, lazy classes, the file-handle lifecycle, mask validation,
concat, from_dataframe, nested attributes, coercion, Interval iteration / subdivide / coalesce.

Expected values are the outputs documented by temporaldata 0.1.6 (docstring examples) or observed by
running it on the same inputs, written here by hand as tables.
"""

import copy
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

import torch_brain
import torch_brain.data as tbd
from torch_brain.data import (
    ArrayDict,
    Data,
    Interval,
    IrregularTimeSeries,
    LazyArrayDict,
    LazyInterval,
    LazyIrregularTimeSeries,
    LazyRegularTimeSeries,
    RegularTimeSeries,
    concat,
)

pd = pytest.importorskip("pandas")


def _data():
    return Data(
        spikes=IrregularTimeSeries(np.array([0.1, 0.5, 1.5]), unit=np.array([0, 1, 0]), domain=Interval(0.0, 2.0)),
        trials=Interval(start=[0.0, 1.0], end=[1.0, 2.0], y=[3, 4]),
        units=ArrayDict(id=np.array(["a", "b"])),
        lfp=RegularTimeSeries(sampling_rate=10.0, x=np.arange(20.0)),
        arr=np.arange(3),
        s="sess",
        domain="auto",
    )


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "a.h5"
    _data().save(p)
    return p


# ------------------------------------------------------------------ 1. names and lazy classes
LAZY = [("spikes", IrregularTimeSeries, LazyIrregularTimeSeries), ("trials", Interval, LazyInterval),
        ("units", ArrayDict, LazyArrayDict), ("lfp", RegularTimeSeries, LazyRegularTimeSeries)]


def test_public_names_of_temporaldata_exist():
    for name in ["ArrayDict", "LazyArrayDict", "IrregularTimeSeries", "LazyIrregularTimeSeries", "RegularTimeSeries",
                 "LazyRegularTimeSeries", "Interval", "LazyInterval", "Data", "concat"]:
        assert name in tbd.__all__ and hasattr(tbd, name)
    assert tbd.__version__ == torch_brain.__version__


@pytest.mark.parametrize("key, eager, lazy", LAZY)
def test_lazy_read_gives_lazy_subclass_and_materialize_gives_eager(path, key, eager, lazy):
    with Data.load(path) as data:
        obj = getattr(data, key)
        assert type(obj) is lazy and isinstance(obj, eager) and issubclass(lazy, eager)
        ref = getattr(_data(), key)
        out = obj.materialize()
        assert out is obj and type(obj) is eager and not isinstance(obj, lazy)
        for col in ref.keys():
            np.testing.assert_array_equal(getattr(obj, col), getattr(ref, col))
    eager_data = Data.load(path, lazy=False)
    assert type(getattr(eager_data, key)) is eager and eager_data.file is None


@pytest.mark.parametrize("key, eager, lazy", LAZY)
def test_class_from_hdf5_is_eager_and_lazy_class_from_hdf5_is_lazy(path, key, eager, lazy):
    with h5py.File(path, "r") as f:
        assert type(eager.from_hdf5(f[key])) is eager
        assert type(lazy.from_hdf5(f[key])) is lazy
        with pytest.raises(TypeError, match=r"holds a \w+, not a"):
            (Interval if eager is not Interval else ArrayDict).from_hdf5(f[key])


# ------------------------------------------------------------------ 2. file-handle lifecycle
def test_with_block_closes_the_file_also_on_error(path):
    with Data.load(path) as data:
        handle = data.file
        assert isinstance(handle, h5py.File) and handle.id.valid
    assert data.file is None and not handle.id.valid
    with pytest.raises(KeyError):
        with Data.load(path) as data2:
            handle2 = data2.file
            raise KeyError("boom")
    assert data2.file is None and not handle2.id.valid


def test_close_is_idempotent_and_strict_refuses_when_nothing_is_open(path):
    data = Data.load(path)
    data.close()
    data.close()
    with pytest.raises(ValueError, match=r"close\(strict=True\): no HDF5 file is open"):
        data.close(strict=True)
    with pytest.raises(ValueError, match="no HDF5 file is open"):
        _data().close(strict=True)


def test_materialized_data_is_readable_after_close_unread_data_is_not(path):
    data = Data.load(path)
    data.materialize()
    data.close()
    ref = _data()
    np.testing.assert_array_equal(data.spikes.timestamps, ref.spikes.timestamps)
    np.testing.assert_array_equal(data.arr, ref.arr)
    other = Data.load(path)
    window = other.slice(0.2, 1.6)
    other.close()
    for read in (lambda: window.spikes.unit, lambda: other.trials.y, lambda: other.arr):
        with pytest.raises(ValueError, match="HDF5 file was closed"):
            read()  # never read before the close


def test_from_hdf5_on_an_open_file_reports_that_file(path):
    with h5py.File(path, "r") as f:
        assert Data.from_hdf5(f).file == f
        assert Data.from_hdf5(f, lazy=False).file is None


def test_copy_shares_deepcopy_copies_and_keeps_the_handle(path):
    with Data.load(path) as data:
        shallow = copy.copy(data)
        assert shallow.spikes is data.spikes and shallow.file is data.file
        deep = copy.deepcopy(data)
        assert type(deep.spikes) is LazyIrregularTimeSeries and deep.file is data.file
        assert deep.trials is not data.trials
        np.testing.assert_array_equal(deep.spikes.timestamps, [0.1, 0.5, 1.5])
        deep.spikes.timestamps[0] = -1.0  # the copy's arrays are its own
        np.testing.assert_array_equal(data.spikes.timestamps, [0.1, 0.5, 1.5])
    mem = _data()
    deep = copy.deepcopy(mem)
    assert not np.shares_memory(deep.spikes.timestamps, mem.spikes.timestamps)
    assert pickle.loads(pickle.dumps(mem)).s == "sess"


def test_to_dict_has_the_attributes_and_no_handle(path):
    with Data.load(path) as data:
        d = data.to_dict()
        assert sorted(d) == sorted(["spikes", "trials", "units", "lfp", "arr", "s"])
        assert not any(isinstance(v, h5py.File) for v in d.values())
        np.testing.assert_array_equal(d["arr"], [0, 1, 2])


# ------------------------------------------------------------------ 5. select_by_mask
def _containers():
    return [
        ArrayDict(x=np.arange(3), y=np.ones((3, 2))),
        Interval(start=[0.0, 1.0, 2.0], end=[1.0, 2.0, 3.0]),
        IrregularTimeSeries(np.array([0.0, 1.0, 2.0]), domain="auto"),
        RegularTimeSeries(sampling_rate=1.0, x=np.arange(3)),
    ]


@pytest.mark.parametrize("obj", _containers(), ids=lambda o: type(o).__name__)
@pytest.mark.parametrize(
    "mask, err, msg",
    [
        (np.array([1, 0, 1]), TypeError, "'mask' must be a boolean array, but got dtype int64"),
        (np.array([True, False]), ValueError, "'mask' has 2 elements but the object has 3 rows"),
        (np.ones((3, 1), bool), ValueError, r"'mask' must be one-dimensional, but got shape \(3, 1\)"),
    ],
)
def test_select_by_mask_rejects_bad_masks(obj, mask, err, msg):
    with pytest.raises(err, match=msg):
        obj.select_by_mask(mask)


def test_select_by_mask_copies_private_attributes_and_keeps_domain():
    ts = IrregularTimeSeries(np.array([0.0, 1.0, 2.0]), t2=np.array([0.5, 1.5, 2.5]), domain="auto")
    out = ts.select_by_mask([True, False, True])
    np.testing.assert_array_equal(out.timestamps, [0.0, 2.0])
    np.testing.assert_array_equal(out.domain.end, [2.0])  # temporaldata: the domain is not updated
    assert out.domain is not ts.domain
    out.register_timekey("t2")
    assert ts.timekeys() == ["timestamps"] and out.timekeys() == ["timestamps", "t2"]


def test_interval_slicing_stays_right_after_columns_are_replaced():
    iv = Interval(start=[0.0, 2.0], end=[1.0, 3.0])
    assert len(iv.slice(0.0, 5.0)) == 2  # caches that the rows are sorted
    iv.start, iv.end = np.array([2.0, 0.0]), np.array([3.0, 1.0])
    got = iv.slice(0.0, 1.5, reset_origin=False)
    np.testing.assert_array_equal(got.start, [0.0])  # brute force: only [0, 1) overlaps [0, 1.5)
    sub = iv.select_by_mask(np.array([True, True]))
    np.testing.assert_array_equal(sub.slice(1.5, 5.0, reset_origin=False).start, [2.0])


# ------------------------------------------------------------------ 6. concat, from_dataframe, nested, coercion
def test_concat_irregular_as_documented():
    ts1 = IrregularTimeSeries(timestamps=np.array([2.0, 3.0]), values=np.array([3.0, 4.0]), domain="auto")
    ts0 = IrregularTimeSeries(timestamps=np.array([0.0, 1.0]), values=np.array([1.0, 2.0]), domain="auto")
    out = concat([ts1, ts0])
    np.testing.assert_array_equal(out.timestamps, [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out.values, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(out.domain.start, [0.0, 2.0])
    np.testing.assert_array_equal(out.domain.end, [1.0, 3.0])
    kept = concat([ts0, ts1], sort=False)
    np.testing.assert_array_equal(kept.values, [1.0, 2.0, 3.0, 4.0])


def test_concat_intervals_sorted():
    out = concat([Interval([2.0], [3.0], y=[2]), Interval([0.0], [1.0], y=[1])])
    assert list(out) == [(0.0, 1.0), (2.0, 3.0)]
    np.testing.assert_array_equal(out.y, [1, 2])


@pytest.mark.parametrize(
    "objs, err, msg",
    [
        ([], ValueError, "'objs' is empty"),
        ([IrregularTimeSeries([0.0], v=[1.0]), IrregularTimeSeries([1.0], w=[1.0])], ValueError, "same columns"),
        ([IrregularTimeSeries([0.0]), Interval(0.0, 1.0)], ValueError, "same type"),
        ([RegularTimeSeries(sampling_rate=1.0, x=[1.0])] * 2, TypeError, r"\.to_irregular\(\)"),
        ([ArrayDict(x=[1]), ArrayDict(x=[2])], TypeError, "can join IrregularTimeSeries or Interval"),
        ([IrregularTimeSeries([2.0]), IrregularTimeSeries([1.0])], ValueError, "sorted"),
    ],
)
def test_concat_refusals(objs, err, msg):
    with pytest.raises(err, match=msg):
        concat(objs, sort=not (len(objs) == 2 and isinstance(objs[0], IrregularTimeSeries) and msg == "sorted"))


def test_from_dataframe_converts_skips_and_keeps_unsigned_on_request():
    df = pd.DataFrame({"a": [1, 2], "u": np.array([1, 2], dtype=np.uint8), "s": ["x", "y"],
                       "o": [[1], [2, 3]], "f": [0.5, 1.5], "v": [np.zeros(2), np.ones(2)]})
    with pytest.warns(UserWarning, match=r"skipped column\(s\) \['o'\]"):
        out = ArrayDict.from_dataframe(df)
    assert out.keys() == ["a", "u", "s", "f", "v"]
    assert out.u.dtype == np.int64 and out.v.shape == (2, 2) and out.s.tolist() == ["x", "y"]
    with pytest.warns(UserWarning):
        assert ArrayDict.from_dataframe(df, unsigned_to_long=False).u.dtype == np.uint8
    ts = IrregularTimeSeries.from_dataframe(pd.DataFrame({"timestamps": [0.0, 1.0], "x": [1, 2]}))
    np.testing.assert_array_equal(ts.domain.end, [1.0])
    iv = Interval.from_dataframe(pd.DataFrame({"start": [0.0, 1.0], "end": [1.0, 2.0], "x": [1, 2]}))
    assert iv.keys() == ["start", "end", "x"]
    with pytest.raises(ValueError, match=r"has no column\(s\) \['end'\]"):
        Interval.from_dataframe(pd.DataFrame({"start": [0.0]}))


def test_set_nested_attribute():
    d = Data(session=Data(id="a"), x=np.arange(2))
    assert d.set_nested_attribute("session.id", "b") is d and d.session.id == "b"
    assert d.set_nested_attribute("session.new", 3).session.new == 3
    assert d.set_nested_attribute("y", 5).y == 5
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        d.set_nested_attribute("nope.id", 3)


@pytest.mark.parametrize(
    "build, key",
    [
        (lambda: ArrayDict(x=[1, 2]), "x"),
        (lambda: ArrayDict(x=(1, 2)), "x"),
        (lambda: Interval(0, 1), "start"),
        (lambda: Interval(start=[0, 1], end=(1, 2), y=[5, 6]), "y"),
        (lambda: IrregularTimeSeries([0.0, 1.0], unit=[1, 2]), "unit"),
        (lambda: RegularTimeSeries(sampling_rate=1.0, x=[1, 2]), "x"),
    ],
)
def test_lists_tuples_and_scalars_become_arrays(build, key):
    value = getattr(build(), key)
    assert isinstance(value, np.ndarray) and value.ndim == 1


def test_data_start_end():
    d = Data(x=Interval(0.0, 1.0), y=Interval(2.0, 3.0), domain="auto")
    assert (d.start, d.end) == (0.0, 3.0)
    assert Data(z=1).start is None


# ------------------------------------------------------------------ 4. Interval iteration, subdivide, coalesce
def test_iteration_gives_start_end_pairs():
    iv = Interval(start=[0.0, 1.0, 2.0], end=[1.0, 2.0, 3.0], some_other_attribute=[0, 1, 2])
    assert [(float(s), float(e)) for s, e in iv] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]


SUBDIVIDE = [
    # (starts, ends, step, drop_short, expected starts, expected ends, expected row of each piece)
    ([0.0, 20.0], [10.0, 30.0], 2.5, False, [0, 2.5, 5, 7.5, 20, 22.5, 25, 27.5], [2.5, 5, 7.5, 10, 22.5, 25, 27.5, 30],
     [0, 0, 0, 0, 1, 1, 1, 1]),
    ([0.0], [10.0], 3.0, False, [0, 3, 6, 9], [3, 6, 9, 10], [0, 0, 0, 0]),
    ([0.0], [10.0], 3.0, True, [0, 3, 6], [3, 6, 9], [0, 0, 0]),
    ([0.0, 5.0], [1.0, 6.0], 3.0, True, [], [], []),
    ([0.0, 5.0], [1.0, 6.0], 3.0, False, [0, 5], [1, 6], [0, 1]),
    ([1.0], [1.0], 1.0, False, [], [], []),
    ([0.0], [1.0], 0.1, False, np.arange(10) / 10, np.arange(1, 11) / 10, [0] * 10),
    ([0.0], [0.3], 0.1, True, [0.0, 0.1, 0.2], [0.1, 0.2, 0.3], [0, 0, 0]),
    ([], [], 1.0, False, [], [], []),
]


@pytest.mark.parametrize("starts, ends, step, drop, exp_s, exp_e, rows", SUBDIVIDE)
def test_subdivide(starts, ends, step, drop, exp_s, exp_e, rows):
    iv = Interval(start=np.array(starts, float), end=np.array(ends, float), trial=np.arange(len(starts)) + 1,
                  go=np.array(starts, float) + 1.0, timekeys=["start", "end", "go"])
    out = iv.subdivide(step, drop_short=drop)
    np.testing.assert_allclose(out.start, exp_s, atol=1e-12)
    np.testing.assert_allclose(out.end, exp_e, atol=1e-12)
    np.testing.assert_array_equal(out.trial, np.array(rows, dtype=int) + 1)
    np.testing.assert_array_equal(out.go, np.array(starts, float)[np.array(rows, dtype=int)] + 1.0)
    assert out.timekeys() == ["start", "end", "go"]
    if len(out):
        assert out.end[-1] == iv.end[rows[-1]] or drop


@pytest.mark.parametrize("step", [0.0, -1.0, float("nan"), "1"])
def test_subdivide_refuses_bad_step(step):
    with pytest.raises(ValueError, match="'step' must be a positive finite number"):
        Interval(0.0, 1.0).subdivide(step)


COALESCE = [
    # (starts, ends, eps, expected starts, expected ends)
    ([0.0, 1.0, 2.0, 5.0, 5.5, 10.0], [1.0, 2.0, 3.0, 5.5, 7.0, 12.0], 1e-6, [0, 5, 10], [3, 7, 12]),
    ([0.0, 1.0, 2.0, 5.0, 5.5, 10.0], [1.0, 2.0, 3.0, 5.5, 7.0, 12.0], 0.0,
     [0, 1, 2, 5, 5.5, 10], [1, 2, 3, 5.5, 7, 12]),
    ([0.0, 1.5], [1.0, 2.0], 0.6, [0], [2]),
    ([0.0, 1.5], [1.0, 2.0], 0.5, [0, 1.5], [1, 2]),
    ([0.0, 0.5], [1.0, 2.0], 0.0, [0], [2]),
    ([2.0, 0.0], [3.0, 1.0], 1e-6, [0, 2], [1, 3]),
    ([1.0, 1.0, 2.0], [1.0, 1.0, 3.0], 1e-6, [1, 2], [1, 3]),
    ([], [], 1e-6, [], []),
]


@pytest.mark.parametrize("starts, ends, eps, exp_s, exp_e", COALESCE)
def test_coalesce(starts, ends, eps, exp_s, exp_e):
    out = Interval(start=np.array(starts, float), end=np.array(ends, float), y=np.arange(len(starts))).coalesce(eps)
    np.testing.assert_array_equal(out.start, exp_s)
    np.testing.assert_array_equal(out.end, exp_e)
    assert out.keys() == ["start", "end"]


# ------------------------------------------------------------------ 4. point intervals and operand checks
def _iv(*pairs):
    return Interval(start=np.array([p[0] for p in pairs], float), end=np.array([p[1] for p in pairs], float))


POINT_OPS = [
    # (a, op, b, expected (start, end) pairs) — temporaldata 0.1.6's outputs on the same inputs
    (_iv((0, 1)), "&", _iv((1, 2)), []),
    (_iv((1, 1)), "&", _iv((1, 1)), [(1, 1)]),
    (_iv((1, 1)), "&", _iv((2, 2)), []),
    (_iv((0, 2)), "&", _iv((1, 1)), [(1, 1)]),
    (_iv((0, 2)), "&", _iv((2, 2)), [(2, 2)]),
    (_iv((2, 2)), "&", _iv((0, 2)), [(2, 2)]),
    (_iv((0, 0)), "&", _iv((0, 2)), [(0, 0)]),
    (_iv((1, 1), (2, 2.5), (3, 3)), "&", _iv((0, 10)), [(1, 1), (2, 2.5), (3, 3)]),
    (_iv((0, 1), (1.5, 1.5), (2, 3)), "&", _iv((1, 2.5)), [(1.5, 1.5), (2, 2.5)]),
    (_iv((1, 1)), "|", _iv((1, 1)), [(1, 1)]),
    (_iv((1, 1)), "|", _iv((2, 2)), [(1, 1), (2, 2)]),
    (_iv((0, 1)), "|", _iv((1, 1)), [(0, 1)]),
    (_iv((1, 1)), "|", _iv((1, 2)), [(1, 2)]),
    (_iv((2, 2)), "|", _iv((0, 2)), [(0, 2)]),
    (_iv((0, 1), (1.5, 1.5), (2, 3)), "|", _iv((5, 6)), [(0, 1), (1.5, 1.5), (2, 3), (5, 6)]),
    (_iv((0, 1), (1, 1), (2, 3)), "|", _iv((5, 6)), [(0, 1), (2, 3), (5, 6)]),
    (_iv((0, 2)), "-", _iv((1, 1)), [(0, 1), (1, 2)]),
    (_iv((0, 3)), "-", _iv((1, 1), (2, 2)), [(0, 1), (1, 2), (2, 3)]),
    (_iv((0, 2)), "-", _iv((0, 0)), [(0, 2)]),
    (_iv((0, 2)), "-", _iv((2, 2)), [(0, 2)]),
    (_iv((1, 1)), "-", _iv((0, 2)), []),
    (_iv((1, 1)), "-", _iv((1, 2)), []),
    (_iv((1, 1)), "-", _iv((0, 1)), []),
    (_iv((1, 1)), "-", _iv((1, 1)), []),
    (_iv((1, 1)), "-", _iv((2, 3)), [(1, 1)]),
    (_iv((0, 1), (1.5, 1.5), (2, 3)), "-", _iv((0.5, 1.5)), [(0, 0.5), (2, 3)]),
    (_iv((0, 1), (1.5, 1.5), (2, 3)), "-", _iv((1.6, 2.5)), [(0, 1), (1.5, 1.5), (2.5, 3)]),
]


@pytest.mark.parametrize("a, op, b, expected", POINT_OPS)
def test_point_intervals_in_set_operations(a, op, b, expected):
    out = {"&": lambda: a & b, "|": lambda: a | b, "-": lambda: a.difference(b)}[op]()
    assert [(float(s), float(e)) for s, e in out] == [(float(s), float(e)) for s, e in expected]


@pytest.mark.parametrize(
    "a, b, msg",
    [
        (_iv((0, 2), (1, 3)), _iv((0, 5)), "the left operand must be sorted and disjoint, but it is not disjoint"),
        (_iv((2, 3), (0, 1)), _iv((0, 5)), "the left operand must be sorted and disjoint, but it is not sorted"),
        (_iv((0, 5)), _iv((0, 2), (1, 3)), "the right operand must be sorted and disjoint"),
        (_iv((0, 5)), _iv((0, 3), (1, 1)), "the right operand must be sorted and disjoint"),
    ],
)
@pytest.mark.parametrize("op", ["&", "|", "difference"])
def test_set_operations_refuse_overlapping_or_unsorted_operands(a, b, msg, op):
    with pytest.raises(ValueError, match=msg):
        {"&": lambda: a & b, "|": lambda: a | b, "difference": lambda: a.difference(b)}[op]()
    # what the message suggests works
    fixed = a.coalesce() & b.coalesce()
    assert fixed.is_sorted() and fixed.is_disjoint()


def test_point_intervals_in_slicing_and_select_by_interval():
    pts = _iv((0, 0), (0.5, 0.5), (1, 1), (2, 2))
    # ours keeps a point at the window start ([start, end) contains start); temporaldata drops it
    assert [float(s) for s, _ in pts.slice(0.0, 2.0, reset_origin=False)] == [0.0, 0.5, 1.0]
    assert [float(s) for s, _ in pts.select_by_interval(_iv((0, 2)))] == [0.0, 0.5, 1.0]
    ts = IrregularTimeSeries(np.array([0.0, 0.5, 1.0, 1.5, 2.0]), domain=_iv((0, 2)))
    np.testing.assert_array_equal(ts.select_by_interval(_iv((0.5, 0.5), (1, 1.5))).timestamps, [1.0])
    assert len(ts.slice(1.0, 1.0)) == 0


# ------------------------------------------------------------------ signatures code written for temporaldata uses
def test_keyword_and_positional_forms_of_temporaldata():
    ts = IrregularTimeSeries.from_dataframe(pd.DataFrame({"timestamps": [0.5, 1.0]}), Interval(0.0, 2.0))
    np.testing.assert_array_equal(ts.domain.end, [2.0])  # domain is the second positional argument
    assert list(Interval.from_list(interval_list=[(0.0, 1.0), (2.0, 3.0)])) == [(0.0, 1.0), (2.0, 3.0)]
    r = RegularTimeSeries(sampling_rate=10.0, x=np.arange(10.0))
    np.testing.assert_array_equal(r.slice(0.2, 0.5, eps=1e-7).x, [2.0, 3.0, 4.0])


@pytest.mark.parametrize("cls", [LazyArrayDict, LazyInterval, LazyIrregularTimeSeries, LazyRegularTimeSeries])
def test_lazy_classes_are_not_built_in_memory(cls):
    with pytest.raises(TypeError, match=r"objects are opened from HDF5 .* to build one in memory use \w+\(\.\.\.\)"):
        cls(x=np.arange(2))


def test_deprecated_split_domain_setters_set_the_attribute():
    d = Data(x=Interval(0.0, 1.0), domain="auto")
    with pytest.warns(DeprecationWarning, match=r"data.train_domain = interval"):
        assert d.set_train_domain(Interval(0.0, 0.5)) is None
    assert d.train_domain.end[0] == 0.5 and "train_domain" in d.keys()


def test_serialize_fn_map_converts_values_before_writing(tmp_path):
    class Subject:
        def __init__(self, name):
            self.name = name

    d = Data(subject=Subject("m1"), session=Data(who=Subject("m2")))
    with h5py.File(tmp_path / "s.h5", "w") as f:
        d.to_hdf5(f, serialize_fn_map={Subject: lambda s: s.name})
    back = Data.load(tmp_path / "s.h5", lazy=False)
    assert back.subject == "m1" and back.session.who == "m2"
    with h5py.File(tmp_path / "t.h5", "w") as f, pytest.raises(TypeError, match="is a Subject, which cannot be stored"):
        d.to_hdf5(f)


def test_a_file_that_fails_to_open_is_closed_again(tmp_path, monkeypatch):
    from torch_brain.data import _hdf5

    p = tmp_path / "bad.h5"
    with h5py.File(p, "w") as f:
        f.attrs["object"] = "Data"
        f.create_group("odd").attrs["object"] = "Tensor"
    opened = []
    real_open = _hdf5.open_file
    monkeypatch.setattr(_hdf5, "open_file", lambda *a: opened.append(real_open(*a)) or opened[-1])
    with pytest.raises(ValueError, match="object='Tensor'"):
        Data.load(p)
    assert len(opened) == 1 and not opened[0].id.valid


@pytest.mark.parametrize("key", ["spikes", "trials", "units", "lfp"])
def test_select_by_mask_on_lazy_objects_and_windows(path, key):
    ref = getattr(_data(), key)
    with Data.load(path) as data:
        for obj, base in ((getattr(data, key), ref), (getattr(data.slice(0.0, 1.0, reset_origin=False), key), None)):
            base = base if base is not None else getattr(_data().slice(0.0, 1.0, reset_origin=False), key)
            mask = np.arange(len(obj)) % 2 == 0
            out = obj.select_by_mask(mask)
            assert not type(out).__name__.startswith("Lazy")
            for col in base.keys():
                np.testing.assert_array_equal(getattr(out, col), getattr(base, col)[mask])
            with pytest.raises(ValueError, match="'mask' has"):
                obj.select_by_mask(np.ones(len(obj) + 1, bool))


# ------------------------------------------------------------------ temporaldata's own docstring examples
_PEER = Path(__file__).resolve().parents[2] / ".bench-venv" / "peer" / "bin" / "python"
_DUMP_EXAMPLES = (
    "import doctest, json, temporaldata as td\n"
    "out = []\n"
    "for name in td.__all__:\n"
    "    for t in doctest.DocTestFinder().find(getattr(td, name), name, module=False, globs={}):\n"
    "        out.append([t.name, [[e.source, e.want] for e in t.examples]])\n"
    "print(json.dumps(out))\n"
)


@pytest.mark.skipif(not _PEER.exists(), reason="temporaldata's virtualenv (.bench-venv/peer) is not built")
def test_temporaldata_docstring_examples_run_and_print_the_same():
    """Every example in temporaldata 0.1.6's docstrings, run against torch_brain.data: no error, and the
    same printed value (container reprs aside: ours are one line)."""
    import contextlib
    import io
    import json
    import os
    import re
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([str(_PEER), "-c", _DUMP_EXAMPLES], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    docs = json.loads(res.stdout.strip().splitlines()[-1])
    assert sum(len(ex) for _, ex in docs) > 100
    for name, examples in docs:
        g = {"np": np, **{n: getattr(tbd, n) for n in tbd.__all__}}
        for src, want in examples:
            src = src.replace("from temporaldata import", "from torch_brain.data import")
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                try:
                    value = eval(compile(src, "<example>", "eval"), g)
                    got = "" if value is None else repr(value)
                except SyntaxError:
                    exec(compile(src, "<example>", "exec"), g)
                    got = ""
            got = " ".join((got or buf.getvalue()).split())
            want = " ".join(want.split())
            if want and not re.match(r"^\w*(ArrayDict|Interval|TimeSeries|Data)\(", want):
                assert got == want, f"{name}: {src.strip()}"
