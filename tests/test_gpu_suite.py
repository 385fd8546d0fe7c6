"""benchmarks/gpu.sh --dry-run: every code path of the GPU suite on CPU with tiny sizes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_suite_dry_run(tmp_path):
    out = tmp_path / "gpu.json"
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(REPO))
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh"), "--dry-run", "--skip-peer", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["dry_run"] and result["device"].startswith("cpu")
    # (a) the three variants ran (compile through torch.compile's eager backend), with every figure
    rows = result["model"]
    assert {(r["precision"], r["compile"]) for r in rows} == {("fp32", False), ("bf16-mixed", False),
                                                               ("bf16-mixed", True)}
    for r in rows:
        assert "error" not in r and "skipped" not in r, (r.get("error"), r.get("skipped"))
        assert r["steps_per_s"] > 0 and r["tokens_per_s"] > 0
        # 2 windows, each padded to a multiple of 8 tokens: some but not most slots are padding
        assert 0 < r["input_padding_fraction"] < 0.5 and 0 < r["output_padding_fraction"] < 0.5
    # (b) stitch of 10^4 rows from 1 s windows at 0.5 s step, 100 Hz: 100 windows share
    # 50 ticks with the next one, so 99 * 50 + 100 distinct times
    stitch = result["stitch"]["result"]["ours"]
    assert stitch["float/window/10000"]["n_unique"] == 99 * 50 + 100
    # (c) the cuda tests were collected and skipped (no GPU here)
    assert result["tests"]["returncode"] == 0 and "skipped" in result["tests"]["summary"]
    # (d) the streaming decoder's latency (on the host CPU: bench_streaming has no CUDA path)
    assert "result" in result["streaming"], result["streaming"]
    assert result["streaming"]["result"]["configs"]["dim16_threads1"]["ours"]["streaming"]["updates"] == 3
    assert "(a) model step" in proc.stdout and "(d) streaming" in proc.stdout
