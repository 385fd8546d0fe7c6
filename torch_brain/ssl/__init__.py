"""torch_brain.ssl: self-supervised pretraining parts — encoders, objectives, their registries,
the pure loss functions — and fine-tuning helpers. The LightningModule that trains them is
:class:`torch_brain.training.SSLPretrainModule`.
"""

from torch_brain.ssl._registry import (
    ENCODER_REGISTRY,
    OBJECTIVE_REGISTRY,
    create_encoder,
    create_objective,
    list_encoders,
    list_objectives,
    register_encoder,
    register_objective,
)
from torch_brain.ssl.encoders import (
    ENCODER_FORMAT,
    PatchTransformerEncoder,
    POYOEncoder,
    load_encoder,
    save_encoder,
)
from torch_brain.ssl.finetune import (
    encoder_param_groups,
    freeze_encoder,
    is_encoder_parameter,
    load_pretrained_encoder,
)
from torch_brain.ssl.functional import (
    bits_per_spike,
    check_mask_ratio,
    multi_resolution_stft_loss,
    patch_mask,
    poisson_nll,
)
from torch_brain.ssl.objectives import BitsPerSpike, MaskedSignal, MaskedSpikes

__all__ = [
    "ENCODER_FORMAT",
    "ENCODER_REGISTRY",
    "OBJECTIVE_REGISTRY",
    "BitsPerSpike",
    "MaskedSignal",
    "MaskedSpikes",
    "POYOEncoder",
    "PatchTransformerEncoder",
    "bits_per_spike",
    "check_mask_ratio",
    "create_encoder",
    "create_objective",
    "encoder_param_groups",
    "freeze_encoder",
    "is_encoder_parameter",
    "list_encoders",
    "list_objectives",
    "load_encoder",
    "load_pretrained_encoder",
    "multi_resolution_stft_loss",
    "patch_mask",
    "poisson_nll",
    "register_encoder",
    "register_objective",
    "save_encoder",
]
