"""torch_brain.data."""
__all__: list[str] = []
