"""Helpers shared by the preparers: raw folders, split domains, description groups, writing."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# ../shared/data/real relative to the repository that holds this package (editable install)
_REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REAL_DATA_DIR = _REPO_ROOT.parent / "shared" / "data" / "real"
DEFAULT_SPLIT_RATIOS = (0.7, 0.1, 0.2)
SPLIT_NAMES = ("train", "valid", "test")


def resolve_raw_dir(raw_dir: str | os.PathLike | None, subfolder: str, required: Sequence[str]) -> Path:
    """Folder holding a real recording's raw files.

    ``raw_dir`` may be the recording's own folder (``.../spykesml``) or the folder of all real
    recordings (``.../real``, then ``subfolder`` is appended). ``None`` means
    ``../shared/data/real/<subfolder>`` next to the repository.

    Raises:
        FileNotFoundError: when a required file is missing (the message names it).
    """
    base = Path(raw_dir) if raw_dir is not None else DEFAULT_REAL_DATA_DIR / subfolder
    candidates = [base, base / subfolder]
    for cand in candidates:
        if all((cand / name).is_file() for name in required):
            return cand
    raise FileNotFoundError(
        f"raw_dir: expected the files {list(required)} in {base} (or in {base / subfolder}), "
        f"but they were not found. Pass raw_dir (--raw-dir on the command line) pointing to the "
        f"folder that holds them (the '{subfolder}' folder of ../shared/data/real)."
    )


def check_ratios(split_ratios: Sequence[float]) -> tuple[float, float, float]:
    """Validate (train, valid, test) ratios: three non-negative numbers summing to 1, train > 0."""
    try:
        ratios = tuple(float(r) for r in split_ratios)
    except (TypeError, ValueError):
        raise TypeError(
            f"split_ratios must be three numbers (train, valid, test), but got {split_ratios!r}."
        ) from None
    if len(ratios) != 3 or min(ratios) < 0 or ratios[0] <= 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(
            "split_ratios must be three non-negative numbers (train, valid, test) with train > 0 "
            f"that sum to 1, e.g. (0.7, 0.1, 0.2), but got {split_ratios!r}."
        )
    return ratios  # type: ignore[return-value]


def split_counts(n: int, ratios: Sequence[float]) -> tuple[int, int, int]:
    """Numbers of items (trials, bins) per split; rounding goes to train, test gets >=1 if n>=3."""
    n_valid = int(round(n * ratios[1]))
    n_test = int(round(n * ratios[2]))
    if n >= 3:
        n_test = max(n_test, 1 if ratios[2] > 0 else 0)
        n_valid = max(n_valid, 1 if ratios[1] > 0 else 0)
    n_train = n - n_valid - n_test
    if n_train < 1:
        raise ValueError(
            f"Too few items ({n}) to split with ratios {tuple(ratios)}: the training split would "
            "be empty. Produce a longer recording or change split_ratios."
        )
    return n_train, n_valid, n_test


def chronological_split_of_trials(
    starts: np.ndarray, ends: np.ndarray, ratios: Sequence[float]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split back-to-back, sorted trials into three contiguous blocks (train, valid, test).

    Each split's domain is one interval from its first trial's start to its last trial's end,
    so the domains are disjoint and aligned to trial boundaries.
    """
    n_train, n_valid, n_test = split_counts(len(starts), ratios)
    bounds = [0, n_train, n_train + n_valid, n_train + n_valid + n_test]
    out = {}
    for name, lo, hi in zip(SPLIT_NAMES, bounds[:-1], bounds[1:]):
        if hi > lo:
            out[name] = (np.array([starts[lo]]), np.array([ends[hi - 1]]))
        else:
            out[name] = (np.zeros(0), np.zeros(0))
    return out


def block_split_of_span(
    start: float, end: float, ratios: Sequence[float], n_blocks: int = 1
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split [start, end) into ``n_blocks`` equal blocks, each cut into train | valid | test.

    With ``n_blocks=1`` this is a chronological split (train first, test last). The pieces of
    different splits only touch at their boundaries.
    """
    edges = np.linspace(start, end, n_blocks + 1)
    cuts = np.cumsum([0.0, *ratios])
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in SPLIT_NAMES}
    for b0, b1 in zip(edges[:-1], edges[1:]):
        pts = b0 + cuts * (b1 - b0)
        pts[-1] = b1
        for k, name in enumerate(SPLIT_NAMES):
            if pts[k + 1] > pts[k]:
                out[name][0].append(float(pts[k]))
                out[name][1].append(float(pts[k + 1]))
    return {k: (np.asarray(v[0]), np.asarray(v[1])) for k, v in out.items()}


def stratified_trial_split(
    labels: np.ndarray, ratios: Sequence[float], seed: int
) -> dict[str, np.ndarray]:
    """Random split of trials into train/valid/test, stratified by ``labels``; sorted indices."""
    rng = np.random.default_rng([int(seed), 7])
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_NAMES}
    for lab in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == lab))
        n_train, n_valid, n_test = split_counts(idx.size, ratios)
        parts["train"].append(idx[:n_train])
        parts["valid"].append(idx[n_train:n_train + n_valid])
        parts["test"].append(idx[n_train + n_valid:])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}


def description(**fields: Any) -> Any:
    """A ``Data`` group of scalar description attributes (``brainset``, ``subject``, ...)."""
    from torch_brain.data import Data

    return Data(**{k: v for k, v in fields.items() if v is not None})


def check_targets(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse (before anything is written) to replace existing files unless ``overwrite``.

    Raises:
        ValueError: naming the existing files and how to replace them.
    """
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise ValueError(
            f"{len(existing)} output file(s) already exist: {existing[:3]}"
            f"{f' and {len(existing) - 3} more' if len(existing) > 3 else ''}. Pass overwrite=True "
            "(--overwrite) to replace "
            "them, or choose another root."
        )


def warn_about_strays(folder: Path, written: Sequence[Path]) -> None:
    """Warn when ``folder`` holds .h5 files this run did not write (they would be loaded too)."""
    written_set = {Path(p).resolve() for p in written}
    strays = sorted(p.name for p in Path(folder).glob("*.h5") if p.resolve() not in written_set)
    if strays:
        warnings.warn(
            f"{folder} also holds {len(strays)} file(s) not written by this run: {strays[:5]}. "
            "A Dataset over this root will load them too; delete them if they are stale.",
            stacklevel=3,
        )


def write_data(data: Any, path: Path) -> Path:
    """Write ``data`` to ``path`` (HDF5) atomically: into a temporary file, then renamed."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            data.to_hdf5(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
