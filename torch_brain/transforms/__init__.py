"""torch_brain.transforms."""
__all__: list[str] = []
