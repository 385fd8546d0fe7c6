"""torch_brain.transforms: window-level augmentations (``Data -> Data``) and ``Compose``."""

from .compose import Compose
from .crop import RandomCrop
from .output_sampler import OutputSampler
from .time_scaling import RandomTimeScaling
from .unit_dropout import UnitDropout
from .unit_filter import UnitFilter

__all__: list[str] = [
    "Compose",
    "OutputSampler",
    "RandomCrop",
    "RandomTimeScaling",
    "UnitDropout",
    "UnitFilter",
]
