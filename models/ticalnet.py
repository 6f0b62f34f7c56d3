"""TiCAL (reconstruction): typicality-based consistency-aware learning for MER.

Paper: W. Yin, S. Zhan, C. Liu, X. Hu, G. Duan, X. Xie, Y.-F. Li, T. He, "TiCAL: Typicality-Based
Consistency-Aware Learning for Multimodal Emotion Recognition", arXiv 2511.15085 (2025).

**This is a documented reconstruction, not a reproduction.** Only the paper's abstract is available:
it states that TiCAL follows the stage-wise nature of human emotion perception, estimates the
consistency of every training sample from pseudo unimodal labels and a typicality estimate, embeds
features in a hyperbolic space, and uses the consistency in learning. Every formula, schedule and
hyper-parameter below is this project's design (``/work/shared/methods/tical.md`` section 3 and
``docs/models/ticalnet.md``, which lists each choice with its default and the switch that ablates
it). No TiCAL number can be reproduced; leaderboards label the row "TiCAL (reconstruction)".

Method, as reconstructed (symbols of the method note in comments):

1. **Unimodal perception.** Per modality m an encoder gives ``h^m`` (d_e): sequences go through a
   Conv1d temporal projection, a small Transformer encoder with the padding mask, and a masked mean;
   vectors through batch norm and a 2-layer MLP. ``u^m = W_m h^m`` (d_h) is clipped to norm <= r and
   mapped onto the Poincaré ball, ``z^m = expmap0(u^m)``. Each modality classifies by
   ``-d_B(z^m, p^m_k) / T`` against class prototypes ``p^m_k`` (``geoopt.ManifoldParameter``); for
   regression a scalar head on the tangent vector also predicts the score.
2. **Stage 1** (epochs < ``warmup_epochs``): unimodal branches learn the unified label (CE on the
   discrete view; L1 of the scalar head for regression). The fused head trains on the task loss in
   parallel (``fused_warmup``).
3. **Stage 2** (start of every stage-3 epoch, no gradient): a pass over the training split in fixed
   order builds per modality and class an anchor list (top ``anchor_fraction`` of samples whose
   unimodal argmax equals the unified label, by confidence), anchor centres (hyperbolic midpoints),
   pseudo labels (nearest centre), typicality (inverse mean distance to the ``knn`` nearest anchors of
   the pseudo class, divided by the median of the class's anchors and capped at 1; the method note's
   percentile rank is ``typicality_norm=percentile``) and consistency ``c^m = tau^m 1[yhat^m = k]``,
   ``C = mean_m c^m``. Stored per training id; unknown ids (validation, test, a model used outside a
   Trainer) get ``C = c^m = 1`` and the unified label as pseudo label.
4. **Stage 3**: the tangent vectors ``logmap0(z^m)`` are fused (attention pooling + MLP) into the
   prediction. Loss = mean_i w_i l_task(f_i, y_i) with ``w_i = 1 + gamma (1 - C_i)``
   + lambda_u sum_m mean_i [c_i^m CE(g^m_i, k_i) + (1 - c_i^m) CE(g^m_i, yhat_i^m)]
   + lambda_p sum_m mean_i CE(g^m_i, k_i). The base class adds the unweighted task loss; the
   weighting enters as the auxiliary loss ``fused_weighting`` = mean_i (w_i - 1) l_i, so the total is
   exactly the formula above.

Ablations: ``hyperbolic``, ``pseudo_labels``, ``typicality``, ``fused_weighting``,
``unimodal_gating``, ``stages`` (3 or 1). With all of them off the loss is the plain backbone +
fusion loss: task loss + (lambda_u + lambda_p) * the unimodal cross-entropies on the unified label.

Differences from DMD-based recipes (method note 3.9): the Euclidean lr defaults to 1e-3, not DMD's
1e-4 (DMD's value needs far more epochs than the suite's early-stopping budget on the small
synthetic presets); ``--lr 1e-4 --set lr_manifold=1e-4`` restores DMD's. Batch 64 without
accumulation; gradient value clipping 0.6 and ReduceLROnPlateau(0.5, 5) on ``val/loss_task`` as DMD.
The consistency table is per process: under DDP each rank refreshes its own copy from the full
training split (correct, but not sharded).
"""
from __future__ import annotations

import math
from typing import Any

import geoopt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, ModalitySpec, UserInputError

from ._hyperbolic import clip_features, curvature, midpoint, pairwise_dist
from .base import MERModel, ModelOutput
from .blocks import MLP, masked_mean
from .registry import register_model


# ------------------------------------------------------------------------------------------
# unimodal encoders
# ------------------------------------------------------------------------------------------
class SequenceEncoder(nn.Module):
    """Conv1d temporal projection -> Transformer encoder (padding masked) -> masked mean."""

    def __init__(self, in_dim: int, d_e: int, kernel: int, layers: int, heads: int, dropout: float):
        super().__init__()
        self.proj = nn.Conv1d(in_dim, d_e, kernel_size=kernel, padding=kernel // 2, bias=False)
        layer = nn.TransformerEncoderLayer(d_e, heads, dim_feedforward=2 * d_e, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_e)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        mask = mask.clone()
        mask[:, 0] |= ~mask.any(dim=1)  # a sample with no valid step attends to its first (zero) step
        h = self.proj((x * mask.unsqueeze(-1)).transpose(1, 2)).transpose(1, 2)
        h = self.encoder(h, src_key_padding_mask=~mask)
        return masked_mean(self.norm(h), mask)


class VectorEncoder(nn.Module):
    """Batch norm -> 2-layer MLP; absent vectors (mask False) give a zero vector."""

    def __init__(self, in_dim: int, d_e: int, dropout: float):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim)
        self.mlp = nn.Sequential(nn.Linear(in_dim, d_e), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_e, d_e))

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        h = self.mlp(self.norm(x))
        return h if mask is None else h * mask.to(h.dtype).unsqueeze(-1)


# ------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------
@register_model("ticalnet")
class TiCALNet(MERModel):
    """TiCAL (reconstruction) — see the module docstring and ``docs/models/ticalnet.md``."""

    LABEL = "TiCAL"
    RECONSTRUCTION = True
    PAPER = "Yin et al., TiCAL, arXiv 2511.15085 (reconstruction)"
    # The runner selects checkpoints and counts early-stopping patience from the first stage-3 epoch
    # only (selection_start_epoch); under a plain Trainer, patience must exceed warmup_epochs.
    RECIPE = {"max_epochs": 40, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "patience": 10}

    def __init__(self, spec: DatasetSpec,
                 # backbone
                 d_e: int = 128, d_h: int = 64, kernel: int = 3, enc_layers: int = 1, heads: int = 4,
                 dropout: float = 0.1, fusion_hidden: int = 128,
                 # hyperbolic space and prototype classifier
                 hyperbolic: bool = True, curvature: float = 1.0, learn_curvature: bool = False,
                 clip_r: float = 2.0, temperature: float = 0.5, proto_init_norm: float = 1.0,
                 # stages
                 stages: int = 3, warmup_epochs: int = 5, fused_warmup: bool = True, lambda_warmup: float = 1.0,
                 refresh_every: int = 1,
                 # stage 2: anchors, pseudo labels, typicality, consistency
                 pseudo_labels: bool = True, typicality: bool = True, anchor_fraction: float = 0.2,
                 knn: int = 10, typicality_mode: str = "knn", typicality_norm: str = "anchor",
                 typicality_sigma: float = 1.0,
                 consistency_mode: str = "hard", combine: str = "mean", sign_gate: bool = False,
                 ema: float = 0.0,
                 # stage 3 losses
                 fused_weighting: bool = True, unimodal_gating: bool = True, gamma: float = 0.5,
                 lambda_u: float = 0.5, lambda_p: float = 0.1,
                 # optimisation
                 lr_manifold: float | None = None, plateau_patience: int = 5, grad_clip_value: float = 0.6,
                 **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        self._check_options(stages=stages, warmup_epochs=warmup_epochs, refresh_every=refresh_every,
                            anchor_fraction=anchor_fraction, knn=knn, typicality_mode=typicality_mode,
                            typicality_norm=typicality_norm,
                            typicality_sigma=typicality_sigma, consistency_mode=consistency_mode,
                            combine=combine, ema=ema, gamma=gamma, lambda_u=lambda_u, lambda_p=lambda_p,
                            lambda_warmup=lambda_warmup, temperature=temperature, curvature=curvature,
                            d_e=d_e, d_h=d_h, heads=heads, kernel=kernel)
        self.hyperbolic = bool(hyperbolic)
        self.clip_r = None if clip_r is None or clip_r <= 0 else float(clip_r)
        self.temperature = float(temperature)
        self.stages, self.warmup_epochs = int(stages), int(warmup_epochs)
        self.fused_warmup, self.lambda_warmup = bool(fused_warmup), float(lambda_warmup)
        self.refresh_every = int(refresh_every)
        self.use_pseudo, self.use_typicality = bool(pseudo_labels), bool(typicality)
        self.anchor_fraction, self.knn = float(anchor_fraction), int(knn)
        self.typicality_mode, self.typicality_sigma = typicality_mode, float(typicality_sigma)
        self.typicality_norm = typicality_norm
        self.consistency_mode, self.combine, self.sign_gate, self.ema = consistency_mode, combine, bool(sign_gate), float(ema)
        self.use_fused_weighting, self.use_gating = bool(fused_weighting), bool(unimodal_gating)
        self.gamma, self.lambda_u, self.lambda_p = float(gamma), float(lambda_u), float(lambda_p)
        self.lr_manifold = self.lr if lr_manifold is None else float(lr_manifold)
        self.plateau_patience, self.grad_clip_value = int(plateau_patience), float(grad_clip_value)
        self.regression = spec.task == "regression"
        self.K = spec.num_classes
        self.names = [m.name for m in self.used_modalities]

        # unimodal perception: encoder, map to the ball, prototypes (and a scalar head for regression)
        self.encoders = nn.ModuleDict({m.name: self._encoder(m, d_e, kernel, enc_layers, heads, dropout)
                                       for m in self.used_modalities})
        self.to_tangent = nn.ModuleDict({m.name: nn.Linear(d_e, d_h) for m in self.used_modalities})
        self.ball = geoopt.PoincareBall(c=float(curvature), learnable=bool(learn_curvature))
        self.prototypes = nn.ParameterDict({m.name: self._init_prototypes(d_h, proto_init_norm)
                                            for m in self.used_modalities})
        if self.regression:
            self.score_heads = nn.ModuleDict({m.name: nn.Linear(d_h, 1) for m in self.used_modalities})
        # stage-3 fusion of tangent vectors: attention pooling + MLP over [pooled; all modalities]
        M = len(self.used_modalities)
        self.attn = nn.Sequential(nn.Linear(d_h, d_h), nn.Tanh(), nn.Linear(d_h, 1, bias=False))
        self.fusion = MLP(d_h * (M + 1), fusion_hidden, spec.target_dim, layers=2, dropout=dropout)

        # stage-2 table, one row per training id (filled by refresh_consistency; not checkpointed)
        self._row: dict[str, int] = {}
        for name, dtype in (("_C", torch.float32), ("_c", torch.float32), ("_tau", torch.float32),
                            ("_pseudo", torch.long)):
            self.register_buffer(name, torch.zeros(0, dtype=dtype), persistent=False)
        self.refreshes = 0
        self.history: list[dict[str, Any]] = []  # per training epoch: stage, refreshed, active aux losses
        self._active: set[str] = set()
        self._refreshed_now = False

    # -- construction helpers ---------------------------------------------------------------
    @staticmethod
    def _check_options(**o: Any) -> None:
        def need(ok: bool, key: str, expected: str) -> None:
            if not ok:
                raise UserInputError(f"ticalnet: option {key}={o[key]!r}; expected {expected}")
        need(o["stages"] in (1, 3), "stages", "3 (warm-up, refresh, consistency-aware fusion) or 1 (joint from the start)")
        need(int(o["warmup_epochs"]) >= 0, "warmup_epochs", "an integer >= 0")
        need(int(o["refresh_every"]) >= 1, "refresh_every", "an integer >= 1")
        need(0.0 < float(o["anchor_fraction"]) <= 1.0, "anchor_fraction", "a fraction in (0, 1]")
        need(int(o["knn"]) >= 1, "knn", "an integer >= 1")
        need(o["typicality_mode"] in ("knn", "exp"), "typicality_mode", "'knn' or 'exp'")
        need(o["typicality_norm"] in ("percentile", "anchor"), "typicality_norm", "'percentile' or 'anchor'")
        need(float(o["typicality_sigma"]) > 0, "typicality_sigma", "a number > 0")
        need(o["consistency_mode"] in ("hard", "soft"), "consistency_mode", "'hard' or 'soft'")
        need(o["combine"] in ("mean", "vote"), "combine", "'mean' or 'vote'")
        need(0.0 <= float(o["ema"]) < 1.0, "ema", "a number in [0, 1) (0 = no smoothing)")
        for key in ("gamma", "lambda_u", "lambda_p", "lambda_warmup"):
            need(float(o[key]) >= 0 and math.isfinite(float(o[key])), key, "a finite number >= 0")
        for key in ("temperature", "curvature"):
            need(float(o[key]) > 0, key, "a number > 0")
        need(int(o["d_e"]) % int(o["heads"]) == 0, "heads", f"a divisor of d_e={o['d_e']}")
        need(int(o["kernel"]) % 2 == 1, "kernel", "an odd integer (same-length Conv1d)")
        need(int(o["d_h"]) >= 2, "d_h", "an integer >= 2")

    @staticmethod
    def _encoder(m: ModalitySpec, d_e: int, kernel: int, layers: int, heads: int, dropout: float) -> nn.Module:
        if m.is_sequence:
            return SequenceEncoder(m.dim, d_e, kernel, layers, heads, dropout)
        return VectorEncoder(m.dim, d_e, dropout)

    def _init_prototypes(self, d_h: int, norm: float) -> nn.Parameter:
        u = torch.randn(self.K, d_h)
        u = u / u.norm(dim=-1, keepdim=True) * norm
        if self.hyperbolic:
            return geoopt.ManifoldParameter(self.ball.expmap0(u).detach(), manifold=self.ball)
        return nn.Parameter(u)

    # -- geometry ---------------------------------------------------------------------------
    def embed(self, h: Tensor, name: str) -> tuple[Tensor, Tensor]:
        """``h`` -> (point z on the ball (or clipped Euclidean point), tangent vector at the origin)."""
        u = clip_features(self.to_tangent[name](h), self.clip_r)
        if not self.hyperbolic:
            return u, u
        z = self.ball.expmap0(u)
        return z, self.ball.logmap0(z)

    def dist(self, x: Tensor, y: Tensor) -> Tensor:
        return pairwise_dist(x, y, curvature(self.ball), hyperbolic=self.hyperbolic)

    # -- forward ----------------------------------------------------------------------------
    def encode(self, batch: Batch) -> dict[str, Any]:
        """Unimodal perception: per modality the ball point, tangent vector, prototype logits,
        presence (B,) and, for regression, the scalar score."""
        out: dict[str, Any] = {"z": {}, "v": {}, "logits": {}, "present": {}, "score": {}}
        for m in self.used_modalities:
            mask = batch.mask.get(m.name)
            h = self.encoders[m.name](batch.x[m.name], mask)
            z, v = self.embed(h, m.name)
            out["z"][m.name], out["v"][m.name] = z, v
            out["logits"][m.name] = -self.dist(z, self.prototypes[m.name]) / self.temperature
            present = torch.ones(len(batch), dtype=torch.bool, device=h.device) if m.is_sequence or mask is None \
                else mask.bool()
            out["present"][m.name] = present
            if self.regression:
                out["score"][m.name] = self.score_heads[m.name](v).squeeze(-1)
        return out

    def fuse(self, enc: dict[str, Any]) -> Tensor:
        V = torch.stack([enc["v"][n] for n in self.names], dim=1)  # (B, M, d_h)
        present = torch.stack([enc["present"][n] for n in self.names], dim=1)
        scores = self.attn(V).squeeze(-1).masked_fill(~present, -1e4)
        pooled = (scores.softmax(dim=1).unsqueeze(-1) * V).sum(dim=1)
        pred = self.fusion(torch.cat([pooled, V.flatten(1)], dim=-1))
        return self.task_pred(pred)

    def forward(self, batch: Batch) -> ModelOutput:
        enc = self.encode(batch)
        pred = self.fuse(enc)
        aux = self.losses(batch, pred, enc)
        if self.training:
            self._active.update(aux)
        return ModelOutput(pred=pred, aux_losses=aux,
                           embeddings={**{f"z_{n}": enc["z"][n] for n in self.names}})

    # -- stages -----------------------------------------------------------------------------
    def stage_at(self, epoch: int) -> int:
        """1 = unimodal warm-up, 3 = consistency-aware fusion (stage 2 is the refresh between)."""
        return 3 if self.stages == 1 or epoch >= self.warmup_epochs else 1

    @property
    def stage(self) -> int:
        return self.stage_at(int(self.current_epoch))

    def _first_stage3_epoch(self) -> int:
        return 0 if self.stages == 1 else self.warmup_epochs

    def selection_start_epoch(self) -> int:
        """The runner selects (and early-stops) on stage-3 epochs only: a warm-up checkpoint is
        not TiCAL."""
        return self._first_stage3_epoch()

    # -- losses -----------------------------------------------------------------------------
    def _per_sample_task_loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Per-sample terms whose batch mean equals the base class's ``task_loss``."""
        if self.spec.task == "classification":
            return F.cross_entropy(pred, y.long(), reduction="none")
        if self.spec.task == "regression":
            return (pred.reshape(-1) - y.reshape(-1).float()).abs()
        return F.kl_div(F.log_softmax(pred, dim=-1), y.float(), reduction="none").sum(dim=-1)

    @staticmethod
    def _wmean(values: Tensor, weight: Tensor) -> Tensor:
        return (values * weight).sum() / weight.sum().clamp(min=1.0)

    def lookup(self, ids: list[str], label: Tensor) -> dict[str, Tensor]:
        """Stage-2 values of a batch: C (B,), c (B, M), pseudo labels (B, M). Ids not in the table
        (no refresh yet, validation/test samples, no Trainer) get C = c = 1 and the unified label."""
        B, M, dev = len(ids), len(self.names), label.device
        rows = torch.tensor([self._row.get(i, -1) for i in ids], dtype=torch.long, device=dev)
        known = rows >= 0
        C = torch.ones(B, device=dev)
        c = torch.ones(B, M, device=dev)
        pseudo = label.long().unsqueeze(1).expand(B, M).clone()
        if bool(known.any()):
            r = rows[known]
            C[known], c[known], pseudo[known] = self._C[r], self._c[r], self._pseudo[r]
        return {"C": C, "c": c, "pseudo": pseudo}

    def losses(self, batch: Batch, pred: Tensor, enc: dict[str, Any]) -> dict[str, Tensor]:
        k = batch.label.long()
        n_main = self.spec.target_dim - len(self.spec.aux_scores)
        pred_main = pred if self.regression else pred[:, :n_main]
        aux: dict[str, Tensor] = {}
        if self.stage == 1:
            terms = []
            for n in self.names:
                w = enc["present"][n].float()
                terms.append(self._wmean(F.cross_entropy(enc["logits"][n], k, reduction="none"), w))
                if self.regression:
                    terms.append(self._wmean((enc["score"][n] - batch.y.float()).abs(), w))
            aux["unimodal_warmup"] = self.lambda_warmup * torch.stack(terms).sum()
            if not self.fused_warmup:  # cancels the base class's task loss exactly
                aux["fused_off"] = -self.task_loss(pred_main, batch.y)
            return aux

        st = self.lookup(batch.ids, k)
        if self.use_fused_weighting and self.gamma > 0:
            w = 1.0 + self.gamma * (1.0 - st["C"])
            aux["fused_weighting"] = ((w - 1.0) * self._per_sample_task_loss(pred_main, batch.y)).mean()
        uni, proto = [], []
        for j, n in enumerate(self.names):
            pres = enc["present"][n].float()
            logits = enc["logits"][n]
            ce_unified = F.cross_entropy(logits, k, reduction="none")
            if self.use_gating:
                c = st["c"][:, j]
                ce_pseudo = F.cross_entropy(logits, st["pseudo"][:, j], reduction="none")
                uni.append(self._wmean(c * ce_unified + (1.0 - c) * ce_pseudo, pres))
            else:
                uni.append(self._wmean(ce_unified, pres))
            if self.regression:  # the scalar head learns the unified score where the modality agrees
                gate = st["c"][:, j] if self.use_gating else torch.ones_like(pres)
                uni.append(self._wmean(gate * (enc["score"][n] - batch.y.float()).abs(), pres))
            proto.append(self._wmean(ce_unified, pres))
        aux["unimodal_consistency"] = self.lambda_u * torch.stack(uni).sum()
        aux["prototype"] = self.lambda_p * torch.stack(proto).sum()
        return aux

    # -- stage 2: the consistency refresh ----------------------------------------------------
    @torch.no_grad()
    def refresh_consistency(self, loader) -> dict[str, Tensor]:
        """Score every training sample (fixed-order ``loader``) and store C, c^m, tau^m, pseudo labels
        by id. Returns the table (``ids`` list plus tensors) for inspection."""
        was_training = self.training
        self.eval()
        ids: list[str] = []
        k_all, y_all = [], []
        per = {n: {"z": [], "p": [], "present": [], "score": []} for n in self.names}
        for batch in loader:
            batch = batch.to(self.device)
            enc = self.encode(batch)
            ids.extend(batch.ids)
            k_all.append(batch.label.long())
            y_all.append(batch.y.float().reshape(len(batch), -1)[:, 0] if self.regression else batch.label)
            for n in self.names:
                per[n]["z"].append(enc["z"][n].float())
                per[n]["p"].append(enc["logits"][n].float().softmax(-1))
                per[n]["present"].append(enc["present"][n])
                if self.regression:
                    per[n]["score"].append(enc["score"][n].float())
        self.train(was_training)
        if not ids:
            return {}
        k = torch.cat(k_all)
        y = torch.cat(y_all)
        N, M = len(ids), len(self.names)
        c = torch.zeros(N, M, device=k.device)
        tau = torch.zeros(N, M, device=k.device)
        pseudo = torch.zeros(N, M, dtype=torch.long, device=k.device)
        present = torch.zeros(N, M, dtype=torch.bool, device=k.device)
        for j, n in enumerate(self.names):
            z = torch.cat(per[n]["z"])
            p = torch.cat(per[n]["p"])
            pres = torch.cat(per[n]["present"])
            score = torch.cat(per[n]["score"]) if self.regression else None
            yhat, t, q = self._modality_consistency(z, p, pres, k, n)
            cm = t * (q if self.consistency_mode == "soft" else (yhat == k).float())
            if self.sign_gate and score is not None:
                agree = (torch.sign(score) == torch.sign(y)) | ((y == 0) & (score.abs() < 0.5))
                cm = cm * agree.float()
            c[:, j], tau[:, j], pseudo[:, j], present[:, j] = cm, t, yhat, pres
        pw = present.float()
        if self.combine == "mean":
            C = (c * pw).sum(1) / pw.sum(1).clamp(min=1.0)
        else:  # typicality-weighted vote, rescaled to [0, 1]
            vote = (2.0 * (pseudo == k[:, None]).float() - 1.0)
            tw = tau * pw
            C = 0.5 * ((tw * vote).sum(1) / tw.sum(1).clamp(min=1e-8) + 1.0)
            C = torch.where(tw.sum(1) > 0, C, torch.ones_like(C))
        row = {i: r for r, i in enumerate(ids)}
        if self.ema > 0 and self._row and len(self._row) == N and self._C.shape[0] == N:
            old = torch.tensor([self._row[i] for i in ids], dtype=torch.long, device=k.device)
            c = self.ema * self._c[old] + (1.0 - self.ema) * c
            C = self.ema * self._C[old] + (1.0 - self.ema) * C
        self._row = row
        self._C, self._c, self._tau, self._pseudo = C, c, tau, pseudo
        self.refreshes += 1
        return {"ids": ids, "C": C, "c": c, "tau": tau, "pseudo": pseudo, "label": k}

    def _modality_consistency(self, z: Tensor, p: Tensor, present: Tensor, k: Tensor,
                              name: str) -> tuple[Tensor, Tensor, Tensor]:
        """Anchors, pseudo labels, typicality for one modality: returns (yhat, tau, q[k])."""
        N, K = p.shape
        conf, pred = p.max(dim=1)
        anchors: list[Tensor] = []
        centres = []
        for cls in range(K):
            agree = torch.nonzero((k == cls) & (pred == cls) & present).squeeze(1)
            if agree.numel() == 0:
                anchors.append(agree)
                centres.append(self.prototypes[name][cls].detach().float())
                continue
            n_top = min(agree.numel(), max(math.ceil(self.anchor_fraction * agree.numel()), self.knn))
            top = agree[conf[agree].argsort(descending=True)[:n_top]]
            anchors.append(top)
            centres.append(midpoint(self.ball, z[top], self.hyperbolic).float())
        mu = torch.stack(centres)  # (K, d_h)
        d_mu = self.dist(z, mu).double()  # (N, K)
        q_soft = (-d_mu / self.temperature).softmax(dim=1)
        yhat = d_mu.argmin(dim=1) if self.use_pseudo else k.clone()
        q_k = q_soft.gather(1, k[:, None]).squeeze(1).float()
        if not self.use_typicality:
            return yhat, torch.ones(N, device=z.device), q_k
        if self.typicality_mode == "exp":
            d_own = d_mu.gather(1, yhat[:, None]).squeeze(1)
            return yhat, torch.exp(-d_own / self.typicality_sigma).float(), q_k
        tau = torch.zeros(N, dtype=torch.float64, device=z.device)
        idx_all = torch.arange(N, device=z.device)
        for cls in range(K):
            members = torch.nonzero(yhat == cls).squeeze(1)
            if members.numel() == 0:
                continue
            anc = anchors[cls]
            if anc.numel() == 0:
                dens = 1.0 / (d_mu[members, cls] + 1e-8)
            else:
                D = self.dist(z[members], z[anc]).double()
                D = D.masked_fill(idx_all[members][:, None] == anc[None, :], float("inf"))  # not itself
                kk = min(self.knn, anc.numel())
                near = D.topk(kk, dim=1, largest=False).values
                finite = torch.isfinite(near)
                mean_d = torch.where(finite, near, torch.zeros_like(near)).sum(1) / finite.sum(1).clamp(min=1)
                dens = 1.0 / (mean_d + 1e-8)
            if self.typicality_norm == "anchor" and anc.numel() > 0:
                # density relative to the class's anchors: min(1, Typ_i / median anchor Typ)
                pos = torch.nonzero(torch.isin(members, anc)).squeeze(1)
                ref = dens[pos].median() if pos.numel() else dens.max()
                tau[members] = (dens / ref.clamp_min(1e-12)).clamp(max=1.0)
                continue
            # percentile rank within the pseudo class -> [0, 1] (1 = most typical)
            if members.numel() == 1:
                tau[members] = 1.0
            else:
                ranks = dens.argsort().argsort().double()
                tau[members] = ranks / (members.numel() - 1)
        return yhat, tau.float(), q_k

    def consistency_of(self, ids: list[str]) -> Tensor:
        """Per-sample consistency C of the given training ids (1 for unknown ids)."""
        return self.lookup(ids, torch.zeros(len(ids), dtype=torch.long, device=self._C.device))["C"]

    # -- Lightning hooks --------------------------------------------------------------------
    def on_fit_start(self) -> None:
        from lightning.pytorch.callbacks import EarlyStopping
        from lightning.pytorch.utilities import rank_zero_warn
        for cb in self.trainer.callbacks:
            # (the runner's early stopping counts from selection_start_epoch() and needs no check)
            if isinstance(cb, EarlyStopping) and type(cb).__name__ != "FromEpoch" and self.stages == 3 \
                    and cb.patience <= self.warmup_epochs:
                rank_zero_warn(f"ticalnet: early-stopping patience {cb.patience} <= warmup_epochs "
                               f"{self.warmup_epochs}; the stage-1 -> stage-3 switch may stop the run early "
                               "(set patience > warmup_epochs)")

    def on_train_epoch_start(self) -> None:
        self._active = set()
        self._refreshed_now = False
        epoch = int(self.current_epoch)
        if self.stage_at(epoch) != 3 or (epoch - self._first_stage3_epoch()) % self.refresh_every:
            return
        dm = getattr(self.trainer, "datamodule", None)
        loader_fn = getattr(dm, "train_eval_dataloader", None)
        if loader_fn is None:  # no datamodule (plain dataloaders): keep C = 1
            return
        self.refresh_consistency(loader_fn())
        self._refreshed_now = True

    def on_train_epoch_end(self) -> None:
        epoch = int(self.current_epoch)
        self.history.append({"epoch": epoch, "stage": self.stage_at(epoch), "refreshed": self._refreshed_now,
                             "aux": sorted(self._active)})
        if self._C.numel():
            self.log("train/consistency_mean", self._C.mean(), on_step=False, on_epoch=True)

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.grad_clip_value > 0:
            torch.nn.utils.clip_grad_value_(self.parameters(), self.grad_clip_value)

    def configure_optimizers(self):
        manifold = [p for p in self.parameters() if isinstance(p, geoopt.ManifoldParameter)]
        seen = {id(p) for p in manifold}
        euclid = [p for p in self.parameters() if id(p) not in seen]
        groups = [{"params": euclid, "lr": self.lr, "weight_decay": self.weight_decay}]
        if manifold:
            groups.append({"params": manifold, "lr": self.lr_manifold, "weight_decay": 0.0})
        opt = geoopt.optim.RiemannianAdam(groups, lr=self.lr, stabilize=10)
        if self.plateau_patience <= 0:
            return opt
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5,
                                                           patience=self.plateau_patience)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val/loss_task",
                                                   "interval": "epoch", "strict": False}}
