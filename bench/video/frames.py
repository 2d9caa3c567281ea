"""Which frames sampling at a rate picks, by their presentation times, at what size, and the
batches they come in; the same rule for every decoder."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.errors import BadInput
from bench.video.probe import ProbeInfo

TIME_EPS_S = 1e-3
"""A frame within 1 ms before a target time counts as at it: container timestamps are
rounded to their time base and decord reports float32 seconds."""


class DecodeError(BadInput):
    """A file that probed fine but failed while decoding; the message names the file."""


@dataclass
class FrameBatch:
    """Consecutive sampled frames of one video."""

    frames: np.ndarray
    """uint8 ``(n, H, W, 3)`` RGB, rotation applied."""
    times_s: np.ndarray
    """float64 ``(n,)`` presentation time of each frame, seconds from the container start."""
    indices: np.ndarray
    """int64 ``(n,)`` index of each frame in the stream, in presentation order."""
    decoder: str = "pyav"
    """The decoder that produced these frames: ``"decord"`` or ``"pyav"``."""

    def __len__(self) -> int:
        return int(self.frames.shape[0])


class FrameSelector:
    """Pick, for each target time ``k / fps`` below ``end_s``, the first frame whose time is
    ``>= target`` (within :data:`TIME_EPS_S`); a frame serves every target it is first for,
    so each frame is emitted at most once. Fed frame times in presentation order."""

    def __init__(self, fps: float, end_s: float) -> None:
        if not math.isfinite(fps) or fps <= 0:
            raise BadInput(f"sampling rate must be a positive number of frames per second, got {fps!r}")
        self.fps = fps
        self.n_targets = max(1, math.ceil(end_s * fps - 1e-9))
        self.next_k = 0

    @property
    def done(self) -> bool:
        return self.next_k >= self.n_targets

    def take(self, time_s: float) -> bool:
        """True when the frame at ``time_s`` is the one for the next pending target(s)."""
        if self.done or time_s < self.next_k / self.fps - TIME_EPS_S:
            return False
        self.next_k = max(self.next_k + 1, math.floor((time_s + TIME_EPS_S) * self.fps) + 1)
        return True


def select_indices(times_s: np.ndarray, fps: float, end_s: float) -> np.ndarray:
    """Indices (int64, ascending) of the frames :class:`FrameSelector` picks from ``times_s``
    (seconds, presentation order). A target past the last frame gets the last frame."""
    selector = FrameSelector(fps, end_s)
    picked = [i for i, t in enumerate(times_s.tolist()) if selector.take(t)]
    n = len(times_s)
    if n and not selector.done and (not picked or picked[-1] != n - 1):
        picked.append(n - 1)  # targets past the last frame: the nearest frame is the last
    return np.asarray(picked, dtype=np.int64)


def output_size(info: ProbeInfo, short_side: int | None) -> tuple[int, int]:
    """Display ``(width, height)`` of sampled frames: the video's own, or scaled so the
    shorter side is ``short_side`` (aspect kept, never upscaled, at least 1 px)."""
    width, height = info.width, info.height
    if short_side is None:
        return width, height
    if short_side <= 0:
        raise BadInput(f"short_side must be a positive number of pixels, got {short_side}")
    short = min(width, height)
    if short_side >= short:
        return width, height
    scale = short_side / short
    if width <= height:
        return short_side, max(1, round(height * scale))
    return max(1, round(width * scale)), short_side


@dataclass(frozen=True)
class BatchSizes:
    """Frames per batch: ``first`` for batch 0, doubling per batch up to ``full``."""

    full: int
    first: int

    def __call__(self, k: int) -> int:
        return min(self.full, self.first << min(k, 31))
