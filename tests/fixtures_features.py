"""Writers of small datasets in the ``features`` format (datamodules/features.py), one per task.

Each returns the folder; the labels carry signal in the features so that a model can learn them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ["neu", "hap", "sad", "ang"]
PANAS = ["alert", "excited", "upset", "nervous", "calm"]


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "manifest.json").read_text())


def write_classification(folder: Path, n: int = 72, seed: int = 0) -> Path:
    """4 classes with string labels; ``audio`` (N, 10, 6) sequences with lengths, ``text`` (N, 5)
    vectors and ``video`` (N, 4, 3) sequences without lengths, both from ``feats.npz``; ids,
    speaker groups and a train/val/test split (train 48, val 12, test 12)."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    k = np.arange(n) % len(CLASSES)
    rng.shuffle(k)
    lengths = rng.integers(1, 11, size=n)
    lengths[0] = 10
    audio = rng.normal(size=(n, 10, 6)).astype(np.float32)
    audio[:, :, :4] += 2.0 * np.eye(4, dtype=np.float32)[k][:, None, :]
    for i, L in enumerate(lengths):
        audio[i, L:] = 7.0  # non-zero padding: the batch zeroes it, the mask hides it
    text = rng.normal(size=(n, 5)).astype(np.float64)  # float64: cast to float32 in batches
    text[:, :4] += 2.0 * np.eye(4)[k]
    video = rng.normal(size=(n, 4, 3)).astype(np.float16)
    np.save(folder / "audio.npy", audio)
    np.save(folder / "audio_len.npy", lengths.astype(np.int64))
    np.savez(folder / "feats.npz", text=text, video=video)
    np.save(folder / "labels.npy", np.array([CLASSES[j] for j in k], dtype=str))
    np.save(folder / "ids.npy", np.array([f"utt{i:03d}" for i in range(n)], dtype=str))
    np.save(folder / "groups.npy", np.array([f"spk{i % 6}" for i in range(n)], dtype=str))
    split = np.array(["train"] * (n * 4 // 6) + ["val"] * (n // 6) + ["test"] * (n - n * 4 // 6 - n // 6))
    np.save(folder / "split.npy", split)
    return write_manifest(folder, {
        "name": "toy-emotions",
        "task": "classification",
        "classes": CLASSES,
        "modalities": [
            {"name": "audio", "group": "audio", "file": "audio.npy", "lengths": "audio_len.npy"},
            {"name": "text", "group": "text", "file": "feats.npz", "key": "text"},
            {"name": "video", "group": "visual", "file": "feats.npz", "key": "video"},
        ],
        "labels": "labels.npy",
        "ids": "ids.npy",
        "groups": "groups.npy",
        "split": "split.npy",
        "description": "fixture",
    })


def write_regression(folder: Path, n: int = 60, seed: int = 1) -> Path:
    """Sentiment scores in [-3, 3] (multiples of 1/3, exact zeros included) from a vector
    ``text`` and a sequence ``audio`` (no lengths); holdout split; no ids, no groups."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    y = rng.integers(-9, 10, size=n) / 3.0
    y[:6] = 0.0
    text = rng.normal(size=(n, 8)).astype(np.float32)
    text[:, 0] += y
    audio = rng.normal(size=(n, 5, 4)).astype(np.float32)
    np.save(folder / "text.npy", text)
    np.save(folder / "audio.npy", audio)
    np.save(folder / "scores.npy", y.astype(np.float32))
    np.save(folder / "split.npy", np.array(["train", "val", "test"])[np.arange(n) % 3])
    return write_manifest(folder, {
        "name": "toy-sentiment",
        "task": "regression",
        "score_range": [-3, 3],
        "modalities": [
            {"name": "text", "group": "text", "file": "text.npy"},
            {"name": "audio", "group": "audio", "file": "audio.npy"},
        ],
        "labels": "scores.npy",
        "split": "split.npy",
    })


def write_distribution(folder: Path, n_groups: int = 4, per_group: int = 12, seed: int = 2) -> Path:
    """Distributions over 5 PANAS items from ``eeg`` (physiological vectors) and ``face``
    (behavioral sequences with lengths); groups ``S1..S<n_groups>`` (written in shuffled order),
    folds ``leave_one_group_out``; labels and lengths in one ``arrays.npz``."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = n_groups * per_group
    clip = np.arange(n) % len(PANAS)
    logits = 3.0 * np.eye(len(PANAS))[clip] + rng.normal(scale=0.3, size=(n, len(PANAS)))
    dist = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    eeg = rng.normal(size=(n, 7)).astype(np.float32)
    eeg[:, :5] += 2.0 * np.eye(len(PANAS))[clip]
    face = rng.normal(size=(n, 6, 3)).astype(np.float32)
    lengths = rng.integers(2, 7, size=n)
    for i, L in enumerate(lengths):
        face[i, L:] = 0.0
    order = rng.permutation(n_groups)  # groups not in natural order in the file
    groups = np.array([f"S{order[i // per_group] + 1}" for i in range(n)])
    np.save(folder / "eeg.npy", eeg)
    np.save(folder / "face.npy", face)
    np.savez(folder / "arrays.npz", dist=dist.astype(np.float32), face_len=lengths.astype(np.int32), groups=groups)
    return write_manifest(folder, {
        "name": "toy-physio",
        "task": "distribution",
        "classes": PANAS,
        "modalities": [
            {"name": "eeg", "group": "physiological", "file": "eeg.npy"},
            {"name": "face", "group": "behavioral", "file": "face.npy",
             "lengths": {"file": "arrays.npz", "key": "face_len"}},
        ],
        "labels": {"file": "arrays.npz", "key": "dist"},
        "groups": {"file": "arrays.npz", "key": "groups"},
        "folds": "leave_one_group_out",
    })
