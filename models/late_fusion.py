"""Late fusion: one encoder and head per modality; the per-modality predictions are averaged.

Decision-level fusion baseline (as MMSA's ``lf_dnn`` family, with mean-pooling instead of its
recurrent encoders). Logits are averaged for classification and distributions, scores for
regression. Runs on every spec. Inputs are standardised per feature with batch normalisation.
"""
from __future__ import annotations

import torch
from torch import nn

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec

from .base import MERModel, ModelOutput
from .blocks import MLP, masked_mean
from .registry import register_model


@register_model("late_fusion")
class LateFusion(MERModel):
    RECIPE = {"max_epochs": 60, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "patience": 10}

    def __init__(self, spec: DatasetSpec, hidden: int = 64, layers: int = 2, dropout: float = 0.2,
                 **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.branches = nn.ModuleDict({
            m.name: nn.Sequential(nn.BatchNorm1d(m.dim), MLP(m.dim, hidden, spec.target_dim, layers, dropout))
            for m in self.used_modalities
        })

    def forward(self, batch: Batch) -> ModelOutput:
        preds = [self.branches[m.name](masked_mean(batch.x[m.name], batch.mask.get(m.name) if m.is_sequence else None))
                 for m in self.used_modalities]
        stacked = torch.stack(preds, dim=0)
        return ModelOutput(pred=stacked.mean(dim=0), embeddings={m.name: p for m, p in zip(self.used_modalities, preds)})
