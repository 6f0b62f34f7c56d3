"""Classic fusion baselines: unimodal, TFN, LMF and the EDL MLP (model-specific behaviour)."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from datamodules.batch import Sample, collate
from datamodules.registry import create_datamodule
from datamodules.spec import DatasetSpec, ModalitySpec, Protocol, UserInputError
from models.registry import create_model

MODELS = ("unimodal", "tfn", "lmf", "edl_mlp")
PRESETS = {  # tiny sizes: a few dozen samples per split
    "synthetic": dict(n_train=48, n_val=16, n_test=16, n_groups=3),
    "synthetic-mosei": dict(n_train=24, n_val=8, n_test=8, n_groups=3),
    "synthetic-iemocap": dict(n_per_group=6),
    "synthetic-physio": dict(n_per_group=6),
}
_BATCHES: dict = {}


def _data(name, **sizes):
    dm = create_datamodule(name, batch_size=16, **(sizes or PRESETS[name]))
    dm.setup("fit")
    return dm


def _batch(name):
    if name not in _BATCHES:
        dm = _data(name)
        _BATCHES[name] = (dm.spec, next(iter(dm.train_eval_dataloader())))
    return _BATCHES[name]


def _loss(model, pred, batch):
    spec = model.spec
    n_main = spec.target_dim - len(spec.aux_scores)
    aux = sum(model.aux_score_losses(pred, batch).values()) if spec.aux_scores else 0.0
    return model.task_loss(pred[:, :n_main] if spec.aux_scores else pred, batch.y) + aux


@pytest.mark.parametrize("model,data", list(itertools.product(MODELS, PRESETS)))
def test_forward_backward_on_every_preset(model, data):
    torch.manual_seed(0)
    spec, batch = _batch(data)
    m = create_model(model, spec, **({"seq_encoder": "lstm"} if model in ("tfn", "lmf") and data == "synthetic-mosei"
                                      else {}))
    m.train()
    out = m(batch)
    B = len(batch)
    assert out.pred.shape == ((B,) if spec.task == "regression" else (B, spec.num_classes))
    loss = _loss(m, out.pred, batch)
    assert math.isfinite(loss.item())
    loss.backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def _aux_spec():
    return DatasetSpec("toy-mer", "classification", ("a", "b", "c"),
                       (ModalitySpec("audio", 5, 7, "audio"), ModalitySpec("text", 4, None, "text")),
                       Protocol("holdout", ("holdout",)), "wa", "max", aux_scores=("valence",))


def _aux_batch(n=6):
    g = torch.Generator().manual_seed(1)
    samples = [Sample(x={"audio": torch.randn(2 + i % 5, 5, generator=g), "text": torch.randn(4, generator=g)},
                      y=torch.tensor(i % 3), label=i % 3, id=f"s{i}", group="g",
                      meta={"valence": float("nan") if i % 2 else 0.5 * i}) for i in range(n)]
    return collate(samples)


@pytest.mark.parametrize("model", MODELS)
def test_aux_scores_widen_the_prediction(model):
    spec, batch = _aux_spec(), _aux_batch()
    m = create_model(model, spec)
    out = m(batch)
    assert out.pred.shape == (6, spec.target_dim) == (6, 4)
    loss = _loss(m, out.pred, batch)
    assert math.isfinite(loss.item())
    loss.backward()


@pytest.mark.parametrize("model", MODELS)
def test_padding_is_ignored(model):
    spec, batch = _aux_spec(), _aux_batch()
    kw = {"seq_encoder": "lstm"} if model in ("unimodal", "tfn", "lmf") else {}
    m = create_model(model, spec, **kw).eval()
    before = m(batch).pred
    batch.x["audio"][~batch.mask["audio"]] = 1e3  # garbage in padded steps
    assert torch.allclose(m(batch).pred, before, atol=1e-5)


# -- TFN ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_mod", [1, 2, 3, 4])
def test_tfn_fused_tensor_contains_every_unimodal_vector(n_mod):
    from models.tfn import TFN

    dims = [3, 2, 4, 1][:n_mod]
    hs = [torch.randn(5, d) + 2.0 for d in dims]
    z = TFN.fuse(hs)
    assert z.shape == (5, math.prod(d + 1 for d in dims))
    Z = z.view(5, *[d + 1 for d in dims])
    ones_corner = tuple(dims)
    assert torch.allclose(Z[(slice(None),) + ones_corner], torch.ones(5))
    for i, (h, d) in enumerate(zip(hs, dims)):
        idx = list(ones_corner)
        idx[i] = slice(0, d)  # h_m ⊗ 1 ⊗ ... ⊗ 1 is a sub-block of Z
        assert torch.allclose(Z[(slice(None),) + tuple(idx)], h)
    if n_mod >= 2:  # and the bimodal block is the outer product h_1 h_2^T
        idx = (slice(None), slice(0, dims[0]), slice(0, dims[1])) + tuple(dims[2:])
        assert torch.allclose(Z[idx], hs[0].unsqueeze(-1) * hs[1].unsqueeze(1))


def test_tfn_sizes_follow_the_options_and_physio_stays_tractable():
    spec, _ = _batch("synthetic-physio")
    m = create_model("tfn", spec)
    assert m.fused_dim == 9 ** 4 and m.post[1].in_features == 9 ** 4
    m = create_model("tfn", spec, other_dim=4, dims="video=2")
    assert m.fused_dim == 5 * 5 * 5 * 3
    spec3, _ = _batch("synthetic")
    assert create_model("tfn", spec3).fused_dim == 33 * 9 * 9
    assert create_model("tfn", spec3, modalities="audio").fused_dim == 9
    with pytest.raises(UserInputError, match="dims="):
        create_model("tfn", spec3, dims="eeg=4")
    with pytest.raises(UserInputError, match="seq_encoder"):
        create_model("tfn", spec3, seq_encoder="gru")


# -- LMF ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("rank,modalities", [(1, "text"), (3, "text,audio"), (4, None)])
def test_lmf_equals_the_full_tensor_fusion_with_the_equivalent_weight(rank, modalities):
    torch.manual_seed(0)
    spec, _ = _batch("synthetic")
    m = create_model("lmf", spec, rank=rank, text_dim=3, other_dim=2, fusion_dim=5, modalities=modalities)
    with torch.no_grad():
        m.fusion_bias.normal_()
    hs = [torch.randn(7, m.dims[mod.name]) for mod in m.used_modalities]
    W = m.full_weight()  # (d_1+1, ..., d_M+1, o)
    assert W.shape == tuple(d + 1 for d in m.dims.values()) + (5,)
    Z = hs[0].new_ones(7, 1)
    for h in hs:  # explicit TFN tensor, then W · vec(Z) + b
        Z = (Z.unsqueeze(-1) * torch.cat([h, torch.ones(7, 1)], -1).unsqueeze(1)).flatten(1)
    full = Z @ W.reshape(-1, 5) + m.fusion_bias
    assert torch.allclose(m.fuse(hs), full, atol=1e-5)
    # and the weight is genuinely rank-limited: a full-rank W would not be representable
    if len(hs) == 2:
        s = torch.linalg.svdvals(W[..., 0])
        assert int((s > 1e-5 * s[0]).sum()) <= rank


def test_lmf_options():
    spec, batch = _batch("synthetic-physio")
    m = create_model("lmf", spec, fusion_dim=0)  # the paper's form: the fused vector is the prediction
    assert m.fuse([torch.zeros(2, d) for d in m.dims.values()]).shape == (2, spec.target_dim)
    assert m(batch).pred.shape == (len(batch), spec.target_dim)
    with pytest.raises(UserInputError, match="rank"):
        create_model("lmf", spec, rank=0)


# -- unimodal -----------------------------------------------------------------------------------
@pytest.mark.parametrize("data", ["synthetic", "synthetic-physio"])
def test_unimodal_ignores_the_other_modalities(data):
    torch.manual_seed(0)
    spec, batch = _batch(data)
    for name in spec.modality_names:
        m = create_model("unimodal", spec, modality=name).eval()
        before = m(batch).pred
        for other in spec.modality_names:
            x = batch.x[other]
            batch.x[other] = torch.randn_like(x) * 10
            after = m(batch).pred
            batch.x[other] = x
            if other == name:
                assert not torch.allclose(after, before)
            else:
                assert torch.equal(after, before)


def test_unimodal_options():
    spec, _ = _batch("synthetic")
    assert create_model("unimodal", spec).modality.name == "text"  # first in spec order
    assert create_model("unimodal", spec, modalities="vision").modality.name == "vision"
    with pytest.raises(UserInputError, match="text, audio, vision"):
        create_model("unimodal", spec, modality="eeg")
    with pytest.raises(UserInputError, match="exactly one"):
        create_model("unimodal", spec, modalities="text,audio")
    with pytest.raises(UserInputError, match="exactly one"):
        create_model("unimodal", spec, modality="text", modalities="audio")


# -- EDL MLP ------------------------------------------------------------------------------------
def test_edl_mlp_beats_the_uniform_distribution_on_physio():
    torch.manual_seed(0)
    dm = _data("synthetic-physio", n_per_group=100)  # 600 training samples
    m = create_model("edl_mlp", dm.spec)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    train = list(dm.train_dataloader())
    m.train()
    for _ in range(2):  # short: 913 input features overfit a few hundred samples within ~3 epochs
        for b in train:
            opt.zero_grad()
            m.task_loss(m(b).pred, b.y).backward()
            opt.step()
    m.eval()
    kl_model, kl_uniform, n = 0.0, 0.0, 0
    with torch.no_grad():
        for b in dm.val_dataloader():
            logp = F.log_softmax(m(b).pred, -1)
            uniform = torch.full_like(logp, -math.log(dm.spec.num_classes))
            kl_model += float(F.kl_div(logp, b.y, reduction="sum"))
            kl_uniform += float(F.kl_div(uniform, b.y, reduction="sum"))
            n += len(b)
    assert kl_model / n < 0.9 * kl_uniform / n  # seen: 0.195 vs 0.254


def test_edl_mlp_is_the_max_ent_model_with_one_layer():
    spec, batch = _batch("synthetic-physio")
    m = create_model("edl_mlp", spec, layers=1)
    assert [type(x).__name__ for x in m.net] == ["Linear"]
    assert m.net[0].in_features == sum(mod.dim for mod in spec.modalities)
    with pytest.raises(UserInputError, match="activation"):
        create_model("edl_mlp", spec, activation="swish")
