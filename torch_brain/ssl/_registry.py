"""The two registries of pretraining: encoders and objectives (one :class:`Registry` each)."""

from __future__ import annotations

from typing import Any

from torch_brain._registry import Registry

__all__ = [
    "ENCODER_REGISTRY",
    "OBJECTIVE_REGISTRY",
    "create_encoder",
    "create_objective",
    "list_encoders",
    "list_objectives",
    "register_encoder",
    "register_objective",
]

#: name -> encoder class ``cls(**encoder_config)``
ENCODER_REGISTRY: Registry[Any] = Registry(
    "encoder", hint="Register one with @torch_brain.ssl.register_encoder('name') on the class."
)
#: name -> objective class ``cls(encoder, **ssl_config)``
OBJECTIVE_REGISTRY: Registry[Any] = Registry(
    "objective", hint="Register one with @torch_brain.ssl.register_objective('name') on the class."
)
register_encoder = ENCODER_REGISTRY.register
register_objective = OBJECTIVE_REGISTRY.register


def list_encoders() -> list[str]:
    """Registered encoder names (sorted)."""
    return ENCODER_REGISTRY.names()


def list_objectives() -> list[str]:
    """Registered objective names (sorted)."""
    return OBJECTIVE_REGISTRY.names()


def create_encoder(name: str, **options: Any) -> Any:
    """Build the encoder registered as ``name`` with its options (checked against its signature).

    Raises:
        ValueError: unknown name (the registered ones are listed) or unknown option.
    """
    cls = ENCODER_REGISTRY.lookup(name)
    ENCODER_REGISTRY.check_options(name, options)
    return cls(**options)


def create_objective(name: str, encoder: Any, **options: Any) -> Any:
    """Build the objective registered as ``name`` for ``encoder``.

    Raises:
        ValueError: unknown name (the registered ones are listed), unknown option, or an encoder
            the objective cannot work with.
    """
    cls = OBJECTIVE_REGISTRY.lookup(name)
    OBJECTIVE_REGISTRY.check_options(name, options, exclude=("encoder",))
    kinds = getattr(cls, "encoder_kinds", None)
    kind = getattr(encoder, "kind", None)
    if kinds and kind not in kinds:
        raise ValueError(
            f"objective {name!r} works with encoder(s) {', '.join(kinds)}, but the encoder is {kind!r}. "
            f"Set encoder.name to one of {', '.join(kinds)}, or pick an objective for {kind!r}: "
            + ", ".join(n for n in list_objectives() if kind in getattr(OBJECTIVE_REGISTRY[n], "encoder_kinds", ()))
            + "."
        )
    return cls(encoder, **options)
