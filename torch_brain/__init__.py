"""torch_brain: train neural population decoders (POYO, POYO+) on spikes, with stitching evaluators."""

__version__ = "0.2.0.dev0"

__all__ = ["__version__"]
