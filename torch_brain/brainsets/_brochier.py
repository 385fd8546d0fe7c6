"""Importer of the Brochier et al. 2018 reach-to-grasp trials, brainset ``brochier_grasp``.

Raw file: ``Dataset2_small.mat`` (MATLAB v7.3 = HDF5) with ``D`` (trials x neurons x 1500) binary
1 ms spike rasters from 200 ms before the grip cue to the Go signal (0.2 s pre-cue, 0.3 s cue,
1.0 s delay), ``GRIP`` (1 = side grip, 2 = precision grip), ``RT`` (reaction time, ms) and ``ID``
(neuron ids, apparently channel * 100 + unit).

Trials are laid out on one timeline: trial ``k`` occupies ``[k * 2.5, k * 2.5 + 1.5)`` s and
the 1 s gaps between trials hold no data (they are outside ``domain``). A spike in 1 ms bin ``j``
of a trial is placed at the bin centre, ``trial_start + (j + 0.5) ms``. ``grip_id`` is 0 for side
grip and 1 for precision grip. ``grip`` is sampled every 0.1 s inside each trial's delay period
(at 0.55, 0.65, ..., 1.45 s into the trial). Splits are random by trial, stratified by grip.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from torch_brain.brainsets import _common

__all__ = ["BRAINSET_ID", "SESSION_ID", "build_brochier_grasp", "read_brochier_grasp"]

BRAINSET_ID = "brochier_grasp"
SESSION_ID = "dataset2_small"
RAW_SUBFOLDER = "brochier2018-grasp-small"
RAW_FILE = "Dataset2_small.mat"
BIN_S = 0.001
TRIAL_S = 1.5
GAP_S = 1.0
CUE_S = (0.2, 0.5)
DELAY_S = (0.5, 1.5)
GRIP_NAMES = ("side_grip", "precision_grip")

DESCRIPTION = (
    "Macaque M1/PMd (Utah array), instructed-delay reach-to-grasp (Brochier et al. 2018, Sci Data "
    "5:180055), trials from the 2022 CENTURI summer school Dataset2 (GPL-3.0 repository). 1 ms "
    "rasters from 200 ms before the grip cue to Go; each spike placed at its 1 ms bin centre. "
    "Trials laid out every 2.5 s on one timeline (1.5 s of data, 1 s gap without data). grip_id: "
    "0 = side grip, 1 = precision grip. No kinematics."
)


def read_brochier_grasp(raw_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Read the raw grasp file.

    Args:
        raw_dir: folder holding ``Dataset2_small.mat`` (or the ``real`` folder above it);
            default ``../shared/data/real/brochier2018-grasp-small``.

    Returns:
        ``raster`` (K, U, 1500) uint8 spike rasters (trials, neurons, 1 ms bins), ``grip_id`` (K,)
        int64 (0 side, 1 precision), ``reaction_time`` (K,) float64 s, ``neuron_id`` (U,) int64.
    """
    import h5py

    folder = _common.resolve_raw_dir(raw_dir, RAW_SUBFOLDER, [RAW_FILE])
    with h5py.File(folder / RAW_FILE, "r") as f:
        missing = [k for k in ("D", "GRIP", "RT", "ID") if k not in f]
        if missing:
            raise ValueError(
                f"{folder / RAW_FILE}: expected datasets D, GRIP, RT and ID, missing {missing}."
            )
        raster = np.asarray(f["D"][()])
        grip = np.asarray(f["GRIP"][()]).ravel()
        rt = np.asarray(f["RT"][()], dtype=np.float64).ravel()
        ids = np.asarray(f["ID"][()]).ravel()
    if not np.isin(grip, (1, 2)).all():
        raise ValueError(f"{folder / RAW_FILE}: GRIP must hold only 1 and 2, found {np.unique(grip)}.")
    if raster.ndim != 3 or raster.shape[0] != grip.size:
        raise ValueError(
            f"{folder / RAW_FILE}: D has shape {raster.shape}, expected (trials={grip.size}, neurons, time)."
        )
    if not np.isin(raster, (0, 1)).all():
        raise ValueError(f"{folder / RAW_FILE}: D must be a binary raster (0/1).")
    return {
        "raster": raster.astype(np.uint8),
        "grip_id": (grip - 1).astype(np.int64),
        "reaction_time": rt / 1000.0,
        "neuron_id": ids.astype(np.int64),
    }


def build_brochier_grasp(
    raw_dir: str | os.PathLike | None = None,
    *,
    split_ratios: tuple[float, float, float] = _common.DEFAULT_SPLIT_RATIOS,
    split_seed: int = 0,
) -> Any:
    """Build the ``brochier_grasp`` recording as a :class:`torch_brain.data.Data`.

    Args:
        raw_dir: raw folder (see :func:`read_brochier_grasp`).
        split_ratios: (train, valid, test) fractions of the trials of each grip.
        split_seed: seed of the random, grip-stratified trial split.
    """
    from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries

    ratios = _common.check_ratios(split_ratios)
    raw = read_brochier_grasp(raw_dir)
    raster = raw["raster"]
    n_trials, n_units, n_bins = raster.shape
    trial_start = np.arange(n_trials) * (TRIAL_S + GAP_S)
    trial_end = trial_start + n_bins * BIN_S
    trial_idx, unit_idx, bin_idx = np.nonzero(raster)
    times = trial_start[trial_idx] + (bin_idx + 0.5) * BIN_S
    order = np.lexsort((unit_idx, times))
    times, unit_idx = times[order], unit_idx[order].astype(np.int64)
    grip_id = raw["grip_id"]
    k = np.arange(int(round((DELAY_S[1] - DELAY_S[0]) / 0.1)))
    grip_t = (trial_start[:, None] + DELAY_S[0] + 0.05 + 0.1 * k[None, :]).ravel()
    grip_lab = np.repeat(grip_id, k.size)
    trials = Interval(
        trial_start,
        trial_end,
        grip_id=grip_id,
        reaction_time=raw["reaction_time"],
        go_time=trial_start + DELAY_S[1],
    )
    domain = Interval(trial_start.copy(), trial_end.copy())
    split_idx = _common.stratified_trial_split(grip_id, ratios, split_seed)
    splits = {name: Interval(trial_start[idx], trial_end[idx]) for name, idx in split_idx.items()}
    return Data(
        brainset=_common.description(
            id=BRAINSET_ID,
            origin_version=(
                "github.com/CONECT-INT/2022_CENTURI-SummerSchool@5c7c9ee11238504db228b454b10fd5d2c538e6e3"
            ),
            derived_version="1.0.0",
            source=(
                "https://github.com/CONECT-INT/2022_CENTURI-SummerSchool "
                "(datasets/dataset2_grasping-task/Dataset2.mat); Brochier et al. 2018"
            ),
            description=DESCRIPTION,
        ),
        subject=_common.description(id="monkey", species="macaca_mulatta"),
        session=_common.description(id=SESSION_ID, task="reach_to_grasp"),
        device=_common.description(id=f"{SESSION_ID}_utah_array", recording_tech="utah_array"),
        units=ArrayDict(
            id=np.array([f"id{i}" for i in raw["neuron_id"]]),
            source_id=raw["neuron_id"],
        ),
        spikes=IrregularTimeSeries(times, unit_index=unit_idx, domain=domain),
        trials=trials,
        task_periods=Data(
            pre_cue_period=Interval(trial_start.copy(), trial_start + CUE_S[0]),
            cue_period=Interval(trial_start + CUE_S[0], trial_start + CUE_S[1]),
            delay_period=Interval(trial_start + DELAY_S[0], trial_start + DELAY_S[1]),
            domain=domain,
        ),
        grip=IrregularTimeSeries(grip_t, grip_id=grip_lab, domain=domain),
        train_domain=splits["train"],
        valid_domain=splits["valid"],
        test_domain=splits["test"],
        domain=domain,
    )
