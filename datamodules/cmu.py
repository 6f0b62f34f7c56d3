"""CMU-MOSEI and CMU-MOSI: sentiment regression from the processed pickles users download.

Two formats are read (``datasets.md`` §1.3-1.4):

* **MMSA** (thuiar/MMSA): ``aligned_50.pkl`` / ``unaligned_50.pkl``, a dict
  ``data[split][field]`` with splits ``train``/``valid``/``test`` and fields ``text`` (BERT
  features), ``text_bert`` (token ids, attention mask, segment ids), ``audio``, ``vision``,
  ``audio_lengths``/``vision_lengths`` (unaligned), ``regression_labels`` and ``id``
  (``"<video_id>$_$<clip_id>"``). Looked for as ``<data dir>/<file>``,
  ``<data dir>/Processed/<file>`` or ``<data dir>/{MOSEI,MOSI}/Processed/<file>``.
* **MulT** (yaohungt/Multimodal-Transformer): ``mosei_senti_data.pkl`` /
  ``mosei_senti_data_noalign.pkl`` (``mosi_data*.pkl`` for MOSI), keys ``text`` (GloVe),
  ``audio``, ``vision``, ``labels`` (N, 1, 1) and optionally ``id``.

Options: ``aligned`` (default True: the word-aligned file), ``source_format`` (``auto`` tries
MMSA, then MulT), ``text_input`` (``features``: the pre-extracted text features;
``tokens``: MMSA's ``text_bert`` rows as a ``(T, 3)`` sequence of token id, attention mask and
segment id, exact integers in float32, for models with their own transformer text encoder: cast
``x["text"][..., 0]`` to int64 for the embedding lookup) and ``strict_padding`` (below).

What the loader does to the data (every count is printed by ``bench run`` and ``bench info`` and
stored in each result record):

* Shapes are read from the arrays, never from a config: dims and lengths differ between MOSI and
  MOSEI and between files; a modality stored with one step (utterance-level file) or as
  ``(N, D)`` becomes a vector modality.
* Non-finite values (MOSEI audio holds ``-inf``; any modality may hold NaN) are set to 0, the rule
  of every public loader, and counted per modality and split.
* Masks. MMSA: audio/vision lengths from ``*_lengths`` where the file has them, else (aligned
  files) the BERT attention mask, which also gives the text lengths; valid steps come first. The
  padding after a length must be all zero in audio and vision: if it is not, the lengths and the
  data disagree (e.g. front padding) and loading stops, unless ``strict_padding=False``, which
  keeps the lengths and reports the number of disagreeing samples. Text features may be non-zero
  after the mask (BERT has outputs at padded positions); the mask hides them. Without
  ``text_bert`` every text step counts as valid. MulT files carry no lengths and are front-padded
  (MultiBench strips leading all-zero rows): leading all-zero steps are padding, and the valid
  steps are moved to the front.
* A sample whose modality has no valid step keeps one all-zero step (the batch needs one) and is
  counted; nothing is dropped.
* Labels must be finite and within [-3, 3]; ids must be unique across all splits. Exact-zero
  labels are counted per split (they separate the Has0 and Non0 metrics).

Discrete view: the sentiment sign in three classes (negative < 0, neutral = 0, positive > 0),
as ``DatasetSpec.discretize``. Protocol: the split as shipped (train/valid/test; one ``holdout``
fold); the primary metric is ``mae``, the L1 loss MMSA selects on.

Cache: the first load reads the pickle once (it must fit in memory then), validates and repairs
it, and writes ``.npy`` arrays to ``$AFFECTBENCH_CACHE/cmu/<key>/`` (default
``~/.cache/affectbench``), the key being the dataset, format and a fingerprint of the source file
(size, mtime, first and last MiB). Later loads memory-map those arrays: no pickle is read and
batches touch only their own rows. The full SHA-256 of the source is computed once, compared with
the checksum published in the MMSA README, and kept with the cache.
"""
from __future__ import annotations

import hashlib
import pickle
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .base import MERDataModule, TensorSampleDataset
from .io import DataError, NpyCache, file_fingerprint, missing_dataset, repair_nonfinite, sha256_file
from .registry import register_datamodule
from .spec import SIGN_CLASSES, DatasetSpec, ModalitySpec, Protocol, UserInputError

LOADER_VERSION = 1
SPLITS = {"train": "train", "valid": "val", "test": "test"}  # file split -> suite split
MODALITIES = (("text", "text"), ("audio", "audio"), ("vision", "visual"))  # name, group
SCORE_RANGE = (-3.0, 3.0)


def _load_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except UnicodeDecodeError:  # a Python-2 pickle
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a malformed file
        raise DataError(path, "<pickle>", "a readable pickle", f"{type(e).__name__}: {e}") from e


def _as_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _as_str(value.item())
    if isinstance(value, (tuple, list, np.ndarray)):
        return "_".join(_as_str(v) for v in value)
    return str(value)


class _Converter:
    """Reads one source pickle into validated, repaired arrays (the cache's content)."""

    def __init__(self, path: Path, fmt: str, strict_padding: bool = True) -> None:
        self.path, self.fmt, self.strict_padding = path, fmt, strict_padding
        self.arrays: dict[str, np.ndarray] = {}
        self.meta: dict[str, Any] = {"repaired": {}, "empty": {}, "padding_mismatch": {}, "zero_labels": {},
                                     "sizes": {}}

    # -- helpers ------------------------------------------------------------------------------
    def _field(self, split_data: dict, split: str, name: str, required: bool = True) -> np.ndarray | None:
        if name not in split_data:
            if required:
                raise DataError(self.path, f"{split}.{name}", "a field of that name",
                                f"fields {sorted(map(str, split_data))}")
            return None
        return split_data[name]

    def _float_array(self, value: Any, split: str, name: str) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DataError(self.path, f"{split}.{name}", "a numeric array", f"{type(value).__name__} ({e})") from e
        if arr.ndim not in (2, 3):
            raise DataError(self.path, f"{split}.{name}", "shape (N, T, D) or (N, D)", tuple(arr.shape))
        if not arr.flags.writeable:
            arr = arr.copy()
        return arr

    def _check_rows(self, split: str, name: str, n: int, got: int) -> None:
        if got != n:
            raise DataError(self.path, f"{split}.{name}", f"{n} rows (as {split}.labels)", f"{got} rows")

    # -- conversion ---------------------------------------------------------------------------
    def run(self) -> None:
        data = _load_pickle(self.path)
        if not isinstance(data, dict):
            raise DataError(self.path, "<top level>", "a dict with keys train, valid, test", type(data).__name__)
        missing = [s for s in SPLITS if s not in data]
        if missing:
            raise DataError(self.path, "<top level>", "keys train, valid, test", f"keys {sorted(map(str, data))}")
        seen_ids: dict[str, str] = {}
        dims: dict[str, tuple[str, tuple[int, ...]]] = {}
        for fsplit, split in SPLITS.items():
            d = data[fsplit]
            if not isinstance(d, dict):
                raise DataError(self.path, fsplit, "a dict of fields", type(d).__name__)
            self._split(d, fsplit, split, seen_ids, dims)
            data[fsplit] = None  # let the pickle's arrays go as soon as they are converted
        self.meta["dims"] = {m: list(shape) for m, (_, shape) in dims.items()}

    def _split(self, d: dict, fsplit: str, split: str, seen_ids: dict[str, str],
               dims: dict[str, tuple[str, tuple[int, ...]]]) -> None:
        mmsa = self.fmt == "mmsa"
        label_key = "regression_labels" if mmsa else "labels"
        label_field = f"{fsplit}.{label_key}"
        try:
            y = np.asarray(self._field(d, fsplit, label_key), dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(self.path, label_field, "numeric scores", str(e)) from e
        if y.ndim == 0 or y.size != y.shape[0]:
            raise DataError(self.path, label_field, "one score per sample, shape (N,), (N, 1) or (N, 1, 1)",
                            tuple(y.shape))
        y = y.reshape(-1)
        n = y.shape[0]
        if n == 0:
            raise DataError(self.path, label_field, "at least one sample", "0")
        bad = ~np.isfinite(y) | (y < SCORE_RANGE[0]) | (y > SCORE_RANGE[1])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(self.path, label_field, f"finite scores in [{SCORE_RANGE[0]:g}, {SCORE_RANGE[1]:g}]",
                            f"{int(bad.sum())} outside, e.g. row {i}: {y[i]}")
        self.meta["sizes"][split] = n
        self.meta["zero_labels"][split] = int((y == 0).sum())

        ids, groups = self._ids(d, fsplit, n)
        for i in ids:
            if i in seen_ids:
                raise DataError(self.path, f"{fsplit}.id", "ids unique across train, valid and test",
                                f"{i!r} in both {seen_ids[i]} and {fsplit}")
            seen_ids[i] = fsplit

        text_lengths = None
        tokens = self._field(d, fsplit, "text_bert", required=False) if mmsa else None
        if tokens is not None:
            tokens = self._tokens(tokens, fsplit, n)
            text_lengths = tokens[:, :, 1].sum(axis=1).astype(np.int64)
            self.meta["empty"].setdefault("text_tokens", {})[split] = int((text_lengths < 1).sum())
            self.arrays[f"{split}.text_tokens"] = tokens.astype(np.int32)
            self.arrays[f"{split}.text_tokens_lengths"] = np.maximum(text_lengths, 1)
        self.meta["has_tokens"] = tokens is not None and self.meta.get("has_tokens", True)

        for name, _group in MODALITIES:
            arr = self._float_array(self._field(d, fsplit, name), fsplit, name)
            self._check_rows(fsplit, name, n, arr.shape[0])
            counts = repair_nonfinite(arr)
            self.meta["repaired"].setdefault(name, {})[split] = counts
            lengths = self._lengths(d, fsplit, name, arr, n, text_lengths)
            if arr.ndim == 3 and arr.shape[1] == 1:  # utterance-level: one step is a vector
                arr, lengths = arr[:, 0], None
            if lengths is not None:
                self.meta["empty"].setdefault(name, {})[split] = int((lengths < 1).sum())
                self.arrays[f"{split}.{name}_lengths"] = np.maximum(lengths, 1)
            shape = (arr.shape[1], arr.shape[2]) if arr.ndim == 3 else (arr.shape[1],)
            if name in dims:  # same kind (vector or sequence) and feature dim in every split
                first, prev = dims[name]
                if len(prev) != len(shape) or prev[-1] != shape[-1]:
                    raise DataError(self.path, f"{fsplit}.{name}", f"per-sample shape like {first}.{name}: "
                                    f"{'(T, ' if len(prev) == 2 else '('}{prev[-1]})", f"{shape}")
                shape = (max(prev[0], shape[0]), shape[1]) if len(shape) == 2 else shape
            dims[name] = (dims.get(name, (fsplit,))[0], shape)
            self.arrays[f"{split}.{name}"] = arr
        self.arrays[f"{split}.y"] = y.astype(np.float32)
        self.arrays[f"{split}.ids"] = np.asarray(ids, dtype=str)
        self.arrays[f"{split}.groups"] = np.asarray(groups, dtype=str)

    def _ids(self, d: dict, fsplit: str, n: int) -> tuple[list[str], list[str]]:
        raw = self._field(d, fsplit, "id", required=self.fmt == "mmsa")
        if raw is None:
            self.meta["ids"] = "none in the file: row numbers; groups unknown (one per sample)"
            ids = [f"{fsplit}-{i}" for i in range(n)]
            return ids, ids
        ids = [_as_str(v) for v in raw]
        self._check_rows(fsplit, "id", n, len(ids))
        if self.fmt == "mmsa":
            bad = [i for i in ids if "$_$" not in i]
            if bad:
                raise DataError(self.path, f"{fsplit}.id", "'<video_id>$_$<clip_id>'", repr(bad[0]))
            groups = [i.split("$_$")[0] for i in ids]
        else:
            groups = [_as_str(v[0]) if isinstance(v, (tuple, list, np.ndarray)) and np.ndim(v) > 0 else i
                      for v, i in zip(raw, ids)]
        if len(set(ids)) != len(ids):
            first = next(i for i, c in Counter(ids).items() if c > 1)
            raise DataError(self.path, f"{fsplit}.id", "unique ids", f"{first!r} more than once")
        self.meta["ids"] = "from the file; group = video id"
        return ids, groups

    def _tokens(self, raw: Any, fsplit: str, n: int) -> np.ndarray:
        t = np.asarray(raw)
        if t.ndim != 3 or t.shape[0] != n or t.shape[1] != 3:
            raise DataError(self.path, f"{fsplit}.text_bert", f"shape ({n}, 3, T): token ids, attention mask, "
                            "segment ids", tuple(t.shape))
        if not np.all(np.isfinite(t)) or not np.all(t == np.round(t)) or (t < 0).any():
            raise DataError(self.path, f"{fsplit}.text_bert", "non-negative integer values", "non-integers")
        mask = t[:, 1]
        if not np.isin(mask, (0, 1)).all():
            raise DataError(self.path, f"{fsplit}.text_bert[:, 1]", "an attention mask of 0/1", "other values")
        lengths = mask.sum(axis=1).astype(np.int64)
        prefix = np.arange(mask.shape[1])[None, :] < lengths[:, None]
        if (mask.astype(bool) != prefix).any():
            row = int(np.flatnonzero((mask.astype(bool) != prefix).any(axis=1))[0])
            raise DataError(self.path, f"{fsplit}.text_bert[:, 1]", "attention masks with the valid tokens first",
                            f"a gap or front padding in row {row}")
        return np.ascontiguousarray(t.transpose(0, 2, 1)).astype(np.int64)

    def _lengths(self, d: dict, fsplit: str, name: str, arr: np.ndarray, n: int,
                 text_lengths: np.ndarray | None) -> np.ndarray | None:
        if arr.ndim == 2 or arr.shape[1] == 1:  # a vector per sample: no lengths
            return None
        T = arr.shape[1]
        if self.fmt == "mult":
            return self._front_to_back(arr)
        if name == "text":
            if text_lengths is not None and text_lengths.max(initial=0) > T:
                raise DataError(self.path, f"{fsplit}.text_bert", f"at most {T} tokens (text has {T} steps)",
                                int(text_lengths.max()))
            return text_lengths
        raw = self._field(d, fsplit, f"{name}_lengths", required=False)
        if raw is not None:
            lengths = np.asarray(raw).reshape(-1)
            self._check_rows(fsplit, f"{name}_lengths", n, lengths.shape[0])
            if not np.all(lengths == np.round(lengths)) or lengths.min(initial=0) < 0 or lengths.max(initial=0) > T:
                raise DataError(self.path, f"{fsplit}.{name}_lengths", f"integers in [0, {T}]",
                                f"values in [{lengths.min()}, {lengths.max()}]")
            lengths = lengths.astype(np.int64)
            source = f"{fsplit}.{name}_lengths"
        elif text_lengths is not None and T == np.shape(d["text"])[1]:  # word-aligned: the text's mask
            lengths = text_lengths
            source = f"{fsplit}.text_bert attention mask"
        else:
            return None
        bad = [i for i in range(n) if lengths[i] < T and np.any(arr[i, lengths[i]:])]
        if bad:
            if self.strict_padding:
                raise DataError(self.path, f"{fsplit}.{name}", f"all-zero steps after the lengths in {source}",
                                f"non-zero padding in {len(bad)} sample(s), e.g. row {bad[0]} (length "
                                f"{lengths[bad[0]]}); pass --set strict_padding=false to keep these lengths anyway")
            self.meta["padding_mismatch"].setdefault(name, {})[fsplit] = len(bad)
        return lengths

    @staticmethod
    def _front_to_back(arr: np.ndarray) -> np.ndarray:
        """Front-padded rows: leading all-zero steps are padding; move the valid steps to the front
        (in place) and return the lengths."""
        rows = max(1, (1 << 24) // max(1, arr[0].size))  # chunks keep the temporary small
        nonzero = np.concatenate([(arr[i:i + rows] != 0).any(axis=2) for i in range(0, arr.shape[0], rows)])
        has = nonzero.any(axis=1)
        first = np.where(has, nonzero.argmax(axis=1), arr.shape[1])
        T = arr.shape[1]
        for i in np.flatnonzero((first > 0) & has):
            f = int(first[i])
            arr[i, : T - f] = arr[i, f:]
            arr[i, T - f:] = 0
        return (T - first).astype(np.int64)


class CMUSentimentDataModule(MERDataModule):
    """Shared loader of CMU-MOSEI and CMU-MOSI (module docstring)."""

    DATASET: ClassVar[str] = ""
    MMSA_DIR: ClassVar[str] = ""
    MULT_NAME: ClassVar[str] = ""
    PRESET: ClassVar[str] = "synthetic-mosei"
    PUBLISHED_SHA256: ClassVar[dict[str, str]] = {}
    source: ClassVar[str] = ("the thuiar/MMSA README (aligned_50.pkl / unaligned_50.pkl; verify the SHA-256) or the "
                             "yaohungt/Multimodal-Transformer README (MulT pickles)")

    def __init__(self, data_dir: str | None = None, batch_size: int = 32, num_workers: int = 0,
                 fold: str | None = None, seed: int = 0, sampler: str = "random", aligned: bool = True,
                 source_format: str = "auto", text_input: str = "features", strict_padding: bool = True) -> None:
        super().__init__(data_dir=data_dir, batch_size=batch_size, num_workers=num_workers, fold=fold, seed=seed,
                         sampler=sampler)
        name = self.DATASET
        if source_format not in ("auto", "mmsa", "mult"):
            raise UserInputError(f"{name}: source_format must be auto, mmsa or mult, got {source_format!r}")
        if text_input not in ("features", "tokens"):
            raise UserInputError(f"{name}: text_input must be 'features' or 'tokens', got {text_input!r}")
        if not isinstance(aligned, bool):
            raise UserInputError(f"{name}: aligned must be true or false, got {aligned!r}")
        self.aligned, self.text_input, self.strict_padding = aligned, text_input, bool(strict_padding)
        self.path, self.format = self._find(data_dir, source_format)
        if text_input == "tokens" and self.format != "mmsa":
            raise UserInputError(f"{name}: text_input=tokens needs an MMSA pickle (its text_bert field); "
                                 f"{self.path.name} is a MulT pickle with GloVe text features")
        self._cache, self.meta = self._convert()
        self.spec = self._build_spec()
        self._sets: dict[str, TensorSampleDataset] = {}

    # -- files ------------------------------------------------------------------------------
    @classmethod
    def candidates(cls, root: Path, aligned: bool) -> dict[str, list[Path]]:
        mmsa = "aligned_50.pkl" if aligned else "unaligned_50.pkl"
        mult = f"{cls.MULT_NAME}_data.pkl" if aligned else f"{cls.MULT_NAME}_data_noalign.pkl"
        return {"mmsa": [root / mmsa, root / "Processed" / mmsa, root / cls.MMSA_DIR / "Processed" / mmsa],
                "mult": [root / mult]}

    def _find(self, data_dir: str | None, source_format: str) -> tuple[Path, str]:
        what = f"{'aligned' if self.aligned else 'unaligned'} {self.DATASET.upper()} pickle"
        if not data_dir or not Path(data_dir).is_dir():
            raise missing_dataset(self.DATASET, data_dir, what, self.source, self.PRESET)
        cands = self.candidates(Path(data_dir), self.aligned)
        order = ("mmsa", "mult") if source_format == "auto" else (source_format,)
        for fmt in order:
            for p in cands[fmt]:
                if p.is_file():
                    return p, fmt
        looked = ", ".join(str(p) for fmt in order for p in cands[fmt])
        raise missing_dataset(self.DATASET, looked, what, self.source, self.PRESET)

    @classmethod
    def is_available(cls, data_dir: str | None = None) -> bool:
        if not data_dir or not Path(data_dir).is_dir():
            return False
        return any(p.is_file() for a in (True, False) for ps in cls.candidates(Path(data_dir), a).values()
                   for p in ps)

    def _convert(self) -> tuple[NpyCache, dict[str, Any]]:
        key = f"{self.DATASET}-{self.format}-{self.path.name.removesuffix('.pkl')}-" \
              f"{file_fingerprint(self.path)}-v{LOADER_VERSION}{'' if self.strict_padding else '-lenient'}"
        cache = NpyCache("cmu", key)
        if not cache.exists():
            t0 = time.perf_counter()
            conv = _Converter(self.path, self.format, self.strict_padding)
            conv.run()
            sha = sha256_file(self.path)
            published = self.PUBLISHED_SHA256.get(self.path.name) if self.format == "mmsa" else None
            conv.meta.update(source=str(self.path), format=self.format, sha256=sha,
                             published_sha256=published, convert_s=round(time.perf_counter() - t0, 2))
            cache.write(conv.arrays, conv.meta)
            del conv
        return cache, cache.meta()

    # -- spec -------------------------------------------------------------------------------
    def _build_spec(self) -> DatasetSpec:
        mods = []
        dims = self.meta["dims"]
        for name, group in MODALITIES:
            shape = dims[name]
            if name == "text" and self.text_input == "tokens":
                if not self.meta.get("has_tokens"):
                    raise DataError(self.path, "text_bert", "a text_bert field (text_input=tokens)", "none")
                t = self._cache.load("train.text_tokens")
                mods.append(ModalitySpec("text", 3, int(t.shape[1]), "text"))
                continue
            mods.append(ModalitySpec(name, int(shape[-1]), int(shape[0]) if len(shape) == 2 else None, group))
        sizes = self.meta["sizes"]
        protocol = Protocol("holdout", ("holdout",), f"the standard split as shipped: train/valid/test = "
                            f"{sizes['train']}/{sizes['val']}/{sizes['test']}")
        text = {"mmsa": "bert-features (MMSA text)", "mult": "glove-300 (MulT text)"}[self.format]
        extra = (("source_format", self.format), ("source_file", self.path.name), ("aligned", str(self.aligned)),
                 ("text_input", "bert-token-ids" if self.text_input == "tokens" else text))
        return DatasetSpec(name=self.DATASET, task="regression", class_names=SIGN_CLASSES, modalities=tuple(mods),
                           protocol=protocol, primary_metric="mae", primary_direction="min",
                           score_range=SCORE_RANGE, extra=extra)

    # -- data -------------------------------------------------------------------------------
    def _dataset(self, split: str) -> TensorSampleDataset:
        if split not in self._sets:
            c = self._cache
            x: dict[str, torch.Tensor] = {}
            lengths: dict[str, torch.Tensor] = {}
            for m in self.spec.modalities:
                if m.name == "text" and self.text_input == "tokens":
                    x["text"] = torch.from_numpy(c.load(f"{split}.text_tokens"))
                    lengths["text"] = torch.from_numpy(c.load(f"{split}.text_tokens_lengths", mmap=False))
                    continue
                x[m.name] = torch.from_numpy(c.load(f"{split}.{m.name}"))
                if m.is_sequence and f"{split}.{m.name}_lengths" in self.meta["arrays"]:
                    lengths[m.name] = torch.from_numpy(c.load(f"{split}.{m.name}_lengths", mmap=False))
                elif m.is_sequence:  # no lengths known: every step is valid
                    lengths[m.name] = torch.full((x[m.name].shape[0],), x[m.name].shape[1], dtype=torch.long)
            y = torch.from_numpy(c.load(f"{split}.y", mmap=False))
            self._sets[split] = TensorSampleDataset(
                x=x, lengths=lengths, y=y, label=self.spec.discretize(y),
                ids=c.load(f"{split}.ids", mmap=False).tolist(), groups=c.load(f"{split}.groups", mmap=False).tolist())
        return self._sets[split]

    def setup(self, stage: str | None = None) -> None:
        self.resolve_fold()
        self.train_set, self.val_set, self.test_set = (self._dataset(s) for s in ("train", "val", "test"))

    # -- what records and `bench info` show ---------------------------------------------------
    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{self.meta['sha256']}|{self.aligned}|{self.text_input}|{LOADER_VERSION}".encode())
        return h.hexdigest()[:16]

    def notes(self) -> list[str]:
        m = self.meta
        out = [f"source: {m['source']} ({m['format']} format), sha256 {m['sha256']}"]
        if m.get("published_sha256"):
            same = m["published_sha256"] == m["sha256"]
            out.append("checksum matches the one published in the MMSA README" if same else
                       f"checksum differs from the one published in the MMSA README for {self.path.name} "
                       f"({m['published_sha256'][:16]}…): not the released file, or modified")
        out.append(f"text input: {dict(self.spec.extra)['text_input']}")
        fixed = []
        for name, per_split in m["repaired"].items():
            tot = {k: sum(c[k] for c in per_split.values()) for k in ("neginf", "posinf", "nan")}
            if any(tot.values()):
                where = ", ".join(f"{s} {sum(per_split[s].values())}" for s in ("train", "val", "test"))
                fixed.append(f"{name}: -inf {tot['neginf']}, +inf {tot['posinf']}, NaN {tot['nan']} ({where})")
        out.append("non-finite values set to 0: " + ("; ".join(fixed) if fixed else "none found"))
        empty = {n: v for n, v in m["empty"].items() if sum(v.values())}
        if empty:
            out.append("samples with no valid step (kept as one zero step): " +
                       "; ".join(f"{n} " + ", ".join(f"{s} {c}" for s, c in v.items() if c) for n, v in empty.items()))
        if any(m["padding_mismatch"].values()):
            out.append("strict_padding=false: samples whose padding is not zero after their length: " +
                       "; ".join(f"{n} {v}" for n, v in m["padding_mismatch"].items()))
        z = m["zero_labels"]
        out.append(f"labels exactly 0 (Has0 counts them positive, Non0 drops them): "
                   f"train {z['train']}, val {z['val']}, test {z['test']}")
        out.append(f"ids: {m['ids']}; cache {self._cache.path}")
        return out

    def repaired_counts(self) -> dict[str, int]:
        """Total non-finite values set to 0, per modality (all splits)."""
        return {name: sum(sum(c.values()) for c in per.values()) for name, per in self.meta["repaired"].items()}


@register_datamodule("mosei")
class MOSEIDataModule(CMUSentimentDataModule):
    """CMU-MOSEI sentiment in [-3, 3] from MMSA or MulT pickles (see datamodules/cmu.py)."""

    DATASET = "mosei"
    MMSA_DIR = "MOSEI"
    MULT_NAME = "mosei_senti"
    PRESET = "synthetic-mosei"
    PUBLISHED_SHA256 = {"unaligned_50.pkl": "ad8b23d50557045e7d47959ce6c5b955d8d983f2979c7d9b7b9226f6dd6fec1f",
                        "aligned_50.pkl": "45eccfb748a87c80ecab9bfac29582e7b1466bf6605ff29d3b338a75120bf791"}


@register_datamodule("mosi")
class MOSIDataModule(CMUSentimentDataModule):
    """CMU-MOSI sentiment in [-3, 3] from MMSA or MulT pickles (see datamodules/cmu.py)."""

    DATASET = "mosi"
    MMSA_DIR = "MOSI"
    MULT_NAME = "mosi"
    PRESET = "synthetic-mosei"
    PUBLISHED_SHA256 = {"unaligned_50.pkl": "78e0f8b5ef8ff71558e7307848fc1fa929ecb078203f565ab22b9daab2e02524",
                        "aligned_50.pkl": "d3994fd25681f9c7ad6e9c6596a6fe9b4beb85ff7d478ba978b124139002e5f9"}
