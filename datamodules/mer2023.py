"""MER2023: six-class emotion + valence from MERBench's label file and pre-extracted features.

Files (``datasets.md`` §3.3-3.4; zeroQiaoba/MERTools ``MERBench``)::

    <data dir>/label-6way.npz                   keys train_corpus, test1_corpus [, test2_corpus, test3_corpus]
    <data dir>/features/<feature name>/<sample>.npy    (D,) utterance-level or (T, D) frame-level
    <data dir>/features/<feature name>/<sample>/*.npy  one (D,) file per face, stacked in sorted name order

Each corpus of the label file is a pickled dict ``name -> {"emo": class name, "val": valence}``.
Classes are mapped **by name** to the official order neutral, angry, happy, sad, worried,
surprise (MERTools ``MERBench/toolkit/globals.py``). A valence of -10, or a missing or empty
``val``, means "not labelled" and becomes NaN (``Batch.meta["valence"]``); other values must lie in
[-5, 5].

Options: ``audio_feature``, ``text_feature``, ``video_feature`` (feature folder names; default:
MERBench's best extractor per modality, the ranking in MERTools ``toolkit/globals.py``:
``chinese-hubert-large-UTT``, ``Baichuan-13B-Base-UTT``, ``clip-vit-large-patch14-UTT``) and
``split_seed`` (seeds the cross-validation folds; recorded in ``spec.extra``), besides the base
options. Modalities: ``audio`` (group audio), ``text`` (text), ``video`` (visual). Every dim and
length is read from the files: a feature whose samples are all ``(D,)`` is a vector modality; if
any sample is ``(T, D)`` (or a face folder) it is a sequence with ``seq_len`` = the longest sample
of all loaded corpora, stored end-padded with per-sample lengths (a ``(D,)`` sample is one step).
A leading axis of size 1 is squeezed, ``(1, D) -> (D,)``.

Protocol (``datasets.md`` §3.5): MER2023 has no validation split. Folds ``fold1..fold5`` are a
**seeded, stratified** 5-fold split of ``train_corpus`` (MERBench shuffles without a seed; the
suite seeds it with ``split_seed``): fold k validates on part k, trains on the other four and
tests on ``test1_corpus`` (MER-MULTI). ``test2_corpus`` (MER-NOISE) and ``test3_corpus``
(MER-SEMI, no valence: its ``mer_score`` is NaN and ``wf1`` is its score) are reported by
:meth:`MER2023DataModule.extra_test_sets` when the label file has them and their features exist.

Task and metric: classification with the auxiliary score ``valence`` (models predict six logits
and a valence); the primary metric is ``mer_score = wf1 - 0.25 * val_mse`` (MERBench's ``emoval``,
which also selects its epochs). If no training sample has a valence, the spec has no auxiliary
score and the primary metric is ``wf1``.

Checks (each stops with a :class:`~datamodules.io.DataError` naming file, field, expected and
found): missing corpus keys, entries that are not ``{"emo", "val"}`` dicts, unknown or non-string
class names, bad valences, sample names repeated across corpora, missing feature folders or
sample files, empty face folders, unreadable or non-numeric arrays, feature dims that differ
between samples. The baseline's **placeholder** test labels (every sample ``neutral`` with
valence -10, written by MERTools' ``normalize_dataset_format``) are refused for test1 and leave
test2/test3 out, with a note. Non-finite feature values are set to 0 and counted in
:meth:`~MER2023DataModule.notes`.

Groups: MER2023 has no speaker ids (clips from films and TV series). A sample's group is its
corpus name (``train``, ``test1``, ...): it says where a sample comes from and keeps records small.

Cache and fingerprint: each (feature, corpus) is converted once to padded ``.npy`` arrays under
``$AFFECTBENCH_CACHE/mer2023/<key>/`` (memory-mapped afterwards), the key hashing the loader
version, the feature name, the corpus and every sample file's name, size and mtime, so a changed
file is re-read. While converting, the loader hashes the bytes of every feature file it reads (no
extra pass); :meth:`~MER2023DataModule.fingerprint` combines these content hashes with the full
SHA-256 of the label file, the feature names and the included corpora. So the fingerprint changes
with any byte of the data used, and costs one full read, on first conversion only.
"""
from __future__ import annotations

import hashlib
import json
import math
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .base import MERDataModule, TensorSampleDataset
from .io import (DataError, NpyCache, missing_dataset, read_feature_npy, repair_nonfinite, resolve_dir, sha256_file,
                 stack_features)
from .registry import register_datamodule
from .spec import DatasetSpec, ModalitySpec, Protocol, UserInputError

NAME = "mer2023"
LOADER_VERSION = 1  # bump when the conversion changes: it is part of every cache key
CLASSES = ("neutral", "angry", "happy", "sad", "worried", "surprise")  # official order (MERTools globals.py)
LABEL_FILE = "label-6way.npz"
FEATURE_ROOT = "features"
CORPORA = {"train": "train_corpus", "test1": "test1_corpus", "test2": "test2_corpus", "test3": "test3_corpus"}
REQUIRED = ("train", "test1")
EXTRA = {"test2": "MER-NOISE", "test3": "MER-SEMI"}
MISSING_VALENCE = -10.0
VALENCE_RANGE = (-5.0, 5.0)
N_FOLDS = 5
FOLDS = tuple(f"fold{k + 1}" for k in range(N_FOLDS))
MODALITIES = (("audio", "audio"), ("text", "text"), ("video", "visual"))  # name, group; option <name>_feature
DEFAULT_FEATURES = {"audio": "chinese-hubert-large-UTT", "text": "Baichuan-13B-Base-UTT",
                    "video": "clip-vit-large-patch14-UTT"}
SOURCE = ("https://huggingface.co/datasets/MERChallenge/MER2023 (EULA, academic use; labels: MERBench's "
          "label-6way.npz in zeroQiaoba/MERTools MERBench/dataset/; features: MERBench's extraction scripts)")
PRESET = "synthetic"  # no 6-class synthetic preset exists; the small 4-class one is the closest


@dataclass
class Corpus:
    """One corpus of the label file, samples sorted by name."""

    key: str  # e.g. "train_corpus"
    names: list[str]
    labels: np.ndarray  # (N,) int64 class indices in CLASSES order
    valence: np.ndarray  # (N,) float32, NaN = not labelled

    @property
    def placeholder(self) -> bool:
        """All ``neutral`` with no valence: the baseline's stand-in for unreleased test labels."""
        return bool(len(self.names)) and bool((self.labels == 0).all()) and bool(np.isnan(self.valence).all())


# ----------------------------------------------------------------------------------------
# the label file
# ----------------------------------------------------------------------------------------
def _valence(path: Path, field: str, entry: dict) -> float:
    raw = entry.get("val")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return math.nan
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise DataError(path, field, f"a number in [{VALENCE_RANGE[0]:g}, {VALENCE_RANGE[1]:g}], or -10 / empty "
                        "for 'not labelled'", repr(raw)) from None
    if v == MISSING_VALENCE or math.isnan(v):
        return math.nan
    if not VALENCE_RANGE[0] <= v <= VALENCE_RANGE[1]:
        raise DataError(path, field, f"a number in [{VALENCE_RANGE[0]:g}, {VALENCE_RANGE[1]:g}], or -10 / empty "
                        "for 'not labelled'", repr(raw))
    return v


def read_labels(path: Path) -> dict[str, Corpus]:
    """Read and validate ``label-6way.npz``: corpus name (``train``, ``test1``, ...) -> :class:`Corpus`
    for every corpus key the file has. Raises :class:`DataError` on anything malformed."""
    if not zipfile.is_zipfile(path):  # checked first: np.load would unpickle any other file
        raise DataError(path, "<file>", "a NumPy .npz archive (a zip file)", "another kind of file")
    try:
        npz = np.load(path, allow_pickle=True)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(path, "<file>", "a NumPy .npz archive", f"{type(e).__name__}: {e}") from None
    with npz:
        keys = sorted(npz.files)
        for c in REQUIRED:
            if CORPORA[c] not in keys:
                raise DataError(path, CORPORA[c], "keys train_corpus and test1_corpus (optional: test2_corpus, "
                                "test3_corpus)", f"keys {keys}")
        raw = {}
        for c, k in CORPORA.items():
            if k in keys:
                try:
                    raw[c] = npz[k]
                except Exception as e:  # noqa: BLE001 - any unpickling failure is a malformed file
                    raise DataError(path, k, "a pickled dict (readable with allow_pickle=True)",
                                    f"{type(e).__name__}: {e}") from None
    out: dict[str, Corpus] = {}
    seen: dict[str, str] = {}
    allowed = ", ".join(CLASSES)
    for c, arr in raw.items():
        key = CORPORA[c]
        d = arr.item() if isinstance(arr, np.ndarray) and arr.dtype == object and arr.ndim == 0 else arr
        if not isinstance(d, dict):
            raise DataError(path, key, "a pickled dict name -> {'emo': class name, 'val': valence}",
                            f"{type(d).__name__} {getattr(d, 'shape', '')}".strip())
        names = sorted(str(n) for n in d)
        if len(names) != len(d):
            raise DataError(path, key, "distinct sample names", "names that differ only in type")
        lookup = {str(n): v for n, v in d.items()}
        labels = np.empty(len(names), dtype=np.int64)
        valence = np.empty(len(names), dtype=np.float32)
        for i, name in enumerate(names):
            entry, field = lookup[name], f"{key}[{name!r}]"
            if name in seen:
                raise DataError(path, field, "sample names unique across corpora", f"{name!r} also in {seen[name]}")
            seen[name] = key
            if not isinstance(entry, dict) or "emo" not in entry:
                raise DataError(path, field, "a dict {'emo': class name, 'val': valence}", repr(entry)[:80])
            emo = entry["emo"]
            if not isinstance(emo, str) or emo.strip().lower() not in CLASSES:
                raise DataError(path, f"{field}['emo']", f"a class name, one of {allowed}", repr(emo))
            labels[i] = CLASSES.index(emo.strip().lower())
            valence[i] = _valence(path, f"{field}['val']", entry)
        out[c] = Corpus(key, names, labels, valence)
    return out


# ----------------------------------------------------------------------------------------
# feature folders
# ----------------------------------------------------------------------------------------
def _sample_files(folder: Path, name: str) -> list[Path] | None:
    """``[<name>.npy]``, or the sorted ``.npy`` files of the face folder ``<name>/``; None if neither
    exists. An empty face folder is a :class:`DataError`."""
    f = folder / f"{name}.npy"
    if f.is_file():
        return [f]
    d = folder / name
    if not d.is_dir():
        return None
    faces = sorted((p for p in d.iterdir() if p.suffix == ".npy" and p.is_file()), key=lambda p: p.name)
    if not faces:
        raise DataError(d, "<face folder>", "at least one per-face .npy file", "an empty folder")
    return faces


def _read_npy(path: Path, hasher: Any) -> np.ndarray:
    """One feature file as float32 with leading size-1 axes squeezed: ``(D,)`` or ``(T, D)``."""
    return read_feature_npy(path, hasher, f"{path.parent.name}/{path.name}")


def _listing(folder: Path, corpus: Corpus, option: str,
             required: bool) -> dict[str, list[Path]] | None:
    """Feature files of every sample of ``corpus``. A sample without features is a DataError,
    except for an optional corpus with no features at all (None: left out)."""
    files: dict[str, list[Path]] = {}
    missing: list[str] = []
    for name in corpus.names:
        got = _sample_files(folder, name)
        if got is None:
            missing.append(name)
        else:
            files[name] = got
    if not missing:
        return files
    if not required and not files:
        return None
    name = missing[0]
    raise DataError(folder / f"{name}.npy", f"{corpus.key}[{name!r}] ({option}={folder.name})",
                    f"a feature file {name}.npy or a face folder {name}/ for every sample",
                    f"neither exists ({len(missing)} of {len(corpus.names)} samples have no features)")


def _cache_key(feature: str, corpus: Corpus, files: dict[str, list[Path]]) -> str:
    """Loader version, feature, corpus and each sample file's name, size and mtime."""
    rows = []
    for name in corpus.names:
        for p in files[name]:
            st = p.stat()
            rows.append((name, p.name, st.st_size, st.st_mtime_ns))
    payload = json.dumps([LOADER_VERSION, feature, corpus.key, rows])
    return f"{corpus.key.removesuffix('_corpus')}-{hashlib.sha256(payload.encode()).hexdigest()[:24]}"


def convert_feature(folder: Path, corpus: Corpus, files: dict[str, list[Path]],
                    option: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read one feature of one corpus: ``{"x": (N, D) or (N, T, D) end-padded, "lengths": (N,)}``
    (lengths only for sequences) and meta (dim, sequence, max_len, repaired counts, content
    sha256, face folders)."""
    hasher = hashlib.sha256()
    items: list[np.ndarray] = []
    dim, first = None, None
    repaired: Counter = Counter()
    faces = 0
    for name in corpus.names:
        paths = files[name]
        if paths[0].parent != folder:  # a face folder: one (D,) vector per face
            faces += 1
            frames = [_read_npy(p, hasher) for p in paths]
            for p, f in zip(paths, frames):
                if f.ndim != 1:
                    raise DataError(p, "shape", "(D,) per face file (a face folder is stacked to (T, D))",
                                    tuple(f.shape))
                if f.shape[0] != frames[0].shape[0]:
                    raise DataError(p, "shape", f"({frames[0].shape[0]},) as {paths[0].name} of the same folder",
                                    tuple(f.shape))
            arr, where = np.stack(frames), paths[0]
        else:
            arr, where = _read_npy(paths[0], hasher), paths[0]
        if dim is None:
            dim, first = arr.shape[-1], where
        elif arr.shape[-1] != dim:
            raise DataError(where, "shape", f"feature dim {dim} in every sample of {option}={folder.name} "
                            f"(as {first.relative_to(folder)})", tuple(arr.shape))
        repaired.update(repair_nonfinite(arr))
        items.append(arr)
    sequence = any(a.ndim == 2 for a in items)
    meta: dict[str, Any] = {"feature": folder.name, "corpus": corpus.key, "n": len(items), "dim": int(dim),
                            "first_file": str(first.relative_to(folder)),
                            "sequence": sequence, "faces": faces, "sha256": hasher.hexdigest(),
                            "repaired": {k: int(repaired.get(k, 0)) for k in ("nan", "posinf", "neginf")}}
    arrays, max_len = stack_features(items, int(dim))
    return arrays, {**meta, "max_len": max_len}


# ----------------------------------------------------------------------------------------
# the datamodule
# ----------------------------------------------------------------------------------------
@register_datamodule(NAME)
class MER2023DataModule(MERDataModule):
    """MER2023 six-class emotion + valence from MERBench features (see ``datamodules/mer2023.py``).

    Feature defaults are MERBench's best extractor per modality, the ranking in MERTools
    ``toolkit/globals.py`` (``datasets.md`` §3.4): audio ``chinese-hubert-large-UTT``, text
    ``Baichuan-13B-Base-UTT``, video ``clip-vit-large-patch14-UTT``. ``split_seed`` seeds the
    stratified 5-fold split of the train corpus.
    """

    source: ClassVar[str] = SOURCE

    def __init__(self, data_dir: str | None = None, batch_size: int = 32, num_workers: int = 0,
                 fold: str | None = None, seed: int = 0, sampler: str = "random",
                 audio_feature: str = DEFAULT_FEATURES["audio"], text_feature: str = DEFAULT_FEATURES["text"],
                 video_feature: str = DEFAULT_FEATURES["video"], split_seed: int = 0) -> None:
        super().__init__(data_dir=data_dir, batch_size=batch_size, num_workers=num_workers, fold=fold, seed=seed,
                         sampler=sampler)
        features = {"audio": audio_feature, "text": text_feature, "video": video_feature}
        for m, f in features.items():
            if not isinstance(f, str) or not f or "/" in f or f in (".", ".."):
                raise UserInputError(f"{NAME}: {m}_feature must be a feature folder name, got {f!r}")
        if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
            raise UserInputError(f"{NAME}: split_seed must be an integer >= 0, got {split_seed!r}")
        self.features, self.split_seed = features, split_seed
        self.root = resolve_dir(NAME, data_dir, f"data folder with {LABEL_FILE} and {FEATURE_ROOT}/", SOURCE, PRESET,
                                same_shapes=False)
        self.label_path = self.root / LABEL_FILE
        if not self.label_path.is_file():
            raise missing_dataset(NAME, self.label_path, f"label file {LABEL_FILE}", SOURCE, PRESET, same_shapes=False)
        self.label_sha256 = sha256_file(self.label_path)
        self._notes: list[str] = []
        self.corpora = self._select_corpora(read_labels(self.label_path))
        self._arrays: dict[tuple[str, str], dict[str, np.ndarray]] = {}  # (modality, corpus) -> arrays
        self._meta: dict[tuple[str, str], dict[str, Any]] = {}
        self._cache_paths: set[Path] = set()
        self._load_features()
        self.spec = self._build_spec()
        self.fold_of = self._assign_folds()
        self._sets: dict[str, TensorSampleDataset] = {}

    @classmethod
    def is_available(cls, data_dir: str | None = None) -> bool:
        return bool(data_dir) and (Path(data_dir) / LABEL_FILE).is_file() and (Path(data_dir) / FEATURE_ROOT).is_dir()

    # -- corpora --------------------------------------------------------------------------
    def _select_corpora(self, corpora: dict[str, Corpus]) -> dict[str, Corpus]:
        """Refuse placeholder or empty train/test1; leave such test2/test3 out (with a note)."""
        for c in REQUIRED:
            corpus = corpora[c]
            if not corpus.names:
                raise DataError(self.label_path, corpus.key, "at least one sample", "an empty dict")
            if c == "test1" and corpus.placeholder:
                raise DataError(self.label_path, corpus.key, "real test labels (MERBench's committed label-6way.npz "
                                "or the organisers' label CSVs)", f"all {len(corpus.names)} samples 'neutral' with "
                                "valence -10: the placeholder the baseline's normalize_dataset_format writes; "
                                "refusing to score against it")
        n_train = len(corpora["train"].names)
        if n_train < N_FOLDS:
            raise DataError(self.label_path, CORPORA["train"], f"at least {N_FOLDS} samples ({N_FOLDS}-fold "
                            "cross-validation)", n_train)
        out = {c: corpora[c] for c in REQUIRED}
        for c, title in EXTRA.items():
            corpus = corpora.get(c)
            if corpus is None:
                self._notes.append(f"{CORPORA[c]} ({title}) is not in {LABEL_FILE}: no {c} report")
            elif not corpus.names:
                self._notes.append(f"{corpus.key} ({title}) is empty: no {c} report")
            elif corpus.placeholder:
                self._notes.append(f"{corpus.key} ({title}) left out: all {len(corpus.names)} labels are the "
                                   "baseline's placeholder ('neutral', valence -10), not real test labels")
            else:
                out[c] = corpus
        return out

    # -- features -------------------------------------------------------------------------
    def _feature_folder(self, modality: str) -> Path:
        feature_root = self.root / FEATURE_ROOT
        folder = feature_root / self.features[modality]
        if not folder.is_dir():
            have = sorted(p.name for p in feature_root.iterdir() if p.is_dir()) if feature_root.is_dir() else []
            found = f"no such folder; feature folders there: {', '.join(have)}" if have else \
                f"no such folder ({feature_root} has no feature folders)" if feature_root.is_dir() else \
                f"no such folder (no {FEATURE_ROOT}/ folder in {self.root})"
            raise DataError(folder, f"{modality}_feature", f"a folder of per-sample .npy features named "
                            f"{self.features[modality]!r} (choose one with --set {modality}_feature=NAME)", found)
        return folder

    def _load_features(self) -> None:
        folders = {m: self._feature_folder(m) for m, _ in MODALITIES}
        for c in list(self.corpora):
            corpus = self.corpora[c]
            listings = {}
            for m, _ in MODALITIES:
                listings[m] = _listing(folders[m], corpus, f"{m}_feature", required=c in REQUIRED)
                if listings[m] is None:  # an optional corpus without features in this modality
                    self._notes.append(f"{corpus.key} ({EXTRA[c]}) left out: no features for it in "
                                       f"{FEATURE_ROOT}/{self.features[m]}/")
                    del self.corpora[c]
                    break
            else:
                for m, _ in MODALITIES:
                    self._load_one(m, folders[m], corpus, c, listings[m])
        for m, _ in MODALITIES:  # one dim per feature over all corpora
            ref = self._meta[(m, "train")]
            for c in self.corpora:
                meta = self._meta[(m, c)]
                if meta["dim"] != ref["dim"]:
                    raise DataError(folders[m] / meta["first_file"], "shape", f"feature dim {ref['dim']} (as the "
                                    f"train_corpus samples of {m}_feature={folders[m].name})",
                                    f"dim {meta['dim']} in {self.corpora[c].key}")

    def _load_one(self, modality: str, folder: Path, corpus: Corpus, c: str, files: dict[str, list[Path]]) -> None:
        cache = NpyCache(NAME, _cache_key(folder.name, corpus, files))
        if not cache.exists():
            arrays, meta = convert_feature(folder, corpus, files, f"{modality}_feature")
            try:
                cache.write(arrays, meta)
            except OSError as e:  # e.g. a read-only cache root: keep the arrays in memory
                self._notes.append(f"cache not written ({type(e).__name__}: {e}); {modality}/{c} kept in memory")
                self._arrays[(modality, c)], self._meta[(modality, c)] = arrays, meta
                return
        self._cache_paths.add(cache.path.parent)
        meta = cache.meta()
        self._meta[(modality, c)] = meta
        self._arrays[(modality, c)] = {name: cache.load(name, mmap=name == "x") for name in meta["arrays"]}

    # -- spec and folds ---------------------------------------------------------------------
    def _build_spec(self) -> DatasetSpec:
        mods = []
        for m, group in MODALITIES:
            metas = [self._meta[(m, c)] for c in self.corpora]
            seq = any(x["sequence"] for x in metas)
            max_len = max((x["max_len"] or 1) for x in metas) if seq else None
            mods.append(ModalitySpec(m, metas[0]["dim"], max_len, group))
        train = self.corpora["train"]
        has_valence = bool((~np.isnan(train.valence)).any())
        if not has_valence:
            self._notes.append("train_corpus has no labelled valence (all -10 or missing): no valence head; "
                               "primary metric wf1 instead of mer_score")
        n = len(train.names)
        protocol = Protocol("kfold", FOLDS, f"stratified {N_FOLDS}-fold cross-validation on train_corpus ({n} "
                            f"samples) seeded by split_seed={self.split_seed} (MERBench's shuffle is unseeded); "
                            f"fold k: val = part k, train = the other four, test = test1_corpus")
        extra = (*((f"{m}_feature", self.features[m]) for m, _ in MODALITIES), ("split_seed", str(self.split_seed)),
                 ("folds", f"stratified {N_FOLDS}-fold on train_corpus"),
                 ("groups", "corpus name (MER2023 has no speaker ids)"),
                 ("extra_test_sets", ",".join(c for c in EXTRA if c in self.corpora) or "none"))
        return DatasetSpec(name=NAME, task="classification", class_names=CLASSES, modalities=tuple(mods),
                           protocol=protocol, primary_metric="mer_score" if has_valence else "wf1",
                           primary_direction="max", extra=extra, aux_scores=("valence",) if has_valence else ())

    def _assign_folds(self) -> np.ndarray:
        """Fold index (0..4) of each train sample: per class (in class order) a seeded permutation,
        dealt round-robin over the folds with one running counter, so every fold gets each class's
        share and fold sizes differ by at most one."""
        labels = self.corpora["train"].labels
        rng = np.random.default_rng(self.split_seed)
        order = np.concatenate([rng.permutation(np.flatnonzero(labels == k)) for k in range(len(CLASSES))])
        fold_of = np.empty(len(labels), dtype=np.int64)
        fold_of[order] = np.arange(len(labels)) % N_FOLDS
        return fold_of

    def split_indices(self, fold: str | None = None) -> dict[str, np.ndarray]:
        """Rows of ``train_corpus`` (name order) in the train and val parts of a fold (default: ours)."""
        fold = self.resolve_fold() if fold is None else fold
        if fold not in FOLDS:
            raise UserInputError(f"{NAME}: unknown fold {fold!r}; folds are {', '.join(FOLDS)}")
        k = FOLDS.index(fold)
        return {"train": np.flatnonzero(self.fold_of != k), "val": np.flatnonzero(self.fold_of == k)}

    # -- data -------------------------------------------------------------------------------
    def _dataset(self, c: str) -> TensorSampleDataset:
        """A whole corpus (all of it in memory or memory-mapped)."""
        if c not in self._sets:
            corpus = self.corpora[c]
            x, lengths = {}, {}
            for m in self.spec.modalities:
                arrays = self._arrays[(m.name, c)]
                t = torch.from_numpy(arrays["x"])
                if m.is_sequence:
                    if t.dim() == 2:  # this corpus stores the feature as vectors: one step each
                        t = t.unsqueeze(1)
                        lengths[m.name] = torch.ones(t.shape[0], dtype=torch.long)
                    else:
                        lengths[m.name] = torch.from_numpy(np.asarray(arrays["lengths"]))
                x[m.name] = t
            y = torch.from_numpy(corpus.labels)
            self._sets[c] = TensorSampleDataset(x=x, lengths=lengths, y=y, label=y.clone(), ids=list(corpus.names),
                                                groups=[c] * len(corpus.names),
                                                meta={"valence": torch.from_numpy(corpus.valence)})
        return self._sets[c]

    def setup(self, stage: str | None = None) -> None:
        parts = self.split_indices()
        train = self._dataset("train")
        self.train_set = train.subset(torch.from_numpy(parts["train"]))
        self.val_set = train.subset(torch.from_numpy(parts["val"]))
        self.test_set = self._dataset("test1")

    def extra_test_sets(self) -> dict[str, TensorSampleDataset]:
        """``test2`` (MER-NOISE) and ``test3`` (MER-SEMI; no valence, so scored by wf1), where present."""
        return {c: self._dataset(c) for c in EXTRA if c in self.corpora}

    # -- what records and `bench info` show ---------------------------------------------------
    def fingerprint(self) -> str:
        payload = {"version": LOADER_VERSION, "labels_sha256": self.label_sha256,
                   "features": {f"{m}/{c}": [self._meta[(m, c)][k] for k in ("feature", "dim", "n", "sha256")]
                                for (m, c) in sorted(self._meta)}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def notes(self) -> list[str]:
        out = []
        for m, _ in MODALITIES:
            spec = self.spec.modality(m)
            shape = f"(T<={spec.seq_len}, {spec.dim})" if spec.is_sequence else f"({spec.dim},)"
            faces = sum(self._meta[(m, c)]["faces"] for c in self.corpora)
            out.append(f"{m}: {FEATURE_ROOT}/{self.features[m]} {shape}"
                       + (f", {faces} sample(s) from face folders" if faces else ""))
        counts = ", ".join(f"{c} {len(k.names)}" for c, k in self.corpora.items())
        unlabelled = ", ".join(f"{c} {int(np.isnan(k.valence).sum())}" for c, k in self.corpora.items())
        out.append(f"{LABEL_FILE} sha256 {self.label_sha256}; samples: {counts}")
        out.append(f"valence not labelled (-10 or missing -> NaN, left out of val_mse): {unlabelled}")
        fixed = []
        for m, _ in MODALITIES:
            per = {c: self._meta[(m, c)]["repaired"] for c in self.corpora}
            tot = {k: sum(r[k] for r in per.values()) for k in ("nan", "posinf", "neginf")}
            if any(tot.values()):
                where = ", ".join(f"{c} {sum(r.values())}" for c, r in per.items() if sum(r.values()))
                fixed.append(f"{m}: NaN {tot['nan']}, +inf {tot['posinf']}, -inf {tot['neginf']} ({where})")
        out.append("non-finite feature values set to 0: " + ("; ".join(fixed) if fixed else "none found"))
        if self.train_set is not None:
            out.append(f"fold {self.resolve_fold()} (split_seed {self.split_seed}): train {len(self.train_set)}, "
                       f"val {len(self.val_set)}, test1 {len(self.test_set)}")
        if "test3" in self.corpora and np.isnan(self.corpora["test3"].valence).all():
            out.append("test3 (MER-SEMI) has no valence: its mer_score and val_mse are NaN; wf1 is its score")
        out += self._notes
        out.append("groups: the corpus name (MER2023 has no speaker ids)")
        if self._cache_paths:
            out.append(f"cache {', '.join(sorted(map(str, self._cache_paths)))}")
        return out
