"""glibc malloc settings that stop large CPU temporaries from being paged in again on every use.

glibc serves a block above its *mmap threshold* (128 KiB at start) with a fresh mapping that is
unmapped when freed, and returns free memory at the top of its heap to the system once more than
the *trim threshold* is free there. Either way, the next block of that size starts on pages the
kernel has to fault in and zero again: for a POYO training step on CPU, ~100 MiB of activations
per step, ~10 % of the step's time.

Both functions act once per process, only under glibc, and never raise: elsewhere they do nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform

import numpy as np

__all__ = ["keep_freed_heap", "prime_mmap_threshold"]

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
_TRIM_THRESHOLD = 1 << 30
_ENV_OFF = "TORCH_BRAIN_KEEP_HEAP"

_primed_pid: int | None = None
_kept_pid: int | None = None


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


def prime_mmap_threshold() -> None:
    """Map and free one 32 MiB block (once per process).

    Freeing a mapped block raises glibc's mmap threshold to that block's size, as glibc does after
    any such free, so later blocks up to 32 MiB are recycled from the heap. The thresholds stay
    dynamic; elsewhere this only costs one allocation.
    """
    global _primed_pid
    if _primed_pid != os.getpid():
        _primed_pid = os.getpid()
        np.empty((1 << 25) - (1 << 16), dtype=np.uint8)  # dropped at once: allocated and freed


def keep_freed_heap() -> bool:
    """Serve blocks up to 32 MiB from the heap and keep up to 1 GiB of freed heap mapped (once per process).

    Called by the models' first CPU forward in training mode: a training step frees and allocates
    the same activations again, so keeping their pages mapped removes the page faults without
    raising the peak (the pages kept are pages the previous step used). Resident memory after
    training stays near its peak instead of shrinking.

    Set the environment variable ``TORCH_BRAIN_KEEP_HEAP=0`` to leave malloc's settings alone.

    Returns:
        True if the settings were applied by this call.
    """
    global _kept_pid
    if _kept_pid == os.getpid():
        return False
    _kept_pid = os.getpid()
    if os.environ.get(_ENV_OFF, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    libc = _glibc()
    if libc is None:
        return False
    # setting either value turns glibc's dynamic thresholds off, so both are set
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
