#!/usr/bin/env bash
# Run the test suite in the project-local virtualenv (installs what it needs on first use).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/data -k interval
TB_EXTRAS=test
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/python -m pytest "$@"
