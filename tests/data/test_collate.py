"""collate and its field wrappers, checked against hand-built batches."""

import numpy as np
import pytest
import torch

from torch_brain.data.collate import chain, collate, pad, pad8, track_batch, track_mask, track_mask8


def test_pad_and_mask_hand_built():
    a = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)
    b = np.array([[7.0, 8.0]], dtype=np.float32)
    out = collate([{"x": pad(a), "m": track_mask(a)}, {"x": pad(b), "m": track_mask(b)}])
    expected = torch.tensor(
        [[[1, 2], [3, 4], [5, 6]], [[7, 8], [0, 0], [0, 0]]], dtype=torch.float32
    )
    assert out["x"].dtype == torch.float32
    assert torch.equal(out["x"], expected)
    assert torch.equal(out["m"], torch.tensor([[True, True, True], [True, False, False]]))


def test_pad8_and_mask8_round_up():
    a, b = np.arange(3, dtype=np.int64), np.arange(9, dtype=np.int64)
    out = collate([{"x": pad8(a), "m": track_mask8(a)}, {"x": pad8(b), "m": track_mask8(b)}])
    assert out["x"].shape == (2, 16)
    assert out["x"][0].tolist() == [0, 1, 2] + [0] * 13
    assert out["x"][1].tolist() == list(range(9)) + [0] * 7
    assert out["m"].tolist() == [[True] * 3 + [False] * 13, [True] * 9 + [False] * 7]
    # already a multiple of 8: no extra padding
    c = np.ones(8)
    assert collate([pad8(c), pad8(c[:2])]).shape == (2, 8)


def test_pad_bool_pads_with_false():
    out = collate([pad(np.array([True, True])), pad(np.array([True]))])
    assert out.dtype == torch.bool
    assert out.tolist() == [[True, True], [True, False]]


def test_chain_and_track_batch_hand_built():
    s0 = np.array([[1.0], [2.0]])
    s1 = np.zeros((0, 1))
    s2 = np.array([[3.0], [4.0], [5.0]])
    out = collate([{"v": chain(s), "b": track_batch(s)} for s in (s0, s1, s2)])
    assert torch.equal(out["v"], torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0]], dtype=torch.float64))
    assert out["b"].tolist() == [0, 0, 2, 2, 2]
    assert out["b"].dtype == torch.int64


def test_chain_dict_missing_in_some_samples():
    # multitask targets: a task may be absent from a window
    batch = [
        {"t": {"a": chain(np.array([1, 2])), "ab": track_batch(np.array([1, 2]))}},
        {"t": {"b": chain(np.array([9]))}},
        {"t": {"a": chain(np.array([3])), "ab": track_batch(np.array([3])), "b": chain(np.array([8]))}},
    ]
    out = collate(batch)
    assert out["t"]["a"].tolist() == [1, 2, 3]
    assert out["t"]["ab"].tolist() == [0, 0, 2]
    assert out["t"]["b"].tolist() == [9, 8]


def test_wrapper_around_nested_dict():
    s = [
        chain({"x": np.array([1.0]), "y": {"z": np.array([2, 3])}}),
        chain({"x": np.array([4.0, 5.0]), "y": {"z": np.array([6])}}),
    ]
    out = collate(s)
    assert out["x"].tolist() == [1.0, 4.0, 5.0]
    assert out["y"]["z"].tolist() == [2, 3, 6]


def test_default_collation_types():
    batch = [
        {"f": 1.5, "i": 3, "s": "a", "flag": True, "arr": np.array([1, 2], dtype=np.int32),
         "t": torch.tensor([1.0, 2.0]), "nested": {"g": 0.25}, "tup": (1, "x")},
        {"f": 2.5, "i": 4, "s": "b", "flag": False, "arr": np.array([3, 4], dtype=np.int32),
         "t": torch.tensor([3.0, 4.0]), "nested": {"g": 0.5}, "tup": (2, "y")},
    ]
    out = collate(batch)
    assert out["f"].dtype == torch.float64 and out["f"].tolist() == [1.5, 2.5]
    assert out["i"].dtype == torch.int64 and out["i"].tolist() == [3, 4]
    assert out["s"] == ["a", "b"]
    assert out["flag"].tolist() == [True, False]
    assert out["arr"].dtype == torch.int32 and out["arr"].tolist() == [[1, 2], [3, 4]]
    assert out["t"].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert out["nested"]["g"].dtype == torch.float64
    assert out["tup"][0].tolist() == [1, 2] and out["tup"][1] == ["x", "y"]


def test_numpy_scalars_and_readonly_arrays():
    ro = np.arange(3.0)
    ro.flags.writeable = False
    out = collate([{"x": np.float64(1.0), "y": pad(ro)}, {"x": np.float64(2.0), "y": pad(ro[:1])}])
    assert out["x"].dtype == torch.float64
    assert out["y"].tolist() == [[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]]


def test_chain_strings_stay_numpy():
    out = collate([chain(np.array(["a", "b"])), chain(np.array(["c"]))])
    assert list(out) == ["a", "b", "c"]


def test_tokenize_like_batch():
    # shape of a POYO+ sample: padded inputs, chained targets
    def sample(n_in, n_out, sid):
        ts = np.linspace(0, 1, n_in)
        return {
            "model_inputs": {
                "input_timestamps": pad8(ts), "input_mask": track_mask8(ts),
                "output_timestamps": pad(np.arange(n_out, dtype=np.float64)),
            },
            "target_values": {"cursor": chain(np.ones((n_out, 2), dtype=np.float32))},
            "session_id": sid, "absolute_start": 10.0,
        }
    out = collate([sample(5, 2, "s0"), sample(11, 3, "s1")])
    assert out["model_inputs"]["input_timestamps"].shape == (2, 16)
    assert out["model_inputs"]["input_mask"].sum(1).tolist() == [5, 11]
    assert out["model_inputs"]["output_timestamps"].shape == (2, 3)
    assert out["target_values"]["cursor"].shape == (5, 2)
    assert out["session_id"] == ["s0", "s1"]
    assert out["absolute_start"].dtype == torch.float64


@pytest.mark.parametrize(
    "batch, exc, match",
    [
        ([], ValueError, "batch is empty"),
        ("abc", TypeError, "batch must be a list"),
        ([{"x": np.ones(2)}, {"x": np.ones(3)}], ValueError, r"field 'x' has shape \(2,\).*pad\(\)"),
        ([{"x": pad(np.ones(2))}, {"x": np.ones(2)}], TypeError, r"field 'x' is wrapped with pad\(\)"),
        ([{"x": pad(np.ones((2, 2)))}, {"x": pad(np.ones((2, 3)))}], ValueError, "same trailing shape"),
        ([{"x": pad(np.ones(2))}, {"x": pad(np.ones(2, dtype=np.int64))}], TypeError, "same dtype"),
        ([{"x": 1.0}, {}], ValueError, r"field 'x' is missing from sample\(s\) \[1\]"),
        ([{"x": pad(np.float64(1.0))}, {"x": pad(np.float64(1.0))}], ValueError, "0-dimensional"),
        ([{"x": pad(np.array(["a"]))}, {"x": pad(np.array(["b"]))}], TypeError, "dtype <U1"),
        ([{"x": object()}, {"x": object()}], TypeError, "does not know how to batch"),
        ([{"x": [1, 2]}, {"x": [1]}], ValueError, "sequence of length 2"),
        ([{"x": 1.0}, {"x": "a"}], TypeError, "same type"),
    ],
)
def test_bad_input(batch, exc, match):
    with pytest.raises(exc, match=match):
        collate(batch)


def test_works_with_dataloader():
    from torch.utils.data import DataLoader

    data = [{"x": pad(np.arange(i + 1, dtype=np.float32)), "id": f"s{i}"} for i in range(5)]
    loader = DataLoader(data, batch_size=2, collate_fn=collate)
    batches = list(loader)
    assert batches[0]["x"].tolist() == [[0.0, 0.0], [0.0, 1.0]]
    assert batches[2]["id"] == ["s4"]


def test_tensor_and_numpy_leaves_mix():
    out = collate([pad(torch.tensor([1, 2])), pad(np.array([3]))])
    assert out.tolist() == [[1, 2], [3, 0]]
    out = collate([chain(torch.ones(2, 3)), chain(torch.zeros(1, 3))])
    assert out.shape == (3, 3) and out.sum() == 6
    out = collate([pad([1.0, 2.0]), pad([3.0])])
    assert out.dtype == torch.float64 and out.tolist() == [[1.0, 2.0], [3.0, 0.0]]
