"""Run configuration: YAML files merged over defaults, dotted command-line overrides, validation.

A run config is a nested dict with the sections of :data:`DEFAULT_CONFIG`. A YAML file only
needs the keys it changes; ``base: other.yaml`` (relative to the file) inherits another file.
Overrides such as ``trainer.max_steps=100 model.dim=64`` are applied last; their values are
parsed as YAML (``1e-3``, ``true``, ``[a, b]``, ``null``).

Every key is checked against the defaults: an unknown key is refused with the closest valid key.
Sections listed in :data:`OPEN_SECTIONS` accept any key (they are checked by whatever consumes
them: the optimiser/schedule factories, the model constructor).
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_CONFIG",
    "OPEN_SECTIONS",
    "apply_overrides",
    "dump_config",
    "load_config",
    "merge_config",
    "validate_config",
]

DEFAULT_CONFIG: dict[str, Any] = {
    "name": "run",
    "seed": 0,
    "run_dir": None,  # default: runs/<name>
    "data": {
        "root": "data/processed",
        "config": None,  # dataset selection config: path, dict or list (see Dataset)
        "tasks": None,  # task names to decode; default: every readout_id of the data config
        "window_length": 1.0,
        "batch_size": 32,
        "eval_batch_size": None,  # default: batch_size
        "eval_step": None,  # stride of evaluation windows; default: window_length / 2
        "num_workers": 0,
        "train_split": "train",
        "val_split": "valid",
        "test_split": "test",
        "unit_dropout": None,  # e.g. {min_units: 20, mode_units: 100}
        "keep_files_open": True,
    },
    "model": {
        "name": "poyo_plus",
        "dim": 64,
        "depth": 2,
        "dim_head": 64,
        "cross_heads": 1,
        "self_heads": 8,
        "latent_step": 0.125,
        "num_latents_per_step": 16,
        "ffn_dropout": 0.0,
        "lin_dropout": 0.0,
        "atn_dropout": 0.0,
    },
    "normalization": {
        "mode": "per_session",  # per_session | global | none
    },
    # the recipe measured in benchmarks/RESULTS.md ("Accuracy and recipes"): on a CPU budget AdamW
    # 2e-3 with warm-up + cosine and no dropout leaves the initial plateau much sooner than
    # SparseLamb 4e-3 (test R² 0.80 vs 0.60 after 600 steps on the synthetic set)
    "optimizer": {"name": "adamw", "lr": 2e-3, "weight_decay": 1e-4},
    "scheduler": {"name": "warmup_cosine", "warmup_fraction": 0.1, "final_factor": 0.01},
    "trainer": {
        "max_steps": 600,
        "max_epochs": -1,
        "accelerator": "auto",
        "devices": 1,
        "precision": "32",
        "gradient_clip_val": 1.0,
        "gradient_clip_algorithm": "norm",
        "accumulate_grad_batches": 1,
        "deterministic": False,
        "compile": False,
        "check_val_every_n_epoch": 1,
        "val_check_interval": None,
        "limit_val_batches": None,
        "log_every_n_steps": 10,
        "steps_per_epoch": None,  # length of one training "epoch" in batches; default: the sampler's
        "enable_progress_bar": True,
        "progress_every_n_steps": 50,  # when stdout is not a terminal: one progress line per N steps
    },
    "checkpoint": {
        "monitor": "average_val_metric",
        "mode": "max",
        "save_top_k": 1,
        "save_last": True,
        "every_n_epochs": None,
        "every_n_train_steps": None,
    },
    "early_stopping": {
        "monitor": None,  # any logged metric; None disables early stopping
        "mode": "max",
        "patience": 5,
        "min_delta": 0.0,
    },
    "logging": {
        "csv": True,
        "tensorboard": True,  # used only if tensorboard is installed
        "plots": True,  # used only if matplotlib is installed
        "plot_seconds": 20.0,  # stretch of test time shown in trace plots
        "quiet": False,
        "readout_distribution": False,  # log CE and entropy of bins/codebook heads in val/test
    },
    "finetune": {
        "checkpoint": None,
        "skip_readout": True,
        # fit new bins / codebooks on the fine-tuning data instead of keeping the pretrained ones
        "refit_readout_vocabularies": False,
        "unit_identification_steps": 0,  # first phase: train only new unit/session embeddings
        "unit_identification_lr": None,  # default: optimizer.lr
        "freeze_encoder": False,  # train only the readout and unit/session embeddings, the whole run
        "freeze_encoder_steps": 0,  # or a first phase of that many steps with the encoder frozen
        "encoder_lr_scale": 1.0,  # encoder learning rate relative to optimizer.lr (e.g. 0.1)
    },
    "baseline": {
        "name": "ridge",  # ridge | kalman
        "bin_size": 0.05,
        "lags": 5,
        "alpha": 1.0,
    },
}

# sections whose keys are free-form (checked by their consumer)
OPEN_SECTIONS: tuple[str, ...] = ("data.config", "data.unit_dropout", "model", "optimizer", "scheduler")

_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _fix_numbers(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; turn such strings into floats."""
    if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        return float(value)
    if isinstance(value, dict):
        return {k: _fix_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_numbers(v) for v in value]
    return value


def _closest_key(key: str, valid: Sequence[str]) -> str:
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f" Did you mean {match[0]!r}?" if match else ""


def _is_open(path: str) -> bool:
    return any(path == s or path.startswith(s + ".") for s in OPEN_SECTIONS)


def validate_config(config: Mapping[str, Any], *, _defaults: Mapping | None = None,
                    _prefix: str = "") -> None:
    """Checks that every key of ``config`` exists in :data:`DEFAULT_CONFIG`.

    Raises:
        ValueError: naming the unknown key and the closest valid one.
        TypeError: a section given as a scalar.
    """
    defaults = DEFAULT_CONFIG if _defaults is None else _defaults
    if not isinstance(config, Mapping):
        raise TypeError(f"config{(' section ' + _prefix[:-1]) if _prefix else ''} must be a "
                        f"mapping, got {type(config).__name__}.")
    for key, value in config.items():
        path = f"{_prefix}{key}"
        if key == "base" and not _prefix:
            continue
        if key not in defaults:
            valid = [f"{_prefix}{k}" for k in defaults]
            raise ValueError(
                f"Unknown config key {path!r}.{_closest_key(path, valid)} "
                f"Valid keys here are: {', '.join(sorted(valid))}."
            )
        if _is_open(path):
            continue
        default = defaults[key]
        if isinstance(default, dict):
            if not isinstance(value, Mapping):
                raise TypeError(
                    f"config key {path!r} is a section ({', '.join(sorted(default))}); got "
                    f"{value!r}. Set one of its keys instead, e.g. {path}.{next(iter(default))}=..."
                )
            validate_config(value, _defaults=default, _prefix=path + ".")


def merge_config(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge: values of ``update`` win; dicts are merged key by key.

    Open sections whose ``name`` changes (e.g. a new optimiser) are replaced, not merged, so
    options of the old choice do not leak into the new one.
    """
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            if "name" in value and value.get("name") != old.get("name") and key in (
                "optimizer", "scheduler"
            ):
                out[key] = copy.deepcopy(dict(value))
            else:
                out[key] = merge_config(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist. Pass a YAML file, "
                                "e.g. configs/poyo_plus_synthetic.yaml.")
    if path.resolve() in seen:
        raise ValueError(f"config {str(path)!r} inherits itself through 'base'.")
    try:
        with open(path) as f:
            content = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {str(path)!r} is not valid YAML; fix the line the parser points "
                         f"at:\n{err}") from None
    except UnicodeDecodeError:
        raise ValueError(f"config file {str(path)!r} is not a text (YAML) file; pass a .yaml config.") from None
    if not isinstance(content, dict):
        raise TypeError(f"config file {str(path)!r} must hold a mapping at top level, got "
                        f"{type(content).__name__}.")
    content = _fix_numbers(content)
    _resolve_paths(content, path.parent)
    if "base" in content:
        base = path.parent / content.pop("base")
        content = merge_config(_read_yaml(base, seen + (path.resolve(),)), content)
    return content


def _resolve_paths(content: dict[str, Any], folder: Path) -> None:
    """A relative ``data.config`` / ``finetune.checkpoint`` that does not exist from the working
    directory but does next to the YAML file is made relative to the file."""
    for section, key in (("data", "config"), ("finetune", "checkpoint")):
        value = (content.get(section) or {}).get(key) if isinstance(content.get(section), dict) else None
        if isinstance(value, str) and not Path(value).is_absolute() and not Path(value).exists():
            candidate = folder / value
            if candidate.exists():
                content[section][key] = str(candidate)


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key.sub=value "
                         "(e.g. trainer.max_steps=100).")
    key, raw = item.split("=", 1)
    key = key.strip().lstrip("-")
    if not key:
        raise ValueError(f"override {item!r} has an empty key.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), _fix_numbers(value)


# options kept when an override switches the optimiser / schedule to another name
_RESET_ON_NAME = {"optimizer": ("lr", "weight_decay"), "scheduler": ()}


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Applies dotted overrides like ``["trainer.max_steps=100", "model.dim=64"]``.

    Raises:
        ValueError: malformed override or unknown key (with the closest valid key).
    """
    out = copy.deepcopy(dict(config))
    for item in overrides:
        parts, value = _parse_override(item)
        update: Any = value
        for part in reversed(parts):
            update = {part: update}
        validate_config(update)
        if len(parts) == 2 and parts[0] in _RESET_ON_NAME and parts[1] == "name":
            old = out.get(parts[0]) or {}
            if old.get("name") != value:  # options of the old choice would not fit the new one
                out[parts[0]] = {k: v for k, v in old.items() if k in _RESET_ON_NAME[parts[0]]}
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def load_config(
    source: str | Path | Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Builds a full run config: defaults <- YAML file (or dict) <- overrides.

    Args:
        source: path of a YAML file, a dict, or None (defaults only).
        overrides: dotted ``key=value`` strings.

    Returns:
        The resolved config (a new dict; every section present).

    Raises:
        FileNotFoundError: the YAML file does not exist.
        ValueError: unknown key (with the closest valid key) or malformed override.
    """
    if source is None:
        user: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        user = _fix_numbers(copy.deepcopy(dict(source)))
        if "base" in user:
            raise ValueError("'base' is only allowed in YAML files (it is a path relative to the file).")
    else:
        user = _read_yaml(Path(source))
    validate_config(user)
    config = merge_config(DEFAULT_CONFIG, user)
    config = apply_overrides(config, overrides)
    return config


def dump_config(config: Mapping[str, Any], path: str | Path) -> None:
    """Writes ``config`` as YAML (keys in insertion order)."""
    with open(path, "w") as f:
        yaml.safe_dump(dict(config), f, sort_keys=False, default_flow_style=False)
