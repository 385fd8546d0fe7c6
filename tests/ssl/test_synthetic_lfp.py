"""The synthetic LFP: band power tracks hand speed (scipy band-pass as the independent reference)."""

import numpy as np
from scipy.signal import butter, sosfiltfilt

from torch_brain.brainsets._synthetic import LFP_RATE_HZ, simulate_lfp, simulate_reaching_session, subject_stats


def test_beta_power_falls_and_gamma_power_rises_with_speed():
    sim = simulate_reaching_session(seed=0, session_index=1, stats=subject_stats(0, 0), minutes=1.0, n_units=5)
    lfp = simulate_lfp(seed=0, session_index=1, vel=sim["vel"])
    assert lfp.shape == (int(len(sim["vel"]) * 2.5), 4) and lfp.dtype == np.float32
    t = np.arange(lfp.shape[0]) / LFP_RATE_HZ
    speed = np.interp(t, np.arange(len(sim["vel"])) / 100.0, np.linalg.norm(sim["vel"], axis=1))
    for (lo, hi), sign in (((15, 25), -1), ((60, 90), 1)):
        sos = butter(4, [lo, hi], btype="band", fs=LFP_RATE_HZ, output="sos")
        power = np.convolve(sosfiltfilt(sos, lfp[:, 2]) ** 2, np.ones(50) / 50, "same")
        assert sign * np.corrcoef(power, speed)[0, 1] > 0.5
    # deterministic, and its own random stream
    np.testing.assert_array_equal(lfp, simulate_lfp(seed=0, session_index=1, vel=sim["vel"]))
