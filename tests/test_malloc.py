"""glibc malloc settings: freed CPU temporaries keep their pages (checked with the kernel's fault count)."""

import os
import platform
import subprocess
import sys

import pytest
import torch

from torch_brain import _malloc

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

_CHURN = r"""
import ctypes, resource, sys
from torch_brain import _malloc
applied = _malloc.keep_freed_heap() if sys.argv[1] == "keep" else None
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

print(applied, faults_of_later_rounds())
"""


def _churn(mode: str, **env: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not GLIBC, reason="glibc malloc")
def test_kept_heap_is_not_paged_in_again():
    # 2 rounds x 48 x 4 MiB = 98 304 pages of 4 KiB: glibc's defaults unmap or trim them after
    # each round, so each round pages them in again; with the settings almost none are
    _, default = _churn("default")
    applied, kept = _churn("keep")
    assert applied == "True"
    assert default > 60_000, default
    assert kept < 5_000, kept


@pytest.mark.skipif(not GLIBC, reason="glibc malloc")
def test_keep_heap_opt_out_by_environment():
    applied, faults = _churn("keep", TORCH_BRAIN_KEEP_HEAP="0")
    assert applied == "False"
    assert faults > 60_000, faults


def test_training_forward_on_cpu_keeps_the_heap_and_eval_does_not(monkeypatch):
    from tests.models.conftest import SESSIONS, TINY, init_vocab, make_window

    from torch_brain.data import collate
    from torch_brain.models import POYOPlus
    from torch_brain.models import _base

    calls = []
    monkeypatch.setattr(_base, "keep_freed_heap", lambda: calls.append(1))
    torch.manual_seed(0)
    model = init_vocab(POYOPlus(**TINY))
    batch = collate([model.tokenize(make_window(SESSIONS[0], 20, seed=0))])
    model.eval()
    with torch.no_grad():
        model(**batch["model_inputs"])
    assert calls == []
    model.train()
    model(**batch["model_inputs"])
    assert calls == [1]


def test_keep_heap_acts_once_per_process(monkeypatch):
    monkeypatch.setattr(_malloc, "_kept_pid", None)
    seen = []
    monkeypatch.setattr(_malloc, "_glibc", lambda: seen.append(1))  # None: as on a non-glibc system
    assert _malloc.keep_freed_heap() is False
    assert _malloc.keep_freed_heap() is False
    assert seen == [1]
