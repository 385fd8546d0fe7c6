"""Checkpoints written by torch_brain 0.1.2 load and predict what 0.1.2 predicted.

The files in ``data/`` were written by ``scripts/make_0_1_2_checkpoints.py`` in the peer
virtualenv (torch-brain 0.1.2): two Lightning checkpoints and, for each, two fixed windows (raw
arrays) with the predictions the 0.1.2 model made on them in eval mode. Nothing here runs 0.1.2.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries, collate
from torch_brain.models import POYO, POYOPlus
from torch_brain.registry import MODALITY_REGISTRY

DATA = Path(__file__).parent / "data"
POYO_CKPT, PLUS_CKPT = DATA / "poyo_0_1_2.ckpt", DATA / "poyo_plus_0_1_2.ckpt"
PLUS_TASKS = ("cursor_velocity_2d", "cursor_position_2d", "arm_velocity_2d", "drifting_gratings_orientation")


def _saved(name):
    with np.load(DATA / f"{name}_0_1_2_window.npz") as f:
        return dict(f)


def _window(saved, k, tasks):
    a = {key[3:]: value for key, value in saved.items() if key.startswith(f"w{k}_")}
    d = Data(
        units=ArrayDict(id=a["unit_ids"]),
        spikes=IrregularTimeSeries(a["spike_timestamps"], unit_index=a["spike_unit_index"], domain=Interval(0.0, 1.0)),
        cursor=IrregularTimeSeries(a["cursor_timestamps"], vel=a["cursor_vel"].astype(np.float32),
                                   pos=a["cursor_pos"].astype(np.float32), domain=Interval(0.0, 1.0)),
        drifting_gratings=IrregularTimeSeries(a["gratings_timestamps"], orientation_id=a["gratings_orientation_id"],
                                              domain=Interval(0.0, 1.0)),
        session=Data(id=str(a["session_id"])),
        domain=Interval(0.0, 1.0),
    )
    d.config = {"multitask_readout": [{"readout_id": t} for t in tasks]}
    return d


def _predict(model, saved, tasks):
    batch = collate([model.tokenize(_window(saved, k, tasks)) for k in range(2)])
    with torch.no_grad():
        return model.eval()(**batch["model_inputs"])


def test_poyo_0_1_2_checkpoint_predicts_what_0_1_2_predicted():
    saved = _saved("poyo")
    model = POYO.load_pretrained(POYO_CKPT, readout_spec="cursor_velocity_2d")
    pred = _predict(model, saved, ["cursor_velocity_2d"])
    expected = torch.from_numpy(saved["pred_cursor_velocity_2d"])
    assert pred.shape == expected.shape == (20, 2)
    torch.testing.assert_close(pred, expected, atol=1e-4, rtol=0)


def test_poyo_plus_0_1_2_checkpoint_predicts_what_0_1_2_predicted():
    saved = _saved("poyo_plus")
    model = POYOPlus.load_pretrained(PLUS_CKPT)
    assert set(model.readout.readout_specs) == set(PLUS_TASKS)
    preds = _predict(model, saved, ["cursor_velocity_2d", "drifting_gratings_orientation"])
    for task in ("cursor_velocity_2d", "drifting_gratings_orientation"):
        expected = torch.from_numpy(saved[f"pred_{task}"])
        torch.testing.assert_close(preds[task], expected, atol=1e-4, rtol=0)
