"""Result records: one JSON file per (model, variant, dataset, fold, seed), written atomically.

Layout: ``<results>/<data>/<model>/<fold>_seed<seed>_<config hash>.json``. The config hash covers
every setting that changes the result (hyper-parameters, training settings, data options), so a
rerun with the same settings finds and skips its finished record, while changed settings get
their own records (and their own leaderboard row).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

SCHEMA = 1
TRACKED_PACKAGES = ("torch", "lightning", "torchmetrics", "numpy", "scipy", "pot", "geoopt", "transformers")


def config_hash(config: dict[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


def record_path(results: Path, data: str, model: str, fold: str, seed: int, cfg: str, data_fp: str) -> Path:
    """``<results>/<data>/<model>/<fold>_seed<seed>_<config hash>_<data fingerprint[:8]>.json``: the
    data fingerprint keeps apart runs on different files under one dataset name (two ``features``
    folders, an MMSA and a MulT pickle), which a re-run must not mistake for each other."""
    name = f"{safe_name(fold)}_seed{seed}_{cfg}_{safe_name(data_fp[:8])}.json"
    return Path(results) / safe_name(data) / safe_name(model) / name


def write_atomic(path: Path, record: dict[str, Any]) -> None:
    """Write JSON to a temporary file in the same folder, fsync, then rename over ``path``:
    readers see either no file or the whole record, even if the process dies midway."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2, sort_keys=True, allow_nan=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_record(path: Path) -> dict[str, Any] | None:
    """A complete record, or None if the file is unreadable or not a finished record."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("schema") != SCHEMA or "test" not in rec:
        return None
    return rec


def iter_records(results: Path) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    for path in sorted(Path(results).rglob("*.json")):
        if path.name.startswith(".tmp-"):
            continue
        yield path, read_record(path)


# -- environment facts for a record --------------------------------------------------------------
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd or Path(__file__).parent,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not sha:
        return None
    return sha + ("-dirty" if dirty else "")


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"machine": platform.machine(), "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads()}
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["cpu"] = cpu
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info
