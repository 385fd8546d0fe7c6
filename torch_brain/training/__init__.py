"""torch_brain.training: a ready LightningModule/DataModule for decoding, run configs, optimiser
and schedule factories, and config-driven ``fit`` / ``evaluate`` / ``finetune``."""

from torch_brain.training.config import (
    DEFAULT_CONFIG,
    apply_overrides,
    dump_config,
    load_config,
    validate_config,
)
from torch_brain.training.datamodule import DecodingDataModule
from torch_brain.training.metrics import (
    DEFAULT_METRICS,
    METRIC_REGISTRY,
    build_metric,
    create_metric,
    list_metrics,
    register_metric,
)
from torch_brain.training.module import MODELS, NeuralDecoder, build_model, check_compatible
from torch_brain.training.normalization import TargetNormalizer, compute_target_stats
from torch_brain.training.optim import (
    OPTIMIZER_REGISTRY,
    OPTIMIZERS,
    SCHEDULER_REGISTRY,
    SCHEDULES,
    build_optimizer,
    build_scheduler,
    register_optimizer,
    register_scheduler,
    warmup_cosine_factor,
)
from torch_brain.training.progress import LineProgressBar, make_progress_bar
from torch_brain.training.readout_vocab import fit_readout_vocabularies
from torch_brain.training.ssl import (
    FAST_OVERRIDES,
    SSL_DEFAULT_CONFIG,
    SSLDataModule,
    SSLPretrainModule,
    load_ssl_config,
    pretrain,
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
    "DEFAULT_METRICS",
    "FAST_OVERRIDES",
    "METRIC_REGISTRY",
    "MODELS",
    "OPTIMIZERS",
    "OPTIMIZER_REGISTRY",
    "SCHEDULER_REGISTRY",
    "SCHEDULES",
    "SSL_DEFAULT_CONFIG",
    "AtomicCheckpointIO",
    "DecodingDataModule",
    "HistoryCallback",
    "LineProgressBar",
    "NeuralDecoder",
    "SSLDataModule",
    "SSLPretrainModule",
    "TargetNormalizer",
    "apply_overrides",
    "build_datamodule",
    "build_metric",
    "build_model",
    "build_module",
    "build_optimizer",
    "build_scheduler",
    "build_trainer",
    "check_compatible",
    "compute_target_stats",
    "create_metric",
    "dump_config",
    "evaluate",
    "finetune",
    "fit",
    "fit_readout_vocabularies",
    "list_metrics",
    "load_config",
    "load_ssl_config",
    "make_progress_bar",
    "prepare_run_dir",
    "pretrain",
    "register_metric",
    "register_optimizer",
    "register_scheduler",
    "resolve_config",
    "session_table",
    "validate_config",
    "warmup_cosine_factor",
]
