"""Run directories and atomic checkpoint writes."""

import json

import pytest
import torch

from torch_brain.training.run_dir import (
    AtomicCheckpointIO,
    atomic_write_text,
    last_checkpoint,
    prepare_run_dir,
)


def test_new_run_dir_and_refusal_to_overwrite(tmp_path):
    run = prepare_run_dir(tmp_path / "run")
    assert (run / "checkpoints").is_dir()
    (run / "config.yaml").write_text("x: 1")
    with pytest.raises(ValueError, match=r"already exists and is not empty. Pass --resume.*--overwrite"):
        prepare_run_dir(run)
    assert (run / "config.yaml").read_text() == "x: 1"  # untouched


def test_overwrite_replaces(tmp_path):
    run = prepare_run_dir(tmp_path / "run")
    (run / "old.txt").write_text("old")
    prepare_run_dir(run, overwrite=True)
    assert not (run / "old.txt").exists() and (run / "checkpoints").is_dir()


def test_overwrite_keeps_the_files_it_is_told_to(tmp_path):
    run = prepare_run_dir(tmp_path / "run")
    for name in ("old.txt", "readout_vocab.pt", "checkpoints/last.ckpt", "logs/readout_vocab.pt"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(name)
    prepare_run_dir(run, overwrite=True, keep=("readout_vocab.pt",))
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == ["checkpoints", "readout_vocab.pt"]
    assert (run / "readout_vocab.pt").read_text() == "readout_vocab.pt"


def test_resume_needs_last_checkpoint(tmp_path):
    run = prepare_run_dir(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match=r"cannot resume: no checkpoint .*last.ckpt"):
        prepare_run_dir(run, resume=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert prepare_run_dir(run, resume=True) == run
    assert last_checkpoint(run) == run / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match="exclude each other"):
        prepare_run_dir(run, resume=True, overwrite=True)


def test_atomic_checkpoint_survives_a_crash_mid_write(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "ckpts" / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    assert torch.load(path)["step"] == 1

    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"partial bytes")  # something reached the disk ...
        raise KeyboardInterrupt  # ... then the run is killed

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path)["step"] == 1  # the old checkpoint is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temp file left


def test_atomic_write_text(tmp_path):
    atomic_write_text(tmp_path / "a" / "h.json", json.dumps([1]))
    assert json.loads((tmp_path / "a" / "h.json").read_text()) == [1]
