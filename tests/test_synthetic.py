"""Tests of the synthetic presets: determinism, shapes, protocol, targets, exact posterior, Bayes limits."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datamodules import Batch, UserInputError, create_datamodule, list_datamodules
from datamodules import synthetic as S

PRESET_NAMES = ("synthetic", "synthetic-mosei", "synthetic-iemocap", "synthetic-physio")
# small sizes so the large-dimensional presets generate in a fraction of a second
SMALL = {
    "synthetic": {},
    "synthetic-mosei": dict(n_train=60, n_val=20, n_test=30, n_groups=6),
    "synthetic-iemocap": dict(n_per_group=24),
    "synthetic-physio": dict(n_per_group=64),
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECTBENCH_CACHE", str(tmp_path / "cache"))


def make(name: str, **kw):
    dm = create_datamodule(name, **{**SMALL[name], **kw})
    dm.setup("fit")
    return dm


def all_rows(dm):
    return [dm.train_set, dm.val_set, dm.test_set]


# -- registry and spec ---------------------------------------------------------------------
def test_presets_registered_and_synthetic():
    names = list_datamodules()
    for name in PRESET_NAMES:
        assert name in names
        dm = create_datamodule(name)
        assert dm.synthetic is True and dm.spec.synthetic is True
        assert dm.spec.name == name
        assert dm.is_available()


def test_spec_details():
    iemo = create_datamodule("synthetic-iemocap").spec
    assert iemo.class_names == ("hap", "neu", "sad", "ang")
    assert iemo.protocol.folds == ("Ses01", "Ses02", "Ses03", "Ses04", "Ses05")
    assert (iemo.primary_metric, iemo.primary_direction) == ("ua", "max")
    phys = create_datamodule("synthetic-physio").spec
    assert phys.class_names[:2] == ("Inspired", "Alert") and phys.class_names[-1] == "Distressed"
    assert phys.protocol.folds == tuple(f"S{i:02d}" for i in range(1, 9))
    assert [m.group for m in phys.modalities] == ["physiological"] * 3 + ["behavioral"]
    mosei = create_datamodule("synthetic-mosei").spec
    assert mosei.task == "regression" and mosei.score_range == (-3.0, 3.0)
    assert mosei.class_names == ("negative", "neutral", "positive")
    syn = create_datamodule("synthetic").spec
    assert syn.protocol.folds == ("holdout",) and syn.primary_metric == "wa"
    assert [(m.name, m.seq_len, m.dim) for m in syn.modalities] == [("text", 12, 16), ("audio", 20, 12),
                                                                    ("vision", None, 8)]


def test_default_sizes():
    dm = create_datamodule("synthetic")
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (3600, 800, 1000)
    groups = set().union(*(set(ds.groups) for ds in all_rows(dm)))
    assert len(groups) == 20
    assert dm.train_set.ids[0].startswith("synthetic-") and len(set(dm.train_set.ids)) == 3600


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_shapes_match_spec(name):
    dm = make(name)
    for ds in all_rows(dm):
        n = len(ds)
        for m in dm.spec.modalities:
            t = ds.x[m.name]
            if m.is_sequence:
                assert t.shape == (n, m.seq_len, m.dim)
                assert ds.lengths[m.name].shape == (n,)
            else:
                assert t.shape == (n, m.dim) and m.name not in ds.lengths
            assert t.dtype == torch.float32
        if dm.spec.task == "distribution":
            assert ds.y.shape == (n, dm.spec.num_classes)
        else:
            assert ds.y.shape == (n,)
        assert torch.equal(ds.label, dm.spec.discretize(ds.y))
        assert set(ds.meta["conflict"].unique().tolist()) <= {0.0, 1.0}
        assert all(i.startswith(f"{name}-") and len(i) == len(name) + 6 for i in ds.ids)


def test_dataloader_batch():
    dm = make("synthetic-iemocap", batch_size=8)
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, Batch)
    assert batch.meta["conflict"].shape == (8,)
    assert batch.x["audio"].dim() == 3 and batch.x["text"].shape == (8, 768)
    assert batch.mask["audio"].dtype == torch.bool


# -- determinism ---------------------------------------------------------------------------
def _same(a, b) -> bool:
    return all(torch.equal(a.x[k], b.x[k]) for k in a.x) and torch.equal(a.y, b.y) and a.ids == b.ids


@pytest.mark.parametrize("name", ["synthetic", "synthetic-physio"])
def test_determinism(name):
    a, b = make(name, data_seed=3), make(name, data_seed=3)
    assert all(_same(x, y) for x, y in zip(all_rows(a), all_rows(b)))
    c = make(name, data_seed=4)
    assert not _same(a.train_set, c.train_set)
    d = make(name, data_seed=3, seed=99, batch_size=7)  # shuffling seed: data unchanged
    assert all(_same(x, y) for x, y in zip(all_rows(a), all_rows(d)))
    assert a.fingerprint() == d.fingerprint() != c.fingerprint()
    assert a.fingerprint() != make(name, data_seed=3, snr_scale=0.5).fingerprint()


def test_rows_do_not_depend_on_fold():
    """The same utterance has the same features whichever fold it is loaded in."""
    a = make("synthetic-iemocap", fold="Ses01")
    b = make("synthetic-iemocap", fold="Ses03")
    rows_a = {i: (a.train_set, j) for j, i in enumerate(a.train_set.ids)}
    found = 0
    for j, i in enumerate(b.test_set.ids):  # Ses03 is in Ses01's training set
        ds, ja = rows_a[i]
        assert torch.equal(ds.x["text"][ja], b.test_set.x["text"][j])
        found += 1
    assert found == len(b.test_set) > 0


# -- sequences, masks, onsets ----------------------------------------------------------------
@pytest.mark.parametrize("name", ["synthetic", "synthetic-mosei", "synthetic-iemocap"])
def test_lengths_and_padding(name):
    dm = make(name)
    for ds in all_rows(dm):
        for m in dm.config.modalities:
            if m.seq_len is None:
                continue
            L = ds.lengths[m.name]
            assert int(L.min()) >= m.min_len and int(L.max()) <= m.seq_len
            assert m.onset < m.min_len
            pad = torch.arange(m.seq_len)[None, :] >= L[:, None]
            assert (ds.x[m.name][pad] == 0).all()
            assert (ds.x[m.name][~pad].abs().sum(-1) > 0).all()
    batch = next(iter(dm.val_dataloader()))
    for m in dm.spec.modalities:
        if m.is_sequence:
            lens = batch.mask[m.name].sum(1)
            assert int(lens.min()) >= 1 and batch.x[m.name].shape[1] == int(lens.max())


def test_noise_only_onset():
    dm = make("synthetic", n_train=3000)
    ds = dm.train_set
    keep = ds.meta["conflict"] == 0  # every modality expresses y
    world = S._world(dm.config, dm.data_seed)
    for m in dm.config.modalities:
        if m.seq_len is None:
            continue
        mu = world.prototypes[m.name][ds.y[keep]]  # (n, D)
        proj = torch.einsum("ntd,nd->nt", ds.x[m.name][keep], mu)  # (n, T)
        assert abs(float(proj[:, : m.onset].mean())) < 0.08
        sig = proj[:, m.onset: m.min_len].mean()
        assert abs(float(sig) - m.amplitude) < 0.06
        assert m.onset >= 1


def test_snr_scale_multiplies_amplitude():
    dm = make("synthetic", n_train=3000, snr_scale=0.0)
    ds = dm.train_set
    world = S._world(dm.config, dm.data_seed)
    proj = (ds.x["vision"] * world.prototypes["vision"][ds.y]).sum(1)
    assert abs(float(proj.mean())) < 0.06  # no signal at all


# -- conflicts -------------------------------------------------------------------------------
def test_conflict_rate():
    dm = make("synthetic", n_train=6000)
    rate = float(dm.train_set.meta["conflict"].mean())
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 6000)
    dm = make("synthetic", conflict_rate=0.5, n_train=2000)
    assert abs(float(dm.train_set.meta["conflict"].mean()) - 0.5) < 0.05
    dm = make("synthetic", conflict_rate=0.0)
    assert float(dm.train_set.meta["conflict"].sum()) == 0.0


def test_conflicting_modality_expresses_another_class():
    dm = make("synthetic", n_train=2000)
    ds = dm.train_set
    world = S._world(dm.config, dm.data_seed)
    conflict = ds.meta["conflict"] == 1
    # in a conflicting sample the vector modality agrees with y only when another modality conflicts
    proj = ds.x["vision"] @ world.prototypes["vision"].T  # (n, K)
    agree = proj.argmax(1) == ds.y
    assert float(agree[~conflict].float().mean()) > float(agree[conflict].float().mean()) + 0.1


def test_exactly_one_modality_conflicts():
    """At high SNR each modality's expressed class is readable: conflicting samples have exactly one
    modality that disagrees with the label, the others none."""
    dm = make("synthetic", snr_scale=5.0, n_train=1500)
    ds = dm.train_set
    disagree = torch.stack([dm.posterior(ds.x, ds.lengths, modalities=[m]).argmax(1) != ds.y
                            for m in ("text", "audio", "vision")]).sum(0)
    conflict = ds.meta["conflict"] == 1
    assert (disagree[conflict] == 1).all() and (disagree[~conflict] == 0).all()
    which = torch.stack([dm.posterior(ds.x, ds.lengths, modalities=[m]).argmax(1) != ds.y
                         for m in ("text", "audio", "vision")])[:, conflict].float().mean(1)
    assert (which > 0.25).all()  # the conflicting modality is picked uniformly


# -- protocol --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["synthetic-iemocap", "synthetic-physio"])
def test_leave_one_out_folds(name):
    spec = create_datamodule(name).spec
    assert spec.protocol.kind == "leave_one_out"
    folds = spec.protocol.folds
    for i, fold in enumerate(folds):
        dm = create_datamodule(name, fold=fold, **SMALL[name])
        idx = dm.split_indices()
        _, unit, groups = dm._layout()
        g = {k: {groups[j] for j in v.tolist()} for k, v in idx.items()}
        assert not (g["train"] & g["val"]) and not (g["train"] & g["test"]) and not (g["val"] & g["test"])
        assert set(unit[idx["test"]].tolist()) == {i}
        assert set(unit[idx["val"]].tolist()) == {(i + 1) % len(folds)}
        assert sum(len(v) for v in idx.values()) == len(groups)
    dm = make(name, fold=folds[-1])  # the last fold validates on the first group
    test_groups, val_groups = set(dm.test_set.groups), set(dm.val_set.groups)
    assert test_groups.isdisjoint(val_groups) and test_groups.isdisjoint(dm.train_set.groups)
    if name == "synthetic-iemocap":
        assert test_groups == {"Ses05F", "Ses05M"} and val_groups == {"Ses01F", "Ses01M"}
    else:
        assert test_groups == {"S08"} and val_groups == {"S01"}
        assert len(dm.test_set) == 64 and torch.bincount(dm.latent("test"), minlength=32).eq(2).all()


def test_holdout_speakers_disjoint():
    dm = make("synthetic-mosei")
    assert dm.resolve_fold() == "holdout"
    g = [set(ds.groups) for ds in all_rows(dm)]
    assert g[0].isdisjoint(g[1]) and g[0].isdisjoint(g[2]) and g[1].isdisjoint(g[2])


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_unknown_fold_raises(name):
    dm = create_datamodule(name, fold="nope", **SMALL[name])
    with pytest.raises(UserInputError):
        dm.setup()


def test_bad_options_raise():
    with pytest.raises(UserInputError):
        create_datamodule("synthetic-iemocap", n_train=10)
    with pytest.raises(UserInputError):
        create_datamodule("synthetic", n_per_group=10)
    with pytest.raises(UserInputError):
        create_datamodule("synthetic", conflict_rate=1.5)
    with pytest.raises(UserInputError):
        create_datamodule("synthetic", snr_scale=-1)
    with pytest.raises(UserInputError):
        create_datamodule("synthetic-physio", n_groups=2)


# -- targets ---------------------------------------------------------------------------------
def test_distribution_targets():
    dm = make("synthetic-physio")
    for ds in all_rows(dm):
        assert (ds.y > 0).all()
        assert torch.allclose(ds.y.sum(1), torch.ones(len(ds)), atol=1e-5)
        assert torch.equal(ds.label, ds.y.argmax(1))
    D = S._world(dm.config, dm.data_seed).dist
    pos, neg = D[:, :5].sum(1), D[:, 5:].sum(1)
    assert (pos[:8] > 0.6).all() and (neg[8:16] > 0.6).all()
    assert ((pos[16:] > 0.2) & (neg[16:] > 0.2)).all()
    # items of a block co-activate: positive-block items correlate positively across clips
    corr = np.corrcoef(D.numpy().T)
    assert corr[:5, :5][~np.eye(5, dtype=bool)].mean() > 0.5


def test_regression_targets():
    dm = make("synthetic-mosei", n_train=600)
    y = torch.cat([ds.y for ds in all_rows(dm)])
    assert y.min() >= -3 and y.max() <= 3
    assert torch.allclose(y * 3, (y * 3).round(), atol=1e-5)
    assert (y == 0).any() and (y > 0).any() and (y < 0).any()
    assert set(dm.train_set.label.tolist()) == {0, 1, 2}
    assert torch.equal(dm.train_set.label[dm.train_set.y == 0], torch.ones(int((dm.train_set.y == 0).sum()),
                                                                            dtype=torch.long))


# -- exact posterior against brute-force enumeration -----------------------------------------
def _brute_posterior(dm, ds, rows, names):
    """p(k | x) by enumerating every conflict configuration with Gaussian densities."""
    c = dm.config
    world = S._world(c, dm.data_seed)
    K, M_all = c.num_latent, len(c.modalities)
    r = c.conflict_rate
    mods = [m for m in c.modalities if m.name in names]
    out = []
    for i in rows:
        def loglik(m, j):  # log N(x | a mu_j on signal steps, I), up to a constant shared by all j
            a = m.amplitude * c.snr_scale
            mu = world.prototypes[m.name][j].double().numpy()
            x = ds.x[m.name][i].double().numpy()
            if m.seq_len is None:
                return -0.5 * ((x - a * mu) ** 2).sum()
            L = int(ds.lengths[m.name][i])
            mean = np.zeros_like(x)
            mean[m.onset:L] = a * mu
            return -0.5 * ((x[:L] - mean[:L]) ** 2).sum()

        ll = {(m.name, j): loglik(m, j) for m in mods for j in range(K)}
        post = []
        for k in range(K):
            # configurations: no conflict, or conflict in any of the M_all modalities with k' != k;
            # a conflict in a modality outside `names` leaves the observed ones expressing k
            terms = [math.log(1 - r) + sum(ll[(m.name, k)] for m in mods)]
            for m_c in c.modalities:
                for k2 in range(K):
                    if k2 == k:
                        continue
                    w = math.log(r / M_all / (K - 1))
                    terms.append(w + sum(ll[(m.name, k2 if m.name == m_c.name else k)] for m in mods))
            post.append(math.log(c.prior[k]) + np.logaddexp.reduce(terms))
        post = np.array(post)
        out.append(np.exp(post - np.logaddexp.reduce(post)))
    return np.array(out)


@pytest.mark.parametrize("names", [None, ["text"], ["audio", "vision"]])
def test_posterior_matches_brute_force(names):
    dm = make("synthetic", n_test=12)
    ds = dm.test_set
    post = dm.posterior(ds.x, ds.lengths, modalities=names)
    assert post.dtype == torch.float64 and post.shape == (12, 4)
    ref = _brute_posterior(dm, ds, range(12), names or [m.name for m in dm.config.modalities])
    np.testing.assert_allclose(post.numpy(), ref, atol=1e-9)


def test_posterior_brute_force_regression_levels():
    dm = make("synthetic-mosei", snr_scale=0.3, n_test=6, n_val=6, n_train=6, n_groups=3)
    ds = dm.test_set
    post = dm.posterior(ds.x, ds.lengths).numpy()
    np.testing.assert_allclose(post, _brute_posterior(dm, ds, range(6), ["text", "audio", "vision"]),
                               atol=1e-8)
    assert np.allclose(post.sum(1), 1.0)


def test_posterior_from_batch_masks():
    dm = make("synthetic", batch_size=16)
    batch = next(iter(dm.test_dataloader()))
    lengths = {m: batch.mask[m].sum(1) for m in ("text", "audio")}
    post = dm.posterior(batch.x, lengths)
    ref = dm.posterior({k: v[:16] for k, v in dm.test_set.x.items()},
                       {k: v[:16] for k, v in dm.test_set.lengths.items()})
    np.testing.assert_allclose(post.numpy(), ref.numpy(), atol=1e-9)


# -- Bayes limits ----------------------------------------------------------------------------
def test_limit_matches_bayes_rule_on_generated_split():
    dm = make("synthetic", n_test=4000)
    lim = dm.limit()
    assert set(lim) >= {"metric", "value", "se", "n_mc", "method"}
    assert lim["metric"] == "wa" and 0.85 <= lim["value"] <= 0.92 and 0 < lim["se"] < 0.005
    ds = dm.test_set
    pred = dm.bayes_predict(ds.x, ds.lengths)
    acc = float((pred == ds.y).float().mean())
    se_test = math.sqrt(lim["value"] * (1 - lim["value"]) / len(ds))
    assert abs(acc - lim["value"]) < 3 * se_test + 3 * lim["se"] + 0.01
    # a clearly worse rule (ignoring the audio modality) scores below the limit
    worse = dm.bayes_predict(ds.x, ds.lengths, modalities=["text", "vision"])
    assert float((worse == ds.y).float().mean()) < lim["value"] - 0.02


def test_mae_limit_matches_bayes_rule_on_generated_split():
    dm = make("synthetic-mosei", n_test=1200, n_train=30, n_val=30, n_groups=6)
    lim = dm.limit(n_mc=3000)
    assert lim["metric"] == "mae" and 0.2 < lim["value"] < 1.0
    ds = dm.test_set
    pred = dm.bayes_predict(ds.x, ds.lengths)
    err = (pred - ds.y).abs()
    assert torch.allclose(pred * 3, (pred * 3).round(), atol=1e-5)  # a median on the 1/3 grid
    assert abs(float(err.mean()) - lim["value"]) < 3 * float(err.std()) / math.sqrt(len(ds)) + 3 * lim["se"]
    mean_pred = torch.from_numpy(dm.posterior(ds.x, ds.lengths).numpy() @ np.arange(-3.0, 4.0)).float()
    assert float(err.mean()) <= float((mean_pred - ds.y).abs().mean()) + 0.01


def test_single_modality_limits_below_full():
    dm = create_datamodule("synthetic")
    full = dm.limit()["value"]
    singles = {m: dm.limit(modalities=[m])["value"] for m in ("text", "audio", "vision")}
    for m, v in singles.items():
        assert 0.45 <= v <= 0.75, (m, v)
        assert v < full - 0.1
    pair = dm.limit(modalities=["text", "audio"])["value"]
    assert max(singles["text"], singles["audio"]) < pair < full
    with pytest.raises(UserInputError):
        dm.limit(modalities=["smell"])


def test_limit_cache(tmp_path):
    dm = create_datamodule("synthetic-iemocap")
    first = dm.limit(n_mc=600)
    files = list((tmp_path / "cache" / "limits").glob("*.json"))
    assert len(files) == 1
    S._LIMIT_CACHE.clear()
    again = dm.limit(n_mc=600)  # read back from disk
    assert again["value"] == first["value"] and again["metric"] == "ua"
    assert 0.6 < first["value"] < 0.95


def test_limit_changes_with_snr():
    lo = create_datamodule("synthetic", snr_scale=0.5).limit(n_mc=20000)["value"]
    hi = create_datamodule("synthetic").limit(n_mc=20000)["value"]
    assert 0.25 < lo < hi - 0.1


def test_chebyshev_lp_beats_posterior_mean():
    dm = make("synthetic-physio")
    ds = dm.test_set
    post = dm.posterior(ds.x, ds.lengths).numpy()[:40]
    D = S._world(dm.config, dm.data_seed).dist.numpy()
    for p in post:
        yhat, loss = S.chebyshev_optimum(p, D)
        assert yhat.min() >= 0 and abs(yhat.sum() - 1) < 1e-9
        mean = p @ D
        mean_loss = float((p * np.abs(D - mean).max(1)).sum())
        assert loss <= mean_loss + 1e-7
    # on at least some samples the LP is strictly better than the posterior mean
    gains = [float((p * np.abs(D - p @ D).max(1)).sum()) - S.chebyshev_optimum(p, D)[1] for p in post]
    assert max(gains) > 1e-4
    lim = dm.limit(n_mc=150)
    assert lim["metric"] == "chebyshev" and 0 < lim["value"] < 0.08
    pred = dm.bayes_predict({k: v[:5] for k, v in ds.x.items()}, {})
    assert pred.shape == (5, 10) and torch.allclose(pred.sum(1), torch.ones(5), atol=1e-5)


def test_chebyshev_optimum_simple_cases():
    D = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    yhat, loss = S.chebyshev_optimum(np.array([1.0, 0.0]), D)
    assert loss == 0.0 and np.allclose(yhat, D[0])
    yhat, loss = S.chebyshev_optimum(np.array([0.5, 0.5]), D)
    assert loss == pytest.approx(0.25, abs=1e-9)  # yhat = (.25, .5, .25) is 0.25 from both
