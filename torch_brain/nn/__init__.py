"""torch_brain.nn."""
__all__: list[str] = []
