"""torch_brain.training: a ready LightningModule/DataModule for decoding, run configs, optimiser
and schedule factories, and config-driven ``fit`` / ``evaluate`` / ``finetune``."""

from torch_brain.training.config import (
    DEFAULT_CONFIG,
    apply_overrides,
    dump_config,
    load_config,
    validate_config,
)
from torch_brain.training.datamodule import DecodingDataModule, build_metric
from torch_brain.training.module import MODELS, NeuralDecoder, build_model
from torch_brain.training.normalization import TargetNormalizer, compute_target_stats
from torch_brain.training.optim import (
    OPTIMIZERS,
    SCHEDULES,
    build_optimizer,
    build_scheduler,
    warmup_cosine_factor,
)
from torch_brain.training.run_dir import AtomicCheckpointIO, HistoryCallback, prepare_run_dir
from torch_brain.training.runner import (
    build_datamodule,
    build_module,
    build_trainer,
    evaluate,
    finetune,
    fit,
    resolve_config,
    session_table,
)

__all__ = [
    "DEFAULT_CONFIG",
    "MODELS",
    "OPTIMIZERS",
    "SCHEDULES",
    "AtomicCheckpointIO",
    "DecodingDataModule",
    "HistoryCallback",
    "NeuralDecoder",
    "TargetNormalizer",
    "apply_overrides",
    "build_datamodule",
    "build_metric",
    "build_model",
    "build_module",
    "build_optimizer",
    "build_scheduler",
    "build_trainer",
    "compute_target_stats",
    "dump_config",
    "evaluate",
    "finetune",
    "fit",
    "load_config",
    "prepare_run_dir",
    "resolve_config",
    "session_table",
    "validate_config",
    "warmup_cosine_factor",
]
