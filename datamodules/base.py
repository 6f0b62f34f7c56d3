"""Shared base for every datamodule: a tensor-backed dataset, loaders with the shared collate,
seeded shuffling, optional class-balanced sampling, and the information ``bench info`` shows."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from .batch import Batch, Sample, collate
from .spec import DatasetSpec, UserInputError


class TensorSampleDataset(Dataset):
    """Samples held as padded tensors plus lengths; items are cut back to their true length.

    ``x[m]`` is ``(N, T, D)`` with ``lengths[m]`` ``(N,)`` for sequences, or ``(N, D)`` for vectors.
    """

    def __init__(self, x: dict[str, Tensor], lengths: dict[str, Tensor], y: Tensor, label: Tensor,
                 ids: list[str], groups: list[str], meta: dict[str, Tensor] | None = None) -> None:
        n = len(ids)
        for name, t in x.items():
            if t.shape[0] != n:
                raise ValueError(f"modality {name!r} has {t.shape[0]} rows, expected {n}")
        if y.shape[0] != n or label.shape[0] != n or len(groups) != n:
            raise ValueError("y, label, ids and groups must have one row per sample")
        self.x, self.lengths, self.y, self.label = x, lengths, y, label
        self.ids, self.groups, self.meta = ids, groups, meta or {}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Sample:
        xs = {}
        for name, t in self.x.items():
            if name in self.lengths:
                xs[name] = t[i, : int(self.lengths[name][i])]
            else:
                xs[name] = t[i]
        return Sample(x=xs, y=self.y[i], label=int(self.label[i]), id=self.ids[i], group=self.groups[i],
                      meta={k: float(v[i]) for k, v in self.meta.items()})

    def __getitems__(self, indices: list[int]) -> Batch:
        """Batched fetch used by the DataLoader: gathers rows and builds the same :class:`Batch`
        that :func:`collate` builds from the individual samples (tested), without a Python loop."""
        index = torch.as_tensor(indices, dtype=torch.long)
        x: dict[str, Tensor] = {}
        mask: dict[str, Tensor] = {}
        for name, t in self.x.items():
            if name in self.lengths:
                lens = self.lengths[name][index]
                if int(lens.min()) < 1:
                    raise ValueError(f"modality {name!r} has zero-length sequences in this batch")
                m = torch.arange(int(lens.max()))[None, :] < lens[:, None]
                x[name] = t[index, : m.shape[1]].float() * m.unsqueeze(-1)
                mask[name] = m
            else:
                x[name] = t[index].float()
                mask[name] = torch.ones(len(indices), dtype=torch.bool)
        y = self.y[index]
        return Batch(x=x, mask=mask, y=y if y.dim() > 1 else y.reshape(-1), label=self.label[index].long(),
                     ids=[self.ids[i] for i in indices], groups=[self.groups[i] for i in indices],
                     meta={k: v[index].float() for k, v in self.meta.items()})

    def subset(self, index: Tensor) -> "TensorSampleDataset":
        idx = index.tolist()
        return TensorSampleDataset(
            x={k: v[index] for k, v in self.x.items()},
            lengths={k: v[index] for k, v in self.lengths.items()},
            y=self.y[index], label=self.label[index],
            ids=[self.ids[i] for i in idx], groups=[self.groups[i] for i in idx],
            meta={k: v[index] for k, v in self.meta.items()},
        )


class MERDataModule(L.LightningDataModule):
    """Base class. A subclass builds ``self.spec`` in ``__init__`` and fills ``self.train_set``,
    ``self.val_set`` and ``self.test_set`` in ``setup`` for ``self.fold``.

    Options common to every datamodule:
      batch_size, num_workers; fold (a name from the spec's protocol; default: the first);
      seed (shuffling and sampling only, never the data itself);
      sampler: ``random`` (shuffle) or ``balanced`` (class-balanced sampling with replacement
      over the discrete view, one epoch = as many draws as training samples).
    """

    synthetic: ClassVar[bool] = False
    source: ClassVar[str] = ""  # where users obtain the data (for missing-data messages)

    def __init__(self, data_dir: str | None = None, batch_size: int = 32, num_workers: int = 0,
                 fold: str | None = None, seed: int = 0, sampler: str = "random") -> None:
        super().__init__()
        if sampler not in ("random", "balanced"):
            raise UserInputError(f"sampler must be 'random' or 'balanced', got {sampler!r}")
        self.data_dir = data_dir
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.fold = fold
        self.seed = int(seed)
        self.sampler = sampler
        self.spec: DatasetSpec
        self.train_set: TensorSampleDataset | None = None
        self.val_set: TensorSampleDataset | None = None
        self.test_set: TensorSampleDataset | None = None

    def resolve_fold(self) -> str:
        folds = self.spec.protocol.folds
        if self.fold is None:
            return folds[0]
        if self.fold not in folds:
            raise UserInputError(f"{self.spec.name}: unknown fold {self.fold!r}; folds are {', '.join(folds)}")
        return self.fold

    @classmethod
    def is_available(cls, data_dir: str | None = None) -> bool:
        """Whether the dataset's files are present (always True for synthetic data)."""
        return cls.synthetic

    # -- what a result record and `bench info` need --------------------------------------
    def fingerprint(self) -> str:
        """Identifies the exact data (file checksums or generator settings); subclasses extend."""
        return hashlib.sha256(json.dumps(self.spec.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def limit(self, modalities: list[str] | None = None, n_mc: int | None = None) -> dict[str, Any] | None:
        """The best achievable primary score (``{"metric", "value", "se", "n_mc", "method"}``), where
        known (synthetic presets); ``modalities`` asks for the limit given only those inputs."""
        return None

    def notes(self) -> list[str]:
        """Facts about the loaded data a reader must see (repaired values, checksums, feature
        provenance); printed by ``bench run`` and ``bench info`` and stored in every record."""
        return []

    def extra_test_sets(self) -> dict[str, TensorSampleDataset]:
        """Further test sets reported beside the main one (e.g. MER2023's MER-NOISE)."""
        return {}

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"spec": self.spec, "fold": self.resolve_fold()}
        for split in ("train", "val", "test"):
            ds = getattr(self, f"{split}_set")
            if ds is None:
                continue
            counts = Counter(ds.label.tolist())
            out[split] = {"n": len(ds), "classes": {self.spec.class_names[c]: counts.get(c, 0)
                                                     for c in range(self.spec.num_classes)},
                          "groups": sorted(set(ds.groups))}
            if "conflict" in ds.meta:
                out[split]["conflicting"] = int(ds.meta["conflict"].sum())
        return out

    # -- loaders --------------------------------------------------------------------------
    def _loader(self, ds: TensorSampleDataset, train: bool) -> DataLoader:
        if ds is None:
            raise RuntimeError("call setup() before asking for a loader")
        g = torch.Generator().manual_seed(self.seed)
        sampler = None
        shuffle = train
        if train and self.sampler == "balanced":
            counts = torch.bincount(ds.label, minlength=self.spec.num_classes).clamp(min=1).double()
            weights = (1.0 / counts)[ds.label]
            sampler = WeightedRandomSampler(weights, num_samples=len(ds), replacement=True, generator=g)
            shuffle = False
        # A final training batch of exactly one sample is dropped: batch normalisation cannot
        # train on it. Evaluation loaders never drop anything.
        drop_last = train and len(ds) % self.batch_size == 1
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, sampler=sampler, generator=g,
                          collate_fn=collate, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, drop_last=drop_last)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def train_eval_dataloader(self) -> DataLoader:
        """The training split in its fixed order, no shuffling or resampling, nothing dropped:
        for models that score every training sample between epochs (e.g. TiCAL's consistency
        refresh). Samples are identified by ``Batch.ids``."""
        return self._loader(self.train_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)
