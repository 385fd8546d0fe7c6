"""Fine-tuning from a pretrained encoder: build POYO / POYOPlus around it, optionally frozen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

__all__ = ["encoder_param_groups", "freeze_encoder", "is_encoder_parameter", "load_pretrained_encoder"]

# parameters that are not the pretrained encoder: the new readout(s) and task rows, and the
# unit/session embeddings (new sessions bring new units)
_TRAINABLE_PREFIXES = ("readout", "task_emb", "unit_emb", "session_emb")


def is_encoder_parameter(name: str) -> bool:
    """Whether the POYO / POYOPlus parameter ``name`` belongs to the encoder (not the readout,
    the task embeddings or the unit/session embeddings)."""
    return not name.startswith(_TRAINABLE_PREFIXES)


def freeze_encoder(model: nn.Module, *, train_embeddings: bool = True) -> list[str]:
    """Freeze every pretrained-encoder weight of a POYO / POYOPlus; returns the trainable names.

    Only freezes: a parameter that was already frozen (e.g. the fixed bins / codebook of an
    expected-value head) stays frozen. Undo by restoring each parameter's previous
    ``requires_grad``. Freeze before the optimiser (and, under DDP, the
    ``Trainer``) is built: DDP reduces the gradients of the parameters that required them when
    it wrapped the model.

    Args:
        model: the model built by :func:`load_pretrained_encoder`.
        train_embeddings: keep the unit and session embeddings trainable (needed for new sessions).
    """
    keep = _TRAINABLE_PREFIXES if train_embeddings else ("readout", "task_emb")
    trainable = []
    for name, param in model.named_parameters():
        if not name.startswith(keep):
            param.requires_grad_(False)
        if param.requires_grad:
            trainable.append(name)
    return trainable


def encoder_param_groups(model: nn.Module, lr: float, encoder_lr_scale: float = 1.0) -> list[dict]:
    """Optimiser parameter groups: the encoder at ``lr * encoder_lr_scale``, the rest at ``lr``.

    Only parameters with ``requires_grad`` are included; an empty group is left out.
    A scheduler that multiplies each group's learning rate (``warmup_cosine``, ``cosine``,
    ``step``, ``plateau``) keeps the ratio.

    Example:
        >>> groups = encoder_param_groups(model, lr=1e-3, encoder_lr_scale=0.1)  # doctest: +SKIP
        >>> torch.optim.AdamW(groups)  # doctest: +SKIP

    Raises:
        ValueError: ``encoder_lr_scale`` is not a number >= 0.
    """
    scale = encoder_lr_scale
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale < float("inf"):
        raise ValueError(f"encoder_lr_scale (finetune.encoder_lr_scale) must be a number >= 0 (1: same "
                         f"learning rate as the readout, 0.1: ten times lower), but got {scale!r}.")
    encoder, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (encoder if is_encoder_parameter(name) else rest).append(param)
    groups = [{"params": rest, "lr": float(lr)}, {"params": encoder, "lr": float(lr) * float(scale)}]
    return [g for g in groups if g["params"]]


def load_pretrained_encoder(path: str | Path, model: str | type = "poyo", *, freeze: bool = False,
                            **kwargs: Any) -> nn.Module:
    """A POYO / POYOPlus with the encoder saved by ``save_encoder`` (a file or an SSL run directory).

    The readout is new (``readout_spec=`` / ``readout_specs=`` say which tasks); the unit and session
    vocabularies are those of the pretraining data, so call ``model.unit_emb.extend_vocab(new_ids)``
    (and ``session_emb``) for new sessions — :class:`~torch_brain.training.NeuralDecoder` does this
    in ``fit``.

    Args:
        path: ``encoder.pt`` or the run directory of ``torch-brain pretrain``.
        model: ``"poyo"``, ``"poyo_plus"`` or the class.
        freeze: freeze the encoder (see :func:`freeze_encoder`).
        **kwargs: passed to ``load_pretrained`` (``readout_spec``, ``readout_specs``, overrides).

    Raises:
        FileNotFoundError: no encoder file.
        ValueError: the file holds another encoder kind, or weights of another shape than the
            overrides ask for.
    """
    from torch_brain.models import MODEL_REGISTRY

    path = Path(path)
    if path.is_dir():
        path = path / "encoder.pt"
    cls = MODEL_REGISTRY.lookup(model) if isinstance(model, str) else model
    built = cls.load_pretrained(path, skip_readout=True, **kwargs)
    if freeze:
        freeze_encoder(built)
    return built
