"""Fixtures of the baseline tests: the tiny synthetic set of tests/training."""

from tests.training.tiny_synthetic import tiny_root  # noqa: F401  (fixture)
