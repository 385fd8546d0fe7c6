"""The exportable part of the streaming decoder: one causal window of one session -> one estimate per task.

:class:`StreamingCore` is built from a trained POYO / POYOPlus (evaluation mode) and computes
exactly what the model's ``forward`` computes for a single window whose queries all sit at the
window end, but with everything that does not depend on the window's spikes computed once:

* input-token keys/values: the encoder's ``norm_context`` + ``to_kv`` act row by row on
  ``unit_emb[u] + token_type_emb[type]``, so the (unit, type) table of the session's units is
  projected once (the model itself already projects once per distinct pair and gathers, so this is
  the same arithmetic);
* unit-start tokens sit at relative time 0: rotation by angle 0 is the identity, so their keys and
  values are constant;
* latent queries: ``latent_emb(latent_index)`` and the latent times (relative to the window start)
  are the same for every window, so the encoder's rotated queries are constant, as are the latents'
  rotary angles used by every later block;
* output queries: session embedding (+ task embedding for POYO+) and the decoder's query projection
  of them are constant.

What is recomputed per window: the rotation of each spike's key/value by its window-relative time
(``float32(t_spike - window_start)``, the value the offline path feeds the model; see
``docs/streaming.md`` for why a per-spike rotated cache on the absolute clock is not used), the
encoder attention, the encoder feed-forward, the self-attention blocks and the decoder.

How it is made fast without changing the numbers (the forward is the model's arithmetic, in the
model's float32, to ~1e-7):

* **rotations as one complex multiply, in place.** The rotary planes are feature pairs ``(j, j +
  half)`` of each head. The attention layers' projection weights (and the cached tables) are stored
  with each head's features permuted so that the pairs sit next to each other; a rotation is then
  ``view_as_complex(x) *= exp(i angle)`` on the projection's own output. Permuting the features of
  queries and keys alike leaves every dot product unchanged, and the output projections' columns are
  permuted to match, so the block outputs are the model's. (A head of odd size gets one zero
  feature, which adds nothing to any dot product or output.)
* **no fresh large buffers per update.** The gathered spike keys/values, the self-attention
  projections and the feed-forward hidden layer are written (``out=``) into scratch tensors kept by
  the core and grown to the largest window seen. Allocating ~3 MB afresh per update made the
  allocator hand freshly mapped pages back every time: 300–700 page faults per update in our
  measurements, up to a quarter of an update at dim 64 (``benchmarks/RESULTS.md``). The scratch is
  per core, so one core must not run in two threads at once (a :class:`StreamingDecoder` is one
  stream anyway); :func:`export_core` traces the allocating form, which has no such state.
* **weights from plain tuples.** The per-layer weights are looked up once into a tuple (rebuilt by
  ``_apply``, i.e. ``.to()``), not through ``nn.Module`` attributes on every update.

The forward uses only tensor operations and the model's own parameters, so it exports with
``torch.export`` (see :func:`export_core`) and runs without Lightning.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torch_brain.models.tokenizer import SPIKE_TOKEN, UNIT_END_TOKEN, UNIT_START_TOKEN

__all__ = ["StreamingCore", "export_core"]


def _rotate_(x: Tensor, z: Tensor) -> None:
    """Rotate in place the interleaved rotary pairs of ``x`` (..., Dh) by ``z`` (complex, broadcast to (..., half))."""
    half = z.shape[-1]
    torch.view_as_complex(x[..., : 2 * half].unflatten(-1, (half, 2))).mul_(z)


def _layout(half: int, dh: int) -> tuple[Tensor, int]:
    """Feature order of a head in the core's layout: pairs ``(j, j + half)`` side by side, then the rest.

    Returns the index into the head's features padded with one zero feature (index ``dh``) and the
    padded size (``dh`` rounded up to even, so that complex views of every head line up).
    """
    pairs = torch.stack([torch.arange(half), torch.arange(half) + half], 1).flatten()
    padded = dh + dh % 2
    index = torch.cat([pairs, torch.arange(2 * half, dh), torch.full((padded - dh,), dh)])
    return index, padded


def _to_layout(x: Tensor, index: Tensor, dim: int, dh: int) -> Tensor:
    """Per-head features of ``x`` along ``dim`` (heads * dh of them) in the core's layout."""
    x = x.movedim(dim, -1)
    heads = x.shape[-1] // dh
    x = x.unflatten(-1, (heads, dh))
    x = torch.cat([x, x.new_zeros(*x.shape[:-1], 1)], -1)[..., index]  # the extra zero feature, if any
    return x.flatten(-2).movedim(-1, dim).contiguous()


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

    Note:
        The core keeps scratch tensors between calls (see the module docstring): call one core from
        one thread at a time. A :class:`~torch_brain.inference.StreamingDecoder` serves one stream;
        give each concurrent stream its own decoder.
    """

    def __init__(self, model: nn.Module, session_index: int, unit_rows: Sequence[int], tasks: Sequence[str]) -> None:
        super().__init__()
        model = copy.deepcopy(model).float().eval().requires_grad_(False)
        self.tasks = tuple(tasks)
        enc, dec = model.enc_atn, model.dec_atn
        self.heads, self.dec_heads = enc.heads, dec.heads
        self.rotate_values = (enc.rotate_value, dec.rotate_value)
        self.enc_ffn, self.dec_ffn = model.enc_ffn, model.dec_ffn
        self.ffns = nn.ModuleList(ffn for _, ffn in model.proc_layers)
        self.self_norms = nn.ModuleList(atn.norm for atn, _ in model.proc_layers)
        self.self_heads = tuple(atn.heads for atn, _ in model.proc_layers)
        self.self_rotate_values = tuple(atn.rotate_value for atn, _ in model.proc_layers)
        self.dec_norm = dec.norm_context
        if hasattr(model, "task_emb"):  # POYOPlus
            self.heads_out = nn.ModuleList(model.readout.projections[t] for t in self.tasks)
        else:  # POYO: one linear head
            self.heads_out = nn.ModuleList([model.readout])
        self.rotary = model.rotary  # the model's angles: (N,) times -> (cos, sin), each (N, half)
        half = model.rotary.rotate_dim // 2
        dh = enc.to_q.weight.shape[0] // enc.heads
        index, self.dh = _layout(half, dh)
        # SDPA's default scale is 1/sqrt(head size): keep the model's when a zero feature is added
        self.scale = None if dh == self.dh else dh ** -0.5
        self._reuse = True  # scratch tensors (see the module doc); export_core traces without them
        self._scratch: dict[str, Tensor] = {}
        self._plan: tuple | None = None

        def rows(w: Tensor) -> Tensor:  # output features of a projection (heads * dh rows)
            return _to_layout(w, index, 0, dh)

        def cols(w: Tensor) -> Tensor:  # input features of an output projection, transposed for addmm
            return _to_layout(w, index, 1, dh).t().contiguous()

        with torch.no_grad():
            unit_rows = torch.as_tensor(list(unit_rows), dtype=torch.long)
            unit = model.unit_emb.weight[unit_rows]  # [U, D]
            types = model.token_type_emb.weight
            tokens = torch.stack([unit + types[k] for k in (SPIKE_TOKEN, UNIT_START_TOKEN, UNIT_END_TOKEN)])
            kv = F.linear(enc.norm_context(tokens), rows(enc.to_kv.weight))  # [3, U, 2 * H * dh']
            self.register_buffer("spike_kv", kv[0].clone())  # rotated per spike per window
            self.register_buffer("start_kv", kv[1].clone())  # at time 0: angle 0, no rotation
            self.register_buffer("end_kv", kv[2].clone())  # rotated by the window length
            latent_times = torch.as_tensor(model._latent_timestamps)
            latents = model.latent_emb(torch.as_tensor(model._latent_index))  # [L, D]
            n_latents = latents.shape[0]
            z = torch.complex(*self.rotary(latent_times))  # [L, half]
            q = F.linear(enc.norm(latents), rows(enc.to_q.weight)).view(n_latents, enc.heads, self.dh)
            _rotate_(q, z[:, None])
            self.register_buffer("latent_z", z)
            self.register_buffer("latent_z_inv", z.conj().resolve_conj())
            self.register_buffer("enc_q", q.transpose(0, 1)[None].contiguous())  # [1, H, L, dh']
            self.register_buffer("enc_out_w", cols(enc.to_out.weight))
            self.register_buffer("latents_plus_bias", latents + enc.to_out.bias)
            for i, (atn, _) in enumerate(model.proc_layers):
                self.register_buffer(f"self{i}_qkv_w", rows(atn.to_qkv.weight).t().contiguous())
                self.register_buffer(f"self{i}_out_w", cols(atn.to_out.weight))
                self.register_buffer(f"self{i}_out_b", atn.to_out.bias.clone())
            session = model.session_emb.weight[session_index]
            if hasattr(model, "task_emb"):
                task_rows = torch.tensor([model._task_rows[t] for t in self.tasks])
                queries = session + model.task_emb.weight[task_rows]  # [T, D]
            else:
                queries = session[None]
            self.register_buffer("queries", queries.clone())  # [T, D]
            q = F.linear(dec.norm(queries), rows(dec.to_q.weight))  # rotated by the window end per call
            self.register_buffer("dec_q", q.view(len(queries), dec.heads, self.dh).transpose(0, 1)[None].contiguous())
            self.register_buffer("dec_kv_w", rows(dec.to_kv.weight).t().contiguous())
            self.register_buffer("dec_out_w", cols(dec.to_out.weight))
            self.register_buffer("dec_out_b", dec.to_out.bias.clone())

    def _buffer(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """An uninitialised tensor of ``shape`` like ``like``: a view of the named scratch tensor when reusing."""
        if not self._reuse:
            return torch.empty(shape, dtype=like.dtype, device=like.device)
        n = math.prod(shape)
        t = self._scratch.get(name)
        # inference tensors cannot be written outside inference mode (and vice versa): re-made on a switch;
        # a change of device or dtype goes through _apply, which drops the scratch
        if t is None or t.numel() < n or t.is_inference() != torch.is_inference_mode_enabled():
            t = self._scratch[name] = torch.empty(n, dtype=like.dtype, device=like.device)
        return t[:n].view(shape)

    def _apply(self, fn, recurse=True):  # .to() / .float() / ... replace the tensors: re-make plan and scratch
        self._plan, self._scratch = None, {}
        return super()._apply(fn, recurse)

    def _make_plan(self) -> tuple:
        """The per-layer weights as plain tuples: looking them up through nn.Module attributes on every
        update cost ~0.1 ms at dim 64."""

        def ffn(f: nn.Module) -> tuple:
            return (f.norm.weight, f.norm.bias, f.norm.eps, f.w1.weight.t(), f.w1.bias, f.w2.weight.t(), f.w2.bias)
        layers = tuple((norm.weight, norm.bias, norm.eps, getattr(self, f"self{i}_qkv_w"),
                        getattr(self, f"self{i}_out_w"), getattr(self, f"self{i}_out_b"), self.self_heads[i],
                        self.self_rotate_values[i], ffn(f))
                       for i, (norm, f) in enumerate(zip(self.self_norms, self.ffns)))
        n = self.dec_norm
        heads = tuple((h.weight, h.bias) if type(h) is nn.Linear else h for h in self.heads_out)
        return (ffn(self.enc_ffn), layers, (n.weight, n.bias, n.eps), ffn(self.dec_ffn), heads)

    def _ffn(self, weights: tuple, x: Tensor) -> Tensor:
        """``FeedForward`` (pre-norm GEGLU) on (N, D) rows, its hidden layer in scratch."""
        ln_w, ln_b, eps, w1, b1, w2, b2 = weights
        x = F.layer_norm(x, x.shape[-1:], ln_w, ln_b, eps)
        hidden = torch.addmm(b1, x, w1, out=self._buffer("ffn", (x.shape[0], w1.shape[1]), x))
        a, gate = hidden.chunk(2, dim=-1)
        return torch.addmm(b2, a * F.gelu(gate), w2)

    def forward(self, spike_times: Tensor, spike_units: Tensor, end_time: Tensor) -> tuple[Tensor, ...]:
        plan = self._plan if self._reuse else None  # export traces the module's own attributes
        if plan is None:
            plan = self._make_plan()
            if self._reuse:
                self._plan = plan
        enc_ffn, layers, dec_norm, dec_ffn, heads = plan
        h, dh = self.heads, self.dh
        spike_kv = self.spike_kv
        n, u = spike_times.shape[0], self.start_kv.shape[0]
        z = torch.complex(*self.rotary(torch.cat([spike_times, end_time])))  # [N + 1, half]: spikes, window end
        # encoder keys/values, one row per token: spikes, unit ends, unit starts
        kv = self._buffer("enc", (n + 2 * u, spike_kv.shape[1]), spike_kv)
        torch.index_select(spike_kv, 0, spike_units, out=kv[:n])
        kv[n:n + u] = self.end_kv
        kv[n + u:] = self.start_kv
        kv = kv.view(n + 2 * u, 2 * h, dh)
        rotated = kv[:n + u] if self.rotate_values[0] else kv[:n + u, :h]
        _rotate_(rotated[:n], z[:n, None])
        _rotate_(rotated[n:], z[n:])
        kv = kv.transpose(0, 1)[None]  # [1, 2H, M, dh']
        out = F.scaled_dot_product_attention(self.enc_q, kv[:, :h], kv[:, h:], scale=self.scale)  # [1, H, L, dh']
        latent_z_inv = self.latent_z_inv
        if self.rotate_values[0]:
            _rotate_(out, latent_z_inv)  # back to the latent times
        n_latents = out.shape[2]
        # the residual: latent embeddings + the output projection's bias, added once at construction
        latents = torch.addmm(self.latents_plus_bias, out[0].transpose(0, 1).reshape(n_latents, -1),
                              self.enc_out_w)  # [L, D]
        latents = latents + self._ffn(enc_ffn, latents)
        z_latent = self.latent_z[:, None]
        scale = self.scale
        for ln_w, ln_b, eps, w, w_out, b_out, hs, rot_v, ffn in layers:
            x = F.layer_norm(latents, latents.shape[-1:], ln_w, ln_b, eps)
            qkv = torch.mm(x, w, out=self._buffer("qkv", (n_latents, w.shape[1]), x)).view(n_latents, 3 * hs, dh)
            _rotate_(qkv if rot_v else qkv[:, :2 * hs], z_latent)
            qkv = qkv.transpose(0, 1)[None]  # [1, 3H, L, dh']
            o = F.scaled_dot_product_attention(qkv[:, :hs], qkv[:, hs:2 * hs], qkv[:, 2 * hs:], scale=scale)
            if rot_v:
                _rotate_(o, latent_z_inv)
            latents = latents + torch.addmm(b_out, o[0].transpose(0, 1).reshape(n_latents, -1), w_out)
            latents = latents + self._ffn(ffn, latents)
        hd = self.dec_heads
        x = F.layer_norm(latents, latents.shape[-1:], *dec_norm)
        kv = torch.mm(x, self.dec_kv_w).view(n_latents, 2 * hd, dh)
        _rotate_(kv if self.rotate_values[1] else kv[:, :hd], z_latent)
        q = self.dec_q.clone()
        _rotate_(q, z[n:])  # the queries sit at the window end
        kv = kv.transpose(0, 1)[None]
        o = F.scaled_dot_product_attention(q, kv[:, :hd], kv[:, hd:], scale=scale)  # [1, Hd, T, dh']
        if self.rotate_values[1]:
            _rotate_(o, z[n:].conj())
        n_tasks = o.shape[2]
        out = self.queries + torch.addmm(self.dec_out_b, o[0].transpose(0, 1).reshape(n_tasks, -1), self.dec_out_w)
        out = out + self._ffn(dec_ffn, out)
        return tuple(_predict(head, out[i]) for i, head in enumerate(heads))


def _predict(head: nn.Module | tuple[Tensor, Tensor], x: torch.Tensor) -> torch.Tensor:
    """A head's prediction for one query embedding (D,): expected values for bins/codebook heads.

    ``head`` is a module, or the (weight, bias) of a plain ``nn.Linear`` one.
    """
    if isinstance(head, tuple):
        return F.linear(x, *head)
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
    reuse, core._reuse = core._reuse, False  # trace the allocating form: a program has no scratch state
    try:
        with torch.no_grad():
            program = torch.export.export(core, example, dynamic_shapes=({0: n}, {0: n}, None))
    finally:
        core._reuse = reuse
    if path is not None:
        torch.export.save(program, path)
    return program
