"""The exportable part of the streaming decoder: one causal window of one session -> one estimate per task.

:class:`StreamingCore` is built from a trained POYO / POYOPlus (evaluation mode) and computes
exactly what the model's ``forward`` computes for a single window whose queries all sit at the
window end, but with everything that does not depend on the window's spikes computed once:

* input-token keys/values: the encoder's ``norm_context`` + ``to_kv`` act row by row on
  ``unit_emb[u] + token_type_emb[type]``, so the (unit, type) table of the session's units is
  projected once (``spike_kv``, ``start_kv``, ``end_kv``; the model itself already projects once per
  distinct pair and gathers, so this is the same arithmetic);
* unit-start tokens sit at relative time 0: rotation by angle 0 is the identity, so their rotated
  keys/values are constant (``start_kv``);
* latent queries: ``latent_emb(latent_index)`` and the latent times (relative to the window start)
  are the same for every window, so the encoder's rotated queries are constant (``enc_q``), as are
  the latents' rotary angles used by every later block;
* output queries: session embedding (+ task embedding for POYO+) are constant (``queries``).

What is recomputed per window: the rotation of each spike's key/value by its window-relative time
(``float32(t_spike - window_start)``, the value the offline path feeds the model; see
``docs/streaming.md`` for why a per-spike rotated cache on the absolute clock is not used), the
encoder attention, the encoder feed-forward, the self-attention blocks and the decoder.

The forward uses only tensor operations and the model's own submodules, so it exports with
``torch.export`` (see :func:`export_core`) and runs without Lightning.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torch_brain.models.tokenizer import SPIKE_TOKEN, UNIT_END_TOKEN, UNIT_START_TOKEN
from torch_brain.nn import rotate

__all__ = ["StreamingCore", "export_core"]


def _angles(omega: Tensor, times: Tensor) -> tuple[Tensor, Tensor]:
    """(N,) float32 times -> (cos, sin), each (N, half) float32, as ``RotaryTimeEmbedding`` computes them."""
    angle = times.to(torch.float64).unsqueeze(-1) * omega  # [N, half], float64 like the model
    return angle.cos().float(), angle.sin().float()


class StreamingCore(nn.Module):
    """One window of one session -> the estimate of every task at the window end.

    Args:
        model: a trained POYO or POYOPlus (copied; the original is not modified).
        session_index: row of the session in ``model.session_emb``.
        unit_rows: (U,) rows of the session's units in ``model.unit_emb``; spikes are given as
            positions into this list.
        tasks: task names (POYO+: keys of ``model.readout.readout_specs``; POYO: its spec's name).

    Shapes:
        forward(spike_times (N,) float32 seconds relative to the window start, spike_units (N,) int64
        in [0, U), end_time (1,) float32 window length) -> tuple of (dim_task,) tensors, one per
        task in ``tasks`` order.
    """

    def __init__(self, model: nn.Module, session_index: int, unit_rows: Sequence[int], tasks: Sequence[str]) -> None:
        super().__init__()
        model = copy.deepcopy(model).float().eval().requires_grad_(False)
        self.tasks = tuple(tasks)
        enc = model.enc_atn
        self.heads = enc.heads
        self.enc_atn, self.enc_ffn = enc, model.enc_ffn
        self.proc_layers, self.dec_atn, self.dec_ffn = model.proc_layers, model.dec_atn, model.dec_ffn
        if hasattr(model, "task_emb"):  # POYOPlus
            self.heads_out = nn.ModuleList(model.readout.projections[t] for t in self.tasks)
        else:  # POYO: one linear head
            self.heads_out = nn.ModuleList([model.readout])
        self.register_buffer("omega", model.rotary.omega.clone())
        rows = torch.as_tensor(list(unit_rows), dtype=torch.long)
        with torch.no_grad():
            unit = model.unit_emb.weight[rows]  # [U, D]
            types = model.token_type_emb.weight
            tokens = torch.stack([unit + types[k] for k in (SPIKE_TOKEN, UNIT_START_TOKEN, UNIT_END_TOKEN)])
            kv = enc.to_kv(enc.norm_context(tokens))  # [3, U, 2*H*Dh]
            kv = kv.view(3, len(rows), 2 * enc.heads, -1)  # keys then values per head
            self.register_buffer("spike_kv", kv[0].clone())  # rotated per spike per window
            self.register_buffer("start_kv", kv[1].clone())  # at time 0: angle 0, no rotation
            self.register_buffer("end_kv", kv[2].clone())  # rotated by the window length
            latent_index = torch.as_tensor(model._latent_index)
            latent_times = torch.as_tensor(model._latent_timestamps)
            latents = model.latent_emb(latent_index)  # [L, D]
            cos, sin = _angles(self.omega, latent_times)  # [L, half]
            q = enc.to_q(enc.norm(latents)).view(1, len(latent_index), enc.heads, -1).transpose(1, 2)
            self.register_buffer("latents", latents)
            self.register_buffer("latent_cos", cos)
            self.register_buffer("latent_sin", sin)
            self.register_buffer("enc_q", rotate(q, cos, sin).contiguous())  # [1, H, L, Dh]
            session = model.session_emb.weight[session_index]
            if hasattr(model, "task_emb"):
                task_rows = torch.tensor([model._task_rows[t] for t in self.tasks])
                queries = session + model.task_emb.weight[task_rows]  # [T, D]
            else:
                queries = session[None]
            self.register_buffer("queries", queries[None].contiguous())  # [1, T, D]

    def forward(self, spike_times: Tensor, spike_units: Tensor, end_time: Tensor) -> tuple[Tensor, ...]:
        enc = self.enc_atn
        h = self.heads
        # spike keys/values: gathered from the unit table, rotated by their window-relative times
        cos, sin = _angles(self.omega, spike_times)  # [N, half]
        kv = F.embedding(spike_units, self.spike_kv.flatten(1)).view(-1, 2 * h, self.spike_kv.shape[-1])
        kv = rotate(kv, cos[:, None], sin[:, None])  # [N, 2H, Dh]
        end_cos, end_sin = _angles(self.omega, end_time)  # [1, half]
        end_kv = rotate(self.end_kv, end_cos[:, None], end_sin[:, None])  # [U, 2H, Dh]
        kv = torch.cat([kv, self.start_kv, end_kv]).transpose(0, 1)[None]  # [1, 2H, M, Dh]
        out = F.scaled_dot_product_attention(self.enc_q, kv[:, :h], kv[:, h:])  # [1, H, L, Dh]
        out = rotate(out, self.latent_cos, self.latent_sin, inverse=True)  # back to the latent times
        latents = self.latents + enc.to_out(out.transpose(1, 2).flatten(2))  # [1, L, D]
        latents = latents + self.enc_ffn(latents)
        latent_rot = (self.latent_cos[None], self.latent_sin[None])
        for self_atn, ffn in self.proc_layers:
            latents = latents + self_atn(latents, latent_rot)
            latents = latents + ffn(latents)
        n_tasks = self.queries.shape[1]
        q_cos, q_sin = end_cos.expand(n_tasks, -1)[None], end_sin.expand(n_tasks, -1)[None]
        out = self.queries + self.dec_atn(self.queries, latents, (q_cos, q_sin), latent_rot)  # [1, T, D]
        out = out + self.dec_ffn(out)
        return tuple(_predict(head, out[0, i]) for i, head in enumerate(self.heads_out))


def _predict(head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A head's prediction for one query embedding (D,): expected values for bins/codebook heads."""
    raw = head(x)
    return head.predict(raw[None])[0] if hasattr(head, "predict") else raw


def export_core(core: StreamingCore, path: str | None = None) -> torch.export.ExportedProgram:
    """``torch.export`` the core with a dynamic number of spikes; optionally save it (``torch.export.save``).

    The saved program runs with ``torch.export.load(path).module()(spike_times, spike_units,
    end_time)``: no torch_brain, no Lightning needed.
    """
    n = torch.export.Dim("spikes", min=0, max=1 << 20)
    example = (torch.tensor([0.1, 0.2], dtype=torch.float32), torch.tensor([0, 0], dtype=torch.long),
               torch.tensor([1.0], dtype=torch.float32))
    with torch.no_grad():
        program = torch.export.export(core, example, dynamic_shapes=({0: n}, {0: n}, None))
    if path is not None:
        torch.export.save(program, path)
    return program
