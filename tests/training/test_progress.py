"""Progress output in a pipe: a line every N steps, never a redraw per step."""

import io

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from torch.utils.data import DataLoader, TensorDataset

from torch_brain.training.progress import LineProgressBar, make_progress_bar


class _Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.lin(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_pipe_gets_one_line_per_n_steps_and_one_per_epoch():
    out = io.StringIO()
    data = TensorDataset(torch.randn(40, 2), torch.randn(40, 1))
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_model_summary=False, callbacks=[make_progress_bar(every_n_steps=7, stream=out)])
    trainer.fit(_Tiny(), DataLoader(data, batch_size=2))  # 20 steps per epoch, 40 in all
    lines = out.getvalue().splitlines()
    steps = [ln for ln in lines if ln.startswith("train step")]
    # steps 7, 14, ..., 35: five lines, not forty; plus one line per epoch
    assert [int(ln.split()[2].split("/")[0]) for ln in steps] == [7, 14, 21, 28, 35]
    assert "train_loss=" in steps[0]
    assert sum(ln.startswith("epoch ") for ln in lines) == 2
    assert "\r" not in out.getvalue()


def test_terminal_keeps_tqdm_and_bad_every_n_steps_is_refused():
    assert isinstance(make_progress_bar(stream=_Tty()), TQDMProgressBar)
    assert isinstance(make_progress_bar(stream=io.StringIO()), LineProgressBar)
    with pytest.raises(ValueError, match="every_n_steps must be a positive int, got 0"):
        LineProgressBar(every_n_steps=0)
