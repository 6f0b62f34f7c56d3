"""HeLo: heterogeneous multimodal fusion with label correlation for emotion distribution learning.

Paper: Zheng, Tian, Wen, Zhang, Zhu, "HeLo: Heterogeneous Multi-Modal Fusion with Label Correlation
for Emotion Distribution Learning", ACM MM 2025 (arXiv 2507.06821). Architecture, losses and recipe
follow the authors' public code (kaio-99/HeLo) as described in /work/shared/methods/helo.md; the
paper body (equations, WESAD set-up) was not available.

Pipeline (module names as in the paper): an EEG tokeniser (the 90-vector reshaped row-major to 18
channel tokens × 5 bands, Linear 5→d) queries GSR and PPG tokens (each Linear D→18·d) through ONE
shared multi-head cross-attention (no output projection, post-norm residual, DropKey + attention
dropout); the two outputs are concatenated and projected → physiological tokens Z_p (36). Video
is projected to Z_b (36 tokens). OT heterogeneity mining computes a Gromov–Wasserstein plan T
(IPOT, β=0.1, 5×20 iterations, uniform marginals, thresholded cosine cost graphs) for the whole
batch at once, without gradient, and sets Z_p ← T Z_p. One shared transformer encoder layer
encodes both streams; a Linear along the token axis maps the 72 tokens to one slot per class (F′).
A learnable label embedding L (C, d) gives the label correlation R̂ = cos(L_i, L_j), aligned to
the ground-truth correlation R = ŷŷᵀ (ŷ = y/‖y‖) by MSE (aux loss ``corr_align``); the
label-correlation-driven (LCD) cross-attention (queries L, keys/values F′, R̂ added to the logits
before scaling, one head) feeds an MLP head that outputs class logits (the base class applies the
softmax and the batch-mean KL).

What differs from the official code (each has an option restoring the code's behaviour, all off by
default; see docs/models/helo.md): the label embedding is a registered, learned parameter
(code: fresh U(0,1) noise per forward), R̂ normalises over the feature axis (code: class axis),
DropKey is off at evaluation (code: on), KL is batch-mean (code: summed), the OT threshold is per
sample (code: over the batch), model selection is the suite's validation early stopping (code: last
epoch of 300).

Other datasets (reconstruction, helo.md §11): group A = the physiological modalities (else the
first modality), group B = the rest. The first A modality is the query stream: a vector whose dim
is a multiple of ``n_tokens`` is reshaped row-major into ``n_tokens`` channel tokens (DMER EEG
90 = 18×5), any other vector is projected Linear(D → N·d), a sequence is projected per step and
resampled (masked adaptive average pooling) to N tokens. Other A modalities: vectors (sequences
mean-pooled over valid steps first) → Linear(D → N·d). If |A| = 1 the query self-attends (N
tokens). Group B: each modality pooled to a vector, concatenated, Linear → the same token count as
group A, so the plan is square. No group B (single modality or physiological only): OT is skipped
and only the physiological stream is encoded. Classification: R from the one-hot class. Regression:
``regression_bins`` label slots at evenly spaced centres over ``spec.score_range``; the score is
the expectation of the softmax over the centres (a scalar), R from the one-hot of the nearest bin.
Auxiliary scores (MER2023) come from a small linear head on the LCD output.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, ModalitySpec, UserInputError

from ._ot import heterogeneity_plan
from .base import MERModel, ModelOutput
from .blocks import masked_mean
from .registry import register_model

_CHOICES = {
    "label_embedding": ("learned", "random_per_forward"),
    "label_embedding_init": ("uniform", "normal"),
    "label_corr_norm_axis": ("feature", "class"),
    "kl_reduction": ("batchmean", "sum"),
    "ot_threshold_scope": ("sample", "batch"),
    "gt_correlation": ("per_sample", "dataset"),
}
_NEG = -1e12  # DropKey's additive mask value (as the official code)


def resample_tokens(x: Tensor, mask: Tensor | None, n: int) -> Tensor:
    """Masked adaptive average pooling of a sequence ``(B, T, D)`` to ``n`` tokens ``(B, n, D)``.

    Token j of a sample with L valid steps averages steps [⌊jL/n⌋, max(⌈(j+1)L/n⌉, ⌊jL/n⌋+1)), so
    a short sequence repeats steps (nearest-neighbour upsampling) and padding is never read."""
    b, t, _ = x.shape
    lengths = mask.sum(1) if mask is not None else torch.full((b,), t, device=x.device)
    lengths = lengths.clamp(min=1).to(x.dtype).unsqueeze(1)  # (B, 1)
    j = torch.arange(n, device=x.device, dtype=x.dtype).unsqueeze(0)  # (1, n)
    start = torch.floor(j * lengths / n)
    end = torch.maximum(torch.ceil((j + 1) * lengths / n), start + 1)
    pos = torch.arange(t, device=x.device, dtype=x.dtype).view(1, 1, t)
    w = ((pos >= start.unsqueeze(-1)) & (pos < end.unsqueeze(-1))).to(x.dtype)  # (B, n, T)
    if mask is not None:
        w = w * mask.to(x.dtype).unsqueeze(1)
    w = w / w.sum(-1, keepdim=True).clamp(min=1.0)
    return w @ x


class HeloAttention(nn.Module):
    """Multi-head attention as in the official code: bias-free Q/K/V maps, no output projection,
    DropKey (−1e12 added to each logit with probability ``dropkey``), softmax, dropout, then the
    post-norm residual ``LayerNorm(x + A V)``. ``bias`` (B, Lq, Lk) is added to the logits before
    scaling (the LCD cross-attention's R̂)."""

    def __init__(self, d: int, heads: int, dropout: float, dropkey: float, dropkey_at_eval: bool = False):
        super().__init__()
        if d % heads:
            raise UserInputError(f"d_model={d} must be divisible by the number of heads ({heads})")
        self.h, self.dh = heads, d // heads
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)
        self.dropkey, self.dropkey_at_eval = dropkey, dropkey_at_eval

    def forward(self, x: Tensor, y: Tensor, bias: Tensor | None = None) -> Tensor:
        b, lq, d = x.shape
        lk = y.shape[1]
        q = self.q(x).view(b, lq, self.h, self.dh).transpose(1, 2)
        k = self.k(y).view(b, lk, self.h, self.dh).transpose(1, 2)
        v = self.v(y).view(b, lk, self.h, self.dh).transpose(1, 2)
        logits = q @ k.transpose(-1, -2)
        if bias is not None:
            logits = logits + bias.unsqueeze(1)  # broadcast over heads
        logits = logits / math.sqrt(self.dh)
        if self.dropkey > 0 and (self.training or self.dropkey_at_eval):
            drop = torch.bernoulli(torch.full_like(logits, self.dropkey)).bool()
            logits = logits.masked_fill(drop, _NEG)
        att = self.drop(torch.softmax(logits, dim=-1))
        out = (att @ v).transpose(1, 2).reshape(b, lq, d)
        return self.norm(x + out)


class HeloFFN(nn.Module):
    """``LayerNorm(x + Dropout(W₂ GELU(W₁ x)))``."""

    def __init__(self, d: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d), nn.Dropout(dropout))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.net(x))


class HeloEncoder(nn.Module):
    """Stack of ``depth`` encoder layers, each FFN(MHA(x, x))."""

    def __init__(self, d: int, heads: int, ffn: int, depth: int, dropout: float, dropkey: float,
                 dropkey_at_eval: bool):
        super().__init__()
        self.att = nn.ModuleList(HeloAttention(d, heads, dropout, dropkey, dropkey_at_eval) for _ in range(depth))
        self.ffn = nn.ModuleList(HeloFFN(d, ffn, dropout) for _ in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        for att, ffn in zip(self.att, self.ffn):
            x = ffn(att(x, x))
        return x


class Tokeniser(nn.Module):
    """One modality → ``n`` tokens of width ``d`` (see the module docstring for the rules)."""

    def __init__(self, m: ModalitySpec, n: int, d: int, query: bool):
        super().__init__()
        self.name, self.n, self.d, self.seq = m.name, n, d, m.is_sequence
        self.channel = query and not m.is_sequence and m.dim % n == 0
        if self.channel:  # DMER EEG: (B, 90) → (B, 18, 5) row-major → Linear(5 → d)
            self.kind, self.proj = "channel", nn.Linear(m.dim // n, d)
        elif query and m.is_sequence:
            self.kind, self.proj = "resample", nn.Linear(m.dim, d)
        else:
            self.kind, self.proj = "project", nn.Linear(m.dim, n * d)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if not self.seq and mask is not None:
            x = x * mask.to(x.dtype).unsqueeze(-1)  # absent modality → zeros
        if self.kind == "channel":
            return self.proj(x.reshape(x.shape[0], self.n, -1))
        if self.kind == "resample":
            return resample_tokens(self.proj(x), mask, self.n)
        return self.proj(masked_mean(x, mask)).view(x.shape[0], self.n, self.d)


@register_model("helo")
class HeLo(MERModel):
    """HeLo (Zheng et al., ACM MM 2025): physiological cross-attention, OT mining, label-correlation attention.

    See the module docstring for the method, what differs from the official code, and the rule for
    datasets other than DMER."""

    RECIPE = {"max_epochs": 300, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-5, "patience": 20}
    PAPER = "Zheng et al., HeLo, ACM MM 2025 (arXiv 2507.06821)"
    LABEL = "HeLo"
    # A reproduction from the released code (bugs fixed by default, each quirk an option), not a
    # reconstruction like TiCAL: architecture, losses and optimiser are known exactly.
    RECONSTRUCTION = False

    def __init__(self, spec: DatasetSpec, n_tokens: int = 18, d_model: int = 128, heads: int = 4,
                 heads_lcd: int = 1, depth: int = 1, ffn_dim: int = 64, dropout: float = 0.5,
                 dropkey: float = 0.5, head_hidden: int = 128, use_ot: bool = True, ot_beta: float = 0.1,
                 ot_outer: int = 5, ot_inner: int = 20, ot_threshold: float = 0.1,
                 lambda_corr: float = 1.0, regression_bins: int = 7, lr_gamma: float = 0.99,
                 label_embedding: str = "learned", label_embedding_init: str = "uniform",
                 label_corr_norm_axis: str = "feature", dropkey_at_eval: bool = False,
                 kl_reduction: str = "batchmean", ot_threshold_scope: str = "sample",
                 gt_correlation: str = "per_sample", **kwargs) -> None:
        super().__init__(spec, **kwargs)
        for opt, value in (("label_embedding", label_embedding), ("label_embedding_init", label_embedding_init),
                           ("label_corr_norm_axis", label_corr_norm_axis), ("kl_reduction", kl_reduction),
                           ("ot_threshold_scope", ot_threshold_scope), ("gt_correlation", gt_correlation)):
            if value not in _CHOICES[opt]:
                raise UserInputError(f"helo: {opt}={value!r}; expected one of {', '.join(_CHOICES[opt])}")
        for opt, value in (("n_tokens", n_tokens), ("d_model", d_model), ("heads", heads),
                           ("heads_lcd", heads_lcd), ("depth", depth), ("ffn_dim", ffn_dim),
                           ("head_hidden", head_hidden), ("ot_outer", ot_outer), ("ot_inner", ot_inner)):
            if int(value) < 1:
                raise UserInputError(f"helo: {opt}={value!r}; expected a positive integer")
        if not (0.0 <= dropout < 1.0 and 0.0 <= dropkey < 1.0):
            raise UserInputError(f"helo: dropout={dropout}, dropkey={dropkey}; expected values in [0, 1)")
        if ot_beta <= 0:
            raise UserInputError(f"helo: ot_beta={ot_beta}; expected a positive number")
        if spec.task == "regression" and regression_bins < 2:
            raise UserInputError(f"helo: regression_bins={regression_bins}; expected at least 2")
        self.d, self.n = int(d_model), int(n_tokens)
        self.use_ot, self.ot_beta, self.ot_outer, self.ot_inner = bool(use_ot), float(ot_beta), int(ot_outer), int(ot_inner)
        self.ot_threshold, self.ot_scope = float(ot_threshold), ot_threshold_scope
        self.lambda_corr, self.lr_gamma = float(lambda_corr), float(lr_gamma)
        self.label_mode, self.norm_axis = label_embedding, label_corr_norm_axis
        self.kl_reduction, self.gt_mode = kl_reduction, gt_correlation

        # -- groups (helo.md §11) ----------------------------------------------------------
        used = self.used_modalities
        group_a = [m for m in used if m.group == "physiological"] or [used[0]]
        group_b = [m for m in used if m not in group_a]
        self.group_a, self.group_b = tuple(m.name for m in group_a), tuple(m.name for m in group_b)
        d, n = self.d, self.n
        self.query_tokeniser = Tokeniser(group_a[0], n, d, query=True)
        self.key_tokenisers = nn.ModuleDict({m.name: Tokeniser(m, n, d, query=False) for m in group_a[1:]})
        self.n_phys = n * max(len(group_a) - 1, 1)
        self.cross_attention = HeloAttention(d, heads, dropout, dropkey, dropkey_at_eval)
        self.fusion_proj = nn.Linear(d, d)
        self.behavioral_proj = nn.Linear(sum(m.dim for m in group_b), self.n_phys * d) if group_b else None
        self.encoder = HeloEncoder(d, heads, ffn_dim, depth, dropout, dropkey, dropkey_at_eval)
        n_total = self.n_phys * (2 if group_b else 1)

        # -- label space -----------------------------------------------------------------------
        if spec.task == "regression":
            lo, hi = spec.score_range
            self.register_buffer("bin_centres", torch.linspace(float(lo), float(hi), int(regression_bins)))
            c = int(regression_bins)
        else:
            c = spec.num_classes
        self.c = c
        self.token_to_class = nn.Linear(n_total, c)  # along the token axis: one slot per class
        if label_embedding == "learned":
            init = torch.rand(c, d) if label_embedding_init == "uniform" else torch.randn(c, d) * 0.02
            self.label_embedding = nn.Parameter(init)
        else:
            self.label_embedding = None
        self.lcd_attention = HeloAttention(d, heads_lcd, dropout, dropkey, dropkey_at_eval)
        self.head = nn.Sequential(nn.Linear(c * d, head_hidden), nn.ReLU(), nn.Linear(head_hidden, head_hidden),
                                  nn.ReLU(), nn.Linear(head_hidden, c))
        self.aux_head = nn.Linear(c * d, len(spec.aux_scores)) if spec.aux_scores else None
        # dataset-level ground-truth correlation: running mean of ŷŷᵀ over training samples seen
        self.register_buffer("gt_corr_sum", torch.zeros(c, c))
        self.register_buffer("gt_corr_count", torch.zeros(()))

    # -- pieces ----------------------------------------------------------------------------------
    def physiological_tokens(self, batch: Batch) -> Tensor:
        q_name = self.group_a[0]
        e = self.query_tokeniser(batch.x[q_name].float(), batch.mask.get(q_name))
        if not self.key_tokenisers:
            return self.fusion_proj(self.cross_attention(e, e))
        fused = [self.cross_attention(e, tok(batch.x[name].float(), batch.mask.get(name)))
                 for name, tok in self.key_tokenisers.items()]
        return self.fusion_proj(torch.cat(fused, dim=1))

    def behavioral_tokens(self, batch: Batch) -> Tensor | None:
        if self.behavioral_proj is None:
            return None
        parts = []
        for name in self.group_b:
            x, mask = batch.x[name].float(), batch.mask.get(name)
            if x.dim() == 2 and mask is not None:
                x = x * mask.to(x.dtype).unsqueeze(-1)
            parts.append(masked_mean(x, mask))
        z = self.behavioral_proj(torch.cat(parts, dim=-1))
        return z.view(z.shape[0], self.n_phys, self.d)

    def target_distribution(self, batch: Batch) -> Tensor:
        """Per-sample distribution over the model's C label slots, used for R only."""
        task = self.spec.task
        if task == "distribution":
            return batch.y.float()
        if task == "classification":
            return F.one_hot(batch.y.long().reshape(-1), self.c).float()
        nearest = (batch.y.float().reshape(-1, 1) - self.bin_centres).abs().argmin(dim=1)
        return F.one_hot(nearest, self.c).float()

    def ground_truth_correlation(self, batch: Batch) -> Tensor:
        y = self.target_distribution(batch)
        yn = y / y.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        r = yn.unsqueeze(-1) * yn.unsqueeze(-2)  # (B, C, C) rank-one per sample
        if self.gt_mode == "per_sample":
            return r
        if self.training:
            with torch.no_grad():
                self.gt_corr_sum += r.sum(0)
                self.gt_corr_count += r.shape[0]
        if self.gt_corr_count > 0:
            mean = self.gt_corr_sum / self.gt_corr_count
        else:  # nothing seen yet (e.g. the sanity validation pass): this batch's mean
            mean = r.mean(0)
        return mean.unsqueeze(0).expand_as(r)

    def label_correlation(self, emb: Tensor) -> Tensor:
        """R̂ from the (B, C, d) embedding: cosine over features, or the official class-axis norm."""
        dim = -1 if self.norm_axis == "feature" else 1
        en = F.normalize(emb, dim=dim)
        return en @ en.transpose(1, 2)

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> ModelOutput:
        zp = self.physiological_tokens(batch)
        zb = self.behavioral_tokens(batch)
        plan = None
        if zb is not None and self.use_ot:
            plan = heterogeneity_plan(zp, zb, self.ot_beta, self.ot_outer, self.ot_inner,
                                      self.ot_threshold, self.ot_scope).to(zp.dtype)
            zp = plan @ zp  # Z_p ← T Z_p (plan detached)
        zp = self.encoder(zp)
        tokens = zp if zb is None else torch.cat([zp, self.encoder(zb)], dim=1)
        f = self.token_to_class(tokens.transpose(1, 2)).transpose(1, 2)  # (B, C, d)
        b = f.shape[0]
        if self.label_embedding is not None:
            emb = self.label_embedding.unsqueeze(0).expand(b, -1, -1)
        else:  # official-code quirk: fresh U(0,1) noise at every forward, never learned
            emb = torch.rand(b, self.c, self.d, device=f.device, dtype=f.dtype)
        r_hat = self.label_correlation(emb)
        out = self.lcd_attention(emb, f, bias=r_hat)
        flat = out.reshape(b, -1)
        logits = self.head(flat)
        aux = {"corr_align": self.lambda_corr * F.mse_loss(r_hat, self.ground_truth_correlation(batch))}
        if self.spec.task == "regression":
            pred = (torch.softmax(logits, dim=-1) * self.bin_centres).sum(-1)  # (B,) expectation over bins
        else:
            pred = logits
        if self.kl_reduction == "sum":
            # official-code quirk: summed KL. The base adds the batch-mean task loss ℓ; this term adds
            # (B − 1)·ℓ, so the total equals B·ℓ = the loss summed over the batch.
            aux["kl_sum_extra"] = (b - 1) * self.task_loss(pred, batch.y)
        if self.aux_head is not None:
            pred = torch.cat([pred, self.aux_head(flat)], dim=-1)
        emb_out = {"fused": flat, "label_correlation": r_hat}
        if plan is not None:
            emb_out["plan"] = plan
        return ModelOutput(pred=pred, aux_losses=aux, embeddings=emb_out)

    def configure_optimizers(self):
        # official recipe: Adam with coupled L2 weight decay, ExponentialLR stepped once per epoch
        opt = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
