"""Shared core of POYO and POYOPlus: embeddings, Perceiver encoder/processor/decoder, tokenizer parts."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torch_brain import registry as _registry
from torch_brain.models.tokenizer import _session_id, tokenize_spikes
from torch_brain.nn import (
    Dropout,
    FeedForward,
    InfiniteVocabEmbedding,
    RotaryCrossAttention,
    RotarySelfAttention,
    RotaryTimeEmbedding,
)

_NUM_TOKEN_TYPES = 4
_EXTRA_STATE_FORMAT = "torch_brain.models/1"


def _check_positive(name: str, value: Any, kind: type = float) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if kind is int:
        ok = ok and isinstance(value, int)
    if not ok:
        expected = "a positive int" if kind is int else "a positive number"
        raise ValueError(f"{name} must be {expected}, but got {value!r}.")


def _check_prob(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a probability in [0, 1), but got {value!r}.")


def spec_from_dict(entry: Mapping) -> "_registry.ModalitySpec":
    """Rebuild a spec recorded by ``ModalitySpec.to_dict`` (the registered one if it matches)."""
    name = entry.get("name", "")
    registered = _registry.MODALITY_REGISTRY.get(name)
    spec = _registry.ModalitySpec(
        id=int(entry["id"]), dim=int(entry["dim"]), type=_registry.DataType.parse(entry["type"]),
        timestamp_key=entry["timestamp_key"], value_key=entry["value_key"], name=name,
    )
    if registered is not None and registered == spec:
        return registered
    if registered is not None and registered.id != spec.id:
        warnings.warn(
            f"modality {name!r} has id {spec.id} in the checkpoint but id {registered.id} in this "
            "process's registry; the checkpoint's spec is used.",
            stacklevel=3,
        )
    return spec


class POYOBase(nn.Module):
    """Perceiver-style spike encoder shared by :class:`POYO` and :class:`POYOPlus` (not used directly).

    Spikes become tokens (unit embedding + token type), ``num_latents_per_step`` latent tokens sit
    every ``latent_step`` seconds, one cross-attention compresses the spike tokens into the latents,
    ``depth`` self-attention blocks process them, and a cross-attention from the output queries
    reads them out. All attention is rotary in time.
    """

    _hparam_names = (
        "sequence_length", "latent_step", "num_latents_per_step", "dim", "depth", "dim_head",
        "cross_heads", "self_heads", "ffn_dropout", "lin_dropout", "atn_dropout", "emb_init_scale",
        "t_min", "t_max", "rotary_periods",
    )

    def __init__(self, *, sequence_length: float, latent_step: float, num_latents_per_step: int,
                 dim: int, depth: int, dim_head: int, cross_heads: int, self_heads: int,
                 ffn_dropout: float, lin_dropout: float, atn_dropout: float, emb_init_scale: float,
                 t_min: float, t_max: float, rotary_periods: Sequence[float] | None = None) -> None:
        super().__init__()
        for name, value in (("sequence_length", sequence_length), ("latent_step", latent_step),
                            ("emb_init_scale", emb_init_scale), ("t_min", t_min), ("t_max", t_max)):
            _check_positive(name, value)
        for name, value in (("num_latents_per_step", num_latents_per_step), ("dim", dim),
                            ("depth", depth), ("dim_head", dim_head), ("cross_heads", cross_heads),
                            ("self_heads", self_heads)):
            _check_positive(name, value, int)
        for name, value in (("ffn_dropout", ffn_dropout), ("lin_dropout", lin_dropout),
                            ("atn_dropout", atn_dropout)):
            _check_prob(name, value)
        if dim_head < 4:
            raise ValueError(f"dim_head must be >= 4 (half of it is rotated), but got {dim_head}.")
        if not t_min < t_max:
            raise ValueError(f"t_min must be smaller than t_max, but got t_min={t_min}, t_max={t_max}.")
        n_steps = sequence_length / latent_step
        if abs(n_steps - round(n_steps)) > 1e-6 or round(n_steps) < 1:
            raise ValueError(
                f"sequence_length ({sequence_length}) must be a whole multiple of latent_step "
                f"({latent_step}); got {n_steps:.4g} steps."
            )
        self.sequence_length = float(sequence_length)
        self.latent_step = float(latent_step)
        self.num_latents_per_step = int(num_latents_per_step)
        self.dim = dim
        self.depth = depth
        self.dim_head = dim_head
        self.cross_heads = cross_heads
        self.self_heads = self_heads
        self.ffn_dropout = float(ffn_dropout)
        self.lin_dropout = float(lin_dropout)
        self.atn_dropout = float(atn_dropout)
        self.emb_init_scale = float(emb_init_scale)
        self.t_min = float(t_min)
        self.t_max = float(t_max)
        self.rotary_periods = None if rotary_periods is None else [float(p) for p in rotary_periods]

        # latent grid of one window: [L] with L = steps * num_latents_per_step
        steps = int(round(n_steps))
        self._latent_index = np.tile(np.arange(num_latents_per_step, dtype=np.int64), steps)
        self._latent_timestamps = np.repeat(
            (np.arange(steps, dtype=np.float64) + 0.5) * latent_step, num_latents_per_step
        ).astype(np.float32)

        self.unit_emb = InfiniteVocabEmbedding(dim, init_scale=emb_init_scale)
        self.session_emb = InfiniteVocabEmbedding(dim, init_scale=emb_init_scale)
        self.token_type_emb = nn.Embedding(_NUM_TOKEN_TYPES, dim)
        self.latent_emb = nn.Embedding(num_latents_per_step, dim)
        for emb in (self.token_type_emb, self.latent_emb):
            nn.init.normal_(emb.weight, std=emb_init_scale)
        self.rotary = RotaryTimeEmbedding(dim_head // 2 // 2 * 2, t_min=t_min, t_max=t_max,
                                          periods=self.rotary_periods)

        self.enc_atn = RotaryCrossAttention(dim=dim, heads=cross_heads, dim_head=dim_head,
                                            dropout=atn_dropout, rotate_value=True)
        self.enc_ffn = FeedForward(dim, dropout=ffn_dropout, recompute=True)
        self.proc_layers = nn.ModuleList()
        for _ in range(depth):
            self.proc_layers.append(nn.ModuleList([
                RotarySelfAttention(dim=dim, heads=self_heads, dim_head=dim_head, dropout=atn_dropout,
                                    rotate_value=True),
                FeedForward(dim, dropout=ffn_dropout, recompute=True),
            ]))
        self.dec_atn = RotaryCrossAttention(dim=dim, heads=cross_heads, dim_head=dim_head,
                                            dropout=atn_dropout, rotate_value=False)
        self.dec_ffn = FeedForward(dim, dropout=ffn_dropout, recompute=True)
        self.dropout = Dropout(lin_dropout)

    # ------------------------------------------------------------------ hyper-parameters
    @property
    def hparams(self) -> dict[str, Any]:
        """Constructor arguments (JSON-friendly), enough to rebuild the model with ``cls(**hparams)``."""
        out = {name: getattr(self, name) for name in self._hparam_names}
        out.update(self._readout_hparams())
        return out

    def _readout_hparams(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_extra_state(self) -> dict:
        return {"format": _EXTRA_STATE_FORMAT, "class": type(self).__name__, "hparams": self.hparams}

    def set_extra_state(self, state: Any) -> None:
        # The architecture is checked through the parameter shapes; the hparams are read by
        # load_pretrained before the model is built.
        return None

    # ------------------------------------------------------------------ tokenizer parts
    def _check_vocabs(self) -> None:
        for name in ("unit_emb", "session_emb"):
            if getattr(self, name).is_lazy():
                raise ValueError(
                    f"model.{name} has no vocabulary; call model.{name}.initialize_vocab(...) (e.g. "
                    f"dataset.get_{'unit' if name == 'unit_emb' else 'session'}_ids()) before tokenizing."
                )

    def _lookup(self, name: str, ids: Any, data: Any) -> Any:
        """Vocabulary indices of ``ids``; an unknown id names the embedding and the session."""
        try:
            return getattr(self, name).tokenizer(ids)
        except ValueError as err:
            raise ValueError(f"tokenize: session {_session_id(data)!r}: model.{name}: {err}") from None

    def _tokenize_inputs(self, data: Any) -> tuple[dict[str, Any], int]:
        """Spike tokens, start/end tokens per unit, latent grid, and the session index."""
        self._check_vocabs()
        return tokenize_spikes(
            data, lookup=lambda table, ids: self._lookup(table, ids, data),
            sequence_length=self.sequence_length, latent_index=self._latent_index,
            latent_timestamps=self._latent_timestamps,
        )

    # ------------------------------------------------------------------ network
    def _forward_embeddings(self, *, input_unit_index: Tensor, input_timestamps: Tensor,
                            input_token_type: Tensor, input_mask: Tensor, latent_index: Tensor,
                            latent_timestamps: Tensor, queries: Tensor,
                            output_timestamps: Tensor) -> Tensor:
        """Run the encoder/processor/decoder; returns the output query embeddings (B, Q, dim)."""
        _check_inputs(input_unit_index, input_timestamps, input_token_type, input_mask, latent_index,
                      latent_timestamps, output_timestamps)
        # An input token's embedding depends only on its (unit, token type) pair, so embeddings,
        # norm and key/value projections run once per distinct pair in the batch and are gathered.
        pair = input_unit_index * _NUM_TOKEN_TYPES + input_token_type  # [B, N]
        uniq, token_row = torch.unique(pair, return_inverse=True)  # [U], [B, N]
        table = self.unit_emb(uniq // _NUM_TOKEN_TYPES) + self.token_type_emb(uniq % _NUM_TOKEN_TYPES)  # [U, D]
        latents = self.latent_emb(latent_index)  # [B, L, D]
        input_rot = self.rotary(input_timestamps)
        latent_rot = self.rotary(latent_timestamps)
        output_rot = self.rotary(output_timestamps)

        latents = latents + self.enc_atn(latents, table, latent_rot, input_rot, input_mask, context_index=token_row)
        latents = latents + self.enc_ffn(latents)
        # every window's latents sit at the same few times: the self-attention rotates weights per time
        latent_grid = self.rotary.grid(latent_timestamps)
        for self_atn, ffn in self.proc_layers:
            latents = latents + self_atn(latents, latent_rot if latent_grid is None else latent_grid)
            latents = latents + ffn(latents)
        out = queries + self.dec_atn(queries, latents, output_rot, latent_rot)
        out = out + self.dec_ffn(out)
        return self.dropout(out)


def _check_inputs(input_unit_index: Tensor, input_timestamps: Tensor, input_token_type: Tensor,
                  input_mask: Tensor, latent_index: Tensor, latent_timestamps: Tensor,
                  output_timestamps: Tensor) -> None:
    b, n = input_unit_index.shape
    for name, t in (("input_timestamps", input_timestamps), ("input_token_type", input_token_type),
                    ("input_mask", input_mask)):
        if t.shape != (b, n):
            raise ValueError(
                f"{name} must have the shape of input_unit_index (B, N) = {(b, n)}, but got {tuple(t.shape)}."
            )
    if input_token_type.numel() and (int(input_token_type.min()) < 0 or int(input_token_type.max()) >= _NUM_TOKEN_TYPES):
        raise ValueError(
            f"input_token_type must be in [0, {_NUM_TOKEN_TYPES}) (0 spike, 1 unit start, 2 unit end), but got "
            f"range [{int(input_token_type.min())}, {int(input_token_type.max())}]."
        )
    if input_mask.dtype != torch.bool:
        raise TypeError(f"input_mask must be a bool tensor (True = real token), but got {input_mask.dtype}.")
    if latent_index.shape != latent_timestamps.shape or latent_index.shape[0] != b:
        raise ValueError(
            f"latent_index and latent_timestamps must both be (B, L) with B = {b}, but got "
            f"{tuple(latent_index.shape)} and {tuple(latent_timestamps.shape)}."
        )
    if output_timestamps.ndim != 2 or output_timestamps.shape[0] != b:
        raise ValueError(f"output_timestamps must be (B, Q) with B = {b}, but got {tuple(output_timestamps.shape)}.")
