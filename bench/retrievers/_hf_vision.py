"""Shared pieces of the CLIP-style retrievers: model loading, batched torch preprocessing,
a bounded decode prefetcher, image queries, query tokenization, and tiny random-init builders.
"""

from __future__ import annotations

import contextvars
import gzip
import importlib.util
import json
import logging
import math
import os
import queue
import shutil
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.errors import BadInput, Unavailable
from bench.modelref import ModelRef, ResolvedModel, hub_unavailable_reason, resolve

if TYPE_CHECKING:
    import torch

log = logging.getLogger("bench")

T = TypeVar("T")
R = TypeVar("R")

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}
"""PIL resampling codes of ``preprocessor_config.json`` -> torch interpolation modes."""


# -- parameters shared by the frame-based families ------------------------------------------


class VisualParams(BaseModel):
    """Sampling, decoding and encoding ``params`` shared by ``clip-frames`` and ``xclip-clips``."""

    model_config = ConfigDict(extra="forbid")

    fps: float = Field(default=1.0, gt=0, le=30)
    """Frames sampled per second of video."""
    batch_size: int = Field(default=32, ge=1, le=1024)
    """Frames per image-tower call."""
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """Encoder precision; ``auto`` is float16 on CUDA and float32 on the CPU."""
    decoder: Literal["auto", "decord", "pyav"] = "auto"
    decode_threads: int | None = Field(default=None, ge=0, le=64)
    """Decoder threads (0: FFmpeg's choice). Unset: 1 when the encoder runs on the CPU
    beside a prefetch thread (the encoder keeps every core busy; one decoder thread costs
    the least CPU per frame), FFmpeg's choice otherwise. Decoding never changes the frames."""
    prefetch: int = Field(default=2, ge=0, le=16)
    """Batches decoded and preprocessed ahead of the encoder, in a background thread; 0
    decodes in the encoder's thread (nothing overlapped)."""
    stream_videos: bool = True
    """Index a run of pending videos as one stream: decoding runs on from one video into the
    next and encoder calls take frames (or clips) of several videos, instead of one video at
    a time. Measured per family on a 2-core CPU (scripts/perf/visual_index.py,
    xclip_library.py); the vectors are the same either way."""
    encoder_workers: int | None = Field(default=None, ge=1, le=64)
    """Encoder calls run at once, each in its own thread with an equal share of torch's
    intra-op threads. Unset: 2 on a CPU where torch has at least 2 threads and the videos
    at hand make at least two full encoder calls (two one-thread calls outrun one two-thread
    call, and a decoder thread beside them slows one call instead of stalling both:
    scripts/perf/visual_index.py; a lone call would run on half the threads), 1 otherwise
    and on CUDA. The vectors are the same up to float rounding."""
    prompt: str = "{}"
    """Template for text queries, e.g. ``"a photo of {}"``; ``{}`` is the query."""
    index_kind: Literal["auto", "flat", "ivf", "hnsw", "pq"] = "auto"
    """Vector index over the corpus; see :class:`bench.index.VectorIndex`."""

    def threads_for(self, device: str) -> int:
        """The decoder thread count to use with an encoder on ``device``."""
        if self.decode_threads is not None:
            return self.decode_threads
        return 1 if device == "cpu" and self.prefetch > 0 else 0

    def workers_for(self, device: str, calls: float = math.inf) -> int:
        """The number of encoder calls to run at once on ``device``, for about ``calls`` full
        encoder calls of work."""
        if self.encoder_workers is not None:
            return self.encoder_workers
        if device != "cpu" or calls < 2:
            return 1
        import torch

        return 2 if torch.get_num_threads() >= 2 else 1


# -- devices, dtypes, loading -------------------------------------------------------------


def torch_dtype(name: str, device: str) -> torch.dtype:
    """``auto`` -> float16 on CUDA, float32 on CPU (CPU half matmuls are slow and lossy)."""
    import torch

    if name == "auto":
        return torch.float16 if device == "cuda" else torch.float32
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name not in table:
        raise BadInput(f"dtype must be auto, float32, float16 or bfloat16, got {name!r}")
    if device == "cpu" and name == "float16":
        raise BadInput("dtype float16 is not supported on the CPU; use float32 or bfloat16")
    return table[name]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def load_kwargs(resolved: ResolvedModel) -> dict[str, Any]:
    """``from_pretrained`` keywords: the pinned revision for hub ids, local files only when
    offline or for local directories."""
    hub = resolved.source == "hub"
    kwargs: dict[str, Any] = {"local_files_only": os.environ.get("HF_HUB_OFFLINE") == "1" or not hub}
    if hub and resolved.revision:
        kwargs["revision"] = resolved.revision
    return kwargs


def weights_tag(resolved: ResolvedModel) -> str:
    """What pins the weights in a cache key: the hub revision, or the tiny recipe's digest
    directory, or the local directory's weights checksum (never a machine path)."""
    if resolved.source == "tiny":
        return Path(resolved.location).name
    if resolved.source == "hub":
        return resolved.revision or "main"
    return resolved.provenance()["checksum"] or "unknown"


def model_key(resolved: ResolvedModel) -> str:
    """The model's name in a cache key: the hub, tiny or package id; ``"local"`` for a local
    directory (its path is machine-specific; :func:`weights_tag` pins its content)."""
    return "local" if resolved.source == "local" else resolved.ref_id


def resolve_or_unavailable(ref: ModelRef) -> ResolvedModel:
    try:
        return resolve(ref)
    except Unavailable:
        raise
    except BadInput as exc:
        raise Unavailable(f"cannot build {ref.id}: {exc}") from exc


def load_pretrained(loader: Callable[..., T], ref: ModelRef, resolved: ResolvedModel, **extra: Any) -> T:
    """``loader(location, **load_kwargs, **extra)``; any failure -> :class:`Unavailable`."""
    try:
        return loader(resolved.location, **load_kwargs(resolved), **extra)
    except Exception as exc:  # hub, file and config errors come in many types
        raise Unavailable(hub_unavailable_reason(ref, exc)) from exc


def image_processor_config(ref: ModelRef, resolved: ResolvedModel) -> dict[str, Any]:
    """The raw ``preprocessor_config.json`` of a model (no processor object is built)."""
    from transformers.image_processing_utils import ImageProcessingMixin

    def get(location: str, **kwargs: Any) -> dict[str, Any]:
        return dict(ImageProcessingMixin.get_image_processor_dict(location, **kwargs)[0])

    return load_pretrained(get, ref, resolved)


def pooled(output: Any) -> torch.Tensor:
    """Projected features from ``get_*_features``: a tensor (transformers 4) or the
    ``pooler_output`` of a model output (transformers 5)."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output  # type: ignore[no-any-return]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (zero rows stay zero), as float32."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


# -- preprocessing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageTransform:
    """Resize + center-crop + normalize of uint8 RGB batches, in torch, matching a model's
    ``preprocessor_config.json`` (CLIP: short side -> size, crop; SigLIP: squash to size)."""

    crop: tuple[int, int]
    """Output (height, width) in pixels."""
    shortest_edge: int | None
    """Resize the short side to this (aspect kept) then crop; ``None`` resizes straight to ``crop``."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ImageTransform:
        size = cfg.get("size", {"shortest_edge": 224})
        if isinstance(size, int):
            size = {"shortest_edge": size}
        crop = cfg.get("crop_size") or {}
        if isinstance(crop, int):
            crop = {"height": crop, "width": crop}
        center = bool(cfg.get("do_center_crop", "shortest_edge" in size))
        if "shortest_edge" in size:
            short = int(size["shortest_edge"])
            hw = (int(crop.get("height", short)), int(crop.get("width", short))) if center else (short, short)
            shortest: int | None = short
        else:
            hw = (int(size["height"]), int(size["width"]))
            shortest = None
        mean = tuple(float(x) for x in cfg.get("image_mean", CLIP_MEAN))
        std = tuple(float(x) for x in cfg.get("image_std", CLIP_STD))
        if len(mean) != 3 or len(std) != 3:
            raise BadInput(f"preprocessor config: image_mean and image_std need 3 values, got {mean}, {std}")
        mode = _RESAMPLE.get(int(cfg.get("resample", 3)), "bicubic")
        return cls(crop=hw, shortest_edge=shortest, mean=mean, std=std,  # type: ignore[arg-type]
                   interpolation=mode)

    @property
    def decode_short_side(self) -> int:
        """Short side to ask the decoder for: the resize target (scaling inside the decoder
        is cheaper than decoding full size and resizing in torch)."""
        return self.shortest_edge or max(self.crop)

    def signature(self) -> dict[str, Any]:
        return {"crop": list(self.crop), "shortest_edge": self.shortest_edge, "mean": list(self.mean),
                "std": list(self.std), "interpolation": self.interpolation}

    def __call__(self, frames: np.ndarray | torch.Tensor, device: str = "cpu",
                 dtype: torch.dtype | None = None) -> torch.Tensor:
        """uint8 ``(n, H, W, 3)`` RGB -> normalized float ``(n, 3, crop_h, crop_w)`` on ``device``."""
        import torch
        import torch.nn.functional as F

        if isinstance(frames, np.ndarray):
            # Read-only arrays (PIL views) are copied: torch will not wrap them safely.
            x = torch.from_numpy(frames if frames.flags.writeable else frames.copy())
        else:
            x = frames
        if x.ndim != 4 or x.shape[-1] != 3:
            raise BadInput(f"frames must be (n, H, W, 3) RGB, got shape {tuple(x.shape)}")
        x = x.to(device).permute(0, 3, 1, 2).float()
        h, w = int(x.shape[2]), int(x.shape[3])
        if self.shortest_edge is not None:
            scale = self.shortest_edge / min(h, w)
            size = (max(self.crop[0], round(h * scale)), max(self.crop[1], round(w * scale)))
        else:
            size = self.crop
        if size != (h, w):
            antialias = self.interpolation != "nearest"
            x = F.interpolate(x, size=size, mode=self.interpolation, antialias=antialias,
                              align_corners=False if self.interpolation != "nearest" else None)
            x = x.clamp_(0.0, 255.0).round_()  # PIL resizes to uint8; keep the same values
        top = (x.shape[2] - self.crop[0]) // 2
        left = (x.shape[3] - self.crop[1]) // 2
        x = x[:, :, top:top + self.crop[0], left:left + self.crop[1]]
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1) * 255.0
        x = (x - mean) / std
        return x.to(dtype) if dtype is not None else x.contiguous()


def load_image(path: str | Path) -> np.ndarray:
    """An image file as uint8 ``(H, W, 3)`` RGB; :class:`BadInput` if it is not an image."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise BadInput(f"query image {p}: file not found")
    try:
        with Image.open(p) as im:
            return np.array(im.convert("RGB"))  # a writable copy (torch refuses read-only arrays)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadInput(f"query image {p}: not a readable image ({exc})") from None


# -- overlap decoding with encoding ----------------------------------------------------------

_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead.

    Decoding and preprocessing release the GIL (ffmpeg, torch), so they overlap with the
    encoder running in the caller's thread. An exception in the producer is raised here;
    stopping early (break, error) stops the producer at its next item.
    """
    if depth < 1:
        raise BadInput(f"prefetch depth must be >= 1, got {depth}")
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failure(exc))

    thread = threading.Thread(target=run, name="bench-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)


@dataclass
class _Failure:
    exc: BaseException


# -- queries ---------------------------------------------------------------------------------


class QueryTokenizer:
    """Tokenize text queries for a CLIP-style text tower: truncate to ``max_length`` tokens,
    logging one warning (per tokenizer) the first time a query is cut."""

    def __init__(self, tokenizer: Any, max_length: int, padding: str | bool = True) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.padding = padding
        self.warned = False

    def clip_text(self, text: str) -> str:
        """Whitespace-collapsed text cut to what can survive truncation.

        Every token holds at least one byte of non-space text, so once whitespace is
        collapsed nothing past ``2 * max_length`` characters survives truncation; cutting at
        ``8 * max_length`` makes a 100,000-character query as cheap to tokenize as a short one.
        """
        if not text or not text.strip():
            raise BadInput("empty text query; give some words or an image")
        return " ".join(text.split())[:8 * self.max_length]

    def check_truncation(self, texts: list[str], clipped: list[str]) -> None:
        if self.warned:
            return
        for orig, cut in zip(texts, clipped, strict=True):
            n_tokens = len(self.tokenizer(cut, truncation=False)["input_ids"])
            if n_tokens > self.max_length or len(" ".join(orig.split())) > len(cut):
                self.warned = True
                log.warning("a %d-character query was truncated to the text tower's %d tokens "
                            "(logged once)", len(orig), self.max_length)
                return

    def __call__(self, texts: list[str], device: str) -> dict[str, Any]:
        """``input_ids`` / ``attention_mask`` int64 ``(n, L)`` on ``device``, ``L <= max_length``."""
        clipped = [self.clip_text(t) for t in texts]
        self.check_truncation(texts, clipped)
        enc = self.tokenizer(clipped, padding=self.padding, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}


# -- tiny random-init models for offline tests -----------------------------------------------


def clip_bpe_path() -> Path:
    """open_clip's bundled BPE merge list, found without importing open_clip."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("the CLIP BPE vocabulary ships with open_clip_torch; pip install open_clip_torch")
    path = Path(next(iter(spec.submodule_search_locations))) / BPE_FILE
    if not path.is_file():
        raise Unavailable(f"{path} is missing from the installed open_clip_torch")
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable character table (the BPE works on these characters)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def build_clip_tokenizer(out_dir: Path, merges: int, max_length: int) -> Any:
    """A CLIPTokenizer over the first ``merges`` BPE merges of open_clip's vocabulary (the
    full list has 48,894), saved into ``out_dir``; vocabulary size is ``512 + merges + 2``."""
    from transformers import CLIPTokenizer

    with gzip.open(clip_bpe_path()) as fh:
        lines = fh.read().decode("utf-8").split("\n")
    # Line 0 is a header; the reference tokenizer uses lines 1 .. 48894.
    chosen = [m for m in lines[1:49152 - 256 - 2 + 1] if m.strip()][:merges]
    base = list(_bytes_to_unicode().values())
    vocab = base + [v + "</w>" for v in base] + ["".join(m.split()) for m in chosen]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    src = out_dir / "bpe"
    src.mkdir(parents=True, exist_ok=True)
    (src / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False),
                                    encoding="utf-8")
    (src / "merges.txt").write_text("#version: 0.2\n" + "\n".join(chosen) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(vocab=str(src / "vocab.json"), merges=str(src / "merges.txt"),
                              model_max_length=max_length)
    tokenizer.save_pretrained(out_dir)  # tokenizer.json holds vocabulary and merges
    shutil.rmtree(src)
    return tokenizer


def _split_recipe(config: dict[str, Any], known: set[str]) -> tuple[dict[str, Any], int, int]:
    cfg = dict(config)
    merges = int(cfg.pop("merges", 4000))
    image_size = int(cfg.get("vision_config", {}).get("image_size", 224))  # the configs' default
    unknown = set(cfg) - known
    if unknown:
        raise BadInput(f"tiny model recipe: unknown config key(s) {sorted(unknown)}; known: {sorted(known)}")
    return cfg, merges, image_size


def build_tiny_clip(config: dict[str, Any], out_dir: Path, seed: int) -> None:
    """Random-init CLIPModel + CLIPTokenizer (open_clip BPE) + image processor into ``out_dir``.

    ``config``: CLIPConfig keywords (``text_config``, ``vision_config``, ``projection_dim``)
    plus ``merges`` (BPE merges kept; the text vocabulary size follows from it).
    """
    import torch
    from transformers import CLIPConfig, CLIPModel

    cfg, merges, image_size = _split_recipe(config, {"text_config", "vision_config", "projection_dim",
                                                     "logit_scale_init_value"})
    text = dict(cfg.pop("text_config", {}))
    max_length = int(text.get("max_position_embeddings", 77))
    tokenizer = build_clip_tokenizer(out_dir, merges, max_length)
    text.update(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    _save_image_processor(out_dir, image_size, "CLIPImageProcessor")
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=dict(cfg.pop("vision_config", {})), **cfg))
    model.save_pretrained(out_dir)


def build_tiny_xclip(config: dict[str, Any], out_dir: Path, seed: int) -> None:
    """Random-init XCLIPModel + CLIPTokenizer (open_clip BPE) + image processor into ``out_dir``.

    ``config``: XCLIPConfig keywords (``text_config``, ``vision_config`` with ``num_frames``
    and the ``mit_*`` sizes, ``projection_dim``, ``prompt_layers``, ...) plus ``merges``.
    """
    import torch
    from transformers import XCLIPConfig, XCLIPModel

    known = {"text_config", "vision_config", "projection_dim", "prompt_layers", "prompt_alpha",
             "prompt_hidden_act", "prompt_num_attention_heads", "prompt_attention_dropout",
             "prompt_projection_dropout", "logit_scale_init_value"}
    cfg, merges, image_size = _split_recipe(config, known)
    text = dict(cfg.pop("text_config", {}))
    max_length = int(text.get("max_position_embeddings", 77))
    tokenizer = build_clip_tokenizer(out_dir, merges, max_length)
    text.update(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    _save_image_processor(out_dir, image_size, "VideoMAEImageProcessor")
    torch.manual_seed(seed)
    model = XCLIPModel(XCLIPConfig(text_config=text, vision_config=dict(cfg.pop("vision_config", {})), **cfg))
    model.save_pretrained(out_dir)


def _save_image_processor(out_dir: Path, image_size: int, kind: str) -> None:
    """The ``preprocessor_config.json`` a real checkpoint of this family carries."""
    cfg = {"image_processor_type": kind, "do_resize": True, "size": {"shortest_edge": image_size},
           "do_center_crop": True, "crop_size": {"height": image_size, "width": image_size},
           "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
           "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD), "resample": 3,
           "do_convert_rgb": True}
    (out_dir / "preprocessor_config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")


# -- decoded, preprocessed frame batches -----------------------------------------------------


@dataclass
class StreamBatch:
    """Preprocessed frames of one or more consecutive videos of a :func:`preprocessed_stream`."""

    pixels: torch.Tensor
    """float32 ``(n, 3, H, W)``."""
    times_s: np.ndarray
    """float64 ``(n,)``: each frame's time in its own video, seconds."""
    owner: np.ndarray
    """int64 ``(n,)``: each frame's video, as its position in ``paths``."""


@dataclass
class VideoEnd:
    """The decoder is done with video ``position``: ``n_frames`` of its frames are in the
    batches yielded before this mark or right after it (its last frames may share a batch
    with the next video's first ones). With ``error`` it failed part-way, and its frames
    already yielded are void."""

    position: int
    n_frames: int
    decoders: set[str]
    error: BaseException | None = None


def preprocessed_stream(paths: Sequence[Path], *, fps: float, transform: ImageTransform, batch_size: int,
                        decoder: str = "auto", depth: int = 2, threads: int = 0, video_s: float = 0.0,
                        pin_memory: bool = False, workers: int = 1,
                        ) -> Generator[StreamBatch | VideoEnd, None, None]:
    """Frames of every video in ``paths``, in order, sampled at ``fps``, decoded (``threads``
    decoder threads, 0: FFmpeg's choice) and preprocessed in a background thread up to
    ``depth`` items ahead (``depth=0``: in the caller's thread, nothing overlapped).

    Batches run on across video boundaries, so a library of short clips keeps the encoder's
    batches full and the decoder busy while the encoder finishes a video. With a prefetch
    thread the first batch is an eighth of ``batch_size`` and later ones double up to it, so
    the encoder starts after a few frames instead of a whole batch (on a 2-core CPU that
    start-up was 5-12% of a 3-minute video's indexing time). For ``workers`` encoder calls at
    a time (:func:`encoded_stream`), batches shrink toward the end, each at most the frames
    left (estimated from ``video_s``) divided by ``workers``, down to the first batch's size:
    the workers then finish together, where a last full batch would run alone while the
    other workers idle (on a 2-core CPU, about 6% of a 3-minute video's indexing time).

    A :class:`VideoEnd` follows each video's last decoded frame; a video that cannot be
    decoded (a BadInput or decoder error) gets one with its error and the others go on. Any
    other error is raised here.

    Decode and preprocess times are recorded as stages ``decode`` and ``preprocess`` (with a
    prefetch thread, its wall time, which overlaps ``encode``; ``video_s`` is the videos'
    total duration); with a prefetch thread, the time the caller waited for the first
    batch is stage ``decode_start`` (start-up, nothing to overlap with) and for later ones
    ``decode_wait`` (large when decoding is the bottleneck)."""
    import time

    import torch

    from bench import timing
    from bench.store.indexing import decoder_errors
    from bench.video import sample_frames
    from bench.video.decode import BatchSizes

    rec = timing.current()
    totals = {"decode": [0.0, 0.0, 0], "preprocess": [0.0, 0.0, 0]}
    sizes = BatchSizes(batch_size, max(1, batch_size // 8) if depth else batch_size)

    def timed(name: str, t0: float, c0: float, items: int) -> None:
        tot = totals[name]
        tot[0] += time.perf_counter() - t0
        tot[1] += time.thread_time() - c0
        tot[2] += items

    held: list[tuple[torch.Tensor, np.ndarray, int]] = []  # preprocessed, not yet in a batch
    emitted = 0  # batches so far
    sent = 0  # frames in them
    expected = round(video_s * fps) if workers > 1 else 0  # sampled frames in all videos

    def next_size() -> int:
        size = sizes(emitted)
        if expected:
            size = min(size, max(sizes.first, -(-(expected - sent) // workers)))
        return size

    def cut(n: int) -> StreamBatch:
        nonlocal emitted, sent
        pixels: list[torch.Tensor] = []
        times: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        while n > 0:
            x, t, position = held[0]
            take = min(n, len(t))
            pixels.append(x[:take])
            times.append(t[:take])
            owners.append(np.full(take, position, dtype=np.int64))
            if take == len(t):
                held.pop(0)
            else:
                held[0] = (x[take:], t[take:], position)
            n -= take
        batch = pixels[0] if len(pixels) == 1 else torch.cat(pixels)
        if pin_memory:
            batch = batch.pin_memory()
        emitted += 1
        sent += len(batch)
        return StreamBatch(batch, np.concatenate(times), np.concatenate(owners))

    def held_frames() -> int:
        return sum(len(t) for _, t, _ in held)

    def produce() -> Iterator[StreamBatch | VideoEnd]:
        for position, path in enumerate(paths):
            count = 0
            used: set[str] = set()
            try:
                frames = iter(sample_frames(path, fps, short_side=transform.decode_short_side,
                                            batch_size=batch_size, decoder=decoder, threads=threads,
                                            first_batch=sizes.first))
                while True:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    batch = next(frames, None)
                    timed("decode", t0, c0, 0 if batch is None else len(batch))
                    if batch is None:
                        break
                    used.add(batch.decoder)
                    t0, c0 = time.perf_counter(), time.thread_time()
                    held.append((transform(batch.frames), batch.times_s, position))
                    timed("preprocess", t0, c0, len(batch))
                    count += len(batch)
                    while held_frames() >= next_size():
                        yield cut(next_size())
            except Exception as exc:
                if not isinstance(exc, decoder_errors()):
                    raise
                held[:] = [h for h in held if h[2] != position]
                yield VideoEnd(position, 0, used, exc)
                continue
            yield VideoEnd(position, count, used)
        if held:
            yield cut(held_frames())

    waited = [0.0, 0]
    start = [0.0, 0]
    try:
        if depth == 0:
            yield from produce()
            return
        items = prefetch(produce(), depth)
        while True:
            t0 = time.perf_counter()
            item = next(items, None)
            wait = time.perf_counter() - t0
            n = len(item.times_s) if isinstance(item, StreamBatch) else 0
            if not start[1]:  # until the first frames: nothing to overlap with yet
                start[0] += wait
                start[1] += n
            else:
                waited[0] += wait
                waited[1] += n
            if item is None:
                return
            yield item
    finally:
        if rec is not None:
            # Recorded from here, not with stage() in the thread: stage() synchronizes CUDA,
            # which would make the decoder wait for the encoder and undo the overlap.
            for name, (wall, cpu, n_items) in totals.items():
                rec.add(name, float(wall), float(cpu), int(n_items), video_s if name == "decode" else 0.0)
            if depth and (start[0] or start[1]):
                rec.add("decode_start", start[0], 0.0, int(start[1]), 0.0)
                rec.add("decode_wait", waited[0], 0.0, int(waited[1]), 0.0)


def preprocessed_batches(path: Path, *, fps: float, transform: ImageTransform, batch_size: int,
                         decoder: str = "auto", depth: int = 2, threads: int = 0, video_s: float = 0.0,
                         pin_memory: bool = False, decoders: set[str] | None = None,
                         ) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """:func:`preprocessed_stream` of one video: yields (float32 ``(n, 3, H, W)`` CPU
    tensor, float64 ``(n,)`` times in seconds) and raises the video's decoding error. The
    decoders that produced frames are added to ``decoders``."""
    for item in preprocessed_stream([path], fps=fps, transform=transform, batch_size=batch_size,
                                    decoder=decoder, depth=depth, threads=threads, video_s=video_s,
                                    pin_memory=pin_memory):
        if isinstance(item, StreamBatch):
            yield item.pixels, item.times_s
            continue
        if decoders is not None:
            decoders.update(item.decoders)
        if item.error is not None:
            raise item.error


class EncoderWorkers:
    """Encoder calls run ``workers`` at a time, in threads (a context manager).

    While open, torch's intra-op threads are shared out among the workers
    (``get_num_threads() // workers`` each); threads started meanwhile (a prefetch thread's
    preprocessing) take that share too. On the CPU, calls on separate batches need no
    synchronization with each other, where the threads of one call meet at every operator:
    a decoder thread taking a core then delays one call instead of every core's work. With
    one worker, :meth:`submit` runs the call at once in the caller's thread."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise BadInput(f"encoder_workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._threads_before = 0

    def __enter__(self) -> EncoderWorkers:
        if self.workers > 1:
            import torch

            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(max(1, self._threads_before // self.workers))
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="bench-encode")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            import torch

            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            torch.set_num_threads(self._threads_before)

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        """``fn(*args)`` in a worker; timing stages inside it are recorded as the caller's."""
        if self._pool is None:
            done: Future[R] = Future()
            try:
                done.set_result(fn(*args))
            except Exception as exc:
                done.set_exception(exc)
            return done
        # A copied context per call: one context cannot be entered by two threads at once.
        return self._pool.submit(contextvars.copy_context().run, fn, *args)


def encoded_stream(items: Iterable[StreamBatch | VideoEnd], encode: Callable[[StreamBatch], R],
                   workers: int = 1) -> Iterator[tuple[StreamBatch | VideoEnd, R | None]]:
    """``items`` in their order, each :class:`StreamBatch` with ``encode(batch)`` (``None``
    beside a :class:`VideoEnd`), with ``workers`` calls running at once
    (:class:`EncoderWorkers`). A worker that finishes takes the next batch at once, even while
    an older call still runs (up to ``2 * workers`` calls started and not yet returned): a
    call slowed down by other work on its core then holds up no other worker. An error in
    ``encode`` is raised here once the calls in flight end, and stopping early closes
    ``items``."""
    if workers <= 1:
        for item in items:
            yield item, (encode(item) if isinstance(item, StreamBatch) else None)
        return
    source = iter(items)
    pending: deque[tuple[StreamBatch | VideoEnd, Future[R] | None]] = deque()
    running: set[Future[R]] = set()
    calls = 0  # calls in ``pending``, running or finished
    exhausted = False
    try:
        with EncoderWorkers(workers) as pool:

            def fill() -> None:
                nonlocal calls, exhausted
                running.difference_update([f for f in running if f.done()])
                while len(running) < workers and calls < 2 * workers and not exhausted:
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                    elif isinstance(item, StreamBatch):
                        future = pool.submit(encode, item)
                        pending.append((item, future))
                        running.add(future)
                        calls += 1
                    else:
                        pending.append((item, None))

            fill()
            while pending:
                head, future = pending[0]
                if future is not None and not future.done():
                    wait(running, return_when=FIRST_COMPLETED)
                    fill()
                    continue
                pending.popleft()
                result = None
                if future is not None:
                    calls -= 1
                    result = future.result()
                    fill()
                yield head, result
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def only_outcome(outcomes: Iterable[tuple[int, Any]],
                 path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The outcome of a retriever's ``encode_videos`` on the one video ``path``: its arrays and
    meta; raises its decoding error."""
    for _, outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        arrays, meta = outcome
        return dict(arrays), dict(meta)
    raise BadInput(f"{path}: no frames could be sampled")


def count_decoder(counts: dict[str, int], meta: dict[str, Any]) -> None:
    """Add one video's decoder (``meta["decoder"]`` as stored with its features) to ``counts``;
    features stored before decoders were recorded count as ``"unrecorded"``."""
    name = str(meta.get("decoder") or "unrecorded")
    counts[name] = counts.get(name, 0) + 1


# -- per-video vectors and the corpus index over them ----------------------------------------


@dataclass
class VideoVectors:
    """One video's L2-normalized vectors at sample times (frames or clip windows)."""

    vid: str
    video_id: str
    times_s: np.ndarray
    """float64 ``(n,)`` seconds: the frame time, or a clip window's first frame time."""
    vectors: np.ndarray
    """float32 ``(n, d)``, unit rows."""
    duration_s: float


class EmbeddingCorpus:
    """Vectors of every indexed video, with a lazily built :class:`~bench.index.VectorIndex`
    over all of them for corpus search (rows map back to (vid, row)).

    With :meth:`persist_in`, an index over more than ``persist_min`` vectors (an approximate
    one, whose build and calibration take a while) is saved in the feature store and loaded
    on the next run over the same videos."""

    def __init__(self, dim: int, *, index_kind: str = "auto", device: str = "cpu",
                 persist_min: int | None = None) -> None:
        from bench.index import FLAT_MAX

        self.dim = dim
        self.index_kind = index_kind
        self.device = device
        self.persist_min = FLAT_MAX if persist_min is None else persist_min
        self.videos: dict[str, VideoVectors] = {}
        self._index: Any = None
        self._owners: list[str] = []
        self._starts = np.zeros(0, dtype=np.int64)
        self._cache: tuple[Any, str] | None = None
        self.index_from_cache = False

    def persist_in(self, store: Any, name: str) -> None:
        """Save/load large corpus indexes under ``store.artifact_dir(name/...)``."""
        self._cache = (store, name)

    def _artifact(self, owners: list[str], sizes: np.ndarray) -> Path | None:
        if self._cache is None or int(sizes.sum()) <= self.persist_min:
            return None
        import hashlib

        store, name = self._cache
        spec = json.dumps([self.index_kind, [[v, self.videos[v].video_id, int(n)]
                                             for v, n in zip(owners, sizes.tolist(), strict=True)]])
        digest = hashlib.sha256(spec.encode("utf-8")).hexdigest()[:16]
        return Path(store.artifact_dir(f"{name}/{digest}")) / "index"

    def add(self, item: VideoVectors) -> None:
        if item.vectors.ndim != 2 or item.vectors.shape[1] != self.dim:
            raise BadInput(f"{item.vid}: vectors of shape {item.vectors.shape}, expected (n, {self.dim})")
        self.videos[item.vid] = item
        self._index = None  # rebuilt on the next corpus search

    def get(self, vid: str) -> VideoVectors:
        if vid not in self.videos:
            known = ", ".join(sorted(self.videos)[:10]) or "none"
            raise BadInput(f"video {vid!r} is not indexed (indexed: {known}); index it first")
        return self.videos[vid]

    def __len__(self) -> int:
        return sum(v.vectors.shape[0] for v in self.videos.values())

    def vector_index(self) -> Any:
        """The corpus index (built on first use, timed as stage ``index_build``)."""
        from bench.index import VectorIndex
        from bench.timing import stage

        if self._index is not None:
            return self._index
        owners = [v for v in self.videos if self.videos[v].vectors.shape[0]]
        sizes = np.array([self.videos[v].vectors.shape[0] for v in owners], dtype=np.int64)
        saved = self._artifact(owners, sizes)
        index = None
        self.index_from_cache = False
        if saved is not None and (saved / "meta.json").is_file():
            try:
                index = VectorIndex.load(saved, device=self.device)
            except (BadInput, OSError, RuntimeError, ValueError) as exc:  # damaged: rebuild it
                log.warning("corpus vector index at %s cannot be loaded (%s); rebuilding", saved, exc)
            if index is not None and len(index) != int(sizes.sum()):
                index = None
            self.index_from_cache = index is not None
        if index is None:
            with stage("index_build", items=int(sizes.sum())):
                index = VectorIndex(self.dim, kind=self.index_kind, device=self.device)  # type: ignore[arg-type]
                start = 0
                for vid, n in zip(owners, sizes.tolist(), strict=True):
                    index.add(self.videos[vid].vectors, np.arange(start, start + n, dtype=np.int64))
                    start += n
                index.build()
            if saved is not None:
                index.save(saved)
        self._index, self._owners = index, owners
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return index

    def top_videos(self, query: np.ndarray, rows: int, max_videos: int) -> list[str]:
        """Videos holding the ``rows`` best-matching vectors for one unit ``(d,)`` query,
        ordered by their best match; at most ``max_videos``."""
        index = self.vector_index()
        if len(index) == 0:
            return []
        _, ids = index.search(query[None, :].astype(np.float32), min(rows, len(index)))
        found = ids[0][ids[0] >= 0]
        owner = np.searchsorted(self._starts, found, side="right") - 1
        order: list[str] = []
        for o in owner.tolist():
            vid = self._owners[o]
            if vid not in order:
                order.append(vid)
                if len(order) >= max_videos:
                    break
        return order
