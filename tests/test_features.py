"""The ``features`` datamodule (bring your own features): spec and batches read from the arrays,
labels mapped by name, the two protocols, strict validation with one clear error per problem,
non-finite handling, fingerprints, and ``bench run`` / ``bench info`` end to end."""
import shutil

import numpy as np
import pytest
import torch

import datamodules.features as features
from benchmarks.cli import main
from benchmarks.records import read_record
from datamodules.batch import collate
from datamodules.features import FeaturesDataModule
from datamodules.io import DataError
from datamodules.spec import SIGN_CLASSES, UserInputError
from tests.fixtures_features import (CLASSES, PANAS, read_manifest, write_classification, write_distribution,
                                     write_manifest, write_regression)


@pytest.fixture
def cls_dir(tmp_path):
    return write_classification(tmp_path / "cls")


@pytest.fixture
def reg_dir(tmp_path):
    return write_regression(tmp_path / "reg")


@pytest.fixture
def dist_dir(tmp_path):
    return write_distribution(tmp_path / "dist")


def loaded(folder, **kw):
    dm = FeaturesDataModule(data_dir=str(folder), **kw)
    dm.setup("fit")
    return dm


# -- spec, labels, batches ----------------------------------------------------------------------
def test_classification_spec_is_read_from_the_manifest_and_arrays(cls_dir):
    dm = loaded(cls_dir)
    s = dm.spec
    assert s.name == "toy-emotions" and s.task == "classification" and s.class_names == tuple(CLASSES)
    assert [(m.name, m.dim, m.seq_len, m.group) for m in s.modalities] == [
        ("audio", 6, 10, "audio"), ("text", 5, None, "text"), ("video", 3, 4, "visual")]
    assert s.protocol.kind == "holdout" and s.protocol.folds == ("holdout",)
    assert (s.primary_metric, s.primary_direction) == ("wa", "max") and not s.synthetic
    assert dict(s.extra)["description"] == "fixture"
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (48, 12, 12)
    split = np.load(cls_dir / "split.npy")
    ids = np.load(cls_dir / "ids.npy")
    assert dm.test_set.ids == ids[split == "test"].tolist()
    assert FeaturesDataModule.is_available(str(cls_dir)) and not FeaturesDataModule.is_available(str(cls_dir.parent))
    assert not FeaturesDataModule.is_available(None)


def test_string_labels_are_mapped_by_name_and_int_labels_index_classes(cls_dir):
    names = np.load(cls_dir / "labels.npy")
    ids = np.load(cls_dir / "ids.npy").tolist()
    dm = loaded(cls_dir)
    for ds in (dm.train_set, dm.val_set, dm.test_set):
        rows = [ids.index(i) for i in ds.ids]
        assert [CLASSES[j] for j in ds.label.tolist()] == names[rows].tolist()
        assert torch.equal(ds.y, ds.label)
    # the same labels as integer indices give the same targets
    np.save(cls_dir / "labels.npy", np.array([CLASSES.index(v) for v in names], dtype=np.int32))
    dm2 = loaded(cls_dir)
    assert torch.equal(dm2.train_set.label, dm.train_set.label)
    assert any("integer indices" in n for n in dm2.notes()) and any("mapped by name" in n for n in dm.notes())
    # reordering classes in the manifest re-maps string labels by name
    m = read_manifest(cls_dir)
    m["classes"] = list(reversed(CLASSES))
    np.save(cls_dir / "labels.npy", names)
    write_manifest(cls_dir, m)
    dm3 = loaded(cls_dir)
    assert [dm3.spec.class_names[j] for j in dm3.train_set.label.tolist()] == \
           [CLASSES[j] for j in dm.train_set.label.tolist()]


def test_batches_masks_come_from_lengths_and_padding_never_leaks(cls_dir):
    audio = np.load(cls_dir / "audio.npy")
    lengths = np.load(cls_dir / "audio_len.npy")
    text = np.load(cls_dir / "feats.npz")["text"]
    ids = np.load(cls_dir / "ids.npy").tolist()
    dm = loaded(cls_dir, batch_size=16)
    ds = dm.train_set
    idx = [5, 0, 17, 3, 40]
    fast, slow = ds.__getitems__(idx), collate([ds[i] for i in idx])
    rows = [ids.index(ds.ids[i]) for i in idx]
    T = int(lengths[rows].max())
    expected_mask = torch.arange(T)[None, :] < torch.as_tensor(lengths[rows])[:, None]
    for b in (fast, slow):
        assert torch.equal(b.mask["audio"], expected_mask)
        assert b.x["audio"].dtype == torch.float32 and b.x["audio"].shape == (5, T, 6)
        for j, r in enumerate(rows):
            L = int(lengths[r])
            assert torch.equal(b.x["audio"][j, :L], torch.from_numpy(audio[r, :L]))
            assert (b.x["audio"][j, L:] == 0).all()  # the file holds 7.0 there
        assert torch.allclose(b.x["text"], torch.from_numpy(text[rows]).float())
        assert b.x["text"].dtype == torch.float32 and b.mask["text"].all()
        assert b.mask["video"].shape == (5, 4) and b.mask["video"].all()  # no lengths: every step valid
    for name in fast.x:
        assert torch.equal(fast.x[name], slow.x[name]) and torch.equal(fast.mask[name], slow.mask[name])
    assert fast.ids == slow.ids and torch.equal(fast.label, slow.label)
    # the loader yields the same batches and every split shares the (memory-mapped) arrays
    batch = next(iter(dm.val_dataloader()))
    assert batch.x["audio"].shape[0] == 12 and batch.mask["audio"].sum(1).tolist() == \
           [int(lengths[ids.index(i)]) for i in batch.ids]
    assert dm.train_set.arrays["audio"] is dm.test_set.arrays["audio"]
    assert dm.train_set.x["audio"].shape == (48, 10, 6) and dm.train_set.lengths["audio"].shape == (48,)
    sub = ds.subset(torch.tensor([2, 0]))
    assert sub.ids == [ds.ids[2], ds.ids[0]] and torch.equal(sub[0].x["audio"], ds[2].x["audio"])


def test_regression_defaults_sign_classes_row_ids_and_scores(reg_dir):
    dm = loaded(reg_dir)
    s = dm.spec
    assert s.task == "regression" and s.class_names == SIGN_CLASSES and s.score_range == (-3.0, 3.0)
    assert (s.primary_metric, s.primary_direction) == ("mae", "min")
    y = np.load(reg_dir / "scores.npy")
    assert dm.test_set.ids == [str(i) for i in range(2, 60, 3)] and dm.test_set.groups == dm.test_set.ids
    assert torch.equal(dm.test_set.y, torch.from_numpy(y[2::3]))
    assert torch.equal(dm.test_set.label, (torch.sign(dm.test_set.y) + 1).long())
    b = dm.train_set.__getitems__([0, 1, 2])
    assert b.y.shape == (3,) and b.mask["audio"].all() and b.x["audio"].shape == (3, 5, 4)
    m = read_manifest(reg_dir)
    m["classes"] = ["neg", "zero", "pos"]
    m["primary_metric"] = "corr"
    write_manifest(reg_dir, m)
    s2 = loaded(reg_dir).spec
    assert s2.class_names == ("neg", "zero", "pos") and (s2.primary_metric, s2.primary_direction) == ("corr", "max")


def test_leave_one_group_out_folds_hold_out_test_and_next_group_for_validation(dist_dir):
    dm = FeaturesDataModule(data_dir=str(dist_dir))
    folds = dm.spec.protocol.folds
    assert dm.spec.protocol.kind == "leave_one_out" and folds == ("S1", "S2", "S3", "S4")  # natural order
    assert dm.spec.task == "distribution" and dm.spec.class_names == tuple(PANAS)
    assert (dm.spec.primary_metric, dm.spec.primary_direction) == ("kl", "min")
    for i, fold in enumerate(folds):
        dm = loaded(dist_dir, fold=fold)
        test, val, train = set(dm.test_set.groups), set(dm.val_set.groups), set(dm.train_set.groups)
        assert test == {fold} and val == {folds[(i + 1) % len(folds)]}
        assert train == set(folds) - test - val
        assert len(dm.train_set) + len(dm.val_set) + len(dm.test_set) == 48
        assert set(dm.train_set.ids).isdisjoint(dm.test_set.ids)
    assert torch.allclose(dm.train_set.y.sum(1), torch.ones(len(dm.train_set)))
    assert torch.equal(dm.train_set.label, dm.train_set.y.argmax(1))
    lens = np.load(dist_dir / "arrays.npz")["face_len"]
    b = dm.test_set.__getitems__(list(range(len(dm.test_set))))
    assert b.mask["face"].sum(1).tolist() == [int(lens[int(i)]) for i in b.ids]
    with pytest.raises(UserInputError, match="unknown fold 'S9'"):
        loaded(dist_dir, fold="S9")


def test_group_folds_are_in_natural_order(tmp_path):
    dm = FeaturesDataModule(data_dir=str(write_distribution(tmp_path / "ten", n_groups=11, per_group=3)))
    assert dm.spec.protocol.folds == tuple(f"S{i}" for i in range(1, 12))  # S2 before S10, S11 last
    dm = loaded(tmp_path / "ten", fold="S11")
    assert set(dm.val_set.groups) == {"S1"}  # cyclic: after the last group comes the first


# -- non-finite values ------------------------------------------------------------------------
def test_nonfinite_features_are_an_error_unless_the_manifest_opts_in(cls_dir):
    audio = np.load(cls_dir / "audio.npy")
    audio[3, 0, 1] = np.nan
    audio[3, 0, 2] = -np.inf
    audio[7, 9, 0] = np.inf  # in the padding of row 7 (or not): checked either way
    np.save(cls_dir / "audio.npy", audio)
    with pytest.raises(DataError) as e:
        FeaturesDataModule(data_dir=str(cls_dir))
    msg = str(e.value)
    assert "audio.npy" in msg and "modalities[0].file" in msg and "1 NaN, 1 +inf, 1 -inf" in msg and "row 3" in msg
    m = read_manifest(cls_dir)
    m["nonfinite"] = "zero"
    write_manifest(cls_dir, m)
    dm = loaded(cls_dir)
    assert any("audio: NaN 1, +inf 1, -inf 1" in n for n in dm.notes())
    for ds in (dm.train_set, dm.val_set, dm.test_set):
        b = ds.__getitems__(list(range(len(ds))))
        assert torch.isfinite(b.x["audio"]).all()
        if "utt003" in ds.ids:
            j = ds.ids.index("utt003")
            assert b.x["audio"][j, 0, 1] == 0 and b.x["audio"][j, 0, 2] == 0
            assert torch.equal(ds[j].x["audio"][0, 1:3], torch.zeros(2))
    assert np.isnan(np.load(cls_dir / "audio.npy")[3, 0, 1])  # the file itself is never written


# -- validation: one clear error naming the file and the field ----------------------------------
def _edit(key, value):
    def f(d):
        m = read_manifest(d)
        if value is _DROP:
            m.pop(key)
        else:
            m[key] = value
        write_manifest(d, m)
    return f


def _edit_mod(i, key, value):
    def f(d):
        m = read_manifest(d)
        if value is _DROP:
            m["modalities"][i].pop(key)
        else:
            m["modalities"][i][key] = value
        write_manifest(d, m)
    return f


def _save(name, fn):
    def f(d):
        np.save(d / name, fn(d))
    return f


_DROP = object()
N = 72

CORRUPT = [
    # (id, mutation of the classification fixture, file named, field named, text of the expectation)
    ("bad-json", lambda d: (d / "manifest.json").write_text('{"name": "x",'), "manifest.json", "<json>", "valid JSON"),
    ("not-object", lambda d: (d / "manifest.json").write_text("[1, 2]"), "manifest.json", "<top level>", "JSON object"),
    ("unknown-key", _edit("clases", ["a", "b"]), "manifest.json", "clases", "did you mean 'classes'"),
    ("missing-labels", _edit("labels", _DROP), "manifest.json", "labels", "a required key"),
    ("missing-classes", _edit("classes", _DROP), "manifest.json", "classes", "required key for task classification"),
    ("one-class", _edit("classes", ["a"]), "manifest.json", "classes", "at least two"),
    ("dup-class", _edit("classes", ["a", "a", "b"]), "manifest.json", "classes", "unique class names"),
    ("unknown-task", _edit("task", "ranking"), "manifest.json", "task", "classification, regression, distribution"),
    ("score-range-on-cls", _edit("score_range", [0, 1]), "manifest.json", "score_range", "regression only"),
    ("unknown-group", _edit_mod(0, "group", "speech"), "manifest.json", "modalities[0].group", "physiological"),
    ("unknown-mod-key", _edit_mod(1, "dim", 5), "manifest.json", "modalities[1].dim", "name, group, file"),
    ("missing-mod-file", _edit_mod(0, "file", _DROP), "manifest.json", "modalities[0].file", "a required key"),
    ("bad-mod-name", _edit_mod(0, "name", "a,b"), "manifest.json", "modalities[0].name", "letters, digits"),
    ("dup-mod-name", _edit_mod(1, "name", "audio"), "manifest.json", "modalities[1].name", "unique modality names"),
    ("no-modalities", _edit("modalities", []), "manifest.json", "modalities", "non-empty list"),
    ("missing-array", lambda d: (d / "audio.npy").unlink(), "audio.npy", "modalities[0].file", "an existing file"),
    ("missing-npz-key", _edit_mod(1, "key", "txt"), "feats.npz", "modalities[1].key", "one of the arrays"),
    ("npz-without-key", _edit_mod(1, "key", _DROP), "manifest.json", "modalities[1].key", "a .npz needs a key"),
    ("npy-with-key", _edit_mod(0, "key", "x"), "manifest.json", "modalities[0].key", "no key"),
    ("not-npy", _edit("ids", "ids.csv"), "manifest.json", "ids", ".npy or .npz"),
    ("escaping-path", _edit("ids", "../ids.npy"), "manifest.json", "ids", "inside it"),
    ("both-protocols", _edit("folds", "leave_one_group_out"), "manifest.json", "split/folds", "found both"),
    ("no-protocol", _edit("split", _DROP), "manifest.json", "split/folds", "found neither"),
    ("unknown-folds", lambda d: (_edit("split", _DROP)(d), _edit("folds", "kfold")(d)), "manifest.json", "folds",
     "leave_one_group_out"),
    ("metric-of-other-task", _edit("primary_metric", "mae"), "manifest.json", "primary_metric",
     "a classification metric: wa, ua, wf1, mf1"),
    ("bad-nonfinite", _edit("nonfinite", "drop"), "manifest.json", "nonfinite", "error, zero"),
    ("rows-differ", _save("ids.npy", lambda d: np.load(d / "ids.npy")[:-1]), "ids.npy", "ids", f"{N} rows"),
    ("feature-rows-differ", _save("audio.npy", lambda d: np.load(d / "audio.npy")[:-2]), "audio.npy",
     "modalities[0].file", f"{N} rows"),
    ("wrong-ndim", _save("audio.npy", lambda d: np.load(d / "audio.npy")[..., None]), "audio.npy",
     "modalities[0].file", "(N, D) for vectors or (N, T, D)"),
    ("string-features", _save("audio.npy", lambda d: np.array([["a"] * 3] * N)), "audio.npy", "modalities[0].file",
     "numeric dtype"),
    ("lengths-zero", _save("audio_len.npy", lambda d: np.zeros(N, dtype=np.int64)), "audio_len.npy",
     "modalities[0].lengths", "lengths in [1, 10]"),
    ("lengths-too-long", _save("audio_len.npy", lambda d: np.full(N, 11)), "audio_len.npy", "modalities[0].lengths",
     "lengths in [1, 10]"),
    ("lengths-float", _save("audio_len.npy", lambda d: np.full(N, 3.0)), "audio_len.npy", "modalities[0].lengths",
     "integers"),
    ("lengths-on-vector", _edit_mod(1, "lengths", "audio_len.npy"), "manifest.json", "modalities[1].lengths",
     "apply to (N, T, D) sequences"),
    ("unknown-class-name", _save("labels.npy", lambda d: np.where(np.load(d / "labels.npy") == "hap", "happy",
                                                                   np.load(d / "labels.npy"))),
     "labels.npy", "labels", "unknown name(s) 'happy'"),
    ("class-index-out-of-range", _save("labels.npy", lambda d: np.arange(N) % 5), "labels.npy", "labels",
     "class indices in [0, 3]"),
    ("float-class-labels", _save("labels.npy", lambda d: np.zeros(N)), "labels.npy", "labels",
     "class-name strings"),
    ("labels-2d", _save("labels.npy", lambda d: np.zeros((N, 4))), "labels.npy", "labels", "shape (N,)"),
    ("duplicate-ids", _save("ids.npy", lambda d: np.array(["a"] * N)), "ids.npy", "ids", "unique ids"),
    ("pickled-ids", lambda d: np.save(d / "ids.npy", np.array([object()] * N), allow_pickle=True), "ids.npy", "ids",
     "without pickled objects"),
    ("bad-split-value", _save("split.npy", lambda d: np.where(np.load(d / "split.npy") == "val", "dev",
                                                               np.load(d / "split.npy"))),
     "split.npy", "split", "only the values train, val, test"),
    ("empty-split", _save("split.npy", lambda d: np.where(np.load(d / "split.npy") == "val", "train",
                                                           np.load(d / "split.npy"))),
     "split.npy", "split", "at least one 'val' row"),
    ("empty-group-name", _save("groups.npy", lambda d: np.array([""] * N)), "groups.npy", "groups", "non-empty"),
]


@pytest.mark.parametrize("mutate, file, field, expected", [c[1:] for c in CORRUPT], ids=[c[0] for c in CORRUPT])
def test_each_corrupt_input_names_file_and_field(cls_dir, mutate, file, field, expected):
    FeaturesDataModule(data_dir=str(cls_dir))  # valid before the mutation
    mutate(cls_dir)
    with pytest.raises(DataError) as e:
        FeaturesDataModule(data_dir=str(cls_dir))
    err = e.value
    assert err.file.split("[")[0].endswith(file), err.file
    assert err.field == field
    msg = str(err)
    assert file in msg and repr(field) in msg and expected in msg, msg


REG_CORRUPT = [
    ("missing-score-range", _edit("score_range", _DROP), "manifest.json", "score_range", "required key"),
    ("bad-score-range", _edit("score_range", [3, -3]), "manifest.json", "score_range", "low < high"),
    ("score-outside-range", _save("scores.npy", lambda d: np.full(60, 3.5)), "scores.npy", "labels",
     "finite scores in score_range [-3, 3]"),
    ("nan-score", _save("scores.npy", lambda d: np.full(60, np.nan)), "scores.npy", "labels", "finite scores"),
    ("two-classes", _edit("classes", ["neg", "pos"]), "manifest.json", "classes", "3 names"),
    ("metric-of-other-task", _edit("primary_metric", "wa"), "manifest.json", "primary_metric", "a regression metric"),
]


@pytest.mark.parametrize("mutate, file, field, expected", [c[1:] for c in REG_CORRUPT], ids=[c[0] for c in REG_CORRUPT])
def test_corrupt_regression_input(reg_dir, mutate, file, field, expected):
    mutate(reg_dir)
    with pytest.raises(DataError) as e:
        FeaturesDataModule(data_dir=str(reg_dir))
    msg = str(e.value)
    assert e.value.field == field and file in msg and expected in msg, msg


def _rewrite_npz(**changes):
    def f(d):
        z = dict(np.load(d / "arrays.npz"))
        for k, fn in changes.items():
            z[k] = fn(z[k])
        np.savez(d / "arrays.npz", **z)
    return f


DIST_CORRUPT = [
    ("not-summing-to-1", _rewrite_npz(dist=lambda a: a * 1.01), "arrays.npz['dist']", "labels",
     "rows summing to 1 (within 0.001)"),
    ("negative-mass", _rewrite_npz(dist=lambda a: np.where(np.arange(5) == 0, -a, a)), "arrays.npz['dist']", "labels",
     "finite values >= 0"),
    ("wrong-width", _rewrite_npz(dist=lambda a: a[:, :4] / a[:, :4].sum(1, keepdims=True)), "arrays.npz['dist']",
     "labels", "shape (N, 5)"),
    ("two-groups", _rewrite_npz(groups=lambda g: np.where(g == "S3", "S1", np.where(g == "S4", "S2", g))),
     "arrays.npz['groups']", "groups", "at least 3 groups"),
    ("no-groups", _edit("groups", _DROP), "manifest.json", "groups", "a groups array"),
    ("missing-ref-key", _edit("labels", {"file": "arrays.npz", "key": "distr"}), "arrays.npz", "labels.key",
     "one of the arrays in the file: dist, face_len, groups"),
    ("unknown-ref-key", _edit("labels", {"file": "arrays.npz", "name": "dist"}), "manifest.json", "labels.name",
     "one of the keys file, key"),
    ("lengths-out-of-range", _rewrite_npz(face_len=lambda a: a + 10), "arrays.npz['face_len']",
     "modalities[1].lengths", "lengths in [1, 6]"),
]


@pytest.mark.parametrize("mutate, file, field, expected", [c[1:] for c in DIST_CORRUPT],
                         ids=[c[0] for c in DIST_CORRUPT])
def test_corrupt_distribution_input(dist_dir, mutate, file, field, expected):
    mutate(dist_dir)
    with pytest.raises(DataError) as e:
        FeaturesDataModule(data_dir=str(dist_dir))
    msg = str(e.value)
    assert e.value.field == field and file in msg and expected in msg, msg


def test_near_normalised_distributions_are_renormalised_and_reported(dist_dir):
    _rewrite_npz(dist=lambda a: a * 1.0005)(dist_dir)
    dm = loaded(dist_dir)
    assert torch.allclose(dm.train_set.y.sum(1), torch.ones(len(dm.train_set)), atol=1e-6)
    assert any("largest |sum - 1| was 0.0005" in n for n in dm.notes())


def test_missing_folder_or_manifest_says_where_to_look_and_what_to_try(tmp_path, cls_dir):
    for data_dir in (None, str(tmp_path / "nowhere")):
        with pytest.raises(UserInputError) as e:
            FeaturesDataModule(data_dir=data_dir)
        assert "Bring your own features" in str(e.value) and "--data synthetic" in str(e.value)
    (cls_dir / "manifest.json").unlink()
    with pytest.raises(UserInputError) as e:
        FeaturesDataModule(data_dir=str(cls_dir))
    assert "manifest.json" in str(e.value) and "--data synthetic" in str(e.value)


# -- fingerprint ------------------------------------------------------------------------------
def test_fingerprint_covers_manifest_and_every_array(cls_dir, tmp_path, monkeypatch):
    fp = FeaturesDataModule(data_dir=str(cls_dir)).fingerprint()
    copy = tmp_path / "copy"
    shutil.copytree(cls_dir, copy)
    assert FeaturesDataModule(data_dir=str(copy)).fingerprint() == fp  # content, not path or mtime
    text = dict(np.load(copy / "feats.npz"))
    text["text"][0, 0] += 1.0  # same size, one value changed
    np.savez(copy / "feats.npz", **text)
    fp2 = FeaturesDataModule(data_dir=str(copy)).fingerprint()
    assert fp2 != fp
    m = read_manifest(copy)
    m["description"] = "changed"
    write_manifest(copy, m)
    assert FeaturesDataModule(data_dir=str(copy)).fingerprint() not in (fp, fp2)
    # large files keep their SHA-256 on disk, keyed by the cheap file fingerprint
    monkeypatch.setattr(features, "HASH_CACHE_MIN_BYTES", 0)
    monkeypatch.setattr(features, "_SHA_CACHE", {})
    dm = FeaturesDataModule(data_dir=str(copy))
    fp3 = dm.fingerprint()
    cached = sorted((features.cache_root() / "features" / "sha256").glob("*.txt"))
    assert len(cached) == len(dm.refs) == 7
    monkeypatch.setattr(features, "_SHA_CACHE", {})
    assert FeaturesDataModule(data_dir=str(copy)).fingerprint() == fp3
    for p in cached:
        p.write_text("0" * 64)  # proves the disk cache is what is read
    monkeypatch.setattr(features, "_SHA_CACHE", {})
    assert FeaturesDataModule(data_dir=str(copy)).fingerprint() != fp3


# -- the CLI end to end -----------------------------------------------------------------------
FAST = ["--seeds", "0", "--max-epochs", "2", "--no-progress", "--logger", "none"]


def _run(folder, results):
    return main(["run", "--model", "early_fusion", "--data", "features", "--data-dir", str(folder), *FAST,
                 "--results", str(results)])


def test_bench_run_classification_writes_a_record(cls_dir, tmp_path, capsys):
    res = tmp_path / "res"
    assert _run(cls_dir, res) == 0
    files = sorted(res.rglob("*.json"))
    assert len(files) == 1 and files[0].parent == res / "features" / "early_fusion"
    rec = read_record(files[0])
    dm = FeaturesDataModule(data_dir=str(cls_dir))
    assert rec["data"] == "features" and rec["synthetic"] is False and rec["fold"] == "holdout"
    assert rec["data_fingerprint"] == dm.fingerprint()
    assert rec["spec"]["classes"] == CLASSES and rec["spec"]["modalities"] == ["audio", "text", "video"]
    assert rec["split_sizes"] == {"train": 48, "val": 12, "test": 12} and rec["selection"]["monitor"] == "val/wa"
    assert set(rec["test"]) >= {"wa", "ua", "wf1", "mf1"} and all(np.isfinite(v) for v in rec["test"].values())
    assert any("sha256" in n for n in rec["data_notes"]) and rec["limit"] is None
    out = capsys.readouterr().out
    assert "data: files: audio.npy" in out and "Test results" in out


def test_bench_run_distribution_over_every_group_fold(dist_dir, tmp_path):
    res = tmp_path / "res"
    assert _run(dist_dir, res) == 0
    recs = [read_record(f) for f in sorted(res.rglob("*.json"))]
    assert sorted(r["fold"] for r in recs) == ["S1", "S2", "S3", "S4"]
    for r in recs:
        assert r["protocol"] == {"kind": "leave_one_out", "folds": ["S1", "S2", "S3", "S4"]}
        assert r["split_groups"]["test"] == [r["fold"]] and len(r["split_groups"]["val"]) == 1
        assert r["fold"] not in r["split_groups"]["train"] + r["split_groups"]["val"]
        assert r["spec"]["primary_metric"] == "kl" and np.isfinite(r["test"]["kl"])


def test_bench_run_regression_and_bad_data_is_one_line(reg_dir, tmp_path, capsys):
    assert _run(reg_dir, tmp_path / "res") == 0
    rec = read_record(next((tmp_path / "res").rglob("*.json")))
    assert rec["spec"]["task"] == "regression" and np.isfinite(rec["test"]["mae"])
    capsys.readouterr()
    np.save(reg_dir / "scores.npy", np.full(60, 9.0, dtype=np.float32))
    assert _run(reg_dir, tmp_path / "res2") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scores.npy" in err and "'labels'" in err and "Traceback" not in err


def test_bench_info_and_list(cls_dir, capsys):
    assert main(["info", "--data", "features", "--data-dir", str(cls_dir)]) == 0
    out = capsys.readouterr().out
    assert "toy-emotions: classification" in out and "classes (4): neu, hap, sad, ang" in out
    assert "audio    (T<=10, 6)" in out and "text     (5,)" in out and "group=visual" in out
    assert "protocol: holdout" in out and "train/val/test = 48/12/12" in out
    assert "train (fold holdout): n=48" in out and "note: files:" in out and "mapped by name" in out
    assert main(["list", "--data-dir", str(cls_dir)]) == 0
    assert any(line.split()[:3] == ["features", "files", "present"] for line in capsys.readouterr().out.splitlines())


def test_two_feature_folders_in_one_results_folder_keep_their_own_records(tmp_path, capsys):
    """Same dataset name, fold, seed and settings but different files: neither run is mistaken for
    the other's (the data fingerprint is part of the record path), and the leaderboard shows each
    under its manifest name."""
    a = write_classification(tmp_path / "a", seed=0)
    b = write_classification(tmp_path / "b", seed=5)
    manifest = read_manifest(b)
    manifest["name"] = "other-emotions"
    write_manifest(b, manifest)
    res = tmp_path / "res"
    assert _run(a, res) == 0
    assert _run(b, res) == 0
    assert "done already" not in capsys.readouterr().out
    recs = [read_record(f) for f in sorted(res.rglob("*.json"))]
    assert len(recs) == 2 and len({r["data_fingerprint"] for r in recs}) == 2
    assert _run(b, res) == 0 and "done already, skipped" in capsys.readouterr().out
    assert len(list(res.rglob("*.json"))) == 2
    assert main(["leaderboard", "--results", str(res), "--out", str(tmp_path / "lb.md")]) == 0
    text = (tmp_path / "lb.md").read_text()
    assert "### features: toy-emotions (data " in text and "### features: other-emotions (data " in text
