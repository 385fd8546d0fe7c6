"""The README demo: ``torch-brain demo --fast`` runs end to end (smoke test of issue 7, item 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from torch_brain.cli import build_parser
from torch_brain.cli.demo import DEMO_SETTINGS, _table, demo_config


def test_demo_is_a_subcommand_of_torch_brain():
    args = build_parser().parse_args(["demo", "--fast", "--out", "x"])
    assert args.command == "demo" and args.fast and args.out == "x"


def test_demo_config_is_a_valid_run_config(tmp_path):
    from torch_brain.training import validate_config
    from torch_brain.training.config import load_config

    for fast in (False, True):
        cfg = load_config(demo_config(tmp_path, fast=fast))
        validate_config(cfg)
        assert cfg["trainer"]["max_steps"] == DEMO_SETTINGS["fast" if fast else "full"]["steps"]
        assert cfg["scheduler"]["name"] == "warmup_cosine"
        tasks = [r["readout_id"] for r in cfg["data"]["config"][0]["config"]["multitask_readout"]]
        assert tasks == ["cursor_velocity_2d", "reach_direction"]


def test_table_lists_sessions_and_the_mean():
    model = {"b/s1": {"cursor_velocity_2d": {"r2score": 0.5}, "reach_direction": {"accuracy": 0.25}},
             "b/s2": {"cursor_velocity_2d": {"r2score": 0.7}, "reach_direction": {"accuracy": 0.75}}}
    ridge = {"b/s1": {"cursor_velocity_2d": {"r2score": 0.4}}, "b/s2": {"cursor_velocity_2d": {"r2score": 0.2}}}
    lines = _table(model, ridge).splitlines()
    assert lines[2].split() == ["s1", "0.500", "0.400", "0.250", "-"]
    assert lines[-1].split() == ["mean", "0.600", "0.300", "0.500", "-"]


@pytest.mark.slow
def test_demo_fast_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "torch_brain.cli", "demo", "--fast", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    text = proc.stdout
    for expected in ("[1/6]", "[6/6]", "POYO+ R²", "ridge R²", "Held-out session after transfer",
                     "Summary", str(out)):
        assert expected in text, f"{expected!r} missing from the demo's output:\n{text}"
    results = json.loads((out / "results.json").read_text())
    n_train = DEMO_SETTINGS["fast"]["data"]["n_sessions"]
    assert len(results["test"]) == n_train and len(results["ridge"]) == n_train
    assert list(results["transfer"]) == ["synthetic_reaching/heldout"]
    for session in results["test"].values():
        assert set(session) == {"cursor_velocity_2d", "reach_direction"}
    plots = results["outputs"]["plots"]
    assert any(p.endswith("summary.png") for p in plots)
    assert any("confusion" in p for p in plots) and any("cursor_velocity_2d" in p for p in plots)
    assert all(Path(p).is_file() for p in plots)
