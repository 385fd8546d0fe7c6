"""The guide's distributed evaluation and training, run the way a user runs them (issue 13).

``_guide_ddp_script.py`` is the guide's code with a default ``L.Trainer(strategy="ddp",
devices=N)`` (Lightning's ``use_distributed_sampler=True``), started as ``python script.py``
so that Lightning's own launcher starts the other ranks (gloo, CPU). It runs once with 1, 2
and 3 processes (the three launches at once) and every rank reports what it logged and which
windows it evaluated or trained on.

Before the fix Lightning wrapped ``DistributedStitchingFixedWindowSampler`` in a second
distributed sampler, so each rank evaluated only every other window of its share and the
metrics moved with the number of processes; and a rank with no window made Lightning raise
(or skip that rank's evaluation loop while the others waited for it).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from tests.training._launch import run_ranked
from tests.training.tiny_synthetic import DATASET_CONFIG

SCRIPT = Path(__file__).with_name("_guide_ddp_script.py")
PROCESSES = (1, 2, 3)
EVAL_CASES = ("validate", "test", "fit", "validate_one_session")
TIMEOUT_S = 600


@pytest.fixture(scope="module")
def runs(tiny_root, tmp_path_factory) -> dict[int, list[dict]]:
    """{N: [report of rank 0, ..., rank N-1]} of the script run with N processes."""
    return run_ranked(SCRIPT, tiny_root, tmp_path_factory, PROCESSES, TIMEOUT_S,
                      {"GUIDE_DDP_DUMP_AFTER_S": str(TIMEOUT_S - 60)}, "ddp")


def _evaluation_windows(split: str, root: Path, **kwargs) -> list[list]:
    """Every window of a one-process evaluation, from the sampler built here."""
    from torch_brain.data import Dataset
    from torch_brain.data.sampler import DistributedStitchingFixedWindowSampler

    ds = Dataset(root, config=str(DATASET_CONFIG), split=split, **kwargs)
    sampler = DistributedStitchingFixedWindowSampler(ds.get_sampling_intervals(), 1.0, step=0.5, num_replicas=1,
                                                     rank=0)
    return sorted([w.recording_id, round(w.start, 6)] for w in sampler)


@pytest.mark.slow
@pytest.mark.parametrize("case", EVAL_CASES)
def test_guide_evaluation_gives_the_same_metrics_on_1_2_3_processes(runs, tiny_root, case):
    single = runs[1][0][case]["metrics"]
    sessions = 1 if case == "validate_one_session" else 2
    assert len(single) == 2 * sessions + 1  # (session, task) pairs + average_*_metric
    assert all(math.isfinite(v) for v in single.values())
    for n in PROCESSES[1:]:
        for rank in runs[n]:  # every rank logs the reduced values of the whole set
            assert rank[case]["metrics"].keys() == single.keys(), (n, case)
            for key, value in single.items():
                assert rank[case]["metrics"][key] == pytest.approx(value, abs=1e-6), (n, case, key)


@pytest.mark.slow
@pytest.mark.parametrize("case", EVAL_CASES)
def test_every_evaluation_window_is_evaluated_once_over_the_ranks(runs, tiny_root, case):
    split = "test" if case == "test" else "valid"
    kwargs = {"recording_ids": ["synthetic_reaching/session_00"]} if case == "validate_one_session" else {}
    expected = _evaluation_windows(split, tiny_root, **kwargs)
    for n in PROCESSES:
        union = sorted(w for rank in runs[n] for w in rank[case]["windows"])
        assert union == expected, (n, case)  # none lost, none twice


@pytest.mark.slow
def test_ranks_without_any_window_take_part(runs):
    # one validation sequence: ranks 1.. get nothing; two sequences on 3 ranks: one rank gets nothing
    for n in (2, 3):
        assert [len(r["validate_one_session"]["windows"]) == 0 for r in runs[n]] == [False] + [True] * (n - 1)
    for case in ("validate", "test", "fit"):
        assert sum(len(r[case]["windows"]) == 0 for r in runs[3]) == 1, case


@pytest.mark.slow
def test_ddp_training_epoch_is_the_one_process_epoch_split_between_ranks(runs):
    """RandomFixedWindowSampler, wrapped by Lightning's DistributedSamplerWrapper under DDP.

    Every rank draws the same epoch (same seed, same epoch number) and takes every N-th window of
    a shuffled order that Lightning pads to a multiple of N by repeating its first windows: ranks
    are disjoint except for those (-m) % N repeats, and their union is the 1-process epoch.
    """
    reference = Counter(tuple(w) for w in runs[1][0]["train_reference"])
    m = sum(reference.values())
    assert m > 0 and all(c == 1 for c in reference.values())
    for n in PROCESSES:
        ranks = [Counter(tuple(w) for w in r["train"]) for r in runs[n]]
        for r in runs[n]:  # every rank built the same sampler (same seed)
            assert Counter(tuple(w) for w in r["train_reference"]) == reference
        assert [sum(c.values()) for c in ranks] == [math.ceil(m / n)] * n
        drawn = sum(ranks, Counter())
        assert set(drawn) == set(reference)  # nothing missing, nothing foreign
        repeats = drawn - reference
        assert sum(repeats.values()) == (-m) % n
        assert all(c == 1 for c in repeats.values())  # a repeat is drawn twice, not more
        for c in ranks:  # a repeat lands on another rank than the original
            assert all(v == 1 for v in c.values())
