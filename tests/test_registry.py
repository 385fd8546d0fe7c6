"""Registry: built-ins, stable ids, registration errors."""

import subprocess
import sys

import pytest
import torch

from torch_brain.nn import CrossEntropyLoss, MSELoss
from torch_brain.registry import (
    MODALITY_REGISTRY,
    DataType,
    ModalitySpec,
    get_modality,
    get_modality_by_id,
    modality_id_from_name,
    register_modality,
)

BUILTINS = [
    ("cursor_velocity_2d", 2, DataType.CONTINUOUS, "cursor.timestamps", "cursor.vel"),
    ("cursor_position_2d", 2, DataType.CONTINUOUS, "cursor.timestamps", "cursor.pos"),
    ("hand_velocity_2d", 2, DataType.CONTINUOUS, "hand.timestamps", "hand.vel"),
    ("arm_velocity_2d", 2, DataType.CONTINUOUS, "arm.timestamps", "arm.vel"),
    ("running_speed", 1, DataType.CONTINUOUS, "running.timestamps", "running.running_speed"),
    ("position_2d", 2, DataType.CONTINUOUS, "position.timestamps", "position.pos"),
    ("linear_position", 1, DataType.CONTINUOUS, "position.timestamps", "position.linear"),
    ("reach_direction", 8, DataType.MULTINOMIAL, "reach_direction.timestamps", "reach_direction.direction_id"),
    ("grip_type", 2, DataType.MULTINOMIAL, "grip.timestamps", "grip.grip_id"),
    (
        "drifting_gratings_orientation", 8, DataType.MULTINOMIAL,
        "drifting_gratings.timestamps", "drifting_gratings.orientation_id",
    ),
]


@pytest.mark.parametrize("name,dim,dtype,tkey,vkey", BUILTINS)
def test_builtins_match_contract(name, dim, dtype, tkey, vkey):
    spec = MODALITY_REGISTRY[name]
    assert (spec.dim, spec.type, spec.timestamp_key, spec.value_key) == (dim, dtype, tkey, vkey)
    assert spec.id >= 1
    assert get_modality_by_id(spec.id) == name
    expected_loss = MSELoss if dtype is DataType.CONTINUOUS else CrossEntropyLoss
    assert isinstance(spec.loss_fn, expected_loss)


def test_builtin_ids_fixed_and_unique():
    ids = [MODALITY_REGISTRY[b[0]].id for b in BUILTINS]
    assert ids == list(range(1, 11))


def test_derived_id_is_stable_across_processes():
    name = "test_eye_position_2d"
    code = (
        "from torch_brain.registry import register_modality as r;"
        f"print(r({name!r}, dim=2, type='continuous', timestamp_key='eye.timestamps', value_key='eye.pos'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = register_modality(name, dim=2, type="continuous", timestamp_key="eye.timestamps", value_key="eye.pos")
    assert int(out.stdout.strip()) == here == modality_id_from_name(name)
    assert here > 10
    # idempotent re-registration
    assert register_modality(name, dim=2, type=DataType.CONTINUOUS, timestamp_key="eye.timestamps",
                             value_key="eye.pos") == here


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(dim=3, type="continuous", timestamp_key="cursor.timestamps", value_key="cursor.vel"),
         ValueError, "already registered"),
        (dict(id=1, dim=2, type="continuous", timestamp_key="a.timestamps", value_key="a.x"),
         ValueError, "already used by 'cursor_velocity_2d'"),
        (dict(id=0, dim=2, type="continuous", timestamp_key="a.timestamps", value_key="a.x"),
         ValueError, "id must be an int >= 1"),
        (dict(dim=0, type="continuous", timestamp_key="a.timestamps", value_key="a.x"),
         ValueError, "dim must be an int >= 1"),
        (dict(dim=2, type="fuzzy", timestamp_key="a.timestamps", value_key="a.x"),
         ValueError, "type must be a DataType"),
        (dict(dim=2, type="continuous", timestamp_key="a.timestamps"), TypeError, "missing fields"),
        (dict(dim=2, type="continuous", timestamp_key="a.t", value_key="a.x", colour=1), TypeError,
         "unknown fields"),
    ],
)
def test_register_bad_input(kwargs, exc, match):
    name = "cursor_velocity_2d" if "already registered" in match else "test_bad_modality"
    with pytest.raises(exc, match=match):
        register_modality(name, **kwargs)
    assert "test_bad_modality" not in MODALITY_REGISTRY


def test_lookup_errors():
    with pytest.raises(ValueError, match="no registered modality has id 999999999"):
        get_modality_by_id(999999999)
    with pytest.raises(ValueError, match="Unknown modality 'nope'"):
        get_modality("nope")


def test_spec_loss_is_weighted_mean():
    spec = ModalitySpec(id=5000, dim=1, type=DataType.CONTINUOUS, timestamp_key="a.t", value_key="a.x")
    pred = torch.tensor([[1.0], [3.0]])
    target = torch.zeros(2, 1)
    w = torch.tensor([1.0, 3.0])
    # hand computed: (1*1 + 3*9) / 4 = 7
    assert spec.loss_fn(pred, target, w).item() == pytest.approx(7.0)
