"""torch_brain.nn: embeddings, rotary attention, feed-forward, readout and losses."""

from torch_brain.nn.attention import RotaryCrossAttention, RotarySelfAttention
from torch_brain.nn.dropout import Dropout
from torch_brain.nn.embedding import InfiniteVocabEmbedding
from torch_brain.nn.feedforward import FeedForward, geglu
from torch_brain.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, weighted_mean
from torch_brain.nn.readout import MultitaskReadout, ReadoutTargets, in_intervals, prepare_readout
from torch_brain.nn.rotary import RotaryTimeEmbedding, TimeGrid, apply_rotary, rotate

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "Dropout",
    "FeedForward",
    "InfiniteVocabEmbedding",
    "MSELoss",
    "MultitaskReadout",
    "ReadoutTargets",
    "RotaryCrossAttention",
    "RotarySelfAttention",
    "RotaryTimeEmbedding",
    "TimeGrid",
    "apply_rotary",
    "geglu",
    "in_intervals",
    "prepare_readout",
    "rotate",
    "weighted_mean",
]
