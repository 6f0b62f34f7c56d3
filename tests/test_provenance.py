"""Feature-folder provenance: identity, resumable writes, and the mixed-provenance check."""
import json

import pytest

from datamodules import provenance as pv
from datamodules.io import DataError


def prov(**over):
    p = {"format": 1, "feature": "wavlm-L6", "modality": "audio",
         "encoder": {"name_or_path": "tiny-wavlm", "revision": None, "weights_sha256": "ab" * 32},
         "layer": 6, "pooling": "none", "level": "frame", "dim": 8, "sample_rate": 16000, "frame_rate": 50.0,
         "preprocessing": {"max_seconds": 6}, "versions": {"torch": "2.13.0"}, "created": "2026-11-23T12:00:00"}
    p.update(over)
    return p


def test_identity_ignores_the_timestamp_only():
    assert pv.provenance_id(prov()) == pv.provenance_id(prov(created="2030-01-01"))
    assert pv.provenance_id(prov()) != pv.provenance_id(prov(layer=5))


def test_resume_same_provenance_and_refuse_another(tmp_path):
    folder = tmp_path / "wavlm-L6"
    pid = pv.write(folder, prov())
    assert pv.write(folder, prov(created="later")) == pid  # a resumed extraction
    with pytest.raises(DataError, match=r"provenance.json: field 'layer'.*another provenance"):
        pv.write(folder, prov(layer=5))
    with pytest.raises(DataError, match="field 'dim'"):
        pv.write(tmp_path / "x", {k: v for k, v in prov().items() if k != "dim"})


def test_check_folder_finds_mixed_and_unindexed_arrays(tmp_path):
    folder = tmp_path / "f"
    assert pv.check_folder(folder, ["u1"]).provenance is None  # no provenance.json: unknown, accepted
    pid = pv.write(folder, prov())
    pv.append_index(folder, "u1", pid)
    pv.append_index(folder, "u2", "0123456789abcdef")
    got = pv.check_folder(folder, ["u1"])
    assert got.id == pid and "tiny-wavlm" in got.summary() and "layer 6" in got.summary()
    with pytest.raises(DataError, match=r"f/u2.npy: field 'provenance'.*features of different provenance are mixed"):
        pv.check_folder(folder, ["u1", "u2"])
    with pytest.raises(DataError, match=r"f/u3.npy: field 'provenance'.*not made by this extraction"):
        pv.check_folder(folder, ["u3"])
    (folder / pv.INDEX_FILE).write_text("broken line\n")
    with pytest.raises(DataError, match="index.tsv: field 'line 1'"):
        pv.check_folder(folder, ["u1"])
    (folder / pv.PROVENANCE_FILE).write_text(json.dumps({**prov(), "modality": "smell"}))
    with pytest.raises(DataError, match="field 'modality'"):
        pv.read(folder)
