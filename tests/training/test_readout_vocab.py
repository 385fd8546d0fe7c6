"""The statistics pass of bins / codebook heads: computed once, cached next to the run, reused on
resume, recomputed (and said so) when anything it was computed from changes; its progress output;
fine-tuning keeps the pretrained bins unless told to refit; the clear errors on bad targets."""

import io
import json
import logging
import re
import shutil

import h5py
import numpy as np
import pytest
import torch
import yaml

from tests.training.tiny_synthetic import HELDOUT_CONFIG, TINY_MODEL, tiny_config
from torch_brain.training import DecodingDataModule, NeuralDecoder, TargetNormalizer, compute_target_stats
from torch_brain.training import readout_vocab
from torch_brain.training.progress import progress_iter

TASK = "cursor_velocity_2d"
SESSIONS = ("session_00", "session_01")


def _raw_velocity(exclude=("heldout",)):
    """Velocity only, without the dataset config's fixed normalize_std (the run normalises)."""
    return [{"selection": [{"brainset": "synthetic_reaching", "exclude_sessions": list(exclude)}],
             "config": {"multitask_readout": [{"readout_id": TASK}]}}]


def _train_mask(root, session):
    """The session's velocity (n, 2) and which samples lie in its training intervals (from its file)."""
    with h5py.File(root / "synthetic_reaching" / f"{session}.h5") as f:
        vel = f["cursor"]["vel"][:]
        t = float(f["cursor"]["domain"]["start"][0]) + np.arange(len(vel)) / float(f["cursor"].attrs["sampling_rate"])
        keep = np.zeros(len(t), bool)
        for s, e in zip(f["train_domain"]["start"][:], f["train_domain"]["end"][:]):
            keep |= (t >= s) & (t < e)
    return vel, keep


def _train_targets(root, session):
    vel, keep = _train_mask(root, session)
    return vel[keep]


def _reference_centres(root, sessions, num_bins):
    """Quantiles of the per-session standardised training targets, pooled (numpy only)."""
    pooled = []
    for sid in sessions:
        vel = _train_targets(root, sid)
        pooled.append((vel - vel.mean(0)) / vel.std(0))
    return np.quantile(np.concatenate(pooled), (np.arange(num_bins) + 0.5) / num_bins, axis=0).T


def _module(root, *, num_bins=8, kind="bins", exclude=("heldout",), normalization="per_session", cache=None):
    """A NeuralDecoder and its training split, normalised as ``setup`` would (no trainer)."""
    dm = DecodingDataModule(root, _raw_velocity(exclude), batch_size=8, window_length=1.0)
    dm.setup("fit")
    heads = {TASK: {"kind": kind, "num_bins": num_bins}}
    module = NeuralDecoder("poyo_plus", tasks=[TASK], model_kwargs={**TINY_MODEL, "readout_heads": heads},
                           normalization=normalization, readout_vocab_cache=cache)
    train = dm.dataset("train")
    if normalization != "none":
        module.normalizer = TargetNormalizer(compute_target_stats(train, module.specs, mode=normalization))
    return module, train


def _count_reads(monkeypatch, dataset):
    """Counts the recordings the statistics pass reads (its only way to the targets)."""
    reads = []
    original = dataset.get_recording_data
    monkeypatch.setattr(dataset, "get_recording_data", lambda rid: reads.append(rid) or original(rid))
    return reads


def _centres(module):
    return module.model.readout.projections[TASK].vocabulary.detach().numpy()


def test_cache_is_written_then_reused_without_reading_the_data(tiny_root, tmp_path, monkeypatch, caplog):
    cache = tmp_path / "run" / "readout_vocab.pt"
    first, train = _module(tiny_root, cache=cache)
    reads = _count_reads(monkeypatch, train)
    assert first.fit_readout_vocabularies(train) == [TASK]
    assert sorted(reads) == [f"synthetic_reaching/{s}" for s in SESSIONS]  # one pass, each session once
    want = _reference_centres(tiny_root, SESSIONS, 8)
    np.testing.assert_allclose(_centres(first), want, rtol=1e-4, atol=1e-4)
    stored = torch.load(cache, weights_only=True)["tasks"][TASK]
    assert stored["head"] == {"kind": "bins", "num_bins": 8, "out_dim": 2, "strategy": "quantile"}
    assert stored["fingerprint"]["recordings"] == [f"synthetic_reaching/{s}" for s in SESSIONS]
    assert stored["fingerprint"]["normalization"] == "per_session"
    np.testing.assert_allclose(stored["values"].numpy(), want, rtol=1e-4, atol=1e-4)

    again, train = _module(tiny_root, cache=cache)
    reads = _count_reads(monkeypatch, train)
    with caplog.at_level(logging.INFO, logger="torch_brain.training.readout_vocab"):
        assert again.fit_readout_vocabularies(train) == [TASK]
    assert reads == []  # the statistics pass did not run
    assert not caplog.records
    np.testing.assert_array_equal(_centres(again), _centres(first))


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"num_bins": 6}, "head num_bins 8 cached vs 6 now"),
        ({"kind": "codebook"}, "head kind 'bins' cached vs 'codebook' now"),
        ({"exclude": ("heldout", "session_01")}, r"training recordings differ \(2 cached vs 1 now\)"),
        ({"normalization": "global"}, "normalization 'per_session' cached vs 'global' now"),
    ],
)
def test_a_mismatching_cache_is_recomputed_and_said_so(tiny_root, tmp_path, monkeypatch, caplog, change, reason):
    cache = tmp_path / "readout_vocab.pt"
    module, train = _module(tiny_root, cache=cache)
    module.fit_readout_vocabularies(train)
    other, train = _module(tiny_root, cache=cache, **change)
    reads = _count_reads(monkeypatch, train)
    with caplog.at_level(logging.INFO, logger="torch_brain.training.readout_vocab"):
        other.fit_readout_vocabularies(train)
    assert reads  # recomputed
    assert len(caplog.records) == 1
    assert caplog.records[0].levelno == logging.WARNING
    assert caplog.records[0].getMessage().startswith(f"readout vocabulary cache {str(cache)!r} does not match")
    assert caplog.records[0].getMessage().endswith("recomputing.")
    assert re.search(reason, caplog.records[0].getMessage())
    sessions = [s for s in SESSIONS if s not in change.get("exclude", ())]
    if change.get("kind") != "codebook" and change.get("normalization") is None:
        want = _reference_centres(tiny_root, sessions, change.get("num_bins", 8))
        np.testing.assert_allclose(_centres(other), want, rtol=1e-4, atol=1e-4)
    # the cache now holds the new vocabulary: a third identical module reads nothing
    third, train = _module(tiny_root, cache=cache, **change)
    reads = _count_reads(monkeypatch, train)
    third.fit_readout_vocabularies(train)
    assert reads == []
    np.testing.assert_array_equal(_centres(third), _centres(other))


@pytest.mark.parametrize("normalization, keep_mtime", [("per_session", True), ("none", False)])
def test_changed_data_under_the_same_ids_or_a_damaged_file_is_never_reused(tiny_root, tmp_path, monkeypatch, caplog,
                                                                           normalization, keep_mtime):
    # the same recording ids and head, other targets in the same file: the normalisation statistics
    # show it even when the file keeps its size and modification time (copied with times kept);
    # with normalisation "none" no statistic does, the file's modification time does
    import os

    root = tmp_path / "root"
    shutil.copytree(tiny_root, root)
    cache = tmp_path / "readout_vocab.pt"
    module, train = _module(root, cache=cache, normalization=normalization)
    module.fit_readout_vocabularies(train)
    path = root / "synthetic_reaching" / "session_00.h5"
    before = path.stat()
    with h5py.File(path, "r+") as f:
        f["cursor"]["vel"][...] = f["cursor"]["vel"][:] ** 3  # not affine: survives standardisation
    assert path.stat().st_size == before.st_size
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    other, train = _module(root, cache=cache, normalization=normalization)
    reads = _count_reads(monkeypatch, train)
    with caplog.at_level(logging.INFO, logger="torch_brain.training.readout_vocab"):
        other.fit_readout_vocabularies(train)
    assert reads and "recording files or normalisation statistics differ" in caplog.text
    assert not np.allclose(_centres(other), _centres(module))

    caplog.clear()
    cache.write_bytes(cache.read_bytes()[:100])  # torn file
    broken, train = _module(root, cache=cache, normalization=normalization)
    reads = _count_reads(monkeypatch, train)
    with caplog.at_level(logging.INFO, logger="torch_brain.training.readout_vocab"):
        broken.fit_readout_vocabularies(train)
    assert reads and "cannot be read" in caplog.text
    assert torch.load(cache, weights_only=True)["format"] == "torch_brain.readout_vocab/1"  # rewritten whole


def test_without_a_cache_path_nothing_is_read_or_written(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module, train = _module(tiny_root)
    assert module.readout_vocab_cache is None
    module.fit_readout_vocabularies(train)
    assert list(tmp_path.iterdir()) == []
    np.testing.assert_allclose(_centres(module), _reference_centres(tiny_root, SESSIONS, 8), rtol=1e-4, atol=1e-4)


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_in_a_pipe_is_two_lines_and_a_bar_on_a_terminal():
    out = io.StringIO()
    assert list(progress_iter(range(40), total=40, desc="readout statistics", stream=out)) == list(range(40))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[0] == "readout statistics: 40 sessions"
    assert lines[1].startswith("readout statistics: 40 sessions in ") and lines[1].endswith(" s")
    tty = _Tty()
    assert list(progress_iter(range(3), total=3, desc="readout statistics", stream=tty)) == [0, 1, 2]
    assert "\r" in tty.getvalue() and "0/3 [" in tty.getvalue()  # tqdm redraws one line in place


@pytest.mark.slow
def test_runner_progress_follows_enable_progress_bar(tiny_root, tmp_path, capsys):
    from torch_brain.training import fit

    heads = {TASK: {"kind": "bins", "num_bins": 4}}
    base = dict(data={"config": _raw_velocity()}, model={"readout_heads": heads},
                trainer={"max_steps": 1, "limit_val_batches": 0, "enable_progress_bar": False})
    fit(tiny_config(tiny_root, **base), run_dir=tmp_path / "quiet")
    assert "readout statistics" not in capsys.readouterr().out
    base["trainer"] = {**base["trainer"], "enable_progress_bar": True}
    fit(tiny_config(tiny_root, **base), run_dir=tmp_path / "shown")
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("readout ")]
    # stdout is a pipe here: a line before and after reading the sessions and fitting the heads
    assert len(lines) == 4 and lines[0] == "readout statistics: 2 sessions"
    assert lines[1].startswith("readout statistics: 2 sessions in ")
    assert lines[2] == "readout vocabulary fit: 1 head" and lines[3].startswith("readout vocabulary fit: 1 head in ")


@pytest.mark.slow
def test_cli_fit_then_resume_reuses_the_cache(tiny_root, tmp_path, monkeypatch, capsys):
    from torch_brain.cli import main

    heads = {TASK: {"kind": "bins", "num_bins": 8}}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(
        tiny_root, data={"config": _raw_velocity()}, model={"readout_heads": heads},
        trainer={"max_steps": 2, "limit_val_batches": 0})))
    run = tmp_path / "run"
    passes = []
    original = readout_vocab.training_targets
    monkeypatch.setattr(readout_vocab, "training_targets", lambda *a, **k: passes.append(1) or original(*a, **k))
    assert main(["fit", str(config), "--run-dir", str(run)]) == 0
    assert passes == [1] and (run / "readout_vocab.pt").is_file()
    first = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    np.testing.assert_allclose(first[f"model.readout.projections.{TASK}.centres"].numpy(),
                               _reference_centres(tiny_root, SESSIONS, 8), rtol=1e-4, atol=1e-4)

    assert main(["fit", str(config), "trainer.max_steps=3", "--run-dir", str(run), "--resume"]) == 0
    assert passes == [1]  # the resumed run did not redo the statistics pass
    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 3
    torch.testing.assert_close(resumed["state_dict"][f"model.readout.projections.{TASK}.centres"],
                               first[f"model.readout.projections.{TASK}.centres"], rtol=0, atol=0)

    # resuming with other bins is refused before anything is written
    capsys.readouterr()
    assert main(["fit", str(config), f"model.readout_heads.{TASK}.num_bins=6", "--run-dir", str(run),
                 "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "model_kwargs" in err and "'num_bins': 6" in err

    # re-running fit into the same directory: --overwrite replaces the run but keeps the cache,
    # which is reused while it matches and recomputed when the bins change
    (run / "old.txt").write_text("old")
    assert main(["fit", str(config), "--run-dir", str(run), "--overwrite"]) == 0
    assert passes == [1] and not (run / "old.txt").exists()
    assert main(["fit", str(config), f"model.readout_heads.{TASK}.num_bins=6", "--run-dir", str(run),
                 "--overwrite"]) == 0
    assert passes == [1, 1]
    assert torch.load(run / "readout_vocab.pt", weights_only=True)["tasks"][TASK]["values"].shape == (2, 6)


@pytest.mark.slow
def test_finetune_keeps_the_pretrained_bins_unless_told_to_refit(tiny_root, tmp_path):
    from torch_brain.training import finetune, fit

    heads = {TASK: {"kind": "bins", "num_bins": 8}}
    steps = {"max_steps": 1, "limit_val_batches": 0}
    fit(tiny_config(tiny_root, data={"config": _raw_velocity()}, model={"readout_heads": heads}, trainer=steps),
        run_dir=tmp_path / "pre")
    pre_ckpt = tmp_path / "pre" / "checkpoints" / "last.ckpt"
    key = f"model.readout.projections.{TASK}.centres"
    pretrained = torch.load(pre_ckpt, weights_only=True)["state_dict"][key]
    heldout = [{**_raw_velocity()[0], "selection": [{"brainset": "synthetic_reaching", "sessions": ["heldout"]}]}]
    for refit in (False, True):
        out = tmp_path / f"ft_{refit}"
        finetune(tiny_config(tiny_root, data={"config": heldout}, trainer=steps,
                             finetune={"refit_readout_vocabularies": refit}),
                 checkpoint=pre_ckpt, run_dir=out)
        centres = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"][key]
        if not refit:
            torch.testing.assert_close(centres, pretrained, rtol=0, atol=0)
            assert not (out / "readout_vocab.pt").exists()  # nothing was fitted
        else:
            np.testing.assert_allclose(centres.numpy(), _reference_centres(tiny_root, ["heldout"], 8),
                                       rtol=1e-4, atol=1e-4)
            assert not torch.equal(centres, pretrained)
            assert (out / "readout_vocab.pt").is_file()


@pytest.mark.parametrize("broken, match", [
    ("nan", r"readout head of 'cursor_velocity_2d': 5 of \d+ training targets of session "
            r"'synthetic_reaching/session_01' are NaN or inf"),
    ("constant", r"readout head of 'cursor_velocity_2d' \(normalised targets\): output dimension 1: every "
                 r"training target is 0.0, so there is nothing to bin"),
])
def test_bad_training_targets_are_refused_by_name(tiny_root, tmp_path, broken, match):
    root = tmp_path / "root"
    shutil.copytree(tiny_root, root)
    for sid in SESSIONS:
        vel, keep = _train_mask(root, sid)
        if broken == "constant":
            vel[:, 1] = 3.0
        elif sid == "session_01":
            vel[np.flatnonzero(keep)[10:15], 0] = np.nan  # 5 training targets
        with h5py.File(root / "synthetic_reaching" / f"{sid}.h5", "r+") as f:
            f["cursor"]["vel"][...] = vel
    module, train = _module(root)
    with pytest.raises(ValueError, match=match):
        module.fit_readout_vocabularies(train)


@pytest.mark.slow
def test_two_processes_fit_once_write_once_and_reduce_the_distribution_logs(tiny_root, tmp_path):
    """``torch-brain fit`` on 2 CPU processes: one statistics pass reported (rank 0), one cache file,
    and the logged CE / entropy equal a one-process evaluation of the same checkpoint."""
    from tests.training._launch import run_cli
    from torch_brain.training import evaluate

    heads = {TASK: {"kind": "bins", "num_bins": 8}}
    config = tiny_config(tiny_root, data={"config": _raw_velocity()}, model={"readout_heads": heads},
                         trainer={"devices": 2, "accelerator": "cpu", "max_steps": 2, "enable_progress_bar": True},
                         logging={"readout_distribution": True, "plots": False})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    log = run_cli(["fit", str(tmp_path / "run.yaml"), "--run-dir", str(run_dir)], cwd=tmp_path)
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    assert log.count("readout statistics: 2 sessions\n") == 1  # rank 0 reports, once
    stored = torch.load(run_dir / "readout_vocab.pt", weights_only=True)["tasks"][TASK]["values"]
    np.testing.assert_allclose(stored.numpy(), _reference_centres(tiny_root, SESSIONS, 8), rtol=1e-4, atol=1e-4)

    last = json.loads((run_dir / "history.json").read_text())[-1]["metrics"]
    single = evaluate(run_dir, ["trainer.devices=1"], stage="validate", checkpoint="last")["metrics"]
    for key in (f"val_readout_ce/{TASK}", f"val_readout_entropy/{TASK}"):
        assert last[key] == pytest.approx(single[key], rel=1e-5), key
