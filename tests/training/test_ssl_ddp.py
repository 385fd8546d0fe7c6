"""Pretraining under DDP the way a user runs it: SSLPretrainModule + SSLDataModule and a plain
``L.Trainer(strategy="ddp", devices=2, accelerator="cpu")`` (gloo), against the 1-process run.

``_ssl_ddp_script.py`` runs as ``python script.py`` so that Lightning's launcher starts rank 1.

- Validation: windows are split between ranks without repeats and each window's mask depends
  only on the window, val/loss is weighted by masked cells and bits/spike gathers every cell, so
  the initial weights give the 1-process figures on every rank (to float summation order).
- Training: every rank draws the 1-process epoch and trains on every 2nd batch of it (rank r: global
  batches r, r + 2, ...), with the masks the 1-process run gives those batches; after the steps
  every rank holds the same weights and logs the same validation figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training._launch import run_ranked

SCRIPT = Path(__file__).with_name("_ssl_ddp_script.py")
PROCESSES = (1, 2)
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def runs(tiny_root, tmp_path_factory) -> dict[int, list[dict]]:
    """{N: [report of rank 0, ..., rank N-1]} of the script run with N processes."""
    return run_ranked(SCRIPT, tiny_root, tmp_path_factory, PROCESSES, TIMEOUT_S,
                      {"SSL_DDP_DUMP_AFTER_S": str(TIMEOUT_S - 30)}, "ssl_ddp")


@pytest.mark.slow
def test_validation_figures_equal_the_one_process_figures(runs):
    single = runs[1][0]["validate_initial"]
    assert set(single) == {"val/loss", "val/bits_per_spike", "val/masked_fraction"}
    for rank in runs[2]:
        assert rank["validate_initial"].keys() == single.keys()
        for key, value in single.items():
            assert rank["validate_initial"][key] == pytest.approx(value, rel=1e-6, abs=1e-7), key


@pytest.mark.slow
def test_each_rank_trains_on_every_other_batch_of_the_one_process_epoch(runs):
    single = runs[1][0]["batches"]  # 1 process: global batches 0..3 (windows, masked counts, cells)
    assert len(single) == 4
    ranks = [r["batches"] for r in runs[2]]
    assert [len(b) for b in ranks] == [4, 4]  # 4 steps each
    assert ranks[0][:2] == [single[0], single[2]]
    assert ranks[1][:2] == [single[1], single[3]]


@pytest.mark.slow
def test_ranks_stay_in_step(runs):
    rank0, rank1 = runs[2]
    assert rank0["global_step"] == rank1["global_step"] == 4
    assert rank0["checksums"] == rank1["checksums"]  # the same weights, exactly
    assert rank0["validate_trained"] == rank1["validate_trained"]
    assert rank0["validate_trained"]["val/loss"] != pytest.approx(rank0["validate_initial"]["val/loss"], abs=1e-7)
