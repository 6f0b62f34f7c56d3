"""Random data in the real on-disk formats, for the perf harness and the tests.

Nothing here is real data: features are Gaussian noise plus a label-dependent direction (so a
model can learn something), written with the exact key structure of the files users download
(``datasets.md`` §1.3-1.4). Sizes, dims and dirty values are parameters.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

MOSEI_SIZES = {"train": 16326, "valid": 1871, "test": 4659}
MOSEI_DIMS = {"text": 768, "audio": 74, "vision": 35}


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sentiment on MOSEI's grid (multiples of 1/3 in [-3, 3]); exact zeros are common."""
    return (rng.integers(-9, 10, size=n) / 3.0).astype(np.float32)


def _features(rng: np.random.Generator, y: np.ndarray, steps: int, dim: int, snr: float = 0.5) -> np.ndarray:
    direction = rng.standard_normal(dim).astype(np.float32)
    direction /= np.linalg.norm(direction)
    x = rng.standard_normal((len(y), steps, dim), dtype=np.float32)
    x += (snr * y)[:, None, None] * direction[None, None, :]
    return x


def _zero_after(x: np.ndarray, lengths: np.ndarray) -> None:
    x[np.arange(x.shape[1])[None, :] >= lengths[:, None]] = 0


def mmsa_split(rng: np.random.Generator, n: int, split: str, aligned: bool, steps: dict[str, int],
               dims: dict[str, int], neg_inf_rate: float, nan_rate: float) -> dict[str, Any]:
    """One split of an MMSA ``aligned_50.pkl`` / ``unaligned_50.pkl`` dict."""
    y = _labels(rng, n)
    T = steps["text"]
    text_len = rng.integers(max(1, T // 2), T + 1, size=n)
    bert = np.zeros((n, 3, T), dtype=np.float32)  # MMSA stores the token rows as floats
    valid = np.arange(T)[None, :] < text_len[:, None]
    bert[:, 0] = np.where(valid, rng.integers(1000, 30000, size=(n, T)), 0)
    bert[:, 1] = valid
    out: dict[str, Any] = {
        "raw_text": np.array([f"utterance {i}" for i in range(n)], dtype=object),
        "text": _features(rng, y, T, dims["text"]),
        "text_bert": bert,
        "id": np.array([f"{split}{i // 4:05d}$_${i % 4}" for i in range(n)], dtype=object),
        "annotations": np.array(["Positive" if v > 0 else "Negative" if v < 0 else "Neutral" for v in y], dtype=object),
        "classification_labels": np.sign(y).astype(np.float32) + 1,
        "regression_labels": y,
    }
    for name in ("audio", "vision"):
        x = _features(rng, y, steps[name], dims[name])
        lengths = text_len if aligned else rng.integers(max(1, steps[name] // 3), steps[name] + 1, size=n)
        _zero_after(x, lengths)
        if name == "audio" and neg_inf_rate > 0:  # COVAREP's -inf, inside the valid steps
            hit = (rng.random(x.shape) < neg_inf_rate) & (np.arange(x.shape[1])[None, :, None] < lengths[:, None, None])
            x[hit] = -np.inf
        if nan_rate > 0:
            hit = (rng.random(x.shape) < nan_rate) & (np.arange(x.shape[1])[None, :, None] < lengths[:, None, None])
            x[hit] = np.nan
        out[name] = x
        if not aligned:
            out[f"{name}_lengths"] = lengths.astype(np.int64)
    return out


def write_mmsa_pickle(path: str | Path, sizes: dict[str, int] | None = None, aligned: bool = True,
                      steps: dict[str, int] | None = None, dims: dict[str, int] | None = None, seed: int = 0,
                      neg_inf_rate: float = 0.001, nan_rate: float = 0.0) -> Path:
    """Write an MMSA-format pickle (``data[split][field]``; splits train/valid/test)."""
    sizes = sizes or {"train": 64, "valid": 24, "test": 24}
    dims = dims or {"text": 16, "audio": 5, "vision": 7}
    steps = steps or ({"text": 12, "audio": 12, "vision": 12} if aligned else {"text": 12, "audio": 30, "vision": 20})
    if aligned and len({steps["text"], steps["audio"], steps["vision"]}) != 1:
        raise ValueError("aligned files have the same number of steps in every modality")
    rng = np.random.default_rng(seed)
    data = {split: mmsa_split(rng, n, split, aligned, steps, dims, neg_inf_rate, nan_rate)
            for split, n in sizes.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)
    return path


def write_mult_pickle(path: str | Path, sizes: dict[str, int] | None = None, steps: dict[str, int] | None = None,
                      dims: dict[str, int] | None = None, seed: int = 0, byte_ids: bool = True,
                      neg_inf_rate: float = 0.001) -> Path:
    """Write a MulT-format pickle: ``data[split]`` with ``text`` (GloVe-like), ``audio``,
    ``vision`` (front-padded with zero rows), ``labels`` (N, 1, 1) and ``id`` rows
    ``(video, start, end)`` (byte strings, as MOSI's)."""
    sizes = sizes or {"train": 64, "valid": 24, "test": 24}
    dims = dims or {"text": 300, "audio": 5, "vision": 7}
    steps = steps or {"text": 10, "audio": 10, "vision": 10}
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in sizes.items():
        y = _labels(rng, n)
        d: dict[str, Any] = {"labels": y.reshape(n, 1, 1)}
        for name in ("text", "audio", "vision"):
            x = _features(rng, y, steps[name], dims[name])
            lengths = rng.integers(max(1, steps[name] // 2), steps[name] + 1, size=n)
            x[np.arange(steps[name])[None, :] < (steps[name] - lengths)[:, None]] = 0  # front padding
            if name == "audio" and neg_inf_rate > 0:
                hit = (rng.random(x.shape) < neg_inf_rate) & (x != 0)
                x[hit] = -np.inf
            d[name] = x
        enc = (lambda s: s.encode()) if byte_ids else (lambda s: s)
        d["id"] = np.array([[enc(f"v{split}{i // 3}"), enc(f"{i % 3}.0"), enc(f"{i % 3 + 1}.0")] for i in range(n)],
                           dtype=object)
        data[split] = d
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)
    return path
