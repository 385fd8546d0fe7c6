"""POYO: single-task decoder from spikes of many sessions."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torch_brain import registry as _registry
from torch_brain.models._base import POYOBase, spec_from_dict
from torch_brain.models._registry import register_model
from torch_brain.models.tokenizer import prepare_readout
from torch_brain.nn.expected_value import SampledLoss, make_head

__all__ = ["POYO"]


def _as_spec(readout_spec: Any) -> _registry.ModalitySpec:
    if isinstance(readout_spec, _registry.ModalitySpec):
        return readout_spec
    if isinstance(readout_spec, str):
        return _registry.get_modality(readout_spec)
    if isinstance(readout_spec, Mapping):
        return spec_from_dict(readout_spec)
    raise TypeError(
        "readout_spec must be a ModalitySpec or a registered modality name (e.g. "
        f"'cursor_velocity_2d'), but got {type(readout_spec).__name__}."
    )


@register_model("poyo")
class POYO(POYOBase):
    """POYO decodes one task (``readout_spec``) from spikes of many sessions.

    The output queries are the session embeddings at the spec's timestamps; a linear head maps
    them to ``dim_out`` values. Constructor arguments are those of :class:`POYOPlus` except:

    Args:
        readout_spec: the task, a :class:`~torch_brain.registry.ModalitySpec` or a registered name.
        dim_out: outputs per query (default ``readout_spec.dim``).

    Attributes:
        readout_spec: the task's spec (``model.readout_spec.loss_fn``).
        readout: ``nn.Linear(dim, dim_out)``, or the expected-value head chosen by ``readout_head``
            (``{"kind": "bins" | "codebook", ...}``, options as in
            :class:`~torch_brain.models.MultitaskReadout`'s ``heads``; continuous tasks only).
    """

    def __init__(self, *, readout_spec: _registry.ModalitySpec | str = "cursor_velocity_2d",
                 dim_out: int | None = None, sequence_length: float = 1.0, latent_step: float = 0.125,
                 num_latents_per_step: int = 16, dim: int = 128, depth: int = 2, dim_head: int = 64,
                 cross_heads: int = 1, self_heads: int = 8, ffn_dropout: float = 0.2,
                 lin_dropout: float = 0.4, atn_dropout: float = 0.0, emb_init_scale: float = 0.02,
                 t_min: float = 1e-4, t_max: float = 4.0, rotary_periods: list[float] | None = None,
                 readout_head: Mapping[str, Any] | None = None) -> None:
        super().__init__(
            sequence_length=sequence_length, latent_step=latent_step,
            num_latents_per_step=num_latents_per_step, dim=dim, depth=depth, dim_head=dim_head,
            cross_heads=cross_heads, self_heads=self_heads, ffn_dropout=ffn_dropout,
            lin_dropout=lin_dropout, atn_dropout=atn_dropout, emb_init_scale=emb_init_scale,
            t_min=t_min, t_max=t_max, rotary_periods=rotary_periods,
        )
        self.readout_spec = _as_spec(readout_spec)
        self.dim_out = self.readout_spec.dim if dim_out is None else int(dim_out)
        if self.dim_out < 1:
            raise ValueError(f"dim_out must be >= 1, but got {dim_out!r}.")
        self.readout_head = dict(readout_head or {})
        options = dict(self.readout_head)
        kind, sample_k = options.pop("kind", "linear"), options.pop("sample_k", None)
        if kind != "linear" and self.readout_spec.type is not _registry.DataType.CONTINUOUS:
            raise ValueError(f"readout_head kind {kind!r} decodes CONTINUOUS tasks, but "
                             f"{self.readout_spec.name!r} is {self.readout_spec.type.name}; use kind 'linear'.")
        self.readout, loss = make_head(kind, dim, self.dim_out, **options)
        loss = self.readout_spec.loss_fn if loss is None else loss
        if sample_k is not None:
            loss = SampledLoss(loss, sample_k)
        if loss is not self.readout_spec.loss_fn:
            self.readout_spec = dataclasses.replace(self.readout_spec, loss_fn=loss)

    def _readout_hparams(self) -> dict[str, Any]:
        out = {"readout_spec": self.readout_spec.to_dict(), "dim_out": self.dim_out}
        if self.readout_head:
            out["readout_head"] = dict(self.readout_head)
        return out

    def readout_loss_spec(self, task: str) -> _registry.ModalitySpec:
        """The task's spec with the loss its readout head trains with."""
        return self.readout_spec

    def predict(self, task: str, raw: Tensor) -> Tensor:
        """Predictions from the head's raw output (expected values for bins/codebook heads)."""
        return self.readout.predict(raw) if hasattr(self.readout, "predict") else raw

    def vocabulary_heads(self) -> dict[str, nn.Module]:
        """Task -> expected-value head that is fitted on training targets (empty for linear)."""
        return {self.readout_spec.name: self.readout} if hasattr(self.readout, "fit") else {}

    @staticmethod
    def _specs_from_hparams(value: Any) -> Any:
        return None if value is None else _as_spec(value)

    def forward(self, *, input_unit_index: Tensor, input_timestamps: Tensor, input_token_type: Tensor,
                input_mask: Tensor, latent_index: Tensor, latent_timestamps: Tensor,
                output_session_index: Tensor, output_timestamps: Tensor, output_mask: Tensor,
                unpack_output: bool = False) -> Tensor | list[Tensor]:
        """Decode every real query.

        Args: as :meth:`POYOPlus.forward`, with ``output_mask`` (B, Q) bool (True = real query)
        instead of ``output_decoder_index``.

        Returns:
            (sum n_i, dim_out) predictions of the real queries in sample order, or with
            ``unpack_output=True`` a list of B tensors (n_i, dim_out).
        """
        if output_mask.dtype != torch.bool or output_mask.shape != output_session_index.shape:
            raise ValueError(
                f"output_mask must be a bool tensor shaped like output_session_index {tuple(output_session_index.shape)}, "
                f"but got {output_mask.dtype} {tuple(output_mask.shape)}."
            )
        queries = self.session_emb(output_session_index)  # [B, Q, D]
        out = self._forward_embeddings(
            input_unit_index=input_unit_index, input_timestamps=input_timestamps,
            input_token_type=input_token_type, input_mask=input_mask, latent_index=latent_index,
            latent_timestamps=latent_timestamps, queries=queries, output_timestamps=output_timestamps,
        )
        preds = self.readout(out[output_mask])  # [sum n_i, dim_out] (logits of an expected-value head)
        if not unpack_output:
            return preds
        preds = self.predict(self.readout_spec.name, preds)
        return list(torch.split(preds, output_mask.sum(dim=1).tolist()))

    def tokenize(self, data: Any) -> dict[str, Any]:
        """Turn a window into model inputs and targets, ready for ``collate``.

        Queries are at the spec's timestamps; if ``data.config["multitask_readout"]`` has an entry
        whose ``readout_id`` is the spec's name, its weights / eval_interval / normalisation / key
        overrides are applied (see :func:`~torch_brain.models.tokenizer.prepare_readout`).

        Returns:
            ``{"model_inputs": {..., "output_mask"}, "target_values", "target_weights",
            "eval_mask", "session_id", "absolute_start"}`` with chained targets.
        """
        from torch_brain.data import chain, pad8, track_mask8

        inputs, session_index = self._tokenize_inputs(data)
        config = getattr(data, "config", None)
        entry = None
        if isinstance(config, Mapping) and "readout" in config and "multitask_readout" not in config:
            raise ValueError(
                f"data.config of session {str(data.session.id)!r} has a torch_brain 0.1.x 'readout' entry, which "
                "this POYO does not read; rename it: `multitask_readout: [{readout_id: ..., ...}]` (a list)."
            )
        if isinstance(config, Mapping):
            for e in config.get("multitask_readout") or []:
                if isinstance(e, Mapping) and e.get("readout_id") == self.readout_spec.name:
                    entry = e
        targets = prepare_readout(data, self.readout_spec, entry)
        n = targets.timestamps.shape[0]
        inputs["output_session_index"] = pad8(np.full(n, session_index, dtype=np.int64))
        inputs["output_timestamps"] = pad8(targets.timestamps)
        inputs["output_mask"] = track_mask8(targets.timestamps)
        return {
            "model_inputs": inputs,
            "target_values": chain(targets.values),
            "target_weights": chain(targets.weights),
            "eval_mask": chain(targets.eval_mask),
            "session_id": str(data.session.id),
            "absolute_start": float(getattr(data, "absolute_start", 0.0)),
        }

    @classmethod
    def task_kwargs(cls, specs: Mapping[str, _registry.ModalitySpec]) -> dict[str, Any]:
        """Constructor arguments giving POYO a readout for ``specs`` (exactly one task).

        Raises:
            ValueError: ``specs`` does not hold exactly one task.
        """
        if len(specs) != 1:
            raise ValueError(f"model 'poyo' decodes exactly one task, got {list(specs)}; use "
                             "model.name=poyo_plus for several tasks.")
        return {"readout_spec": next(iter(specs.values()))}

    @classmethod
    def load_pretrained(cls, checkpoint_path: str | Path, *,
                        readout_spec: _registry.ModalitySpec | str | None = None,
                        skip_readout: bool = False, map_location: Any = "cpu", weights_only: bool = True,
                        **overrides: Any) -> "POYO":
        """Build a POYO from a checkpoint: hyper-parameters, vocabularies and weights.

        Args:
            checkpoint_path: Lightning checkpoint (``model.``-prefixed keys) or plain state dict.
            readout_spec: the new task (default: the checkpoint's). With a different ``dim`` use
                ``skip_readout=True``.
            skip_readout: leave the readout head freshly initialised.
            map_location: passed to ``torch.load``.
            weights_only: passed to ``torch.load``.
            **overrides: constructor arguments replacing the checkpoint's.

        A checkpoint written by torch_brain 0.1.x loads too; it does not record its task, so pass
        ``readout_spec`` (as 0.1.x's own ``load_pretrained`` required).

        Raises:
            FileNotFoundError, ValueError: see :meth:`POYOPlus.load_pretrained`.
        """
        from torch_brain.models._transfer import load_pretrained

        if readout_spec is not None:
            overrides["readout_spec"] = readout_spec
            overrides.setdefault("dim_out", None)
        return load_pretrained(cls, checkpoint_path, skip_readout=skip_readout, map_location=map_location,
                               weights_only=weights_only, overrides=overrides)
