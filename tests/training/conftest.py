"""Fixtures of the training tests (the tiny synthetic set)."""

from tests.training.tiny_synthetic import tiny_root  # noqa: F401  (fixture)
