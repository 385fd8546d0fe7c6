"""torch_brain.io: exchange with other tools.

* pynapple: :func:`to_pynapple` / :func:`from_pynapple` (exact both ways), :func:`spikes_to_tsgroup`,
  :func:`spikes_from_tsgroup`, :func:`decoded_to_pynapple` (needs the ``[pynapple]`` extra);
* predictions: :func:`export_predictions` writes stitched predictions as NPZ, pynapple NPZ files, or
  a new processing module in a copy of the source NWB file (``[nwb]`` extra).

NWB files are read by :func:`torch_brain.brainsets.from_nwb` (data preparation lives in brainsets).
"""

from ._export import EXPORT_FORMATS, export_predictions, nwb_source_of
from ._pynapple import (
    decoded_to_pynapple,
    from_pynapple,
    spikes_from_tsgroup,
    spikes_to_tsgroup,
    to_pynapple,
)

__all__ = [
    "EXPORT_FORMATS",
    "decoded_to_pynapple",
    "export_predictions",
    "from_pynapple",
    "nwb_source_of",
    "spikes_from_tsgroup",
    "spikes_to_tsgroup",
    "to_pynapple",
]
