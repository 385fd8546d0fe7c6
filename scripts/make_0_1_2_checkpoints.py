"""Write the torch_brain 0.1.2 checkpoints and predictions that tests/models/test_legacy.py loads.

Run with our virtualenv from the repository root (it re-runs itself in the peer virtualenv,
``.bench-venv/peer``: torch-brain 0.1.2 + temporaldata 0.1.6, see ``benchmarks/_peer.py``)::

    python scripts/make_0_1_2_checkpoints.py [--out tests/models/data]

For POYO and for POYO+ it builds a tiny 0.1.2 model, initialises its vocabularies the way 0.1.x
code did (POYO: string unit ids; POYO+: Python int unit ids), perturbs every parameter (so that a
wrong mapping of any tensor shows), trains two steps with a Lightning ``Trainer`` around the model
(``self.model = model``, ``save_hyperparameters`` with a ``model`` section, as the 0.1.x training
scripts did), writes the checkpoint with ``trainer.save_checkpoint(..., weights_only=True)``, and
saves the two fixed windows (raw arrays) with the predictions 0.1.2 made on them in eval mode.

The peer virtualenv has no Lightning; the worker appends the site-packages of our virtualenv's
``lightning`` to ``sys.path`` (after the peer's own, so torch and torch_brain stay the peer's).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the model configuration (0.1.x "model" config section) of the two checkpoints
ARCH = dict(sequence_length=1.0, latent_step=0.25, num_latents_per_step=4, dim=8, depth=2, dim_head=16,
            cross_heads=2, self_heads=2, ffn_dropout=0.1, lin_dropout=0.1, atn_dropout=0.0,
            emb_init_scale=0.02, t_min=1e-4, t_max=2.0627)
POYO_PLUS_TASKS = ("cursor_velocity_2d", "cursor_position_2d", "arm_velocity_2d", "drifting_gratings_orientation")


def _window_arrays(seed: int, session: str, unit_ids: list, n_spikes: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    return {
        "session_id": np.array(session),
        "unit_ids": np.array(unit_ids),
        "spike_timestamps": np.sort(rng.uniform(0.0, 1.0, n_spikes)),
        "spike_unit_index": rng.integers(0, len(unit_ids), n_spikes),
        "cursor_timestamps": np.arange(10) / 10.0 + 0.05,
        "cursor_vel": rng.normal(size=(10, 2)),
        "cursor_pos": rng.normal(size=(10, 2)),
        "gratings_timestamps": np.array([0.3, 0.8]),
        "gratings_orientation_id": rng.integers(0, 8, 2),
    }


def _peer_window(arrays: dict, plus: bool):
    """A 0.1.2 (temporaldata) window from the raw arrays."""
    import numpy as np
    from temporaldata import ArrayDict, Data, Interval, IrregularTimeSeries

    a = arrays
    data = Data(
        units=ArrayDict(id=a["unit_ids"]),
        spikes=IrregularTimeSeries(timestamps=a["spike_timestamps"], unit_index=a["spike_unit_index"],
                                   domain=Interval(0.0, 1.0)),
        cursor=IrregularTimeSeries(timestamps=a["cursor_timestamps"], vel=a["cursor_vel"].astype(np.float32),
                                   pos=a["cursor_pos"].astype(np.float32), domain=Interval(0.0, 1.0)),
        drifting_gratings=IrregularTimeSeries(timestamps=a["gratings_timestamps"],
                                              orientation_id=a["gratings_orientation_id"],
                                              domain=Interval(0.0, 1.0)),
        session=Data(id=str(a["session_id"])),
        domain=Interval(0.0, 1.0),
    )
    if plus:
        data.config = {"multitask_readout": [{"readout_id": "cursor_velocity_2d"},
                                             {"readout_id": "drifting_gratings_orientation"}]}
    else:
        data.config = {"readout": {"readout_id": "cursor_velocity_2d"}}
    return data


def worker(out: Path, lightning_site: str) -> dict:
    """Runs in the peer virtualenv (torch-brain 0.1.2)."""
    sys.path.append(lightning_site)  # after the peer's site-packages: only lightning (+ tqdm) come from there

    import lightning as L
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torch_brain
    from torch_brain.data import collate
    from torch_brain.models import POYO, POYOPlus
    from torch_brain.registry import MODALITY_REGISTRY, DataType

    class Wrapper(L.LightningModule):
        def __init__(self, model, cfg):
            super().__init__()
            self.model = model
            self.save_hyperparameters(cfg)

        def training_step(self, batch, batch_idx):
            out = self.model(**batch["model_inputs"])
            if isinstance(out, dict):  # POYO+: {task: (n, dim)}, targets chained
                loss = 0.0
                for task, pred in out.items():
                    target = batch["target_values"][task]
                    if MODALITY_REGISTRY[task].type == DataType.MULTINOMIAL:
                        loss = loss + F.cross_entropy(pred, target.long())
                    else:
                        loss = loss + F.mse_loss(pred, target.float())
                return loss
            mask = batch["model_inputs"]["output_mask"]
            return F.mse_loss(out[mask], batch["target_values"][mask].float())

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-2)

    result = {"torch_brain": torch_brain.__version__, "lightning": L.__version__}
    for name, plus in (("poyo", False), ("poyo_plus", True)):
        torch.manual_seed(1 + plus)
        if plus:
            specs = {t: MODALITY_REGISTRY[t] for t in POYO_PLUS_TASKS}  # ids 1..4: fit a table of 5 rows
            model = POYOPlus(**ARCH, readout_specs=specs)
            units = [[100 + i for i in range(5)], [200 + i for i in range(3)]]  # Python int unit ids
            cfg_model = {"_target_": "torch_brain.models.POYOPlus", **ARCH}
        else:
            model = POYO(**ARCH, readout_spec=MODALITY_REGISTRY["cursor_velocity_2d"])
            units = [[f"bs/s0/u{i}" for i in range(5)], [f"bs/s1/u{i}" for i in range(3)]]
            cfg_model = dict(ARCH)
        sessions = ["bs/s0", "bs/s1"]
        model.unit_emb.initialize_vocab(units[1] + units[0])  # not in window order: the order must be kept
        model.session_emb.initialize_vocab(sessions)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        windows = [_window_arrays(10 * k + plus, sessions[k], units[k], (40, 23)[k]) for k in range(2)]
        batch = collate([model.tokenize(_peer_window(w, plus)) for w in windows])

        module = Wrapper(model, {"model": cfg_model, "optim": {"lr": 1e-2}, "seed": 1})
        trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([batch] * 2, batch_size=None))
        ckpt = out / f"{name}_0_1_2.ckpt"
        trainer.save_checkpoint(ckpt, weights_only=True)

        model.eval()
        with torch.no_grad():
            preds = model(**batch["model_inputs"])
        saved = {}
        for k, w in enumerate(windows):
            saved.update({f"w{k}_{key}": value for key, value in w.items()})
        if plus:
            for task, value in preds.items():
                saved[f"pred_{task}"] = value.numpy()
        else:
            saved["pred_cursor_velocity_2d"] = preds[batch["model_inputs"]["output_mask"]].numpy()
        np.savez(out / f"{name}_0_1_2_window.npz", **saved)
        result[name] = {"checkpoint_bytes": ckpt.stat().st_size,
                        "predictions": {k: list(v.shape) for k, v in saved.items() if k.startswith("pred_")}}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "tests" / "models" / "data"))
    parser.add_argument("--worker", nargs=2, metavar=("OUT", "LIGHTNING_SITE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker[0]), args.worker[1])))
        return
    import lightning

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _peer import run_peer

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    source = Path(__file__).read_text()
    print(json.dumps(run_peer(source, "--worker", str(out), str(Path(lightning.__file__).parents[1]), timeout=600)))


if __name__ == "__main__":
    main()
