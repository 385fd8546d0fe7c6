"""The statistics pass of expected-value readouts: bins / codebooks fitted once, with a cache.

:func:`fit_readout_vocabularies` fits every expected-value head that has no vocabulary yet from the
training split's targets as the loss sees them (normalised), in one pass over the sessions (with a
progress bar). Given a ``cache`` file it first looks there: an entry is reused only when it was
computed for the same head (kind, ``num_bins``, output size, strategy / seed) from the same data
(training recording ids, their training intervals, the task's readout config, the size and
modification time of their files, the normalisation mode and statistics); anything else is recomputed, with one log line that says why. The runner
keeps the cache at ``<run_dir>/readout_vocab.pt`` (:data:`CACHE_NAME`); without a cache path
(plain Lightning use) nothing is read or written.

Cache file (``torch.save``; read with ``weights_only=True``)::

    {"format": "torch_brain.readout_vocab/1",
     "tasks": {task: {"head": {"kind", "num_bins", "out_dim", "strategy" | "seed"},
                      "fingerprint": {"recordings": [ids], "normalization": mode, "digest": sha256},
                      "values": centres (d, K) or centroids (K, d)}}}
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torch_brain.training.normalization import TargetNormalizer, training_targets
from torch_brain.training.progress import progress_iter
from torch_brain.training.run_dir import _atomic_write

__all__ = ["CACHE_NAME", "fit_readout_vocabularies", "head_signature", "vocabulary_fingerprint"]

#: file name of the cache in a run directory
CACHE_NAME = "readout_vocab.pt"
_FORMAT = "torch_brain.readout_vocab/1"


_log = logging.getLogger(__name__)


def head_signature(head: Any) -> dict[str, Any]:
    """What of a head decides its vocabulary: kind, ``num_bins``, output size, strategy / seed."""
    sig = {"kind": head.kind, "num_bins": int(head.num_bins), "out_dim": int(head.out_dim)}
    for key in ("strategy", "seed"):
        if hasattr(head, key):
            sig[key] = getattr(head, key)
    return sig


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.ndarray, np.generic, torch.Tensor)):
        return np.asarray(value).tolist()
    return str(value)


def _file_stamp(dataset: Any, rid: str) -> list[int] | None:
    """Size and modification time of ``<root>/<recording id>.h5``: a file rewritten in place (even
    with normalisation ``none``, whose statistics would not show it) no longer matches."""
    path = Path(getattr(dataset, "root", "")) / f"{rid}.h5"
    if not getattr(dataset, "root", None) or not path.is_file():
        return None
    stat = path.stat()
    return [int(stat.st_size), int(stat.st_mtime_ns)]


def vocabulary_fingerprint(dataset: Any, task: str, spec: Any, normalizer: TargetNormalizer) -> dict[str, Any]:
    """What a task's vocabulary is computed from, without reading any target.

    Returns:
        ``{"recordings": sorted training recording ids decoding the task, "normalization": mode,
        "digest": sha256 of those ids with their training intervals, readout config entries and
        file size / modification time, the spec's keys, and the task's normalisation statistics}``.
    """
    recordings = {}
    for rid, intervals in dataset.get_sampling_intervals().items():
        config = dataset.get_config(rid) if hasattr(dataset, "get_config") else {}
        entries = {e.get("readout_id"): e for e in (config or {}).get("multitask_readout", []) or []}
        if entries and task not in entries:
            continue  # this recording does not decode the task
        recordings[str(rid)] = {"start": np.asarray(intervals.start, dtype=np.float64).tolist(),
                                "end": np.asarray(intervals.end, dtype=np.float64).tolist(),
                                "readout": entries.get(task), "file": _file_stamp(dataset, rid)}
    mode = normalizer.stats.get("mode", "none")
    content = {"task": task, "keys": [spec.timestamp_key, spec.value_key], "recordings": recordings,
               "normalization": mode, "stats": normalizer.stats.get("tasks", {}).get(task)}
    text = json.dumps(content, sort_keys=True, default=_jsonable)
    return {"recordings": sorted(recordings), "normalization": mode,
            "digest": hashlib.sha256(text.encode()).hexdigest()}


def _mismatch(entry: Any, signature: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> str | None:
    """Why a cache entry cannot be reused (None: it can)."""
    if not isinstance(entry, Mapping):
        return "no entry"
    old = entry.get("head", {})
    diffs = [f"{k} {old.get(k)!r} cached vs {v!r} now" for k, v in signature.items() if old.get(k) != v]
    if diffs:
        return "head " + ", ".join(diffs)
    cached = entry.get("fingerprint", {})
    if cached.get("recordings") != fingerprint["recordings"]:
        return (f"training recordings differ ({len(cached.get('recordings') or [])} cached vs "
                f"{len(fingerprint['recordings'])} now)")
    if cached.get("normalization") != fingerprint["normalization"]:
        return f"normalization {cached.get('normalization')!r} cached vs {fingerprint['normalization']!r} now"
    if cached.get("digest") != fingerprint["digest"]:
        return "training intervals, readout config, recording files or normalisation statistics differ"
    return None


def _read_cache(path: Path) -> tuple[dict[str, Any], str | None]:
    """(task entries, why the file is unusable or None); a missing file is an empty cache."""
    if not path.is_file():
        return {}, None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torn or foreign file: recompute, never fail the run on a cache
        return {}, f"cannot be read ({type(err).__name__})"
    if not isinstance(data, Mapping) or data.get("format") != _FORMAT or not isinstance(data.get("tasks"), Mapping):
        return {}, f"is not a {_FORMAT} file"
    return dict(data["tasks"]), None


def _write_cache(path: Path, entries: Mapping[str, Any]) -> None:
    payload = {"format": _FORMAT, "tasks": dict(sorted(entries.items()))}
    _atomic_write(path, "wb", lambda f: torch.save(payload, f))


def _pooled_targets(dataset: Any, specs: Mapping[str, Any], normalizer: TargetNormalizer,
                    progress: bool) -> dict[str, list[np.ndarray]]:
    """{task: [normalised (n, d) training targets of each recording]}; refuses NaN / inf."""
    wrap = (lambda items, n: progress_iter(items, total=n, desc="readout statistics")) if progress else None
    pooled: dict[str, list[np.ndarray]] = {t: [] for t in specs}
    for task, rid, values, _ in training_targets(dataset, specs, progress=wrap):
        bad = ~np.all(np.isfinite(values), axis=1)
        if bad.any():
            raise ValueError(
                f"readout head of {task!r}: {int(bad.sum())} of {len(values)} training targets of "
                f"session {rid!r} are NaN or inf; fix or drop them before fitting the head's bins."
            )
        t = normalizer.normalize(task, torch.from_numpy(values).float(), [rid])
        pooled[task].append(t.double().numpy())
    return pooled


def fit_readout_vocabularies(heads: Mapping[str, Any], dataset: Any, specs: Mapping[str, Any],
                             normalizer: TargetNormalizer, *, cache: str | Path | None = None,
                             progress: bool = False, main_process: bool = True) -> list[str]:
    """Fits the heads of ``heads`` that have no vocabulary yet; returns the tasks fitted or reused.

    Args:
        heads: task -> expected-value head (``model.vocabulary_heads()``).
        dataset: the training-split dataset.
        specs: task -> ModalitySpec.
        normalizer: the targets' normalisation (the vocabulary lives in normalised units).
        cache: a cache file to reuse from and write to (None: no cache).
        progress: show progress over the sessions of the statistics pass (and a line when the
            cache is reused).
        main_process: this process writes the cache and logs a mismatch (False on DDP ranks
            other than 0).

    Raises:
        ValueError: NaN/inf training targets (the session and count are named), constant
            targets, or a task without any training target.
    """
    todo = {t: h for t, h in heads.items() if not h.is_fitted}
    if not todo:
        return []
    entries: dict[str, Any] = {}
    compute = dict(todo)
    if cache is not None:
        cache = Path(cache)
        entries, unusable = _read_cache(cache)
        reasons, reused = [], []
        for task, head in todo.items():
            fingerprint = vocabulary_fingerprint(dataset, task, specs[task], normalizer)
            why = unusable or _mismatch(entries.get(task), head_signature(head), fingerprint)
            if why is None:
                try:
                    head.load_vocabulary(entries[task]["values"])
                except (ValueError, TypeError, KeyError) as err:
                    why = f"stored values unusable ({err})"
            if why is None:
                reused.append(task)
                del compute[task]
            else:
                entries[task] = {"head": head_signature(head), "fingerprint": fingerprint}
                if cache.is_file():
                    reasons.append(f"{task}: {why}")
        if reasons and main_process:
            _log.warning(f"readout vocabulary cache {str(cache)!r} does not match ({'; '.join(reasons)}); "
                         "recomputing.")
        if reused and progress:
            print(f"readout statistics: {', '.join(reused)} reused from {str(cache)!r}", file=sys.stdout, flush=True)
    if not compute:
        return sorted(todo)
    pooled = _pooled_targets(dataset, {t: specs[t] for t in compute}, normalizer, progress)
    heads_to_fit = compute.items()
    if progress:  # k-means of a large training split takes a while (40 s for 840k 2-D targets, K=64)
        heads_to_fit = progress_iter(heads_to_fit, total=len(compute), desc="readout vocabulary fit", unit="head")
    for task, head in heads_to_fit:
        if not pooled[task]:
            raise ValueError(f"readout head of {task!r}: the training split has no target of this "
                             "task to fit its bins on.")
        label = f"readout head of {task!r}" + (" (normalised targets)" if task in normalizer.tasks else "")
        head.fit(np.concatenate(pooled[task]), task=label)
        if cache is not None:
            entries[task]["values"] = head.vocabulary.detach().cpu().clone()
    if cache is not None and main_process:
        _write_cache(cache, entries)
    return sorted(todo)
