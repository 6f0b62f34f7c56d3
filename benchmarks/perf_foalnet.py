"""Foal-Net training speed: full training steps (forward with AVEL + MEM, backward, AdamW step).

    python -m benchmarks.perf_foalnet [--quick] [--repeats 5] [--batch-size 16] [--modes feature tiny base]

Modes (IEMOCAP shapes of the paper):

* ``feature``: pre-extracted audio frames (299 x 1024, WavLM-Large frame shape) + CLIP video
  frames (180 x 768); the audio Linear projection replaces WavLM.
* ``tiny`` / ``base``: raw 6-s waveforms (96,000 samples at 16 kHz) through a randomly initialised
  WavLM (``tiny``: the tests' 2-layer 16-wide config; ``base``: ``WavLMConfig()`` defaults, 12 layers,
  hidden 768, the WavLM-Base size), CNN encoder frozen, + video frames (180 x 768). No download.

Prints a markdown table of the median seconds per step and samples/s over the repeats (after one
warm-up step). ``--quick``: 2 repeats and batch 2 (a CPU check; the batch is in the table).
On a GPU, ``--amp`` runs the steps under fp16 autocast (the recipe's ``16-mixed``).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, ModalitySpec, Protocol
from models.foalnet import FoalNet

WAVE_SAMPLES = 96_000
AUDIO_FRAMES, AUDIO_DIM = 299, 1024
VIDEO_FRAMES, VIDEO_DIM = 180, 768
CLASSES = ("hap", "neu", "sad", "ang")


def make_spec(mode: str) -> DatasetSpec:
    audio = ModalitySpec("audio", 1, WAVE_SAMPLES, "audio") if mode != "feature" else \
        ModalitySpec("audio", AUDIO_DIM, AUDIO_FRAMES, "audio")
    return DatasetSpec(name=f"perf-{mode}", task="classification", class_names=CLASSES,
                       modalities=(audio, ModalitySpec("video", VIDEO_DIM, VIDEO_FRAMES, "visual")),
                       protocol=Protocol("holdout", ("x",)), primary_metric="ua", primary_direction="max")


def make_batch(spec: DatasetSpec, batch_size: int, device: torch.device) -> Batch:
    g = torch.Generator().manual_seed(0)
    x, mask = {}, {}
    for m in spec.modalities:
        lengths = torch.randint(m.seq_len // 2, m.seq_len + 1, (batch_size,), generator=g)
        lengths[0] = m.seq_len
        mk = torch.arange(m.seq_len)[None] < lengths[:, None]
        scale = 0.1 if m.dim == 1 else 1.0
        x[m.name] = torch.randn(batch_size, m.seq_len, m.dim, generator=g) * scale * mk.unsqueeze(-1)
        mask[m.name] = mk
    label = torch.arange(batch_size) % len(CLASSES)
    return Batch(x=x, mask=mask, y=label, label=label, ids=[str(i) for i in range(batch_size)],
                 groups=["g"] * batch_size).to(device)


def step_seconds(model: FoalNet, opt: torch.optim.Optimizer, batch: Batch, amp: bool) -> float:
    dev = batch.y.device
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
        out = model(batch)
        loss = model.task_loss(out.pred, batch.y) + sum(out.aux_losses.values())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure(mode: str, batch_size: int, repeats: int, device: torch.device, amp: bool) -> dict:
    torch.manual_seed(0)
    spec = make_spec(mode)
    kw = {} if mode == "feature" else {"wavlm": f"random:{mode}"}
    model = FoalNet(spec, **kw).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    batch = make_batch(spec, batch_size, device)
    step_seconds(model, opt, batch, amp)  # warm-up
    times = [step_seconds(model, opt, batch, amp) for _ in range(repeats)]
    med = statistics.median(times)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"mode": mode, "batch": batch_size, "params": model.num_parameters(), "trainable": trainable,
            "step_s": med, "samples_s": batch_size / med, "repeats": repeats}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", default=["feature", "tiny", "base"], choices=["feature", "tiny", "base"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="2 repeats, batch 2")
    ap.add_argument("--amp", action="store_true", help="fp16 autocast (GPU only)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    amp = a.amp and device.type == "cuda"
    repeats = 2 if a.quick else a.repeats
    rows = []
    for mode in a.modes:
        bs = min(a.batch_size, 2) if a.quick else a.batch_size
        rows.append(measure(mode, bs, repeats, device, amp))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"Foal-Net training step (forward + AVEL + MEM + backward + AdamW), median of {repeats} after 1 warm-up; "
          f"{name}; {'fp16 autocast' if amp else 'fp32'}")
    head = ("mode", "audio input", "batch", "params", "trainable", "s/step", "samples/s")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    inputs = {"feature": f"features {AUDIO_FRAMES}x{AUDIO_DIM}", "tiny": "6-s waveform, tiny WavLM",
              "base": "6-s waveform, WavLM-Base-size (random)"}
    for r in rows:
        print(f"| {r['mode']} | {inputs[r['mode']]} | {r['batch']} | {r['params']:,} | {r['trainable']:,} | "
              f"{r['step_s']:.3f} | {r['samples_s']:.2f} |")


if __name__ == "__main__":
    main()
