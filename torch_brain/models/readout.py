"""``MultitaskReadout``: one head per task (linear or expected-value), selected per query by
``output_decoder_index``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from torch_brain import registry as _registry
from torch_brain.nn.expected_value import SampledLoss, make_head

__all__ = ["MultitaskReadout"]


class MultitaskReadout(nn.Module):
    """One head per task, selected per query by ``output_decoder_index``.

    Args:
        dim: size of the query embeddings.
        readout_specs: task name -> :class:`~torch_brain.registry.ModalitySpec`.
        heads: task name -> head options (default: a linear head for every task). ``kind`` is
            ``"linear"`` (``nn.Linear(dim, spec.dim)``), ``"bins"`` or ``"codebook"``
            (expected-value heads for CONTINUOUS tasks, see
            :mod:`torch_brain.nn.expected_value`); further keys are the head's and loss's options
            (``num_bins``, ``sigma_ratio``, ``soft_target``, ``seed``, ``mse_weight``,
            ``ce_weight``), and ``sample_k`` (any kind) computes the task's loss at ``k`` random
            queries per batch (:class:`~torch_brain.nn.expected_value.SampledLoss`).

    Attributes:
        readout_specs: the task name -> spec mapping; ``readout_specs[task].loss_fn`` is the loss the
            task trains with (for expected-value heads an
            :class:`~torch_brain.nn.expected_value.ExpectedValueLoss` on the head's logits).
        projections: ``nn.ModuleDict`` task name -> head.
        heads: the head options given (JSON-friendly, recorded in the model's hyper-parameters).

    Shapes:
        output_embs (B, Q, dim), output_decoder_index (B, Q) int64 (0 = padding).
        ``unpack_output=False`` -> {task: (n_task, raw)}: every query of that task in the batch, in
        sample order (the order of the chained targets); ``raw`` is ``spec.dim`` for linear heads and
        the logits of an expected-value head (what ``loss_fn`` takes). ``True`` -> list of B dicts
        {task: (n_task_in_sample, spec.dim)} of predictions (expected values for bins/codebook heads),
        holding only tasks present in that sample. Tasks without any query in the batch are left out.
    """

    def __init__(self, dim: int, readout_specs: Mapping[str, "_registry.ModalitySpec"],
                 heads: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        specs = _check_specs(readout_specs)
        heads = {} if heads is None else heads
        if not isinstance(heads, Mapping) or set(heads) - set(specs):
            extra = sorted(set(heads) - set(specs)) if isinstance(heads, Mapping) else heads
            raise ValueError(
                f"heads must map task names of readout_specs ({sorted(specs)}) to head options, but got "
                f"{extra!r}; e.g. heads={{'cursor_velocity_2d': {{'kind': 'bins'}}}}."
            )
        self.heads = {task: dict(opts) for task, opts in heads.items()}
        projections = {}
        for name, spec in specs.items():
            opts = dict(self.heads.get(name, {}))
            kind = opts.pop("kind", "linear")
            sample_k = opts.pop("sample_k", None)
            if kind != "linear" and spec.type is not _registry.DataType.CONTINUOUS:
                raise ValueError(
                    f"heads[{name!r}]: kind {kind!r} decodes CONTINUOUS tasks, but {name!r} is "
                    f"{spec.type.name}; use kind 'linear'."
                )
            head, loss = make_head(kind, dim, spec.dim, **opts)
            loss = spec.loss_fn if loss is None else loss
            if sample_k is not None:
                loss = SampledLoss(loss, sample_k)
            if loss is not spec.loss_fn:
                spec = dataclasses.replace(spec, loss_fn=loss)
            specs[name] = spec
            projections[name] = head
        self.readout_specs: dict[str, _registry.ModalitySpec] = specs
        self.projections = nn.ModuleDict(projections)

    def predict(self, task: str, raw: Tensor) -> Tensor:
        """Predictions (n, spec.dim) from a task's raw head output (identity for linear heads)."""
        head = self.projections[task]
        return head.predict(raw) if hasattr(head, "predict") else raw

    def vocabulary_heads(self) -> dict[str, nn.Module]:
        """Task -> expected-value head (the heads that need :meth:`fit` on training targets)."""
        return {t: h for t, h in self.projections.items() if hasattr(h, "fit")}

    def forward(self, output_embs: Tensor, output_decoder_index: Tensor,
                unpack_output: bool = False) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if output_embs.shape[:2] != output_decoder_index.shape:
            raise ValueError(
                f"output_embs (B, Q, dim) and output_decoder_index (B, Q) disagree: got "
                f"{tuple(output_embs.shape)} and {tuple(output_decoder_index.shape)}."
            )
        outputs: dict[str, Tensor] = {}
        counts: dict[str, list[int]] = {}
        for name, spec in self.readout_specs.items():
            mask = output_decoder_index == spec.id  # [B, Q]
            per_sample = mask.sum(dim=1)
            if not bool(per_sample.any()):
                continue
            # rows in (sample, query) order == order of the chained targets
            outputs[name] = self.projections[name](output_embs[mask])  # [n_task, raw]
            counts[name] = per_sample.tolist()
        if self.training and outputs and _distributed():
            # DDP (find_unused_parameters=False, Lightning's "ddp") expects a gradient for every
            # parameter on every rank; a head whose task has no query in this rank's batch would
            # get none and the ranks' gradient reductions would pair up wrongly and hang. Tie the
            # absent heads in with weight 0: their gradient on this rank is exactly 0, which is what
            # DDP's average counts for a rank without that task anyway.
            absent = [p for name in self.projections if name not in outputs
                      for p in self.projections[name].parameters() if p.requires_grad]
            if absent:
                first = next(iter(outputs))
                outputs[first] = outputs[first] + 0.0 * sum(p.sum() for p in absent)
        if not unpack_output:
            return outputs
        batch = output_embs.shape[0]
        unpacked: list[dict[str, Tensor]] = [{} for _ in range(batch)]
        for name, out in outputs.items():
            out = self.predict(name, out)
            for i, chunk in enumerate(torch.split(out, counts[name])):
                if counts[name][i]:
                    unpacked[i][name] = chunk
        return unpacked


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


def _check_specs(readout_specs: Any) -> dict:
    if isinstance(readout_specs, _registry.ModalitySpec) or not isinstance(readout_specs, Mapping):
        raise TypeError(
            "readout_specs must be a dict task name -> ModalitySpec (e.g. torch_brain.registry."
            f"MODALITY_REGISTRY), but got {type(readout_specs).__name__}."
        )
    if not readout_specs:
        raise ValueError("readout_specs is empty; give at least one task name -> ModalitySpec.")
    ids: dict[int, str] = {}
    for name, spec in readout_specs.items():
        if not isinstance(spec, _registry.ModalitySpec):
            raise TypeError(f"readout_specs[{name!r}] must be a ModalitySpec, but got {type(spec).__name__}.")
        if not isinstance(name, str) or "." in name or not name:
            raise ValueError(f"readout task names must be non-empty str without '.', but got {name!r}.")
        if spec.id in ids:
            raise ValueError(
                f"readout_specs[{name!r}] and readout_specs[{ids[spec.id]!r}] share id {spec.id}; "
                "each task needs its own id."
            )
        ids[spec.id] = name
    return dict(readout_specs)
