"""Library code leaves process-wide state alone: glibc malloc settings and torch's thread count.

Keeping freed heap pages mapped between training steps is an opt-in of the process, not of the
library: the documented ``GLIBC_TUNABLES`` recipe (docs/models.md) is checked here with the
kernel's page-fault count.
"""

import os
import platform
import subprocess
import sys

import pytest
import torch

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
# the recipe of docs/models.md: blocks up to 32 MiB from the heap, up to 1 GiB of freed heap kept
RECIPE = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"

_CHURN = r"""
import ctypes, resource, sys
if sys.argv[1] == "train":  # a CPU training step of a model first: it must not change malloc's settings
    import torch
    from tests.models.conftest import SESSIONS, TINY, init_vocab, make_window
    from torch_brain.data import collate
    from torch_brain.models import POYOPlus
    model = init_vocab(POYOPlus(**TINY)).train()
    batch = collate([model.tokenize(make_window(SESSIONS[0], 20, seed=0))])
    sum(v.sum() for v in model(**batch["model_inputs"], unpack_output=False).values()).backward()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 4 << 20

def faults_of_later_rounds():
    # a "step": 48 blocks of 4 MiB written, then all freed (through malloc itself, so that no other
    # allocation lands above them in the heap); the last two of four rounds are counted
    total = 0
    for r in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [libc.malloc(SIZE) for _ in range(48)]
        for b in blocks:
            ctypes.memset(b, 1, SIZE)
        for b in blocks:
            libc.free(b)
        if r >= 2:
            total += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return total

print(faults_of_later_rounds())
"""


def _churn(mode: str, **env: str) -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environ = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, timeout=300,
                         env=environ, cwd=root)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc malloc")
def test_training_step_leaves_malloc_settings_alone():
    # 2 rounds x 48 x 4 MiB = 98 304 pages of 4 KiB: glibc's defaults unmap or trim them after each
    # round, so each round pages them in again, also after a model's training step
    env = {"GLIBC_TUNABLES": ""}
    assert _churn("plain", **env) > 60_000
    assert _churn("train", **env) > 60_000


@pytest.mark.skipif(not GLIBC, reason="glibc malloc")
def test_glibc_tunables_recipe_keeps_freed_pages():
    assert _churn("plain", GLIBC_TUNABLES=RECIPE) < 5_000


def test_model_and_evaluator_leave_torch_threads_alone(monkeypatch):
    from tests.models.conftest import SESSIONS, TINY, init_vocab, make_window
    from tests.utils._stitch_helpers import ReplayModel, batches, loader, make_metrics, make_windows

    import lightning as L

    from torch_brain.data import collate
    from torch_brain.models import POYOPlus
    from torch_brain.utils.stitcher import MultiTaskDecodingStitchEvaluator, stitch

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    monkeypatch.setattr(torch, "set_num_interop_threads", lambda n: calls.append(n))
    model = init_vocab(POYOPlus(**TINY)).train()
    batch = collate([model.tokenize(make_window(SESSIONS[0], 20, seed=0))])
    sum(v.sum() for v in model(**batch["model_inputs"], unpack_output=False).values()).backward()
    stitch(torch.arange(10_000.0).div(2).floor(), torch.randn(10_000, 2))
    trainer = L.Trainer(callbacks=[MultiTaskDecodingStitchEvaluator(make_metrics(), quiet=True)], logger=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
    trainer.validate(ReplayModel(), loader(batches(make_windows("bs/s0", 4, 0.0), 2)), verbose=False)
    assert calls == []
