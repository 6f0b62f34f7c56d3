"""LMF: Low-rank Multimodal Fusion (Liu, Shen, Lakshminarasimhan, Liang, Zadeh, Morency; ACL 2018).

Method (paper §3): TFN's fusion ``h = W · (z_1 ⊗ … ⊗ z_M) + b`` with ``z_m = [h_m; 1]`` and a weight
tensor ``W ∈ R^{(d_1+1)×…×(d_M+1)×o}`` is computed without building either tensor by giving ``W`` a
rank-r CP decomposition into modality-specific factors ``W_m^{(i)} ∈ R^{(d_m+1)×o}``:

    h = Σ_{i=1..r} λ_i · ⊙_{m=1..M} (z_m · W_m^{(i)})  +  b

(``⊙`` the elementwise product; ``λ`` are learned weights over the r rank-one terms — with ``λ ≡ 1``
this is the paper's equation, and learned ``λ`` only rescale the factors), so the
cost is linear in the number of modalities. :meth:`LMF.full_weight` builds the equivalent ``W``, which
the tests use to check the identity.

What differs here:

* Any number of modalities (the paper: audio, video, text); embedding sizes ``text_dim`` for
  text-group modalities and ``other_dim`` for the others (``dims="name=d,..."`` to set one).
* Subnetworks are :class:`~models.unimodal.ModalitySubnet` (paper: LSTM for text, MLPs for
  audio/video; ``seq_encoder="lstm"`` gives the LSTM on every sequence modality).
* The fused vector has ``fusion_dim`` (default 32) units and goes through a ReLU and a linear task
  head (in the paper ``o`` is the output size and ``h`` is the prediction; ``fusion_dim=0`` does
  exactly that: ``o = spec.target_dim`` and no head).
* Factors are initialised with Xavier-normal; rank default 4 (the paper uses small ranks).
  Recipe: AdamW lr 1e-3, ≤40 epochs, patience 8 (paper: Adam with grid-searched hyper-parameters).
"""
from __future__ import annotations

import string

import torch
from torch import Tensor, nn

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, UserInputError

from .base import MERModel, ModelOutput
from .registry import register_model
from .tfn import append_one, parse_dims
from .unimodal import ModalitySubnet, encode_modalities


@register_model("lmf")
class LMF(MERModel):
    """Low-rank Multimodal Fusion (Liu et al., ACL 2018): rank-r factors on [h_m; 1], product over modalities."""

    PAPER = "Liu et al., Efficient Low-rank Multimodal Fusion with Modality-Specific Factors, ACL 2018"
    RECIPE = {"max_epochs": 40, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "patience": 8}

    def __init__(self, spec: DatasetSpec, rank: int = 4, text_dim: int = 32, other_dim: int = 16, dims: str = "",
                 fusion_dim: int = 32, subnet_hidden: int = 64, dropout: float = 0.15, seq_encoder: str = "mean",
                 **kwargs) -> None:
        super().__init__(spec, **kwargs)
        if int(rank) < 1:
            raise UserInputError(f"rank must be a positive integer, got {rank}")
        if int(fusion_dim) < 0:
            raise UserInputError(f"fusion_dim must be >= 0 (0 = the fused vector is the prediction), got {fusion_dim}")
        self.rank = int(rank)
        self.dims = parse_dims(dims, self.used_modalities, text_dim, other_dim)
        out = int(fusion_dim) or spec.target_dim
        self.subnets = nn.ModuleDict({m.name: ModalitySubnet(m, subnet_hidden, self.dims[m.name], dropout,
                                                             seq_encoder) for m in self.used_modalities})
        # Modality-specific factors W_m^{(i)}, i = 1..r, stacked as (r, d_m + 1, o)
        self.factors = nn.ParameterDict({
            name: nn.Parameter(nn.init.xavier_normal_(torch.empty(self.rank, d + 1, out)))
            for name, d in self.dims.items()})
        self.rank_weights = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, self.rank)).reshape(self.rank))
        self.fusion_bias = nn.Parameter(torch.zeros(out))
        self.head = (nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(out, spec.target_dim))
                     if fusion_dim else nn.Identity())

    def fuse(self, hs: list[Tensor]) -> Tensor:
        """``Σ_i λ_i ⊙_m ([h_m; 1] W_m^{(i)}) + b`` → ``(B, o)``."""
        prod = None
        for m, h in zip(self.used_modalities, hs):
            proj = torch.einsum("bd,rdo->bro", append_one(h), self.factors[m.name])  # (B, r, o)
            prod = proj if prod is None else prod * proj
        return torch.einsum("bro,r->bo", prod, self.rank_weights) + self.fusion_bias

    def full_weight(self) -> Tensor:
        """The equivalent TFN weight tensor ``W = Σ_i λ_i W_1^{(i)} ∘ … ∘ W_M^{(i)}``, shape
        ``(d_1+1, …, d_M+1, o)`` (only for checks: it is exponentially large)."""
        letters = string.ascii_lowercase[: len(self.used_modalities)]
        spec = ",".join(f"r{c}o" for c in letters) + ",r->" + letters + "o"
        return torch.einsum(spec, *[self.factors[m.name] for m in self.used_modalities], self.rank_weights)

    def forward(self, batch: Batch) -> ModelOutput:
        hs = encode_modalities(self.subnets, batch, self.used_modalities)
        return ModelOutput(pred=self.task_pred(self.head(self.fuse(hs))),
                           embeddings={m.name: h for m, h in zip(self.used_modalities, hs)})
