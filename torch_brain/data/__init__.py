"""torch_brain.data."""

from ._array_dict import ArrayDict
from ._data import Data
from ._interval import Interval
from ._timeseries import IrregularTimeSeries, RegularTimeSeries

__all__: list[str] = [
    "ArrayDict",
    "Data",
    "Interval",
    "IrregularTimeSeries",
    "RegularTimeSeries",
]
