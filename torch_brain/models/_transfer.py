"""Loading pretrained POYO/POYOPlus weights and freezing for unit identification."""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from torch_brain.models import _legacy
from torch_brain.models._base import _EXTRA_STATE_FORMAT, POYOBase

__all__ = ["UnitIdentificationHandle", "freeze_for_unit_identification", "load_pretrained"]

_VOCAB_TABLES = ("unit_emb.weight", "session_emb.weight")


def check_torch_file(path: Path, what: str, fix: str) -> None:
    """Refuses a file that ``torch.save`` / Lightning did not write (neither zip nor legacy pickle).

    Raises:
        ValueError: naming ``what`` and the file, the bytes it starts with, and ``fix``.
    """
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch.save: zip (or legacy pickle)
        raise ValueError(f"{what} {str(path)!r} is not a checkpoint (not written by torch.save / Lightning; "
                         f"it starts with {head!r}); {fix}")


def _read_checkpoint(path: Path, map_location: Any, weights_only: bool) -> Any:
    check_torch_file(path, "load_pretrained:", "pass a .ckpt or a torch.save'd state_dict.")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"load_pretrained: {str(path)!r} holds pickled Python objects that torch.load(weights_only=True) "
            "refuses; if you trust this file pass weights_only=False. "
            f"({str(err).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"load_pretrained: could not read {str(path)!r} as a torch checkpoint: {err}") from None


def _find_state_dict(ckpt: Any, path: Path) -> tuple[dict[str, Any], str]:
    """Return (state dict, prefix of the model's keys)."""
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"load_pretrained: {str(path)!r} holds a {type(ckpt).__name__}, not a checkpoint dict.")
    candidates = [ckpt]
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(ckpt.get(key), Mapping):
            candidates.insert(0, ckpt[key])
    for sd in candidates:
        prefixes = [k[: -len("unit_emb.weight")] for k in sd if isinstance(k, str) and k.endswith("unit_emb.weight")]
        prefixes = [p for p in prefixes if p + "session_emb.weight" in sd]
        if prefixes:
            return dict(sd), min(prefixes, key=len)
    raise ValueError(
        f"load_pretrained: no POYO weights in {str(path)!r} (looked for '...unit_emb.weight' and "
        "'...session_emb.weight' in checkpoint['state_dict'] and at the top level)."
    )


def _find_hparams(ckpt: Mapping, state: Mapping, cls: type) -> tuple[dict | None, str | None]:
    """Hyper-parameters from the model's extra state, or Lightning's hyper_parameters / model_config."""
    extra = state.get("_extra_state")
    if isinstance(extra, Mapping) and extra.get("format") == _EXTRA_STATE_FORMAT:
        return dict(extra["hparams"]), extra.get("class")
    sources = []
    hyper = ckpt.get("hyper_parameters")
    if isinstance(hyper, Mapping):
        sources += [hyper.get("model_config"), hyper.get("model"), hyper]
    sources += [ckpt.get("model_config"), ckpt.get("hparams")]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    for source in sources:
        if isinstance(source, Mapping) and "dim" in source:
            return {k: v for k, v in source.items() if k in accepted}, None
    return None, None


def load_pretrained(cls: type, checkpoint_path: str | Path, *, skip_readout: bool, map_location: Any,
                    weights_only: bool, overrides: dict[str, Any],
                    legacy_task_ids: Mapping[str, int] | None = None) -> POYOBase:
    """Implementation of ``POYO.load_pretrained`` / ``POYOPlus.load_pretrained``.

    Hyper-parameters are read, in order, from the model's own ``_extra_state`` entry of the state
    dict (written by every POYO/POYOPlus ``state_dict()``, so any checkpoint of the model carries
    them), then from ``checkpoint["hyper_parameters"]["model_config"]`` (Lightning modules that
    call ``save_hyperparameters()`` with a ``model_config`` argument), then from
    ``checkpoint["hyper_parameters"]``, ``checkpoint["model_config"]``, ``checkpoint["hparams"]``.

    A checkpoint written by torch_brain 0.1.x is recognised by its ``unit_emb.vocab`` /
    ``rotary_emb.omega`` entries and rewritten into our layout first (see
    :mod:`torch_brain.models._legacy`); ``legacy_task_ids`` gives the 0.1.x ids of tasks that 0.1.x
    user code registered.
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"load_pretrained: no checkpoint file at {str(path)!r}.")
    ckpt = _read_checkpoint(path, map_location, weights_only)
    if isinstance(ckpt, Mapping) and ckpt.get("format") == "torch_brain.ssl.encoder/1":  # save_encoder's file
        if ckpt.get("kind") != "poyo":
            raise ValueError(f"load_pretrained: {str(path)!r} holds a {ckpt.get('kind')!r} encoder; "
                             f"{cls.__name__} loads only 'poyo' encoders (pretrain with encoder.name=poyo).")
        skip_readout = True  # an encoder has no readout (nor task embeddings): both start fresh
    full, prefix = _find_state_dict(ckpt, path)
    state = {k[len(prefix):]: v for k, v in full.items() if isinstance(k, str) and k.startswith(prefix)}

    if _legacy.is_legacy_state(state):
        hparams, state, ckpt_specs = _legacy.convert_state(cls, ckpt, state, path, overrides, legacy_task_ids,
                                                              prefix)
    else:
        hparams, ckpt_specs = _our_hparams(cls, ckpt, state, path, overrides)
    hparams.update(overrides)
    if "readout_specs" in overrides and "readout_heads" not in overrides and hparams.get("readout_heads"):
        tasks = set(cls._specs_from_hparams(hparams["readout_specs"]) or {})
        hparams["readout_heads"] = {t: o for t, o in hparams["readout_heads"].items() if t in tasks}
    model = cls(**hparams)

    if skip_readout:
        # a new readout, but an expected-value head of a task the checkpoint knows keeps its
        # fitted bins / codebook (the vocabulary is a property of the task, not of the session)
        expected = model.state_dict()
        state = {k: v for k, v in state.items() if not k.startswith("readout.")
                 or (k.endswith((".centres", ".codebook")) and k in expected
                     and tuple(expected[k].shape) == tuple(v.shape))}
        if "task_emb.weight" not in state and hasattr(model, "task_emb"):  # a pretrained encoder
            state["task_emb.weight"] = model.task_emb.weight.detach().clone()
        if "task_emb.weight" in state:
            state["task_emb.weight"] = _transfer_task_rows(model, ckpt_specs, state["task_emb.weight"])

    _check_compatible(model, state, path, skip_readout)
    model.load_state_dict(state, strict=False)
    return model


def _our_hparams(cls: type, ckpt: Mapping, state: Mapping, path: Path,
                 overrides: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """Constructor arguments and task specs of a checkpoint written by this torch_brain."""
    hparams, saved_class = _find_hparams(ckpt, state, cls)
    if saved_class is not None and saved_class not in (cls.__name__, "POYOEncoder"):
        raise ValueError(
            f"load_pretrained: {str(path)!r} holds a {saved_class}, not a {cls.__name__}; use "
            f"{saved_class}.load_pretrained."
        )
    if hparams is None:
        if not overrides:
            raise ValueError(
                f"load_pretrained: no hyper-parameters in {str(path)!r} (looked in the model's "
                "'_extra_state', checkpoint['hyper_parameters']['model_config'], "
                "checkpoint['hyper_parameters'], checkpoint['model_config']); pass the constructor "
                "arguments as keyword arguments, e.g. load_pretrained(path, dim=..., depth=...)."
            )
        hparams = {}
    ckpt_specs = cls._specs_from_hparams(hparams.get("readout_specs", hparams.get("readout_spec")))
    for key in ("readout_specs", "readout_spec"):
        if key in hparams:
            hparams[key] = ckpt_specs
    return hparams, ckpt_specs


def _transfer_task_rows(model: nn.Module, ckpt_specs: Mapping | None, saved: Tensor) -> Tensor:
    """Task-embedding table of the new model with rows of tasks the checkpoint knows copied over."""
    new = model.task_emb.weight.detach().clone()
    if not ckpt_specs:
        return new
    saved_ids = sorted(spec.id for spec in ckpt_specs.values())
    if saved.shape[0] != len(saved_ids) or saved.shape[1] != new.shape[1]:
        return saved  # reported as a shape mismatch
    for name, spec in ckpt_specs.items():
        if name in model._task_rows:
            new[model._task_rows[name]] = saved[saved_ids.index(spec.id)]
    return new


def _check_compatible(model: nn.Module, state: Mapping, path: Path, skip_readout: bool) -> None:
    expected = model.state_dict()
    problems = []
    for key, value in expected.items():
        if key.endswith("_extra_state"):
            continue
        if key not in state:
            if not (skip_readout and key.startswith("readout.")):
                problems.append(f"missing {key} {tuple(value.shape)}")
            continue
        got = state[key]
        if key in _VOCAB_TABLES:
            if got.ndim != 2 or got.shape[1] != value.shape[1]:
                problems.append(f"{key}: checkpoint {tuple(got.shape)} vs model (*, {value.shape[1]})")
            elif not isinstance(state.get(key.replace("weight", "_extra_state")), Mapping):
                problems.append(f"{key}: the checkpoint has no vocabulary for this table")
            continue
        if tuple(got.shape) != tuple(value.shape):
            problems.append(f"{key}: checkpoint {tuple(got.shape)} vs model {tuple(value.shape)}")
    for key in state:
        if key not in expected and not key.endswith("_extra_state"):
            problems.append(f"unexpected {key} {tuple(getattr(state[key], 'shape', ()))}")
    if problems:
        listing = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise ValueError(
            f"load_pretrained: the weights in {str(path)!r} do not match the {type(model).__name__} "
            f"architecture built from its hyper-parameters ({len(problems)} key(s)):\n  {listing}{more}\n"
            "Pass matching constructor overrides, or skip_readout=True for a new readout."
        )


class UnitIdentificationHandle:
    """Undo handle returned by :func:`freeze_for_unit_identification` (call :meth:`remove`)."""

    def __init__(self, model: nn.Module, requires_grad: dict[str, bool], hooks: list) -> None:
        self._model = model
        self._requires_grad = requires_grad
        self._hooks = hooks

    def remove(self) -> None:
        """Remove the gradient masks and restore every parameter's ``requires_grad``."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for name, param in self._model.named_parameters():
            if name in self._requires_grad:
                param.requires_grad_(self._requires_grad[name])


def freeze_for_unit_identification(model: POYOBase, new_unit_ids: Iterable[str],
                                   new_session_ids: Iterable[str] = ()) -> UnitIdentificationHandle:
    """Train only the embeddings of new units (and new sessions); freeze everything else.

    First phase of fine-tuning on new sessions ("unit identification"): call
    ``model.unit_emb.extend_vocab(new_unit_ids)`` (and ``session_emb`` likewise) first, then this,
    then build the optimizer. All parameters except ``unit_emb.weight`` / ``session_emb.weight`` get
    ``requires_grad=False``; in those two tables the gradient of every row that is not a new id is
    zeroed, so only the new rows learn (with ``SparseLamb(..., sparse=True)`` zero-gradient
    rows are not even decayed).

    Args:
        model: a POYO or POYOPlus.
        new_unit_ids: unit ids whose embeddings are trained.
        new_session_ids: session ids whose embeddings are trained.

    Returns:
        A handle; ``handle.remove()`` unfreezes (restores ``requires_grad``, removes the masks).
    """
    tables = {"unit_emb": list(new_unit_ids), "session_emb": list(new_session_ids)}
    if not tables["unit_emb"] and not tables["session_emb"]:
        raise ValueError("freeze_for_unit_identification: give at least one new unit or session id.")
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    hooks = []
    trainable = set()
    for table, ids in tables.items():
        emb = getattr(model, table)
        if not ids:
            continue
        rows = torch.as_tensor(emb.tokenizer(ids), dtype=torch.long)  # raises for ids not added yet
        keep = torch.zeros(emb.weight.shape[0], 1, dtype=emb.weight.dtype, device=emb.weight.device)
        keep[rows.to(keep.device)] = 1.0
        hooks.append(emb.weight.register_hook(lambda grad, keep=keep: grad * keep.to(grad.device, grad.dtype)))
        trainable.add(f"{table}.weight")
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)
    return UnitIdentificationHandle(model, requires_grad, hooks)
