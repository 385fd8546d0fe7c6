#!/usr/bin/env bash
# Run the main job (the demo) in the project-local virtualenv (installs what it needs on first use).
# Extra arguments go to the demo, e.g. scripts/demo.sh --fast
TB_EXTRAS=plots
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/python -m torch_brain.cli demo "$@"
