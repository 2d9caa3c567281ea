"""The ``params`` that the frame-based families (``clip-frames``, ``xclip-clips``) share:
sampling, decoding, encoding and the corpus index, with the defaults that depend on the device.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class VisualParams(BaseModel):
    """Sampling, decoding and encoding ``params`` shared by ``clip-frames`` and ``xclip-clips``."""

    model_config = ConfigDict(extra="forbid")

    fps: float = Field(default=1.0, gt=0, le=30)
    """Frames sampled per second of video."""
    batch_size: int = Field(default=32, ge=1, le=1024)
    """Frames per image-tower call on the CPU (tuned for a few cores)."""
    cuda_batch_size: int = Field(default=256, ge=1, le=4096)
    """Frames per image-tower call on CUDA: a GPU needs hundreds of images per call before
    launch overhead stops mattering (:meth:`batch_for`)."""
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
    decode_processes: int | None = Field(default=None, ge=0, le=64)
    """Videos decoded at once in worker processes, one FFmpeg thread each, handing uint8
    frames to the encoder (:mod:`bench.video.parallel`). Unset: none on the CPU (the encoder
    needs the cores), on CUDA one per core up to 8 (:meth:`processes_for`). The frames are
    the same either way."""
    preprocess: Literal["auto", "producer", "device"] = "auto"
    """Where resize + normalize run: ``producer`` in the prefetch thread on the CPU (float
    pixels handed over), ``device`` in the encoder call on the encoder's device from pinned
    uint8 frames (a quarter of the bytes to copy, copies on a side stream); ``auto`` is
    ``device`` on CUDA and ``producer`` on the CPU. On the CPU both give the same vectors."""
    sampling: Literal["fps", "keyframes"] = "fps"
    """``keyframes``: sample key frames only (the first at or after each ``1 / fps`` step),
    which decodes a small share of the frames; frames change, so the cache key changes."""
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

    def batch_for(self, device: str) -> int:
        """Frames per encoder call on ``device``."""
        return self.cuda_batch_size if device == "cuda" else self.batch_size

    def processes_for(self, device: str, videos: int, cores: int | None = None) -> int:
        """Decoder processes for ``videos`` videos with an encoder on ``device``: never more
        than the videos, 0 (decode in the prefetch thread) for one video or on the CPU."""
        if self.decode_processes is not None:
            return min(self.decode_processes, videos)
        if device == "cpu" or videos < 2:
            return 0
        import os

        return min(8, videos, cores if cores is not None else (os.cpu_count() or 1))

    def on_device(self, device: str) -> bool:
        """Whether frames are preprocessed on the encoder's device (see :attr:`preprocess`)."""
        return self.preprocess == "device" or (self.preprocess == "auto" and device != "cpu")
