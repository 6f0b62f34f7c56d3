"""MER2023 datamodule on a tiny dataset written in MERBench's exact layout (tests/fixtures_mer2023.py)."""
import math
import shutil

import numpy as np
import pytest
import torch

from benchmarks.cli import main
from benchmarks.records import read_record
from datamodules import mer2023
from datamodules.io import DataError, cache_root
from datamodules.registry import create_datamodule
from datamodules.spec import UserInputError

from .fixtures_mer2023 import (CLASSES, DIMS, FEATURES, VIDEO_FRAMES, pickled, read_labels, write_labels,
                               write_mer2023)

FRA = {"video_feature": VIDEO_FRAMES}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One dataset shared by the read-only tests (corrupting tests write their own)."""
    return write_mer2023(tmp_path_factory.mktemp("mer") / "mer2023")


@pytest.fixture()
def fresh(tmp_path):
    return write_mer2023(tmp_path / "mer2023", n_train=30, n_test1=6, n_test2=6, n_test3=6)


def dm_for(root, fold=None, **kw):
    dm = create_datamodule("mer2023", data_dir=str(root), fold=fold, **kw)
    dm.setup("fit")
    return dm


def everything(ds):
    return ds.__getitems__(list(range(len(ds))))


def test_spec_shapes_and_batches_are_read_from_the_files(data):
    dm = dm_for(data["root"], **FRA)
    spec = dm.spec
    assert spec.name == "mer2023" and spec.task == "classification" and spec.class_names == CLASSES
    assert spec.aux_scores == ("valence",) and spec.target_dim == 7
    assert (spec.primary_metric, spec.primary_direction) == ("mer_score", "max")
    assert spec.protocol.kind == "kfold" and spec.protocol.folds == ("fold1", "fold2", "fold3", "fold4", "fold5")
    assert [(m.name, m.dim, m.seq_len, m.group) for m in spec.modalities] == [
        ("audio", DIMS["audio"], None, "audio"), ("text", DIMS["text"], None, "text"),
        ("video", DIMS["video"], max(data["lengths"].values()), "visual")]
    extra = dict(spec.extra)
    assert extra["split_seed"] == "0" and extra["video_feature"] == VIDEO_FRAMES
    assert extra["audio_feature"] == "chinese-hubert-large-UTT"
    root = data["root"] / "features"
    for ds in (dm.train_set, dm.val_set, dm.test_set):
        b = everything(ds)
        assert b.x["audio"].shape == (len(ds), DIMS["audio"]) and b.x["text"].shape == (len(ds), DIMS["text"])
        assert b.mask["video"].sum(1).tolist() == [data["lengths"][i] for i in b.ids]
        for i, name in enumerate(b.ids[:12]):  # (1, D) audio files are squeezed; values as stored
            np.testing.assert_array_equal(b.x["audio"][i].numpy(),
                                          np.load(root / FEATURES["audio"] / f"{name}.npy").reshape(-1))
    assert set(everything(dm.test_set).ids) == set(data["corpora"]["test1_corpus"])
    assert set(everything(dm.train_set).groups) == {"train"} and set(everything(dm.test_set).groups) == {"test1"}


def test_face_folders_are_stacked_in_sorted_name_order(data):
    dm = dm_for(data["root"], **FRA)
    full = dm._dataset("train")
    name = next(n for n in data["faces"] if n in data["corpora"]["train_corpus"])
    i = full.ids.index(name)
    folder = data["root"] / "features" / VIDEO_FRAMES / name
    expected = np.stack([np.load(p) for p in sorted(folder.iterdir())])
    got = full[i].x["video"].numpy()
    np.testing.assert_array_equal(got, expected)
    assert any(f"{len(data['faces'])} sample(s) from face folders" in n for n in dm.notes())


def test_a_corpus_stored_as_vectors_joins_a_frame_level_feature_as_one_step(fresh):
    folder = fresh["root"] / "features" / VIDEO_FRAMES
    for name in fresh["corpora"]["test1_corpus"]:
        shutil.rmtree(folder / name, ignore_errors=True)
        np.save(folder / f"{name}.npy", np.full((1, DIMS["video"]), 2.0, np.float32))  # (1, D) -> (D,)
    dm = dm_for(fresh["root"], **FRA)
    test1 = fresh["corpora"]["test1_corpus"]
    assert dm.spec.modality("video").seq_len == max(t for n, t in fresh["lengths"].items() if n not in test1)
    b = everything(dm.test_set)
    assert b.x["video"].shape == (len(b), 1, DIMS["video"]) and b.mask["video"].all()
    assert (b.x["video"] == 2.0).all()


def test_default_features_are_all_vectors(data):
    dm = dm_for(data["root"])
    assert all(m.seq_len is None for m in dm.spec.modalities)
    assert dict(dm.spec.extra)["video_feature"] == "clip-vit-large-patch14-UTT"


def test_classes_are_mapped_by_name(data, tmp_path):
    dm = dm_for(data["root"])
    for c, key in (("train", "train_corpus"), ("test1", "test1_corpus"), ("test2", "test2_corpus")):
        ds = dm._dataset(c)
        assert [CLASSES[k] for k in ds.label.tolist()] == [data["corpora"][key][n]["emo"] for n in ds.ids]
    # names, not positions: a reordered / differently cased file gives the same indices
    root = tmp_path / "m"
    shutil.copytree(data["root"], root)
    corpora = read_labels(root / "label-6way.npz")
    corpora["train_corpus"] = dict(reversed(list(corpora["train_corpus"].items())))
    first = next(iter(corpora["train_corpus"]))
    corpora["train_corpus"][first]["emo"] = " " + corpora["train_corpus"][first]["emo"].upper()
    write_labels(root / "label-6way.npz", corpora)
    again = dm_for(root)._dataset("train")
    assert again.ids == dm._dataset("train").ids and torch.equal(again.label, dm._dataset("train").label)


def test_stratified_folds_are_disjoint_cover_train_and_are_seeded(data):
    n = len(data["corpora"]["train_corpus"])
    train_names = sorted(data["corpora"]["train_corpus"])
    vals = {}
    for k in range(1, 6):
        dm = dm_for(data["root"], fold=f"fold{k}")
        tr, va = everything(dm.train_set), everything(dm.val_set)
        assert not set(tr.ids) & set(va.ids) and sorted(tr.ids + va.ids) == train_names
        assert set(everything(dm.test_set).ids) == set(data["corpora"]["test1_corpus"])
        vals[k] = va
    all_val = [i for v in vals.values() for i in v.ids]
    assert sorted(all_val) == train_names and len(all_val) == n  # the parts partition the train corpus
    per_class = np.array([np.bincount(v.label.numpy(), minlength=6) for v in vals.values()])  # (fold, class)
    assert (per_class.max(0) - per_class.min(0) <= 1).all()  # stratified: each class spread evenly
    assert max(len(v) for v in vals.values()) - min(len(v) for v in vals.values()) <= 1
    same = dm_for(data["root"], fold="fold1")
    assert everything(same.val_set).ids == vals[1].ids  # deterministic for a split_seed
    other = dm_for(data["root"], fold="fold1", split_seed=1)
    assert everything(other.val_set).ids != vals[1].ids and dict(other.spec.extra)["split_seed"] == "1"
    assert other.fingerprint() == same.fingerprint()  # the folds, not the data, depend on split_seed
    with pytest.raises(UserInputError, match="unknown fold 'fold6'"):
        dm_for(data["root"], fold="fold6")


def test_valence_nan_handling(data):
    dm = dm_for(data["root"])
    train = dm._dataset("train")
    v = dict(zip(train.ids, train.meta["valence"].tolist()))
    for name in ("sample_00000001", "sample_00000002", "sample_00000003"):  # -10, no key, empty string
        assert math.isnan(v[name])
    raw = data["corpora"]["train_corpus"]
    labelled = [n for n in raw if n not in ("sample_00000001", "sample_00000002", "sample_00000003")]
    assert all(v[n] == pytest.approx(raw[n]["val"]) for n in labelled)
    assert everything(dm.test_set).meta["valence"].isnan().sum() == 0
    extra = dm.extra_test_sets()
    assert set(extra) == {"test2", "test3"} and extra["test3"].meta["valence"].isnan().all()
    assert any("train 3, test1 0, test2 0, test3 12" in n for n in dm.notes())


def test_train_without_valence_drops_the_aux_score(fresh):
    path = fresh["root"] / "label-6way.npz"
    corpora = read_labels(path)
    for entry in corpora["train_corpus"].values():
        entry["val"] = -10
    write_labels(path, corpora)
    dm = dm_for(fresh["root"])
    assert dm.spec.aux_scores == () and dm.spec.primary_metric == "wf1" and dm.spec.target_dim == 6
    assert any("no labelled valence" in n for n in dm.notes())


def test_placeholder_test_labels_refused_for_test1_left_out_for_test2(tmp_path):
    root = write_mer2023(tmp_path / "a", n_train=12, n_test1=4, n_test2=4, n_test3=4, test2_placeholder=True)["root"]
    dm = dm_for(root)
    assert set(dm.extra_test_sets()) == {"test3"}
    assert any("test2_corpus (MER-NOISE) left out" in n and "placeholder" in n for n in dm.notes())
    corpora = read_labels(root / "label-6way.npz")
    for entry in corpora["test1_corpus"].values():
        entry.update(emo="neutral", val=-10)
    write_labels(root / "label-6way.npz", corpora)
    with pytest.raises(DataError) as e:
        dm_for(root)
    msg = str(e.value)
    assert "label-6way.npz" in msg and "'test1_corpus'" in msg and "placeholder" in msg and "refusing" in msg


def test_absent_or_featureless_extra_corpora_are_noted(tmp_path):
    root = write_mer2023(tmp_path / "a", n_train=12, n_test1=4, n_test2=4, with_test3=False)["root"]
    corpora = read_labels(root / "label-6way.npz")
    for name in corpora["test2_corpus"]:  # no features at all for test2 in one modality
        (root / "features" / FEATURES["text"] / f"{name}.npy").unlink()
    dm = dm_for(root)
    assert dm.extra_test_sets() == {}
    notes = " | ".join(dm.notes())
    assert "test3_corpus (MER-SEMI) is not in label-6way.npz" in notes
    assert f"test2_corpus (MER-NOISE) left out: no features for it in features/{FEATURES['text']}/" in notes


def test_nonfinite_values_are_repaired_and_counted(fresh):
    root = fresh["root"]
    folder = root / "features" / FEATURES["audio"]
    names = sorted(fresh["corpora"]["train_corpus"])
    a = np.load(folder / f"{names[5]}.npy").reshape(-1)
    a[:2] = np.nan
    np.save(folder / f"{names[5]}.npy", a)
    b = np.load(folder / f"{names[6]}.npy").reshape(-1)
    b[0], b[1] = np.inf, -np.inf
    np.save(folder / f"{names[6]}.npy", b)
    dm = dm_for(root)
    x = dm._dataset("train").x["audio"]
    assert torch.isfinite(x).all()
    i = dm._dataset("train").ids.index(names[5])
    assert x[i, :2].tolist() == [0.0, 0.0] and x[i, 2] == pytest.approx(float(a[2]))
    assert any("audio: NaN 2, +inf 1, -inf 1 (train 4)" in n for n in dm.notes())


def test_cache_is_under_affectbench_cache_reused_and_refreshed(fresh, monkeypatch):
    root = fresh["root"]
    first = dm_for(root)
    assert str(cache_root()) in " ".join(first.notes())
    assert (cache_root() / "mer2023").is_dir()

    def boom(*a, **k):
        raise AssertionError("converted again")

    with monkeypatch.context() as m:  # a second load reads the cache only
        m.setattr(mer2023, "convert_feature", boom)
        again = dm_for(root)
        assert again.fingerprint() == first.fingerprint()
        assert torch.equal(again._dataset("train").x["text"], first._dataset("train").x["text"])
    name = sorted(fresh["corpora"]["train_corpus"])[0]
    path = root / "features" / FEATURES["text"] / f"{name}.npy"
    np.save(path, np.load(path) + 1.0)  # a changed file is re-read and changes the fingerprint
    changed = dm_for(root)
    assert changed.fingerprint() != first.fingerprint()
    assert changed._dataset("train")[0].x["text"].tolist() == pytest.approx((np.load(path)).tolist())
    assert dm_for(root, **FRA).fingerprint() != first.fingerprint()


def _set(path, corpus, name, **entry):
    corpora = read_labels(path)
    corpora[corpus][name] = entry
    write_labels(path, corpora)


def _first(fresh, corpus="train_corpus"):
    return sorted(fresh["corpora"][corpus])[0]


def _corrupt_unknown_class(f):
    _set(f["root"] / "label-6way.npz", "train_corpus", _first(f), emo="joy", val=1.0)
    return ["label-6way.npz", f"train_corpus['{_first(f)}']['emo']", "neutral, angry, happy, sad, worried, surprise",
            "'joy'"]


def _corrupt_int_class(f):
    _set(f["root"] / "label-6way.npz", "test1_corpus", _first(f, "test1_corpus"), emo=2, val=1.0)
    return ["label-6way.npz", f"test1_corpus['{_first(f, 'test1_corpus')}']['emo']", "a class name", "found 2"]


def _corrupt_missing_key(f):
    corpora = read_labels(f["root"] / "label-6way.npz")
    del corpora["test1_corpus"]
    write_labels(f["root"] / "label-6way.npz", corpora)
    return ["label-6way.npz", "'test1_corpus'", "keys train_corpus and test1_corpus"]


def _corrupt_entry(f):
    _set(f["root"] / "label-6way.npz", "train_corpus", _first(f), val=1.0)
    return ["label-6way.npz", f"train_corpus['{_first(f)}']", "{'emo': class name, 'val': valence}"]


def _corrupt_valence(f):
    _set(f["root"] / "label-6way.npz", "train_corpus", _first(f), emo="sad", val="high")
    return ["label-6way.npz", f"train_corpus['{_first(f)}']['val']", "-10 / empty", "'high'"]


def _corrupt_valence_range(f):
    _set(f["root"] / "label-6way.npz", "train_corpus", _first(f), emo="sad", val=7.5)
    return ["label-6way.npz", f"train_corpus['{_first(f)}']['val']", "[-5, 5]", "7.5"]


def _corrupt_duplicate(f):
    name = _first(f, "test1_corpus")
    _set(f["root"] / "label-6way.npz", "test2_corpus", name, emo="sad", val=1.0)
    return ["label-6way.npz", f"['{name}']", "unique across corpora", "also in"]


def _corrupt_npz(f):
    (f["root"] / "label-6way.npz").write_bytes(b"not a zip archive")
    return ["label-6way.npz", "a NumPy .npz archive"]


def _corrupt_not_a_dict(f):
    corpora = read_labels(f["root"] / "label-6way.npz")
    with open(f["root"] / "label-6way.npz", "wb") as fh:
        np.savez(fh, train_corpus=np.arange(3), test1_corpus=pickled(corpora["test1_corpus"]))
    return ["label-6way.npz", "'train_corpus'", "a pickled dict"]


def _corrupt_feature_folder(f):
    shutil.rmtree(f["root"] / "features" / FEATURES["text"])
    return [f"features/{FEATURES['text']}", "'text_feature'", "--set text_feature=NAME", VIDEO_FRAMES]


def _corrupt_sample_file(f):
    name = _first(f, "test1_corpus")
    (f["root"] / "features" / FEATURES["audio"] / f"{name}.npy").unlink()
    return [f"{FEATURES['audio']}/{name}.npy", f"test1_corpus['{name}']", "audio_feature", "neither exists"]


def _corrupt_dims(f):
    name = sorted(f["corpora"]["train_corpus"])[4]
    np.save(f["root"] / "features" / FEATURES["text"] / f"{name}.npy", np.zeros(DIMS["text"] + 2, np.float32))
    return [f"{FEATURES['text']}/{name}.npy", "field 'shape'", f"feature dim {DIMS['text']}", f"({DIMS['text'] + 2},)"]


def _corrupt_corpus_dims(f):
    for name in f["corpora"]["test1_corpus"]:  # consistent within test1, but not with train
        np.save(f["root"] / "features" / FEATURES["text"] / f"{name}.npy", np.zeros(DIMS["text"] + 1, np.float32))
    name = sorted(f["corpora"]["test1_corpus"])[0]
    return [f"{FEATURES['text']}/{name}.npy", "field 'shape'", f"feature dim {DIMS['text']}", "in test1_corpus"]


def _corrupt_face_dims(f):
    name = f["faces"][0]
    folder = f["root"] / "features" / VIDEO_FRAMES / name
    np.save(sorted(folder.iterdir())[-1], np.zeros(DIMS["video"] + 1, np.float32))
    return [f"{name}/face_", "field 'shape'", f"({DIMS['video']},)"]


def _corrupt_empty_face_folder(f):
    name = f["faces"][0]
    folder = f["root"] / "features" / VIDEO_FRAMES / name
    for p in folder.iterdir():
        p.unlink()
    return [f"{VIDEO_FRAMES}/{name}", "'<face folder>'", "at least one per-face .npy file", "an empty folder"]


def _corrupt_npy(f):
    name = _first(f)
    (f["root"] / "features" / FEATURES["audio"] / f"{name}.npy").write_bytes(b"garbage")
    return [f"{FEATURES['audio']}/{name}.npy", "a NumPy .npy array"]


def _corrupt_rank(f):
    name = _first(f)
    np.save(f["root"] / "features" / VIDEO_FRAMES / f"{name}.npy", np.zeros((2, 3, DIMS["video"]), np.float32))
    return [f"{VIDEO_FRAMES}/{name}.npy", "field 'shape'", "(T, D)", "(2, 3, 4)"]


def _corrupt_dtype(f):
    name = _first(f)
    np.save(f["root"] / "features" / FEATURES["text"] / f"{name}.npy", np.array(["a", "b"]))
    return [f"{FEATURES['text']}/{name}.npy", "field 'dtype'", "a numeric array"]


CORRUPTIONS = [_corrupt_unknown_class, _corrupt_int_class, _corrupt_missing_key, _corrupt_entry, _corrupt_valence,
               _corrupt_valence_range, _corrupt_duplicate, _corrupt_npz, _corrupt_not_a_dict, _corrupt_feature_folder,
               _corrupt_sample_file, _corrupt_dims, _corrupt_corpus_dims,
               _corrupt_face_dims, _corrupt_empty_face_folder, _corrupt_npy,
               _corrupt_rank, _corrupt_dtype]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=[c.__name__.removeprefix("_corrupt_") for c in CORRUPTIONS])
def test_corrupt_input_names_file_and_field(fresh, corrupt):
    expected = corrupt(fresh)
    kw = FRA if "face" in corrupt.__name__ or "rank" in corrupt.__name__ else {}
    with pytest.raises(DataError) as e:
        create_datamodule("mer2023", data_dir=str(fresh["root"]), **kw)
    msg = str(e.value)
    for part in expected:
        assert part in msg, (part, msg)


def test_missing_dataset_names_the_source_and_a_preset(tmp_path):
    for data_dir in (None, tmp_path / "nowhere", tmp_path):
        with pytest.raises(UserInputError) as e:
            create_datamodule("mer2023", data_dir=None if data_dir is None else str(data_dir))
        msg = str(e.value)
        assert "https://huggingface.co/datasets/MERChallenge/MER2023" in msg and "--data synthetic" in msg
    assert "label-6way.npz" in str(e.value)
    assert not mer2023.MER2023DataModule.is_available(str(tmp_path))


def test_bad_options_are_user_errors(data):
    for bad in ("x", -1):
        with pytest.raises(UserInputError, match="split_seed must be an integer >= 0"):
            create_datamodule("mer2023", data_dir=str(data["root"]), split_seed=bad)
    with pytest.raises(UserInputError, match="video_feature must be a feature folder name"):
        create_datamodule("mer2023", data_dir=str(data["root"]), video_feature="../x")


def test_cli_run_info_and_list(data, tmp_path, capsys):
    res = tmp_path / "results"
    root = str(data["root"])
    assert main(["run", "--model", "early_fusion", "--data", "mer2023", "--data-dir", root, "--folds", "fold1",
                 "--seeds", "0", "--max-epochs", "2", "--no-progress", "--logger", "none", "--results", str(res),
                 "--set", f"video_feature={VIDEO_FRAMES}"]) == 0
    files = sorted(res.rglob("*.json"))
    assert len(files) == 1
    rec = read_record(files[0])
    assert rec["data"] == "mer2023" and rec["fold"] == "fold1" and rec["synthetic"] is False
    assert rec["selection"]["monitor"] == "val/mer_score" and rec["spec"]["primary_metric"] == "mer_score"
    assert {"mer_score", "val_mse", "wf1", "wa"} <= set(rec["test"])
    assert rec["test"]["mer_score"] == pytest.approx(rec["test"]["wf1"] - 0.25 * rec["test"]["val_mse"])
    assert rec["split_sizes"] == {"train": 48, "val": 12, "test": 18}
    assert set(rec["test_extra"]) == {"test2", "test3"}
    assert math.isfinite(rec["test_extra"]["test2"]["mer_score"])
    assert math.isnan(rec["test_extra"]["test3"]["val_mse"]) and math.isfinite(rec["test_extra"]["test3"]["wf1"])
    assert rec["data_fingerprint"] == dm_for(data["root"], **FRA).fingerprint()
    assert rec["config"]["data_options"] == {"video_feature": VIDEO_FRAMES}
    assert any("non-finite feature values" in n for n in rec["data_notes"])
    capsys.readouterr()

    assert main(["info", "--data", "mer2023", "--data-dir", root, "--fold", "fold2", "--set", "split_seed=3"]) == 0
    out = capsys.readouterr().out
    assert "mer2023: classification" in out and "classes (6): neutral, angry, happy, sad, worried, surprise" in out
    assert f"audio    ({DIMS['audio']},)" in out and "primary metric: mer_score (higher is better)" in out
    assert "protocol: kfold, folds: fold1, fold2, fold3, fold4, fold5" in out and "split_seed=3" in out
    assert "train (fold fold2): n=48" in out and "val   (fold fold2): n=12" in out and "test  (fold fold2): n=18" in out
    assert "note: fold fold2 (split_seed 3)" in out

    assert main(["list", "--data-dir", root]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("mer2023"))
    assert "files present" in line
    assert main(["info", "--data", "mer2023", "--data-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "MERChallenge/MER2023" in err and len(err.strip().splitlines()) == 1
