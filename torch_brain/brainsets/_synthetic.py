"""Synthetic multi-session, multi-subject centre-out reaching (brainset ``synthetic_reaching``).

The generator is written in two layers:

* :func:`simulate_reaching_session` — plain numpy: behaviour, unit tuning and spikes of one
  session, returned as a dict of arrays (easy to test against brute-force references);
* :func:`build_synthetic_reaching_session` — wraps that dict into a :class:`torch_brain.data.Data`
  with the brainset layout (``units``, ``spikes``, ``cursor``, ``trials``, ``movement_periods``,
  ``reach_direction``, description groups and ``train/valid/test_domain``).

Model of one session
--------------------
Trials follow each other without gaps. Each trial is a *hold* at the centre while the target is
shown (0.4–0.8 s), a *reach* to one of 8 targets on a circle (minimum-jerk, hence bell-shaped
speed, 0.5–0.9 s, with jitter in distance, angle and curvature) and a *return* to the centre
(0.5–0.8 s). Boundaries lie on the 10 ms grid of the 100 Hz cursor. Unit firing rates are
log-linear in hand velocity 100 ms in the future (cosine tuning), plus a small speed term;
some units carry preparatory tuning to the target direction during the hold, some are untuned,
and a slow shared excitability fluctuation (log-gain, sd 0.3, time constant 2 s) multiplies all
rates with a per-unit coupling. Baseline rates are log-normal (median about 6 Hz). Spikes are drawn from an inhomogeneous Poisson
process (piecewise constant on 10 ms bins) and spikes closer than the refractory period (2 ms) to
the preceding spike of the same unit are removed.

Subjects differ in their tuning statistics (rate distribution, gain, fraction of tuned and
preparatory units, lag); every session draws new units from its subject's statistics, so a
held-out session (``heldout``) has the same statistics as subject 0 but units never seen before.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = [
    "BRAINSET_ID",
    "HELD_OUT_SESSION_ID",
    "LFP_CHANNELS",
    "LFP_RATE_HZ",
    "N_TARGETS",
    "SubjectStats",
    "build_synthetic_reaching_session",
    "simulate_lfp",
    "simulate_reaching_session",
    "subject_stats",
]

N_TARGETS = 8
HELD_OUT_SESSION_ID = "heldout"
_FS = 100.0  # cursor sampling rate (Hz); also the grid of the rate model
_DT = 1.0 / _FS
_REFRACTORY_S = 0.002
_MAX_RATE_HZ = 200.0
_REACH_CM = 8.0  # nominal target distance
_V_REF = 20.0  # cm/s, typical peak speed: velocity is divided by it inside the rate model
_GAIN_SD = 0.3  # shared slow log-gain fluctuation (sd)
_GAIN_TAU_S = 2.0  # and its time constant (s)
_GAIN_MEAN_RANGE = (0.5, 0.8)  # range of the subjects' mean velocity gain
_PREP_RANGE = (0.6, 1.2)  # preparatory gain of the units that have one


@dataclasses.dataclass(frozen=True)
class SubjectStats:
    """Tuning statistics of one synthetic subject (every session of the subject draws from them).

    Attributes:
        subject_id: subject id (``"subject_<j>"``).
        log_rate_mean: mean of log baseline rate (log Hz).
        log_rate_std: standard deviation of log baseline rate.
        frac_untuned: fraction of units with no tuning at all.
        frac_prep: fraction of the tuned units that also have preparatory tuning during the hold.
        gain_mean: mean velocity gain (log-rate change for a speed of ``_V_REF`` along the
            preferred direction).
        lag_s: how far in the future the velocity that drives the units is (s).
    """

    subject_id: str
    log_rate_mean: float
    log_rate_std: float
    frac_untuned: float
    frac_prep: float
    gain_mean: float
    lag_s: float


def subject_stats(seed: int, subject_index: int) -> SubjectStats:
    """Tuning statistics of subject ``subject_index`` for generator seed ``seed`` (deterministic)."""
    rng = np.random.default_rng([int(seed), 1, int(subject_index)])
    return SubjectStats(
        subject_id=f"subject_{subject_index}",
        log_rate_mean=float(np.log(6.0) + rng.uniform(-0.25, 0.25)),
        log_rate_std=float(rng.uniform(0.6, 0.85)),
        frac_untuned=float(rng.uniform(0.1, 0.25)),
        frac_prep=float(rng.uniform(0.3, 0.5)),
        gain_mean=float(rng.uniform(*_GAIN_MEAN_RANGE)),
        lag_s=float(np.round(rng.uniform(0.08, 0.12), 2)),
    )


def _min_jerk(s: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile from 0 to 1 for phase ``s`` in [0, 1] (bell-shaped derivative)."""
    return s**3 * (10.0 - 15.0 * s + 6.0 * s**2)


def _simulate_trials(rng: np.random.Generator, n_steps_max: int) -> dict[str, np.ndarray]:
    """Trial schedule on the 10 ms grid (integer step indices) and the 100 Hz cursor path."""
    hold_s, reach_s, ret_s, tgt, end_pts = [], [], [], [], []
    starts = []
    step = 0
    order: list[int] = []
    while True:
        n_hold = int(rng.integers(40, 81))
        n_reach = int(rng.integers(50, 91))
        n_ret = int(rng.integers(50, 81))
        if step + n_hold + n_reach + n_ret > n_steps_max:
            break
        if not order:  # balanced targets: shuffled blocks of the 8 directions
            order = list(rng.permutation(N_TARGETS))
        target = int(order.pop())
        starts.append(step)
        hold_s.append(n_hold)
        reach_s.append(n_reach)
        ret_s.append(n_ret)
        tgt.append(target)
        angle = 2 * np.pi * target / N_TARGETS + rng.normal(0.0, np.deg2rad(4.0))
        dist = _REACH_CM * (1.0 + rng.normal(0.0, 0.08))
        curve = rng.normal(0.0, 0.5)
        end_pts.append((angle, dist, curve, rng.normal(0.0, 0.3, size=2)))
        step += n_hold + n_reach + n_ret
    n_trials = len(starts)
    if n_trials == 0:
        raise ValueError(
            f"minutes is too short for one trial (at most {n_steps_max * _DT:.2f} s); "
            "a trial lasts up to 2.5 s. Increase minutes."
        )
    n_steps = step
    pos = np.zeros((n_steps, 2))
    for k in range(n_trials):
        angle, dist, curve, home = end_pts[k]
        a = starts[k] + hold_s[k]
        b = a + reach_s[k]
        c = b + ret_s[k]
        prev_home = end_pts[k - 1][3] if k > 0 else np.zeros(2)
        pos[starts[k]:a] = prev_home  # hold at the (slightly jittered) centre
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        target_xy = dist * direction
        # reach: min-jerk along the straight path, plus a curvature bump that vanishes at the ends
        s = np.arange(b - a) / (b - a)
        m = _min_jerk(s)[:, None]
        pos[a:b] = prev_home + m * (target_xy - prev_home) + curve * np.sin(np.pi * s)[:, None] * normal
        s = np.arange(c - b) / (c - b)
        m = _min_jerk(s)[:, None]
        pos[b:c] = target_xy + m * (home - target_xy)
    # slow postural drift so the hand is never perfectly still (smoothed noise, ~0.1 cm)
    kernel = np.hanning(31)
    kernel /= kernel.sum()
    drift = np.stack(
        [np.convolve(rng.normal(0.0, 0.6, n_steps), kernel, mode="same") for _ in range(2)], 1
    )
    pos = pos + drift
    vel = np.gradient(pos, _DT, axis=0)
    starts_a = np.asarray(starts, dtype=np.int64)
    hold_a = np.asarray(hold_s, dtype=np.int64)
    reach_a = np.asarray(reach_s, dtype=np.int64)
    ret_a = np.asarray(ret_s, dtype=np.int64)
    return {
        "n_steps": np.int64(n_steps),
        "trial_start_step": starts_a,
        "reach_start_step": starts_a + hold_a,
        "return_start_step": starts_a + hold_a + reach_a,
        "trial_end_step": starts_a + hold_a + reach_a + ret_a,
        "target_id": np.asarray(tgt, dtype=np.int64),
        "pos": pos,
        "vel": vel,
    }


def _draw_units(rng: np.random.Generator, stats: SubjectStats, n_units: int) -> dict[str, np.ndarray]:
    """Per-unit parameters drawn from the subject's statistics."""
    base = np.exp(rng.normal(stats.log_rate_mean, stats.log_rate_std, n_units))
    base = np.clip(base, 0.5, 60.0)
    tuned = rng.random(n_units) >= stats.frac_untuned
    gain = np.where(tuned, np.clip(rng.normal(stats.gain_mean, 0.25, n_units), 0.2, None), 0.0)
    prep = tuned & (rng.random(n_units) < stats.frac_prep)
    prep_gain = np.where(prep, rng.uniform(_PREP_RANGE[0], _PREP_RANGE[1], n_units), 0.0)
    speed_gain = np.where(tuned, rng.uniform(0.0, 0.3, n_units), 0.0)
    pd = rng.uniform(0.0, 2 * np.pi, n_units)
    coupling = rng.uniform(0.5, 1.5, n_units)
    return {
        "gain_coupling": coupling,
        "baseline_rate": base,
        "velocity_gain": gain,
        "prep_gain": prep_gain,
        "speed_gain": speed_gain,
        "preferred_direction": pd,
    }


def _shared_gain(rng: np.random.Generator, n_steps: int) -> np.ndarray:
    """Slow population-wide excitability (Ornstein-Uhlenbeck log-gain), shape (n_steps,).

    The AR(1) recursion runs on a 10 Hz grid (the time constant is 2 s) and is linearly
    interpolated onto the 100 Hz grid.
    """
    n_coarse = n_steps // 10 + 2
    a = np.exp(-0.1 / _GAIN_TAU_S)
    noise = rng.normal(0.0, _GAIN_SD * np.sqrt(1 - a * a), n_coarse)
    x = np.empty(n_coarse)
    x[0] = rng.normal(0.0, _GAIN_SD)
    for i in range(1, n_coarse):
        x[i] = a * x[i - 1] + noise[i]
    return np.interp(np.arange(n_steps) / 10.0, np.arange(n_coarse), x)


def _rates(
    trials: dict[str, np.ndarray],
    units: dict[str, np.ndarray],
    lag_s: float,
    shared_gain: np.ndarray,
) -> np.ndarray:
    """Firing rates (Hz) on the 100 Hz grid, shape (n_steps, n_units)."""
    n_steps = int(trials["n_steps"])
    lag = int(round(lag_s * _FS))
    vel = trials["vel"]
    v_future = np.concatenate([vel[lag:], np.repeat(vel[-1:], lag, axis=0)], 0)  # (T, 2)
    pd = units["preferred_direction"]
    u = np.stack([np.cos(pd), np.sin(pd)], 0)  # (2, U)
    drive = (v_future @ u) / _V_REF * units["velocity_gain"]  # (T, U)
    speed = np.linalg.norm(v_future, axis=1, keepdims=True) / _V_REF  # (T, 1)
    drive += speed * units["speed_gain"]
    # preparatory tuning to the target during the hold: ramps up over 0.2 s after the cue
    prep_curve = np.zeros(n_steps)
    target_angle = np.zeros(n_steps)
    for s, e, tgt in zip(trials["trial_start_step"], trials["reach_start_step"], trials["target_id"]):
        ramp = np.minimum(np.arange(e - s) / 20.0, 1.0)
        prep_curve[s:e] = ramp
        target_angle[s:e] = 2 * np.pi * tgt / N_TARGETS
    drive += prep_curve[:, None] * units["prep_gain"] * np.cos(target_angle[:, None] - pd)
    drive += shared_gain[:, None] * units["gain_coupling"]
    rates = units["baseline_rate"] * np.exp(drive)
    return np.minimum(rates, _MAX_RATE_HZ)


def _spikes(rng: np.random.Generator, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poisson spikes from piecewise-constant rates, with an absolute refractory period.

    Returns (timestamps, unit_index) sorted by time.
    """
    counts = rng.poisson(rates * _DT)  # (T, U)
    step_idx, unit_idx = np.nonzero(counts)
    reps = counts[step_idx, unit_idx]
    step_idx = np.repeat(step_idx, reps)
    unit_idx = np.repeat(unit_idx, reps).astype(np.int64)
    times = (step_idx + rng.random(step_idx.size)) * _DT
    # refractory: drop a spike closer than _REFRACTORY_S to the previous spike of its unit; the
    # kept spikes then never violate it (the previous kept spike is at least as far away)
    order = np.lexsort((times, unit_idx))
    times, unit_idx = times[order], unit_idx[order]
    gap_ok = np.ones(times.size, dtype=bool)
    same_unit = unit_idx[1:] == unit_idx[:-1]
    gap_ok[1:] = ~same_unit | (np.diff(times) >= _REFRACTORY_S)
    times, unit_idx = times[gap_ok], unit_idx[gap_ok]
    order = np.argsort(times, kind="stable")
    return times[order], unit_idx[order]


def simulate_reaching_session(
    *,
    seed: int,
    session_index: int,
    stats: SubjectStats,
    minutes: float,
    n_units: int,
) -> dict[str, Any]:
    """Simulate one session of centre-out reaching as plain numpy arrays.

    Args:
        seed: generator seed (the same seed and indices give identical output).
        session_index: index of the session; with ``seed`` it seeds this session's randomness.
        stats: tuning statistics of the session's subject (see :func:`subject_stats`).
        minutes: session length in minutes (trials are added while they fit).
        n_units: number of units.

    Returns:
        A dict with, for T cursor samples at 100 Hz, K trials, U units and S spikes:
        ``pos``, ``vel`` (T, 2) float64 in cm and cm/s; ``duration`` (s, = T / 100);
        ``trial_start``, ``reach_start``, ``return_start``, ``trial_end`` (K,) float64 s;
        ``target_id`` (K,) int64 in 0..7; ``spike_times`` (S,) float64 sorted;
        ``spike_unit`` (S,) int64; unit parameters ``baseline_rate``, ``velocity_gain``,
        ``prep_gain``, ``speed_gain``, ``gain_coupling``, ``preferred_direction`` (U,) float64.
    """
    if not (isinstance(n_units, (int, np.integer)) and n_units >= 1):
        raise ValueError(f"n_units must be a positive integer, but got {n_units!r}.")
    if not minutes > 0:
        raise ValueError(f"minutes must be positive, but got {minutes!r}.")
    rng = np.random.default_rng([int(seed), 2, int(session_index)])
    trials = _simulate_trials(rng, int(round(minutes * 60.0 * _FS)))
    units = _draw_units(rng, stats, int(n_units))
    rates = _rates(trials, units, stats.lag_s, _shared_gain(rng, int(trials["n_steps"])))
    spike_times, spike_unit = _spikes(rng, rates)
    out: dict[str, Any] = {
        "pos": trials["pos"],
        "vel": trials["vel"],
        "duration": float(trials["n_steps"]) * _DT,
        "trial_start": trials["trial_start_step"] * _DT,
        "reach_start": trials["reach_start_step"] * _DT,
        "return_start": trials["return_start_step"] * _DT,
        "trial_end": trials["trial_end_step"] * _DT,
        "target_id": trials["target_id"],
        "spike_times": spike_times,
        "spike_unit": spike_unit,
    }
    out.update(units)
    return out


LFP_RATE_HZ = 250.0
LFP_CHANNELS = 4
_BETA_HZ, _GAMMA_BAND_HZ = 20.0, (60.0, 90.0)


def simulate_lfp(*, seed: int, session_index: int, vel: np.ndarray, n_channels: int = LFP_CHANNELS) -> np.ndarray:
    """An LFP-like signal whose band power tracks the behaviour, (T * 2.5, n_channels) float32 at 250 Hz.

    Each channel mixes (with random positive weights) three sources: a 20 Hz beta rhythm whose
    amplitude drops with hand speed (movement-related beta desynchronisation), 60-90 Hz gamma-band
    noise whose amplitude grows with speed, and slow 1/f-like background (an AR(1) random walk).
    Speed is the cursor speed normalised by its 95th percentile, interpolated from 100 Hz. Its own
    random stream (``[seed, 3, session_index]``) leaves the spikes of a session unchanged.
    """
    rng = np.random.default_rng([int(seed), 3, int(session_index)])
    n = int(round(vel.shape[0] * LFP_RATE_HZ / _FS))
    t = np.arange(n) / LFP_RATE_HZ
    speed = np.interp(t, np.arange(vel.shape[0]) / _FS, np.linalg.norm(vel, axis=1))
    speed = np.clip(speed / max(np.percentile(speed, 95), 1e-9), 0.0, 1.5)
    phase = 2 * np.pi * _BETA_HZ * t + np.cumsum(rng.normal(0, 0.05, n))  # slowly drifting phase
    beta = (1.0 - 0.6 * np.minimum(speed, 1.0)) * np.sin(phase)
    white = rng.normal(size=n)
    spec = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1 / LFP_RATE_HZ)
    spec[(freqs < _GAMMA_BAND_HZ[0]) | (freqs > _GAMMA_BAND_HZ[1])] = 0
    gamma_noise = np.fft.irfft(spec, n)
    gamma = (0.2 + speed) * gamma_noise / (gamma_noise.std() + 1e-12) * 0.5
    background = np.zeros(n)
    steps = rng.normal(0, 0.2, n)
    for i in range(1, n):  # AR(1): a 1/f^2-like slow background
        background[i] = 0.98 * background[i - 1] + steps[i]
    sources = np.stack([beta, gamma, background], 1)  # [T, 3]
    mixing = rng.uniform(0.5, 1.5, size=(3, n_channels))
    return (sources @ mixing + rng.normal(0, 0.05, (n, n_channels))).astype(np.float32)


BRAINSET_ID = "synthetic_reaching"
DESCRIPTION = (
    "Synthetic centre-out reaching (torch_brain generator): 8 targets, trials of hold (target "
    "shown) / minimum-jerk reach / return, cursor position (cm) and velocity (cm/s) at 100 Hz. "
    "Units with log-normal baseline rates, log-linear cosine tuning to velocity 80-120 ms ahead, "
    "some with preparatory tuning to the target during the hold, some untuned; Poisson spikes "
    "with a 2 ms refractory period. An LFP-like 4-channel signal at 250 Hz (lfp.signal) whose beta "
    "power falls and gamma power rises with hand speed. Splits are chronological blocks of whole trials."
)


def build_synthetic_reaching_session(
    *,
    seed: int,
    session_index: int,
    session_id: str,
    stats: SubjectStats,
    minutes: float,
    n_units: int,
    split_ratios: tuple[float, float, float],
) -> Any:
    """Simulate one session and assemble it as a :class:`torch_brain.data.Data` (brainset layout).

    Splits are chronological blocks of whole trials (train first, test last), so the
    train/valid/test domains are disjoint and aligned to trial boundaries.
    """
    from torch_brain.brainsets import _common
    from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, RegularTimeSeries

    ratios = _common.check_ratios(split_ratios)
    sim = simulate_reaching_session(
        seed=seed, session_index=session_index, stats=stats, minutes=minutes, n_units=n_units
    )
    domain = Interval(np.array([0.0]), np.array([sim["duration"]]))
    reach = Interval(sim["reach_start"], sim["return_start"])
    # reach-direction labels every 0.1 s inside each reach period (at 0.05, 0.15, ... s into it)
    rd_t, rd_lab = [], []
    for s, e, tgt in zip(sim["reach_start"], sim["return_start"], sim["target_id"]):
        t = s + 0.05 + 0.1 * np.arange(int(np.ceil((e - s - 0.05) / 0.1 - 1e-9)))
        rd_t.append(t)
        rd_lab.append(np.full(t.size, tgt, dtype=np.int64))
    splits = _common.chronological_split_of_trials(sim["trial_start"], sim["trial_end"], ratios)
    return Data(
        brainset=_common.description(
            id=BRAINSET_ID,
            origin_version=f"torch_brain.brainsets synthetic generator (seed={seed})",
            derived_version="1.0.0",
            source="simulated",
            description=DESCRIPTION,
        ),
        subject=_common.description(id=stats.subject_id, species="synthetic"),
        session=_common.description(id=session_id, task="center_out_reaching"),
        device=_common.description(id=f"{session_id}_array", recording_tech="simulated"),
        units=ArrayDict(
            id=np.array([f"unit_{i:03d}" for i in range(n_units)]),
            baseline_rate=sim["baseline_rate"],
            preferred_direction=sim["preferred_direction"],
            velocity_gain=sim["velocity_gain"],
            prep_gain=sim["prep_gain"],
            speed_gain=sim["speed_gain"],
            gain_coupling=sim["gain_coupling"],
        ),
        spikes=IrregularTimeSeries(sim["spike_times"], unit_index=sim["spike_unit"], domain=domain),
        cursor=RegularTimeSeries(sampling_rate=_FS, pos=sim["pos"], vel=sim["vel"]),
        lfp=RegularTimeSeries(sampling_rate=LFP_RATE_HZ, signal=simulate_lfp(
            seed=seed, session_index=session_index, vel=sim["vel"])),
        trials=Interval(sim["trial_start"], sim["trial_end"], target_id=sim["target_id"]),
        movement_periods=Data(
            hold_period=Interval(sim["trial_start"], sim["reach_start"]),
            reach_period=reach,
            return_period=Interval(sim["return_start"], sim["trial_end"]),
            domain=domain,
        ),
        reach_direction=IrregularTimeSeries(
            np.concatenate(rd_t),
            direction_id=np.concatenate(rd_lab),
            domain=Interval(sim["reach_start"].copy(), sim["return_start"].copy()),
        ),
        train_domain=Interval(*splits["train"]),
        valid_domain=Interval(*splits["valid"]),
        test_domain=Interval(*splits["test"]),
        domain=domain,
    )
