"""Readout preparation (weights, eval mask, normalisation, keys) and MultitaskReadout packing."""

import numpy as np
import pytest
import torch

from torch_brain.data import Data, Interval, IrregularTimeSeries
from torch_brain.models import MultitaskReadout
from torch_brain.models.tokenizer import in_intervals, prepare_readout
from torch_brain.registry import MODALITY_REGISTRY, DataType, ModalitySpec


def test_in_intervals_matches_brute_force():
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 10, 6)
    ends = starts + rng.uniform(0, 3, 6)  # unsorted, overlapping
    t = np.concatenate([rng.uniform(-1, 14, 200), starts, ends])
    brute = np.array([any(s <= x < e for s, e in zip(starts, ends)) for x in t])
    np.testing.assert_array_equal(in_intervals(t, starts, ends), brute)
    assert not in_intervals(np.array([1.0]), np.array([]), np.array([])).any()


def _window():
    t = np.array([0.05, 0.15, 0.25, 0.35, 0.45])
    vel = np.arange(10, dtype=np.float64).reshape(5, 2)
    return Data(
        cursor=IrregularTimeSeries(t, vel=vel, domain=Interval(0.0, 0.5)),
        reach=Interval(np.array([0.1]), np.array([0.3])),
        hold=Interval(np.array([0.2]), np.array([0.4])),
        evalp=Interval(np.array([0.0, 0.4]), np.array([0.2, 0.5])),
        session=Data(id="bs/s1"),
        domain=Interval(0.0, 0.5),
    )


def test_weights_multiply_where_intervals_overlap_and_eval_mask():
    spec = MODALITY_REGISTRY["cursor_velocity_2d"]
    cfg = {"readout_id": "cursor_velocity_2d", "weights": {"reach": 5.0, "hold": 0.1}, "eval_interval": "evalp"}
    out = prepare_readout(_window(), spec, cfg)
    # t=0.05: none; 0.15: reach; 0.25: reach & hold; 0.35: hold; 0.45: none
    np.testing.assert_allclose(out.weights, [1.0, 5.0, 0.5, 0.1, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(out.eval_mask, [True, True, False, False, True])
    np.testing.assert_array_equal(out.timestamps, [0.05, 0.15, 0.25, 0.35, 0.45])
    assert out.values.dtype == np.float32 and out.values.shape == (5, 2)


def test_normalisation_and_key_override():
    spec = MODALITY_REGISTRY["cursor_velocity_2d"]
    cfg = {"normalize_mean": [1.0, 2.0], "normalize_std": 2.0, "value_key": "cursor.vel"}
    out = prepare_readout(_window(), spec, cfg)
    expected = (np.arange(10).reshape(5, 2) - np.array([1.0, 2.0])) / 2.0
    np.testing.assert_allclose(out.values, expected)
    assert out.eval_mask.all() and np.all(out.weights == 1)


def test_categorical_values_are_int64_labels():
    spec = ModalitySpec(id=4242, dim=3, type=DataType.MULTINOMIAL, timestamp_key="cursor.timestamps",
                        value_key="cursor.label", name="lbl")
    w = _window()
    w.cursor.label = np.array([0, 2, 1, 1, 0], dtype=np.int32)
    out = prepare_readout(w, spec)
    assert out.values.dtype == np.int64 and out.values.tolist() == [0, 2, 1, 1, 0]
    w.cursor.label = np.array([0, 3, 1, 1, 0])
    with pytest.raises(ValueError, match=r"class labels .* must be in \[0, 3\)"):
        prepare_readout(w, spec)


def test_missing_key_names_key_session_and_spec():
    spec = MODALITY_REGISTRY["hand_velocity_2d"]
    with pytest.raises(ValueError, match=r"'hand_velocity_2d'.*'hand.timestamps'.*'bs/s1'.*spec"):
        prepare_readout(_window(), spec)
    with pytest.raises(ValueError, match=r"weights interval 'nope'"):
        prepare_readout(_window(), MODALITY_REGISTRY["cursor_velocity_2d"], {"weights": {"nope": 2.0}})
    with pytest.raises(ValueError, match=r"unknown config keys \['wieghts'\]"):
        prepare_readout(_window(), MODALITY_REGISTRY["cursor_velocity_2d"], {"wieghts": {}})


def test_multitask_readout_packing():
    torch.manual_seed(0)
    specs = {n: MODALITY_REGISTRY[n] for n in ("cursor_velocity_2d", "reach_direction", "running_speed")}
    ro = MultitaskReadout(6, specs)
    emb = torch.randn(2, 4, 6)
    ids = torch.tensor([[1, 8, 1, 0], [8, 8, 0, 0]])  # cursor=1, reach=8, running (5) absent
    out = ro(emb, ids)
    assert set(out) == {"cursor_velocity_2d", "reach_direction"}
    lin_c, lin_r = ro.projections["cursor_velocity_2d"], ro.projections["reach_direction"]
    torch.testing.assert_close(out["cursor_velocity_2d"], lin_c(torch.stack([emb[0, 0], emb[0, 2]])))
    torch.testing.assert_close(out["reach_direction"], lin_r(torch.stack([emb[0, 1], emb[1, 0], emb[1, 1]])))
    unpacked = ro(emb, ids, unpack_output=True)
    assert set(unpacked[0]) == {"cursor_velocity_2d", "reach_direction"} and set(unpacked[1]) == {"reach_direction"}
    torch.testing.assert_close(unpacked[1]["reach_direction"], out["reach_direction"][1:])


@pytest.mark.parametrize(
    "specs,exc,match",
    [
        (MODALITY_REGISTRY["cursor_velocity_2d"], TypeError, "must be a dict task name -> ModalitySpec"),
        ({}, ValueError, "readout_specs is empty"),
        ({"a": MODALITY_REGISTRY["cursor_velocity_2d"], "b": MODALITY_REGISTRY["cursor_velocity_2d"]}, ValueError,
         "share id 1"),
        ({"a.b": MODALITY_REGISTRY["cursor_velocity_2d"]}, ValueError, "without '.'"),
    ],
)
def test_multitask_readout_bad_specs(specs, exc, match):
    with pytest.raises(exc, match=match):
        MultitaskReadout(4, specs)
