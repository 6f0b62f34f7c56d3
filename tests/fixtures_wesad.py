"""Tiny WESAD subjects in the release's format (``datasets.md`` §4): ``S<k>/S<k>.pkl`` pickled with
protocol 2 (numpy arrays; the release's pickles are Python-2, read with latin-1) at the real rates
(chest 700 Hz; wrist ACC 32, BVP 64, EDA/TEMP 4 Hz) and ``S<k>_quest.csv`` with ORDER/START/END
in minutes.seconds and 24/26-item PANAS rows. 140 s per subject; signals shift with the condition."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

# (label, seconds): undefined, baseline, stress, meditation 1, amusement, meditation 2, ignored
TIMELINE = [(0, 10), (1, 30), (0, 5), (2, 25), (0, 5), (4, 15), (0, 5), (3, 20), (0, 5), (4, 15), (6, 5)]
ORDER = [("Base", "0.10", "0.40"), ("TSST", "0.45", "1.10"), ("Medi 1", "1.15", "1.30"), ("Fun", "1.35", "1.55"),
         ("Medi 2", "2.00", "2.15"), ("sRead", "2.15", "2.20")]
RATES = {"ACC": 32, "BVP": 64, "EDA": 4, "TEMP": 4}


def label_track() -> np.ndarray:
    return np.concatenate([np.full(sec * 700, lab) for lab, sec in TIMELINE])


def panas_rows(rng: np.random.Generator) -> list[list[int]]:
    rows = []
    for name, *_ in ORDER[:5]:
        n = 26 if name == "TSST" else 24
        rows.append(rng.integers(1, 6, size=n).tolist())
    return rows


def write_subject(root: Path, k: int, rng: np.random.Generator) -> dict:
    label = label_track()
    n = len(label)
    level = np.select([label == 2, label == 3], [2.0, -1.0], 0.0)  # stress up, amusement down
    chest = {"ACC": rng.normal(size=(n, 3)) + level[:, None] * 0.1}
    for key in ("ECG", "EDA", "EMG", "Resp", "Temp"):
        chest[key] = (rng.normal(size=(n, 1)) + level[:, None]).astype(np.float64)
    wrist = {}
    seconds = n / 700
    for key, rate in RATES.items():
        m = int(seconds * rate)
        lv = level[(np.arange(m) / rate * 700).astype(int)]
        ch = 3 if key == "ACC" else 1
        wrist[key] = rng.normal(size=(m, ch)) + lv[:, None]
    data = {"subject": f"S{k}", "signal": {"chest": chest, "wrist": wrist}, "label": label.astype(np.int32)}
    d = root / f"S{k}"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f"S{k}.pkl", "wb") as f:
        pickle.dump(data, f, protocol=2)
    panas = panas_rows(rng)
    lines = [f"# Subj;S{k};;;;;", "# ORDER;" + ";".join(o[0] for o in ORDER) + ";;",
             "# START;" + ";".join(o[1] for o in ORDER) + ";;", "# END;" + ";".join(o[2] for o in ORDER) + ";;", ";;;;"]
    lines += ["# PANAS;" + ";".join(str(v) for v in row) + ";" for row in panas]
    lines += ["# STAI;2;2;2;2;2;2;"] * 5 + ["# DIM;5;5;"] * 5 + ["# SSSQ;3;3;3;3;3;3;"]
    (d / f"S{k}_quest.csv").write_text("\n".join(lines) + "\n")
    return {"label": label, "panas": panas}


def write_wesad(root: str | Path, subjects=(2, 3, 4, 5), seed: int = 0) -> dict[int, dict]:
    root = Path(root)
    rng = np.random.default_rng(seed)
    return {k: write_subject(root, k, rng) for k in subjects}
