"""Emotion-distribution-learning (EDL) metrics (DMER, WESAD distribution views).

For a target distribution y and a predicted distribution p over C classes (Geng,
"Label Distribution Learning", TKDE 2016; Shu et al., TAFFC 2022), computed per
sample and averaged over all samples seen:

* ``chebyshev``    max_j |y_j - p_j|                                  (lower is better)
* ``clark``        sqrt(sum_j (y_j - p_j)^2 / (y_j + p_j)^2)           (lower)
* ``canberra``     sum_j |y_j - p_j| / (y_j + p_j)                     (lower)
* ``kl``           sum_j y_j ln(y_j / p_j) = KL(y || p)                 (lower)
* ``cosine``       sum_j y_j p_j / (||y|| ||p||)                       (higher)
* ``intersection`` sum_j min(y_j, p_j)                                 (higher)
* ``top1``         mean[argmax p == argmax y], first maximum on ties   (higher)

Epsilon handling: predictions are clipped to [eps, 1] (default eps = 1e-12) before
every metric and are *not* renormalised; targets are never clipped.  Hence the
Clark/Canberra denominators y_j + p_j are > 0, ln p_j is finite, and a term with
y_j = 0 contributes 0 to KL (0 ln 0 = 0).  Intersection is the sum of minima (not
PyLDL's 1 - L1/2, which matches it only when both vectors sum to 1).

Inputs are checked: targets must be finite, >= 0 and have rows summing to 1 within
``sum_tol``; predictions must be finite probabilities in [0, 1] (pass softmax outputs,
not logits).  A failed check raises ValueError naming the check and the row count.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from ._common import nan_scalar, scalar, warn

DISTRIBUTION_KEYS = ("chebyshev", "clark", "canberra", "kl", "cosine", "intersection", "top1")


def per_sample_distribution_metrics(
    preds: torch.Tensor, target: torch.Tensor, eps: float = 1e-12
) -> dict[str, torch.Tensor]:
    """Per-sample EDL metrics (each a (B,) float64 tensor) for already-validated inputs."""
    y = target.to(torch.float64)
    p = preds.to(torch.float64).clamp(eps, 1.0)
    diff = y - p
    denom = y + p  # > 0 because p >= eps and y >= 0
    kl_terms = torch.xlogy(y, y) - y * torch.log(p)  # xlogy(0, 0) = 0
    return {
        "chebyshev": diff.abs().amax(dim=1),
        "clark": torch.sqrt((diff * diff / (denom * denom)).sum(dim=1)),
        "canberra": (diff.abs() / denom).sum(dim=1),
        "kl": kl_terms.sum(dim=1),
        "cosine": (y * p).sum(dim=1) / (torch.linalg.vector_norm(y, dim=1) * torch.linalg.vector_norm(p, dim=1)),
        "intersection": torch.minimum(y, p).sum(dim=1),
        "top1": (torch.argmax(p, dim=1) == torch.argmax(y, dim=1)).to(torch.float64),
    }


class DistributionMetrics(Metric):
    """EDL suite: six distances/similarities plus top-1 agreement; see the module docstring.

    ``update(preds, target)``: ``preds`` (B, C) predicted probabilities, ``target`` (B, C)
    distributions.  ``compute()``: dict with keys ``chebyshev, clark, canberra, kl,
    cosine, intersection, top1`` (float64 scalar tensors, means over samples).
    ``num_classes``, if given, is checked against C.
    """

    is_differentiable = False
    higher_is_better = None  # mixed
    full_state_update = False

    def __init__(self, eps: float = 1e-12, sum_tol: float = 1e-3, num_classes: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if not (0.0 < eps < 1.0):
            raise ValueError(f"eps must be in (0, 1); got {eps}")
        if not sum_tol >= 0.0:
            raise ValueError(f"sum_tol must be >= 0; got {sum_tol}")
        self.eps = float(eps)
        self.sum_tol = float(sum_tol)
        self.num_classes = num_classes
        for key in DISTRIBUTION_KEYS:
            self.add_state(f"sum_{key}", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _validate(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(preds, torch.Tensor):
            preds = torch.as_tensor(preds)
        if not isinstance(target, torch.Tensor):
            target = torch.as_tensor(target)
        if preds.ndim != 2 or target.ndim != 2:
            raise ValueError(
                f"preds and target must be 2-D (B, C); got {tuple(preds.shape)} and {tuple(target.shape)}"
            )
        if preds.shape != target.shape:
            raise ValueError(f"preds and target shapes differ: {tuple(preds.shape)} vs {tuple(target.shape)}")
        if self.num_classes is not None and preds.shape[1] != self.num_classes:
            raise ValueError(f"got {preds.shape[1]} classes but num_classes={self.num_classes}")
        y = target.detach().to(torch.float64)
        p = preds.detach().to(torch.float64)

        bad = int((~torch.isfinite(y)).any(dim=1).sum())
        if bad:
            raise ValueError(f"target check 'finite' failed: {bad} row(s) contain NaN or inf")
        bad = int((y < 0).any(dim=1).sum())
        if bad:
            raise ValueError(f"target check 'non-negative' failed: {bad} row(s) contain negative entries")
        bad = int(((y.sum(dim=1) - 1.0).abs() > self.sum_tol).sum())
        if bad:
            raise ValueError(
                f"target check 'rows sum to 1' failed: {bad} row(s) sum to a value outside 1 +/- {self.sum_tol}"
            )
        bad = int((~torch.isfinite(p)).any(dim=1).sum())
        if bad:
            raise ValueError(f"preds check 'finite' failed: {bad} row(s) contain NaN or inf")
        bad = int(((p < 0) | (p > 1)).any(dim=1).sum())
        if bad:
            raise ValueError(
                f"preds check 'probabilities in [0, 1]' failed: {bad} row(s) have entries outside [0, 1] "
                "(apply softmax before passing predictions)"
            )
        return p, y

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        p, y = self._validate(preds, target)
        values = per_sample_distribution_metrics(p, y, self.eps)
        for key in DISTRIBUTION_KEYS:
            state = getattr(self, f"sum_{key}")
            setattr(self, f"sum_{key}", state + values[key].sum().to(state.device))
        self.count += p.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        n = int(self.count)
        if n == 0:
            warn("DistributionMetrics.compute() called with no samples; returning NaN for every metric")
            return {k: nan_scalar() for k in DISTRIBUTION_KEYS}
        return {k: scalar(getattr(self, f"sum_{k}") / n) for k in DISTRIBUTION_KEYS}
