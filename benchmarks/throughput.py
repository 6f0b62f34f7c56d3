"""A callback that measures training throughput: samples/s over the training loop only
(validation inside an epoch is timed and subtracted)."""
from __future__ import annotations

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
