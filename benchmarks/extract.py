"""``bench extract``: feature folders from a dataset release with transformers encoders, with
provenance.

    bench extract --data iemocap --data-dir DIR --modality audio --model microsoft/wavlm-large \\
        --name wavlm-large-L12 --layer 12 [--pooling none|mean] [--max-seconds 6]
    bench extract ... --modality text  --model roberta-large --name roberta-mean --pooling mean
    bench extract ... --modality video --model openai/clip-vit-large-patch14 --name clip-fps2 --fps 2

Two layers:

* the **engine** (:class:`Item`, :class:`Encoder`, :func:`extract_items`) knows no dataset: items
  with an ``id`` and, per modality, a wav path, a transcript, or a video path with a time window;
* the **IEMOCAP entry** (:func:`iemocap_items`, :func:`run_extract`) turns a release's utterances
  (``datamodules.iemocap.parse_release``) into items.

Each item becomes ``<features root>/<name>/<id>.npy`` (float32; ``(T, D)`` frames or tokens with
``pooling="none"``, ``(D,)`` with ``"mean"``), written atomically (temporary file + rename), and
then a line in the folder's ``index.tsv``. The folder's ``provenance.json``
(``datamodules/provenance.py``) names the encoder (name or path, revision, SHA-256 of its weight
files), layer, pooling, level, dim, input sample rate, feature frame rate, preprocessing and
package versions. Extraction resumes: an item whose array exists *and* is indexed under this
provenance is skipped, an array without an index entry is recomputed; a different encoder, layer
or setting into the same folder is refused (pick another ``--name``).

Encoders (``transformers``): a local folder (loaded with ``local_files_only``) or a hub name (works
on a machine with network access or with the model in the local hub cache):

* audio: any model with a feature extractor and hidden states (WavLM, HuBERT, wav2vec 2.0) on the
  wav, which must be mono at the feature extractor's sampling rate (16 kHz for these models and for
  IEMOCAP; nothing is resampled); integer PCM is scaled to [-1, 1), then the feature extractor's
  own normalisation applies; optionally cut to ``max_seconds``. Frames at ``sample rate / total
  conv stride`` (50 per second for these models). ``layer`` indexes ``hidden_states`` (0 = the CNN
  features after projection, ``last`` = the final layer).
* text: a tokenizer + encoder (BERT, RoBERTa, ...) on the transcript, truncated to ``max_tokens``;
  token-level states (special tokens included) or their mean over the real (unpadded) tokens.
* video: CLIP's projected image embeddings (``CLIPVisionModelWithProjection.image_embeds``) of
  frames between the item's start and end (cut to ``max_seconds`` if given), decoded with PyAV:
  at ``fps`` the frames shown at ``start + k / fps`` for ``k = 0 .. ceil((end - start) * fps) - 1``
  (each the last frame at or before that time), or with ``fps="native"`` every decoded frame in
  ``[start, end)``. The whole frame by default (Foal-Net's "All Image - CLIP"), or ``crop``
  ``left|right`` for one half (IEMOCAP's videos show both actors side by side; which half shows
  which speaker is not documented by the release).

Errors name the file: a missing wav or video, a wav at another sample rate or with several
channels, an utterance without a transcript, a video segment with no frame; an encoder that cannot
be loaded is one :class:`~datamodules.spec.UserInputError`.
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
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from datamodules import provenance as pv
from datamodules.io import DataError, sha256_file
from datamodules.io import read_wav as io_read_wav
from datamodules.spec import UserInputError

MODALITIES = ("audio", "text", "video")
POOLINGS = ("none", "mean")
CROPS = ("none", "left", "right")
# weight files transformers loads, in its order of preference (safetensors first), single or sharded
WEIGHT_FILES = (("model.safetensors", "model-*-of-*.safetensors"), ("pytorch_model.bin", "pytorch_model-*-of-*.bin"))


@dataclass
class ExtractSettings:
    data_dir: str | None  # the dataset release (IEMOCAP entry only; the engine ignores it)
    modality: str
    model: str
    name: str
    layer: str = "last"
    pooling: str = "none"
    max_seconds: float | None = None  # audio and video: cut each item to its first max_seconds
    max_tokens: int = 512
    fps: float | str = 2.0  # video: frames per second, or "native" (every frame)
    crop: str = "none"
    features_root: str | None = None
    device: str = "cpu"
    sessions: tuple[int, ...] = (1, 2, 3, 4, 5)
    limit: int | None = None
    progress: bool = True


@dataclass(frozen=True)
class Item:
    """One input of the engine. Audio needs ``wav_path``, text ``transcript``, video ``video_path``
    with the window ``[start, end)`` in seconds (``end=None``: to the end of the video) and an
    optional per-item ``crop`` (None: the settings' crop). ``source`` is the file named in the error
    when the input is missing (e.g. the transcription file for a missing transcript)."""

    id: str
    wav_path: Path | None = None
    transcript: str | None = None
    video_path: Path | None = None
    start: float = 0.0
    end: float | None = None
    crop: str | None = None
    source: Path | str | None = None


# ----------------------------------------------------------------------------------------
# settings, versions, weights
# ----------------------------------------------------------------------------------------
# packages whose version is part of a folder's provenance (and so of its identity), per modality:
# only those that touch the numbers, so that e.g. installing PyAV does not block resuming an audio folder
VERSIONED = {"audio": ("scipy",), "text": ("tokenizers",), "video": ("av", "pillow")}


def _versions(modality: str) -> dict[str, str]:
    out = {}
    for pkg in ("torch", "transformers", "numpy", *VERSIONED.get(modality, ())):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _parse_layer(layer: str | int) -> int | str:
    if layer == "last":
        return layer
    try:
        return int(layer)
    except (TypeError, ValueError):
        raise UserInputError(f"--layer must be an integer or 'last', got {layer!r}") from None


def _parse_fps(fps: float | str) -> float | str:
    if fps == "native":
        return fps
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = float("nan")
    if not value > 0 or not math.isfinite(value):
        raise UserInputError(f"--fps must be a positive number of frames per second or 'native', got {fps!r}")
    return value


def check_settings(s: ExtractSettings) -> None:
    """Refuse impossible settings before any model is loaded."""
    if s.modality not in MODALITIES:
        raise UserInputError(f"--modality must be one of {', '.join(MODALITIES)}, got {s.modality!r}")
    if s.pooling not in POOLINGS:
        raise UserInputError(f"--pooling must be none or mean, got {s.pooling!r}")
    if s.crop not in CROPS:
        raise UserInputError(f"--crop must be none, left or right, got {s.crop!r}")
    if not s.name or "/" in s.name or "\\" in s.name or s.name.startswith("."):
        raise UserInputError(f"--name must be a plain folder name, got {s.name!r}")
    if s.max_seconds is not None and not s.max_seconds > 0:
        raise UserInputError(f"--max-seconds must be positive, got {s.max_seconds}")
    if s.max_tokens < 2:
        raise UserInputError(f"--max-tokens must be at least 2, got {s.max_tokens}")
    _parse_layer(s.layer)
    if s.modality == "video":
        _parse_fps(s.fps)
        if s.layer != "last":
            raise UserInputError(f"--layer {s.layer}: video features are CLIP's projected image embeddings "
                                 "(no hidden-state layer to choose); leave --layer out")


def weight_files(folder: Path) -> list[Path]:
    """The weight files transformers loads from ``folder`` (safetensors before pickles), sorted."""
    for patterns in WEIGHT_FILES:
        files = sorted({p for pat in patterns for p in Path(folder).glob(pat) if p.is_file()})
        if files:
            return files
    return []


def _model_folder(name_or_path: str, revision: str | None) -> Path | None:
    """The local folder holding the model's files: the path itself, or the hub cache's snapshot."""
    if Path(name_or_path).is_dir():
        return Path(name_or_path)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, revision=revision, local_files_only=True))
    except Exception:  # not cached, or another hub client version: fall back to the state dict
        return None


def state_dict_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the state dict (names, shapes and raw bytes, sorted by name)."""
    h = hashlib.sha256()
    for key, t in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def weights_identity(model: torch.nn.Module, name_or_path: str, revision: str | None) -> dict[str, Any]:
    """``weights_sha256`` and how it was computed. From the weight files when they can be found: for
    a single file its SHA-256 (the value the model hub lists for the file), for sharded weights the
    SHA-256 over the lines ``<file name>\\t<sha256>`` in name order; ``weight_files`` lists them.
    Otherwise (no files: a model built in memory) the SHA-256 over the state dict."""
    folder = _model_folder(name_or_path, revision)
    files = weight_files(folder) if folder is not None else []
    if not files:
        return {"weights_sha256": state_dict_sha256(model), "weights_hashed": "state_dict"}
    sums = {f.name: sha256_file(f) for f in files}
    digest = next(iter(sums.values())) if len(sums) == 1 else \
        hashlib.sha256("".join(f"{n}\t{d}\n" for n, d in sums.items()).encode()).hexdigest()
    return {"weights_sha256": digest, "weights_hashed": "files", "weight_files": sums}


def _load(loader, name: str, what: str):
    local = Path(name).is_dir()
    try:
        return loader.from_pretrained(name, local_files_only=local)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        hint = "" if local else (" (no such local folder; a hub name needs network access or the model in the "
                                 "local hub cache)")
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserInputError(f"--model {name}: cannot load its {what}{hint}: {first}") from e


# ----------------------------------------------------------------------------------------
# reading inputs
# ----------------------------------------------------------------------------------------
def read_wav(path: Path, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """A mono wav at the encoder's rate, cut to ``max_seconds`` (see :func:`datamodules.io.read_wav`)."""
    return io_read_wav(path, sample_rate, max_seconds,
                       rate_hint="the encoder's feature extractor's; resample the audio first")


def _require_av():
    try:
        import av
        import PIL  # noqa: F401  (CLIP's image processor)
    except ImportError as e:
        raise UserInputError(f"video extraction needs PyAV and Pillow ({e.name} is missing): pip install av pillow, "
                             "or the package's [video] extra") from None
    return av


def read_frames(path: Path, start: float, end: float | None, fps: float | str, crop: str = "none",
                ) -> tuple[list[np.ndarray], float | None]:
    """RGB frames of ``[start, end)`` and the stream's frame rate.

    ``fps`` a number: the frames shown at ``start + k / fps`` for ``k = 0 .. ceil((end - start) * fps)
    - 1`` (each the last frame at or before that time; the first frame for times before it), so a
    window of d seconds gives ``ceil(d * fps)`` frames; a video that ends earlier gives only the
    times its last frame still covers (at least one frame). ``fps="native"``: every frame whose time
    lies in ``[start, end)`` (the frame at ``start`` if none does). ``crop``: ``left``/``right`` half of each frame."""
    av = _require_av()
    if path is None or not Path(path).is_file():
        raise DataError(path, "<file>", "the dialog's video file", "no such file")
    eps = 1e-6
    frames: list = []  # av.VideoFrame; converted to arrays only when kept
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise DataError(path, "<file>", "a video PyAV can decode", e) from e
    with container:
        if not container.streams.video:
            raise DataError(path, "streams", "a video stream", "none")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        if end is None:
            dur = (float(stream.duration * stream.time_base) if stream.duration is not None and stream.time_base
                   else (container.duration / 1e6 if container.duration else None))
            if dur is None:
                raise DataError(path, "duration", "a known duration (or give the item an end time)", "none")
            end = dur
        want = None if fps == "native" else [start + k / fps for k in range(max(1, math.ceil((end - start) * fps
                                                                                              - 1e-9)))]
        last, prev_t = None, None
        try:
            if start > 0 and stream.time_base is not None:  # jump to the keyframe before the segment
                container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                t = frame.time
                if t is None:  # no timestamp: one frame period after the previous one
                    if prev_t is None or not rate:
                        raise DataError(path, "frame timestamps", "frames with presentation times", "none")
                    t = prev_t + 1.0 / rate
                prev_t = t
                if want is None:  # every frame in [start, end)
                    if t >= end - eps:
                        break
                    if t >= start - eps:
                        frames.append(frame)
                    last = frame
                    continue
                while want and t > want[0] + eps:  # passed a wanted time: the previous frame was on screen
                    frames.append(last if last is not None else frame)
                    want.pop(0)
                if not want:
                    break
                last = frame
        except av.error.FFmpegError as e:
            raise DataError(path, "<file>", "a video PyAV can decode", e) from e
        if want and last is not None:  # the video ended before `end`: its last frame covers one period
            until = prev_t + (1.0 / rate - eps if rate else eps)
            frames.extend(last for w in want if w < until)
            if not frames:  # the window starts after the video's end: its last frame, once
                frames.append(last)
        if want is None and not frames and last is not None:
            frames.append(last)
    if not frames:
        raise DataError(path, f"[{start:.3f}, {end:.3f}] s", "at least one decoded frame", "none")
    images = [f.to_ndarray(format="rgb24") for f in frames]
    if crop != "none":
        half = images[0].shape[1] // 2
        images = [im[:, :half] if crop == "left" else im[:, half:] for im in images]
    return images, rate


# ----------------------------------------------------------------------------------------
# the engine
# ----------------------------------------------------------------------------------------
class Encoder:
    """A loaded encoder for one modality; ``__call__`` maps one :class:`Item` to a float32 array."""

    def __init__(self, s: ExtractSettings) -> None:
        check_settings(s)
        import transformers as tf

        self.s = s
        self.layer = _parse_layer(s.layer)
        self.device = torch.device(s.device)
        self.fps = _parse_fps(s.fps) if s.modality == "video" else None
        if s.modality == "audio":
            self.pre = _load(tf.AutoFeatureExtractor, s.model, "feature extractor")
            self.model = _load(tf.AutoModel, s.model, "model")
            rate = getattr(self.pre, "sampling_rate", None)
            if not rate:
                raise UserInputError(f"--model {s.model}: its feature extractor has no sampling_rate; is it an audio "
                                     "model (WavLM, HuBERT, wav2vec 2.0)?")
            self.sample_rate = int(rate)
            stride = math.prod(getattr(self.model.config, "conv_stride", (1,)))
            self.frame_rate: float | None = self.sample_rate / stride
        elif s.modality == "text":
            self.pre = _load(tf.AutoTokenizer, s.model, "tokenizer")
            self.model = _load(tf.AutoModel, s.model, "model")
            self.sample_rate, self.frame_rate = None, None
        else:
            _require_av()
            # the PIL-backed processor: the default one needs torchvision, which would pin another torch build
            self.pre = _load(getattr(tf, "CLIPImageProcessorPil", tf.AutoImageProcessor), s.model, "image processor")
            self.model = _load(tf.CLIPVisionModelWithProjection, s.model, "CLIP vision model")
            self.layer = "projection"
            self.sample_rate = None
            self.frame_rate = self.fps if isinstance(self.fps, float) else None  # native: the video's, once read
        self.model.eval().to(self.device)
        self.dim: int | None = None

    def provenance(self) -> dict[str, Any]:
        """The folder's provenance (``datamodules.provenance`` format); call after one item has been
        encoded (that fixes ``dim`` and, for native-rate video, the frame rate)."""
        s = self.s
        if s.modality == "audio":
            pre = {"max_seconds": s.max_seconds, "normalize": bool(getattr(self.pre, "do_normalize", False)),
                   "resampled": False}
        elif s.modality == "text":
            pre = {"max_tokens": s.max_tokens, "special_tokens": True}
        else:
            pre = {"fps": self.fps, "crop": s.crop, "max_seconds": s.max_seconds}
        frame = s.pooling == "none"
        revision = getattr(self.model.config, "_commit_hash", None)
        return {
            "format": pv.FORMAT, "feature": s.name, "modality": s.modality,
            "encoder": {"name_or_path": s.model, "revision": revision, "class": type(self.model).__name__,
                        **weights_identity(self.model, s.model, revision)},
            "layer": self.layer, "pooling": s.pooling, "level": "frame" if frame else "utterance",
            "dim": self.dim, "sample_rate": self.sample_rate, "frame_rate": self.frame_rate if frame else None,
            "preprocessing": pre, "versions": _versions(s.modality),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def _pick(self, out) -> torch.Tensor:
        if self.layer == "last":
            return out.last_hidden_state
        states = out.hidden_states
        if not -len(states) <= self.layer < len(states):
            raise UserInputError(f"--layer {self.layer}: {self.s.model} has hidden states 0..{len(states) - 1}")
        return states[self.layer]

    @torch.inference_mode()
    def __call__(self, item: Item) -> np.ndarray:
        m = self.s.modality
        if m == "audio":
            wave = read_wav(item.wav_path, self.sample_rate, self.s.max_seconds)
            inputs = self.pre(wave, sampling_rate=self.sample_rate, return_tensors="pt")
            out = self.model(**inputs.to(self.device), output_hidden_states=True)
            feats, mask = self._pick(out)[0], None
        elif m == "text":
            if item.transcript is None:
                raise DataError(item.source or item.id, item.id, "a transcript for every utterance", "none")
            inputs = self.pre(item.transcript, truncation=True, max_length=self.s.max_tokens, return_tensors="pt")
            out = self.model(**inputs.to(self.device), output_hidden_states=True)
            feats, mask = self._pick(out)[0], inputs["attention_mask"][0].bool()
        else:
            end = item.end
            if self.s.max_seconds:
                end = item.start + self.s.max_seconds if end is None else min(end, item.start + self.s.max_seconds)
            frames, rate = read_frames(item.video_path, item.start, end, self.fps, item.crop or self.s.crop)
            if self.fps == "native" and self.frame_rate is None:
                self.frame_rate = rate
            inputs = self.pre(images=frames, return_tensors="pt")
            feats, mask = self.model(**inputs.to(self.device)).image_embeds, None
        if self.s.pooling == "mean":
            feats = feats[mask].mean(dim=0) if mask is not None else feats.mean(dim=0)
        arr = np.ascontiguousarray(feats.float().cpu().numpy(), dtype=np.float32)
        self.dim = int(arr.shape[-1])
        return arr


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npy.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def extract_items(items: Sequence[Item], s: ExtractSettings, folder: str | Path, encoder: Encoder | None = None,
                  echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """Encode every item into ``<folder>/<id>.npy`` under one provenance; resumable.

    One item (the first) is encoded before anything is written, which fixes the output dim and
    checks the encoder, layer and input; then ``provenance.json`` is written (or, for a folder that
    has one, checked to be the same provenance: else :class:`DataError`). Returns ``{"written",
    "skipped", "total", "provenance_id", "folder"}``."""
    from tqdm.auto import tqdm

    if not items:
        raise UserInputError(f"extract {s.name}: no items to extract (check the sessions and --limit)")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UserInputError(f"extract {s.name}: item id {dup!r} occurs more than once")
    bad = next((i for i in ids if not i or "/" in i or "\\" in i or i.startswith(".") or "\t" in i or "\n" in i), None)
    if bad is not None:
        raise UserInputError(f"extract {s.name}: item id {bad!r} cannot be a file name")
    folder = Path(folder)
    enc = encoder or Encoder(s)
    first = enc(items[0])
    pid = pv.write(folder, enc.provenance())
    done = pv.read_index(folder)
    todo = [it for it in items if not (done.get(it.id) == pid and (folder / f"{it.id}.npy").is_file())]
    skipped = len(items) - len(todo)
    echo(f"bench: extracting {s.modality} features '{s.name}' with {s.model} for {len(items)} items into {folder} "
         f"({skipped} done already, provenance {pid})")
    with tqdm(total=len(items), initial=skipped, desc=f"extract {s.name}", unit="utt", postfix={"skipped": skipped},
              disable=not s.progress) as bar:
        for it in todo:
            arr = first if it is items[0] else enc(it)
            _save_atomic(folder / f"{it.id}.npy", arr)
            pv.append_index(folder, it.id, pid)
            bar.update(1)
    return {"written": len(todo), "skipped": skipped, "total": len(items), "provenance_id": pid, "folder": folder}


# ----------------------------------------------------------------------------------------
# IEMOCAP entry
# ----------------------------------------------------------------------------------------
def iemocap_items(utterances: Iterable, modality: str, release: Path | None = None) -> list[Item]:
    """Engine items from ``datamodules.iemocap.Utterance`` objects. For text every utterance must
    have a transcript (checked up front, naming the dialog's transcription file)."""
    items = []
    for u in utterances:
        if modality == "text" and u.transcript is None:
            sdir = Path(release) / f"Session{u.session}" if release else Path(u.wav_path).parents[3]
            raise DataError(sdir / "dialog" / "transcriptions" / f"{u.dialog}.txt", u.id,
                            "a transcription line for every utterance", "none")
        items.append(Item(id=u.id, wav_path=Path(u.wav_path), transcript=u.transcript, video_path=Path(u.video_path),
                          start=float(u.start), end=float(u.end)))
    return items


def features_folder(s: ExtractSettings) -> Path:
    """``<features root>/<name>``: root default ``<data dir>/features``; a relative root is relative
    to the data dir (as the IEMOCAP datamodule's ``features_root``)."""
    if s.features_root and Path(s.features_root).is_absolute():
        root = Path(s.features_root)
    else:
        root = Path(s.data_dir or ".") / (s.features_root or "features")
    return root / s.name


def run_extract(s: ExtractSettings, echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """Extract every utterance of the IEMOCAP release at ``s.data_dir`` (``s.sessions``, the first
    ``s.limit``); returns ``{"written", "skipped", "total", "provenance_id", "folder"}``."""
    from datamodules.iemocap import find_release, parse_release

    check_settings(s)
    if s.limit is not None and s.limit < 1:
        raise UserInputError(f"--limit must be at least 1, got {s.limit}")
    release = find_release(s.data_dir)
    items = iemocap_items(parse_release(release, sessions=tuple(s.sessions))[: s.limit], s.modality, release)
    return extract_items(items, s, features_folder(s), echo=echo)
