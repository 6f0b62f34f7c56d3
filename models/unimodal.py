"""Unimodal baseline: one modality, one encoder, one head — the reference for what fusion adds.

Not a paper of its own: it is the single-modality rows of the fusion papers' comparisons (e.g. the
unimodal variants of TFN, Zadeh et al., EMNLP 2017). What differs from
those rows: the encoder is this module's :class:`ModalitySubnet` (the same subnetwork TFN and LMF
use here) rather than each paper's own unimodal model, so the gap between ``unimodal`` and
``tfn``/``lmf`` isolates the fusion step.

Options: ``modality=<name>`` picks the input (default: the spec's first modality). The base
class's generic ``modalities=`` option is accepted only if it names exactly one modality (the same
one); anything else is a :class:`~datamodules.spec.UserInputError` naming the valid names.

:class:`ModalitySubnet` (shared by ``tfn`` and ``lmf``): a modality to a small vector ``h_m``.
``seq_encoder="mean"`` (default): masked mean over the valid time steps, batch-norm per feature,
then a two-layer ReLU MLP (TFN's audio/video subnetwork). ``seq_encoder="lstm"``: a one-layer LSTM
over the valid steps only (packed by the mask's lengths), its last hidden state through a linear
layer (TFN's language subnetwork uses an LSTM). Vector modalities always take the MLP path.
Samples whose sequence has no valid step are encoded from zeros (never NaN).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, ModalitySpec, UserInputError

from .base import MERModel, ModelOutput
from .blocks import MLP, masked_mean
from .registry import register_model

SEQ_ENCODERS = ("mean", "lstm")


def check_seq_encoder(value: str) -> str:
    if value not in SEQ_ENCODERS:
        raise UserInputError(f"seq_encoder={value!r}: expected one of {', '.join(SEQ_ENCODERS)}")
    return value


class ModalitySubnet(nn.Module):
    """``x_m`` (``(B, T, D)`` + mask, or ``(B, D)``) → ``h_m`` ``(B, out_dim)`` (non-negative: ReLU output)."""

    def __init__(self, m: ModalitySpec, hidden: int, out_dim: int, dropout: float = 0.1,
                 seq_encoder: str = "mean") -> None:
        super().__init__()
        self.name = m.name
        self.recurrent = m.is_sequence and check_seq_encoder(seq_encoder) == "lstm"
        if self.recurrent:
            self.lstm = nn.LSTM(m.dim, hidden, batch_first=True)
            self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, out_dim), nn.ReLU())
        else:
            self.norm = nn.BatchNorm1d(m.dim)
            self.out = nn.Sequential(MLP(m.dim, hidden, out_dim, layers=2, dropout=dropout), nn.ReLU())

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if not self.recurrent:
            return self.out(self.norm(masked_mean(x, mask if x.dim() == 3 else None)))
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        lengths = mask.sum(dim=1)
        x = x * mask.unsqueeze(-1).to(x.dtype)  # an all-padding sample is read as one zero step
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        return self.out(h_n[-1])


def encode_modalities(subnets: nn.ModuleDict, batch: Batch, modalities) -> list[Tensor]:
    """``[h_m for m in modalities]`` with the sequence masks applied."""
    return [subnets[m.name](batch.x[m.name], batch.mask.get(m.name) if m.is_sequence else None)
            for m in modalities]


@register_model("unimodal")
class Unimodal(MERModel):
    """One modality (``modality=<name>``): ModalitySubnet encoder + MLP head; the fusion reference."""

    RECIPE = {"max_epochs": 40, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "patience": 8}

    def __init__(self, spec: DatasetSpec, modality: str | None = None, hidden: int = 64, out_dim: int = 32,
                 dropout: float = 0.1, seq_encoder: str = "mean", **kwargs) -> None:
        names = spec.modality_names
        generic = kwargs.pop("modalities", None)
        if generic not in (None, "", "all"):
            listed = [n.strip() for n in generic.split(",")] if isinstance(generic, str) else list(generic)
            if len(listed) != 1 or (modality is not None and listed[0] != modality):
                raise UserInputError(f"unimodal uses exactly one modality: pass modality=<name> (one of "
                                     f"{', '.join(names)}), not modalities={generic!r}")
            modality = listed[0] if modality is None else modality
        modality = names[0] if modality in (None, "") else str(modality)
        if modality not in names:
            raise UserInputError(f"modality={modality!r}: {spec.name} has modalities {', '.join(names)}")
        super().__init__(spec, modalities=modality, **kwargs)
        (self.modality,) = self.used_modalities
        self.subnets = nn.ModuleDict({modality: ModalitySubnet(self.modality, hidden, out_dim, dropout,
                                                               seq_encoder)})
        self.head = MLP(out_dim, hidden, spec.target_dim, layers=2, dropout=dropout)

    def forward(self, batch: Batch) -> ModelOutput:
        (h,) = encode_modalities(self.subnets, batch, self.used_modalities)
        return ModelOutput(pred=self.task_pred(self.head(h)), embeddings={self.modality.name: h})
