"""Prior: an input-free reference that learns one constant prediction from the training labels.

It ignores every modality and trains a single bias through the same loss as every model: the
class prior (cross-entropy), the median score (L1) or the mean distribution (KL). A model's numbers
mean something only where it beats this row (methods/helo.md section 9 asks for exactly this check).
"""
from __future__ import annotations

import torch
from torch import nn

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec

from .base import MERModel, ModelOutput
from .registry import register_model


@register_model("prior")
class Prior(MERModel):
    RECIPE = {"max_epochs": 30, "batch_size": 256, "lr": 0.05, "weight_decay": 0.0, "patience": 5}

    def __init__(self, spec: DatasetSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.bias = nn.Parameter(torch.zeros(spec.target_dim))

    def forward(self, batch: Batch) -> ModelOutput:
        n = len(batch)
        pred = self.bias.expand(n, -1)
        return ModelOutput(pred=pred.reshape(n) if self.spec.task == "regression" else pred)
