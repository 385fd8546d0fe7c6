"""torch_brain.data."""

from torch_brain import __version__

from . import sampler
from ._array_dict import ArrayDict
from ._concat import concat
from ._data import Data
from ._interval import Interval
from ._lazy import LazyArrayDict, LazyInterval, LazyIrregularTimeSeries, LazyRegularTimeSeries
from ._timeseries import IrregularTimeSeries, RegularTimeSeries
from .collate import chain, collate, pad, pad8, track_batch, track_mask, track_mask8
from .dataset import Dataset
from .sampler import DatasetIndex

__all__: list[str] = [
    "ArrayDict",
    "Data",
    "Dataset",
    "DatasetIndex",
    "Interval",
    "IrregularTimeSeries",
    "LazyArrayDict",
    "LazyInterval",
    "LazyIrregularTimeSeries",
    "LazyRegularTimeSeries",
    "RegularTimeSeries",
    "__version__",
    "chain",
    "collate",
    "concat",
    "pad",
    "pad8",
    "sampler",
    "track_batch",
    "track_mask",
    "track_mask8",
]
