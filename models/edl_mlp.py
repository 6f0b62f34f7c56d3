"""EDL-MLP: the emotion-distribution-learning reference — an MLP on concatenated features with a
softmax output trained with KL divergence.

Reference: X. Geng, "Label Distribution Learning", IEEE TKDE 28(7), 2016. Label-distribution
learning (LDL) fits ``p(y | x)`` to a target distribution ``d_x``. Two of Geng's baselines are what
distribution-learning papers (e.g. on DMER-style emotion distributions) call "MLP trained with KL":

* **SA-BFGS** (TKDE 2016; BFGS-LLD in Geng, Yin & Zhou, TPAMI 2013): a maximum-entropy model ``p(y|x) = softmax(Θ x)`` minimising
  ``KL(d_x ‖ p(·|x))`` with BFGS. ``layers=1`` here is exactly this model (no hidden layer);
* **AA-BP**: a three-layer back-propagation network (one sigmoid hidden layer, softmax output).
  The default ``layers=2, activation="sigmoid"`` is AA-BP's architecture, trained with Geng's
  SA-BFGS objective (KL) instead of AA-BP's squared error.

What differs: features are the masked mean of every modality over time, concatenated and
standardised per feature by a non-affine batch norm (Geng's methods take a fixed feature vector per
instance); optimisation is mini-batch AdamW with early stopping on validation instead of full-batch
BFGS (the ``lr``/``max_epochs`` recipe below; L-BFGS on the full training set is not offered).

On other tasks the same network runs with the base class's loss: classification → a softmax
classifier with cross-entropy (the logits are the model's output, i.e. the ``d_x`` of a one-hot
target, for which KL equals CE); regression → one linear output (scalar score, L1 loss). Auxiliary
score columns (MER2023 valence) are extra linear outputs like any model's.
"""
from __future__ import annotations

import torch
from torch import nn

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, UserInputError

from .base import MERModel, ModelOutput
from .blocks import masked_mean
from .registry import register_model

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


@register_model("edl_mlp")
class EDLMLP(MERModel):
    """Label-distribution MLP (Geng, TKDE 2016: AA-BP architecture / SA-BFGS KL objective) on concatenated features."""

    PAPER = "X. Geng, Label Distribution Learning, IEEE TKDE 2016 (AA-BP / SA-BFGS baselines)"
    RECIPE = {"max_epochs": 40, "batch_size": 64, "lr": 3e-3, "weight_decay": 1e-4, "patience": 8}

    def __init__(self, spec: DatasetSpec, hidden: int = 64, layers: int = 2, activation: str = "sigmoid",
                 dropout: float = 0.1, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        if activation not in ACTIVATIONS:
            raise UserInputError(f"activation={activation!r}: expected one of {', '.join(ACTIVATIONS)}")
        if int(layers) < 1:
            raise UserInputError(f"layers must be >= 1 (1 = the maximum-entropy model of SA-BFGS), got {layers}")
        in_dim = sum(m.dim for m in self.used_modalities)
        self.standardise = nn.BatchNorm1d(in_dim, affine=False)
        mods: list[nn.Module] = []
        d = in_dim
        for _ in range(int(layers) - 1):
            mods += [nn.Linear(d, hidden), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            d = hidden
        mods.append(nn.Linear(d, spec.target_dim))  # logits; the base applies the softmax
        self.net = nn.Sequential(*mods)

    def forward(self, batch: Batch) -> ModelOutput:
        x = torch.cat([masked_mean(batch.x[m.name], batch.mask.get(m.name) if m.is_sequence else None)
                       for m in self.used_modalities], dim=-1)
        return ModelOutput(pred=self.task_pred(self.net(self.standardise(x))), embeddings=x)
