"""Shared file handling for the real datamodules: clear errors, checksums, repairs of dirty values
and a memory-mapped ``.npy`` cache.

Every loader reports problems with :class:`DataError` (file, field, expected, found) or
:func:`missing_dataset` (where to get the data and which synthetic preset has the same shapes).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .spec import UserInputError


class DataError(UserInputError):
    """A malformed or inconsistent dataset file."""

    def __init__(self, file: str | Path, field: str, expected: str, found: Any) -> None:
        self.file, self.field, self.expected, self.found = str(file), field, expected, found
        super().__init__(f"{file}: field {field!r}: expected {expected}, found {found}")


def missing_dataset(name: str, path: str | Path | None, what: str, source: str, preset: str,
                    same_shapes: bool = True) -> UserInputError:
    """The error for a dataset that is not there: what was looked for, where to get it, what to try
    (``preset``: the synthetic preset with the same shapes, or with ``same_shapes=False`` the
    closest one)."""
    where = f"{path}" if path else "no --data-dir given and $AFFECTBENCH_DATA is not set"
    hint = "has the same shapes" if same_shapes else "is the closest synthetic preset (it needs no files)"
    return UserInputError(f"{name}: {what} not found ({where}). Get it from {source}; "
                          f"meanwhile `--data {preset}` {hint}")


def resolve_dir(name: str, data_dir: str | Path | None, what: str, source: str, preset: str,
                same_shapes: bool = True) -> Path:
    if not data_dir or not Path(data_dir).is_dir():
        raise missing_dataset(name, data_dir, what, source, preset, same_shapes)
    return Path(data_dir)


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_fingerprint(path: str | Path) -> str:
    """A cheap identity for cache keys: size, mtime and the SHA-256 of the first and last MiB.
    (Full SHA-256, for checks against published sums, is :func:`sha256_file`.)"""
    p = Path(path)
    st = p.stat()
    h = hashlib.sha256(f"{st.st_size}:{int(st.st_mtime)}".encode())
    with open(p, "rb") as f:
        h.update(f.read(1 << 20))
        if st.st_size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def repair_nonfinite(arr: np.ndarray, chunk_elems: int = 1 << 24) -> dict[str, int]:
    """Replace NaN, +inf and -inf by 0 **in place** (the reference loaders' rule) and count them.

    Works through the first axis in chunks of about ``chunk_elems`` values, so the temporary masks
    stay small even for multi-GB arrays."""
    counts = {"nan": 0, "posinf": 0, "neginf": 0}
    if not np.issubdtype(arr.dtype, np.floating) or arr.size == 0:
        return counts
    rows = max(1, chunk_elems // max(1, arr[0].size)) if arr.ndim > 0 else 1
    view = arr.reshape(1, -1) if arr.ndim == 0 else arr
    for start in range(0, view.shape[0], rows):
        part = view[start:start + rows]
        bad = ~np.isfinite(part)
        if bad.any():
            values = part[bad]
            counts["nan"] += int(np.isnan(values).sum())
            counts["posinf"] += int(np.isposinf(values).sum())
            counts["neginf"] += int(np.isneginf(values).sum())
            part[bad] = 0
    return counts


def read_feature_npy(path: Path, hasher: Any = None, hash_name: str | None = None) -> np.ndarray:
    """One per-sample feature file as a writable float32 array with leading size-1 axes squeezed:
    ``(D,)`` (utterance level) or ``(T, D)`` (frames). ``hasher`` (a hashlib object), if given, is
    fed ``hash_name`` (default: the file name) and the file's bytes, so content hashes cost no
    second read. Never unpickles."""
    import io

    data = Path(path).read_bytes()
    if hasher is not None:
        hasher.update(f"{hash_name or Path(path).name}\0".encode())
        hasher.update(data)
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(path, "<file>", "a NumPy .npy array", f"{type(e).__name__}: {e}") from None
    if not isinstance(arr, np.ndarray) or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(path, "dtype", "a numeric array", getattr(arr, "dtype", type(arr).__name__))
    while arr.ndim > 1 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim not in (1, 2) or 0 in arr.shape:
        raise DataError(path, "shape", "(D,) for an utterance-level or (T, D) for a frame-level feature, non-empty",
                        tuple(arr.shape))
    return np.array(arr, dtype=np.float32)  # a writable copy (in-place repairs follow)


def stack_features(items: list[np.ndarray], dim: int) -> tuple[dict[str, np.ndarray], int | None]:
    """Per-sample features as arrays: all ``(D,)`` -> ``{"x": (N, D)}``; otherwise end-padded
    ``{"x": (N, T, D), "lengths": (N,)}`` (a ``(D,)`` sample is one step). Returns them and the
    longest length (None for vectors)."""
    if not any(a.ndim == 2 for a in items):
        return {"x": np.stack(items)}, None
    lengths = np.array([a.shape[0] if a.ndim == 2 else 1 for a in items], dtype=np.int64)
    x = np.zeros((len(items), int(lengths.max()), dim), dtype=np.float32)
    for i, a in enumerate(items):
        x[i, : lengths[i]] = a.reshape(-1, dim)
    return {"x": x, "lengths": lengths}, int(lengths.max())


def cache_root() -> Path:
    return Path(os.environ.get("AFFECTBENCH_CACHE", Path.home() / ".cache" / "affectbench"))


class NpyCache:
    """A folder of ``.npy`` arrays plus ``meta.json``, written once and memory-mapped afterwards.

    ``NpyCache(kind, key)`` lives at ``<cache root>/<kind>/<key>/``; ``key`` should be the source
    file's fingerprint, so a changed source gets a new cache. Writing goes to a temporary folder
    renamed into place, so an interrupted conversion never leaves a half cache.
    """

    def __init__(self, kind: str, key: str, root: Path | None = None) -> None:
        self.path = (root or cache_root()) / kind / key

    def exists(self) -> bool:
        return (self.path / "meta.json").is_file()

    def write(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.path.parent))
        try:
            for name, arr in arrays.items():
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
            (tmp / "meta.json").write_text(json.dumps({**meta, "arrays": sorted(arrays)}, sort_keys=True))
            if self.path.exists():  # another process finished first
                return
            os.replace(tmp, self.path)
        finally:
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)

    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / "meta.json").read_text())

    def load(self, name: str, mmap: bool = True) -> np.ndarray:
        """The array, memory-mapped copy-on-write (``mmap_mode="c"``): pages are read from disk
        only when touched, nothing is ever written back, and ``torch.from_numpy`` accepts it."""
        return np.load(self.path / f"{name}.npy", mmap_mode="c" if mmap else None, allow_pickle=False)


def read_wav(path: Path | str | None, sample_rate: int, max_seconds: float | None = None, *,
             what: str = "the utterance's wav file", rate_hint: str = "") -> np.ndarray:
    """A mono wav as float32 ``(n,)``, cut to ``max_seconds``; never resampled.

    Integer PCM is scaled by its full range (int16 / 32768; unsigned 8-bit centred on 128), float
    is returned as stored. A ``(n, 1)`` array counts as mono. Errors name the file and the field:
    missing file (``what`` says which file was expected), another sample rate (``rate_hint`` says
    why this rate), more than one channel, no samples, an unknown sample format."""
    from scipy.io import wavfile

    if path is None or not Path(path).is_file():
        raise DataError(path, "<file>", what, "no such file")
    try:
        rate, data = wavfile.read(path)
    except (OSError, ValueError) as e:
        raise DataError(path, "<file>", "a RIFF/WAVE file (PCM or float)", f"{type(e).__name__}: {e}") from None
    if rate != sample_rate:
        raise DataError(path, "sample rate", f"{sample_rate} Hz" + (f" ({rate_hint})" if rate_hint else ""),
                        f"{rate} Hz")
    if data.ndim == 2 and data.shape[1] == 1:
        data = data[:, 0]
    if data.ndim != 1:
        raise DataError(path, "channels", "1 (mono)", f"{data.shape[1]} channels")
    if data.dtype == np.uint8:
        wave = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        wave = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    elif np.issubdtype(data.dtype, np.floating):
        wave = data.astype(np.float32)
    else:
        raise DataError(path, "sample format", "integer PCM or float", str(data.dtype))
    if max_seconds:
        wave = wave[: int(round(max_seconds * sample_rate))]
    if wave.size == 0:
        raise DataError(path, "samples", "at least one sample", "an empty recording (0 samples)")
    return wave
