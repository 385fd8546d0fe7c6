"""``RandomCrop``: a random shorter window inside the window."""

from __future__ import annotations

import math

from torch_brain.data import Data

from ._random import _check_seed, _RandomMixin
from ._times import _domain_bounds

__all__ = ["RandomCrop"]


class RandomCrop(_RandomMixin):
    """Cut a sub-window of ``crop_length`` seconds at a uniformly random position.

    The start is drawn uniformly in ``[t0, t1 - crop_length]`` where ``[t0, t1]`` spans the
    window's domain; the result is ``data.slice(start, start + crop_length)``, so its times are
    relative to the new start and ``absolute_start`` grows by ``start``.

    Args:
        crop_length: length of the crop in seconds (> 0).
        seed: int seed; None draws one from torch's global RNG.

    Raises:
        ValueError: (when called) the window is shorter than ``crop_length``.
    """

    def __init__(self, crop_length: float, seed: int | None = None) -> None:
        who = "RandomCrop"
        try:
            c = float(crop_length)
        except (TypeError, ValueError):
            raise TypeError(f"{who}: crop_length must be a number of seconds, got {crop_length!r}.") from None
        if not (math.isfinite(c) and c > 0):
            raise ValueError(f"{who}: crop_length must be a positive number of seconds, got {crop_length!r}.")
        self.crop_length = c
        self._seed = _check_seed(seed, who)

    def __call__(self, data: Data) -> Data:
        t0, t1 = _domain_bounds(data, "RandomCrop")
        room = (t1 - t0) - self.crop_length
        if room < -1e-9:
            raise ValueError(
                f"RandomCrop: the window is {t1 - t0:g} s long, shorter than crop_length={self.crop_length:g} s; "
                "use a longer window (sampler window_length) or a shorter crop_length."
            )
        start = t0 + float(self._rng().uniform(0.0, max(room, 0.0)))
        return data.slice(start, start + self.crop_length)

    def __repr__(self) -> str:
        return f"RandomCrop(crop_length={self.crop_length})"
