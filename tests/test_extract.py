"""`bench extract`: the dataset-independent engine on hand-made inputs (shapes, pooling, frame
sampling, crops, weights hash, errors) and the IEMOCAP entry on a generated release (provenance,
resume, refusal to mix provenance, errors, extraction feeding `bench run`), all with tiny random
encoders saved locally (no downloads)."""
import hashlib
import json
import math
import sys

import numpy as np
import pytest

from benchmarks.cli import main
from benchmarks.extract import Encoder, ExtractSettings, Item, extract_items, read_frames, run_extract
from benchmarks.records import read_record
from datamodules import provenance as pv
from datamodules.io import DataError
from datamodules.spec import UserInputError

from .fixtures_encoders import conv_frames, tiny_bert, tiny_clip, tiny_wavlm, write_video, write_wav
from .fixtures_iemocap import NO_TRANSCRIPT, write_iemocap


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    return {"audio": tiny_wavlm(root / "wavlm"), "text": tiny_bert(root / "bert"), "video": tiny_clip(root / "clip")}


@pytest.fixture()
def release(tmp_path):
    return write_iemocap(tmp_path / "data", features=False)


def extract(data, *args):
    return main(["extract", "--data-dir", str(data["root"]), "--no-progress", *args])


def test_audio_frames_and_provenance_then_resume(release, encoders, capsys):
    assert extract(release, "--modality", "audio", "--model", str(encoders["audio"]), "--name", "wavlm-L1",
                   "--layer", "1") == 0
    assert "80 written, 0 skipped" in capsys.readouterr().out
    folder = release["root"] / "features" / "wavlm-L1"
    u = release["utts"]["Ses01F_impro01_F000"]
    arr = np.load(folder / "Ses01F_impro01_F000.npy")
    # the conv stack (kernels 10, 4, 4; strides 5, 4, 4) shortens the wav
    assert arr.shape == (conv_frames(u["samples"]), 16) and arr.dtype == np.float32 and np.isfinite(arr).all()
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["encoder"]["name_or_path"] == str(encoders["audio"]) and len(prov["encoder"]["weights_sha256"]) == 64
    assert prov["layer"] == 1 and prov["level"] == "frame" and prov["dim"] == 16
    assert prov["sample_rate"] == 16000 and prov["frame_rate"] == 16000 / 80 and "transformers" in prov["versions"]
    pid = pv.provenance_id(prov)
    assert set(pv.read_index(folder).values()) == {pid} and len(pv.read_index(folder)) == 80
    # resume: finished utterances are skipped, an array without an index entry is recomputed
    before = (folder / "Ses02M_script01_1_M000.npy").stat().st_mtime_ns
    lines = (folder / "index.tsv").read_text().splitlines()
    (folder / "index.tsv").write_text("\n".join(ln for ln in lines if not ln.startswith("Ses05F_impro01_F000")) + "\n")
    assert extract(release, "--modality", "audio", "--model", str(encoders["audio"]), "--name", "wavlm-L1",
                   "--layer", "1") == 0
    assert "1 written, 79 skipped" in capsys.readouterr().out
    assert (folder / "Ses02M_script01_1_M000.npy").stat().st_mtime_ns == before
    # another layer into the same folder would mix provenance: refused, nothing written
    assert extract(release, "--modality", "audio", "--model", str(encoders["audio"]), "--name", "wavlm-L1",
                   "--layer", "2") == 2
    err = capsys.readouterr().err
    assert "provenance.json: field 'layer'" in err and "another provenance" in err
    assert len(pv.read_index(folder)) == 80


def test_mean_pooled_text_and_missing_transcript(release, encoders, capsys):
    assert extract(release, "--modality", "text", "--model", str(encoders["text"]), "--name", "bert-mean",
                   "--pooling", "mean") == 2
    err = capsys.readouterr().err
    assert f"field '{NO_TRANSCRIPT}'" in err and "Session2/dialog/transcriptions/Ses02M_script01_1.txt" in err
    assert "a transcription line" in err
    assert not (release["root"] / "features" / "bert-mean").exists()  # checked before any model work
    s = ExtractSettings(data_dir=str(release["root"]), modality="text", model=str(encoders["text"]), name="bert-mean",
                        pooling="mean", sessions=(1,), progress=False)
    n = run_extract(s, echo=lambda *_: None)
    assert (n["written"], n["skipped"], n["total"]) == (16, 0, 16)
    arr = np.load(release["root"] / "features" / "bert-mean" / "Ses01F_impro01_F000.npy")
    assert arr.shape == (12,)
    prov = pv.read(release["root"] / "features" / "bert-mean")
    assert prov["level"] == "utterance" and prov["frame_rate"] is None and prov["sample_rate"] is None
    assert prov["preprocessing"]["max_tokens"] == 512


def test_video_frames_sampled_in_the_utterance_window(release, encoders):
    for dialog in {u["dialog"] for u in release["utts"].values() if u["session"] == 1}:
        write_video(release["release"] / "Session1" / "dialog" / "avi" / "DivX" / f"{dialog}.avi", seconds=25.0)
    s = ExtractSettings(data_dir=str(release["root"]), modality="video", model=str(encoders["video"]), name="clip",
                        fps=4.0, sessions=(1,), progress=False)
    assert run_extract(s, echo=lambda *_: None)["written"] == 16
    for utt, u in release["utts"].items():
        if u["session"] == 1:
            arr = np.load(release["root"] / "features" / "clip" / f"{utt}.npy")
            assert arr.shape == (math.ceil((u["end"] - u["start"]) * 4 - 1e-9), 6)
    prov = pv.read(release["root"] / "features" / "clip")
    assert prov["frame_rate"] == 4.0 and prov["layer"] == "projection" and prov["dim"] == 6
    assert prov["preprocessing"] == {"fps": 4.0, "crop": "none", "max_seconds": None} and "av" in prov["versions"]
    s.sessions, s.name = (2,), "clip2"
    with pytest.raises(DataError, match=r"Ses02F_impro01.avi: field '<file>'.*dialog's video"):
        run_extract(s, echo=lambda *_: None)


def test_missing_wav_and_bad_model_are_clear(release, encoders, capsys, tmp_path):
    wav = release["release"] / "Session3" / "sentences" / "wav" / "Ses03F_impro01" / "Ses03F_impro01_M001.wav"
    wav.unlink()
    assert extract(release, "--modality", "audio", "--model", str(encoders["audio"]), "--name", "w") == 2
    assert f"bench: error: {wav}: field '<file>'" in capsys.readouterr().err
    assert extract(release, "--modality", "audio", "--model", str(tmp_path / "nothing"), "--name", "w") == 2
    assert "cannot load its feature extractor" in capsys.readouterr().err


def test_extracted_features_train_and_records_carry_provenance(release, encoders, tmp_path):
    assert extract(release, "--modality", "audio", "--model", str(encoders["audio"]), "--name", "wavlm-mean",
                   "--pooling", "mean") == 0
    res = tmp_path / "res"
    assert main(["run", "--model", "early_fusion", "--data", "iemocap", "--data-dir", str(release["root"]),
                 "--set", "audio_feature=wavlm-mean", "--seeds", "0", "--max-epochs", "2", "--no-progress",
                 "--logger", "none", "--results", str(res)]) == 0
    recs = [read_record(f) for f in sorted(res.rglob("*.json"))]
    assert sorted(r["fold"] for r in recs) == ["Ses01", "Ses02", "Ses03", "Ses04", "Ses05"]
    pid = pv.provenance_id(pv.read(release["root"] / "features" / "wavlm-mean"))
    for r in recs:
        assert any("wavlm-mean" in n and str(encoders["audio"]) in n and pid in n for n in r["data_notes"])
        assert math.isfinite(r["test"]["ua"])


# ----------------------------------------------------------------------------------------
# the engine on hand-made inputs
# ----------------------------------------------------------------------------------------
def settings(modality, model, name="f", **kw):
    return ExtractSettings(data_dir=None, modality=modality, model=str(model), name=name, progress=False, **kw)


def quiet(*_):
    return None


def test_engine_audio_frames_mean_and_weights_hash(encoders, tmp_path):
    lengths = {"a": 16000, "b": 5923, "c": 400}
    items = [Item(id=k, wav_path=write_wav(tmp_path / "wav" / f"{k}.wav", n, seed=i))
             for i, (k, n) in enumerate(lengths.items())]
    out = tmp_path / "feats"
    s = settings("audio", encoders["audio"], "frames", layer="2")
    n = extract_items(items, s, out / "frames", echo=quiet)
    assert (n["written"], n["skipped"], n["total"]) == (3, 0, 3)
    frames = {k: np.load(out / "frames" / f"{k}.npy") for k in lengths}
    for k, samples in lengths.items():
        assert frames[k].shape == (conv_frames(samples), 16) and frames[k].dtype == np.float32
    assert frames["a"].shape[0] == 199  # 1 s at 200 frames per second (16000 / 80), minus the receptive field
    prov = pv.read(out / "frames")
    enc = prov["encoder"]
    weights = encoders["audio"] / "model.safetensors"
    assert enc["weights_hashed"] == "files" and enc["revision"] is None and enc["class"] == "WavLMModel"
    assert enc["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert enc["weight_files"] == {"model.safetensors": enc["weights_sha256"]}
    assert prov["frame_rate"] == 16000 / 80 and prov["preprocessing"]["normalize"] is True
    assert set(prov["versions"]) == {"torch", "transformers", "numpy", "scipy"} and prov["created"].endswith("Z")
    # mean pooling = the mean of the same layer's frames; max_seconds cuts the wav
    s = settings("audio", encoders["audio"], "mean", layer="2", pooling="mean")
    extract_items(items, s, out / "mean", echo=quiet)
    for k in lengths:
        np.testing.assert_allclose(np.load(out / "mean" / f"{k}.npy"), frames[k].mean(0), rtol=1e-4, atol=1e-5)
    assert pv.read(out / "mean")["level"] == "utterance" and pv.read(out / "mean")["frame_rate"] is None
    s = settings("audio", encoders["audio"], "cut", max_seconds=0.25)
    extract_items(items[:1], s, out / "cut", echo=quiet)
    assert np.load(out / "cut" / "a.npy").shape == (conv_frames(4000), 16)


def test_engine_text_tokens_and_truncation(encoders, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(encoders["text"]), local_files_only=True)
    items = [Item(id="u1", transcript="i am so happy"), Item(id="u2", transcript="what do you know well really")]
    extract_items(items, settings("text", encoders["text"], "tok"), tmp_path / "tok", echo=quiet)
    for it in items:
        assert np.load(tmp_path / "tok" / f"{it.id}.npy").shape == (len(tok(it.transcript)["input_ids"]), 12)
    extract_items(items, settings("text", encoders["text"], "cut", max_tokens=4), tmp_path / "cut", echo=quiet)
    assert np.load(tmp_path / "cut" / "u2.npy").shape == (4, 12)
    with pytest.raises(DataError, match=r"trans\.txt: field 'u3'"):
        extract_items([Item(id="u3", source="trans.txt")], settings("text", encoders["text"], "x"), tmp_path / "x")


def test_engine_video_sampling_crops_and_native_rate(encoders, tmp_path):
    video = write_video(tmp_path / "d.avi", seconds=2.0, fps=10)  # frame k: red = 12 k, right half green

    def red(frames):
        return [int(round(f[:, :32, 0].mean() / 12)) for f in frames]

    frames, rate = read_frames(video, 0.5, 1.75, 2.0)
    assert len(frames) == math.ceil(1.25 * 2) == 3 and rate == 10.0
    assert red(frames) == [5, 10, 15] and frames[0].shape == (32, 64, 3)
    native, _ = read_frames(video, 0.5, 1.75, "native")
    assert red(native) == list(range(5, 18))
    late, _ = read_frames(video, 1.5, 3.0, 4.0)  # the video ends at 2.0 s: 1.5 and 1.75 only
    assert red(late) == [15, 17]
    left, _ = read_frames(video, 0.0, 1.0, 2.0, crop="left")
    right, _ = read_frames(video, 0.0, 1.0, 2.0, crop="right")
    assert left[0].shape == right[0].shape == (32, 32, 3)
    assert left[0][..., 1].mean() < 30 < 170 < right[0][..., 1].mean()

    items = [Item(id="v1", video_path=video, start=0.5, end=1.75), Item(id="v2", video_path=video, start=0.0, end=0.3),
             Item(id="v3", video_path=video, start=0.2, end=1.0, crop="right")]
    extract_items(items, settings("video", encoders["video"], "clip", fps=2.0), tmp_path / "clip", echo=quiet)
    assert [np.load(tmp_path / "clip" / f"{i}.npy").shape for i in ("v1", "v2", "v3")] == [(3, 6), (1, 6), (2, 6)]
    extract_items(items, settings("video", encoders["video"], "nat", fps="native", max_seconds=0.5), tmp_path / "nat",
                  echo=quiet)
    assert np.load(tmp_path / "nat" / "v1.npy").shape == (5, 6)
    assert pv.read(tmp_path / "nat")["frame_rate"] == 10.0
    extract_items(items[:1], settings("video", encoders["video"], "vm", pooling="mean"), tmp_path / "vm", echo=quiet)
    assert np.load(tmp_path / "vm" / "v1.npy").shape == (6,)
    with pytest.raises(UserInputError, match="no hidden-state layer"):
        extract_items(items, settings("video", encoders["video"], "l", layer="1"), tmp_path / "l")
    with pytest.raises(DataError, match=r"nothere\.avi: field '<file>'"):
        extract_items([Item(id="v", video_path=tmp_path / "nothere.avi", end=1.0)],
                      settings("video", encoders["video"], "m"), tmp_path / "m")


def test_engine_without_pyav_names_the_package(encoders, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now fails as if it were not installed
    with pytest.raises(UserInputError, match=r"video extraction needs PyAV .*av is missing.*pip install av"):
        Encoder(settings("video", encoders["video"]))


def test_engine_resume_and_input_errors(encoders, tmp_path):
    wavs = [write_wav(tmp_path / f"{k}.wav", 3200, seed=k) for k in range(4)]
    items = [Item(id=f"u{k}", wav_path=w) for k, w in enumerate(wavs)]
    s = settings("audio", encoders["audio"], "w")
    folder = tmp_path / "w"
    assert extract_items(items, s, folder, echo=quiet)["written"] == 4
    mtime = (folder / "u1.npy").stat().st_mtime_ns
    (folder / "u3.npy").unlink()  # a missing array is recomputed even though it is indexed
    msgs = []
    n = extract_items(items, s, folder, echo=msgs.append)
    assert (n["written"], n["skipped"]) == (1, 3) and "3 done already" in msgs[0]
    assert (folder / "u1.npy").stat().st_mtime_ns == mtime and (folder / "u3.npy").is_file()
    assert not list(folder.glob(".*tmp"))  # no temporary files left
    with pytest.raises(DataError, match="another provenance"):
        extract_items(items, settings("audio", encoders["audio"], "w", pooling="mean"), folder)

    write_wav(tmp_path / "8k.wav", 800, sr=8000)
    write_wav(tmp_path / "st.wav", 1600, channels=2)
    for wav, msg in (("8k.wav", r"8k\.wav: field 'sample rate': expected 16000 Hz.*found 8000 Hz"),
                     ("st.wav", r"st\.wav: field 'channels': expected 1 \(mono\), found 2 channels"),
                     ("gone.wav", r"gone\.wav: field '<file>'")):
        with pytest.raises(DataError, match=msg):
            extract_items([Item(id="x", wav_path=tmp_path / wav)], s, tmp_path / "err")
    assert not (tmp_path / "err").exists()  # nothing written before the first item encodes
    with pytest.raises(UserInputError, match=r"--layer 7: .* has hidden states 0\.\.2"):
        extract_items(items, settings("audio", encoders["audio"], "l7", layer="7"), tmp_path / "l7")
    with pytest.raises(UserInputError, match="no items"):
        extract_items([], s, tmp_path / "none")
    with pytest.raises(UserInputError, match="occurs more than once"):
        extract_items(items + items[:1], s, tmp_path / "dup")
    with pytest.raises(UserInputError, match="cannot load its feature extractor"):
        Encoder(settings("audio", encoders["text"]))  # a text model is no audio encoder
