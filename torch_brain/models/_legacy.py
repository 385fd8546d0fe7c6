"""Reading POYO / POYO+ checkpoints written by torch_brain 0.1.x.

A 0.1.x model's ``state_dict`` differs from ours in names and layouts; this module rewrites one
into ours (used by ``load_pretrained``, which then loads it like any of our checkpoints):

==============================================  ==============================================
torch_brain 0.1.x                               here
==============================================  ==============================================
``unit_emb.vocab`` / ``session_emb.vocab``      ``<table>._extra_state`` (list of ids); row 0,
(OrderedDict id -> row, ``"NA"`` -> 0)          the reserved ``"NA"`` entry, is dropped, the
                                                other rows keep their order; integer ids become
                                                their decimal strings
``task_emb.weight`` (row = 0.1.x registry id)   rows reordered by task *name* to our ids
``rotary_emb.omega``                            checked; gives ``t_min`` / ``t_max`` and the
                                                exact ``rotary_periods`` (2 pi / omega)
``*.to_q`` / ``to_kv`` / ``to_qkv`` rows,       the features of every head permuted: 0.1.x
``*.to_out`` columns                            rotates interleaved pairs ``(2j, 2j+1)``, we
                                                rotate ``(j, j + rotate_dim/2)``
``enc_ffn.0`` / ``enc_ffn.1.net.0|3``           ``enc_ffn.norm`` / ``enc_ffn.w1|w2`` (same for
                                                ``dec_ffn`` and ``proc_layers.i.1``)
==============================================  ==============================================

Everything else keeps its name. The architecture (``dim``, ``depth``, ``dim_head``, heads,
latents, rotary periods) is read from the weights; ``sequence_length`` and ``latent_step`` from
the checkpoint's ``hyper_parameters["model"]`` (the 0.1.x training scripts' model config). A key
that cannot be mapped is refused by name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from torch_brain import registry as _registry
from torch_brain.nn.embedding import _canonical_id

__all__ = ["TASK_IDS_0_1", "convert_state", "is_legacy_state", "legacy_model_name"]

#: Ids torch_brain 0.1.2 gave its built-in modalities (by registration order); row ``id`` of a
#: 0.1.x POYO+ ``task_emb`` belongs to the task of that id. Names registered by 0.1.x user code
#: got the next ids in the order they were registered: pass those as ``legacy_task_ids``.
TASK_IDS_0_1: dict[str, int] = {name: i + 1 for i, name in enumerate((
    "cursor_velocity_2d", "cursor_position_2d", "arm_velocity_2d", "drifting_gratings_orientation",
    "drifting_gratings_temporal_frequency", "natural_movie_one_frame", "natural_movie_two_frame",
    "natural_movie_three_frame", "locally_sparse_noise_frame", "static_gratings_orientation",
    "static_gratings_spatial_frequency", "static_gratings_phase", "natural_scenes", "gabor_orientation",
    "gabor_pos_2d", "running_speed", "gaze_pos_2d", "pupil_location", "pupil_size_2d",
))}

_RENAMES = (  # 0.1.x feed-forward blocks were Sequential(LayerNorm, FeedForward(net=[Linear, GEGLU, Dropout, Linear]))
    (re.compile(r"^(enc_ffn|dec_ffn|proc_layers\.\d+\.1)\.0\.(weight|bias)$"), r"\1.norm.\2"),
    (re.compile(r"^(enc_ffn|dec_ffn|proc_layers\.\d+\.1)\.1\.net\.0\.(weight|bias)$"), r"\1.w1.\2"),
    (re.compile(r"^(enc_ffn|dec_ffn|proc_layers\.\d+\.1)\.1\.net\.3\.(weight|bias)$"), r"\1.w2.\2"),
)
_ATN = r"(enc_atn|dec_atn|proc_layers\.\d+\.0)"  # attention blocks (proc_layers.i.0 is the self-attention)
_SAME = re.compile(
    r"^(token_type_emb\.weight|latent_emb\.weight|readout\.(weight|bias)|readout\.projections\.[^.]+\.(weight|bias)"
    rf"|{_ATN}\.(norm|norm_context)\.(weight|bias)|{_ATN}\.to_out\.bias)$"
)
_PROJ = re.compile(rf"^{_ATN}\.(to_q|to_kv|to_qkv|to_out)\.weight$")
_CHUNKS = {"to_q": 1, "to_kv": 2, "to_qkv": 3}


def is_legacy_state(state: Mapping[str, Any]) -> bool:
    """True for a (prefix-stripped) state dict of a torch_brain 0.1.x model."""
    return "unit_emb.vocab" in state or "rotary_emb.omega" in state


def legacy_model_name(checkpoint: Mapping[str, Any]) -> str | None:
    """``"poyo"`` / ``"poyo_plus"`` for a 0.1.x Lightning checkpoint, None for anything else."""
    sd = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
    if not isinstance(sd, Mapping):
        return None
    keys = [k for k in sd if isinstance(k, str)]
    if not any(k.endswith("unit_emb.vocab") or k.endswith("rotary_emb.omega") for k in keys):
        return None
    return "poyo_plus" if any(k.endswith("task_emb.weight") for k in keys) else "poyo"


def _refuse(path: Path, message: str) -> ValueError:
    return ValueError(f"load_pretrained: {str(path)!r} is a torch_brain 0.1.x checkpoint; {message}")


def convert_state(cls: type, checkpoint: Mapping, state: Mapping[str, Any], path: Path,
                  overrides: Mapping[str, Any], legacy_task_ids: Mapping[str, int] | None = None,
                  prefix: str = "") -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Rewrite a 0.1.x state dict into ours.

    Args:
        cls: POYO or POYOPlus (the class asked for).
        checkpoint: the whole checkpoint (for ``hyper_parameters``).
        state: its model state dict with the module prefix (``model.``) stripped.
        path: the file (for messages).
        overrides: constructor arguments the caller passes (``readout_spec(s)`` among them).
        legacy_task_ids: 0.1.x registry ids of tasks missing from :data:`TASK_IDS_0_1`.
        prefix: the stripped prefix (named in messages).

    Returns:
        (constructor arguments, state dict in our layout, the checkpoint's task specs: a
        ModalitySpec for POYO, name -> ModalitySpec for POYOPlus).

    Raises:
        ValueError: a key that cannot be mapped (named), or missing hyper-parameters.
    """
    try:
        return _convert(cls, checkpoint, dict(state), path, overrides, legacy_task_ids)
    except ValueError as err:
        if not prefix:
            raise
        raise ValueError(f"{err} (keys are named without the checkpoint's {prefix!r} prefix)") from None


def _convert(cls: type, checkpoint: Mapping, state: dict[str, Any], path: Path, overrides: Mapping[str, Any],
             legacy_task_ids: Mapping[str, int] | None) -> tuple[dict[str, Any], dict[str, Any], Any]:
    if "input_value_map.weight" in state:
        raise _refuse(path, "'input_value_map.weight' shows a CalciumPOYOPlus (calcium traces), which has no "
                      "counterpart in this torch_brain; only POYO and POYOPlus checkpoints load.")
    plus = "task_emb.weight" in state
    if plus != (cls.__name__ == "POYOPlus"):
        other = "POYOPlus" if plus else "POYO"
        raise _refuse(path, f"it holds a {other} ({'with' if plus else 'without'} 'task_emb.weight'); use "
                      f"{other}.load_pretrained.")
    hparams = _hparams(cls, checkpoint, state, path, overrides)
    out: dict[str, Any] = {}
    for table in ("unit_emb", "session_emb"):
        words, rows = _vocab(state, table, path)
        out[f"{table}.weight"] = rows
        out[f"{table}._extra_state"] = {"vocab": words}
    perm = _head_permutation(hparams["dim_head"])
    state.pop("rotary_emb.omega")
    for key in list(state):
        value = state.pop(key)
        if key.endswith(".vocab") or key.startswith(("unit_emb.", "session_emb.")) or key == "task_emb.weight":
            state[key] = value  # handled above / below
            continue
        new = _rename(key)
        if new is None:
            raise _refuse(path, f"its key {key!r} {tuple(getattr(value, 'shape', ()))} has no counterpart here "
                          "(not a POYO/POYOPlus 0.1.x parameter this version maps).")
        match = _PROJ.match(key)
        if match is not None:
            value = _permute_projection(value, match.group(2), perm, key, path)
        out[new] = value
    specs = _task_specs(cls, state, out, hparams, overrides, path)
    if plus:
        out["task_emb.weight"] = _task_rows(state["task_emb.weight"], specs, legacy_task_ids, path)
        hparams["readout_specs"] = specs
    else:
        hparams["readout_spec"] = specs
    return hparams, out, specs


# ---------------------------------------------------------------------- hyper-parameters
def _model_config(checkpoint: Mapping) -> dict[str, Any]:
    hyper = checkpoint.get("hyper_parameters")
    if not isinstance(hyper, Mapping):
        return {}
    for source in (hyper.get("model"), hyper.get("model_config"), hyper):
        if isinstance(source, Mapping) and ("sequence_length" in source or "dim" in source):
            return dict(source)
    return {}


def _hparams(cls: type, checkpoint: Mapping, state: Mapping, path: Path, overrides: Mapping) -> dict[str, Any]:
    config = _model_config(checkpoint)
    target = config.pop("_target_", None)
    if isinstance(target, str) and target.rsplit(".", 1)[-1] != cls.__name__:
        raise _refuse(path, f"its model config has _target_={target!r}; only POYO and POYOPlus load, each "
                      "with its own load_pretrained.")
    inferred = _architecture(state, path)
    for name, value in inferred.items():
        given = config.get(name)
        if given is None:
            continue
        same = math.isclose(float(given), value, rel_tol=1e-5) if name in ("t_min", "t_max") else given == value
        if not same:
            raise _refuse(path, f"hyper_parameters['model'] says {name}={given!r} but the weights say {value!r}.")
        if name in ("t_min", "t_max"):
            inferred[name] = float(given)  # the exact value the 0.1.x model was built with
    accepted = {"sequence_length", "latent_step", "ffn_dropout", "lin_dropout", "atn_dropout", "emb_init_scale"}
    hparams = {k: v for k, v in config.items() if k in accepted}
    hparams.update(inferred)
    for name in ("sequence_length", "latent_step"):
        if name not in hparams and name not in overrides:
            raise _refuse(path, f"its hyper_parameters['model'] has no {name!r}, which the weights do not show; "
                          f"pass it, e.g. load_pretrained(path, {name}=...).")
    return hparams


def _architecture(state: Mapping, path: Path) -> dict[str, Any]:
    """dim, depth, dim_head, heads, latents and rotary periods, read from the 0.1.x weights."""
    omega = state.get("rotary_emb.omega")
    if not isinstance(omega, Tensor) or omega.ndim != 1 or omega.numel() < 2:
        raise _refuse(path, "'rotary_emb.omega' is missing or not a vector, so dim_head is unknown.")
    dim_head = 2 * omega.numel()
    n_planes = int((omega != 0).sum())
    if dim_head % 4 or n_planes != dim_head // 4 or bool((omega[:n_planes] == 0).any()):
        raise _refuse(path, f"'rotary_emb.omega' rotates {n_planes} planes of a {dim_head}-feature head; only "
                      "the 0.1.x layout (the first dim_head // 4 planes) maps.")
    periods = 2 * math.pi / omega[:n_planes].double()
    t_min, t_max = float(periods[0]), float(periods[-1])
    expected = t_min * (t_max / t_min) ** (torch.arange(n_planes, dtype=torch.float64) / max(n_planes - 1, 1))
    if not torch.allclose(periods, expected, rtol=1e-4):
        raise _refuse(path, "'rotary_emb.omega' holds periods that are not log-spaced between t_min and t_max.")
    arch = {
        "dim": int(state["unit_emb.weight"].shape[1]),
        "num_latents_per_step": int(_tensor(state, "latent_emb.weight", path).shape[0]),
        "depth": len({k.split(".")[1] for k in state if k.startswith("proc_layers.")}),
        "dim_head": dim_head,
        "cross_heads": _heads(state, "enc_atn.to_q.weight", 1, dim_head, path),
        # periods from float32 angular frequencies: 6 significant digits give back the configured value
        "t_min": float(f"{t_min:.6g}"),
        # ... but the model was trained with the float32 frequencies themselves: keep them exactly
        "rotary_periods": periods.tolist(),
    }
    if n_planes > 1:
        arch["t_max"] = float(f"{t_max:.6g}")
    if arch["depth"]:
        arch["self_heads"] = _heads(state, "proc_layers.0.0.to_qkv.weight", 3, dim_head, path)
    return arch


def _tensor(state: Mapping, key: str, path: Path) -> Tensor:
    value = state.get(key)
    if not isinstance(value, Tensor):
        raise _refuse(path, f"{key!r} is missing.")
    return value


def _heads(state: Mapping, key: str, chunks: int, dim_head: int, path: Path) -> int:
    rows = _tensor(state, key, path).shape[0]
    if rows % (chunks * dim_head):
        raise _refuse(path, f"{key!r} has {rows} rows, not a multiple of {chunks} x dim_head ({dim_head}).")
    return rows // (chunks * dim_head)


# ---------------------------------------------------------------------- tensors
def _vocab(state: dict, table: str, path: Path) -> tuple[list[str], Tensor]:
    """The ids (without ``"NA"``) in row order, and their rows."""
    key = f"{table}.vocab"
    vocab = state.pop(key, None)
    weight = state.pop(f"{table}.weight")
    if not isinstance(vocab, Mapping) or not vocab:
        raise _refuse(path, f"{key!r} is {'missing' if vocab is None else 'empty'}; the 0.1.x model was saved "
                      "without a vocabulary (before initialize_vocab).")
    index = sorted(vocab.items(), key=lambda item: int(item[1]))
    if [int(i) for _, i in index] != list(range(weight.shape[0])):
        raise _refuse(path, f"{key!r} maps {len(vocab)} ids to rows that are not 0..{weight.shape[0] - 1} "
                      f"of {table}.weight {tuple(weight.shape)}.")
    if vocab.get("NA", 0) != 0:
        raise _refuse(path, f"{key!r} has its reserved 'NA' entry at row {vocab['NA']}, not 0.")
    rows = [i for word, i in index if word != "NA"]
    try:
        words = [_canonical_id(word, key) for word, _ in index if word != "NA"]
    except TypeError as err:
        raise _refuse(path, str(err)) from None
    if len(set(words)) != len(words):
        dup = sorted({w for w in words if words.count(w) > 1})
        raise _refuse(path, f"{key!r} holds ids that are one id here (an integer and its string): {dup[:5]}.")
    return words, weight[torch.as_tensor(rows, dtype=torch.long)].clone()


def _rename(key: str) -> str | None:
    if _SAME.match(key) or _PROJ.match(key):
        return key
    for pattern, replacement in _RENAMES:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return None


def _head_permutation(dim_head: int) -> Tensor:
    """perm[i] = the 0.1.x head feature that is our feature i (rotation planes (2j, 2j+1) -> (j, j+half))."""
    half = dim_head // 4
    perm = list(range(dim_head))
    for j in range(half):
        perm[j], perm[j + half] = 2 * j, 2 * j + 1
    return torch.tensor(perm)


def _permute_projection(weight: Tensor, kind: str, perm: Tensor, key: str, path: Path) -> Tensor:
    dim_head = perm.numel()
    if kind == "to_out":  # (dim, heads * dim_head): permute the input features of every head
        if weight.shape[1] % dim_head:
            raise _refuse(path, f"{key!r} {tuple(weight.shape)} is not (dim, heads x dim_head={dim_head}).")
        dim = weight.shape[0]
        return weight.reshape(dim, -1, dim_head)[:, :, perm].reshape(dim, -1).clone()
    if weight.shape[0] % (_CHUNKS[kind] * dim_head):  # rows: [q | k | v], each heads x dim_head
        raise _refuse(path, f"{key!r} {tuple(weight.shape)} is not "
                      f"({_CHUNKS[kind]} x heads x dim_head={dim_head}, dim).")
    return weight.reshape(-1, dim_head, weight.shape[1])[:, perm].reshape(weight.shape).clone()


# ---------------------------------------------------------------------- tasks
def _task_specs(cls: type, state: Mapping, out: dict, hparams: Mapping, overrides: Mapping, path: Path) -> Any:
    """The checkpoint's tasks as our specs; heads of tasks the caller's readout_specs leave out are dropped."""
    if cls.__name__ == "POYO":
        spec = overrides.get("readout_spec", hparams.get("readout_spec"))
        if spec is None:
            raise _refuse(path, "0.1.x POYO checkpoints do not record their task (0.1.x's load_pretrained needed "
                          "it too); pass readout_spec=..., e.g. POYO.load_pretrained(path, "
                          "readout_spec='cursor_velocity_2d').")
        return cls._specs_from_hparams(spec)
    names = [k.split(".")[2] for k in out if k.startswith("readout.projections.") and k.endswith(".weight")]
    given = overrides.get("readout_specs")
    if given is not None:
        given = cls._specs_from_hparams(given)
        for name in names:
            if name not in given:
                out.pop(f"readout.projections.{name}.weight"), out.pop(f"readout.projections.{name}.bias", None)
        return {name: spec for name, spec in given.items() if name in names}
    unknown = [n for n in names if n not in _registry.MODALITY_REGISTRY]
    if unknown:
        raise _refuse(path, f"its readout head 'readout.projections.{unknown[0]}.weight' is for task "
                      f"{unknown[0]!r}, which is not registered here ({len(unknown)} such task(s): {unknown[:5]}); "
                      "pass readout_specs={name: ModalitySpec, ...} for the tasks you keep (heads of the others "
                      "are dropped), register them with register_modality, or use skip_readout=True.")
    return {name: _registry.MODALITY_REGISTRY[name] for name in names}


def _task_rows(saved: Tensor, specs: Mapping, legacy_task_ids: Mapping[str, int] | None, path: Path) -> Tensor:
    """task_emb rows in our order (by our ids of ``specs``) from the 0.1.x rows (by 0.1.x ids)."""
    ids = {**TASK_IDS_0_1, **(legacy_task_ids or {})}
    rows = []
    for name, _ in sorted(specs.items(), key=lambda item: item[1].id):
        if name not in ids:
            raise _refuse(path, f"'task_emb.weight' has a row for task {name!r}, but its 0.1.x id is unknown "
                          "(0.1.x numbered user-registered tasks in registration order); pass "
                          f"legacy_task_ids={{{name!r}: id}} with the id 0.1.x's register_modality returned.")
        if not 0 < ids[name] < saved.shape[0]:
            raise _refuse(path, f"'task_emb.weight' {tuple(saved.shape)} has no row {ids[name]} "
                          f"(the 0.1.x id of {name!r}).")
        rows.append(saved[ids[name]])
    return torch.stack(rows) if rows else saved[:0].clone()
