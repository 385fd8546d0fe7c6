"""POYO+: multi-session, multi-task POYO."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torch_brain import registry as _registry
from torch_brain.models._base import POYOBase, spec_from_dict
from torch_brain.models._registry import register_model
from torch_brain.models.readout import MultitaskReadout
from torch_brain.models.tokenizer import prepare_readout, task_configs

__all__ = ["POYOPlus"]


@register_model("poyo_plus")
class POYOPlus(POYOBase):
    """POYO+ decodes several tasks (``readout_specs``) from spikes of many sessions.

    Each output query is the sum of its session's embedding and its task's embedding; the query
    embeddings are read out by the task's linear head (:class:`~torch_brain.models.MultitaskReadout`).

    Args:
        sequence_length: window length in seconds (latents cover ``[0, sequence_length)``).
        latent_step: spacing of the latent time grid in seconds.
        num_latents_per_step: latent tokens per grid step.
        dim: model width.
        depth: number of self-attention blocks on the latents.
        dim_head: features per attention head.
        cross_heads: heads of the encoder/decoder cross-attention.
        self_heads: heads of the latent self-attention.
        ffn_dropout: dropout inside the feed-forward blocks.
        lin_dropout: dropout on the output embeddings before the readout.
        atn_dropout: attention dropout.
        emb_init_scale: std of the embeddings' normal initialisation.
        t_min: shortest rotary period (s).
        t_max: longest rotary period (s).
        rotary_periods: the ``dim_head // 4`` rotary periods (s) themselves instead of the ones
            log-spaced between ``t_min`` and ``t_max``; ``load_pretrained`` sets them to keep the
            exact (float32) frequencies of a torch_brain 0.1.x checkpoint. Default None.
        readout_specs: task name -> ModalitySpec, or a list of registered names (or of
            ``ModalitySpec.to_dict()`` entries); default: every modality registered in
            :data:`torch_brain.registry.MODALITY_REGISTRY` at construction time.
        readout_heads: task name -> head options, e.g. ``{"cursor_velocity_2d": {"kind": "bins",
            "num_bins": 64}}`` (default: linear heads); see :class:`~torch_brain.models.MultitaskReadout`.

    Example:
        >>> model = POYOPlus(sequence_length=1.0, latent_step=0.05, dim=256, depth=4)
        >>> model.unit_emb.initialize_vocab(dataset.get_unit_ids())  # doctest: +SKIP
        >>> model.session_emb.initialize_vocab(dataset.get_session_ids())  # doctest: +SKIP
    """

    def __init__(self, *, sequence_length: float = 1.0, latent_step: float = 0.125,
                 num_latents_per_step: int = 16, dim: int = 128, depth: int = 2, dim_head: int = 64,
                 cross_heads: int = 1, self_heads: int = 8, ffn_dropout: float = 0.2,
                 lin_dropout: float = 0.4, atn_dropout: float = 0.0, emb_init_scale: float = 0.02,
                 t_min: float = 1e-4, t_max: float = 4.0, rotary_periods: list[float] | None = None,
                 readout_specs: Mapping[str, _registry.ModalitySpec] | None = None,
                 readout_heads: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(
            sequence_length=sequence_length, latent_step=latent_step,
            num_latents_per_step=num_latents_per_step, dim=dim, depth=depth, dim_head=dim_head,
            cross_heads=cross_heads, self_heads=self_heads, ffn_dropout=ffn_dropout,
            lin_dropout=lin_dropout, atn_dropout=atn_dropout, emb_init_scale=emb_init_scale,
            t_min=t_min, t_max=t_max, rotary_periods=rotary_periods,
        )
        if readout_specs is None:
            readout_specs = dict(_registry.MODALITY_REGISTRY)
        elif isinstance(readout_specs, (list, tuple)):  # registered names or ModalitySpec.to_dict() entries
            readout_specs = self._specs_from_hparams(readout_specs)
        self.readout = MultitaskReadout(dim, readout_specs, heads=readout_heads)
        specs = self.readout.readout_specs
        ids = sorted(spec.id for spec in specs.values())
        # task_emb row r belongs to the task with the r-th smallest id. A plain tensor, not a
        # buffer: DDP broadcasts buffers in the first forward after a training step, so in the
        # validation inside `fit` a rank with no evaluation window would leave the others waiting.
        self._task_ids = torch.tensor(ids, dtype=torch.long)
        self._task_rows = {name: ids.index(spec.id) for name, spec in specs.items()}
        self.task_emb = nn.Embedding(len(ids), dim)
        nn.init.normal_(self.task_emb.weight, std=emb_init_scale)

    def _readout_hparams(self) -> dict[str, Any]:
        out: dict[str, Any] = {"readout_specs": [spec.to_dict() | {"name": name}
                                                 for name, spec in self.readout.readout_specs.items()]}
        if self.readout.heads:
            out["readout_heads"] = {t: dict(o) for t, o in self.readout.heads.items()}
        return out

    def readout_loss_spec(self, task: str) -> _registry.ModalitySpec:
        """The task's spec with the loss its readout head trains with."""
        return self.readout.readout_specs[task]

    def predict(self, task: str, raw: Tensor) -> Tensor:
        """Predictions from a task's raw head output (expected values for bins/codebook heads)."""
        return self.readout.predict(task, raw)

    def vocabulary_heads(self) -> dict[str, nn.Module]:
        """Task -> expected-value head that is fitted on training targets."""
        return self.readout.vocabulary_heads()

    @staticmethod
    def _specs_from_hparams(value: Any) -> dict[str, _registry.ModalitySpec] | None:
        if value is None:
            return None
        if isinstance(value, Mapping):
            return {name: s if isinstance(s, _registry.ModalitySpec) else spec_from_dict({**s, "name": name})
                    for name, s in value.items()}
        out = {}
        for entry in value:
            if isinstance(entry, str):
                out[entry] = _registry.get_modality(entry)
            else:
                out[entry["name"]] = spec_from_dict(entry)
        return out

    # ------------------------------------------------------------------ forward
    def forward(self, *, input_unit_index: Tensor, input_timestamps: Tensor, input_token_type: Tensor,
                input_mask: Tensor, latent_index: Tensor, latent_timestamps: Tensor,
                output_session_index: Tensor, output_timestamps: Tensor, output_decoder_index: Tensor,
                unpack_output: bool = False) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Decode every query.

        Args:
            input_unit_index: (B, N) int64 unit_emb rows of the input tokens.
            input_timestamps: (B, N) float token times (s, relative to the window).
            input_token_type: (B, N) int64 (0 spike, 1 unit start, 2 unit end).
            input_mask: (B, N) bool, True for real tokens.
            latent_index: (B, L) int64 latent ids; latent_timestamps: (B, L) float.
            output_session_index: (B, Q) int64 session_emb rows of the queries.
            output_timestamps: (B, Q) float query times.
            output_decoder_index: (B, Q) int64 task ids (``spec.id``; 0 = padding).
            unpack_output: see :class:`~torch_brain.models.MultitaskReadout`.

        Returns:
            ``{task: (n_task, dim_task)}`` (queries of the whole batch, in sample order), or with
            ``unpack_output=True`` a list of B dicts ``{task: (n_task_in_sample, dim_task)}``.
        """
        if output_decoder_index.shape != output_session_index.shape or output_timestamps.shape != output_session_index.shape:
            raise ValueError(
                "output_session_index, output_timestamps and output_decoder_index must share the shape "
                f"(B, Q), but got {tuple(output_session_index.shape)}, {tuple(output_timestamps.shape)} "
                f"and {tuple(output_decoder_index.shape)}."
            )
        if self._task_ids.device != output_decoder_index.device:
            self._task_ids = self._task_ids.to(output_decoder_index.device)
        rows = torch.searchsorted(self._task_ids, output_decoder_index)
        rows = rows.clamp_(max=len(self._task_ids) - 1)
        known = (self._task_ids[rows] == output_decoder_index) | (output_decoder_index == 0)
        if not bool(known.all()):
            bad = torch.unique(output_decoder_index[~known]).tolist()
            raise ValueError(
                f"output_decoder_index holds task ids {bad[:10]} that are not in this model's readout_specs "
                f"({ {n: s.id for n, s in self.readout.readout_specs.items()} }); build the model with "
                "readout_specs covering every task of the dataset config."
            )
        queries = self.session_emb(output_session_index) + self.task_emb(rows)  # [B, Q, D]
        out = self._forward_embeddings(
            input_unit_index=input_unit_index, input_timestamps=input_timestamps,
            input_token_type=input_token_type, input_mask=input_mask, latent_index=latent_index,
            latent_timestamps=latent_timestamps, queries=queries, output_timestamps=output_timestamps,
        )
        return self.readout(out, output_decoder_index, unpack_output=unpack_output)

    # ------------------------------------------------------------------ tokenizer
    def tokenize(self, data: Any) -> dict[str, Any]:
        """Turn a window (``Data``) into model inputs and per-task targets, ready for ``collate``.

        Tasks come from ``data.config["multitask_readout"]`` (``readout_id`` must be in
        ``readout_specs``); targets are built by :func:`~torch_brain.models.tokenizer.prepare_readout`.

        Returns:
            ``{"model_inputs": {...}, "target_values": {task: chain}, "target_weights": {task:
            chain}, "eval_mask": {task: chain}, "session_id": str, "absolute_start": float}``;
            per-query inputs are padded (``pad8``) and target fields chained over the batch.
        """
        from torch_brain.data import chain, pad8

        inputs, session_index = self._tokenize_inputs(data)
        specs = self.readout.readout_specs
        timestamps, decoder_index = [], []
        values, weights, eval_mask = {}, {}, {}
        for entry in task_configs(data):
            task = entry["readout_id"]
            if task not in specs:
                raise ValueError(
                    f"multitask_readout names task {task!r}, which is not in this model's readout_specs "
                    f"({sorted(specs)}); register it and pass it in readout_specs."
                )
            if task in values:
                raise ValueError(f"multitask_readout lists task {task!r} twice; give each task once.")
            spec = specs[task]
            targets = prepare_readout(data, spec, entry, task=task)
            n = targets.timestamps.shape[0]
            timestamps.append(targets.timestamps)
            decoder_index.append(np.full(n, spec.id, dtype=np.int64))
            values[task] = chain(targets.values)
            weights[task] = chain(targets.weights)
            eval_mask[task] = chain(targets.eval_mask)
        output_timestamps = np.concatenate(timestamps)
        inputs["output_session_index"] = pad8(np.full(output_timestamps.shape[0], session_index, dtype=np.int64))
        inputs["output_timestamps"] = pad8(output_timestamps)
        inputs["output_decoder_index"] = pad8(np.concatenate(decoder_index))
        return {
            "model_inputs": inputs,
            "target_values": values,
            "target_weights": weights,
            "eval_mask": eval_mask,
            "session_id": _session_str(data),
            "absolute_start": float(getattr(data, "absolute_start", 0.0)),
        }

    # ------------------------------------------------------------------ transfer
    @classmethod
    def task_kwargs(cls, specs: Mapping[str, _registry.ModalitySpec]) -> dict[str, Any]:
        """Constructor arguments giving POYOPlus one readout per entry of ``specs``."""
        return {"readout_specs": dict(specs)}

    @classmethod
    def load_pretrained(cls, checkpoint_path: str | Path, *,
                        readout_specs: Mapping[str, _registry.ModalitySpec] | None = None,
                        skip_readout: bool = False, map_location: Any = "cpu", weights_only: bool = True,
                        legacy_task_ids: Mapping[str, int] | None = None, **overrides: Any) -> "POYOPlus":
        """Build a POYOPlus from a checkpoint: hyper-parameters, vocabularies and weights.

        Args:
            checkpoint_path: a Lightning checkpoint (``state_dict`` keys prefixed ``model.``, or any
                prefix) or a plain ``state_dict`` saved with ``torch.save``.
            readout_specs: tasks of the new model (default: the checkpoint's).
            skip_readout: leave the readout heads freshly initialised (new tasks); task embeddings
                of tasks the checkpoint knows are still loaded.
            map_location: passed to ``torch.load``.
            weights_only: passed to ``torch.load``; set False only for checkpoints you trust that
                hold pickled Python objects.
            legacy_task_ids: for a torch_brain 0.1.x checkpoint only: the 0.1.x registry ids of
                tasks that 0.1.x user code registered (0.1.x numbered them in registration order;
                its built-ins are known), e.g. ``{"eye_position_2d": 20}``.
            **overrides: constructor arguments that replace the checkpoint's (e.g. dropouts).

        A checkpoint written by torch_brain 0.1.x loads too (see the "Coming from torch_brain
        0.1.x" docs page): its weights are mapped onto this model and predict what 0.1.x did.

        Raises:
            FileNotFoundError: no file at ``checkpoint_path``.
            ValueError: hyper-parameters not found, or weights whose shapes/keys do not match the
                model (the mismatching keys are listed).
        """
        from torch_brain.models._transfer import load_pretrained

        if readout_specs is not None:
            overrides["readout_specs"] = readout_specs
        return load_pretrained(cls, checkpoint_path, skip_readout=skip_readout, map_location=map_location,
                               weights_only=weights_only, overrides=overrides, legacy_task_ids=legacy_task_ids)


def _session_str(data: Any) -> str:
    return str(data.session.id)
