"""torch_brain.training: a ready LightningModule/DataModule for decoding, configs, optimisers."""

from torch_brain.training.config import (
    DEFAULT_CONFIG,
    apply_overrides,
    dump_config,
    load_config,
    validate_config,
)
from torch_brain.training.optim import (
    OPTIMIZERS,
    SCHEDULES,
    build_optimizer,
    build_scheduler,
    warmup_cosine_factor,
)

__all__ = [
    "DEFAULT_CONFIG",
    "OPTIMIZERS",
    "SCHEDULES",
    "apply_overrides",
    "build_optimizer",
    "build_scheduler",
    "dump_config",
    "load_config",
    "validate_config",
    "warmup_cosine_factor",
]
