"""A tiny DMER ``Features/`` folder in the released format (``datasets.md`` §5.3): MATLAB v5 files
written with scipy, one v7.3 (HDF5, MATLAB's transposed layout) written with h5py, and one
participant without ``dis_label`` whose ratings are in ``Raw_data/<id>/Panas.csv`` (rows shuffled).
Features carry the clip's label in a few columns of every block, so a model can learn something."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import savemat


def ratings(rng: np.random.Generator) -> np.ndarray:
    r = rng.integers(1, 10, size=(32, 10)).astype(np.float64)
    r[:8, :5] += 4   # positive clips: positive-affect items high
    r[8:16, 5:] += 4  # negative clips
    return np.minimum(r, 9)


def subject(rng: np.random.Generator, rows_per_clip: int) -> dict[str, np.ndarray]:
    lab = ratings(rng)
    vids = np.repeat(np.arange(32), rows_per_clip)
    feas = rng.normal(size=(len(vids), 913)).astype(np.float64) * 3 + 20
    dist = lab / lab.sum(1, keepdims=True)
    for a in (0, 90, 118, 145):
        feas[:, a:a + 10] += 8 * dist[vids]
    return {"feas": feas, "vids": vids.reshape(-1, 1).astype(np.float64), "dis_label": lab}


def write_v73(path: Path, fields: dict[str, np.ndarray]) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        for k, v in fields.items():
            ds = f.create_dataset(k, data=np.asarray(v).T)  # MATLAB stores column-major: h5py sees the transpose
            ds.attrs["MATLAB_class"] = np.bytes_("double")


def write_dmer(root: str | Path, subjects=(1, 2, 5, 6, 7), rows_per_clip: int = 3, v73=(7,), no_label=(6,),
               seed: int = 0) -> dict[int, dict[str, np.ndarray]]:
    root = Path(root)
    (root / "Features").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for s in subjects:
        fields = subject(rng, rows_per_clip)
        out[s] = fields
        path = root / "Features" / f"{s}.mat"
        if s in no_label:
            lab = fields["dis_label"]
            csv = root / "Raw_data" / str(s) / "Panas.csv"
            csv.parent.mkdir(parents=True, exist_ok=True)
            order = rng.permutation(32)
            csv.write_text("".join(f"{v}," + ",".join(str(int(x)) for x in lab[v]) + "\n" for v in order))
            fields = {k: v for k, v in fields.items() if k != "dis_label"}
        if s in v73:
            write_v73(path, fields)
        else:
            savemat(path, fields)
    return out
