"""Metric suites of affectbench (torchmetrics ``Metric`` subclasses, DDP-safe states).

* ``SentimentMetrics``       MOSI/MOSEI regression (MMSA ``metricsTop.py`` definitions).
* ``ClassificationMetrics``  WA / UA / weighted F1 / macro F1 from a confusion matrix.
* ``DistributionMetrics``    the six EDL metrics (Geng TKDE 2016; Shu et al. TAFFC 2022) + top-1.

``metric_suite(task, num_classes)`` builds the suite for a task and
``metric_direction(name)`` says whether a metric is maximised or minimised.
"""

from __future__ import annotations

from torchmetrics import Metric

from .classification import CLASSIFICATION_KEYS, ClassificationMetrics
from .distribution import DISTRIBUTION_KEYS, DistributionMetrics
from .sentiment import SENTIMENT_KEYS, SentimentMetrics

__all__ = [
    "SentimentMetrics",
    "ClassificationMetrics",
    "DistributionMetrics",
    "METRIC_DIRECTIONS",
    "TASKS",
    "metric_suite",
    "metric_direction",
]

_LOWER_IS_BETTER = frozenset({"mae", "chebyshev", "clark", "canberra", "kl"})

METRIC_DIRECTIONS: dict[str, str] = {
    name: ("min" if name in _LOWER_IS_BETTER else "max")
    for name in (*SENTIMENT_KEYS, *CLASSIFICATION_KEYS, *DISTRIBUTION_KEYS)
}

TASKS = ("classification", "regression", "distribution")


def metric_suite(task: str, num_classes: int) -> Metric:
    """Return a fresh metric suite for ``task``.

    ``"classification"`` -> ``ClassificationMetrics(num_classes)``;
    ``"regression"`` -> ``SentimentMetrics()`` (``num_classes`` unused);
    ``"distribution"`` -> ``DistributionMetrics(num_classes=num_classes)`` (C is checked).
    """
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
