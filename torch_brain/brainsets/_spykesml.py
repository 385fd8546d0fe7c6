"""Importer of the spykesML macaque M1 reaching session (Stevenson et al. 2011), brainset ``spykesml_m1``.

Raw file: ``m1_stevenson_2011.mat`` (MATLAB v5) with 50 ms spike counts ``spikes`` (171 x T),
bin times ``time`` (1 x T, s), ``handPos`` and ``handVel`` (3 x T; z is all zero).

Only binned counts exist, so spike times are *reconstructed*: bin ``i`` is taken to span
``[time[i], time[i + 1])`` (the last one ``time[-1] + 0.05``) and its ``c`` spikes are spread
evenly inside it, at ``time[i] + (k + 0.5) * width / c`` for ``k = 0 .. c - 1``. This is
deterministic and preserves every count per unit and per bin, but timing inside a bin is not real.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from torch_brain.brainsets import _common

__all__ = ["BRAINSET_ID", "SESSION_ID", "build_spykesml_m1", "read_spykesml_m1", "spread_binned_counts"]

BRAINSET_ID = "spykesml_m1"
SESSION_ID = "m1_stevenson_2011"
RAW_SUBFOLDER = "spykesml"
RAW_FILE = "m1_stevenson_2011.mat"
BIN_S = 0.05

DESCRIPTION = (
    "Macaque M1 (Utah array), 2-D planar reaching with a manipulandum; one session of Stevenson et "
    "al. 2011 (Miller lab) as distributed by spykesML (Benjamin et al. 2018) with 50 ms binned "
    "counts only. Spike times are reconstructed: the c spikes of a bin [t_i, t_{i+1}) are placed "
    "evenly at t_i + (k + 0.5) * width / c (k = 0..c-1), deterministically; counts per unit and "
    "per bin are exact, timing within a bin is not real. hand.pos in m, hand.vel in m/s (x, y)."
)


def read_spykesml_m1(raw_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Read the raw M1 file into numpy arrays.

    Args:
        raw_dir: folder holding ``m1_stevenson_2011.mat`` (or the ``real`` folder above it);
            default ``../shared/data/real/spykesml``.

    Returns:
        ``counts`` (U, T) int64 spike counts, ``bin_start`` (T,) float64 s, ``hand_pos`` and
        ``hand_vel`` (T, 2) float64 (x, y).
    """
    import scipy.io

    folder = _common.resolve_raw_dir(raw_dir, RAW_SUBFOLDER, [RAW_FILE])
    mat = scipy.io.loadmat(folder / RAW_FILE)
    for key in ("spikes", "time", "handPos", "handVel"):
        if key not in mat:
            raise ValueError(
                f"{folder / RAW_FILE}: expected a variable '{key}', found "
                f"{sorted(k for k in mat if not k.startswith('__'))}. Is this the spykesML M1 file?"
            )
    counts = np.asarray(mat["spikes"], dtype=np.int64)
    bin_start = np.asarray(mat["time"], dtype=np.float64).ravel()
    if counts.shape[1] != bin_start.size:
        raise ValueError(
            f"{folder / RAW_FILE}: 'spikes' has {counts.shape[1]} bins but 'time' has "
            f"{bin_start.size}; the file is not the expected one."
        )
    return {
        "counts": counts,
        "bin_start": bin_start,
        "hand_pos": np.asarray(mat["handPos"], dtype=np.float64)[:2].T.copy(),
        "hand_vel": np.asarray(mat["handVel"], dtype=np.float64)[:2].T.copy(),
    }


def spread_binned_counts(
    counts: np.ndarray, bin_start: np.ndarray, bin_end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Turn binned counts into evenly spread spike times (deterministic).

    Args:
        counts: (U, T) non-negative integer counts.
        bin_start: (T,) bin starts (s).
        bin_end: (T,) bin ends (s), ``> bin_start``.

    Returns:
        ``timestamps`` (S,) float64 sorted by time (ties by unit), ``unit_index`` (S,) int64,
        with ``S = counts.sum()``; the ``c`` spikes of a bin sit at
        ``start + (k + 0.5) * (end - start) / c``.
    """
    unit, b = np.nonzero(counts)
    c = counts[unit, b]
    unit = np.repeat(unit, c)
    b_rep = np.repeat(b, c)
    c_rep = np.repeat(c, c)
    # k = rank of each spike inside its (unit, bin) group
    first = np.repeat(np.cumsum(c) - c, c)
    k = np.arange(unit.size) - first
    width = (bin_end - bin_start)[b_rep]
    t = bin_start[b_rep] + (k + 0.5) * width / c_rep
    order = np.lexsort((unit, t))
    return t[order], unit[order].astype(np.int64)


def build_spykesml_m1(
    raw_dir: str | os.PathLike | None = None,
    *,
    split_ratios: tuple[float, float, float] = _common.DEFAULT_SPLIT_RATIOS,
) -> Any:
    """Build the ``spykesml_m1`` recording as a :class:`torch_brain.data.Data` (nothing written).

    Splits are chronological time blocks (train first, test last), aligned to bin edges.
    """
    from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, RegularTimeSeries

    ratios = _common.check_ratios(split_ratios)
    raw = read_spykesml_m1(raw_dir)
    counts, bin_start = raw["counts"], raw["bin_start"]
    n_units, n_bins = counts.shape
    bin_end = np.append(bin_start[1:], bin_start[-1] + BIN_S)
    timestamps, unit_index = spread_binned_counts(counts, bin_start, bin_end)
    t0 = float(bin_start[0])
    t1 = float(bin_end[-1])
    domain = Interval(np.array([t0]), np.array([t1]))
    n_train, n_valid, n_test = _common.split_counts(n_bins, ratios)
    edges = [0, n_train, n_train + n_valid, n_bins]
    splits = {}
    for name, lo, hi in zip(_common.SPLIT_NAMES, edges[:-1], edges[1:]):
        start = np.array([bin_start[lo]]) if hi > lo else np.zeros(0)
        end = np.array([bin_end[hi - 1]]) if hi > lo else np.zeros(0)
        splits[name] = Interval(start, end)
    return Data(
        brainset=_common.description(
            id=BRAINSET_ID,
            origin_version="github.com/KordingLab/spykesML@ff2b1830ae07909e5f1a0811445ca3fd5732dc6f",
            derived_version="1.0.0",
            source="https://github.com/KordingLab/spykesML (data/m1_stevenson_2011.mat)",
            description=DESCRIPTION,
        ),
        subject=_common.description(id="monkey", species="macaca_mulatta"),
        session=_common.description(id=SESSION_ID, task="center_out_reaching_2d"),
        device=_common.description(id=f"{SESSION_ID}_utah_array", recording_tech="utah_array"),
        units=ArrayDict(
            id=np.array([f"unit_{i:03d}" for i in range(n_units)]),
            n_spikes=counts.sum(axis=1).astype(np.int64),
        ),
        spikes=IrregularTimeSeries(timestamps, unit_index=unit_index, domain=domain),
        hand=RegularTimeSeries(
            sampling_rate=1.0 / BIN_S,
            domain_start=t0,
            pos=raw["hand_pos"],
            vel=raw["hand_vel"],
        ),
        train_domain=splits["train"],
        valid_domain=splits["valid"],
        test_domain=splits["test"],
        domain=domain,
    )
