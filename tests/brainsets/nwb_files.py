"""Tiny NWB files written with pynwb itself, for the NWB importer's tests.

``write_nwb(path, ...)`` writes a session with ``n_units`` units whose spike rates follow a 2-D
position (so position is decodable), trials with extra columns, a ``Position`` spatial series in
``processing["behavior"]`` (``timestamps`` form), a running speed ``TimeSeries`` (``starting_time``
+ ``rate`` form) and optionally an ``ElectricalSeries``. Keyword switches produce the bad inputs.
Returns the arrays that were written, as the independent reference of the tests.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any

import numpy as np

pynwb = __import__("pytest").importorskip("pynwb")


def write_nwb(
    path: str | Path,
    *,
    seconds: float = 60.0,
    n_units: int = 8,
    seed: int = 0,
    session_id: str = "ses01",
    trials: bool = True,
    lfp_channels: int = 0,
    lfp_rate: float = 500.0,
    units: bool = True,
    nan_gap: tuple[float, float] | None = None,
    unsorted_unit: int | None = None,
    spike_outside_obs: bool = False,
    duplicate_ids: bool = False,
    more_tables: bool = False,
) -> dict[str, Any]:
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import BehavioralTimeSeries, CompassDirection, Position, SpatialSeries
    from pynwb.ecephys import ElectricalSeries
    from pynwb.file import Subject

    rng = np.random.default_rng(seed)
    nwb = NWBFile(
        session_description="synthetic NWB session for tests",
        identifier=f"test-{session_id}",
        session_start_time=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        session_id=session_id,
        subject=Subject(subject_id="mouse7", species="Mus musculus", sex="F", age="P60D"),
    )
    from pynwb.device import DeviceModel  # NWB 2.9+: the maker lives on a DeviceModel

    model = DeviceModel(name="probe-x", manufacturer="acme", description="64-site silicon probe")
    nwb.add_device_model(model)
    device = nwb.create_device(name="probe0", description="silicon probe", model=model)
    group = nwb.create_electrode_group(name="shank0", description="shank", location="CA1", device=device)
    for _ in range(max(lfp_channels, 1)):
        nwb.add_electrode(group=group, location="CA1")
    # behaviour: 2-D position at 50 Hz (timestamps form), speed at 20 Hz (rate form)
    fs = 50.0
    t_pos = np.arange(int(seconds * fs)) / fs
    phase = rng.uniform(0, 2 * np.pi, 2)
    pos = np.stack([np.sin(2 * np.pi * t_pos / 7.0 + phase[0]),
                    np.cos(2 * np.pi * t_pos / 11.0 + phase[1])], axis=1)
    pos_written = pos.copy()
    if nan_gap is not None:
        pos_written[(t_pos >= nan_gap[0]) & (t_pos < nan_gap[1])] = np.nan
    behavior = nwb.create_processing_module(name="behavior", description="tracked behaviour")
    position = Position(name="Position")
    position.add_spatial_series(SpatialSeries(
        name="position", data=pos_written, timestamps=t_pos, reference_frame="arena centre", unit="meters"))
    behavior.add(position)
    speed_rate = 20.0
    t_speed = np.arange(int(seconds * speed_rate)) / speed_rate
    speed = np.abs(np.sin(t_speed / 3.0))
    behavior.add(TimeSeries(name="speed", data=speed, starting_time=0.0, rate=speed_rate, unit="m/s"))
    extra: dict[str, Any] = {}
    if more_tables:
        heading = np.mod(t_pos, 2 * np.pi)
        compass = CompassDirection(name="CompassDirection")
        compass.add_spatial_series(SpatialSeries(name="head_direction", data=heading, timestamps=t_pos,
                                                 reference_frame="north", unit="radians"))
        behavior.add(compass)
        licks = BehavioralTimeSeries(name="BehavioralTimeSeries")
        lick_rate = (np.arange(int(seconds * 10)) % 7).astype(np.float64)
        # stored raw in mHz with conversion 1e-3 and offset 0.5: the importer must apply both
        licks.add_timeseries(TimeSeries(name="lick_rate", data=lick_rate * 1000.0, starting_time=1.0, rate=10.0,
                                        unit="Hz", conversion=1e-3, offset=0.5))
        behavior.add(licks)
        nwb.add_epoch(start_time=0.0, stop_time=seconds / 2, tags=["first"])
        nwb.add_epoch(start_time=seconds / 2, stop_time=seconds, tags=["second"])
        nwb.add_invalid_time_interval(start_time=4.0, stop_time=5.0)
        extra = {"heading": heading, "lick_rate": lick_rate + 0.5}
    # units: rates tuned to position
    spikes = []
    if units:
        centres = rng.uniform(-1, 1, (n_units, 2))
        dt_fine = 1e-3
        t_fine = np.arange(0.0, seconds, dt_fine)
        p_fine = np.stack([np.interp(t_fine, t_pos, pos[:, k]) for k in range(2)], axis=1)
        for u in range(n_units):
            rate = 2.0 + 40.0 * np.exp(-np.sum((p_fine - centres[u]) ** 2, axis=1) / 0.3)
            spk = t_fine[rng.random(t_fine.size) < rate * dt_fine] + rng.uniform(0, dt_fine)
            spikes.append(np.sort(spk))
        nwb.add_unit_column(name="quality", description="curation label")
        nwb.add_unit_column(name="snr", description="signal to noise")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # int -> float conversion notice of obs_intervals
            for u, spk in enumerate(spikes):
                written = spk.copy()
                if unsorted_unit == u:
                    written[[1, 2]] = written[[2, 1]]
                if spike_outside_obs and u == 0:
                    written = np.append(written, seconds + 5.0)
                nwb.add_unit(spike_times=written, obs_intervals=[[0.0, seconds]], electrode_group=group,
                             quality="good" if u % 2 == 0 else "mua", snr=float(u) + 0.5,
                             id=(3 if duplicate_ids and u < 2 else 100 + u))
    trial_table = None
    if trials:
        edges = np.arange(0.0, seconds, 2.0)
        nwb.add_trial_column(name="condition", description="condition label")
        nwb.add_trial_column(name="reward", description="reward volume")
        for i, s in enumerate(edges):
            nwb.add_trial(start_time=float(s), stop_time=float(min(s + 1.8, seconds)),
                          condition=f"c{i % 3}", reward=float(i % 2))
        trial_table = edges
    lfp = None
    if lfp_channels:
        region = nwb.create_electrode_table_region(region=list(range(lfp_channels)), description="all")
        lfp = rng.integers(-2000, 2000, (int(seconds * lfp_rate), lfp_channels)).astype(np.int16)
        nwb.add_acquisition(ElectricalSeries(name="lfp", data=lfp, electrodes=region, starting_time=0.0,
                                             rate=lfp_rate, conversion=1e-6))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return {"spikes": spikes, "t_pos": t_pos, "pos": pos_written, "t_speed": t_speed, "speed": speed,
            "trial_starts": trial_table, "lfp": lfp, **extra}
