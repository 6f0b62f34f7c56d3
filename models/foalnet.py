"""Foal-Net: audio-video fusion after alignment (AVEL) and label matching (MEM).

Paper: Qifei Li, Yingming Gao, Yuhua Wen, Cong Wang, Ya Li, "Enhancing Modal Fusion by Alignment and
Label Matching for Multimodal Emotion Recognition", Interspeech 2024, pp. 4663-4667 (arXiv 2408.09438).
Official code: github.com/ASolitaryMan/Foal-Net (commit 781849f). The paper's method text is not
available; this file follows the official code as summarised in ``methods/foalnet.md`` (sections 3-5),
with the deviations listed below.

Modules (paper names; B = batch):

* **Audio encoder.** Raw 16 kHz waveform -> WavLM (``wavlm=`` hub name or local folder; paper:
  WavLM-Large), CNN feature encoder frozen, transformer fine-tuned; frame mask from WavLM's own
  length formula; padded frames zeroed; dropout ``final_dropout``. With pre-extracted audio features
  (any non-waveform audio) WavLM is replaced by ``Linear(dim -> audio_dim)`` (default 1024).
* **Video.** Pre-computed CLIP frame features -> dropout -> padded frames zeroed; no trainable encoder
  (the dim is kept; only a dim not divisible by ``heads`` is linearly projected to the next multiple).
* **AVEL** (audio-video emotion alignment): masked mean over time -> projection block
  (e1 = W1 x; e2 = Dropout0.5(W2 GELU(e1)); LayerNorm(e1 + e2); no biases) -> L2 norm -> a, v.
  S_a2v = a v^T (scaled by the temperature), targets P_ij = [y_i == y_j] (diagonal included);
  L_a2v = mean_i -sum_j P_ij log softmax_j S_a2v[i, :]; L_AVEL = (L_a2v + L_v2a) / 2.
* **Fusion**: two stacks of ``layers`` (2) cross-attention layers, ``heads`` (4) heads, no FFN, no
  positional encoding: a2v (audio queries, video keys/values) and v2a (video queries, audio
  keys/values); each layer Linear out -> Dropout(0.1) -> LayerNorm(out + query); K/V are always the
  original source sequence; padded keys get -1e4. Padded query positions zeroed, masked mean,
  concat -> dropout -> Linear classifier ("Dense Layer").
* **MEM** (cross-modal emotion label matching): per sample one hard negative partner drawn from the
  batch (multinomial over the softmax of the scaled similarities, same-label entries excluded), the
  own and the negative pair scored by the same stacks with binary heads Linear(d -> 2);
  L_MEM = (CE_a2v + CE_v2a) / 2.
* Loss: task + ``avel_weight`` (1.0) L_AVEL + ``mem_weight`` (0.1) L_MEM (official code's weights).

Differences from the official code (documented in ``docs/models/foalnet.md``):

1. Temperature: default ``temperature_mode=clip_logit_scale`` -- similarities are multiplied by
   exp(s), s learnable, initialised ln(1/0.07), clamped at ln(100) as CLIP does (the evident intent:
   tau = 0.07). The code divides by s itself (tau ~ 2.66, near-uniform targets and negatives); that
   behaviour is ``temperature_mode=divide``.
2. MEM rows whose label occurs in every other sample of the batch (no different-label candidate)
   are skipped and counted (``<stage>/mem_skipped``); the code labels a same-emotion pair "mismatch".
3. Single-device semantics (no cross-GPU gather); similarities are cloned and detached before the
   negative sampling; the classification path needs no labels, AVEL/MEM run only in training and
   validation (when labels are present).
4. Other datasets (``methods/foalnet.md`` section 9): audio stream = the first used modality of
   group ``audio``, else ``physiological``, else the first remaining modality in spec order; video
   stream = the first of group ``visual``, else ``behavioral``, else the first remaining one.
   Vectors are length-1 sequences. Other modalities are ignored unless
   ``extra_modalities=fuse_with_audio`` (each projected to the audio width and appended to the audio
   sequence in time). Regression predicts one score; AVEL/MEM use ``batch.label`` (the discrete view).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, ModalitySpec, UserInputError

from .base import MERModel, ModelOutput
from .blocks import masked_mean
from .registry import register_model

TEMPERATURE_MODES = ("clip_logit_scale", "divide")
AUDIO_ENCODERS = ("auto", "wavlm", "linear")
EXTRA_MODES = ("ignore", "fuse_with_audio")
CLIP_MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps its logit scale at 100
MASK_VALUE = -1e4  # the official code's fill value for padded keys (fits fp16)
# Randomly initialised WavLM configs for speed tests only (never for results): ``wavlm=random:<size>``.
RANDOM_WAVLM = {
    "tiny": dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                 conv_dim=(8, 8, 8), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=8,
                 num_conv_pos_embedding_groups=2, num_buckets=8, max_bucket_distance=16),
    "base": {},  # WavLMConfig defaults: 12 layers, hidden 768 (WavLM-Base size)
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                  feat_extract_norm="layer", do_stable_layer_norm=True),
}


def is_waveform(m: ModalitySpec) -> bool:
    """A raw waveform modality: one channel per time step (``iemocap`` with ``audio_input=waveform``
    declares ``audio`` as ``(T = 16000 * max_seconds, 1)``)."""
    return m.is_sequence and m.dim == 1 and m.group == "audio"


def load_wavlm(name_or_path: str):
    """A ``transformers.WavLMModel`` from a local folder or a hub name (or ``random:<size>``)."""
    from transformers import WavLMConfig, WavLMModel

    if name_or_path.startswith("random:"):
        size = name_or_path.split(":", 1)[1]
        if size not in RANDOM_WAVLM:
            raise UserInputError(f"wavlm={name_or_path!r}: random sizes are {', '.join(RANDOM_WAVLM)}")
        return WavLMModel(WavLMConfig(**RANDOM_WAVLM[size]))
    path = Path(name_or_path).expanduser()
    local = path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if local:
        if not path.is_dir():
            raise UserInputError(f"wavlm={name_or_path!r}: no such folder (expected a WavLM checkpoint folder "
                                 "with config.json and model weights, e.g. a download of microsoft/wavlm-large)")
        if not (path / "config.json").is_file():
            raise UserInputError(f"wavlm={name_or_path!r}: the folder has no config.json (expected a "
                                 "transformers WavLM checkpoint folder)")
    try:
        model = WavLMModel.from_pretrained(str(path) if local else name_or_path)
    except (OSError, ValueError) as e:
        raise UserInputError(f"wavlm={name_or_path!r}: could not load a WavLM model ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}); without network access pass a local checkpoint "
                             "folder (config.json + weights), e.g. --set wavlm=/path/to/wavlm-large") from e
    return model


class ProjectionBlock(nn.Module):
    """AVEL projection: e1 = W1 x; e2 = Dropout(W2 GELU(e1)); LayerNorm(e1 + e2) (no biases)."""

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_in, d_out, bias=False)
        self.w2 = nn.Linear(d_out, d_out, bias=False)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_out)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.w1(x)
        e2 = self.drop(self.w2(F.gelu(e1)))
        return self.norm(e1 + e2)


class CrossAttentionLayer(nn.Module):
    """Multi-head cross-attention, post-LN residual on the query, no feed-forward sublayer."""

    def __init__(self, q_dim: int, kv_dim: int, heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        if q_dim % heads:
            raise UserInputError(f"heads={heads}: must divide the query width {q_dim}")
        self.heads = heads
        self.q = nn.Linear(q_dim, q_dim)
        self.k = nn.Linear(kv_dim, q_dim)
        self.v = nn.Linear(kv_dim, q_dim)
        self.out = nn.Linear(q_dim, q_dim)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(q_dim)

    def forward(self, query: Tensor, source: Tensor, source_mask: Tensor) -> Tensor:
        B, Tq, D = query.shape
        Ts, h = source.shape[1], self.heads
        q = self.q(query).view(B, Tq, h, D // h).transpose(1, 2)
        k = self.k(source).view(B, Ts, h, D // h).transpose(1, 2)
        v = self.v(source).view(B, Ts, h, D // h).transpose(1, 2)
        bias = torch.zeros(B, 1, 1, Ts, dtype=q.dtype, device=q.device)
        bias = bias.masked_fill(~source_mask[:, None, None, :], MASK_VALUE)
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # softmax(QK^T/sqrt(d_h) + bias) V
        ctx = ctx.transpose(1, 2).reshape(B, Tq, D)
        return self.norm(self.drop(self.out(ctx)) + query)


class CrossModalStack(nn.Module):
    """N cross-attention layers; layer n+1 queries with layer n's output, K/V stay the source."""

    def __init__(self, q_dim: int, kv_dim: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CrossAttentionLayer(q_dim, kv_dim, heads, dropout) for _ in range(layers))

    def forward(self, query: Tensor, query_mask: Tensor, source: Tensor, source_mask: Tensor) -> Tensor:
        h = query
        for layer in self.layers:
            h = layer(h, source, source_mask)
        h = h * query_mask.unsqueeze(-1).to(h.dtype)
        return masked_mean(h, query_mask)


def avel_loss(sim: Tensor, labels: Tensor, normalise_positives: bool = False) -> Tensor:
    """Label-aware contrastive loss of one direction: ``sim`` (B, B) scaled similarities, positives
    every same-label column (diagonal included); summed (code) or averaged over the positives."""
    pos = (labels[:, None] == labels[None, :]).to(sim.dtype)
    nll = -(pos * F.log_softmax(sim, dim=1)).sum(dim=1)
    if normalise_positives:
        nll = nll / pos.sum(dim=1)
    return nll.mean()


def sample_negatives(sim: Tensor, labels: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """One hard negative per row of ``sim`` (B, B): index ``j`` with ``labels[j] != labels[i]``, drawn
    with probability softmax over those entries. Returns (rows that have a candidate, their negatives)."""
    with torch.no_grad():
        s = sim.detach().float().clone()
        same = labels[:, None] == labels[None, :]
        valid = (~same).any(dim=1)
        rows = valid.nonzero(as_tuple=True)[0]
        if rows.numel() == 0:
            return rows, rows
        s = s.masked_fill(same, float("-inf"))[rows]
        probs = F.softmax(s, dim=1)
        neg = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return rows, neg


@register_model("foalnet")
class FoalNet(MERModel):
    """Foal-Net (Li et al., Interspeech 2024); see the module docstring for the adaptation rules."""

    RECIPE = {"max_epochs": 40, "batch_size": 16, "lr": 1e-4, "weight_decay": 0.01, "patience": 10,
              "sampler": "balanced", "precision": "16-mixed"}
    PAPER = "Li et al., Enhancing Modal Fusion by Alignment and Label Matching for MER, Interspeech 2024"
    LABEL = "Foal-Net"

    def __init__(self, spec: DatasetSpec, wavlm: str = "microsoft/wavlm-large", audio_encoder: str = "auto",
                 audio_dim: int = 1024, proj_dim: int = 512, layers: int = 2, heads: int = 4,
                 attn_dropout: float = 0.1, final_dropout: float | None = None, proj_dropout: float = 0.5,
                 temperature_mode: str = "clip_logit_scale", temperature_init: float = math.log(1 / 0.07),
                 avel_normalise_positives: bool = False, avel_weight: float = 1.0, mem_weight: float = 0.1,
                 extra_modalities: str = "ignore", **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        if temperature_mode not in TEMPERATURE_MODES:
            raise UserInputError(f"temperature_mode={temperature_mode!r}: expected one of {', '.join(TEMPERATURE_MODES)}")
        if audio_encoder not in AUDIO_ENCODERS:
            raise UserInputError(f"audio_encoder={audio_encoder!r}: expected one of {', '.join(AUDIO_ENCODERS)}")
        if extra_modalities not in EXTRA_MODES:
            raise UserInputError(f"extra_modalities={extra_modalities!r}: expected one of {', '.join(EXTRA_MODES)}")
        for name, val in (("layers", layers), ("heads", heads), ("audio_dim", audio_dim), ("proj_dim", proj_dim)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise UserInputError(f"{name}={val!r}: expected a positive integer")
        if temperature_mode == "divide" and not temperature_init > 0:
            raise UserInputError(f"temperature_init={temperature_init!r}: temperature_mode=divide needs a value > 0")
        self.temperature_mode = temperature_mode
        self.avel_normalise_positives = bool(avel_normalise_positives)
        self.avel_weight, self.mem_weight = float(avel_weight), float(mem_weight)
        self.audio_mod, self.video_mod, self.extra_mods = self.assign_streams(self.used_modalities)
        if extra_modalities == "ignore":
            self.extra_mods = ()

        # audio encoder: WavLM on waveforms, else a linear projection of the features
        wave = is_waveform(self.audio_mod)
        if audio_encoder == "wavlm" and not wave:
            raise UserInputError(f"audio_encoder=wavlm: modality {self.audio_mod.name!r} is not a raw waveform "
                                 f"(dim {self.audio_mod.dim}); use iemocap with audio_input=waveform")
        self.use_wavlm = wave and audio_encoder != "linear"
        if self.use_wavlm:
            self.wavlm = load_wavlm(wavlm).train()  # from_pretrained returns eval mode; Lightning keeps modes
            self.wavlm.freeze_feature_encoder()  # CNN frozen, transformer fine-tuned
            d_a = int(self.wavlm.config.hidden_size)
            fd = float(self.wavlm.config.final_dropout) if final_dropout is None else float(final_dropout)
            self.audio_in = None
        else:
            self.wavlm = None
            d_a = audio_dim
            fd = 0.1 if final_dropout is None else float(final_dropout)  # WavLMConfig's default
            self.audio_in = nn.Linear(self.audio_mod.dim, d_a)
        if d_a % heads:
            raise UserInputError(f"heads={heads}: must divide the audio width {d_a}")
        d_v = self.video_mod.dim
        self.video_in = None
        if d_v % heads:  # the stacks need d_model divisible by the heads: project to the next multiple
            d_v = heads * math.ceil(d_v / heads)
            self.video_in = nn.Linear(self.video_mod.dim, d_v)
        self.extra_in = nn.ModuleDict({m.name: nn.Linear(m.dim, d_a) for m in self.extra_mods})
        self.d_a, self.d_v = d_a, d_v
        self.drop = nn.Dropout(fd)

        # AVEL
        self.proj_a = ProjectionBlock(d_a, proj_dim, proj_dropout)
        self.proj_v = ProjectionBlock(d_v, proj_dim, proj_dropout)
        self.temperature = nn.Parameter(torch.tensor(float(temperature_init)))
        # fusion
        self.a2v = CrossModalStack(d_a, d_v, layers, heads, attn_dropout)
        self.v2a = CrossModalStack(d_v, d_a, layers, heads, attn_dropout)
        self.classifier = nn.Linear(d_a + d_v, spec.target_dim)
        # MEM heads
        self.mem_a2v = nn.Linear(d_a, 2)
        self.mem_v2a = nn.Linear(d_v, 2)
        for name, mod in self.named_modules():
            if not name.startswith("wavlm"):
                self._init(mod)
        self.mem_generator: torch.Generator | None = None  # tests may fix the negative draws

    @staticmethod
    def _init(mod: nn.Module) -> None:
        if isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, std=0.02)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.LayerNorm):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)

    @staticmethod
    def assign_streams(mods: tuple[ModalitySpec, ...]) -> tuple[ModalitySpec, ModalitySpec, tuple[ModalitySpec, ...]]:
        """(audio stream, video stream, the others) following the rule in the module docstring."""
        if len(mods) < 2:
            raise UserInputError(f"foalnet needs two modalities (an audio and a video stream); got "
                                 f"{', '.join(m.name for m in mods)}")

        def first(groups: tuple[str, ...], exclude: tuple[ModalitySpec, ...] = ()) -> ModalitySpec | None:
            for g in groups:
                for m in mods:
                    if m.group == g and m not in exclude:
                        return m
            return None

        audio = first(("audio",))
        video = first(("visual",))
        audio = audio or first(("physiological",), (video,) if video else ())
        video = video or first(("behavioral",), (audio,) if audio else ())
        audio = audio or next(m for m in mods if m is not video)
        video = video or next(m for m in mods if m is not audio)
        return audio, video, tuple(m for m in mods if m is not audio and m is not video)

    # -- encoders -----------------------------------------------------------------------------
    @staticmethod
    def _as_sequence(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        if x.dim() == 2:  # a vector is a length-1 sequence; its mask is presence
            m = mask if mask is not None else torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
            return x.unsqueeze(1), m.reshape(-1, 1).bool()
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return x, mask.bool()

    def encode_audio(self, batch: Batch) -> tuple[Tensor, Tensor]:
        m = self.audio_mod
        x, mask = self._as_sequence(batch.x[m.name], batch.mask.get(m.name))
        if self.wavlm is not None:
            wave = x.squeeze(-1)
            hidden = self.wavlm(input_values=wave, attention_mask=mask.long()).last_hidden_state
            lengths = self.wavlm._get_feat_extract_output_lengths(mask.sum(dim=1))
            mask = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]
            x = hidden
        else:
            x = self.audio_in(x)
        x = self.drop(x) * mask.unsqueeze(-1).to(x.dtype)
        for e in self.extra_mods:  # extra_modalities=fuse_with_audio: appended in time
            xe, me = self._as_sequence(batch.x[e.name], batch.mask.get(e.name))
            x = torch.cat([x, self.extra_in[e.name](xe) * me.unsqueeze(-1).to(x.dtype)], dim=1)
            mask = torch.cat([mask, me], dim=1)
        return x, mask

    def encode_video(self, batch: Batch) -> tuple[Tensor, Tensor]:
        m = self.video_mod
        x, mask = self._as_sequence(batch.x[m.name], batch.mask.get(m.name))
        if self.video_in is not None:
            x = self.video_in(x)
        return self.drop(x) * mask.unsqueeze(-1).to(x.dtype), mask

    # -- the paper's parts --------------------------------------------------------------------
    def scale(self, sim: Tensor) -> Tensor:
        if self.temperature_mode == "clip_logit_scale":
            return sim * self.temperature.clamp(max=CLIP_MAX_LOGIT_SCALE).exp()
        return sim / self.temperature  # the official code's convention

    def fuse(self, a: Tensor, ma: Tensor, v: Tensor, mv: Tensor) -> tuple[Tensor, Tensor]:
        return self.a2v(a, ma, v, mv), self.v2a(v, mv, a, ma)

    def avel(self, a: Tensor, ma: Tensor, v: Tensor, mv: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        za = F.normalize(self.proj_a(masked_mean(a, ma)), dim=-1)
        zv = F.normalize(self.proj_v(masked_mean(v, mv)), dim=-1)
        s_a2v = self.scale(za @ zv.t())
        s_v2a = self.scale(zv @ za.t())
        loss = 0.5 * (avel_loss(s_a2v, labels, self.avel_normalise_positives)
                      + avel_loss(s_v2a, labels, self.avel_normalise_positives))
        return loss, s_a2v, s_v2a

    def mem(self, a: Tensor, ma: Tensor, v: Tensor, mv: Tensor, labels: Tensor, s_a2v: Tensor,
            s_v2a: Tensor) -> tuple[Tensor | None, int]:
        """L_MEM and the number of skipped rows (no different-label sample in the batch)."""
        rows_a, neg_v = sample_negatives(s_a2v, labels, self.mem_generator)  # audio i vs video j
        rows_v, neg_a = sample_negatives(s_v2a, labels, self.mem_generator)  # video i vs audio k
        self.last_mem_pairs = (rows_a, neg_v, rows_v, neg_a)
        skipped = len(labels) - rows_a.numel()
        if rows_a.numel() == 0:
            return None, skipped
        n = rows_a.numel()
        target = torch.cat([torch.ones(n), torch.zeros(n)]).long().to(a.device)
        qa, qma = a[rows_a].repeat(2, 1, 1), ma[rows_a].repeat(2, 1)
        kv, kvm = torch.cat([v[rows_a], v[neg_v]]), torch.cat([mv[rows_a], mv[neg_v]])
        ce_a2v = F.cross_entropy(self.mem_a2v(self.a2v(qa, qma, kv, kvm)), target)
        qv, qmv = v[rows_v].repeat(2, 1, 1), mv[rows_v].repeat(2, 1)
        ka, kam = torch.cat([a[rows_v], a[neg_a]]), torch.cat([ma[rows_v], ma[neg_a]])
        ce_v2a = F.cross_entropy(self.mem_v2a(self.v2a(qv, qmv, ka, kam)), target)
        return 0.5 * (ce_a2v + ce_v2a), skipped

    def _want_aux(self, batch: Batch) -> bool:
        if batch.label is None or len(batch) < 2:
            return False
        if self.training:
            return True
        trainer = self._trainer
        return trainer is not None and bool(trainer.validating or trainer.sanity_checking)

    def forward(self, batch: Batch) -> ModelOutput:
        a, ma = self.encode_audio(batch)
        v, mv = self.encode_video(batch)
        pa, pv = self.fuse(a, ma, v, mv)
        fused = torch.cat([pa, pv], dim=-1)
        pred = self.task_pred(self.classifier(self.drop(fused)))
        aux: dict[str, Tensor] = {}
        if self._want_aux(batch):
            labels = batch.label.to(a.device)
            l_avel, s_a2v, s_v2a = self.avel(a, ma, v, mv, labels)
            aux["avel"] = self.avel_weight * l_avel
            l_mem, skipped = self.mem(a, ma, v, mv, labels, s_a2v, s_v2a)
            aux["mem"] = self.mem_weight * l_mem if l_mem is not None else fused.new_zeros(())
            self.last_mem_skipped = skipped
            if self._trainer is not None:
                self.log(f"{'train' if self.training else 'val'}/mem_skipped", float(skipped), reduce_fx="sum",
                         on_step=False, on_epoch=True, batch_size=len(batch))
        return ModelOutput(pred=pred, aux_losses=aux, embeddings={"audio": pa, "video": pv, "fused": fused})
