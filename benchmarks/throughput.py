"""Measurements for result records: training throughput (samples/s over the training loop only;
validation inside an epoch is timed and subtracted) and per-run peak resident memory."""
from __future__ import annotations

import os
import resource
import threading
import time

from lightning.pytorch.callbacks import Callback


class Throughput(Callback):
    def __init__(self) -> None:
        self.samples = 0
        self.train_time = 0.0
        self._t0: float | None = None
        self._v0: float | None = None
        self._val_in_epoch = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()
        self._val_in_epoch = 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._v0 = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._v0 is not None and self._t0 is not None:
            self._val_in_epoch += time.perf_counter() - self._v0
        self._v0 = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.samples += len(batch) * trainer.world_size

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._t0 is not None:
            self.train_time += time.perf_counter() - self._t0 - self._val_in_epoch
            self._t0 = None

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_time if self.train_time > 0 else 0.0


class PeakRSS:
    """Peak resident memory of this process during a block, in MB: a thread reads
    /proc/self/statm every 20 ms (where there is no /proc, the process-lifetime peak instead)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 0.0

    def current_mb(self) -> float:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page_mb
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self.current_mb())

    def __enter__(self) -> "PeakRSS":
        self.peak_mb = self.current_mb()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.current_mb())
