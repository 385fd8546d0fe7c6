"""Fixtures of the training tests (the tiny synthetic set)."""

from tiny_synthetic import tiny_root  # noqa: F401  (fixture)
