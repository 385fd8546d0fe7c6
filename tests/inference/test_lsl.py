"""LSLSpikeReader with a real loopback LSL outlet on this machine."""

import time
import uuid

import pytest
import torch

from tests.inference.conftest import SESSION, TASKS, recording
from torch_brain.inference import StreamingDecoder

pylsl = pytest.importorskip("pylsl")


def test_lsl_loopback_equals_direct_push(plus):
    from torch_brain.inference.lsl import LSLSpikeReader

    source = f"torch_brain-test-{uuid.uuid4().hex}"
    info = pylsl.StreamInfo("tb_spikes", "Spikes", 1, pylsl.IRREGULAR_RATE, "int32", source)
    outlet = pylsl.StreamOutlet(info)
    found = pylsl.resolve_byprop("source_id", source, 1, 5.0)
    if not found:
        pytest.skip("LSL could not resolve a loopback stream on this machine")
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(timeout=5.0)
    time.sleep(0.2)
    ts, units = recording(seconds=1.5, seed=4)
    for t, u in zip(ts, units):
        outlet.push_sample([int(u)], float(t))
    reader = LSLSpikeReader(StreamingDecoder(plus, SESSION, hop=0.1, max_lag=2.0), inlet)
    got = []
    deadline = time.time() + 10.0
    while (reader.decoder.now is None or reader.decoder.now < ts[-1]) and time.time() < deadline:
        got += reader.pump(timeout=0.2)
    assert reader.decoder.now == pytest.approx(ts[-1])
    direct = StreamingDecoder(plus, SESSION, hop=0.1, max_lag=2.0)
    direct.push(ts, units)
    want = direct.poll()
    assert [t for t, _ in got] == pytest.approx([t for t, _ in want])
    for (_, a), (_, b) in zip(got, want):
        for task in TASKS:
            torch.testing.assert_close(a[task], b[task], rtol=0, atol=1e-6)
