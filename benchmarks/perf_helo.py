"""HeLo speed: training/inference samples/s at DMER shapes, and the batched GW-IPOT plan vs per-sample loops.

    python -m benchmarks.perf_helo [--quick] [--repeats 5] [--batch-sizes 32 128 512]

Table 1: HeLo at DMER shapes (eeg 90, gsr 28, ppg 27, video 768, C = 10, batch 128): one training
step (forward, backward, Adam step) and one inference forward (eval, no grad), median over repeats.
Table 2: the OT heterogeneity-mining plan for B samples of 36×36 tokens (d = 128): our batched solver
(one call), the same solver in a Python loop over samples, and a per-sample loop over POT's
``ot.gromov.entropic_gromov_wasserstein`` (square loss, ε = β = 0.1, 5 outer iterations; its inner
Sinkhorn runs to POT's default tolerance, so it does more inner work than IPOT's 20 steps), all on the
same thresholded cosine cost graphs.
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, ModalitySpec, Protocol
from models._ot import cosine_cost_graph, gw_ipot
from models.helo import HeLo

DMER = DatasetSpec(
    name="dmer-shapes", task="distribution", class_names=tuple(f"c{i}" for i in range(10)),
    modalities=(ModalitySpec("eeg", 90, None, "physiological"), ModalitySpec("gsr", 28, None, "physiological"),
                ModalitySpec("ppg", 27, None, "physiological"), ModalitySpec("video", 768, None, "behavioral")),
    protocol=Protocol("holdout", ("holdout",)), primary_metric="chebyshev", primary_direction="min",
)


def _batch(b: int) -> Batch:
    x = {m.name: torch.randn(b, m.dim) for m in DMER.modalities}
    mask = {m.name: torch.ones(b, dtype=torch.bool) for m in DMER.modalities}
    y = torch.softmax(torch.randn(b, 10), -1)
    return Batch(x=x, mask=mask, y=y, label=y.argmax(-1), ids=[str(i) for i in range(b)], groups=["g"] * b)


def _median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def model_rows(batch_size: int, repeats: int) -> list[tuple]:
    torch.manual_seed(0)
    model = HeLo(DMER)
    opt = model.configure_optimizers()["optimizer"]
    batch = _batch(batch_size)

    def train_step():
        model.train()
        out = model(batch)
        loss = model.task_loss(out.pred, batch.y) + sum(out.aux_losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer():
        model.eval()
        model(batch)

    rows = []
    for name, fn in (("train step", train_step), ("inference", infer)):
        t = _median_time(fn, repeats)
        rows.append((name, batch_size, t * 1e3, batch_size / t))
    return rows


def ot_rows(batch_sizes: list[int], repeats: int, pot_cap: int) -> list[tuple]:
    import ot

    rows = []
    for b in batch_sizes:
        g = torch.Generator().manual_seed(b)
        zp, zb = torch.randn(b, 36, 128, generator=g), torch.randn(b, 36, 128, generator=g)
        cs, ct = cosine_cost_graph(zp), cosine_cost_graph(zb)
        t_batched = _median_time(lambda: gw_ipot(cs, ct), repeats)
        t_loop = _median_time(lambda: [gw_ipot(cs[i:i + 1], ct[i:i + 1]) for i in range(b)], repeats)
        # POT per-sample loop: timed on at most pot_cap samples and scaled to b (it is linear in b)
        k = min(b, pot_cap)
        csn, ctn = cs.double().numpy(), ct.double().numpy()
        p = np.full(36, 1 / 36)

        def pot_loop():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for i in range(k):
                    ot.gromov.entropic_gromov_wasserstein(csn[i], ctn[i], p, p, "square_loss", epsilon=0.1,
                                                          max_iter=5)

        t_pot = _median_time(pot_loop, repeats, warmup=0) * b / k
        rows.append((b, t_batched * 1e3, t_loop * 1e3, t_pot * 1e3, t_loop / t_batched, t_pot / t_batched,
                     "" if k == b else f"POT timed on {k}, scaled"))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats, batch sizes 32 128, POT on ≤ 32 samples")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--model-batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: on a shared, oversubscribed CPU, OpenMP with 2 "
                         "threads made every small op ~100x slower; 0 = torch's default)")
    ap.add_argument("--pot-cap", type=int, default=128, help="time POT on at most this many samples per size")
    a = ap.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    repeats, sizes, cap = a.repeats, a.batch_sizes, a.pot_cap
    if a.quick:
        repeats, sizes, cap = 3, [s for s in sizes if s <= 128] or sizes[:1], min(cap, 32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {repeats} repeats\n")
    print("HeLo at DMER shapes")
    head = ("step", "batch", "ms / batch", "samples/s")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in model_rows(a.model_batch, repeats):
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.0f} |")
    print("\nOT plan (36×36 tokens, β = 0.1, 5 outer × 20 inner)")
    head = ("batch", "batched ms", "own solver loop ms", "POT loop ms", "loop / batched", "POT / batched", "note")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in ot_rows(sizes, repeats, cap):
        print(f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.1f}× | {r[5]:.1f}× | {r[6]} |")


if __name__ == "__main__":
    main()
