"""A tiny synthetic reaching set shared by the training, CLI and baseline tests."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATASET_CONFIG = REPO / "configs" / "datasets" / "synthetic_reaching.yaml"
HELDOUT_CONFIG = REPO / "configs" / "datasets" / "synthetic_reaching_heldout.yaml"

TINY_MODEL = {"dim": 16, "depth": 1, "dim_head": 8, "cross_heads": 1, "self_heads": 2,
              "latent_step": 0.25, "num_latents_per_step": 2}

_CACHE: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """Two 1-minute training sessions + a held-out session, 12 units each (made once)."""
    if "root" not in _CACHE:
        from torch_brain.brainsets import prepare

        root = tmp_path_factory.mktemp("tiny_synthetic")
        prepare("synthetic_reaching", root, n_sessions=2, n_subjects=1, minutes=1.0, n_units=12,
                seed=0, held_out=True, progress=False)
        _CACHE["root"] = root
    return _CACHE["root"]


def tiny_config(root: Path, **sections) -> dict:
    """A run config for a few CPU steps on the tiny set; ``sections`` update its sections."""
    config = {
        "name": "tiny",
        "seed": 3,
        "data": {"root": str(root), "config": str(DATASET_CONFIG), "batch_size": 8,
                 "window_length": 1.0},
        "model": {"name": "poyo_plus", **TINY_MODEL},
        "optimizer": {"name": "adamw", "lr": 3e-3},
        "scheduler": {"name": "warmup_cosine", "warmup_fraction": 0.3},
        "trainer": {"max_steps": 6, "enable_progress_bar": False, "log_every_n_steps": 1},
        "logging": {"quiet": True, "tensorboard": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    return config
