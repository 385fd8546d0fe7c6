"""The model registry: decoder classes by stable name (``"poyo"``, ``"poyo_plus"``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from torch_brain._registry import Registry

__all__ = ["MODEL_REGISTRY", "create_model", "list_models", "register_model"]

#: name -> model class. A class registers itself with ``@register_model("name")`` and implements
#: ``task_kwargs(specs)`` (the constructor arguments that give it readouts for ``specs``).
MODEL_REGISTRY: Registry[type] = Registry(
    "model", hint="Register a model class with @torch_brain.models.register_model('name')."
)

register_model = MODEL_REGISTRY.register


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    return MODEL_REGISTRY.names()


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the registered model ``name`` with constructor arguments ``kwargs``.

    Example:
        >>> model = create_model("poyo_plus", dim=64, depth=2)
    """
    return MODEL_REGISTRY.create(name, **kwargs)
