"""A plain training epoch for tests that check what a model learns without the Lightning runner."""
from __future__ import annotations


def train_epoch(model, loader, opt) -> list:
    """One pass over ``loader``: task loss + the model's auxiliary losses, one optimiser step per
    batch. Returns each batch's :class:`~models.base.ModelOutput` (for the loss terms it holds)."""
    model.train()
    outputs = []
    for batch in loader:
        out = model(batch)
        loss = model.task_loss(out.pred, batch.y) + sum(out.aux_losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        outputs.append(out)
    return outputs
