"""Fine-tuning from a pretrained encoder: build POYO / POYOPlus around it, optionally frozen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

__all__ = ["freeze_encoder", "load_pretrained_encoder"]

# parameters that stay trainable when the encoder is frozen: the new readout(s) and task rows,
# and the unit/session embeddings (new sessions bring new units)
_TRAINABLE_PREFIXES = ("readout", "task_emb", "unit_emb", "session_emb")


def freeze_encoder(model: nn.Module, *, train_embeddings: bool = True) -> list[str]:
    """Freeze every pretrained-encoder weight of a POYO / POYOPlus; returns the trainable names.

    Args:
        model: the model built by :func:`load_pretrained_encoder`.
        train_embeddings: keep the unit and session embeddings trainable (needed for new sessions).
    """
    keep = _TRAINABLE_PREFIXES if train_embeddings else ("readout", "task_emb")
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(keep))
        if param.requires_grad:
            trainable.append(name)
    return trainable


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
