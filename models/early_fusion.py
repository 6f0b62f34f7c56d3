"""Early fusion: masked mean-pool each modality over time, concatenate, classify with an MLP.

The simplest fusion baseline (feature-level concatenation, as the EF baselines of MMSA's ``ef_lstm``
family without the recurrent encoder). Runs on every spec: vector modalities are used as they are,
sequences are pooled over their valid steps only. The concatenated vector is standardised per
feature with batch normalisation (a per-sample LayerNorm would discard the vector's magnitude, which
carries the class evidence in low-dimensional inputs).
"""
from __future__ import annotations

import torch
from torch import nn

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec

from .base import MERModel, ModelOutput
from .blocks import MLP, masked_mean
from .registry import register_model


@register_model("early_fusion")
class EarlyFusion(MERModel):
    RECIPE = {"max_epochs": 60, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "patience": 10}

    def __init__(self, spec: DatasetSpec, hidden: int = 128, layers: int = 2, dropout: float = 0.2,
                 **kwargs) -> None:
        super().__init__(spec, **kwargs)
        in_dim = sum(m.dim for m in self.used_modalities)
        self.norm = nn.BatchNorm1d(in_dim)
        self.head = MLP(in_dim, hidden, spec.target_dim, layers=layers, dropout=dropout)

    def forward(self, batch: Batch) -> ModelOutput:
        pooled = [masked_mean(batch.x[m.name], batch.mask.get(m.name) if m.is_sequence else None)
                  for m in self.used_modalities]
        z = torch.cat(pooled, dim=-1)
        return ModelOutput(pred=self.head(self.norm(z)), embeddings=z)
