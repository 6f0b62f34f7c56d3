"""Bring your own features: benchmark any dataset stored as a folder of NumPy arrays.

``bench run --model M --data features --data-dir DIR`` reads ``DIR/manifest.json`` and the
``.npy`` / ``.npz`` arrays it names. Everything is validated when the datamodule is built; any
problem stops with one :class:`~datamodules.io.DataError` naming the file, the manifest field and
what was expected.

Manifest (format 1)
-------------------
A JSON object with these keys (any other key is an error)::

    {
      "name": "my-dataset",                     # required; shown by bench info, stored in records
      "task": "classification",                 # required: classification | regression | distribution
      "classes": ["neu", "hap", "sad"],         # classification / distribution: required, >= 2 unique
                                                #   names; regression: optional, 3 names for the
                                                #   discrete view y<0 / y==0 / y>0 (default
                                                #   negative, neutral, positive)
      "score_range": [-3, 3],                   # regression: required; labels outside are an error
      "modalities": [                           # required, >= 1, order kept
        {"name": "audio", "group": "audio", "file": "audio.npy", "lengths": "audio_len.npy"},
        {"name": "text", "group": "text", "file": "feats.npz", "key": "text"}
      ],
      "labels": "labels.npy",                   # required
      "ids": "ids.npy",                         # optional: unique ids (default: row numbers "0".."N-1")
      "groups": "groups.npy",                   # optional: speaker / subject / session per row
                                                #   (default: every sample its own group)
      "split": "split.npy",                     # "train" / "val" / "test" per row (holdout), or
      "folds": "leave_one_group_out",           #   leave one group out; exactly one of the two
      "primary_metric": "wa",                   # optional (default wa / mae / kl by task)
      "nonfinite": "error",                     # optional: error (default) | zero
      "description": "free text",               # optional
      "format_version": 1                       # optional; only 1 exists
    }

* **Array references.** ``labels``, ``ids``, ``groups``, ``split`` and a modality's ``lengths``
  are either a path to a ``.npy`` file or ``{"file": "x.npz", "key": "name"}`` (a ``.npz`` file
  needs its ``key``); a modality gives ``file`` (and ``key`` for an ``.npz``) itself. Paths are
  relative to the manifest's folder and must stay inside it (link a file in if it lives
  elsewhere). Arrays are read with ``allow_pickle=False``: save strings with ``dtype=str``.
* **Modalities.** ``name``: letters, digits, ``_ . -`` and unique; ``group``: physiological,
  behavioral, text, audio or visual. The array is ``(N, D)`` (a vector per sample) or
  ``(N, T, D)`` (a sequence); dims and lengths are read from the arrays. Feature dtypes: float16/
  32/64, int8/16/32/64, uint8 or bool, in native byte order; batches are cast to float32.
  ``lengths`` (sequences only) are ``(N,)`` integers in ``[1, T]``, default ``T`` (every step
  valid). Valid steps come first; the steps after a length may hold any finite values: batches
  zero them and the mask marks them as padding, so no model sees them.
* **Labels.** classification: ``(N,)`` class-name strings, mapped **by name** onto ``classes``,
  or integer indices into ``classes``; regression: ``(N,)`` finite floats within
  ``score_range``; distribution: ``(N, C)`` with ``C = len(classes)``, finite, ``>= 0``, rows
  summing to 1 within ``1e-3`` (each row is then divided by its sum, and the largest deviation is
  reported). Labels are never repaired.
* **Row counts.** Every array has one row per label row (``N``).
* **Protocol.** ``split``: one ``holdout`` fold; each of train, val and test needs at least one
  row; checkpoints are selected on val. ``folds: "leave_one_group_out"`` needs ``groups`` with at
  least 3 groups; one fold per group, named after it, in natural order (``S2`` before ``S10``):
  test = that group, validation = the next group (cyclically), train = the rest (as the synthetic
  leave-one-out presets).
* **Primary metric.** One of the task's metric suite (classification: wa, ua, wf1, mf1;
  regression: the MOSI/MOSEI sentiment suite mae, corr, acc7, acc5, acc2_has0, f1_has0,
  acc2_non0, f1_non0 - mae and corr suit any score range, the acc/f1 metrics assume sentiment
  scores centred on 0 as in [-3, 3]; distribution: chebyshev, clark, canberra, kl, cosine,
  intersection, top1). Its direction comes from ``metrics.METRIC_DIRECTIONS``.
* **Non-finite features.** NaN / +-inf in a modality array are an error unless the manifest says
  ``"nonfinite": "zero"``; then they are replaced by 0 (``io.repair_nonfinite``, applied to each
  batch as it is read) and counted per modality in :meth:`FeaturesDataModule.notes`, which
  ``bench run`` prints and stores in every record. Padding steps are checked too (NaN x 0 is NaN).

Memory: ``.npy`` files are memory-mapped (copy-on-write, nothing is written back), so only the
rows of a batch are read; the per-row arrays (labels, ids, groups, split, lengths) are read into
memory. ``.npz`` members cannot be memory-mapped and are read into memory whole: use ``.npy`` for
large feature arrays. Loading scans each feature array once for non-finite values (in chunks;
cached per process for an unchanged file).

Fingerprint: SHA-256 over the parsed manifest and the SHA-256 of every referenced file. Full
hashing reads every byte once (about 1-2 s per GB); for files over 64 MiB the digest is cached
under ``$AFFECTBENCH_CACHE/features/sha256/`` keyed by :func:`io.file_fingerprint` (size, mtime,
first and last MiB), so later runs do not re-read them.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from metrics import METRIC_DIRECTIONS
from metrics.classification import CLASSIFICATION_KEYS
from metrics.distribution import DISTRIBUTION_KEYS
from metrics.sentiment import SENTIMENT_KEYS

from .base import MERDataModule, TensorSampleDataset
from .batch import Batch, Sample
from .io import DataError, cache_root, file_fingerprint, missing_dataset, repair_nonfinite, resolve_dir, sha256_file
from .registry import register_datamodule
from .spec import GROUPS, SIGN_CLASSES, TASKS, DatasetSpec, ModalitySpec, Protocol

__all__ = ["FeaturesDataModule", "FeatureRows", "MANIFEST", "FORMAT_VERSION", "TOP_KEYS", "MODALITY_KEYS"]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
TOP_KEYS = ("name", "task", "classes", "score_range", "modalities", "labels", "ids", "groups", "split", "folds",
            "primary_metric", "nonfinite", "description", "format_version")
MODALITY_KEYS = ("name", "group", "file", "key", "lengths")
REF_KEYS = ("file", "key")
FOLD_KINDS = ("leave_one_group_out",)
NONFINITE = ("error", "zero")
SPLITS = ("train", "val", "test")
DEFAULT_PRIMARY = {"classification": "wa", "regression": "mae", "distribution": "kl"}
TASK_METRICS = {"classification": CLASSIFICATION_KEYS, "regression": SENTIMENT_KEYS,
                "distribution": DISTRIBUTION_KEYS}
DIST_TOLERANCE = 1e-3  # |row sum - 1| allowed for distribution labels (rounded annotations)
FEATURE_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
HASH_CACHE_MIN_BYTES = 64 << 20  # larger files keep their SHA-256 in the on-disk cache
SCAN_CHUNK_BYTES = 64 << 20  # non-finite scan: rows per chunk ~ this many bytes
SOURCE = ('the README\'s "Bring your own features" section (write manifest.json and .npy/.npz arrays into '
          'that folder; the format is documented in datamodules/features.py)')
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")

# process-wide caches keyed by (resolved path, npz key, size, mtime_ns): repeated datamodules of
# one sweep (the runner builds one per run) neither re-scan nor re-hash unchanged files
_SCAN_CACHE: dict[tuple, dict[str, int]] = {}
_SHA_CACHE: dict[tuple, str] = {}


def _natural_key(s: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", s) if p]


def _stat_key(path: Path, key: str | None) -> tuple:
    st = path.stat()
    return (str(path.resolve()), key, st.st_size, st.st_mtime_ns)


def _sha256(path: Path) -> str:
    """Full SHA-256 of a file; cached in-process, and on disk for files over 64 MiB."""
    sk = _stat_key(path, None)
    if sk in _SHA_CACHE:
        return _SHA_CACHE[sk]
    disk = None
    if sk[2] > HASH_CACHE_MIN_BYTES:
        disk = cache_root() / "features" / "sha256" / f"{file_fingerprint(path)}.txt"
        try:
            digest = disk.read_text().strip()
            if re.fullmatch(r"[0-9a-f]{64}", digest):
                _SHA_CACHE[sk] = digest
                return digest
        except OSError:
            pass
    digest = sha256_file(path)
    _SHA_CACHE[sk] = digest
    if disk is not None:
        try:
            disk.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=disk.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(digest)
            os.replace(tmp, disk)
        except OSError:
            pass  # a read-only cache is not an error
    return digest


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@dataclass(frozen=True)
class _Ref:
    """One array named by the manifest: a file (relative to the folder), an npz key, and the
    manifest field that named it (for error messages)."""

    path: Path
    rel: str
    key: str | None
    field: str  # e.g. "labels", "labels.file", "modalities[0].file"

    @property
    def key_field(self) -> str:
        return (self.field[: -len(".file")] if self.field.endswith(".file") else self.field) + ".key"

    @property
    def name(self) -> str:
        return f"{self.rel}[{self.key!r}]" if self.key is not None else self.rel

    @property
    def where(self) -> str:
        return f"{self.path}[{self.key!r}]" if self.key is not None else str(self.path)


class FeatureRows(TensorSampleDataset):
    """The rows ``rows`` of full (usually memory-mapped) feature arrays.

    Unlike the base dataset it never copies the features of its split: a batch gathers its rows
    from the full arrays, casts them to float32, repairs non-finite values if asked and zeroes the
    steps after each length, giving the same :class:`Batch` as the shared collate.
    ``x`` / ``lengths`` (the base class's per-split tensors) are built on access, in memory.
    """

    def __init__(self, arrays: dict[str, Tensor], full_lengths: dict[str, Tensor], rows: Tensor, y: Tensor,
                 label: Tensor, ids: list[str], groups: list[str], repair: frozenset[str] = frozenset()) -> None:
        n = rows.shape[0]
        if y.shape[0] != n or label.shape[0] != n or len(ids) != n or len(groups) != n:
            raise ValueError("rows, y, label, ids and groups must have one entry per sample")
        self.arrays, self.full_lengths, self.rows = arrays, full_lengths, rows
        self.y, self.label, self.ids, self.groups = y, label, ids, groups
        self.meta: dict[str, Tensor] = {}
        self.repair = repair  # modalities whose batches get non-finite values set to 0

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def _fix(self, name: str, t: Tensor, view: bool = False) -> Tensor:
        """float32, non-finite values set to 0 for the modalities in ``repair``; ``view``: ``t``
        shares memory with the mapped file (basic indexing), so it is copied first."""
        t = t.to(torch.float32, copy=view).contiguous()
        if name in self.repair:
            repair_nonfinite(t.numpy())
        return t

    @property
    def x(self) -> dict[str, Tensor]:  # type: ignore[override]
        return {k: self._fix(k, v[self.rows]) for k, v in self.arrays.items()}

    @property
    def lengths(self) -> dict[str, Tensor]:  # type: ignore[override]
        return {k: v[self.rows] for k, v in self.full_lengths.items()}

    def __getitem__(self, i: int) -> Sample:
        r = int(self.rows[i])
        xs = {}
        for name, t in self.arrays.items():
            row = t[r, : int(self.full_lengths[name][r])] if name in self.full_lengths else t[r]
            xs[name] = self._fix(name, row, view=True)
        return Sample(x=xs, y=self.y[i], label=int(self.label[i]), id=self.ids[i], group=self.groups[i])

    def __getitems__(self, indices: list[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.long)
        rows = self.rows[index]
        x: dict[str, Tensor] = {}
        mask: dict[str, Tensor] = {}
        for name, t in self.arrays.items():
            if name in self.full_lengths:
                lens = self.full_lengths[name][rows]
                m = torch.arange(int(lens.max()))[None, :] < lens[:, None]
                x[name] = self._fix(name, t[:, : m.shape[1]][rows]) * m.unsqueeze(-1)
                mask[name] = m
            else:
                x[name] = self._fix(name, t[rows])
                mask[name] = torch.ones(len(indices), dtype=torch.bool)
        y = self.y[index]
        return Batch(x=x, mask=mask, y=y if y.dim() > 1 else y.reshape(-1), label=self.label[index].long(),
                     ids=[self.ids[i] for i in indices], groups=[self.groups[i] for i in indices])

    def subset(self, index: Tensor) -> "FeatureRows":
        idx = index.tolist()
        return FeatureRows(self.arrays, self.full_lengths, self.rows[index], self.y[index], self.label[index],
                           [self.ids[i] for i in idx], [self.groups[i] for i in idx], self.repair)


@register_datamodule("features")
class FeaturesDataModule(MERDataModule):
    """Your own dataset: a folder with manifest.json and .npy/.npz arrays (see datamodules/features.py)."""

    source: ClassVar[str] = SOURCE

    def __init__(self, data_dir: str | None = None, batch_size: int = 32, num_workers: int = 0,
                 fold: str | None = None, seed: int = 0, sampler: str = "random") -> None:
        super().__init__(data_dir=data_dir, batch_size=batch_size, num_workers=num_workers, fold=fold, seed=seed,
                         sampler=sampler)
        root = resolve_dir("features", data_dir, f"a features folder with {MANIFEST}", SOURCE, "synthetic")
        self.root = root
        self.manifest_path = root / MANIFEST
        if not self.manifest_path.is_file():
            raise missing_dataset("features", self.manifest_path, MANIFEST, SOURCE, "synthetic")
        self.refs: list[_Ref] = []
        self.facts: dict[str, Any] = {}
        self.manifest = self._read_manifest()
        self._load()
        self.spec = self._build_spec()
        self._sets: dict[str, dict[str, FeatureRows]] = {}
        self._fingerprint: str | None = None

    @classmethod
    def is_available(cls, data_dir: str | None = None) -> bool:
        return bool(data_dir) and (Path(data_dir) / MANIFEST).is_file()

    # -- manifest ---------------------------------------------------------------------------
    def _err(self, field: str, expected: str, found: Any) -> DataError:
        return DataError(self.manifest_path, field, expected, found)

    def _read_manifest(self) -> dict[str, Any]:
        try:
            m = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise self._err("<json>", "valid JSON", f"{e.msg} at line {e.lineno}, column {e.colno}") from e
        except (OSError, UnicodeDecodeError) as e:
            raise self._err("<file>", "a readable UTF-8 text file", f"{type(e).__name__}: {e}") from e
        if not isinstance(m, dict):
            raise self._err("<top level>", "a JSON object", type(m).__name__)
        for key in m:
            if key not in TOP_KEYS:
                close = difflib.get_close_matches(key, TOP_KEYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self._err(key, f"one of the keys {', '.join(TOP_KEYS)}", f"an unknown key{hint}")
        if m.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
            raise self._err("format_version", f"{FORMAT_VERSION}", repr(m["format_version"]))
        for key in ("name", "task", "modalities", "labels"):
            if key not in m:
                raise self._err(key, "a required key", "none")
        if not isinstance(m["name"], str) or not m["name"].strip():
            raise self._err("name", "a non-empty string", repr(m["name"]))
        if m["task"] not in TASKS:
            raise self._err("task", f"one of {', '.join(TASKS)}", repr(m["task"]))
        task = m["task"]
        if "description" in m and not isinstance(m["description"], str):
            raise self._err("description", "a string", type(m["description"]).__name__)
        self._check_classes(m, task)
        if task == "regression":
            if "score_range" not in m:
                raise self._err("score_range", "a required key for task regression: [low, high]", "none")
            sr = m["score_range"]
            ok = (isinstance(sr, list) and len(sr) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                and math.isfinite(v) for v in sr) and sr[0] < sr[1])
            if not ok:
                raise self._err("score_range", "[low, high] with finite numbers, low < high", json.dumps(sr))
        elif "score_range" in m:
            raise self._err("score_range", "no score_range (it applies to task regression only)", f"task {task}")
        has_split, has_folds = "split" in m, "folds" in m
        if has_split == has_folds:
            raise self._err("split/folds", "exactly one of split (a per-row train/val/test array) or "
                            "folds (\"leave_one_group_out\")", "both" if has_split else "neither")
        if has_folds:
            if m["folds"] not in FOLD_KINDS:
                raise self._err("folds", f"one of {', '.join(map(repr, FOLD_KINDS))}", repr(m["folds"]))
            if "groups" not in m:
                raise self._err("groups", "a groups array (folds \"leave_one_group_out\" holds out one group "
                                "per fold)", "none")
        primary = m.get("primary_metric", DEFAULT_PRIMARY[task])
        if primary not in TASK_METRICS[task]:
            raise self._err("primary_metric", f"a {task} metric: {', '.join(TASK_METRICS[task])}", repr(primary))
        if m.get("nonfinite", "error") not in NONFINITE:
            raise self._err("nonfinite", f"one of {', '.join(NONFINITE)}", repr(m["nonfinite"]))
        mods = m["modalities"]
        if not isinstance(mods, list) or not mods:
            raise self._err("modalities", "a non-empty list of objects {name, group, file[, key][, lengths]}",
                            json.dumps(mods)[:80])
        seen = set()
        for i, mod in enumerate(mods):
            f = f"modalities[{i}]"
            if not isinstance(mod, dict):
                raise self._err(f, "an object {name, group, file[, key][, lengths]}", type(mod).__name__)
            for key in mod:
                if key not in MODALITY_KEYS:
                    raise self._err(f"{f}.{key}", f"one of the keys {', '.join(MODALITY_KEYS)}", "an unknown key")
            for key in ("name", "group", "file"):
                if key not in mod:
                    raise self._err(f"{f}.{key}", "a required key", "none")
            name = mod["name"]
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise self._err(f"{f}.name", "a name of letters, digits, '_', '.' or '-'", repr(name))
            if name in seen:
                raise self._err(f"{f}.name", "unique modality names", f"{name!r} twice")
            seen.add(name)
            if mod["group"] not in GROUPS:
                raise self._err(f"{f}.group", f"one of {', '.join(GROUPS)}", repr(mod["group"]))
        return m

    def _check_classes(self, m: dict[str, Any], task: str) -> None:
        if "classes" not in m:
            if task != "regression":
                raise self._err("classes", f"a required key for task {task}: the list of class names", "none")
            return
        c = m["classes"]
        if not isinstance(c, list) or not all(isinstance(v, str) and v.strip() for v in c):
            raise self._err("classes", "a list of non-empty strings", json.dumps(c)[:80])
        if len(c) < 2:
            raise self._err("classes", "at least two class names", len(c))
        if len(set(c)) != len(c):
            dup = next(v for v in c if c.count(v) > 1)
            raise self._err("classes", "unique class names", f"{dup!r} more than once")
        if task == "regression" and len(c) != 3:
            raise self._err("classes", "3 names for the discrete view of scores (y < 0, y == 0, y > 0)", len(c))

    def _ref(self, spec: Any, field: str, key: str | None = None, inline: bool = False) -> _Ref:
        """An array reference: "x.npy" or {"file": "x.npz", "key": "k"}; ``inline``: a modality's
        own ``file`` (a string) and ``key``."""
        if isinstance(spec, dict) and not inline:
            for k in spec:
                if k not in REF_KEYS:
                    raise self._err(f"{field}.{k}", f"one of the keys {', '.join(REF_KEYS)}", "an unknown key")
            if "file" not in spec:
                raise self._err(f"{field}.file", "a required key", "none")
            spec, key = spec["file"], spec.get("key")
            field = f"{field}.file"
        if not isinstance(spec, str) or not spec:
            raise self._err(field, 'a file name ("x.npy") or {"file": "x.npz", "key": "name"}', json.dumps(spec))
        rel = Path(spec)
        if rel.is_absolute() or ".." in rel.parts:
            raise self._err(field, "a path relative to the manifest's folder, inside it", spec)
        kfield = _Ref(Path(), "", None, field).key_field
        if rel.suffix == ".npz":
            if not isinstance(key, str) or not key:
                raise self._err(kfield, f"the name of an array in {spec} (a .npz needs a key)", json.dumps(key))
        elif rel.suffix == ".npy":
            if key is not None:
                raise self._err(kfield, f"no key ({spec} is a .npy file holding one array)", json.dumps(key))
        else:
            raise self._err(field, "a .npy or .npz file", spec)
        ref = _Ref(self.root / rel, spec, key, field)
        if not ref.path.is_file():
            raise DataError(ref.path, field, f"an existing file (named by {MANIFEST}, relative to its folder)",
                            "no such file")
        if ref.path.resolve() not in {r.path.resolve() for r in self.refs}:
            self.refs.append(ref)
        return ref

    def _array(self, ref: _Ref, mmap: bool = False) -> np.ndarray:
        try:
            if ref.key is None:
                return np.load(ref.path, mmap_mode="c" if mmap else None, allow_pickle=False)
            with np.load(ref.path, allow_pickle=False) as z:
                if ref.key not in z.files:
                    raise DataError(ref.path, ref.key_field, f"one of the arrays in the file: {', '.join(z.files)}",
                                    repr(ref.key))
                return z[ref.key]
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - any read failure is a malformed file
            raise DataError(ref.where, ref.field, "a readable NumPy array without pickled objects "
                            "(save strings with dtype=str)", f"{type(e).__name__}: {e}") from e

    def _rows(self, ref: _Ref, arr: np.ndarray, n: int) -> None:
        if arr.ndim == 0 or arr.shape[0] != n:
            raise DataError(ref.where, ref.field, f"{n} rows (one per label row)",
                            f"shape {tuple(arr.shape)}")

    def _strings(self, ref: _Ref, n: int) -> list[str]:
        arr = self._array(ref)
        if arr.ndim != 1:
            raise DataError(ref.where, ref.field, f"shape ({n},)", f"shape {tuple(arr.shape)}")
        self._rows(ref, arr, n)
        if arr.dtype.kind == "S":
            try:
                return [v.decode("utf-8") for v in arr.tolist()]
            except UnicodeDecodeError as e:
                raise DataError(ref.where, ref.field, "UTF-8 strings", str(e)) from e
        if arr.dtype.kind in "Uiu":
            return [str(v) for v in arr.tolist()]
        raise DataError(ref.where, ref.field, "strings (dtype=str) or integers", f"dtype {arr.dtype}")

    # -- arrays -----------------------------------------------------------------------------
    def _load(self) -> None:
        m = self.manifest
        task = m["task"]
        self.class_names = tuple(m.get("classes") or SIGN_CLASSES)
        # labels first: they fix N
        lref = self._ref(m["labels"], "labels")
        y, n = self._labels(lref, task)
        self.n = n
        self.y = y
        if "ids" in m:
            iref = self._ref(m["ids"], "ids")
            ids = self._strings(iref, n)
            if len(set(ids)) != n:
                seen: dict[str, int] = {}
                for i, v in enumerate(ids):
                    if v in seen:
                        raise DataError(iref.where, "ids", "unique ids", f"{v!r} in rows {seen[v]} and {i}")
                    seen[v] = i
            self.facts["ids"] = f"from {iref.name}"
        else:
            ids = [str(i) for i in range(n)]
            self.facts["ids"] = "row numbers (no ids array)"
        self.ids = ids
        if "groups" in m:
            gref = self._ref(m["groups"], "groups")
            groups = self._strings(gref, n)
            if any(not g for g in groups):
                raise DataError(gref.where, "groups", "non-empty group names", f"'' in row {groups.index('')}")
            self.facts["groups"] = f"from {gref.name} ({len(set(groups))} groups)"
        else:
            groups = list(ids)
            self.facts["groups"] = "none given: every sample is its own group"
        self.groups = groups
        if "split" in m:
            sref = self._ref(m["split"], "split")
            split = self._strings(sref, n)
            bad = sorted(set(split) - set(SPLITS))
            if bad:
                raise DataError(sref.where, "split", "only the values train, val, test",
                                f"{', '.join(map(repr, bad[:5]))} (row {split.index(bad[0])})")
            counts = {s: split.count(s) for s in SPLITS}
            for s in SPLITS:
                if counts[s] == 0:
                    raise DataError(sref.where, "split", f"at least one {s!r} row", f"none (counts {counts})")
            self.split = np.asarray(split)
            self.split_ref = sref
        else:
            self.split = None
            names = sorted(set(groups), key=_natural_key)
            if len(names) < 3:
                raise DataError(gref.where, "groups", 'at least 3 groups for folds "leave_one_group_out" '
                                "(test, validation and training groups)", f"{len(names)}: {', '.join(names)}")
            self.fold_groups = tuple(names)
        self.nonfinite = m.get("nonfinite", "error")
        self.features: dict[str, Tensor] = {}
        self.feature_lengths: dict[str, Tensor] = {}
        self.mod_refs: dict[str, _Ref] = {}
        self.repaired: dict[str, dict[str, int]] = {}
        self.modality_specs = []
        for i, mod in enumerate(m["modalities"]):
            self._modality(i, mod, n)

    def _labels(self, ref: _Ref, task: str) -> tuple[Tensor, int]:
        arr = self._array(ref)
        if task == "distribution":
            C = len(self.class_names)
            if arr.ndim != 2 or arr.shape[1] != C:
                raise DataError(ref.where, "labels", f"shape (N, {C}): one distribution over the {C} classes per row",
                                f"shape {tuple(arr.shape)}")
            if arr.dtype.kind not in "fiu":
                raise DataError(ref.where, "labels", "numbers", f"dtype {arr.dtype}")
            if arr.shape[0] == 0:
                raise DataError(ref.where, "labels", "at least one row", "0 rows")
            d = arr.astype(np.float64)
            bad = ~np.isfinite(d).all(axis=1) | (d < 0).any(axis=1)
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise DataError(ref.where, "labels", "finite values >= 0", f"{int(bad.sum())} bad row(s), e.g. row "
                                f"{r}: {np.array2string(d[r], precision=4)}")
            dev = np.abs(d.sum(axis=1) - 1.0)
            if (dev > DIST_TOLERANCE).any():
                r = int(np.argmax(dev))
                off = int((dev > DIST_TOLERANCE).sum())
                raise DataError(ref.where, "labels", f"rows summing to 1 (within {DIST_TOLERANCE:g})",
                                f"{off} row(s) off, e.g. row {r} sums to {d[r].sum():.6g}")
            self.facts["dist_deviation"] = float(dev.max()) if dev.size else 0.0
            d = d / d.sum(axis=1, keepdims=True)
            return torch.from_numpy(d.astype(np.float32)), d.shape[0]
        if arr.ndim != 1:
            raise DataError(ref.where, "labels", "shape (N,): one label per row", f"shape {tuple(arr.shape)}")
        n = arr.shape[0]
        if n == 0:
            raise DataError(ref.where, "labels", "at least one row", "0 rows")
        if task == "regression":
            if arr.dtype.kind not in "fiu":
                raise DataError(ref.where, "labels", "numeric scores", f"dtype {arr.dtype}")
            s = arr.astype(np.float64)
            lo, hi = self.manifest["score_range"]
            bad = ~np.isfinite(s) | (s < lo) | (s > hi)
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise DataError(ref.where, "labels", f"finite scores in score_range [{lo:g}, {hi:g}]",
                                f"{int(bad.sum())} outside, e.g. row {r}: {s[r]}")
            return torch.from_numpy(s.astype(np.float32)), n
        C = len(self.class_names)
        if arr.dtype.kind in "US":
            names = self._strings(ref, n)
            index = {c: j for j, c in enumerate(self.class_names)}
            unknown = sorted({v for v in names if v not in index})
            if unknown:
                raise DataError(ref.where, "labels", f"class names from classes ({', '.join(self.class_names)})",
                                f"unknown name(s) {', '.join(map(repr, unknown[:5]))} (row {names.index(unknown[0])})")
            self.facts["labels"] = "class names, mapped by name"
            return torch.tensor([index[v] for v in names], dtype=torch.long), n
        if arr.dtype.kind in "iu":
            bad = (arr < 0) | (arr >= C)
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise DataError(ref.where, "labels", f"class indices in [0, {C - 1}] (positions in classes)",
                                f"{int(bad.sum())} outside, e.g. row {r}: {arr[r]}")
            self.facts["labels"] = "integer indices into classes"
            return torch.from_numpy(arr.astype(np.int64)), n
        raise DataError(ref.where, "labels", "class-name strings (dtype=str) or integer class indices",
                        f"dtype {arr.dtype}")

    def _modality(self, i: int, mod: dict[str, Any], n: int) -> None:
        f = f"modalities[{i}]"
        name = mod["name"]
        ref = self._ref(mod["file"], f"{f}.file", key=mod.get("key"), inline=True)
        arr = self._array(ref, mmap=True)
        if arr.ndim not in (2, 3):
            raise DataError(ref.where, f"{f}.file", "shape (N, D) for vectors or (N, T, D) for sequences",
                            f"shape {tuple(arr.shape)}")
        self._rows(ref, arr, n)
        if min(arr.shape[1:]) < 1:
            raise DataError(ref.where, f"{f}.file", "T >= 1 and D >= 1", f"shape {tuple(arr.shape)}")
        if arr.dtype.name not in FEATURE_DTYPES or not arr.dtype.isnative:
            raise DataError(ref.where, f"{f}.file", "a numeric dtype in native byte order "
                            f"({', '.join(FEATURE_DTYPES)})", f"dtype {arr.dtype.str}")
        counts = self._scan(ref, arr)
        total = sum(v for k, v in counts.items() if k != "first_row")
        if total:
            if self.nonfinite != "zero":
                raise DataError(ref.where, f"{f}.file", "finite values (or \"nonfinite\": \"zero\" in the manifest "
                                "to set them to 0, counted)", f"{counts['nan']} NaN, {counts['posinf']} +inf, "
                                f"{counts['neginf']} -inf; first in row {counts['first_row']}")
            self.repaired[name] = counts
        seq_len = None
        if arr.ndim == 3:
            T = arr.shape[1]
            seq_len = T
            if "lengths" in mod:
                lref = self._ref(mod["lengths"], f"{f}.lengths")
                lens = self._array(lref)
                if lens.ndim != 1 or lens.dtype.kind not in "iu":
                    raise DataError(lref.where, f"{f}.lengths", f"integers of shape ({n},)",
                                    f"dtype {lens.dtype}, shape {tuple(lens.shape)}")
                self._rows(lref, lens, n)
                bad = (lens < 1) | (lens > T)
                if bad.any():
                    r = int(np.flatnonzero(bad)[0])
                    raise DataError(lref.where, f"{f}.lengths", f"lengths in [1, {T}] ({ref.name} has {T} steps)",
                                    f"{int(bad.sum())} outside, e.g. row {r}: {lens[r]}")
                self.feature_lengths[name] = torch.from_numpy(lens.astype(np.int64))
            else:
                self.feature_lengths[name] = torch.full((n,), T, dtype=torch.long)
        elif "lengths" in mod:
            raise self._err(f"{f}.lengths", f"no lengths: {ref.name} holds vectors (N, D); lengths apply to "
                            "(N, T, D) sequences", json.dumps(mod["lengths"]))
        self.features[name] = torch.from_numpy(arr)
        self.mod_refs[name] = ref
        self.modality_specs.append(ModalitySpec(name, int(arr.shape[-1]), seq_len, mod["group"]))

    @staticmethod
    def _scan(ref: _Ref, arr: np.ndarray) -> dict[str, int]:
        """Count NaN / +inf / -inf in chunks of rows (memory-mapped arrays are read once)."""
        if arr.dtype.kind != "f":
            return {"nan": 0, "posinf": 0, "neginf": 0, "first_row": -1}
        sk = _stat_key(ref.path, ref.key)
        if sk in _SCAN_CACHE:
            return dict(_SCAN_CACHE[sk])
        counts = {"nan": 0, "posinf": 0, "neginf": 0, "first_row": -1}
        row_bytes = max(1, arr[0].nbytes)
        step = max(1, SCAN_CHUNK_BYTES // row_bytes)
        for s in range(0, arr.shape[0], step):
            chunk = np.asarray(arr[s:s + step])
            bad = ~np.isfinite(chunk)
            if bad.any():
                counts["nan"] += int(np.isnan(chunk).sum())
                counts["posinf"] += int(np.isposinf(chunk).sum())
                counts["neginf"] += int(np.isneginf(chunk).sum())
                if counts["first_row"] < 0:
                    counts["first_row"] = s + int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])
        _SCAN_CACHE[sk] = dict(counts)
        return counts

    # -- spec -------------------------------------------------------------------------------
    def _build_spec(self) -> DatasetSpec:
        m = self.manifest
        task = m["task"]
        if self.split is not None:
            c = {s: int((self.split == s).sum()) for s in SPLITS}
            protocol = Protocol("holdout", ("holdout",), f"fixed split from {self.split_ref.name}: "
                                f"train/val/test = {c['train']}/{c['val']}/{c['test']}")
        else:
            protocol = Protocol("leave_one_out", self.fold_groups,
                                f"leave one group out ({len(self.fold_groups)} groups): test = the fold's group, "
                                "validation = the next group (cyclically), train = the rest")
        primary = m.get("primary_metric", DEFAULT_PRIMARY[task])
        extra = [("format", f"affectbench-features/{FORMAT_VERSION}")]
        if m.get("description"):
            extra.append(("description", m["description"]))
        return DatasetSpec(name=m["name"], task=task, class_names=self.class_names,
                           modalities=tuple(self.modality_specs), protocol=protocol, primary_metric=primary,
                           primary_direction=METRIC_DIRECTIONS[primary],
                           score_range=tuple(float(v) for v in m["score_range"]) if task == "regression" else None,
                           extra=tuple(extra))

    # -- data -------------------------------------------------------------------------------
    def split_indices(self, fold: str | None = None) -> dict[str, Tensor]:
        """Row indices (file order) of train / val / test for a fold (default: ours)."""
        fold = self.resolve_fold() if fold is None else fold
        if self.split is not None:
            return {s: torch.from_numpy(np.flatnonzero(self.split == s)) for s in SPLITS}
        names = self.fold_groups
        t = names.index(fold)
        test_g, val_g = names[t], names[(t + 1) % len(names)]
        g = np.asarray(self.groups)
        return {"train": torch.from_numpy(np.flatnonzero((g != test_g) & (g != val_g))),
                "val": torch.from_numpy(np.flatnonzero(g == val_g)),
                "test": torch.from_numpy(np.flatnonzero(g == test_g))}

    def setup(self, stage: str | None = None) -> None:
        fold = self.resolve_fold()
        if fold not in self._sets:
            label = self.spec.discretize(self.y)
            repair = frozenset(self.repaired)
            sets = {}
            for split, rows in self.split_indices(fold).items():
                idx = rows.tolist()
                sets[split] = FeatureRows(self.features, self.feature_lengths, rows, self.y[rows], label[rows],
                                          [self.ids[i] for i in idx], [self.groups[i] for i in idx], repair)
            self._sets = {fold: sets}
        sets = self._sets[fold]
        self.train_set, self.val_set, self.test_set = sets["train"], sets["val"], sets["test"]

    # -- what records and `bench info` show ---------------------------------------------------
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode())
            for ref in sorted(self.refs, key=lambda r: r.rel):
                h.update(f"|{ref.rel}:{_sha256(ref.path)}".encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def notes(self) -> list[str]:
        out = [f"manifest: {self.manifest_path} ({self.n} samples, format {FORMAT_VERSION})"]
        files = []
        for ref in sorted(self.refs, key=lambda r: r.rel):
            mem = " (read into memory)" if ref.path.suffix == ".npz" else ""
            files.append(f"{ref.rel} {_size(ref.path.stat().st_size)} sha256 {_sha256(ref.path)}{mem}")
        out.append("files: " + "; ".join(files))
        if self.repaired:
            out.append("non-finite feature values set to 0 (\"nonfinite\": \"zero\"): " + "; ".join(
                f"{k}: NaN {c['nan']}, +inf {c['posinf']}, -inf {c['neginf']}" for k, c in self.repaired.items()))
        else:
            out.append("non-finite feature values: none found")
        if "labels" in self.facts:
            out.append(f"labels: {self.facts['labels']}")
        if "dist_deviation" in self.facts:
            out.append(f"label distributions divided by their row sums (largest |sum - 1| was "
                       f"{self.facts['dist_deviation']:.2g})")
        out.append(f"ids: {self.facts['ids']}; groups: {self.facts['groups']}")
        if self.split is not None and "groups" in self.manifest:
            g = np.asarray(self.groups)
            by = {s: set(g[self.split == s].tolist()) for s in SPLITS}
            shared = len(by["test"] & (by["train"] | by["val"]))
            out.append(f"groups of the test split also in train/val: {shared} of {len(by['test'])}"
                       + (" (not group-independent)" if shared else " (group-independent split)"))
        return out
