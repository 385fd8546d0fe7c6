"""CPU cost of a training step with glibc's default malloc settings vs the GLIBC_TUNABLES recipe.

Runs ``bench_model.py``'s training workload (POYO+ dim 64, batch 32, SparseLamb) on 1 thread in a
fresh process per case and reports, per step (median over the timed steps): minor page faults,
CPU time (user + sys) and sys time, which are far less sensitive to other load on the machine than
wall time. The recipe (docs/models.md): serve blocks up to 32 MiB from the heap, keep up to 1 GiB
of freed heap mapped. torch_brain itself never changes malloc's settings.

Usage:
    .venv/bin/python benchmarks/malloc_recipe.py [--steps 5] [--rounds 2]

Prints one JSON line per case and round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"
_LOOP = "    t0 = time.perf_counter()\n    train_step(batches[i % len(batches)])\n    step_s.append(time.perf_counter() - t0)"


def _workload() -> str:
    source = bench_model.WORKLOAD
    assert _LOOP in source, "bench_model's timed loop changed"
    source = source.replace(_LOOP, """    r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
    train_step(batches[i % len(batches)])
    step_s.append(time.perf_counter() - t0); r1 = resource.getrusage(resource.RUSAGE_SELF)
    FLT.append(r1.ru_minflt - r0.ru_minflt); SYS.append(r1.ru_stime - r0.ru_stime)
    CPU.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)""")
    source = source.replace("step_s = []\n", "step_s = []\nFLT, CPU, SYS = [], [], []\n", 1)
    return source.replace('"torch": torch.__version__,', '"torch": torch.__version__, "faults": FLT, "cpu": CPU, "sys": SYS,')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    source = _workload()
    for rnd in range(args.rounds):
        for case, tunables in (("glibc defaults", ""), ("GLIBC_TUNABLES recipe", RECIPE)):
            env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", GLIBC_TUNABLES=tunables)
            load = os.getloadavg()[0]
            out = subprocess.run([sys.executable, "-c", source, "64", str(args.steps), "0", "1", "0"], cwd=ROOT,
                                 env=env, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps({"round": rnd, "case": case, "load_1min": round(load, 1),
                              "faults_per_step": statistics.median(r["faults"]),
                              "cpu_s_per_step": round(statistics.median(r["cpu"]), 3),
                              "sys_s_per_step": round(statistics.median(r["sys"]), 3),
                              "peak_rss_mib": round(r["peak_rss_mib_train"])}), flush=True)


if __name__ == "__main__":
    main()
