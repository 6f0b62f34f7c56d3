"""A tiny IEMOCAP release in the exact raw layout (``datasets.md`` §2.2), for the tests.

``write_iemocap(root)`` writes ``root/IEMOCAP_full_release/Session1..5/`` with two dialogs per
session (``Ses0<n>F_impro01`` and ``Ses0<n>M_script01_1``), four turns per speaker per dialog:

* ``dialog/EmoEvaluation/<dialog>.txt`` in the release's syntax: a ``%`` header, blank lines,
  tab-separated summary lines and the evaluator lines (``C-E2:``, ``C-F1:``, ``A-E3:`` ...) after each;
  plus the sub-folders ``Categorical/``, ``Attribute/``, ``Self-evaluation/`` holding ``.txt`` files
  that would break the parser if it read them;
* ``dialog/transcriptions/<dialog>.txt`` (``<turn> [<start>-<end>]: <text>``, zero-padded times,
  an un-annotated ``MXX`` turn and a bracket-less line; one annotated turn has no line);
* ``sentences/wav/<dialog>/<turn>.wav``: 16 kHz mono int16 tones of 0.25-1.5 s;
* optionally ``root/features/``: ``wavlm-test`` (audio frames ``(T, 8)``, provenance + index),
  ``roberta-test`` (text vectors ``(6,)``, some stored ``(1, 6)``; provenance + index) and
  ``clip-test`` (video frames ``(T, 5)``, **no** provenance.json: unknown provenance).

Emotion codes per speaker and session: hap neu sad ang (impro), exc fru <other> neu (script), where
<other> is xxx, sur, oth, fea, dis for sessions 1-5. So every speaker has every 4-way and 6-way
class; 4-way keeps 6 turns per speaker (60 in all), 6-way 7 (70). Nothing here is real data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import wavfile

from datamodules import provenance as pv

RELEASE = "IEMOCAP_full_release"
SR = 16000
OTHER = {1: "xxx", 2: "sur", 3: "oth", 4: "fea", 5: "dis"}
CODES = ("hap", "neu", "sad", "ang", "exc", "fru", None, "neu")  # None: OTHER[session]
FULL = {"hap": "Happiness", "neu": "Neutral", "sad": "Sadness", "ang": "Anger", "exc": "Excited",
        "fru": "Frustration", "xxx": "Other", "sur": "Surprise", "oth": "Other", "fea": "Fear", "dis": "Disgust"}
VALENCE = (2.5, 3.0, 3.3333, 4.5, 1.5, 5.0, 1.0, 2.0)
FEATURES = {"audio": "wavlm-test", "text": "roberta-test", "video": "clip-test"}
DIMS = {"audio": 8, "text": 6, "video": 5}
NO_TRANSCRIPT = "Ses02M_script01_1_F001"
CLASSES4 = ("hap", "neu", "sad", "ang")
MAP4 = {"hap": "hap", "exc": "hap", "neu": "neu", "sad": "sad", "ang": "ang"}


def prov(feature: str, modality: str, dim: int, level: str = "frame", **over: Any) -> dict[str, Any]:
    p = {"format": 1, "feature": feature, "modality": modality,
         "encoder": {"name_or_path": f"tiny-{feature}", "revision": None, "weights_sha256": "cd" * 32},
         "layer": 3, "pooling": "none" if level == "frame" else "mean", "level": level, "dim": dim,
         "sample_rate": SR if modality == "audio" else None, "frame_rate": 50.0 if level == "frame" else None,
         "preprocessing": {"max_seconds": 6}, "versions": {"torch": "test"}, "created": "2026-01-01T00:00:00"}
    p.update(over)
    return p


def _tone(n: int, freq: float) -> np.ndarray:
    t = np.arange(n) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)


def write_iemocap(root: str | Path, *, features: bool = True, seed: int = 0) -> dict[str, Any]:
    """Write the release (and features); returns ``{"root", "release", "utts": {id: info}, "features_root"}``,
    ``info`` = dict(session, dialog, speaker, code, vad, start, end, text, samples)."""
    root = Path(root)
    rel = root / RELEASE
    rng = np.random.default_rng(seed)
    utts: dict[str, dict[str, Any]] = {}
    j = 0
    for s in range(1, 6):
        sdir = rel / f"Session{s}"
        edir = sdir / "dialog" / "EmoEvaluation"
        tdir = sdir / "dialog" / "transcriptions"
        for sub in ("Categorical", "Attribute", "Self-evaluation"):
            (edir / sub).mkdir(parents=True, exist_ok=True)
        tdir.mkdir(parents=True, exist_ok=True)
        (sdir / "dialog" / "avi" / "DivX").mkdir(parents=True, exist_ok=True)
        for d, dialog in enumerate((f"Ses0{s}F_impro01", f"Ses0{s}M_script01_1")):
            turns = []
            for k in range(4):
                for g in ("F", "M"):
                    code = CODES[4 * d + k] or OTHER[s]
                    j += 1
                    turn = f"{dialog}_{g}{k:03d}"
                    samples = int(SR * (0.25 + 0.25 * (j % 6)))
                    start = 2.0 + 2.5 * (2 * k + (g == "M"))
                    vad = (VALENCE[j % 8], VALENCE[(j + 3) % 8], VALENCE[(j + 5) % 8])
                    info = dict(session=s, dialog=dialog, speaker=f"Ses0{s}{g}", code=code, vad=vad,
                                start=round(start, 4), end=round(start + samples / SR, 4), samples=samples,
                                text=None if turn == NO_TRANSCRIPT else f"words of {turn} .")
                    utts[turn] = info
                    turns.append(turn)
                    wdir = sdir / "sentences" / "wav" / dialog
                    wdir.mkdir(parents=True, exist_ok=True)
                    wavfile.write(wdir / f"{turn}.wav", SR, _tone(samples, 200.0 + 20 * j))
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            tlines = []
            for turn in turns:
                u = utts[turn]
                v, a, dd = u["vad"]
                lines.append(f"[{u['start']:.4f} - {u['end']:.4f}]\t{turn}\t{u['code']}\t[{v:.4f}, {a:.4f}, {dd:.4f}]")
                lines.append(f"C-E2:\t{FULL[u['code']]};\t()")
                lines.append(f"C-E3:\t{FULL[u['code']]}; Neutral;\t(a comment)")
                lines.append(f"C-F1:\t{FULL[u['code']]};\t()")
                lines.append("A-E3:\tval 3; act 2; dom  2;\t()")
                lines.append("A-F1:\tval 4; act 3; dom  3;\t()")
                lines.append("")
                if u["text"] is not None:
                    tlines.append(f"{turn} [{u['start']:08.4f}-{u['end']:08.4f}]: {u['text']}")
            tlines.insert(2, f"{dialog}_MXX0 [099.0000-100.0000]: [BREATHING]")
            tlines.append("F: [LAUGHTER]")
            (edir / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
            (tdir / f"{dialog}.txt").write_text("\n".join(tlines) + "\n")
            (edir / "Categorical" / f"{dialog}_e2_cat.txt").write_text(f"{turns[0]} :Neutral; ()\n[1.0 - broken\n")
            (edir / "Attribute" / f"{dialog}_e3_atr.txt").write_text(f"[2.0 - 1.0]\t{turns[0]}\tjoy\t[9, 9, 9]\n")
            (edir / "Self-evaluation" / f"{dialog}.txt").write_text("[bad line\n")
    out = {"root": root, "release": rel, "utts": utts, "features_root": root / "features"}
    if features:
        write_features(root / "features", utts, rng)
    return out


def write_features(froot: Path, utts: dict[str, dict[str, Any]], rng: np.random.Generator) -> None:
    """Class-informative features for every utterance (all codes)."""
    directions = {m: rng.standard_normal((11, d)).astype(np.float32) for m, d in DIMS.items()}
    code_index = {c: i for i, c in enumerate(FULL)}
    ids = {}
    for m, name in FEATURES.items():
        folder = froot / name
        folder.mkdir(parents=True, exist_ok=True)
        if m != "video":
            ids[m] = pv.write(folder, prov(name, m, DIMS[m], level="frame" if m == "audio" else "utterance"))
    for i, (turn, u) in enumerate(utts.items()):
        k = code_index[u["code"]]
        T = 3 + i % 5
        audio = 2.0 * directions["audio"][k] + rng.standard_normal((T, DIMS["audio"]))
        text = 2.0 * directions["text"][k] + rng.standard_normal(DIMS["text"])
        video = 2.0 * directions["video"][k] + rng.standard_normal((T + 1, DIMS["video"]))
        np.save(froot / FEATURES["audio"] / f"{turn}.npy", audio.astype(np.float32))
        np.save(froot / FEATURES["text"] / f"{turn}.npy", (text[None] if i % 4 == 0 else text).astype(np.float32))
        np.save(froot / FEATURES["video"] / f"{turn}.npy", video.astype(np.float32))
        for m in ("audio", "text"):
            pv.append_index(froot / FEATURES[m], turn, ids[m])
