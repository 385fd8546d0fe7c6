"""torch_brain.inference: real-time (streaming) decoding with a trained POYO / POYO+."""

from torch_brain.inference._core import StreamingCore, export_core
from torch_brain.inference._decoder import StreamingDecoder, load_model

__all__ = [
    "StreamingCore",
    "StreamingDecoder",
    "export_core",
    "load_model",
]
