"""DMER datamodule on tiny .mat files in the released format (v5 and v7.3, with and without dis_label)."""
import numpy as np
import pytest
import torch

from benchmarks.cli import main
from benchmarks.records import read_record
from datamodules import dmer
from datamodules.io import DataError
from datamodules.registry import create_datamodule
from datamodules.spec import UserInputError

from .fixtures_dmer import write_dmer, write_v73

RPC = 3  # rows per clip


@pytest.fixture()
def data(tmp_path):
    return tmp_path, write_dmer(tmp_path)


def all_rows(dm):
    return {split: dm.split_rows()[split] for split in ("train", "val", "test")}


def test_shapes_eeg_tokens_labels_and_v73(data):
    root, raw = data
    dm = create_datamodule("dmer", data_dir=str(root), normalize="none")
    dm.setup("fit")
    assert dm.spec.protocol.folds == ("S1", "S2", "S5", "S6", "S7") and dm.spec.primary_metric == "chebyshev"
    b = dm.test_set.__getitems__(list(range(len(dm.test_set))))  # fold S1: participant 1
    f = raw[1]["feas"]
    assert b.x["eeg"].shape == (32 * RPC, 18, 5) and b.x["video"].shape == (32 * RPC, 768)
    row = 7
    for ch, band in ((0, 0), (3, 4), (17, 2)):  # column = 5 * channel + band
        assert b.x["eeg"][row, ch, band].item() == pytest.approx(f[row, 5 * ch + band], rel=1e-6)
    assert torch.allclose(b.x["gsr"][row], torch.tensor(f[row, 90:118], dtype=torch.float32))
    lab = raw[1]["dis_label"]
    v = int(raw[1]["vids"][row, 0])
    assert torch.allclose(b.y[row], torch.tensor(lab[v] / lab[v].sum(), dtype=torch.float32))
    assert torch.allclose(b.y.sum(1), torch.ones(len(b.y)))
    for s in (6, 7):  # Panas.csv fallback and the v7.3 file read the same values as written
        dm7 = create_datamodule("dmer", data_dir=str(root), normalize="none", fold=f"S{s}")
        dm7.setup("fit")
        t = dm7.test_set.__getitems__(list(range(len(dm7.test_set))))
        assert torch.allclose(t.x["video"], torch.tensor(raw[s]["feas"][:, 145:], dtype=torch.float32))
        lab = raw[s]["dis_label"][raw[s]["vids"][:, 0].astype(int)]
        assert torch.allclose(t.y, torch.tensor(lab / lab.sum(1, keepdims=True), dtype=torch.float32))
    assert any("Panas.csv for ['6']" in n for n in dm.notes())


def test_loso_and_kfold_keep_participants_apart(data):
    root, _ = data
    dm = create_datamodule("dmer", data_dir=str(root))
    subj = dm._cache.load("subject", mmap=False)
    for i, fold in enumerate(dm.spec.protocol.folds):
        r = dm.split_rows(fold)
        sets = {k: set(subj[v]) for k, v in r.items()}
        assert sets["test"] == {fold[1:]} and len(sets["val"]) == 1
        assert sets["val"] == {dm.subjects[(i + 1) % len(dm.subjects)]}
        assert not (sets["train"] & sets["test"]) and not (sets["train"] & sets["val"])
    km = create_datamodule("dmer", data_dir=str(root), protocol="kfold", k=3, split_seed=1)
    tested = []
    for fold in km.spec.protocol.folds:
        r = km.split_rows(fold)
        sets = {k: set(subj[v]) for k, v in r.items()}
        assert not (sets["train"] & (sets["test"] | sets["val"])) and not (sets["test"] & sets["val"])
        tested += sorted(sets["test"])
    assert sorted(tested) == sorted(km.subjects)


def test_subject_dependent_holds_out_whole_clips_and_official_is_flagged_leaky(data):
    root, _ = data
    dm = create_datamodule("dmer", data_dir=str(root), protocol="subject_dependent")
    subj, vids = dm._cache.load("subject", mmap=False), dm._cache.load("vids", mmap=False)
    r = dm.split_rows("trial")
    clip = lambda rows: {(subj[i], int(vids[i])) for i in rows}  # noqa: E731
    assert not (clip(r["train"]) & clip(r["test"])) and not (clip(r["val"]) & clip(r["test"]))
    assert not (clip(r["train"]) & clip(r["val"]))
    for s in dm.subjects:
        test_v = {v for (ss, v) in clip(r["test"]) if ss == s}
        assert len(test_v) == 8 and len({v for v in test_v if v < 8}) == 2 and len({v for v in test_v if v >= 16}) == 4
    off = create_datamodule("dmer", data_dir=str(root), protocol="subject_dependent_official")
    assert "LEAKY" in off.spec.protocol.description and dict(off.spec.extra)["leaky"] == "True"
    assert any("LEAKY" in n for n in off.notes())
    ro = off.split_rows("official")
    assert sum(len(v) for v in ro.values()) == len(subj) and clip(ro["train"]) & clip(ro["test"])  # leaky indeed


def test_global_normalisation_uses_training_rows_only(data):
    root, _ = data
    dm = create_datamodule("dmer", data_dir=str(root), normalize="global")
    dm.setup("fit")
    tr = dm.train_set.x["gsr"]
    assert torch.allclose(tr.double().mean(0), torch.zeros(28, dtype=torch.float64), atol=1e-4)
    raw = torch.from_numpy(np.asarray(dm._cache.load("feas")))
    r = dm.split_rows()
    mean = raw[r["train"], 90:118].double().mean(0)
    std = raw[r["train"], 90:118].double().std(0, unbiased=False)
    want = (raw[r["test"], 90:118].double() - mean) / std
    assert torch.allclose(dm.test_set.x["gsr"].double(), want, atol=1e-4)


def _mutate(root, s, **fields):
    from scipy.io import loadmat, savemat

    path = root / "Features" / f"{s}.mat"
    d = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
    for k, v in fields.items():
        if v is None:
            d.pop(k)
        else:
            d[k] = v
    savemat(path, d)
    return path


@pytest.mark.parametrize("change,field,expected", [
    ({"feas": None}, "'feas'", "feature matrix"),
    ({"feas": np.zeros((96, 900))}, "'feas'", "shape (N, 913)"),
    ({"vids": np.full((96, 1), 40.0)}, "'vids'", "integers 0-31"),
    ({"vids": np.zeros((5, 1))}, "'vids'", "96 ids"),
    ({"dis_label": np.ones((31, 10))}, "'dis_label'", "shape (32, 10)"),
    ({"dis_label": None}, "'dis_label'", "Panas.csv"),
])
def test_corrupt_files_name_file_and_field(data, change, field, expected):
    root, _ = data
    path = _mutate(root, 2, **change)
    with pytest.raises(DataError) as e:
        create_datamodule("dmer", data_dir=str(root))
    assert str(path) in str(e.value) and field in str(e.value) and expected in str(e.value)


def test_nonfinite_is_an_error_unless_asked_and_missing_data_message(data, tmp_path):
    root, raw = data
    f = raw[5]["feas"].copy()
    f[0, 3] = np.nan
    _mutate(root, 5, feas=f)
    with pytest.raises(DataError, match="5.mat: field 'feas'.*nonfinite=zero"):
        create_datamodule("dmer", data_dir=str(root))
    dm = create_datamodule("dmer", data_dir=str(root), nonfinite="zero")
    assert "non-finite feature values set to 0: 1" in dm.notes()
    with pytest.raises(UserInputError, match="zenodo.11194571.*synthetic-physio"):
        create_datamodule("dmer", data_dir=str(tmp_path / "none"))
    with pytest.raises(UserInputError, match="protocol must be one of"):
        create_datamodule("dmer", data_dir=str(root), protocol="random")


def test_cache_is_reused(data, monkeypatch):
    root, _ = data
    first = create_datamodule("dmer", data_dir=str(root))
    monkeypatch.setattr(dmer, "read_mat", lambda p: (_ for _ in ()).throw(AssertionError("re-read")))
    again = create_datamodule("dmer", data_dir=str(root))
    assert again._cache.path == first._cache.path and again.fingerprint() == first.fingerprint()


def test_v73_reader_turns_matlab_layout_back(tmp_path):
    a = np.arange(12.0).reshape(4, 3)
    write_v73(tmp_path / "x.mat", {"feas": a})
    assert np.array_equal(dmer.read_mat(tmp_path / "x.mat")["feas"], a)


def test_bench_run_loso_end_to_end_and_info(data, tmp_path, capsys):
    root, _ = data
    res = tmp_path / "res"
    assert main(["run", "--model", "early_fusion", "--data", "dmer", "--data-dir", str(root), "--seeds", "0",
                 "--max-epochs", "2", "--no-progress", "--logger", "none", "--results", str(res)]) == 0
    recs = [read_record(p) for p in sorted(res.rglob("*.json"))]
    assert sorted(r["fold"] for r in recs) == ["S1", "S2", "S5", "S6", "S7"]
    for r in recs:
        assert r["split_groups"]["test"] == [r["fold"]] and r["fold"] not in r["split_groups"]["train"]
        assert np.isfinite(r["test"]["chebyshev"]) and r["spec"]["task"] == "distribution"
    capsys.readouterr()
    assert main(["info", "--data", "dmer", "--data-dir", str(root), "--set", "protocol=subject_dependent"]) == 0
    out = capsys.readouterr().out
    assert "dmer: distribution" in out and "eeg      (T<=18, 5)" in out and "protocol: holdout, folds: trial" in out


def test_v5_and_v73_files_hold_the_same_content(tmp_path):
    from scipy.io import savemat

    from .fixtures_dmer import subject

    fields = subject(np.random.default_rng(3), rows_per_clip=2)
    fields["vids"] = fields["vids"].T  # (1, N): also accepted
    savemat(tmp_path / "v5.mat", fields)
    write_v73(tmp_path / "v73.mat", fields)
    a, b = dmer.read_mat(tmp_path / "v5.mat"), dmer.read_mat(tmp_path / "v73.mat")
    assert set(a) == set(b) == {"feas", "vids", "dis_label"}
    for k in a:
        assert a[k].shape == b[k].shape and np.array_equal(a[k], b[k]), k
    (tmp_path / "junk.mat").write_bytes(b"not a mat file" * 20)
    with pytest.raises(DataError, match="junk.mat: field '<file>'"):
        dmer.read_mat(tmp_path / "junk.mat")


@pytest.mark.parametrize("line,field,expected", [
    ("3,1,1,1,1,1,1,1,1,1,1", "line 33", "one line per video id"),
    ("x,1,1,1,1,1,1,1,1,1,1", "line 33", "numbers"),
    ("0 rating", "line 1", "ratings 1-9"),
])
def test_panas_csv_is_validated(data, line, field, expected):
    root, _ = data
    csv = root / "Raw_data" / "6" / "Panas.csv"
    lines = csv.read_text().splitlines()
    if line == "0 rating":  # the first line's first rating becomes 0
        vid, _, *rest = lines[0].split(",")
        lines[0] = ",".join([vid, "0", *rest])
    else:
        lines.append(line)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        create_datamodule("dmer", data_dir=str(root))
    assert "Panas.csv" in str(e.value) and field in str(e.value) and expected in str(e.value)


def test_panas_csv_header_line_is_skipped_and_features_dir_accepted(data):
    root, raw = data
    csv = root / "Raw_data" / "6" / "Panas.csv"
    csv.write_text("video," + ",".join(dmer.ITEMS) + "\n" + csv.read_text())
    dm = create_datamodule("dmer", data_dir=str(root / "Features"), normalize="none", fold="S6")
    dm.setup("fit")
    lab = raw[6]["dis_label"][raw[6]["vids"][:, 0].astype(int)]
    assert torch.allclose(dm.test_set.y, torch.tensor(lab / lab.sum(1, keepdims=True), dtype=torch.float32))
    assert dm.root == root


def test_official_split_is_torch_random_split_and_eeg_vector_view(data):
    root, _ = data
    off = create_datamodule("dmer", data_dir=str(root), protocol="subject_dependent_official", eeg_tokens=False,
                            normalize="none")
    subj = off._cache.load("subject", mmap=False)
    r = off.split_rows("official")
    rows = np.flatnonzero(subj == "2")
    n = len(rows)
    tr, te = torch.utils.data.random_split(range(n), [int(0.8 * n), n - int(0.8 * n)],
                                           generator=torch.Generator().manual_seed(3407))
    assert set(rows[list(te.indices)]) == set(r["test"]) & set(rows)
    assert set(rows[list(tr.indices)]) == (set(r["train"]) | set(r["val"])) & set(rows)
    assert len(set(r["val"]) & set(rows)) == max(1, round(0.1 * int(0.8 * n)))
    off.setup("fit")
    assert off.spec.modalities[0].dim == 90 and off.spec.modalities[0].seq_len is None
    b = off.test_set.__getitems__([0, 1])
    raw = np.asarray(off._cache.load("feas"))
    assert b.x["eeg"].shape == (2, 90) and torch.allclose(b.x["eeg"], torch.from_numpy(raw[r["test"][:2], :90]))
    assert set(b.meta) == {"clip_type"}


def test_subject_normalisation_and_notes_checksums(data):
    from datamodules.io import sha256_file

    root, _ = data
    dm = create_datamodule("dmer", data_dir=str(root), normalize="subject")
    dm.setup("fit")
    g = np.asarray(dm.train_set.groups)
    for s in set(g):
        m = dm.train_set.x["ppg"][torch.from_numpy(g == s)].double().mean(0)
        assert torch.allclose(m, torch.zeros_like(m), atol=1e-4)
    notes = "\n".join(dm.notes())
    assert sha256_file(root / "Features" / "7.mat")[:12] in notes and "rows per participant: 1:96" in notes
    assert "fold S1 (loso): train 288, val 96, test 96" in notes and "not found: 68" in notes


def test_subject_dependent_needs_enough_clips_of_each_type(data):
    root, raw = data
    keep = raw[2]["vids"][:, 0] >= 3  # participant 2 without positive clips 0-2: 5 positive clips left
    _mutate(root, 2, feas=raw[2]["feas"][keep], vids=raw[2]["vids"][keep])
    dm = create_datamodule("dmer", data_dir=str(root), protocol="subject_dependent")
    r = dm.split_rows("trial")  # 5 >= 2 test + 1 val + 1 train: fine
    assert len(r["test"]) == 5 * 8 * RPC
    keep = raw[2]["vids"][:, 0] >= 5  # 3 positive clips left
    _mutate(root, 2, feas=raw[2]["feas"][keep], vids=raw[2]["vids"][keep])
    with pytest.raises(DataError, match="2.mat: field 'vids'.*at least 4 positive clips"):
        create_datamodule("dmer", data_dir=str(root), protocol="subject_dependent").split_rows("trial")
