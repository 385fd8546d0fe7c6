"""Config loading, overrides and validation."""

import pytest

from torch_brain.training.config import DEFAULT_CONFIG, apply_overrides, dump_config, load_config


def test_defaults_only():
    cfg = load_config()
    assert cfg == DEFAULT_CONFIG and cfg is not DEFAULT_CONFIG


def test_yaml_merge_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: demo\ntrainer:\n  max_steps: 50\noptimizer:\n  lr: 1e-3\n")
    cfg = load_config(path, ["trainer.max_steps=100", "model.dim=32", "data.tasks=[a, b]",
                             "trainer.gradient_clip_val=null", "trainer.deterministic=true"])
    assert cfg["name"] == "demo"
    assert cfg["trainer"]["max_steps"] == 100
    assert cfg["model"]["dim"] == 32 and cfg["model"]["depth"] == DEFAULT_CONFIG["model"]["depth"]
    assert cfg["optimizer"] == {"name": "adamw", "lr": 0.001, "weight_decay": 1e-4}
    assert cfg["data"]["tasks"] == ["a", "b"]
    assert cfg["trainer"]["gradient_clip_val"] is None and cfg["trainer"]["deterministic"] is True


def test_base_inheritance(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nmodel:\n  dim: 16\n  depth: 1\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\nmodel:\n  depth: 3\n")
    cfg = load_config(tmp_path / "b.yaml")
    assert (cfg["name"], cfg["model"]["dim"], cfg["model"]["depth"]) == ("b", 16, 3)


def test_switching_optimizer_or_schedule_drops_stale_options():
    cfg = load_config(None, ["optimizer.name=sgd", "scheduler.name=cosine"])
    assert cfg["optimizer"] == {"name": "sgd", "lr": 2e-3, "weight_decay": 1e-4}
    assert cfg["scheduler"] == {"name": "cosine"}
    cfg = load_config({"scheduler": {"name": "step", "step_size": 3}})
    assert cfg["scheduler"] == {"name": "step", "step_size": 3}


@pytest.mark.parametrize(
    "overrides, exc, match",
    [
        (["trainer.max_step=5"], ValueError, r"Unknown config key 'trainer.max_step'. Did you mean 'trainer.max_steps'\?"),
        (["trainr.max_steps=5"], ValueError, r"Unknown config key 'trainr'. Did you mean 'trainer'\?"),
        (["checkpoint.save_topk=2"], ValueError, r"Did you mean 'checkpoint.save_top_k'"),
        (["trainer.max_steps"], ValueError, r"must look like key.sub=value"),
        (["trainer=3"], TypeError, r"config key 'trainer' is a section"),
    ],
)
def test_bad_overrides(overrides, exc, match):
    with pytest.raises(exc, match=match):
        load_config(None, overrides)


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  windw_length: 2.0\n")
    with pytest.raises(ValueError, match=r"'data.windw_length'. Did you mean 'data.window_length'"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_open_sections_accept_any_key():
    cfg = apply_overrides(load_config(), ["optimizer.betas=[0.9, 0.95]", "model.emb_init_scale=0.02"])
    assert cfg["optimizer"]["betas"] == [0.9, 0.95] and cfg["model"]["emb_init_scale"] == 0.02


def test_dump_roundtrip(tmp_path):
    cfg = load_config(None, ["name=x", "optimizer.lr=2e-4"])
    dump_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
