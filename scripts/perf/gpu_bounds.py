"""Arithmetic of the GPU bounds (pure functions, unit-tested in tests/test_gpu_bounds.py).

The end-to-end target of the GPU path: frames/s of indexing >= 90% of min(encoder-only bound,
parallel decode-only rate). The encoder-only bound is measured on float16 input already on
the device, at least :data:`MIN_CALLS` calls of at least :data:`MIN_BATCH` frames after
warm-up, timed with CUDA events; the copies (uint8 up, embeddings down) are timed apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_CALLS = 50
MIN_BATCH = 256
WARMUP_CALLS = 5
TARGET_SHARE = 0.9


@dataclass(frozen=True)
class Bound:
    """One measured rate with how it was taken."""

    frames: int
    seconds: float

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else math.nan


def check_bound_plan(calls: int, batch: int) -> None:
    """Refuse a plan that would measure launch overhead instead of the encoder."""
    if calls < MIN_CALLS:
        raise ValueError(f"an encoder bound needs >= {MIN_CALLS} timed calls, got {calls}")
    if batch < MIN_BATCH:
        raise ValueError(f"an encoder bound needs batches of >= {MIN_BATCH} frames, got {batch}")


def encoder_bound(batch: int, call_ms: Sequence[float]) -> Bound:
    """frames/s of the encoder from per-call CUDA-event times (milliseconds) of ``batch`` frames."""
    check_bound_plan(len(call_ms), batch)
    return Bound(batch * len(call_ms), sum(call_ms) / 1000.0)


def calls_for_budget(budget_s: float, call_s: float, *, min_calls: int = MIN_CALLS,
                     max_calls: int = 400) -> int:
    """Timed calls that fit in ``budget_s`` at ``call_s`` each (from a warm-up), never fewer
    than ``min_calls`` (the bound's floor) nor more than ``max_calls``."""
    if call_s <= 0 or not math.isfinite(call_s):
        return min_calls
    return max(min_calls, min(max_calls, int(budget_s / call_s)))


def target_share(end_to_end: float, encoder_bound_fps: float, decode_fps: float) -> float:
    """End-to-end frames/s as a share of the lower bound, min(encoder-only, decode-only)."""
    limit = min(encoder_bound_fps, decode_fps)
    return end_to_end / limit if limit > 0 else math.nan


def limiting_bound(encoder_bound_fps: float, decode_fps: float) -> str:
    """Which bound limits the pipeline: ``encoder`` or ``decode``."""
    return "encoder" if encoder_bound_fps <= decode_fps else "decode"


def copy_share(copy_ms: float, compute_ms: float) -> float:
    """Copy time as a share of compute time per call: above 1, overlapping copies with
    compute (a second stream) is the only way to the encoder bound."""
    return copy_ms / compute_ms if compute_ms > 0 else math.nan


def bytes_per_batch(batch: int, height: int, width: int, dtype_bytes: int, channels: int = 3) -> int:
    """Bytes one batch of frames takes to copy: uint8 decoded frames are 1 byte per value,
    float32 preprocessed pixels 4."""
    return batch * height * width * channels * dtype_bytes
