"""StreamingDecoder: push spikes as they arrive, read the newest behaviour estimate."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torch_brain.inference._core import StreamingCore, export_core

__all__ = ["StreamingDecoder", "load_model"]

_UNKNOWN_UNITS = ("raise", "drop")


def _checkpoint_of(path: Path) -> Path:
    """A checkpoint file, or the best (else last) checkpoint of a run directory."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(
            f"StreamingDecoder: {str(path)!r} is neither a checkpoint file nor a run directory."
        )
    summary = path / "summary.json"
    if summary.is_file():
        best = json.loads(summary.read_text()).get("best_checkpoint")
        if best and Path(best).is_file():
            return Path(best)
    last = path / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    raise FileNotFoundError(
        f"StreamingDecoder: the run directory {str(path)!r} has no summary.json best_checkpoint and no "
        "checkpoints/last.ckpt; train first (`torch-brain fit`) or pass a checkpoint file."
    )


def load_model(path: str | Path) -> nn.Module:
    """A POYO or POYOPlus from a checkpoint file or a run directory (its best, else last, checkpoint).

    The class is the one recorded in the checkpoint (POYOPlus if none is recorded).
    """
    from torch_brain.models import POYO, POYOPlus
    from torch_brain.models._transfer import _find_hparams, _find_state_dict, _read_checkpoint

    ckpt_path = _checkpoint_of(Path(path))
    ckpt = _read_checkpoint(ckpt_path, "cpu", True)
    full, prefix = _find_state_dict(ckpt, ckpt_path)
    state = {k[len(prefix):]: v for k, v in full.items() if isinstance(k, str) and k.startswith(prefix)}
    _, saved_class = _find_hparams(ckpt, state, POYOPlus)
    cls = POYO if saved_class == "POYO" else POYOPlus
    return cls.load_pretrained(ckpt_path)


class StreamingDecoder:
    """Causal real-time decoding with a trained POYO / POYO+ for one session.

    Spikes are pushed as they arrive (:meth:`push`, any chunk size, on the recording's clock in
    seconds). :meth:`decode` returns the estimate of every task at time ``t`` computed from the
    spikes in the causal window ``[t - window_length, t)`` only -- the same half-open window
    ``Dataset.get(recording_id, t - window_length, t)`` returns -- with the model's output query at
    the window end. The result equals the offline model applied to that window (see
    ``docs/streaming.md``), whatever the chunking of the pushes.

    Args:
        model: a trained POYO or POYOPlus (it is copied in evaluation mode; the original is not
            modified), or a checkpoint file / run directory (see :func:`load_model`).
        session_id: the session's id in ``model.session_emb`` (e.g. ``"brainset/session"``).
        window_length: causal window in seconds (default: the model's ``sequence_length``; at most it).
        hop: spacing in seconds of the update times :meth:`poll` reports (multiples of ``hop`` on
            the recording clock).
        device: where the model runs.
        unit_ids: the session's units in ``model.unit_emb`` (default: every vocabulary id starting
            with ``session_id + "/"``, as ``Dataset`` names them). Every window gets a start and
            end token for each of them, as offline.
        tasks: tasks to decode (POYO+: default every task of ``model.readout.readout_specs``).
        unknown_units: ``"raise"`` (default): a push with a unit id that is not one of
            ``unit_ids`` raises and pushes nothing; ``"drop"``: such spikes are dropped, counted in
            :attr:`dropped_spikes` and warned about once.
        max_lag: how far behind the newest pushed time :meth:`decode` may look, in seconds
            (default ``window_length``); spikes older than ``newest - window_length - max_lag``
            are discarded, which bounds the memory by the window.

    Note:
        One decoder serves one stream from one thread at a time (its core reuses scratch tensors
        between updates); decode concurrent streams with one decoder each.

    Example:
        >>> dec = StreamingDecoder(model, "synthetic/s0", hop=0.02)  # doctest: +SKIP
        >>> dec.push(timestamps, unit_ids)  # doctest: +SKIP
        >>> for t, estimate in dec.poll():  # every 20 ms of pushed time  # doctest: +SKIP
        ...     send(estimate["cursor_velocity_2d"])
    """

    def __init__(self, model: nn.Module | str | Path, session_id: str, *, window_length: float | None = None,
                 hop: float = 0.02, device: str | torch.device = "cpu", unit_ids: Sequence[str] | None = None,
                 tasks: Sequence[str] | None = None, unknown_units: str = "raise",
                 max_lag: float | None = None) -> None:
        if isinstance(model, (str, Path)):
            model = load_model(model)
        if not hasattr(model, "enc_atn") or not hasattr(model, "session_emb"):
            raise TypeError(f"StreamingDecoder: model must be a POYO or POYOPlus, but got {type(model).__name__}.")
        model._check_vocabs()
        vocab = model.session_emb.vocab
        if session_id not in vocab:
            raise ValueError(
                f"StreamingDecoder: session_id {session_id!r} is not in the model's session vocabulary "
                f"({len(vocab)} ids, e.g. {list(vocab)[:5]}); pass one of them, or extend_vocab and fine-tune "
                "for a new session."
            )
        seq = float(model.sequence_length)
        window_length = seq if window_length is None else window_length
        _check_seconds("window_length", window_length)
        if window_length > seq + 1e-9:
            raise ValueError(
                f"StreamingDecoder: window_length must be at most the model's sequence_length ({seq:g} s), "
                f"but got {window_length!r}."
            )
        _check_seconds("hop", hop)
        max_lag = float(window_length) if max_lag is None else max_lag
        _check_seconds("max_lag", max_lag)
        if unknown_units not in _UNKNOWN_UNITS:
            raise ValueError(f"StreamingDecoder: unknown_units must be one of {_UNKNOWN_UNITS}, but got {unknown_units!r}.")
        self.session_id = session_id
        self.window_length = float(window_length)
        self.hop = float(hop)
        self.max_lag = float(max_lag)
        self.unknown_units = unknown_units
        self.unit_ids = self._session_units(model, session_id, unit_ids)
        self.tasks = self._tasks(model, tasks)
        self.device = torch.device(device)
        rows = model.unit_emb.tokenizer(self.unit_ids)
        self.core = StreamingCore(model, int(vocab[session_id]), rows.tolist(), self.tasks).to(self.device)
        self._unit_position = {u: i for i, u in enumerate(self.unit_ids)}
        self._local_names = {u[len(session_id) + 1:]: i for i, u in enumerate(self.unit_ids)
                             if u.startswith(session_id + "/")}
        self.reset()

    # ------------------------------------------------------------------ setup helpers
    @staticmethod
    def _session_units(model: nn.Module, session_id: str, unit_ids: Sequence[str] | None) -> list[str]:
        if unit_ids is None:
            prefix = session_id + "/"
            units = [u for u in model.unit_emb.vocab if u.startswith(prefix)]
            if not units:
                raise ValueError(
                    f"StreamingDecoder: no unit of the model's vocabulary starts with {prefix!r}; pass the "
                    "session's units as unit_ids=[...] (the ids of window.units.id)."
                )
            return units
        units = [str(u) for u in unit_ids]
        model.unit_emb.tokenizer(units)  # raises, naming the ids, for units not in the vocabulary
        if len(set(units)) != len(units):
            raise ValueError("StreamingDecoder: unit_ids holds duplicates; give each unit once.")
        return units

    @staticmethod
    def _tasks(model: nn.Module, tasks: Sequence[str] | None) -> tuple[str, ...]:
        if hasattr(model, "task_emb"):
            known = list(model.readout.readout_specs)
        else:
            known = [model.readout_spec.name]
        if tasks is None:
            return tuple(known)
        bad = [t for t in tasks if t not in known]
        if bad or not tasks:
            raise ValueError(f"StreamingDecoder: tasks must be a non-empty subset of {known}, but got {list(tasks)!r}.")
        return tuple(tasks)

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every pushed spike and the clock (the model part is kept)."""
        self._times = np.empty(1024, dtype=np.float64)
        self._units = np.empty(1024, dtype=np.int64)
        self._lo = self._hi = 0  # live spikes are _times[_lo:_hi]
        self._now: float | None = None
        self._next_update: int | None = None  # index k of the next poll time k * hop
        self.dropped_spikes = 0
        self.skipped_updates = 0
        self._warned = False

    @property
    def now(self) -> float | None:
        """The newest pushed time (``until`` of the last push), or None before any push."""
        return self._now

    @property
    def buffered_spikes(self) -> int:
        """Number of spikes held (bounded by the spikes of ``window_length + max_lag`` seconds)."""
        return self._hi - self._lo

    def push(self, timestamps: Iterable[float], unit_ids: Iterable[Any], until: float | None = None) -> None:
        """Append a chunk of spikes.

        Args:
            timestamps: (n,) spike times in seconds on the recording's clock; any order within the
                chunk (it is sorted), but none earlier than the previous push's ``until``.
            unit_ids: (n,) the spikes' units: ids of ``unit_ids`` (global ``"brainset/session/unit"``
                or the part after ``session_id + "/"``), or integer positions into ``unit_ids``.
            until: the chunk covers the time up to ``until`` (default: its last spike time; for an
                empty chunk, required). Later pushes may not have spikes before it.

        Raises:
            ValueError: NaN/infinite times, times earlier than the previous ``until``, lengths that
                differ, unknown units (with ``unknown_units="raise"``), ``until`` before the chunk's
                last spike. Nothing is pushed when it raises.
        """
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        units = self._unit_positions(unit_ids, ts.shape[0])
        if ts.size and not np.isfinite(ts).all():
            bad = ts[~np.isfinite(ts)]
            raise ValueError(f"push: timestamps must be finite seconds, but got {bad[:5].tolist()}; nothing was pushed.")
        newest = float(ts.max()) if ts.size else None
        if until is None:
            if newest is None:
                raise ValueError("push: an empty chunk needs until=<time it covers up to>; nothing was pushed.")
            until = newest
        until = float(until)
        if not math.isfinite(until) or (newest is not None and until < newest):
            raise ValueError(f"push: until must be finite and >= the chunk's last spike ({newest}), but got {until!r}.")
        if self._now is not None and (until < self._now or (ts.size and float(ts.min()) < self._now)):
            first = float(ts.min()) if ts.size else until
            raise ValueError(
                f"push: time went backwards: the chunk starts at {first!r} s but earlier pushes already covered up "
                f"to {self._now!r} s; push spikes in time order (call reset() to start a new stream). "
                "Nothing was pushed."
            )
        if units is None:  # dropped unknown units
            units, keep = self._drop_unknown(unit_ids)
            ts = ts[keep]
        order = np.argsort(ts, kind="stable")
        self._append(ts[order], units[order])
        self._now = until
        if self._next_update is None:
            first = ts.min() if ts.size else until
            self._next_update = int(math.ceil(first / self.hop - 1e-9))
        self._forget(until - self.window_length - self.max_lag)

    def _unit_positions(self, unit_ids: Iterable[Any], n: int) -> np.ndarray | None:
        arr = np.asarray(unit_ids).reshape(-1)
        if arr.shape[0] != n:
            raise ValueError(f"push: timestamps and unit_ids must have the same length, but got {n} and {arr.shape[0]}.")
        if n == 0:
            return np.empty(0, dtype=np.int64)
        if arr.dtype.kind in "iu":
            bad = (arr < 0) | (arr >= len(self.unit_ids))
            if bad.any():
                if self.unknown_units == "drop":
                    return None
                raise ValueError(
                    f"push: integer unit_ids are positions into decoder.unit_ids (0..{len(self.unit_ids) - 1}), "
                    f"but got {np.unique(arr[bad])[:5].tolist()}; nothing was pushed."
                )
            return arr.astype(np.int64)
        if arr.dtype.kind not in "UOS":
            raise TypeError(f"push: unit_ids must be str ids or int positions, but got dtype {arr.dtype}.")
        pos = self._unit_position
        local = self._local_names
        try:
            return np.fromiter((pos[u] if u in pos else local[u] for u in arr.tolist()), dtype=np.int64, count=n)
        except KeyError:
            if self.unknown_units == "drop":
                return None
            unknown = sorted({u for u in arr.tolist() if u not in pos and u not in local})
            raise ValueError(
                f"push: {len(unknown)} unit id(s) are not units of session {self.session_id!r}, e.g. {unknown[:5]}; "
                "nothing was pushed. Pass unknown_units='drop' to drop such spikes, or unit_ids=[...] to list the "
                "session's units."
            ) from None

    def _drop_unknown(self, unit_ids: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
        arr = np.asarray(unit_ids).reshape(-1)
        if arr.dtype.kind in "iu":
            keep = (arr >= 0) & (arr < len(self.unit_ids))
            units = arr[keep].astype(np.int64)
        else:
            names = arr.tolist()
            found = [self._unit_position.get(u, self._local_names.get(u, -1)) for u in names]
            units = np.asarray(found, dtype=np.int64)
            keep = units >= 0
            units = units[keep]
        n_bad = int((~keep).sum())
        self.dropped_spikes += n_bad
        if not self._warned:
            warnings.warn(
                f"StreamingDecoder: dropped {n_bad} spike(s) of units that are not units of session "
                f"{self.session_id!r}; later drops are only counted (decoder.dropped_spikes).",
                stacklevel=3,
            )
            self._warned = True
        return units, keep

    def _append(self, ts: np.ndarray, units: np.ndarray) -> None:
        n = ts.shape[0]
        if self._hi + n > self._times.shape[0]:
            live = self._hi - self._lo
            cap = self._times.shape[0]
            while live + n > cap:
                cap *= 2
            times, unit_arr = np.empty(cap, dtype=np.float64), np.empty(cap, dtype=np.int64)
            times[:live], unit_arr[:live] = self._times[self._lo:self._hi], self._units[self._lo:self._hi]
            self._times, self._units, self._lo, self._hi = times, unit_arr, 0, live
        self._times[self._hi:self._hi + n] = ts
        self._units[self._hi:self._hi + n] = units
        self._hi += n

    def _forget(self, before: float) -> None:
        live = self._times[self._lo:self._hi]
        self._lo += int(live.searchsorted(before, side="left"))

    # ------------------------------------------------------------------ decoding
    def window_inputs(self, t: float) -> tuple[Tensor, Tensor, Tensor]:
        """The core's inputs for the window ``[t - window_length, t)``: relative spike times, units, end time."""
        start = t - self.window_length
        live = self._times[self._lo:self._hi]
        i0 = int(live.searchsorted(start, side="left"))
        i1 = int(live.searchsorted(t, side="left"))
        rel = (live[i0:i1] - start).astype(np.float32)  # what Data.slice + tokenize give the model
        units = self._units[self._lo + i0:self._lo + i1]
        end = np.asarray([t - start], dtype=np.float32)
        dev = self.device
        return torch.from_numpy(rel).to(dev), torch.from_numpy(units.copy()).to(dev), torch.from_numpy(end).to(dev)

    def decode(self, t: float | None = None) -> dict[str, Tensor]:
        """The estimate of every task at time ``t`` (default: the newest pushed time).

        Uses only the spikes with ``t - window_length <= time < t``; a window without spikes gives
        the model's output for an empty window (start/end tokens only), as offline.

        Returns:
            ``{task: (dim_task,) tensor}`` (MULTINOMIAL tasks: logits).

        Raises:
            ValueError: nothing pushed yet and no ``t``; ``t`` later than the newest pushed time
                (push up to it first, with ``until=`` if no spike came); ``t`` more than ``max_lag``
                before it (those spikes are forgotten); ``t`` not finite.
        """
        if t is None:
            if self._now is None:
                raise ValueError("decode: nothing has been pushed yet; push spikes (or push([], [], until=t)) first, "
                                 "or pass t.")
            t = self._now
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"decode: t must be a finite time in seconds, but got {t!r}.")
        if self._now is None or t > self._now:
            raise ValueError(
                f"decode: t={t!r} is after the newest pushed time ({self._now!r}); spikes up to t may still come, so "
                "push them first (push([], [], until=t) if there were none)."
            )
        if t < self._now - self.max_lag - 1e-9:
            raise ValueError(
                f"decode: t={t!r} is more than max_lag={self.max_lag:g} s before the newest pushed time "
                f"({self._now!r}); its spikes are forgotten. Decode sooner, or build the decoder with a larger max_lag."
            )
        with torch.inference_mode():
            out = self.core(*self.window_inputs(t))
        return dict(zip(self.tasks, out))

    def poll(self) -> list[tuple[float, dict[str, Tensor]]]:
        """Decode every update time ``k * hop`` reached by the pushes since the last poll.

        Returns:
            ``[(t, {task: (dim_task,) tensor}), ...]`` in time order (empty if no update time was
            reached). The first update is the first multiple of ``hop`` at or after the first push.
            Update times more than ``max_lag`` behind the newest pushed time cannot be decoded any
            more (their spikes are forgotten): they are skipped with a warning and counted in
            :attr:`skipped_updates`.
        """
        if self._now is None:
            return []
        out = []
        k = self._next_update
        # update times that fell out of the history (a long gap between polls) are skipped
        oldest = int(math.ceil((self._now - self.max_lag) / self.hop - 1e-9))
        if oldest > k:
            self.skipped_updates += oldest - k
            warnings.warn(
                f"StreamingDecoder.poll: {oldest - k} update time(s) fell more than max_lag={self.max_lag:g} s behind "
                "the newest pushed time and were skipped (decoder.skipped_updates counts them); poll after every "
                "push, push shorter chunks, or build the decoder with a larger max_lag.",
                stacklevel=2,
            )
            k = oldest
        while k * self.hop <= self._now:
            t = k * self.hop
            out.append((t, self.decode(t)))
            k += 1
        self._next_update = k
        return out

    def export(self, path: str | Path | None = None) -> torch.export.ExportedProgram:
        """``torch.export`` the model part (see :func:`~torch_brain.inference.export_core`)."""
        return export_core(self.core, None if path is None else str(path))


def _check_seconds(name: str, value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise ValueError(f"StreamingDecoder: {name} must be a positive number of seconds, but got {value!r}.")
