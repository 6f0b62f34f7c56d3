"""Batch: what every model's ``forward`` receives, and the one collate that builds it.

A dataset item is a :class:`Sample`. :func:`collate` pads every sequence modality to the longest
sequence in the batch (zeros appended at the end) and builds the masks, so no datamodule or model
pads on its own.

Masks: for a sequence modality ``mask[m]`` is bool ``(B, T)``, True = a real step; for a vector
modality it is bool ``(B,)``, True = the modality is present for that sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Sample:
    x: dict[str, Tensor]  # modality -> (T, D) sequence or (D,) vector
    y: Tensor  # scalar class index / float score, or (C,) distribution
    label: int  # discrete view of y
    id: str
    group: str  # subject / session / speaker
    meta: dict[str, float] = field(default_factory=dict)  # e.g. {"conflict": 1.0}


@dataclass
class Batch:
    x: dict[str, Tensor]
    mask: dict[str, Tensor]
    y: Tensor
    label: Tensor
    ids: list[str]
    groups: list[str]
    meta: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(
            x={k: move(v) for k, v in self.x.items()},
            mask={k: move(v) for k, v in self.mask.items()},
            y=move(self.y),
            label=move(self.label),
            ids=self.ids,
            groups=self.groups,
            meta={k: move(v) for k, v in self.meta.items()},
        )

    def pin_memory(self) -> "Batch":
        return Batch(
            x={k: v.pin_memory() for k, v in self.x.items()},
            mask={k: v.pin_memory() for k, v in self.mask.items()},
            y=self.y.pin_memory(),
            label=self.label.pin_memory(),
            ids=self.ids,
            groups=self.groups,
            meta={k: v.pin_memory() for k, v in self.meta.items()},
        )


def collate(samples: list[Sample] | Batch) -> Batch:
    if isinstance(samples, Batch):  # already built by a dataset's batched fetch (__getitems__)
        return samples
    if not samples:
        raise ValueError("collate: empty list of samples")
    first = samples[0]
    x: dict[str, Tensor] = {}
    mask: dict[str, Tensor] = {}
    for name, ref in first.x.items():
        items = [s.x[name] for s in samples]
        if ref.dim() == 1:
            x[name] = torch.stack(items).float()
            mask[name] = torch.ones(len(items), dtype=torch.bool)
            continue
        if ref.dim() != 2:
            raise ValueError(f"collate: modality {name!r} item {first.id!r} has shape {tuple(ref.shape)}; "
                             "expected (T, D) or (D,)")
        lengths = torch.tensor([t.shape[0] for t in items])
        if int(lengths.min()) < 1:
            bad = [s.id for s, n in zip(samples, lengths.tolist()) if n < 1]
            raise ValueError(f"collate: modality {name!r} has zero-length sequences for {bad[:5]}")
        padded = torch.zeros(len(items), int(lengths.max()), ref.shape[1], dtype=torch.float32)
        for i, t in enumerate(items):
            padded[i, : t.shape[0]] = t
        x[name] = padded
        mask[name] = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
    ys = [s.y for s in samples]
    y = torch.stack(ys) if ys[0].dim() > 0 else torch.stack(ys).reshape(-1)
    meta_keys = first.meta.keys()
    return Batch(
        x=x,
        mask=mask,
        y=y,
        label=torch.tensor([s.label for s in samples], dtype=torch.long),
        ids=[s.id for s in samples],
        groups=[s.group for s in samples],
        meta={k: torch.tensor([s.meta[k] for s in samples], dtype=torch.float32) for k in meta_keys},
    )
