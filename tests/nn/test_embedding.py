"""InfiniteVocabEmbedding: vocabulary life cycle and state_dict round trips."""

import numpy as np
import pytest
import torch

from torch_brain.nn import InfiniteVocabEmbedding


def _emb(words=("a", "b", "c")):
    emb = InfiniteVocabEmbedding(4)
    emb.initialize_vocab(list(words))
    return emb


def test_lazy_until_initialized():
    emb = InfiniteVocabEmbedding(4)
    assert emb.is_lazy()
    with pytest.raises(ValueError, match="not initialised; call initialize_vocab"):
        emb.tokenizer(["a"])
    with pytest.raises(ValueError, match="lazy"):
        emb(torch.tensor([0]))
    emb.initialize_vocab(["a", "b"])
    assert not emb.is_lazy() and emb.weight.shape == (2, 4)


def test_tokenizer_detokenizer():
    emb = _emb()
    assert emb.tokenizer("b") == 1
    np.testing.assert_array_equal(emb.tokenizer(np.array(["c", "a", "c"])), [2, 0, 2])
    assert emb.detokenizer(2) == "c"
    assert emb.detokenizer(torch.tensor([1, 0])) == ["b", "a"]
    torch.testing.assert_close(emb(torch.tensor([[2, 0]])), emb.weight[[2, 0]].unsqueeze(0))


def test_unknown_id_is_named_with_fix():
    emb = _emb()
    with pytest.raises(ValueError, match=r"not in the vocabulary.*'zz'.*extend_vocab"):
        emb.tokenizer(["a", "zz"])
    with pytest.raises(ValueError, match=r"'zz'.*extend_vocab"):
        emb.tokenizer("zz")


def test_extend_keeps_trained_rows():
    emb = _emb()
    before = emb.weight.detach().clone()
    emb.extend_vocab(["d", "e"])
    assert emb.weight.shape == (5, 4)
    torch.testing.assert_close(emb.weight[:3].detach(), before)
    assert emb.tokenizer("e") == 4
    with pytest.raises(ValueError, match=r"already in the vocabulary.*exist_ok=True"):
        emb.extend_vocab(["a"])
    emb.extend_vocab(["a", "f"], exist_ok=True)
    assert emb.tokenizer("f") == 5 and emb.weight.shape[0] == 6


def test_subset_keeps_rows_in_given_order():
    emb = _emb()
    w = emb.weight.detach().clone()
    sub = emb.subset_vocab(["c", "a"], inplace=False)
    torch.testing.assert_close(sub.weight.detach(), w[[2, 0]])
    assert sub.tokenizer("a") == 1 and emb.tokenizer("a") == 0
    emb.subset_vocab(["b"])
    assert list(emb.vocab) == ["b"] and torch.equal(emb.weight.detach(), w[[1]])


def test_state_dict_restores_vocab_into_lazy_module():
    emb = _emb(["x", "y"])
    sd = emb.state_dict()
    assert sd["_extra_state"]["vocab"] == ["x", "y"]
    fresh = InfiniteVocabEmbedding(4)
    fresh.load_state_dict(sd)
    assert fresh.vocab == {"x": 0, "y": 1}
    torch.testing.assert_close(fresh.weight, emb.weight)
    # and into a module with a different vocabulary: the checkpoint's wins
    other = _emb(["p", "q", "r"])
    other.load_state_dict(sd)
    assert list(other.vocab) == ["x", "y"] and other.weight.shape == (2, 4)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda e: e.initialize_vocab(["a"]), ValueError, "already initialised"),
        (lambda e: InfiniteVocabEmbedding(4).initialize_vocab(["a", "a"]), ValueError, "duplicates"),
        (lambda e: InfiniteVocabEmbedding(4).initialize_vocab("abc"), TypeError, "single id 'abc'"),
        (lambda e: InfiniteVocabEmbedding(4).initialize_vocab(7), TypeError, "single id 7"),
        (lambda e: InfiniteVocabEmbedding(4).initialize_vocab([1.0, 2.0]), TypeError, "str or integer ids.*float"),
        (lambda e: InfiniteVocabEmbedding(4).initialize_vocab([True]), TypeError, "str or integer ids.*bool"),
        (lambda e: InfiniteVocabEmbedding(4).initialize_vocab([7, "7"]), ValueError, r"duplicates \['7'\]"),
        (lambda e: InfiniteVocabEmbedding(4).initialize_vocab([np.int64(7), 7]), ValueError, "duplicates"),
        (lambda e: e.tokenizer([1.5]), TypeError, "str or integer ids"),
        (lambda e: InfiniteVocabEmbedding(4).extend_vocab(["a"]), ValueError, "call initialize_vocab first"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call(_emb())


# ---------------------------------------------------------------- integer ids (NWB unit ids, 0.1.x code)
@pytest.mark.parametrize("ids", [np.arange(3), [0, 1, 2], np.array([0, 1, 2], dtype=np.uint16), ["0", "1", "2"]])
def test_integer_ids_are_their_decimal_strings(ids):
    emb = InfiniteVocabEmbedding(4)
    emb.initialize_vocab(ids)
    assert list(emb.vocab) == ["0", "1", "2"]
    # every spelling of an id reaches the same row
    for spelled in (2, np.int32(2), np.int64(2), "2", np.str_("2")):
        assert emb.tokenizer(spelled) == 2
    np.testing.assert_array_equal(emb.tokenizer(np.array([2, 0])), [2, 0])
    np.testing.assert_array_equal(emb.tokenizer([1, "1", np.int8(1)]), [1, 1, 1])
    assert emb.detokenizer(1) == "1"


def test_extend_and_subset_with_integer_ids():
    emb = InfiniteVocabEmbedding(4)
    emb.initialize_vocab(np.arange(3))
    emb.extend_vocab(["2", 3], exist_ok=True)  # "2" is the id 2: skipped, not a 5th row
    assert list(emb.vocab) == ["0", "1", "2", "3"] and emb.weight.shape == (4, 4)
    with pytest.raises(ValueError, match=r"already in the vocabulary.*'1'"):
        emb.extend_vocab([np.int64(1)])
    rows = emb.weight.detach().clone()
    emb.subset_vocab(np.array([3, 1]))
    torch.testing.assert_close(emb.weight.detach(), rows[[3, 1]])


def test_integer_id_vocab_round_trips_through_save_and_load(tmp_path):
    emb = InfiniteVocabEmbedding(4)
    emb.initialize_vocab(np.array([105, 7, 300]))
    torch.save(emb.state_dict(), tmp_path / "emb.pt")
    fresh = InfiniteVocabEmbedding(4)
    fresh.load_state_dict(torch.load(tmp_path / "emb.pt", weights_only=True))
    assert fresh.vocab == {"105": 0, "7": 1, "300": 2}
    np.testing.assert_array_equal(fresh.tokenizer(np.array([300, 105])), [2, 0])
    torch.testing.assert_close(fresh(torch.tensor([1])), emb.weight[[1]].detach())
