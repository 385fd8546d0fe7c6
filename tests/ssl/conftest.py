"""Hand-built windows for the pretraining tests."""

import numpy as np

from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, RegularTimeSeries

TINY_ENCODER = dict(sequence_length=1.0, latent_step=0.25, num_latents_per_step=2, dim=16, depth=1, dim_head=8,
                    cross_heads=1, self_heads=2)


def spike_window(session="bs/s0", n_units=6, n_spikes=80, seed=0, lfp=False):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(0, 1, n_spikes))
    fields = dict(
        units=ArrayDict(id=np.array([f"{session}/u{i}" for i in range(n_units)])),
        spikes=IrregularTimeSeries(ts, unit_index=rng.integers(0, n_units, n_spikes), domain=Interval(0.0, 1.0)),
        session=Data(id=session),
        domain=Interval(0.0, 1.0),
    )
    if lfp:
        fields["lfp"] = RegularTimeSeries(sampling_rate=200.0, signal=rng.normal(size=(200, 2)).astype(np.float32),
                                          domain=Interval(0.0, 1.0))
    return Data(**fields)


def poyo_encoder(sessions=("bs/s0", "bs/s1"), n_units=6):
    from torch_brain.ssl import create_encoder

    enc = create_encoder("poyo", **TINY_ENCODER)
    enc.unit_emb.initialize_vocab([f"{s}/u{i}" for s in sessions for i in range(n_units)])
    enc.session_emb.initialize_vocab(list(sessions))
    return enc
