"""torch_brain.nn: embeddings, rotary attention, feed-forward, readout and losses."""

from torch_brain.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, weighted_mean

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "MSELoss",
    "weighted_mean",
]
