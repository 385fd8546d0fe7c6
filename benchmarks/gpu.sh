#!/usr/bin/env bash
# One-command GPU benchmark (issue 21), under 8 minutes on a CUDA machine:
#   (a) model step ours vs peer: fp32 / bf16-mixed / bf16-mixed+compile, dim 64/256, batch 32/128
#       (steps/s, tokens/s, peak GPU memory, padding waste)
#   (b) stitch on CUDA   (c) tests marked cuda   (d) streaming latency (host CPU: no CUDA path yet)
# Writes one JSON file ($OUT/gpu_bench.json, else runs/gpu_bench.json; or --out FILE) and prints a table.
#   benchmarks/gpu.sh              # on the GPU machine
#   benchmarks/gpu.sh --dry-run    # every code path on CPU with tiny sizes (tests/test_gpu_suite.py)
# Python: $PYTHON, else .venv/bin/python, else python3. Details: benchmarks/gpu_suite.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
case " $* " in
  *" --dry-run "*) exec "$PY" benchmarks/gpu_suite.py "$@" ;;  # a loaded CPU may need longer
esac
exec timeout 475 "$PY" benchmarks/gpu_suite.py "$@"  # hard stop; the suite's own budget is 450 s
