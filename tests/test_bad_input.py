"""The bad-input table: every row is a wrong input a user can give through the public API or the
``torch-brain`` command, the exception it must raise, and a regex its message must match.

Each row must raise ONE clear error of the expected type (ValueError / TypeError /
FileNotFoundError), raised by torch_brain's own code (not from deep inside numpy, torch or h5py),
whose message names what was wrong and how to fix it. No input file may change: every file of
the fixture folder (recordings, configs, checkpoints, a finished run) is checksummed before and
after each row, and a refused call may not leave a new run directory behind.

CLI rows call ``torch_brain.cli.main`` in-process; they expect exit status 2 and a one-line
``torch-brain <command>: error: ...`` on stderr without a traceback (raised here as ``CLIError``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

import torch_brain
from torch_brain.data import Dataset, Interval, IrregularTimeSeries, RegularTimeSeries
from torch_brain.data.sampler import (
    DistributedStitchingFixedWindowSampler,
    RandomFixedWindowSampler,
    SequentialFixedWindowSampler,
)
from torch_brain.models import POYO, POYOPlus
from torch_brain.utils.stitcher import stitch

from tests.training.tiny_synthetic import DATASET_CONFIG, TINY_MODEL, tiny_config

LIB = Path(torch_brain.__file__).resolve().parent
SESSION = "synthetic_reaching/session_00"


class CLIError(Exception):
    """A ``torch-brain`` run that exited with status 2 and a one-line error."""


# ---------------------------------------------------------------------------------------------
# fixtures: one tiny synthetic recording, damaged copies of it, configs and a 2-step run
# ---------------------------------------------------------------------------------------------
def _copy_root(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit(root: Path, edit) -> Path:
    with h5py.File(root / "synthetic_reaching" / "session_00.h5", "r+") as f:
        edit(f)
    return root


def _nan_targets(f):
    vel = f["cursor/vel"][:]
    vel[::97, 0] = np.nan  # a NaN in every window
    f["cursor/vel"][...] = vel


def _inf_spike_time(f):
    ts = f["spikes/timestamps"][:]
    ts[-1] = np.inf  # last: still "sorted"
    f["spikes/timestamps"][...] = ts


def _nan_spike_time(f):
    ts = f["spikes/timestamps"][:]
    ts[len(ts) // 2] = np.nan
    f["spikes/timestamps"][...] = ts


def _unsorted_spike_times(f):
    ts = f["spikes/timestamps"][:]
    ts[10:20] = ts[10:20][::-1].copy()
    f["spikes/timestamps"][...] = ts


def _empty_valid(f):
    for key in ("start", "end"):
        del f[f"valid_domain/{key}"]
        f["valid_domain"].create_dataset(key, data=np.zeros(0))


def _no_units(f):
    del f["units"]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from torch_brain.brainsets import prepare
    from torch_brain.training import fit

    base = tmp_path_factory.mktemp("bad_input")
    inputs = base / "inputs"  # everything a row reads; checksummed around every row
    root = inputs / "good"
    prepare("synthetic_reaching", root, n_sessions=1, n_subjects=1, minutes=0.5, n_units=6, seed=0,
            held_out=True, progress=False)
    h5 = root / "synthetic_reaching" / "session_00.h5"
    ns = SimpleNamespace(base=base, inputs=inputs, root=root, h5=h5)

    truncated = _copy_root(root, inputs / "truncated")
    path = truncated / "synthetic_reaching" / "session_00.h5"
    path.write_bytes(h5.read_bytes()[: h5.stat().st_size // 3])
    ns.truncated = truncated
    text = inputs / "text"
    (text / "synthetic_reaching").mkdir(parents=True)
    (text / "synthetic_reaching" / "session_00.h5").write_text("spikes,unit\n0.1,3\n")
    ns.text = text
    for name, edit in (("nan_targets", _nan_targets), ("inf_spike_time", _inf_spike_time),
                       ("nan_spike_time", _nan_spike_time), ("unsorted", _unsorted_spike_times),
                       ("empty_valid", _empty_valid), ("no_units", _no_units)):
        setattr(ns, name, _edit(_copy_root(root, inputs / name), edit))
    (inputs / "empty_root").mkdir()

    ns.bad_yaml = inputs / "bad.yaml"
    ns.bad_yaml.write_text("trainer:\n  max_steps: [1, 2\n  lr: 3\n")
    ns.list_yaml = inputs / "list.yaml"
    ns.list_yaml.write_text("- a\n- b\n")
    ns.typo_dataset_yaml = inputs / "typo_dataset.yaml"
    ns.typo_dataset_yaml.write_text("- selction:\n    - brainset: synthetic_reaching\n")
    ns.foreign = inputs / "foreign.h5"
    with h5py.File(ns.foreign, "w") as f:  # valid HDF5, not written by Data.to_hdf5
        f["x"] = np.arange(3)
    ns.run_without_ckpt = inputs / "run_without_ckpt"
    ns.text_ckpt = inputs / "notes.ckpt"
    ns.text_ckpt.write_text("not a checkpoint\n")
    ns.list_ckpt = inputs / "list.ckpt"
    torch.save([1, 2, 3], ns.list_ckpt)

    cfg = tiny_config(root, trainer={"max_steps": 2, "limit_val_batches": 0},
                      checkpoint={"save_top_k": 0}, logging={"quiet": True, "tensorboard": False,
                                                             "plots": False, "csv": False})
    ns.cfg = cfg
    ns.run = inputs / "run"
    fit(cfg, run_dir=ns.run)
    ns.ckpt = ns.run / "checkpoints" / "last.ckpt"
    ns.config_yaml = ns.run / "config.yaml"
    shutil.copytree(ns.run, ns.run_without_ckpt, ignore=shutil.ignore_patterns("*.ckpt", "summary.json"))
    ns.torn_ckpt = inputs / "torn.ckpt"
    ns.torn_ckpt.write_bytes(ns.ckpt.read_bytes()[: ns.ckpt.stat().st_size // 2])
    ns.outside_file = inputs / "a_file"
    ns.outside_file.write_text("x")
    return ns


def _checksums(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ---------------------------------------------------------------------------------------------
# helpers that build what a row needs
# ---------------------------------------------------------------------------------------------
def _model(**kw):
    return POYOPlus(**{"sequence_length": 1.0, **TINY_MODEL, **kw})


def _window(root, length=1.0):
    ds = Dataset(root, config=str(DATASET_CONFIG), split="train")
    iv = ds.get_sampling_intervals()[SESSION]
    t0 = float(iv.start[0])
    return ds, ds.get(SESSION, t0, t0 + length)


def _tokenize(root, vocab=True, units=None, sessions=None, window=1.0, config=None):
    ds, window = _window(root, window)
    if config is not None:
        window.config = config
    model = _model()
    if vocab:
        model.unit_emb.initialize_vocab(units if units is not None else ds.get_unit_ids())
        model.session_emb.initialize_vocab(sessions if sessions is not None else ds.get_session_ids())
    return model.tokenize(window)


def _sample_all(root, split="train", tokenize=False, memory_budget=2**30):
    """Read (and tokenize) every training window of ``root``, the guide's way."""
    model = _model()
    ds = Dataset(root, config=str(DATASET_CONFIG), split=split, transform=model.tokenize if tokenize else None,
                 memory_budget=memory_budget)
    model.unit_emb.initialize_vocab(ds.get_unit_ids())
    model.session_emb.initialize_vocab(ds.get_session_ids())
    sampler = RandomFixedWindowSampler(ds.get_sampling_intervals(), window_length=1.0, generator=0)
    for index in sampler:
        ds[index]


def _cli(*argv):
    from torch_brain.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse errors
            rc = exc.code
    text = err.getvalue()
    assert "Traceback" not in text, text
    if rc != 0:
        assert rc == 2, (rc, text)
        raise CLIError(text.strip())
    return rc


def _fit_cli(ctx, *extra, run_dir=None):
    """``torch-brain fit`` of the tiny set with ``extra`` arguments; a refused run creates nothing."""
    new = run_dir is None
    run_dir = run_dir or ctx.base / f"cli_run_{len(list(ctx.base.iterdir()))}"
    overrides = [f"data.root={ctx.root}", f"data.config={DATASET_CONFIG}", "trainer.max_steps=2",
                 "trainer.limit_val_batches=0", "logging.quiet=true", "logging.tensorboard=false",
                 "model.dim=16", "model.depth=1", "model.dim_head=8", "model.self_heads=2",
                 "model.latent_step=0.25", "model.num_latents_per_step=2", "data.batch_size=8"]
    options = [a for a in extra if a.startswith("--")]
    extra = [a for a in extra if not a.startswith("--")]  # after the defaults: they win
    try:
        return _cli("fit", *options, *overrides, *extra, "--run-dir", run_dir)
    finally:
        assert not (new and run_dir.exists()), f"a refused run left {run_dir}"


def _resume_other_model(ctx):
    from torch_brain.training import fit

    cfg = {**ctx.cfg, "model": {**ctx.cfg["model"], "dim": 32}}
    fit(cfg, run_dir=ctx.run, resume=True)  # the run is an input: it must stay untouched


def _load_other_size(ctx):
    POYOPlus.load_pretrained(ctx.ckpt, dim=32)


# ---------------------------------------------------------------------------------------------
# the table: (id, callable(ctx), expected exception, regex on the message)
# ---------------------------------------------------------------------------------------------
CASES = [
    # --- recording files ----------------------------------------------------------------------
    ("h5_truncated_dataset", lambda c: Dataset(c.truncated), ValueError, r"could not read recording file .*session_00\.h5.*re-create"),
    ("h5_truncated_read", lambda c: torch_brain.data.Data.from_hdf5(c.truncated / "synthetic_reaching" / "session_00.h5"), ValueError, r"could not open .*session_00\.h5.*truncated or damaged"),
    ("h5_is_text_dataset", lambda c: Dataset(c.text), ValueError, r"could not read recording file .*session_00\.h5"),
    ("h5_is_text_read", lambda c: torch_brain.data.Data.from_hdf5(c.text / "synthetic_reaching" / "session_00.h5"), ValueError, r"not an HDF5 file"),
    ("h5_missing_read", lambda c: torch_brain.data.Data.from_hdf5(c.root / "nope.h5"), FileNotFoundError, r"nope\.h5.*does not exist"),
    ("h5_without_units", lambda c: Dataset(c.no_units), ValueError, r"no 'units' group"),
    ("root_missing", lambda c: Dataset(c.base / "no_such_root"), FileNotFoundError, r"root .*no_such_root.* is not a folder"),
    ("root_without_h5", lambda c: Dataset(c.inputs / "empty_root"), FileNotFoundError, r"no brainset files found"),
    # --- dataset configs and selections ----------------------------------------------------------
    ("dataset_yaml_missing", lambda c: Dataset(c.root, config=c.base / "none.yaml"), FileNotFoundError, r"config file .*none\.yaml.* does not exist"),
    ("dataset_yaml_invalid", lambda c: Dataset(c.root, config=c.bad_yaml), ValueError, r"bad\.yaml.* not valid YAML"),
    ("dataset_yaml_key_typo", lambda c: Dataset(c.root, config=c.typo_dataset_yaml), ValueError, r"'selection'"),
    ("unknown_brainset", lambda c: Dataset(c.root, config={"selection": [{"brainset": "synthetic_reachin"}]}), ValueError, r"brainset 'synthetic_reachin' not found.*existing brainsets: \['synthetic_reaching'\]"),
    ("unknown_session", lambda c: Dataset(c.root, config={"selection": [{"brainset": "synthetic_reaching", "sessions": ["session_99"]}]}), ValueError, r"session_99.*not found.*existing sessions: \['heldout', 'session_00'\]"),
    ("unknown_recording_id", lambda c: Dataset(c.root, recording_ids=["synthetic_reaching/s1"]), ValueError, r"recording_ids \['synthetic_reaching/s1'\] not found"),
    ("unknown_split", lambda c: Dataset(c.root, split="validation"), ValueError, r"split must be None or one of .*'valid'.* got 'validation'"),
    ("empty_split", lambda c: Dataset(c.empty_valid, config=DATASET_CONFIG, split="valid"), ValueError, r"split 'valid' has no intervals"),
    ("get_unknown_recording", lambda c: Dataset(c.root).get("synthetic_reaching/session_01", 0.0, 1.0), ValueError, r"recording_id 'synthetic_reaching/session_01' is not in this dataset"),
    ("get_end_before_start", lambda c: Dataset(c.root).get(SESSION, 2.0, 1.0), ValueError, r"end must be > start"),
    ("dataset_bad_index", lambda c: Dataset(c.root)[("synthetic_reaching/session_00", 0.0)], TypeError, r"index must be a DatasetIndex\(recording_id, start, end\)"),
    ("dataset_transform_not_callable", lambda c: Dataset(c.root, transform="tokenize"), TypeError, r"transform must be callable or None, got str"),
    ("h5_is_a_folder", lambda c: torch_brain.data.Data.from_hdf5(c.root), ValueError, r"is not an HDF5 file"),
    ("h5_foreign_layout", lambda c: torch_brain.data.Data.from_hdf5(c.foreign), ValueError, r"group '/' in .*foreign\.h5' has no 'object' attribute"),
    # --- values in the files -------------------------------------------------------------------------
    ("nan_targets", lambda c: _sample_all(c.nan_targets, tokenize=True), ValueError, r"readout 'cursor_velocity_2d': 'cursor.vel' holds \d+ NaN/inf value\(s\) in \d+ row\(s\) of session 'synthetic_reaching/session_00'.*must be finite"),
    ("inf_spike_timestamps", lambda c: _sample_all(c.inf_spike_time), ValueError, r"'timestamps' must be finite, but 1 value\(s\) are inf"),
    ("nan_spike_timestamps", lambda c: _sample_all(c.nan_spike_time), ValueError, r"NaN"),
    ("unsorted_spike_timestamps", lambda c: _sample_all(c.unsorted), ValueError, r"sorted"),
    ("lazy_unsorted_spike_timestamps", lambda c: _sample_all(c.unsorted, memory_budget=0), ValueError, r"'/spikes/timestamps' of .*session_00\.h5': timestamps .* not sorted and finite"),
    ("lazy_nan_spike_timestamps", lambda c: _sample_all(c.nan_spike_time, memory_budget=0), ValueError, r"'/spikes/timestamps' of .*session_00\.h5': timestamps .* not sorted and finite"),
    ("timeseries_unsorted", lambda c: IrregularTimeSeries(timestamps=np.array([0.2, 0.1]), domain="auto"), ValueError, r"'timestamps' must be sorted"),
    ("timeseries_nan", lambda c: IrregularTimeSeries(timestamps=np.array([0.1, np.nan]), domain="auto"), ValueError, r"NaN"),
    ("regular_zero_rate", lambda c: RegularTimeSeries(x=np.zeros(3), sampling_rate=0.0, domain="auto"), ValueError, r"sampling_rate"),
    ("interval_end_before_start", lambda c: Interval(start=[1.0], end=[0.5]), ValueError, r"'end' must be >= 'start'"),
    ("interval_nan", lambda c: Interval(start=[np.nan], end=[1.0]), ValueError, r"NaN"),
    # --- samplers --------------------------------------------------------------------------------------
    ("window_longer_than_intervals", lambda c: RandomFixedWindowSampler({"r": Interval([0.0, 5.0], [1.0, 6.0])}, window_length=2.0), ValueError, r"window_length"),
    ("window_length_zero", lambda c: RandomFixedWindowSampler({"r": Interval(0.0, 5.0)}, window_length=0.0), ValueError, r"window_length must be"),
    ("window_length_negative", lambda c: SequentialFixedWindowSampler({"r": Interval(0.0, 5.0)}, window_length=-1.0), ValueError, r"window_length must be"),
    ("step_zero", lambda c: DistributedStitchingFixedWindowSampler({"r": Interval(0.0, 5.0)}, window_length=1.0, step=0.0, batch_size=4, num_replicas=1, rank=0), ValueError, r"step"),
    ("batch_size_zero", lambda c: DistributedStitchingFixedWindowSampler({"r": Interval(0.0, 5.0)}, window_length=1.0, step=0.5, batch_size=0, num_replicas=1, rank=0), ValueError, r"batch_size"),
    ("empty_intervals", lambda c: SequentialFixedWindowSampler({"r": Interval(np.zeros(0), np.zeros(0))}, window_length=1.0), ValueError, r"(no interval|empty)"),
    ("intervals_not_a_dict", lambda c: RandomFixedWindowSampler([Interval(0.0, 5.0)], window_length=1.0), TypeError, r"sampling_intervals"),
    # --- model and tokenizer ----------------------------------------------------------------------------
    ("tokenize_before_initialize_vocab", lambda c: _tokenize(c.root, vocab=False), ValueError, r"initialize_vocab"),
    ("unit_missing_from_vocab", lambda c: _tokenize(c.root, units=["synthetic_reaching/session_00/unit_000"]), ValueError, r"tokenize: session 'synthetic_reaching/session_00': model.unit_emb: 5 id\(s\) not in the vocabulary .*'synthetic_reaching/session_00/unit_001'.*extend_vocab"),
    ("session_missing_from_vocab", lambda c: _tokenize(c.root, sessions=["synthetic_reaching/other"]), ValueError, r"model.session_emb: 1 id\(s\) not in the vocabulary .*\['synthetic_reaching/session_00'\]"),
    ("tokenize_window_too_long", lambda c: _tokenize(c.root, window=2.0), ValueError, r"is 2 s long but the model's sequence_length is 1 s"),
    ("model_latent_step_not_dividing", lambda c: _model(latent_step=0.3), ValueError, r"sequence_length \(1.0\) must be a whole multiple of latent_step \(0.3\)"),
    ("model_dim_zero", lambda c: _model(dim=0), ValueError, r"dim must be a positive int, but got 0"),
    ("model_depth_negative", lambda c: _model(depth=-1), ValueError, r"depth must be a positive int, but got -1"),
    ("model_latent_step_zero", lambda c: _model(latent_step=0.0), ValueError, r"latent_step must be a positive number"),
    ("model_dropout_above_one", lambda c: _model(ffn_dropout=1.5), ValueError, r"ffn_dropout must be a probability"),
    # --- stitch ------------------------------------------------------------------------------------------
    ("stitch_length_mismatch", lambda c: stitch(torch.zeros(4, dtype=torch.float64), torch.zeros(3, 2)), ValueError, r"same length along dim 0, got 4 and 3"),
    ("stitch_int32_values", lambda c: stitch(torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.int32)), TypeError, r"`values` must be floating point .* got dtype torch.int32"),
    ("stitch_2d_timestamps", lambda c: stitch(torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4)), ValueError, r"`timestamps` must be 1-D"),
    ("stitch_bool_values", lambda c: stitch(torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.bool)), TypeError, r"`values` must be floating point"),
    ("stitch_numpy", lambda c: stitch(np.zeros(4), torch.zeros(4)), TypeError, r"`timestamps` must be a torch.Tensor, got ndarray"),
    ("stitch_nan_timestamps", lambda c: stitch(torch.tensor([0.0, np.nan], dtype=torch.float64), torch.zeros(2)), ValueError, r"NaN"),
    # --- pretrained checkpoints ------------------------------------------------------------------------
    ("load_pretrained_missing", lambda c: POYOPlus.load_pretrained(c.base / "none.ckpt"), FileNotFoundError, r"none\.ckpt"),
    ("load_pretrained_text_file", lambda c: POYOPlus.load_pretrained(c.text_ckpt), ValueError, r"notes\.ckpt' is not a checkpoint \(not written by torch.save"),
    ("load_pretrained_not_a_checkpoint", lambda c: POYOPlus.load_pretrained(c.list_ckpt), ValueError, r"list\.ckpt' holds a list, not a checkpoint dict"),
    ("load_pretrained_truncated", lambda c: POYOPlus.load_pretrained(c.torn_ckpt), ValueError, r"torn\.ckpt"),
    ("load_pretrained_other_size", _load_other_size, ValueError, r"(?s)do not match the POYOPlus architecture.*checkpoint \(6, 16\) vs model \(\*, 32\)"),
    ("load_pretrained_other_class", lambda c: POYO.load_pretrained(c.ckpt), ValueError, r"POYOPlus"),
    # --- training API --------------------------------------------------------------------------------
    ("resume_from_other_model", _resume_other_model, ValueError, r"(?s)cannot resume.*model_kwargs.*Use the run's own config"),
    # --- the command line --------------------------------------------------------------------------------
    ("cli_yaml_missing", lambda c: _cli("fit", c.base / "none.yaml", "--run-dir", c.base / "r_missing"), CLIError, r"config file .*none\.yaml.* does not exist"),
    ("cli_yaml_invalid", lambda c: _cli("fit", c.bad_yaml, "--run-dir", c.base / "r_invalid"), CLIError, r"bad\.yaml.*not valid YAML"),
    ("cli_yaml_not_a_mapping", lambda c: _cli("fit", c.list_yaml, "--run-dir", c.base / "r_list"), CLIError, r"must hold a mapping"),
    ("cli_key_misspelled", lambda c: _cli("fit", c.config_yaml, "trainer.max_step=3", "--run-dir", c.base / "r_typo"), CLIError, r"Unknown config key 'trainer.max_step'. Did you mean 'trainer.max_steps'"),
    ("cli_yaml_key_misspelled", lambda c: _cli("validate", c.typo_run(c)), CLIError, r"Unknown config key 'trainer.max_step'"),
    ("cli_data_config_missing", lambda c: _fit_cli(c, "data.config=null"), CLIError, r"data\.config"),
    ("cli_readout_id_missing", lambda c: _fit_cli(c, "data.config=" + repr([{"selection": [{"brainset": "synthetic_reaching"}], "config": {"multitask_readout": [{"weights": {}}]}}])), CLIError, r"multitask_readout entry 0 needs a 'readout_id'"),
    ("cli_task_unknown", lambda c: _fit_cli(c, "data.config=" + repr([{"selection": [{"brainset": "synthetic_reaching"}], "config": {"multitask_readout": [{"readout_id": "cursor_velocity"}]}}])), CLIError, r"unknown task\(s\) \['cursor_velocity'\]; registered tasks: .*cursor_velocity_2d"),
    ("tokenize_readout_id_missing", lambda c: _tokenize(c.root, config={"multitask_readout": [{"weights": {}}]}), ValueError, r"every multitask_readout entry needs a 'readout_id'"),
    ("cli_unknown_split", lambda c: _fit_cli(c, "data.val_split=validation", "trainer.limit_val_batches=null"), CLIError, r"split must be None or one of"),
    ("cli_unknown_session", lambda c: _fit_cli(c, "data.config=" + repr([{"selection": [{"brainset": "synthetic_reaching", "session": "s9"}], "config": {"multitask_readout": [{"readout_id": "cursor_velocity_2d"}]}}])), CLIError, r"\['s9'\] not found"),
    ("cli_batch_size_zero", lambda c: _fit_cli(c, "data.batch_size=0"), CLIError, r"batch_size must be >= 1 \(data.batch_size\), got 0"),
    ("cli_lr_negative", lambda c: _fit_cli(c, "optimizer.lr=-0.1"), CLIError, r"lr \(optimizer.lr\) must be a positive number, got -0.1"),
    ("cli_weight_decay_negative", lambda c: _fit_cli(c, "optimizer.weight_decay=-1"), CLIError, r"optimizer 'adamw': .*weight_decay"),
    ("cli_window_length_negative", lambda c: _fit_cli(c, "data.window_length=-1"), CLIError, r"window_length"),
    ("cli_window_longer_than_intervals", lambda c: _fit_cli(c, "data.window_length=100"), CLIError, r"window_length=100 s is longer than"),
    ("cli_model_dim_zero", lambda c: _fit_cli(c, "model.dim=0"), CLIError, r"dim must be a positive int"),
    ("cli_no_steps", lambda c: _fit_cli(c, "trainer.max_steps=-1", "trainer.max_epochs=-1"), CLIError, r"max_steps > 0 or trainer.max_epochs > 0"),
    ("cli_scheduler_unknown", lambda c: _fit_cli(c, "scheduler.name=cosin"), CLIError, r"cosin.*(cosine)"),
    ("cli_optimizer_unknown", lambda c: _fit_cli(c, "optimizer.name=lambb"), CLIError, r"Unknown optimizer 'lambb'.*sparse_lamb"),
    ("cli_optimizer_option_misspelled", lambda c: _fit_cli(c, "optimizer.weight_decy=0.1"), CLIError, r"weight_decy.*weight_decay"),
    ("cli_precision_16_on_cpu", lambda c: _fit_cli(c, "trainer.precision=16-mixed"), CLIError, r"16-mixed needs a GPU"),
    ("cli_latent_step_not_dividing", lambda c: _fit_cli(c, "model.latent_step=0.3"), CLIError, r"whole multiple of latent_step"),
    ("cli_data_root_missing", lambda c: _fit_cli(c, f"data.root={c.base / 'nowhere'}"), CLIError, r"nowhere.* is not a folder"),
    ("cli_num_workers_negative", lambda c: _fit_cli(c, "data.num_workers=-1"), CLIError, r"num_workers must be >= 0 \(data.num_workers"),
    ("cli_accumulate_zero", lambda c: _fit_cli(c, "trainer.accumulate_grad_batches=0"), CLIError, r"trainer.accumulate_grad_batches must be an int >= 1, got 0"),
    ("cli_grad_clip_negative", lambda c: _fit_cli(c, "trainer.gradient_clip_val=-1"), CLIError, r"trainer.gradient_clip_val must be a number >= 0 .* got -1"),
    ("cli_eval_step_negative", lambda c: _fit_cli(c, "data.eval_step=-0.5"), CLIError, r"eval_step must be in \(0, window_length=1\] seconds \(data.eval_step\)"),
    ("cli_eval_step_gaps", lambda c: _fit_cli(c, "data.eval_step=2"), CLIError, r"eval_step must be in \(0, window_length=1\]"),
    ("cli_check_val_every_zero", lambda c: _fit_cli(c, "trainer.check_val_every_n_epoch=0"), CLIError, r"trainer.check_val_every_n_epoch must be an int >= 1 or null, got 0"),
    ("cli_override_without_key", lambda c: _fit_cli(c, "=3"), CLIError, r"override '=3' has an empty key"),
    ("cli_unknown_command", lambda c: _cli("fitt", c.config_yaml), CLIError, r"invalid choice: 'fitt'"),
    ("cli_prepare_unknown_brainset", lambda c: _cli("prepare", "synthetic", "--root", c.base / "p"), CLIError, r"invalid choice: 'synthetic'"),
    ("cli_baseline_unknown", lambda c: _cli("baseline", c.config_yaml, "baseline.name=lasso", "--run-dir", c.base / "b"), CLIError, r"lasso"),
    ("cli_validate_without_checkpoint", lambda c: _cli("validate", c.run_without_ckpt), CLIError, r"no checkpoint in .*run_without_ckpt"),
    ("cli_test_not_a_checkpoint", lambda c: _cli("test", c.run, "--checkpoint", c.text_ckpt), CLIError, r"notes\.ckpt' is not a checkpoint"),
    ("cli_finetune_missing_checkpoint", lambda c: _cli("finetune", c.config_yaml, "--checkpoint", c.base / "none.ckpt", "--run-dir", c.base / "r_ft2"), CLIError, r"none\.ckpt' does not exist"),
    ("cli_finetune_lr_zero", lambda c: _cli("finetune", c.config_yaml, "optimizer.lr=0", "--checkpoint", c.ckpt, "--run-dir", c.base / "r_ft3"), CLIError, r"lr \(optimizer.lr\) must be a positive number, got 0"),
    ("cli_run_dir_unwritable", lambda c: _fit_cli(c, run_dir=c.outside_file / "run"), CLIError, r"run directory .*a_file.*"),
    ("cli_run_dir_exists", lambda c: _fit_cli(c, run_dir=c.run), CLIError, r"already exists"),
    ("cli_overwrite_with_bad_config", lambda c: _fit_cli(c, "--overwrite", "model.dim=0", run_dir=c.run), CLIError, r"dim must be a positive int, but got 0"),
    ("cli_resume_torn_last_ckpt", lambda c: _cli("fit", "--resume", "--run-dir", c.torn_run(c)), CLIError, r"last\.ckpt' cannot be read as a checkpoint .*truncated, damaged"),
    ("cli_resume_without_run", lambda c: _fit_cli(c, "--resume", run_dir=c.base / "never_ran"), CLIError, r"cannot resume: no checkpoint"),
    ("cli_resume_other_model", lambda c: _cli("fit", "--resume", "--run-dir", c.run, "model.dim=32"), CLIError, r"(?s)cannot resume.*model_kwargs"),
    ("cli_test_missing_checkpoint", lambda c: _cli("test", c.run, "--checkpoint", c.base / "none.ckpt"), CLIError, r"none\.ckpt.* does not exist"),
    ("cli_finetune_not_a_checkpoint", lambda c: _cli("finetune", c.config_yaml, "--checkpoint", c.text_ckpt, "--run-dir", c.base / "r_ft"), CLIError, r"notes\.ckpt"),
]


def _typo_run(ctx):
    run = ctx.base / "typo_run"
    shutil.copytree(ctx.run, run)
    text = (run / "config.yaml").read_text().replace("max_steps:", "max_step:")
    (run / "config.yaml").write_text(text)
    return run


def _torn_run(ctx):
    run = ctx.base / "torn_run"
    shutil.copytree(ctx.run, run)
    (run / "checkpoints" / "last.ckpt").write_bytes(ctx.torn_ckpt.read_bytes())
    return run


def test_table_is_large_and_distinct():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 35


@pytest.mark.parametrize("case_id, trigger, error, match", CASES, ids=[c[0] for c in CASES])
def test_bad_input(ctx, case_id, trigger, error, match):
    ctx.typo_run, ctx.torn_run = _typo_run, _torn_run
    before = _checksums(ctx.inputs)
    entries = set(ctx.base.iterdir())
    with pytest.raises(error, match=match) as info:
        trigger(ctx)
    assert _checksums(ctx.inputs) == before, "an input file was modified"
    made = {p.name for p in set(ctx.base.iterdir()) - entries} - {"typo_run", "torn_run"}  # the rows' own copies
    assert not made, f"a refused call left {made}"
    if error is not CLIError:
        # raised by torch_brain itself, not by numpy / torch / h5py deep inside
        origin = Path(info.traceback[-1].path).resolve()
        assert LIB in origin.parents, f"{case_id}: raised from {origin}"
        assert not isinstance(info.value, KeyError)
