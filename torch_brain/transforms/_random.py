"""Random number streams for transforms that stay distinct across DataLoader worker processes."""

from __future__ import annotations

import os

import numpy as np
import torch

__all__: list[str] = []


def _check_seed(seed: int | None, who: str) -> int:
    if seed is None:
        return int(torch.randint(0, 2**62, (1,)).item())  # follows torch.manual_seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{who}: seed must be an int or None, got {type(seed).__name__}.")
    return int(seed)


class _RandomMixin:
    """Gives a transform ``self._rng()``: a numpy Generator seeded from ``seed`` and, inside a
    DataLoader worker, the worker's seed (so workers draw different augmentations)."""

    _seed: int
    _gen: np.random.Generator | None = None
    _gen_key: tuple | None = None

    def _rng(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), None if info is None else info.seed)
        if self._gen is None or key != self._gen_key:
            entropy = [self._seed % 2**63] if info is None else [self._seed % 2**63, info.seed % 2**63]
            self._gen = np.random.default_rng(entropy)
            self._gen_key = key
        return self._gen
