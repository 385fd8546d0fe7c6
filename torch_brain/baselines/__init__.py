"""torch_brain.baselines: classic decoders (ridge/Wiener filter, Kalman filter) on binned counts,
fitted on the training split and scored through the same windows, stitching and metrics as the
neural models."""

from torch_brain.baselines.evaluate import BASELINES, evaluate_baseline, fit_session_decoder, run_baseline
from torch_brain.baselines.linear import KalmanDecoder, RidgeDecoder, bin_spikes, lagged

__all__ = [
    "BASELINES",
    "KalmanDecoder",
    "RidgeDecoder",
    "bin_spikes",
    "evaluate_baseline",
    "fit_session_decoder",
    "lagged",
    "run_baseline",
]
