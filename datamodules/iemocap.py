"""IEMOCAP from the raw release (``IEMOCAP_full_release/``): parser, datamodule and Foal-Net lists.

Files read (``datasets.md`` §2.2)::

    <release>/Session{1..5}/dialog/EmoEvaluation/<dialog>.txt       annotations (one summary line per utterance)
    <release>/Session{1..5}/dialog/transcriptions/<dialog>.txt      "<turn> [<start>-<end>]: <text>"
    <release>/Session{1..5}/sentences/wav/<dialog>/<turn>.wav       16 kHz utterance audio (audio_input=waveform)
    <features root>/<feature name>/<turn>.npy                       (T, D) or (D,) per utterance (bench extract)

``<release>`` is ``--data-dir`` or ``--data-dir/IEMOCAP_full_release`` (:func:`find_release`).

Parser (:func:`parse_release`): in each ``EmoEvaluation/*.txt`` (not its sub-folders ``Attribute/``,
``Categorical/``, ``Self-evaluation/``) only the summary lines
``[<start> - <end>]<TAB><turn><TAB><code><TAB>[<V>, <A>, <D>]`` are read; headers (``% ...``), blank
lines and evaluator lines (``C-E2:``, ``A-E3:``, ...) are skipped. A line that starts like a summary
line (``[`` and a digit) but does not parse, an unknown emotion code, a turn name that does not belong
to the file's dialog (``<dialog>_<F|M>NNN``), a turn annotated twice and ``start > end`` each stop with a
:class:`~datamodules.io.DataError` naming the file and the line. Transcriptions are attached by turn
name; a turn with no transcription line gets ``transcript=None``, and transcription lines of turns
that are not annotated (or without ``[<start>-<end>]:``) are ignored. Utterances come in session
order, dialogs sorted by name, and each dialog in its annotation file's order.

Label sets (``label_set``); an utterance outside the set is **excluded** (that is the definition of
the set; the excluded counts per code are in :meth:`IEMOCAPDataModule.notes`):

* ``4way`` (default): ``hap`` (hap + exc merged), ``neu``, ``sad``, ``ang`` in Foal-Net's order;
  5,531 utterances on the real release.
* ``6way``: ``hap, sad, neu, ang, exc, fru`` (MERBench / DialogueRNN order); 7,433 utterances.
* ``valence``, ``arousal`` (the release's "activation"), ``dominance``: regression on the mean 1-5
  rating. Target ``y = rating - 3`` in [-2, 2] (``score_range (-2, 2)``), so 0 is the scale
  midpoint; every utterance with a rating on the 1-5 scale is kept, whatever its emotion code. The
  discrete view is the suite's sign view, named ``low`` (rating < 3), ``mid`` (= 3), ``high`` (> 3).
  The primary metric is ``mae``. The metric suite is the sentiment suite (MOSI/MOSEI), so its
  columns are **relative to the scale midpoint 3**: ``acc2_*``/``f1_*`` score the side of 3
  (``has0`` counts a rating of exactly 3 as high, ``non0`` drops it), ``acc5`` compares ratings
  rounded to 1..5 (``y`` clipped to [-2, 2], half-to-even), and ``acc7`` (clip to [-3, 3]) differs
  from ``acc5`` only for predictions beyond +-2.5; ``corr`` is Pearson r. None of these is
  comparable to MOSI/MOSEI sentiment numbers.

Protocols (``protocol``):

* ``loso`` (default): folds ``Ses01..Ses05``; fold k tests on session k (both speakers); validation
  is **one speaker** of session k+1 (mod 5): the female speaker when k is odd, the male one when k is
  even (Ses01 -> Ses02F, Ses02 -> Ses03M, Ses03 -> Ses04F, Ses04 -> Ses05M, Ses05 -> Ses01F); training
  is the other 7 speakers (10 speakers minus the two test speakers and the validation speaker). The
  test session never appears in training or validation. Primary metric ``ua`` (Foal-Net, EmoBox).
* ``erc``: one fold ``erc``; sessions 1-4 train, session 5 test (the ERC split). Validation is
  whole dialogs of sessions 1-4: of the sorted dialog names, ``n_val = max(1, round(n / 10))``
  evenly spaced ones (indices ``floor((i + 0.5) n / n_val)``; 12 of 120 on the real release,
  as COSMIC's 108/12 dialog split). Dialog-disjoint, not speaker-disjoint (a speaker-disjoint
  split would take a whole session out of the ERC training data). Primary metric ``wf1``.

Inputs: ``audio_feature``, ``text_feature``, ``video_feature`` name feature folders under
``features_root`` (default ``<data dir>/features``; a relative path is relative to the data dir),
each with ``<turn>.npy`` of shape ``(T, D)`` or ``(D,)`` (leading size-1 axes squeezed). There is no
default feature: at least one input must be chosen, and the error lists the folders found with
their provenance modality. ``audio_input=waveform`` instead reads the utterance wavs (16,000 Hz
mono, asserted; int16 / 32768 -> float32 in [-1, 1), no normalisation, as Foal-Net), keeps the
first ``max_seconds`` (default 6.0, Foal-Net) and zero-pads shorter ones: modality ``audio`` of shape
``(T = 16000 * max_seconds, 1)`` with the mask from the true length. ``max_frames`` (default none)
keeps the first N steps of frame-level features. Modalities: ``audio`` (group audio), ``text``
(text), ``video`` (visual), in that order. Every used feature folder is checked with
:func:`datamodules.provenance.check_folder`: mixed provenance is an error, a folder without
``provenance.json`` is used as "provenance unknown" (said so in the notes); each folder's summary
is in the notes (so every result record carries it) and its provenance id in the fingerprint.
Non-finite feature values are set to 0 and counted in the notes.

Groups: the speaker, ``Ses01F`` .. ``Ses05M`` (session + gender letter of the turn's suffix).

Cache and fingerprint: each input is converted once to padded ``.npy`` arrays under
``$AFFECTBENCH_CACHE/iemocap/<key>/`` and memory-mapped afterwards; the key hashes the loader
version, the folder, the settings (``max_seconds`` / ``max_frames``) and each read file's name, size and
mtime. The fingerprint combines the SHA-256 of every annotation and transcription file, the label set,
the inputs, the provenance ids and the content hashes of the arrays read (computed while converting).

:func:`write_foalnet_lists` writes Foal-Net's ``sessionK_{train,valid}.scp`` lists.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable

import numpy as np
import torch

from . import provenance
from .base import MERDataModule, TensorSampleDataset
from .io import DataError, NpyCache, missing_dataset, read_feature_npy, repair_nonfinite, stack_features
from .io import read_wav as io_read_wav
from .registry import register_datamodule
from .spec import DatasetSpec, ModalitySpec, Protocol, UserInputError

NAME = "iemocap"
LOADER_VERSION = 1  # part of every cache key: bump when a conversion changes
RELEASE_DIR = "IEMOCAP_full_release"
SOURCE = "https://sail.usc.edu/iemocap/ (release form / licence agreement)"
PRESET = "synthetic-iemocap"
SESSIONS = (1, 2, 3, 4, 5)
SAMPLE_RATE = 16000
EMOTION_CODES = ("neu", "hap", "exc", "sad", "ang", "fru", "sur", "fea", "dis", "oth", "xxx")
CLASS_SETS: dict[str, tuple[str, ...]] = {"4way": ("hap", "neu", "sad", "ang"),
                                          "6way": ("hap", "sad", "neu", "ang", "exc", "fru")}
CODE_TO_CLASS: dict[str, dict[str, str]] = {"4way": {"hap": "hap", "exc": "hap", "neu": "neu", "sad": "sad",
                                                     "ang": "ang"},
                                            "6way": {c: c for c in CLASS_SETS["6way"]}}
DIMENSIONS = {"valence": 0, "arousal": 1, "dominance": 2}  # index into Utterance.vad
LABEL_SETS = (*CLASS_SETS, *DIMENSIONS)
RATING_RANGE = (1.0, 5.0)
RATING_MID = 3.0
SCORE_RANGE = (-2.0, 2.0)
DIM_CLASSES = ("low", "mid", "high")  # the sign view of rating - 3
PROTOCOLS = ("loso", "erc")
LOSO_FOLDS = tuple(f"Ses0{s}" for s in SESSIONS)
MODALITIES = (("audio", "audio"), ("text", "text"), ("video", "visual"))  # name, group; option <name>_feature
FEATURE_ROOT = "features"

SUMMARY_SYNTAX = "'[<start> - <end>]<TAB><turn name><TAB><emotion code><TAB>[<V>, <A>, <D>]'"
_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_SUMMARY = re.compile(rf"^\[\s*{_NUM}\s*-\s*{_NUM}\s*\]\s+(\S+)\s+(\S+)\s+"
                      rf"\[\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*\]\s*$")
_SUMMARY_START = re.compile(r"^\[\s*\d")
_TRANSCRIPT = re.compile(r"^(\S+)\s+\[\s*([0-9.]+)\s*-\s*([0-9.]+)\s*\]\s*:\s?(.*)$")
_DIALOG = re.compile(r"^Ses0([1-5])[FM]_\S+$")


# ----------------------------------------------------------------------------------------
# the release parser (also used by benchmarks/extract.py)
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Utterance:
    """One annotated turn of the release."""

    id: str  # e.g. "Ses01F_impro01_F000"
    session: int  # 1..5 (5th character of the id)
    dialog: str  # "Ses01F_impro01"
    speaker: str  # "Ses01F" / "Ses01M": session + gender letter of the final _F/_M suffix
    start: float  # seconds in the dialog
    end: float
    emotion: str  # raw code: neu hap exc sad ang fru sur fea dis oth xxx
    vad: tuple[float, float, float]  # valence, activation (arousal), dominance, 1-5
    transcript: str | None
    wav_path: Path  # <release>/Session{n}/sentences/wav/<dialog>/<id>.wav
    video_path: Path  # <release>/Session{n}/dialog/avi/DivX/<dialog>.avi (may not exist)

    @property
    def gender(self) -> str:
        return self.speaker[-1]

    @property
    def relative_wav(self) -> Path:
        """The wav path relative to the release folder."""
        return Path(f"Session{self.session}") / "sentences" / "wav" / self.dialog / f"{self.id}.wav"


def _is_release(path: Path) -> bool:
    return any((path / f"Session{s}" / "dialog" / "EmoEvaluation").is_dir() for s in SESSIONS)


def find_release(data_dir: str | Path | None) -> Path:
    """The release folder: ``data_dir`` itself or ``data_dir/IEMOCAP_full_release`` (the first that
    has a ``Session<n>/dialog/EmoEvaluation/`` folder); else the missing-dataset error."""
    what = f"the IEMOCAP release ({RELEASE_DIR}/ with Session1..5/dialog/EmoEvaluation/)"
    if not data_dir or not Path(data_dir).is_dir():
        raise missing_dataset(NAME, data_dir, what, SOURCE, PRESET)
    root = Path(data_dir)
    for cand in (root, root / RELEASE_DIR):
        if _is_release(cand):
            return cand
    raise missing_dataset(NAME, f"{root} and {root / RELEASE_DIR}: no Session<n>/dialog/EmoEvaluation/", what,
                          SOURCE, PRESET)


def _read_text(path: Path, hasher: Any | None) -> str:
    data = path.read_bytes()
    if hasher is not None:
        hasher.update(f"{path.parent.parent.parent.name}/{path.parent.name}/{path.name}\0".encode())
        hasher.update(data)
    return data.decode("utf-8", errors="replace")


def _parse_evaluation(path: Path, session: int, dialog: str,
                      hasher: Any | None) -> list[tuple[int, str, float, float, str, tuple[float, float, float]]]:
    rows = []
    turn_re = re.compile(rf"^{re.escape(dialog)}_([FM])[A-Za-z0-9]*$")
    for n, raw in enumerate(_read_text(path, hasher).splitlines(), 1):
        line = raw.strip()
        if not _SUMMARY_START.match(line):
            continue  # header, blank, evaluator line (C-E2:, A-E3:, ...)
        m = _SUMMARY.match(line)
        if m is None:
            raise DataError(path, f"line {n}", f"a summary line {SUMMARY_SYNTAX}", repr(raw))
        start, end, turn, code = float(m[1]), float(m[2]), m[3], m[4]
        vad = (float(m[5]), float(m[6]), float(m[7]))
        if code not in EMOTION_CODES:
            raise DataError(path, f"line {n} (emotion code)", f"one of {', '.join(EMOTION_CODES)}", repr(code))
        if not turn_re.match(turn):
            raise DataError(path, f"line {n} (turn name)", f"a turn of dialog {dialog} in Session{session}: "
                            f"'{dialog}_<F|M><number>'", repr(turn))
        if start > end:
            raise DataError(path, f"line {n} (times)", "start <= end", f"[{m[1]} - {m[2]}]")
        rows.append((n, turn, start, end, code, vad))
    return rows


def _parse_transcripts(path: Path, hasher: Any | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in _read_text(path, hasher).splitlines():
        m = _TRANSCRIPT.match(line.strip())
        if m is not None:
            out.setdefault(m[1], m[4].strip())
    return out


def _parse(root: Path, sessions: Iterable[int], hasher: Any | None = None) -> tuple[list[Utterance], dict[str, int]]:
    """:func:`parse_release` plus the number of files read; feeds every file's bytes to ``hasher``."""
    root = Path(root)
    sessions = tuple(sessions)
    bad = [s for s in sessions if s not in SESSIONS]
    if bad or not sessions:
        raise UserInputError(f"{NAME}: sessions must be a non-empty subset of 1..5, got {sessions}")
    utts: list[Utterance] = []
    seen: dict[str, str] = {}
    counts = {"annotation_files": 0, "transcription_files": 0}
    for s in sessions:
        sdir = root / f"Session{s}"
        edir = sdir / "dialog" / "EmoEvaluation"
        if not edir.is_dir():
            raise DataError(edir, "<folder>", f"the annotation folder of Session{s} (Session{s}/dialog/EmoEvaluation/"
                            "with one <dialog>.txt per dialog)", "no such folder")
        files = sorted(p for p in edir.glob("Ses*.txt") if p.is_file())  # sub-folders and ._* files skipped
        if not files:
            raise DataError(edir, "<folder>", "one <dialog>.txt per dialog (Ses0<n><F|M>_...txt)", "no such files")
        for path in files:
            dialog = path.stem
            m = _DIALOG.match(dialog)
            if m is None or int(m[1]) != s:
                raise DataError(path, "<file name>", f"a dialog of Session{s}: 'Ses0{s}<F|M>_<impro|script>...txt'",
                                repr(path.name))
            counts["annotation_files"] += 1
            rows = _parse_evaluation(path, s, dialog, hasher)
            tpath = sdir / "dialog" / "transcriptions" / f"{dialog}.txt"
            texts = {}
            if tpath.is_file():
                counts["transcription_files"] += 1
                texts = _parse_transcripts(tpath, hasher)
            for n, turn, start, end, code, vad in rows:
                where = f"{path.name} line {n}"
                if turn in seen:
                    raise DataError(path, f"line {n} (turn name)", "each turn annotated once",
                                    f"{turn!r} again (first in {seen[turn]})")
                seen[turn] = where
                gender = turn.rsplit("_", 1)[1][0]
                utts.append(Utterance(
                    id=turn, session=s, dialog=dialog, speaker=f"Ses0{s}{gender}", start=start, end=end,
                    emotion=code, vad=vad, transcript=texts.get(turn),
                    wav_path=sdir / "sentences" / "wav" / dialog / f"{turn}.wav",
                    video_path=sdir / "dialog" / "avi" / "DivX" / f"{dialog}.avi"))
    return utts, counts


def parse_release(root: str | Path, sessions: Iterable[int] = SESSIONS) -> list[Utterance]:
    """Every annotated utterance of ``sessions`` of the release at ``root`` (see the module
    docstring for what is read and validated). Paths in the result start with ``root`` as given."""
    return _parse(Path(root), sessions)[0]


def select(utterances: Iterable[Utterance], label_set: str) -> tuple[list[Utterance], list[float | int], Counter]:
    """The utterances of a label set, their targets (class index in ``CLASS_SETS[label_set]``, or
    ``rating - 3`` for a dimension) and the excluded count per emotion code (for a dimension: the
    codes of utterances whose rating is off the 1-5 scale)."""
    if label_set not in LABEL_SETS:
        raise UserInputError(f"{NAME}: label_set must be one of {', '.join(LABEL_SETS)}, got {label_set!r}")
    kept, targets, excluded = [], [], Counter()
    for u in utterances:
        if label_set in CLASS_SETS:
            cls = CODE_TO_CLASS[label_set].get(u.emotion)
            if cls is None:
                excluded[u.emotion] += 1
                continue
            kept.append(u)
            targets.append(CLASS_SETS[label_set].index(cls))
        else:
            r = u.vad[DIMENSIONS[label_set]]
            if not (math.isfinite(r) and RATING_RANGE[0] <= r <= RATING_RANGE[1]):
                excluded[u.emotion] += 1
                continue
            kept.append(u)
            targets.append(r - RATING_MID)
    return kept, targets, excluded


def write_foalnet_lists(utterances_or_dm: Any, out_dir: str | Path, root: str | Path | None = None) -> list[Path]:
    """Write Foal-Net's list files (ASolitaryMan/Foal-Net; ``methods/foalnet.md`` §2.1-2.2).

    For each session K: ``sessionK_train.scp`` (the other four sessions) and ``sessionK_valid.scp``
    (session K), one line ``<utt_id> <wav path> <label>`` per utterance of the **4-way** set
    (labels ``hap``/``neu``/``sad``/``ang``, ``exc`` written as ``hap``), in parse order. Note that
    Foal-Net's "valid" list is its **test** session: its code selects the epoch on it, with no
    separate validation split (the suite's ``loso`` protocol holds out a validation speaker instead).

    ``utterances_or_dm``: a list of :class:`Utterance` or an :class:`IEMOCAPDataModule` (its parsed
    release; all utterances, whatever its label set). ``root``: the release folder as it should
    appear in the lists (default: each utterance's own wav path, made absolute). Returns the files.
    """
    utts = list(utterances_or_dm.utterances if isinstance(utterances_or_dm, IEMOCAPDataModule) else utterances_or_dm)
    kept, targets, _ = select(utts, "4way")
    names = CLASS_SETS["4way"]

    def path_of(u: Utterance) -> str:
        p = str(Path(root) / u.relative_wav) if root is not None else str(Path(u.wav_path).absolute())
        if any(c.isspace() for c in p):
            raise UserInputError(f"{NAME}: Foal-Net lists are whitespace-separated; the wav path {p!r} has "
                                 "whitespace (pass a root without spaces, e.g. a symlink)")
        return p

    lines = [(u.session, f"{u.id} {path_of(u)} {names[t]}\n") for u, t in zip(kept, targets)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k in sorted({u.session for u in utts}):
        for split, keep in (("train", lambda s: s != k), ("valid", lambda s: s == k)):
            path = out / f"session{k}_{split}.scp"
            path.write_text("".join(line for s, line in lines if keep(s)))
            written.append(path)
    return written


# ----------------------------------------------------------------------------------------
# inputs: feature folders and waveforms
# ----------------------------------------------------------------------------------------
def _read_npy(path: Path, hasher: Any) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(path)
    return read_feature_npy(path, hasher)


def convert_feature(folder: Path, ids: list[str], option: str,
                    max_frames: int | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read ``<folder>/<id>.npy`` for ``ids``: ``{"x": (N, D) or (N, T, D) end-padded, "lengths"}``
    and meta (dim, sequence, max_len, cut, repaired counts, content sha256)."""
    hasher = hashlib.sha256()
    items, dim, first = [], None, None
    repaired: Counter = Counter()
    cut = 0
    for utt in ids:
        path = folder / f"{utt}.npy"
        try:
            arr = _read_npy(path, hasher)
        except FileNotFoundError:
            missing = sum(not (folder / f"{u}.npy").is_file() for u in ids)
            raise DataError(path, option, f"a feature file <utterance id>.npy in {folder} for every utterance of "
                            "the label set", f"no such file ({missing} of {len(ids)} missing)") from None
        if dim is None:
            dim, first = arr.shape[-1], path
        elif arr.shape[-1] != dim:
            raise DataError(path, "shape", f"feature dim {dim} in every file of {option}={folder.name} "
                            f"(as {first.name})", tuple(arr.shape))
        if max_frames is not None and arr.ndim == 2 and arr.shape[0] > max_frames:
            arr, cut = arr[:max_frames], cut + 1
        repaired.update(repair_nonfinite(arr))
        items.append(arr)
    sequence = any(a.ndim == 2 for a in items)
    meta: dict[str, Any] = {"feature": folder.name, "n": len(items), "dim": int(dim), "sequence": sequence,
                            "cut": cut, "sha256": hasher.hexdigest(),
                            "repaired": {k: int(repaired.get(k, 0)) for k in ("nan", "posinf", "neginf")}}
    arrays, max_len = stack_features(items, int(dim))
    return arrays, {**meta, "max_len": max_len}


def read_wav(path: Path) -> np.ndarray:
    """One utterance wav as float32 ``(n,)``: 16 kHz mono (see :func:`datamodules.io.read_wav`)."""
    return io_read_wav(path, SAMPLE_RATE, what="the utterance's wav (audio_input=waveform reads "
                       "Session<n>/sentences/wav/<dialog>/<utterance id>.wav)",
                       rate_hint="IEMOCAP's utterance audio; Foal-Net asserts it")


def convert_waveforms(utts: list[Utterance], n: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``{"x": (N, n, 1) float32 zero-padded, "lengths": (N,)}`` from the first ``n`` samples."""
    hasher = hashlib.sha256()
    x = np.zeros((len(utts), n, 1), dtype=np.float32)
    lengths = np.empty(len(utts), dtype=np.int64)
    full = np.empty(len(utts), dtype=np.int64)
    for i, u in enumerate(utts):
        wav = read_wav(u.wav_path)
        hasher.update(f"{u.id}\0".encode())
        hasher.update(wav.tobytes())
        full[i] = wav.shape[0]
        lengths[i] = min(n, wav.shape[0])
        x[i, : lengths[i], 0] = wav[: lengths[i]]
    meta = {"n": len(utts), "samples": n, "cut": int((full > n).sum()), "padded": int((full < n).sum()),
            "sha256": hasher.hexdigest(), "mean_seconds": float(full.mean() / SAMPLE_RATE) if len(utts) else 0.0}
    return {"x": x, "lengths": lengths}, meta


def _stat_rows(paths: Iterable[tuple[str, Path]]) -> list:
    rows = []
    for name, p in paths:
        try:
            st = p.stat()
            rows.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            rows.append((name, None, None))
    return rows


def _key(kind: str, payload: Any) -> str:
    return f"{kind}-{hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()[:24]}"


# ----------------------------------------------------------------------------------------
# the datamodule
# ----------------------------------------------------------------------------------------
@register_datamodule(NAME)
class IEMOCAPDataModule(MERDataModule):
    """IEMOCAP from the raw release: 4-/6-way emotion or V/A/D regression, LOSO or ERC split
    (see ``datamodules/iemocap.py``).

    Options: ``label_set`` (4way | 6way | valence | arousal | dominance), ``protocol`` (loso | erc),
    ``audio_feature`` / ``text_feature`` / ``video_feature`` (feature folder names; none by default,
    at least one input required), ``features_root`` (default ``<data dir>/features``),
    ``audio_input`` (features | waveform), ``max_seconds`` (waveform window, default 6.0),
    ``max_frames`` (cut frame-level features; default none), besides the base options.
    """

    source: ClassVar[str] = SOURCE

    def __init__(self, data_dir: str | None = None, batch_size: int = 32, num_workers: int = 0,
                 fold: str | None = None, seed: int = 0, sampler: str = "random", label_set: str = "4way",
                 protocol: str = "loso", audio_feature: str | None = None, text_feature: str | None = None,
                 video_feature: str | None = None, features_root: str | None = None,
                 audio_input: str = "features", max_seconds: float = 6.0, max_frames: int | None = None) -> None:
        super().__init__(data_dir=data_dir, batch_size=batch_size, num_workers=num_workers, fold=fold, seed=seed,
                         sampler=sampler)
        if label_set not in LABEL_SETS:
            raise UserInputError(f"{NAME}: label_set must be one of {', '.join(LABEL_SETS)}, got {label_set!r}")
        if protocol not in PROTOCOLS:
            raise UserInputError(f"{NAME}: protocol must be loso or erc, got {protocol!r}")
        if audio_input not in ("features", "waveform"):
            raise UserInputError(f"{NAME}: audio_input must be features or waveform, got {audio_input!r}")
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)) or not max_seconds > 0 \
                or not math.isfinite(max_seconds):
            raise UserInputError(f"{NAME}: max_seconds must be a positive number, got {max_seconds!r}")
        if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                       or max_frames < 1):
            raise UserInputError(f"{NAME}: max_frames must be an integer >= 1 or none, got {max_frames!r}")
        features: dict[str, str | None] = {}
        for m, f in (("audio", audio_feature), ("text", text_feature), ("video", video_feature)):
            if isinstance(f, str) and f.strip().lower() in ("", "none"):
                f = None
            if f is not None and (not isinstance(f, str) or "/" in f or "\\" in f or f in (".", "..")):
                raise UserInputError(f"{NAME}: {m}_feature must be a feature folder name, got {f!r}")
            features[m] = f
        if audio_input == "waveform" and features["audio"] is not None:
            raise UserInputError(f"{NAME}: audio_input=waveform reads the wavs; leave audio_feature unset "
                                 f"(got audio_feature={features['audio']!r})")
        self.label_set, self.protocol_name, self.audio_input = label_set, protocol, audio_input
        self.max_seconds, self.max_frames, self.features = float(max_seconds), max_frames, features
        self.release = find_release(data_dir)
        base = Path(data_dir)
        self.features_root = (base / FEATURE_ROOT) if not features_root else \
            (Path(features_root) if Path(features_root).is_absolute() else base / features_root)
        self.inputs = [m for m, _ in MODALITIES
                       if features[m] is not None or (m == "audio" and audio_input == "waveform")]
        if not self.inputs:
            raise UserInputError(self._no_input_message())

        hasher = hashlib.sha256()
        self.utterances, self.file_counts = _parse(self.release, SESSIONS, hasher)
        self.annotations_sha256 = hasher.hexdigest()
        present = sorted({u.session for u in self.utterances})
        if present != list(SESSIONS):
            raise DataError(self.release, "sessions", "annotated utterances in all of Session1..5",
                            f"sessions {present}")
        self.items, targets, self.excluded = select(self.utterances, label_set)
        if not self.items:
            raise DataError(self.release, "label_set", f"utterances in label set {label_set}", "none")
        self.ids = [u.id for u in self.items]
        if label_set in CLASS_SETS:
            self.y = torch.tensor(targets, dtype=torch.long)
        else:
            self.y = torch.tensor(targets, dtype=torch.float32)
        self._notes: list[str] = []
        self._arrays: dict[str, dict[str, np.ndarray]] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._prov: dict[str, provenance.FolderProvenance] = {}
        self._cache_paths: set[Path] = set()
        for m in self.inputs:
            self._load_input(m)
        self.spec = self._build_spec()
        self._full: TensorSampleDataset | None = None

    @classmethod
    def is_available(cls, data_dir: str | None = None) -> bool:
        try:
            find_release(data_dir)
        except UserInputError:
            return False
        return True

    # -- inputs -----------------------------------------------------------------------------
    def _feature_folders(self) -> list[str]:
        root = self.features_root
        if not root.is_dir():
            return []
        out = []
        for p in sorted(q for q in root.iterdir() if q.is_dir()):
            try:
                prov = provenance.read(p)
            except DataError:
                prov = None
            out.append(f"{p.name} ({prov['modality']})" if prov else p.name)
        return out

    def _no_input_message(self) -> str:
        found = self._feature_folders()
        where = f"folders found in {self.features_root}: {', '.join(found)}" if found else \
            f"no feature folders in {self.features_root}; make some with `bench extract`"
        return (f"{NAME}: choose at least one input: --set audio_feature=NAME, --set text_feature=NAME, "
                f"--set video_feature=NAME (feature folders under features_root) or --set audio_input=waveform "
                f"({where})")

    def _load_input(self, m: str) -> None:
        if m == "audio" and self.audio_input == "waveform":
            n = int(round(SAMPLE_RATE * self.max_seconds))
            rows = _stat_rows((u.id, u.wav_path) for u in self.items)
            key = _key("wav", [LOADER_VERSION, str(self.release.resolve()), n, rows])
            self._cached(m, key, lambda: convert_waveforms(self.items, n))
            return
        name = self.features[m]
        folder = self.features_root / name
        if not folder.is_dir():
            found = self._feature_folders()
            raise DataError(folder, f"{m}_feature", f"a folder of per-utterance .npy features named {name!r} under "
                            f"{self.features_root} (choose one with --set {m}_feature=NAME)",
                            f"no such folder; folders there: {', '.join(found)}" if found else "no such folder")
        fp = self._prov[m] = provenance.check_folder(folder, self.ids)
        if fp.provenance is not None and fp.provenance["modality"] != m:
            raise DataError(folder / provenance.PROVENANCE_FILE, "modality", f"{m} (it is given as {m}_feature)",
                            f"{fp.provenance['modality']}: pass it as --set {fp.provenance['modality']}_feature="
                            f"{name}")
        rows = _stat_rows((i, folder / f"{i}.npy") for i in self.ids)
        key = _key(f"{m}-{name}", [LOADER_VERSION, str(folder.resolve()), self.max_frames, rows])
        self._cached(m, key, lambda: convert_feature(folder, self.ids, f"{m}_feature", self.max_frames))
        if fp.provenance is not None and fp.provenance["dim"] != self._meta[m]["dim"]:
            raise DataError(folder / provenance.PROVENANCE_FILE, "dim",
                            f"the dim of the arrays ({self._meta[m]['dim']})", fp.provenance["dim"])

    def _cached(self, m: str, key: str, convert) -> None:
        cache = NpyCache(NAME, key)
        if not cache.exists():
            arrays, meta = convert()
            try:
                cache.write(arrays, meta)
            except OSError as e:  # e.g. a read-only cache root: keep the arrays in memory
                self._notes.append(f"cache not written ({type(e).__name__}: {e}); {m} kept in memory")
                self._arrays[m], self._meta[m] = arrays, meta
                return
        self._cache_paths.add(cache.path.parent)
        meta = cache.meta()
        self._meta[m] = meta
        self._arrays[m] = {a: cache.load(a, mmap=a == "x") for a in meta["arrays"]}

    # -- spec and splits ----------------------------------------------------------------------
    def _input_text(self, m: str) -> str:
        if m == "audio" and self.audio_input == "waveform":
            return f"waveform {self.max_seconds:g}s@{SAMPLE_RATE}"
        return f"{self.features[m]}"

    def _build_spec(self) -> DatasetSpec:
        mods = []
        for m, group in MODALITIES:
            if m not in self.inputs:
                continue
            meta = self._meta[m]
            if m == "audio" and self.audio_input == "waveform":
                mods.append(ModalitySpec(m, 1, meta["samples"], group))
            else:
                mods.append(ModalitySpec(m, meta["dim"], meta["max_len"] if meta["sequence"] else None, group))
        if self.protocol_name == "loso":
            protocol = Protocol("leave_one_out", LOSO_FOLDS, "leave one session out: test = session k; validation "
                                "= one speaker of session k+1 (mod 5), F for odd k, M for even k; train = the "
                                "other 7 speakers")
        else:
            protocol = Protocol("holdout", ("erc",), "ERC split: sessions 1-4 train, session 5 test; validation = "
                                f"{len(self._erc_val_dialogs())} whole dialog(s) of sessions 1-4 (evenly spaced in "
                                "name order, ~10%)")
        classification = self.label_set in CLASS_SETS
        if classification:
            primary = "ua" if self.protocol_name == "loso" else "wf1"
        extra = (("label_set", self.label_set), ("protocol", self.protocol_name),
                 ("inputs", ", ".join(f"{m}={self._input_text(m)}" for m in self.inputs)),
                 ("groups", "speaker (Ses01F..Ses05M)"))
        if not classification:
            extra += (("target", f"{self.label_set} rating - 3 (1-5 scale -> [-2, 2]; discrete view low/mid/high "
                                 "around the midpoint 3)"),)
        return DatasetSpec(
            name=NAME, task="classification" if classification else "regression",
            class_names=CLASS_SETS[self.label_set] if classification else DIM_CLASSES, modalities=tuple(mods),
            protocol=protocol, primary_metric=primary if classification else "mae",
            primary_direction="max" if classification else "min",
            score_range=None if classification else SCORE_RANGE, extra=extra)

    def _erc_val_dialogs(self) -> list[str]:
        dialogs = sorted({u.dialog for u in self.utterances if u.session != 5})
        n = len(dialogs)
        n_val = max(1, round(n / 10))
        return [dialogs[int((i + 0.5) * n / n_val)] for i in range(n_val)]

    def split_of(self, fold: str | None = None) -> dict[str, np.ndarray]:
        """Row indices (into the label set's utterances) of train / val / test for a fold."""
        fold = self.resolve_fold() if fold is None else fold
        if fold not in self.spec.protocol.folds:
            raise UserInputError(f"{NAME}: unknown fold {fold!r}; folds are {', '.join(self.spec.protocol.folds)}")
        sessions = np.array([u.session for u in self.items])
        speakers = np.array([u.speaker for u in self.items])
        if self.protocol_name == "loso":
            k = int(fold[-1])
            val_speaker = self.validation_speaker(fold)
            test = sessions == k
            val = speakers == val_speaker
            train = ~test & ~val
            what = {"test": f"session {k}", "val": f"speaker {val_speaker}", "train": "the other speakers"}
        else:
            val_dialogs = set(self._erc_val_dialogs())
            dialogs = np.array([u.dialog for u in self.items])
            test = sessions == 5
            val = ~test & np.isin(dialogs, list(val_dialogs))
            train = ~test & ~val
            what = {"test": "session 5", "val": f"dialogs {', '.join(sorted(val_dialogs))}",
                    "train": "sessions 1-4 without the validation dialogs"}
        out = {"train": np.flatnonzero(train), "val": np.flatnonzero(val), "test": np.flatnonzero(test)}
        for split, idx in out.items():
            if not len(idx):
                raise DataError(self.release, f"fold {fold} ({split})", f"utterances of label set {self.label_set} "
                                f"in {what[split]}", "none")
        return out

    @staticmethod
    def validation_speaker(fold: str) -> str:
        """LOSO: the validation speaker of fold ``Ses0k``: session k+1 (mod 5), F if k is odd, else M."""
        k = int(fold[-1])
        return f"Ses0{k % 5 + 1}{'F' if k % 2 == 1 else 'M'}"

    # -- data ---------------------------------------------------------------------------------
    def _dataset(self) -> TensorSampleDataset:
        if self._full is None:
            x, lengths = {}, {}
            for m in self.spec.modalities:
                arrays = self._arrays[m.name]
                x[m.name] = torch.from_numpy(arrays["x"])
                if m.is_sequence:
                    lengths[m.name] = torch.from_numpy(np.asarray(arrays["lengths"]))
            label = self.y.clone() if self.spec.task == "classification" else self.spec.discretize(self.y)
            self._full = TensorSampleDataset(x=x, lengths=lengths, y=self.y, label=label, ids=list(self.ids),
                                             groups=[u.speaker for u in self.items])
        return self._full

    def setup(self, stage: str | None = None) -> None:
        parts = self.split_of()
        full = self._dataset()
        self.train_set, self.val_set, self.test_set = (full.subset(torch.from_numpy(parts[s]))
                                                       for s in ("train", "val", "test"))

    # -- what records and `bench info` show ---------------------------------------------------
    def fingerprint(self) -> str:
        payload = {"version": LOADER_VERSION, "annotations_sha256": self.annotations_sha256,
                   "label_set": self.label_set, "audio_input": self.audio_input,
                   "inputs": {m: [self._input_text(m), (self._prov[m].id if m in self._prov else None),
                                  self._meta[m]["sha256"], self.max_frames if m in self._prov else None]
                              for m in self.inputs}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def _per_session(self) -> list[str]:
        names = self.spec.class_names
        labels = self._dataset().label.tolist()
        out = []
        for s in SESSIONS:
            c = Counter(lab for u, lab in zip(self.items, labels) if u.session == s)
            out.append(f"Ses0{s} (n {sum(c.values())}): " + ", ".join(f"{names[k]} {c.get(k, 0)}"
                                                                         for k in range(len(names))))
        return out

    def notes(self) -> list[str]:
        fc = self.file_counts
        out = [f"release {self.release}: {len(self.utterances)} annotated utterances from {fc['annotation_files']} "
               f"EmoEvaluation files ({fc['transcription_files']} transcription files); sha256 of these files "
               f"{self.annotations_sha256}"]
        if self.label_set in CLASS_SETS:
            merged = " (exc merged into hap)" if self.label_set == "4way" else ""
            excl = ", ".join(f"{c} {n}" for c, n in sorted(self.excluded.items(), key=lambda kv: (-kv[1], kv[0])))
            out.append(f"label set {self.label_set}{merged}: classes {', '.join(self.spec.class_names)}; "
                       f"{len(self.items)} utterances; excluded (codes outside the set): {excl or 'none'}")
        else:
            r = self.y.numpy() + RATING_MID
            excl = sum(self.excluded.values())
            out.append(f"label set {self.label_set}: regression target = rating - 3 (1-5 scale -> [-2, 2]); "
                       f"{len(self.items)} utterances, mean rating {r.mean():.3f}; discrete view low (<3) / mid (=3) "
                       f"/ high (>3); excluded (rating off the 1-5 scale): {excl}")
        out += self._per_session()
        for m in self.inputs:
            meta = self._meta[m]
            spec = self.spec.modality(m)
            shape = f"(T<={spec.seq_len}, {spec.dim})" if spec.is_sequence else f"({spec.dim},)"
            if m == "audio" and self.audio_input == "waveform":
                out.append(f"audio: waveform from Session<n>/sentences/wav, {SAMPLE_RATE} Hz mono, int16/32768 -> "
                           f"float32 (no normalisation), first {self.max_seconds:g} s kept ({meta['samples']} "
                           f"samples), shorter ones zero-padded; {meta['cut']} cut, {meta['padded']} padded, mean "
                           f"length {meta['mean_seconds']:.2f} s; content sha256 {meta['sha256'][:16]}")
                continue
            cut = f", {meta['cut']} cut to max_frames={self.max_frames}" if meta.get("cut") else ""
            out.append(f"{m}: {self.features_root}/{self.features[m]} {shape}{cut}; content sha256 "
                       f"{meta['sha256'][:16]}")
            out.append(f"{m} provenance: {self._prov[m].summary()}")
        fixed = []
        for m in self.inputs:
            rep = self._meta[m].get("repaired")
            if rep and any(rep.values()):
                fixed.append(f"{m}: NaN {rep['nan']}, +inf {rep['posinf']}, -inf {rep['neginf']}")
        if any(m in self._prov for m in self.inputs):
            out.append("non-finite feature values set to 0: " + ("; ".join(fixed) if fixed else "none found"))
        if self.train_set is not None:
            fold = self.resolve_fold()
            groups = {s: sorted(set(getattr(self, f"{s}_set").groups)) for s in ("train", "val", "test")}
            val = f"speaker {self.validation_speaker(fold)}" if self.protocol_name == "loso" else \
                f"dialogs {', '.join(self._erc_val_dialogs())}"
            out.append(f"fold {fold}: train {len(self.train_set)} ({len(groups['train'])} speakers), val "
                       f"{len(self.val_set)} ({val}), test {len(self.test_set)} ({', '.join(groups['test'])})")
        out += self._notes
        if self._cache_paths:
            out.append(f"cache {', '.join(sorted(map(str, self._cache_paths)))}")
        return out
