# Sourced by the set-up scripts: make (or reuse) the project-local virtualenv in .venv and
# install torch_brain into it with the extras named in $TB_EXTRAS. torch is pinned through
# constraints.txt, so no CUDA build is ever pulled in.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating virtualenv in $ROOT/.venv"
    "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)-${TB_EXTRAS}"
if [ ! -f "$stamp" ]; then
    echo "[setup] installing torch_brain[${TB_EXTRAS}] (torch pinned by constraints.txt)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -c constraints.txt torch==2.13.0
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[${TB_EXTRAS}]"
    touch "$stamp"
fi
