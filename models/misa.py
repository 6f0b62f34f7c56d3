"""MISA: Modality-Invariant and -Specific Representations for multimodal sentiment analysis.

Paper: D. Hazarika, R. Zimmermann, S. Poria, "MISA: Modality-Invariant and -Specific
Representations for Multimodal Sentiment Analysis", ACM Multimedia 2020.

Method (Sec. 3 of the paper), as built here, for modalities ``m = 1..M``:

* *Utterance-level representation*: each modality's sequence is encoded into one vector. The paper
  uses BERT for text and a two-layer "sLSTM" for audio/vision, taking final hidden states; here
  every sequence modality uses one bidirectional LSTM over its **valid steps only** (packed by the
  batch lengths), final forward/backward states concatenated; a vector modality is used as it is.
  ``seq_encoder="mean"`` replaces the LSTM by the batch-normalised masked mean over the valid
  steps (the pooled-feature encoder of ``tfn``/``lmf``). Then ``u_m = LayerNorm(ReLU(W_m · enc_m))``
  of width ``hidden`` (the paper's projection to ``d_h``).
* *Modality-invariant* ``h^c_m = sigmoid(E_c(u_m))`` with ONE encoder ``E_c`` shared by all
  modalities; *modality-specific* ``h^p_m = sigmoid(E^m_p(u_m))`` with one encoder per modality.
* *Losses* (Sec. 3.4), returned as the auxiliary losses ``sim``, ``diff``, ``recon``:
  - ``sim`` (α): Central Moment Discrepancy (Zellinger et al., 2017) with ``K=5`` moments between
    the shared representations of every pair of modalities, averaged over pairs (the paper sums
    over the 3 pairs and divides by 3). Sigmoid outputs live in [0, 1], so CMD's interval scaling
    ``1/|b-a|^k`` is 1.
  - ``diff`` (β): soft orthogonality ``||S^T P||_F^2`` between ``h^c_m`` and ``h^p_m`` of each
    modality and between the private representations of every pair of modalities. ``S`` and ``P``
    are batch × feature matrices. Following the authors' released implementation (not stated in
    the paper) each matrix is centred over the batch and every row L2-normalised before the
    product, and the squared Frobenius norm is divided by the number of entries
    (``d_S · d_P``), so the scale does not depend on batch size or width. It is exactly zero when
    every (centred, normalised) column of ``S`` is orthogonal to every column of ``P``.
  - ``recon`` (γ): ``MSE(D(h^c_m + h^p_m), u_m)`` with one shared decoder ``D`` (a linear layer),
    averaged over modalities, as the paper's Eq. for L_recon.
* *Fusion* (Sec. 3.3): the ``2M`` vectors ``[h^c_1..h^c_M, h^p_1..h^p_M]`` form a token sequence
  for a transformer encoder (1 layer, 2 heads as the paper), its outputs are concatenated and an
  MLP head predicts the target.

Loss weights: defaults ``sim_weight=1.0``, ``diff_weight=0.3``, ``recon_weight=1.0`` are the
values of the authors' released configuration as we recall it; the paper itself only states that
α, β, γ were chosen by grid search on the validation set (we could not verify the per-dataset values
here, so treat them as unconfirmed).

Measured on the synthetic presets (``leaderboard.md``, 3 seeds): the default LSTM encoders over-fit
the 768-d sequences of ``synthetic-mosei`` (1,500 training samples; validation never improves
after the first epochs, test MAE 1.346, the prior's 1.342) and of ``synthetic-iemocap`` (UA 0.563);
with ``seq_encoder=mean`` MISA reaches MAE 0.994 and UA 0.667 (Self-MM: 0.921 and 0.688). Those
presets' sequences are a constant signal plus independent noise per step, so the time mean is all
a model needs; real features have temporal structure, where the LSTM may do better.

What differs from the paper: LSTM encoders instead of BERT (features are pre-extracted here), any
number of modalities (pairs for ``sim``/private ``diff`` are all unordered pairs; with ``M == 1``
``sim`` is zero and ``diff`` only has the shared/private term), a missing vector modality
(presence mask False) is encoded from zeros, AdamW from the base instead of Adam, and a short CPU
recipe. Regression predicts a scalar ``(B,)``; distributions predict logits.
"""
from __future__ import annotations

from itertools import combinations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, ModalitySpec, UserInputError

from .base import MERModel, ModelOutput
from .blocks import masked_mean
from .registry import register_model
from .unimodal import check_seq_encoder


class UtteranceEncoder(nn.Module):
    """One modality → one vector ``u_m`` of width ``hidden``.

    Sequences, ``seq_encoder="lstm"`` (default, the paper's sLSTM): a bidirectional LSTM over the
    valid steps (packed), final states of both directions. ``seq_encoder="mean"``: the masked mean
    over the valid steps, batch-normalised per feature (the pooled-feature subnetwork of
    :class:`models.unimodal.ModalitySubnet`). Vectors: used directly (zeroed where the presence
    mask is False). Then Dropout → Linear → ReLU → LayerNorm.
    """

    def __init__(self, mod: ModalitySpec, hidden: int, rnn_hidden: int, dropout: float = 0.1,
                 seq_encoder: str = "lstm"):
        super().__init__()
        self.recurrent = check_seq_encoder(seq_encoder) == "lstm" and mod.is_sequence
        self.pooled = mod.is_sequence and not self.recurrent
        if self.recurrent:
            self.rnn = nn.LSTM(mod.dim, rnn_hidden, batch_first=True, bidirectional=True)
            width = 2 * rnn_hidden
        else:
            width = mod.dim
            if self.pooled:
                self.norm = nn.BatchNorm1d(mod.dim)
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU(), nn.LayerNorm(hidden))

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if self.recurrent:
            lengths = (mask.sum(1) if mask is not None else torch.full((x.shape[0],), x.shape[1]))
            packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            _, (h, _) = self.rnn(packed)
            enc = torch.cat([h[-2], h[-1]], dim=-1)  # last layer, forward and backward directions
        elif self.pooled:
            enc = self.norm(masked_mean(x, mask))
        else:
            enc = x if mask is None else x * mask.reshape(-1, 1).to(x.dtype)
        return self.proj(enc)


def cmd(x: Tensor, y: Tensor, moments: int = 5) -> Tensor:
    """Central Moment Discrepancy between samples ``x`` (N, D) and ``y`` (M, D) on [0, 1]^D."""
    mx, my = x.mean(0), y.mean(0)
    cx, cy = x - mx, y - my
    total = torch.linalg.vector_norm(mx - my)
    for k in range(2, moments + 1):
        total = total + torch.linalg.vector_norm(cx.pow(k).mean(0) - cy.pow(k).mean(0))
    return total


def soft_orthogonality(s: Tensor, p: Tensor) -> Tensor:
    """``||S^T P||_F^2 / (d_S d_P)`` with ``S``, ``P`` centred over the batch and rows L2-normalised."""
    s = s - s.mean(0, keepdim=True)
    p = p - p.mean(0, keepdim=True)
    s = F.normalize(s, p=2, dim=1, eps=1e-6)
    p = F.normalize(p, p=2, dim=1, eps=1e-6)
    return (s.t() @ p).pow(2).mean()


@register_model("misa")
class MISA(MERModel):
    PAPER = "Hazarika et al., MISA: Modality-Invariant and -Specific Representations, ACM MM 2020"
    # Paper/authors: Adam, lr 1e-4, batch 64, early stopping on validation; here lr 1e-3 and a short
    # budget so that the CPU sweep converges in seconds.
    RECIPE = {"max_epochs": 20, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "patience": 5}

    def __init__(self, spec: DatasetSpec, hidden: int = 64, rnn_hidden: int = 32, fusion_heads: int = 2,
                 fusion_layers: int = 1, dropout: float = 0.1, sim_weight: float = 1.0, diff_weight: float = 0.3,
                 recon_weight: float = 1.0, cmd_moments: int = 5, seq_encoder: str = "lstm", **kwargs) -> None:
        super().__init__(spec, **kwargs)
        if hidden % fusion_heads:
            raise UserInputError(f"misa: hidden={hidden} must be a multiple of fusion_heads={fusion_heads}")
        if min(sim_weight, diff_weight, recon_weight) < 0:
            raise UserInputError("misa: sim_weight, diff_weight and recon_weight must be >= 0")
        if cmd_moments < 1:
            raise UserInputError(f"misa: cmd_moments must be >= 1, got {cmd_moments}")
        mods = self.used_modalities
        self.names = [m.name for m in mods]
        self.weights = {"sim": sim_weight, "diff": diff_weight, "recon": recon_weight}
        self.cmd_moments = cmd_moments
        self.encoders = nn.ModuleDict({m.name: UtteranceEncoder(m, hidden, rnn_hidden, dropout, seq_encoder)
                                       for m in mods})
        self.shared = nn.Sequential(nn.Linear(hidden, hidden), nn.Sigmoid())  # E_c, shared by all modalities
        self.private = nn.ModuleDict({m.name: nn.Sequential(nn.Linear(hidden, hidden), nn.Sigmoid())
                                      for m in mods})  # E_p^m
        self.decoder = nn.Linear(hidden, hidden)  # D, shared
        layer = nn.TransformerEncoderLayer(hidden, fusion_heads, dim_feedforward=2 * hidden, dropout=dropout,
                                           batch_first=True)
        self.fusion = nn.TransformerEncoder(layer, fusion_layers, enable_nested_tensor=False)
        width = 2 * len(mods) * hidden
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, spec.target_dim))

    def representations(self, batch: Batch) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """Utterance vectors ``u_m``, shared ``h^c_m`` and private ``h^p_m`` for every used modality."""
        u = {n: self.encoders[n](batch.x[n], batch.mask.get(n)) for n in self.names}
        hc = {n: self.shared(u[n]) for n in self.names}
        hp = {n: self.private[n](u[n]) for n in self.names}
        return u, hc, hp

    def losses(self, u: dict[str, Tensor], hc: dict[str, Tensor], hp: dict[str, Tensor]) -> dict[str, Tensor]:
        """Unweighted similarity (CMD), difference (soft orthogonality) and reconstruction losses."""
        zero = next(iter(u.values())).new_zeros(())
        pairs = list(combinations(self.names, 2))
        sim = sum((cmd(hc[a], hc[b], self.cmd_moments) for a, b in pairs), zero) / max(len(pairs), 1)
        diff = sum((soft_orthogonality(hc[n], hp[n]) for n in self.names), zero)
        diff = diff + sum((soft_orthogonality(hp[a], hp[b]) for a, b in pairs), zero)
        recon = sum((F.mse_loss(self.decoder(hc[n] + hp[n]), u[n]) for n in self.names), zero) / len(self.names)
        return {"sim": sim, "diff": diff, "recon": recon}

    def forward(self, batch: Batch) -> ModelOutput:
        u, hc, hp = self.representations(batch)
        tokens = torch.stack([hc[n] for n in self.names] + [hp[n] for n in self.names], dim=1)  # (B, 2M, H)
        fused = self.fusion(tokens).flatten(1)
        pred = self.task_pred(self.head(fused))
        raw = self.losses(u, hc, hp)
        aux = {k: self.weights[k] * v for k, v in raw.items()}
        return ModelOutput(pred=pred, aux_losses=aux, embeddings=fused)
