"""WESAD from the official release: ``<data dir>/S<k>/S<k>.pkl`` and ``S<k>_quest.csv`` (``datasets.md`` §4).

Files read (``<data dir>`` is the ``WESAD/`` folder holding ``S2/`` .. ``S17/``, or its parent)::

    S<k>/S<k>.pkl        synchronised signals and labels (Python-2 pickle, read with encoding='latin1')
    S<k>/S<k>_quest.csv  protocol order, START/END times and questionnaires (semicolon-separated)

WESAD has 15 subjects, S2-S11 and S13-S17; every subject with an ``S<k>.pkl`` is used (at least 3
are needed), the missing ones are named in :meth:`WESADDataModule.notes`. Unpickling runs code from
the file: only load the files of the official release.

``S<k>.pkl`` (validated by :func:`read_subject`): ``subject`` (must equal the folder name);
``signal.chest.{ACC (N, 3), ECG, EDA, EMG, Resp, Temp (N, 1)}`` at 700 Hz, every chest stream with
exactly as many samples as ``label`` (N,); ``signal.wrist.{ACC (n, 3) 32 Hz, BVP 64 Hz, EDA 4 Hz,
TEMP 4 Hz}``, whose lengths differ from the chest's: each must cover the chest duration N / 700 s at
its own rate within +-1 s (a wrong length, e.g. BVP written at 32 Hz, is refused with expected and
found lengths). Streams are aligned by **time** (sample index / rate), never by index. Arrays of
any numeric dtype are cast to float64; ``(N,)`` is read as ``(N, 1)``. ``label`` must hold
integers 0-7 (0 transient, 1 baseline, 2 stress, 3 amusement, 4 meditation, 5/6/7 ignored).
Non-finite signal values are set to 0 and counted in the notes. A missing key, a wrong shape,
dtype or length stops with a :class:`~datamodules.io.DataError` naming the file and the key path
(e.g. ``signal.wrist.BVP``).

``S<k>_quest.csv`` (:func:`parse_quest`): rows ``# Subj``, ``# ORDER`` (condition names in protocol
order: Base, TSST, Medi 1, Fun, Medi 2 and reading tasks such as sRead/fRead), ``# START``/``# END``
(**minutes.seconds**: ``7.08`` = 7 min 8 s, ``50.3`` = 50 min 30 s, i.e. a trailing zero dropped),
then one ``# PANAS``, ``# STAI`` and ``# DIM`` row per study condition (Base, TSST, Fun, Medi 1,
Medi 2, in ORDER order; reading tasks have none) and one ``# SSSQ`` row (after the stress
condition). PANAS rows have 24 items (1-5), the stress row 26 (Angry and Irritated inserted
between Happy and Sad); STAI 6 items (1-4); DIM 2 (SAM valence, arousal, 1-9); SSSQ 6 (1-5).
Blank rows and trailing empty fields are ignored; anything else malformed stops with a DataError
naming the file and the row tag.

Windows. A window of ``window_s`` seconds (default 5) starts every ``step_s`` seconds (default 1) on
a grid anchored at each recording's start (chest sample 0); both must be multiples of 0.25 s so
that every stream has a whole number of samples per window and step (``window_s >= 1``). A window
is **kept only if it lies entirely inside one contiguous run of one condition label 1-4**; the
others are never formed and counted in the notes: those straddling a label change, those inside
label 0 or 5/6/7, and those that would run past the end of a (slightly shorter) wrist stream.
5 s / 1 s mirrors DMER's GSR/PPG windows (HeLo's reconstruction, ``methods/helo.md`` §2.2).

Representation: every sensor is a vector modality of hand-crafted per-window features, the DMER
GSR recipe (ypthu/Multimodal-dataset-for-mixed-emotion-recognition ``perifeaext.py``) per channel:
7 statistics (median, mean, std, min, max, min-ratio = share of samples equal to the min,
max-ratio) of the signal, of its first and of its second difference (21); 6 statistics (median,
mean, std, min, max, range) of the two-sided FFT magnitude ``|fft(x)|`` (the DMER code takes them
on the complex spectrum; the suite uses magnitudes, ``datasets.md`` §5.3); the mean Welch PSD over
0-2 Hz, with one Hann segment over the whole window (``nperseg`` = window length, 1 / window_s
resolution: what DMER's ``welch`` does on its 4-Hz 5-s windows, where scipy caps ``nperseg`` at
the length). 28 features per channel, computed in float64 at each stream's **native rate** (chest
700 Hz, wrist ACC 32, BVP 64, EDA and TEMP 4 Hz), no resampling or filtering, stored as float32;
3-axis ACC gives 84 = 3 x 28 (column = 28 * axis + feature). Modalities, in this order:

=============== ===================== ====== =============
modality        stream                dim    group
=============== ===================== ====== =============
chest_ecg       chest ECG 700 Hz      28     physiological
chest_eda       chest EDA 700 Hz      28     physiological
chest_emg       chest EMG 700 Hz      28     physiological
chest_resp      chest Resp 700 Hz     28     physiological
chest_temp      chest Temp 700 Hz     28     physiological
wrist_bvp       wrist BVP 64 Hz       28     physiological
wrist_eda       wrist EDA 4 Hz        28     physiological
wrist_temp      wrist TEMP 4 Hz       28     physiological
chest_acc       chest ACC 700 Hz x 3  84     behavioral
wrist_acc       wrist ACC 32 Hz x 3   84     behavioral
=============== ===================== ====== =============

``sensors``: ``all`` (default), ``chest``, ``wrist`` or a comma-separated list of modality names.

Tasks (``task``):

* ``3class`` (default): baseline / stress / amusement (dataset paper); meditation windows excluded.
* ``binary``: non-stress / stress, non-stress = baseline + amusement as in the dataset paper;
  meditation windows excluded.
* ``distribution``: conditions 1-4; the target is the PANAS the subject filled in after the
  condition block the window lies in, restricted to the 10 items of DMER's short PANAS in DMER's
  order (Inspired, Alert, Excited, Enthusiastic, Determined, Afraid, Upset, Nervous, Scared,
  Distressed) and normalised to sum 1. WESAD's 24 items contain all of them except Upset, whose
  slot takes **Annoyed** (``methods/helo.md`` §2.2; no other substitution). Ratings are >= 1, so no
  entry is 0. The two meditation blocks share label 4: each label-4 run goes to Medi 1 or Medi 2,
  whichever START/END midpoint is nearer to the run's midpoint after shifting the quest times by
  the subject's median offset between the quest midpoints and the label runs of Base, TSST and Fun
  (robust to a constant offset between the questionnaire clock and the pickle; the offset is in
  the notes). A subject then has only ~5 distinct targets, so this is close to condition
  recognition with soft targets.

Primary metric: ``mf1`` (macro F1, as the dataset paper's F1) for the class tasks, ``chebyshev`` for
``distribution``. Groups: the subject.

Protocols (``protocol``):

* ``loso`` (default): one fold per subject present (``S2`` .. ``S17``): test = that subject,
  validation = the next subject present (cyclically, as the synthetic presets), train = the rest.
* ``subject_dependent``: one fold ``all`` pooling every subject. Each contiguous condition run of
  every subject is cut in time at 60 % and 80 % of its length: windows lying entirely in the first
  60 % train, in the next 20 % validate, in the last 20 % test; windows across a cut are dropped
  (counted), so windows of different splits never overlap in time.

``normalize``: ``none``, ``global`` (default; per-feature mean/std of this fold's training windows)
or ``subject`` (each subject standardised with its own statistics, no labels), via
:mod:`datamodules.normalize`, fitted per fold in ``setup``.

Cache: each subject's pickle is converted once into windows and features (``.npy``) under
``$AFFECTBENCH_CACHE/wesad/<subject>-<file fingerprint>-w<window>-s<step>-v<loader version>/`` and
memory-mapped afterwards, so later runs never unpickle. The fingerprint is
:func:`~datamodules.io.file_fingerprint` (size, mtime, first and last MiB: cheap on 1-GB files);
the full SHA-256 of every pickle is computed while it is read for the conversion (no second
read), kept in the cache and used in :meth:`WESADDataModule.fingerprint` with the SHA-256 of the
questionnaires and the settings.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from . import normalize as nz
from .base import MERDataModule, TensorSampleDataset
from .io import DataError, NpyCache, file_fingerprint, missing_dataset, repair_nonfinite
from .registry import register_datamodule
from .spec import DatasetSpec, ModalitySpec, Protocol, UserInputError

NAME = "wesad"
LOADER_VERSION = 1  # part of every cache key: bump when the conversion changes
SOURCE = "the UCI ML Repository, https://archive.ics.uci.edu/dataset/465/wesad+wearable+stress+and+affect+detection"
PRESET = "synthetic-physio"
SUBJECTS = tuple(f"S{i}" for i in (*range(2, 12), *range(13, 18)))
MIN_SUBJECTS = 3
CHEST_RATE = 700
LENGTH_TOLERANCE_S = 1.0  # a wrist stream must cover the chest duration within this
GRID_S = 0.25  # window_s and step_s must be multiples of this (4 Hz streams)
LABEL_IDS = {0: "transient", 1: "baseline", 2: "stress", 3: "amusement", 4: "meditation",
             5: "ignore", 6: "ignore", 7: "ignore"}
CONDITION_LABELS = (1, 2, 3, 4)
CHEST_KEYS = {"ACC": 3, "ECG": 1, "EDA": 1, "EMG": 1, "Resp": 1, "Temp": 1}
WRIST_KEYS = {"ACC": (32, 3), "BVP": (64, 1), "EDA": (4, 1), "TEMP": (4, 1)}
TASKS = ("3class", "binary", "distribution")
PROTOCOLS = ("loso", "subject_dependent")
SD_CUTS = (0.6, 0.8)  # subject_dependent: train | val | test cut points of each condition run
N_FEATURES = 28


@dataclass(frozen=True)
class Sensor:
    """One modality: a stream of the pickle and where its features go."""

    name: str
    device: str  # chest | wrist
    key: str  # key under signal.<device>
    rate: int
    channels: int
    group: str

    @property
    def field(self) -> str:
        return f"signal.{self.device}.{self.key}"

    @property
    def dim(self) -> int:
        return N_FEATURES * self.channels


SENSORS = (
    Sensor("chest_ecg", "chest", "ECG", CHEST_RATE, 1, "physiological"),
    Sensor("chest_eda", "chest", "EDA", CHEST_RATE, 1, "physiological"),
    Sensor("chest_emg", "chest", "EMG", CHEST_RATE, 1, "physiological"),
    Sensor("chest_resp", "chest", "Resp", CHEST_RATE, 1, "physiological"),
    Sensor("chest_temp", "chest", "Temp", CHEST_RATE, 1, "physiological"),
    Sensor("wrist_bvp", "wrist", "BVP", 64, 1, "physiological"),
    Sensor("wrist_eda", "wrist", "EDA", 4, 1, "physiological"),
    Sensor("wrist_temp", "wrist", "TEMP", 4, 1, "physiological"),
    Sensor("chest_acc", "chest", "ACC", CHEST_RATE, 3, "behavioral"),
    Sensor("wrist_acc", "wrist", "ACC", 32, 3, "behavioral"),
)
SENSOR_BY_NAME = {s.name: s for s in SENSORS}

# questionnaires (datasets.md §4.4)
PANAS_ITEMS = ("Active", "Distressed", "Interested", "Inspired", "Annoyed", "Strong", "Guilty", "Scared",
               "Hostile", "Excited", "Proud", "Irritable", "Enthusiastic", "Ashamed", "Alert", "Nervous",
               "Determined", "Attentive", "Jittery", "Afraid", "Stressed", "Frustrated", "Happy", "Sad")
PANAS_STRESS_ITEMS = PANAS_ITEMS[:23] + ("Angry", "Irritated") + PANAS_ITEMS[23:]
# DMER's short PANAS (datasets.md §5.4) in DMER's order; WESAD has "Annoyed" in Upset's slot
DMER_ITEMS = ("Inspired", "Alert", "Excited", "Enthusiastic", "Determined", "Afraid", "Upset", "Nervous",
              "Scared", "Distressed")
DISTRIBUTION_ITEMS = tuple("Annoyed" if i == "Upset" else i for i in DMER_ITEMS)
QUESTIONNAIRES = {"PANAS": (None, 1, 5), "STAI": (6, 1, 4), "DIM": (2, 1, 9), "SSSQ": (6, 1, 5)}  # items, lo, hi
# study conditions of # ORDER (key = lower case without spaces) -> (display name, pkl label id)
STUDY_CONDITIONS = {"base": ("Base", 1), "tsst": ("TSST", 2), "fun": ("Fun", 3), "medi1": ("Medi 1", 4),
                    "medi2": ("Medi 2", 4)}
TASK_CLASSES = {"3class": ("baseline", "stress", "amusement"), "binary": ("non-stress", "stress"),
                "distribution": DISTRIBUTION_ITEMS}
TASK_LABELS = {"3class": {1: 0, 2: 1, 3: 2}, "binary": {1: 0, 3: 0, 2: 1}}  # pkl label -> class index


# ----------------------------------------------------------------------------------------
# SX_quest.csv
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """One entry of ``# ORDER`` with its ``# START`` / ``# END`` times in seconds."""

    name: str  # as written, e.g. "Medi 1", "sRead"
    label: int | None  # pkl label id for a study condition (1-4), None for other tasks (reading)
    start_s: float
    end_s: float

    @property
    def mid_s(self) -> float:
        return (self.start_s + self.end_s) / 2


@dataclass(frozen=True)
class Quest:
    """A parsed ``S<k>_quest.csv``; questionnaire rows are keyed by study-condition name."""

    path: Path
    subject: str
    conditions: tuple[Condition, ...]  # ORDER order
    panas: dict[str, tuple[float, ...]]  # 24 items, 26 for TSST (PANAS_STRESS_ITEMS)
    stai: dict[str, tuple[float, ...]]
    dim: dict[str, tuple[float, ...]]
    sssq: tuple[float, ...] | None
    sha256: str

    @property
    def study(self) -> tuple[Condition, ...]:
        return tuple(c for c in self.conditions if c.label is not None)

    @property
    def order(self) -> str:
        return " > ".join(c.name for c in self.study)

    def distribution(self, condition: str) -> np.ndarray:
        """The 10 DMER-matching PANAS ratings after ``condition``, normalised to sum 1."""
        row = self.panas[condition]
        items = PANAS_STRESS_ITEMS if len(row) == len(PANAS_STRESS_ITEMS) else PANAS_ITEMS
        v = np.array([row[items.index(i)] for i in DISTRIBUTION_ITEMS], dtype=np.float64)
        return v / v.sum()


_TIME = re.compile(r"^(\d+)(?:\.(\d{1,2}))?$")


def parse_minsec(text: str, path: Path, where: str) -> float:
    """``minutes.seconds`` -> seconds: ``7.08`` = 428, ``50.3`` = 3030 (``50.30`` with the zero dropped)."""
    m = _TIME.match(text.strip())
    sec = 0 if m is None or m[2] is None else int(m[2].ljust(2, "0"))
    if m is None or sec >= 60:
        raise DataError(path, where, "a time as minutes.seconds (e.g. 7.08 = 7 min 8 s; seconds 00-59)", repr(text))
    return int(m[1]) * 60.0 + sec


def _condition_key(name: str) -> str:
    return re.sub(r"\s+", "", name).lower()


def parse_quest(path: str | Path, subject: str | None = None) -> Quest:
    """Read and validate one ``S<k>_quest.csv`` (module docstring); ``subject``: the expected ``# Subj``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "<file>", "the subject's questionnaire file S<k>_quest.csv (protocol order, START/END "
                        "times, PANAS/STAI/DIM/SSSQ)", "no such file")
    data = path.read_bytes()
    text = data.decode("utf-8-sig", errors="replace")
    rows: dict[str, list[tuple[int, list[str]]]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        fields = [f.strip() for f in line.split(";")]
        while fields and fields[-1] == "":
            fields.pop()
        if not fields or not fields[0].startswith("#"):
            continue  # blank separator rows (";;;;")
        tag = fields[0].lstrip("#").strip().upper()
        rows.setdefault(tag, []).append((n, fields[1:]))

    def single(tag: str) -> tuple[int, list[str]]:
        found = rows.get(tag.upper(), [])
        if len(found) != 1:
            raise DataError(path, f"# {tag}", f"exactly one '# {tag}' row", f"{len(found)} rows")
        n, values = found[0]
        if not values or any(v == "" for v in values):
            raise DataError(path, f"# {tag} (line {n})", "non-empty values after the tag", values)
        return n, values

    _, subj = single("Subj")
    if subject is not None and subj[0] != subject:
        raise DataError(path, "# Subj", f"{subject} (the subject of the folder)", repr(subj[0]))
    n_order, order = single("ORDER")
    times = {}
    for tag in ("START", "END"):
        n, values = single(tag)
        if len(values) != len(order):
            raise DataError(path, f"# {tag} (line {n})", f"{len(order)} times, one per '# ORDER' entry "
                            f"({', '.join(order)})", f"{len(values)}")
        times[tag] = [parse_minsec(v, path, f"# {tag} (line {n}, {name})") for v, name in zip(values, order)]
    conditions = []
    for name, a, b in zip(order, times["START"], times["END"]):
        if b <= a:
            raise DataError(path, f"# START/# END ({name})", "START before END", f"{a:g} s .. {b:g} s")
        study = STUDY_CONDITIONS.get(_condition_key(name))
        conditions.append(Condition(study[0] if study else name, study[1] if study else None, a, b))
    names = [c.name for c in conditions if c.label is not None]
    missing = [v[0] for v in STUDY_CONDITIONS.values() if v[0] not in names]
    if missing or len(names) != len(set(names)):
        raise DataError(path, f"# ORDER (line {n_order})", "each study condition once: Base, TSST, Fun, Medi 1, "
                        "Medi 2 (plus any reading tasks)", ", ".join(order))

    def questionnaire(tag: str) -> list[tuple[float, ...]]:
        n_items, lo, hi = QUESTIONNAIRES[tag]
        found = rows.get(tag, [])
        want = 1 if tag == "SSSQ" else len(names)
        if len(found) != want:
            what = "one row (after the stress condition)" if tag == "SSSQ" else \
                f"{want} rows, one per study condition in '# ORDER' order ({', '.join(names)})"
            raise DataError(path, f"# {tag}", what, f"{len(found)} rows")
        out = []
        for k, (n, values) in enumerate(found):
            cond = "TSST" if tag == "SSSQ" else names[k]
            where = f"# {tag} row {k + 1} (line {n}, after {cond})"
            expect = n_items if n_items is not None else \
                (len(PANAS_STRESS_ITEMS) if cond == "TSST" else len(PANAS_ITEMS))
            if len(values) != expect:
                extra = " (the stress row adds Angry and Irritated)" if tag == "PANAS" else ""
                raise DataError(path, where, f"{expect} ratings{extra}", f"{len(values)}")
            try:
                vals = tuple(float(v) for v in values)
            except ValueError:
                raise DataError(path, where, f"ratings {lo}-{hi}", values) from None
            bad = [v for v in vals if not lo <= v <= hi]
            if bad:
                raise DataError(path, where, f"ratings {lo}-{hi}", f"{bad[0]:g}")
            out.append(vals)
        return out

    panas, stai, dim = (dict(zip(names, questionnaire(t))) for t in ("PANAS", "STAI", "DIM"))
    sssq = questionnaire("SSSQ")[0]
    return Quest(path=path, subject=subj[0], conditions=tuple(conditions), panas=panas, stai=stai, dim=dim,
                 sssq=sssq, sha256=hashlib.sha256(data).hexdigest())


def attribute_runs(runs: np.ndarray, quest: Quest) -> tuple[np.ndarray, float]:
    """The study condition (index into ``quest.conditions``) of every run ``[start, end, label]``
    (chest samples) with a label 1-4, else -1; and the quest-clock offset used for label 4 (s).

    Labels 1-3 have one condition each. A label-4 run goes to Medi 1 or Medi 2, whichever midpoint
    (shifted by the offset) is nearer its own; the offset is the median over Base, TSST and Fun of
    (midpoint of that label's runs) - (midpoint of its START/END)."""
    idx = {c.label: i for i, c in enumerate(quest.conditions) if c.label in (1, 2, 3)}
    medi = [i for i, c in enumerate(quest.conditions) if c.label == 4]
    offsets = []
    for lab, i in idx.items():
        sel = runs[runs[:, 2] == lab]
        if len(sel):
            offsets.append((sel[:, 0].min() + sel[:, 1].max()) / 2 / CHEST_RATE - quest.conditions[i].mid_s)
    offset = float(np.median(offsets)) if offsets else 0.0
    out = np.full(len(runs), -1, dtype=np.int64)
    for r, (a, b, lab) in enumerate(runs.tolist()):
        if lab in idx:
            out[r] = idx[lab]
        elif lab == 4:
            mid = (a + b) / 2 / CHEST_RATE - offset
            out[r] = min(medi, key=lambda i: abs(quest.conditions[i].mid_s - mid))
    return out, offset


# ----------------------------------------------------------------------------------------
# SX.pkl
# ----------------------------------------------------------------------------------------
class _HashingReader:
    """A binary file wrapper that feeds every byte read to a SHA-256 (one pass: unpickle + checksum)."""

    def __init__(self, f: Any) -> None:
        self.f, self.h = f, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        b = self.f.read(n)
        self.h.update(b)
        return b

    def readline(self) -> bytes:
        b = self.f.readline()
        self.h.update(b)
        return b

    def readinto(self, buf: Any) -> int:
        n = self.f.readinto(buf)
        self.h.update(memoryview(buf)[:n])
        return n

    def finish(self) -> str:
        while block := self.f.read(1 << 22):  # anything after the pickle's STOP
            self.h.update(block)
        return self.h.hexdigest()


def _load_pickle(path: Path) -> tuple[Any, str]:
    """Unpickle ``path`` (Python-2 pickle, ``encoding='latin1'``); returns (object, full SHA-256)."""
    try:
        with open(path, "rb") as f:
            reader = _HashingReader(f)
            obj = pickle.load(reader, encoding="latin1")  # noqa: S301 (the official release)
            return obj, reader.finish()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError,
            KeyError) as e:
        raise DataError(path, "<file>", "a Python-2 pickle of the WESAD subject dict (pickle.load(f, "
                        "encoding='latin1'))", f"{type(e).__name__}: {e}") from None


def _node(d: Any, keys: tuple[str, ...], path: Path) -> Any:
    node = d
    for i, k in enumerate(keys):
        if not isinstance(node, dict):
            raise DataError(path, ".".join(keys[:i]) or "<root>", "a dict", type(node).__name__)
        if k not in node:
            have = ", ".join(sorted(map(str, node))) or "none"
            where = ".".join(keys[:i]) or "the top-level dict"
            raise DataError(path, ".".join(keys[: i + 1]), f"a key {k!r} in {where} (keys there: {have})", "missing")
        node = node[k]
    return node


def _stream(d: Any, keys: tuple[str, ...], channels: int, path: Path) -> np.ndarray:
    field = ".".join(keys)
    value = _node(d, keys, path)
    try:
        arr = np.asarray(value)
    except Exception as e:  # noqa: BLE001
        raise DataError(path, field, "a numeric array", f"{type(e).__name__}: {e}") from None
    if not (np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.complexfloating)):
        raise DataError(path, field, "a real numeric array", f"dtype {arr.dtype}")
    if arr.ndim == 1 and channels == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != channels or arr.shape[0] == 0:
        raise DataError(path, field, f"shape (N, {channels}) with N > 0", tuple(arr.shape))
    return arr


@dataclass
class SubjectData:
    """The validated content of one ``S<k>.pkl``: float64 streams ``(n, channels)`` and the labels."""

    chest: dict[str, np.ndarray]
    wrist: dict[str, np.ndarray]
    label: np.ndarray  # (N,) int8
    dtypes: dict[str, str]
    repaired: dict[str, dict[str, int]]
    sha256: str

    @property
    def n(self) -> int:
        return int(self.label.shape[0])


def read_subject(path: str | Path, subject: str) -> SubjectData:
    """Load and validate ``S<k>.pkl`` (module docstring)."""
    path = Path(path)
    obj, sha = _load_pickle(path)
    if not isinstance(obj, dict):
        raise DataError(path, "<root>", "a dict with keys subject, signal, label", type(obj).__name__)
    name = _node(obj, ("subject",), path)
    name = name.decode("latin1") if isinstance(name, bytes) else str(name)
    if name != subject:
        raise DataError(path, "subject", f"{subject!r} (the folder name)", repr(name))
    lab = _stream(obj, ("label",), 1, path)[:, 0]
    if np.issubdtype(lab.dtype, np.floating):
        bad = ~np.isfinite(lab) | (lab != np.round(lab))
        if bad.any():
            raise DataError(path, "label", "integer condition ids 0-7", f"{int(bad.sum())} non-integer values, "
                            f"e.g. {lab[bad][0]!r}")
    if lab.min() < 0 or lab.max() > 7:
        out = (lab < 0) | (lab > 7)
        vals = sorted(set(np.unique(lab[out]).tolist()))
        raise DataError(path, "label", "condition ids 0-7 (0 transient, 1 baseline, 2 stress, 3 amusement, "
                        "4 meditation, 5/6/7 ignored)", f"{int(out.sum())} samples with {vals[:5]}")
    n = lab.shape[0]
    dtypes = {"label": str(lab.dtype)}
    repaired: dict[str, dict[str, int]] = {}
    streams: dict[str, dict[str, np.ndarray]] = {"chest": {}, "wrist": {}}
    for key, ch in CHEST_KEYS.items():
        arr = _stream(obj, ("signal", "chest", key), ch, path)
        if arr.shape[0] != n:
            raise DataError(path, f"signal.chest.{key}", f"{n} samples (as label; both at {CHEST_RATE} Hz)",
                            f"{arr.shape[0]} samples")
        streams["chest"][key] = arr
    duration = n / CHEST_RATE
    for key, (rate, ch) in WRIST_KEYS.items():
        arr = _stream(obj, ("signal", "wrist", key), ch, path)
        if abs(arr.shape[0] / rate - duration) > LENGTH_TOLERANCE_S:
            raise DataError(path, f"signal.wrist.{key}", f"about {round(duration * rate)} samples ({duration:.1f} s "
                            f"at {rate} Hz, the chest duration, +-{LENGTH_TOLERANCE_S:g} s)",
                            f"{arr.shape[0]} samples ({arr.shape[0] / rate:.1f} s at {rate} Hz)")
        streams["wrist"][key] = arr
    for dev, d in streams.items():
        for key, arr in d.items():
            dtypes[f"{dev}.{key}"] = str(arr.dtype)
            arr = arr.astype(np.float64, copy=False)  # no second copy of a (1-GB) float64 release
            if not arr.flags.writeable:
                arr = arr.copy()
            counts = repair_nonfinite(arr)
            if any(counts.values()):
                repaired[f"signal.{dev}.{key}"] = counts
            d[key] = arr
    return SubjectData(chest=streams["chest"], wrist=streams["wrist"], label=lab.astype(np.int8), dtypes=dtypes,
                       repaired=repaired, sha256=sha)


# ----------------------------------------------------------------------------------------
# windows and features
# ----------------------------------------------------------------------------------------
def _stats7(x: np.ndarray) -> list[np.ndarray]:
    lo, hi = x.min(axis=1), x.max(axis=1)
    return [np.median(x, axis=1), x.mean(axis=1), x.std(axis=1), lo, hi,
            (x == lo[:, None]).mean(axis=1), (x == hi[:, None]).mean(axis=1)]


def band_psd(x: np.ndarray, rate: float, fmax: float = 2.0) -> np.ndarray:
    """Mean one-sided Welch PSD over 0..``fmax`` Hz of each row of ``x`` with a single Hann segment
    spanning the row: equal to ``scipy.signal.welch(x, rate, nperseg=L)`` averaged over the bins
    ``f <= fmax`` (tested), but computes only those bins (a small DFT)."""
    from scipy.signal import get_window

    n = x.shape[1]
    k = np.arange(min(int(np.floor(fmax * n / rate + 1e-9)), n // 2) + 1)
    win = get_window("hann", n)
    xd = (x - x.mean(axis=1, keepdims=True)) * win
    phase = 2 * np.pi * np.outer(np.arange(n), k) / n
    power = (xd @ np.cos(phase)) ** 2 + (xd @ np.sin(phase)) ** 2
    power /= rate * float((win ** 2).sum())
    double = (k > 0) & ~((n % 2 == 0) & (k == n // 2))  # one-sided: all but DC and Nyquist twice
    power[:, double] *= 2
    return power.mean(axis=1)


def dmer_features(windows: np.ndarray, rate: float) -> np.ndarray:
    """The DMER GSR recipe (module docstring) on ``(n, L)`` windows sampled at ``rate``: ``(n, 28)`` float64."""
    x = np.asarray(windows, dtype=np.float64)
    n = x.shape[1]
    d1 = np.diff(x, axis=1)
    d2 = np.diff(d1, axis=1)
    half = np.abs(np.fft.rfft(x, axis=1))
    mag = np.concatenate([half, half[:, 1:(n + 1) // 2][:, ::-1]], axis=1)  # |fft(x)|, two-sided (symmetric)
    lo, hi = mag.min(axis=1), mag.max(axis=1)
    fft_stats = [np.median(mag, axis=1), mag.mean(axis=1), mag.std(axis=1), lo, hi, hi - lo]
    return np.stack([*_stats7(x), *_stats7(d1), *_stats7(d2), *fft_stats, band_psd(x, rate)], axis=1)


def label_runs(label: np.ndarray) -> np.ndarray:
    """Contiguous runs of one label value: ``(n_runs, 3)`` int64 rows ``[start, end, label]`` (end exclusive)."""
    change = np.flatnonzero(np.diff(label)) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, label.shape[0]]
    return np.stack([starts, ends, label[starts].astype(np.int64)], axis=1).astype(np.int64)


def _samples(seconds: float, rate: int) -> int:
    return int(round(seconds * rate))


def convert_subject(path: Path, subject: str, window_s: float, step_s: float,
                    chunk_values: int = 1 << 21) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Windows and features of one subject (module docstring): arrays ``grid`` (window index on the
    step grid), ``start`` (chest sample), ``label``, ``run`` (row of ``runs``), ``runs`` and
    ``x.<modality>`` ``(n, dim)`` float32; plus meta (counts, dtypes, lengths, checksum)."""
    t0 = time.perf_counter()
    sd = read_subject(path, subject)
    n = sd.n
    w_c, s_c = _samples(window_s, CHEST_RATE), _samples(step_s, CHEST_RATE)
    runs = label_runs(sd.label)
    grid = np.arange(0, max(0, (n - w_c) // s_c + 1), dtype=np.int64)
    start = grid * s_c
    change = runs[1:, 0]
    rid = np.searchsorted(change, start, side="right")
    single = rid == np.searchsorted(change, start + w_c - 1, side="right")
    lab = sd.label[start].astype(np.int64)
    cond = single & np.isin(lab, CONDITION_LABELS)
    fits = np.ones_like(cond)
    for key, arr in sd.wrist.items():
        rate = WRIST_KEYS[key][0]
        fits &= grid * _samples(step_s, rate) + _samples(window_s, rate) <= arr.shape[0]
    keep = cond & fits
    excluded = {"straddling": int((~single).sum()), "beyond_wrist_end": int((cond & ~fits).sum())}
    for v in (0, 5, 6, 7):
        excluded[f"label_{v}"] = int((single & (lab == v)).sum())
    grid, start, rid, lab = grid[keep], start[keep], rid[keep], lab[keep]
    arrays: dict[str, np.ndarray] = {"grid": grid, "start": start, "label": lab.astype(np.int8),
                                     "run": rid.astype(np.int64), "runs": runs}
    for s in SENSORS:
        sig = (sd.chest if s.device == "chest" else sd.wrist)[s.key]
        w, st = _samples(window_s, s.rate), _samples(step_s, s.rate)
        out = np.empty((len(grid), s.dim), dtype=np.float32)
        per = max(1, chunk_values // w)
        offs = np.arange(w)
        for a in range(0, len(grid), per):
            idx = grid[a:a + per, None] * st + offs[None, :]
            for c in range(s.channels):
                out[a:a + per, c * N_FEATURES:(c + 1) * N_FEATURES] = dmer_features(sig[idx, c], s.rate)
        arrays[f"x.{s.name}"] = out
    windows = Counter(lab.tolist())
    meta = {"subject": subject, "source": str(path), "size": path.stat().st_size, "sha256": sd.sha256,
            "n_chest": n, "duration_s": n / CHEST_RATE, "window_s": window_s, "step_s": step_s,
            "lengths": {f"{dev}.{k}": int(a.shape[0]) for dev, d in (("chest", sd.chest), ("wrist", sd.wrist))
                        for k, a in d.items()},
            "dtypes": sd.dtypes, "repaired": sd.repaired, "excluded": excluded,
            "windows": {str(k): int(windows.get(k, 0)) for k in CONDITION_LABELS},
            "label_seconds": {str(k): float((sd.label == k).sum() / CHEST_RATE) for k in range(8)},
            "version": LOADER_VERSION, "convert_s": round(time.perf_counter() - t0, 2)}
    return arrays, meta


# ----------------------------------------------------------------------------------------
# the datamodule
# ----------------------------------------------------------------------------------------
def _subject_key(name: str) -> int:
    return int(name[1:])


def find_root(data_dir: str | Path | None) -> tuple[Path, list[str]]:
    """The WESAD folder (``data_dir`` or ``data_dir/WESAD``) and the subjects with an ``S<k>/S<k>.pkl``."""
    what = "the WESAD release (S2/S2.pkl ... S17/S17.pkl with S<k>_quest.csv)"
    if not data_dir or not Path(data_dir).is_dir():
        raise missing_dataset(NAME, data_dir, what, SOURCE, PRESET, same_shapes=False)
    root = Path(data_dir)
    for cand in (root, root / "WESAD"):
        present = [s for s in SUBJECTS if (cand / s / f"{s}.pkl").is_file()]
        if present:
            return cand, present
    raise missing_dataset(NAME, f"{root} and {root / 'WESAD'}: no S<k>/S<k>.pkl", what, SOURCE, PRESET,
                          same_shapes=False)


def _parse_sensors(sensors: str) -> tuple[Sensor, ...]:
    text = str(sensors).strip().lower()
    if text == "all":
        return SENSORS
    if text in ("chest", "wrist"):
        return tuple(s for s in SENSORS if s.device == text)
    names = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in names if p not in SENSOR_BY_NAME]
    if bad or not names:
        raise UserInputError(f"{NAME}: sensors must be all, chest, wrist or a comma-separated list of "
                             f"{', '.join(SENSOR_BY_NAME)}; got {sensors!r}")
    return tuple(s for s in SENSORS if s.name in names)  # spec order


def _multiple(value: float, what: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0 or abs(v / GRID_S - round(v / GRID_S)) > 1e-9:
        raise UserInputError(f"{NAME}: {what} must be a positive multiple of {GRID_S} s (whole samples at 4 Hz), "
                             f"got {value!r}")
    return round(v / GRID_S) * GRID_S


@register_datamodule("wesad")
class WESADDataModule(MERDataModule):
    """WESAD stress/affect from the official release, hand-crafted window features (see datamodules/wesad.py)."""

    source: ClassVar[str] = SOURCE

    def __init__(self, data_dir: str | None = None, batch_size: int = 32, num_workers: int = 0,
                 fold: str | None = None, seed: int = 0, sampler: str = "random", task: str = "3class",
                 protocol: str = "loso", window_s: float = 5.0, step_s: float = 1.0, normalize: str = "global",
                 sensors: str = "all") -> None:
        super().__init__(data_dir=data_dir, batch_size=batch_size, num_workers=num_workers, fold=fold, seed=seed,
                         sampler=sampler)
        if task not in TASKS:
            raise UserInputError(f"{NAME}: task must be one of {', '.join(TASKS)}, got {task!r}")
        if protocol not in PROTOCOLS:
            raise UserInputError(f"{NAME}: protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if normalize not in nz.MODES:
            raise UserInputError(f"{NAME}: normalize must be one of {', '.join(nz.MODES)}, got {normalize!r}")
        self.window_s, self.step_s = _multiple(window_s, "window_s"), _multiple(step_s, "step_s")
        if self.window_s < 1.0:
            raise UserInputError(f"{NAME}: window_s must be >= 1 s (4 samples of the 4-Hz streams), got {window_s!r}")
        self.task, self.protocol_name, self.normalize = task, protocol, normalize
        self.sensors = _parse_sensors(sensors)
        self.root, self.subjects = find_root(data_dir)
        self.missing = [s for s in SUBJECTS if s not in self.subjects]
        if len(self.subjects) < MIN_SUBJECTS:
            raise DataError(self.root, "subjects", f"at least {MIN_SUBJECTS} subjects with S<k>/S<k>.pkl (WESAD has "
                            "15: S2-S11, S13-S17)", ", ".join(self.subjects))
        self.quests = {s: parse_quest(self.root / s / f"{s}_quest.csv", s) for s in self.subjects}
        self._notes: list[str] = []
        self._cache_paths: dict[str, Path] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.arrays: dict[str, dict[str, np.ndarray]] = {}
        for s in self.subjects:
            self._load_subject(s)
        self._select()
        self.spec = self._build_spec()
        self._x_all: dict[str, torch.Tensor] | None = None

    @classmethod
    def is_available(cls, data_dir: str | None = None) -> bool:
        try:
            return len(find_root(data_dir)[1]) >= MIN_SUBJECTS
        except UserInputError:
            return False

    # -- conversion and cache -------------------------------------------------------------
    def _load_subject(self, s: str) -> None:
        path = self.root / s / f"{s}.pkl"
        key = f"{s}-{file_fingerprint(path)}-w{self.window_s:g}-s{self.step_s:g}-v{LOADER_VERSION}"
        cache = NpyCache(NAME, key)
        if not cache.exists():
            arrays, meta = convert_subject(path, s, self.window_s, self.step_s)
            try:
                cache.write(arrays, meta)
            except OSError as e:  # e.g. a read-only cache root: keep the arrays in memory
                self._notes.append(f"{s}: cache not written ({type(e).__name__}: {e}); kept in memory")
                self.arrays[s], self.meta[s] = arrays, meta
                return
        self._cache_paths[s] = cache.path
        meta = cache.meta()
        self.meta[s] = meta
        self.arrays[s] = {a: cache.load(a, mmap=a.startswith("x.")) for a in meta["arrays"]}


    # -- window selection and targets -----------------------------------------------------
    def _select(self) -> None:
        """The task's windows (subjects in order, each in time order): ``self.table`` (numpy
        columns), the targets ``self.y`` and, per subject, the quest-clock offset."""
        allowed = (1, 2, 3) if self.task in ("3class", "binary") else CONDITION_LABELS
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("subject", "local", "start", "label", "run", "cond")}
        targets: list[np.ndarray] = []
        self.offsets: dict[str, float] = {}
        self.block_windows: dict[str, Counter] = {}
        for s in self.subjects:
            a, q = self.arrays[s], self.quests[s]
            runs = np.asarray(a["runs"])
            cond_of_run, self.offsets[s] = attribute_runs(runs, q)
            lab = np.asarray(a["label"]).astype(np.int64)
            run = np.asarray(a["run"])
            cond = cond_of_run[run]
            self.block_windows[s] = Counter(q.conditions[c].name for c in cond.tolist())
            local = np.flatnonzero(np.isin(lab, allowed))
            cols["subject"].append(np.full(len(local), s, dtype=object))
            cols["local"].append(local)
            cols["start"].append(np.asarray(a["start"])[local])
            cols["label"].append(lab[local])
            cols["run"].append(run[local])
            cols["cond"].append(np.array([q.conditions[c].name for c in cond[local].tolist()], dtype=object))
            if self.task == "distribution":
                dist = {c.name: q.distribution(c.name) for c in q.study}
                targets.append(np.stack([dist[c] for c in cols["cond"][-1]]) if len(local) else
                               np.zeros((0, len(DISTRIBUTION_ITEMS))))
            else:
                targets.append(np.array([TASK_LABELS[self.task][v] for v in lab[local].tolist()], dtype=np.int64))
        self.table = {k: np.concatenate(v) for k, v in cols.items()}
        if not len(self.table["local"]):
            raise DataError(self.root, "label", f"windows of conditions {allowed} in some subject", "none")
        if self.task == "distribution":
            self.y = torch.from_numpy(np.concatenate(targets)).float()
        else:
            self.y = torch.from_numpy(np.concatenate(targets))
        self.ids = [f"{s}_t{st / CHEST_RATE:.2f}" for s, st in zip(self.table["subject"], self.table["start"])]

    # -- spec and splits ------------------------------------------------------------------
    def _build_spec(self) -> DatasetSpec:
        mods = tuple(ModalitySpec(s.name, s.dim, None, s.group) for s in self.sensors)
        if self.protocol_name == "loso":
            protocol = Protocol("leave_one_out", tuple(self.subjects),
                                "leave one subject out: test = the subject; validation = the next subject present "
                                "(cyclically); train = the other subjects")
        else:
            protocol = Protocol("holdout", ("all",),
                                "subject-dependent, all subjects pooled: every condition run cut in time at 60% "
                                "and 80% -> train / validation / test; windows across a cut dropped (no overlap)")
        classification = self.task != "distribution"
        extra = (("task", self.task), ("protocol", self.protocol_name),
                 ("windows", f"{self.window_s:g} s, step {self.step_s:g} s, inside one condition run"),
                 ("representation", "DMER GSR recipe, 28 features per channel at native rates"),
                 ("sensors", ", ".join(s.name for s in self.sensors)), ("normalize", self.normalize),
                 ("groups", "subject"))
        if not classification:
            extra += (("target", "PANAS after the condition block, 10 DMER items (Annoyed for Upset), sum 1"),)
        return DatasetSpec(name=NAME, task="classification" if classification else "distribution",
                           class_names=TASK_CLASSES[self.task], modalities=mods, protocol=protocol,
                           primary_metric="mf1" if classification else "chebyshev",
                           primary_direction="max" if classification else "min", extra=extra)

    def validation_subject(self, fold: str) -> str:
        """LOSO: the subject after ``fold`` among those present, cyclically."""
        i = self.subjects.index(fold)
        return self.subjects[(i + 1) % len(self.subjects)]

    def _sd_parts(self) -> np.ndarray:
        """subject_dependent: 0 train, 1 val, 2 test, -1 across a cut (dropped), per row."""
        part = np.full(len(self.table["local"]), -1, dtype=np.int64)
        w = _samples(self.window_s, CHEST_RATE)
        for s in self.subjects:
            rows = np.flatnonzero(self.table["subject"] == s)
            runs = np.asarray(self.arrays[s]["runs"])
            a, b = runs[self.table["run"][rows], 0], runs[self.table["run"][rows], 1]
            c1, c2 = a + SD_CUTS[0] * (b - a), a + SD_CUTS[1] * (b - a)
            st = self.table["start"][rows]
            end = st + w
            part[rows] = np.select([end <= c1, (st >= c1) & (end <= c2), st >= c2], [0, 1, 2], default=-1)
        return part

    def split_of(self, fold: str | None = None) -> dict[str, np.ndarray]:
        """Row indices (into ``self.table``) of train / val / test for a fold."""
        fold = self.resolve_fold() if fold is None else fold
        if fold not in self.spec.protocol.folds:
            raise UserInputError(f"{NAME}: unknown fold {fold!r}; folds are {', '.join(self.spec.protocol.folds)}")
        subj = self.table["subject"]
        if self.protocol_name == "loso":
            val_s = self.validation_subject(fold)
            masks = {"train": (subj != fold) & (subj != val_s), "val": subj == val_s, "test": subj == fold}
            what = {"train": "the other subjects", "val": f"subject {val_s}", "test": f"subject {fold}"}
        else:
            part = self._sd_parts()
            masks = {"train": part == 0, "val": part == 1, "test": part == 2}
            what = {k: f"the {k} part of the condition runs" for k in masks}
        out = {k: np.flatnonzero(m) for k, m in masks.items()}
        for split, idx in out.items():
            if not len(idx):
                raise DataError(self.root, f"fold {fold} ({split})", f"windows of task {self.task} in {what[split]}",
                                "none")
        return out

    # -- data -----------------------------------------------------------------------------
    def _features(self) -> dict[str, torch.Tensor]:
        """Every selected row's features per modality, (N, dim) float32, in memory."""
        if self._x_all is None:
            x = {}
            for m in self.sensors:
                parts = [np.asarray(self.arrays[s][f"x.{m.name}"][self.table["local"][self.table["subject"] == s]])
                         for s in self.subjects]
                x[m.name] = torch.from_numpy(np.concatenate(parts).astype(np.float32, copy=False))
            self._x_all = x
        return self._x_all

    def setup(self, stage: str | None = None) -> None:
        parts = self.split_of()
        x = self._features()
        groups = {k: self.table["subject"][idx].tolist() for k, idx in parts.items()}
        split_x = {k: {m: t[torch.from_numpy(idx)] for m, t in x.items()} for k, idx in parts.items()}
        train, (val, test) = nz.apply(self.normalize, split_x["train"], [split_x["val"], split_x["test"]],
                                      groups=(groups["train"], [groups["val"], groups["test"]]))
        label = self.y if self.task != "distribution" else self.spec.discretize(self.y)
        sets = []
        for k, xs in (("train", train), ("val", val), ("test", test)):
            idx = torch.from_numpy(parts[k])
            sets.append(TensorSampleDataset(x=xs, lengths={}, y=self.y[idx], label=label[idx],
                                            ids=[self.ids[i] for i in parts[k].tolist()], groups=groups[k]))
        self.train_set, self.val_set, self.test_set = sets

    # -- what records and `bench info` show -----------------------------------------------
    def fingerprint(self) -> str:
        payload = {"version": LOADER_VERSION, "pkl_sha256": {s: self.meta[s]["sha256"] for s in self.subjects},
                   "quest_sha256": {s: q.sha256 for s, q in self.quests.items()}, "task": self.task,
                   "window_s": self.window_s, "step_s": self.step_s, "sensors": [m.name for m in self.sensors],
                   "normalize": self.normalize, "protocol": self.protocol_name}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def notes(self) -> list[str]:
        names = self.spec.class_names
        out = [f"release {self.root}: {len(self.subjects)} subjects ({', '.join(self.subjects)}); missing: "
               f"{', '.join(self.missing) if self.missing else 'none'} (WESAD has 15: S2-S11, S13-S17)"]
        orders: dict[str, list[str]] = {}
        for s in self.subjects:
            orders.setdefault(self.quests[s].order, []).append(s)
        out.append("condition orders (# ORDER, study conditions): " +
                   "; ".join(f"{o} ({', '.join(v)})" for o, v in orders.items()))
        excl = Counter()
        for s in self.subjects:
            excl.update(self.meta[s]["excluded"])
        out.append(f"windows: {self.window_s:g} s every {self.step_s:g} s on a grid from each recording's start, kept "
                   f"only inside one run of one condition label 1-4; never formed: {excl['straddling']} straddling a "
                   f"label change, {excl['label_0']} in label 0 (transient), "
                   f"{excl['label_5'] + excl['label_6'] + excl['label_7']} in labels 5/6/7 (ignored), "
                   f"{excl['beyond_wrist_end']} past the end of a wrist stream")
        medi = int(sum(self.meta[s]["windows"]["4"] for s in self.subjects))
        if self.task == "3class":
            out.append(f"task 3class: baseline / stress / amusement; {medi} meditation windows excluded")
        elif self.task == "binary":
            out.append(f"task binary: non-stress (baseline + amusement, as the dataset paper) / stress; {medi} "
                       "meditation windows excluded")
        else:
            off = ", ".join(f"{s} {self.offsets[s]:+.0f}s" for s in self.subjects)
            out.append("task distribution: target = the subject's PANAS after the condition block, items "
                       f"{', '.join(DISTRIBUTION_ITEMS)} (DMER's short PANAS; WESAD has Annoyed in Upset's slot), "
                       "normalised to sum 1; label-4 runs assigned to Medi 1 / Medi 2 by the nearest START/END "
                       f"midpoint after the quest-clock offset (label runs minus quest times: {off}); about 5 "
                       "distinct targets per subject")
        lab = self.spec.discretize(self.y) if self.task == "distribution" else self.y
        labels = lab.tolist()
        subj = self.table["subject"]
        for s in self.subjects:
            m = self.meta[s]
            c = Counter(lab for lab, g in zip(labels, subj) if g == s)
            view = "argmax " if self.task == "distribution" else ""
            blocks = ", ".join(f"{k} {v}" for k, v in sorted(self.block_windows[s].items()))
            out.append(f"{s} ({m['duration_s'] / 60:.1f} min; order {self.quests[s].order}): {int(sum(c.values()))} "
                       f"windows, {view}" + ", ".join(f"{names[k]} {c.get(k, 0)}" for k in range(len(names)))
                       + f"; all condition blocks: {blocks}")
        fixed = [f"{s} {f}: NaN {v['nan']}, +inf {v['posinf']}, -inf {v['neginf']}"
                 for s in self.subjects for f, v in self.meta[s]["repaired"].items()]
        out.append("non-finite signal values set to 0: " + ("; ".join(fixed) if fixed else "none found"))
        dtypes: dict[str, dict[str, list[str]]] = {}
        for s in self.subjects:
            for k, v in self.meta[s]["dtypes"].items():
                dtypes.setdefault(k, {}).setdefault(v, []).append(s)
        out.append("dtypes as stored (signals cast to float64): " + "; ".join(
            f"{k} " + ", ".join(v if len(d) == 1 else f"{v} ({', '.join(ss)})" for v, ss in d.items())
            for k, d in dtypes.items()))
        out.append(f"features: DMER GSR recipe per channel (7 statistics of signal, 1st and 2nd difference; 6 of "
                   f"|FFT|; mean Welch PSD 0-2 Hz, one Hann segment), 28 per channel, at native rates (chest "
                   f"{CHEST_RATE} Hz, wrist ACC 32, BVP 64, EDA/TEMP 4 Hz), no resampling; sensors "
                   f"{', '.join(m.name for m in self.sensors)}")
        norm = {"none": "none (features as computed)",
                "global": "global (per-feature mean/std of this fold's training windows only)",
                "subject": "subject (each subject standardised with its own features, no labels)"}[self.normalize]
        out.append(f"normalize: {norm}")
        if self.train_set is not None:
            fold = self.resolve_fold()
            tr = sorted(set(self.train_set.groups), key=_subject_key)
            if self.protocol_name == "loso":
                out.append(f"fold {fold}: train {len(self.train_set)} ({len(tr)} subjects), val {len(self.val_set)} "
                           f"(subject {self.validation_subject(fold)}), test {len(self.test_set)} (subject {fold})")
            else:
                gap = int((self._sd_parts() == -1).sum())
                out.append(f"fold all: train {len(self.train_set)}, val {len(self.val_set)}, test "
                           f"{len(self.test_set)} (first 60% / next 20% / last 20% of every condition run); {gap} "
                           "windows across a cut dropped")
        size = sum(self.meta[s]["size"] for s in self.subjects)
        out.append(f"files: {len(self.subjects)} pickles, {size / 2**30:.2f} GiB; size and sha256 (computed once "
                   "while converting; the cache is keyed by size, mtime, first and last MiB): " +
                   ", ".join(f"{s}.pkl {self.meta[s]['size'] / 2**20:.1f} MiB {self.meta[s]['sha256'][:16]}"
                             for s in self.subjects))
        out.append("questionnaires sha256: " + ", ".join(f"{s} {self.quests[s].sha256[:16]}" for s in self.subjects))
        out += self._notes
        if self._cache_paths:
            parents = sorted({str(p.parent) for p in self._cache_paths.values()})
            out.append(f"cache {', '.join(parents)} ({len(self._cache_paths)} subject folders)")
        return out
