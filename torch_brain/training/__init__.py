"""torch_brain.training: a ready LightningModule/DataModule for decoding, configs, optimisers."""

from torch_brain.training.optim import (
    OPTIMIZERS,
    SCHEDULES,
    build_optimizer,
    build_scheduler,
    warmup_cosine_factor,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "build_optimizer",
    "build_scheduler",
    "warmup_cosine_factor",
]
