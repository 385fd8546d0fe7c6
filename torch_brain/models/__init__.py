"""torch_brain.models: POYO and POYO+, their readouts and tokenizer, the model registry, pretrained loading."""

from torch_brain.models._registry import MODEL_REGISTRY, create_model, list_models, register_model
from torch_brain.models._transfer import UnitIdentificationHandle, freeze_for_unit_identification
from torch_brain.models.poyo import POYO
from torch_brain.models.poyo_plus import POYOPlus
from torch_brain.models.readout import MultitaskReadout
from torch_brain.models.tokenizer import ReadoutTargets, in_intervals, prepare_readout, task_configs

__all__ = [
    "MODEL_REGISTRY",
    "MultitaskReadout",
    "POYO",
    "POYOPlus",
    "ReadoutTargets",
    "UnitIdentificationHandle",
    "create_model",
    "freeze_for_unit_identification",
    "in_intervals",
    "list_models",
    "prepare_readout",
    "register_model",
    "task_configs",
]
