"""Replay a prepared recording through a StreamingDecoder; compare with the stitched offline predictions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torch_brain.inference._decoder import StreamingDecoder, load_model

__all__ = ["replay_recording", "stitched_offline"]


def stitched_offline(model: torch.nn.Module, recording: Any, times: np.ndarray, tasks: tuple[str, ...],
                     window_length: float, batch_size: int = 32) -> dict[str, np.ndarray]:
    """The offline evaluation's predictions at ``times``: overlapping windows, stitched.

    Windows of ``window_length`` start every ``window_length / 2`` seconds (the evaluation
    samplers' overlap); each predicts the ``times`` inside it and predictions of the same time
    are averaged (:func:`torch_brain.utils.stitcher.stitch`). Unlike streaming, these windows see
    spikes after the predicted time.

    Returns:
        ``{task: (len(times), dim_task)}`` float32.
    """
    from torch_brain.data import collate, pad8
    from torch_brain.utils.stitcher import stitch

    model = model.eval()
    step = window_length / 2
    starts = np.arange(times[0] - window_length + step, times[-1] + step, step)
    samples, stamps = [], []
    task_ids = {}
    if hasattr(model, "task_emb"):
        task_ids = {t: model.readout.readout_specs[t].id for t in tasks}
    for start in starts:
        inside = times[(times >= start) & (times < start + window_length)]
        if inside.size == 0:
            continue
        inputs, session_index = model._tokenize_inputs(recording.slice(start, start + window_length))
        q = np.tile((inside - start).astype(np.float32), len(tasks))
        inputs["output_session_index"] = pad8(np.full(q.size, session_index, dtype=np.int64))
        inputs["output_timestamps"] = pad8(q)
        if task_ids:
            inputs["output_decoder_index"] = pad8(np.repeat([task_ids[t] for t in tasks], inside.size))
        else:
            inputs["output_mask"] = pad8(np.ones(q.size, dtype=bool))
        samples.append(inputs)
        stamps.append(inside)
    preds: dict[str, list] = {t: [] for t in tasks}
    with torch.no_grad():
        for i in range(0, len(samples), batch_size):
            batch = collate(samples[i:i + batch_size])
            if not task_ids:
                batch["output_mask"] = batch["output_mask"].bool()
                preds[tasks[0]].append(model(**batch))
            else:
                out = model(**batch)
                for t in tasks:
                    preds[t].append(out[t])
    stamp = torch.from_numpy(np.concatenate(stamps))
    result = {}
    for t in tasks:
        uniq, pooled = stitch(stamp, torch.cat(preds[t]).float())
        if uniq.shape[0] != len(times):
            raise ValueError("stitched_offline: some times are covered by no window")
        result[t] = pooled.numpy()
    return result


def _agreement(streaming: np.ndarray, stitched: np.ndarray) -> dict[str, float]:
    diff = streaming - stitched
    denom = float(((stitched - stitched.mean(0)) ** 2).sum())
    corr = [float(np.corrcoef(streaming[:, j], stitched[:, j])[0, 1]) for j in range(stitched.shape[1])]
    return {
        "r2_streaming_vs_stitched": 1.0 - float((diff ** 2).sum()) / denom if denom > 0 else float("nan"),
        "pearson_mean": float(np.mean(corr)),
        "argmax_agreement": float(np.mean(streaming.argmax(1) == stitched.argmax(1))),
        "max_abs_diff": float(np.abs(diff).max()),
    }


def replay_recording(checkpoint: str | Path, data_root: str | Path, recording_id: str, *, start: float | None = None,
                     seconds: float = 10.0, hop: float = 0.02, chunk: float | None = None,
                     window_length: float | None = None, realtime: bool = False, busy_wait: bool = False,
                     compare: bool = True) -> dict[str, Any]:
    """Replay ``seconds`` of a prepared recording through a :class:`StreamingDecoder`.

    Spikes are pushed in chunks of ``chunk`` seconds (default ``hop``), as fast as possible or, with
    ``realtime=True``, each chunk when the wall clock reaches its end. After each push the decoder
    is polled; the time of push + poll per update is the latency.

    Args:
        checkpoint: checkpoint file or run directory.
        data_root: folder of prepared recordings (``<brainset>/<session>.h5``).
        recording_id: ``"<brainset>/<session>"`` (the session id the model knows).
        start: first update time (default: the recording's start + window length).
        seconds: replayed duration.
        busy_wait: with ``realtime``, wait for each chunk by polling the clock instead of sleeping. It keeps
            one core busy, and with it the update latency low on several threads (``docs/streaming.md``,
            "Real-time pacing").

    Returns:
        ``{"updates", "latency_ms": {p50, p90, p99, max}, "agreement": {task: {...}}, ...}``.
    """
    if busy_wait and not realtime:
        raise ValueError("busy_wait=True paces a real-time replay; pass realtime=True as well (or drop busy_wait).")
    from torch_brain.data import Dataset

    model = load_model(checkpoint)
    dataset = Dataset(data_root, recording_ids=[recording_id])
    rec = dataset.get_recording_data(recording_id)
    decoder = StreamingDecoder(model, recording_id, window_length=window_length, hop=hop)
    window = decoder.window_length
    spikes_t = np.asarray(rec.spikes.timestamps, dtype=np.float64)
    unit_ids = np.asarray(rec.units.id)[np.asarray(rec.spikes.unit_index)]
    t0_rec = float(np.min(rec.domain.start))
    begin = t0_rec + window if start is None else float(start)
    begin = np.ceil(begin / hop - 1e-9) * hop  # updates sit at multiples of hop
    end = min(begin + seconds, float(np.max(rec.domain.end)))
    if not end > begin:
        raise ValueError(f"stream: nothing to replay: the segment [{begin}, {end}) is empty; pass an earlier --start.")
    chunk = hop if chunk is None else float(chunk)
    i = int(np.searchsorted(spikes_t, begin - window, side="left"))
    j = int(np.searchsorted(spikes_t, begin - hop, side="left"))
    decoder.push(spikes_t[i:j], unit_ids[i:j], until=begin - hop)  # history before the first update
    decoder.poll()
    latencies, times, outputs = [], [], {t: [] for t in decoder.tasks}
    wall0, edge = time.perf_counter(), begin - hop
    while edge < end - 1e-12:
        nxt = min(edge + chunk, end)
        k = int(np.searchsorted(spikes_t, nxt, side="left"))
        if realtime:
            due = wall0 + (nxt - begin)
            while time.perf_counter() < due:
                if not busy_wait:
                    time.sleep(max(due - time.perf_counter(), 0.0))
        t_start = time.perf_counter()
        decoder.push(spikes_t[j:k], unit_ids[j:k], until=nxt)
        got = decoder.poll()
        elapsed = time.perf_counter() - t_start
        got = [(t, out) for t, out in got if begin - 1e-9 <= t < end - 1e-9]  # updates of [begin, end)
        if got:
            latencies.append(1e3 * elapsed / len(got))
        for t, out in got:
            times.append(t)
            for task, value in out.items():
                outputs[task].append(value.numpy())
        j, edge = k, nxt
    lat = np.asarray(latencies)
    result: dict[str, Any] = {
        "recording_id": recording_id, "updates": len(times), "hop_s": hop, "chunk_s": chunk,
        "window_s": window, "realtime": realtime, "busy_wait": busy_wait, "segment": [begin, end],
        "latency_ms": {f"p{q}": float(np.percentile(lat, q)) for q in (50, 90, 99)} | {"max": float(lat.max())},
        "torch_threads": torch.get_num_threads(),
    }
    if compare and times:
        stitched = stitched_offline(model, rec, np.asarray(times), decoder.tasks, window)
        result["agreement"] = {t: _agreement(np.stack(outputs[t]), stitched[t]) for t in decoder.tasks}
    return result
