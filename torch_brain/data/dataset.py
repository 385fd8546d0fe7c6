"""``Dataset``: windows of recordings stored as ``<root>/<brainset>/<session>.h5``.

A dataset is a selection of recording files (all of them, or those named by a config), one split
of each (``train`` / ``valid`` / ``test``), and an optional transform. Samplers from
:mod:`torch_brain.data.sampler` choose windows from :meth:`Dataset.get_sampling_intervals`; the
dataset reads them lazily, reading only the rows each window needs.

Config format (the torch_brain 0.1.x YAML)::

    - selection:
        - brainset: synthetic_reaching
          sessions: [session_000, session_001]   # or `session: ...`; omit for every session
          # subject(s): [...]                    # keep sessions of these subjects only
          # exclude_sessions: [...]
      config:
        multitask_readout:
          - readout_id: cursor_velocity_2d
            weights: {movement_periods.reach_period: 5.0}
"""

from __future__ import annotations

import copy
import errno
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ._array_dict import ArrayDict
from ._data import Data
from ._interval import Interval
from .sampler import DatasetIndex

__all__ = ["Dataset", "DatasetIndex"]

_SPLITS = ("train", "valid", "test")
_SELECTION_KEYS = ("brainset", "session", "sessions", "subject", "subjects", "exclude_sessions", "exclude_subjects")
_ENTRY_KEYS = ("selection", "config")


def _short_list(items: Sequence[str], n: int = 20) -> str:
    items = list(items)
    head = ", ".join(repr(x) for x in items[:n])
    return f"[{head}{', ...' if len(items) > n else ''}] ({len(items)} in total)"


def _as_str_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        out = list(value)
        if all(isinstance(x, (str, int)) for x in out):
            return [str(x) for x in out]
    raise TypeError(f"Dataset config: {where} must be a string or a list of strings, got {value!r}.")


def _load_config(config: Any) -> list[dict] | None:
    """Normalise ``config`` (None, YAML path, one entry dict, or list of entries) to a list of entries."""
    if config is None:
        return None
    source = "config"
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"Dataset: config file {str(path)!r} does not exist; pass a YAML path, a dict or a list.")
        import yaml

        try:
            config = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ValueError(f"Dataset: config file {str(path)!r} is not valid YAML: {err}") from None
        source = f"config file {str(path)!r}"
    if isinstance(config, Mapping):
        config = [config]
    if not isinstance(config, list) or not config:
        raise TypeError(
            f"Dataset: {source} must be a non-empty list of entries "
            f"{{selection: [{{brainset: ..., sessions: [...]}}], config: {{...}}}}, got {type(config).__name__}."
        )
    entries = []
    for i, entry in enumerate(config):
        where = f"{source}, entry {i}"
        if not isinstance(entry, Mapping) or "selection" not in entry:
            raise ValueError(f"Dataset: {where} must be a dict with a 'selection' list, got {entry!r}.")
        unknown = sorted(set(entry) - set(_ENTRY_KEYS))
        if unknown:
            raise ValueError(f"Dataset: {where} has unknown key(s) {unknown}; allowed keys: {list(_ENTRY_KEYS)}.")
        selection = entry["selection"]
        if isinstance(selection, Mapping):
            selection = [selection]
        if not isinstance(selection, list) or not selection:
            raise ValueError(f"Dataset: {where}: 'selection' must be a non-empty list of dicts, got {selection!r}.")
        for j, item in enumerate(selection):
            if not isinstance(item, Mapping) or "brainset" not in item:
                raise ValueError(
                    f"Dataset: {where}, selection {j} must be a dict with a 'brainset' key, got {item!r}."
                )
            unknown = sorted(set(item) - set(_SELECTION_KEYS))
            if unknown:
                raise ValueError(
                    f"Dataset: {where}, selection {j} has unknown key(s) {unknown}; allowed keys: "
                    f"{list(_SELECTION_KEYS)}."
                )
        cfg = entry.get("config") or {}
        if not isinstance(cfg, Mapping):
            raise TypeError(f"Dataset: {where}: 'config' must be a dict, got {type(cfg).__name__}.")
        entries.append({"selection": [dict(x) for x in selection], "config": dict(cfg), "where": where})
    return entries


def _read_error(path: Path, err: Exception) -> Exception:
    if isinstance(err, OSError) and (err.errno == errno.EMFILE or "Too many open files" in str(err)):
        return OSError(
            errno.EMFILE,
            f"Dataset: too many open files while opening {str(path)!r}; lower max_open_files (or use "
            "keep_files_open=False), or raise the limit (`ulimit -n`).",
        )
    return ValueError(
        f"Dataset: could not read recording file {str(path)!r}: {type(err).__name__}: {err}. The file is "
        "corrupt or not in the brainset layout; re-create it (e.g. `torch-brain prepare ...`) or move it out "
        "of the dataset root. Nothing was modified on disk."
    )


def _scalar_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.size == 1:
        return _scalar_str(value.reshape(-1)[0])
    return str(value)


class _Recording:
    """What the dataset knows about one selected file (read once at construction)."""

    __slots__ = ("rid", "brainset", "session", "path", "subject", "unit_ids", "sampling", "config", "domain", "nbytes")

    def __init__(self, rid: str, brainset: str, session: str, path: Path) -> None:
        self.rid, self.brainset, self.session, self.path = rid, brainset, session, path
        self.nbytes = path.stat().st_size
        self.subject = ""
        self.unit_ids = np.empty(0, dtype=object)
        self.sampling: Interval | None = None
        self.config: dict = {}
        self.domain: Interval | None = None


class Dataset(torch.utils.data.Dataset):
    """Windows of the recordings under ``root``, selected by ``config`` / ``recording_ids``.

    Files are ``<root>/<brainset_id>/<session_id>.h5`` (brainset layout); a recording's id is
    ``"<brainset_id>/<session_id>"``.

    A window ``dataset.get(recording_id, start, end)`` is a :class:`Data` with every time relative
    to ``start`` and ``absolute_start`` set, plus:

    - ``units.id``: global unit ids ``"<brainset>/<session>/<unit>"`` (as :meth:`get_unit_ids`);
    - ``session.id``: the recording id (as :meth:`get_session_ids`);
    - ``subject.id``: ``"<brainset>/<subject>"`` (as :meth:`get_subject_ids`);
    - ``config``: the matching config entry's ``config`` dict (``{}`` without a config).

    Windows share read-only arrays with the dataset's cache: transforms must build new objects
    rather than modify arrays in place (all of :mod:`torch_brain.transforms` do).

    Args:
        root: folder holding one sub-folder per brainset.
        config: None (every recording), a YAML file path, one entry dict or a list of entries
            (format in the module docstring).
        recording_ids: restrict to these recording ids (intersected with the config's selection).
        split: ``None`` (sampling intervals = each file's ``domain``), ``"train"``, ``"valid"`` or
            ``"test"`` (the file's ``<split>_domain``).
        transform: callable applied to every window by ``__getitem__`` (e.g. ``Compose([...])``).
        keep_files_open: for recordings read lazily, keep up to ``max_open_files`` files open
            (least recently used are closed first); False opens and closes the file for every
            window.
        max_open_files: bound on simultaneously open files when ``keep_files_open``.
        memory_budget: bytes (per process) of recordings to read fully into memory on first
            use, measured by file size; windows of those are plain numpy views (about 30x faster
            to cut than lazy reads) and hold no file handle. Recordings beyond the budget are
            read lazily. 0 reads everything lazily. Default 1 GiB.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no ``<brainset>/<session>.h5`` file.
        ValueError: unknown brainset/session/subject in the config (the message lists those that
            exist), an empty split, overlapping train/valid/test domains in a file (data leakage;
            names the recording and span), or an unreadable file (named). Nothing is written.

    Example:
        >>> dataset = Dataset("./processed", config="config.yaml", split="train")
        >>> sampler = RandomFixedWindowSampler(dataset.get_sampling_intervals(), window_length=1.0)
        >>> window = dataset[next(iter(sampler))]
    """

    def __init__(
        self,
        root: str | os.PathLike,
        config: str | os.PathLike | Mapping | list | None = None,
        recording_ids: Iterable[str] | None = None,
        split: str | None = None,
        transform: Callable[[Data], Any] | None = None,
        keep_files_open: bool = True,
        max_open_files: int = 128,
        memory_budget: int = 2**30,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"Dataset: root {str(self.root)!r} is not a folder; pass the folder that holds "
                "<brainset>/<session>.h5 files (e.g. the output of `torch-brain prepare`)."
            )
        if split is not None and split not in _SPLITS:
            raise ValueError(f"Dataset: split must be None or one of {list(_SPLITS)}, got {split!r}.")
        if transform is not None and not callable(transform):
            raise TypeError(f"Dataset: transform must be callable or None, got {type(transform).__name__}.")
        if isinstance(max_open_files, bool) or not isinstance(max_open_files, int) or max_open_files < 1:
            raise ValueError(f"Dataset: max_open_files must be an int >= 1, got {max_open_files!r}.")
        self.split = split
        self.transform = transform
        self.keep_files_open = bool(keep_files_open)
        self.max_open_files = max_open_files
        if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 0:
            raise ValueError(f"Dataset: memory_budget must be an int >= 0 (bytes), got {memory_budget!r}.")
        self.memory_budget = memory_budget
        self._cache: OrderedDict[str, tuple[Any, Data]] = OrderedDict()  # lazily opened files (LRU)
        self._memory: dict[str, Data] = {}  # recordings read fully into memory
        self._memory_used = 0
        self._pid = os.getpid()

        available = self._discover()
        self.config = config
        entries = _load_config(config)
        chosen = self._select(available, entries, recording_ids)
        self._recordings: dict[str, _Recording] = {}
        for rid in sorted(chosen):
            brainset, session = rid.split("/", 1)
            rec = _Recording(rid, brainset, session, available[brainset][session])
            rec.config = chosen[rid]
            self._recordings[rid] = rec
        self._read_metadata()

    # ------------------------------------------------------------------ discovery / selection
    def _discover(self) -> dict[str, dict[str, Path]]:
        available: dict[str, dict[str, Path]] = {}
        for sub in sorted(p for p in self.root.iterdir() if p.is_dir()):
            files = {f.stem: f for f in sorted(sub.glob("*.h5"))}
            if files:
                available[sub.name] = files
        if not available:
            raise FileNotFoundError(
                f"Dataset: no brainset files found under {str(self.root)!r}: expected "
                f"{str(self.root)}/<brainset>/<session>.h5. Prepare data first (e.g. "
                "`torch-brain prepare synthetic_reaching <root>`) or pass the right root."
            )
        return available

    def _subject_of(self, path: Path) -> str:
        try:
            with h5py.File(path, "r") as f:
                return _scalar_str(f["subject"].attrs["id"])
        except (OSError, KeyError, ValueError) as err:
            raise _read_error(path, err) from None

    def _select(
        self,
        available: dict[str, dict[str, Path]],
        entries: list[dict] | None,
        recording_ids: Iterable[str] | None,
    ) -> dict[str, dict]:
        """Return ``{recording_id: config dict}`` of the selected recordings."""
        all_ids = [f"{b}/{s}" for b in available for s in available[b]]
        chosen: dict[str, dict] = {}
        if entries is None:
            chosen = {rid: {} for rid in all_ids}
        else:
            origin: dict[str, str] = {}
            for entry in entries:
                for j, item in enumerate(entry["selection"]):
                    where = f"{entry['where']}, selection {j}"
                    for rid in self._resolve_item(item, available, where):
                        if rid in chosen and chosen[rid] != entry["config"]:
                            raise ValueError(
                                f"Dataset: recording '{rid}' is selected by {origin[rid]} and by {where} with "
                                "different configs; select each recording in one entry only."
                            )
                        chosen[rid] = entry["config"]
                        origin.setdefault(rid, where)
        if recording_ids is not None:
            wanted = _as_str_list(recording_ids, "recording_ids")
            missing = [r for r in wanted if r not in set(all_ids)]
            if missing:
                raise ValueError(
                    f"Dataset: recording_ids {missing[:10]} not found under {str(self.root)!r}; existing "
                    f"recording ids: {_short_list(all_ids)}."
                )
            chosen = {r: chosen[r] for r in wanted if r in chosen}
        if not chosen:
            raise ValueError(
                "Dataset: the selection is empty (config and recording_ids leave no recording); existing "
                f"recording ids: {_short_list(all_ids)}."
            )
        return chosen

    def _resolve_item(self, item: dict, available: dict[str, dict[str, Path]], where: str) -> list[str]:
        brainset = str(item["brainset"])
        if brainset not in available:
            raise ValueError(
                f"Dataset: {where}: brainset {brainset!r} not found under {str(self.root)!r}; existing "
                f"brainsets: {_short_list(sorted(available))}."
            )
        sessions_here = available[brainset]

        def names(key: str) -> list[str]:
            out = []
            for x in _as_str_list(item[key], f"{where}, {key!r}"):
                out.append(x[len(brainset) + 1 :] if x.startswith(brainset + "/") else x)
            return out

        def check(sessions: list[str], key: str) -> None:
            missing = [s for s in sessions if s not in sessions_here]
            if missing:
                raise ValueError(
                    f"Dataset: {where}: {key} {missing[:10]} not found in brainset {brainset!r} (no file "
                    f"{str(self.root / brainset / (missing[0] + '.h5'))!r}); existing sessions: "
                    f"{_short_list(sorted(sessions_here))}."
                )

        if "session" in item or "sessions" in item:
            sessions = []
            for key in ("session", "sessions"):
                if key in item:
                    sessions += names(key)
            check(sessions, "session(s)")
        else:
            sessions = sorted(sessions_here)
        if "exclude_sessions" in item:
            excluded = names("exclude_sessions")
            check(excluded, "exclude_sessions")
            sessions = [s for s in sessions if s not in set(excluded)]
        if "subject" in item or "subjects" in item or "exclude_subjects" in item:
            subject_of = {s: self._subject_of(sessions_here[s]) for s in sorted(sessions_here)}
            known = sorted(set(subject_of.values()))

            def subjects(key: str) -> list[str]:
                subs = names(key)
                missing = [x for x in subs if x not in known]
                if missing:
                    raise ValueError(
                        f"Dataset: {where}: {key} {missing[:10]} not found in brainset {brainset!r}; existing "
                        f"subjects: {_short_list(known)}."
                    )
                return subs

            if "subject" in item or "subjects" in item:
                keep = set()
                for key in ("subject", "subjects"):
                    if key in item:
                        keep |= set(subjects(key))
                sessions = [s for s in sessions if subject_of[s] in keep]
            if "exclude_subjects" in item:
                drop = set(subjects("exclude_subjects"))
                sessions = [s for s in sessions if subject_of[s] not in drop]
        return [f"{brainset}/{s}" for s in sessions]

    # ------------------------------------------------------------------ metadata
    def _read_metadata(self) -> None:
        for rec in self._recordings.values():
            try:
                with h5py.File(rec.path, "r") as f:
                    data = Data.from_hdf5(f, lazy=True)
                    self._read_one(rec, data)
            except (OSError, KeyError, TypeError, AttributeError) as err:
                raise _read_error(rec.path, err) from None
            except ValueError as err:
                if str(err).startswith("Dataset:"):
                    raise
                raise _read_error(rec.path, err) from None
        if self.split is not None:
            total = sum(len(r.sampling) for r in self._recordings.values())
            if total == 0:
                raise ValueError(
                    f"Dataset: split {self.split!r} has no intervals in any of the {len(self._recordings)} "
                    f"selected recording(s) (every {self.split}_domain is empty), so there is nothing to "
                    "sample; choose another split or re-prepare the data with a non-empty split."
                )

    def _read_one(self, rec: _Recording, data: Data) -> None:
        keys = data.keys()
        for needed in ("units", "subject"):
            if needed not in keys:
                raise ValueError(
                    f"Dataset: recording file {str(rec.path)!r} has no {needed!r} group (attributes: {keys}); "
                    "it is not in the brainset layout. Re-create it or move it out of the root."
                )
        rec.subject = f"{rec.brainset}/{_scalar_str(data.subject.id)}"
        local = np.asarray(data.units.id).astype(str)
        rec.unit_ids = np.char.add(f"{rec.rid}/", local) if local.size else local
        rec.domain = _eager_interval(data.domain) if data.domain is not None else None
        splits = {}
        for name in _SPLITS:
            key = f"{name}_domain"
            if key in keys:
                splits[name] = _eager_interval(getattr(data, key))
        names = list(splits)
        for a in range(len(names)):
            for b in range(a + 1, len(names)):
                overlap = splits[names[a]] & splits[names[b]]
                if len(overlap):
                    s0, e0 = float(overlap.start[0]), float(overlap.end[0])
                    total = float(np.sum(overlap.end - overlap.start))
                    raise ValueError(
                        f"Dataset: recording '{rec.rid}' ({str(rec.path)!r}) has overlapping "
                        f"{names[a]}_domain and {names[b]}_domain over [{s0:g}, {e0:g}) s "
                        f"({len(overlap)} overlapping span(s), {total:g} s in total): windows of one split "
                        "would leak into the other. Fix the split of this file (re-prepare it); refusing to "
                        "load. Nothing was modified on disk."
                    )
        if self.split is None:
            if rec.domain is None:
                raise ValueError(
                    f"Dataset: recording file {str(rec.path)!r} has no domain; pass split='train'/'valid'/'test'."
                )
            rec.sampling = rec.domain
        else:
            if self.split not in splits:
                raise ValueError(
                    f"Dataset: recording file {str(rec.path)!r} has no '{self.split}_domain' (attributes: {keys}); "
                    "use split=None to sample its whole domain, or re-prepare it with splits."
                )
            rec.sampling = splits[self.split]

    # ------------------------------------------------------------------ file handles
    def _open(self, rid: str) -> tuple[Any, Data]:
        rec = self._recordings[rid]
        try:
            f = h5py.File(rec.path, "r")
        except OSError as err:
            raise _read_error(rec.path, err) from None
        try:
            data = Data.from_hdf5(f, lazy=True)
            data = self._prepare(rec, data)
        except Exception:
            f.close()
            raise
        return f, data

    def _prepare(self, rec: _Recording, data: Data) -> Data:
        """Give the lazily opened recording its global ids and config (windows inherit them)."""
        units = data.units
        columns = {k: np.asarray(getattr(units, k)) for k in units.keys() if k != "id"}
        data.units = ArrayDict(id=rec.unit_ids, **columns)
        session = copy.copy(data.session) if "session" in data.keys() and isinstance(data.session, Data) else Data()
        session.id = rec.rid
        data.session = session
        subject = copy.copy(data.subject) if isinstance(data.subject, Data) else Data()
        subject.id = rec.subject
        data.subject = subject
        data.config = rec.config
        return data

    def _in_memory(self, rid: str) -> Data | None:
        """The recording read fully into memory, if it is (or now fits in the memory budget)."""
        if os.getpid() != self._pid:  # forked into a DataLoader worker: do not share HDF5 handles
            self._cache = OrderedDict()
            self._pid = os.getpid()
        data = self._memory.get(rid)
        if data is not None:
            return data
        rec = self._recordings[rid]
        size = rec.nbytes
        if self._memory_used + size > self.memory_budget:
            return None
        try:
            with h5py.File(rec.path, "r") as f:
                data = self._prepare(rec, Data.from_hdf5(f, lazy=False))
        except (OSError, KeyError) as err:
            raise _read_error(rec.path, err) from None
        self._memory[rid] = data
        self._memory_used += size
        return data

    def _recording(self, rid: str) -> Data:
        """The lazily opened, prepared recording (cached in an LRU when ``keep_files_open``)."""
        cache = self._cache
        hit = cache.get(rid)
        if hit is not None:
            cache.move_to_end(rid)
            return hit[1]
        f, data = self._open(rid)
        cache[rid] = (f, data)
        while len(cache) > self.max_open_files:
            _, (old, _) = cache.popitem(last=False)
            old.close()
        return data

    def close(self) -> None:
        """Close every file this dataset holds open."""
        for f, _ in self._cache.values():
            try:
                f.close()
            except Exception:  # pragma: no cover - already closed
                pass
        self._cache = OrderedDict()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()  # h5py handles do not pickle; reopen in the new process
        state["_memory"] = {}
        state["_memory_used"] = 0
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def __del__(self) -> None:
        try:
            if getattr(self, "_pid", None) == os.getpid():
                self.close()
        except Exception:  # pragma: no cover
            pass

    # ------------------------------------------------------------------ windows
    def _check_rid(self, recording_id: str) -> _Recording:
        rec = self._recordings.get(recording_id)
        if rec is None:
            raise ValueError(
                f"Dataset: recording_id {recording_id!r} is not in this dataset; its recordings are "
                f"{_short_list(list(self._recordings))}."
            )
        return rec

    def get(self, recording_id: str, start: float, end: float) -> Data:
        """The window ``[start, end)`` of a recording (times relative to ``start``), without transform.

        Args:
            recording_id: ``"<brainset>/<session>"``.
            start: window start, seconds (absolute time of the recording).
            end: window end, seconds.

        Returns:
            Data with ``absolute_start == start`` (see the class docstring for its fields).
        """
        if recording_id not in self._recordings:
            self._check_rid(recording_id)
        if not end > start:
            raise ValueError(f"Dataset.get: end must be > start, got start={start!r}, end={end!r}.")
        data = self._in_memory(recording_id)
        if data is not None:
            return data.slice(start, end)
        try:
            if self.keep_files_open:
                return self._recording(recording_id).slice(start, end).materialize()
            f, data = self._open(recording_id)
            try:
                return data.slice(start, end).materialize()
            finally:
                f.close()
        except OSError as err:  # a file damaged after the dataset was built
            raise _read_error(self._recordings[recording_id].path, err) from None

    def __getitem__(self, index: DatasetIndex | tuple[str, float, float]) -> Any:
        """``dataset[DatasetIndex(recording_id, start, end)]``: the window, with the transform applied."""
        try:
            recording_id, start, end = index
        except (TypeError, ValueError):
            raise TypeError(
                f"Dataset: index must be a DatasetIndex(recording_id, start, end) as yielded by the samplers "
                f"in torch_brain.data.sampler, got {index!r}; pass sampler=... to the DataLoader."
            ) from None
        window = self.get(recording_id, start, end)
        return window if self.transform is None else self.transform(window)

    # ------------------------------------------------------------------ metadata API
    def get_recording_data(self, recording_id: str) -> Data:
        """The whole recording with the same global ids/config as a window (lazily read).

        Recordings outside the memory budget are read lazily (``keep_files_open=True``) or fully
        into memory (``keep_files_open=False``).
        """
        self._check_rid(recording_id)
        data = self._in_memory(recording_id)
        if data is not None:
            return data
        if self.keep_files_open:
            return self._recording(recording_id)
        f, data = self._open(recording_id)
        try:
            return data.materialize()
        finally:
            f.close()

    def get_sampling_intervals(self) -> dict[str, Interval]:
        """``{recording_id: Interval}`` of the chosen split (the file's domain when ``split=None``)."""
        return {rid: rec.sampling for rid, rec in self._recordings.items()}

    def get_recording_ids(self) -> list[str]:
        """Sorted recording ids (``"<brainset>/<session>"``)."""
        return list(self._recordings)

    def get_session_ids(self) -> list[str]:
        """Sorted global session ids (= recording ids), as in ``window.session.id``."""
        return list(self._recordings)

    def get_unit_ids(self) -> list[str]:
        """Sorted global unit ids ``"<brainset>/<session>/<unit>"``, as in ``window.units.id``."""
        return sorted(u for rec in self._recordings.values() for u in rec.unit_ids.tolist())

    def get_subject_ids(self) -> list[str]:
        """Sorted unique global subject ids ``"<brainset>/<subject>"``."""
        return sorted({rec.subject for rec in self._recordings.values()})

    def get_config(self, recording_id: str) -> dict:
        """The config dict of a recording (what windows carry as ``data.config``)."""
        return self._check_rid(recording_id).config

    def __repr__(self) -> str:
        recs = list(self._recordings.values())
        brainsets = sorted({r.brainset for r in recs})
        n_units = sum(r.unit_ids.size for r in recs)
        seconds = sum(float(np.sum(r.sampling.end - r.sampling.start)) for r in recs)
        n_iv = sum(len(r.sampling) for r in recs)
        split = "whole domain" if self.split is None else f"split={self.split!r}"
        return (
            f"Dataset(root={str(self.root)!r}, {split}, {len(recs)} recording(s) from "
            f"{len(brainsets)} brainset(s) {brainsets}, {len(self.get_subject_ids())} subject(s), "
            f"{n_units} units, {n_iv} sampling interval(s) totalling {seconds:.1f} s, "
            f"transform={self.transform!r})"
        )


def _eager_interval(iv: Any) -> Interval:
    """An in-memory copy of an Interval's start/end (drops extra columns)."""
    start = np.array(iv.start, dtype=np.float64)
    end = np.array(iv.end, dtype=np.float64)
    return Interval(start, end)
