"""``torch-brain demo [--fast]``: what torch_brain is for, end to end, in minutes on a CPU.

1. prepares the synthetic reaching set (several sessions and subjects, plus a held-out session);
2. trains POYO+ on cursor velocity and reach direction together;
3. tests it on the test split (overlapping windows from ``DistributedStitchingFixedWindowSampler``,
   stitched and scored by ``MultiTaskDecodingStitchEvaluator``) and fits a ridge (Wiener) filter
   scored through the very same windows, stitching and metrics;
4. prints a per-session table (POYO+ R², ridge R², reach-direction accuracy) and writes plots;
5. transfers the model to the held-out session: ``load_pretrained(skip_readout=True)``, a first
   phase that trains only the new unit/session embeddings (unit identification), then full
   fine-tuning; prints the held-out session's metrics beside ridge on that session.

Everything is done by the library's own pieces (:func:`torch_brain.brainsets.prepare`,
:func:`torch_brain.training.fit` / ``evaluate`` / ``finetune``,
:func:`torch_brain.baselines.run_baseline`); this module only chooses the settings and prints.
Run it with ``scripts/demo.sh [--fast]``, ``torch-brain demo [--fast]`` or
``python -m torch_brain.cli.demo [--fast]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["DEMO_SETTINGS", "add_parser", "demo_config", "main", "run_demo"]

_VEL, _DIR = "cursor_velocity_2d", "reach_direction"

# Two sizes of the same demo. "full" is the tuned recipe (see benchmarks/RESULTS.md, "Accuracy and
# recipes"); "fast" is the same pipeline on less data and fewer steps (about a minute).
DEMO_SETTINGS: dict[str, dict[str, Any]] = {
    "full": {
        "data": {"n_sessions": 4, "n_subjects": 2, "minutes": 10.0, "n_units": 100},
        "steps": 800,
        "unit_identification_steps": 100,
        "finetune_steps": 200,
        "batch_size": 32,
    },
    "fast": {
        "data": {"n_sessions": 3, "n_subjects": 2, "minutes": 3.0, "n_units": 60},
        "steps": 60,
        "unit_identification_steps": 20,
        "finetune_steps": 30,
        "batch_size": 16,
    },
}


def _readouts() -> list[dict[str, Any]]:
    """The two tasks, as a torch_brain 0.1.x ``multitask_readout`` list."""
    return [
        {
            "readout_id": _VEL,
            "weights": {
                "movement_periods.hold_period": 1.0,
                "movement_periods.reach_period": 2.0,
                "movement_periods.return_period": 1.0,
            },
            "metrics": [{"metric": {"_target_": "torchmetrics.R2Score"}}],
        },
        {
            "readout_id": _DIR,
            "eval_interval": "movement_periods.reach_period",
            "metrics": [{"metric": {"_target_": "torchmetrics.Accuracy", "task": "multiclass",
                                    "num_classes": 8}}],
        },
    ]


def _dataset_config(held_out: bool) -> list[dict[str, Any]]:
    selection = (
        {"brainset": "synthetic_reaching", "sessions": ["heldout"]}
        if held_out
        else {"brainset": "synthetic_reaching", "exclude_sessions": ["heldout"]}
    )
    return [{"selection": [selection], "config": {"multitask_readout": _readouts()}}]


def demo_config(root: str | Path, *, fast: bool = False, seed: int = 0) -> dict[str, Any]:
    """The run config (see :data:`torch_brain.training.DEFAULT_CONFIG`) the demo trains with.

    Args:
        root: folder of the prepared brainsets.
        fast: the one-minute settings.
        seed: random seed of the run.

    Returns:
        A nested dict accepted by :func:`torch_brain.training.fit`.
    """
    s = DEMO_SETTINGS["fast" if fast else "full"]
    return {
        "name": "demo",
        "seed": int(seed),
        "data": {
            "root": str(root),
            "config": _dataset_config(held_out=False),
            "window_length": 1.0,
            "batch_size": s["batch_size"],
            "eval_batch_size": 64,
            "unit_dropout": None,
        },
        "model": {
            "name": "poyo_plus",
            "dim": 64,
            "depth": 2,
            "dim_head": 32,
            "cross_heads": 2,
            "self_heads": 4,
            "latent_step": 0.125,
            "num_latents_per_step": 16,
            "ffn_dropout": 0.0,
            "lin_dropout": 0.0,
            "atn_dropout": 0.0,
        },
        "normalization": {"mode": "per_session"},
        "optimizer": {"name": "adamw", "lr": 2e-3, "weight_decay": 1e-4},
        "scheduler": {"name": "warmup_cosine", "warmup_fraction": 0.1, "final_factor": 0.01},
        "trainer": {
            "max_steps": s["steps"],
            "accelerator": "cpu",
            "limit_val_batches": 0,  # no validation while training: the demo tests once at the end
            "log_every_n_steps": 10,
            "enable_progress_bar": True,
        },
        "checkpoint": {"save_top_k": 0, "save_last": True},
        "logging": {"tensorboard": False, "quiet": True, "plots": True},
    }


def _say(msg: str = "") -> None:
    print(msg, flush=True)


@contextlib.contextmanager
def _step(index: int, total: int, key: str, title: str, times: dict[str, float]) -> Iterator[None]:
    _say(f"\n[{index}/{total}] {title}")
    t0 = time.perf_counter()
    yield
    dt = time.perf_counter() - t0
    times[key] = round(dt, 1)
    _say(f"      done in {dt:.0f} s")


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's banner lines (GPU available, model summary, ...); keep progress bars."""
    names = ["lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"]
    old = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for n, level in old.items():
                logging.getLogger(n).setLevel(level)


def _metric(sessions: Mapping[str, Any], sid: str, task: str) -> float | None:
    values = sessions.get(sid, {}).get(task, {})
    return next(iter(values.values())) if values else None


def _fmt(x: float | None) -> str:
    return "   -  " if x is None else f"{x:6.3f}"


def _short(sid: str) -> str:
    return sid.split("/", 1)[1] if "/" in sid else sid


def _table(model: Mapping[str, Any], ridge: Mapping[str, Any], model_name: str = "POYO+") -> str:
    head = (f"{'session':<12} {model_name + ' R²':>9} {'ridge R²':>9} "
            f"{model_name + ' acc':>10} {'ridge acc':>10}")
    lines = [head, "-" * len(head)]
    rows = {k: [] for k in ("mr2", "rr2", "macc", "racc")}
    for sid in sorted(set(model) | set(ridge)):
        vals = (_metric(model, sid, _VEL), _metric(ridge, sid, _VEL),
                _metric(model, sid, _DIR), _metric(ridge, sid, _DIR))
        for key, v in zip(rows, vals):
            if v is not None:
                rows[key].append(v)
        lines.append(f"{_short(sid):<12} {_fmt(vals[0]):>9} {_fmt(vals[1]):>9} "
                     f"{_fmt(vals[2]):>10} {_fmt(vals[3]):>10}")
    if len(set(model) | set(ridge)) > 1:
        mean = [sum(v) / len(v) if v else None for v in rows.values()]
        lines.append("-" * len(head))
        lines.append(f"{'mean':<12} {_fmt(mean[0]):>9} {_fmt(mean[1]):>9} "
                     f"{_fmt(mean[2]):>10} {_fmt(mean[3]):>10}")
    return "\n".join(lines)


def _mean(sessions: Mapping[str, Any], task: str) -> float | None:
    vals = [v for sid in sessions if (v := _metric(sessions, sid, task)) is not None]
    return sum(vals) / len(vals) if vals else None


def _summary_plot(results: Mapping[str, Any], path: Path) -> Path | None:
    """Bar chart: POYO+ vs ridge R² and accuracy per session (incl. the held-out session)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    model, ridge = dict(results["test"]), dict(results["ridge"])
    if "transfer" in results:
        model.update(results["transfer"])
        ridge.update(results["transfer_ridge"])
    sids = sorted(model, key=lambda s: (s in results.get("transfer", {}), s))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, task, label in zip(axes, (_VEL, _DIR), ("cursor velocity R²", "reach direction accuracy")):
        xs = range(len(sids))
        m = [_metric(model, s, task) or 0.0 for s in sids]
        r = [_metric(ridge, s, task) or 0.0 for s in sids]
        ax.bar([x - 0.2 for x in xs], m, width=0.4, label="POYO+")
        ax.bar([x + 0.2 for x in xs], r, width=0.4, label="ridge")
        names = [_short(s) + (" (transfer)" if s in results.get("transfer", {}) else "") for s in sids]
        ax.set_xticks(list(xs), names, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(label)
    axes[0].legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_demo(out: str | Path = "runs/demo", *, fast: bool = False, seed: int = 0,
             threads: int | None = None, transfer: bool = True) -> dict[str, Any]:
    """Runs the demo; returns every figure it printed (also written to ``<out>/results.json``).

    Args:
        out: output folder (data, runs, plots); replaced if it exists.
        fast: the one-minute version (less data, fewer steps).
        seed: seed of data generation and training.
        threads: torch intra-op threads (default: leave torch's choice).
        transfer: also run the transfer to the held-out session.

    Returns:
        ``{"test": {session: {task: {metric: v}}}, "ridge": ..., "transfer": ...,
        "transfer_ridge": ..., "times": {phase: seconds}, "outputs": {...}}``.
    """
    import shutil

    import torch

    from torch_brain.baselines import run_baseline
    from torch_brain.brainsets import prepare
    from torch_brain.training import evaluate, finetune, fit

    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    settings = DEMO_SETTINGS["fast" if fast else "full"]
    root = out / "data"
    cfg = demo_config(root, fast=fast, seed=seed)
    times: dict[str, float] = {}
    results: dict[str, Any] = {"mode": "fast" if fast else "full", "times": times}
    total = 6 if transfer else 4
    t_start = time.perf_counter()

    d = settings["data"]
    with _step(1, total, "prepare", f"preparing synthetic reaching data: {d['n_sessions']} sessions, "
               f"{d['n_subjects']} subjects, {d['minutes']:g} min each, + 1 held-out session", times):
        prepare("synthetic_reaching", root, seed=seed, held_out=transfer, progress=True, **d)
        _say(f"      files in {root / 'synthetic_reaching'}")

    with _step(2, total, "train", f"training POYO+ on cursor velocity + reach direction "
               f"({settings['steps']} steps, batch {settings['batch_size']})", times):
        with _quiet_lightning():
            summary = fit(cfg, run_dir=out / "poyo_plus")
    run_dir = Path(summary["run_dir"])

    with _step(3, total, "test", "testing: overlapping windows, stitched per session (POYO+ and ridge)", times):
        with _quiet_lightning(), contextlib.redirect_stdout(io.StringIO()):
            test = evaluate(run_dir, stage="test", checkpoint="last")
            ridge = run_baseline(cfg, name="ridge", run_dir=out / "ridge")
    results["test"], results["ridge"] = test["sessions"], ridge["test"]["sessions"]
    plots = list(test.get("plots", []))

    _say("\nTest split, per session (stitched; R² of cursor velocity, accuracy of reach direction"
         " during reaches):")
    _say(_table(results["test"], results["ridge"]))

    if transfer:
        ft_cfg = {**cfg, "name": "demo-transfer"}
        ft_cfg["data"] = {**cfg["data"], "config": _dataset_config(held_out=True)}
        ft_cfg["trainer"] = {**cfg["trainer"], "max_steps": settings["finetune_steps"]}
        ft_cfg["scheduler"] = {**cfg["scheduler"], "warmup_fraction": 0.2}
        ft_cfg["finetune"] = {
            "checkpoint": str(run_dir / "checkpoints" / "last.ckpt"),
            "skip_readout": True,
            "unit_identification_steps": settings["unit_identification_steps"],
        }
        with _step(4, total, "transfer", f"transfer to the held-out session: load_pretrained(skip_readout=True), "
                   f"{settings['unit_identification_steps']} steps of unit identification, "
                   f"then {settings['finetune_steps']} steps of full fine-tuning", times):
            with _quiet_lightning():
                ft = finetune(ft_cfg, run_dir=out / "transfer")
            _say(f"      {ft.get('new_units')} new units, new session(s): {ft.get('new_sessions')}")
        with _step(5, total, "transfer_test", "testing the transferred model on the held-out session", times):
            with _quiet_lightning(), contextlib.redirect_stdout(io.StringIO()):
                tr = evaluate(out / "transfer", stage="test", checkpoint="last")
                tr_ridge = run_baseline(ft_cfg, name="ridge", run_dir=out / "transfer-ridge")
        results["transfer"], results["transfer_ridge"] = tr["sessions"], tr_ridge["test"]["sessions"]
        plots += list(tr.get("plots", []))
        _say("\nHeld-out session after transfer (test split):")
        _say(_table(results["transfer"], results["transfer_ridge"]))

    with _step(total, total, "plots", "writing the summary plot and results.json", times):
        summary_png = _summary_plot(results, out / "plots" / "summary.png")
        if summary_png is not None:
            plots.append(str(summary_png))
    wall = time.perf_counter() - t_start
    times["total"] = wall
    results["outputs"] = {
        "folder": str(out),
        "data": str(root),
        "run": str(run_dir),
        "transfer_run": str(out / "transfer") if transfer else None,
        "plots": sorted(str(p) for p in plots),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))

    mv, rv = _mean(results["test"], _VEL), _mean(results["ridge"], _VEL)
    ma = _mean(results["test"], _DIR)
    _say("\n" + "=" * 72)
    _say(f"Summary ({results['mode']} demo, {wall / 60:.1f} min)")
    if mv is not None and rv is not None:
        _say(f"  POYO+ mean velocity R² {mv:.3f} vs ridge {rv:.3f} ({mv - rv:+.3f}); "
             f"reach-direction accuracy {ma:.3f}")
    if transfer:
        hv = _mean(results["transfer"], _VEL)
        hr = _mean(results["transfer_ridge"], _VEL)
        ha = _mean(results["transfer"], _DIR)
        if hv is not None and hr is not None:
            _say(f"  held-out session after transfer: R² {hv:.3f} (ridge {hr:.3f}), accuracy {ha:.3f}")
    _say(f"  outputs:  {out}")
    _say(f"    results.json                 every figure above")
    _say(f"    plots/summary.png            POYO+ vs ridge per session")
    _say(f"    poyo_plus/plots/test/        decoded vs true velocity, confusion matrices")
    _say(f"    poyo_plus/checkpoints/       the trained model (last.ckpt)")
    if transfer:
        _say(f"    transfer/                    the fine-tuned model, its plots and metrics")
    _say(f"    data/                        the prepared recordings (HDF5)")
    if fast:
        _say("  note: --fast trains far too briefly for POYO+ to learn (it stalls for the first few")
        _say("        thousand windows); run without --fast for the real comparison.")
    _say("=" * 72)
    return results


def _run(args: argparse.Namespace) -> int:
    run_demo(args.out, fast=args.fast, seed=args.seed, threads=args.threads,
             transfer=not args.no_transfer)
    return 0


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fast", action="store_true", help="one-minute version (less data, fewer steps)")
    p.add_argument("--out", default="runs/demo", help="output folder (replaced; default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of data and training (default 0)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's choice, e.g. the number of cores)")
    p.add_argument("--no-transfer", action="store_true", help="skip the held-out-session transfer")
    p.set_defaults(func=_run)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``demo`` to the ``torch-brain`` command."""
    p = subparsers.add_parser(
        "demo", help="prepare synthetic data, train POYO+, compare with ridge, transfer",
        description=__doc__.split("\n\n")[0],
    )
    _add_arguments(p)


def main(argv: list[str] | None = None) -> int:
    """``python -m torch_brain.cli.demo [--fast]``."""
    parser = argparse.ArgumentParser(prog="torch-brain demo", description=__doc__.split("\n\n")[0])
    _add_arguments(parser)
    args = parser.parse_args(argv)
    return _run(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
