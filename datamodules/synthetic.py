"""Synthetic presets: the embedded default data, with a known Bayes-optimal score.

Every model x dataset pairing of the suite must run on a fresh machine with no downloads, and the
leaderboard should say how far a model is from the best possible score. The presets below generate
data with the shapes, label spaces and protocols of the real datasets (``datasets.md``) from a
small, fully specified generative model, so the posterior over the latent class can be written
down exactly and the Bayes limit of the primary metric estimated by Monte Carlo.

Generative model
----------------
Settings: latent classes ``j = 0..K-1`` with prior ``pi``; modalities ``m = 1..M``; a conflict
rate ``r``; per modality an amplitude ``a_m`` (the preset's SNR times ``snr_scale``).

* Prototypes. For each modality one unit vector ``mu^m_j`` in ``R^{D_m}`` per latent class,
  drawn once from ``data_seed``: Gaussian rows, made orthonormal by a QR decomposition when
  ``D_m >= K``, otherwise only scaled to unit norm (they then overlap and classes are harder to
  tell apart in that modality).
* A sample. Draw a group (speaker / session / subject; the groups carry no signal, they only
  shape the protocol), a latent class ``k ~ pi``, and the class each modality expresses: with
  probability ``r`` one modality, picked uniformly, expresses a different class ``k'`` drawn
  uniformly from the other ``K - 1`` (the sample's ``meta["conflict"]`` is then 1.0); otherwise
  every modality expresses ``k``.
* Features. A vector modality is ``x = a_m mu^m_{k_m} + e`` with ``e ~ N(0, I)``. A sequence
  modality has a valid length ``L ~ U{Lmin_m..Lmax_m}`` and an onset ``delta_m < Lmin_m`` (the
  modalities are offset in time): steps ``t < delta_m`` are pure noise, steps
  ``delta_m <= t < L`` are ``a_m mu^m_{k_m} + e_t``, and the padding after ``L`` is zero (the
  batch mask hides it).
* Wide modalities (``latent_dim`` set, e.g. the 768-d embeddings): the prototypes lie in a fixed
  random ``latent_dim``-dimensional subspace, and the noise has unit variance inside it and
  standard deviation ``ambient_noise`` outside (as real embeddings, whose variance sits in few
  directions). Because every prototype lies in the subspace, the posterior below is unchanged and
  so is the limit; only learning the prototypes from a few thousand samples becomes possible.
* Targets. Classification: ``y = k``. Sentiment regression (``synthetic-mosei``): seven latent
  levels and ``y = clip(k - 3 + j/3, -3, 3)`` with ``j`` in ``{-1, 0, +1}`` drawn with
  probabilities ``(1/4, 1/2, 1/4)`` independently of the features, so ``y`` lives on the grid of
  multiples of 1/3 and exact zeros occur, as in MOSEI. Distribution (``synthetic-physio``): the
  latent class is one of 32 film clips and ``y = D_k``, a fixed distribution over the ten short
  PANAS items; clips 0-7 are positive (mass on the positive-affect items), 8-15 negative, 16-31
  mixed (mass on both blocks). Row ``k`` is ``P(block | k) * P(item | block, k)``: the block
  masses are those of ``softmax(block level + item effect + small noise)``, so items of one block
  rise and fall together, and within a block the item logits are sharpened so that one or a few
  items dominate, as in DMER; all entries are > 0 and rows sum to 1.

Exact posterior
---------------
For modality ``m`` and class ``j`` the log-likelihood ratio against pure noise is
``l_m(j) = a_m <sum of the signal steps of x, mu_j> - n_sig a_m^2 ||mu_j||^2 / 2`` (``n_sig`` =
the number of signal steps, 1 for a vector). With conflicts the likelihood is the mixture
``p(x|k) ~ (1-r) prod_m e^{l_m(k)} + r/M sum_m [mean_{j!=k} e^{l_m(j)}] prod_{m'!=m} e^{l_m'(k)}``
and ``p(k|x) ~ pi_k p(x|k)``. Restricted to a subset S of the modalities the same formula holds
with ``M -> |S|`` and ``r -> r |S| / M`` (the chance that the conflicting modality is one of
S), which for a single modality gives ``(1 - r/M) e^{l(k)} + r/M mean_{j!=k} e^{l(j)}``.
Everything is computed in float64 and log space (:func:`posterior`).

Bayes limits
------------
:func:`bayes_limit` draws a Monte-Carlo sample through the same generator code (a fixed seed
of its own, in chunks), applies the optimal rule for the primary metric and returns
``{"metric", "value", "se", "n_mc", "method"}``:

* ``wa``: argmax posterior; value = mean of the max posterior (its expected accuracy).
* ``ua``: argmax of posterior / prior; value = the empirical mean per-class recall.
* ``mae``: the posterior median of ``y`` (posterior on the y grid = sum_k p(k|x) p(y|k));
  value = the mean of its exact posterior expected absolute error.
* ``chebyshev``: per sample, the point of the probability simplex that minimises
  ``E_{k|x} max_j |D_kj - yhat_j|``, a small linear program (HiGHS); value = the mean optimum.

Results are cached in-process and as JSON under ``$AFFECTBENCH_CACHE/limits/`` (default
``~/.cache/affectbench/limits/``), one file per generator key: a hash of the generative settings,
``data_seed``, the generator version and the Monte-Carlo seed. Unlike ``fingerprint()`` it leaves
out the sample counts, which change the data but not the limit.

Presets
-------
Sample counts are much smaller than the real datasets so that a CPU run takes seconds.

================== ============== ======================================= ============ ===========
preset             task           modalities (seq len, dim)               protocol     primary
================== ============== ======================================= ============ ===========
synthetic          4 classes      text (12, 16), audio (20, 12), vision 8 holdout      wa (max)
synthetic-mosei    sentiment      text (50, 768), audio (50, 74),         holdout      mae (min)
                                  vision (50, 35)
synthetic-iemocap  hap/neu/sad/ang audio (60, 768), video (30, 768),      5 sessions   ua (max)
                                  text 768
synthetic-physio   10 PANAS items eeg 90, gsr 28, ppg 27, video 768        8 subjects   chebyshev
================== ============== ======================================= ============ ===========

``data_seed`` alone (with the preset settings) fixes the data; ``seed`` only drives shuffling.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from .base import MERDataModule, TensorSampleDataset
from .registry import register_datamodule
from .spec import DatasetSpec, ModalitySpec, Protocol, UserInputError

__all__ = [
    "GENERATOR_VERSION",
    "SynthModality",
    "SynthPreset",
    "PRESETS",
    "SyntheticDataModule",
    "SyntheticMOSEI",
    "SyntheticIEMOCAP",
    "SyntheticPhysio",
    "posterior",
    "bayes_predict",
    "bayes_limit",
    "chebyshev_optimum",
    "draw_samples",
]

GENERATOR_VERSION = 3  # bump whenever the generated numbers change for the same settings
MC_SEED = 7_919_000_001  # the Monte-Carlo stream for limits, separate from every data_seed
_CHUNK = 512  # samples generated per step (fixed: the random stream depends on it)
_POST_CHUNK = 2048


# ----------------------------------------------------------------------------------------
# settings
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthModality:
    """One generated stream. ``seq_len=None`` = a vector; else lengths are U{min_len..seq_len}
    and the first ``onset`` steps carry noise only.

    ``latent_dim``: if set (< dim), the prototypes and the unit-variance noise live in a fixed
    random ``latent_dim``-dimensional subspace, and the noise in the remaining directions has
    standard deviation ``ambient_noise`` (like real embeddings, whose variance concentrates in few
    directions). Since every prototype lies in that subspace, the posterior formula is unchanged
    (Sigma^-1 mu = mu) and so is the Bayes limit; only learning from finite data gets easier.
    """

    name: str
    dim: int
    seq_len: int | None
    group: str
    amplitude: float
    min_len: int = 1
    onset: int = 0
    latent_dim: int | None = None
    ambient_noise: float = 1.0

    def __post_init__(self) -> None:
        if self.seq_len is not None and not (0 <= self.onset < self.min_len <= self.seq_len):
            raise ValueError(f"modality {self.name!r}: need 0 <= onset < min_len <= seq_len")
        if self.latent_dim is not None and not 0 < self.latent_dim < self.dim:
            raise ValueError(f"modality {self.name!r}: need 0 < latent_dim < dim")


@dataclass(frozen=True)
class SynthPreset:
    """Everything the generator (and hence the Bayes limit) depends on, besides data_seed."""

    name: str
    task: str
    class_names: tuple[str, ...]
    modalities: tuple[SynthModality, ...]
    prior: tuple[float, ...]  # over the latent classes
    conflict_rate: float
    primary_metric: str
    primary_direction: str
    protocol: str  # "holdout" | "leave_one_out"
    group_label: str  # what a group is, for the protocol description
    score_range: tuple[float, float] | None = None
    snr_scale: float = 1.0
    n_mc: int = 20_000
    # default sizes: holdout presets use n_train/n_val/n_test/n_groups, leave-one-out presets
    # n_groups (fold units) and n_per_group (samples per unit)
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    n_groups: int = 0
    n_per_group: int = 0

    @property
    def num_latent(self) -> int:
        return len(self.prior)

    def generator_dict(self) -> dict[str, Any]:
        """The settings that fix the generative model (not the sample counts)."""
        d = asdict(self)
        for key in ("n_mc", "n_train", "n_val", "n_test", "n_groups", "n_per_group"):
            d.pop(key)
        return d


_CLIP_SHARPNESS = 2.0  # temperature of the per-clip distributions (see _clip_distributions)
_IEMOCAP_COUNTS = (1636, 1708, 1084, 1103)  # hap, neu, sad, ang (4-way, exc merged into hap)

PRESETS: dict[str, SynthPreset] = {
    "synthetic": SynthPreset(
        name="synthetic", task="classification", class_names=("neutral", "happy", "sad", "angry"),
        modalities=(
            SynthModality("text", 16, 12, "text", amplitude=0.52, min_len=9, onset=1),
            SynthModality("audio", 12, 20, "audio", amplitude=0.38, min_len=16, onset=2),
            SynthModality("vision", 8, None, "visual", amplitude=1.55),
        ),
        prior=(0.25, 0.25, 0.25, 0.25), conflict_rate=0.2, primary_metric="wa", primary_direction="max",
        protocol="holdout", group_label="speaker", n_mc=200_000,
        n_train=3600, n_val=800, n_test=1000, n_groups=20,
    ),
    "synthetic-mosei": SynthPreset(
        name="synthetic-mosei", task="regression", class_names=("negative", "neutral", "positive"),
        modalities=(
            SynthModality("text", 768, 50, "text", amplitude=0.32, min_len=20, onset=0, latent_dim=32, ambient_noise=0.25),
            SynthModality("audio", 74, 50, "audio", amplitude=0.26, min_len=20, onset=2, latent_dim=32, ambient_noise=0.25),
            SynthModality("vision", 35, 50, "visual", amplitude=0.26, min_len=20, onset=4),
        ),
        prior=(0.06, 0.12, 0.18, 0.22, 0.20, 0.14, 0.08), conflict_rate=0.2,
        primary_metric="mae", primary_direction="min", protocol="holdout", group_label="speaker",
        score_range=(-3.0, 3.0), n_mc=10_000, n_train=1500, n_val=300, n_test=500, n_groups=60,
    ),
    "synthetic-iemocap": SynthPreset(
        name="synthetic-iemocap", task="classification", class_names=("hap", "neu", "sad", "ang"),
        modalities=(
            SynthModality("audio", 768, 60, "audio", amplitude=0.21, min_len=20, onset=5, latent_dim=32, ambient_noise=0.25),
            SynthModality("video", 768, 30, "visual", amplitude=0.25, min_len=10, onset=3, latent_dim=32, ambient_noise=0.25),
            SynthModality("text", 768, None, "text", amplitude=1.6, latent_dim=32, ambient_noise=0.25),
        ),
        prior=tuple(c / sum(_IEMOCAP_COUNTS) for c in _IEMOCAP_COUNTS), conflict_rate=0.25,
        primary_metric="ua", primary_direction="max", protocol="leave_one_out", group_label="session",
        n_mc=8_000, n_groups=5, n_per_group=240,
    ),
    "synthetic-physio": SynthPreset(
        name="synthetic-physio", task="distribution",
        class_names=("Inspired", "Alert", "Excited", "Enthusiastic", "Determined",
                     "Afraid", "Upset", "Nervous", "Scared", "Distressed"),
        modalities=(
            SynthModality("eeg", 90, None, "physiological", amplitude=1.7, latent_dim=32, ambient_noise=0.25),
            SynthModality("gsr", 28, None, "physiological", amplitude=1.2),
            SynthModality("ppg", 27, None, "physiological", amplitude=1.2),
            SynthModality("video", 768, None, "behavioral", amplitude=1.7, latent_dim=32, ambient_noise=0.25),
        ),
        prior=tuple([1.0 / 32] * 32), conflict_rate=0.2, primary_metric="chebyshev",
        primary_direction="min", protocol="leave_one_out", group_label="subject",
        n_mc=2_000, n_groups=8, n_per_group=32 * 12,
    ),
}

# sentiment: noise on the level, j/3 with j in {-1, 0, +1}
_Y_OFFSETS = (-1, 0, 1)
_Y_OFFSET_PROBS = (0.25, 0.5, 0.25)
_Y_GRID = np.arange(-9, 10) / 3.0  # every reachable score, multiples of 1/3 in [-3, 3]


def _derive_seed(*parts: Any) -> int:
    h = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 62) - 1)


# ----------------------------------------------------------------------------------------
# the fixed "world" of a preset: prototypes and target tables (from data_seed only)
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _World:
    prototypes: dict[str, Tensor]  # modality -> (K, D) float32
    bases: dict[str, Tensor]  # modality -> (D, latent_dim) orthonormal columns, where latent_dim is set
    dist: Tensor | None  # (K, C) float64 per-clip distributions (distribution task)
    level_to_grid: np.ndarray | None  # (K, len(_Y_GRID)) p(y | k) (regression task)


@lru_cache(maxsize=32)
def _world(preset: SynthPreset, data_seed: int) -> _World:
    g = torch.Generator().manual_seed(_derive_seed("world", GENERATOR_VERSION, preset.name, data_seed))
    K = preset.num_latent
    protos, bases = {}, {}
    for m in preset.modalities:
        d = m.latent_dim or m.dim
        w = torch.randn(K, d, generator=g, dtype=torch.float64)
        if d >= K:
            q, r = torch.linalg.qr(w.T)  # (d, K) with orthonormal columns
            q = q * torch.sign(torch.diagonal(r))[None, :]
            w = q.T
        else:
            w = w / w.norm(dim=1, keepdim=True)
        if m.latent_dim is not None:
            basis, _ = torch.linalg.qr(torch.randn(m.dim, d, generator=g, dtype=torch.float64))
            bases[m.name] = basis.float().contiguous()
            w = w @ basis.T  # unit-norm prototypes inside the subspace
        protos[m.name] = w.float().contiguous()
    dist = None
    grid = None
    if preset.task == "distribution":
        dist = _clip_distributions(g, K, len(preset.class_names))
    if preset.task == "regression":
        grid = np.zeros((K, len(_Y_GRID)))
        for k in range(K):
            for off, p in zip(_Y_OFFSETS, _Y_OFFSET_PROBS):
                y = min(max(k - 3 + off / 3.0, -3.0), 3.0)
                grid[k, int(round((y + 3.0) * 3))] += p
    return _World(protos, bases, dist, grid)


def _clip_distributions(g: torch.Generator, K: int, C: int) -> Tensor:
    """Per-clip item distributions: clips [0, K/4) positive, [K/4, K/2) negative, the rest mixed;
    items [0, C/2) positive affect, [C/2, C) negative affect.

    logit_kj = block level (clip k, block of j) + item effect (j) + small clip-item noise.
    """
    half = C // 2
    block = torch.tensor([0] * half + [1] * (C - half))  # item -> block
    item = 0.3 * torch.randn(C, generator=g, dtype=torch.float64)
    noise = 0.2 * torch.randn(K, C, generator=g, dtype=torch.float64)
    jitter = torch.randn(K, 2, generator=g, dtype=torch.float64)
    w = torch.rand(K, generator=g, dtype=torch.float64)
    levels = torch.zeros(K, 2, dtype=torch.float64)
    q = K // 4
    for k in range(K):
        if k < q:  # positive clip
            levels[k] = torch.tensor([1.2, -0.6]) + jitter[k] * torch.tensor([0.3, 0.2])
        elif k < 2 * q:  # negative clip
            levels[k] = torch.tensor([-0.6, 1.2]) + jitter[k] * torch.tensor([0.2, 0.3])
        else:  # mixed: both blocks active, in a clip-specific balance
            share = 0.3 + 0.4 * w[k]
            levels[k] = torch.stack([1.5 * share, 1.5 * (1 - share)]) + 0.1 * jitter[k]
    logits = levels[:, block] + item[None, :] + noise
    # D_kj = P(block of j | k) * P(j | its block, k). The block balance is that of the logits above;
    # within a block the item logits are sharpened so that, as in DMER, one or a few items dominate
    # (a uniform prediction then scores a Chebyshev distance in DMER's typical 0.1-0.3 range,
    # methods/helo.md section 9), while mixed clips keep mass on both blocks.
    block_mass = torch.stack([torch.softmax(logits, dim=1)[:, block == b].sum(1) for b in (0, 1)], dim=1)
    within = torch.zeros_like(logits)
    for b in (0, 1):
        within[:, block == b] = torch.softmax(_CLIP_SHARPNESS * (item + noise)[:, block == b], dim=1)
    return block_mass[:, block] * within


# ----------------------------------------------------------------------------------------
# sampling
# ----------------------------------------------------------------------------------------
def _draw_chunk(preset: SynthPreset, world: _World, k: Tensor, g: torch.Generator,
                out: dict[str, Tensor] | None = None) -> dict[str, Any]:
    """Features and targets for latent classes ``k`` (one chunk; every random draw is here).

    ``out`` optionally maps modality names to preallocated destination rows for the features,
    which are then written in place (the random stream is the same either way).
    """
    n = k.shape[0]
    K = preset.num_latent
    M = len(preset.modalities)
    conflict = torch.rand(n, generator=g) < preset.conflict_rate
    which = torch.randint(M, (n,), generator=g)
    k_alt = (k + torch.randint(1, K, (n,), generator=g)) % K  # uniform over the other classes
    expressed = k[:, None].repeat(1, M)
    rows = conflict.nonzero().squeeze(1)
    expressed[rows, which[rows]] = k_alt[rows]
    x: dict[str, Tensor] = {}
    lengths: dict[str, Tensor] = {}
    for i, m in enumerate(preset.modalities):
        a = m.amplitude * preset.snr_scale
        signal = a * world.prototypes[m.name][expressed[:, i]]  # (n, D)
        shape = (n, m.dim) if m.seq_len is None else (n, m.seq_len, m.dim)
        xm = out[m.name] if out is not None else torch.empty(shape)
        torch.randn(shape, generator=g, out=xm)  # N(0, 1) noise everywhere
        if m.latent_dim is not None:  # keep unit noise inside the subspace, shrink it outside
            basis = world.bases[m.name]
            inside = (xm @ basis) @ basis.T
            xm.mul_(m.ambient_noise).add_(inside, alpha=1.0 - m.ambient_noise)
        if m.seq_len is None:
            xm.add_(signal)
        else:
            L = torch.randint(m.min_len, m.seq_len + 1, (n,), generator=g)
            xm[:, m.onset:].add_(signal[:, None, :])  # signal from the onset on ...
            xm.mul_((torch.arange(m.seq_len)[None, :] < L[:, None]).float()[:, :, None])  # ... zero padding
            lengths[m.name] = L
        x[m.name] = xm
    if preset.task == "classification":
        y = k.clone()
    elif preset.task == "regression":
        j = torch.multinomial(torch.tensor(_Y_OFFSET_PROBS), n, replacement=True, generator=g) - 1
        y = ((k - 3).double() + j.double() / 3.0).clamp(-3.0, 3.0).float()
    else:
        y = world.dist[k].float()
    return {"x": x, "lengths": lengths, "y": y, "k": k, "conflict": conflict.float()}


def _allocate(preset: SynthPreset, n: int) -> dict[str, Any]:
    x = {m.name: torch.zeros((n, m.dim) if m.seq_len is None else (n, m.seq_len, m.dim)) for m in preset.modalities}
    lengths = {m.name: torch.zeros(n, dtype=torch.long) for m in preset.modalities if m.seq_len is not None}
    if preset.task == "classification":
        y = torch.zeros(n, dtype=torch.long)
    elif preset.task == "regression":
        y = torch.zeros(n)
    else:
        y = torch.zeros(n, len(preset.class_names))
    return {"x": x, "lengths": lengths, "y": y, "k": torch.zeros(n, dtype=torch.long), "conflict": torch.zeros(n)}


def draw_samples(preset: SynthPreset, data_seed: int, n: int | None = None, k: Tensor | None = None,
                 stream: str = "data", into: dict[str, Any] | None = None, offset: int = 0) -> dict[str, Any]:
    """Generate samples from the random stream named ``stream``; ``k`` fixes the latent classes
    (else ``n`` are drawn from the prior).

    Returns ``{"x", "lengths", "y", "k", "conflict"}`` (padded tensors, valid lengths of the
    sequence modalities, targets, latent classes, conflict flags). With ``into`` (a dict of that
    form) the rows are written in place from ``offset`` on, so no second copy is made.
    """
    world = _world(preset, data_seed)
    g = torch.Generator().manual_seed(_derive_seed(stream, GENERATOR_VERSION, preset.name, data_seed))
    if k is None:
        k = torch.multinomial(torch.tensor(preset.prior, dtype=torch.float64), n, replacement=True, generator=g)
    if into is None:
        into, offset = _allocate(preset, k.shape[0]), 0
    for s in range(0, k.shape[0], _CHUNK):
        kc = k[s:s + _CHUNK]
        rows = slice(offset + s, offset + s + kc.shape[0])
        part = _draw_chunk(preset, world, kc, g, out={name: t[rows] for name, t in into["x"].items()})
        for name, t in part["lengths"].items():
            into["lengths"][name][rows] = t
        for key in ("y", "k", "conflict"):
            into[key][rows] = part[key]
    return into


def _mc_chunks(preset: SynthPreset, data_seed: int, n_mc: int) -> Iterator[dict[str, Any]]:
    """The Monte-Carlo stream: prior draws + the same chunk generator, one chunk at a time."""
    world = _world(preset, data_seed)
    g = torch.Generator().manual_seed(_derive_seed("mc", MC_SEED, GENERATOR_VERSION, preset.name, data_seed))
    prior = torch.tensor(preset.prior, dtype=torch.float64)
    for s in range(0, n_mc, _CHUNK):
        k = torch.multinomial(prior, min(_CHUNK, n_mc - s), replacement=True, generator=g)
        yield _draw_chunk(preset, world, k, g)


# ----------------------------------------------------------------------------------------
# exact posterior and Bayes decisions
# ----------------------------------------------------------------------------------------
def _log_lik_ratios(preset: SynthPreset, world: _World, x: dict[str, Tensor], lengths: dict[str, Tensor],
                    names: Sequence[str]) -> Tensor:
    """l_m(j) for the modalities ``names``: (M', N, K) float64."""
    out = []
    for name in names:
        m = next(mm for mm in preset.modalities if mm.name == name)
        a = m.amplitude * preset.snr_scale
        mu = world.prototypes[name].double()  # (K, D)
        xm = x[name]
        if m.seq_len is None:
            s = xm.double()
            n_sig = torch.ones(xm.shape[0], dtype=torch.float64)
        else:
            if name not in lengths:
                raise ValueError(f"posterior: sequence modality {name!r} needs its lengths")
            L = lengths[name].long().reshape(-1)
            t = torch.arange(xm.shape[1])
            on = ((t[None, :] >= m.onset) & (t[None, :] < L[:, None])).double()
            step = max(1, 4_000_000 // max(1, xm.shape[1] * xm.shape[2]))  # float64 sums, bounded memory
            s = torch.cat([torch.einsum("ntd,nt->nd", xm[i:i + step].double(), on[i:i + step])
                           for i in range(0, xm.shape[0], step)]) if xm.shape[0] else xm.new_zeros(0, m.dim).double()
            n_sig = (L - m.onset).clamp(min=0).double()
        ll = a * s @ mu.T - n_sig[:, None] * (a * a / 2.0) * (mu * mu).sum(1)[None, :]
        out.append(ll)
    return torch.stack(out)


def posterior(preset: SynthPreset, data_seed: int, x: dict[str, Tensor], lengths: dict[str, Tensor],
              modalities: Sequence[str] | None = None) -> Tensor:
    """Exact p(latent class | x) as ``(N, K)`` float64 (see the module docstring).

    ``x`` holds padded ``(N, T, D)`` sequences / ``(N, D)`` vectors and ``lengths`` the valid
    length of every sequence modality (from a Batch: ``batch.mask[m].sum(1)``); ``modalities``
    restricts the evidence to a subset.
    """
    names = [m.name for m in preset.modalities] if modalities is None else list(modalities)
    known = {m.name for m in preset.modalities}
    if not names or any(n not in known for n in names) or len(set(names)) != len(names):
        raise UserInputError(f"{preset.name}: modalities must be distinct names from {sorted(known)}, got {names}")
    world = _world(preset, data_seed)
    K = preset.num_latent
    M = len(names)
    r = preset.conflict_rate * M / len(preset.modalities)
    log_prior = torch.tensor(preset.prior, dtype=torch.float64).log()
    off_diag = ~torch.eye(K, dtype=torch.bool)
    n = next(iter(x[nm] for nm in names)).shape[0]
    outs = []
    for s in range(0, n, _POST_CHUNK):
        xs = {nm: x[nm][s:s + _POST_CHUNK] for nm in names}
        ls = {nm: v[s:s + _POST_CHUNK] for nm, v in lengths.items() if nm in names}
        ll = _log_lik_ratios(preset, world, xs, ls, names)  # (M, n, K)
        total = ll.sum(0)
        terms = [math.log1p(-r) + total] if r < 1 else []
        if r > 0:
            # log mean_{j != k} e^{l_m(j)}: (M, n, K, K) masked on the diagonal
            other = ll[:, :, None, :].expand(-1, -1, K, -1).masked_fill(~off_diag, float("-inf"))
            alt = torch.logsumexp(other, dim=-1) - math.log(K - 1)
            terms.extend(math.log(r / M) + alt[i] + total - ll[i] for i in range(M))
        log_lik = torch.logsumexp(torch.stack(terms), dim=0)
        lp = log_lik + log_prior[None, :]
        outs.append(torch.softmax(lp, dim=1))
    return torch.cat(outs) if outs else torch.zeros(0, K, dtype=torch.float64)


def chebyshev_optimum(post: np.ndarray, dist: np.ndarray, prune: float = 1e-12) -> tuple[np.ndarray, float]:
    """min over the simplex of sum_k post_k max_j |dist_kj - yhat_j| (a linear program).

    Variables (yhat_1..C, t_1..K'): minimise sum_k p_k t_k with t_k >= |dist_kj - yhat_j| for
    every j, sum_j yhat_j = 1, yhat >= 0. Classes with posterior below ``prune`` are dropped
    (they change the objective by less than their mass). Returns (yhat, expected loss).
    """
    from scipy.optimize import linprog

    keep = np.flatnonzero(post >= prune)
    p = post[keep]
    D = dist[keep]
    if keep.size == 1:
        return dist[keep[0]].copy(), 0.0
    Kp, C = D.shape
    c = np.concatenate([np.zeros(C), p])
    eye_c = np.eye(C)
    rows_t = np.repeat(np.eye(Kp), C, axis=0)  # (Kp*C, Kp): row (k, j) selects t_k
    rows_y = np.tile(eye_c, (Kp, 1))  # row (k, j) selects yhat_j
    A = np.block([[rows_y, -rows_t], [-rows_y, -rows_t]])
    b = np.concatenate([D.reshape(-1), -D.reshape(-1)])
    A_eq = np.concatenate([np.ones(C), np.zeros(Kp)])[None, :]
    res = linprog(c, A_ub=A, b_ub=b, A_eq=A_eq, b_eq=[1.0], bounds=[(0, None)] * (C + Kp), method="highs")
    if res.status != 0:
        raise RuntimeError(f"chebyshev LP failed: {res.message}")
    yhat = np.clip(res.x[:C], 0.0, None)
    yhat = yhat / yhat.sum()
    loss = float((post * np.abs(dist - yhat[None, :]).max(axis=1)).sum())
    return yhat, loss


def _mae_decision(post: np.ndarray, level_to_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior median of y on the grid and its exact expected absolute error."""
    py = post @ level_to_grid  # (N, G)
    cdf = np.cumsum(py, axis=1)
    idx = (cdf >= 0.5 - 1e-12).argmax(axis=1)
    med = _Y_GRID[idx]
    risk = (py * np.abs(_Y_GRID[None, :] - med[:, None])).sum(1)
    return med, risk


def bayes_predict(preset: SynthPreset, data_seed: int, x: dict[str, Tensor], lengths: dict[str, Tensor],
                  modalities: Sequence[str] | None = None) -> Tensor:
    """The Bayes-optimal prediction for the preset's primary metric, in target space.

    ``wa``: argmax posterior; ``ua``: argmax posterior / prior (class indices); ``mae``: the
    posterior median score; ``chebyshev``: the LP-optimal distribution ``(N, C)``.
    """
    post = posterior(preset, data_seed, x, lengths, modalities)
    world = _world(preset, data_seed)
    metric = preset.primary_metric
    if metric == "wa":
        return post.argmax(1)
    if metric == "ua":
        return (post / torch.tensor(preset.prior, dtype=torch.float64)[None, :]).argmax(1)
    if metric == "mae":
        med, _ = _mae_decision(post.numpy(), world.level_to_grid)
        return torch.from_numpy(med).float()
    if metric == "chebyshev":
        dist = world.dist.numpy()
        return torch.from_numpy(np.stack([chebyshev_optimum(p, dist)[0] for p in post.numpy()])).float()
    raise ValueError(f"no Bayes rule for metric {metric!r}")


# ----------------------------------------------------------------------------------------
# Bayes limit (Monte Carlo) with in-process and on-disk caches
# ----------------------------------------------------------------------------------------
_LIMIT_CACHE: dict[tuple[str, str], dict[str, Any]] = {}


def _cache_dir() -> Path:
    root = os.environ.get("AFFECTBENCH_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "affectbench"
    return base / "limits"


def generator_key(preset: SynthPreset, data_seed: int) -> str:
    """Hash of everything the generative model (hence the limit) depends on."""
    payload = {"preset": preset.generator_dict(), "data_seed": int(data_seed), "version": GENERATOR_VERSION,
               "mc_seed": MC_SEED}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _compute_limit(preset: SynthPreset, data_seed: int, names: list[str] | None, n_mc: int) -> dict[str, Any]:
    world = _world(preset, data_seed)
    metric = preset.primary_metric
    K = preset.num_latent
    vals: list[np.ndarray] = []
    hits = np.zeros(K)
    counts = np.zeros(K)
    t0 = time.perf_counter()
    for chunk in _mc_chunks(preset, data_seed, n_mc):
        post = posterior(preset, data_seed, chunk["x"], chunk["lengths"], names).numpy()
        k = chunk["k"].numpy()
        if metric == "wa":
            vals.append(post.max(1))
        elif metric == "ua":
            pred = (post / np.asarray(preset.prior)[None, :]).argmax(1)
            np.add.at(counts, k, 1)
            np.add.at(hits, k, (pred == k).astype(float))
        elif metric == "mae":
            vals.append(_mae_decision(post, world.level_to_grid)[1])
        elif metric == "chebyshev":
            dist = world.dist.numpy()
            vals.append(np.array([chebyshev_optimum(p, dist)[1] for p in post]))
        else:
            raise ValueError(f"no Bayes rule for metric {metric!r}")
    if metric == "ua":
        present = counts > 0
        rec = hits[present] / counts[present]
        value = float(rec.mean())
        se = float(np.sqrt((rec * (1 - rec) / counts[present]).sum()) / present.sum())
        method = "argmax p(k|x)/pi_k; empirical mean per-class recall on the Monte-Carlo sample"
    else:
        v = np.concatenate(vals)
        value = float(v.mean())
        se = float(v.std(ddof=1) / math.sqrt(v.size))
        method = {
            "wa": "argmax posterior; mean of the max posterior (expected accuracy)",
            "mae": "posterior median of y; mean exact posterior expected |error|",
            "chebyshev": "per-sample LP minimising E_{k|x} max_j |D_kj - yhat_j| over the simplex (HiGHS)",
        }[metric]
    return {"metric": metric, "value": value, "se": se, "n_mc": int(n_mc), "method": method,
            "modalities": names or [m.name for m in preset.modalities],
            "seconds": round(time.perf_counter() - t0, 3)}


def bayes_limit(preset: SynthPreset, data_seed: int = 0, modalities: Sequence[str] | None = None,
                n_mc: int | None = None, key: str | None = None, use_cache: bool = True) -> dict[str, Any]:
    """Monte-Carlo estimate of the best achievable primary score (see the module docstring).

    Returns ``{"metric", "value", "se", "n_mc", "method", ...}``. Cached in-process and on disk
    under ``key`` (default: :func:`generator_key`).
    """
    n_mc = int(n_mc or preset.n_mc)
    all_names = [m.name for m in preset.modalities]
    names = None if modalities is None or list(modalities) == all_names else list(modalities)
    if names is not None:
        bad = [n for n in names if n not in all_names]
        if bad or not names:
            raise UserInputError(f"{preset.name}: unknown modalities {bad}; known: {all_names}")
    key = key or generator_key(preset, data_seed)
    entry = f"{'+'.join(names) if names else 'all'}|n_mc={n_mc}"
    if use_cache and (key, entry) in _LIMIT_CACHE:
        return dict(_LIMIT_CACHE[(key, entry)])
    path = _cache_dir() / f"{key}.json"
    stored: dict[str, Any] = {}
    if use_cache and path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
        if entry in stored:
            _LIMIT_CACHE[(key, entry)] = stored[entry]
            return dict(stored[entry])
    result = _compute_limit(preset, data_seed, names, n_mc)
    _LIMIT_CACHE[(key, entry)] = result
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            stored[entry] = result
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(stored, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home is not an error; the in-process cache still holds it
    return dict(result)


# ----------------------------------------------------------------------------------------
# the datamodule
# ----------------------------------------------------------------------------------------
def _split_groups(n_groups: int, sizes: Sequence[int]) -> list[int]:
    """Groups per split, proportional to split sizes, at least one each."""
    total = sum(sizes)
    g = [max(1, round(n_groups * s / total)) for s in sizes]
    while sum(g) > n_groups:
        g[g.index(max(g))] -= 1
    while sum(g) < n_groups:
        g[0] += 1
    return g


@register_datamodule("synthetic")
class SyntheticDataModule(MERDataModule):
    """Generated data with a known Bayes limit (module docstring). Preset: ``synthetic``.

    Options (all keywords): the base options (``data_dir`` is ignored), ``data_seed`` (the only
    seed of the data), ``snr_scale`` (multiplies every modality's amplitude), ``conflict_rate``
    (None = the preset's), and sizes (None = the preset's): ``n_train``/``n_val``/``n_test``/
    ``n_groups`` for holdout presets, ``n_groups``/``n_per_group`` for leave-one-out presets.
    """

    synthetic: ClassVar[bool] = True
    source: ClassVar[str] = "generated in-process (affectbench.datamodules.synthetic)"
    preset: ClassVar[SynthPreset] = PRESETS["synthetic"]

    def __init__(self, data_dir: str | None = None, batch_size: int = 32, num_workers: int = 0,
                 fold: str | None = None, seed: int = 0, sampler: str = "random", data_seed: int = 0,
                 snr_scale: float = 1.0, conflict_rate: float | None = None, n_train: int | None = None,
                 n_val: int | None = None, n_test: int | None = None, n_groups: int | None = None,
                 n_per_group: int | None = None) -> None:
        super().__init__(data_dir=data_dir, batch_size=batch_size, num_workers=num_workers, fold=fold,
                         seed=seed, sampler=sampler)
        p = self.preset
        name = p.name
        snr_scale = float(snr_scale)
        if not math.isfinite(snr_scale) or snr_scale < 0:
            raise UserInputError(f"{name}: snr_scale must be a finite number >= 0, got {snr_scale}")
        rate = p.conflict_rate if conflict_rate is None else float(conflict_rate)
        if not 0.0 <= rate < 1.0:
            raise UserInputError(f"{name}: conflict_rate must be in [0, 1), got {rate}")
        self.data_seed = int(data_seed)
        holdout = p.protocol == "holdout"
        not_here = {"n_per_group": n_per_group} if holdout else {"n_train": n_train, "n_val": n_val,
                                                                  "n_test": n_test}
        for opt, v in not_here.items():
            if v is not None:
                raise UserInputError(f"{name}: option {opt} does not apply to a {p.protocol} preset")
        sizes = dict(n_train=p.n_train if n_train is None else n_train, n_val=p.n_val if n_val is None else n_val,
                     n_test=p.n_test if n_test is None else n_test,
                     n_groups=p.n_groups if n_groups is None else n_groups,
                     n_per_group=p.n_per_group if n_per_group is None else n_per_group)
        sizes = {k: int(v) for k, v in sizes.items()}
        if holdout:
            if min(sizes["n_train"], sizes["n_val"], sizes["n_test"]) < 1:
                raise UserInputError(f"{name}: n_train, n_val and n_test must be >= 1")
            per_split = _split_groups(max(sizes["n_groups"], 3), [sizes["n_train"], sizes["n_val"], sizes["n_test"]])
            if sizes["n_groups"] < 3 or any(g > n for g, n in zip(per_split, (sizes["n_train"], sizes["n_val"],
                                                                               sizes["n_test"]))):
                raise UserInputError(f"{name}: n_groups must be >= 3 and no larger than a split's sample count")
        else:
            if not 3 <= sizes["n_groups"] <= 99:
                raise UserInputError(f"{name}: n_groups must be in 3..99 for leave-one-out, got {sizes['n_groups']}")
            if sizes["n_per_group"] < 2:
                raise UserInputError(f"{name}: n_per_group must be >= 2")
        self.sizes = sizes
        self.config = replace(p, snr_scale=snr_scale, conflict_rate=rate)
        self.spec = self._build_spec()
        self._data: dict[str, Any] | None = None

    # -- spec and layout ------------------------------------------------------------------
    def _unit_names(self) -> list[str]:
        n = self.sizes["n_groups"]
        if self.config.protocol == "holdout":
            return ["train", "val", "test"]
        prefix = "Ses" if self.config.group_label == "session" else "S"
        return [f"{prefix}{i + 1:02d}" for i in range(n)]

    def _build_spec(self) -> DatasetSpec:
        c = self.config
        mods = tuple(ModalitySpec(m.name, m.dim, m.seq_len, m.group) for m in c.modalities)
        if c.protocol == "holdout":
            protocol = Protocol("holdout", ("holdout",),
                                f"fixed speaker-disjoint train/val/test split "
                                f"({self.sizes['n_train']}/{self.sizes['n_val']}/{self.sizes['n_test']})")
        else:
            protocol = Protocol("leave_one_out", tuple(self._unit_names()),
                                f"leave one {c.group_label} out for test; validation = the next "
                                f"{c.group_label} (cyclically); train = the rest")
        extra = (("generator_version", str(GENERATOR_VERSION)), ("data_seed", str(self.data_seed)),
                 ("conflict_rate", repr(c.conflict_rate)), ("snr_scale", repr(c.snr_scale)),
                 ("latent_classes", str(c.num_latent)))
        return DatasetSpec(name=c.name, task=c.task, class_names=c.class_names, modalities=mods,
                           protocol=protocol, primary_metric=c.primary_metric,
                           primary_direction=c.primary_direction, score_range=c.score_range,
                           synthetic=True, extra=extra)

    def _layout(self) -> tuple[Tensor | None, Tensor, list[str]]:
        """(fixed latent classes or None, fold unit of each sample, group name of each sample)."""
        s = self.sizes
        if self.config.protocol == "holdout":
            split_sizes = [s["n_train"], s["n_val"], s["n_test"]]
            per_split = _split_groups(s["n_groups"], split_sizes)
            unit, groups, first = [], [], 0
            for u, (n_u, g_u) in enumerate(zip(split_sizes, per_split)):
                unit += [u] * n_u
                groups += [f"spk{first + i % g_u + 1:02d}" for i in range(n_u)]
                first += g_u
            return None, torch.tensor(unit), groups
        names = self._unit_names()
        npg = s["n_per_group"]
        unit = torch.arange(s["n_groups"]).repeat_interleave(npg)
        if self.config.group_label == "session":  # two speakers per session, group = speaker
            groups = [f"{names[u]}{'F' if i % 2 == 0 else 'M'}" for u in range(len(names)) for i in range(npg)]
            return None, unit, groups
        # subjects watch every clip in turn: latent clip = row index modulo the number of clips
        groups = [names[u] for u in range(len(names)) for _ in range(npg)]
        k = torch.arange(npg).remainder(self.config.num_latent).repeat(s["n_groups"])
        return k, unit, groups

    # -- data -----------------------------------------------------------------------------
    def split_indices(self, fold: str | None = None) -> dict[str, Tensor]:
        """Row indices (generation order) of train / val / test for a fold (default: ours)."""
        fold = self.resolve_fold() if fold is None else fold
        if fold not in self.spec.protocol.folds:
            raise UserInputError(f"{self.spec.name}: unknown fold {fold!r}; folds are "
                                 f"{', '.join(self.spec.protocol.folds)}")
        unit = self._layout()[1]
        if self.config.protocol == "holdout":
            test_u, val_u = 2, 1
        else:
            test_u = self.spec.protocol.folds.index(fold)
            val_u = (test_u + 1) % len(self.spec.protocol.folds)
        return {"train": ((unit != test_u) & (unit != val_u)).nonzero().squeeze(1),
                "val": (unit == val_u).nonzero().squeeze(1),
                "test": (unit == test_u).nonzero().squeeze(1)}

    def _generate_split(self, index: Tensor, k_fixed: Tensor | None, unit: Tensor,
                        groups: list[str]) -> tuple[TensorSampleDataset, Tensor]:
        """Rows ``index`` (ascending), generated unit by unit: every unit (split / session /
        subject) has its own random stream, so a row's data never depends on the fold."""
        c = self.config
        out = _allocate(c, index.shape[0])
        pos = 0
        for u in unit[index].unique().tolist():
            rows = (unit == u).nonzero().squeeze(1)
            draw_samples(c, self.data_seed, n=rows.shape[0], k=None if k_fixed is None else k_fixed[rows],
                         stream=f"unit{u}", into=out, offset=pos)
            pos += rows.shape[0]
        idx = index.tolist()
        ds = TensorSampleDataset(out["x"], out["lengths"], out["y"], self.spec.discretize(out["y"]),
                                 ids=[f"{c.name}-{i:05d}" for i in idx], groups=[groups[i] for i in idx],
                                 meta={"conflict": out["conflict"]})
        return ds, out["k"]

    def setup(self, stage: str | None = None) -> None:
        """Generate this fold's train / val / test sets once (later calls reuse them)."""
        fold = self.resolve_fold()
        if self._data is None or self._data["fold"] != fold:
            k_fixed, unit, groups = self._layout()
            self._data = {"fold": fold, "latent": {}}
            for split, index in self.split_indices(fold).items():
                ds, k = self._generate_split(index, k_fixed, unit, groups)
                self._data[split] = ds
                self._data["latent"][split] = k
        self.train_set, self.val_set, self.test_set = self._data["train"], self._data["val"], self._data["test"]

    def latent(self, split: str) -> Tensor:
        """Latent class (class / sentiment level / clip) of every row of a split, after setup."""
        if self._data is None:
            raise RuntimeError("call setup() first")
        return self._data["latent"][split]

    # -- Bayes quantities -----------------------------------------------------------------
    def posterior(self, x: dict[str, Tensor], lengths: dict[str, Tensor],
                  modalities: Sequence[str] | None = None) -> Tensor:
        """Exact p(latent class | x): (N, K) float64; K = classes / sentiment levels / clips."""
        return posterior(self.config, self.data_seed, x, lengths, modalities)

    def bayes_predict(self, x: dict[str, Tensor], lengths: dict[str, Tensor],
                      modalities: Sequence[str] | None = None) -> Tensor:
        """Bayes-optimal predictions for the primary metric (see :func:`bayes_predict`)."""
        return bayes_predict(self.config, self.data_seed, x, lengths, modalities)

    def fingerprint(self) -> str:
        payload = {"preset": self.config.generator_dict(), "sizes": self.sizes, "data_seed": self.data_seed,
                   "version": GENERATOR_VERSION}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def limit(self, modalities: Sequence[str] | None = None, n_mc: int | None = None) -> dict[str, Any]:
        """Bayes limit of the primary metric (all modalities, or only ``modalities``)."""
        return bayes_limit(self.config, self.data_seed, modalities=modalities, n_mc=n_mc,
                           key=generator_key(self.config, self.data_seed))


@register_datamodule("synthetic-mosei")
class SyntheticMOSEI(SyntheticDataModule):
    """CMU-MOSEI-shaped sentiment regression (scores in [-3, 3], multiples of 1/3), holdout."""

    preset: ClassVar[SynthPreset] = PRESETS["synthetic-mosei"]


@register_datamodule("synthetic-iemocap")
class SyntheticIEMOCAP(SyntheticDataModule):
    """IEMOCAP-shaped 4-way classification (hap, neu, sad, ang), leave one session out."""

    preset: ClassVar[SynthPreset] = PRESETS["synthetic-iemocap"]


@register_datamodule("synthetic-physio")
class SyntheticPhysio(SyntheticDataModule):
    """DMER-shaped emotion distributions over 10 PANAS items from EEG/GSR/PPG/video, leave one subject out."""

    preset: ClassVar[SynthPreset] = PRESETS["synthetic-physio"]
