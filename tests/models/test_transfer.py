"""load_pretrained round trips (Lightning / plain checkpoints, with and without readout), freezing."""

import lightning as L
import pytest
import torch
from .conftest import SESSIONS, TINY, init_vocab, make_window

from torch_brain.data import collate
from torch_brain.models import POYO, POYOPlus, freeze_for_unit_identification
from torch_brain.optim import SparseLamb
from torch_brain.registry import MODALITY_REGISTRY

TASKS = ("cursor_velocity_2d", "reach_direction")


def _plus(**kw):
    torch.manual_seed(0)
    specs = {t: MODALITY_REGISTRY[t] for t in TASKS}
    return init_vocab(POYOPlus(**{**TINY, "readout_specs": specs, **kw})).eval()


class _Decoder(L.LightningModule):
    """The guide's NeuralDecoder (hyper-parameters saved with save_hyperparameters)."""

    def __init__(self, model_config, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = POYOPlus(**model_config)

    def configure_optimizers(self):
        return SparseLamb(self.parameters(), lr=self.hparams.lr)


def _outputs(model):
    batch = collate([model.tokenize(make_window(SESSIONS[i], 30 + 10 * i, seed=i)) for i in range(2)])
    with torch.no_grad():
        return model(**batch["model_inputs"])


def test_plain_state_dict_round_trip(tmp_path):
    model = _plus()
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    loaded = POYOPlus.load_pretrained(tmp_path / "plain.pt").eval()
    assert loaded.hparams == model.hparams
    assert list(loaded.unit_emb.vocab) == list(model.unit_emb.vocab)
    assert list(loaded.session_emb.vocab) == SESSIONS
    for task, out in _outputs(model).items():
        torch.testing.assert_close(_outputs(loaded)[task], out)


def test_lightning_checkpoint_round_trip_and_guide_snippet(tmp_path):
    config = {**TINY, "readout_specs": list(TASKS)}
    module = _Decoder(config)
    init_vocab(module.model)
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": L.__version__}
    torch.save(ckpt, tmp_path / "model.ckpt")
    loaded = POYOPlus.load_pretrained(tmp_path / "model.ckpt").eval()
    ref = module.model.eval()
    for task, out in _outputs(ref).items():
        torch.testing.assert_close(_outputs(loaded)[task], out)
    # the guide: strip "model." and load_state_dict into a model built from the same config
    checkpoint = torch.load(tmp_path / "model.ckpt")
    state_dict = {k.replace("model.", ""): v for k, v in checkpoint["state_dict"].items()}
    fresh = POYOPlus(**config)
    fresh.load_state_dict(state_dict)
    assert list(fresh.unit_emb.vocab) == list(ref.unit_emb.vocab)


def test_hparams_from_lightning_hyper_parameters_when_no_extra_state(tmp_path):
    module = _Decoder({**TINY, "readout_specs": list(TASKS)})
    init_vocab(module.model)
    sd = {k: v for k, v in module.state_dict().items() if k != "model._extra_state"}
    torch.save({"state_dict": sd, "hyper_parameters": dict(module.hparams)}, tmp_path / "m.ckpt")
    loaded = POYOPlus.load_pretrained(tmp_path / "m.ckpt")
    assert loaded.dim == TINY["dim"] and set(loaded.readout.readout_specs) == set(TASKS)


def test_skip_readout_new_tasks_keeps_backbone_and_known_task_rows(tmp_path):
    model = _plus()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    new_specs = {t: MODALITY_REGISTRY[t] for t in ("reach_direction", "running_speed")}
    loaded = POYOPlus.load_pretrained(tmp_path / "m.pt", readout_specs=new_specs, skip_readout=True)
    torch.testing.assert_close(loaded.enc_atn.to_q.weight, model.enc_atn.to_q.weight)
    torch.testing.assert_close(loaded.unit_emb.weight, model.unit_emb.weight)
    assert set(loaded.readout.projections) == {"reach_direction", "running_speed"}
    # reach_direction's task embedding row is carried over
    old_row = model.task_emb.weight[model._task_rows["reach_direction"]]
    torch.testing.assert_close(loaded.task_emb.weight[loaded._task_rows["reach_direction"]], old_row)


def test_poyo_skip_readout_with_new_spec(tmp_path):
    torch.manual_seed(0)
    model = init_vocab(POYO(**TINY, readout_spec="cursor_velocity_2d"))
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "p.ckpt")
    loaded = POYO.load_pretrained(checkpoint_path=tmp_path / "p.ckpt", readout_spec=MODALITY_REGISTRY["reach_direction"],
                                  skip_readout=True)
    assert loaded.readout.out_features == 8
    torch.testing.assert_close(loaded.dec_atn.to_kv.weight, model.dec_atn.to_kv.weight)
    same = POYO.load_pretrained(tmp_path / "p.ckpt")
    torch.testing.assert_close(same.readout.weight, model.readout.weight)
    # a new spec with another dim without skip_readout: mismatching keys are listed
    with pytest.raises(ValueError, match=r"readout.weight: checkpoint \(2, 16\) vs model \(8, 16\)"):
        POYO.load_pretrained(tmp_path / "p.ckpt", readout_spec="reach_direction")


def test_architecture_mismatch_lists_keys(tmp_path):
    model = _plus()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"(?s)do not match.*enc_ffn.w1.weight: checkpoint \(128, 16\) vs model"):
        POYOPlus.load_pretrained(tmp_path / "m.pt", dim=32)
    with pytest.raises(ValueError, match=r"holds a POYOPlus, not a POYO"):
        POYO.load_pretrained(tmp_path / "m.pt")


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        POYOPlus.load_pretrained(tmp_path / "missing.ckpt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no POYO weights"):
        POYOPlus.load_pretrained(tmp_path / "other.pt")
    model = _plus()
    sd = {k: v for k, v in model.state_dict().items() if k != "_extra_state"}
    torch.save(sd, tmp_path / "nohp.pt")
    with pytest.raises(ValueError, match="no hyper-parameters.*pass the constructor arguments"):
        POYOPlus.load_pretrained(tmp_path / "nohp.pt")


def test_unit_identification_trains_only_new_rows():
    model = _plus()
    new_units = [f"bs/s2/u{i}" for i in range(4)]
    model.unit_emb.extend_vocab(new_units)
    model.session_emb.extend_vocab(["bs/s2"])
    before = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.endswith("_extra_state")}
    handle = freeze_for_unit_identification(model, new_units, ["bs/s2"])
    opt = SparseLamb([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1,
                     sparse=True)
    batch = collate([model.tokenize(make_window("bs/s2", 30, seed=5)), model.tokenize(make_window("bs/s0", 30))])
    for _ in range(2):
        opt.zero_grad()
        sum(v.sum() for v in model(**batch["model_inputs"]).values()).backward()
        opt.step()
    after = model.state_dict()
    n_old_units = len(model.unit_emb.vocab) - 4
    for key, value in before.items():
        if key == "unit_emb.weight":
            assert torch.equal(after[key][:n_old_units], value[:n_old_units])
            assert not torch.equal(after[key][n_old_units:], value[n_old_units:])
        elif key == "session_emb.weight":
            assert torch.equal(after[key][:2], value[:2]) and not torch.equal(after[key][2], value[2])
        else:
            assert torch.equal(after[key], value), key
    handle.remove()
    assert all(p.requires_grad for p in model.parameters())


def test_hparams_rebuild_the_same_architecture():
    for model in (_plus(), POYO(**TINY, readout_spec="reach_direction")):
        rebuilt = type(model)(**model.hparams)
        assert rebuilt.hparams == model.hparams
        assert {k: v.shape for k, v in rebuilt.state_dict().items() if not k.endswith("_extra_state")
                and "_emb.weight" not in k} == {k: v.shape for k, v in model.state_dict().items()
                                                 if not k.endswith("_extra_state") and "_emb.weight" not in k}
