"""A tiny trained-shape POYO+ and a synthetic recording for the streaming tests."""

import numpy as np
import pytest
import torch

from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, collate, pad8
from torch_brain.models import POYO, POYOPlus

TINY = dict(sequence_length=1.0, latent_step=0.25, num_latents_per_step=2, dim=16, depth=1, dim_head=8,
            cross_heads=1, self_heads=2, ffn_dropout=0.2, lin_dropout=0.2, atn_dropout=0.0,
            emb_init_scale=1.0)  # large embeddings: every spike visibly moves the output
SESSION = "bs/s0"
N_UNITS = 6
TASKS = ["cursor_velocity_2d", "reach_direction"]


def vocab(model):
    model.unit_emb.initialize_vocab([f"bs/s{j}/u{i}" for j in range(2) for i in range(N_UNITS)])
    model.session_emb.initialize_vocab(["bs/s0", "bs/s1"])
    return model


@pytest.fixture(scope="module")
def plus():
    torch.manual_seed(0)
    return vocab(POYOPlus(**TINY, readout_specs=TASKS))


@pytest.fixture(scope="module")
def poyo():
    torch.manual_seed(1)
    return vocab(POYO(**TINY))


def recording(seconds=6.0, rate=15.0, seed=0):
    """Spikes of the session's units over [0, seconds) (absolute times, float64)."""
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate * N_UNITS * seconds)
    ts = np.sort(rng.uniform(0, seconds, n)) + 1000.0  # a clock that does not start at 0
    return ts, rng.integers(0, N_UNITS, n)


def offline(model, ts, units, query_times, window_length, tasks=None):
    """The offline path: slice the recording with Data.slice, tokenize with the model, one batch forward."""
    rec = Data(
        units=ArrayDict(id=np.array([f"{SESSION}/u{i}" for i in range(N_UNITS)])),
        spikes=IrregularTimeSeries(ts, unit_index=units, domain=Interval(0.0, 1e6)),
        session=Data(id=SESSION),
        domain=Interval(0.0, 1e6),
    )
    model = model.eval()
    specs = getattr(model, "readout", None)
    samples = []
    for t in query_times:
        window = rec.slice(t - window_length, t)
        inputs, session_index = model._tokenize_inputs(window)
        end = np.float32(window.domain.end[-1])
        if isinstance(model, POYOPlus):
            ids = [specs.readout_specs[name].id for name in (tasks or TASKS)]
            inputs["output_decoder_index"] = pad8(np.array(ids, dtype=np.int64))
        else:
            ids = [0]
            inputs["output_mask"] = pad8(np.ones(1, dtype=bool))
        inputs["output_session_index"] = pad8(np.full(len(ids), session_index, dtype=np.int64))
        inputs["output_timestamps"] = pad8(np.full(len(ids), end, dtype=np.float32))
        samples.append(inputs)
    batch = collate(samples)
    if isinstance(model, POYO):
        batch["output_mask"] = batch["output_mask"].bool()
    with torch.no_grad():
        out = model(**batch)
    if isinstance(model, POYO):
        return {model.readout_spec.name: out}
    return out
