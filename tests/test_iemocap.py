"""IEMOCAP from the raw release, on a tiny release written in the exact layout (tests/fixtures_iemocap.py)."""
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from benchmarks.cli import main
from benchmarks.records import read_record
from datamodules import iemocap
from datamodules import provenance as pv
from datamodules.io import DataError
from datamodules.registry import create_datamodule
from datamodules.spec import UserInputError

from .fixtures_iemocap import CLASSES4, DIMS, FEATURES, MAP4, NO_TRANSCRIPT, SR, write_iemocap

AUDIO = {"audio_feature": FEATURES["audio"]}
ALL = {f"{m}_feature": name for m, name in FEATURES.items()}
LOSO_VAL = {"Ses01": "Ses02F", "Ses02": "Ses03M", "Ses03": "Ses04F", "Ses04": "Ses05M", "Ses05": "Ses01F"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One release shared by the read-only tests (corrupting tests write their own)."""
    return write_iemocap(tmp_path_factory.mktemp("iemocap"))


@pytest.fixture()
def fresh(tmp_path):
    return write_iemocap(tmp_path)


def dm_for(root, fold=None, **kw):
    dm = create_datamodule("iemocap", data_dir=str(root), fold=fold, **kw)
    dm.setup("fit")
    return dm


def everything(ds):
    return ds.__getitems__(list(range(len(ds))))


def in_set(data, label_set):
    if label_set == "4way":
        return {i for i, u in data["utts"].items() if u["code"] in MAP4}
    return {i for i, u in data["utts"].items() if u["code"] in ("hap", "sad", "neu", "ang", "exc", "fru")}


# -- the parser -------------------------------------------------------------------------------------
def test_parser_reads_summary_lines_transcripts_and_paths(data):
    rel = data["release"]
    assert iemocap.find_release(data["root"]) == rel and iemocap.find_release(rel) == rel
    utts = iemocap.parse_release(rel)
    assert [u.id for u in utts] == list(data["utts"])  # session, dialog (sorted), file order
    for u in utts:
        ref = data["utts"][u.id]
        assert (u.session, u.dialog, u.speaker, u.emotion) == (ref["session"], ref["dialog"], ref["speaker"],
                                                               ref["code"])
        assert u.start == pytest.approx(ref["start"]) and u.end == pytest.approx(ref["end"])
        assert u.vad == pytest.approx(ref["vad"], abs=1e-4) and u.transcript == ref["text"]
        assert u.wav_path == rel / f"Session{u.session}" / "sentences" / "wav" / u.dialog / f"{u.id}.wav"
        assert u.wav_path.is_file() and u.relative_wav == u.wav_path.relative_to(rel)
        assert u.video_path == rel / f"Session{u.session}" / "dialog" / "avi" / "DivX" / f"{u.dialog}.avi"
    by_id = {u.id: u for u in utts}
    assert by_id[NO_TRANSCRIPT].transcript is None
    assert not any("MXX" in i for i in by_id)  # un-annotated transcription turns are not utterances
    assert {u.speaker for u in utts} == {f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"}
    # sub-folders (Categorical/, Attribute/, Self-evaluation/) hold lines that would not parse: never read
    only2 = iemocap.parse_release(rel, sessions=(2,))
    assert {u.session for u in only2} == {2} and len(only2) == 16
    with pytest.raises(UserInputError, match="sessions must be"):
        iemocap.parse_release(rel, sessions=(6,))


def _edit(path: Path, old: str, new: str) -> int:
    """Replace the first line containing ``old`` by ``new``; returns its 1-based number."""
    lines = path.read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if old in line)
    lines[n] = new
    path.write_text("\n".join(lines) + "\n")
    return n + 1


def _eval_file(f, s=1, dialog=None):
    dialog = dialog or f"Ses0{s}F_impro01"
    return f["release"] / f"Session{s}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"


@pytest.mark.parametrize("case", ["syntax", "code", "turn", "duplicate", "times", "session"])
def test_malformed_annotations_name_file_and_line(fresh, case):
    path = _eval_file(fresh)
    turn = "Ses01F_impro01_M001"
    line = lambda t=turn, c="neu", a=10.0, b=11.0: f"[{a:.4f} - {b:.4f}]\t{t}\t{c}\t[2.5000, 2.5000, 2.5000]"  # noqa
    if case == "syntax":
        n = _edit(path, turn + "\t", f"[10.0000 - 11.0000]\t{turn}\tneu\t[2.5000, 2.5000]")
        expect = [f"line {n}", "[<start> - <end>]<TAB><turn name><TAB><emotion code><TAB>[<V>, <A>, <D>]"]
    elif case == "code":
        n = _edit(path, turn + "\t", line(c="joy"))
        expect = [f"line {n} (emotion code)", "neu, hap, exc", "'joy'"]
    elif case == "turn":
        n = _edit(path, turn + "\t", line(t="Ses02F_impro01_M001"))
        expect = [f"line {n} (turn name)", "a turn of dialog Ses01F_impro01", "'Ses02F_impro01_M001'"]
    elif case == "duplicate":
        n = _edit(path, turn + "\t", line(t="Ses01F_impro01_F000"))
        expect = [f"line {n} (turn name)", "each turn annotated once", "first in Ses01F_impro01.txt line 3"]
    elif case == "times":
        n = _edit(path, turn + "\t", line(a=12.0, b=11.0))
        expect = [f"line {n} (times)", "start <= end", "[12.0000 - 11.0000]"]
    else:  # a dialog file in another session's folder
        shutil.copy(path, _eval_file(fresh, 2, "Ses01F_impro01"))
        path = _eval_file(fresh, 2, "Ses01F_impro01")
        expect = ["'<file name>'", "a dialog of Session2"]
    with pytest.raises(DataError) as e:
        iemocap.parse_release(fresh["release"])
    msg = str(e.value)
    assert str(path) in msg, msg
    for part in expect:
        assert part in msg, (part, msg)
    with pytest.raises(DataError):  # the datamodule stops with the same error
        create_datamodule("iemocap", data_dir=str(fresh["root"]), **AUDIO)


def test_missing_release_names_the_source_and_the_preset(tmp_path):
    for d in (None, tmp_path / "nowhere", tmp_path):
        with pytest.raises(UserInputError) as e:
            create_datamodule("iemocap", data_dir=None if d is None else str(d), **AUDIO)
        msg = str(e.value)
        assert "https://sail.usc.edu/iemocap/" in msg and "--data synthetic-iemocap" in msg
    assert not iemocap.IEMOCAPDataModule.is_available(str(tmp_path))


# -- label sets ---------------------------------------------------------------------------------------
def test_4way_merges_exc_into_hap_and_reports_exclusions(data):
    dm = dm_for(data["root"], **AUDIO)
    spec = dm.spec
    assert spec.task == "classification" and spec.class_names == CLASSES4
    assert (spec.primary_metric, spec.primary_direction) == ("ua", "max")
    full = dm._dataset()
    assert set(full.ids) == in_set(data, "4way") and len(full) == 60
    for i, k in zip(full.ids, full.label.tolist()):
        assert CLASSES4[k] == MAP4[data["utts"][i]["code"]]
    assert sum(data["utts"][i]["code"] == "exc" for i in full.ids) == 10  # exc kept, as hap
    notes = dm.notes()
    assert any("label set 4way (exc merged into hap)" in n and "60 utterances" in n
               and "excluded (codes outside the set): fru 10, dis 2, fea 2, oth 2, sur 2, xxx 2" in n for n in notes)
    for s in range(1, 6):
        assert f"Ses0{s} (n 12): hap 4, neu 4, sad 2, ang 2" in notes
    extra = dict(spec.extra)
    assert extra["label_set"] == "4way" and extra["protocol"] == "loso" and extra["inputs"] == "audio=wavlm-test"


def test_6way_keeps_six_codes_in_the_merbench_order(data):
    dm = dm_for(data["root"], label_set="6way", **AUDIO)
    assert dm.spec.class_names == ("hap", "sad", "neu", "ang", "exc", "fru")
    full = dm._dataset()
    assert set(full.ids) == in_set(data, "6way") and len(full) == 70
    assert [dm.spec.class_names[k] for k in full.label.tolist()] == [data["utts"][i]["code"] for i in full.ids]
    assert any("excluded (codes outside the set): dis 2, fea 2, oth 2, sur 2, xxx 2" in n for n in dm.notes())
    assert "Ses03 (n 14): hap 2, sad 2, neu 4, ang 2, exc 2, fru 2" in dm.notes()


@pytest.mark.parametrize("dim,index", [("valence", 0), ("arousal", 1), ("dominance", 2)])
def test_vad_regression_targets_are_rating_minus_3(data, dim, index):
    dm = dm_for(data["root"], label_set=dim, **AUDIO)
    spec = dm.spec
    assert spec.task == "regression" and spec.score_range == (-2.0, 2.0) and spec.class_names == ("low", "mid", "high")
    assert (spec.primary_metric, spec.primary_direction) == ("mae", "min") and spec.target_dim == 1
    full = dm._dataset()
    assert len(full) == 80  # every utterance has a 1-5 rating, whatever its emotion code
    want = torch.tensor([data["utts"][i]["vad"][index] - 3.0 for i in full.ids])
    assert torch.allclose(full.y, want, atol=1e-4) and full.y.dtype == torch.float32
    assert full.label.tolist() == [0 if v < -1e-6 else 2 if v > 1e-6 else 1 for v in want.tolist()]
    assert any(f"label set {dim}: regression target = rating - 3" in n for n in dm.notes())
    b = everything(dm.test_set)
    assert b.y.shape == (len(dm.test_set),) and b.y.dtype == torch.float32


# -- protocols ----------------------------------------------------------------------------------------
def test_loso_folds_test_one_session_validate_on_one_speaker_of_the_next(data):
    all_ids = in_set(data, "4way")
    seen_test = []
    for k in range(1, 6):
        fold = f"Ses0{k}"
        dm = dm_for(data["root"], fold=fold, **AUDIO)
        assert dm.spec.protocol.kind == "leave_one_out" and dm.spec.protocol.folds == tuple(LOSO_VAL)
        tr, va, te = (everything(s) for s in (dm.train_set, dm.val_set, dm.test_set))
        assert set(te.groups) == {f"Ses0{k}F", f"Ses0{k}M"}
        assert set(va.groups) == {LOSO_VAL[fold]} == {dm.validation_speaker(fold)}
        train_speakers = {f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"} - set(te.groups) - set(va.groups)
        assert set(tr.groups) == train_speakers and len(train_speakers) == 7
        assert all(data["utts"][i]["session"] == k for i in te.ids)
        assert not any(data["utts"][i]["session"] == k for i in tr.ids + va.ids)  # never the test session
        assert not (set(tr.ids) & set(va.ids) or set(tr.ids) & set(te.ids) or set(va.ids) & set(te.ids))
        assert set(tr.ids) | set(va.ids) | set(te.ids) == all_ids
        assert (len(tr), len(va), len(te)) == (42, 6, 12)
        assert f"fold {fold}: train 42 (7 speakers), val 6 (speaker {LOSO_VAL[fold]})" in " ".join(dm.notes())
        seen_test += te.ids
    assert sorted(seen_test) == sorted(all_ids)  # every utterance tested exactly once


def test_erc_split_session5_test_whole_dialog_validation(data):
    dm = dm_for(data["root"], protocol="erc", label_set="6way", **AUDIO)
    assert dm.spec.protocol.kind == "holdout" and dm.spec.protocol.folds == ("erc",)
    assert dm.spec.primary_metric == "wf1"
    tr, va, te = (everything(s) for s in (dm.train_set, dm.val_set, dm.test_set))
    dialog = lambda i: data["utts"][i]["dialog"]  # noqa: E731
    assert {data["utts"][i]["session"] for i in te.ids} == {5}
    assert {dialog(i) for i in va.ids} == {"Ses03F_impro01"}  # 8 dialogs in sessions 1-4 -> 1, the middle one
    assert not {dialog(i) for i in tr.ids} & {dialog(i) for i in va.ids}  # dialog-disjoint
    assert {data["utts"][i]["session"] for i in tr.ids} == {1, 2, 3, 4}
    assert len(tr) + len(va) + len(te) == 70 and len(va) == 8  # the impro dialog: hap neu sad ang x 2
    # on the real release's 120 dialogs of sessions 1-4: 12 validation dialogs, 3 per session
    fake = [SimpleNamespace(dialog=f"Ses0{s}{g}_d{d:02d}", session=s) for s in range(1, 6) for g in "FM"
            for d in range(15)]
    picked = iemocap.IEMOCAPDataModule._erc_val_dialogs(SimpleNamespace(utterances=fake))
    assert len(picked) == 12 and [p[4] for p in picked].count("1") == 3 and all(p[4] != "5" for p in picked)


# -- inputs ---------------------------------------------------------------------------------------------
def test_features_shapes_values_and_provenance_notes(data):
    dm = dm_for(data["root"], **ALL)
    spec = dm.spec
    mods = {m.name: m for m in spec.modalities}
    assert [m.name for m in spec.modalities] == ["audio", "text", "video"]
    assert (mods["audio"].dim, mods["audio"].group, mods["text"].seq_len, mods["video"].group) == \
        (DIMS["audio"], "audio", None, "visual")
    froot = data["features_root"]
    b = everything(dm.test_set)
    for row, utt in enumerate(b.ids):
        a = np.load(froot / FEATURES["audio"] / f"{utt}.npy")
        assert int(b.mask["audio"][row].sum()) == a.shape[0]
        np.testing.assert_allclose(b.x["audio"][row, : a.shape[0]].numpy(), a)
        text = np.load(froot / FEATURES["text"] / f"{utt}.npy").reshape(-1)  # some stored (1, D)
        np.testing.assert_allclose(b.x["text"][row].numpy(), text)
    assert b.groups == [data["utts"][i]["speaker"] for i in b.ids]
    notes = dm.notes()
    for m in ("audio", "text"):
        pid = pv.check_folder(froot / FEATURES[m], dm.ids).id
        assert any(n.startswith(f"{m} provenance: {FEATURES[m]}:") and f"provenance id {pid}" in n for n in notes)
    assert any(n.startswith("video provenance: clip-test: provenance unknown") for n in notes)
    # provenance ids are part of the fingerprint; max_frames cuts frame-level features
    cut = dm_for(data["root"], max_frames=4, **ALL)
    assert cut.spec.modality("audio").seq_len == 4 and cut.fingerprint() != dm.fingerprint()
    assert any("cut to max_frames=4" in n for n in cut.notes())


def test_no_input_lists_the_feature_folders(data):
    with pytest.raises(UserInputError) as e:
        create_datamodule("iemocap", data_dir=str(data["root"]))
    msg = str(e.value)
    assert "choose at least one input: --set audio_feature=NAME" in msg and "audio_input=waveform" in msg
    assert "clip-test, roberta-test (text), wavlm-test (audio)" in msg
    with pytest.raises(UserInputError, match="choose at least one input"):
        create_datamodule("iemocap", data_dir=str(data["root"]), audio_feature="none")
    with pytest.raises(DataError) as e:
        create_datamodule("iemocap", data_dir=str(data["root"]), text_feature="bert-nope")
    assert "features/bert-nope" in str(e.value) and "--set text_feature=NAME" in str(e.value)
    with pytest.raises(DataError) as e:  # an audio folder given as text
        create_datamodule("iemocap", data_dir=str(data["root"]), text_feature=FEATURES["audio"])
    assert "wavlm-test/provenance.json: field 'modality'" in str(e.value) and "--set audio_feature=" in str(e.value)
    for bad in ({"label_set": "7way"}, {"protocol": "kfold"}, {"audio_input": "mel"}, {"max_seconds": 0},
                {"max_frames": 0}, {"audio_feature": "../x"},
                {"audio_input": "waveform", "audio_feature": FEATURES["audio"]}):
        with pytest.raises(UserInputError):
            create_datamodule("iemocap", data_dir=str(data["root"]), **{**AUDIO, **bad})


def test_features_root_option(fresh, tmp_path):
    shutil.move(fresh["features_root"], fresh["root"] / "feats")
    dm = dm_for(fresh["root"], features_root="feats", **AUDIO)
    assert dm.spec.modality("audio").dim == DIMS["audio"]
    moved = tmp_path / "elsewhere"
    shutil.move(fresh["root"] / "feats", moved)
    assert dm_for(fresh["root"], features_root=str(moved), **AUDIO).fingerprint() == dm.fingerprint()


def test_missing_feature_file_dims_and_mixed_provenance_are_errors(fresh):
    folder = fresh["features_root"] / FEATURES["video"]  # no provenance.json: only the file checks apply
    kw = {"video_feature": FEATURES["video"]}
    assert fresh["utts"]["Ses03M_script01_1_F003"]["code"] == "neu"
    (folder / "Ses03M_script01_1_F003.npy").unlink()
    with pytest.raises(DataError) as e:
        create_datamodule("iemocap", data_dir=str(fresh["root"]), **kw)
    assert str(folder / "Ses03M_script01_1_F003.npy") in str(e.value) and "1 of 60 missing" in str(e.value)
    np.save(folder / "Ses03M_script01_1_F003.npy", np.zeros((2, DIMS["video"]), np.float32))
    # a file outside the label set may be missing: Ses03M_script01_1_F002 is 'oth'
    assert fresh["utts"]["Ses03M_script01_1_F002"]["code"] == "oth"
    (folder / "Ses03M_script01_1_F002.npy").unlink()
    assert len(create_datamodule("iemocap", data_dir=str(fresh["root"]), **kw).ids) == 60
    with pytest.raises(DataError, match="Ses03M_script01_1_F002.npy"):
        create_datamodule("iemocap", data_dir=str(fresh["root"]), label_set="valence", **kw)
    np.save(folder / "Ses03M_script01_1_F000.npy", np.zeros((2, DIMS["video"] + 1), np.float32))  # 'exc'
    with pytest.raises(DataError) as e:
        create_datamodule("iemocap", data_dir=str(fresh["root"]), **kw)
    assert "Ses03M_script01_1_F000.npy" in str(e.value) and f"feature dim {DIMS['video']}" in str(e.value)

    text = fresh["features_root"] / FEATURES["text"]
    pv.append_index(text, "Ses02F_impro01_M000", "0123456789abcdef")  # re-extracted under another provenance
    with pytest.raises(DataError) as e:
        create_datamodule("iemocap", data_dir=str(fresh["root"]), text_feature=FEATURES["text"])
    assert "Ses02F_impro01_M000.npy" in str(e.value) and "features of different provenance are mixed" in str(e.value)


def test_nonfinite_features_are_zeroed_and_counted(fresh):
    path = fresh["features_root"] / FEATURES["text"] / "Ses01F_impro01_F000.npy"
    a = np.load(path).reshape(-1)
    a[0], a[1] = np.nan, np.inf
    np.save(path, a)
    dm = dm_for(fresh["root"], text_feature=FEATURES["text"])
    full = dm._dataset()
    assert torch.isfinite(full.x["text"]).all()
    assert full.x["text"][full.ids.index("Ses01F_impro01_F000"), :2].tolist() == [0.0, 0.0]
    assert "non-finite feature values set to 0: text: NaN 1, +inf 1, -inf 0" in dm.notes()


def test_waveform_input_cuts_pads_and_masks(data):
    dm = dm_for(data["root"], audio_input="waveform", max_seconds=1.0)
    m = dm.spec.modality("audio")
    assert (m.dim, m.seq_len, m.group) == (1, SR, "audio") and dm.spec.modality_names == ("audio",)
    full = dm._dataset()
    b = everything(dm.train_set)
    assert b.x["audio"].shape[1:] == (SR, 1)  # some training utterance is >= 1 s
    for row, utt in enumerate(b.ids):
        n = data["utts"][utt]["samples"]
        rate, raw = wavfile.read(data["release"] / f"Session{data['utts'][utt]['session']}" / "sentences" / "wav"
                                 / data["utts"][utt]["dialog"] / f"{utt}.wav")
        keep = min(n, SR)
        assert int(b.mask["audio"][row].sum()) == keep and b.mask["audio"][row, :keep].all()
        np.testing.assert_array_equal(b.x["audio"][row, :keep, 0].numpy(), raw[:keep].astype(np.float32) / 32768)
        assert (b.x["audio"][row, keep:] == 0).all()
    assert full.x["audio"].abs().max() < 1.0
    n_cut = sum(u["samples"] > SR for i, u in data["utts"].items() if i in set(full.ids))
    n_pad = sum(u["samples"] < SR for i, u in data["utts"].items() if i in set(full.ids))
    assert any("first 1 s kept (16000 samples)" in n and f"{n_cut} cut, {n_pad} padded" in n for n in dm.notes())
    assert n_cut and n_pad
    assert dm.fingerprint() != dm_for(data["root"], audio_input="waveform", max_seconds=0.5).fingerprint()
    six = create_datamodule("iemocap", data_dir=str(data["root"]), audio_input="waveform")  # Foal-Net's 6 s
    assert six.spec.modality("audio").seq_len == 96000


def test_waveform_cache_is_reused(fresh, monkeypatch):
    first = dm_for(fresh["root"], audio_input="waveform", max_seconds=0.5)

    def boom(*a, **k):
        raise AssertionError("converted again")

    monkeypatch.setattr(iemocap, "convert_waveforms", boom)
    again = dm_for(fresh["root"], audio_input="waveform", max_seconds=0.5)
    assert again.fingerprint() == first.fingerprint()
    assert torch.equal(again._dataset().x["audio"], first._dataset().x["audio"])
    assert isinstance(again._arrays["audio"]["x"], np.memmap)


@pytest.mark.parametrize("case", ["missing", "rate", "stereo", "empty"])
def test_bad_wavs_name_the_file(fresh, case):
    utt = "Ses04F_impro01_M001"  # a 4-way utterance
    path = fresh["release"] / "Session4" / "sentences" / "wav" / "Ses04F_impro01" / f"{utt}.wav"
    if case == "missing":
        path.unlink()
        expect = ["no such file", "audio_input=waveform"]
    elif case == "rate":
        wavfile.write(path, 8000, np.zeros(800, np.int16))
        expect = ["sample rate", "16000 Hz", "8000 Hz"]
    elif case == "stereo":
        wavfile.write(path, SR, np.zeros((800, 2), np.int16))
        expect = ["channels", "1 (mono)"]
    else:
        wavfile.write(path, SR, np.zeros(0, np.int16))
        expect = ["at least one sample", "empty recording"]
    with pytest.raises(DataError) as e:
        create_datamodule("iemocap", data_dir=str(fresh["root"]), audio_input="waveform", max_seconds=0.5)
    msg = str(e.value)
    assert str(path) in msg
    for part in expect:
        assert part in msg, (part, msg)


# -- Foal-Net lists -----------------------------------------------------------------------------------
def test_foalnet_lists(data, tmp_path):
    utts = iemocap.parse_release(data["release"])
    files = iemocap.write_foalnet_lists(utts, tmp_path / "lists", root="/data/IEMOCAP_full_release")
    assert sorted(p.name for p in files) == sorted(f"session{k}_{s}.scp" for k in range(1, 6)
                                                   for s in ("train", "valid"))
    four = [i for i in data["utts"] if data["utts"][i]["code"] in MAP4]
    for k in range(1, 6):
        valid = (tmp_path / "lists" / f"session{k}_valid.scp").read_text().splitlines()
        train = (tmp_path / "lists" / f"session{k}_train.scp").read_text().splitlines()
        want = [i for i in four if data["utts"][i]["session"] == k]
        assert [ln.split()[0] for ln in valid] == want and len(train) == len(four) - len(want)
        assert not {ln.split()[0] for ln in train} & set(want)
        for ln in valid + train:
            utt, wav, label = ln.split()
            u = data["utts"][utt]
            assert wav == f"/data/IEMOCAP_full_release/Session{u['session']}/sentences/wav/{u['dialog']}/{utt}.wav"
            assert label == MAP4[u["code"]] and label in ("hap", "neu", "sad", "ang")
    line = next(ln for ln in (tmp_path / "lists" / "session1_valid.scp").read_text().splitlines()
                if ln.startswith("Ses01M_script01_1_F000 "))
    assert line.endswith(" hap")  # exc written as hap
    # from a datamodule (whatever its label set), default paths = the release's own wavs
    dm = create_datamodule("iemocap", data_dir=str(data["root"]), label_set="valence", **AUDIO)
    iemocap.write_foalnet_lists(dm, tmp_path / "dm")
    utt, wav, _ = (tmp_path / "dm" / "session2_valid.scp").read_text().splitlines()[0].split()
    assert Path(wav).is_absolute() and Path(wav).is_file() and Path(wav).stem == utt
    with pytest.raises(UserInputError, match="whitespace"):
        iemocap.write_foalnet_lists(utts, tmp_path / "x", root="/my data/IEMOCAP")


# -- end to end ------------------------------------------------------------------------------------------
def test_cli_run_over_all_folds_and_info(data, tmp_path, capsys):
    res = tmp_path / "results"
    root = str(data["root"])
    assert main(["run", "--model", "early_fusion", "--data", "iemocap", "--data-dir", root,
                 "--set", f"audio_feature={FEATURES['audio']}", "--set", f"text_feature={FEATURES['text']}",
                 "--max-epochs", "2", "--seeds", "0", "--no-progress", "--logger", "none", "--results", str(res)]) == 0
    recs = {r["fold"]: r for r in map(read_record, sorted(res.rglob("*.json")))}
    assert sorted(recs) == list(LOSO_VAL)
    fp = dm_for(root, audio_feature=FEATURES["audio"], text_feature=FEATURES["text"]).fingerprint()
    for fold, rec in recs.items():
        k = fold[-1]
        assert rec["data"] == "iemocap" and rec["synthetic"] is False and rec["data_fingerprint"] == fp
        assert rec["selection"]["monitor"] == "val/ua" and {"wa", "ua", "wf1"} <= set(rec["test"])
        assert rec["split_groups"]["test"] == [f"Ses0{k}F", f"Ses0{k}M"]
        assert rec["split_groups"]["val"] == [LOSO_VAL[fold]] and len(rec["split_groups"]["train"]) == 7
        assert rec["split_sizes"] == {"train": 42, "val": 6, "test": 12}
        notes = rec["data_notes"]
        assert any(n.startswith("audio provenance: wavlm-test: audio frame-level 8-d from tiny-wavlm-test")
                   for n in notes)
        assert any(n.startswith("text provenance: roberta-test: text utterance-level") for n in notes)
        assert "Ses01 (n 12): hap 4, neu 4, sad 2, ang 2" in notes
        assert rec["config"]["data_options"] == {"audio_feature": FEATURES["audio"], "text_feature": FEATURES["text"]}
    capsys.readouterr()

    assert main(["info", "--data", "iemocap", "--data-dir", root, "--fold", "Ses03", "--set", "label_set=6way",
                 "--set", f"video_feature={FEATURES['video']}"]) == 0
    out = capsys.readouterr().out
    assert "iemocap: classification" in out and "classes (6): hap, sad, neu, ang, exc, fru" in out
    assert "protocol: leave_one_out, folds: Ses01, Ses02, Ses03, Ses04, Ses05" in out
    assert "test  (fold Ses03): n=14" in out and "groups: Ses03F, Ses03M" in out
    assert "val   (fold Ses03): n=7" in out and "groups: Ses04F" in out
    assert "note: Ses01 (n 14): hap 2, sad 2, neu 4, ang 2, exc 2, fru 2" in out
    assert "note: video provenance: clip-test: provenance unknown" in out

    # a regression label set with waveform input on the ERC split runs through the same runner
    assert main(["run", "--model", "early_fusion", "--data", "iemocap", "--data-dir", root,
                 "--set", "label_set=arousal", "--set", "protocol=erc", "--set", "audio_input=waveform",
                 "--set", "max_seconds=0.25",
                 "--max-epochs", "1", "--seeds", "0", "--no-progress", "--logger", "none", "--results", str(res)]) == 0
    rec = next(r for r in map(read_record, res.rglob("*.json")) if r["fold"] == "erc")
    assert rec["spec"]["task"] == "regression" and rec["selection"]["monitor"] == "val/mae"
    assert {"mae", "acc2_has0", "acc5"} <= set(rec["test"])
    assert rec["split_sizes"] == {"train": 56, "val": 8, "test": 16}
    assert any("first 0.25 s kept (4000 samples)" in n for n in rec["data_notes"])
    capsys.readouterr()

    assert main(["info", "--data", "iemocap", "--data-dir", root]) == 2
    err = capsys.readouterr().err
    assert "choose at least one input" in err and len(err.strip().splitlines()) == 1
    assert main(["list", "--data-dir", str(data["release"])]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("iemocap "))
    assert "files present" in line


def test_bench_foalnet_lists_command(data, tmp_path, capsys):
    out = tmp_path / "scp"
    assert main(["foalnet-lists", "--data-dir", str(data["root"]), "--out", str(out), "--root", "/r"]) == 0
    assert "wrote 10 list files" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(f"session{k}_{s}.scp" for k in range(1, 6)
                                                           for s in ("train", "valid"))
    first = (out / "session1_valid.scp").read_text().splitlines()[0].split()
    assert first[0].startswith("Ses01") and first[1].startswith("/r/Session1/sentences/wav/") and first[2] in CLASSES4
    assert main(["foalnet-lists", "--data-dir", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "sail.usc.edu" in capsys.readouterr().err
