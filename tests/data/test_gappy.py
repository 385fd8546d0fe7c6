"""Gappy RegularTimeSeries (several domain intervals, gap samples filled): construction, masks,
slicing, to_irregular, storage — tables from temporaldata 0.1.6's documented/observed outputs, and a
hypothesis test against a brute-force reference on the sample grid (eager and lazy)."""

import os
import tempfile

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torch_brain.data import Data, Interval, LazyRegularTimeSeries, RegularTimeSeries


def _doc_series():
    # temporaldata's docstring example: 0.02 s and 0.05 s are missing at 100 Hz
    return RegularTimeSeries.from_gappy_timeseries(
        [0.0, 0.01, 0.03, 0.04, 0.06], sampling_rate=100.0, raw=[1, 2, 3, 4, 5], f=[1.0, 2.0, 3.0, 4.0, 5.0],
        u=np.array([1, 2, 3, 4, 5], np.uint8), b=np.ones(5, bool),
    )


def test_from_gappy_timeseries_as_documented():
    r = _doc_series()
    np.testing.assert_array_equal(r.raw, [1, 2, -1, 3, 4, -1, 5])
    np.testing.assert_array_equal(r.f, [1.0, 2.0, np.nan, 3.0, 4.0, np.nan, 5.0])
    np.testing.assert_array_equal(r.u, [1, 2, 0, 3, 4, 0, 5])
    np.testing.assert_array_equal(r.b, [True, True, False, True, True, False, True])
    np.testing.assert_allclose(r.domain.start, [0.0, 0.03, 0.06])
    np.testing.assert_allclose(r.domain.end, [0.02, 0.05, 0.07])
    np.testing.assert_array_equal(r.index_mask(), [True, True, False, True, True, False, True])
    assert r.is_gappy() and len(r) == 7
    np.testing.assert_allclose(r.timestamps, np.arange(7) / 100)
    irr = r.to_irregular()
    np.testing.assert_allclose(irr.timestamps, [0.0, 0.01, 0.03, 0.04, 0.06])
    np.testing.assert_array_equal(irr.raw, [1, 2, 3, 4, 5])
    np.testing.assert_allclose(irr.domain.end, [0.02, 0.05, 0.07])
    irr.raw[0] = 99  # copies
    assert r.raw[0] == 1
    plain = RegularTimeSeries(raw=np.arange(4), sampling_rate=100.0)
    assert not plain.is_gappy() and plain.index_mask().all()
    whole = RegularTimeSeries.from_gappy_timeseries([1.0, 1.01, 1.02], sampling_rate=100.0, x=[1, 2, 3])
    assert not whole.is_gappy()
    np.testing.assert_allclose([whole.domain.start[0], whole.domain.end[0]], [1.0, 1.03])


SLICES = [
    # (start, end, raw, domain starts, domain ends) with reset_origin=True, as temporaldata gives them
    (0.0, 0.07, [1, 2, -1, 3, 4, -1, 5], [0.0, 0.03, 0.06], [0.02, 0.05, 0.07]),
    (0.015, 0.07, [3, 4, -1, 5], [0.015, 0.045], [0.035, 0.055]),
    (0.02, 0.07, [3, 4, -1, 5], [0.01, 0.04], [0.03, 0.05]),
    (0.021, 0.05, [3, 4], [0.009], [0.029]),
    (0.0, 0.025, [1, 2], [0.0], [0.02]),
    (0.0, 0.03, [1, 2], [0.0], [0.02]),
    (-1.0, 0.015, [1, 2], [1.0], [1.02]),
    (0.02, 0.03, [], None, None),
    (0.05, 0.06, [], None, None),
    (0.1, 0.2, [], None, None),
]


@pytest.mark.parametrize("start, end, raw, dom_s, dom_e", SLICES)
def test_slice_trims_outer_gaps_and_keeps_inner_ones(start, end, raw, dom_s, dom_e):
    w = _doc_series().slice(start, end)
    np.testing.assert_array_equal(w.raw, raw)
    if dom_s is not None:
        np.testing.assert_allclose(w.domain.start, dom_s, atol=1e-12)
        np.testing.assert_allclose(w.domain.end, dom_e, atol=1e-12)
        assert w.is_gappy() == (len(dom_s) > 1)
    else:
        assert len(w) == 0 and not w.is_gappy()


@pytest.mark.parametrize(
    "kwargs, err, msg",
    [
        (dict(timestamps=[0.0, 0.0101, 0.03]), ValueError, r"0.01 samples off the 100 Hz grid, more than rtol=0.001"),
        (dict(timestamps=[0.0, 0.02, 0.01]), ValueError, "strictly increasing"),
        (dict(timestamps=[0.0, 0.0, 0.01]), ValueError, "strictly increasing"),
        (dict(timestamps=[0.0, 0.02]), ValueError, r"sampling_rate' looks too high \(about 50 Hz"),
        (dict(timestamps=[0.0]), ValueError, "at least 2 entries"),
        (dict(timestamps=[0.0, 0.01], x=[1]), ValueError, "column 'x' has shape"),
        (dict(timestamps=[0.0, 0.01, 0.03], x=[1.0, 2.0, 3.0], gap_value={"i": 0}), KeyError,
         "no entry for dtype kind 'f'"),
        (dict(timestamps=[0.0, 0.01, 0.03], x=np.array(["a", "b", "c"])), ValueError, "pass gap_value="),
    ],
)
def test_from_gappy_timeseries_refusals(kwargs, err, msg):
    kwargs.setdefault("x", np.arange(len(kwargs["timestamps"]), dtype=float))
    with pytest.raises(err, match=msg):
        RegularTimeSeries.from_gappy_timeseries(sampling_rate=100.0, **kwargs)


def test_gap_values_scalar_dict_and_rtol():
    r = RegularTimeSeries.from_gappy_timeseries([0.0, 0.01, 0.03], sampling_rate=100.0, x=[1.0, 2.0, 3.0],
                                                y=[1, 2, 3], gap_value=7)
    assert r.x[2] == 7.0 and r.y[2] == 7
    r = RegularTimeSeries.from_gappy_timeseries([0.0, 0.01, 0.03], sampling_rate=100.0, x=[1.0, 2.0, 3.0],
                                                y=[1, 2, 3], gap_value={"f": -5.0, "i": 9})
    assert r.x[2] == -5.0 and r.y[2] == 9
    r = RegularTimeSeries.from_gappy_timeseries([0.0, 0.0101, 0.03], sampling_rate=100.0, rtol=0.02, x=[1, 2, 3])
    assert r.is_gappy()


@pytest.mark.parametrize(
    "domain, msg",
    [
        (Interval([0.0, 0.6], [0.3, 1.0]), None),
        (Interval([0.0, 0.65], [0.3, 1.0]), "must start and end on the sample grid"),
        (Interval([0.0, 0.6], [0.3, 0.9]), "the last piece must end one sample after the last sample"),
        (Interval(0.0, 1.0), None),
        (Interval(0.0, 0.7), "'domain' ends at 0.7"),
        ("auto", None),
    ],
)
def test_domain_argument_variants(domain, msg):
    if msg is None:
        r = RegularTimeSeries(sampling_rate=10.0, x=np.arange(10.0), domain=domain)
        if isinstance(domain, Interval):
            np.testing.assert_allclose(r.domain.start, domain.start)
            np.testing.assert_allclose(r.domain.end, domain.end)
            np.testing.assert_array_equal(r.index_mask(), np.isin(np.arange(10), [0, 1, 2, 6, 7, 8, 9])
                                          if len(domain) > 1 else np.ones(10, bool))
    else:
        with pytest.raises(ValueError, match=msg):
            RegularTimeSeries(sampling_rate=10.0, x=np.arange(10.0), domain=domain)


@pytest.mark.parametrize("lazy", [False, True])
def test_gappy_round_trip(tmp_path, lazy):
    Data(r=_doc_series(), domain="auto").save(tmp_path / "g.h5")
    with h5py.File(tmp_path / "g.h5", "r") as f:
        np.testing.assert_allclose(f["r/domain/start"][()], [0.0, 0.03, 0.06])  # the layout temporaldata writes
        data = Data.from_hdf5(f, lazy=lazy)
        assert isinstance(data.r, LazyRegularTimeSeries) == lazy
        assert data.r.is_gappy()
        w = data.r.slice(0.02, 0.07)
        np.testing.assert_array_equal(w.raw, [3, 4, -1, 5])
        np.testing.assert_allclose(w.domain.start, [0.01, 0.04], atol=1e-12)
        np.testing.assert_array_equal(data.r.index_mask(), [True, True, False, True, True, False, True])


# ------------------------------------------------------------------ hypothesis: brute force on the grid
FS = 4.0


@st.composite
def gappy(draw):
    idx = sorted(draw(st.sets(st.integers(0, 40), min_size=2, max_size=25)))
    idx = np.array(idx)
    idx = idx - idx[0]
    if np.min(np.diff(idx)) > 1:  # needs one pair of neighbours (else the rate looks too high)
        idx = np.concatenate([[0], idx + 1])
    t0 = draw(st.integers(-8, 8)) * 0.25
    return t0, idx


def _brute(t0, idx, start, end, reset):
    """Kept rows: grid k from the first to the last real sample inside [start, end)."""
    real = [k for k in idx if start <= t0 + k / FS < end]
    if not real:
        return np.zeros(0), np.zeros(0, bool), []
    ks = np.arange(real[0], real[-1] + 1)
    present = np.isin(ks, idx)
    shift = start if reset else 0.0
    runs, cur = [], None
    for k, p in zip(ks, present):
        if p and cur is None:
            cur = [k, k + 1]
        elif p:
            cur[1] = k + 1
        elif cur is not None:
            runs.append(cur)
            cur = None
    runs.append(cur)
    return t0 + ks / FS - shift, present, [(t0 + a / FS - shift, t0 + b / FS - shift) for a, b in runs]


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(gappy(), st.integers(-20, 200), st.integers(0, 120), st.booleans())
def test_gappy_slice_matches_brute_force(case, i, k, reset):
    t0, idx = case
    start, end = t0 + i / 16, t0 + i / 16 + k / 16
    r = RegularTimeSeries.from_gappy_timeseries(t0 + idx / FS, sampling_rate=FS, v=idx.astype(float) + 1.0)
    fd, path = tempfile.mkstemp(suffix=".h5")
    os.close(fd)
    try:
        Data(r=r).save(path)
        with Data.load(path) as lazy:
            for obj in (r, lazy.r):
                w = obj.slice(start, end, reset_origin=reset)
                ts, present, dom = _brute(t0, idx, start, end, reset)
                np.testing.assert_allclose(w.timestamps, ts, atol=1e-9)
                np.testing.assert_array_equal(w.index_mask(), present)
                np.testing.assert_array_equal(np.isnan(w.v), ~present)
                grid_index = np.round((ts[present] + (start if reset else 0) - t0) * FS)
                np.testing.assert_allclose(w.v[present], grid_index + 1)  # v holds the grid index + 1
                if dom:
                    got = list(zip(w.domain.start.tolist(), w.domain.end.tolist()))
                    np.testing.assert_allclose(got, dom, atol=1e-9)
                    assert w.is_gappy() == (len(dom) > 1)
                irr = w.to_irregular()
                np.testing.assert_allclose(irr.timestamps, ts[present], atol=1e-9)
    finally:
        os.remove(path)


_PEER = os.path.join(os.path.dirname(__file__), "..", "..", ".bench-venv", "peer", "bin", "python")


@pytest.mark.skipif(not os.path.exists(_PEER), reason="temporaldata's virtualenv (.bench-venv/peer) is not built")
def test_gappy_files_interop_with_temporaldata(tmp_path):
    import json
    import subprocess

    Data(r=_doc_series(), domain="auto").save(tmp_path / "ours.h5")
    script = (
        "import json, sys, numpy as np\n"
        "from temporaldata import Data, RegularTimeSeries\n"
        "with Data.load(sys.argv[1]) as d:\n"
        "    out = dict(gappy=bool(d.r.is_gappy()), raw=d.r.slice(0.02, 0.07).raw.tolist(),\n"
        "               mask=d.r.index_mask().tolist())\n"
        "r = RegularTimeSeries.from_gappy_timeseries([0.0, 0.01, 0.03, 0.04, 0.06], sampling_rate=100.0,\n"
        "                                            raw=[1, 2, 3, 4, 5])\n"
        "Data(r=r, domain='auto').save(sys.argv[2])\n"
        "print(json.dumps(out))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([_PEER, "-c", script, str(tmp_path / "ours.h5"), str(tmp_path / "theirs.h5")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got == {"gappy": True, "raw": [3, 4, -1, 5], "mask": [True, True, False, True, True, False, True]}
    with Data.load(tmp_path / "theirs.h5") as d:
        assert d.r.is_gappy()
        np.testing.assert_array_equal(d.r.slice(0.02, 0.07).raw, [3, 4, -1, 5])
