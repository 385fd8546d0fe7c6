"""configs/datasets/*.yaml: valid 0.1.x dataset configs that match the prepared files."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from torch_brain.brainsets import list_brainsets, prepare
from torch_brain.registry import MODALITY_REGISTRY

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "datasets"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


def _entries():
    for path in CONFIGS:
        for entry in yaml.safe_load(path.read_text()):
            yield path, entry


def test_a_config_per_bundled_brainset():
    names = {p.stem for p in CONFIGS}
    assert set(list_brainsets()) <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_structure(path):
    entries = yaml.safe_load(path.read_text())
    assert isinstance(entries, list) and entries
    for entry in entries:
        assert set(entry) == {"selection", "config"}
        for sel in entry["selection"]:
            assert sel["brainset"] in list_brainsets()
        for task in entry["config"]["multitask_readout"]:
            spec = MODALITY_REGISTRY[task["readout_id"]]
            for key in ("normalize_mean", "normalize_std"):
                if key in task:
                    assert len(task[key]) == spec.dim
            for metric in task["metrics"]:
                assert metric["metric"]["_target_"].startswith("torchmetrics.")


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cfg")
    prepare("synthetic_reaching", root, progress=False, n_sessions=2, n_subjects=1, minutes=0.3, n_units=5)
    return root


@pytest.mark.parametrize("name", ["synthetic_reaching.yaml", "synthetic_reaching_heldout.yaml"])
def test_synthetic_configs_load_in_dataset(synthetic_root, name):
    from torch_brain.data import Dataset

    ds = Dataset(synthetic_root, config=str(CONFIG_DIR / name), split="train")
    sessions = ds.get_session_ids()
    if "heldout" in name:
        assert sessions == ["synthetic_reaching/heldout"]
    else:
        assert sessions == ["synthetic_reaching/session_00", "synthetic_reaching/session_01"]
    rid = sessions[0]
    window = ds.get(rid, 1.0, 3.0)
    for task in window.config["multitask_readout"]:
        spec = MODALITY_REGISTRY[task["readout_id"]]
        window.get_nested_attribute(spec.timestamp_key)
        values = window.get_nested_attribute(spec.value_key)
        assert values.shape[1:] in ((), (spec.dim,))
        for key in list(task.get("weights", {})) + [task.get("eval_interval")]:
            if key:
                window.get_nested_attribute(key)


def test_synthetic_normalisation_matches_data(synthetic_root):
    import h5py

    from torch_brain.data import Data

    cfg = yaml.safe_load((CONFIG_DIR / "synthetic_reaching.yaml").read_text())
    std = cfg[0]["config"]["multitask_readout"][0]["normalize_std"]
    with h5py.File(synthetic_root / "synthetic_reaching" / "session_00.h5") as f:
        vel = Data.from_hdf5(f, lazy=False).cursor.vel
    assert np.allclose(vel.std(0), std, rtol=0.3)


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["spykesml_m1", "nelpy_hippocampus", "brochier_grasp"])
def test_real_configs_match_files(real_data_dir, tmp_path, name):
    from torch_brain.data import Dataset

    prepare(name, tmp_path, raw_dir=str(real_data_dir), progress=False)
    ds = Dataset(tmp_path, config=str(CONFIG_DIR / f"{name}.yaml"), split="train")
    (rid,) = ds.get_session_ids()
    iv = ds.get_sampling_intervals()[rid]
    window = ds.get(rid, float(iv.start[0]), float(iv.start[0]) + 1.0)
    for task in window.config["multitask_readout"]:
        spec = MODALITY_REGISTRY[task["readout_id"]]
        values = window.get_nested_attribute(spec.value_key)
        assert values.shape[1:] in ((), (spec.dim,))
        if task.get("eval_interval"):
            window.get_nested_attribute(task["eval_interval"])
