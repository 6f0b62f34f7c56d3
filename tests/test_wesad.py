"""WESAD datamodule on tiny subjects written in the release's format at the real sampling rates."""
import pickle

import numpy as np
import pytest
import torch

from benchmarks.cli import main
from benchmarks.records import read_record
from datamodules import wesad
from datamodules.io import DataError
from datamodules.registry import create_datamodule
from datamodules.spec import UserInputError

from .fixtures_wesad import ORDER, write_wesad


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("wesad")
    return root, write_wesad(root)


def test_windows_never_cross_a_condition_change_and_wrist_streams_align_by_time(data):
    root, raw = data
    dm = create_datamodule("wesad", data_dir=str(root))
    for s, k in (("S2", 2), ("S4", 4)):
        c = dm.caches[s]
        t0, cond = c.load("t0", mmap=False), c.load("cond", mmap=False)
        label = raw[k]["label"]
        assert len(t0) > 0 and set(np.unique(cond)) == {1, 2, 3, 4}
        for t, cd in zip(t0, cond):
            seg = label[int(round(t * 700)): int(round((t + 5) * 700))]
            assert len(seg) == 3500 and (seg == cd).all()
    with open(root / "S3" / "S3.pkl", "rb") as f:
        pk = pickle.load(f, encoding="latin1")
    c = dm.caches["S3"]
    i = 40
    t = c.load("t0", mmap=False)[i]
    eda = pk["signal"]["wrist"]["EDA"][int(round(t * 4)): int(round(t * 4)) + 20, 0]
    np.testing.assert_allclose(c.load("wrist_eda")[i], wesad.window_features(eda[None, :], 4)[0], rtol=1e-5)


def test_tasks_and_panas_distribution(data):
    root, raw = data
    three = create_datamodule("wesad", data_dir=str(root), normalize="none")
    three.setup("fit")
    assert three.spec.class_names == ("baseline", "stress", "amusement") and three.spec.primary_metric == "mf1"
    assert set(three.train_set.label.tolist()) == {0, 1, 2}
    binary = create_datamodule("wesad", data_dir=str(root), task="binary", normalize="none")
    binary.setup("fit")
    assert torch.equal(binary.test_set.label, (three.test_set.label == 1).long())  # same windows, stress vs rest
    dist = create_datamodule("wesad", data_dir=str(root), task="distribution", fold="S5", normalize="none")
    dist.setup("fit")
    y = dist.test_set.y
    assert torch.allclose(y.sum(1), torch.ones(len(y)))
    c = dist.caches["S5"]
    t0, cond = c.load("t0", mmap=False), c.load("cond", mmap=False)
    panas = raw[5]["panas"]
    medi2 = wesad.PANAS_24  # the second meditation block (label 4 again) uses the "Medi 2" row
    row = dict(zip(medi2, panas[4]))
    want = np.array([row[wesad.WESAD_ITEM.get(i, i)] for i in wesad.ITEMS], float)
    last = int(np.flatnonzero(cond == 4)[-1])
    assert t0[last] > 120 and np.allclose(y[last].numpy(), want / want.sum(), atol=1e-6)
    tsst = dict(zip(wesad.PANAS_26, panas[1]))  # 26 items after the stress condition
    first_stress = int(np.flatnonzero(cond == 2)[0])
    want = np.array([tsst[wesad.WESAD_ITEM.get(i, i)] for i in wesad.ITEMS], float)
    assert np.allclose(y[first_stress].numpy(), want / want.sum(), atol=1e-6)


def test_loso_and_subject_dependent_keep_splits_apart(data):
    root, _ = data
    dm = create_datamodule("wesad", data_dir=str(root))
    for i, fold in enumerate(dm.spec.protocol.folds):
        dm.fold = fold
        dm.setup("fit")
        assert set(dm.test_set.groups) == {fold}
        assert set(dm.val_set.groups) == {dm.subjects[(i + 1) % len(dm.subjects)]}
        assert not set(dm.train_set.groups) & (set(dm.test_set.groups) | set(dm.val_set.groups))
    sd = create_datamodule("wesad", data_dir=str(root), protocol="subject_dependent")
    sd.setup("fit")

    def spans(ds):
        out = {}
        for i in ds.ids:
            s, t = i.split("-t")
            out.setdefault(s, []).append((float(t), float(t) + 5.0))
        return out

    tr, va, te = spans(sd.train_set), spans(sd.val_set), spans(sd.test_set)
    for s in tr:
        for a in (va, te):
            for (x0, x1) in tr[s]:
                assert all(x1 <= y0 + 1e-6 or y1 <= x0 + 1e-6 for y0, y1 in a.get(s, []))
        for (x0, x1) in va.get(s, []):
            assert all(x1 <= y0 + 1e-6 or y1 <= x0 + 1e-6 for y0, y1 in te.get(s, []))


def test_global_normalisation_is_fitted_on_training_windows(data):
    root, _ = data
    dm = create_datamodule("wesad", data_dir=str(root), fold="S3")
    dm.setup("fit")
    x = dm.train_set.x["chest_eda"].double()
    assert torch.allclose(x.mean(0), torch.zeros(28, dtype=torch.float64), atol=1e-4)
    assert not torch.allclose(dm.test_set.x["chest_eda"].double().mean(0), torch.zeros(28, dtype=torch.float64),
                              atol=1e-3)


def _corrupt_pickle(root, fn):
    path = root / "S3" / "S3.pkl"
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="latin1")
    fn(d)
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)
    return path


@pytest.mark.parametrize("fn,field,expected", [
    (lambda d: d["signal"]["chest"].pop("ECG"), "'signal.chest.ECG'", "a signal array"),
    (lambda d: d["signal"]["wrist"].__setitem__("BVP", d["signal"]["wrist"]["BVP"][::2]), "'signal.wrist.BVP'",
     "at 64 Hz, within 1 s"),
    (lambda d: d["signal"]["chest"].__setitem__("EDA", d["signal"]["chest"]["EDA"][:-7]), "'signal.chest.EDA'",
     "samples (as label, at 700 Hz)"),
    (lambda d: d["label"].__setitem__(5, 9), "'label'", "condition ids 0-7"),
])
def test_corrupt_pickles_name_file_and_field(tmp_path, fn, field, expected):
    write_wesad(tmp_path, subjects=(2, 3, 4))
    path = _corrupt_pickle(tmp_path, fn)
    with pytest.raises(DataError) as e:
        create_datamodule("wesad", data_dir=str(tmp_path))
    assert str(path) in str(e.value) and field in str(e.value) and expected in str(e.value)


def test_malformed_questionnaire_and_missing_data(tmp_path):
    write_wesad(tmp_path, subjects=(2, 3, 4))
    quest = tmp_path / "S4" / "S4_quest.csv"
    lines = quest.read_text().splitlines()
    lines = [ln if not ln.startswith("# PANAS") else "# PANAS;1;2;3;" for ln in lines]
    quest.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"S4_quest.csv: field '# PANAS \(Base\)'.*24 ratings"):
        create_datamodule("wesad", data_dir=str(tmp_path))
    quest.write_text((tmp_path / "S3" / "S3_quest.csv").read_text().replace("# START;0.10", "# START;0.75"))
    with pytest.raises(DataError, match="S4_quest.csv: field '# START'.*seconds below 60"):
        wesad.parse_quest(quest)
    with pytest.raises(UserInputError, match="archive.ics.uci.edu.*synthetic-physio"):
        create_datamodule("wesad", data_dir=str(tmp_path / "none"))
    assert [c for c, *_ in ORDER][:5] == ["Base", "TSST", "Medi 1", "Fun", "Medi 2"]


def test_cache_is_reused(data, monkeypatch):
    root, _ = data
    first = create_datamodule("wesad", data_dir=str(root))
    monkeypatch.setattr(wesad, "convert_subject", lambda *a: (_ for _ in ()).throw(AssertionError("re-read")))
    again = create_datamodule("wesad", data_dir=str(root))
    assert again.fingerprint() == first.fingerprint()


def test_bench_run_loso_end_to_end_and_info(data, tmp_path, capsys):
    root, _ = data
    res = tmp_path / "res"
    assert main(["run", "--model", "early_fusion", "--data", "wesad", "--data-dir", str(root), "--seeds", "0",
                 "--max-epochs", "2", "--no-progress", "--logger", "none", "--results", str(res)]) == 0
    recs = [read_record(p) for p in sorted(res.rglob("*.json"))]
    assert sorted(r["fold"] for r in recs) == ["S2", "S3", "S4", "S5"]
    for r in recs:
        assert r["split_groups"]["test"] == [r["fold"]] and np.isfinite(r["test"]["mf1"])
    capsys.readouterr()
    assert main(["info", "--data", "wesad", "--data-dir", str(root), "--set", "task=distribution"]) == 0
    out = capsys.readouterr().out
    assert "wesad: distribution" in out and "chest_acc (84,)" in out and "Annoyed" in out
