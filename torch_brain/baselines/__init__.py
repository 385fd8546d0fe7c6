"""torch_brain.baselines: classic decoders (ridge/Wiener filter, Kalman filter) on binned counts."""

from torch_brain.baselines.linear import KalmanDecoder, RidgeDecoder, bin_spikes, lagged

__all__ = ["KalmanDecoder", "RidgeDecoder", "bin_spikes", "lagged"]
