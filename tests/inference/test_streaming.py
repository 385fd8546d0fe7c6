"""StreamingDecoder against the offline model (Data.slice + model tokenizer + batched forward)."""

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.inference.conftest import N_UNITS, SESSION, TASKS, TINY, offline, recording, vocab
from torch_brain.inference import StreamingDecoder
from torch_brain.models import POYOPlus


def replay(decoder, ts, units, chunk):
    """Push ``chunk`` spikes at a time, polling after each push; returns [(t, outputs)]."""
    got = []
    for i in range(0, len(ts), chunk):
        decoder.push(ts[i:i + chunk], units[i:i + chunk])
        got += decoder.poll()
    return got


def stacked(got, task):
    return torch.stack([out[task] for _, out in got])


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.sampled_from([1, 3, 17, 64, 500]), hop=st.sampled_from([0.02, 0.05, 0.13]),
       window_length=st.sampled_from([1.0, 0.5]))
def test_equals_offline_whatever_the_chunking(plus, chunk, hop, window_length):
    ts, units = recording(seconds=2.0)
    # max_lag covers the longest chunk (500 spikes, ~5.5 s), so that no update is skipped
    dec = StreamingDecoder(plus, SESSION, hop=hop, window_length=window_length, max_lag=8.0)
    got = replay(dec, ts, units, chunk)
    times = np.array([t for t, _ in got])
    # one update per multiple of hop from the first spike to the last
    expected = np.arange(np.ceil(ts[0] / hop - 1e-9), np.floor(ts[-1] / hop + 1e-9) + 1) * hop
    np.testing.assert_allclose(times, expected, rtol=0, atol=1e-9)
    ref = offline(plus, ts, units, times, window_length)
    for task in TASKS:
        torch.testing.assert_close(stacked(got, task), ref[task], rtol=0, atol=1e-5)


def test_poyo_equals_offline(poyo):
    ts, units = recording(seconds=2.5, seed=3)
    got = replay(StreamingDecoder(poyo, SESSION, hop=0.04), ts, units, chunk=11)
    ref = offline(poyo, ts, units, [t for t, _ in got], 1.0)
    name = poyo.readout_spec.name
    torch.testing.assert_close(stacked(got, name), ref[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("dim_head, cross_heads, self_heads", [(7, 2, 3), (10, 1, 2)])
def test_other_head_shapes_equal_offline(dim_head, cross_heads, self_heads):
    """Odd head sizes (padded with a zero feature), several cross heads, a rotated half that is not Dh/2."""
    torch.manual_seed(4)
    model = vocab(POYOPlus(**{**TINY, "dim_head": dim_head, "cross_heads": cross_heads, "self_heads": self_heads,
                              "depth": 2}, readout_specs=TASKS))
    ts, units = recording(seconds=2.0, seed=7)
    got = replay(StreamingDecoder(model, SESSION, hop=0.05), ts, units, chunk=9)
    ref = offline(model, ts, units, [t for t, _ in got], 1.0)
    for task in TASKS:
        torch.testing.assert_close(stacked(got, task), ref[task], rtol=0, atol=1e-5)


def test_other_value_rotations_equal_offline():
    """The core follows each attention layer's rotate_value, not the defaults POYO builds with."""
    torch.manual_seed(5)
    model = vocab(POYOPlus(**TINY, readout_specs=TASKS))
    model.enc_atn.rotate_value = False
    model.proc_layers[0][0].rotate_value = False
    model.dec_atn.rotate_value = True
    ts, units = recording(seconds=2.0, seed=8)
    got = replay(StreamingDecoder(model, SESSION, hop=0.05), ts, units, chunk=13)
    ref = offline(model, ts, units, [t for t, _ in got], 1.0)
    for task in TASKS:
        torch.testing.assert_close(stacked(got, task), ref[task], rtol=0, atol=1e-5)


def test_string_unit_ids_and_decode_between_updates(plus):
    ts, units = recording(seconds=2.0, seed=5)
    dec = StreamingDecoder(plus, SESSION)
    names = np.array([f"u{u}" if i % 2 else f"{SESSION}/u{u}" for i, u in enumerate(units)])  # local and global
    dec.push(ts, names)
    t = float(ts[-1]) - 0.3337
    ref = offline(plus, ts, units, [t], 1.0)
    for task in TASKS:
        torch.testing.assert_close(dec.decode(t)[task], ref[task][0], rtol=0, atol=1e-5)


def test_causal_spikes_after_t_do_not_matter(plus):
    ts, units = recording(seconds=3.0, seed=1)
    t = 1001.5
    past = ts < t
    a = StreamingDecoder(plus, SESSION)
    a.push(ts[past], units[past], until=t)
    rng = np.random.default_rng(9)
    b = StreamingDecoder(plus, SESSION)
    b.push(ts[past], units[past], until=t)  # the same past, then a different future, pushed before decoding
    future = np.sort(rng.uniform(t, t + 0.7, 40))
    b.push(np.concatenate([[t], future]), rng.integers(0, N_UNITS, 41))  # a spike exactly at t too
    out_a, out_b = a.decode(t), b.decode(t)
    for task in TASKS:
        assert torch.equal(out_a[task], out_b[task])
    # the same change inside the window does move the output (the check above can fail)
    moved = units.copy()
    inside = np.flatnonzero(past & (ts >= t - 0.5))[:5]
    moved[inside] = (moved[inside] + 1) % N_UNITS
    c = StreamingDecoder(plus, SESSION)
    c.push(ts[past], moved[past], until=t)
    assert not torch.allclose(c.decode(t)["cursor_velocity_2d"], out_a["cursor_velocity_2d"], atol=1e-4)


def test_memory_bounded_over_a_long_replay(plus):
    rng = np.random.default_rng(2)
    dec = StreamingDecoder(plus, SESSION, hop=3.0)
    rate = 20.0 * N_UNITS
    peak = 0
    for k in range(300):  # 5 minutes of 1 s chunks
        n = rng.poisson(rate)
        dec.push(np.sort(rng.uniform(k, k + 1, n)), rng.integers(0, N_UNITS, n), until=k + 1.0)
        dec.poll()
        peak = max(peak, dec.buffered_spikes)
    # window_length + max_lag = 2 s of spikes (plus the chunk being pushed), never the whole history
    assert peak <= 3.5 * rate
    assert dec._times.shape[0] <= max(1024, 8 * rate)  # the arrays stop growing too


def test_updates_out_of_history_are_skipped_with_a_warning(plus):
    dec = StreamingDecoder(plus, SESSION, hop=0.1, max_lag=0.5)
    dec.push([10.0], [0])
    dec.push([11.0], [1])
    with pytest.warns(UserWarning, match="skipped"):
        got = dec.poll()
    assert dec.skipped_updates == 5  # 10.0 .. 10.4
    np.testing.assert_allclose([t for t, _ in got], np.arange(105, 111) / 10)


def test_reset_forgets_everything(plus):
    ts, units = recording(seconds=2.0)
    dec = StreamingDecoder(plus, SESSION)
    dec.push(ts, units)
    first = dec.decode()
    dec.reset()
    assert dec.now is None and dec.buffered_spikes == 0
    dec.push(ts - 500.0, units)  # an earlier clock is fine after reset
    for task in TASKS:
        torch.testing.assert_close(dec.decode()[task], first[task], rtol=0, atol=1e-4)


def test_export_round_trip(plus, tmp_path):
    ts, units = recording(seconds=2.0)
    dec = StreamingDecoder(plus, SESSION, max_lag=2.0)
    dec.push(ts, units)
    path = tmp_path / "core.pt2"
    dec.export(path)
    program = torch.export.load(str(path)).module()
    for t in (dec.now, dec.now - 0.41, ts[0] + 1e-3):  # the last window holds a single spike
        inputs = dec.window_inputs(t)
        want = dec.decode(t)
        got = program(*inputs)
        for task, value in zip(dec.tasks, got):
            torch.testing.assert_close(value, want[task], rtol=0, atol=1e-6)
    empty = (torch.zeros(0), torch.zeros(0, dtype=torch.long), torch.tensor([1.0]))
    assert all(torch.isfinite(v).all() for v in program(*empty))


def test_scratch_reuse_gives_the_allocating_result(plus):
    """The core's reused scratch tensors: windows of growing and shrinking size, in and out of inference mode."""
    ts, units = recording(seconds=3.0, seed=2)
    dec = StreamingDecoder(plus, SESSION, max_lag=3.0)
    dec.push(ts, units)
    times = [dec.now, ts[0] + 1e-3, dec.now - 0.2, ts[0] + 0.3, dec.now]  # 1 spike .. a full window
    fresh = copy.deepcopy(dec.core)
    fresh._reuse = False
    for i, t in enumerate(times):
        inputs = dec.window_inputs(t)
        with torch.no_grad():
            want = fresh(*inputs)
        if i % 2:
            with torch.no_grad():
                got = dec.core(*inputs)
        else:
            got = tuple(dec.decode(t)[task] for task in dec.tasks)
        for a, b in zip(got, want):
            assert torch.equal(a, b)


def test_core_follows_its_tensors_after_to(plus):
    """The core caches its weights as plain tuples for speed; .to()/.float()/_apply must refresh them."""
    ts, units = recording(seconds=2.0, seed=3)
    dec = StreamingDecoder(plus, SESSION)
    dec.push(ts, units)
    before = dec.decode()["cursor_velocity_2d"]
    dec.core._apply(lambda t: t.clone())  # what .to(other_device) does: new tensor objects
    dec.core.self0_out_w.mul_(2.0)  # a change only the new tensors see
    after = dec.decode()["cursor_velocity_2d"]
    assert not torch.allclose(before, after)


def test_from_checkpoint_and_run_dir(plus, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    state = {f"model.{k}": v for k, v in plus.state_dict().items()}
    torch.save({"state_dict": state}, run / "checkpoints" / "last.ckpt")
    ts, units = recording(seconds=1.5)
    outs = []
    for source in (plus, run, run / "checkpoints" / "last.ckpt"):
        dec = StreamingDecoder(source, SESSION)
        dec.push(ts, units)
        outs.append(dec.decode())
    for out in outs[1:]:
        for task in TASKS:
            assert torch.equal(out[task], outs[0][task])


def test_model_is_not_modified(plus):
    plus.train()
    before = {k: v.clone() for k, v in plus.state_dict().items() if isinstance(v, torch.Tensor)}
    StreamingDecoder(plus, SESSION)
    assert plus.training
    assert all(torch.equal(v, plus.state_dict()[k]) for k, v in before.items())
    plus.eval()


def _pushed(plus, **kw):
    dec = StreamingDecoder(plus, SESSION, **kw)
    dec.push([1.0, 1.2], [0, 1])
    return dec


@pytest.mark.parametrize("action, error", [
    (lambda p: _pushed(p).push([1.1], [0]), "time went backwards"),
    (lambda p: _pushed(p).push([1.3], [0], until=1.25), "until must be"),
    (lambda p: _pushed(p).push([1.3, float("nan")], [0, 1]), "finite"),
    (lambda p: _pushed(p).push([1.3], ["bs/s1/u0"]), "not units of session"),
    (lambda p: _pushed(p).push([1.3], [N_UNITS]), "positions into decoder.unit_ids"),
    (lambda p: _pushed(p).push([1.3, 1.4], [0]), "same length"),
    (lambda p: _pushed(p).push([], []), "empty chunk needs until"),
    (lambda p: StreamingDecoder(p, "bs/s9"), "not in the model's session vocabulary"),
    (lambda p: StreamingDecoder(p, SESSION, window_length=2.0), "at most the model's sequence_length"),
    (lambda p: StreamingDecoder(p, SESSION, hop=0), "hop must be"),
    (lambda p: StreamingDecoder(p, SESSION).decode(), "nothing has been pushed"),
    (lambda p: _pushed(p).decode(1.5), "after the newest pushed time"),
    (lambda p: _pushed(p, max_lag=0.1).decode(1.0), "more than max_lag"),
    (lambda p: _pushed(p).decode(float("nan")), "finite"),
])
def test_bad_input(plus, action, error):
    with pytest.raises(ValueError, match=error):
        action(plus)


def test_bad_push_changes_nothing(plus):
    dec = _pushed(plus)
    before = dec.decode()
    for bad in (([1.3, 1.0], [0, 1]), ([1.3, 1.4], [0, 99])):
        with pytest.raises(ValueError):
            dec.push(*bad)
    assert dec.buffered_spikes == 2 and dec.now == 1.2
    assert torch.equal(dec.decode()["cursor_velocity_2d"], before["cursor_velocity_2d"])


def test_unknown_units_dropped_and_counted(plus):
    dec = StreamingDecoder(plus, SESSION, unknown_units="drop")
    with pytest.warns(UserWarning, match="dropped 2 spike"):
        dec.push([1.0, 1.1, 1.2], ["u0", "bs/s1/u0", "nope"])
    dec.push([1.3], [77])
    assert dec.dropped_spikes == 3 and dec.buffered_spikes == 1
    ref = StreamingDecoder(plus, SESSION)
    ref.push([1.0], [0], until=1.3)
    assert torch.equal(dec.decode()["cursor_velocity_2d"], ref.decode()["cursor_velocity_2d"])


def test_decode_with_no_spike_in_the_window(plus):
    dec = StreamingDecoder(plus, SESSION)
    dec.push([], [], until=5.0)
    out = dec.decode()  # documented: the model's output for a window of start/end tokens only
    ref = offline(plus, np.array([100.0]), np.array([0]), [5.0], 1.0)
    for task in TASKS:
        torch.testing.assert_close(out[task], ref[task][0], rtol=0, atol=1e-5)


def test_runs_without_lightning(tmp_path):
    """Building a decoder from a checkpoint and decoding never imports Lightning."""
    import subprocess
    import sys

    from tests.inference.conftest import TINY, vocab
    from torch_brain.models import POYOPlus

    ckpt = tmp_path / "m.ckpt"
    torch.save(vocab(POYOPlus(**TINY, readout_specs=TASKS)).state_dict(), ckpt)
    code = (
        "import sys\n"
        "from torch_brain.inference import StreamingDecoder\n"
        f"dec = StreamingDecoder({str(ckpt)!r}, {SESSION!r})\n"
        "dec.push([1.0, 1.5], [0, 1])\n"
        "dec.decode()\n"
        "assert not any(m.split('.')[0] in ('lightning', 'pytorch_lightning') for m in sys.modules), 'lightning imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_expected_value_heads_stream_their_predictions():
    """A bins head streams expected values, equal to the offline model's predictions."""
    from tests.inference.conftest import TINY, vocab
    from torch_brain.models import POYOPlus

    torch.manual_seed(2)
    model = vocab(POYOPlus(**TINY, readout_specs=TASKS,
                           readout_heads={"cursor_velocity_2d": {"kind": "bins", "num_bins": 6}}))
    model.readout.projections["cursor_velocity_2d"].fit(np.random.default_rng(0).normal(size=(50, 2)))
    ts, units = recording(seconds=1.5, seed=5)
    got = replay(StreamingDecoder(model, SESSION, hop=0.05), ts, units, chunk=9)
    raw = offline(model, ts, units, [t for t, _ in got], 1.0)
    for task in TASKS:
        want = model.predict(task, raw[task])
        assert stacked(got, task).shape == want.shape
        torch.testing.assert_close(stacked(got, task), want, rtol=0, atol=1e-5)
