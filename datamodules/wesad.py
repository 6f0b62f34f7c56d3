"""WESAD (Schmidt et al., ICMI 2018): stress and affect from wearable sensors, read from the release.

Files (``datasets.md`` §4): ``<data dir>/S<k>/S<k>.pkl`` (a Python-2 pickle, loaded with
``encoding="latin1"``) and ``<data dir>/S<k>/S<k>_quest.csv``; the subjects present are used (the
release has S2-S11 and S13-S17). In the pickle, ``signal.chest`` holds ACC (N, 3), ECG, EDA, EMG,
Resp and Temp at 700 Hz; ``signal.wrist`` ACC (32 Hz, 3 axes), BVP (64 Hz), EDA and TEMP (4 Hz);
``label`` the condition at 700 Hz (0 undefined, 1 baseline, 2 stress, 3 amusement, 4 meditation,
5-7 to be ignored). Chest streams must have the label's length; a wrist stream must cover the
same duration at its rate within 1 s. Streams are aligned by **time** (sample index / rate).

Windows (``window_s`` = 5 s, ``step_s`` = 1 s by default; HeLo's DMER GSR/PPG windows): cut inside
each contiguous run of one condition 1-4, never across a change of condition, and only where every
stream covers the window. Each window becomes one sample; each sensor is one vector modality of
hand-crafted features per channel, the DMER GSR recipe (``datasets.md`` §5.3) at the sensor's
native rate: median, mean, std, min, max, min-ratio and max-ratio (the fraction of samples equal to
the minimum / maximum) of the signal, its first and its second difference (21); median, mean, std,
max, min and range of the FFT magnitude (6); the mean Welch PSD over 0-2 Hz (1) — 28 per channel,
84 for a 3-axis accelerometer. Modalities: ``chest_ecg``, ``chest_eda``, ``chest_emg``,
``chest_resp``, ``chest_temp``, ``wrist_bvp``, ``wrist_eda``, ``wrist_temp`` (physiological) and
``chest_acc``, ``wrist_acc`` (behavioral: motion).

Tasks (``task``):

* ``3class`` (default): baseline / stress / amusement (meditation windows are not used); primary
  metric macro F1 (``mf1``), with accuracy beside it, as the dataset paper reports;
* ``binary``: stress vs non-stress (baseline + amusement), as the dataset paper;
* ``distribution``: the PANAS ratings the subject gave after the condition a window lies in,
  restricted to DMER's ten short-PANAS items (Inspired, Alert, Excited, Enthusiastic, Determined,
  Afraid, Upset, Nervous, Scared, Distressed; WESAD asks "Annoyed" instead of "Upset") and divided
  by their sum (``methods/helo.md`` §2.2). Conditions 1-4; the two meditation blocks (both label 4)
  are told apart by the START/END times of ``S<k>_quest.csv``. A subject then has 4-5 distinct
  targets, so this is close to condition recognition with soft targets.

``S<k>_quest.csv``: semicolon-separated rows tagged ``# ORDER`` (conditions in protocol order),
``# START`` / ``# END`` (minutes.seconds: 7.08 = 7 min 8 s) and one ``# PANAS`` row per study
condition in that order (reading tasks, e.g. ``bRead``/``fRead``/``sRead``, have none). PANAS rows
have 24 items; after the stress condition (TSST) 26, with Angry and Irritated inserted before Sad.

Protocols (``protocol``): ``loso`` (default): one fold per subject, validation = the next subject
(cyclically), train = the rest; ``subject_dependent``: one fold ``time`` pooling every subject,
where every condition run is cut in time into the first 60 % (train), the next 20 % (validation) and
the last 20 % (test), keeping only windows that lie wholly inside one part, so no two splits share a
second of signal. ``normalize``: ``global`` (default; statistics of the training split), ``subject``
or ``none`` (``datamodules/normalize.py``).

Cache: each subject's windows are computed once into ``$AFFECTBENCH_CACHE/wesad/<key>/`` (key: the
pickle's and questionnaire's fingerprints, the window settings and the loader version) and
memory-mapped afterwards; the release's pickles (about 1 GB each) are identified by size, mtime and
their first and last MiB rather than a full SHA-256.
"""
from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from . import normalize as nz
from .base import MERDataModule, TensorSampleDataset
from .io import DataError, NpyCache, file_fingerprint, missing_dataset
from .registry import register_datamodule
from .spec import DatasetSpec, ModalitySpec, Protocol, UserInputError

NAME = "wesad"
LOADER_VERSION = 1
CHEST_RATE = 700
STREAMS = {  # modality -> (device, key, rate, channels, group)
    "chest_acc": ("chest", "ACC", 700, 3, "behavioral"),
    "chest_ecg": ("chest", "ECG", 700, 1, "physiological"),
    "chest_eda": ("chest", "EDA", 700, 1, "physiological"),
    "chest_emg": ("chest", "EMG", 700, 1, "physiological"),
    "chest_resp": ("chest", "Resp", 700, 1, "physiological"),
    "chest_temp": ("chest", "Temp", 700, 1, "physiological"),
    "wrist_acc": ("wrist", "ACC", 32, 3, "behavioral"),
    "wrist_bvp": ("wrist", "BVP", 64, 1, "physiological"),
    "wrist_eda": ("wrist", "EDA", 4, 1, "physiological"),
    "wrist_temp": ("wrist", "TEMP", 4, 1, "physiological"),
}
N_FEATS = 28
CONDITIONS = {1: "baseline", 2: "stress", 3: "amusement", 4: "meditation"}
TASKS = {"3class": ("baseline", "stress", "amusement"), "binary": ("non-stress", "stress")}
ITEMS = ("Inspired", "Alert", "Excited", "Enthusiastic", "Determined", "Afraid", "Upset", "Nervous", "Scared",
         "Distressed")
WESAD_ITEM = {"Upset": "Annoyed"}  # DMER item -> the WESAD item asked in its place
PANAS_24 = ("Active", "Distressed", "Interested", "Inspired", "Annoyed", "Strong", "Guilty", "Scared", "Hostile",
            "Excited", "Proud", "Irritable", "Enthusiastic", "Ashamed", "Alert", "Nervous", "Determined",
            "Attentive", "Jittery", "Afraid", "Stressed", "Frustrated", "Happy", "Sad")
PANAS_26 = PANAS_24[:23] + ("Angry", "Irritated") + PANAS_24[23:]
SOURCE = "the UCI ML Repository, https://archive.ics.uci.edu/dataset/465/wesad+wearable+stress+and+affect+detection"


# -- questionnaire ----------------------------------------------------------------------------
def _min_sec(value: str, path: Path, tag: str) -> float:
    """'7.08' -> 7 min 8 s = 428 s (minutes.seconds, as the release writes START/END)."""
    m = re.fullmatch(r"\s*(\d+)(?:\.(\d{1,2}))?\s*", value)
    if not m:
        raise DataError(path, tag, "times as minutes.seconds (e.g. 7.08)", repr(value))
    secs = int(m.group(2).ljust(2, "0")) if m.group(2) else 0
    if secs >= 60:
        raise DataError(path, tag, "minutes.seconds with seconds below 60", repr(value))
    return int(m.group(1)) * 60 + secs


def parse_quest(path: Path) -> list[dict[str, Any]]:
    """Study conditions in protocol order: ``{"name", "start", "end", "panas": {item: rating}}``
    (reading tasks have no questionnaire and are left out)."""
    rows: dict[str, list[list[str]]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        cells = [c.strip() for c in line.split(";")]
        if cells and cells[0].startswith("#"):
            rows.setdefault(cells[0][1:].strip().upper(), []).append([c for c in cells[1:] if c != ""])
    for tag in ("ORDER", "START", "END", "PANAS"):
        if tag not in rows:
            raise DataError(path, f"# {tag}", "a row with this tag", "none")
    order, start, end = rows["ORDER"][0], rows["START"][0], rows["END"][0]
    if not len(order) == len(start) == len(end):
        raise DataError(path, "# ORDER/# START/# END", "one START and END time per condition",
                        f"{len(order)} conditions, {len(start)} starts, {len(end)} ends")
    study = [i for i, name in enumerate(order) if "read" not in name.lower()]
    panas = rows["PANAS"]
    if len(panas) != len(study):
        raise DataError(path, "# PANAS", f"one row per study condition ({len(study)}: "
                        f"{', '.join(order[i] for i in study)})", f"{len(panas)} rows")
    out = []
    for row, i in zip(panas, study):
        items = PANAS_26 if len(row) == 26 else PANAS_24 if len(row) == 24 else None
        if items is None:
            raise DataError(path, f"# PANAS ({order[i]})", "24 ratings (26 after the stress condition)", len(row))
        try:
            vals = [float(v) for v in row]
        except ValueError:
            raise DataError(path, f"# PANAS ({order[i]})", "numeric ratings 1-5", row) from None
        if any(not 1 <= v <= 5 for v in vals):
            raise DataError(path, f"# PANAS ({order[i]})", "ratings 1-5", vals)
        s, e = _min_sec(start[i], path, "# START"), _min_sec(end[i], path, "# END")
        if e <= s:
            raise DataError(path, f"# START/# END ({order[i]})", "END after START", f"{start[i]} - {end[i]}")
        out.append({"name": order[i], "start": s, "end": e, "panas": dict(zip(items, vals))})
    return out


# -- features ---------------------------------------------------------------------------------
def window_features(win: np.ndarray, rate: float) -> np.ndarray:
    """The 28 statistics (module docstring) of every row of ``win`` (n_windows, samples)."""
    from scipy.signal import welch

    feats = []
    for sig in (win, np.diff(win, axis=1), np.diff(win, n=2, axis=1)):
        lo, hi = sig.min(axis=1, keepdims=True), sig.max(axis=1, keepdims=True)
        feats += [np.median(sig, axis=1), sig.mean(axis=1), sig.std(axis=1), lo[:, 0], hi[:, 0],
                  (sig == lo).mean(axis=1), (sig == hi).mean(axis=1)]
    mag = np.abs(np.fft.rfft(win, axis=1))
    feats += [np.median(mag, axis=1), mag.mean(axis=1), mag.std(axis=1), mag.max(axis=1), mag.min(axis=1),
              mag.max(axis=1) - mag.min(axis=1)]
    freqs, psd = welch(win, fs=rate, nperseg=min(win.shape[1], 256), axis=1)
    feats.append(psd[:, freqs <= 2.0].mean(axis=1))
    return np.stack(feats, axis=1).astype(np.float32)


def _runs(label: np.ndarray) -> list[tuple[int, int, int]]:
    """(condition, first sample, end sample) of every contiguous run of one label."""
    change = np.flatnonzero(np.diff(label)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(label)]])
    return [(int(label[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def convert_subject(pkl: Path, quest: Path | None, window_s: float, step_s: float) -> tuple[dict[str, np.ndarray],
                                                                                         dict[str, Any]]:
    try:
        with open(pkl, "rb") as f:
            data = pickle.load(f, encoding="latin1")
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a malformed file
        raise DataError(pkl, "<pickle>", "a readable (latin-1) pickle", f"{type(e).__name__}: {e}") from e
    if not isinstance(data, dict) or "label" not in data or "signal" not in data:
        raise DataError(pkl, "<top level>", "a dict with keys signal, label", sorted(data) if isinstance(data, dict)
                        else type(data).__name__)
    label = np.asarray(data["label"]).reshape(-1)
    if label.size == 0 or not np.all(label == np.round(label)) or label.min() < 0 or label.max() > 7:
        raise DataError(pkl, "label", "condition ids 0-7", f"values in [{label.min()}, {label.max()}]")
    label = label.astype(np.int64)
    duration = len(label) / CHEST_RATE
    signals: dict[str, np.ndarray] = {}
    for mod, (dev, key, rate, ch, _) in STREAMS.items():
        try:
            arr = np.asarray(data["signal"][dev][key], dtype=np.float64)
        except (KeyError, TypeError):
            raise DataError(pkl, f"signal.{dev}.{key}", "a signal array", "missing") from None
        arr = arr.reshape(len(arr), -1) if arr.ndim else arr
        if arr.ndim != 2 or arr.shape[1] != ch:
            raise DataError(pkl, f"signal.{dev}.{key}", f"shape (N, {ch})", tuple(arr.shape))
        if dev == "chest" and len(arr) != len(label):
            raise DataError(pkl, f"signal.{dev}.{key}", f"{len(label)} samples (as label, at {rate} Hz)", len(arr))
        if dev == "wrist" and abs(len(arr) / rate - duration) > 1.0:
            raise DataError(pkl, f"signal.{dev}.{key}", f"about {duration * rate:.0f} samples ({duration:.1f} s at "
                            f"{rate} Hz, within 1 s)", f"{len(arr)} ({len(arr) / rate:.1f} s)")
        if not np.all(np.isfinite(arr)):
            raise DataError(pkl, f"signal.{dev}.{key}", "finite values", f"{int((~np.isfinite(arr)).sum())} NaN/inf")
        signals[mod] = arr
    cover = min(len(a) / STREAMS[m][2] for m, a in signals.items())  # seconds every stream covers
    conditions = parse_quest(quest) if quest is not None else None
    starts, conds, runs = [], [], []
    meta: dict[str, Any] = {"duration_s": duration, "beyond_streams": 0, "ignored_labels": {}}
    for r, (cond, s, e) in enumerate(_runs(label)):
        if cond not in CONDITIONS:
            meta["ignored_labels"][str(cond)] = meta["ignored_labels"].get(str(cond), 0) + (e - s)
            continue
        t = np.arange(s / CHEST_RATE, e / CHEST_RATE - window_s + 1e-9, step_s)
        ok = t + window_s <= cover + 1e-9
        meta["beyond_streams"] += int((~ok).sum())
        starts.append(t[ok])
        conds.append(np.full(int(ok.sum()), cond))
        runs.append(np.full(int(ok.sum()), r))
    t0 = np.concatenate(starts) if starts else np.zeros(0)
    arrays: dict[str, np.ndarray] = {"t0": t0, "cond": np.concatenate(conds).astype(np.int64) if conds else
                                     np.zeros(0, np.int64), "run": np.concatenate(runs).astype(np.int64) if runs
                                     else np.zeros(0, np.int64)}
    for mod, arr in signals.items():
        rate = STREAMS[mod][2]
        n = int(round(window_s * rate))
        idx = np.round(t0 * rate).astype(np.int64)[:, None] + np.arange(n)[None, :]
        arrays[mod] = np.concatenate([window_features(arr[idx, c], rate) for c in range(arr.shape[1])], axis=1)
    dist = np.full((len(t0), len(ITEMS)), np.nan, dtype=np.float32)
    if conditions is not None:
        mid = t0 + window_s / 2
        for c in conditions:
            inside = (mid >= c["start"]) & (mid < c["end"])
            vals = np.array([c["panas"][WESAD_ITEM.get(i, i)] for i in ITEMS], dtype=np.float64)
            dist[inside] = vals / vals.sum()
        meta["conditions"] = [{k: c[k] for k in ("name", "start", "end")} for c in conditions]
    arrays["dist"] = dist
    return arrays, meta


def _natural(name: str) -> tuple[int, str]:
    return (int(name[1:]), name) if name[1:].isdigit() else (10**9, name)


@register_datamodule(NAME)
class WESADDataModule(MERDataModule):
    """WESAD wearable stress/affect windows (3-class, binary or PANAS distribution); see datamodules/wesad.py."""

    source: ClassVar[str] = SOURCE

    def __init__(self, data_dir: str | None = None, batch_size: int = 32, num_workers: int = 0,
                 fold: str | None = None, seed: int = 0, sampler: str = "random", task: str = "3class",
                 protocol: str = "loso", window_s: float = 5.0, step_s: float = 1.0,
                 normalize: str = "global") -> None:
        super().__init__(data_dir=data_dir, batch_size=batch_size, num_workers=num_workers, fold=fold, seed=seed,
                         sampler=sampler)
        if task not in ("3class", "binary", "distribution"):
            raise UserInputError(f"{NAME}: task must be 3class, binary or distribution, got {task!r}")
        if protocol not in ("loso", "subject_dependent"):
            raise UserInputError(f"{NAME}: protocol must be loso or subject_dependent, got {protocol!r}")
        if normalize not in nz.MODES:
            raise UserInputError(f"{NAME}: normalize must be one of {', '.join(nz.MODES)}, got {normalize!r}")
        if not (0 < float(step_s) and 1.0 <= float(window_s) <= 60.0):
            raise UserInputError(f"{NAME}: need 1 <= window_s <= 60 and step_s > 0, got {window_s}, {step_s}")
        self.task, self.protocol_name, self.normalize = task, protocol, normalize
        self.window_s, self.step_s = float(window_s), float(step_s)
        self.root = self._root(data_dir)
        self.subjects = sorted((p.name for p in self.root.iterdir() if (p / f"{p.name}.pkl").is_file()),
                               key=_natural)
        if len(self.subjects) < 3:
            raise DataError(self.root, "subjects", "at least 3 subject folders S<k>/S<k>.pkl", self.subjects)
        self.caches = {s: self._subject_cache(s) for s in self.subjects}
        self.spec = self._build_spec()

    @staticmethod
    def _root(data_dir: str | None) -> Path:
        for cand in ((Path(data_dir), Path(data_dir) / "WESAD") if data_dir else ()):
            if cand.is_dir() and any(cand.glob("S*/S*.pkl")):
                return cand
        raise missing_dataset(NAME, data_dir, "WESAD folder with S<k>/S<k>.pkl", SOURCE, "synthetic-physio",
                              same_shapes=False)

    @classmethod
    def is_available(cls, data_dir: str | None = None) -> bool:
        try:
            cls._root(data_dir)
            return True
        except UserInputError:
            return False

    def _subject_cache(self, s: str) -> NpyCache:
        pkl, quest = self.root / s / f"{s}.pkl", self.root / s / f"{s}_quest.csv"
        quest = quest if quest.is_file() else None
        key = hashlib.sha256(f"{file_fingerprint(pkl)}|{file_fingerprint(quest) if quest else '-'}|{self.window_s}|"
                             f"{self.step_s}|{LOADER_VERSION}".encode()).hexdigest()[:16]
        cache = NpyCache("wesad", f"{s}-{key}")
        if not cache.exists():
            arrays, meta = convert_subject(pkl, quest, self.window_s, self.step_s)
            cache.write(arrays, {**meta, "has_quest": quest is not None})
        return cache

    def _build_spec(self) -> DatasetSpec:
        mods = tuple(ModalitySpec(m, ch * N_FEATS, None, grp) for m, (_, _, _, ch, grp) in STREAMS.items())
        if self.protocol_name == "loso":
            protocol = Protocol("leave_one_out", tuple(self.subjects),
                                "leave one subject out; validation = the next subject (cyclically)")
        else:
            protocol = Protocol("holdout", ("time",), "every condition run cut in time: first 60 % train, next "
                                "20 % validation, last 20 % test (windows wholly inside one part)")
        extra = (("task", self.task), ("window_s", repr(self.window_s)), ("step_s", repr(self.step_s)),
                 ("normalize", self.normalize), ("protocol", self.protocol_name))
        if self.task == "distribution":
            return DatasetSpec(name=NAME, task="distribution", class_names=ITEMS, modalities=mods, protocol=protocol,
                               primary_metric="chebyshev", primary_direction="min", extra=extra)
        return DatasetSpec(name=NAME, task="classification", class_names=TASKS[self.task], modalities=mods,
                           protocol=protocol, primary_metric="mf1", primary_direction="max", extra=extra)

    # -- data -------------------------------------------------------------------------------
    def _subject_rows(self, s: str) -> dict[str, np.ndarray]:
        c = self.caches[s]
        cond = c.load("cond", mmap=False)
        keep = np.isin(cond, [1, 2, 3]) if self.task != "distribution" else np.isin(cond, [1, 2, 3, 4])
        if self.task == "distribution":
            if not c.meta()["has_quest"]:
                raise DataError(self.root / s / f"{s}_quest.csv", "<file>", "the questionnaire (task=distribution)",
                                "no such file")
            keep &= ~np.isnan(c.load("dist", mmap=False)).any(axis=1)
        return {"keep": keep}

    def _targets(self, c: NpyCache, rows: np.ndarray) -> torch.Tensor:
        if self.task == "distribution":
            return torch.from_numpy(np.asarray(c.load("dist", mmap=False)[rows]))
        cond = c.load("cond", mmap=False)[rows]
        if self.task == "binary":
            return torch.from_numpy((cond == 2).astype(np.int64))
        return torch.from_numpy(cond - 1)  # baseline 0, stress 1, amusement 2

    def _split_of(self, s: str, fold: str) -> np.ndarray:
        """Per window of subject ``s``: 0 train, 1 val, 2 test, -1 unused."""
        c = self.caches[s]
        keep = self._subject_rows(s)["keep"]
        out = np.full(keep.shape, -1)
        if self.protocol_name == "loso":
            i = self.subjects.index(fold)
            part = 2 if s == fold else 1 if s == self.subjects[(i + 1) % len(self.subjects)] else 0
            out[keep] = part
            return out
        t0, run = c.load("t0", mmap=False), c.load("run", mmap=False)
        for r in np.unique(run[keep]):
            sel = keep & (run == r)
            a, b = t0[sel].min(), t0[sel].max() + self.window_s  # the run's covered span
            cut1, cut2 = a + 0.6 * (b - a), a + 0.8 * (b - a)
            end = t0 + self.window_s
            out[sel & (end <= cut1 + 1e-9)] = 0
            out[sel & (t0 >= cut1 - 1e-9) & (end <= cut2 + 1e-9)] = 1
            out[sel & (t0 >= cut2 - 1e-9)] = 2
        return out

    def setup(self, stage: str | None = None) -> None:
        fold = self.resolve_fold()
        if getattr(self, "_fold", None) == fold:
            return
        parts: dict[int, dict[str, list]] = {p: {"x": [], "y": [], "ids": [], "groups": []} for p in (0, 1, 2)}
        for s in self.subjects:
            c = self.caches[s]
            where = self._split_of(s, fold)
            t0 = c.load("t0", mmap=False)
            for p in (0, 1, 2):
                rows = np.flatnonzero(where == p)
                if rows.size == 0:
                    continue
                parts[p]["x"].append({m: torch.from_numpy(np.asarray(c.load(m)[rows])) for m in STREAMS})
                parts[p]["y"].append(self._targets(c, rows))
                parts[p]["ids"] += [f"{s}-t{t0[i]:.1f}" for i in rows]
                parts[p]["groups"] += [s] * len(rows)
        for p, name in ((0, "train"), (1, "validation"), (2, "test")):
            if not parts[p]["ids"]:
                raise DataError(self.root, f"fold {fold}", f"windows in the {name} split", "none (runs too short for "
                                f"window_s={self.window_s})")
        cat = {p: {m: torch.cat([d[m] for d in parts[p]["x"]]) for m in STREAMS} for p in parts}
        train, (val, test) = nz.apply(self.normalize, cat[0], [cat[1], cat[2]],
                                      groups=(parts[0]["groups"], [parts[1]["groups"], parts[2]["groups"]]))
        sets = []
        for p, x in ((0, train), (1, val), (2, test)):
            y = torch.cat(parts[p]["y"])
            sets.append(TensorSampleDataset(x=x, lengths={}, y=y, label=self.spec.discretize(y), ids=parts[p]["ids"],
                                            groups=parts[p]["groups"]))
        self.train_set, self.val_set, self.test_set = sets
        self._fold = fold

    # -- records and `bench info` -------------------------------------------------------------
    def fingerprint(self) -> str:
        keys = "|".join(c.path.name for c in self.caches.values())
        return hashlib.sha256(f"{keys}|{self.task}|{self.protocol_name}|{self.normalize}".encode()).hexdigest()[:16]

    def notes(self) -> list[str]:
        out = [f"{len(self.subjects)} subjects from {self.root}: {', '.join(self.subjects)}"]
        missing = [f"S{k}" for k in list(range(2, 12)) + list(range(13, 18)) if f"S{k}" not in self.subjects]
        if missing:
            out.append(f"subjects of the release not found: {', '.join(missing)}")
        beyond, ignored = 0, {}
        for s in self.subjects:
            m = self.caches[s].meta()
            cond = self.caches[s].load("cond", mmap=False)
            counts = ", ".join(f"{CONDITIONS[k]} {int((cond == k).sum())}" for k in CONDITIONS)
            out.append(f"{s}: {len(cond)} windows ({counts})" + ("" if m["has_quest"] else "; no quest.csv"))
            beyond += m["beyond_streams"]
            for k, v in m["ignored_labels"].items():
                ignored[k] = ignored.get(k, 0) + v
        out.append(f"windows {self.window_s:g} s every {self.step_s:g} s inside one condition run (never across a "
                   f"change); dropped for lack of wrist signal: {beyond}; samples of labels 0/5/6/7 not used: "
                   + ", ".join(f"{k}: {v / CHEST_RATE:.0f} s" for k, v in sorted(ignored.items())))
        out.append(f"features: 28 statistics per channel (DMER GSR recipe) at native rates; normalize {self.normalize}"
                   + (" (statistics of the training split only)" if self.normalize == "global" else ""))
        if self.task == "distribution":
            out.append("targets: PANAS after each condition, items " + ", ".join(
                f"{i}" + (f" (asked as {WESAD_ITEM[i]})" if i in WESAD_ITEM else "") for i in ITEMS) + ", sum 1")
        out.append(f"cache {NpyCache('wesad', 'x').path.parent}; pickles identified by size, mtime, first/last MiB")
        return out
