"""masked_spikes and masked_signal: masking, tokens, losses against hand computations, registry errors."""

import numpy as np
import pytest
import torch

from torch_brain.data import collate
from torch_brain.models.tokenizer import SPIKE_TOKEN
from torch_brain.ssl import (
    create_encoder,
    create_objective,
    list_encoders,
    list_objectives,
    multi_resolution_stft_loss,
)
from tests.ssl.conftest import TINY_ENCODER, poyo_encoder, spike_window


def test_registries_list_the_builtins():
    assert list_encoders() == ["patch_transformer", "poyo"]
    assert list_objectives() == ["masked_signal", "masked_spikes"]


@pytest.mark.parametrize("kind", ["units", "time", "both"])
def test_masked_spikes_never_leak_into_input_tokens(kind):
    enc = poyo_encoder()
    obj = create_objective("masked_spikes", enc, mask_ratio=0.34, mask_kind=kind, bin_size=0.1)
    for seed in range(6):
        window = spike_window(seed=seed)
        sample = obj.tokenize(window, train=True)
        inputs = sample["model_inputs"]
        q_unit = inputs["output_unit_index"].obj
        q_time = inputs["output_timestamps"].obj
        masked = {(int(u), int(np.floor(t / 0.1))) for u, t in zip(q_unit, q_time)}
        assert masked, "something is masked"
        vocab = enc.unit_emb.tokenizer(window.units.id)
        # brute force: which spikes fall in a masked cell
        spikes = [(int(vocab[u]), int(min(np.floor(t / 0.1), 9))) for t, u in
                  zip(window.spikes.timestamps, window.spikes.unit_index)]
        n_masked = sum(cell in masked for cell in spikes)
        types = inputs["input_token_type"].obj
        tok_unit = inputs["input_unit_index"].obj[types == SPIKE_TOKEN]
        tok_time = inputs["input_timestamps"].obj[types == SPIKE_TOKEN]
        for u, t in zip(tok_unit, tok_time):
            assert (int(u), int(min(np.floor(t / 0.1), 9))) not in masked
        assert len(tok_unit) == len(spikes) - n_masked
        # targets are the brute-force counts of the masked cells
        counts = [sum(c == (int(u), int(np.floor(t / 0.1))) for c in spikes) for u, t in zip(q_unit, q_time)]
        np.testing.assert_array_equal(sample["target_counts"].obj, counts)
        if kind == "units":
            assert len({u for u, _ in masked}) == 2 and len(masked) == 2 * 10  # round(0.34 * 6) units x 10 bins
        if kind == "time":
            assert len({b for _, b in masked}) == 3 and len(masked) == 3 * 6  # round(0.34 * 10) bins x 6 units


def test_validation_masks_are_fixed_training_masks_follow_the_window_seed():
    obj = create_objective("masked_spikes", poyo_encoder(), mask_kind="units")
    window = spike_window()

    def units(**kwargs):
        return tuple(obj.tokenize(window, **kwargs)["model_inputs"]["output_unit_index"].obj)

    assert units(train=False) == units(train=False)
    assert units(train=True, seed=5) == units(train=True, seed=5)  # no hidden counter: a seed, a mask
    assert len({units(train=True, seed=s) for s in range(8)}) > 1


def test_masked_signal_masks_come_from_the_window_seed():
    enc = create_encoder("patch_transformer", in_channels=2, patch_size=20, dim=16, depth=1, heads=2)
    obj = create_objective("masked_signal", enc, mask_ratio=0.3, field="lfp.signal")
    window = spike_window(lfp=True)

    def mask(**kwargs):
        return tuple(obj.tokenize(window, **kwargs)["patch_mask"].tolist())

    assert mask(train=False) == mask(train=False) and sum(mask(train=False)) == 3  # round(0.3 * 10)
    assert mask(train=True, seed=3) == mask(train=True, seed=3)
    assert len({mask(train=True, seed=s) for s in range(8)}) > 1
    # the model's input is zero exactly on the tokenized mask's patches
    sample = obj.tokenize(window, train=True, seed=3)
    batch = collate([sample])
    seen = {}
    enc.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0].clone()))
    obj(enc, batch)
    zero = (seen["x"].reshape(1, 2, 10, 20) == 0).all(dim=3).all(dim=1)[0]
    assert zero.tolist() == [bool(v) for v in sample["patch_mask"]]


def test_masked_spikes_loss_matches_hand_computed_value():
    enc = poyo_encoder()
    obj = create_objective("masked_spikes", enc, mask_ratio=0.5, mask_kind="units", bin_size=0.25)
    with torch.no_grad():  # a constant prediction: log expected count b for every query
        obj.head.weight.zero_()
        obj.head.bias.fill_(-0.7)
    windows = [spike_window("bs/s0", seed=1), spike_window("bs/s1", seed=2)]
    batch = collate([obj.tokenize(w, train=False) for w in windows])
    loss, metrics = obj(enc, batch)
    # by hand: the masked units of each window (from the queries) and their spike counts per 0.25 s bin
    terms = []
    for w in windows:
        q = obj.tokenize(w, train=False)["model_inputs"]
        vocab = list(enc.unit_emb.tokenizer(w.units.id))
        for u, t in zip(q["output_unit_index"].obj, q["output_timestamps"].obj):
            local = vocab.index(u)
            k = np.sum((w.spikes.unit_index == local) & (w.spikes.timestamps >= t - 0.125)
                       & (w.spikes.timestamps < t + 0.125))
            terms.append(np.exp(-0.7) - k * -0.7)
    assert len(terms) == 2 * 3 * 4
    assert loss.item() == pytest.approx(np.mean(terms), rel=1e-6)
    assert metrics["masked_fraction"].item() == pytest.approx(0.5)


def _signal_batch(b=3, c=2, t=200, seed=0):
    rng = np.random.default_rng(seed)
    return {"signal": torch.tensor(rng.normal(size=(b, c, t)), dtype=torch.float32), "session_id": ["s"] * b}


@pytest.mark.parametrize("stft_weight", [0.0, 0.5])
def test_masked_signal_loss_matches_hand_computed_value(stft_weight):
    enc = create_encoder("patch_transformer", in_channels=2, patch_size=20, dim=16, depth=1, heads=2)
    obj = create_objective("masked_signal", enc, mask_ratio=0.4, mask_type="block", stft_weight=stft_weight,
                           fft_sizes=(16, 32))
    with torch.no_grad():  # a decoder that reconstructs zeros
        obj.decoder.weight.zero_()
        obj.decoder.bias.zero_()
    obj.eval()
    batch = _signal_batch()
    loss, metrics = obj(enc, batch)
    from torch_brain.ssl import patch_mask

    mask = patch_mask(3, 10, 0.4, "block", generator=torch.Generator().manual_seed(0)).numpy()  # eval masks
    x = batch["signal"].numpy()
    sample_mask = np.repeat(mask, 20, axis=1)[:, None, :] & np.ones((1, 2, 1), dtype=bool)
    msm = np.mean(x[sample_mask] ** 2)
    assert metrics["msm_loss"].item() == pytest.approx(msm, rel=1e-5)
    stft = multi_resolution_stft_loss(torch.zeros_like(batch["signal"]), batch["signal"], (16, 32)).item()
    assert loss.item() == pytest.approx(msm + stft_weight * stft, rel=1e-5)


def test_masked_signal_zeroes_the_masked_patches_of_the_input():
    enc = create_encoder("patch_transformer", in_channels=2, patch_size=20, dim=16, depth=1, heads=2)
    obj = create_objective("masked_signal", enc, mask_ratio=0.3)
    seen = {}
    enc.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0].clone()))
    obj.eval()
    batch = _signal_batch()
    obj(enc, batch)
    x_in = seen["x"].reshape(3, 2, 10, 20)
    zero_patches = (x_in == 0).all(dim=3).all(dim=1)  # [B, P]
    assert (zero_patches.sum(1) == 3).all()  # round(0.3 * 10) patches per window, all channels
    kept = ~zero_patches[:, None, :, None].expand_as(x_in)
    assert torch.equal(x_in[kept], batch["signal"].reshape(3, 2, 10, 20)[kept])


def test_unknown_encoder_and_objective_list_the_registered_ones():
    with pytest.raises(ValueError, match=r"Unknown encoder 'poyoo'. Valid encoders are: patch_transformer, poyo.*Did you mean 'poyo'"):
        create_encoder("poyoo")
    with pytest.raises(ValueError, match=r"Unknown objective 'mae'. Valid objectives are: masked_signal, masked_spikes"):
        create_objective("mae", poyo_encoder())
    with pytest.raises(ValueError, match=r"objective 'masked_spikes' has no option 'mask_ration'. Did you mean 'mask_ratio'"):
        create_objective("masked_spikes", poyo_encoder(), mask_ration=0.2)


def test_incompatible_encoder_objective_pair_is_refused():
    with pytest.raises(ValueError, match=r"objective 'masked_signal' works with encoder\(s\) patch_transformer, but the "
                                         r"encoder is 'poyo'.*masked_spikes"):
        create_objective("masked_signal", poyo_encoder())
    enc = create_encoder("patch_transformer", in_channels=1)
    with pytest.raises(ValueError, match="works with encoder"):
        create_objective("masked_spikes", enc)


def test_masked_signal_on_spikes_only_data_is_refused():
    enc = create_encoder("patch_transformer", in_channels=2)
    obj = create_objective("masked_signal", enc)
    with pytest.raises(ValueError, match=r"needs a continuous signal data.lfp.signal.*spikes-only"):
        obj.check_data(spike_window(), "recording 'bs/s0'")
    obj.check_data(spike_window(lfp=True), "recording 'bs/s0'")  # fine with an LFP


@pytest.mark.parametrize("name, options", [("masked_spikes", {}), ("masked_signal", {})])
@pytest.mark.parametrize("ratio", [0.0, 1.0, 2])
def test_mask_ratio_outside_open_interval(name, options, ratio):
    enc = poyo_encoder() if name == "masked_spikes" else create_encoder("patch_transformer")
    with pytest.raises(ValueError, match=r"ssl.mask_ratio must be a number in the open interval \(0, 1\)"):
        create_objective(name, enc, mask_ratio=ratio)


def test_bin_size_must_divide_the_window():
    with pytest.raises(ValueError, match="whole bins"):
        create_objective("masked_spikes", create_encoder("poyo", **TINY_ENCODER), bin_size=0.3)
