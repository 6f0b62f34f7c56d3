"""Poincaré-ball helpers for TiCAL (``models/ticalnet.py``), on top of geoopt.

geoopt (Kochurov et al., arXiv 2005.02819) supplies the manifold (``geoopt.PoincareBall``: exp/log maps
at the origin with projection inside radius ``(1 - eps)/sqrt(c)``, Einstein/gyro midpoints) and
the Riemannian optimiser. What is added here:

* :func:`clip_features` — feature clipping ``u <- min(1, r/||u||) u`` before the exponential map
  (clipped hyperbolic classifiers, Guo et al., CVPR 2022), so that huge Euclidean norms never reach
  the ball's boundary, where distances and their gradients blow up.
* :func:`pairwise_dist` — all distances between two point sets, computed in float64 with the closed
  form ``d(x, y) = arcosh(1 + 2c ||x - y||^2 / ((1 - c||x||^2)(1 - c||y||^2))) / sqrt(c)``, evaluated as
  ``2 asinh(t) / sqrt(c)`` (equal to
  geoopt's Möbius form ``2/sqrt(c) artanh(sqrt(c) ||(-x) (+)_c y||)``). Written with explicit
  differences it is exactly symmetric and exactly zero on the diagonal, and it is chunked so that a
  full pass over a training split does not materialise an ``N x K x d`` float64 block at once.
  ``hyperbolic=False`` gives Euclidean distances (the ablation of the hyperbolic space).
* :func:`midpoint` — the hyperbolic (Einstein/gyro) midpoint of a point set via geoopt's
  ``weighted_midpoint``, or the arithmetic mean in the Euclidean ablation.
"""
from __future__ import annotations

import geoopt
import torch
from torch import Tensor

_MIN_MARGIN = 1e-15  # lower bound of (1 - c||x||^2) in float64


def clip_features(u: Tensor, r: float | None) -> Tensor:
    """Scale rows of ``u`` with norm above ``r`` back to norm ``r`` (``r`` None or <= 0: no clipping)."""
    if r is None or r <= 0:
        return u
    norm = u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return u * (r / norm).clamp(max=1.0)


def curvature(ball: geoopt.PoincareBall) -> Tensor:
    return ball.c if torch.is_tensor(ball.c) else torch.tensor(float(ball.c))


def _safe_sqrt(sq: Tensor) -> Tensor:
    """sqrt with value 0 and gradient 0 at exactly 0 (coincident points)."""
    pos = sq > 0
    return torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def _dist_block(x: Tensor, y: Tensor, c: Tensor, hyperbolic: bool) -> Tensor:
    diff = x[:, None, :] - y[None, :, :]
    sq = (diff * diff).sum(-1)
    if not hyperbolic:
        return _safe_sqrt(sq)
    nx = (1.0 - c * (x * x).sum(-1)).clamp_min(_MIN_MARGIN)
    ny = (1.0 - c * (y * y).sum(-1)).clamp_min(_MIN_MARGIN)
    # arcosh(1 + 2 t^2) = 2 asinh(t), t^2 = c ||x - y||^2 / ((1 - c||x||^2)(1 - c||y||^2)): exact zero on
    # the diagonal and a finite gradient there (arcosh'(1) is infinite)
    t = _safe_sqrt(c * sq / (nx[:, None] * ny[None, :]))
    return 2.0 * torch.asinh(t) / c.sqrt()


def pairwise_dist(x: Tensor, y: Tensor, c: Tensor | float = 1.0, hyperbolic: bool = True,
                  chunk: int = 512) -> Tensor:
    """Distances ``(N, K)`` between rows of ``x`` ``(N, d)`` and ``y`` ``(K, d)``, computed in float64
    and returned in ``x``'s dtype. Points are assumed inside the ball (geoopt's ``expmap0`` projects them)."""
    out_dtype = x.dtype
    x64, y64 = x.double(), y.double()
    c64 = (c if torch.is_tensor(c) else torch.tensor(float(c))).to(device=x.device, dtype=torch.float64)
    if x64.shape[0] <= chunk:
        d = _dist_block(x64, y64, c64, hyperbolic)
    else:
        d = torch.cat([_dist_block(x64[i:i + chunk], y64, c64, hyperbolic)
                       for i in range(0, x64.shape[0], chunk)])
    return d.to(out_dtype)


def midpoint(ball: geoopt.PoincareBall, xs: Tensor, hyperbolic: bool = True) -> Tensor:
    """Midpoint ``(d,)`` of the points ``xs`` ``(n, d)``: geoopt's gyro/Einstein midpoint on the ball
    (computed in float64), or the arithmetic mean when ``hyperbolic`` is False."""
    if not hyperbolic:
        return xs.mean(dim=0)
    m = ball.weighted_midpoint(xs.double(), reducedim=[0], dim=-1)
    return m.to(xs.dtype)
