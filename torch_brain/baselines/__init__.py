"""torch_brain.baselines."""
__all__: list[str] = []
