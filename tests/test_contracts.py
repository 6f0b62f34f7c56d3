"""The three contracts: DatasetSpec, Batch/collate and the MERModel base, plus the registries."""
import math

import pytest
import torch
import torch.nn.functional as F

from datamodules.batch import Batch, Sample, collate
from datamodules.spec import DatasetSpec, ModalitySpec, Protocol, Registry, UserInputError
from models.base import MERModel, ModelOutput
from models.blocks import masked_mean
from models.registry import create_model, list_models, model_hparam_defaults


def make_spec(task="classification", classes=("a", "b", "c")):
    return DatasetSpec(
        name="toy", task=task, class_names=classes,
        modalities=(ModalitySpec("seq", 3, 5, "audio"), ModalitySpec("vec", 2, None, "visual")),
        protocol=Protocol("holdout", ("holdout",)), primary_metric="wa" if task == "classification" else "mae",
        primary_direction="max" if task == "classification" else "min",
        score_range=(-3.0, 3.0) if task == "regression" else None,
    )


def sample(i, T, y=0, conflict=0.0):
    return Sample(x={"seq": torch.full((T, 3), float(i + 1)), "vec": torch.tensor([float(i), 1.0])},
                  y=torch.tensor(y), label=y, id=f"s{i}", group=f"g{i % 2}", meta={"conflict": conflict})


def test_collate_pads_and_masks():
    b = collate([sample(0, 2), sample(1, 4, y=2, conflict=1.0), sample(2, 1)])
    assert isinstance(b, Batch) and len(b) == 3
    assert b.x["seq"].shape == (3, 4, 3) and b.x["vec"].shape == (3, 2)
    assert b.mask["seq"].tolist() == [[True, True, False, False], [True] * 4, [True, False, False, False]]
    assert b.mask["vec"].tolist() == [True, True, True]
    assert (b.x["seq"][0, 2:] == 0).all() and (b.x["seq"][1] == 2).all()
    assert b.y.tolist() == [0, 2, 0] and b.label.tolist() == [0, 2, 0]
    assert b.meta["conflict"].tolist() == [0.0, 1.0, 0.0]
    assert b.ids == ["s0", "s1", "s2"] and b.groups == ["g0", "g1", "g0"]


def test_collate_rejects_empty_sequences_and_bad_shapes():
    with pytest.raises(ValueError, match="zero-length"):
        collate([sample(0, 2), sample(1, 0)])
    bad = sample(0, 2)
    bad.x["seq"] = torch.zeros(1, 2, 3)
    with pytest.raises(ValueError, match="expected"):
        collate([bad])


def test_masked_mean_ignores_padding():
    b = collate([sample(0, 2), sample(1, 4)])
    x = b.x["seq"].clone()
    x[0, 2:] = 1000.0  # garbage in the padded steps must not matter
    out = masked_mean(x, b.mask["seq"])
    assert torch.allclose(out[0], torch.full((3,), 1.0)) and torch.allclose(out[1], torch.full((3,), 2.0))
    assert torch.equal(masked_mean(b.x["vec"], b.mask["vec"]), b.x["vec"])


def test_discretize_per_task():
    assert make_spec().discretize(torch.tensor([2, 0])).tolist() == [2, 0]
    reg = make_spec("regression", ("negative", "neutral", "positive"))
    assert reg.discretize(torch.tensor([-0.4, 0.0, 2.2])).tolist() == [0, 1, 2]
    assert reg.target_dim == 1
    dist = make_spec("distribution")
    assert dist.discretize(torch.tensor([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]])).tolist() == [1, 0]  # tie: first


def test_spec_validation():
    with pytest.raises(ValueError, match="task"):
        make_spec(task="ranking")
    with pytest.raises(ValueError, match="group"):
        ModalitySpec("x", 3, None, "smell")
    with pytest.raises(ValueError, match="score_range"):
        DatasetSpec("r", "regression", ("n", "p"), (ModalitySpec("x", 1, None, "text"),),
                    Protocol("holdout", ("h",)), "mae", "min")
    with pytest.raises(KeyError, match="no modality"):
        make_spec().modality("eeg")


def test_registry_errors():
    reg = Registry("widget", "metrics", "affectbench.test-none")

    @reg.register("alpha")
    class Alpha:  # noqa: D401
        pass

    with pytest.raises(UserInputError, match="Did you mean alpha"):
        reg.get("alpah")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha")(type("Other", (), {}))


def test_create_model_validates_hparams_and_modalities():
    assert {"early_fusion", "late_fusion"} <= set(list_models())
    spec = make_spec()
    with pytest.raises(UserInputError, match="no hyper-parameter hiden"):
        create_model("early_fusion", spec, hiden=3)
    with pytest.raises(UserInputError, match="modalities"):
        create_model("early_fusion", spec, modalities="eeg")
    m = create_model("early_fusion", spec, hidden=7, modalities="vec", lr=0.5)
    assert [x.name for x in m.used_modalities] == ["vec"] and m.lr == 0.5
    assert m.hparams["hidden"] == 7 and m.hparams["modalities"] == "vec"  # subclass args are recorded
    d = model_hparam_defaults(type(m))
    assert d["hidden"] == 128 and d["max_epochs"] == type(m).RECIPE["max_epochs"] and d["lr"] is not None


class _Fixed(MERModel):
    """Returns a fixed prediction and one auxiliary loss, to check the base's loss bookkeeping."""

    def __init__(self, spec, **kw):
        super().__init__(spec, **kw)
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.pred = None

    def forward(self, batch):
        return ModelOutput(pred=self.pred + 0 * self.w, aux_losses={"extra": torch.tensor(0.25)})


@pytest.mark.parametrize("task", ["classification", "regression", "distribution"])
def test_task_losses(task):
    spec = make_spec(task)
    m = _Fixed(spec)
    if task == "classification":
        pred, y = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), torch.tensor([0, 2])
        expect = F.cross_entropy(pred, y)
    elif task == "regression":
        pred, y = torch.tensor([0.5, -1.0]), torch.tensor([1.5, -1.0])
        expect = torch.tensor(0.5)  # mean(|0.5-1.5|, |−1+1|)
    else:
        pred, y = torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([[0.5, 0.25, 0.25]])
        expect = torch.tensor(sum(p * math.log(p / (1 / 3)) for p in (0.5, 0.25, 0.25)))
    assert torch.allclose(m.task_loss(pred, y), expect, atol=1e-6)
    m.pred = pred
    b = Batch(x={}, mask={}, y=y, label=spec.discretize(y), ids=["a", "b"][: len(y)], groups=["g"] * len(y))
    m.log = lambda *a, **k: None
    loss, _ = m._step(b, "train")
    assert torch.allclose(loss, expect + 0.25, atol=1e-6)


def test_batched_fetch_equals_collate_of_samples():
    from datamodules.base import TensorSampleDataset

    g = torch.Generator().manual_seed(0)
    n = 7
    lengths = torch.tensor([3, 5, 1, 5, 2, 4, 5])
    seq = torch.randn(n, 5, 3, generator=g)
    seq[torch.arange(5)[None, :] >= lengths[:, None]] = 9.0  # garbage beyond the lengths must not leak
    ds = TensorSampleDataset(x={"seq": seq, "vec": torch.randn(n, 2, generator=g)}, lengths={"seq": lengths},
                             y=torch.randn(n, 3, generator=g).softmax(-1), label=torch.tensor([0, 1, 2, 0, 1, 2, 0]),
                             ids=[f"i{k}" for k in range(n)], groups=[f"g{k % 3}" for k in range(n)],
                             meta={"conflict": torch.tensor([0, 1, 0, 0, 1, 0, 1.0])})
    idx = [4, 0, 2, 6]
    fast, slow = ds.__getitems__(idx), collate([ds[i] for i in idx])
    assert fast.ids == slow.ids and fast.groups == slow.groups
    for name in ("seq", "vec"):
        assert torch.equal(fast.x[name], slow.x[name]) and torch.equal(fast.mask[name], slow.mask[name])
    assert torch.equal(fast.y, slow.y) and torch.equal(fast.label, slow.label)
    assert torch.equal(fast.meta["conflict"], slow.meta["conflict"])
    assert (fast.x["seq"][2, 1:] == 0).all()  # the length-1 sample is zero-padded


def test_aux_score_widens_prediction_masks_unlabelled_and_feeds_metrics():
    spec = DatasetSpec(
        name="toy-valence", task="classification", class_names=("a", "b", "c"),
        modalities=(ModalitySpec("vec", 2, None, "visual"),), protocol=Protocol("holdout", ("holdout",)),
        primary_metric="mer_score", primary_direction="max", aux_scores=("valence",))
    assert spec.target_dim == 4
    with pytest.raises(ValueError, match="classification only"):
        DatasetSpec(name="x", task="regression", class_names=("n", "z", "p"), modalities=spec.modalities,
                    protocol=spec.protocol, primary_metric="mae", primary_direction="min",
                    score_range=(-3.0, 3.0), aux_scores=("valence",))
    m = _Fixed(spec)
    m.log = lambda *a, **k: None
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    m.pred = torch.cat([logits, torch.tensor([[1.0], [5.0], [-2.0]])], dim=1)
    y = torch.tensor([0, 2, 2])
    valence = torch.tensor([0.0, float("nan"), -1.0])  # the middle sample is unlabelled
    b = Batch(x={}, mask={}, y=y, label=y, ids=["a", "b", "c"], groups=["g"] * 3, meta={"valence": valence})
    loss, _ = m._step(b, "train")
    mse = (1.0 ** 2 + 1.0 ** 2) / 2  # only the labelled samples: (1-0)^2 and (-2+1)^2
    assert torch.allclose(loss, F.cross_entropy(logits, y) + 0.25 + mse, atol=1e-6)
    m.val_metrics.update(m.metric_input(m.pred), y, valence)
    v = m.val_metrics.compute()
    assert v["wa"].item() == pytest.approx(2 / 3) and v["val_mse"].item() == pytest.approx(mse)
    assert v["mer_score"].item() == pytest.approx(v["wf1"].item() - 0.25 * mse)
    m.val_metrics.reset()
    m.val_metrics.update(m.metric_input(m.pred), y, torch.full((3,), float("nan")))  # like MER-SEMI: no valence
    v = m.val_metrics.compute()
    assert math.isnan(v["val_mse"].item()) and math.isnan(v["mer_score"].item()) and v["wa"].item() > 0
