"""``Compose``: apply transforms one after another."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Compose"]


class Compose:
    """Apply ``transforms`` in order: ``Compose([a, b])(data) == b(a(data))``.

    Every element maps a :class:`~torch_brain.data.Data` window to a ``Data``; the last one may
    return anything (e.g. ``model.tokenize`` returns a dict ready for
    :func:`~torch_brain.data.collate`).

    Args:
        transforms: sequence of callables.

    Example:
        >>> transform = Compose([UnitDropout(min_units=20, mode_units=100), model.tokenize])
    """

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
            raise TypeError(
                f"Compose: transforms must be a list of callables, got {type(transforms).__name__}."
            )
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(
                    f"Compose: transforms[{i}] must be callable (a transform or model.tokenize), got "
                    f"{type(t).__name__}."
                )
        self.transforms = list(transforms)

    def __call__(self, data: Any) -> Any:
        for t in self.transforms:
            data = t(data)
        return data

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"
