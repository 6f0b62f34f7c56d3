"""TiCAL (reconstruction) cost: training throughput at CMU-MOSEI shapes and the per-epoch
consistency refresh (stage 2).

    python -m benchmarks.perf_tical [--quick] [--n-train 1500] [--repeats 5] [--threads 1]

Data: the ``synthetic-mosei`` preset (text 768 x 50, audio 74 x 50, vision 35 x 50), batch 64.
Measures, in one process: (1) stage-3 training steps (forward, all losses, backward, RiemannianAdam
step) over one epoch of the training split, as samples/s; (2) one consistency refresh over the same
split (no-grad pass + anchors, midpoints, kNN typicality), in seconds, and as a fraction of the
epoch time. Medians over ``--repeats`` (after one warm-up); ``--quick`` = 2 repeats, 256 samples.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from datamodules.registry import create_datamodule
from models.registry import create_model


def _train_epoch(model, loader, opt) -> tuple[float, int]:
    model.train()
    n = 0
    t0 = time.perf_counter()
    for batch in loader:
        out = model(batch)
        loss = model.task_loss(out.pred, batch.y) + sum(out.aux_losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(batch)
    return time.perf_counter() - t0, n


def _refresh(model, loader) -> float:
    t0 = time.perf_counter()
    model.refresh_consistency(loader)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 repeats on 256 training samples")
    ap.add_argument("--n-train", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave torch's default)")
    a = ap.parse_args(argv)
    if a.quick:
        a.repeats, a.n_train = 2, 256
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dm = create_datamodule("synthetic-mosei", batch_size=a.batch_size, n_train=a.n_train, n_val=16, n_test=16,
                           n_groups=4)
    dm.setup("fit")
    rows = []
    for label, kw in (("TiCAL (hyperbolic)", {}), ("TiCAL (Euclidean ablation)", {"hyperbolic": False})):
        model = create_model("ticalnet", dm.spec, stages=1, **kw)  # stage 3 from epoch 0
        opt = model.configure_optimizers()["optimizer"]
        model.refresh_consistency(dm.train_eval_dataloader())  # warm-up and a filled table
        _train_epoch(model, dm.train_dataloader(), opt)
        epochs, refreshes = [], []
        for _ in range(a.repeats):
            s, n = _train_epoch(model, dm.train_dataloader(), opt)
            epochs.append(s)
            refreshes.append(_refresh(model, dm.train_eval_dataloader()))
        e, r = statistics.median(epochs), statistics.median(refreshes)
        rows.append((label, n, f"{n / e:,.0f}", f"{e:.2f}", f"{r:.2f}", f"{r / e:.2f}", f"{n / r:,.0f}"))
    print(f"synthetic-mosei shapes (text 768x50, audio 74x50, vision 35x50), batch {a.batch_size}, "
          f"N = {a.n_train} training samples, torch threads {torch.get_num_threads()}, "
          f"median of {a.repeats} repeats")
    head = ("model", "N", "train samples/s", "train epoch s", "refresh s", "refresh / epoch", "refresh samples/s")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    main()
