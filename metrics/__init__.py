"""Metric suites of affectbench (torchmetrics ``Metric`` subclasses, DDP-safe states).

* ``SentimentMetrics``       MOSI/MOSEI regression (MMSA ``metricsTop.py`` definitions).
* ``ClassificationMetrics``  WA / UA / weighted F1 / macro F1 from a confusion matrix.
* ``DistributionMetrics``    the six EDL metrics (Geng TKDE 2016; Shu et al. TAFFC 2022) + top-1.
* ``MERChallengeMetrics``    MER2023: the classification suite + valence MSE and the challenge score.

``metric_suite(task, num_classes, aux_scores)`` builds the suite for a task and
``metric_direction(name)`` says whether a metric is maximised or minimised.
"""

from __future__ import annotations

from torchmetrics import Metric

from .classification import CLASSIFICATION_KEYS, ClassificationMetrics
from .distribution import DISTRIBUTION_KEYS, DistributionMetrics
from .mer import MER_KEYS, MERChallengeMetrics
from .sentiment import SENTIMENT_KEYS, SentimentMetrics

__all__ = [
    "SentimentMetrics",
    "ClassificationMetrics",
    "DistributionMetrics",
    "MERChallengeMetrics",
    "METRIC_DIRECTIONS",
    "TASKS",
    "metric_suite",
    "metric_direction",
]

_LOWER_IS_BETTER = frozenset({"mae", "chebyshev", "clark", "canberra", "kl", "val_mse"})

METRIC_DIRECTIONS: dict[str, str] = {
    name: ("min" if name in _LOWER_IS_BETTER else "max")
    for name in (*SENTIMENT_KEYS, *CLASSIFICATION_KEYS, *DISTRIBUTION_KEYS, *MER_KEYS)
}

TASKS = ("classification", "regression", "distribution")


def metric_suite(task: str, num_classes: int, aux_scores: tuple[str, ...] = ()) -> Metric:
    """Return a fresh metric suite for ``task``.

    ``aux_scores=("valence",)`` (classification only) -> ``MERChallengeMetrics(num_classes)``,
    whose ``update`` takes the valence targets as a third argument.

    ``"classification"`` -> ``ClassificationMetrics(num_classes)``;
    ``"regression"`` -> ``SentimentMetrics()`` (``num_classes`` unused);
    ``"distribution"`` -> ``DistributionMetrics(num_classes=num_classes)`` (C is checked).
    """
    if aux_scores:
        if task == "classification" and tuple(aux_scores) == ("valence",):
            return MERChallengeMetrics(num_classes)
        raise ValueError(f"no metric suite for task {task!r} with auxiliary scores {tuple(aux_scores)}")
    if task == "classification":
        return ClassificationMetrics(num_classes)
    if task == "regression":
        return SentimentMetrics()
    if task == "distribution":
        return DistributionMetrics(num_classes=num_classes)
    raise ValueError(f"unknown task {task!r}; valid tasks are: {', '.join(TASKS)}")


def metric_direction(name: str) -> str:
    """``"max"`` or ``"min"`` for a metric key; KeyError for unknown names."""
    try:
        return METRIC_DIRECTIONS[name]
    except KeyError:
        raise KeyError(
            f"unknown metric {name!r}; known metrics are: {', '.join(sorted(METRIC_DIRECTIONS))}"
        ) from None
