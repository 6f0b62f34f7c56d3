"""Batched Gromov–Wasserstein transport plans computed with IPOT (used by HeLo's heterogeneity mining).

Everything here works on a whole batch at once: shapes are ``(B, n, d)`` token sets and ``(B, n, m)``
plans, with no Python loop over samples. The routines follow the recipe described for HeLo
(Zheng et al., ACM MM 2025): intra-modal cosine cost graphs with a relative threshold, uniform
marginals, a square-loss GW outer loop (Peyré, Cuturi & Solomon, ICML 2016) whose linearised cost is
solved by IPOT (Xie et al., arXiv 1802.04307) with one Sinkhorn step per proximal step. Rectangular
plans (n ≠ m) are supported.

One numerical detail differs from a literal transcription: before exponentiating, the per-sample
minimum of the linearised cost is subtracted. Sinkhorn/IPOT scaling is invariant to multiplying the
kernel by a per-sample constant (the row scaling δ absorbs it), so the plan is mathematically the
same; it only keeps ``exp(-C/β)`` away from overflow/underflow. Kernel and plan entries below 1e-30
(rows carry mass 1/n) are flushed to zero so that repeated multiplication never produces subnormal
floats, which made the solver more than 100× slower on CPU.
"""
from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-30
_TINY = 1e-30


def cosine_cost_graph(x: Tensor, threshold: float = 0.1, scope: str = "sample") -> Tensor:
    """Thresholded cosine cost graph of token set ``x`` ``(B, n, d)`` → ``(B, n, n)``.

    ``D = 1 − cos(x_i, x_j)``; ``τ = min D + threshold · (max D − min D)``; ``C = max(D − τ, 0)``.
    ``scope="sample"`` takes min/max per sample; ``scope="batch"`` over the whole batch tensor
    (the official-code behaviour, which makes a sample's graph depend on its batch mates)."""
    xn = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    d = 1.0 - xn @ xn.transpose(1, 2)
    if scope == "sample":
        lo = d.amin(dim=(1, 2), keepdim=True)
        hi = d.amax(dim=(1, 2), keepdim=True)
    elif scope == "batch":
        lo, hi = d.min(), d.max()
    else:
        raise ValueError(f"scope must be 'sample' or 'batch', got {scope!r}")
    tau = lo + threshold * (hi - lo)
    return (d - tau).clamp(min=0.0)


def ipot_uniform(cost: Tensor, beta: float = 0.1, iters: int = 20) -> Tensor:
    """IPOT with uniform marginals on a batch of costs ``(B, n, m)`` → plans ``(B, n, m)``.

    Each proximal step multiplies the previous plan by the Gibbs kernel ``exp(−C/β)`` and does one
    Sinkhorn scaling; rows then sum to 1/n and columns to 1/m (columns exactly, rows approximately)."""
    b, n, m = cost.shape
    c = cost - cost.amin(dim=(1, 2), keepdim=True)  # per-sample shift: the plan is unchanged
    kernel = torch.exp(-c / beta)
    kernel = kernel.masked_fill(kernel < _TINY, 0.0)
    plan = torch.ones_like(kernel)
    sigma = torch.full((b, m), 1.0 / m, dtype=cost.dtype, device=cost.device)
    for _ in range(iters):
        q = kernel * plan
        q = q.masked_fill(q < _TINY, 0.0)
        delta = 1.0 / (n * torch.bmm(q, sigma.unsqueeze(-1)).squeeze(-1)).clamp(min=_EPS)
        sigma = 1.0 / (m * torch.bmm(q.transpose(1, 2), delta.unsqueeze(-1)).squeeze(-1)).clamp(min=_EPS)
        plan = delta.unsqueeze(-1) * q * sigma.unsqueeze(-2)
    return plan


def gw_linearised_cost(cs: Tensor, ct: Tensor, plan: Tensor) -> Tensor:
    """Square-loss GW cost linearised at ``plan`` with uniform marginals:
    ``C_st − 2 C_s γ C_tᵀ`` with ``C_st = (C_s⊙C_s) p 1ᵀ + 1 qᵀ (C_t⊙C_t)ᵀ``."""
    n, m = cs.shape[-1], ct.shape[-1]
    const = (cs * cs).sum(-1, keepdim=True) / n + ((ct * ct).sum(-1) / m).unsqueeze(-2)
    return const - 2.0 * cs @ plan @ ct.transpose(1, 2)


def gw_ipot(cs: Tensor, ct: Tensor, beta: float = 0.1, outer: int = 5, inner: int = 20) -> Tensor:
    """GW plan between graphs ``cs`` ``(B, n, n)`` and ``ct`` ``(B, m, m)``: start from ``p qᵀ``,
    then ``outer`` times linearise the GW cost and solve it with ``inner`` IPOT steps."""
    b, n, m = cs.shape[0], cs.shape[-1], ct.shape[-1]
    plan = torch.full((b, n, m), 1.0 / (n * m), dtype=cs.dtype, device=cs.device)
    for _ in range(outer):
        plan = ipot_uniform(gw_linearised_cost(cs, ct, plan), beta, inner)
    return plan


def gw_objective(cs: Tensor, ct: Tensor, plan: Tensor) -> Tensor:
    """Square-loss GW value ``Σ_ijkl (C_s[i,k] − C_t[j,l])² T_ij T_kl`` per sample, for any plan
    (exact for plans with any marginals)."""
    p, q = plan.sum(-1), plan.sum(-2)
    term1 = ((cs * cs) @ p.unsqueeze(-1)).squeeze(-1) * p
    term2 = ((ct * ct) @ q.unsqueeze(-1)).squeeze(-1) * q
    cross = (cs @ plan @ ct.transpose(1, 2) * plan).sum((-1, -2))
    return term1.sum(-1) + term2.sum(-1) - 2.0 * cross


@torch.no_grad()
def heterogeneity_plan(zp: Tensor, zb: Tensor, beta: float = 0.1, outer: int = 5, inner: int = 20,
                       threshold: float = 0.1, scope: str = "sample") -> Tensor:
    """HeLo's OT heterogeneity-mining plan between physiological tokens ``zp`` ``(B, n, d)`` and
    behavioural tokens ``zb`` ``(B, m, d)``; computed without gradient, returned detached, in float32
    or wider."""
    dtype = torch.promote_types(zp.dtype, torch.float32)
    cs = cosine_cost_graph(zp.detach().to(dtype), threshold, scope)
    ct = cosine_cost_graph(zb.detach().to(dtype), threshold, scope)
    return gw_ipot(cs, ct, beta, outer, inner)
