"""`bench extract` on a generated IEMOCAP release with tiny random encoders saved locally: shapes,
provenance, resume, refusal to mix provenance, errors, and extraction feeding `bench run`."""
import json
import math

import numpy as np
import pytest

from benchmarks.cli import main
from benchmarks.extract import ExtractSettings, run_extract
from benchmarks.records import read_record
from datamodules import provenance as pv
from datamodules.io import DataError

from .fixtures_encoders import tiny_bert, tiny_clip, tiny_wavlm, write_video
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
    frames = u["samples"]  # the conv stack (kernels 10, 4, 4; strides 5, 4, 4) shortens the wav
    for k, st in ((10, 5), (4, 4), (4, 4)):
        frames = (frames - k) // st + 1
    assert arr.shape == (frames, 16) and arr.dtype == np.float32 and np.isfinite(arr).all()
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
    assert f"field '{NO_TRANSCRIPT}'" in err and "transcriptions" in err and "a transcription line" in err
    s = ExtractSettings(data_dir=str(release["root"]), modality="text", model=str(encoders["text"]), name="bert-mean",
                        pooling="mean", sessions=(1,), progress=False)
    # the failed run kept what it wrote before the error (session 1 comes first): nothing is redone
    assert run_extract(s, echo=lambda *_: None) == {"written": 0, "skipped": 16, "total": 16}
    arr = np.load(release["root"] / "features" / "bert-mean" / "Ses01F_impro01_F000.npy")
    assert arr.shape == (12,)
    prov = pv.read(release["root"] / "features" / "bert-mean")
    assert prov["level"] == "utterance" and prov["frame_rate"] is None and prov["preprocessing"] == {"max_tokens": 512}


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
    assert prov["frame_rate"] == 4.0 and prov["preprocessing"] == {"fps": 4.0, "crop": "none"}
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
