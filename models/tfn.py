"""TFN: Tensor Fusion Network (Zadeh, Chen, Poria, Cambria, Morency; EMNLP 2017).

Method (paper §3): each modality m goes through a *modality embedding subnetwork* to a small vector
``h_m``; the *tensor fusion layer* appends a constant 1 to each, ``z_m = [h_m; 1]``, and takes their
outer product ``Z = z_1 ⊗ z_2 ⊗ … ⊗ z_M`` — because of the appended 1, ``Z`` contains every unimodal
vector ``h_m`` as a sub-block, every bimodal product, …, and the full M-modal product; the
*sentiment inference subnetwork* is an MLP on ``vec(Z)``.

What differs here:

* Any number of modalities (1–4 on the shipped specs; the paper fuses exactly language, visual,
  acoustic). The fused size is ``Π_m (d_m + 1)``: with the defaults ``text_dim=32`` for text-group
  modalities and ``other_dim=8`` for the others it is 33·9·9 = 2,673 on the three-modality presets
  and 9⁴ = 6,561 on ``synthetic-physio`` (four non-text modalities), so the first post-fusion layer
  has ~0.4 M weights there; lower ``other_dim`` (or pick ``modalities=``) to shrink it. (The paper's
  128/32/32 sizes give a 129·33·33 ≈ 140 k tensor: too slow for the CPU sweeps this suite targets.)
  ``dims="text=32,audio=4"`` sets individual sizes.
* Subnetworks are :class:`~models.unimodal.ModalitySubnet`: the paper uses an LSTM for language
  (``seq_encoder="lstm"`` here) and mean-pooled features through a 3-layer MLP for audio/video;
  the default ``seq_encoder="mean"`` uses the masked-mean MLP for every modality (5–10× faster on
  CPU; the synthetic presets carry no order information in their sequences).
* Post-fusion MLP: two ReLU layers of ``post_hidden`` (paper: 128) with dropout; task heads follow
  the base convention (logits / scalar score / distribution logits / aux-score columns).
* Recipe: AdamW, lr 1e-3, up to 40 epochs, early stopping on validation after 8 epochs without
  improvement (the paper trains with Adam and grid-searched sizes/dropout; no fixed recipe is given).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from datamodules.batch import Batch
from datamodules.spec import DatasetSpec, ModalitySpec, UserInputError

from .base import MERModel, ModelOutput
from .registry import register_model
from .unimodal import ModalitySubnet, encode_modalities


def parse_dims(dims: str, used: tuple[ModalitySpec, ...], text_dim: int, other_dim: int,
               option: str = "dims") -> dict[str, int]:
    """Per-modality embedding sizes: text-group modalities ``text_dim``, others ``other_dim``,
    overridden by ``dims="name=d,name=d"``."""
    out = {m.name: int(text_dim if m.group == "text" else other_dim) for m in used}
    for item in [s for s in (dims or "").split(",") if s.strip()]:
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in out or not value.strip().isdigit():
            raise UserInputError(f"{option}={dims!r}: expected name=size pairs with names among "
                                 f"{', '.join(out)} and positive integer sizes")
        out[name] = int(value)
    if any(d < 1 for d in out.values()):
        raise UserInputError(f"{option}: every embedding size must be >= 1, got {out}")
    return out


def append_one(h: Tensor) -> Tensor:
    """``[h; 1]`` along the last dimension."""
    return torch.cat([h, h.new_ones(h.shape[0], 1)], dim=-1)


@register_model("tfn")
class TFN(MERModel):
    """Tensor Fusion Network (Zadeh et al., EMNLP 2017): outer product of [h_m; 1] over modalities + MLP."""

    PAPER = "Zadeh et al., Tensor Fusion Network for Multimodal Sentiment Analysis, EMNLP 2017"
    RECIPE = {"max_epochs": 40, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "patience": 8}

    def __init__(self, spec: DatasetSpec, text_dim: int = 32, other_dim: int = 8, dims: str = "",
                 subnet_hidden: int = 64, post_hidden: int = 64, dropout: float = 0.15,
                 seq_encoder: str = "mean", **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.dims = parse_dims(dims, self.used_modalities, text_dim, other_dim)
        # Modality embedding subnetworks: x_m -> h_m in R^{d_m}
        self.subnets = nn.ModuleDict({m.name: ModalitySubnet(m, subnet_hidden, self.dims[m.name], dropout,
                                                             seq_encoder) for m in self.used_modalities})
        self.fused_dim = 1
        for d in self.dims.values():
            self.fused_dim *= d + 1
        # Sentiment inference subnetwork on vec(Z)
        self.post = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(self.fused_dim, post_hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(post_hidden, post_hidden), nn.ReLU(),
            nn.Linear(post_hidden, spec.target_dim))

    @staticmethod
    def fuse(hs: list[Tensor]) -> Tensor:
        """Tensor fusion layer: ``vec(z_1 ⊗ … ⊗ z_M)`` with ``z_m = [h_m; 1]``, shape ``(B, Π(d_m+1))``.

        The first modality's index varies slowest (row-major), so ``Z.view(B, d_1+1, …, d_M+1)``
        recovers the tensor; ``Z[:, :d_1, d_2, …, d_M] == h_1`` and so on (the appended 1s)."""
        z = append_one(hs[0])
        for h in hs[1:]:
            z = (z.unsqueeze(-1) * append_one(h).unsqueeze(1)).flatten(1)
        return z

    def forward(self, batch: Batch) -> ModelOutput:
        hs = encode_modalities(self.subnets, batch, self.used_modalities)
        z = self.fuse(hs)
        return ModelOutput(pred=self.task_pred(self.post(z)),
                           embeddings={m.name: h for m, h in zip(self.used_modalities, hs)})
