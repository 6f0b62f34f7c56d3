"""Tiny randomly initialised transformers encoders saved to local folders (no downloads): an audio
model with its feature extractor, a text model with a small vocabulary, and a CLIP vision model
with projection and image processor. Plus a small dialog video written with PyAV and a wav writer."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "i", "you", "we", "am", "are", "happy", "sad", "angry", "so",
         "not", "fine", "okay", "well", "what", "it", "the", "a", "really", "know", "do", "that", "this", "is"]


def tiny_wavlm(folder: Path) -> Path:
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    torch.manual_seed(0)
    cfg = WavLMConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                      conv_dim=(8, 8, 8), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=8,
                      num_conv_pos_embedding_groups=2, num_buckets=8, max_bucket_distance=16)
    WavLMModel(cfg).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(folder)
    return folder


def tiny_bert(folder: Path) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    BertModel(BertConfig(vocab_size=len(WORDS), hidden_size=12, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=24, max_position_embeddings=64)).save_pretrained(folder)
    return folder


def tiny_clip(folder: Path) -> Path:
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16, projection_dim=6)
    CLIPVisionModelWithProjection(cfg).save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def write_video(path: Path, seconds: float = 4.0, fps: int = 10, width: int = 64, height: int = 32) -> Path:
    """A dialog-like video: frame k is a flat colour whose red channel encodes k (k * 12 % 256, so
    frames up to k = 21 are told apart), the right half also green; near-lossless mpeg4."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 8_000_000
        for k in range(int(seconds * fps)):
            img = np.zeros((height, width, 3), np.uint8)
            img[..., 0] = (k * 12) % 256
            img[:, width // 2:, 1] = 200  # the right half differs from the left
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def conv_frames(samples: int, kernels=(10, 4, 4), strides=(5, 4, 4)) -> int:
    """Frames out of :func:`tiny_wavlm`'s conv stack for a wav of ``samples`` samples."""
    for k, st in zip(kernels, strides):
        samples = (samples - k) // st + 1
    return samples


def write_wav(path: Path, samples: int, sr: int = 16000, channels: int = 1, seed: int = 0) -> Path:
    """int16 noise, ``channels`` channels at ``sr`` Hz."""
    from scipy.io import wavfile

    path.parent.mkdir(parents=True, exist_ok=True)
    data = (np.random.default_rng(seed).standard_normal((samples, channels)) * 3000).astype(np.int16)
    wavfile.write(path, sr, data[:, 0] if channels == 1 else data)
    return path
