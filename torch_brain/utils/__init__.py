"""torch_brain.utils: stitching of overlapping-window predictions and the stitching evaluators."""

from torch_brain.utils.stitcher import (
    DataForDecodingStitchEvaluator,
    DataForMultiTaskDecodingStitchEvaluator,
    DecodingStitchEvaluator,
    MultiTaskDecodingStitchEvaluator,
    stitch,
)

__all__ = [
    "DataForDecodingStitchEvaluator",
    "DataForMultiTaskDecodingStitchEvaluator",
    "DecodingStitchEvaluator",
    "MultiTaskDecodingStitchEvaluator",
    "stitch",
]
