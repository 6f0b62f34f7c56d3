"""MulT: Multimodal Transformer for unaligned multimodal language sequences.

Paper: Y.-H. H. Tsai, S. Bai, P. P. Liang, J. Z. Kolter, L.-P. Morency, R. Salakhutdinov,
"Multimodal Transformer for Unaligned Multimodal Language Sequences", ACL 2019.

Method (Sec. 3 of the paper), as built here:

1. *Temporal convolution* (Sec. 3.2): each modality ``X_m`` (B, T_m, d_m) is projected to a common
   width ``d`` by a 1-D convolution over time (``kernel_sizes``, one per modality or one for all).
   Padded steps are zeroed before the convolution, so whatever the collate (or anyone) put there
   never reaches a valid step.
2. *Positional embedding*: sinusoidal positions added to ``sqrt(d) * X_m`` (as the paper).
3. *Crossmodal transformer* ``CM_{src -> tgt}`` (Sec. 3.2, Fig. 3) for every ordered pair of
   distinct modalities: ``D`` blocks, each ``Z += MHA(LN(Z), LN(X_src), LN(X_src))`` then
   ``Z += FFN(LN(Z))`` (pre-LN, as the paper's Eq. 4; FFN width ``4d``). The key padding mask is
   the source modality's batch mask, so padded source steps are never attended (multi-head
   scaled dot-product attention with a boolean key mask, :class:`MaskedAttention`).
4. Per target modality the ``M-1`` crossmodal outputs are concatenated on the feature axis
   (width ``(M-1)·d``) and passed through a self-attention transformer (the paper's
   ``Z_{tgt}`` step), keys masked by the target mask.
5. Each target's sequence is reduced to one vector: ``pool="last"`` takes the **last valid step**
   (the paper takes the last element of the sequence; with right padding that is step
   ``length-1``), ``pool="mean"`` the masked mean over valid steps. Concatenate over targets,
   residual MLP (``h = z + W2·drop(ReLU(W1·z))``), linear output.

What differs from the paper / the authors' setup:

* Any number of modalities ``M >= 1`` (the paper has exactly text/audio/vision). With ``M == 1``
  there is no crossmodal pair, and the single modality goes straight to the self-attention
  transformer (documented fallback).
* Vector modalities are length-1 sequences; a vector modality whose presence mask is False is
  treated as a source with no valid key: its crossmodal attention contributes zero (the residual
  stream passes unchanged), never NaN.
* Defaults are sized for the CPU recipe: ``d=30`` with 5 heads (the paper's width), but 2 crossmodal
  layers and 1 self-attention layer (the paper uses 4-5 / 3), kernel size 3 everywhere (the paper
  uses 1 or 3 per modality and dataset), and at most 8 epochs with patience 3 (``RECIPE``). MulT
  is the most expensive baseline here (every ordered pair of modalities has its own transformer:
  ``M(M-1)`` of them).
* Output for regression is a scalar ``(B,)``; for distributions the logits (the base class applies
  softmax + KL). Optimiser: the base AdamW (the paper uses Adam + plateau scheduler).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, UserInputError

from .base import MERModel, ModelOutput
from .registry import register_model


def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> Tensor:
    """Fixed sine/cosine position table ``(length, dim)`` (Vaswani et al., 2017)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    half = (dim + 1) // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) * 2 / dim)
    table = torch.zeros(length, 2 * half, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table[:, :dim].to(dtype)


def seq_view(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """A modality as a sequence: ``(B, T, D)`` and bool mask ``(B, T)``; a vector is a length-1 sequence."""
    if x.dim() == 2:
        x = x.unsqueeze(1)
        mask = torch.ones(x.shape[0], 1, dtype=torch.bool, device=x.device) if mask is None else mask.reshape(-1, 1)
    elif mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return x, mask.bool()


class MaskedAttention(nn.Module):
    """Multi-head scaled dot-product attention ``softmax(QK^T/sqrt(d_h))V`` whose padded keys
    (``kv_mask`` False) get zero weight; a query row with no valid key at all outputs 0 (never NaN)."""

    def __init__(self, d: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)

    def forward(self, q: Tensor, kv: Tensor, kv_mask: Tensor) -> Tensor:
        b, t, d = q.shape
        h = self.heads
        has_key = kv_mask.any(dim=1)
        allowed = (kv_mask | ~has_key[:, None])[:, None, None, :]  # (B, 1, 1, S); True = may attend
        qh = self.q(q).view(b, t, h, d // h).transpose(1, 2)
        k, v = self.kv(kv).view(b, kv.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(qh, k, v, attn_mask=allowed,
                                           dropout_p=self.dropout if self.training else 0.0)
        o = self.out(o.transpose(1, 2).reshape(b, t, d))
        return o * has_key[:, None, None].to(o.dtype)


class CrossmodalBlock(nn.Module):
    """One pre-LN block: ``Z += MHA(LN(Z), LN(X), LN(X))``; ``Z += FFN(LN(Z))``.

    With ``cross=False`` keys/values come from ``Z`` itself (a self-attention block)."""

    def __init__(self, d: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float):
        super().__init__()
        self.ln_q = nn.LayerNorm(d)
        self.ln_kv = nn.LayerNorm(d)
        self.attn = MaskedAttention(d, heads, attn_dropout)
        self.ln_ff = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Dropout(relu_dropout), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(res_dropout)

    def forward(self, z: Tensor, src: Tensor | None, src_mask: Tensor) -> Tensor:
        q = self.ln_q(z)
        kv = q if src is None else self.ln_kv(src)
        z = z + self.drop(self.attn(q, kv, src_mask))
        return z + self.drop(self.ff(self.ln_ff(z)))


class CrossmodalTransformer(nn.Module):
    """``CM_{src -> tgt}``: a stack of crossmodal blocks (or self-attention blocks when ``cross=False``)."""

    def __init__(self, d: int, heads: int, layers: int, cross: bool, attn_dropout: float = 0.1,
                 relu_dropout: float = 0.1, res_dropout: float = 0.1):
        super().__init__()
        self.cross = cross
        self.blocks = nn.ModuleList(CrossmodalBlock(d, heads, attn_dropout, relu_dropout, res_dropout)
                                    for _ in range(layers))
        self.ln_out = nn.LayerNorm(d)

    def forward(self, tgt: Tensor, src: Tensor | None, src_mask: Tensor) -> Tensor:
        z = tgt
        for block in self.blocks:
            z = block(z, src if self.cross else None, src_mask)
        return self.ln_out(z)


def pool_sequence(z: Tensor, mask: Tensor, how: str) -> Tensor:
    """``(B, T, D)`` → ``(B, D)`` over valid steps only: last valid step or masked mean."""
    w = mask.to(z.dtype)
    if how == "mean":
        return (z * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp(min=1.0)
    # last valid step: the highest index whose mask is True (0 when none is valid)
    idx = (w * torch.arange(1, z.shape[1] + 1, device=z.device, dtype=z.dtype)).argmax(dim=1)
    return z[torch.arange(z.shape[0], device=z.device), idx]


@register_model("mult")
class MulT(MERModel):
    PAPER = "Tsai et al., Multimodal Transformer for Unaligned Multimodal Language Sequences, ACL 2019"
    # Paper: Adam, lr 1e-3 (2e-3 on some sets), batch 24-32, 40-100 epochs with a plateau scheduler.
    # Here: batch 64, at most 8 epochs, early stopping after 3 (CPU sweep budget; on `synthetic` the
    # validation optimum was epoch 3 of 6).
    RECIPE = {"max_epochs": 8, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "patience": 3}

    def __init__(self, spec: DatasetSpec, d: int = 30, heads: int = 5, cross_layers: int = 2,
                 self_layers: int = 1, kernel_sizes: int | str | list[int] = 3, pool: str = "last",
                 embed_dropout: float = 0.1, attn_dropout: float = 0.1, relu_dropout: float = 0.1,
                 res_dropout: float = 0.1, out_dropout: float = 0.1, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        mods = self.used_modalities
        m = len(mods)
        if d < 1 or heads < 1 or d % heads:
            raise UserInputError(f"mult: d={d} must be a positive multiple of heads={heads}")
        if cross_layers < 1 or self_layers < 0:
            raise UserInputError(f"mult: cross_layers must be >= 1 and self_layers >= 0, got "
                                 f"{cross_layers}, {self_layers}")
        if pool not in ("last", "mean"):
            raise UserInputError(f"mult: pool must be 'last' or 'mean', got {pool!r}")
        ks = self._kernel_sizes(kernel_sizes, m)
        self.d, self.pool, self.names = d, pool, [x.name for x in mods]
        self.proj = nn.ModuleDict({x.name: nn.Conv1d(x.dim, d, k, padding=k // 2, bias=False)
                                   for x, k in zip(mods, ks)})
        self.embed_drop = nn.Dropout(embed_dropout)
        drops = dict(attn_dropout=attn_dropout, relu_dropout=relu_dropout, res_dropout=res_dropout)
        # CM_{src -> tgt} for every ordered pair, keyed "src->tgt"
        self.cross = nn.ModuleDict({f"{s}->{t}": CrossmodalTransformer(d, heads, cross_layers, True, **drops)
                                    for t in self.names for s in self.names if s != t})
        width = d * max(m - 1, 1)
        self.mem = nn.ModuleDict({t: CrossmodalTransformer(width, heads, self_layers, False, **drops)
                                  for t in self.names}) if self_layers > 0 else None
        total = width * m
        self.res1, self.res2 = nn.Linear(total, total), nn.Linear(total, total)
        self.out_drop = nn.Dropout(out_dropout)
        self.out = nn.Linear(total, spec.target_dim)

    @staticmethod
    def _kernel_sizes(kernel_sizes, m: int) -> list[int]:
        if isinstance(kernel_sizes, str):
            try:
                kernel_sizes = [int(k) for k in kernel_sizes.split(",") if k.strip()]
            except ValueError:
                raise UserInputError(f"mult: kernel_sizes={kernel_sizes!r}: expected odd integers, "
                                     "e.g. 3 or '1,3,3'") from None
        ks = [int(kernel_sizes)] * m if isinstance(kernel_sizes, int) else [int(k) for k in kernel_sizes]
        if len(ks) == 1:
            ks = ks * m
        if len(ks) != m or any(k < 1 or k % 2 == 0 for k in ks):
            raise UserInputError(f"mult: kernel_sizes={kernel_sizes!r}: expected one odd integer or one per "
                                 f"used modality ({m})")
        return ks

    def embed(self, name: str, x: Tensor, mask: Tensor) -> Tensor:
        """Temporal conv projection to ``d`` + scaled sinusoidal positions; padded inputs zeroed first."""
        x = x * mask.unsqueeze(-1).to(x.dtype)
        h = self.proj[name](x.transpose(1, 2)).transpose(1, 2)
        h = math.sqrt(self.d) * h + sinusoidal_positions(h.shape[1], self.d, h.device, h.dtype)
        return self.embed_drop(h)

    def forward(self, batch: Batch) -> ModelOutput:
        seqs, masks = {}, {}
        for name in self.names:
            x, mask = seq_view(batch.x[name], batch.mask.get(name))
            seqs[name], masks[name] = self.embed(name, x, mask), mask
        reps = []
        for t in self.names:
            parts = [self.cross[f"{s}->{t}"](seqs[t], seqs[s], masks[s]) for s in self.names if s != t]
            h = torch.cat(parts, dim=-1) if parts else seqs[t]
            if self.mem is not None:
                h = self.mem[t](h, None, masks[t])
            reps.append(pool_sequence(h, masks[t], self.pool))
        z = torch.cat(reps, dim=-1)
        h = z + self.res2(self.out_drop(torch.relu(self.res1(z))))
        return ModelOutput(pred=self.task_pred(self.out(h)), embeddings=z)
