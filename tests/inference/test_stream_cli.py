"""``torch-brain stream`` end to end on the tiny synthetic set."""

import json

import pytest
import torch

from tests.training.tiny_synthetic import TINY_MODEL, tiny_root  # noqa: F401  (fixture)
from torch_brain.cli import main
from torch_brain.data import Dataset
from torch_brain.models import POYOPlus


def test_stream_cli_end_to_end(tiny_root, tmp_path, capsys):  # noqa: F811
    dataset = Dataset(tiny_root)
    torch.manual_seed(0)
    model = POYOPlus(**TINY_MODEL, readout_specs=["cursor_velocity_2d"])
    model.unit_emb.initialize_vocab(dataset.get_unit_ids())
    model.session_emb.initialize_vocab(dataset.get_session_ids())
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
               run / "checkpoints" / "last.ckpt")
    rid = dataset.get_recording_ids()[0]
    status = main(["stream", "--run-dir", str(run), "--data", str(tiny_root), "--recording", rid,
                   "--seconds", "2", "--hop", "0.05", "--chunk", "0.02", "--json"])
    out = capsys.readouterr().out
    assert status == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["updates"] == 40
    assert "latency per update (ms): p50" in out
    agreement = result["agreement"]["cursor_velocity_2d"]
    assert -1.0 <= agreement["pearson_mean"] <= 1.0
    assert agreement["max_abs_diff"] >= 0.0


def _checkpoint(dataset, tmp_path, sessions=None):
    """A tiny untrained POYO+ for the dataset's units and (some of) its sessions, saved as a state dict."""
    model = POYOPlus(**TINY_MODEL, readout_specs=["cursor_velocity_2d"])
    model.unit_emb.initialize_vocab(dataset.get_unit_ids())
    model.session_emb.initialize_vocab(dataset.get_session_ids() if sessions is None else sessions)
    ckpt = tmp_path / "m.ckpt"
    torch.save(model.state_dict(), ckpt)
    return ckpt


def test_stream_cli_unknown_session(tiny_root, tmp_path, capsys):  # noqa: F811
    dataset = Dataset(tiny_root)
    ckpt = _checkpoint(dataset, tmp_path, sessions=dataset.get_session_ids()[:1])
    status = main(["stream", "--checkpoint", str(ckpt), "--data", str(tiny_root),
                   "--recording", dataset.get_recording_ids()[-1], "--seconds", "1"])
    assert status == 2
    assert "not in the model's session vocabulary" in capsys.readouterr().err


def test_stream_realtime_paces_the_pushes(tiny_root, tmp_path):  # noqa: F811
    import time

    from torch_brain.inference._replay import replay_recording

    dataset = Dataset(tiny_root)
    ckpt = _checkpoint(dataset, tmp_path)
    t0 = time.perf_counter()
    result = replay_recording(ckpt, tiny_root, dataset.get_recording_ids()[0], seconds=0.6, hop=0.05,
                              realtime=True, compare=False)
    assert time.perf_counter() - t0 >= 0.55  # the wall clock followed the recording's
    assert result["updates"] == 12 and "agreement" not in result


def test_realtime_note_on_sleeping_openmp_workers(tiny_root, tmp_path, capsys, monkeypatch):  # noqa: F811
    from torch_brain.cli.stream import _pacing_note

    dataset = Dataset(tiny_root)
    ckpt = _checkpoint(dataset, tmp_path)
    argv = ["stream", "--checkpoint", str(ckpt), "--data", str(tiny_root), "--recording",
            dataset.get_recording_ids()[0], "--seconds", "0.2", "--hop", "0.05", "--no-compare"]
    # as on a 2-core machine, without touching this process's thread count
    monkeypatch.setattr("torch_brain.inference._replay.torch.get_num_threads", lambda: 2)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert main(argv + ["--realtime"]) == 0
    assert "OMP_WAIT_POLICY=ACTIVE" in capsys.readouterr().out
    assert main(argv) == 0  # as fast as possible: nothing idles, nothing to say
    assert "OMP_WAIT_POLICY" not in capsys.readouterr().out
    assert "OMP_WAIT_POLICY=ACTIVE" in _pacing_note(2, {})
    assert "--threads 1" in _pacing_note(4, {"OMP_WAIT_POLICY": "passive"})
    assert "--busy-wait" in _pacing_note(2, {})
    assert _pacing_note(2, {"OMP_WAIT_POLICY": "active"}) is None  # workers spin: nothing to say
    assert _pacing_note(1, {}) is None  # no workers


def test_busy_wait_replay_polls_the_clock_instead_of_sleeping(tiny_root, tmp_path, capsys, monkeypatch):  # noqa: F811
    import time

    from torch_brain.inference._replay import replay_recording

    dataset = Dataset(tiny_root)
    ckpt = _checkpoint(dataset, tmp_path)
    rid = dataset.get_recording_ids()[0]
    slept = []
    monkeypatch.setattr("torch_brain.inference._replay.time.sleep", slept.append)
    t0 = time.perf_counter()
    result = replay_recording(ckpt, tiny_root, rid, seconds=0.3, hop=0.05, realtime=True, busy_wait=True,
                              compare=False)
    assert time.perf_counter() - t0 >= 0.25  # still paced by the wall clock ...
    assert slept == [] and result["busy_wait"] and result["updates"] == 6  # ... without a single sleep
    # the CLI: no OpenMP note when the loop busy-waits; --busy-wait alone is refused
    monkeypatch.setattr("torch_brain.inference._replay.torch.get_num_threads", lambda: 2)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    argv = ["stream", "--checkpoint", str(ckpt), "--data", str(tiny_root), "--recording", rid, "--seconds", "0.2",
            "--hop", "0.05", "--no-compare", "--busy-wait"]
    assert main(argv + ["--realtime"]) == 0
    out = capsys.readouterr().out
    assert "busy-waiting" in out and "OMP_WAIT_POLICY" not in out
    assert main(argv) == 2
    assert "pass --realtime as well" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pass realtime=True"):
        replay_recording(ckpt, tiny_root, rid, seconds=0.1, busy_wait=True)
