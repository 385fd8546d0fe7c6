"""Stitching: pool predictions of overlapping windows, then evaluate them per session and task.

- :func:`stitch` pools values sharing a timestamp (mean for floats, mode for class labels).
- :class:`DecodingStitchEvaluator` (single task, e.g. POYO) and
  :class:`MultiTaskDecodingStitchEvaluator` (e.g. POYO+) are Lightning callbacks fed by what
  ``validation_step`` / ``test_step`` return (:class:`DataForDecodingStitchEvaluator`,
  :class:`DataForMultiTaskDecodingStitchEvaluator`). They pool predictions by absolute time as
  batches arrive, and at the end of the epoch update torchmetrics metrics, log
  ``"{session}/{task}/{metric}/{val|test}"`` and ``average_{val|test}_metric``.
"""

from __future__ import annotations

import torch

from torch_brain.utils._evaluation import (
    DataForDecodingStitchEvaluator,
    DataForMultiTaskDecodingStitchEvaluator,
    DecodingStitchEvaluator,
    MultiTaskDecodingStitchEvaluator,
)
from torch_brain.utils._segments import segment_mode, segment_sum, segments

__all__ = [
    "DataForDecodingStitchEvaluator",
    "DataForMultiTaskDecodingStitchEvaluator",
    "DecodingStitchEvaluator",
    "MultiTaskDecodingStitchEvaluator",
    "stitch",
]


def stitch(timestamps: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool values that share a timestamp: mean for floats, mode for class labels.

    Overlapping evaluation windows predict the same timestamp several times; ``stitch`` merges
    those predictions into one per distinct timestamp. Timestamps are compared exactly (use
    float64 for absolute times in seconds).

    Args:
        timestamps: (N,) real tensor (float64 recommended).
        values: (N, ...) floating tensor, mean-pooled; or (N,) ``torch.long`` class labels,
            mode-pooled, ties going to the smallest class.

    Returns:
        ``(unique_timestamps, pooled)``: (U,) sorted distinct timestamps and (U, ...) pooled values,
        on the input's device and with the input's dtypes.

    Raises:
        TypeError: if an argument is not a tensor, ``timestamps`` is not real-valued, or
            ``values`` is neither floating point nor ``torch.long``.
        ValueError: on shape mismatches, 2-D (or more) long values, NaN timestamps, or tensors on
            different devices.

    Examples:
        >>> t = torch.tensor([0.0, 0.5, 0.5, 1.0], dtype=torch.float64)
        >>> stitch(t, torch.tensor([[1.0], [2.0], [4.0], [5.0]]))
        (tensor([0.0000, 0.5000, 1.0000], dtype=torch.float64), tensor([[1.], [3.], [5.]]))
        >>> stitch(t, torch.tensor([2, 1, 3, 0]))
        (tensor([0.0000, 0.5000, 1.0000], dtype=torch.float64), tensor([2, 1, 0]))
    """
    _check_stitch_inputs(timestamps, values)
    if timestamps.shape[0] == 0:
        return timestamps.clone(), values.clone()
    seg = segments(timestamps)
    unique = seg.keys[0]
    if unique.is_floating_point() and bool(torch.isnan(unique[-1])):  # NaN sorts last
        raise ValueError(
            f"stitch: `timestamps` contains {int(torch.isnan(timestamps).sum())} NaN value(s); NaN times "
            "cannot be grouped. Drop those rows first."
        )
    if values.dtype == torch.long:
        return unique, segment_mode(seg, values)
    # half precision is summed in float32, float64 in float64
    acc = torch.float64 if values.dtype == torch.float64 else torch.float32
    sums = segment_sum(seg, values.to(acc))
    counts = seg.counts.view(-1, *([1] * (values.dim() - 1)))
    return unique, (sums / counts).to(values.dtype)


def _check_stitch_inputs(timestamps: torch.Tensor, values: torch.Tensor) -> None:
    """Raise TypeError/ValueError naming the argument when ``stitch`` inputs are invalid."""
    for name, arg in (("timestamps", timestamps), ("values", values)):
        if not isinstance(arg, torch.Tensor):
            raise TypeError(f"stitch: `{name}` must be a torch.Tensor, got {type(arg).__name__}.")
    if timestamps.dtype == torch.bool or timestamps.is_complex():
        raise TypeError(
            f"stitch: `timestamps` must be real-valued (float64 recommended), got dtype {timestamps.dtype}."
        )
    if timestamps.dim() != 1:
        raise ValueError(
            f"stitch: `timestamps` must be 1-D (N,), got shape {tuple(timestamps.shape)}; "
            "flatten it together with `values`."
        )
    if values.dim() == 0:
        raise ValueError("stitch: `values` must have shape (N, ...), got a 0-d tensor.")
    if values.shape[0] != timestamps.shape[0]:
        raise ValueError(
            f"stitch: `timestamps` and `values` must have the same length along dim 0, got "
            f"{timestamps.shape[0]} and {values.shape[0]} (values shape {tuple(values.shape)})."
        )
    if values.device != timestamps.device:
        raise ValueError(
            f"stitch: `timestamps` and `values` must be on the same device, got {timestamps.device} and "
            f"{values.device}; move one with .to(...)."
        )
    if values.dtype == torch.long:
        if values.dim() != 1:
            raise ValueError(
                f"stitch: torch.long `values` are class labels and must be 1-D (N,), got shape "
                f"{tuple(values.shape)}; pass float scores (mean-pooled) or take .argmax(-1) first."
            )
    elif not values.is_floating_point():
        raise TypeError(
            f"stitch: `values` must be floating point (mean pooling) or torch.long (mode pooling), got "
            f"dtype {values.dtype}; convert with .float() or .long()."
        )
