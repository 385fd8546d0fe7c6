"""Dataset over a real recording prepared by torch_brain.brainsets (skipped without ../shared)."""

import numpy as np
import pytest

from torch_brain.data import Dataset
from torch_brain.data.sampler import DistributedStitchingFixedWindowSampler, RandomFixedWindowSampler


@pytest.mark.real_data
def test_real_recording_windows(real_data_dir, tmp_path):
    from torch_brain.brainsets import prepare

    prepare("nelpy_hippocampus", tmp_path, progress=False)
    splits = {s: Dataset(tmp_path, split=s) for s in ("train", "valid", "test")}
    (rid,) = splits["train"].get_session_ids()
    full = splits["train"].get_recording_data(rid)
    # splits are disjoint (the Dataset refuses overlaps) and windows match a naive slice
    ds = splits["train"]
    sampler = RandomFixedWindowSampler(ds.get_sampling_intervals(), window_length=1.0, generator=0)
    ts_all = np.asarray(full.spikes.timestamps)
    for idx in list(sampler)[:50]:
        w = ds[idx]
        mask = (ts_all >= idx.start) & (ts_all < idx.end)
        assert np.allclose(w.spikes.timestamps, ts_all[mask] - idx.start)
        assert w.session.id == rid and w.units.id[0].startswith(rid + "/")
    val = splits["valid"]
    s = DistributedStitchingFixedWindowSampler(val.get_sampling_intervals(), 1.0, step=0.5, num_replicas=2, rank=0,
                                               drop_short=True)
    assert len(s) + len(DistributedStitchingFixedWindowSampler(
        val.get_sampling_intervals(), 1.0, step=0.5, num_replicas=2, rank=1, drop_short=True)) > 0
