"""DatasetSpec: everything a model may know about a dataset when it is built.

A spec is frozen and hashable. It names the task, the label space, the ordered
modalities (with their feature dims, sequence lengths and groups), the
evaluation protocol and the primary metric. ``discretize`` gives the discrete
view of any target, used by label-aware methods (anchors, prototypes,
contrastive positives, class-balanced sampling):

* classification: the class index itself;
* distribution: the argmax of the distribution (first maximum on ties);
* regression (sentiment scores): the sign in three classes,
  ``negative`` (y < 0), ``neutral`` (y == 0), ``positive`` (y > 0).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import torch

TASKS = ("classification", "regression", "distribution")
GROUPS = ("physiological", "behavioral", "text", "audio", "visual")
Task = Literal["classification", "regression", "distribution"]
Group = Literal["physiological", "behavioral", "text", "audio", "visual"]

SIGN_CLASSES = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class ModalitySpec:
    """One input stream: ``x[name]`` is ``(B, seq_len, dim)`` or, when ``seq_len`` is None, ``(B, dim)``.

    ``seq_len`` is the maximum length; actual lengths vary per sample and are given by the batch mask.
    """

    name: str
    dim: int
    seq_len: int | None
    group: Group

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"modality {self.name!r}: group must be one of {GROUPS}, got {self.group!r}")
        if self.dim < 1 or (self.seq_len is not None and self.seq_len < 1):
            raise ValueError(f"modality {self.name!r}: dim and seq_len must be positive")

    @property
    def is_sequence(self) -> bool:
        return self.seq_len is not None


@dataclass(frozen=True)
class Protocol:
    """How a dataset is split.

    ``kind`` is ``holdout`` (one fold, fixed train/val/test split), ``leave_one_out`` (each fold
    holds one group - session or subject - out for test; validation is another held-out group of
    the training groups, never the test one) or ``kfold``. ``folds`` are the fold names that
    ``bench run --folds`` accepts.
    """

    kind: Literal["holdout", "leave_one_out", "kfold"]
    folds: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if not self.folds:
            raise ValueError("a protocol needs at least one fold")
        if len(set(self.folds)) != len(self.folds):
            raise ValueError(f"duplicate fold names in {self.folds}")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    task: Task
    class_names: tuple[str, ...]
    modalities: tuple[ModalitySpec, ...]
    protocol: Protocol
    primary_metric: str
    primary_direction: Literal["max", "min"]
    score_range: tuple[float, float] | None = None  # regression targets only
    synthetic: bool = False
    extra: tuple[tuple[str, str], ...] = field(default=())  # free-form facts, e.g. (("text_encoder", "bert"),)
    # Per-sample scores predicted beside the class (MER2023: ("valence",)); classification only.
    # A model's prediction then has ``target_dim = num_classes + len(aux_scores)`` columns: the
    # class logits first, then one column per score. Each score's target is ``Batch.meta[name]``
    # (NaN = not labelled); the base model adds a masked MSE loss per score and the metric suite
    # reports on it (see ``metrics.metric_suite``).
    aux_scores: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"dataset {self.name!r}: task must be one of {TASKS}, got {self.task!r}")
        if len(self.class_names) < 2:
            raise ValueError(f"dataset {self.name!r}: needs at least two class names")
        names = [m.name for m in self.modalities]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"dataset {self.name!r}: modality names must be non-empty and unique, got {names}")
        if self.primary_direction not in ("max", "min"):
            raise ValueError(f"dataset {self.name!r}: primary_direction must be 'max' or 'min'")
        if self.task == "regression" and self.score_range is None:
            raise ValueError(f"dataset {self.name!r}: a regression spec needs score_range")
        if self.aux_scores and self.task != "classification":
            raise ValueError(f"dataset {self.name!r}: aux_scores are supported for classification only")

    # -- derived views -------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Classes of the discrete view (for regression: the sign classes)."""
        return len(self.class_names)

    @property
    def target_dim(self) -> int:
        """Width of a model's prediction: 1 score for regression, else one logit per class;
        plus one column per auxiliary score (after the logits)."""
        return (1 if self.task == "regression" else self.num_classes) + len(self.aux_scores)

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modalities)

    def modality(self, name: str) -> ModalitySpec:
        for m in self.modalities:
            if m.name == name:
                return m
        raise KeyError(f"dataset {self.name!r} has no modality {name!r}; it has {self.modality_names}")

    def modalities_in(self, *groups: str) -> tuple[ModalitySpec, ...]:
        return tuple(m for m in self.modalities if m.group in groups)

    def discretize(self, y: torch.Tensor) -> torch.Tensor:
        """Discrete view of targets ``y`` as int64 class indices (see module docstring)."""
        if self.task == "classification":
            return y.long()
        if self.task == "distribution":
            return y.argmax(dim=-1)
        y = y.reshape(-1) if y.dim() > 1 else y
        return (torch.sign(y) + 1).long()

    def to_dict(self) -> dict:
        return asdict(self)


class UserInputError(Exception):
    """A problem with what the user asked for or supplied (names, options, files).

    The CLI prints its message as one line and exits non-zero, without a traceback.
    """


class Registry:
    """Name -> class registry with lazy discovery.

    Discovery imports every module of ``package`` (so a new file with the decorator is enough)
    and loads the ``entry_point_group`` entry points, so packages outside this repository can
    register too.
    """

    def __init__(self, kind: str, package: str, entry_point_group: str) -> None:
        self.kind = kind
        self.package = package
        self.entry_point_group = entry_point_group
        self._items: dict[str, type] = {}
        self._discovered = False

    def register(self, name: str):
        def decorator(cls: type) -> type:
            existing = self._items.get(name)
            if existing is not None and existing.__qualname__ != cls.__qualname__:
                raise ValueError(f"{self.kind} name {name!r} is already registered by {existing.__module__}")
            cls.registry_name = name
            self._items[name] = cls
            return cls

        return decorator

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        import importlib
        import pkgutil
        from importlib.metadata import entry_points

        pkg = importlib.import_module(self.package)
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        for ep in entry_points(group=self.entry_point_group):
            ep.load()

    def get(self, name: str) -> type:
        self._discover()
        if name not in self._items:
            import difflib

            close = difflib.get_close_matches(name, self._items, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UserInputError(f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._items)
