"""POYOPlus with expected-value readout heads: output contract, the guide's compute_loss,
checkpoint round trips of the fitted bins and codebooks, and the refusals."""

import numpy as np
import pytest
import torch
from .conftest import SESSIONS, TINY, init_vocab, make_window

from torch_brain.data import collate
from torch_brain.models import POYOPlus
from torch_brain.nn.expected_value import BinsHead, CodebookHead, ExpectedValueLoss

HEADS = {"cursor_velocity_2d": {"kind": "bins", "num_bins": 5, "ce_weight": 0.25}}
TASKS = ["cursor_velocity_2d", "reach_direction"]


def _model(heads=HEADS, tasks=TASKS):
    torch.manual_seed(0)
    model = init_vocab(POYOPlus(**TINY, readout_specs=tasks, readout_heads=heads))
    for task, head in model.readout.vocabulary_heads().items():
        head.fit(np.random.default_rng(0).normal(size=(200, 2)), task=task)
    return model


def _batch(model):
    return collate([model.tokenize(make_window(SESSIONS[i % 2], 30 + 10 * i, seed=i)) for i in range(3)])


def test_packed_outputs_are_logits_and_unpacked_are_expected_values():
    model = _model().eval()
    batch = _batch(model)
    packed = model(**batch["model_inputs"])
    n_vel = batch["target_values"]["cursor_velocity_2d"].shape[0]
    assert packed["cursor_velocity_2d"].shape == (n_vel, 2 * 5)  # 5 logits per output dim
    head = model.readout.projections["cursor_velocity_2d"]
    probs = torch.softmax(packed["cursor_velocity_2d"].reshape(n_vel, 2, 5), -1)
    ev = (probs * head.centres).sum(-1)
    unpacked = model(**batch["model_inputs"], unpack_output=True)
    torch.testing.assert_close(torch.cat([u["cursor_velocity_2d"] for u in unpacked]), ev)
    # a classification task keeps its logits in both forms
    torch.testing.assert_close(torch.cat([u["reach_direction"] for u in unpacked]), packed["reach_direction"])


def test_the_guides_compute_loss_works_with_a_bins_task():
    model = _model()
    batch = _batch(model)
    output_values = model(**batch["model_inputs"], unpack_output=False)
    # the user guide's compute_loss, as written there
    total_loss, batch_size = 0.0, len(batch["session_id"])
    for task_name in output_values.keys():
        spec = model.readout.readout_specs[task_name]
        task_loss = spec.loss_fn(output_values[task_name], batch["target_values"][task_name],
                                 batch["target_weights"].get(task_name, None))
        num_samples = torch.any(batch["model_inputs"]["output_decoder_index"] == spec.id, dim=1).sum()
        total_loss += task_loss * num_samples
    total_loss = total_loss / batch_size
    # independent: the velocity loss from its definition (numpy), the direction loss from torch
    logits = output_values["cursor_velocity_2d"].detach().double().numpy().reshape(-1, 2, 5)
    centres = model.readout.projections["cursor_velocity_2d"].centres.double().numpy()
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    y = batch["target_values"]["cursor_velocity_2d"].double().numpy()
    mse = (((p * centres).sum(-1) - y) ** 2).mean(1)
    from torch_brain.nn.expected_value import hl_gauss_target

    soft = hl_gauss_target(torch.tensor(y), torch.tensor(centres), 0.75).numpy()
    ce = -(soft * np.log(p)).sum(-1).mean(1)
    vel = float(np.mean(mse + 0.25 * ce))  # all weights are 1
    direction = float(torch.nn.functional.cross_entropy(output_values["reach_direction"].detach(),
                                                        batch["target_values"]["reach_direction"]))
    assert float(total_loss.detach()) == pytest.approx((vel * 3 + direction * 3) / 3, rel=1e-4)
    assert isinstance(model.readout.readout_specs["cursor_velocity_2d"].loss_fn, ExpectedValueLoss)
    total_loss.backward()
    assert model.readout.projections["cursor_velocity_2d"].proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("heads", [HEADS, {"cursor_velocity_2d": {"kind": "codebook", "num_bins": 6, "seed": 3}}])
def test_checkpoint_round_trip_keeps_the_vocabulary(tmp_path, heads):
    model = _model(heads).eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    loaded = POYOPlus.load_pretrained(tmp_path / "m.pt").eval()
    head, back = model.readout.projections["cursor_velocity_2d"], loaded.readout.projections["cursor_velocity_2d"]
    buffer = "centres" if isinstance(head, BinsHead) else "codebook"
    assert isinstance(back, type(head)) and torch.equal(getattr(back, buffer), getattr(head, buffer))
    batch = _batch(model)
    a = model(**batch["model_inputs"], unpack_output=True)
    b = loaded(**batch["model_inputs"], unpack_output=True)
    for x, y in zip(a, b):
        torch.testing.assert_close(x["cursor_velocity_2d"], y["cursor_velocity_2d"])
    # a new readout for fine-tuning keeps the task's fitted vocabulary, with fresh weights
    fresh = POYOPlus.load_pretrained(tmp_path / "m.pt", readout_specs=["cursor_velocity_2d"], skip_readout=True)
    new_head = fresh.readout.projections["cursor_velocity_2d"]
    assert torch.equal(getattr(new_head, buffer), getattr(head, buffer))
    assert not torch.equal(new_head.proj.weight, head.proj.weight)


def test_loading_a_checkpoint_with_other_bins_is_refused(tmp_path):
    torch.save(_model().state_dict(), tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"readout.projections.cursor_velocity_2d.centres: checkpoint \(2, 5\) vs model \(2, 7\)"):
        POYOPlus.load_pretrained(tmp_path / "m.pt", readout_heads={"cursor_velocity_2d": {"kind": "bins", "num_bins": 7}})


@pytest.mark.parametrize(
    "heads, match",
    [
        ({"reach_direction": {"kind": "bins"}}, "kind 'bins' decodes CONTINUOUS tasks, but 'reach_direction' is MULTINOMIAL"),
        ({"running_speed": {"kind": "bins"}}, "heads must map task names of readout_specs"),
        ({"cursor_velocity_2d": {"kind": "histogram"}}, "kind must be one of bins, codebook, linear"),
        ({"cursor_velocity_2d": {"kind": "bins", "num_bin": 8}}, r"has no option\(s\) \['num_bin'\]"),
        ({"cursor_velocity_2d": {"kind": "codebook", "num_bins": 1}}, "num_bins must be an int >= 2"),
    ],
)
def test_bad_head_configs(heads, match):
    with pytest.raises(ValueError, match=match):
        POYOPlus(**TINY, readout_specs=TASKS, readout_heads=heads)


def test_codebook_head_predicts_the_expected_centroid():
    head = CodebookHead(3, 2, num_bins=2)
    head.codebook.copy_(torch.tensor([[0.0, 0.0], [2.0, 4.0]]))
    logits = torch.tensor([[0.0, float(np.log(3.0))]])  # p = (0.25, 0.75)
    torch.testing.assert_close(head.predict(logits), torch.tensor([[1.5, 3.0]]))


def test_poyo_with_a_codebook_head(tmp_path):
    from torch_brain.models import POYO

    torch.manual_seed(0)
    model = init_vocab(POYO(**TINY, readout_spec="cursor_velocity_2d",
                            readout_head={"kind": "codebook", "num_bins": 4, "sample_k": 3}))
    assert list(model.vocabulary_heads()) == ["cursor_velocity_2d"]
    model.readout.fit(np.random.default_rng(0).normal(size=(100, 2)))
    model.eval()
    batch = collate([model.tokenize(make_window(SESSIONS[i], 30, seed=i, tasks=("cursor_velocity_2d",)))
                     for i in range(2)])
    logits = model(**batch["model_inputs"])
    assert logits.shape[1] == 4
    unpacked = model(**batch["model_inputs"], unpack_output=True)
    torch.testing.assert_close(torch.cat(unpacked), torch.softmax(logits, -1) @ model.readout.codebook)
    loss = model.readout_spec.loss_fn(logits, batch["target_values"], batch["target_weights"])
    assert torch.isfinite(loss)
    torch.save(model.state_dict(), tmp_path / "p.pt")
    back = POYO.load_pretrained(tmp_path / "p.pt").eval()
    torch.testing.assert_close(torch.cat(back(**batch["model_inputs"], unpack_output=True)), torch.cat(unpacked))
    with pytest.raises(ValueError, match="kind 'bins' decodes CONTINUOUS tasks, but 'reach_direction' is MULTINOMIAL"):
        POYO(**TINY, readout_spec="reach_direction", readout_head={"kind": "bins"})


def test_vocabularies_are_frozen_parameters_not_buffers():
    # DDP broadcasts buffers before every forward, which ranks without an evaluation batch never
    # join; frozen parameters travel in the state dict without that broadcast
    model = _model({"cursor_velocity_2d": {"kind": "bins", "num_bins": 5}})
    assert [name for name, _ in model.named_buffers()] == []
    head = model.readout.projections["cursor_velocity_2d"]
    assert not head.centres.requires_grad and "readout.projections.cursor_velocity_2d.centres" in model.state_dict()
    batch = _batch(model)
    out = model(**batch["model_inputs"])
    spec = model.readout.readout_specs["cursor_velocity_2d"]
    head.centres.requires_grad_(True)  # even if a user unfreezes everything, no gradient reaches them
    spec.loss_fn(out["cursor_velocity_2d"], batch["target_values"]["cursor_velocity_2d"]).backward()
    assert head.centres.grad is None and head.proj.weight.grad is not None


def test_freezing_the_encoder_keeps_the_fixed_bins_frozen():
    """freeze_encoder only freezes: the bins (never trained) stay frozen, the readout stays trainable."""
    from torch_brain.ssl import freeze_encoder

    model = _model()
    frozen_before = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen_before  # the bins head's centres
    trainable = freeze_encoder(model)
    assert not frozen_before & set(trainable)
    assert all(not p.requires_grad for n, p in model.named_parameters() if n in frozen_before)
    assert any(n.startswith("readout") for n in trainable)
    assert not any(n.startswith("proc_layers") for n in trainable)
