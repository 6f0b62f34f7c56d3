"""DMER (Yang et al., Scientific Data 11:847, 2024): emotion distributions over 10 PANAS items from
the released per-participant features.

Files (``datasets.md`` §5.2-5.3): ``<data dir>/Features/<participant id>.mat`` (``<data dir>`` may
also be the ``Features`` folder itself), MATLAB v5 (read with scipy) or v7.3/HDF5 (read with h5py,
whose arrays come transposed and are turned back). Fields:

* ``feas`` (N, 913): one row per 1-s step inside a trial; columns [0, 90) EEG differential entropy
  (18 channels x 5 bands, column = 5 * channel + band), [90, 118) GSR (28), [118, 145) PPG (27),
  [145, 913) video LBP-TOP (768);
* ``vids`` (N,), (N, 1) or (1, N): the clip (video id 0-31) of each row;
* ``dis_label`` (32, 10): the participant's ratings per clip, indexed by video id. If absent, the
  ratings come from ``<data dir>/Raw_data/<id>/Panas.csv`` (32 lines: video id, then ten ratings;
  rows in any order). Each row is divided by its sum (ratings are >= 1, so every entry is > 0).

  ``Panas.csv`` may start with one header line; a missing or repeated video id, or a rating outside
  1-9, is an error. ``dis_label`` values only have to be positive (a stored distribution is fine).

Modalities: ``eeg`` as a sequence of 18 channel tokens of 5 band values (the row-major reshape of
the 90 columns; ``synthetic-physio`` declares the same values as one 90-vector, and ``--set
eeg_tokens=false`` gives that view here too), ``gsr`` (28) and ``ppg`` (27), all
``physiological``; ``video`` (768) ``behavioral``. Target: the clip's normalised ratings over
Inspired, Alert, Excited, Enthusiastic, Determined, Afraid, Upset, Nervous, Scared, Distressed
(collection order); groups: participant (``S<id>``); ids ``S<id>-v<clip>-r<row>``;
``Batch.meta["clip_type"]`` 0 positive (clips 0-7), 1 negative (8-15), 2 mixed (16-31), for
stratified reports. Primary metric ``chebyshev`` (min), as ``synthetic-physio``. Non-finite
feature values are an error (``--set nonfinite=zero`` sets them to 0 and counts them in the notes).

Protocols (``protocol``; ``methods/helo.md`` §2.3):

* ``loso`` (default, subject-independent): one fold per participant; test = that participant,
  validation = the next participant (cyclically), train = the rest.
* ``kfold``: participants shuffled with ``split_seed`` into ``k`` groups (default 5); fold i tests on
  group i, validates on group i+1 (cyclically), trains on the rest. Cheaper than 73 folds.
* ``subject_dependent``: one fold ``trial`` pooling every participant; per participant, whole clips
  are held out, stratified over the clip types (0-7 positive, 8-15 negative, 16-31 mixed): test
  2 positive + 2 negative + 4 mixed clips, validation 1 of each type, train the other 21 clips
  (drawn with ``split_seed`` among the clips the participant has rows for). No second of a clip
  is on two sides.
* ``subject_dependent_official``: the official code's split, **leaky**: per participant a random
  80/20 split of the rows (``random_split`` with ``int(0.8 * N)`` training rows and
  ``torch.Generator().manual_seed(3407)``, kaio-99/HeLo ``train.py``); adjacent 1-s rows of one clip
  share windows and labels and fall on both sides. The official code has no validation split; the
  suite selects on the first 10 % (at least 1 row) of each participant's shuffled training rows
  (equally leaky).
  Results under this protocol are labelled as such in the spec and every record.

``normalize`` (``datamodules/normalize.py``): ``global`` (default; training-split statistics),
``subject`` or ``none`` (HeLo's choice).

Cache: the ``.mat`` files are read once into ``$AFFECTBENCH_CACHE/dmer/<key>/`` (key: every file's
name, size, mtime and first/last MiB, plus the loader version) and memory-mapped afterwards. The
SHA-256 of every file is computed once while converting, kept in the cache's meta, listed in the
notes and combined into the data fingerprint (with protocol, ``k``, ``split_seed``, ``normalize``
and ``eeg_tokens``), so records from byte-identical copies of the data share a fingerprint.
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from . import normalize as nz
from .base import MERDataModule, TensorSampleDataset
from .io import DataError, NpyCache, file_fingerprint, missing_dataset, repair_nonfinite, sha256_file
from .registry import register_datamodule
from .spec import DatasetSpec, ModalitySpec, Protocol, UserInputError

NAME = "dmer"
LOADER_VERSION = 2
ITEMS = ("Inspired", "Alert", "Excited", "Enthusiastic", "Determined", "Afraid", "Upset", "Nervous", "Scared",
         "Distressed")
N_COLS, N_CLIPS = 913, 32
BLOCKS = {"eeg": (0, 90), "gsr": (90, 118), "ppg": (118, 145), "video": (145, 913)}
CLIP_TYPES = {"positive": range(0, 8), "negative": range(8, 16), "mixed": range(16, 32)}
CLIP_TYPE_OF = np.repeat(np.arange(3), [8, 8, 16])  # video id -> 0 positive, 1 negative, 2 mixed
SD_TEST = {"positive": 2, "negative": 2, "mixed": 4}  # subject_dependent: test clips per type (+1 validation)
HELO_SUBJECTS = tuple([1, 2] + list(range(5, 13)) + [14, 15] + list(range(18, 27)) + [28, 29, 30]
                      + list(range(32, 81)))  # kaio-99/HeLo params.py
PROTOCOLS = ("loso", "kfold", "subject_dependent", "subject_dependent_official")
SOURCE = "Zenodo DOI 10.5281/zenodo.11194571 (on request, data-use agreement)"


def read_mat(path: Path) -> dict[str, np.ndarray]:
    """The fields of a MATLAB file, v5 (scipy) or v7.3/HDF5 (h5py, transposed back)."""
    import h5py

    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:  # MATLAB writes column-major: h5py sees every array transposed
                return {k: np.asarray(f[k]).T for k in f.keys() if isinstance(f[k], h5py.Dataset)}
        except Exception as e:  # noqa: BLE001 - any reader failure is a malformed file
            raise DataError(path, "<file>", "a readable MATLAB v7.3 (HDF5) file", f"{type(e).__name__}: {e}") from e
    from scipy.io import loadmat

    try:
        return {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
    except Exception as e:  # noqa: BLE001 - any reader failure is a malformed file
        raise DataError(path, "<file>", "a MATLAB v5 or v7.3 .mat file", f"{type(e).__name__}: {e}") from e


def _panas_csv(path: Path) -> np.ndarray:
    """The (32, 10) ratings of ``Raw_data/<id>/Panas.csv``: row v from the line whose first value is v."""
    out = np.full((N_CLIPS, len(ITEMS)), np.nan)
    with open(path, newline="", encoding="utf-8-sig") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or not "".join(row).strip():
                continue
            try:
                vid, *vals = [float(v) for v in row if v.strip() != ""]
            except ValueError:
                if n == 1:  # a header line
                    continue
                raise DataError(path, f"line {n}", "numbers: video id, then ten ratings", row) from None
            if len(vals) != len(ITEMS) or not vid.is_integer() or not 0 <= vid < N_CLIPS:
                raise DataError(path, f"line {n}", "a video id 0-31 and ten ratings", row)
            if not all(1 <= v <= 9 for v in vals):
                raise DataError(path, f"line {n}", "ratings 1-9", row)
            if not np.isnan(out[int(vid)]).all():
                raise DataError(path, f"line {n}", "one line per video id", f"a second line for video {int(vid)}")
            out[int(vid)] = vals
    missing = np.flatnonzero(np.isnan(out).any(axis=1))
    if missing.size:
        raise DataError(path, "video ids", "one line for each of the 32 clips", f"none for {missing.tolist()}")
    return out


def _convert(files: list[Path], root: Path, nonfinite: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    feas, vids, subj, labels = [], [], [], []
    meta: dict[str, Any] = {"label_source": {}, "rows": {}, "repaired": 0, "sha256": {}, "size": 0}
    for path in files:
        d = read_mat(path)
        meta["sha256"][path.stem] = sha256_file(path)
        meta["size"] += path.stat().st_size
        if "feas" not in d:
            raise DataError(path, "feas", f"an (N, {N_COLS}) feature matrix", f"fields {sorted(d)}")
        x = np.asarray(d["feas"], dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != N_COLS or x.shape[0] == 0:
            raise DataError(path, "feas", f"shape (N, {N_COLS}) with N >= 1", tuple(x.shape))
        if "vids" not in d:
            raise DataError(path, "vids", "the video id of every row", f"fields {sorted(d)}")
        v = np.asarray(d["vids"]).reshape(-1)  # (N,), (N, 1) or (1, N)
        if not np.issubdtype(v.dtype, np.number):
            raise DataError(path, "vids", "numeric video ids 0-31", f"dtype {v.dtype}")
        if v.shape[0] != x.shape[0]:
            raise DataError(path, "vids", f"{x.shape[0]} ids (one per feas row)", v.shape[0])
        if not np.all(np.isfinite(v)) or not np.all(v == np.round(v)) or v.min() < 0 or v.max() >= N_CLIPS:
            raise DataError(path, "vids", "integers 0-31", f"values in [{v.min()}, {v.max()}]")
        v = v.astype(np.int64)
        bad = int((~np.isfinite(x)).sum())
        if bad and nonfinite == "error":
            raise DataError(path, "feas", "finite values (or --set nonfinite=zero)", f"{bad} NaN/inf")
        meta["repaired"] += sum(repair_nonfinite(x).values())
        if "dis_label" in d:
            try:
                lab, src = np.asarray(d["dis_label"], dtype=np.float64), "dis_label"
            except (TypeError, ValueError):
                raise DataError(path, "dis_label", "a numeric (32, 10) array", type(d["dis_label"]).__name__) from None
            if lab.shape != (N_CLIPS, len(ITEMS)):
                raise DataError(path, "dis_label", f"shape ({N_CLIPS}, {len(ITEMS)})", tuple(lab.shape))
        else:
            csv_path = root / "Raw_data" / path.stem / "Panas.csv"
            if not csv_path.is_file():
                raise DataError(path, "dis_label", f"the field, or the ratings in {csv_path}", "neither")
            lab, src = _panas_csv(csv_path), str(csv_path.relative_to(root))
        if not np.all(np.isfinite(lab)) or (lab <= 0).any():
            raise DataError(path, "dis_label", "positive ratings (1-9)", f"min {np.nanmin(lab)}")
        lab = lab / lab.sum(axis=1, keepdims=True)
        meta["label_source"][path.stem] = src
        meta["rows"][path.stem] = int(x.shape[0])
        feas.append(x)
        vids.append(v)
        subj += [path.stem] * x.shape[0]
        labels.append(lab[v].astype(np.float32))
    arrays = {"feas": np.concatenate(feas), "vids": np.concatenate(vids), "subject": np.asarray(subj, dtype=str),
              "y": np.concatenate(labels)}
    return arrays, meta


def _natural(name: str) -> tuple[int, str]:
    return (int(name), name) if name.isdigit() else (10**9, name)


@register_datamodule(NAME)
class DMERDataModule(MERDataModule):
    """DMER emotion distributions (10 PANAS items) from the released features; see datamodules/dmer.py."""

    source: ClassVar[str] = SOURCE

    def __init__(self, data_dir: str | None = None, batch_size: int = 32, num_workers: int = 0,
                 fold: str | None = None, seed: int = 0, sampler: str = "random", protocol: str = "loso",
                 k: int = 5, split_seed: int = 0, normalize: str = "global", nonfinite: str = "error",
                 eeg_tokens: bool = True) -> None:
        super().__init__(data_dir=data_dir, batch_size=batch_size, num_workers=num_workers, fold=fold, seed=seed,
                         sampler=sampler)
        if protocol not in PROTOCOLS:
            raise UserInputError(f"{NAME}: protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if normalize not in nz.MODES:
            raise UserInputError(f"{NAME}: normalize must be one of {', '.join(nz.MODES)}, got {normalize!r}")
        if nonfinite not in ("error", "zero"):
            raise UserInputError(f"{NAME}: nonfinite must be error or zero, got {nonfinite!r}")
        self.protocol_name, self.k, self.split_seed = protocol, int(k), int(split_seed)
        self.normalize = normalize
        if not isinstance(eeg_tokens, bool):
            raise UserInputError(f"{NAME}: eeg_tokens must be true or false, got {eeg_tokens!r}")
        self.eeg_tokens = eeg_tokens
        self.root, files = self._find(data_dir)
        key = hashlib.sha256("|".join(f"{p.name}:{file_fingerprint(p)}" for p in files).encode()).hexdigest()[:16]
        self._cache = NpyCache("dmer", f"{key}-{nonfinite}-v{LOADER_VERSION}")
        if not self._cache.exists():
            arrays, meta = _convert(files, self.root, nonfinite)
            self._cache.write(arrays, meta)
        self.meta = self._cache.meta()
        self.subjects = sorted(self.meta["rows"], key=_natural)
        if len(self.subjects) < 3 and protocol in ("loso", "kfold"):
            raise DataError(self.root / "Features", "participants", "at least 3 for a subject-independent protocol",
                            len(self.subjects))
        if protocol == "kfold" and not 3 <= self.k <= len(self.subjects):
            raise UserInputError(f"{NAME}: k must be in 3..{len(self.subjects)} (the participants), got {self.k}")
        self.key = key
        self.spec = self._build_spec()

    # -- files ------------------------------------------------------------------------------
    @staticmethod
    def _features_dir(data_dir: str | None) -> Path | None:
        if not data_dir:
            return None
        d = Path(data_dir)
        for cand in (d / "Features", d):
            if cand.is_dir() and any(cand.glob("*.mat")):
                return cand
        return None

    def _find(self, data_dir: str | None) -> tuple[Path, list[Path]]:
        feats = self._features_dir(data_dir)
        if feats is None:
            raise missing_dataset(NAME, data_dir, "Features/<participant id>.mat", SOURCE, "synthetic-physio")
        files = sorted(feats.glob("*.mat"), key=lambda p: _natural(p.stem))
        root = feats.parent if feats.name == "Features" else feats
        return root, files

    @classmethod
    def is_available(cls, data_dir: str | None = None) -> bool:
        return cls._features_dir(data_dir) is not None

    # -- spec and folds -----------------------------------------------------------------------
    def _fold_names(self) -> tuple[str, ...]:
        return {"loso": tuple(f"S{s}" for s in self.subjects), "kfold": tuple(f"k{i + 1}" for i in range(self.k)),
                "subject_dependent": ("trial",), "subject_dependent_official": ("official",)}[self.protocol_name]

    def _build_spec(self) -> DatasetSpec:
        desc = {
            "loso": "leave one participant out; validation = the next participant (cyclically)",
            "kfold": f"participants in {self.k} groups (split_seed {self.split_seed}); test = group i, "
                     "validation = group i+1 (cyclically)",
            "subject_dependent": "per participant, whole clips held out (stratified by clip type): test 2 positive "
                                 "+ 2 negative + 4 mixed clips, validation 1 of each type "
                                 f"(split_seed {self.split_seed})",
            "subject_dependent_official": "LEAKY: the official code's random 80/20 row split per participant "
                                          "(seed 3407) plus 10 % of the training rows for validation",
        }[self.protocol_name]
        kind = {"loso": "leave_one_out", "kfold": "kfold"}.get(self.protocol_name, "holdout")
        eeg = ModalitySpec("eeg", 5, 18, "physiological") if self.eeg_tokens else \
            ModalitySpec("eeg", 90, None, "physiological")
        mods = (eeg, ModalitySpec("gsr", 28, None, "physiological"),
                ModalitySpec("ppg", 27, None, "physiological"), ModalitySpec("video", 768, None, "behavioral"))
        extra = (("protocol", self.protocol_name), ("normalize", self.normalize), ("split_seed", str(self.split_seed)),
                 ("leaky", str(self.protocol_name == "subject_dependent_official")),
                 ("eeg_tokens", str(self.eeg_tokens)))
        return DatasetSpec(name=NAME, task="distribution", class_names=ITEMS, modalities=mods,
                           protocol=Protocol(kind, self._fold_names(), desc), primary_metric="chebyshev",
                           primary_direction="min", extra=extra)

    def split_rows(self, fold: str | None = None) -> dict[str, np.ndarray]:
        """Row indices (into the cached arrays) of train / val / test for a fold."""
        fold = self.resolve_fold() if fold is None else fold
        subj = self._cache.load("subject", mmap=False)
        vids = self._cache.load("vids", mmap=False)
        names = self.subjects
        p = self.protocol_name
        if p in ("loso", "kfold"):
            if p == "loso":
                units = [[s] for s in names]
                i = names.index(fold[1:])
            else:
                order = np.random.default_rng(self.split_seed).permutation(len(names))
                units = [[names[j] for j in order[g::self.k]] for g in range(self.k)]
                i = int(fold[1:]) - 1
            test, val = set(units[i]), set(units[(i + 1) % len(units)])
            in_test, in_val = np.isin(subj, list(test)), np.isin(subj, list(val))
            return {"train": np.flatnonzero(~in_test & ~in_val), "val": np.flatnonzero(in_val),
                    "test": np.flatnonzero(in_test)}
        out = {"train": [], "val": [], "test": []}
        for s in names:
            rows = np.flatnonzero(subj == s)
            if p == "subject_dependent":
                rng = np.random.default_rng([self.split_seed, _natural(s)[0]])
                v = vids[rows]
                present = set(np.unique(v).tolist())
                test_clips, val_clips = [], []
                for kind, n_test in SD_TEST.items():
                    clips = [c for c in CLIP_TYPES[kind] if c in present]
                    if len(clips) < n_test + 2:  # test + 1 validation + at least 1 training clip
                        raise DataError(self.root / "Features" / f"{s}.mat", "vids",
                                        f"at least {n_test + 2} {kind} clips for protocol subject_dependent",
                                        f"{len(clips)} ({clips})")
                    pick = rng.permutation(clips)
                    test_clips += pick[:n_test].tolist()
                    val_clips.append(int(pick[n_test]))
                out["test"].append(rows[np.isin(v, test_clips)])
                out["val"].append(rows[np.isin(v, val_clips)])
                out["train"].append(rows[~np.isin(v, test_clips + val_clips)])
            else:  # kaio-99/HeLo train.py: random_split(ds, [int(0.8 N), rest], Generator().manual_seed(3407))
                perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(3407)).numpy()
                n_train = int(0.8 * len(rows))
                train, test = rows[perm[:n_train]], rows[perm[n_train:]]
                n_val = max(1, int(round(0.1 * len(train))))
                out["val"].append(train[:n_val])
                out["train"].append(train[n_val:])
                out["test"].append(test)
        return {k: np.sort(np.concatenate(v)) for k, v in out.items()}

    # -- data -------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        fold = self.resolve_fold()
        if getattr(self, "_fold", None) == fold:
            return
        rows = self.split_rows(fold)
        feas = self._cache.load("feas")
        y = torch.from_numpy(np.asarray(self._cache.load("y", mmap=False)))
        subj = self._cache.load("subject", mmap=False)
        vids = self._cache.load("vids", mmap=False)
        xs = {split: {m: torch.from_numpy(np.ascontiguousarray(feas[r, a:b])) for m, (a, b) in BLOCKS.items()}
              for split, r in rows.items()}
        groups = {split: [f"S{s}" for s in subj[r]] for split, r in rows.items()}
        train, (val, test) = nz.apply(self.normalize, xs["train"], [xs["val"], xs["test"]],
                                      groups=(groups["train"], [groups["val"], groups["test"]]))
        sets = {}
        for split, x in (("train", train), ("val", val), ("test", test)):
            r = rows[split]
            lengths = {}
            if self.eeg_tokens:  # row-major: token c = columns 5c..5c+4 (channel c, bands delta..gamma)
                x = {**x, "eeg": x["eeg"].reshape(-1, 18, 5)}
                lengths = {"eeg": torch.full((len(r),), 18)}
            ids = [f"S{s}-v{v:02d}-r{i}" for s, v, i in zip(subj[r], vids[r], r)]
            clip_type = torch.from_numpy(CLIP_TYPE_OF[vids[r]].astype(np.float32))
            sets[split] = TensorSampleDataset(x=x, lengths=lengths, y=y[r], label=self.spec.discretize(y[r]),
                                              ids=ids, groups=groups[split], meta={"clip_type": clip_type})
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]
        self._fold = fold

    # -- records and `bench info` -------------------------------------------------------------
    def content_sha256(self) -> str:
        """One SHA-256 over every file's name and SHA-256 (computed once, while converting)."""
        sums = self.meta["sha256"]
        return hashlib.sha256("".join(f"{s}:{sums[s]}\n" for s in self.subjects).encode()).hexdigest()

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.content_sha256()}|{self.protocol_name}|{self.k}|{self.split_seed}|"
                              f"{self.normalize}|{self.eeg_tokens}|{LOADER_VERSION}".encode()).hexdigest()[:16]

    def notes(self) -> list[str]:
        m = self.meta
        rows = m["rows"]
        missing = [s for s in HELO_SUBJECTS if str(s) not in rows]
        extra = [s for s in self.subjects if not (s.isdigit() and int(s) in HELO_SUBJECTS)]
        out = [f"{len(rows)} participants, {sum(rows.values())} rows (min {min(rows.values())}, "
               f"max {max(rows.values())} per participant) from {self.root}/Features",
               "rows per participant: " + ", ".join(f"{s}:{rows[s]}" for s in self.subjects),
               f"participants of HeLo's list (73) not found: {len(missing)}" + (f" {missing}" if missing else "")
               + (f"; not in HeLo's list: {extra}" if extra else "")]
        csv_src = sorted((s for s, src in m["label_source"].items() if src != "dis_label"), key=_natural)
        n_field = len(m["label_source"]) - len(csv_src)
        out.append(f"labels: dis_label field for {n_field} participants"
                   + (f"; from Raw_data/<id>/Panas.csv for {csv_src}" if csv_src else "")
                   + "; rows normalised to sum 1")
        out.append(f"non-finite feature values set to 0: {m['repaired']}")
        out.append(f"normalize: {self.normalize}" + (" (statistics of the training split only)"
                                                     if self.normalize == "global" else ""))
        if self.protocol_name == "subject_dependent_official":
            out.append("protocol subject_dependent_official is LEAKY (adjacent 1-s rows of one clip on both sides "
                       "of the split): never compare it with the other protocols")
        if self.eeg_tokens:
            out.append("eeg: 18 channel tokens x 5 bands (row-major reshape, column = 5 * channel + band)")
        else:
            out.append("eeg: one 90-vector (as synthetic-physio)")
        if getattr(self, "_fold", None) is not None:
            sizes = {k: len(getattr(self, f"{k}_set")) for k in ("train", "val", "test")}
            out.append(f"fold {self._fold} ({self.protocol_name}): train {sizes['train']}, val {sizes['val']}, "
                       f"test {sizes['test']} rows")
        out.append(f"files: {len(self.subjects)} .mat, {m['size'] / 2**20:.1f} MiB; content sha256 "
                   f"{self.content_sha256()[:16]} (per file, computed once while converting: " +
                   ", ".join(f"{s} {m['sha256'][s][:12]}" for s in self.subjects) + ")")
        out.append(f"cache {self._cache.path} (key: file names, sizes, mtimes, first/last MiB; "
                   f"loader v{LOADER_VERSION})")
        return out
