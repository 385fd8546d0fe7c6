"""torch_brain.nn: pure tensor modules — embeddings, rotary attention, feed-forward, dropout,
expected-value readout heads and losses."""

from torch_brain.nn.attention import RotaryCrossAttention, RotarySelfAttention
from torch_brain.nn.dropout import Dropout
from torch_brain.nn.embedding import InfiniteVocabEmbedding
from torch_brain.nn.feedforward import FeedForward, geglu
from torch_brain.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, weighted_mean
from torch_brain.nn.rotary import RotaryTimeEmbedding, TimeGrid, apply_rotary, rotate

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "Dropout",
    "FeedForward",
    "InfiniteVocabEmbedding",
    "MSELoss",
    "RotaryCrossAttention",
    "RotarySelfAttention",
    "RotaryTimeEmbedding",
    "TimeGrid",
    "apply_rotary",
    "geglu",
    "rotate",
    "weighted_mean",
]
