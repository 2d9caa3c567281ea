"""Picture features per time window: brightness, saturation, colourfulness and motion of
sampled frames (cut rate comes from stored shots, see :mod:`bench.impression.features`)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from bench.impression.audio import WindowGrid

PICTURE_FEATURES = ("brightness", "saturation", "colourfulness", "motion")
"""The per-window picture features, in the order of the stored array's columns."""


def frame_stats(frames: np.ndarray) -> np.ndarray:
    """float32 ``(n, 3)``: brightness (mean Rec. 601 luma, 0..1), saturation (mean HSV
    saturation, 0..1) and colourfulness (Hasler & Süsstrunk 2003, on 0..1 channels; about
    0 for grey, 0.3 and more for vivid pictures) of uint8 RGB ``frames`` ``(n, H, W, 3)``."""
    rgb = frames.astype(np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    hi = rgb.max(axis=-1)
    lo = rgb.min(axis=-1)
    sat = np.where(hi > 1e-6, (hi - lo) / np.maximum(hi, 1e-6), 0.0)
    rg = (r - g).reshape(len(frames), -1)
    yb = (0.5 * (r + g) - b).reshape(len(frames), -1)
    colourful = (np.sqrt(rg.std(axis=1) ** 2 + yb.std(axis=1) ** 2)
                 + 0.3 * np.sqrt(rg.mean(axis=1) ** 2 + yb.mean(axis=1) ** 2))
    return np.stack([luma.reshape(len(frames), -1).mean(axis=1),
                     sat.reshape(len(frames), -1).mean(axis=1), colourful], axis=1).astype(np.float32)


class PictureAccumulator:
    """Frame statistics gathered batch by batch (each frame's time and its change from the
    previous sampled frame), then pooled per window."""

    def __init__(self) -> None:
        self.times: list[np.ndarray] = []
        self.stats: list[np.ndarray] = []
        self.motion: list[np.ndarray] = []
        self._last: np.ndarray | None = None

    def add(self, frames: np.ndarray, times_s: np.ndarray) -> None:
        if len(frames) == 0:
            return
        grey = frames.astype(np.float32).mean(axis=-1) / 255.0
        prev = np.concatenate([grey[:1] if self._last is None else self._last[None], grey[:-1]])
        # Mean absolute change of grey level between consecutive samples: pans, shakes, flashes
        # and cuts all move it; a still picture keeps it near zero.
        self.motion.append(np.abs(grey - prev).reshape(len(grey), -1).mean(axis=1))
        self._last = grey[-1]
        self.times.append(np.asarray(times_s, dtype=np.float64))
        self.stats.append(frame_stats(frames))

    def windows(self, grid: WindowGrid, duration_s: float) -> np.ndarray:
        """float32 ``(n_windows, len(PICTURE_FEATURES))``; a window without frames takes the
        nearest earlier window's values."""
        starts = grid.starts(duration_s)
        out = np.zeros((len(starts), len(PICTURE_FEATURES)), dtype=np.float32)
        if not self.times:
            return out
        times = np.concatenate(self.times)
        stats = np.concatenate(self.stats)
        motion = np.concatenate(self.motion)
        for i, t in enumerate(starts):
            inside = (times >= t) & (times < t + grid.window_s)
            if not inside.any():
                out[i] = out[i - 1] if i else np.append(stats[0], 0.0)
                continue
            out[i, :3] = stats[inside].mean(axis=0)
            out[i, 3] = motion[inside].mean()
        return out


def picture_windows(batches: Iterable[tuple[np.ndarray, np.ndarray]], grid: WindowGrid,
                    duration_s: float) -> np.ndarray:
    """Per-window picture features of ``(frames, times_s)`` batches in time order."""
    acc = PictureAccumulator()
    for frames, times in batches:
        acc.add(frames, times)
    return acc.windows(grid, duration_s)
