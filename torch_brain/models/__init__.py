"""torch_brain.models."""
__all__: list[str] = []
