"""The registered preparers: one per bundled brainset."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from torch_brain.brainsets import _brochier, _common, _nelpy, _spykesml, _synthetic
from torch_brain.brainsets._registry import Option, register_brainset

_RATIOS = Option(
    "split_ratios", "ratios", _common.DEFAULT_SPLIT_RATIOS, "train/valid/test fractions"
)
_RAW_DIR = Option(
    "raw_dir", str, None, "folder of the raw files (default: ../shared/data/real/<recording>)"
)


def _positive(name: str, value: Any, brainset: str, integer: bool) -> None:
    if not value > 0 or (integer and int(value) != value):
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"prepare({brainset!r}): {name} must be {kind}, but got {value!r}.")


@register_brainset(
    _synthetic.BRAINSET_ID,
    summary="synthetic multi-session, multi-subject centre-out reaching (cursor velocity, reach direction)",
    options=[
        Option("n_sessions", int, 4, "number of training sessions"),
        Option("n_subjects", int, 2, "number of subjects (sessions are assigned round robin)"),
        Option("minutes", float, 10.0, "minutes per session"),
        Option("n_units", int, 100, "units per session"),
        Option("seed", int, 0, "random seed (same seed, same files)"),
        Option("held_out", bool, True, "also write a held-out session 'heldout' (subject 0, new units)"),
        _RATIOS,
    ],
)
def _prepare_synthetic(
    root: Path,
    *,
    overwrite: bool,
    progress: bool,
    n_sessions: int,
    n_subjects: int,
    minutes: float,
    n_units: int,
    seed: int,
    held_out: bool,
    split_ratios: tuple[float, float, float],
) -> list[Path]:
    name = _synthetic.BRAINSET_ID
    for key, value, integer in [
        ("n_sessions", n_sessions, True),
        ("n_subjects", n_subjects, True),
        ("minutes", minutes, False),
        ("n_units", n_units, True),
    ]:
        _positive(key, value, name, integer)
    if n_subjects > n_sessions:
        raise ValueError(
            f"prepare({name!r}): n_subjects ({n_subjects}) must be <= n_sessions ({n_sessions}) so "
            "every subject has a session; lower n_subjects or raise n_sessions."
        )
    _common.check_ratios(split_ratios)
    folder = root / name
    stats = [_synthetic.subject_stats(seed, j) for j in range(n_subjects)]
    jobs = [(i, f"session_{i:02d}", stats[i % n_subjects]) for i in range(n_sessions)]
    if held_out:
        jobs.append((n_sessions, _synthetic.HELD_OUT_SESSION_ID, stats[0]))
    paths = [folder / f"{sid}.h5" for _, sid, _ in jobs]
    _common.check_targets(paths, overwrite)
    written = []
    for (index, sid, st), path in tqdm(
        list(zip(jobs, paths)), desc=f"{name}: sessions", unit="session", disable=not progress
    ):
        data = _synthetic.build_synthetic_reaching_session(
            seed=seed,
            # the held-out session's index is fixed so it does not change with n_sessions
            session_index=10_000 if sid == _synthetic.HELD_OUT_SESSION_ID else index,
            session_id=sid,
            stats=st,
            minutes=float(minutes),
            n_units=int(n_units),
            split_ratios=split_ratios,
        )
        written.append(_common.write_data(data, path))
    _common.warn_about_strays(folder, written)
    return written


def _prepare_single(
    root: Path,
    brainset: str,
    session: str,
    build: Callable[[], Any],
    overwrite: bool,
    progress: bool,
) -> list[Path]:
    path = root / brainset / f"{session}.h5"
    _common.check_targets([path], overwrite)
    with tqdm(total=2, desc=f"{brainset}", unit="step", disable=not progress) as bar:
        bar.set_postfix_str("reading raw files")
        data = build()
        bar.update()
        bar.set_postfix_str(f"writing {path.name}")
        _common.write_data(data, path)
        bar.update()
    _common.warn_about_strays(path.parent, [path])
    return [path]


@register_brainset(
    _spykesml.BRAINSET_ID,
    summary="real macaque M1 reaching, 50 ms counts spread into spike times, hand velocity (spykesML)",
    options=[_RAW_DIR, _RATIOS],
)
def _prepare_spykesml(
    root: Path, *, overwrite: bool, progress: bool, raw_dir: str | None, split_ratios: tuple
) -> list[Path]:
    _common.check_ratios(split_ratios)
    _common.resolve_raw_dir(raw_dir, _spykesml.RAW_SUBFOLDER, [_spykesml.RAW_FILE])
    return _prepare_single(
        root,
        _spykesml.BRAINSET_ID,
        _spykesml.SESSION_ID,
        lambda: _spykesml.build_spykesml_m1(raw_dir, split_ratios=split_ratios),
        overwrite,
        progress,
    )


@register_brainset(
    _nelpy.BRAINSET_ID,
    summary="real rat hippocampus on a linear track: spike times and tracked position (nelpy)",
    options=[_RAW_DIR, _RATIOS, Option("n_blocks", int, 5, "time blocks of the track part, each split train|valid|test")],
)
def _prepare_nelpy(
    root: Path,
    *,
    overwrite: bool,
    progress: bool,
    raw_dir: str | None,
    split_ratios: tuple,
    n_blocks: int,
) -> list[Path]:
    _common.check_ratios(split_ratios)
    _positive("n_blocks", n_blocks, _nelpy.BRAINSET_ID, True)
    _common.resolve_raw_dir(raw_dir, _nelpy.RAW_SUBFOLDER, [_nelpy.SPIKES_FILE, _nelpy.TRACKING_FILE])
    return _prepare_single(
        root,
        _nelpy.BRAINSET_ID,
        _nelpy.SESSION_ID,
        lambda: _nelpy.build_nelpy_hippocampus(raw_dir, split_ratios=split_ratios, n_blocks=n_blocks),
        overwrite,
        progress,
    )


@register_brainset(
    _brochier.BRAINSET_ID,
    summary="real macaque reach-to-grasp trials: 1 ms rasters to spike times, grip type per trial",
    options=[_RAW_DIR, _RATIOS, Option("split_seed", int, 0, "seed of the stratified trial split")],
)
def _prepare_brochier(
    root: Path,
    *,
    overwrite: bool,
    progress: bool,
    raw_dir: str | None,
    split_ratios: tuple,
    split_seed: int,
) -> list[Path]:
    _common.check_ratios(split_ratios)
    _common.resolve_raw_dir(raw_dir, _brochier.RAW_SUBFOLDER, [_brochier.RAW_FILE])
    return _prepare_single(
        root,
        _brochier.BRAINSET_ID,
        _brochier.SESSION_ID,
        lambda: _brochier.build_brochier_grasp(raw_dir, split_ratios=split_ratios, split_seed=split_seed),
        overwrite,
        progress,
    )
