"""The GPU benchmark suite behind ``benchmarks/gpu.sh`` (issue 21): one command, under 8 minutes.

On a CUDA machine it runs, within a time budget (``--budget-s``, default 450 s):

(a) the model training-step benchmark (the workload of ``bench_model.py``: POYO+ with SparseLamb,
    ~1000 spikes per 1 s window) for ours and the peer (torch-brain 0.1.2, ``.bench-venv/peer``)
    in fp32, bf16-mixed and bf16-mixed + ``torch.compile``, at dim 64 and 256, batch 32 and 128:
    steps/s, input tokens/s, peak GPU memory and the padding waste (fraction of padded input
    tokens and output queries per batch);
(b) the stitch benchmark (``bench_stitch.py --device cuda``);
(c) the tests marked ``cuda`` (``pytest -m cuda``);
(d) the streaming decoder's latency (``bench_streaming.py``) when ``torch_brain.inference`` and
    that script exist in the tree; otherwise the step says it is skipped.

Every step runs in its own process with a timeout taken from the remaining budget; a step that
fails or times out is recorded with its error and the suite goes on. Writes one JSON file
(``--out``; default ``$OUT/gpu_bench.json`` when ``$OUT`` is set, else ``runs/gpu_bench.json``)
and prints a table.

``--dry-run`` runs every code path on CPU with tiny sizes (dim 16, batch 2, one timed step,
``torch.compile`` with the ``eager`` backend, stitch of 10^4 rows, the ``cuda`` tests, which skip
there) so that the script is tested without a GPU.

Usage:
    benchmarks/gpu.sh [--dry-run] [--skip-peer] [--out FILE] [--budget-s 450]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer import PEER_VENV, run_peer  # noqa: E402
from bench_model import WORKLOAD  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = (("fp32", "0"), ("bf16-mixed", "0"), ("bf16-mixed", "compile"))


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _last_json(text: str) -> dict:
    lines = [line for line in text.strip().splitlines() if line.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"no JSON line in the output:\n{text[-2000:]}")
    return json.loads(lines[-1])


def _run(cmd: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(timeout, 1.0))


def _ours(argv: list[str], threads: int, timeout: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    out = _run([sys.executable, "-c", WORKLOAD, *argv], timeout, env)
    if out.returncode != 0:
        raise RuntimeError(f"exit {out.returncode}: {out.stderr.strip()[-1500:]}")
    return _last_json(out.stdout)


def model_step(cfg: dict, budget: Budget, skip_peer: bool) -> list[dict]:
    rows = []
    peer_ok = not skip_peer and (PEER_VENV / ".installed").exists()
    if not skip_peer and not peer_ok:
        print(f"[gpu] (a) peer skipped: no peer virtualenv at {PEER_VENV} (made by benchmarks/_peer.py)", flush=True)
    for dim in cfg["dims"]:
        for batch in cfg["batches"]:
            for precision, comp in VARIANTS:
                compile_arg = "0" if comp == "0" else cfg["compile_backend"]
                argv = [str(dim), str(cfg["steps"]), str(cfg["infer"]), str(cfg["threads"]), "0", precision,
                        str(batch), cfg["device"], compile_arg]
                for side in ("ours", "peer") if peer_ok else ("ours",):
                    row = {"side": side, "dim": dim, "batch": batch, "precision": precision,
                           "compile": comp != "0"}
                    left = budget.left()
                    if left < cfg["min_left_s"]:
                        row["skipped"] = f"time budget spent ({left:.0f} s left)"
                    else:
                        t0 = time.monotonic()
                        try:
                            timeout = min(left, cfg["run_cap_s"])
                            if side == "ours":
                                res = _ours(argv, cfg["threads"], timeout)
                            else:
                                res = run_peer(WORKLOAD, *argv, threads=cfg["threads"], timeout=timeout)
                            row.update({k: res.get(k) for k in (
                                "steps_per_s", "tokens_per_s", "peak_gpu_mib", "peak_rss_mib_train",
                                "inference_windows_per_s", "input_padding_fraction", "output_padding_fraction",
                                "input_tokens_per_batch", "spikes_per_window", "torch")})
                        except Exception as err:  # noqa: BLE001 - recorded, the suite goes on
                            row["error"] = f"{type(err).__name__}: {str(err)[-600:]}"
                        row["wall_s"] = round(time.monotonic() - t0, 1)
                    rows.append(row)
                    print(f"[gpu] (a) {_row_text(row)}", flush=True)
    return rows


def stitch_step(cfg: dict, budget: Budget) -> dict:
    cmd = [sys.executable, "benchmarks/bench_stitch.py", "--device", cfg["device"], "--skip-peer",
           "--skip-evaluator", "--sizes", *cfg["stitch_sizes"], "--repeats", str(cfg["stitch_repeats"]),
           "--min-time", str(cfg["stitch_min_time"])]
    return _json_step(cmd, min(budget.left(), cfg["stitch_cap_s"]), budget)


def tests_step(cfg: dict, budget: Budget) -> dict:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                   if "mark.cuda" in p.read_text(encoding="utf-8", errors="ignore"))
    if not files:
        return {"skipped": "no test is marked cuda"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", *files]
    left = min(budget.left(), cfg["tests_cap_s"])
    try:
        out = _run(cmd, left)
    except subprocess.TimeoutExpired:
        return {"files": files, "error": f"timed out after {left:.0f} s"}
    summary = [line for line in out.stdout.strip().splitlines() if line.strip()][-1:] or [""]
    return {"files": files, "returncode": out.returncode, "summary": summary[0],
            "failures": [line for line in out.stdout.splitlines() if line.startswith("FAILED")]}


def streaming_step(cfg: dict, budget: Budget) -> dict:
    script = ROOT / "benchmarks" / "bench_streaming.py"
    has_pkg = importlib.util.find_spec("torch_brain.inference") is not None
    if not (has_pkg and script.exists()):
        missing = [name for name, ok in (("torch_brain.inference", has_pkg), (str(script.relative_to(ROOT)),
                                                                             script.exists())) if not ok]
        return {"skipped": f"no streaming decoder in this tree ({', '.join(missing)} missing)"}
    # bench_streaming.py has no CUDA path yet: this measures the decoder on the machine's CPU
    # (ours only), so that the GPU run still records the streaming latency of that host
    step = _json_step([sys.executable, str(script), "--skip-peer", "--configs", cfg["streaming_configs"],
                       "--updates", str(cfg["streaming_updates"])], min(budget.left(), 120), budget)
    step["note"] = "host CPU latency (the streaming benchmark has no CUDA path yet)"
    return step


def _json_step(cmd: list[str], timeout: float, budget: Budget) -> dict:
    if timeout < 5:
        return {"skipped": "time budget spent"}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    try:
        out = _run(cmd, timeout, env)
    except subprocess.TimeoutExpired:
        return {"command": " ".join(cmd[1:]), "error": f"timed out after {timeout:.0f} s"}
    if out.returncode != 0:
        return {"command": " ".join(cmd[1:]), "error": f"exit {out.returncode}: {out.stderr.strip()[-1500:]}"}
    return {"command": " ".join(cmd[1:]), "result": _last_json(out.stdout)}


def _row_text(row: dict) -> str:
    head = f"{row['side']:4s} dim {row['dim']:3d} batch {row['batch']:3d} {row['precision']:10s} " \
           f"{'compile' if row['compile'] else '       '}"
    if "skipped" in row:
        return f"{head}  skipped: {row['skipped']}"
    if "error" in row:
        return f"{head}  ERROR {row['error'].splitlines()[-1][:160] if row['error'] else ''}"
    mem = f"{row['peak_gpu_mib']:8.0f}" if row.get("peak_gpu_mib") is not None else "       -"
    return (f"{head}  {row['steps_per_s']:8.2f} {row['tokens_per_s']:11.0f} {mem}"
            f"  {100 * row['input_padding_fraction']:5.1f}% {100 * row['output_padding_fraction']:5.1f}%")


def table(result: dict) -> str:
    lines = [f"GPU suite on {result['device']}, "
             f"{result['total_s']:.0f} s",
             "(a) model step        side dim batch precision compile   steps/s    tokens/s  GPU MiB  in-pad out-pad",
             *("    " + _row_text(r) for r in result["model"])]
    ratios = result.get("ours_over_peer_steps_per_s", {})
    if ratios:
        lines.append("    ours/peer steps/s: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    for key, name in (("stitch", "(b) stitch"), ("tests", "(c) cuda tests"), ("streaming", "(d) streaming")):
        step = result[key]
        if "skipped" in step:
            lines.append(f"{name}: skipped: {step['skipped']}")
        elif "error" in step:
            lines.append(f"{name}: ERROR {step['error'][:300]}")
        elif key == "stitch":
            ours = step["result"]["ours"]
            lines.append(f"{name}: " + ", ".join(f"{k} {v['mpred_per_s']:.1f} Mpred/s" for k, v in ours.items()))
        elif key == "tests":
            lines.append(f"{name}: {step['summary']} ({', '.join(step['files'])})")
        else:
            lines.append(f"{name}: {json.dumps(step['result'])[:300]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every code path on CPU with tiny sizes")
    parser.add_argument("--skip-peer", action="store_true", help="only our side in the model benchmark")
    parser.add_argument("--out", default=None, help="JSON file to write")
    parser.add_argument("--budget-s", type=float, default=None, help="total time budget (default 450; dry run 1200)")
    args = parser.parse_args(argv)
    import torch

    if args.dry_run:
        cfg = dict(device="cpu", dims=(16,), batches=(2,), steps=1, infer=1, threads=1, compile_backend="eager",
                   run_cap_s=600, min_left_s=5, stitch_sizes=["1e4"], stitch_repeats=1, stitch_min_time=0,
                   stitch_cap_s=120, tests_cap_s=240, streaming_configs="16x1", streaming_updates=3)
        budget_s = 1200.0 if args.budget_s is None else args.budget_s  # a loaded 2-core CI box
        device_name = "cpu (dry run)"
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device: run on a GPU machine, or use --dry-run to test the script on CPU")
        cfg = dict(device="cuda", dims=(64, 256), batches=(32, 128), steps=10, infer=5,
                   threads=min(8, os.cpu_count() or 1), compile_backend="1", run_cap_s=120, min_left_s=20,
                   stitch_sizes=["1e6", "1e7"], stitch_repeats=5, stitch_min_time=0.25, stitch_cap_s=60,
                   tests_cap_s=90, streaming_configs="64x1,64x2", streaming_updates=100)
        budget_s = 450.0 if args.budget_s is None else args.budget_s
        device_name = torch.cuda.get_device_name(0)
    out_path = Path(args.out) if args.out else (
        Path(os.environ["OUT"]) / "gpu_bench.json" if os.environ.get("OUT") else ROOT / "runs" / "gpu_bench.json")
    budget = Budget(budget_s)
    start = time.monotonic()
    result: dict = {"benchmark": "gpu_suite", "dry_run": args.dry_run, "device": device_name,
                    "torch": torch.__version__, "config": {k: list(v) if isinstance(v, tuple) else v
                                                           for k, v in cfg.items()},
                    "budget_s": budget_s, "load_average_start": os.getloadavg(),
                    "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # short steps first, so that the model benchmark (the longest) takes what is left
    print("[gpu] (c) tests marked cuda", flush=True)
    result["tests"] = tests_step(cfg, budget)
    print("[gpu] (b) stitch", flush=True)
    result["stitch"] = stitch_step(cfg, budget)
    print("[gpu] (d) streaming", flush=True)
    result["streaming"] = streaming_step(cfg, budget)
    if "skipped" in result["streaming"]:
        print(f"[gpu] (d) skipped: {result['streaming']['skipped']}", flush=True)
    print("[gpu] (a) model step, ours vs peer", flush=True)
    result["model"] = model_step(cfg, Budget(max(budget.left(), 0.0)), args.skip_peer)
    ratios = {}
    for r in result["model"]:
        if r["side"] != "ours" or "steps_per_s" not in r:
            continue
        peer = [p for p in result["model"] if p["side"] == "peer" and "steps_per_s" in p
                and all(p[k] == r[k] for k in ("dim", "batch", "precision", "compile"))]
        if peer and peer[0]["steps_per_s"]:
            key = f"dim{r['dim']}/b{r['batch']}/{r['precision']}{'+compile' if r['compile'] else ''}"
            ratios[key] = r["steps_per_s"] / peer[0]["steps_per_s"]
    result["ours_over_peer_steps_per_s"] = ratios
    result["total_s"] = time.monotonic() - start
    result["load_average_end"] = os.getloadavg()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"[gpu] wrote {out_path}")
    return result


if __name__ == "__main__":
    main()
