"""POYO (single task): tokenize, output contract, config entry use."""

import numpy as np
import pytest
import torch
from .conftest import SESSIONS, TINY, init_vocab, make_window

from torch_brain.data import collate
from torch_brain.models import POYO
from torch_brain.registry import MODALITY_REGISTRY


def _model(**kw):
    torch.manual_seed(0)
    return init_vocab(POYO(**{**TINY, "readout_spec": MODALITY_REGISTRY["cursor_velocity_2d"], **kw}))


def test_tokenize_and_forward_contract():
    model = _model().eval()
    windows = [make_window(SESSIONS[0], 30, seed=0), make_window(SESSIONS[1], 45, seed=1)]
    windows[1].config = {"multitask_readout": [
        {"readout_id": "cursor_velocity_2d", "weights": {"hold": 4.0}, "normalize_std": 2.0}]}
    from torch_brain.data import Interval
    windows[1].hold = Interval(np.array([0.0]), np.array([0.3]))
    batch = collate([model.tokenize(w) for w in windows])
    mi = batch["model_inputs"]
    assert "output_decoder_index" not in mi and mi["output_mask"].dtype == torch.bool
    assert mi["output_mask"].sum(dim=1).tolist() == [10, 10]
    assert batch["target_values"].shape == (20, 2)
    # config entry of the spec's task applied to window 1 only: weights and normalisation
    np.testing.assert_allclose(batch["target_weights"][10:13].numpy(), [4.0, 4.0, 4.0])
    assert batch["target_weights"][13:].eq(1).all() and batch["target_weights"][:10].eq(1).all()
    np.testing.assert_allclose(batch["target_values"][10:].numpy(), windows[1].cursor.vel / 2.0, rtol=1e-6)
    packed = model(**mi)
    assert packed.shape == (20, 2)
    unpacked = model(**mi, unpack_output=True)
    assert [u.shape for u in unpacked] == [(10, 2), (10, 2)]
    torch.testing.assert_close(torch.cat(unpacked), packed)
    loss = model.readout_spec.loss_fn(packed, batch["target_values"], batch["target_weights"])
    assert torch.isfinite(loss)


def test_spec_by_name_and_dim_out():
    model = POYO(readout_spec="reach_direction", dim=16, depth=1, dim_head=8, self_heads=2)
    assert model.readout.out_features == 8 and model.readout_spec.name == "reach_direction"
    assert POYO(readout_spec="cursor_velocity_2d", dim_out=5, dim=16, depth=1).readout.out_features == 5


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(readout_spec=3), TypeError, "readout_spec must be a ModalitySpec or a registered modality name"),
        (dict(readout_spec="nope"), ValueError, "Unknown modality 'nope'"),
        (dict(readout_spec="cursor_velocity_2d", dim_out=0), ValueError, "dim_out must be >= 1"),
    ],
)
def test_bad_args(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        POYO(**{**TINY, **kwargs})


def test_bad_output_mask():
    model = _model()
    mi = dict(collate([model.tokenize(make_window())])["model_inputs"])
    with pytest.raises(ValueError, match="output_mask must be a bool tensor"):
        model(**dict(mi, output_mask=mi["output_mask"].long()))
