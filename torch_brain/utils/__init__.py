"""torch_brain.utils."""
__all__: list[str] = []
