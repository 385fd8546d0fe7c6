"""Modality registry: what a decoding task reads from a recording and how it is scored.

A *modality* (task) is described by a :class:`ModalitySpec`: its output ``dim``, its
:class:`DataType`, where its timestamps and values live in a recording (dotted paths such as
``"cursor.timestamps"`` and ``"cursor.vel"``) and its loss. Specs are registered under a name in
:data:`MODALITY_REGISTRY`.

Ids are stable: the built-ins have fixed ids written below; any other name gets an id derived from
the name itself (a CRC32 hash), never from import order, so the same name means the same id in
every process and every checkpoint. Id 0 is reserved for padding (``output_decoder_index``).

Example:
    >>> from torch_brain.registry import MODALITY_REGISTRY, DataType, register_modality
    >>> MODALITY_REGISTRY["cursor_velocity_2d"].id
    1
    >>> spec_id = register_modality(
    ...     "eye_position_2d", dim=2, type=DataType.CONTINUOUS,
    ...     timestamp_key="eye.timestamps", value_key="eye.pos")
"""

from __future__ import annotations

import dataclasses
import enum
import zlib
from typing import Any, Callable

from torch_brain._registry import Registry
from torch_brain.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss

__all__ = [
    "DataType",
    "MODALITY_REGISTRY",
    "ModalitySpec",
    "Registry",
    "get_modality",
    "get_modality_by_id",
    "modality_id_from_name",
    "register_modality",
]


class DataType(enum.Enum):
    """Kind of values a modality holds; decides the default loss and how stitching pools."""

    CONTINUOUS = "continuous"
    BINARY = "binary"
    MULTINOMIAL = "multinomial"
    MULTILABEL = "multilabel"

    @classmethod
    def parse(cls, value: "DataType | str") -> "DataType":
        """Return ``value`` as a DataType; strings match names or values, case-insensitive."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            for member in cls:
                if value.lower() in (member.name.lower(), member.value):
                    return member
        raise ValueError(
            f"type must be a DataType or one of {[m.name for m in cls]}, but got {value!r}."
        )

    @property
    def is_categorical(self) -> bool:
        """True for MULTINOMIAL (class labels), whose predictions are logits over classes."""
        return self is DataType.MULTINOMIAL


def _default_loss(data_type: DataType) -> Callable:
    if data_type is DataType.CONTINUOUS:
        return MSELoss()
    if data_type is DataType.MULTINOMIAL:
        return CrossEntropyLoss()
    return BCEWithLogitsLoss()


@dataclasses.dataclass(frozen=True, eq=False)
class ModalitySpec:
    """Description of one decoding task.

    Attributes:
        id: stable integer id >= 1 (0 pads ``output_decoder_index``).
        dim: number of model outputs per query (classes for MULTINOMIAL).
        type: the :class:`DataType` of the values.
        timestamp_key: dotted path of the query timestamps in a recording, e.g. ``"cursor.timestamps"``.
        value_key: dotted path of the target values, e.g. ``"cursor.vel"``.
        loss_fn: ``loss_fn(pred, target, weights=None) -> scalar``; default chosen from ``type``
            (MSE, cross-entropy, BCE-with-logits).
        name: registry name (filled by :func:`register_modality`).
    """

    id: int
    dim: int
    type: DataType
    timestamp_key: str
    value_key: str
    loss_fn: Callable | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, int) or self.id < 1:
            raise ValueError(
                f"ModalitySpec.id must be an int >= 1 (0 is the padding id), but got {self.id!r}."
            )
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"ModalitySpec.dim must be an int >= 1, but got {self.dim!r}.")
        object.__setattr__(self, "type", DataType.parse(self.type))
        for key in ("timestamp_key", "value_key"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value:
                raise TypeError(
                    f"ModalitySpec.{key} must be a dotted path string like 'cursor.timestamps', "
                    f"but got {value!r}."
                )
        if self.loss_fn is None:
            object.__setattr__(self, "loss_fn", _default_loss(self.type))
        elif not callable(self.loss_fn):
            raise TypeError(
                f"ModalitySpec.loss_fn must be callable as loss_fn(pred, target, weights), "
                f"but got {type(self.loss_fn).__name__}."
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModalitySpec):
            return NotImplemented
        return self._key() == other._key() and type(self.loss_fn) is type(other.loss_fn)

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        return (self.id, self.dim, self.type, self.timestamp_key, self.value_key, self.name)

    def to_dict(self) -> dict[str, Any]:
        """Plain description (without ``loss_fn``), e.g. to record in a checkpoint."""
        return {
            "name": self.name,
            "id": self.id,
            "dim": self.dim,
            "type": self.type.name,
            "timestamp_key": self.timestamp_key,
            "value_key": self.value_key,
        }


#: name -> :class:`ModalitySpec` of every registered modality (a read-only mapping).
MODALITY_REGISTRY: Registry[ModalitySpec] = Registry(
    "modality", hint="Register it with torch_brain.registry.register_modality."
)

# First id given to names without a fixed id; derived ids live in [_DERIVED_ID_BASE, +2**24).
_DERIVED_ID_BASE = 1024


def modality_id_from_name(name: str) -> int:
    """The id a name gets when registered without an explicit id (depends on the name only)."""
    return _DERIVED_ID_BASE + zlib.crc32(name.encode("utf-8")) % (1 << 24)


def register_modality(name: str, **spec: Any) -> int:
    """Register a modality under ``name`` and return its id.

    Args:
        name: registry name, e.g. ``"eye_position_2d"``.
        **spec: the :class:`ModalitySpec` fields ``dim``, ``type``, ``timestamp_key``,
            ``value_key``, optionally ``loss_fn`` and ``id`` (default: derived from ``name``).

    Returns:
        The modality id (int >= 1).

    Raises:
        ValueError: the name is registered with a different spec, or the id is already used by
            another name.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_modality: name must be a non-empty str, but got {name!r}.")
    unknown = set(spec) - {"id", "dim", "type", "timestamp_key", "value_key", "loss_fn"}
    if unknown:
        raise TypeError(
            f"register_modality({name!r}): unknown fields {sorted(unknown)}; expected dim, type, "
            "timestamp_key, value_key, and optionally loss_fn and id."
        )
    missing = {"dim", "type", "timestamp_key", "value_key"} - set(spec)
    if missing:
        raise TypeError(f"register_modality({name!r}): missing fields {sorted(missing)}.")
    spec = dict(spec)
    spec.setdefault("id", modality_id_from_name(name))
    new = ModalitySpec(name=name, **spec)
    old = MODALITY_REGISTRY.get(name)
    if old is not None:
        if old == new:
            return old.id
        raise ValueError(
            f"register_modality: {name!r} is already registered as {old.to_dict()}, but got "
            f"{new.to_dict()}; use another name."
        )
    for other_name, other in MODALITY_REGISTRY.items():
        if other.id == new.id:
            raise ValueError(
                f"register_modality({name!r}): id {new.id} is already used by {other_name!r}; "
                "pass an explicit unused id=..."
            )
    MODALITY_REGISTRY.register(name, new)
    return new.id


def get_modality(name: str) -> ModalitySpec:
    """Return the spec registered under ``name``; raises ValueError naming the known modalities."""
    return MODALITY_REGISTRY.lookup(name)


def get_modality_by_id(modality_id: int) -> str:
    """Return the registered name whose spec has id ``modality_id``.

    Raises:
        ValueError: no registered modality has that id.
    """
    for name, spec in MODALITY_REGISTRY.items():
        if spec.id == int(modality_id):
            return name
    raise ValueError(
        f"no registered modality has id {modality_id!r}; known ids: "
        f"{sorted((s.id, n) for n, s in MODALITY_REGISTRY.items())}."
    )


_C, _M = DataType.CONTINUOUS, DataType.MULTINOMIAL
# name: (fixed id, dim, type, timestamp_key, value_key). Never renumber: checkpoints rely on these.
_BUILTINS = {
    "cursor_velocity_2d": (1, 2, _C, "cursor.timestamps", "cursor.vel"),
    "cursor_position_2d": (2, 2, _C, "cursor.timestamps", "cursor.pos"),
    "hand_velocity_2d": (3, 2, _C, "hand.timestamps", "hand.vel"),
    "arm_velocity_2d": (4, 2, _C, "arm.timestamps", "arm.vel"),
    "running_speed": (5, 1, _C, "running.timestamps", "running.running_speed"),
    "position_2d": (6, 2, _C, "position.timestamps", "position.pos"),
    "linear_position": (7, 1, _C, "position.timestamps", "position.linear"),
    "reach_direction": (8, 8, _M, "reach_direction.timestamps", "reach_direction.direction_id"),
    "grip_type": (9, 2, _M, "grip.timestamps", "grip.grip_id"),
    "drifting_gratings_orientation": (
        10, 8, _M, "drifting_gratings.timestamps", "drifting_gratings.orientation_id",
    ),
}
for _name, (_id, _dim, _type, _tkey, _vkey) in _BUILTINS.items():
    register_modality(_name, id=_id, dim=_dim, type=_type, timestamp_key=_tkey, value_key=_vkey)
del _name, _id, _dim, _type, _tkey, _vkey, _C, _M
