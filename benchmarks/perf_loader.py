"""Data-path benchmark: one training epoch of batches through the DataLoader, built per sample
(``__getitem__`` + the padding collate) vs by the batched fetch (``__getitems__``).

    python -m benchmarks.perf_loader [--presets synthetic synthetic-iemocap] [--repeats 5]

Prints median epoch time and samples/s over the repeats, and the speed-up ratio, measured in one
process on the same data.
"""
from __future__ import annotations

import argparse
import statistics
import time

from torch.utils.data import DataLoader

from datamodules.batch import collate
from datamodules.registry import create_datamodule


class _PerSample:
    """Wraps a dataset and hides ``__getitems__`` so the loader falls back to per-sample fetches."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]


def _epoch_seconds(ds, batch_size: int) -> float:
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, collate_fn=collate)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["synthetic", "synthetic-mosei", "synthetic-iemocap",
                                                      "synthetic-physio"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    a = ap.parse_args(argv)
    rows = []
    for name in a.presets:
        dm = create_datamodule(name)
        dm.setup("fit")
        ds = dm.train_set
        per = [_epoch_seconds(_PerSample(ds), a.batch_size) for _ in range(a.repeats)]
        bat = [_epoch_seconds(ds, a.batch_size) for _ in range(a.repeats)]
        mp, mb = statistics.median(per), statistics.median(bat)
        rows.append((name, len(ds), mp, len(ds) / mp, mb, len(ds) / mb, mp / mb))
    head = ("dataset", "train n", "per-sample s", "samples/s", "batched s", "samples/s", "speed-up")
    print(f"median of {a.repeats} epochs, batch size {a.batch_size}")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:,.0f} | {r[4]:.3f} | {r[5]:,.0f} | {r[6]:.1f}x |")


if __name__ == "__main__":
    main()
