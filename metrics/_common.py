"""Small helpers shared by the metric suites (not part of the public API)."""

from __future__ import annotations

import warnings

import torch

NAN = float("nan")


def nan_scalar() -> torch.Tensor:
    return torch.tensor(NAN, dtype=torch.float64)


def scalar(value: float | torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64).reshape(())
    return torch.tensor(float(value), dtype=torch.float64)


def warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def per_class_f1(confmat: torch.Tensor) -> torch.Tensor:
    """Per-class F1 from a confusion matrix (rows = truth, columns = prediction).

    F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c); a zero denominator gives 0
    (scikit-learn's ``zero_division=0``).
    """
    cm = confmat.to(torch.float64)
    tp = torch.diagonal(cm)
    denom = cm.sum(dim=1) + cm.sum(dim=0)  # = 2TP + FN + FP
    return torch.where(denom > 0, 2.0 * tp / denom.clamp_min(1.0), torch.zeros_like(tp))
