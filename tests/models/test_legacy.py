"""Checkpoints written by torch_brain 0.1.2 load and predict what 0.1.2 predicted.

The files in ``data/`` were written by ``scripts/make_0_1_2_checkpoints.py`` in the peer
virtualenv (torch-brain 0.1.2): two Lightning checkpoints and, for each, two fixed windows (raw
arrays) with the predictions the 0.1.2 model made on them in eval mode. Nothing here runs 0.1.2.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, collate
from torch_brain.models import POYO, POYOPlus
from torch_brain.registry import MODALITY_REGISTRY

DATA = Path(__file__).parent / "data"
POYO_CKPT, PLUS_CKPT = DATA / "poyo_0_1_2.ckpt", DATA / "poyo_plus_0_1_2.ckpt"
PLUS_TASKS = ("cursor_velocity_2d", "cursor_position_2d", "arm_velocity_2d", "drifting_gratings_orientation")


def _saved(name):
    with np.load(DATA / f"{name}_0_1_2_window.npz") as f:
        return dict(f)


def _window(saved, k, tasks):
    a = {key[3:]: value for key, value in saved.items() if key.startswith(f"w{k}_")}
    d = Data(
        units=ArrayDict(id=a["unit_ids"]),
        spikes=IrregularTimeSeries(a["spike_timestamps"], unit_index=a["spike_unit_index"], domain=Interval(0.0, 1.0)),
        cursor=IrregularTimeSeries(a["cursor_timestamps"], vel=a["cursor_vel"].astype(np.float32),
                                   pos=a["cursor_pos"].astype(np.float32), domain=Interval(0.0, 1.0)),
        drifting_gratings=IrregularTimeSeries(a["gratings_timestamps"], orientation_id=a["gratings_orientation_id"],
                                              domain=Interval(0.0, 1.0)),
        session=Data(id=str(a["session_id"])),
        domain=Interval(0.0, 1.0),
    )
    d.config = {"multitask_readout": [{"readout_id": t} for t in tasks]}
    return d


def _predict(model, saved, tasks):
    batch = collate([model.tokenize(_window(saved, k, tasks)) for k in range(2)])
    with torch.no_grad():
        return model.eval()(**batch["model_inputs"])


def test_poyo_0_1_2_checkpoint_predicts_what_0_1_2_predicted():
    saved = _saved("poyo")
    model = POYO.load_pretrained(POYO_CKPT, readout_spec="cursor_velocity_2d")
    pred = _predict(model, saved, ["cursor_velocity_2d"])
    expected = torch.from_numpy(saved["pred_cursor_velocity_2d"])
    assert pred.shape == expected.shape == (20, 2)
    torch.testing.assert_close(pred, expected, atol=1e-4, rtol=0)


def test_poyo_plus_0_1_2_checkpoint_predicts_what_0_1_2_predicted():
    saved = _saved("poyo_plus")
    model = POYOPlus.load_pretrained(PLUS_CKPT)
    assert set(model.readout.readout_specs) == set(PLUS_TASKS)
    preds = _predict(model, saved, ["cursor_velocity_2d", "drifting_gratings_orientation"])
    for task in ("cursor_velocity_2d", "drifting_gratings_orientation"):
        expected = torch.from_numpy(saved[f"pred_{task}"])
        torch.testing.assert_close(preds[task], expected, atol=1e-4, rtol=0)


def _raw(path=PLUS_CKPT):
    return torch.load(path, weights_only=True)


def _write(ckpt, tmp_path, name="edited.ckpt"):
    torch.save(ckpt, tmp_path / name)
    return tmp_path / name


def test_vocabularies_drop_na_and_keep_order_integer_ids_as_strings():
    raw = _raw()["state_dict"]
    model = POYOPlus.load_pretrained(PLUS_CKPT)
    # 0.1.2 stored OrderedDict([('NA', 0), (200, 1), ..., (104, 8)]) with Python int unit ids
    assert list(raw["model.unit_emb.vocab"])[:2] == ["NA", 200]
    assert list(model.unit_emb.vocab) == ["200", "201", "202", "100", "101", "102", "103", "104"]
    assert list(model.session_emb.vocab) == ["bs/s0", "bs/s1"]
    torch.testing.assert_close(model.unit_emb.weight.detach(), raw["model.unit_emb.weight"][1:])
    torch.testing.assert_close(model.session_emb.weight.detach(), raw["model.session_emb.weight"][1:])
    assert model.unit_emb.tokenizer(np.array([104, 200])).tolist() == [7, 0]


def test_task_rows_follow_names_not_ids():
    raw = _raw()["state_dict"]["model.task_emb.weight"]  # row = 0.1.2 id: 1 cursor_velocity_2d ... 4 gratings
    model = POYOPlus.load_pretrained(PLUS_CKPT)
    for name, old_id in (("cursor_velocity_2d", 1), ("cursor_position_2d", 2), ("arm_velocity_2d", 3),
                         ("drifting_gratings_orientation", 4)):
        torch.testing.assert_close(model.task_emb.weight[model._task_rows[name]].detach(), raw[old_id])
    assert MODALITY_REGISTRY["drifting_gratings_orientation"].id != 4  # ids differ here: the name decides


def test_architecture_and_exact_rotary_periods_come_from_the_checkpoint():
    model = POYOPlus.load_pretrained(PLUS_CKPT)
    hp = model.hparams
    assert (hp["dim"], hp["depth"], hp["dim_head"], hp["cross_heads"], hp["self_heads"],
            hp["num_latents_per_step"]) == (8, 2, 16, 2, 2, 4)
    assert (hp["t_min"], hp["t_max"], hp["sequence_length"], hp["latent_step"]) == (1e-4, 2.0627, 1.0, 0.25)
    omega = _raw()["state_dict"]["model.rotary_emb.omega"]  # 0.1.2: float32, zeros for unrotated planes
    np.testing.assert_array_equal(model.rotary.omega.float().numpy(), omega[:4].numpy())


def test_reloading_our_save_of_a_legacy_model_predicts_the_same(tmp_path):
    saved = _saved("poyo_plus")
    model = POYOPlus.load_pretrained(PLUS_CKPT)
    torch.save(model.state_dict(), tmp_path / "ours.pt")
    again = POYOPlus.load_pretrained(tmp_path / "ours.pt")
    assert again.hparams == model.hparams and list(again.unit_emb.vocab) == list(model.unit_emb.vocab)
    tasks = ["cursor_velocity_2d", "drifting_gratings_orientation"]
    for task, pred in _predict(again, saved, tasks).items():
        torch.testing.assert_close(pred, torch.from_numpy(saved[f"pred_{task}"]), atol=1e-4, rtol=0)


def test_readout_specs_subset_keeps_those_heads():
    saved = _saved("poyo_plus")
    model = POYOPlus.load_pretrained(PLUS_CKPT, readout_specs={"cursor_velocity_2d": MODALITY_REGISTRY["cursor_velocity_2d"]})
    assert list(model.readout.readout_specs) == ["cursor_velocity_2d"]
    pred = _predict(model, saved, ["cursor_velocity_2d"])["cursor_velocity_2d"]
    torch.testing.assert_close(pred, torch.from_numpy(saved["pred_cursor_velocity_2d"]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("cls, path, kwargs", [
    (POYOPlus, PLUS_CKPT, {"readout_specs": {"reach_direction": MODALITY_REGISTRY["reach_direction"],
                                             "cursor_velocity_2d": MODALITY_REGISTRY["cursor_velocity_2d"]}}),
    (POYO, POYO_CKPT, {"readout_spec": "reach_direction"}),
])
def test_skip_readout_loads_the_encoder_and_makes_a_new_readout(cls, path, kwargs):
    full = cls.load_pretrained(path, **({"readout_spec": "cursor_velocity_2d"} if cls is POYO else {}))
    torch.manual_seed(123)
    new = cls.load_pretrained(path, skip_readout=True, **kwargs)
    ours = new.state_dict()
    for key, value in full.state_dict().items():
        if key.startswith(("readout.", "task_emb.")) or key.endswith("_extra_state"):
            continue
        torch.testing.assert_close(ours[key], value, msg=key)
    if cls is POYO:
        assert new.readout_spec.name == "reach_direction" and new.readout.weight.shape == (8, 8)
    else:
        assert set(new.readout.readout_specs) == {"reach_direction", "cursor_velocity_2d"}
        # the known task keeps its 0.1.2 row; the new one gets a fresh row, none of the 0.1.2 ones
        old_rows = _raw()["state_dict"]["model.task_emb.weight"]
        torch.testing.assert_close(new.task_emb.weight[new._task_rows["cursor_velocity_2d"]].detach(), old_rows[1])
        fresh = new.task_emb.weight[new._task_rows["reach_direction"]].detach()
        assert not any(torch.allclose(fresh, row) for row in old_rows)


def test_user_registered_0_1_task_needs_its_0_1_id(tmp_path):
    from torch_brain.registry import ModalitySpec, DataType

    ckpt = _raw()
    sd = ckpt["state_dict"]
    for part in ("weight", "bias"):  # as if 0.1.x user code had registered "eye_2d" (its 3rd task)
        sd[f"model.readout.projections.eye_2d.{part}"] = sd.pop(f"model.readout.projections.arm_velocity_2d.{part}")
    path = _write(ckpt, tmp_path)
    with pytest.raises(ValueError, match=r"'readout\.projections\.eye_2d\.weight'.*not registered here.*readout_specs="):
        POYOPlus.load_pretrained(path)
    eye = ModalitySpec(id=77, dim=2, type=DataType.CONTINUOUS, timestamp_key="eye.timestamps", value_key="eye.pos", name="eye_2d")
    specs = {"eye_2d": eye, "cursor_velocity_2d": MODALITY_REGISTRY["cursor_velocity_2d"]}
    with pytest.raises(ValueError, match=r"'task_emb\.weight'.*'eye_2d'.*legacy_task_ids=\{'eye_2d': id\}"):
        POYOPlus.load_pretrained(path, readout_specs=specs)
    model = POYOPlus.load_pretrained(path, readout_specs=specs, legacy_task_ids={"eye_2d": 3})
    torch.testing.assert_close(model.task_emb.weight[model._task_rows["eye_2d"]].detach(), sd["model.task_emb.weight"][3])
    torch.testing.assert_close(model.readout.projections["eye_2d"].weight.detach(),
                               sd["model.readout.projections.eye_2d.weight"])


def _edit(tmp_path, change, path=PLUS_CKPT):
    ckpt = _raw(path)
    change(ckpt)
    return _write(ckpt, tmp_path)


@pytest.mark.parametrize("cls, path, change, kwargs, match", [
    (POYO, POYO_CKPT, lambda c: None, {}, r"do not record their task.*readout_spec="),
    (POYO, PLUS_CKPT, lambda c: None, {"readout_spec": "cursor_velocity_2d"}, r"holds a POYOPlus.*POYOPlus\.load_pretrained"),
    (POYOPlus, POYO_CKPT, lambda c: None, {}, r"holds a POYO .*POYO\.load_pretrained"),
    (POYOPlus, PLUS_CKPT, lambda c: c["state_dict"].update({"model.enc_atn.gate.weight": torch.zeros(3)}), {},
     r"key 'enc_atn\.gate\.weight' \(3,\) has no counterpart.*without the checkpoint's 'model\.' prefix"),
    (POYOPlus, PLUS_CKPT, lambda c: c["state_dict"].update({"model.input_value_map.weight": torch.zeros(4, 1)}), {},
     r"'input_value_map\.weight'.*CalciumPOYOPlus"),
    (POYOPlus, PLUS_CKPT, lambda c: c["hyper_parameters"]["model"].pop("latent_step"), {},
     r"no 'latent_step'.*load_pretrained\(path, latent_step=\.\.\.\)"),
    (POYOPlus, PLUS_CKPT, lambda c: c["hyper_parameters"]["model"].update(dim=64), {},
     r"says dim=64 but the weights say 8"),
    (POYOPlus, PLUS_CKPT, lambda c: c["hyper_parameters"]["model"].update(_target_="torch_brain.models.CalciumPOYOPlus"), {},
     r"_target_='torch_brain\.models\.CalciumPOYOPlus'"),
    (POYOPlus, PLUS_CKPT, lambda c: c["state_dict"]["model.unit_emb.vocab"].pop(104), {},
     r"'unit_emb\.vocab' maps 8 ids to rows that are not 0\.\.8"),
    (POYOPlus, PLUS_CKPT, lambda c: c["state_dict"]["model.unit_emb.vocab"].update({"200": 9}) or
     c["state_dict"].update({"model.unit_emb.weight": torch.zeros(10, 8)}), {}, r"one id here.*\['200'\]"),
    (POYOPlus, PLUS_CKPT, lambda c: c["state_dict"]["model.rotary_emb.omega"].mul_(
        torch.tensor([1.0, 1.1, 1.0, 1.0, 0, 0, 0, 0])), {}, r"'rotary_emb\.omega'.*not log-spaced"),
])
def test_what_cannot_be_mapped_is_refused_by_name(tmp_path, cls, path, change, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls.load_pretrained(_edit(tmp_path, change, path), **kwargs)


def test_missing_sequence_length_can_be_passed(tmp_path):
    path = _edit(tmp_path, lambda c: c["hyper_parameters"]["model"].pop("sequence_length"))
    assert POYOPlus.load_pretrained(path, sequence_length=1.0).sequence_length == 1.0


def test_poyo_refuses_a_0_1_readout_config_entry_instead_of_ignoring_it():
    model = POYO.load_pretrained(POYO_CKPT, readout_spec="cursor_velocity_2d")
    window = _window(_saved("poyo"), 0, [])
    window.config = {"readout": {"readout_id": "cursor_velocity_2d", "normalize_std": 2.0}}
    with pytest.raises(ValueError, match=r"0\.1\.x 'readout' entry.*multitask_readout"):
        model.tokenize(window)


def test_plain_0_1_state_dict_loads_with_window_arguments(tmp_path):
    """``torch.save(model.state_dict())`` from 0.1.x: no hyper_parameters, the rest from the weights."""
    sd = {k[len("model."):]: v for k, v in _raw()["state_dict"].items()}
    path = _write(sd, tmp_path, "plain.pt")
    with pytest.raises(ValueError, match="no 'sequence_length'"):
        POYOPlus.load_pretrained(path)
    model = POYOPlus.load_pretrained(path, sequence_length=1.0, latent_step=0.25)
    saved = _saved("poyo_plus")
    pred = _predict(model, saved, ["cursor_velocity_2d"])["cursor_velocity_2d"]
    torch.testing.assert_close(pred, torch.from_numpy(saved["pred_cursor_velocity_2d"]), atol=1e-4, rtol=0)
