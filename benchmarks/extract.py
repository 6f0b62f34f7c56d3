"""``bench extract``: feature folders from a dataset release with transformers encoders, with
provenance.

    bench extract --data iemocap --data-dir DIR --modality audio --model microsoft/wavlm-large \\
        --name wavlm-large-L12 --layer 12 [--pooling none|mean] [--max-seconds 6]
    bench extract ... --modality text  --model roberta-large --name roberta-mean --pooling mean
    bench extract ... --modality video --model openai/clip-vit-large-patch14 --name clip-fps2 --fps 2

Each utterance becomes ``<features root>/<name>/<utterance id>.npy`` (float32; ``(T, D)`` frames with
``--pooling none``, ``(D,)`` with ``mean``), written atomically. The folder's ``provenance.json``
(``datamodules/provenance.py``) names the encoder (name or path, revision, SHA-256 over its
weights), layer, pooling, level, dim, input sample rate, feature frame rate, preprocessing and
package versions; ``index.tsv`` records the provenance of every array. Extraction resumes:
utterances already written under the same provenance are skipped; a different encoder, layer or
setting into the same folder is refused (pick another ``--name``).

Encoders (``transformers``, loaded by hub name or local path; with no network only local paths
work):

* audio: any model with a feature extractor and hidden states (WavLM, HuBERT, wav2vec 2.0) on the
  16 kHz utterance wav (int16 scaled to [-1, 1); the feature extractor's own normalisation
  applies), optionally cut to ``--max-seconds``; frames at ``sample rate / total conv stride``
  (50 per second for these models); ``--layer`` indexes ``hidden_states`` (0 = the CNN features
  after projection, ``last`` = the final layer).
* text: a tokenizer + encoder (BERT, RoBERTa, ...) on the utterance transcript, truncated to
  ``--max-tokens``; token-level states or their mean over real tokens.
* video: CLIP's projected image embeddings (``CLIPVisionModelWithProjection``) of frames sampled at
  ``--fps`` between the utterance's start and end in the dialog video, decoded with PyAV; the
  whole frame by default (both actors), or ``--crop left|right`` (which half shows which speaker
  is not documented by the release).

Errors name the file: a missing wav or video, a wav at another sample rate, an utterance without a
transcript, a video segment with no frame.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datamodules import provenance as pv
from datamodules.io import DataError
from datamodules.spec import UserInputError

MODALITIES = ("audio", "text", "video")


@dataclass
class ExtractSettings:
    data_dir: str
    modality: str
    model: str
    name: str
    layer: str = "last"
    pooling: str = "none"
    max_seconds: float | None = None
    max_tokens: int = 512
    fps: float = 2.0
    crop: str = "none"
    features_root: str | None = None
    device: str = "cpu"
    sessions: tuple[int, ...] = (1, 2, 3, 4, 5)
    limit: int | None = None
    progress: bool = True


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("torch", "transformers", "numpy", "av"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the state dict (names and raw bytes, sorted by name): the same weights give the
    same hash whatever file format or cache they were loaded from."""
    h = hashlib.sha256()
    for key, t in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _parse_layer(layer: str) -> int | str:
    if layer == "last":
        return layer
    try:
        return int(layer)
    except ValueError:
        raise UserInputError(f"--layer must be an integer or 'last', got {layer!r}") from None


def _load(loader, name: str, what: str):
    local = Path(name).is_dir()
    try:
        return loader.from_pretrained(name, local_files_only=local)
    except (OSError, ValueError) as e:
        hint = "" if local else " (no such local folder either; hub names need network access)"
        raise UserInputError(f"--model {name}: cannot load its {what}{hint}: {str(e).splitlines()[0]}") from e


class Encoder:
    """A loaded encoder for one modality; ``__call__`` maps one input to a float32 array."""

    def __init__(self, s: ExtractSettings) -> None:
        import transformers as tf

        self.s = s
        self.layer = _parse_layer(s.layer)
        self.device = torch.device(s.device)
        if s.modality == "audio":
            self.pre = _load(tf.AutoFeatureExtractor, s.model, "feature extractor")
            self.model = _load(tf.AutoModel, s.model, "model")
            self.sample_rate = int(self.pre.sampling_rate)
            stride = math.prod(getattr(self.model.config, "conv_stride", (1,)))
            self.frame_rate = self.sample_rate / stride
        elif s.modality == "text":
            self.pre = _load(tf.AutoTokenizer, s.model, "tokenizer")
            self.model = _load(tf.AutoModel, s.model, "model")
            self.sample_rate, self.frame_rate = None, None
        else:
            try:
                import av  # noqa: F401
                import PIL  # noqa: F401
            except ImportError as e:
                raise UserInputError(f"video extraction needs PyAV and Pillow ({e.name} is missing): "
                                     "pip install av pillow, or the package's [video] extra") from None
            # the PIL-backed processor: the default one needs torchvision, which would pin another torch build
            self.pre = _load(getattr(tf, "CLIPImageProcessorPil", tf.AutoImageProcessor), s.model, "image processor")
            self.model = _load(tf.CLIPVisionModelWithProjection, s.model, "CLIP vision model")
            self.layer = "projection"
            self.sample_rate, self.frame_rate = None, float(s.fps)
        self.model.eval().to(self.device)
        self.dim: int | None = None

    def provenance(self) -> dict[str, Any]:
        s = self.s
        pre = {"max_seconds": s.max_seconds} if s.modality == "audio" else \
            {"max_tokens": s.max_tokens} if s.modality == "text" else {"fps": s.fps, "crop": s.crop}
        frame = s.pooling == "none"
        return {
            "format": pv.FORMAT, "feature": s.name, "modality": s.modality,
            "encoder": {"name_or_path": s.model, "revision": getattr(self.model.config, "_commit_hash", None),
                        "weights_sha256": weights_sha256(self.model), "class": type(self.model).__name__},
            "layer": self.layer, "pooling": s.pooling, "level": "frame" if frame else "utterance",
            "dim": self.dim, "sample_rate": self.sample_rate, "frame_rate": self.frame_rate if frame else None,
            "preprocessing": pre, "versions": _versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def _pick(self, out) -> torch.Tensor:
        states = out.hidden_states
        if self.layer == "last":
            return out.last_hidden_state
        if not -len(states) <= self.layer < len(states):
            raise UserInputError(f"--layer {self.layer}: {self.s.model} has hidden states 0..{len(states) - 1}")
        return states[self.layer]

    @torch.inference_mode()
    def __call__(self, item) -> np.ndarray:
        m = self.s.modality
        if m == "audio":
            wave = read_wav(item.wav_path, self.sample_rate, self.s.max_seconds)
            inputs = self.pre(wave, sampling_rate=self.sample_rate, return_tensors="pt")
            out = self.model(**inputs.to(self.device), output_hidden_states=True)
            feats, mask = self._pick(out)[0], None
        elif m == "text":
            if item.transcript is None:
                raise DataError(item.wav_path.parents[3] / "dialog" / "transcriptions" / f"{item.dialog}.txt",
                                item.id, "a transcription line for every utterance", "none")
            inputs = self.pre(item.transcript, truncation=True, max_length=self.s.max_tokens, return_tensors="pt")
            out = self.model(**inputs.to(self.device), output_hidden_states=True)
            feats, mask = self._pick(out)[0], inputs["attention_mask"][0].bool()
        else:
            frames = read_frames(item.video_path, item.start, item.end, self.s.fps, self.s.crop)
            inputs = self.pre(images=frames, return_tensors="pt")
            feats, mask = self.model(**inputs.to(self.device)).image_embeds, None
        if self.s.pooling == "mean":
            feats = feats[mask].mean(dim=0) if mask is not None else feats.mean(dim=0)
        arr = feats.float().cpu().numpy().astype(np.float32)
        self.dim = int(arr.shape[-1])
        return arr


def read_wav(path: Path, sample_rate: int, max_seconds: float | None) -> np.ndarray:
    from scipy.io import wavfile

    if not Path(path).is_file():
        raise DataError(path, "<file>", "the utterance's wav file", "no such file")
    try:
        sr, data = wavfile.read(path)
    except ValueError as e:
        raise DataError(path, "<file>", "a PCM wav file", e) from e
    if sr != sample_rate:
        raise DataError(path, "sample rate", f"{sample_rate} Hz (the encoder's)", f"{sr} Hz")
    if data.ndim != 1:
        raise DataError(path, "channels", "mono", f"{data.shape[1]} channels")
    wave = data.astype(np.float32) / 32768.0 if data.dtype == np.int16 else data.astype(np.float32)
    if max_seconds:
        wave = wave[: int(round(max_seconds * sr))]
    if wave.size == 0:
        raise DataError(path, "samples", "at least one sample", 0)
    return wave


def read_frames(path: Path, start: float, end: float, fps: float, crop: str) -> list[np.ndarray]:
    """RGB frames at ``start + k / fps`` for ``k = 0, 1, ...`` while before ``end``: each the last
    decoded frame at or before that time."""
    import av

    if not Path(path).is_file():
        raise DataError(path, "<file>", "the dialog's video file", "no such file")
    want = [start + k / fps for k in range(max(1, math.ceil((end - start) * fps - 1e-9)))]
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if start > 0 and stream.time_base is not None:  # jump to the keyframe before the segment
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        last = None
        for frame in container.decode(stream):
            t = float(frame.time) if frame.time is not None else 0.0
            while want and t > want[0] + 1e-6:  # passed a wanted time: the previous frame covers it
                if last is not None:
                    frames.append(last)
                want.pop(0)
            if not want:
                break
            last = frame.to_ndarray(format="rgb24")
        if want and last is not None:  # the video ended before `end`: nothing after the last frame
            frames.append(last)
    if not frames:
        raise DataError(path, f"[{start:.3f}, {end:.3f}] s", "at least one decoded frame", "none")
    if crop != "none":
        half = frames[0].shape[1] // 2
        frames = [f[:, :half] if crop == "left" else f[:, half:] for f in frames]
    return frames


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npy", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        np.save(f, arr, allow_pickle=False)
    os.replace(tmp, path)


def run_extract(s: ExtractSettings, echo=print) -> dict[str, int]:
    """Extract every utterance of the release; returns ``{"written", "skipped", "total"}``."""
    from tqdm.auto import tqdm

    from datamodules.iemocap import find_release, parse_release

    if s.modality not in MODALITIES:
        raise UserInputError(f"--modality must be one of {', '.join(MODALITIES)}, got {s.modality!r}")
    if s.pooling not in ("none", "mean"):
        raise UserInputError(f"--pooling must be none or mean, got {s.pooling!r}")
    if s.crop not in ("none", "left", "right"):
        raise UserInputError(f"--crop must be none, left or right, got {s.crop!r}")
    if not s.name or "/" in s.name or s.name.startswith("."):
        raise UserInputError(f"--name must be a plain folder name, got {s.name!r}")
    items = parse_release(find_release(s.data_dir), sessions=tuple(s.sessions))[: s.limit]
    root = Path(s.features_root) if s.features_root else Path(s.data_dir) / "features"
    if not root.is_absolute() and s.features_root:
        root = Path(s.data_dir) / root
    folder = root / s.name
    enc = Encoder(s)
    enc(items[0])  # one pass fixes the output dim that the provenance records
    pid = pv.write(folder, enc.provenance())
    done = pv.read_index(folder)
    todo = [u for u in items if not (done.get(u.id) == pid and (folder / f"{u.id}.npy").is_file())]
    echo(f"bench: extracting {s.modality} features '{s.name}' with {s.model} for {len(items)} utterances into "
         f"{folder} ({len(items) - len(todo)} done already, provenance {pid})")
    for u in tqdm(todo, desc=f"extract {s.name}", unit="utt", disable=not s.progress):
        arr = enc(u)
        _save_atomic(folder / f"{u.id}.npy", arr)
        pv.append_index(folder, u.id, pid)
    return {"written": len(todo), "skipped": len(items) - len(todo), "total": len(items)}
