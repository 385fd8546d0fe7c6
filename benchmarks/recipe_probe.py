"""Cheap recipe probe: how many training steps until POYO+ leaves its initial plateau.

A plain training loop (no Lightning, no evaluation) over the demo's data pipeline
(``DecodingDataModule`` on the synthetic reaching set, POYO+ built by ``NeuralDecoder``) that
prints, every 25 steps, the mean over those steps of the *training-batch* velocity R² proxy
``1 - MSE / Var(target)`` (targets scaled by 8.6 cm/s, dropout active) and of the reach-direction
cross-entropy (ln 8 = 2.08 at chance). It is a probe for comparing recipes quickly (optimiser,
learning rate, schedule, batch size, model options, unit dropout), not an accuracy figure: use
``accuracy_synthetic.py`` for test-split numbers.

    .venv/bin/python benchmarks/recipe_probe.py '{"steps": 600, "stop": 350, "bs": 32, "opt": "lamb", "lr": 4e-3}'

Keys: steps (schedule length), stop (steps actually run), bs, opt (lamb | adamw), lr, warm
(warm-up fraction), model (POYOPlus options), ud (UnitDropout options), threads, data (folder).
"""

from __future__ import annotations

import json
import math
import sys
import time


def main(argv: list[str] | None = None) -> list[dict]:
    import torch

    from torch_brain.brainsets import prepare
    from torch_brain.cli.demo import _dataset_config
    from torch_brain.optim import SparseLamb
    from torch_brain.training import DecodingDataModule, NeuralDecoder

    args = json.loads((argv or sys.argv[1:] or ["{}"])[0])
    torch.set_num_threads(int(args.get("threads", 1)))
    torch.manual_seed(0)
    steps = int(args.get("steps", 200))
    stop = int(args.get("stop", steps))
    root = args.get("data", "runs/bench_synthetic_data")
    from pathlib import Path

    if not (Path(root) / "synthetic_reaching").is_dir():
        prepare("synthetic_reaching", root, progress=False)
    dm = DecodingDataModule(root, _dataset_config(False), batch_size=int(args.get("bs", 16)),
                            unit_dropout=args.get("ud"))
    model_kwargs = dict(dim=64, depth=2, dim_head=32, cross_heads=2, self_heads=4, ffn_dropout=0.1,
                        lin_dropout=0.2)
    model_kwargs.update(args.get("model", {}))
    module = NeuralDecoder("poyo_plus", tasks=dm.tasks, model_kwargs=model_kwargs)
    module.init_vocab(dm)
    dm.tokenizer = module.model.tokenize
    dm.setup("fit")
    model = module.model
    lr = float(args.get("lr", 1e-3))
    if args.get("opt", "lamb") == "lamb":
        opt = SparseLamb(model.parameters(), lr=lr, weight_decay=1e-4)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warm = max(1, int(float(args.get("warm", 0.1)) * steps))

    def factor(s: int) -> float:  # linear warm-up, cosine to 1 %
        if s < warm:
            return (s + 1) / warm
        p = min(1.0, (s - warm) / max(1, steps - warm))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    t0, hist, rows, step = time.perf_counter(), [], [], 0
    while step < stop:
        for batch in dm.train_dataloader():
            out = model(**batch["model_inputs"], unpack_output=False)
            target = batch["target_values"]["cursor_velocity_2d"] / 8.6
            loss_v = torch.nn.functional.mse_loss(out["cursor_velocity_2d"], target)
            loss_c = torch.nn.functional.cross_entropy(out["reach_direction"],
                                                       batch["target_values"]["reach_direction"])
            opt.zero_grad()
            (loss_v + loss_c).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            hist.append((1 - float(loss_v.detach()) / float(target.var(0).mean()), float(loss_c.detach())))
            if step % 25 == 0:
                last = hist[-25:]
                row = {"step": step, "s": round(time.perf_counter() - t0, 1),
                       "r2_proxy": round(sum(h[0] for h in last) / 25, 3),
                       "ce": round(sum(h[1] for h in last) / 25, 3)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            if step >= stop:
                break
    print(json.dumps({"benchmark": "recipe_probe", "args": args, "curve": rows}))
    return rows


if __name__ == "__main__":
    main()
