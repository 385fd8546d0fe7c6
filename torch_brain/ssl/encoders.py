"""Encoders for pretraining: ``poyo`` (spikes) and ``patch_transformer`` (continuous channels).

An encoder is an ``nn.Module`` with a ``kind`` (its registered name), an ``hparams`` dict that
rebuilds it (``cls(**hparams)``) and whatever forward its objectives call. :func:`save_encoder`
writes it as ``{"format", "kind", "hparams", "state_dict"}``; :func:`load_encoder` reads it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from torch_brain.models._base import POYOBase
from torch_brain.ssl._registry import ENCODER_REGISTRY, register_encoder

__all__ = ["ENCODER_FORMAT", "POYOEncoder", "PatchTransformerEncoder", "load_encoder", "save_encoder"]

ENCODER_FORMAT = "torch_brain.ssl.encoder/1"


@register_encoder("poyo")
class POYOEncoder(POYOBase):
    """The POYO / POYO+ spike encoder: everything of :class:`~torch_brain.models.POYO` before its readout.

    Unit and session embeddings, the spike-token cross-attention into the latents, the latent
    self-attention blocks and the query cross-attention (``_forward_embeddings``). Its weights load
    into ``POYO`` / ``POYOPlus`` with ``load_pretrained(path, ..., skip_readout=True)``. Arguments
    and defaults are those of :class:`~torch_brain.models.POYO` (without the readout).
    """

    kind = "poyo"

    def __init__(self, *, sequence_length: float = 1.0, latent_step: float = 0.125,
                 num_latents_per_step: int = 16, dim: int = 64, depth: int = 2, dim_head: int = 64,
                 cross_heads: int = 1, self_heads: int = 8, ffn_dropout: float = 0.0,
                 lin_dropout: float = 0.0, atn_dropout: float = 0.0, emb_init_scale: float = 0.02,
                 t_min: float = 1e-4, t_max: float = 4.0, rotary_periods: list[float] | None = None) -> None:
        super().__init__(
            sequence_length=sequence_length, latent_step=latent_step,
            num_latents_per_step=num_latents_per_step, dim=dim, depth=depth, dim_head=dim_head,
            cross_heads=cross_heads, self_heads=self_heads, ffn_dropout=ffn_dropout,
            lin_dropout=lin_dropout, atn_dropout=atn_dropout, emb_init_scale=emb_init_scale,
            t_min=t_min, t_max=t_max, rotary_periods=rotary_periods,
        )

    def _readout_hparams(self) -> dict[str, Any]:
        return {}

    def forward(self, **inputs: Tensor) -> Tensor:
        """Query embeddings (B, Q, dim): see ``POYOBase._forward_embeddings`` for the inputs."""
        return self._forward_embeddings(**inputs)


@register_encoder("patch_transformer")
class PatchTransformerEncoder(nn.Module):
    """A transformer over patches of continuous channels (LFP, ECoG, EEG, EMG, ΔF/F).

    A window (B, C, T) is cut into ``P = T // patch_size`` patches of all channels; each patch
    (C * patch_size values) is projected to ``dim``, a learned position embedding is added and
    ``depth`` pre-norm transformer layers run over the P tokens.

    Args:
        in_channels: channels C of the input signal.
        patch_size: samples per patch.
        dim: token width.
        depth: transformer layers.
        heads: attention heads.
        max_patches: longest window in patches (size of the position table).
        dropout: dropout inside the layers.
    """

    kind = "patch_transformer"

    def __init__(self, *, in_channels: int = 1, patch_size: int = 25, dim: int = 64, depth: int = 2,
                 heads: int = 4, max_patches: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("patch_size", patch_size), ("dim", dim),
                            ("depth", depth), ("heads", heads), ("max_patches", max_patches)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"encoder.{name} must be a positive int, but got {value!r}.")
        if dim % heads:
            raise ValueError(f"encoder.dim ({dim}) must be a multiple of encoder.heads ({heads}).")
        self.hparams = {"in_channels": in_channels, "patch_size": patch_size, "dim": dim, "depth": depth,
                        "heads": heads, "max_patches": max_patches, "dropout": float(dropout)}
        self.in_channels, self.patch_size, self.dim = in_channels, patch_size, dim
        self.patch_proj = nn.Linear(in_channels * patch_size, dim)
        self.pos_emb = nn.Parameter(torch.randn(max_patches, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def patchify(self, x: Tensor) -> Tensor:
        """(B, C, T) -> (B, P, C * patch_size), dropping the last ``T % patch_size`` samples."""
        b, c, t = x.shape
        if c != self.in_channels:
            raise ValueError(f"the signal has {c} channel(s) but encoder.in_channels is {self.in_channels}; "
                             f"set encoder.in_channels={c}.")
        p = t // self.patch_size
        if p < 1 or p > self.pos_emb.shape[0]:
            raise ValueError(f"a window of {t} samples gives {p} patches of {self.patch_size}; expected 1.."
                             f"{self.pos_emb.shape[0]} (encoder.max_patches). Change encoder.patch_size or "
                             "the window length.")
        x = x[:, :, : p * self.patch_size].reshape(b, c, p, self.patch_size)  # [B, C, P, S]
        return x.permute(0, 2, 1, 3).reshape(b, p, c * self.patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T) signal -> (B, P, dim) patch latents."""
        tokens = self.patch_proj(self.patchify(x))  # [B, P, D]
        tokens = tokens + self.pos_emb[: tokens.shape[1]]
        return self.norm(self.layers(tokens))


def save_encoder(encoder: nn.Module, path: str | Path) -> Path:
    """Write ``encoder`` as ``{"format", "kind", "hparams", "state_dict"}`` (torch.save, weights only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = ENCODER_REGISTRY.name_of(encoder)
    torch.save({"format": ENCODER_FORMAT, "kind": kind, "hparams": dict(encoder.hparams),
                "state_dict": encoder.state_dict()}, path)
    return path


def _read_encoder_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "encoder.pt"  # an SSL run directory
    if not path.is_file():
        raise FileNotFoundError(f"no encoder file at {str(path)!r}; pass the encoder.pt written by "
                                "SSLPretrainModule.save_encoder or `torch-brain pretrain` (or its run directory).")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != ENCODER_FORMAT:
        raise ValueError(f"{str(path)!r} is not an encoder file (format {ENCODER_FORMAT!r}); pass the "
                         "encoder.pt written by save_encoder.")
    return saved


def load_encoder(path: str | Path) -> nn.Module:
    """Rebuild the encoder saved by :func:`save_encoder` (or ``<run_dir>/encoder.pt``)."""
    saved = _read_encoder_file(path)
    encoder = ENCODER_REGISTRY.lookup(saved["kind"])(**saved["hparams"])
    encoder.load_state_dict(saved["state_dict"])
    return encoder
