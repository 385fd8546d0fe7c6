"""Self-supervised objectives: ``masked_spikes`` (POYO encoder) and ``masked_signal`` (patch transformer).

An objective is an ``nn.Module`` built as ``cls(encoder, **ssl_config)`` that

- declares the encoder kinds it works with (``encoder_kinds``),
- checks that a dataset holds what it needs (``check_data(dataset)``),
- turns a window into a sample (``tokenize(data, train=..., seed=...)``, run by the data loader);
  every random choice of a window (its mask) comes from ``seed``, which
  :class:`~torch_brain.training.SSLDataModule` derives from ``(run seed, epoch, batch, position)``
  for training windows, so masks are the same whatever the number of workers or processes and a
  resumed run draws exactly the masks of the uninterrupted one; without a seed (validation, or a
  direct call) the mask depends only on the objective's ``seed`` and the window,
- computes ``(loss, metrics)`` from a collated batch (``forward(encoder, batch)``); metric values
  are tensors (averaged over the epoch) or torchmetrics ``Metric`` objects (computed at epoch end
  and reduced across processes),
- optionally says how many terms a batch's loss averages (``loss_weight(batch)``, default: its
  windows), so that ``val/loss`` is the mean over the whole validation set on any batching.

The encoder is passed to ``forward``, not stored, so its weights live once in the module.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torchmetrics
from torch import Tensor, nn

from torch_brain.ssl._registry import register_objective
from torch_brain.ssl.functional import (
    bits_per_spike,
    check_mask_ratio,
    multi_resolution_stft_loss,
    patch_mask,
    poisson_nll,
)

__all__ = ["BitsPerSpike", "MaskedSignal", "MaskedSpikes"]


def _window_seed(*parts: Any) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _mask_seed(objective_seed: int, data: Any, seed: int | None) -> int:
    """The seed of one window's mask: from the loader's ``seed`` if given, else from the window."""
    from torch_brain.models.tokenizer import _window_bounds

    if seed is not None:
        return _window_seed(objective_seed, "train", int(seed))
    start, _ = _window_bounds(data)
    return _window_seed(objective_seed, str(data.session.id), float(getattr(data, "absolute_start", 0.0)), start)


class BitsPerSpike(torchmetrics.Metric):
    """Bits per spike over every bin seen (null model: per-unit mean count over those bins).

    State: the log-rates, counts and unit ids of every bin (``dist_reduce_fx="cat"``), so the
    per-unit null rates are those of the whole evaluated set on every process count.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("log_rate", default=[], dist_reduce_fx="cat")
        self.add_state("counts", default=[], dist_reduce_fx="cat")
        self.add_state("units", default=[], dist_reduce_fx="cat")

    def update(self, log_rate: Tensor, counts: Tensor, units: Tensor) -> None:
        self.log_rate.append(log_rate.detach().float())
        self.counts.append(counts.detach().float())
        self.units.append(units.detach().long())

    def compute(self) -> Tensor:
        from torchmetrics.utilities import dim_zero_cat

        # a list of batches on one process; one tensor after the cross-rank gather under DDP
        if isinstance(self.counts, list) and not self.counts:
            return torch.tensor(float("nan"))
        return bits_per_spike(dim_zero_cat(self.log_rate), dim_zero_cat(self.counts),
                              dim_zero_cat(self.units)).float()


def _need(data: Any, path: str, why: str) -> Any:
    node = data
    for part in path.split("."):
        node = getattr(node, part, None)
        if node is None:
            raise ValueError(why)
    return node


@register_objective("masked_spikes")
class MaskedSpikes(nn.Module):
    """Masked spike modelling for the POYO encoder (as NDT1/2/3 pretrain, on spike tokens).

    In each window a fraction ``mask_ratio`` of the units (all their spikes; ``mask_kind="units"``)
    or of the time bins (all units' spikes in them; ``"time"``) is masked; ``"both"`` picks one of
    the two per window at random. Masked spikes are removed from the input tokens. One query per
    masked (unit, bin) cell, ``unit embedding + session embedding`` at the bin centre, reads the
    latents; a linear head gives the log expected count, trained with the Poisson NLL
    ``exp(r) - k r`` (mean over masked cells).

    The predicted log count is ``head(query latent) + unit_log_rate[unit]``: a per-unit offset that
    :meth:`init_unit_rates` sets, before training, to each unit's log mean count per bin on the
    training data (``rate_init="data"``, done by :class:`~torch_brain.training.SSLPretrainModule`),
    and a head whose weight starts at zero. The untrained model therefore predicts every unit's
    mean rate, about 0 bits per spike, and training can only add what the context tells it.

    Metrics: ``bits_per_spike`` of the masked counts against a per-unit mean-rate model (NLB
    convention; per batch in training, over the whole set in validation), ``masked_fraction``.

    Args:
        encoder: a ``poyo`` encoder.
        mask_ratio: fraction of units (or bins) masked, in (0, 1).
        mask_kind: ``"units"``, ``"time"`` or ``"both"``.
        bin_size: bin width in seconds (the window length must be a whole number of bins).
        rate_init: ``"data"``: start the per-unit offsets at each unit's log mean count per bin on
            the training windows (see :meth:`init_unit_rates`); ``"constant"``: no per-unit
            offset, every unit starts at 5 Hz.
        seed: seed of the masks (validation masks depend only on the seed and the window).
    """

    encoder_kinds = ("poyo",)

    def __init__(self, encoder: nn.Module, *, mask_ratio: float = 0.3, mask_kind: str = "both",
                 bin_size: float = 0.05, rate_init: str = "data", seed: int = 0) -> None:
        super().__init__()
        self.mask_ratio = check_mask_ratio(mask_ratio)
        if mask_kind not in ("units", "time", "both"):
            raise ValueError(f"ssl.mask_kind must be 'units', 'time' or 'both', but got {mask_kind!r}.")
        if not isinstance(bin_size, (int, float)) or not bin_size > 0:
            raise ValueError(f"ssl.bin_size must be a positive number of seconds, but got {bin_size!r}.")
        n_bins = encoder.sequence_length / bin_size
        if abs(n_bins - round(n_bins)) > 1e-6:
            raise ValueError(f"ssl.bin_size ({bin_size}) must divide the window "
                             f"({encoder.sequence_length} s) into whole bins; e.g. bin_size=0.05.")
        if rate_init not in ("data", "constant"):
            raise ValueError(f"ssl.rate_init must be 'data' or 'constant', but got {rate_init!r}.")
        self.mask_kind = mask_kind
        self.bin_size = float(bin_size)
        self.n_bins = int(round(n_bins))
        self.rate_init = rate_init
        self.seed = int(seed)
        self._encoder = [encoder]  # for tokenize (vocabularies); not a submodule
        self.head = nn.Linear(encoder.dim, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, float(np.log(5.0 * bin_size)))  # ~5 Hz to start
        # (n_units in the encoder's vocabulary,) log mean count per bin minus the head's bias;
        # empty until init_unit_rates (then its size follows the vocabulary)
        self.unit_log_rate = nn.Parameter(torch.zeros(0))
        self.val_bits_per_spike = BitsPerSpike()

    # ---------------------------------------------------------------- per-unit rates
    def unit_rates_from(self, dataset: Any) -> tuple[list[str], np.ndarray]:
        """Each unit's mean spike count per bin over ``dataset``'s sampling intervals.

        Args:
            dataset: a :class:`~torch_brain.data.Dataset` (the training split).

        Returns:
            ``(unit_ids, counts_per_bin)``: global unit ids and a float64 array of the same length.
        """
        ids: list[str] = []
        rates: list[np.ndarray] = []
        for rid, intervals in dataset.get_sampling_intervals().items():
            data = dataset.get_recording_data(rid)
            starts, ends = np.asarray(intervals.start, float), np.asarray(intervals.end, float)
            ts = np.asarray(data.spikes.timestamps, dtype=np.float64)
            unit = np.asarray(data.spikes.unit_index, dtype=np.int64)
            # spikes inside the intervals (sorted and disjoint): the last start before each spike
            idx = np.searchsorted(starts, ts, side="right") - 1
            inside = (idx >= 0) & (ts < ends[np.clip(idx, 0, None)]) if starts.size else np.zeros(ts.size, bool)
            n_units = len(data.units.id)
            counts = np.bincount(unit[inside], minlength=n_units).astype(np.float64)
            seconds = float(np.sum(ends - starts))
            unit_ids = [str(u) for u in data.units.id]  # global ids, as in the windows
            ids.extend(unit_ids)
            rates.append(counts * self.bin_size / max(seconds, 1e-9))
        return ids, np.concatenate(rates) if rates else np.zeros(0)

    def init_unit_rates(self, unit_ids: Sequence[str], counts_per_bin: np.ndarray | Sequence[float]) -> None:
        """Start the per-unit offsets so that the model predicts each unit's mean count per bin.

        Units of the encoder's vocabulary that are not in ``unit_ids`` start at the median rate.
        Rates are floored at 0.01 spikes per second (a silent unit would give log 0).

        Args:
            unit_ids: global unit ids (in the encoder's unit vocabulary).
            counts_per_bin: (len(unit_ids),) mean spike count per ``bin_size`` bin.
        """
        vocab = self._encoder[0].unit_emb.vocab
        if not vocab:
            raise ValueError("init_unit_rates: the encoder's unit vocabulary is empty; initialise it "
                             "(encoder.unit_emb.initialize_vocab(ids)) first.")
        counts = np.maximum(np.asarray(counts_per_bin, dtype=np.float64), 0.01 * self.bin_size)
        log_rate = np.full(len(vocab), np.median(np.log(counts)) if counts.size else np.log(5.0 * self.bin_size))
        rows = np.asarray(self._encoder[0].unit_emb.tokenizer(list(unit_ids)), dtype=np.int64)
        log_rate[rows] = np.log(counts)
        with torch.no_grad():
            offset = torch.as_tensor(log_rate, dtype=torch.float32) - self.head.bias.detach().cpu()
            self.unit_log_rate = nn.Parameter(offset.to(self.head.bias.device))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001
        # the offsets' size follows the vocabulary: take the saved one's shape before loading
        key = prefix + "unit_log_rate"
        if key in state_dict and state_dict[key].shape != self.unit_log_rate.shape:
            self.unit_log_rate = nn.Parameter(torch.zeros_like(state_dict[key], device=self.head.bias.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ---------------------------------------------------------------- data
    @staticmethod
    def check_data(data: Any, where: str) -> None:
        """Raise if a recording has no spikes."""
        _need(data, "spikes.timestamps", f"objective 'masked_spikes' needs spikes, but {where} has no "
              "data.spikes; use a spike dataset, or objective masked_signal for continuous signals.")
        _need(data, "units.id", f"objective 'masked_spikes' needs data.units.id, but {where} has none.")

    def sample_mask(self, n_units: int, rng: np.random.Generator) -> np.ndarray:
        """(n_units, n_bins) bool: True where the (unit, bin) cell is masked."""
        kind = self.mask_kind if self.mask_kind != "both" else ("units", "time")[int(rng.integers(2))]
        cells = np.zeros((n_units, self.n_bins), dtype=bool)
        if kind == "units" and n_units:
            k = min(n_units, max(1, int(round(self.mask_ratio * n_units))))
            cells[rng.choice(n_units, size=k, replace=False)] = True
        elif kind == "time":
            k = min(self.n_bins, max(1, int(round(self.mask_ratio * self.n_bins))))
            cells[:, rng.choice(self.n_bins, size=k, replace=False)] = True
        return cells

    def tokenize(self, data: Any, *, train: bool = True, seed: int | None = None) -> dict[str, Any]:
        """A window -> encoder inputs without the masked spikes, queries and target counts.

        Args:
            data: the window.
            train: a training window (the validation windows get ``seed=None``).
            seed: the window's seed from the loader (the mask is drawn from it and ``self.seed``);
                None: the mask depends only on ``self.seed`` and the window.
        """
        from torch_brain.data import chain, pad8, track_mask8
        from torch_brain.models.tokenizer import _window_bounds

        encoder = self._encoder[0]
        start, end = _window_bounds(data)
        session = str(data.session.id)
        rng = np.random.default_rng(_mask_seed(self.seed, data, seed))
        ts = np.asarray(data.spikes.timestamps, dtype=np.float64)
        unit = np.asarray(data.spikes.unit_index, dtype=np.int64)
        n_units = len(data.units.id)
        cells = self.sample_mask(n_units, rng)
        bins = np.clip(((ts - start) / self.bin_size).astype(np.int64), 0, self.n_bins - 1)
        masked_spike = cells[unit, bins] if ts.size else np.zeros(0, dtype=bool)
        kept = types.SimpleNamespace(timestamps=ts[~masked_spike], unit_index=unit[~masked_spike])
        view = types.SimpleNamespace(units=data.units, spikes=kept, session=data.session, domain=data.domain)
        inputs, session_index = encoder._tokenize_inputs(view)

        counts = np.zeros((n_units, self.n_bins), dtype=np.float32)
        np.add.at(counts, (unit, bins), 1.0)
        q_unit_local, q_bin = np.nonzero(cells)  # [Q]
        vocab_units = np.asarray(encoder.unit_emb.tokenizer(data.units.id), dtype=np.int64)
        q_unit = vocab_units[q_unit_local] if q_unit_local.size else np.zeros(0, dtype=np.int64)
        q_time = (start + (q_bin + 0.5) * self.bin_size).astype(np.float32)
        inputs["output_session_index"] = pad8(np.full(q_unit.size, session_index, dtype=np.int64))
        inputs["output_timestamps"] = pad8(q_time)
        inputs["output_unit_index"] = pad8(q_unit)
        inputs["output_mask"] = track_mask8(q_time)
        return {
            "model_inputs": inputs,
            "target_counts": chain(counts[q_unit_local, q_bin]),
            "target_unit": chain(q_unit),
            "masked_fraction": float(cells.mean()) if cells.size else 0.0,
            "session_id": session,
        }

    # ---------------------------------------------------------------- loss
    def predict(self, encoder: nn.Module, batch: dict[str, Any]) -> Tensor:
        """Log expected counts of every real query, (sum Q_i,)."""
        inputs = dict(batch["model_inputs"])
        unit_q = inputs.pop("output_unit_index")
        session_q = inputs.pop("output_session_index")
        mask = inputs.pop("output_mask")
        queries = encoder.unit_emb(unit_q) + encoder.session_emb(session_q)  # [B, Q, D]
        out = encoder(queries=queries, **inputs)  # [B, Q, D]
        log_rate = self.head(out[mask]).squeeze(-1)  # [sum Q]
        if self.unit_log_rate.numel():
            log_rate = log_rate + self.unit_log_rate[unit_q[mask]]
        return log_rate

    @staticmethod
    def loss_weight(batch: dict[str, Any]) -> int:
        """The loss is a mean over the masked cells: their number."""
        return int(batch["target_counts"].numel())

    def forward(self, encoder: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        log_rate = self.predict(encoder, batch)
        counts = batch["target_counts"].to(log_rate.dtype)
        loss = poisson_nll(log_rate, counts)
        metrics: dict[str, Any] = {"masked_fraction": batch["masked_fraction"].float().mean()}
        if self.training:
            metrics["bits_per_spike"] = bits_per_spike(log_rate.detach(), counts, batch["target_unit"]).float()
        else:
            self.val_bits_per_spike.update(log_rate, counts, batch["target_unit"])
            metrics["bits_per_spike"] = self.val_bits_per_spike
        return loss, metrics


@register_objective("masked_signal")
class MaskedSignal(nn.Module):
    """Masked signal modelling of continuous channels (masked-autoencoder pretraining of biosignals).

    The window's channels are cut into patches of ``encoder.patch_size`` samples; a fraction
    ``mask_ratio`` of the patches (``mask_type="random"``: any; ``"block"``: one contiguous run),
    drawn per window in ``tokenize`` from the window's seed, is set to zero in the input; a light decoder (one linear layer per patch token) reconstructs
    every patch from the encoder's latents. Loss: MSE on the masked patches +
    ``stft_weight`` x multi-resolution STFT loss (L1 on log magnitudes, FFT sizes ``fft_sizes``)
    of the whole reconstructed window (:func:`~torch_brain.ssl.functional.multi_resolution_stft_loss`).

    Args:
        encoder: a ``patch_transformer`` encoder.
        field: ``"<group>.<column>"`` of a ``RegularTimeSeries`` in the recordings (e.g.
            ``"lfp.signal"``), samples x channels.
        mask_ratio: fraction of patches masked, in (0, 1) (default 0.4).
        mask_type: ``"random"`` or ``"block"``.
        stft_weight: weight of the STFT loss (0 disables it).
        fft_sizes: FFT sizes of the STFT loss, in samples.
        normalize: standardise each channel of each window (zero mean, unit variance) first.
        seed: seed of the masks.
    """

    encoder_kinds = ("patch_transformer",)

    def __init__(self, encoder: nn.Module, *, field: str = "lfp.signal", mask_ratio: float = 0.4,
                 mask_type: str = "random", stft_weight: float = 0.3, fft_sizes: Sequence[int] = (16, 32, 64),
                 normalize: bool = True, seed: int = 0) -> None:
        super().__init__()
        self.mask_ratio = check_mask_ratio(mask_ratio)
        if mask_type not in ("random", "block"):
            raise ValueError(f"ssl.mask_type must be 'random' or 'block', but got {mask_type!r}.")
        if not isinstance(field, str) or field.count(".") != 1:
            raise ValueError(f"ssl.field must be '<group>.<column>' of a RegularTimeSeries (e.g. 'lfp.signal'), "
                             f"but got {field!r}.")
        self.field, self.mask_type = field, mask_type
        self.stft_weight = float(stft_weight)
        self.fft_sizes = tuple(int(n) for n in fft_sizes)
        self.normalize = bool(normalize)
        # only for batches that carry no "patch_mask" (not made by tokenize): a stream of masks
        self.generator = torch.Generator().manual_seed(int(seed))
        self.seed = int(seed)
        self.patch_size, self.in_channels = encoder.patch_size, encoder.in_channels
        self.decoder = nn.Linear(encoder.dim, encoder.in_channels * encoder.patch_size)

    def check_data(self, data: Any, where: str) -> None:
        """Raise if a recording has no ``field`` RegularTimeSeries."""
        group = self.field.split(".")[0]
        from torch_brain.data import RegularTimeSeries

        series = getattr(data, group, None)
        if not isinstance(series, RegularTimeSeries) or getattr(series, self.field.split(".")[1], None) is None:
            raise ValueError(
                f"objective 'masked_signal' needs a continuous signal data.{self.field} (a RegularTimeSeries), "
                f"but {where} has none (spikes-only data?). Use objective masked_spikes with encoder poyo for "
                "spikes, or set ssl.field to the recording's continuous signal."
            )

    def tokenize(self, data: Any, *, train: bool = True, seed: int | None = None) -> dict[str, Any]:
        """A window -> ``{"signal": (C, n) float32, "patch_mask": (n // patch_size,) bool}``.

        Args:
            data: the window.
            train: a training window.
            seed: the window's seed from the loader (the mask is drawn from it and ``self.seed``);
                None: the mask depends only on ``self.seed`` and the window.
        """
        from torch_brain.models.tokenizer import _window_bounds

        group, column = self.field.split(".")
        series = getattr(data, group)
        values = np.asarray(getattr(series, column), dtype=np.float32)
        if values.ndim == 1:
            values = values[:, None]
        # every window of a run has the same number of samples (a slice may give one more or less)
        start, end = _window_bounds(data)
        n = int(round((end - start) * float(series.sampling_rate)))
        if values.shape[0] < n:
            values = np.concatenate([values, np.repeat(values[-1:], n - values.shape[0], axis=0)], 0)
        x = values[:n].T  # [C, T]
        if self.normalize:
            x = (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-6)
        generator = torch.Generator().manual_seed(_mask_seed(self.seed, data, seed))
        mask = patch_mask(1, max(1, n // self.patch_size), self.mask_ratio, self.mask_type, generator=generator)[0]
        return {"signal": np.ascontiguousarray(x), "patch_mask": mask.numpy(), "session_id": str(data.session.id)}

    def _unpatchify(self, patches: Tensor) -> Tensor:
        b, p, _ = patches.shape
        return patches.reshape(b, p, self.in_channels, self.patch_size).permute(0, 2, 1, 3).reshape(
            b, self.in_channels, p * self.patch_size)

    def forward(self, encoder: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        x = batch["signal"]  # [B, C, T]
        b, c, t = x.shape
        p = t // self.patch_size
        x = x[:, :, : p * self.patch_size]
        if "patch_mask" in batch:  # drawn per window by tokenize
            mask = batch["patch_mask"].to(torch.bool)  # [B, P]
        else:
            mask = patch_mask(b, p, self.mask_ratio, self.mask_type,
                              generator=self.generator if self.training else torch.Generator().manual_seed(self.seed))
        mask = mask.to(x.device)
        sample_mask = mask.repeat_interleave(self.patch_size, dim=1)[:, None, :]  # [B, 1, T']
        x_in = x.masked_fill(sample_mask, 0.0)
        recon = self._unpatchify(self.decoder(encoder(x_in)))  # [B, C, T']
        sq = (recon - x) ** 2
        msm = (sq * sample_mask).sum() / (sample_mask.sum() * c).clamp(min=1)
        stft = multi_resolution_stft_loss(recon, x, self.fft_sizes) if self.stft_weight else torch.zeros((), device=x.device)
        loss = msm + self.stft_weight * stft
        return loss, {"msm_loss": msm.detach(), "stft_loss": stft.detach()}
