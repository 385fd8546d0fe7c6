"""A real two-process DDP run (gloo, CPU) gives the same stitched metrics as one process."""

from __future__ import annotations

import json
import socket

import lightning as L
import pytest
import torch.multiprocessing as mp
from _stitch_helpers import ReplayModel, all_windows, batches, ddp_worker, loader, make_metrics, reference_metrics

from torch_brain.utils.stitcher import MultiTaskDecodingStitchEvaluator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_ranks_equal_single_process(tmp_path):
    windows = all_windows()
    single = {}
    for stage in ("val", "test"):
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False,
                            callbacks=[MultiTaskDecodingStitchEvaluator(make_metrics(), quiet=True)])
        run = trainer.validate if stage == "val" else trainer.test
        single[stage] = run(ReplayModel(), loader(batches(windows, 3)), verbose=False)[0]

    mp.spawn(ddp_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for stage in ("val", "test"):
        reference = reference_metrics(windows, stage)
        assert set(reference) <= set(ranks[0][stage])
        for key, value in reference.items():
            assert single[stage][key] == pytest.approx(value, abs=1e-5)
            for rank in ranks:  # every rank logs the same reduced values
                assert rank[stage][key] == pytest.approx(single[stage][key], abs=1e-6), (stage, key)
