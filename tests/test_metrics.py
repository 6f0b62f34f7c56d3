"""Tests for the ``metrics`` package against independent references (sklearn, scipy, hand-worked numbers)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial import distance
from scipy.special import rel_entr
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from torchmetrics import Metric

from metrics import (
    METRIC_DIRECTIONS,
    ClassificationMetrics,
    DistributionMetrics,
    MERChallengeMetrics,
    SentimentMetrics,
    metric_direction,
    metric_suite,
)

SENT_KEYS = {"mae", "corr", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0"}
CLS_KEYS = {"wa", "ua", "wf1", "mf1"}
DIST_KEYS = {"chebyshev", "clark", "canberra", "kl", "cosine", "intersection", "top1"}


def _f(x: torch.Tensor) -> float:
    assert isinstance(x, torch.Tensor) and x.ndim == 0 and x.is_floating_point()
    return float(x)


def _compute_quiet(metric: Metric) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metric.compute()


# --------------------------------------------------------------------------- sentiment
def _mmsa_reference(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Independent NumPy/scikit-learn/scipy re-statement of the MMSA regression metrics."""
    out = {
        "mae": float(np.mean(np.abs(p - y))),
        "corr": float(stats.pearsonr(p, y)[0]),
        "acc7": float(np.mean(np.round(np.clip(p, -3, 3)) == np.round(np.clip(y, -3, 3)))),
        "acc5": float(np.mean(np.round(np.clip(p, -2, 2)) == np.round(np.clip(y, -2, 2)))),
        "acc2_has0": accuracy_score(y >= 0, p >= 0),
        "f1_has0": f1_score(y >= 0, p >= 0, average="weighted"),
    }
    nz = y != 0
    out["acc2_non0"] = accuracy_score(y[nz] > 0, p[nz] > 0)
    out["f1_non0"] = f1_score(y[nz] > 0, p[nz] > 0, average="weighted")
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sentiment_random_matches_sklearn_scipy(seed):
    rng = np.random.default_rng(seed)
    n = 400
    # MOSI-like targets: averages of annotator scores in steps of 1/3 -> many exact zeros and halves.
    y = np.clip(np.round(rng.normal(0, 1.5, n) * 3) / 3, -3, 3)
    y[rng.choice(n, 60, replace=False)] = 0.0
    p = y + rng.normal(0, 0.8, n) + rng.normal(0, 1.5, n) * (seed == 2)
    p[rng.choice(n, 25, replace=False)] = 0.0  # exact-zero predictions
    p[rng.choice(n, 10, replace=False)] = rng.choice([-3.5, -2.5, -0.5, 0.5, 1.5, 2.5, 4.0], 10)
    assert (y == 0).sum() >= 60 and (p == 0).sum() >= 20

    m = SentimentMetrics()
    m.update(torch.tensor(p, dtype=torch.float32).unsqueeze(1), torch.tensor(y, dtype=torch.float32))
    got = m.compute()
    assert set(got) == SENT_KEYS
    p32 = p.astype(np.float32).astype(np.float64)
    y32 = y.astype(np.float32).astype(np.float64)
    ref = _mmsa_reference(p32, y32)
    for k in SENT_KEYS:
        assert _f(got[k]) == pytest.approx(ref[k], abs=1e-9), k


def test_sentiment_zero_targets_and_zero_predictions_by_hand():
    y = torch.tensor([0.0, 0.0, 1.0, -1.0, 2.0], dtype=torch.float64)
    p = torch.tensor([0.0, -0.5, 0.0, -2.0, 1.0], dtype=torch.float64)
    m = SentimentMetrics()
    m.update(p, y)
    got = m.compute()
    # Has0: truth (y>=0) = [1,1,1,0,1], pred (p>=0) = [1,0,1,0,1] -> 4/5 correct.
    assert _f(got["acc2_has0"]) == pytest.approx(4 / 5)
    # pos: TP=3, FN=1, FP=0 -> F1=6/7 (support 4); neg: TP=1, FP=1 -> F1=2/3 (support 1).
    assert _f(got["f1_has0"]) == pytest.approx((4 * 6 / 7 + 1 * 2 / 3) / 5)
    # Non0: the two y==0 samples are dropped; truth [1,0,1], pred (p>0) [0,0,1] (p==0 is negative).
    assert _f(got["acc2_non0"]) == pytest.approx(2 / 3)
    assert _f(got["f1_non0"]) == pytest.approx(2 / 3)
    assert _f(got["mae"]) == pytest.approx((0 + 0.5 + 1 + 1 + 1) / 5)
    # Cross-check against scikit-learn as well.
    assert _f(got["f1_has0"]) == pytest.approx(f1_score([1, 1, 1, 0, 1], [1, 0, 1, 0, 1], average="weighted"))


def test_sentiment_zero_prediction_is_negative_for_non0_but_positive_for_has0():
    m = SentimentMetrics()
    m.update(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 2.0]))
    got = _compute_quiet(m)
    assert _f(got["acc2_has0"]) == 1.0
    assert _f(got["acc2_non0"]) == 0.0
    assert _f(got["f1_non0"]) == 0.0


def test_sentiment_half_to_even_rounding():
    # Round-half-away-from-zero would give 3, -1, 1, -3 for the first four and fail every one of them.
    p = torch.tensor([2.5, -0.5, 0.5, -2.5, 1.5, 3.7])
    y = torch.tensor([2.0, 0.0, 0.0, -2.0, 2.0, 3.0])
    m = SentimentMetrics()
    m.update(p, y)
    got = m.compute()
    assert _f(got["acc7"]) == 1.0
    assert _f(got["acc5"]) == 1.0

    # 2.5 vs 3: acc7 -> round(2.5)=2 != 3; acc5 clips both to 2 -> match.
    # -0.6 vs 0: rounds to -1 != 0 in both.
    m2 = SentimentMetrics()
    m2.update(torch.tensor([2.5, -0.6, -3.4]), torch.tensor([3.0, 0.0, -2.6]))
    got2 = m2.compute()
    assert _f(got2["acc7"]) == pytest.approx(1 / 3)  # only -3.4 -> -3 == round(-2.6) = -3
    assert _f(got2["acc5"]) == pytest.approx(2 / 3)  # 2==2, -1!=0, -2==-2


def test_sentiment_mae_is_unclipped_and_single_sample():
    m = SentimentMetrics()
    m.update(torch.tensor([5.0]), torch.tensor([-4.0]))
    with pytest.warns(UserWarning, match="corr"):
        got = m.compute()
    assert _f(got["mae"]) == pytest.approx(9.0)
    assert math.isnan(_f(got["corr"]))
    assert _f(got["acc7"]) == 0.0 and _f(got["acc2_has0"]) == 0.0 and _f(got["acc2_non0"]) == 0.0


def test_sentiment_constant_predictions_give_nan_corr_with_warning():
    m = SentimentMetrics()
    m.update(torch.full((6,), 0.1), torch.tensor([-1.0, 0.5, 2.0, 0.0, -2.5, 1.0]))
    with pytest.warns(UserWarning, match="constant"):
        got = m.compute()
    assert math.isnan(_f(got["corr"]))
    assert not math.isnan(_f(got["mae"]))
    # Constant targets too.
    m2 = SentimentMetrics()
    m2.update(torch.tensor([-1.0, 0.5, 2.0]), torch.full((3,), 1.0))
    with pytest.warns(UserWarning, match="constant"):
        assert math.isnan(_f(m2.compute()["corr"]))


@pytest.mark.filterwarnings("ignore:corr is undefined")
def test_sentiment_all_zero_targets_give_nan_non0_with_warning():
    m = SentimentMetrics()
    m.update(torch.tensor([0.3, -0.2, 1.0]), torch.zeros(3))
    with pytest.warns(UserWarning, match="every target is 0"):
        got = m.compute()
    assert math.isnan(_f(got["acc2_non0"])) and math.isnan(_f(got["f1_non0"]))
    assert _f(got["acc2_has0"]) == pytest.approx(2 / 3)


def test_sentiment_accumulation_equals_single_update():
    g = torch.Generator().manual_seed(5)
    p = torch.randn(97, generator=g) * 2
    y = torch.round(torch.randn(97, generator=g) * 4) / 2
    whole = SentimentMetrics()
    whole.update(p, y)
    parts = SentimentMetrics()
    for a, b in [(0, 1), (1, 40), (40, 41), (41, 97)]:
        parts.update(p[a:b].unsqueeze(1), y[a:b].unsqueeze(1))
    r1, r2 = whole.compute(), parts.compute()
    for k in SENT_KEYS:
        assert _f(r1[k]) == pytest.approx(_f(r2[k]), abs=1e-12), k


def test_sentiment_merge_state_like_ddp_and_reset():
    g = torch.Generator().manual_seed(7)
    p, y = torch.randn(50, generator=g), torch.randn(50, generator=g)
    a, b, ref = SentimentMetrics(), SentimentMetrics(), SentimentMetrics()
    a.update(p[:20], y[:20])
    b.update(p[20:], y[20:])
    ref.update(p, y)
    a.merge_state(b)
    ra, rr = a.compute(), ref.compute()
    for k in SENT_KEYS:
        assert _f(ra[k]) == pytest.approx(_f(rr[k]), abs=1e-12), k
    assert a._reductions["preds"] is not None and a._defaults["preds"] == []
    a.reset()
    a.update(torch.tensor([1.0, -1.0]), torch.tensor([1.0, -1.0]))
    assert _f(a.compute()["acc2_non0"]) == 1.0


def test_sentiment_rejects_bad_input():
    m = SentimentMetrics()
    with pytest.raises(ValueError):
        m.update(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError):
        m.update(torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="non-finite"):
        m.update(torch.tensor([0.0, float("nan")]), torch.zeros(2))


# --------------------------------------------------------------------------- classification
def _sk_cls(y_true, y_pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balanced_accuracy warns on classes absent from y_true
        return {
            "wa": accuracy_score(y_true, y_pred),
            "ua": balanced_accuracy_score(y_true, y_pred),
            "wf1": f1_score(y_true, y_pred, average="weighted", zero_division=0),
            "mf1": f1_score(y_true, y_pred, average="macro", zero_division=0),
        }


@pytest.mark.parametrize("seed,num_classes", [(0, 4), (1, 6), (2, 7), (3, 2)])
def test_classification_random_matches_sklearn(seed, num_classes):
    g = torch.Generator().manual_seed(seed)
    n = 300
    target = torch.randint(0, num_classes, (n,), generator=g)
    if num_classes > 2:
        target[target == num_classes - 1] = 0  # last class absent from targets
    logits = torch.randn(n, num_classes, generator=g)
    logits[torch.arange(n), target] += 0.8  # informative but imperfect
    if num_classes > 3:
        logits[:, 1] = -10.0  # class 1 never predicted (present in targets)
    probs = torch.softmax(logits, dim=1)
    m = ClassificationMetrics(num_classes)
    m.update(probs, target)
    got = m.compute()
    assert set(got) == CLS_KEYS
    ref = _sk_cls(target.numpy(), probs.argmax(1).numpy())
    for k in CLS_KEYS:
        assert _f(got[k]) == pytest.approx(ref[k], abs=1e-12), k


def test_classification_absent_classes_by_hand():
    # C=4: class 3 absent everywhere, class 2 absent from predictions.
    target = torch.tensor([0, 0, 1, 1, 2])
    preds = torch.tensor([0, 1, 1, 1, 0])
    m = ClassificationMetrics(4)
    m.update(preds, target)
    got = m.compute()
    assert _f(got["wa"]) == pytest.approx(3 / 5)
    assert _f(got["ua"]) == pytest.approx((1 / 2 + 1 + 0) / 3)
    # F1: c0 = 2*1/(2+1+1) = 0.5, c1 = 2*2/(4+1+0) = 0.8, c2 = 0.
    assert _f(got["wf1"]) == pytest.approx((2 * 0.5 + 2 * 0.8 + 0) / 5)
    assert _f(got["mf1"]) == pytest.approx((0.5 + 0.8 + 0) / 3)
    ref = _sk_cls(target.numpy(), preds.numpy())
    for k in CLS_KEYS:
        assert _f(got[k]) == pytest.approx(ref[k]), k

    # Class 2 predicted but absent from targets: excluded from UA, included (F1=0) in macro F1.
    m2 = ClassificationMetrics(3)
    m2.update(torch.tensor([0, 2, 1]), torch.tensor([0, 0, 1]))
    got2 = m2.compute()
    assert _f(got2["ua"]) == pytest.approx((1 / 2 + 1) / 2)
    assert _f(got2["mf1"]) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert _f(got2["wf1"]) == pytest.approx((2 * 2 / 3 + 1 * 1) / 3)


def test_classification_argmax_ties_go_to_lowest_index():
    scores = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.4, 0.4], [1.0, 1.0, 1.0], [0.0, 0.3, 0.7]])
    m = ClassificationMetrics(3)
    m.update(scores, torch.tensor([0, 1, 0, 2]))
    assert _f(m.compute()["wa"]) == 1.0
    m2 = ClassificationMetrics(3)
    m2.update(scores, torch.tensor([1, 2, 2, 2]))  # the "other" tied index is never chosen
    assert _f(m2.compute()["wa"]) == pytest.approx(1 / 4)


def test_classification_accumulation_and_single_sample_batches():
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(64, 5, generator=g)
    target = torch.randint(0, 5, (64,), generator=g)
    whole = ClassificationMetrics(5)
    whole.update(logits, target)
    parts = ClassificationMetrics(5)
    parts.update(logits[:1], target[:1])  # single-sample batch
    parts.update(logits[1:30].argmax(1), target[1:30])  # index form
    for i in range(30, 64):
        parts.update(logits[i : i + 1], target[i : i + 1])
    assert torch.equal(whole.confmat, parts.confmat)
    r1, r2 = whole.compute(), parts.compute()
    for k in CLS_KEYS:
        assert _f(r1[k]) == _f(r2[k])

    single = ClassificationMetrics(3)
    single.update(torch.tensor([[0.1, 0.7, 0.2]]), torch.tensor([2]))
    got = single.compute()
    assert _f(got["wa"]) == 0.0 and _f(got["ua"]) == 0.0 and _f(got["wf1"]) == 0.0 and _f(got["mf1"]) == 0.0


def test_classification_rejects_bad_input():
    m = ClassificationMetrics(3)
    with pytest.raises(ValueError):
        m.update(torch.tensor([0, 3]), torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        m.update(torch.tensor([0, 1]), torch.tensor([0, -1]))
    with pytest.raises(ValueError):
        m.update(torch.randn(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        m.update(torch.tensor([0.0, 1.0]), torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        m.update(torch.randn(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError):
        ClassificationMetrics(0)


# --------------------------------------------------------------------------- distribution
def _edl_reference(p_raw: np.ndarray, y: np.ndarray, eps: float = 1e-12) -> dict[str, float]:
    p = np.clip(p_raw, eps, 1.0)
    rows = {k: [] for k in DIST_KEYS}
    for pi, yi in zip(p, y):
        rows["chebyshev"].append(distance.chebyshev(yi, pi))
        rows["canberra"].append(distance.canberra(yi, pi))
        rows["cosine"].append(1.0 - distance.cosine(yi, pi))
        rows["kl"].append(float(np.sum(rel_entr(yi, pi))))
        rows["clark"].append(math.sqrt(sum((a - b) ** 2 / (a + b) ** 2 for a, b in zip(yi, pi))))
        rows["intersection"].append(sum(min(a, b) for a, b in zip(yi, pi)))
        rows["top1"].append(float(np.argmax(pi) == np.argmax(yi)))
    return {k: float(np.mean(v)) for k, v in rows.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_distribution_random_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    n, c = 120, 10
    y = rng.dirichlet(np.full(c, 0.7), n)
    y[:10] = np.eye(c)[rng.integers(0, c, 10)]  # one-hot targets: zero entries
    p = rng.dirichlet(np.full(c, 1.5), n)
    p[10:15, 3] = 0.0  # exact-zero predictions (clipped to eps)
    p[10:15] /= p[10:15].sum(1, keepdims=True)
    m = DistributionMetrics()
    m.update(torch.tensor(p), torch.tensor(y))
    got = m.compute()
    assert set(got) == DIST_KEYS
    ref = _edl_reference(p, y)
    for k in DIST_KEYS:
        assert _f(got[k]) == pytest.approx(ref[k], rel=1e-9, abs=1e-12), k
    # KL also equals scipy.stats.entropy where predictions have no zero entries.
    kl_rows = [stats.entropy(yi, pi) for yi, pi in zip(y[20:], p[20:])]
    m2 = DistributionMetrics()
    m2.update(torch.tensor(p[20:]), torch.tensor(y[20:]))
    assert _f(m2.compute()["kl"]) == pytest.approx(float(np.mean(kl_rows)), rel=1e-9)


def test_distribution_uniform_prediction_chebyshev_anchor():
    y = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1, 5, 1]], dtype=torch.float64) / 14
    m = DistributionMetrics()
    m.update(torch.full((1, 10), 0.1), y)  # single-sample batch, float32 preds
    got = m.compute()
    assert _f(got["chebyshev"]) == pytest.approx(5 / 14 - 0.1, abs=1e-7)
    assert _f(got["chebyshev"]) == pytest.approx(0.2571428571, abs=1e-7)
    assert _f(got["top1"]) == 0.0  # uniform argmax is index 0, the label peaks at index 8
    assert _f(got["intersection"]) == pytest.approx(9 / 14 + 0.1, abs=1e-7)


def test_distribution_one_hot_with_zero_prediction_by_hand():
    y = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    p = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    m = DistributionMetrics(eps=1e-12)
    m.update(p, y)
    got = m.compute()
    assert _f(got["chebyshev"]) == pytest.approx(0.5)
    # Clark terms: (0.5/1.5)^2 = 1/9, (0.5/0.5)^2 = 1, (eps/eps)^2 = 1.
    assert _f(got["clark"]) == pytest.approx(math.sqrt(2 + 1 / 9))
    assert _f(got["canberra"]) == pytest.approx(1 / 3 + 1 + 1)
    assert _f(got["kl"]) == pytest.approx(math.log(2))  # zero-target terms contribute 0
    assert _f(got["cosine"]) == pytest.approx(0.5 / math.sqrt(0.5))
    assert _f(got["intersection"]) == pytest.approx(0.5)
    assert _f(got["top1"]) == 1.0
    # Prediction that puts zero mass on the true class: KL = -ln(eps), finite.
    m2 = DistributionMetrics(eps=1e-6)
    m2.update(torch.tensor([[0.0, 1.0, 0.0]]), y)
    assert _f(m2.compute()["kl"]) == pytest.approx(-math.log(1e-6))


def test_distribution_predictions_are_clipped_not_renormalised():
    # Prediction sums to 0.8: intersection is the sum of minima (0.2 + 0.3 + eps), not 1 - L1/2 (= 0.6),
    # and nothing is rescaled (Chebyshev = 0.5 - eps, KL uses the raw clipped values).
    eps = 1e-6
    m = DistributionMetrics(eps=eps)
    m.update(torch.tensor([[0.5, 0.3, 0.0]]), torch.tensor([[0.2, 0.3, 0.5]]))
    got = m.compute()
    assert _f(got["intersection"]) == pytest.approx(0.5 + eps)
    assert _f(got["chebyshev"]) == pytest.approx(0.5 - eps)
    assert _f(got["kl"]) == pytest.approx(0.2 * math.log(0.2 / 0.5) + 0.5 * math.log(0.5 / eps))


def test_distribution_top1_ties_use_first_maximum():
    p = torch.tensor([[0.4, 0.4, 0.2], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4]])
    y = torch.tensor([[0.3, 0.5, 0.2], [0.5, 0.3, 0.2], [0.4, 0.4, 0.2]])
    m = DistributionMetrics()
    m.update(p, y)
    assert _f(m.compute()["top1"]) == pytest.approx(1 / 3)
    m2 = DistributionMetrics()
    m2.update(torch.tensor([[0.2, 0.4, 0.4]]), torch.tensor([[0.25, 0.25, 0.5]]))
    assert _f(m2.compute()["top1"]) == 0.0  # first max of p is index 1, of y index 2


def test_distribution_accumulation_is_sample_weighted():
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(41, 6, generator=g), 1)
    y = torch.softmax(2 * torch.randn(41, 6, generator=g), 1)
    whole = DistributionMetrics()
    whole.update(p, y)
    parts = DistributionMetrics()
    for a, b in [(0, 1), (1, 10), (10, 41)]:
        parts.update(p[a:b], y[a:b])
    r1, r2 = whole.compute(), parts.compute()
    for k in DIST_KEYS:
        assert _f(r1[k]) == pytest.approx(_f(r2[k]), rel=1e-12), k
    assert int(parts.count) == 41


@pytest.mark.parametrize(
    "target,match",
    [
        ([[0.5, 0.6, -0.1], [0.2, 0.3, 0.5]], "non-negative.*1 row"),
        ([[0.5, 0.4, 0.0], [0.2, 0.3, 0.4]], "sum to 1.*2 row"),
        ([[0.5, float("nan"), 0.5], [0.2, 0.3, 0.5]], "finite.*1 row"),
    ],
)
def test_distribution_invalid_targets_raise(target, match):
    m = DistributionMetrics()
    with pytest.raises(ValueError, match=match):
        m.update(torch.full((2, 3), 1 / 3), torch.tensor(target))


def test_distribution_invalid_predictions_and_tolerance():
    y = torch.tensor([[0.2, 0.3, 0.5]])
    m = DistributionMetrics()
    with pytest.raises(ValueError, match="preds.*finite"):
        m.update(torch.tensor([[0.5, float("inf"), 0.5]]), y)
    with pytest.raises(ValueError, match="preds"):
        m.update(torch.tensor([[2.0, -1.0, 0.3]]), y)  # logits, not probabilities
    with pytest.raises(ValueError):
        m.update(torch.full((1, 4), 0.25), y)  # shape mismatch
    # Within sum_tol is accepted; outside it is rejected.
    m.update(torch.full((1, 3), 1 / 3), torch.tensor([[0.2, 0.3, 0.5005]]))
    with pytest.raises(ValueError):
        DistributionMetrics(sum_tol=1e-4).update(torch.full((1, 3), 1 / 3), torch.tensor([[0.2, 0.3, 0.5005]]))


# --------------------------------------------------------------------------- package API
def test_directions_cover_every_key():
    keys = set()
    for metric, args in [
        (SentimentMetrics(), (torch.randn(5), torch.randn(5))),
        (ClassificationMetrics(3), (torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1]))),
        (DistributionMetrics(), (torch.full((2, 4), 0.25), torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 2))),
        (MERChallengeMetrics(3), (torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]), torch.randn(5))),
    ]:
        metric.update(*args)
        keys |= set(_compute_quiet(metric))
    assert keys == set(METRIC_DIRECTIONS)
    assert {k for k, v in METRIC_DIRECTIONS.items() if v == "min"} == {"mae", "chebyshev", "clark", "canberra", "kl",
                                                                        "val_mse"}
    assert set(METRIC_DIRECTIONS.values()) == {"min", "max"}
    assert metric_direction("kl") == "min" and metric_direction("ua") == "max"
    with pytest.raises(KeyError, match="unknown metric"):
        metric_direction("accuracy")


def test_metric_suite_factory():
    assert isinstance(metric_suite("regression", 1), SentimentMetrics)
    cls = metric_suite("classification", 4)
    assert isinstance(cls, ClassificationMetrics) and cls.num_classes == 4
    dist = metric_suite("distribution", 10)
    assert isinstance(dist, DistributionMetrics)
    with pytest.raises(ValueError):
        dist.update(torch.full((1, 4), 0.25), torch.full((1, 4), 0.25))  # wrong C for this suite
    with pytest.raises(ValueError, match="classification.*regression.*distribution"):
        metric_suite("ranking", 3)
    assert isinstance(metric_suite("classification", 6, ("valence",)), MERChallengeMetrics)
    with pytest.raises(ValueError, match="auxiliary scores"):
        metric_suite("regression", 3, ("valence",))


def test_mer_challenge_metrics_against_sklearn():
    g = torch.Generator().manual_seed(3)
    logits, y = torch.randn(40, 6, generator=g), torch.randint(0, 6, (40,), generator=g)
    v_pred, v_true = torch.randn(40, generator=g), torch.randn(40, generator=g) * 2
    v_true[::4] = float("nan")  # unlabelled valence (MER2023 writes -10)
    m = MERChallengeMetrics(6)
    m.update(torch.cat([logits[:25], v_pred[:25, None]], 1), y[:25], v_true[:25])
    m.update(torch.cat([logits[25:], v_pred[25:, None]], 1), y[25:], v_true[25:])
    out = m.compute()
    wf1 = f1_score(y.numpy(), logits.argmax(1).numpy(), average="weighted")
    keep = ~torch.isnan(v_true)
    mse = float(((v_pred - v_true)[keep] ** 2).mean())
    assert _f(out["wf1"]) == pytest.approx(wf1) and _f(out["val_mse"]) == pytest.approx(mse, rel=1e-6)
    assert _f(out["mer_score"]) == pytest.approx(wf1 - 0.25 * mse, rel=1e-6)
    with pytest.raises(ValueError, match="class logits, then valence"):
        m.update(logits, y, v_true)


def test_empty_compute_returns_nan_not_crash():
    for metric in (SentimentMetrics(), ClassificationMetrics(3), DistributionMetrics()):
        with pytest.warns(UserWarning):
            out = metric.compute()
        assert all(math.isnan(_f(v)) for v in out.values())
