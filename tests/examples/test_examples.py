"""Every example runs end to end in its few-steps smoke mode (``--smoke``).

The examples are imported from their files and their ``main(argv)`` is called with ``--smoke``
and temporary ``--root`` / ``--out`` folders. The figures they print are not checked here (a few
steps train nothing); only that each pipeline runs and returns metrics of the right kind.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(relpath: str):
    path = EXAMPLES / relpath
    spec = importlib.util.spec_from_file_location(f"example_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    from torch_brain.brainsets import prepare

    root = tmp_path_factory.mktemp("processed")
    prepare("synthetic_reaching", root, n_sessions=2, n_subjects=1, minutes=1.5, n_units=30,
            progress=False)
    return root


def _finite(x) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def test_every_example_is_listed_in_the_readme():
    readme = (EXAMPLES / "README.md").read_text()
    scripts = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.glob("*/*.py"))
    assert scripts, "no example scripts found"
    missing = [s for s in scripts if s not in readme]
    assert not missing, f"examples/README.md does not mention {missing}"


@pytest.mark.slow
def test_guide_training_script_smoke(synthetic_root, tmp_path):
    metrics = _load("poyo_plus/train.py").main(
        ["--smoke", "--root", str(synthetic_root), "--out", str(tmp_path / "run")])
    assert "average_val_metric" in metrics
    tasks = {key.split("/")[-3] for key in metrics if key.count("/") >= 3}
    assert tasks == {"cursor_velocity_2d", "reach_direction"}


@pytest.mark.slow
def test_finetune_example_smoke(synthetic_root, tmp_path):
    result = _load("finetune/finetune.py").main(
        ["--smoke", "--root", str(synthetic_root), "--out", str(tmp_path / "run")])
    (session, tasks), = result["transfer"].items()
    assert session == "synthetic_reaching/heldout"
    assert set(tasks) == {"cursor_velocity_2d", "reach_direction"}
    assert set(result["scratch"]) == {"synthetic_reaching/heldout"}


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.parametrize(
    "script, brainset, keys",
    [
        ("m1_velocity/train.py", "spykesml_m1", ["poyo_r2", "ridge_r2"]),
        ("hippocampus_position/train.py", "nelpy_hippocampus",
         ["poyo_plus_r2", "poyo_plus_mae_px", "ridge_r2", "ridge_mae_px"]),
        ("grasp_classification/train.py", "brochier_grasp", ["poyo_plus_accuracy", "ridge_accuracy"]),
    ],
)
def test_real_recording_example_smoke(real_data_dir, tmp_path, script, brainset, keys):
    result = _load(script).main(
        ["--smoke", "--root", str(tmp_path / "processed"), "--out", str(tmp_path / "run")])
    assert (tmp_path / "processed" / brainset).is_dir()
    assert sorted(result) == sorted(keys)
    assert all(_finite(result[k]) for k in keys), result
