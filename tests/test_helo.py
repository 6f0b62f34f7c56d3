"""HeLo: shapes at DMER sizes, gradients, the batched GW-IPOT plan (against POT), the quirk options,
and forward+backward on every synthetic preset."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datamodules.batch import Sample, collate
from datamodules.registry import create_datamodule
from datamodules.spec import DatasetSpec, ModalitySpec, Protocol, UserInputError
from models._ot import (cosine_cost_graph, gw_ipot, gw_linearised_cost, gw_objective, heterogeneity_plan,
                        ipot_uniform)
from models.helo import HeLo, resample_tokens
from models.registry import create_model

ot = pytest.importorskip("ot")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Many tiny ops: on a shared 2-core machine OpenMP's 2 threads make each ~100× slower; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

DMER = DatasetSpec(
    name="dmer-toy", task="distribution", class_names=tuple(f"c{i}" for i in range(10)),
    modalities=(ModalitySpec("eeg", 90, None, "physiological"), ModalitySpec("gsr", 28, None, "physiological"),
                ModalitySpec("ppg", 27, None, "physiological"), ModalitySpec("video", 768, None, "behavioral")),
    protocol=Protocol("leave_one_out", ("S01", "S02")), primary_metric="chebyshev", primary_direction="min",
)


def random_batch(spec, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(b):
        x = {}
        for m in spec.modalities:
            if m.is_sequence:
                t = int(torch.randint(max(1, m.seq_len // 3), m.seq_len + 1, (1,), generator=g))
                x[m.name] = torch.randn(t, m.dim, generator=g)
            else:
                x[m.name] = torch.randn(m.dim, generator=g)
        if spec.task == "distribution":
            y = torch.softmax(torch.randn(spec.num_classes, generator=g), -1)
        elif spec.task == "classification":
            y = torch.tensor(i % spec.num_classes)
        else:
            y = torch.tensor(float(torch.empty(()).uniform_(-3, 3, generator=g)))
        meta = {"conflict": float(i % 2)}
        meta.update({a: float(i) for a in spec.aux_scores})
        samples.append(Sample(x=x, y=y, label=int(spec.discretize(y.unsqueeze(0))[0]), id=f"s{i}",
                              group="g", meta=meta))
    return collate(samples)


# -- model --------------------------------------------------------------------------------------
def test_shapes_and_parameter_count_at_dmer_sizes():
    torch.manual_seed(0)
    m = HeLo(DMER)
    batch = random_batch(DMER)
    out = m(batch)
    assert out.pred.shape == (4, 10)
    assert out.embeddings["plan"].shape == (4, 36, 36)
    assert out.embeddings["label_correlation"].shape == (4, 10, 10)
    assert m.group_a == ("eeg", "gsr", "ppg") and m.group_b == ("video",)
    assert m.query_tokeniser.kind == "channel"
    # official layer shapes: 4,039,716 parameters, plus the learned (C, d) label embedding
    assert m.num_parameters() == 4_039_716 + 10 * 128
    assert set(out.aux_losses) == {"corr_align"}


def test_eeg_tokens_are_row_major_channels():
    m = HeLo(DMER)
    x = torch.arange(90.0).view(1, 90)
    tok = m.query_tokeniser
    expected = tok.proj(x.view(1, 18, 5))  # token c sees columns 5c..5c+4
    assert torch.allclose(tok(x, torch.ones(1, dtype=torch.bool)), expected)
    assert torch.allclose(tok(x, None)[0, 1], tok.proj(torch.arange(5.0, 10.0)))


def test_every_block_and_the_label_embedding_get_gradients():
    torch.manual_seed(0)
    m = HeLo(DMER)
    m.train()
    out = m(random_batch(DMER, b=6))
    loss = m.task_loss(out.pred, random_batch(DMER, b=6).y) + sum(out.aux_losses.values())
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []
    assert isinstance(m.label_embedding, torch.nn.Parameter)
    # the alignment loss alone reaches the label embedding
    m.zero_grad()
    m(random_batch(DMER)).aux_losses["corr_align"].backward()
    assert m.label_embedding.grad.abs().sum() > 0


def test_eval_is_deterministic_and_dropkey_at_eval_is_not():
    torch.manual_seed(0)
    batch = random_batch(DMER)
    m = HeLo(DMER, d_model=32).eval()
    with torch.no_grad():
        assert torch.equal(m(batch).pred, m(batch).pred)
    q = HeLo(DMER, d_model=32, dropkey_at_eval=True).eval()
    with torch.no_grad():
        assert not torch.allclose(q(batch).pred, q(batch).pred)
    r = HeLo(DMER, d_model=32, label_embedding="random_per_forward").eval()
    assert r.label_embedding is None
    with torch.no_grad():
        assert not torch.allclose(r(batch).pred, r(batch).pred)


def test_label_correlation_options():
    m = HeLo(DMER, d_model=32)
    r = m(random_batch(DMER)).embeddings["label_correlation"]
    assert torch.allclose(torch.diagonal(r, dim1=1, dim2=2), torch.ones(4, 10), atol=1e-5)  # cosine
    c = HeLo(DMER, d_model=32, label_corr_norm_axis="class")
    c.label_embedding.data.copy_(m.label_embedding.data)
    rc = c(random_batch(DMER)).embeddings["label_correlation"]
    assert not torch.allclose(torch.diagonal(rc, dim1=1, dim2=2), torch.ones(4, 10), atol=1e-2)
    en = F.normalize(m.label_embedding.data, dim=0)
    assert torch.allclose(rc[0], en @ en.T, atol=1e-5)
    n = HeLo(DMER, label_embedding_init="normal")
    assert n.label_embedding.abs().max() < 0.2 and (n.label_embedding < 0).any()
    assert (m.label_embedding >= 0).all()


def test_ground_truth_correlation_per_sample_and_dataset():
    batch = random_batch(DMER)
    m = HeLo(DMER, d_model=16)
    r = m.ground_truth_correlation(batch)
    yn = batch.y / batch.y.norm(dim=-1, keepdim=True)
    assert torch.allclose(r[2], torch.outer(yn[2], yn[2]))
    d = HeLo(DMER, d_model=16, gt_correlation="dataset").train()
    first = d.ground_truth_correlation(batch)
    assert torch.allclose(first[0], r.mean(0)) and torch.allclose(first[3], r.mean(0))
    other = random_batch(DMER, b=2, seed=5)
    second = d.ground_truth_correlation(other)  # running mean over the 6 samples seen
    r2 = m.ground_truth_correlation(other)
    assert torch.allclose(second[0], (r.sum(0) + r2.sum(0)) / 6, atol=1e-6)
    d.eval()
    d.ground_truth_correlation(batch)
    assert int(d.gt_corr_count) == 6  # evaluation does not update the buffer


def test_kl_sum_option_makes_total_equal_summed_kl():
    torch.manual_seed(0)
    batch = random_batch(DMER, b=5)
    m = HeLo(DMER, d_model=32, kl_reduction="sum").eval()
    with torch.no_grad():
        out = m(batch)
        base = m.task_loss(out.pred, batch.y)
        summed = F.kl_div(F.log_softmax(out.pred, -1), batch.y, reduction="sum")
        assert torch.allclose(base + out.aux_losses["kl_sum_extra"], summed, rtol=1e-5)


def test_ot_threshold_scope_batch_couples_samples():
    torch.manual_seed(0)
    zp, zb = torch.randn(1, 12, 16, dtype=torch.float64), torch.randn(1, 12, 16, dtype=torch.float64)
    base = torch.randn(1, 6, 16, dtype=torch.float64)
    mate = torch.cat([base, -base], dim=1)  # antipodal tokens: cosine distance 2 = a larger batch maximum
    both_p, both_b = torch.cat([zp, mate]), torch.cat([zb, mate])
    alone = {s: heterogeneity_plan(zp, zb, scope=s)[0] for s in ("sample", "batch")}
    paired = {s: heterogeneity_plan(both_p, both_b, scope=s)[0] for s in ("sample", "batch")}
    assert torch.allclose(alone["sample"], paired["sample"], atol=1e-12)
    assert (alone["batch"] - paired["batch"]).abs().max() > 1e-2 * alone["batch"].max()
    assert torch.allclose(alone["sample"], alone["batch"], atol=1e-12)  # one sample: the scopes agree
    assert HeLo(DMER, d_model=16, ot_threshold_scope="batch").ot_scope == "batch"
    with pytest.raises(ValueError, match="scope"):
        cosine_cost_graph(zp, scope="dataset")


def test_bad_options_raise_user_errors():
    with pytest.raises(UserInputError, match="label_embedding"):
        HeLo(DMER, label_embedding="frozen")
    with pytest.raises(UserInputError, match="kl_reduction"):
        create_model("helo", DMER, kl_reduction="mean")
    with pytest.raises(UserInputError, match="d_model"):
        HeLo(DMER, d_model=130, heads=4)


def test_optimizer_is_adam_with_exponential_decay():
    cfg = HeLo(DMER, d_model=16).configure_optimizers()
    assert type(cfg["optimizer"]) is torch.optim.Adam
    assert cfg["optimizer"].defaults["weight_decay"] == 1e-5
    assert isinstance(cfg["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.ExponentialLR)
    assert cfg["lr_scheduler"]["scheduler"].gamma == 0.99 and cfg["lr_scheduler"]["interval"] == "epoch"
    assert HeLo.RECIPE == {"max_epochs": 300, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-5, "patience": 20}


def test_resample_tokens_pools_valid_steps_only():
    x = torch.arange(8.0).view(1, 8, 1).repeat(2, 1, 1)
    mask = torch.tensor([[True] * 8, [True] * 4 + [False] * 4])
    x[1, 4:] = 1000.0
    out = resample_tokens(x, mask, 4)
    assert out[0, :, 0].tolist() == [0.5, 2.5, 4.5, 6.5]
    assert out[1, :, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert resample_tokens(x[:1, :2], None, 4)[0, :, 0].tolist() == [0.0, 0.0, 1.0, 1.0]  # upsampling repeats


@pytest.mark.parametrize("preset", ["synthetic", "synthetic-mosei", "synthetic-iemocap", "synthetic-physio"])
def test_runs_on_every_synthetic_preset(preset):
    torch.manual_seed(0)
    spec = create_datamodule(preset).spec
    m = create_model("helo", spec, d_model=32, n_tokens=6)
    batch = random_batch(spec, b=4)
    out = m(batch)
    if spec.task == "regression":
        assert out.pred.shape == (4,)
        lo, hi = spec.score_range
        assert (out.pred >= lo).all() and (out.pred <= hi).all()
    else:
        assert out.pred.shape == (4, spec.target_dim)
    loss = m.task_loss(out.pred, batch.y) + sum(out.aux_losses.values())
    loss.backward()
    assert all(p.grad is not None for p in m.parameters())
    assert out.embeddings["plan"].shape[-2:] == (m.n_phys, m.n_phys)


def test_aux_scores_and_single_modality():
    spec = DatasetSpec(
        name="mer-toy", task="classification", class_names=("a", "b", "c"),
        modalities=(ModalitySpec("audio", 12, 7, "audio"), ModalitySpec("text", 16, None, "text")),
        protocol=Protocol("holdout", ("holdout",)), primary_metric="wa", primary_direction="max",
        aux_scores=("valence",))
    m = HeLo(spec, d_model=16, n_tokens=4)
    out = m(random_batch(spec))
    assert out.pred.shape == (4, 4) and m.query_tokeniser.kind == "resample"
    single = HeLo(spec, d_model=16, n_tokens=4, modalities="text")
    o = single(random_batch(spec))
    assert single.group_b == () and "plan" not in o.embeddings and o.pred.shape == (4, 4)
    phys = HeLo(DMER, d_model=16, modalities="eeg,gsr")  # physiological only: no OT, no behavioural stream
    assert phys(random_batch(DMER)).pred.shape == (4, 10) and phys.behavioral_proj is None


# -- batched OT ---------------------------------------------------------------------------------
def test_plan_marginals_and_non_negativity():
    torch.manual_seed(0)
    zp, zb = torch.randn(8, 36, 128), torch.randn(8, 36, 128)  # DMER width
    t = heterogeneity_plan(zp, zb)
    assert t.shape == (8, 36, 36) and not t.requires_grad
    assert (t >= 0).all()
    assert torch.allclose(t.sum(-1), torch.full((8, 36), 1 / 36), atol=1e-4)
    assert torch.allclose(t.sum(-2), torch.full((8, 36), 1 / 36), atol=1e-4)
    # rectangular plans: columns exact after each Sinkhorn step, rows approximate after 20 steps
    # and converging with more inner steps
    zr, zs = torch.randn(3, 10, 8, dtype=torch.float64), torch.randn(3, 14, 8, dtype=torch.float64)
    r = heterogeneity_plan(zr, zs)
    assert torch.allclose(r.sum(-2), torch.full((3, 14), 1 / 14, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(r.sum(-1), torch.full((3, 10), 0.1, dtype=torch.float64), atol=1e-2)
    long = heterogeneity_plan(zr, zs, inner=500)
    assert torch.allclose(long.sum(-1), torch.full((3, 10), 0.1, dtype=torch.float64), atol=1e-4)


def test_plan_is_permutation_equivariant_and_per_sample():
    torch.manual_seed(0)
    zp, zb = torch.randn(5, 12, 16, dtype=torch.float64), torch.randn(5, 12, 16, dtype=torch.float64)
    t = heterogeneity_plan(zp, zb)
    perm = torch.randperm(12)
    tp = heterogeneity_plan(zp, zb[:, perm])
    assert torch.allclose(tp, t[:, :, perm], atol=1e-10)
    alone = heterogeneity_plan(zp[2:3], zb[2:3])
    assert torch.allclose(alone[0], t[2], atol=1e-12)
    other = heterogeneity_plan(torch.cat([zp[2:3], 5 * torch.randn(3, 12, 16, dtype=torch.float64)]),
                               torch.cat([zb[2:3], torch.randn(3, 12, 16, dtype=torch.float64)]))
    assert torch.allclose(other[0], t[2], atol=1e-12)


def _reference_gw_ipot(c1, c2, beta=0.1, outer=5, inner=20):
    """Per-sample GW-IPOT with POT's square-loss decomposition (init_matrix / tensor_product) and a
    literal numpy IPOT (no cost shift)."""
    n, m = len(c1), len(c2)
    p, q = np.ones(n) / n, np.ones(m) / m
    const, h1, h2 = ot.gromov.init_matrix(c1, c2, p, q, loss_fun="square_loss")
    gamma = np.outer(p, q)
    for _ in range(outer):
        cost = ot.gromov.tensor_product(const, h1, h2, gamma)
        a = np.exp(-cost / beta)
        t, sigma = np.ones((n, m)), np.ones(m) / m
        for _ in range(inner):
            qq = a * t
            delta = 1 / (n * qq @ sigma)
            sigma = 1 / (m * qq.T @ delta)
            t = delta[:, None] * qq * sigma[None, :]
        gamma = t
    return gamma


def test_batched_solver_matches_per_sample_reference_built_on_pot():
    torch.manual_seed(0)
    zp, zb = torch.randn(4, 9, 6, dtype=torch.float64), torch.randn(4, 11, 6, dtype=torch.float64)
    cs, ct = cosine_cost_graph(zp), cosine_cost_graph(zb)
    t = gw_ipot(cs, ct)
    for i in range(4):
        ref = _reference_gw_ipot(cs[i].numpy(), ct[i].numpy())
        assert np.allclose(t[i].numpy(), ref, atol=1e-10)
        # our linearised cost equals POT's square-loss tensor product
        p, q = np.ones(9) / 9, np.ones(11) / 11
        const, h1, h2 = ot.gromov.init_matrix(cs[i].numpy(), ct[i].numpy(), p, q, loss_fun="square_loss")
        assert np.allclose(gw_linearised_cost(cs[i:i + 1], ct[i:i + 1], t[i:i + 1])[0].numpy(),
                           ot.gromov.tensor_product(const, h1, h2, t[i].numpy()))
        # our GW value equals POT's gwloss (built with the plan's own marginals)
        ti = t[i].numpy()
        const2, h12, h22 = ot.gromov.init_matrix(cs[i].numpy(), ct[i].numpy(), ti.sum(1), ti.sum(0),
                                                 loss_fun="square_loss")
        assert math.isclose(float(gw_objective(cs[i:i + 1], ct[i:i + 1], t[i:i + 1])),
                            float(ot.gromov.gwloss(const2, h12, h22, ti)), rel_tol=1e-9, abs_tol=1e-12)


def test_recovers_known_permutation_like_pot():
    rng = np.random.default_rng(1)
    batch_cs, batch_ct, perms = [], [], []
    for _ in range(3):
        pts = rng.normal(size=(8, 2))
        d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        d = 2 * d / d.max()
        perm = rng.permutation(8)
        batch_cs.append(d)
        batch_ct.append(d[perm][:, perm])
        perms.append(np.argsort(perm))  # source i matches target argsort(perm)[i]
    cs, ct = torch.tensor(np.stack(batch_cs)), torch.tensor(np.stack(batch_ct))
    t = gw_ipot(cs, ct)
    p = np.ones(8) / 8
    for i in range(3):
        assert t[i].argmax(1).tolist() == perms[i].tolist()
        assert (t[i].max(1).values > 0.5 / 8).all()  # the mass sits mostly on the permutation
        pot = ot.gromov.gromov_wasserstein(batch_cs[i], batch_ct[i], p, p, "square_loss")
        assert pot.argmax(1).tolist() == perms[i].tolist()
        assert float(gw_objective(cs[i:i + 1], ct[i:i + 1], t[i:i + 1])) < 0.01


def test_gw_objective_close_to_pot_on_random_graphs():
    torch.manual_seed(3)
    a, b = torch.randn(5, 10, 5, dtype=torch.float64), torch.randn(5, 12, 5, dtype=torch.float64)
    cs, ct = cosine_cost_graph(a), cosine_cost_graph(b)
    t = gw_ipot(cs, ct)
    ours = gw_objective(cs, ct, t)
    p, q = np.ones(10) / 10, np.ones(12) / 12
    indep = gw_objective(cs, ct, torch.tensor(np.outer(p, q)).expand(5, -1, -1))
    for i in range(5):
        pot = ot.gromov.gromov_wasserstein(cs[i].numpy(), ct[i].numpy(), p, q, "square_loss")
        pot_val = float(gw_objective(cs[i:i + 1], ct[i:i + 1], torch.tensor(pot)[None]))
        assert float(ours[i]) <= 1.3 * pot_val
        assert float(ours[i]) < 0.6 * float(indep[i])


def test_ipot_uniform_solves_a_plain_ot_problem():
    # a cost whose optimal plan is the identity: IPOT must concentrate on the diagonal
    cost = (1.0 - torch.eye(6, dtype=torch.float64)).unsqueeze(0)
    t = ipot_uniform(cost, beta=0.1, iters=50)
    assert torch.allclose(t[0], torch.eye(6, dtype=torch.float64) / 6, atol=1e-6)
