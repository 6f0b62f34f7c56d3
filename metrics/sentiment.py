"""Sentiment-regression metrics for CMU-MOSI / CMU-MOSEI (scores in [-3, 3]).

Definitions follow thuiar/MMSA ``src/MMSA/utils/metricsTop.py`` (regression mode),
with p = predictions and y = targets, both flattened:

* ``mae``       mean |p - y| on the unclipped values.
* ``corr``      Pearson correlation of p and y.  NaN (plus a warning) when p or y is
                constant or there are fewer than two samples.
* ``acc7``      mean[round(clip(p, -3, 3)) == round(clip(y, -3, 3))]; ``acc5`` the same
                with clip to [-2, 2].  Rounding is half-to-even (``torch.round``, like NumPy).
* ``acc2_has0`` / ``f1_has0``  all samples; class "positive" is y >= 0 (resp. p >= 0),
                so a zero counts as positive.  Accuracy / weighted F1.
* ``acc2_non0`` / ``f1_non0``  samples with y == 0 dropped; truth y > 0 vs y < 0,
                prediction p > 0 vs p <= 0.  Accuracy / weighted F1.  NaN (plus a
                warning) when every target is 0.

Weighted F1 = sum_c (n_c / N) F1_c with n_c the *true* support of class c (the
argument order of ``sklearn.metrics.f1_score(y_true, y_pred, average="weighted")``);
a per-class F1 with a zero denominator counts as 0.  Values are returned unrounded
as fractions (MMSA rounds to 4 decimals; papers print x100).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ._common import nan_scalar, per_class_f1, scalar, warn

SENTIMENT_KEYS = ("mae", "corr", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0")


def _flatten(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.ndim == 0:
        x = x.reshape(1)
    elif x.ndim != 1:
        raise ValueError(f"{name} must have shape (B,) or (B, 1); got {tuple(x.shape)}")
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must be a real numeric tensor; got dtype {x.dtype}")
    x = x.detach().to(torch.float64)
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")
    return x


def _binary_acc_wf1(truth: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy and true-support-weighted F1 of two boolean vectors (True = positive)."""
    n = truth.numel()
    t = truth.long()
    p = pred.long()
    confmat = torch.zeros(2, 2, dtype=torch.float64)
    confmat.index_put_((t, p), torch.ones(n, dtype=torch.float64), accumulate=True)
    acc = torch.diagonal(confmat).sum() / n
    support = confmat.sum(dim=1)
    wf1 = (per_class_f1(confmat) * support).sum() / n
    return scalar(acc), scalar(wf1)


def _pearson(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if p.numel() < 2:
        warn("corr is undefined for fewer than 2 samples; returning NaN")
        return nan_scalar()
    # Exact constancy test: a mean-centred constant vector can carry rounding residue.
    if bool((p == p[0]).all()) or bool((y == y[0]).all()):
        warn("corr is undefined because predictions or targets are constant; returning NaN")
        return nan_scalar()
    dp = p - p.mean()
    dy = y - y.mean()
    r = (dp * dy).sum() / torch.sqrt((dp * dp).sum() * (dy * dy).sum())
    return scalar(r.clamp(-1.0, 1.0))


class SentimentMetrics(Metric):
    """MOSI/MOSEI regression suite (MMSA definitions); see the module docstring.

    ``update(preds, target)``: float tensors of shape (B,) or (B, 1).
    ``compute()``: dict with keys ``mae, corr, acc7, acc5, acc2_has0, f1_has0,
    acc2_non0, f1_non0`` (float64 scalar tensors).
    """

    is_differentiable = False
    higher_is_better = None  # mixed: mae is lower-is-better, the rest higher
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        p = _flatten(preds, "preds")
        y = _flatten(target, "target")
        if p.shape != y.shape:
            raise ValueError(f"preds and target sizes differ: {p.numel()} vs {y.numel()}")
        self.preds.append(p)
        self.target.append(y)

    def compute(self) -> dict[str, torch.Tensor]:
        empty = isinstance(self.preds, list) and len(self.preds) == 0
        p = torch.zeros(0, dtype=torch.float64) if empty else dim_zero_cat(self.preds).to(torch.float64)
        y = torch.zeros(0, dtype=torch.float64) if empty else dim_zero_cat(self.target).to(torch.float64)
        if p.numel() == 0:
            warn("SentimentMetrics.compute() called with no samples; returning NaN for every metric")
            return {k: nan_scalar() for k in SENTIMENT_KEYS}

        out: dict[str, torch.Tensor] = {}
        out["mae"] = scalar((p - y).abs().mean())
        out["corr"] = _pearson(p, y)
        out["acc7"] = scalar((torch.round(p.clamp(-3.0, 3.0)) == torch.round(y.clamp(-3.0, 3.0))).double().mean())
        out["acc5"] = scalar((torch.round(p.clamp(-2.0, 2.0)) == torch.round(y.clamp(-2.0, 2.0))).double().mean())

        out["acc2_has0"], out["f1_has0"] = _binary_acc_wf1(y >= 0, p >= 0)

        keep = y != 0
        if bool(keep.any()):
            out["acc2_non0"], out["f1_non0"] = _binary_acc_wf1(y[keep] > 0, p[keep] > 0)
        else:
            warn("every target is 0, so acc2_non0 and f1_non0 are undefined; returning NaN")
            out["acc2_non0"], out["f1_non0"] = nan_scalar(), nan_scalar()
        return {k: out[k] for k in SENTIMENT_KEYS}
