"""torch_brain.data."""

from . import sampler
from .collate import chain, collate, pad, pad8, track_batch, track_mask, track_mask8
from .sampler import DatasetIndex

__all__: list[str] = [
    "DatasetIndex",
    "chain",
    "collate",
    "pad",
    "pad8",
    "sampler",
    "track_batch",
    "track_mask",
    "track_mask8",
]
