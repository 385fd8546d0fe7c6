"""``python tests/training/_kill_driver.py N ARGS...``: runs ``torch-brain ARGS`` and SIGKILLs itself
halfway through writing its N-th ``torch.save`` (the N-th checkpoint), after flushing the half.

This is how the kill-and-resume test hits the one moment a random kill rarely hits: the
checkpoint half on disk. Nothing in the library knows about it; ``torch.save`` is replaced in this
process only. A path target (a non-atomic writer) gets its half-file under the final name.
"""

import io
import os
import signal
import sys

import torch

_real_save = torch.save
_target = int(sys.argv[1])
_count = 0


def _save(obj, f, *args, **kwargs):
    global _count
    _count += 1
    if _count != _target:
        return _real_save(obj, f, *args, **kwargs)
    buffer = io.BytesIO()
    _real_save(obj, buffer, *args, **kwargs)
    half = buffer.getvalue()[: buffer.tell() // 2]
    if hasattr(f, "write"):
        f.write(half)
        f.flush()
        os.fsync(f.fileno())
    else:
        with open(f, "wb") as out:
            out.write(half)
    os.kill(os.getpid(), signal.SIGKILL)


torch.save = _save

if __name__ == "__main__":
    from torch_brain.cli import main

    sys.exit(main(sys.argv[2:]))
