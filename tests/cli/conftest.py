"""Fixtures of the CLI tests: the tiny synthetic set of tests/training."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from tiny_synthetic import tiny_root  # noqa: E402,F401  (fixture)
