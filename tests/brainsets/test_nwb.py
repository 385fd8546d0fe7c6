"""NWB import: files written here with pynwb, read back by read_nwb / prepare_nwb / the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("pynwb")

from tests.brainsets.nwb_files import write_nwb  # noqa: E402
from torch_brain.brainsets import from_nwb, list_behavior_paths, prepare_nwb, read_nwb  # noqa: E402
from torch_brain.data import Data, Dataset, RegularTimeSeries  # noqa: E402


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def nwb_file(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("nwb") / "ses01.nwb"
    ref = write_nwb(path, seconds=30.0, n_units=6, lfp_channels=4, lfp_rate=200.0)
    return path, ref


# ----------------------------------------------------------------------------- content
def test_units_and_spikes_match_what_pynwb_wrote(nwb_file):
    path, ref = nwb_file
    data = from_nwb(path)
    assert data.units.id.tolist() == [str(100 + u) for u in range(6)]
    for u, spk in enumerate(ref["spikes"]):
        got = data.spikes.timestamps[data.spikes.unit_index == u]
        np.testing.assert_array_equal(got, spk)
    assert np.all(np.diff(data.spikes.timestamps) >= 0)
    assert data.units.quality.tolist() == ["good", "mua"] * 3
    np.testing.assert_array_equal(data.units.snr, np.arange(6) + 0.5)
    assert set(data.units.electrode_group) == {"shank0"} and set(data.units.location) == {"CA1"}
    np.testing.assert_array_equal(data.units.n_spikes, [s.size for s in ref["spikes"]])
    np.testing.assert_array_equal(data.obs_intervals.start, np.zeros(6))
    np.testing.assert_array_equal(data.obs_intervals.end, np.full(6, 30.0))


def test_trials_behaviour_and_description(nwb_file):
    path, ref = nwb_file
    data = from_nwb(path)
    np.testing.assert_array_equal(data.trials.start, ref["trial_starts"])
    assert data.trials.condition.tolist()[:4] == ["c0", "c1", "c2", "c0"]
    np.testing.assert_array_equal(data.trials.reward, np.arange(len(ref["trial_starts"])) % 2)
    # timestamps form -> IrregularTimeSeries, exact
    np.testing.assert_array_equal(data.position.timestamps, ref["t_pos"])
    np.testing.assert_array_equal(data.position.data, ref["pos"])
    assert data.series_info.position.unit == "meters"
    assert data.series_info.position.reference_frame == "arena centre"
    # starting_time + rate form -> RegularTimeSeries
    assert isinstance(data.speed, RegularTimeSeries) and data.speed.sampling_rate == 20.0
    np.testing.assert_allclose(data.speed.timestamps, ref["t_speed"])
    np.testing.assert_array_equal(data.speed.data, ref["speed"])
    assert data.series_info.speed.unit == "m/s"
    assert data.subject.id == "mouse7" and data.subject.species == "Mus musculus"
    assert data.session.id == "ses01" and data.session.session_start_time.startswith("2024-01-02T03:04:05")
    assert data.device.id == "probe0" and data.device.model_manufacturer == "acme"


def test_report_lists_tasks_and_skipped_lfp(nwb_file):
    path, _ = nwb_file
    rep = read_nwb(path)
    assert rep.tasks == {
        "position_2d": {"timestamp_key": "position.timestamps", "value_key": "position.data"},
        "running_speed": {"timestamp_key": "speed.timestamps", "value_key": "speed.data"},
    }
    assert rep.continuous == ["acquisition/lfp"]
    assert any(what == "acquisition/lfp" and "copied only when asked" in why for what, why in rep.skipped)
    assert list_behavior_paths(path) == ["Position/position", "speed"]


# ----------------------------------------------------------------------------- splits
def _pieces(data):
    return {n: (getattr(data, f"{n}_domain").start.copy(), getattr(data, f"{n}_domain").end.copy())
            for n in ("train", "valid", "test")}


def _disjoint(data):
    iv = [getattr(data, f"{n}_domain") for n in ("train", "valid", "test")]
    for a in range(3):
        for b in range(a + 1, 3):
            assert len(iv[a] & iv[b]) == 0


def test_split_by_trials_is_whole_trials_deterministic_and_seeded(nwb_file):
    path, ref = nwb_file
    a, b, c = from_nwb(path), from_nwb(path), from_nwb(path, split_seed=1)
    _disjoint(a)
    for name, (s, e) in _pieces(a).items():
        np.testing.assert_array_equal(s, _pieces(b)[name][0])
        # every piece is one written trial [start, start + 1.8)
        assert np.all(np.isin(s, ref["trial_starts"])) and np.allclose(e - s, 1.8)
    n = len(ref["trial_starts"])  # 15 trials: 0.7 / 0.1 / 0.2
    assert [len(a.train_domain), len(a.valid_domain), len(a.test_domain)] == [10, 2, 3]
    assert not np.array_equal(_pieces(a)["test"][0], _pieces(c)["test"][0])
    assert n == 15


def test_split_by_time_without_trials(tmp_path):
    path = tmp_path / "notrials.nwb"
    write_nwb(path, seconds=20.0, n_units=3, trials=False)
    data = from_nwb(path, n_blocks=2)
    _disjoint(data)
    total = sum(getattr(data, f"{n}_domain").total_duration() for n in ("train", "valid", "test"))
    assert total == pytest.approx(data.domain.total_duration())
    assert data.train_domain.total_duration() == pytest.approx(0.7 * total)
    with pytest.raises(ValueError, match="split_by='trials' needs a trials table"):
        from_nwb(path, split_by="trials")


# ----------------------------------------------------------------------------- bad input
def test_not_hdf5_and_not_nwb(tmp_path):
    text = tmp_path / "notes.nwb"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        from_nwb(text)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ValueError, match="without the 'nwb_version' attribute"):
        from_nwb(plain)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_nwb(tmp_path / "missing.nwb")


def test_no_units(tmp_path):
    path = tmp_path / "nounits.nwb"
    write_nwb(path, seconds=10.0, units=False)
    with pytest.raises(ValueError, match="has no units table"):
        from_nwb(path)


def test_unsorted_spikes_error_or_fixed(tmp_path):
    path = tmp_path / "unsorted.nwb"
    ref = write_nwb(path, seconds=10.0, n_units=3, unsorted_unit=1)
    with pytest.raises(ValueError, match=r"spike times of 1 unit\(s\) are not sorted.*fix_spikes=True"):
        from_nwb(path)
    rep = read_nwb(path, fix_spikes=True)
    got = rep.data.spikes.timestamps[rep.data.spikes.unit_index == 1]
    np.testing.assert_array_equal(got, ref["spikes"][1])
    assert any("sorted the spike times of 1 unit" in line for line in rep.found)


def test_spikes_outside_obs_intervals_error_or_dropped(tmp_path):
    path = tmp_path / "outside.nwb"
    ref = write_nwb(path, seconds=10.0, n_units=3, spike_outside_obs=True)
    with pytest.raises(ValueError, match=r"1 spike\(s\) of 1 unit\(s\) lie outside .*obs_intervals"):
        from_nwb(path)
    rep = read_nwb(path, fix_spikes=True)
    np.testing.assert_array_equal(rep.data.spikes.timestamps[rep.data.spikes.unit_index == 0], ref["spikes"][0])
    assert any("dropped 1 spike(s) outside obs_intervals" in line for line in rep.found)


def test_duplicate_unit_ids(tmp_path):
    path = tmp_path / "dup.nwb"
    write_nwb(path, seconds=10.0, n_units=3, duplicate_ids=True)
    with pytest.raises(ValueError, match=r"duplicate unit ids \['3'\]"):
        from_nwb(path)


def test_nan_gaps_are_kept_as_gaps_and_counted(tmp_path):
    path = tmp_path / "gap.nwb"
    ref = write_nwb(path, seconds=20.0, n_units=3, nan_gap=(5.0, 6.0))
    rep = read_nwb(path)
    pos = rep.data.position
    assert not np.isnan(pos.data).any()
    good = ~np.isnan(ref["pos"][:, 0])
    np.testing.assert_array_equal(pos.timestamps, ref["t_pos"][good])  # dropped, not interpolated
    np.testing.assert_array_equal(pos.data, ref["pos"][good])
    assert rep.data.series_info.position.n_nan_samples == 50
    assert rep.data.series_info.position.n_gaps == 1
    # the gap [5.0, 6.0) is cut out of the series' domain
    np.testing.assert_allclose(pos.domain.start, [0.0, 6.0])
    np.testing.assert_allclose(pos.domain.end, [5.0, 20.0])
    assert any("50 NaN sample(s) in 1 gap(s)" in line for line in rep.found)


def test_missing_behaviour_path_lists_existing(nwb_file):
    path, _ = nwb_file
    with pytest.raises(ValueError, match=r"\['Position/pos'\] not found.*\['Position/position', 'speed'\]"):
        from_nwb(path, behavior=["Position/pos"])
    data = from_nwb(path, behavior=["processing/behavior/Position/position"])
    assert "position" in data.keys() and "speed" not in data.keys()


# ----------------------------------------------------------------------------- prepare
def test_prepare_writes_brainset_config_and_lfp_chunked_never_modifying_input(tmp_path, nwb_file):
    path, ref = nwb_file
    before = _sha(path)
    out = prepare_nwb([path], tmp_path / "proc", brainset="lab", continuous=["all"], chunk_rows=777,
                      progress=False)
    assert _sha(path) == before
    assert out.paths == [tmp_path / "proc" / "lab" / "ses01.h5"]
    with h5py.File(out.paths[0], "r") as f:
        data = Data.from_hdf5(f, lazy=False)
    np.testing.assert_array_equal(data.lfp.data, ref["lfp"].astype(np.float32) * np.float32(1e-6))
    assert data.lfp.sampling_rate == 200.0 and data.lfp.data.dtype == np.float32
    np.testing.assert_array_equal(data.position.data, ref["pos"])
    summary = out.summary()
    assert "continuous: acquisition/lfp -> lfp: 6000x4 at 200 Hz" in summary
    assert f"torch-brain fit {out.run_config}" in summary
    # the generated config is what Dataset and the datamodule read
    ds = Dataset(str(tmp_path / "proc"), config=str(out.dataset_config), split="train")
    assert ds.get_session_ids() == ["lab/ses01"]
    readouts = {r["readout_id"] for r in ds.get_config("lab/ses01")["multitask_readout"]}
    assert readouts == {"position_2d", "running_speed"}
    with pytest.raises(ValueError, match="already exist"):
        prepare_nwb([path], tmp_path / "proc", brainset="lab", progress=False)


def test_prepare_skips_bad_inputs_and_reports_them(tmp_path, nwb_file):
    path, _ = nwb_file
    bad = tmp_path / "bad.nwb"
    bad.write_text("not nwb")
    out = prepare_nwb([path, bad], tmp_path / "proc", progress=False)
    assert len(out.paths) == 1 and out.failed[0][0] == str(bad)
    assert "NOT IMPORTED" in out.summary()
    with pytest.raises(ValueError, match="not an HDF5 file"):
        prepare_nwb([bad], tmp_path / "proc2", progress=False)
    with pytest.raises(ValueError, match=r"continuous: \['acquisition/nope'\] not found"):
        prepare_nwb([path], tmp_path / "proc3", continuous=["acquisition/nope"], progress=False)


def test_cli_prepare_nwb_prints_found_and_skipped(tmp_path, nwb_file, capsys):
    from torch_brain.cli import main

    path, _ = nwb_file
    rc = main(["prepare", "nwb", str(path), "--root", str(tmp_path / "p"), "--brainset", "lab",
               "--no-progress", "--split-by", "time", "--n-blocks", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "found   units: 6 units" in out and "skipped acquisition/lfp" in out
    assert "splits: by time: 2 block(s)" in out
    assert main(["prepare", "nwb", str(path), "--root", str(tmp_path / "q"), "--raw-dir", "x"]) == 2
    assert main(["prepare", "synthetic_reaching", str(path), "--root", str(tmp_path / "r")]) == 2


# ----------------------------------------------------------------------------- real recording
@pytest.mark.real_data
@pytest.mark.slow
def test_real_recording_round_trip_through_nwb(tmp_path, real_data_dir):
    """nelpy hippocampus (direct importer) -> NWB written with pynwb -> prepare_nwb: identical spikes
    and position, and the same ridge decoding figure on the same splits."""
    import datetime as dt

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.behavior import Position, SpatialSeries

    from torch_brain.baselines import run_baseline
    from torch_brain.brainsets import prepare

    raw = real_data_dir / "nelpy-hippocampus" / "linear-track"
    [direct_path] = prepare("nelpy_hippocampus", tmp_path / "direct", raw_dir=str(raw), progress=False)
    with h5py.File(direct_path, "r") as f:
        direct = Data.from_hdf5(f, lazy=False)
    nwb = NWBFile(session_description="nelpy linear track", identifier="nelpy",
                  session_start_time=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), session_id="linear_track")
    for u in range(len(direct.units.id)):
        nwb.add_unit(spike_times=direct.spikes.timestamps[direct.spikes.unit_index == u], id=u)
    module = nwb.create_processing_module(name="behavior", description="tracking")
    position = Position(name="Position")
    position.add_spatial_series(SpatialSeries(name="position", data=direct.position.pos,
                                              timestamps=direct.position.timestamps, reference_frame="camera",
                                              unit="pixels"))
    module.add(position)
    path = tmp_path / "nelpy.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    out = prepare_nwb([path], tmp_path / "nwb", brainset="nelpy_nwb", progress=False)
    with h5py.File(out.paths[0], "r") as f:
        back = Data.from_hdf5(f, lazy=False)
    np.testing.assert_array_equal(back.spikes.timestamps, direct.spikes.timestamps)
    np.testing.assert_array_equal(back.spikes.unit_index, direct.spikes.unit_index)
    np.testing.assert_array_equal(back.position.timestamps, direct.position.timestamps)
    np.testing.assert_array_equal(back.position.data, direct.position.pos)
    assert set(out.reports[str(path)].tasks) == {"position_2d"}
    # same splits (the importer's own are by trials/time of the whole file), then the same decoder
    with h5py.File(out.paths[0], "r+") as f:
        for name in ("train", "valid", "test"):
            del f[f"{name}_domain"]
            getattr(direct, f"{name}_domain").to_hdf5(f.create_group(f"{name}_domain"))
    direct_cfg = [{"selection": [{"brainset": "nelpy_hippocampus"}],
                   "config": {"multitask_readout": [{"readout_id": "position_2d", "metrics": [
                       {"metric": {"_target_": "torchmetrics.R2Score"}}]}]}}]
    scores = []
    for root, config in ((tmp_path / "direct", direct_cfg), (tmp_path / "nwb", str(out.dataset_config))):
        result = run_baseline({"name": "r", "data": {"root": str(root), "config": config}},
                              run_dir=tmp_path / f"ridge_{root.name}")
        [(sid, tasks)] = result["test"]["sessions"].items()
        scores.append(tasks["position_2d"]["r2score"])
    print(f"ridge position_2d test R2: direct importer {scores[0]:.6f}, through NWB {scores[1]:.6f}")
    assert scores[0] == pytest.approx(scores[1], abs=1e-9)
    assert scores[0] > 0.1  # a real decoding figure, not a degenerate one


# ----------------------------------------------------------------------------- user path
@pytest.mark.slow
def test_prepare_fit_test_export_with_no_hand_written_code(tmp_path, capsys):
    """The user's path: prepare nwb -> fit the generated config -> test --export nwb."""
    from pynwb import NWBHDF5IO

    from torch_brain.cli import main

    src = tmp_path / "raw" / "ses01.nwb"
    src.parent.mkdir()
    write_nwb(src, seconds=40.0, n_units=10)
    before = _sha(src)
    assert main(["prepare", "nwb", str(src.parent), "--root", str(tmp_path / "proc"), "--brainset", "lab",
                 "--no-progress"]) == 0
    fit_yaml = tmp_path / "proc" / "lab" / "fit.yaml"
    assert f"torch-brain fit {fit_yaml}" in capsys.readouterr().out
    run = tmp_path / "run"
    tiny = ["trainer.max_steps=2", "model.dim=16", "model.depth=1", "model.dim_head=8", "model.self_heads=2",
            "data.batch_size=8", "logging.plots=false", "trainer.enable_progress_bar=false"]
    assert main(["fit", str(fit_yaml), *tiny, "--run-dir", str(run)]) == 0
    assert main(["test", str(run), "--export", "nwb", "logging.plots=false"]) == 0
    out = capsys.readouterr().out
    assert "lab/ses01" in out and "position_2d/r2score" in out
    exported = run / "predictions" / "test" / "nwb" / "lab_ses01.nwb"
    assert f"exported: {exported}" in out
    assert _sha(src) == before
    with NWBHDF5IO(str(exported), "r") as io:
        module = io.read().processing["torch_brain_decoding"]
        t = module["position_2d_decoded"].timestamps[:]
        assert module["position_2d_decoded"].data.shape == (t.size, 2) and t.size > 0
        assert np.all(np.diff(t) > 0)


def test_compass_behavioral_timeseries_epochs_and_invalid_times(tmp_path):
    path = tmp_path / "more.nwb"
    ref = write_nwb(path, seconds=20.0, n_units=3, more_tables=True)
    rep = read_nwb(path)
    data = rep.data
    np.testing.assert_array_equal(data.head_direction.data, ref["heading"])
    assert data.series_info.head_direction.container == "CompassDirection"
    assert data.series_info.head_direction.unit == "radians"
    # data * conversion + offset, rate form starting at 1 s
    assert isinstance(data.lick_rate, RegularTimeSeries) and data.lick_rate.domain_start == 1.0
    np.testing.assert_allclose(data.lick_rate.data, ref["lick_rate"], rtol=0, atol=1e-12)
    assert data.series_info.lick_rate.container == "BehavioralTimeSeries"
    np.testing.assert_array_equal(data.epochs.start, [0.0, 10.0])
    assert any(w == "intervals/epochs/tags" and "ragged" in why for w, why in rep.skipped)
    np.testing.assert_array_equal(data.invalid_times.start, [4.0])
    # no split covers the invalid time
    for name in ("train", "valid", "test"):
        iv = getattr(data, f"{name}_domain")
        assert len(iv & type(iv)(4.0, 5.0)) == 0
    # head direction (1-D angle) and lick rate match no registered modality: kept, not tasks
    assert set(rep.tasks) == {"position_2d", "running_speed"}
    assert any("head_direction" in line and "no registered modality" in line for line in rep.found)


def test_overlapping_obs_intervals_cover_their_union(tmp_path):
    import datetime as dt

    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="obs", identifier="obs",
                  session_start_time=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    # spike at 4 s: inside [0, 5] though the latest-starting interval [1, 2] ends before it
    nwb.add_unit(spike_times=[0.5, 4.0], obs_intervals=[[0.0, 5.0], [1.0, 2.0]], id=0)
    nwb.add_unit(spike_times=[6.5], obs_intervals=[[6.0, 7.0]], id=1)
    path = tmp_path / "obs.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    data = from_nwb(path)
    np.testing.assert_array_equal(data.spikes.timestamps, [0.5, 4.0, 6.5])
    np.testing.assert_array_equal(data.obs_intervals.unit_index, [0, 0, 1])


def test_prepare_refuses_two_files_with_one_session_id_and_reports_no_task(tmp_path):
    write_nwb(tmp_path / "a.nwb", seconds=6.0, n_units=2, session_id="same")
    write_nwb(tmp_path / "b.nwb", seconds=6.0, n_units=2, session_id="same")
    with pytest.raises(ValueError, match="have the same session id 'same'"):
        prepare_nwb([tmp_path], tmp_path / "proc", progress=False)
    assert not (tmp_path / "proc").exists()  # refused before anything was written
    out = prepare_nwb([tmp_path / "a.nwb"], tmp_path / "proc", behavior=["Position/position"],
                      progress=False, split_by="time")
    assert out.dataset_config is not None
    none = prepare_nwb([tmp_path / "b.nwb"], tmp_path / "proc2", behavior=[], progress=False, split_by="time")
    assert none.dataset_config is None and none.run_config is None
    assert "no dataset config written" in none.summary()
