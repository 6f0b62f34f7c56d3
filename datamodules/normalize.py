"""Feature standardisation for datamodules whose features have arbitrary scales (physiological
signals, hand-crafted statistics), fitted without ever looking at a test label.

``normalize`` option values:

* ``none``: features as read.
* ``global``: per-feature mean and standard deviation over the **training split** only (valid
  sequence steps only), applied to train, validation and test.
* ``subject``: every group (subject) standardised with its own per-feature statistics, computed
  from that group's features alone (no labels). For a held-out test subject this uses its
  unlabelled test features, the usual practice in cross-subject physiological work; choose
  ``global`` to keep test data out of every statistic.

A feature with zero spread gets standard deviation 1 (it is only centred). Statistics are computed
in float64.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

MODES = ("none", "global", "subject")


def _flat(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Rows ``(n, D)`` of the valid steps of ``x`` (``(N, T, D)`` with lengths, or ``(N, D)``)."""
    if x.dim() == 2:
        return x.double()
    if lengths is None:
        return x.reshape(-1, x.shape[-1]).double()
    valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    return x[valid].double()


def stats(x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-feature mean and standard deviation (1 where the spread is 0) over the valid steps."""
    flat = _flat(x, lengths)
    if flat.shape[0] == 0:
        raise ValueError("no values to fit a standardiser on")
    mean = flat.mean(dim=0)
    std = flat.std(dim=0, unbiased=False)
    return mean, torch.where(std > 0, std, torch.ones_like(std))


def standardize(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return ((x.double() - mean) / std).to(x.dtype)


def apply(mode: str, train: dict[str, Tensor], others: Sequence[dict[str, Tensor]],
          groups: tuple[list[str], Sequence[list[str]]] | None = None,
          lengths: tuple[dict[str, Tensor], Sequence[dict[str, Tensor]]] | None = None
          ) -> tuple[dict[str, Tensor], list[dict[str, Tensor]]]:
    """Standardise every modality of the training split and the other splits (``mode`` as in the
    module docstring). ``groups`` (train groups, groups of each other split) is needed for
    ``subject``; ``lengths`` (likewise, per modality) marks the valid steps of sequences. Returns
    new tensors; the inputs are not changed."""
    if mode not in MODES:
        raise ValueError(f"normalize must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "none":
        return dict(train), [dict(o) for o in others]
    tl, ol = lengths if lengths is not None else ({}, [{} for _ in others])
    if mode == "global":
        fitted = {m: stats(t, tl.get(m)) for m, t in train.items()}
        return ({m: standardize(t, *fitted[m]) for m, t in train.items()},
                [{m: standardize(t, *fitted[m]) for m, t in o.items()} for o in others])
    if groups is None:
        raise ValueError("normalize='subject' needs the group of every row")

    def per_group(x: dict[str, Tensor], g: list[str], lens: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {m: t.clone() for m, t in x.items()}
        for name in sorted(set(g)):
            rows = torch.tensor([i for i, v in enumerate(g) if v == name])
            for m, t in x.items():
                ln = lens.get(m)
                mean, std = stats(t[rows], None if ln is None else ln[rows])
                out[m][rows] = standardize(t[rows], mean, std)
        return out

    tg, og = groups
    return per_group(train, tg, tl), [per_group(o, g, ln) for o, g, ln in zip(others, og, ol)]
