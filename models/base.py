"""MERModel: the base every model derives from.

A subclass builds its layers in ``__init__(self, spec, <its hyper-parameters>, **kwargs)`` (passing
``**kwargs`` on to ``super().__init__``) and implements ``forward(batch) -> ModelOutput``. Everything
else lives here: the task loss, adding and logging the auxiliary losses, the metric suite, test
results split by conflicting/consistent samples, and the optimiser.

Prediction convention (``ModelOutput.pred``):
  classification → logits ``(B, C)``; distribution → logits ``(B, C)`` (the base applies softmax;
  the loss is KL(y ‖ softmax(pred)) with per-sample mean); regression → scores ``(B,)`` or ``(B, 1)``
  (L1 loss, as MMSA).

Auxiliary scores: a spec with ``aux_scores`` (MER2023: valence) widens the prediction to
``spec.target_dim`` columns, the class logits first and then one column per score. The base splits
them: the task loss sees the logits, each score gets a masked MSE loss (equal weight, only on
samples whose ``Batch.meta[name]`` is not NaN) logged as ``<stage>/aux_<name>_mse``, and the metric
suite receives the full prediction plus the score targets. Models need no code for this.

Auxiliary losses: ``ModelOutput.aux_losses`` maps a name to an already-weighted scalar; the total
loss is task loss + their sum, and each is logged as ``<stage>/aux_<name>``.

Training recipe: ``RECIPE`` holds the paper's defaults (max_epochs, batch_size, lr, weight_decay,
patience); the runner reads it and every entry can be overridden (``--set``, ``--lr``, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, ModalitySpec, UserInputError
from metrics import metric_suite

STRATA = ("conflict", "consistent")


@dataclass
class ModelOutput:
    pred: Tensor
    aux_losses: dict[str, Tensor] = field(default_factory=dict)
    embeddings: Tensor | dict[str, Tensor] | None = None


class MERModel(L.LightningModule):
    RECIPE: ClassVar[dict[str, Any]] = {
        "max_epochs": 50, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "patience": 8,
    }
    PAPER: ClassVar[str] = ""
    # How leaderboards name the model (default: its registry name), and whether it is a documented
    # reconstruction rather than a reproduction (stored as ``reconstruction`` in every record).
    LABEL: ClassVar[str] = ""
    RECONSTRUCTION: ClassVar[bool] = False

    def __init__(self, spec: DatasetSpec, lr: float | None = None, weight_decay: float | None = None,
                 modalities: str | list[str] | None = None) -> None:
        """``modalities``: restrict the model to these inputs (comma-separated names or a list;
        default: all of the spec's modalities) — the unimodal/ablation switch every model has."""
        super().__init__()
        self.spec = spec
        self.lr = float(self.RECIPE["lr"] if lr is None else lr)
        self.weight_decay = float(self.RECIPE["weight_decay"] if weight_decay is None else weight_decay)
        self.used_modalities: tuple[ModalitySpec, ...] = self._select_modalities(modalities)
        self.save_hyperparameters(ignore=["spec"])
        k, aux = spec.num_classes, spec.aux_scores
        self.val_metrics = metric_suite(spec.task, k, aux)
        self.test_metrics = metric_suite(spec.task, k, aux)
        self.test_strata = nn.ModuleDict({s: metric_suite(spec.task, k, aux) for s in STRATA})
        self.register_buffer("_strata_counts", torch.zeros(len(STRATA), dtype=torch.long), persistent=False)
        self.test_results: dict[str, Any] = {}

    def _select_modalities(self, modalities: str | list[str] | None) -> tuple[ModalitySpec, ...]:
        if modalities is None or modalities == "" or modalities == "all":
            return self.spec.modalities
        names = [m.strip() for m in modalities.split(",")] if isinstance(modalities, str) else list(modalities)
        unknown = [n for n in names if n not in self.spec.modality_names]
        if unknown or not names:
            raise UserInputError(f"modalities={modalities!r}: {self.spec.name} has modalities "
                                 f"{', '.join(self.spec.modality_names)}")
        return tuple(self.spec.modality(n) for n in names)

    # -- the part a subclass writes -------------------------------------------------------
    def forward(self, batch: Batch) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- losses -----------------------------------------------------------------------------
    def task_loss(self, pred: Tensor, y: Tensor) -> Tensor:
        task = self.spec.task
        if task == "classification":
            return F.cross_entropy(pred, y.long())
        if task == "regression":
            return F.l1_loss(pred.reshape(-1), y.reshape(-1).float())
        return F.kl_div(F.log_softmax(pred, dim=-1), y.float(), reduction="batchmean")

    def task_pred(self, pred: Tensor) -> Tensor:
        """A head's output as the prediction: regression without auxiliary scores ``(B, 1)`` → the
        scalar ``(B,)`` score; anything else unchanged."""
        return pred.squeeze(-1) if self.spec.task == "regression" and self.spec.target_dim == 1 else pred

    def metric_input(self, pred: Tensor) -> Tensor:
        """What the metric suite receives: logits, scores, or probabilities for distributions."""
        if self.spec.task == "regression":
            return pred.reshape(-1)
        if self.spec.task == "distribution":
            return F.softmax(pred.float(), dim=-1)
        return pred

    def aux_score_losses(self, pred: Tensor, batch: Batch) -> dict[str, Tensor]:
        """Masked MSE of each auxiliary score column (see the module docstring)."""
        out = {}
        n_main = self.spec.target_dim - len(self.spec.aux_scores)
        for j, name in enumerate(self.spec.aux_scores):
            target = batch.meta[name].float()
            labelled = ~torch.isnan(target)
            err = torch.where(labelled, pred[:, n_main + j] - torch.nan_to_num(target), torch.zeros_like(target))
            out[f"{name}_mse"] = (err * err).sum() / labelled.sum().clamp(min=1)
        return out

    def _aux_targets(self, batch: Batch) -> list[Tensor]:
        return [batch.meta[name] for name in self.spec.aux_scores]

    def _step(self, batch: Batch, stage: str) -> tuple[Tensor, ModelOutput]:
        out = self(batch)
        pred, aux_losses = out.pred, dict(out.aux_losses)
        if self.spec.aux_scores:
            aux_losses.update(self.aux_score_losses(pred, batch))
            pred = pred[:, : self.spec.target_dim - len(self.spec.aux_scores)]
        task = self.task_loss(pred, batch.y)
        loss = task
        n = len(batch)
        for name, value in aux_losses.items():
            loss = loss + value
            self.log(f"{stage}/aux_{name}", value, batch_size=n, on_step=False, on_epoch=True)
        self.log(f"{stage}/loss_task", task, batch_size=n, on_step=False, on_epoch=True)
        self.log(f"{stage}/loss", loss, batch_size=n, on_step=False, on_epoch=True, prog_bar=stage == "train")
        return loss, out

    # -- Lightning hooks --------------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss, _ = self._step(batch, "train")
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        _, out = self._step(batch, "val")
        self.val_metrics.update(self.metric_input(out.pred), batch.y, *self._aux_targets(batch))

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.val_metrics.reset()
        primary = self.spec.primary_metric
        self.log_dict({f"val/{k}": v.float() for k, v in values.items() if k != primary})
        if primary in values:
            self.log(f"val/{primary}", values[primary].float(), prog_bar=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        _, out = self._step(batch, "test")
        p = self.metric_input(out.pred)
        aux = self._aux_targets(batch)
        self.test_metrics.update(p, batch.y, *aux)
        flag = batch.meta.get("conflict")
        if flag is not None:
            for i, (name, sel) in enumerate((("conflict", flag > 0.5), ("consistent", flag <= 0.5))):
                if bool(sel.any()):
                    self.test_strata[name].update(p[sel], batch.y[sel], *(a[sel] for a in aux))
                    self._strata_counts[i] += int(sel.sum())

    def on_test_epoch_start(self) -> None:
        self._strata_counts.zero_()

    def on_test_epoch_end(self) -> None:
        values = self.test_metrics.compute()
        self.test_metrics.reset()
        self.log_dict({f"test/{k}": v.float() for k, v in values.items()})
        results: dict[str, Any] = {"test": {k: float(v) for k, v in values.items()}, "strata": {}}
        counts = self.trainer.strategy.reduce(self._strata_counts.clone(), reduce_op="sum") \
            if self.trainer.world_size > 1 else self._strata_counts
        for i, name in enumerate(STRATA):
            n = int(counts[i])
            if n > 0:
                sv = self.test_strata[name].compute()
                results["strata"][name] = {"n": n, **{k: float(v) for k, v in sv.items()}}
            self.test_strata[name].reset()
        self.test_results = results

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, Batch):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    # -- helpers for subclasses -----------------------------------------------------------
    def selection_start_epoch(self) -> int:
        """First epoch whose checkpoint may be selected (and from which early stopping counts).

        0 for single-stage models. A stage-wise model (TiCAL) returns the epoch its final stage
        starts, so that the tested checkpoint is always the full method, never a warm-up model."""
        return 0

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
