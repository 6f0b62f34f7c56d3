"""Feature provenance: what produced the arrays in a feature folder, and a check that one folder
never mixes arrays of different origin.

A feature folder ``<features root>/<feature name>/`` holds one ``<utterance id>.npy`` per
utterance (``(T, D)`` frames or a ``(D,)`` vector) plus two files written by ``bench extract``:

* ``provenance.json``: a JSON object describing the extraction. Required keys (:data:`REQUIRED`):
  ``format`` (1), ``feature`` (the folder name), ``modality`` (audio | text | video), ``encoder``
  (an object with ``name_or_path``, ``revision`` (or null) and ``weights_sha256``, the SHA-256 over
  the weight files), ``layer`` (hidden-state index, or ``"last"``), ``pooling`` (``none`` for
  frame sequences, ``mean`` for one vector per utterance), ``level`` (``frame`` | ``utterance``),
  ``dim``, ``sample_rate`` (Hz of the input signal, null for text) and ``frame_rate`` (feature
  frames per second, null for vectors and text), ``preprocessing`` (free-form object: cropping,
  max length, ...) and ``versions`` (package versions). Its **identity** is the SHA-256 of all of
  that except ``created`` (:func:`provenance_id`).
* ``index.tsv``: one line ``<utterance id>\\t<provenance id>`` per array written, appended as the
  extraction goes (so an interrupted extraction resumes, and every array names its origin).

:func:`check_folder` is what a datamodule calls: it returns the provenance of the arrays it is
about to read, or raises :class:`~datamodules.io.DataError` naming the file when an array was
written under another provenance (mixed features) or by no extraction at all. A folder without
``provenance.json`` (features computed elsewhere) is accepted as *unknown provenance*; the caller
says so in its notes.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .io import DataError

PROVENANCE_FILE = "provenance.json"
INDEX_FILE = "index.tsv"
FORMAT = 1
REQUIRED = ("format", "feature", "modality", "encoder", "layer", "pooling", "level", "dim", "sample_rate",
            "frame_rate", "preprocessing", "versions")
ENCODER_KEYS = ("name_or_path", "revision", "weights_sha256")
NOT_IDENTITY = ("created",)


def provenance_id(prov: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of the provenance without its timestamp."""
    core = {k: v for k, v in prov.items() if k not in NOT_IDENTITY}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]


def validate(prov: Any, file: str | Path) -> dict[str, Any]:
    if not isinstance(prov, dict):
        raise DataError(file, "<top level>", "a JSON object", type(prov).__name__)
    missing = [k for k in REQUIRED if k not in prov]
    if missing:
        raise DataError(file, missing[0], f"the keys {', '.join(REQUIRED)}", f"no {', '.join(missing)}")
    if prov["format"] != FORMAT:
        raise DataError(file, "format", f"{FORMAT}", prov["format"])
    enc = prov["encoder"]
    if not isinstance(enc, dict) or any(k not in enc for k in ENCODER_KEYS):
        raise DataError(file, "encoder", f"an object with {', '.join(ENCODER_KEYS)}", enc)
    if prov["modality"] not in ("audio", "text", "video"):
        raise DataError(file, "modality", "audio, text or video", prov["modality"])
    if prov["level"] not in ("frame", "utterance"):
        raise DataError(file, "level", "frame or utterance", prov["level"])
    return prov


def read(folder: str | Path) -> dict[str, Any] | None:
    """The folder's provenance, or None when it has no ``provenance.json``."""
    path = Path(folder) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        prov = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(path, "<file>", "valid JSON", e) from e
    return validate(prov, path)


def write(folder: str | Path, prov: dict[str, Any]) -> str:
    """Write ``provenance.json`` (atomically) for a new extraction, or confirm that the folder's
    existing one is the same provenance (a resumed extraction); returns the provenance id."""
    folder = Path(folder)
    validate(prov, folder / PROVENANCE_FILE)
    new_id = provenance_id(prov)
    old = read(folder)
    if old is not None:
        old_id = provenance_id(old)
        if old_id != new_id:
            diff = sorted(k for k in set(old) | set(prov) if k not in NOT_IDENTITY and old.get(k) != prov.get(k))
            raise DataError(folder / PROVENANCE_FILE, ", ".join(diff),
                            f"the provenance of this extraction ({new_id}) to resume into the folder",
                            f"features of another provenance ({old_id}); pick another feature name or "
                            f"delete the folder")
        return old_id
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".provenance-", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(prov, f, indent=2, sort_keys=True)
    os.replace(tmp, folder / PROVENANCE_FILE)
    return new_id


def append_index(folder: str | Path, utt_id: str, prov_id: str) -> None:
    with open(Path(folder) / INDEX_FILE, "a") as f:
        f.write(f"{utt_id}\t{prov_id}\n")


def read_index(folder: str | Path) -> dict[str, str]:
    """Utterance id -> provenance id (the last line wins for an id written twice)."""
    path = Path(folder) / INDEX_FILE
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(path, f"line {n}", "'<utterance id>\\t<provenance id>'", repr(line))
        out[parts[0]] = parts[1]
    return out


@dataclass(frozen=True)
class FolderProvenance:
    folder: Path
    provenance: dict[str, Any] | None  # None: unknown (no provenance.json)
    id: str | None

    def summary(self) -> str:
        p = self.provenance
        if p is None:
            return f"{self.folder.name}: provenance unknown (no {PROVENANCE_FILE}; features not made by bench extract)"
        enc = p["encoder"]
        rev = f"@{enc['revision']}" if enc.get("revision") else ""
        rates = ", ".join(f"{k} {p[k]}" for k in ("sample_rate", "frame_rate") if p.get(k))
        return (f"{self.folder.name}: {p['modality']} {p['level']}-level {p['dim']}-d from {enc['name_or_path']}{rev} "
                f"(weights sha256 {enc['weights_sha256']}), layer {p['layer']}, pooling {p['pooling']}"
                + (f", {rates}" if rates else "") + f"; provenance id {self.id}")


def check_folder(folder: str | Path, ids: Iterable[str]) -> FolderProvenance:
    """Provenance of the arrays ``<folder>/<id>.npy`` for ``ids``; raises :class:`DataError` if
    any of them was written under another provenance than the folder's, or by no extraction."""
    folder = Path(folder)
    prov = read(folder)
    if prov is None:
        return FolderProvenance(folder, None, None)
    pid = provenance_id(prov)
    index = read_index(folder)
    for utt in ids:
        got = index.get(utt)
        if got is None:
            raise DataError(folder / f"{utt}.npy", "provenance", f"an entry in {INDEX_FILE} (written by bench "
                            f"extract with provenance {pid})", "none: the array was not made by this extraction")
        if got != pid:
            raise DataError(folder / f"{utt}.npy", "provenance", f"provenance {pid} like the folder's "
                            f"{PROVENANCE_FILE}", f"provenance {got}: features of different provenance are mixed")
    return FolderProvenance(folder, prov, pid)
