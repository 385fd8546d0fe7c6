"""torch_brain.data."""

from .collate import chain, collate, pad, pad8, track_batch, track_mask, track_mask8

__all__: list[str] = [
    "chain",
    "collate",
    "pad",
    "pad8",
    "track_batch",
    "track_mask",
    "track_mask8",
]
