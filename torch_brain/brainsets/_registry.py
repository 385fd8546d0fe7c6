"""Registry of brainset preparers, ``prepare()`` and the command-line glue."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from torch_brain._registry import Registry

__all__ = [
    "BRAINSET_REGISTRY",
    "BrainsetPreparer",
    "Option",
    "add_prepare_arguments",
    "get_preparer",
    "list_brainsets",
    "prepare",
    "prepare_from_args",
    "register_brainset",
]


def _str2bool(value: str) -> bool:
    low = str(value).strip().lower()
    if low in ("1", "true", "yes", "y", "on"):
        return True
    if low in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, but got {value!r}")


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a preparer (a keyword of ``prepare`` and a ``--flag`` on the command line).

    Attributes:
        name: keyword name (``n_sessions``); the flag is ``--n-sessions``.
        type: ``int``, ``float``, ``str``, ``bool`` or ``"ratios"`` (three floats).
        default: default value.
        help: one line of help.
    """

    name: str
    type: Any
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, brainset: str, value: Any) -> Any:
        """Validate/convert a Python value given to ``prepare``."""
        expected = {int: "an integer", float: "a number", str: "a string or path", bool: "a bool",
                    "ratios": "three numbers (train, valid, test)"}[self.type]
        ok: bool
        if value is None:
            ok = self.default is None
        elif self.type is bool:
            ok = isinstance(value, bool)
        elif self.type is int:
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            value = int(value) if ok else value
        elif self.type is float:
            ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif self.type is str:
            ok = isinstance(value, (str, os.PathLike))
        else:
            ok = isinstance(value, (list, tuple, np.ndarray)) and len(value) == 3
            value = tuple(value) if ok else value
        if not ok:
            raise TypeError(
                f"prepare({brainset!r}): option {self.name!r} must be {expected}, but got "
                f"{value!r} ({type(value).__name__})."
            )
        return value


@dataclasses.dataclass(frozen=True)
class BrainsetPreparer:
    """A registered preparer.

    Attributes:
        name: brainset id (also the folder written under ``root``).
        fn: ``fn(root: Path, *, overwrite: bool, progress: bool, **options) -> list[Path]``.
        summary: one line describing the brainset.
        options: the options ``fn`` accepts besides ``overwrite`` and ``progress``.
    """

    name: str
    fn: Callable[..., list[Path]]
    summary: str
    options: tuple[Option, ...]

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)


#: name -> :class:`BrainsetPreparer` of every registered brainset.
BRAINSET_REGISTRY: Registry[BrainsetPreparer] = Registry(
    "brainset", hint="Register a preparer with @torch_brain.brainsets.register_brainset('name', summary=...)."
)


def register_brainset(
    name: str, *, summary: str, options: Sequence[Option] = ()
) -> Callable[[Callable[..., list[Path]]], Callable[..., list[Path]]]:
    """Decorator registering a preparer under the brainset id ``name``.

    Example:
        >>> @register_brainset("my_set", summary="my recordings", options=[Option("seed", int, 0, "seed")])
        ... def _prepare_my_set(root, *, overwrite, progress, seed):
        ...     return []
    """

    def deco(fn: Callable[..., list[Path]]) -> Callable[..., list[Path]]:
        old = BRAINSET_REGISTRY.get(name)
        if old is not None and old.fn is not fn:
            raise ValueError(f"A brainset preparer named {name!r} is already registered.")
        BRAINSET_REGISTRY.register(name, BrainsetPreparer(name, fn, summary, tuple(options)))
        return fn

    return deco


def list_brainsets() -> list[str]:
    """Names of the registered brainsets, sorted."""
    return BRAINSET_REGISTRY.names()


def get_preparer(name: str) -> BrainsetPreparer:
    """The registered preparer ``name``.

    Raises:
        ValueError: unknown name (lists the known ones and the closest match).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a brainset name (str), but got {type(name).__name__}.")
    return BRAINSET_REGISTRY.lookup(name)


def prepare(
    name: str,
    root: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> list[Path]:
    """Prepare the brainset ``name``: write ``<root>/<name>/<session>.h5`` files.

    Args:
        name: a registered brainset (see :func:`list_brainsets`): ``synthetic_reaching``,
            ``spykesml_m1``, ``nelpy_hippocampus``, ``brochier_grasp``.
        root: output folder (created if needed).
        overwrite: replace existing files; otherwise existing outputs are an error and nothing is
            written.
        progress: show tqdm progress bars (on stderr).
        **options: preparer options, e.g. ``n_sessions=4, minutes=10.0, seed=0`` for
            ``synthetic_reaching`` or ``raw_dir="../shared/data/real/spykesml"`` for an importer.

    Returns:
        The paths written, one per session.

    Raises:
        ValueError: unknown brainset, bad option value, existing outputs without ``overwrite``.
        TypeError: unknown option or option of the wrong type.
        FileNotFoundError: missing raw files (importers).

    Example:
        >>> from torch_brain.brainsets import prepare
        >>> paths = prepare("synthetic_reaching", "./processed", n_sessions=2, minutes=2.0)
    """
    prep = get_preparer(name)
    if root is None or not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (str or Path), but got {root!r}.")
    out_dir = Path(root).expanduser() / name
    for folder in (out_dir.parent, out_dir):
        if folder.exists() and not folder.is_dir():
            raise ValueError(
                f"root: {folder} exists but is not a folder; pass a folder path as root."
            )
    unknown = [k for k in options if prep.option(k) is None]
    if unknown:
        valid = [o.name for o in prep.options]
        raise TypeError(
            f"prepare({name!r}) got unknown option(s) {unknown}; valid options are {valid}."
        )
    kwargs = {o.name: o.default for o in prep.options}
    for key, value in options.items():
        kwargs[key] = prep.option(key).check(name, value)  # type: ignore[union-attr]
    return prep.fn(
        Path(root).expanduser(), overwrite=bool(overwrite), progress=bool(progress), **kwargs
    )


def _all_options() -> dict[str, tuple[Option, list[str]]]:
    out: dict[str, tuple[Option, list[str]]] = {}
    for prep in BRAINSET_REGISTRY.values():
        for opt in prep.options:
            if opt.name in out:
                out[opt.name][1].append(prep.name)
            else:
                out[opt.name] = (opt, [prep.name])
    return out


def add_prepare_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``prepare`` arguments to ``parser``: ``NAME --root DIR [--overwrite]
    [--no-progress]`` and every preparer option as ``--option-name`` (only the options of the
    chosen brainset may be given). Use with :func:`prepare_from_args`.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_prepare_arguments(parser)
        >>> prepare_from_args(parser.parse_args(["synthetic_reaching", "--root", "out"]))
    """
    parser.add_argument("name", choices=list_brainsets(), help="brainset to prepare")
    parser.add_argument("--root", required=True, help="output folder; writes ROOT/NAME/SESSION.h5")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    for opt, users in _all_options().values():
        kind: dict[str, Any]
        if opt.type == "ratios":
            kind = {"type": float, "nargs": 3, "metavar": ("TRAIN", "VALID", "TEST")}
        elif opt.type is bool:
            kind = {"type": _str2bool, "metavar": "{true,false}"}
        else:
            kind = {"type": opt.type, "metavar": opt.name.upper()}
        default = opt.default
        if opt.type == "ratios":
            default = " ".join(str(r) for r in opt.default)
        parser.add_argument(
            opt.flag,
            dest=f"opt_{opt.name}",
            default=argparse.SUPPRESS,
            help=f"{opt.help} (default: {default}; for {', '.join(sorted(users))})",
            **kind,
        )
    return parser


def prepare_from_args(args: argparse.Namespace) -> list[Path]:
    """Run :func:`prepare` from arguments parsed by a parser set up with :func:`add_prepare_arguments`.

    Raises:
        ValueError: an option was given that the chosen brainset does not take.
    """
    prep = get_preparer(args.name)
    options = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_")}
    wrong = [k for k in options if prep.option(k) is None]
    if wrong:
        flags = ["--" + k.replace("_", "-") for k in wrong]
        valid = [o.flag for o in prep.options]
        raise ValueError(f"brainset {args.name!r} does not take {flags}; its options are {valid}.")
    if "split_ratios" in options:
        options["split_ratios"] = tuple(options["split_ratios"])
    return prepare(
        args.name, args.root, overwrite=args.overwrite, progress=not args.no_progress, **options
    )
