"""Cache benchmark for the MOSEI loader: first load (read the pickle, validate, repair, write the
``.npy`` cache) vs cached load (memory-map the cache), on a generated MOSEI-sized MMSA pickle.

    python -m benchmarks.perf_cache [--scale 1.0] [--first-repeats 3] [--cached-repeats 5] [--dir DIR]

The pickle has MOSEI's split sizes (16,326 / 1,871 / 4,659 at ``--scale 1``), 50 aligned steps and
768/74/35 dims (about 4 GB; random values, with COVAREP-like ``-inf`` in audio). Each measurement
runs in a fresh Python process, so its peak RSS (``VmHWM``) is its own; imports (torch,
Lightning: about 400 MB) happen before the clock starts, and "added" is the peak minus the RSS
after them. The table shows medians over the repeats. Rows:

* ``pickle.load only``: reading the pickle, the floor for any loader that starts from it;
* ``first load``: ``MOSEIDataModule(...)`` + ``setup()`` with an empty cache;
* ``cached load``: the same with the cache present (the pickle is not read);
* ``cached load + 1 epoch``: cached load, then one pass over the training batches (batch 64). Its
  RSS counts the memory-mapped pages the pass touched; they are file cache, which the kernel can
  drop, not private memory.

Needs free disk of about twice the pickle (pickle + cache) in ``--dir`` (default: a temporary
folder, removed afterwards).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _status_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MB. ``ru_maxrss`` is not used: Linux
    carries it over from the parent across fork and exec, so a child would report the parent's peak."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def _child(mode: str, data_dir: str) -> None:
    import pickle

    from datamodules.cmu import MOSEIDataModule  # imports (torch, lightning) are not timed

    base_mb = _status_mb("VmRSS")
    t0 = time.perf_counter()
    if mode == "pickle":
        with open(Path(data_dir) / "Processed" / "aligned_50.pkl", "rb") as f:
            pickle.load(f)
    else:
        dm = MOSEIDataModule(data_dir=data_dir, batch_size=64)
        dm.setup("fit")
        if mode == "epoch":
            for _ in dm.train_dataloader():
                pass
    seconds = time.perf_counter() - t0
    peak_mb = _status_mb("VmHWM")
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb, "added_mb": peak_mb - base_mb}))


def _measure(mode: str, data_dir: Path, cache: Path) -> dict[str, float]:
    env = {**os.environ, "AFFECTBENCH_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-m", "benchmarks.perf_cache", "--child", mode, str(data_dir)],
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child {mode!r} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of MOSEI's sample counts (default 1)")
    ap.add_argument("--first-repeats", type=int, default=3)
    ap.add_argument("--cached-repeats", type=int, default=5)
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one, removed afterwards)")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        _child(*a.child)
        return

    from benchmarks.fake_files import MOSEI_DIMS, MOSEI_SIZES, write_mmsa_pickle

    work = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="affectbench-perf-cache-"))
    try:
        sizes = {k: max(2, round(v * a.scale)) for k, v in MOSEI_SIZES.items()}
        data_dir = work / "mosei"
        t0 = time.perf_counter()
        path = write_mmsa_pickle(data_dir / "Processed" / "aligned_50.pkl", sizes=sizes, dims=MOSEI_DIMS,
                                 steps={"text": 50, "audio": 50, "vision": 50}, aligned=True)
        size_gb = path.stat().st_size / 1e9
        print(f"generated {path} ({size_gb:.2f} GB; train/valid/test = {sizes['train']}/{sizes['valid']}/"
              f"{sizes['test']}, 50 steps, dims 768/74/35) in {time.perf_counter() - t0:.0f} s", flush=True)
        rows: dict[str, list[dict[str, float]]] = {"pickle.load only": [], "first load": [], "cached load": [],
                                                   "cached load + 1 epoch": []}
        for i in range(a.first_repeats):
            rows["pickle.load only"].append(_measure("pickle", data_dir, work / "unused"))
            cache = work / f"cache-first-{i}"
            rows["first load"].append(_measure("load", data_dir, cache))
            if i < a.first_repeats - 1:
                shutil.rmtree(cache)
            print(f"  first-load repeat {i + 1}/{a.first_repeats} done", flush=True)
        cache = work / f"cache-first-{a.first_repeats - 1}"
        for _ in range(a.cached_repeats):
            rows["cached load"].append(_measure("load", data_dir, cache))
        for _ in range(a.cached_repeats):
            rows["cached load + 1 epoch"].append(_measure("epoch", data_dir, cache))
        cache_gb = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 1e9
        med = {k: (statistics.median(r["seconds"] for r in v), statistics.median(r["peak_rss_mb"] for r in v),
                   statistics.median(r["added_mb"] for r in v), len(v)) for k, v in rows.items()}
        print(f"\nMOSEI-sized MMSA pickle {size_gb:.2f} GB -> cache {cache_gb:.2f} GB; medians over n runs, "
              f"each in a fresh process")
        print(f"{'case':<24} {'n':>2} {'seconds':>9} {'peak RSS MB':>12} {'added MB':>9}")
        print(f"{'-' * 24} {'-' * 2} {'-' * 9} {'-' * 12} {'-' * 9}")
        for k, (sec, mb, added, n) in med.items():
            print(f"{k:<24} {n:>2} {sec:>9.2f} {mb:>12.0f} {added:>9.0f}")
        first, cached = med["first load"], med["cached load"]
        print(f"\nfirst / cached load: {first[0] / cached[0]:.0f}x the time, "
              f"{first[2] / max(cached[2], 1.0):.0f}x the added memory")
    finally:
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
