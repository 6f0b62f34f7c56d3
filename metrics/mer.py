"""MER2023 metric suite: the six-class metrics plus valence regression and the challenge score.

Definitions (zeroQiaoba/MERTools ``MER2023/main-release.py``: ``overall_metric``,
``report_results_on_test1_test2``):

* ``wa``, ``ua``, ``wf1``, ``mf1``: as :class:`~metrics.classification.ClassificationMetrics`.
* ``val_mse``: mean squared error of the predicted valence over the samples whose valence is
  labelled (a NaN target means "not labelled": MER2023 writes -10, the datamodule turns it into
  NaN). NaN when no sample of the evaluated set is labelled (MER-SEMI / test3).
* ``mer_score`` = ``wf1 - 0.25 * val_mse`` (wf1 as a fraction). NaN where ``val_mse`` is NaN:
  the challenge scores test3 by ``wf1`` alone.

``update(preds, target, valence)``: ``preds`` is ``(B, C + 1)`` (class logits, then the valence
prediction, the layout of a spec with ``aux_scores=("valence",)``), ``target`` the class indices
``(B,)`` and ``valence`` the valence targets ``(B,)`` with NaN where unlabelled.
"""
from __future__ import annotations

import torch

from ._common import nan_scalar, scalar
from .classification import CLASSIFICATION_KEYS, ClassificationMetrics

MER_KEYS = (*CLASSIFICATION_KEYS, "val_mse", "mer_score")
VALENCE_WEIGHT = 0.25  # weight of val_mse in mer_score (MERTools)


class MERChallengeMetrics(ClassificationMetrics):
    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        self.add_state("sq_err", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_val", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, valence: torch.Tensor) -> None:
        c = self.num_classes
        if preds.ndim != 2 or preds.shape[1] != c + 1:
            raise ValueError(f"preds must have shape (B, {c + 1}) (class logits, then valence); "
                             f"got {tuple(preds.shape)}")
        valence = torch.as_tensor(valence).reshape(-1)
        if valence.shape[0] != preds.shape[0]:
            raise ValueError(f"valence has {valence.shape[0]} rows, preds {preds.shape[0]}")
        super().update(preds[:, :c], target)
        labelled = ~torch.isnan(valence)
        err = (preds[:, c].detach().double() - valence.double())[labelled]
        self.sq_err += (err * err).sum().to(self.sq_err.device)
        self.n_val += int(labelled.sum())

    def compute(self) -> dict[str, torch.Tensor]:
        out = super().compute()
        if int(self.n_val) == 0:
            out["val_mse"] = nan_scalar()
            out["mer_score"] = nan_scalar()
        else:
            mse = scalar(self.sq_err / self.n_val)
            out["val_mse"] = mse
            out["mer_score"] = scalar(out["wf1"] - VALENCE_WEIGHT * mse)
        return out
