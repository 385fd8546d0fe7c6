"""torch_brain.brainsets: prepare bundled recordings as brainset HDF5 files.

``prepare(name, root, **options)`` writes ``<root>/<name>/<session>.h5`` for one of the registered
brainsets (see :func:`list_brainsets`):

* ``synthetic_reaching`` — synthetic multi-session, multi-subject centre-out reaching;
* ``spykesml_m1`` — real macaque M1 reaching (50 ms counts spread into spike times);
* ``nelpy_hippocampus`` — real rat hippocampus on a linear track (spike times, position);
* ``brochier_grasp`` — real macaque reach-to-grasp trials (1 ms rasters, grip type).

Your own NWB files: :func:`from_nwb` / :func:`read_nwb` (one file as ``Data``) and
:func:`prepare_nwb` (files -> a brainset folder plus a dataset config), also
``torch-brain prepare nwb FILE_OR_DIR... --root DIR --brainset NAME``.

From the shell: ``python -m torch_brain.brainsets NAME --root DIR [--option ...]``.
"""

from . import _preparers  # noqa: F401  (registers the bundled preparers)
from ._brochier import build_brochier_grasp, read_brochier_grasp
from ._nwb import NwbImport, NwbPrepared, from_nwb, list_behavior_paths, prepare_nwb, read_nwb
from ._nelpy import build_nelpy_hippocampus, read_nelpy_linear_track
from ._registry import (
    BRAINSET_REGISTRY,
    BrainsetPreparer,
    Option,
    add_prepare_arguments,
    get_preparer,
    list_brainsets,
    prepare,
    prepare_from_args,
    register_brainset,
)
from ._spykesml import build_spykesml_m1, read_spykesml_m1, spread_binned_counts
from ._synthetic import (
    SubjectStats,
    build_synthetic_reaching_session,
    simulate_reaching_session,
    subject_stats,
)

__all__ = [
    "BRAINSET_REGISTRY",
    "BrainsetPreparer",
    "NwbImport",
    "NwbPrepared",
    "Option",
    "SubjectStats",
    "add_prepare_arguments",
    "build_brochier_grasp",
    "build_nelpy_hippocampus",
    "build_spykesml_m1",
    "build_synthetic_reaching_session",
    "from_nwb",
    "get_preparer",
    "list_behavior_paths",
    "list_brainsets",
    "prepare",
    "prepare_nwb",
    "prepare_from_args",
    "read_brochier_grasp",
    "read_nelpy_linear_track",
    "read_nwb",
    "read_spykesml_m1",
    "register_brainset",
    "simulate_reaching_session",
    "spread_binned_counts",
    "subject_stats",
]
