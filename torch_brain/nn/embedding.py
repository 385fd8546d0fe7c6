"""Embedding table keyed by ids (unit ids, session ids: str or integer) whose vocabulary can grow."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["InfiniteVocabEmbedding"]


def _canonical_id(word: Any, arg: str) -> str:
    """The stored form of one id: str ids as they are, integer ids (Python or numpy) as decimal str."""
    if isinstance(word, str):  # also np.str_
        return str(word)
    if isinstance(word, (int, np.integer)) and not isinstance(word, (bool, np.bool_)):
        return str(int(word))
    raise TypeError(
        f"{arg} must contain str or integer ids, but got {word!r} of type {type(word).__name__}; "
        "convert it to str (or int) first."
    )


def _as_words(words: Any, arg: str) -> list[str]:
    if isinstance(words, (str, int, np.integer)):
        raise TypeError(f"{arg} must be a list of ids, but got a single id {words!r}; wrap it in a list.")
    try:
        out = list(words)
    except TypeError:
        raise TypeError(f"{arg} must be an iterable of str or integer ids, but got {type(words).__name__}.") from None
    return [_canonical_id(w, arg) for w in out]


class InfiniteVocabEmbedding(nn.Module):
    """An embedding table whose rows are addressed by ids (e.g. ``"brainset/session/unit"``, or NWB's integer unit ids).

    Ids are strings or integers (Python ``int`` or numpy integers, e.g. ``np.arange(100)``). One
    rule for both: an integer id is stored as its decimal string, so ``7``, ``np.int64(7)`` and
    ``"7"`` are the *same* id (one row; giving two of them to ``initialize_vocab`` is a duplicate),
    the tokenizer accepts any of them, ``detokenizer`` and ``vocab`` return ``"7"``, and the
    vocabulary saved in the state dict is a list of str. Floats and bools are refused.

    The module starts *lazy* (no vocabulary, no rows). :meth:`initialize_vocab` creates one row per
    id; :meth:`extend_vocab` appends rows for new ids (new sessions, new units) keeping the trained
    ones; :meth:`subset_vocab` keeps a subset. :meth:`tokenizer` maps ids to row indices (used by the
    models' ``tokenize``), :meth:`detokenizer` maps back. The vocabulary is saved in the module's
    ``state_dict`` (``<prefix>_extra_state``) and restored, with the table resized, on load.

    Args:
        embedding_dim: size of each embedding vector.
        init_scale: standard deviation of the normal initialisation of new rows.

    Shapes:
        forward: index (...) int64 -> (..., embedding_dim).

    Note:
        ``initialize_vocab``/``extend_vocab``/``subset_vocab`` replace ``weight`` by a new
        parameter; create the optimizer afterwards.
    """

    def __init__(self, embedding_dim: int, init_scale: float = 0.02) -> None:
        super().__init__()
        if int(embedding_dim) < 1:
            raise ValueError(f"embedding_dim must be >= 1, but got {embedding_dim!r}.")
        self.embedding_dim = int(embedding_dim)
        self.init_scale = float(init_scale)
        self.vocab: dict[str, int] | None = None
        self.weight = nn.Parameter(torch.empty(0, self.embedding_dim))

    # ------------------------------------------------------------------ vocabulary
    def is_lazy(self) -> bool:
        """True until a vocabulary has been set (by ``initialize_vocab`` or by loading a state dict)."""
        return self.vocab is None

    def _new_rows(self, n: int) -> Tensor:
        rows = torch.empty(n, self.embedding_dim, dtype=self.weight.dtype, device=self.weight.device)
        return nn.init.normal_(rows, mean=0.0, std=self.init_scale)

    def _set_weight(self, data: Tensor) -> None:
        requires_grad = self.weight.requires_grad
        self.weight = nn.Parameter(data, requires_grad=requires_grad)

    def initialize_vocab(self, words: Iterable[str | int]) -> None:
        """Create the vocabulary (one freshly initialised row per id, in the given order).

        Raises:
            ValueError: the vocabulary is already initialised, or ``words`` holds duplicates.
        """
        if not self.is_lazy():
            raise ValueError(
                f"initialize_vocab: the vocabulary is already initialised ({len(self.vocab)} ids); "
                "use extend_vocab to add ids or subset_vocab to keep some."
            )
        words = _as_words(words, "initialize_vocab(words)")
        self._check_unique(words, "initialize_vocab")
        self.vocab = {w: i for i, w in enumerate(words)}
        self._set_weight(self._new_rows(len(words)))

    def extend_vocab(self, words: Iterable[str | int], exist_ok: bool = False) -> None:
        """Append rows for new ids; rows of ids already present are kept unchanged.

        Args:
            words: ids to add.
            exist_ok: if False, ids already in the vocabulary raise; if True they are skipped.
        """
        if self.is_lazy():
            raise ValueError("extend_vocab: the vocabulary is not initialised; call initialize_vocab first.")
        words = _as_words(words, "extend_vocab(words)")
        self._check_unique(words, "extend_vocab")
        present = [w for w in words if w in self.vocab]
        if present and not exist_ok:
            raise ValueError(
                f"extend_vocab: {len(present)} id(s) already in the vocabulary, e.g. {present[:5]}; "
                "pass exist_ok=True to skip them."
            )
        new = [w for w in words if w not in self.vocab]
        if not new:
            return
        start = len(self.vocab)
        for i, w in enumerate(new):
            self.vocab[w] = start + i
        self._set_weight(torch.cat([self.weight.detach(), self._new_rows(len(new))], dim=0))

    def subset_vocab(self, words: Iterable[str | int], inplace: bool = True) -> "InfiniteVocabEmbedding":
        """Keep only ``words`` (in that order) and their trained rows.

        Returns:
            ``self`` when ``inplace`` else a new module.
        """
        words = _as_words(words, "subset_vocab(words)")
        self._check_unique(words, "subset_vocab")
        index = torch.as_tensor(self.tokenizer(words), dtype=torch.long)
        target = self if inplace else InfiniteVocabEmbedding(self.embedding_dim, self.init_scale)
        data = self.weight.detach()[index.to(self.weight.device)].clone()
        target.vocab = {w: i for i, w in enumerate(words)}
        target._set_weight(data)
        return target

    @staticmethod
    def _check_unique(words: Sequence[str], where: str) -> None:
        if len(set(words)) != len(words):
            seen, dup = set(), []
            for w in words:
                if w in seen:
                    dup.append(w)
                seen.add(w)
            raise ValueError(f"{where}: ids must be unique, but got duplicates {dup[:5]}.")

    def tokenizer(self, words: str | int | Iterable[str | int]) -> int | np.ndarray:
        """Map one id to its row index, or a list/array of ids to an int64 array of indices.

        Raises:
            ValueError: lazy vocabulary, or ids that are not in the vocabulary (named; add them with
                ``extend_vocab``).
        """
        if self.is_lazy():
            raise ValueError(
                "the vocabulary of this InfiniteVocabEmbedding is not initialised; call "
                "initialize_vocab(ids) (e.g. dataset.get_unit_ids()) before tokenizing."
            )
        vocab = self.vocab
        if isinstance(words, (str, int, np.integer)):
            word = _canonical_id(words, "tokenizer(words)")
            try:
                return vocab[word]
            except KeyError:
                self._raise_unknown([word])
        if isinstance(words, np.ndarray) and words.dtype.kind == "U":
            words = words.tolist()  # already str
        else:
            words = _as_words(words, "tokenizer(words)")
        try:
            return np.fromiter((vocab[w] for w in words), dtype=np.int64, count=len(words))
        except KeyError:
            self._raise_unknown([w for w in words if w not in vocab])

    def _raise_unknown(self, unknown: list) -> None:
        raise ValueError(
            f"{len(unknown)} id(s) not in the vocabulary ({len(self.vocab)} ids), e.g. {[str(u) for u in unknown[:5]]}; "
            "call extend_vocab([...]) with these ids (new sessions/units) before using them."
        )

    def detokenizer(self, index: int | Iterable[int] | Tensor) -> str | list[str]:
        """Map a row index back to its id (or a sequence of indices to a list of ids)."""
        if self.is_lazy():
            raise ValueError("detokenizer: the vocabulary is not initialised; call initialize_vocab first.")
        words = list(self.vocab)
        if isinstance(index, Tensor):
            index = index.tolist()
        if isinstance(index, (int, np.integer)):
            return words[int(index)]
        return [words[int(i)] for i in index]

    # ------------------------------------------------------------------ module
    def forward(self, index: Tensor) -> Tensor:
        """Look up rows: index (...) int64 -> (..., embedding_dim)."""
        if self.is_lazy():
            raise ValueError(
                "InfiniteVocabEmbedding is lazy (no vocabulary); call initialize_vocab(ids) first."
            )
        return nn.functional.embedding(index, self.weight)

    def get_extra_state(self) -> dict:
        return {"vocab": None if self.vocab is None else list(self.vocab)}

    def set_extra_state(self, state: Any) -> None:
        vocab = state.get("vocab") if isinstance(state, dict) else None
        self.vocab = None if vocab is None else {str(w): i for i, w in enumerate(vocab)}

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        # Restore the vocabulary first so that the table has the checkpoint's size before copying.
        extra = state_dict.get(prefix + "_extra_state")
        if isinstance(extra, dict) and "vocab" in extra:
            self.set_extra_state(extra)
            n = 0 if self.vocab is None else len(self.vocab)
            weight = state_dict.get(prefix + "weight")
            if weight is not None and weight.shape[0] == n and self.weight.shape[0] != n:
                self._set_weight(torch.empty(n, self.embedding_dim, dtype=self.weight.dtype,
                                             device=self.weight.device))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        size = "lazy" if self.is_lazy() else f"vocab={len(self.vocab)}"
        return f"{size}, embedding_dim={self.embedding_dim}"
