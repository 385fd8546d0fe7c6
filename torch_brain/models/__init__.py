"""torch_brain.models: POYO and POYO+ (and their tokenizers), pretrained loading."""

from torch_brain.models._registry import MODEL_REGISTRY, create_model, list_models, register_model
from torch_brain.models._transfer import UnitIdentificationHandle, freeze_for_unit_identification
from torch_brain.models.poyo import POYO
from torch_brain.models.poyo_plus import POYOPlus

__all__ = [
    "MODEL_REGISTRY",
    "POYO",
    "POYOPlus",
    "UnitIdentificationHandle",
    "create_model",
    "freeze_for_unit_identification",
    "list_models",
    "register_model",
]
