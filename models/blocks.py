"""Small building blocks shared by several models."""
from __future__ import annotations

from torch import Tensor, nn


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over the valid steps of ``x`` ``(B, T, D)``; a vector ``(B, D)`` is returned as is.

    A sample with no valid step gives zeros (never NaN)."""
    if x.dim() == 2:
        return x
    if mask is None:
        return x.mean(dim=1)
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)


class MLP(nn.Sequential):
    """Linear → GELU → Dropout blocks, then a final linear layer."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int = 2, dropout: float = 0.1):
        mods: list[nn.Module] = []
        d = in_dim
        for _ in range(layers - 1):
            mods += [nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout)]
            d = hidden
        mods.append(nn.Linear(d, out_dim))
        super().__init__(*mods)
