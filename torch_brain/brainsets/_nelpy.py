"""Importer of the nelpy rat hippocampus linear-track session, brainset ``nelpy_hippocampus``.

Raw files (github.com/nelpy/example-data, ``linear-track/``):

* ``spikes.mat`` (MATLAB v5): a nested cell/struct hierarchy; every non-empty ``time`` vector is
  one sorted unit's spike times in seconds;
* ``trajectory.videoPositionTracking``: an ASCII header (``<Start settings>`` ...
  ``<End settings>``) then packed little-endian records ``<u4 time><u2 x><u2 y><u2 x2><u2 y2>``,
  time in 30 kHz ticks (same clock as the spikes), x/y in camera pixels, about 60 Hz.

Processing: tracking dropouts (x or y at most 20 px; the tracker parks a lost LED at (522, 8))
and repeated timestamps are removed. The track part of the session is the longest stretch of
valid tracking without a gap over 30 s (about 16 min; afterwards the animal rests untracked).
``position.linear`` is the projection of the position on the track's principal axis (pixels,
oriented with increasing x, 0 at the 0.5th percentile). ``running_periods`` are stretches of at
least 0.5 s with smoothed speed above 20 px/s. Splits cover the track part only.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from torch_brain.brainsets import _common

__all__ = [
    "BRAINSET_ID",
    "SESSION_ID",
    "build_nelpy_hippocampus",
    "clean_tracking",
    "read_nelpy_linear_track",
]

BRAINSET_ID = "nelpy_hippocampus"
SESSION_ID = "linear_track"
RAW_SUBFOLDER = "nelpy-hippocampus/linear-track"
SPIKES_FILE = "spikes.mat"
TRACKING_FILE = "trajectory.videoPositionTracking"
CLOCK_HZ = 30000.0
DROPOUT_PX = 20
TRACK_GAP_S = 30.0
RUN_SPEED_PX_S = 20.0
_RECORD = np.dtype([("time", "<u4"), ("x", "<u2"), ("y", "<u2"), ("x2", "<u2"), ("y2", "<u2")])
_END_TAG = b"<End settings>"

DESCRIPTION = (
    "Rat hippocampus, tetrodes (sorted with MatClust), about 15 min running on a linear track then "
    "rest; nelpy example data (MIT). Spike times as sorted. Position from LED video tracking in "
    "camera pixels (uncalibrated), dropouts removed; position.linear is the coordinate along the "
    "track's principal axis in pixels. Splits cover the track part only (5 time blocks, each cut "
    "into train | valid | test)."
)


def _walk_units(obj: Any, path: tuple[int, ...], out: list[tuple[tuple[int, ...], np.ndarray]]) -> None:
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        for flat, item in enumerate(obj.ravel(order="F")):
            _walk_units(item, path + (flat,), out)
    elif isinstance(obj, np.ndarray) and obj.dtype.names is not None:
        for flat, item in enumerate(obj.ravel(order="F")):
            if "time" in obj.dtype.names:
                t = np.asarray(item["time"], dtype=np.float64).ravel()
                if t.size:
                    out.append((path + (flat,), t))
            else:
                for name in obj.dtype.names:
                    _walk_units(item[name], path + (flat,), out)


def _unit_names(paths: list[tuple[int, ...]]) -> list[str]:
    depth = max(len(p) for p in paths)
    padded = np.array([p + (0,) * (depth - len(p)) for p in paths])
    varying = [k for k in range(depth) if np.unique(padded[:, k]).size > 1]
    if len(varying) == 2:  # spikes{day}{epoch}{tetrode}{cell}: tetrode and cell vary
        return [f"tt{r[varying[0]] + 1:02d}_c{r[varying[1]] + 1:02d}" for r in padded]
    return ["unit_" + "_".join(f"{r[k] + 1:02d}" for k in varying) for r in padded]


def read_nelpy_linear_track(raw_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read the raw spike and tracking files.

    Args:
        raw_dir: folder holding ``spikes.mat`` and ``trajectory.videoPositionTracking`` (or the
            ``real`` folder above it); default ``../shared/data/real/nelpy-hippocampus/linear-track``.

    Returns:
        ``unit_ids`` list[str] (U), ``spike_times`` list of U sorted float64 arrays (s),
        ``track_time`` (N,) float64 s, ``track_xy`` (N, 2) float64 pixels (raw, dropouts kept).
    """
    import scipy.io

    folder = _common.resolve_raw_dir(raw_dir, RAW_SUBFOLDER, [SPIKES_FILE, TRACKING_FILE])
    mat = scipy.io.loadmat(folder / SPIKES_FILE)
    if "spikes" not in mat:
        raise ValueError(
            f"{folder / SPIKES_FILE}: expected a variable 'spikes', found "
            f"{sorted(k for k in mat if not k.startswith('__'))}."
        )
    found: list[tuple[tuple[int, ...], np.ndarray]] = []
    _walk_units(mat["spikes"], (), found)
    if not found:
        raise ValueError(f"{folder / SPIKES_FILE}: no non-empty 'time' vector (no unit) found.")
    raw = (folder / TRACKING_FILE).read_bytes()
    at = raw.find(_END_TAG)
    if at < 0:
        raise ValueError(
            f"{folder / TRACKING_FILE}: no '<End settings>' header end found; not a "
            "videoPositionTracking file."
        )
    body = raw[at + len(_END_TAG):]
    body = body[1:] if body[:1] == b"\n" else body
    n_rec = len(body) // _RECORD.itemsize
    rec = np.frombuffer(body[: n_rec * _RECORD.itemsize], dtype=_RECORD)
    return {
        "unit_ids": _unit_names([p for p, _ in found]),
        "spike_times": [np.sort(t) for _, t in found],
        "track_time": rec["time"].astype(np.float64) / CLOCK_HZ,
        "track_xy": np.stack([rec["x"], rec["y"]], axis=1).astype(np.float64),
    }


def clean_tracking(time: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop dropouts (x or y <= 20 px) and repeated/backward timestamps; returns sorted samples."""
    keep = (xy[:, 0] > DROPOUT_PX) & (xy[:, 1] > DROPOUT_PX)
    t, p = time[keep], xy[keep]
    order = np.argsort(t, kind="stable")
    t, p = t[order], p[order]
    first = np.ones(t.size, dtype=bool)
    first[1:] = np.diff(t) > 0
    return t[first], p[first]


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index ranges [lo, hi) of the runs of True in ``mask``."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _running_periods(t: np.ndarray, speed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = _runs(speed > RUN_SPEED_PX_S)
    if lo.size == 0:
        return np.zeros(0), np.zeros(0)
    starts, ends = t[lo], t[hi - 1]
    # merge pauses shorter than 0.3 s, then keep periods of at least 0.5 s
    keep_gap = np.concatenate([[True], starts[1:] - ends[:-1] >= 0.3])
    group = np.cumsum(keep_gap) - 1
    m_start = starts[keep_gap]
    m_end = np.zeros(m_start.size)
    np.maximum.at(m_end, group, ends)
    long = (m_end - m_start) >= 0.5
    return m_start[long], m_end[long]


def build_nelpy_hippocampus(
    raw_dir: str | os.PathLike | None = None,
    *,
    split_ratios: tuple[float, float, float] = _common.DEFAULT_SPLIT_RATIOS,
    n_blocks: int = 5,
) -> Any:
    """Build the ``nelpy_hippocampus`` recording as a :class:`torch_brain.data.Data`.

    Args:
        raw_dir: raw folder (see :func:`read_nelpy_linear_track`).
        split_ratios: (train, valid, test) fractions of each time block.
        n_blocks: the track part is cut into this many equal blocks, each split
            train | valid | test in time order.
    """
    from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries

    ratios = _common.check_ratios(split_ratios)
    if not (isinstance(n_blocks, (int, np.integer)) and n_blocks >= 1):
        raise ValueError(f"n_blocks must be a positive integer, but got {n_blocks!r}.")
    raw = read_nelpy_linear_track(raw_dir)
    t, xy = clean_tracking(raw["track_time"], raw["track_xy"])
    if t.size < 2:
        raise ValueError("The tracking file holds fewer than 2 valid samples after removing dropouts.")
    # track part: longest stretch of valid tracking without a gap over TRACK_GAP_S
    cut = np.flatnonzero(np.diff(t) > TRACK_GAP_S)
    lo_idx = np.concatenate([[0], cut + 1])
    hi_idx = np.concatenate([cut + 1, [t.size]])
    best = int(np.argmax(t[hi_idx - 1] - t[lo_idx]))
    t, xy = t[lo_idx[best]:hi_idx[best]], xy[lo_idx[best]:hi_idx[best]]
    dt = float(np.median(np.diff(t)))
    track_start, track_end = float(t[0]), float(t[-1] + dt)
    # linearisation on the principal axis
    mu = xy.mean(axis=0)
    _, _, vt = np.linalg.svd(xy - mu, full_matrices=False)
    axis = vt[0] if vt[0][0] >= 0 else -vt[0]
    proj = (xy - mu) @ axis
    linear = proj - np.percentile(proj, 0.5)
    # speed from positions smoothed with a Gaussian of 0.1 s (sigma, in samples)
    sigma = max(0.1 / dt, 1.0)
    k = np.arange(-int(4 * sigma), int(4 * sigma) + 1)
    kern = np.exp(-0.5 * (k / sigma) ** 2)
    kern /= kern.sum()
    padded = np.pad(xy, ((k.size // 2, k.size // 2), (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(padded[:, j], kern, mode="valid") for j in range(2)], 1)
    speed = np.linalg.norm(np.gradient(smooth, t, axis=0), axis=1)
    run_start, run_end = _running_periods(t, speed)

    unit_ids = raw["unit_ids"]
    spike_times = np.concatenate(raw["spike_times"])
    unit_index = np.concatenate(
        [np.full(s.size, i, dtype=np.int64) for i, s in enumerate(raw["spike_times"])]
    )
    order = np.lexsort((unit_index, spike_times))
    spike_times, unit_index = spike_times[order], unit_index[order]
    all_start = float(min(spike_times[0], raw["track_time"].min()))
    all_end = float(max(spike_times[-1], raw["track_time"].max()) + dt)
    domain = Interval(np.array([all_start]), np.array([all_end]))
    splits = _common.block_split_of_span(track_start, track_end, ratios, int(n_blocks))
    return Data(
        brainset=_common.description(
            id=BRAINSET_ID,
            origin_version="github.com/nelpy/example-data@099548c0608ffaa92933c66346c0d96f05a18622",
            derived_version="1.0.0",
            source="https://github.com/nelpy/example-data (linear-track/)",
            description=DESCRIPTION,
        ),
        subject=_common.description(id="rat", species="rattus_norvegicus"),
        session=_common.description(id=SESSION_ID, task="linear_track_running"),
        device=_common.description(id=f"{SESSION_ID}_tetrodes", recording_tech="tetrode"),
        units=ArrayDict(
            id=np.array(unit_ids),
            n_spikes=np.array([s.size for s in raw["spike_times"]], dtype=np.int64),
        ),
        spikes=IrregularTimeSeries(spike_times, unit_index=unit_index, domain=domain),
        position=IrregularTimeSeries(
            t,
            pos=xy,
            linear=linear[:, None],
            speed=speed,
            domain=Interval(np.array([track_start]), np.array([track_end])),
        ),
        track_period=Interval(np.array([track_start]), np.array([track_end])),
        running_periods=Interval(run_start, run_end),
        train_domain=Interval(*splits["train"]),
        valid_domain=Interval(*splits["valid"]),
        test_domain=Interval(*splits["test"]),
        domain=domain,
    )
