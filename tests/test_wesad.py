"""WESAD from the release's files, on tiny subjects at the real rates (tests/fixtures_wesad.py)."""
import numpy as np
import pytest
import torch

from benchmarks.cli import main
from benchmarks.records import read_record
from datamodules import wesad
from datamodules.io import DataError
from datamodules.registry import create_datamodule
from datamodules.spec import UserInputError

from .fixtures_wesad import DIST_ITEMS, PANAS_ITEMS, load_pickle, write_pickle, write_wesad

W = 5 * 700  # chest samples per window
SUBJ = ("S2", "S3", "S4", "S5")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One release shared by the read-only tests; the first construction converts it (and counts
    how often a pickle is read), later ones use the cache."""
    fx = write_wesad(tmp_path_factory.mktemp("wesad"))
    calls = []
    real = wesad._load_pickle
    mp = pytest.MonkeyPatch()
    mp.setattr(wesad, "_load_pickle", lambda p: calls.append(p) or real(p))
    fx["dm"] = create_datamodule("wesad", data_dir=str(fx["root"]))
    mp.undo()
    fx["pickle_reads"] = len(calls)
    return fx


@pytest.fixture()
def fresh(tmp_path, monkeypatch):
    """Three subjects of our own, with a private cache (for corrupting tests)."""
    monkeypatch.setenv("AFFECTBENCH_CACHE", str(tmp_path / "cache"))
    return write_wesad(tmp_path / "data", subjects=("S2", "S3", "S4"))


def dm_for(data, **kw):
    dm = create_datamodule("wesad", data_dir=str(data["root"]), **kw)
    dm.setup("fit")
    return dm


def rows_of(dm, s):
    return np.flatnonzero(dm.table["subject"] == s)


def everything(ds):
    return ds.__getitems__(list(range(len(ds))))


# -- questionnaire -----------------------------------------------------------------------------------
def test_quest_times_are_minutes_seconds_and_panas_rows_follow_the_order(data):
    assert wesad.parse_minsec("7.08", None, "t") == 428 and wesad.parse_minsec("50.3", None, "t") == 3030
    assert wesad.parse_minsec("48", None, "t") == 2880 and wesad.parse_minsec("0.4", None, "t") == 40
    with pytest.raises(DataError, match="minutes.seconds"):
        wesad.parse_minsec("7.75", "f.csv", "# START")
    q = wesad.parse_quest(data["wesad"] / "S2" / "S2_quest.csv", "S2")
    assert [c.name for c in q.conditions] == ["Base", "TSST", "sRead", "Medi 1", "Fun", "fRead", "Medi 2"]
    assert [c.label for c in q.conditions] == [1, 2, None, 4, 3, None, 4]
    times = {c.name: (c.start_s, c.end_s) for c in q.conditions}
    assert times["Medi 1"] == (82, 105) and times["Medi 2"] == (145, 170)  # "2.5" is 2 min 50 s
    assert q.order == "Base > TSST > Medi 1 > Fun > Medi 2"
    assert {c: len(v) for c, v in q.panas.items()} == {"Base": 24, "TSST": 26, "Medi 1": 24, "Fun": 24, "Medi 2": 24}
    assert len(q.stai) == len(q.dim) == 5 and len(q.sssq) == 6
    raw = data["subjects"]["S2"]["panas"]
    for cond in ("Base", "TSST"):
        want = np.array([raw[cond][PANAS_ITEMS.index(i)] for i in DIST_ITEMS], dtype=float)
        np.testing.assert_allclose(q.distribution(cond), want / want.sum())
    q5 = wesad.parse_quest(data["wesad"] / "S5" / "S5_quest.csv", "S5")
    assert q5.order == "Base > Fun > Medi 1 > TSST > Medi 2" and len(q5.panas["TSST"]) == 26
    assert {c.name: c.start_s for c in q5.conditions}["Base"] == 50  # its clock runs 40 s ahead
    assert wesad.DISTRIBUTION_ITEMS == DIST_ITEMS  # DMER's order, Annoyed in Upset's slot


def _edit_quest(path, tag, k, fields):
    lines = path.read_text().splitlines()
    idx = [i for i, ln in enumerate(lines) if ln.startswith(tag + ";")]
    if fields is None:
        del lines[idx[k]]
    else:
        lines[idx[k]] = ";".join([tag, *map(str, fields)]) + ";;;"
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("case", ["panas_items", "stress_row", "rating", "rows", "time", "no_end", "order", "subj"])
def test_malformed_quest_names_file_and_row(fresh, case):
    path = fresh["wesad"] / "S3" / "S3_quest.csv"  # order Base, Fun, Medi 1, TSST, Medi 2
    if case == "panas_items":
        _edit_quest(path, "# PANAS", 1, [3] * 23)
        expect = ["# PANAS row 2", "after Fun", "expected 24 ratings", "found 23"]
    elif case == "stress_row":
        _edit_quest(path, "# PANAS", 3, [3] * 24)
        expect = ["# PANAS row 4", "after TSST", "26 ratings (the stress row adds Angry and Irritated)", "found 24"]
    elif case == "rating":
        _edit_quest(path, "# STAI", 0, [1, 2, 3, 4, 7, 1])
        expect = ["# STAI row 1", "ratings 1-4", "found 7"]
    elif case == "rows":
        _edit_quest(path, "# DIM", 4, None)
        expect = ["'# DIM'", "5 rows, one per study condition", "found 4 rows"]
    elif case == "time":
        _edit_quest(path, "# START", 0, ["0.10", "0.75", "1.15", "1.22", "1.5", "2.2", "2.25"])
        expect = ["# START (line 3, Fun)", "minutes.seconds", "'0.75'"]
    elif case == "no_end":
        _edit_quest(path, "# END", 0, None)
        expect = ["'# END'", "exactly one '# END' row", "0 rows"]
    elif case == "order":
        _edit_quest(path, "# ORDER", 0, ["Base", "Fun", "sRead", "Medi 1", "TSST", "fRead", "Fun"])
        expect = ["# ORDER (line 2)", "each study condition once"]
    else:
        _edit_quest(path, "# Subj", 0, ["S7"])
        expect = ["'# Subj'", "S3 (the subject of the folder)", "'S7'"]
    with pytest.raises(DataError) as e:
        create_datamodule("wesad", data_dir=str(fresh["root"]))
    msg = str(e.value)
    assert str(path) in msg, msg
    for part in expect:
        assert part in msg, (part, msg)


# -- the pickle --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["missing_key", "rate", "label", "chest_length", "subject", "shape", "garbage"])
def test_corrupt_pickle_names_file_and_field(fresh, case):
    path = fresh["wesad"] / "S2" / "S2.pkl"
    d = load_pickle(path)
    if case == "missing_key":
        del d["signal"]["chest"]["EMG"]
        expect = ["field 'signal.chest.EMG'", "a key 'EMG' in", "missing"]
    elif case == "rate":  # BVP written at 32 Hz instead of 64 Hz
        d["signal"]["wrist"]["BVP"] = d["signal"]["wrist"]["BVP"][::2]
        expect = ["field 'signal.wrist.BVP'", "about 11520 samples (180.0 s at 64 Hz", "found 5744 samples (89.8 s"]
    elif case == "label":
        d["label"][5000:5003] = 9
        expect = ["field 'label'", "condition ids 0-7", "3 samples with [9]"]
    elif case == "chest_length":
        d["signal"]["chest"]["Resp"] = d["signal"]["chest"]["Resp"][:-700]
        expect = ["field 'signal.chest.Resp'", "126000 samples (as label", "found 125300 samples"]
    elif case == "subject":
        d["subject"] = "S9"
        expect = ["field 'subject'", "'S2' (the folder name)", "'S9'"]
    elif case == "shape":
        d["signal"]["wrist"]["ACC"] = d["signal"]["wrist"]["ACC"][:, :2]
        expect = ["field 'signal.wrist.ACC'", "shape (N, 3)", "(5744, 2)"]
    if case == "garbage":
        path.write_bytes(b"not a pickle at all")
        expect = ["field '<file>'", "encoding='latin1'"]
    else:
        write_pickle(path, d)
    with pytest.raises(DataError) as e:
        create_datamodule("wesad", data_dir=str(fresh["root"]))
    msg = str(e.value)
    assert msg.startswith(str(path)), msg
    for part in expect:
        assert part in msg, (part, msg)


def test_python2_pickle_with_latin1_strings_loads(fresh):
    # the release's pickles come from Python 2: str fields may arrive as bytes, arrays in any numeric dtype
    path = fresh["wesad"] / "S2" / "S2.pkl"
    d = load_pickle(path)
    d["subject"] = b"S2"
    d["label"] = d["label"].astype(np.uint8)
    d["signal"]["wrist"]["EDA"] = d["signal"]["wrist"]["EDA"][:, 0].astype(np.float32)  # (N,) read as (N, 1)
    write_pickle(path, d)
    sd = wesad.read_subject(path, "S2")
    assert sd.wrist["EDA"].shape == (int(179.5 * 4), 1) and sd.wrist["EDA"].dtype == np.float64
    assert sd.dtypes["label"] == "uint8" and sd.label.dtype == np.int8
    assert sd.sha256 == wesad.hashlib.sha256(path.read_bytes()).hexdigest()  # hashed while unpickling


# -- windows -------------------------------------------------------------------------------------------
def _expected_windows(label):
    """Brute force over the 1-s grid: (kept starts, straddling, in 0, in 5/6/7)."""
    kept, straddle, zero, ignored = [], 0, 0, 0
    for s in range(0, len(label) - W + 1, 700):
        seg = label[s:s + W]
        if (seg != seg[0]).any():
            straddle += 1
        elif seg[0] == 0:
            zero += 1
        elif seg[0] >= 5:
            ignored += 1
        else:
            kept.append(s)
    return kept, straddle, zero, ignored


def test_windows_lie_inside_one_condition_run(data):
    dm = dm_for(data, task="distribution", normalize="none")
    for s in SUBJ:
        label = data["subjects"][s]["label"]
        rows = rows_of(dm, s)
        starts = dm.table["start"][rows]
        kept, straddle, zero, ignored = _expected_windows(label)
        assert starts.tolist() == kept  # every admissible window, and only those
        for st, lab in zip(starts, dm.table["label"][rows]):
            seg = label[st:st + W]
            assert (seg == lab).all() and 1 <= lab <= 4  # never across a change, never label 0 or 5-7
        assert not ((starts < 25.2 * 700) & (starts + W > 25.0 * 700)).any()  # the label-0 glitch splits Base
        ex = dm.meta[s]["excluded"]
        assert (ex["straddling"], ex["label_0"], ex["label_6"] + ex["label_7"]) == (straddle, zero, ignored)
        assert ignored >= 1 and ex["beyond_wrist_end"] == 0
    notes = " | ".join(dm.notes())
    assert "never formed: " in notes and "straddling a label change" in notes
    assert "missing: S6, S7, S8, S9, S10, S11, S13, S14, S15, S16, S17" in notes
    three = data["dm"]
    assert len(three.table["start"]) == sum(int(np.isin(dm.table["label"][rows_of(dm, s)], (1, 2, 3)).sum())
                                            for s in SUBJ)
    assert "S2 (3.0 min; order Base > TSST > Medi 1 > Fun > Medi 2): 72 windows, baseline 20, stress 26, " \
           "amusement 26" in " | ".join(three.notes())


def test_wrist_streams_are_aligned_by_time_not_index(data):
    dm = dm_for(data, task="distribution", normalize="none")
    full = dm._features()
    t0 = torch.from_numpy(dm.table["start"] / 700.0)
    mean = 1  # the second statistic of the signal block
    # these streams are the time itself, so a window's mean is its start plus half its span
    for m, rate, col in (("chest_temp", 700, mean), ("chest_acc", 700, mean), ("wrist_temp", 4, mean),
                         ("wrist_bvp", 64, mean), ("wrist_acc", 32, mean)):
        n = 5 * rate
        np.testing.assert_allclose(full[m][:, col].double(), t0 + (n - 1) / (2 * rate), atol=2e-3, err_msg=m)
    # S3's wrist streams are 0.5 s longer than its chest, S2's 0.5 s shorter: same alignment
    assert {dm.meta["S3"]["lengths"]["wrist.BVP"], dm.meta["S2"]["lengths"]["wrist.BVP"]} == {64 * 180 + 32,
                                                                                              64 * 180 - 32}
    # one whole feature row against the recipe on the raw slice
    raw = load_pickle(data["wesad"] / "S3" / "S3.pkl")
    i = rows_of(dm, "S3")[40]
    k = int(dm.table["start"][i]) // 700
    eda = raw["signal"]["wrist"]["EDA"][k * 4:k * 4 + 20, 0]
    np.testing.assert_allclose(full["wrist_eda"][i].numpy(), wesad.dmer_features(eda[None], 4)[0], rtol=1e-5)
    acc = raw["signal"]["wrist"]["ACC"][k * 32:k * 32 + 160]
    np.testing.assert_allclose(full["wrist_acc"][i].numpy(),
                               np.concatenate([wesad.dmer_features(acc[None, :, c], 32)[0] for c in range(3)]),
                               rtol=1e-5, atol=1e-6)


def test_features_match_scipy_welch_and_numpy_fft():
    from scipy.signal import welch

    rng = np.random.default_rng(0)
    for n, rate in ((3500, 700), (320, 64), (20, 4), (21, 4)):
        x = rng.standard_normal((6, n)).cumsum(1)
        f = wesad.dmer_features(x, rate)
        mag = np.abs(np.fft.fft(x, axis=1))
        ref = [np.median(mag, 1), mag.mean(1), mag.std(1), mag.min(1), mag.max(1), np.ptp(mag, 1)]
        np.testing.assert_allclose(f[:, 21:27], np.stack(ref, 1), rtol=1e-10)
        freqs, psd = welch(x, fs=rate, nperseg=n, axis=1)
        np.testing.assert_allclose(f[:, 27], psd[:, freqs <= 2.0].mean(1), rtol=1e-10)
        d1 = np.diff(x, axis=1)
        np.testing.assert_allclose(f[:, 7:14], np.stack([np.median(d1, 1), d1.mean(1), d1.std(1), d1.min(1),
                                                         d1.max(1), (d1 == d1.min(1, keepdims=True)).mean(1),
                                                         (d1 == d1.max(1, keepdims=True)).mean(1)], 1))
    step = np.r_[np.zeros(10), np.ones(10)]
    f = wesad.dmer_features(step[None], 4)[0]
    assert f[5] == 0.5 and f[6] == 0.5  # min-ratio, max-ratio: share of samples at the min / max


# -- tasks -------------------------------------------------------------------------------------------
def test_tasks_3class_binary_and_panas_distribution(data):
    three = dm_for(data, normalize="none")
    spec = three.spec
    assert spec.task == "classification" and spec.class_names == ("baseline", "stress", "amusement")
    assert (spec.primary_metric, spec.primary_direction) == ("mf1", "max")
    assert (three.table["label"] != 4).all()  # meditation excluded
    assert three.y.tolist() == [{1: 0, 2: 1, 3: 2}[v] for v in three.table["label"].tolist()]
    assert any("meditation windows excluded" in n for n in three.notes())
    binary = dm_for(data, task="binary", normalize="none")
    assert binary.spec.class_names == ("non-stress", "stress")
    assert np.array_equal(binary.table["start"], three.table["start"])  # baseline + amusement vs stress
    assert binary.y.tolist() == (three.y == 1).long().tolist()
    dist = dm_for(data, task="distribution", fold="S5", normalize="none")
    assert dist.spec.task == "distribution" and dist.spec.class_names == DIST_ITEMS
    assert (dist.spec.primary_metric, dist.spec.primary_direction) == ("chebyshev", "min")
    assert set(dist.table["label"].tolist()) == {1, 2, 3, 4}
    assert torch.allclose(dist.y.sum(1), torch.ones(len(dist.y)))
    for s in SUBJ:
        panas = data["subjects"][s]["panas"]
        for i in rows_of(dist, s):
            t = dist.table["start"][i] / 700
            cond = dist.table["cond"][i]
            if dist.table["label"][i] == 4:  # two meditation blocks: by time, also for S5's shifted clock
                assert cond == ("Medi 1" if t < 106 else "Medi 2"), (s, t, cond)
            want = np.array([panas[cond][PANAS_ITEMS.index(it)] for it in DIST_ITEMS], dtype=float)
            np.testing.assert_allclose(dist.y[i].numpy(), want / want.sum(), rtol=1e-6)
    assert dist.offsets["S5"] == pytest.approx(-40, abs=1) and dist.offsets["S2"] == pytest.approx(0, abs=1)
    b = everything(dist.test_set)
    assert b.y.shape == (len(dist.test_set), 10) and b.label.tolist() == b.y.argmax(1).tolist()
    assert any("Annoyed in Upset's slot" in n and "S5 -40s" in n for n in dist.notes())


# -- protocols ----------------------------------------------------------------------------------------
def test_loso_tests_one_subject_and_validates_on_the_next(data):
    tested = []
    for k, fold in enumerate(SUBJ):
        dm = dm_for(data, fold=fold)
        assert dm.spec.protocol.kind == "leave_one_out" and dm.spec.protocol.folds == SUBJ
        tr, va, te = (set(everything(s).groups) for s in (dm.train_set, dm.val_set, dm.test_set))
        nxt = SUBJ[(k + 1) % len(SUBJ)]
        assert te == {fold} and va == {nxt} == {dm.validation_subject(fold)}
        assert tr == set(SUBJ) - {fold, nxt} and not (tr & te or tr & va or va & te)
        assert nxt in set(SUBJ) - {fold}  # validation comes from the training subjects
        assert len(dm.train_set) + len(dm.val_set) + len(dm.test_set) == len(dm.ids)
        tested += dm.test_set.ids
        assert f"fold {fold}: train 144 (2 subjects), val 72 (subject {nxt}), test 72 (subject {fold})" in dm.notes()
    assert sorted(tested) == sorted(data["dm"].ids)  # every window tested exactly once


def test_subject_dependent_parts_never_overlap_in_time(data):
    dm = dm_for(data, protocol="subject_dependent", task="distribution")
    assert dm.spec.protocol.kind == "holdout" and dm.spec.protocol.folds == ("all",)
    parts = dm.split_of()
    split = np.full(len(dm.ids), -1)
    for j, k in enumerate(("train", "val", "test")):
        split[parts[k]] = j
    for s in SUBJ:
        rows = rows_of(dm, s)
        for k in ("train", "val", "test"):
            assert s in set(getattr(dm, f"{k}_set").groups)
        kept = rows[split[rows] >= 0]
        st, sp = dm.table["start"][kept], split[kept]
        overlap = (np.abs(st[:, None] - st[None, :]) < W) & (sp[:, None] != sp[None, :])
        assert not overlap.any(), s  # no two windows of different splits share a sample
        runs = dm.arrays[s]["runs"]
        for i in kept:  # train in the first 60 %, val in the next 20 %, test in the last 20 % of the run
            a, b, _ = runs[dm.table["run"][i]]
            lo, hi = a + (0, 0.6, 0.8)[split[i]] * (b - a), a + (0.6, 0.8, 1.0)[split[i]] * (b - a)
            assert lo <= dm.table["start"][i] and dm.table["start"][i] + W <= hi
    assert (split == -1).sum() > 0 and any("windows across a cut dropped" in n for n in dm.notes())


def test_normalisation_is_fitted_on_the_training_split(data):
    raw = dm_for(data, fold="S3", normalize="none")
    glob = dm_for(data, fold="S3")
    subj = dm_for(data, fold="S3", normalize="subject")
    for m in ("chest_eda", "wrist_acc"):
        tr = raw.train_set.x[m].double()
        mean, std = tr.mean(0), tr.std(0, unbiased=False)
        std = torch.where(std > 0, std, torch.ones_like(std))
        assert torch.allclose(glob.train_set.x[m].double().mean(0), torch.zeros_like(mean), atol=1e-4)
        for split in ("val", "test"):
            want = (getattr(raw, f"{split}_set").x[m].double() - mean) / std
            assert torch.allclose(getattr(glob, f"{split}_set").x[m].double(), want, atol=1e-3)
        te = subj.test_set.x[m].double()  # the test subject with its own (label-free) statistics
        assert torch.allclose(te.mean(0), torch.zeros(te.shape[1], dtype=torch.float64), atol=1e-4)
    assert not torch.allclose(glob.test_set.x["chest_eda"].double().mean(0), torch.zeros(28, dtype=torch.float64),
                              atol=1e-2)  # test statistics were not used
    assert any(n.startswith("normalize: global (per-feature mean/std of this fold's training") for n in glob.notes())
    assert glob.fingerprint() != raw.fingerprint()


# -- cache, options, missing data -------------------------------------------------------------------------
def test_second_construction_reads_the_cache_not_the_pickles(data, monkeypatch):
    assert data["pickle_reads"] == 4  # the first construction converted every subject once

    def boom(*a, **k):
        raise AssertionError("a pickle was read again")

    monkeypatch.setattr(wesad, "_load_pickle", boom)
    again = create_datamodule("wesad", data_dir=str(data["root"]))
    first = data["dm"]
    assert again.fingerprint() == first.fingerprint()
    assert all(isinstance(again.arrays[s]["x.chest_ecg"], np.memmap) for s in SUBJ)
    again.setup("fit")
    assert torch.equal(again._features()["chest_ecg"], first._features()["chest_ecg"])
    assert any(n.startswith("cache ") and "(4 subject folders)" in n for n in again.notes())
    with pytest.raises(AssertionError, match="read again"):  # other window settings: another cache
        create_datamodule("wesad", data_dir=str(data["root"]), step_s=2)


def test_sensors_option_and_groups(data):
    dm = dm_for(data, sensors="wrist")
    assert dm.spec.modality_names == ("wrist_bvp", "wrist_eda", "wrist_temp", "wrist_acc")
    assert [m.group for m in dm.spec.modalities] == ["physiological"] * 3 + ["behavioral"]
    pick = dm_for(data, sensors="wrist_acc, chest_ecg")
    assert pick.spec.modality_names == ("chest_ecg", "wrist_acc")
    b = everything(pick.train_set)
    assert b.x["chest_ecg"].shape == (len(pick.train_set), 28) and b.x["wrist_acc"].shape[1] == 84
    full = data["dm"].spec
    assert [(m.name, m.dim) for m in full.modalities][:1] == [("chest_ecg", 28)] and len(full.modalities) == 10
    assert {m.name for m in full.modalities_in("behavioral")} == {"chest_acc", "wrist_acc"}


@pytest.mark.parametrize("bad", [{"task": "4class"}, {"protocol": "kfold"}, {"normalize": "zscore"},
                                 {"window_s": 0.5}, {"window_s": 2.3}, {"step_s": 0}, {"sensors": "eeg"}])
def test_bad_options(data, bad):
    with pytest.raises(UserInputError):
        create_datamodule("wesad", data_dir=str(data["root"]), **bad)


def test_missing_dataset_names_the_source_and_the_preset(tmp_path, fresh):
    for d in (None, tmp_path / "nowhere", tmp_path / "empty"):
        if d is not None and d.name == "empty":
            d.mkdir()
        with pytest.raises(UserInputError) as e:
            create_datamodule("wesad", data_dir=None if d is None else str(d))
        msg = str(e.value)
        assert "https://archive.ics.uci.edu/dataset/465/wesad+wearable+stress+and+affect+detection" in msg
        assert "--data synthetic-physio" in msg
    assert not wesad.WESADDataModule.is_available(str(tmp_path / "empty"))
    assert wesad.WESADDataModule.is_available(str(fresh["root"]))
    (fresh["wesad"] / "S4" / "S4_quest.csv").unlink()
    with pytest.raises(DataError) as e:
        create_datamodule("wesad", data_dir=str(fresh["wesad"]))
    assert "S4_quest.csv" in str(e.value) and "no such file" in str(e.value)
    (fresh["wesad"] / "S4" / "S4.pkl").unlink()
    with pytest.raises(DataError) as e:
        create_datamodule("wesad", data_dir=str(fresh["wesad"]))
    assert "'subjects'" in str(e.value) and "at least 3 subjects" in str(e.value) and "found S2, S3" in str(e.value)


# -- end to end -------------------------------------------------------------------------------------------
def test_cli_run_over_the_loso_folds_and_info(data, tmp_path, capsys):
    res = tmp_path / "results"
    root = str(data["root"])
    assert main(["run", "--model", "early_fusion", "--data", "wesad", "--data-dir", root, "--seeds", "0",
                 "--max-epochs", "2", "--no-progress", "--logger", "none", "--results", str(res)]) == 0
    recs = {r["fold"]: r for r in map(read_record, sorted(res.rglob("*.json")))}
    assert sorted(recs, key=lambda f: int(f[1:])) == list(SUBJ)
    fp = data["dm"].fingerprint()
    for k, (fold, rec) in enumerate(recs.items()):
        assert rec["data"] == "wesad" and rec["synthetic"] is False and rec["data_fingerprint"] == fp
        assert rec["selection"]["monitor"] == "val/mf1" and {"wa", "ua", "wf1", "mf1"} <= set(rec["test"])
        assert rec["split_groups"]["test"] == [fold]
        assert rec["split_groups"]["val"] == [data["dm"].validation_subject(fold)]
        assert fold not in rec["split_groups"]["train"] and len(rec["split_groups"]["train"]) == 2
        assert rec["split_sizes"] == {"train": 144, "val": 72, "test": 72}
        assert any(n.startswith("condition orders") for n in rec["data_notes"])
    capsys.readouterr()
    # the distribution task runs through the same runner (one fold)
    assert main(["run", "--model", "early_fusion", "--data", "wesad", "--data-dir", root, "--seeds", "0",
                 "--folds", "S4", "--set", "task=distribution", "--max-epochs", "1", "--no-progress", "--logger",
                 "none", "--results", str(res)]) == 0
    rec = next(r for r in map(read_record, res.rglob("*.json")) if r["spec"]["task"] == "distribution")
    assert rec["selection"]["monitor"] == "val/chebyshev" and {"chebyshev", "kl", "intersection"} <= set(rec["test"])
    capsys.readouterr()

    assert main(["info", "--data", "wesad", "--data-dir", root, "--fold", "S3", "--set", "task=binary"]) == 0
    out = capsys.readouterr().out
    assert "wesad: classification" in out and "classes (2): non-stress, stress" in out
    assert "protocol: leave_one_out, folds: S2, S3, S4, S5" in out
    assert "chest_ecg" in out and "(28,)" in out and "group=behavioral" in out
    assert "test  (fold S3): n=72; non-stress 46, stress 26; groups: S3" in out
    assert "val   (fold S3): n=72" in out and "groups: S4" in out
    assert "note: condition orders" in out
    assert main(["list", "--data-dir", root]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("wesad "))
    assert "files present" in line
