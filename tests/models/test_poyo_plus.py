"""POYOPlus: tokenize on hand-built windows, shape/mask contracts, padding, errors, overfitting."""

import numpy as np
import pytest
import torch
from .conftest import SESSIONS, TINY, UNITS, init_vocab, make_window

from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, collate
from torch_brain.models import POYOPlus
from torch_brain.optim import SparseLamb
from torch_brain.registry import MODALITY_REGISTRY


def _model(**kw):
    torch.manual_seed(0)
    return init_vocab(POYOPlus(**{**TINY, **kw}))


def test_guide_constructor_and_default_specs():
    model = POYOPlus(sequence_length=1.0, latent_step=0.05, dim=256, depth=4)
    assert set(model.readout.readout_specs) >= set(MODALITY_REGISTRY)
    assert model.unit_emb.is_lazy() and model.session_emb.is_lazy()
    with pytest.raises(TypeError):
        POYOPlus(1.0)  # keyword-only


def test_tokenize_hand_built_window():
    model = _model()
    data = Data(
        units=ArrayDict(id=np.array(["bs/s1/u2", "bs/s1/u0"])),
        spikes=IrregularTimeSeries(np.array([0.1, 0.4, 0.7]), unit_index=np.array([1, 0, 1]),
                                   domain=Interval(0.0, 1.0)),
        cursor=IrregularTimeSeries(np.array([0.2, 0.6]), vel=np.array([[1.0, 2.0], [3.0, 4.0]]),
                                   domain=Interval(0.0, 1.0)),
        reach_direction=IrregularTimeSeries(np.array([0.5]), direction_id=np.array([6]),
                                            domain=Interval(0.0, 1.0)),
        hold=Interval(np.array([0.5]), np.array([0.7])),
        session=Data(id="bs/s1"),
        domain=Interval(0.0, 1.0),
    )
    data.absolute_start = 12.5
    data.config = {"multitask_readout": [
        {"readout_id": "cursor_velocity_2d", "weights": {"hold": 3.0}, "eval_interval": "hold"},
        {"readout_id": "reach_direction"},
    ]}
    out = model.tokenize(data)
    batch = collate([out])
    mi = batch["model_inputs"]
    u0, u2 = UNITS.index("bs/s1/u0"), UNITS.index("bs/s1/u2")
    n = 3 + 2 + 2
    assert mi["input_unit_index"].shape == (1, 8)  # padded to a multiple of 8
    assert mi["input_unit_index"][0, :n].tolist() == [u0, u2, u0, u2, u0, u2, u0]
    assert mi["input_token_type"][0, :n].tolist() == [0, 0, 0, 1, 1, 2, 2]
    np.testing.assert_allclose(mi["input_timestamps"][0, :n].numpy(), [0.1, 0.4, 0.7, 0, 0, 1, 1], rtol=1e-6)
    assert mi["input_mask"][0].tolist() == [True] * 7 + [False]
    # latents: 4 steps of 0.25 s, 2 per step, at the step centres
    assert mi["latent_index"][0].tolist() == [0, 1] * 4
    np.testing.assert_allclose(mi["latent_timestamps"][0].numpy(), np.repeat([0.125, 0.375, 0.625, 0.875], 2))
    # queries: cursor (2) then reach (1), padded to 8
    assert mi["output_timestamps"][0, :3].tolist() == [0.2, 0.6, 0.5]
    assert mi["output_decoder_index"][0].tolist() == [1, 1, 8, 0, 0, 0, 0, 0]
    assert mi["output_session_index"][0, :3].tolist() == [SESSIONS.index("bs/s1")] * 3
    torch.testing.assert_close(batch["target_values"]["cursor_velocity_2d"], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert batch["target_values"]["reach_direction"].tolist() == [6]
    assert batch["target_values"]["reach_direction"].dtype == torch.int64
    assert batch["target_weights"]["cursor_velocity_2d"].tolist() == [1.0, 3.0]
    assert batch["eval_mask"]["cursor_velocity_2d"].tolist() == [False, True]
    assert batch["session_id"] == ["bs/s1"] and batch["absolute_start"].tolist() == [12.5]


def _batch(model, sizes=(30, 50), tasks=None):
    kwargs = {} if tasks is None else {"tasks": tasks}
    return collate([model.tokenize(make_window(SESSIONS[i % 2], n, seed=i, **kwargs)) for i, n in enumerate(sizes)])


def test_output_contract_packed_and_unpacked():
    model = _model().eval()
    batch = _batch(model)
    packed = model(**batch["model_inputs"], unpack_output=False)
    for task in ("cursor_velocity_2d", "reach_direction"):
        assert packed[task].shape == (batch["target_values"][task].shape[0], MODALITY_REGISTRY[task].dim)
    unpacked = model(**batch["model_inputs"], unpack_output=True)
    assert len(unpacked) == 2
    for task in packed:
        torch.testing.assert_close(torch.cat([u[task] for u in unpacked]), packed[task])
    # the guide's per-task loss and sample count
    for task, pred in packed.items():
        spec = model.readout.readout_specs[task]
        loss = spec.loss_fn(pred, batch["target_values"][task], batch["target_weights"].get(task))
        assert torch.isfinite(loss)
        n = torch.any(batch["model_inputs"]["output_decoder_index"] == spec.id, dim=1).sum()
        assert n.item() == 2


def test_padding_does_not_change_outputs_and_padded_units_get_no_grad():
    model = _model().eval()
    alone = collate([model.tokenize(make_window("bs/s0", 20, seed=3))])
    both = collate([model.tokenize(make_window("bs/s0", 20, seed=3)), model.tokenize(make_window("bs/s1", 90, seed=4))])
    assert both["model_inputs"]["input_mask"][0].sum() < both["model_inputs"]["input_mask"].shape[1]
    a = model(**alone["model_inputs"], unpack_output=True)[0]
    b = model(**both["model_inputs"], unpack_output=True)[0]
    for task in a:
        torch.testing.assert_close(a[task], b[task], atol=1e-5, rtol=0)
    # padded input tokens use unit row 0 ("pad/unused"), which no real token uses
    out = model(**both["model_inputs"])
    sum(v.sum() for v in out.values()).backward()
    grad = model.unit_emb.weight.grad
    assert torch.all(grad[0] == 0) and torch.any(grad[1:] != 0)


def test_latent_grid_path_equals_per_token_rotation(monkeypatch):
    from torch_brain.nn import RotarySelfAttention

    model = _model().train()
    batch = _batch(model, sizes=tuple(8 + i % 5 for i in range(32)))  # B * N = 256 >= 4 * G * dim
    taken = []
    grid_forward = RotarySelfAttention._forward_grid
    monkeypatch.setattr(RotarySelfAttention, "_forward_grid", lambda *a: taken.append(1) or grid_forward(*a))

    def outputs_and_grads():
        torch.manual_seed(7)  # same dropout masks
        model.zero_grad()
        out = model(**batch["model_inputs"])
        sum((v * torch.linspace(-1, 1, v.numel()).view_as(v)).sum() for v in out.values()).backward()
        return out, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    out, grads = outputs_and_grads()
    assert len(taken) == TINY["depth"]
    monkeypatch.setattr(model.rotary, "grid", lambda timestamps: None)
    ref_out, ref_grads = outputs_and_grads()
    assert len(taken) == TINY["depth"]
    for task in ref_out:
        torch.testing.assert_close(out[task], ref_out[task], atol=1e-5, rtol=1e-4)
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-4)


def test_task_absent_from_batch_is_left_out():
    model = _model()
    batch = _batch(model, tasks=("cursor_velocity_2d",))
    out = model(**batch["model_inputs"])
    assert set(out) == {"cursor_velocity_2d"} and set(batch["target_values"]) == {"cursor_velocity_2d"}


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: setattr(d, "units", ArrayDict(id=np.array(["new/s9/u0"] * 4))),
         r"'new/s9/u0'.*extend_vocab"),
        (lambda d: setattr(d, "session", Data(id="new/s9")), r"'new/s9'.*extend_vocab"),
        (lambda d: d.config["multitask_readout"].append({"readout_id": "hand_velocity_2d"}),
         r"'hand_velocity_2d'.*'hand.timestamps'.*'bs/s0'.*spec"),
        (lambda d: setattr(d, "config", {}), "no 'multitask_readout' entries"),
        (lambda d: d.config["multitask_readout"].append({"readout_id": "unknown_task"}),
         r"'unknown_task'.*not in this model's readout_specs"),
        (lambda d: setattr(d, "domain", Interval(0.0, 2.0)), "longer|sequence_length"),
    ],
)
def test_tokenize_bad_input(mutate, match):
    model = _model()
    data = make_window()
    mutate(data)
    with pytest.raises(ValueError, match=match):
        model.tokenize(data)


def test_tokenize_needs_vocab():
    with pytest.raises(ValueError, match=r"unit_emb has no vocabulary; call model.unit_emb.initialize_vocab"):
        POYOPlus(**TINY).tokenize(make_window())


def test_forward_bad_input():
    model = _model()
    mi = dict(_batch(model)["model_inputs"])
    bad = dict(mi, output_decoder_index=mi["output_decoder_index"].masked_fill(mi["output_decoder_index"] == 8, 77))
    with pytest.raises(ValueError, match=r"task ids \[77\].*not in this model's readout_specs"):
        model(**bad)
    with pytest.raises(ValueError, match="input_timestamps must have the shape of input_unit_index"):
        model(**dict(mi, input_timestamps=mi["input_timestamps"][:, :-1]))
    with pytest.raises(TypeError, match="input_mask must be a bool tensor"):
        model(**dict(mi, input_mask=mi["input_mask"].float()))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(sequence_length=1.0, latent_step=0.3), "whole multiple of latent_step"),
        (dict(dim=0), "dim must be a positive int"),
        (dict(ffn_dropout=1.5), r"ffn_dropout must be a probability"),
        (dict(t_min=5.0, t_max=4.0), "t_min must be smaller than t_max"),
    ],
)
def test_constructor_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        POYOPlus(**{**TINY, **kwargs})


def test_overfits_tiny_batch():
    """Targets that depend on the session only: the session -> query -> readout path must learn them."""
    model = _model(dim=32)
    windows = []
    for i, sign in enumerate((1.0, -1.0)):
        w = make_window(SESSIONS[i], 40 + 20 * i, seed=i)
        w.cursor.vel = np.tile([[sign, -0.5 * sign]], (10, 1))
        w.reach_direction.direction_id = np.array([2, 2]) if i == 0 else np.array([5, 5])
        windows.append(model.tokenize(w))
    batch = collate(windows)
    opt = SparseLamb(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        out = model(**batch["model_inputs"])
        loss = sum(model.readout.readout_specs[t].loss_fn(p, batch["target_values"][t], batch["target_weights"][t])
                   for t, p in out.items())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.1 * losses[0]
