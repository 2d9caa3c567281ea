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
