"""Hand-built windows and tiny model configurations for the model tests."""

import numpy as np
import pytest

from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, RegularTimeSeries

TINY = dict(sequence_length=1.0, latent_step=0.25, num_latents_per_step=2, dim=16, depth=1, dim_head=8,
            cross_heads=1, self_heads=2, ffn_dropout=0.0, lin_dropout=0.0, atn_dropout=0.0)
UNITS = ["pad/unused"] + [f"bs/s{j}/u{i}" for j in range(2) for i in range(4)]
SESSIONS = ["bs/s0", "bs/s1"]


def make_window(session="bs/s0", n_spikes=30, seed=0, n_units=4, tasks=("cursor_velocity_2d", "reach_direction")):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(0, 1, n_spikes))
    d = Data(
        units=ArrayDict(id=np.array([f"{session}/u{i}" for i in range(n_units)])),
        spikes=IrregularTimeSeries(ts, unit_index=rng.integers(0, n_units, n_spikes), domain=Interval(0.0, 1.0)),
        cursor=RegularTimeSeries(sampling_rate=10.0, vel=rng.normal(size=(10, 2)),
                                 pos=rng.normal(size=(10, 2)), domain=Interval(0.0, 1.0)),
        reach_direction=IrregularTimeSeries(np.array([0.25, 0.75]), direction_id=rng.integers(0, 8, 2),
                                            domain=Interval(0.0, 1.0)),
        session=Data(id=session),
        domain=Interval(0.0, 1.0),
    )
    d.config = {"multitask_readout": [{"readout_id": t} for t in tasks]}
    return d


def init_vocab(model):
    model.unit_emb.initialize_vocab(UNITS)
    model.session_emb.initialize_vocab(SESSIONS)
    return model


@pytest.fixture
def tiny():
    return dict(TINY)
