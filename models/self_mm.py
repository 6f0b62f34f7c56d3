"""Self-MM: self-supervised multi-task learning with a unimodal label generation module (ULGM).

Paper: W. Yu, H. Xu, Z. Yuan, J. Wu, "Learning Modality-Specific Representations with
Self-Supervised Multi-Task Learning for Multimodal Sentiment Analysis", AAAI 2021.

Architecture (Sec. 3 of the paper), for modalities ``s = 1..M``:

* ``F_s``: an utterance vector per modality (the paper: BERT [CLS] for text, a single-layer LSTM's
  final state for audio/vision; here the shared :class:`models.misa.UtteranceEncoder`, a
  bidirectional LSTM over valid steps for every sequence and the vector itself for vectors;
  ``seq_encoder="mean"``: the batch-normalised masked mean instead of the LSTM, see
  :mod:`models.misa` for why that option exists).
* Fused branch: ``F_f* = ReLU(W_f [F_1; ...; F_M])`` (post-fusion features), then two layers to the
  prediction ``ŷ_f``, trained with the base task loss (L1 on sentiment, as the paper).
* Unimodal branches: ``F_s* = ReLU(W_s F_s)``, then two layers to ``ŷ_s``, trained on the
  self-supervised labels ``y_s`` (aux loss ``unimodal``).

ULGM (Sec. 3.3), state kept per training sample and keyed by ``Batch.ids``:

* Every training step stores the (detached) post-fusion / post-unimodal features of the batch
  samples, ``F^g``; class centres are recomputed from all stored features (the paper updates them
  from the stored global features after each step).
* Regression (the paper): for modality ``m`` (``f`` or any ``s``) positive / negative centres
  ``C^p_m``, ``C^n_m`` are the means of stored ``F^g_m`` of samples whose current label ``y_m`` is
  > 0 / < 0. ``α_m = (D^n_m - D^p_m) / (D^p_m + ε)`` with ``D`` the L2 distances of the sample's
  features to the centres. The new unimodal label averages the paper's two rules (ratio
  ``y_s = y_f α_s/α_f`` and difference ``y_s = y_f + α_s - α_f``)::

      y_s = 0.5 · y_f · α_s / (α_f + ε) + 0.5 · (y_f + α_s - α_f)      (clipped to the score range)

  so a modality representation closer to the negative centre than the fused one gets a label
  *below* the fused label. Momentum (the paper's Eq. for epoch ``n >= 2``; at epoch 1 ``y_s = y_f``):
  ``y_s^(n) = (n-1)/(n+1) · y_s^(n-1) + 2/(n+1) · y_s^new``.
* Unimodal loss: ``Σ_s mean_i W_s^i |ŷ_s^i - y_s^i|`` with ``W_s^i = tanh(|y_s^i - y_f^i|)`` (the
  paper's weighting: a unimodal branch is trained in proportion to how much its label differs).

Generalisation to classes (classification and distribution specs) — our adaptation, not in the
paper. Self-MM is defined for a signed scalar (sentiment polarity with a positive and a negative
centre). For ``C`` classes the fused target ``y_f`` is the one-hot class (classification) or the
target distribution (distribution); one centre per class is kept per modality (mean stored feature
of the samples whose current label's argmax is that class). The paper's relative distance becomes
a relative class affinity ``p_m = softmax_k(-D_{m,k} / (τ · mean_k D_{m,k}))`` (``τ`` =
``affinity_temperature``), and the same two rules are applied per class in probability space::

      y_s = 0.5 · normalise(y_f ⊙ p_s / p_f) + 0.5 · normalise(max(y_f + p_s - p_f, 0))

so a modality closer to another class's centre (relative to the fused representation) gets less
mass on the fused class. Same momentum. Unimodal loss: ``W · KL(y_s ‖ softmax(ŷ_s))`` with
``W = tanh(½ ||y_s - y_f||_1)`` (total variation in place of ``|y_s - y_f|``).

Other differences: LSTM encoders instead of BERT; any number of modalities ``M >= 1``; one
``uni_hidden`` width for every unimodal branch (the paper uses 32/16/32 for text/audio/video) and
``fusion_hidden`` for the fused one (the paper: 128); AdamW from the base with one lr (the paper
uses separate lrs for BERT and the rest); short CPU recipe. The ULGM state lives on the model
object (not in ``state_dict``: it is only needed for training, and checkpoints stay loadable);
it assumes one process (not synchronised across DDP ranks) and that every training sample is seen
each epoch (the ``random`` sampler).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, UserInputError

from .base import MERModel, ModelOutput
from .misa import UtteranceEncoder
from .registry import register_model

FUSION = "fusion"


class UnimodalLabelGenerator:
    """ULGM state: per-sample features and labels of every branch, keyed by sample id.

    ``mode``: ``"regression"`` (the paper's positive/negative centres on a signed score) or
    ``"classes"`` (our per-class generalisation, labels are distributions over ``num_classes``).
    """

    def __init__(self, branches: list[str], mode: str, num_classes: int = 2,
                 clip: tuple[float, float] | None = None, temperature: float = 0.5, eps: float = 1e-8):
        if mode not in ("regression", "classes"):
            raise ValueError(f"unknown ULGM mode {mode!r}")
        self.branches = list(branches)  # unimodal branch names; FUSION is handled separately
        self.mode, self.num_classes, self.clip = mode, num_classes, clip
        self.temperature, self.eps = temperature, eps
        self.index: dict[str, int] = {}
        self.features: dict[str, Tensor] = {}
        self.labels: dict[str, Tensor] = {}
        self.seen: Tensor | None = None

    def __len__(self) -> int:
        return len(self.index)

    # -- storage ---------------------------------------------------------------------------
    def _grow(self, n: int, like: Tensor, feats: dict[str, Tensor]) -> None:
        cap = 0 if self.seen is None else self.seen.shape[0]
        if n <= cap:
            return
        new = max(n, 2 * cap, 64)

        def grow(t: Tensor | None, shape_tail: tuple[int, ...], dtype, device) -> Tensor:
            out = torch.zeros((new, *shape_tail), dtype=dtype, device=device)
            if t is not None:
                out[: t.shape[0]] = t
            return out

        dev = like.device
        self.seen = grow(self.seen, (), torch.bool, dev)
        for b, f in feats.items():
            self.features[b] = grow(self.features.get(b), tuple(f.shape[1:]), torch.float32, dev)
        tail = () if self.mode == "regression" else (self.num_classes,)
        for b in [FUSION, *self.branches]:
            self.labels[b] = grow(self.labels.get(b), tail, torch.float32, dev)

    def register(self, ids: list[str], y_f: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """Index of each id (new ids get a slot whose unimodal labels start at the fused label ``y_f``)."""
        new = [i for i in dict.fromkeys(ids) if i not in self.index]
        first_new = len(self.index)
        for i in new:
            self.index[i] = len(self.index)
        self._grow(len(self.index), y_f, feats)
        idx = torch.tensor([self.index[i] for i in ids], dtype=torch.long, device=self.seen.device)
        if new:
            fresh = idx >= first_new
            for b in [FUSION, *self.branches]:
                self.labels[b][idx[fresh]] = y_f[fresh].float().to(self.seen.device)
        return idx

    def update_features(self, idx: Tensor, feats: dict[str, Tensor]) -> None:
        for b, f in feats.items():
            self.features[b][idx] = f.detach().float().to(self.seen.device)
        self.seen[idx] = True

    # -- centres and relative distances ----------------------------------------------------
    def centres(self, branch: str) -> tuple[Tensor, Tensor]:
        """Centres ``(K, d)`` and a bool ``(K,)`` saying which exist (K = 2: negative, positive)."""
        f = self.features[branch][self.seen]
        lab = self.labels[branch][self.seen]
        if self.mode == "regression":
            groups = [lab < 0, lab > 0]
        else:
            cls = lab.argmax(dim=-1)
            groups = [cls == k for k in range(self.num_classes)]
        onehot = torch.stack(groups, dim=0).to(f.dtype)  # (K, N)
        counts = onehot.sum(1)
        return onehot @ f / counts.clamp(min=1)[:, None], counts > 0

    def relative(self, branch: str, feats: Tensor) -> Tensor | None:
        """Regression: ``α = (D^n - D^p)/(D^p + ε)`` ``(B,)``; classes: affinities ``p`` ``(B, C)``.

        None when a needed centre does not exist yet."""
        c, ok = self.centres(branch)
        if not bool(ok.all()):
            return None
        d = torch.cdist(feats.detach().float().to(c.device), c)  # (B, K)
        if self.mode == "regression":
            return (d[:, 0] - d[:, 1]) / (d[:, 1] + self.eps)
        scale = d.mean(dim=1, keepdim=True) + self.eps
        return F.softmax(-d / (self.temperature * scale), dim=-1)

    def new_labels(self, y_f: Tensor, rel_s: Tensor, rel_f: Tensor) -> Tensor:
        """The unimodal label from the fused label and the relative distances (module docstring)."""
        if self.mode == "regression":
            y = 0.5 * y_f * rel_s / (rel_f + self.eps) + 0.5 * (y_f + rel_s - rel_f)
            return y.clamp(*self.clip) if self.clip is not None else y
        ratio = y_f * rel_s / rel_f.clamp(min=self.eps)
        ratio = ratio / ratio.sum(-1, keepdim=True).clamp(min=self.eps)
        shift = (y_f + rel_s - rel_f).clamp(min=0.0)
        shift = shift / shift.sum(-1, keepdim=True).clamp(min=self.eps)
        return 0.5 * ratio + 0.5 * shift

    def update_labels(self, idx: Tensor, feats: dict[str, Tensor], epoch: int) -> None:
        """Momentum update of the unimodal labels of ``idx`` (``epoch`` is 1-based; no-op at epoch 1)."""
        if epoch < 2:
            return
        rel_f = self.relative(FUSION, feats[FUSION])
        if rel_f is None:
            return
        y_f = self.labels[FUSION][idx]
        for b in self.branches:
            rel_s = self.relative(b, feats[b])
            if rel_s is None:
                continue
            fresh = self.new_labels(y_f, rel_s, rel_f)
            old = self.labels[b][idx]
            self.labels[b][idx] = (epoch - 1) / (epoch + 1) * old + 2 / (epoch + 1) * fresh

    def targets(self, idx: Tensor) -> dict[str, Tensor]:
        return {b: self.labels[b][idx].clone() for b in [FUSION, *self.branches]}


@register_model("self_mm")
class SelfMM(MERModel):
    PAPER = ("Yu et al., Learning Modality-Specific Representations with Self-Supervised Multi-Task "
             "Learning for Multimodal Sentiment Analysis, AAAI 2021")
    # Paper: Adam, batch 32, lr 5e-5 (BERT) / 1e-3 (others), early stopping 8; here one lr, batch 64,
    # at most 15 epochs and patience 4 (CPU sweep budget; on `synthetic` the optimum was epoch 2).
    RECIPE = {"max_epochs": 15, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "patience": 4}

    def __init__(self, spec: DatasetSpec, rnn_hidden: int = 32, feature_dim: int = 64, uni_hidden: int = 32,
                 fusion_hidden: int = 64, dropout: float = 0.1, unimodal_weight: float = 1.0,
                 affinity_temperature: float = 0.5, seq_encoder: str = "lstm", **kwargs) -> None:
        super().__init__(spec, **kwargs)
        if unimodal_weight < 0 or affinity_temperature <= 0:
            raise UserInputError("self_mm: unimodal_weight must be >= 0 and affinity_temperature > 0, got "
                                 f"{unimodal_weight}, {affinity_temperature}")
        mods = self.used_modalities
        self.names = [m.name for m in mods]
        self.unimodal_weight = unimodal_weight
        self.encoders = nn.ModuleDict({m.name: UtteranceEncoder(m, feature_dim, rnn_hidden, dropout, seq_encoder)
                                       for m in mods})
        self.post_fusion = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim * len(mods), fusion_hidden),
                                         nn.ReLU())
        self.fusion_head = nn.Sequential(nn.Linear(fusion_hidden, fusion_hidden), nn.ReLU(),
                                         nn.Linear(fusion_hidden, spec.target_dim))
        uni_out = 1 if spec.task == "regression" else spec.num_classes
        self.post_uni = nn.ModuleDict({n: nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, uni_hidden),
                                                        nn.ReLU()) for n in self.names})
        self.uni_heads = nn.ModuleDict({n: nn.Sequential(nn.Linear(uni_hidden, uni_hidden), nn.ReLU(),
                                                         nn.Linear(uni_hidden, uni_out)) for n in self.names})
        regression = spec.task == "regression"
        self.ulgm = UnimodalLabelGenerator(self.names, "regression" if regression else "classes",
                                           num_classes=spec.num_classes,
                                           clip=spec.score_range if regression else None,
                                           temperature=affinity_temperature)

    def fused_target(self, y: Tensor) -> Tensor:
        """``y_f`` for the ULGM: the score, the one-hot class, or the target distribution."""
        if self.spec.task == "regression":
            return y.reshape(-1).float()
        if self.spec.task == "classification":
            return F.one_hot(y.long(), self.spec.num_classes).float()
        return y.float()

    def unimodal_loss(self, preds: dict[str, Tensor], labels: dict[str, Tensor]) -> Tensor:
        y_f = labels[FUSION]
        total = next(iter(preds.values())).new_zeros(())
        for n, p in preds.items():
            y_s = labels[n]
            if self.spec.task == "regression":
                w = torch.tanh((y_s - y_f).abs())
                per = (p.squeeze(-1) - y_s).abs()
            else:
                w = torch.tanh(0.5 * (y_s - y_f).abs().sum(-1))
                per = F.kl_div(F.log_softmax(p, dim=-1), y_s, reduction="none").sum(-1)
            total = total + (w * per).mean()
        return total

    def forward(self, batch: Batch) -> ModelOutput:
        f = {n: self.encoders[n](batch.x[n], batch.mask.get(n)) for n in self.names}
        h_f = self.post_fusion(torch.cat([f[n] for n in self.names], dim=-1))  # F_f*
        pred = self.task_pred(self.fusion_head(h_f))
        h_s = {n: self.post_uni[n](f[n]) for n in self.names}  # F_s*
        uni = {n: self.uni_heads[n](h_s[n]) for n in self.names}
        aux = {}
        if self.training:
            feats = {FUSION: h_f, **h_s}
            idx = self.ulgm.register(list(batch.ids), self.fused_target(batch.y), feats)
            labels = self.ulgm.targets(idx)  # the labels as they were before this step's update
            aux["unimodal"] = self.unimodal_weight * self.unimodal_loss(uni, labels)
            self.ulgm.update_features(idx, feats)
            self.ulgm.update_labels(idx, feats, epoch=self.current_epoch + 1)
        return ModelOutput(pred=pred, aux_losses=aux, embeddings=h_f)
