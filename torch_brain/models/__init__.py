"""torch_brain.models: POYO and POYO+ (and their tokenizers), pretrained loading."""

from torch_brain.models._transfer import UnitIdentificationHandle, freeze_for_unit_identification
from torch_brain.models.poyo import POYO
from torch_brain.models.poyo_plus import POYOPlus

__all__ = [
    "POYO",
    "POYOPlus",
    "UnitIdentificationHandle",
    "freeze_for_unit_identification",
]
