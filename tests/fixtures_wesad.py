"""A tiny WESAD release in the official layout (``datasets.md`` §4), for the tests.

``write_wesad(root)`` writes ``root/WESAD/S<k>/S<k>.pkl`` and ``S<k>_quest.csv`` for a few subjects
(default S2, S3, S4, S5), each a 3-minute recording at the **real rates** (chest 700 Hz, wrist ACC
32, BVP 64, EDA/TEMP 4 Hz), pickled with protocol 2 (Python-2 compatible; loads with
``encoding='latin1'``). Timeline (seconds; boundaries deliberately off the 1-s grid)::

    [0, 10.3) 0 | [10.3, 25) cond1 | [25, 25.2) 0 (glitch) | [25.2, 40.3) cond1 | [40.3, 45) 0
    [45, 75.5) cond2 | [75.5, 82) label 6 (no gap around it) | [82, 105) Medi 1 (4) | [105, 110) 0
    [110, 140) cond4 | [140, 141) label 7 | [141, 145) 0 | [145, 170) Medi 2 (4) | [170, 180) 0

cond1 is always Base (1). Subjects S2 and S4 follow protocol A (Base, TSST, Medi 1, Fun, Medi 2: cond2
= TSST, cond4 = Fun), S3 and S5 protocol B (Base, Fun, Medi 1, TSST, Medi 2). ``SX_quest.csv`` has the
real row layout (``# Subj``, ``# ORDER`` with reading tasks, ``# START``/``# END`` in minutes.seconds
with a dropped trailing zero such as ``2.5`` = 2:50, blank ``;;;`` rows, every row padded with
trailing ``;``), one 24-item PANAS per study condition (26 items after TSST), STAI, DIM and one SSSQ.
S5's questionnaire clock runs 40 s ahead of its pickle (all its START/END shifted by +40 s), so a
meditation run is nearer the wrong Medi midpoint unless the offset is estimated.

Signals: chest ``Temp``, chest ``ACC`` axis 0, wrist ``TEMP``, ``BVP`` and ``ACC`` axis 0 are the time
in seconds (``index / rate``), so a window's mean tells where it was cut; the others carry the
condition (EDA level, ECG frequency, ...) plus noise. Wrist streams are 0.5 s shorter than the chest
(S3: 0.5 s longer). S4's chest is float32, S5's label float64. Nothing here is real data.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

CHEST = 700
WRIST = {"ACC": 32, "BVP": 64, "EDA": 4, "TEMP": 4}
DURATION = 180.0
SUBJECTS = ("S2", "S3", "S4", "S5")
PROTOCOL_A = ("Base", "TSST", "Medi 1", "Fun", "Medi 2")
PROTOCOL_B = ("Base", "Fun", "Medi 1", "TSST", "Medi 2")
LABEL_OF = {"Base": 1, "TSST": 2, "Fun": 3, "Medi 1": 4, "Medi 2": 4}
SLOTS = ((10.3, 40.3), (45.0, 75.5), (82.0, 105.0), (110.0, 140.0), (145.0, 170.0))  # study conditions
GLITCH = (25.0, 25.2)  # label 0 inside the first slot
EXTRA = ((75.5, 82.0, 6), (140.0, 141.0, 7))  # ignored labels
QUEST_SLOTS = ((10, 40), (45, 75), (82, 105), (110, 140), (145, 170))  # whole seconds, as the real files
READING = (("sRead", 75, 82), ("fRead", 140, 145))
QUEST_OFFSET = {"S5": 40}
LEVEL = {0: 0.0, 1: 0.0, 2: 2.0, 3: 1.0, 4: -1.0, 5: 0.0, 6: 0.5, 7: 0.5}
PANAS_ITEMS = ("Active", "Distressed", "Interested", "Inspired", "Annoyed", "Strong", "Guilty", "Scared",
               "Hostile", "Excited", "Proud", "Irritable", "Enthusiastic", "Ashamed", "Alert", "Nervous",
               "Determined", "Attentive", "Jittery", "Afraid", "Stressed", "Frustrated", "Happy", "Sad")
DIST_ITEMS = ("Inspired", "Alert", "Excited", "Enthusiastic", "Determined", "Afraid", "Annoyed", "Nervous",
              "Scared", "Distressed")
WIDTH = 27  # fields per csv row (padded with trailing empty fields)


def minsec(seconds: float) -> str:
    """Seconds -> the release's minutes.seconds text, trailing zero dropped (80 -> '1.2', 428 -> '7.08')."""
    m, s = divmod(int(round(seconds)), 60)
    if s == 0:
        return str(m)
    text = f"{m}.{s:02d}"
    return text.rstrip("0") if s % 10 == 0 else text


def order_of(subject: str) -> tuple[str, ...]:
    return PROTOCOL_A if int(subject[1:]) % 2 == 0 else PROTOCOL_B


def segments(subject: str) -> list[tuple[float, float, int, str | None]]:
    """(start_s, end_s, label, condition name or None) in time order, gaps (label 0) left out."""
    out: list[tuple[float, float, int, str | None]] = []
    for (a, b), name in zip(SLOTS, order_of(subject)):
        if name == "Base":
            out += [(a, GLITCH[0], 1, name), (GLITCH[1], b, 1, name)]
        else:
            out.append((a, b, LABEL_OF[name], name))
    out += [(a, b, lab, None) for a, b, lab in EXTRA]
    return sorted(out)


def label_array(subject: str) -> np.ndarray:
    n = int(DURATION * CHEST)
    lab = np.zeros(n, dtype=np.int32)
    for a, b, v, _ in segments(subject):
        lab[int(round(a * CHEST)):int(round(b * CHEST))] = v
    return lab


def _row(tag: str, values: list[Any]) -> str:
    fields = [tag] + [str(v) for v in values]
    return ";".join(fields + [""] * max(0, WIDTH - len(fields)))


def panas_ratings(rng: np.random.Generator, stress: bool) -> list[int]:
    n = 26 if stress else 24
    return rng.integers(1, 6, size=n).tolist()


def quest_text(subject: str, panas: dict[str, list[int]], rng: np.random.Generator) -> str:
    order = order_of(subject)
    shift = QUEST_OFFSET.get(subject, 0)
    conds = list(zip(order, QUEST_SLOTS))
    entries = [(conds[0][0], *conds[0][1]), (conds[1][0], *conds[1][1]), (READING[0][0], *READING[0][1:]),
               (conds[2][0], *conds[2][1]), (conds[3][0], *conds[3][1]), (READING[1][0], *READING[1][1:]),
               (conds[4][0], *conds[4][1])]
    lines = [_row("# Subj", [subject]),
             _row("# ORDER", [e[0] for e in entries]),
             _row("# START", [minsec(e[1] + shift) for e in entries]),
             _row("# END", [minsec(e[2] + shift) for e in entries]),
             ";;;;"]
    lines += [_row("# PANAS", panas[c]) for c in order]
    lines += [_row("# STAI", rng.integers(1, 5, size=6).tolist()) for _ in order]
    lines += [_row("# DIM", rng.integers(1, 10, size=2).tolist()) for _ in order]
    lines += [_row("# SSSQ", rng.integers(1, 6, size=6).tolist()), ";;;;", ""]
    return "\n".join(lines)


def subject_dict(subject: str, rng: np.random.Generator) -> dict[str, Any]:
    """The SX.pkl dict (as the release's, before pickling)."""
    lab = label_array(subject)
    n = lab.shape[0]
    t = np.arange(n) / CHEST
    shift = 0.3 * (int(subject[1:]) - 3)
    level = np.vectorize(LEVEL.get)(lab).astype(np.float64) + shift
    noise = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    chest = {
        "ACC": np.stack([t, level + 0.1 * noise(n), 0.1 * noise(n)], axis=1),
        "ECG": np.sin(2 * np.pi * np.cumsum(1.0 + 0.3 * level) / CHEST)[:, None] + 0.05 * noise(n, 1),
        "EDA": (5.0 + level + 0.1 * noise(n))[:, None],
        "EMG": ((1.0 + 0.3 * np.abs(level)) * noise(n))[:, None],
        "Resp": (np.sin(2 * np.pi * 0.25 * t) * (1.0 + 0.2 * level))[:, None],
        "Temp": t[:, None].copy(),
    }
    wrist = {}
    extra = 0.5 if subject == "S3" else -0.5
    for key, rate in WRIST.items():
        m = int(round((DURATION + extra) * rate))
        tw = np.arange(m) / rate
        lw = level[np.minimum((tw * CHEST).astype(int), n - 1)]
        if key == "ACC":
            wrist[key] = np.stack([tw, lw + 0.1 * rng.standard_normal(m), 0.1 * rng.standard_normal(m)], axis=1)
        elif key == "EDA":
            wrist[key] = (2.0 + lw + 0.1 * rng.standard_normal(m))[:, None]
        else:  # BVP, TEMP: the time
            wrist[key] = tw[:, None].copy()
    if subject == "S4":
        chest = {k: v.astype(np.float32) for k, v in chest.items()}
    label = lab.astype(np.float64) if subject == "S5" else lab
    return {"signal": {"chest": chest, "wrist": wrist}, "label": label, "subject": subject}


def write_pickle(path: Path, d: dict[str, Any]) -> None:
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def write_wesad(root: str | Path, subjects: tuple[str, ...] = SUBJECTS, seed: int = 0) -> dict[str, Any]:
    """Write the release under ``root/WESAD``; returns ``{"root", "wesad", "subjects": {s: info}}`` with
    ``info`` = dict(order, segments, label (the 700-Hz label array), panas {condition: ratings},
    quest_times {condition: (start_s, end_s) as written, before any offset})."""
    wesad = Path(root) / "WESAD"
    info: dict[str, Any] = {}
    for i, s in enumerate(subjects):
        rng = np.random.default_rng(seed * 100 + int(s[1:]))
        folder = wesad / s
        folder.mkdir(parents=True, exist_ok=True)
        d = subject_dict(s, rng)
        write_pickle(folder / f"{s}.pkl", d)
        order = order_of(s)
        panas = {c: panas_ratings(rng, c == "TSST") for c in order}
        (folder / f"{s}_quest.csv").write_text(quest_text(s, panas, rng))
        (folder / f"{s}_readme.txt").write_text(f"### Personal information ###\nAge: {25 + i}\n")
        info[s] = {"order": order, "segments": segments(s), "label": label_array(s), "panas": panas,
                   "quest_times": dict(zip(order, QUEST_SLOTS))}
    return {"root": Path(root), "wesad": wesad, "subjects": info}


def load_pickle(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")
