"""Single-label classification metrics (IEMOCAP, MER2023, DMER/WESAD class views).

All values come from one accumulated C x C confusion matrix (rows = truth,
columns = prediction).  Per-class F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c), 0 when the
denominator is 0 (scikit-learn ``zero_division=0``).

* ``wa``  weighted accuracy = overall accuracy.
* ``ua``  unweighted accuracy (UAR) = mean recall over the classes present in the
          targets = ``sklearn.metrics.balanced_accuracy_score``.
* ``wf1`` F1 weighted by true support = ``f1_score(average="weighted")``.
* ``mf1`` mean F1 over the classes present in targets or predictions =
          ``f1_score(average="macro")`` with its default labels.

Naming follows the SER convention (Foal-Net, EmoBox); some repositories swap WA/UA.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from ._common import nan_scalar, per_class_f1, scalar, warn

CLASSIFICATION_KEYS = ("wa", "ua", "wf1", "mf1")


class ClassificationMetrics(Metric):
    """Confusion-matrix based suite; see the module docstring.

    ``update(preds, target)``: ``preds`` is (B, C) scores/logits/probabilities (argmax is
    taken; ties go to the lowest index) or (B,) integer class indices; ``target`` is (B,)
    integer class indices in [0, C).
    ``compute()``: dict with keys ``wa, ua, wf1, mf1`` (float64 scalar tensors).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
        self.num_classes = num_classes
        self.add_state(
            "confmat",
            default=torch.zeros(num_classes, num_classes, dtype=torch.long),
            dist_reduce_fx="sum",
        )

    def _to_indices(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.num_classes
        if not isinstance(preds, torch.Tensor):
            preds = torch.as_tensor(preds)
        if not isinstance(target, torch.Tensor):
            target = torch.as_tensor(target)
        if target.ndim == 2 and target.shape[1] == 1:
            target = target[:, 0]
        if target.ndim != 1:
            raise ValueError(f"target must have shape (B,); got {tuple(target.shape)}")
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise ValueError(f"target must hold integer class indices; got dtype {target.dtype}")

        if preds.ndim == 2:
            if preds.shape[1] != c:
                raise ValueError(f"preds has {preds.shape[1]} columns but num_classes={c}")
            if preds.is_floating_point() and bool(torch.isnan(preds).any()):
                raise ValueError(f"preds contains {int(torch.isnan(preds).any(dim=1).sum())} row(s) with NaN")
            pred_idx = torch.argmax(preds, dim=1)  # first maximum on ties
        elif preds.ndim == 1:
            if preds.is_floating_point() or preds.is_complex() or preds.dtype == torch.bool:
                raise ValueError(
                    "1-D preds must hold integer class indices; pass (B, C) scores for argmax "
                    f"(got dtype {preds.dtype})"
                )
            pred_idx = preds
        else:
            raise ValueError(f"preds must have shape (B, C) or (B,); got {tuple(preds.shape)}")

        if pred_idx.shape[0] != target.shape[0]:
            raise ValueError(f"preds and target batch sizes differ: {pred_idx.shape[0]} vs {target.shape[0]}")
        for name, idx in (("preds", pred_idx), ("target", target)):
            bad = int(((idx < 0) | (idx >= c)).sum())
            if bad:
                raise ValueError(f"{name} has {bad} class index(es) outside [0, {c})")
        return pred_idx.long(), target.long()

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        pred_idx, tgt = self._to_indices(preds, target)
        c = self.num_classes
        flat = (tgt * c + pred_idx).to(self.confmat.device)
        self.confmat += torch.bincount(flat, minlength=c * c).reshape(c, c)

    def compute(self) -> dict[str, torch.Tensor]:
        cm = self.confmat.to(torch.float64)
        n = cm.sum()
        if n == 0:
            warn("ClassificationMetrics.compute() called with no samples; returning NaN for every metric")
            return {k: nan_scalar() for k in CLASSIFICATION_KEYS}
        tp = torch.diagonal(cm)
        support = cm.sum(dim=1)
        predicted = cm.sum(dim=0)
        f1 = per_class_f1(cm)
        present = support > 0
        seen = present | (predicted > 0)
        return {
            "wa": scalar(tp.sum() / n),
            "ua": scalar((tp[present] / support[present]).mean()),
            "wf1": scalar((f1 * support).sum() / n),
            "mf1": scalar(f1[seen].mean()),
        }
