"""torch_brain.brainsets."""
__all__: list[str] = []
