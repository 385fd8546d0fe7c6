"""Write stitched predictions (per session and task, with timestamps and targets) to files.

Formats:

* ``npz``: ``<out>/<session>__<task>.npz`` with ``timestamps`` (N,), ``predictions`` (N, ...) and
  ``targets`` (N, ...) - readable with ``numpy.load`` alone;
* ``pynapple``: ``<out>/<session>__<task>__{decoded,true}.npz`` written by pynapple's ``save``
  (``nap.load_file`` reads them back as ``Tsd`` / ``TsdFrame``);
* ``nwb``: ``<out>/<session>.nwb``, a COPY of the session's source NWB file (recorded at import by
  ``prepare nwb``) with a new processing module ``torch_brain_decoding`` holding one
  ``TimeSeries`` per task for the decoded values (``<task>_decoded``) and the targets
  (``<task>_true``). The source file is never opened for writing.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np

__all__ = ["EXPORT_FORMATS", "export_predictions", "nwb_source_of"]

EXPORT_FORMATS = ("npz", "nwb", "pynapple")
MODULE_NAME = "torch_brain_decoding"

# {session id: {task: (timestamps (N,), predictions (N, ...), targets (N, ...))}}
Predictions = Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]


def _safe(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", str(name))


def nwb_source_of(root: str | os.PathLike, session_id: str) -> Path:
    """The NWB file a prepared session (``<root>/<brainset>/<session>.h5``) was imported from.

    Raises:
        FileNotFoundError: the session file or its recorded NWB source is missing.
        ValueError: the session was not imported from NWB.
    """
    import h5py

    path = Path(root) / f"{session_id}.h5"
    if not path.is_file():
        raise FileNotFoundError(f"session {session_id!r}: its file {str(path)!r} does not exist.")
    with h5py.File(path, "r") as f:
        value = f["session"].attrs.get("nwb_file") if "session" in f else None
    if value is None:
        raise ValueError(
            f"session {session_id!r} ({str(path)!r}) was not imported from an NWB file, so there is no "
            "NWB file to copy; use --export npz or --export pynapple for it."
        )
    src = Path(value.decode() if isinstance(value, bytes) else str(value))
    if not src.is_file():
        raise FileNotFoundError(
            f"session {session_id!r}: its source NWB file {str(src)!r} (recorded at import) no longer exists; "
            "move it back or use --export npz."
        )
    return src


def _write_nwb(src: Path, dst: Path, tasks: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
               description: str) -> None:
    from pynwb import NWBHDF5IO, TimeSeries

    if dst.resolve() == src.resolve():
        raise ValueError(f"export: the output {str(dst)!r} is the source NWB file itself; choose another folder.")
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    try:
        with NWBHDF5IO(str(tmp), mode="a") as io:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # hdmf notices about the source file's content, not ours
                nwb = io.read()
            name = MODULE_NAME
            k = 1
            while name in nwb.processing:  # a copy exported before: never replace its module
                k += 1
                name = f"{MODULE_NAME}_{k}"
            module = nwb.create_processing_module(name=name, description=description)
            for task, (t, p, y) in sorted(tasks.items()):
                for suffix, values in (("decoded", p), ("true", y)):
                    module.add(TimeSeries(
                        name=f"{task}_{suffix}", data=np.asarray(values), timestamps=np.asarray(t, dtype=np.float64),
                        unit="n/a" if np.asarray(values).dtype.kind in "iub" else "same as the decoded series",
                        description=f"{'stitched torch_brain predictions' if suffix == 'decoded' else 'targets'} "
                                    f"of task {task!r}"))
            io.write(nwb)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def export_predictions(
    predictions: Predictions,
    out_dir: str | os.PathLike,
    fmt: str,
    *,
    data_root: str | os.PathLike | None = None,
    description: str = "torch_brain stitched predictions",
) -> list[Path]:
    """Write stitched predictions in format ``fmt``.

    Args:
        predictions: ``{session id: {task: (timestamps (N,), predictions (N, ...), targets (N, ...))}}``;
            timestamps in seconds in the recording's clock (the NWB file's, for imported sessions).
        out_dir: output folder (created).
        fmt: ``"npz"``, ``"pynapple"`` or ``"nwb"``.
        data_root: for ``"nwb"``: the ``data.root`` holding ``<brainset>/<session>.h5``, whose
            ``session.nwb_file`` names the source NWB file.
        description: description of the NWB processing module.

    Returns:
        The files written.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"export format must be one of {list(EXPORT_FORMATS)}, but got {fmt!r}.")
    if fmt == "nwb" and data_root is None:
        raise ValueError("export to nwb needs data_root (the data.root of the run) to find the source files.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if fmt == "nwb":
        sources = {sid: nwb_source_of(data_root, sid) for sid in predictions}  # all checked before writing
        for sid, tasks in sorted(predictions.items()):
            dst = out / f"{_safe(sid)}.nwb"
            _write_nwb(sources[sid], dst, tasks, description)
            written.append(dst)
        return written
    for sid, tasks in sorted(predictions.items()):
        for task, (t, p, y) in sorted(tasks.items()):
            stem = f"{_safe(sid)}__{_safe(task)}"
            if fmt == "npz":
                path = out / f"{stem}.npz"
                np.savez(path, timestamps=np.asarray(t, dtype=np.float64), predictions=np.asarray(p),
                         targets=np.asarray(y))
                written.append(path)
            else:
                from ._pynapple import decoded_to_pynapple

                objs = decoded_to_pynapple(t, p, y)
                for key in ("decoded", "true"):
                    path = out / f"{stem}__{key}.npz"
                    objs[key].save(str(path))
                    written.append(path)
    return written
