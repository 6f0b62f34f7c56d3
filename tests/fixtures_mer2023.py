"""A tiny MER2023 dataset in the exact MERBench layout (``datasets.md`` §3.3-3.4), for the tests.

``write_mer2023(root)`` writes ``root/label-6way.npz`` (pickled dicts name -> {"emo", "val"}) and
``root/features/<feature>/``: utterance-level vectors for the three default features (some audio
samples stored as ``(1, D)``), and a frame-level video feature ``clip-vit-large-patch14-FRA`` whose
samples are ``(T, D)`` files or, for every third sample, a folder of per-face ``(D,)`` files
written in reverse name order (the loader must stack them in sorted order). Features are noise
plus a class direction, so a model can learn something. Nothing here is real data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ("neutral", "angry", "happy", "sad", "worried", "surprise")
FEATURES = {"audio": "chinese-hubert-large-UTT", "text": "Baichuan-13B-Base-UTT",
            "video": "clip-vit-large-patch14-UTT"}
VIDEO_FRAMES = "clip-vit-large-patch14-FRA"
DIMS = {"audio": 6, "text": 5, "video": 4}
MAX_FRAMES = 7


def pickled(d: dict) -> np.ndarray:
    """A dict as the 0-d object array ``np.savez`` stores (and ``np.load(..., allow_pickle=True)`` returns)."""
    arr = np.empty((), dtype=object)
    arr[()] = d
    return arr


def write_labels(path: Path, corpora: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Write ``label-6way.npz`` with the given ``<corpus>_corpus`` dicts (key -> dict)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **{k: pickled(v) for k, v in corpora.items()})


def read_labels(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    with np.load(path, allow_pickle=True) as z:
        return {k: z[k].item() for k in z.files}


def write_mer2023(root: str | Path, *, n_train: int = 60, n_test1: int = 18, n_test2: int = 18, n_test3: int = 12,
                  seed: int = 0, test2_placeholder: bool = False, with_test3: bool = True) -> dict[str, Any]:
    """Write the dataset; returns ``{"root", "corpora" (the label dicts), "lengths" (video frames per
    sample), "faces" (names stored as face folders)}``.

    Train: classes cycle (``n_train // 6`` per class), valence on the 0.25 grid in [-5, 4.25] except
    ``sample_00000001`` (-10), ``sample_00000002`` (no ``val`` key) and ``sample_00000003`` (empty
    string): three unlabelled valences. test3 has valence -10 throughout (MER-SEMI); with
    ``test2_placeholder`` every test2 label is the baseline's placeholder ('neutral', -10).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    corpora: dict[str, dict[str, dict[str, Any]]] = {}
    counter = 0
    sizes = {"train_corpus": n_train, "test1_corpus": n_test1, "test2_corpus": n_test2}
    if with_test3:
        sizes["test3_corpus"] = n_test3
    for key, n in sizes.items():
        d: dict[str, dict[str, Any]] = {}
        for i in range(n):
            counter += 1
            emo = CLASSES[(i + rng.integers(0, 6) * (key != "train_corpus")) % 6]
            val: Any = float(np.clip(np.round(rng.normal(0, 2) * 4) / 4, -5.0, 4.25))
            if key == "test3_corpus":
                val = -10.0
            if key == "test2_corpus" and test2_placeholder:
                emo, val = "neutral", -10.0
            d[f"sample_{counter:08d}"] = {"emo": emo, "val": val}
        corpora[key] = d
    train = corpora["train_corpus"]
    train["sample_00000001"]["val"] = -10.0
    del train["sample_00000002"]["val"]
    train["sample_00000003"]["val"] = ""
    write_labels(root / "label-6way.npz", corpora)

    directions = {m: rng.standard_normal((6, dim)).astype(np.float32) for m, dim in DIMS.items()}
    for m, feature in FEATURES.items():
        (root / "features" / feature).mkdir(parents=True, exist_ok=True)
    (root / "features" / VIDEO_FRAMES).mkdir(parents=True, exist_ok=True)
    lengths: dict[str, int] = {}
    faces: list[str] = []
    j = 0
    for d in corpora.values():
        for name, entry in d.items():
            j += 1
            k = CLASSES.index(entry["emo"])
            for m, feature in FEATURES.items():
                x = (1.5 * directions[m][k] + rng.standard_normal(DIMS[m])).astype(np.float32)
                if m == "audio" and j % 5 == 0:
                    x = x[None, :]  # (1, D): squeezed to (D,) on load
                np.save(root / "features" / feature / f"{name}.npy", x)
            T = int(rng.integers(2, MAX_FRAMES + 1))
            lengths[name] = T
            frames = (1.5 * directions["video"][k] + rng.standard_normal((T, DIMS["video"]))).astype(np.float32)
            if j % 3 == 0:  # a folder of per-face files, written in reverse name order
                folder = root / "features" / VIDEO_FRAMES / name
                folder.mkdir()
                for t in reversed(range(T)):
                    np.save(folder / f"face_{t:03d}.npy", frames[t])
                faces.append(name)
            else:
                np.save(root / "features" / VIDEO_FRAMES / f"{name}.npy", frames)
    return {"root": root, "corpora": corpora, "lengths": lengths, "faces": faces}
