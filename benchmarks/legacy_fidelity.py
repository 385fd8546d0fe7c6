"""How closely models loaded from torch_brain 0.1.2 checkpoints reproduce 0.1.2's predictions.

Loads the two checkpoints of ``tests/models/data`` (written by torch-brain 0.1.2 with
``scripts/make_0_1_2_checkpoints.py``) with ``POYO.load_pretrained`` / ``POYOPlus.load_pretrained``,
tokenizes the saved windows with our ``tokenize``, and prints one JSON object: the largest
absolute difference from the predictions 0.1.2 made, per model and task (target: <= 1e-4).

    .venv/bin/python benchmarks/legacy_fidelity.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> dict:
    sys.path.insert(0, str(ROOT))
    import torch

    from tests.models.test_legacy import PLUS_CKPT, POYO_CKPT, _predict, _saved
    from torch_brain.models import POYO, POYOPlus

    out = {"target_max_abs_diff": 1e-4}
    saved = _saved("poyo")
    pred = _predict(POYO.load_pretrained(POYO_CKPT, readout_spec="cursor_velocity_2d"), saved, ["cursor_velocity_2d"])
    out["poyo"] = {"cursor_velocity_2d": float((pred - torch.from_numpy(saved["pred_cursor_velocity_2d"])).abs().max())}
    saved = _saved("poyo_plus")
    preds = _predict(POYOPlus.load_pretrained(PLUS_CKPT), saved, ["cursor_velocity_2d", "drifting_gratings_orientation"])
    out["poyo_plus"] = {task: float((p - torch.from_numpy(saved[f"pred_{task}"])).abs().max()) for task, p in preds.items()}
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
