"""CMU-MOSEI / CMU-MOSI datamodules on small files written in the exact MMSA and MulT formats."""
import csv
import math
import pickle

import numpy as np
import pytest
import torch

from benchmarks.cli import main
from benchmarks.fake_files import write_mmsa_pickle, write_mult_pickle
from benchmarks.records import read_record
from datamodules import cmu
from datamodules.io import DataError
from datamodules.registry import create_datamodule
from datamodules.spec import UserInputError

FAST = ["--seeds", "0", "--max-epochs", "2", "--no-progress"]
DIMS = {"text": 16, "audio": 5, "vision": 7}


def load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def dump(path, data):
    with open(path, "wb") as f:
        pickle.dump(data, f)


def batch_of(ds, n=None):
    return ds.__getitems__(list(range(n or len(ds))))


@pytest.fixture()
def mosei_dir(tmp_path):
    root = tmp_path / "mosei"
    write_mmsa_pickle(root / "Processed" / "aligned_50.pkl", dims=DIMS, seed=1)
    write_mmsa_pickle(root / "Processed" / "unaligned_50.pkl", aligned=False, dims=DIMS, seed=2, nan_rate=0.002)
    return root


def test_aligned_mmsa_shapes_masks_labels_and_groups(mosei_dir):
    raw = load(mosei_dir / "Processed" / "aligned_50.pkl")
    dm = create_datamodule("mosei", data_dir=str(mosei_dir))
    dm.setup("fit")
    spec = dm.spec
    assert spec.task == "regression" and spec.primary_metric == "mae" and spec.primary_direction == "min"
    assert [(m.name, m.dim, m.seq_len, m.group) for m in spec.modalities] == [
        ("text", 16, 12, "text"), ("audio", 5, 12, "audio"), ("vision", 7, 12, "visual")]
    for split, ds in (("train", dm.train_set), ("valid", dm.val_set), ("test", dm.test_set)):
        r = raw[split]
        assert len(ds) == len(r["regression_labels"])
        b = batch_of(ds)
        bert_len = r["text_bert"][:, 1].sum(1).astype(int)
        for name in ("text", "audio", "vision"):  # aligned: every mask is the BERT attention mask
            assert b.mask[name].sum(1).tolist() == bert_len.tolist()
        np.testing.assert_array_equal(b.y.numpy(), r["regression_labels"])
        assert b.label.tolist() == (np.sign(r["regression_labels"]) + 1).astype(int).tolist()
        assert b.groups == [i.split("$_$")[0] for i in r["id"]] and b.ids == list(r["id"])
        i = int(np.argmax(bert_len))
        np.testing.assert_array_equal(b.x["vision"][i, : bert_len[i]].numpy(), r["vision"][i, : bert_len[i]])
    zeros = {s: int((raw[f]["regression_labels"] == 0).sum()) for s, f in (("train", "train"), ("val", "valid"),
                                                                           ("test", "test"))}
    assert f"labels exactly 0 (Has0 counts them positive, Non0 drops them): train {zeros['train']}, " \
           f"val {zeros['val']}, test {zeros['test']}" in dm.notes()


def test_unaligned_lengths_become_masks_and_nonfinite_values_are_zeroed_and_counted(mosei_dir):
    raw = load(mosei_dir / "Processed" / "unaligned_50.pkl")
    dm = create_datamodule("mosei", data_dir=str(mosei_dir), aligned=False)
    dm.setup("fit")
    assert [(m.name, m.seq_len) for m in dm.spec.modalities] == [("text", 12), ("audio", 30), ("vision", 20)]
    b = batch_of(dm.train_set)
    r = raw["train"]
    assert b.mask["audio"].sum(1).tolist() == r["audio_lengths"].tolist()
    assert b.mask["vision"].sum(1).tolist() == r["vision_lengths"].tolist()
    assert torch.isfinite(b.x["audio"]).all() and torch.isfinite(b.x["vision"]).all()
    i = int(np.argmax(r["audio_lengths"]))
    want = np.nan_to_num(r["audio"][i, : r["audio_lengths"][i]], nan=0.0, neginf=0.0, posinf=0.0)
    np.testing.assert_array_equal(b.x["audio"][i, : r["audio_lengths"][i]].numpy(), want)
    neginf = sum(int(np.isneginf(raw[s]["audio"]).sum()) for s in raw)
    nan_v = sum(int(np.isnan(raw[s]["vision"]).sum()) for s in raw)
    assert neginf > 0 and nan_v > 0
    assert dm.repaired_counts()["audio"] == neginf + sum(int(np.isnan(raw[s]["audio"]).sum()) for s in raw)
    note = next(n for n in dm.notes() if n.startswith("non-finite values set to 0"))
    assert f"audio: -inf {neginf}," in note and f"NaN {nan_v} (" in note.split("vision:")[1]


def test_text_tokens_are_exact_integers_for_an_embedding_lookup(mosei_dir):
    raw = load(mosei_dir / "Processed" / "aligned_50.pkl")["train"]["text_bert"]
    dm = create_datamodule("mosei", data_dir=str(mosei_dir), text_input="tokens")
    dm.setup("fit")
    assert dm.spec.modality("text").dim == 3 and dict(dm.spec.extra)["text_input"] == "bert-token-ids"
    b = batch_of(dm.train_set)
    ids = b.x["text"][..., 0].long()
    L = b.x["text"].shape[1]
    np.testing.assert_array_equal(ids.numpy(), raw[:, 0, :L].astype(np.int64))
    emb = torch.nn.Embedding(30000, 4)
    assert emb(ids).shape == (len(raw), L, 4)


def test_utterance_level_file_gives_vector_modalities(tmp_path):
    path = write_mmsa_pickle(tmp_path / "aligned_50.pkl", steps={"text": 1, "audio": 1, "vision": 1}, dims=DIMS)
    data = load(path)
    for split in data.values():  # token rows keep their own length (50), as in MMSA files
        split["text_bert"] = np.concatenate([split["text_bert"], np.zeros((len(split["text_bert"]), 3, 49),
                                                                          np.float32)], axis=2)
    dump(path, data)
    dm = create_datamodule("mosi", data_dir=str(tmp_path))
    dm.setup("fit")
    assert all(m.seq_len is None for m in dm.spec.modalities)
    b = next(iter(dm.train_dataloader()))
    assert b.x["audio"].shape[1:] == (5,) and b.mask["audio"].all()


def test_mult_pickle_front_padding_moves_to_the_back_and_byte_ids_decode(tmp_path):
    path = write_mult_pickle(tmp_path / "mosi_data.pkl", dims={"text": 300, "audio": 5, "vision": 7}, seed=3)
    raw = load(path)["test"]
    dm = create_datamodule("mosi", data_dir=str(tmp_path))
    dm.setup("fit")
    assert dict(dm.spec.extra)["source_format"] == "mult" and dm.spec.modality("text").dim == 300
    b = batch_of(dm.test_set)
    for name in ("text", "vision"):
        steps = raw[name].shape[1]
        lead = (np.abs(raw[name]).max(2) > 0).argmax(1)
        assert b.mask[name].sum(1).tolist() == (steps - lead).tolist()
        i = int(np.argmax(lead))  # the sample with the most front padding
        np.testing.assert_array_equal(b.x[name][i, : steps - lead[i]].numpy(), raw[name][i, lead[i]:])
        assert (b.x[name][i, steps - lead[i]:] == 0).all()
    np.testing.assert_array_equal(b.y.numpy(), raw["labels"].reshape(-1))
    assert b.ids[0] == "vtest0_0.0_1.0" and b.groups[0] == "vtest0"


def test_cache_is_reused_memory_mapped_and_invalidated_by_a_new_file(mosei_dir, monkeypatch):
    dm = create_datamodule("mosei", data_dir=str(mosei_dir))
    first_key = dm._cache.path.name

    def no_pickle(path):
        raise AssertionError("the pickle was read again")

    monkeypatch.setattr(cmu, "_load_pickle", no_pickle)
    dm2 = create_datamodule("mosei", data_dir=str(mosei_dir))
    dm2.setup("fit")
    assert dm2._cache.path.name == first_key
    assert isinstance(dm2._cache.load("train.audio"), np.memmap)
    assert dm2.fingerprint() == dm.fingerprint()
    monkeypatch.undo()
    write_mmsa_pickle(mosei_dir / "Processed" / "aligned_50.pkl", dims=DIMS, seed=9)
    dm3 = create_datamodule("mosei", data_dir=str(mosei_dir))
    assert dm3._cache.path.name != first_key and dm3.fingerprint() != dm.fingerprint()


def _corrupt(path, fn):
    data = load(path)
    fn(data)
    dump(path, data)


def _dup_across(d):
    d["test"]["id"][0] = d["train"]["id"][0]


def _nonzero_padding(d):
    r = d["valid"]
    i = int(np.argmin(r["audio_lengths"]))
    r["audio"][i, -1] = 1.0


CORRUPTIONS = [
    ("no valid split", lambda d: d.pop("valid"), "'<top level>'", "keys train, valid, test"),
    ("no audio field", lambda d: d["train"].pop("audio"), "'train.audio'", "a field of that name"),
    ("audio dim differs", lambda d: d["test"].__setitem__("audio", d["test"]["audio"][:, :, :4]), "'test.audio'",
     "(T, 5)"),
    ("label out of range", lambda d: d["valid"]["regression_labels"].__setitem__(3, 3.5),
     "'valid.regression_labels'", "in [-3, 3]"),
    ("NaN label", lambda d: d["train"]["regression_labels"].__setitem__(0, np.nan), "'train.regression_labels'",
     "finite scores"),
    ("rows differ", lambda d: d["train"].__setitem__("vision", d["train"]["vision"][:-1]), "'train.vision'",
     "rows (as train.labels)"),
    ("duplicate id", lambda d: d["train"]["id"].__setitem__(1, d["train"]["id"][0]), "'train.id'", "unique ids"),
    ("id in two splits", _dup_across, "'test.id'", "unique across train, valid and test"),
    ("length beyond steps", lambda d: d["train"]["vision_lengths"].__setitem__(0, 999), "'train.vision_lengths'",
     "integers in [0, 20]"),
    ("lengths rows differ", lambda d: d["test"].__setitem__("audio_lengths", d["test"]["audio_lengths"][:3]),
     "'test.audio_lengths'", "rows"),
    ("padding not zero", _nonzero_padding, "'valid.audio'", "all-zero steps after the lengths"),
    ("mask with a gap", lambda d: d["train"]["text_bert"][0, 1].__setitem__(0, 0), "'train.text_bert[:, 1]'",
     "valid tokens first"),
    ("1-d features", lambda d: d["train"].__setitem__("text", d["train"]["text"][:, 0, 0]), "'train.text'",
     "shape (N, T, D) or (N, D)"),
]


@pytest.mark.parametrize("what,fn,field,expected", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corrupt_input_names_file_and_field_and_writes_no_cache(tmp_path, monkeypatch, what, fn, field, expected):
    monkeypatch.setenv("AFFECTBENCH_CACHE", str(tmp_path / "cache"))
    path = write_mmsa_pickle(tmp_path / "unaligned_50.pkl", aligned=False, dims=DIMS)
    _corrupt(path, fn)
    with pytest.raises(DataError) as e:
        create_datamodule("mosei", data_dir=str(tmp_path), aligned=False)
    msg = str(e.value)
    assert str(path) in msg and field in msg and expected in msg, msg
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npy"))


def test_lenient_padding_keeps_lengths_and_reports(tmp_path):
    path = write_mmsa_pickle(tmp_path / "unaligned_50.pkl", aligned=False, dims=DIMS)
    _corrupt(path, _nonzero_padding)
    dm = create_datamodule("mosei", data_dir=str(tmp_path), aligned=False, strict_padding=False)
    assert any("not zero after their length: audio {'valid': 1}" in n for n in dm.notes())


def test_not_a_pickle_and_missing_data(tmp_path, capsys):
    (tmp_path / "aligned_50.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="aligned_50.pkl: field '<pickle>': expected a readable pickle"):
        create_datamodule("mosei", data_dir=str(tmp_path))
    with pytest.raises(UserInputError, match="mosi: aligned MOSI pickle not found.*thuiar/MMSA.*synthetic-mosei"):
        create_datamodule("mosi", data_dir=str(tmp_path / "nowhere"))
    assert main(["run", "--model", "early_fusion", "--data", "mosi", "--data-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: mosi:") and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(UserInputError, match="text_input=tokens needs an MMSA pickle"):
        write_mult_pickle(tmp_path / "m" / "mosi_data.pkl")
        create_datamodule("mosi", data_dir=str(tmp_path / "m"), text_input="tokens")


@pytest.mark.parametrize("data,extra", [("mosei", []), ("mosei", ["--set", "aligned=false"]), ("mosi", [])])
def test_bench_run_end_to_end_without_nan_losses(tmp_path, mosei_dir, data, extra, capsys):
    data_dir = mosei_dir
    if data == "mosi":
        data_dir = tmp_path / "mosi"
        write_mult_pickle(data_dir / "mosi_data.pkl", neg_inf_rate=0.01)
    res, logs = tmp_path / "res", tmp_path / "logs"
    assert main(["run", "--model", "early_fusion", "--data", data, "--data-dir", str(data_dir), "--results", str(res),
                 "--logger", "csv", "--log-dir", str(logs), *FAST, *extra]) == 0
    out = capsys.readouterr().out
    assert "data: non-finite values set to 0: audio: -inf" in out
    rec = read_record(next(res.rglob("*.json")))
    assert rec["synthetic"] is False and rec["spec"]["primary_metric"] == "mae"
    assert all(math.isfinite(rec["test"][k]) for k in ("mae", "acc2_has0", "acc2_non0", "f1_non0"))
    assert any("-inf" in n for n in rec["data_notes"])
    rows = list(csv.DictReader(open(next(logs.rglob("metrics.csv")))))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)


def test_list_and_info_report_the_real_datasets(mosei_dir, capsys):
    assert main(["list", "--data-dir", str(mosei_dir)]) == 0
    out = capsys.readouterr().out
    assert "mosei" in out and "mosi" in out
    assert main(["info", "--data", "mosei", "--data-dir", str(mosei_dir), "--set", "aligned=false"]) == 0
    out = capsys.readouterr().out
    assert "mosei: regression" in out and "audio    (T<=30, 5)" in out and "note: non-finite values set to 0" in out
    assert "train (fold holdout): n=64" in out


@pytest.mark.parametrize("chunk", [1, 7, 1 << 24])
def test_repair_nonfinite_counts_and_zeroes_in_place_across_chunks(chunk):
    from datamodules.io import repair_nonfinite

    a = np.random.default_rng(0).standard_normal((50, 4, 3)).astype(np.float32)
    a[0, 0, 0], a[13, 2, 1], a[49, 3, 2], a[20, 1, 1] = np.nan, -np.inf, np.inf, -np.inf
    before = a.copy()
    assert repair_nonfinite(a, chunk_elems=chunk) == {"nan": 1, "posinf": 1, "neginf": 2}
    assert np.isfinite(a).all() and a[13, 2, 1] == 0 and a[49, 3, 2] == 0
    ok = np.isfinite(before)
    np.testing.assert_array_equal(a[ok], before[ok])
    assert repair_nonfinite(np.arange(4)) == {"nan": 0, "posinf": 0, "neginf": 0}
