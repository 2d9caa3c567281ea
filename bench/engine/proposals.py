"""Score curve -> ranked time windows, shared by every retriever and by fusion.

A curve is per-frame scores at sample times; each sample covers ``[t, t + 1/fps]``. Windows
are scored by their strongest frames (top-fraction mean), so a brief strong match outranks
a long lukewarm one: users want the moment, not the average.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.errors import BadInput
from bench.spans import Window, temporal_iou


class ProposalConfig(BaseModel):
    """How a score curve becomes windows.

    ``strategy="peak"`` grows a window around each local maximum while the score stays at or
    above the peak's threshold; ``strategy="sliding"`` scores multi-scale sliding windows and
    keeps the best after temporal NMS. Both score a window by the mean of its top
    ``top_fraction`` frames plus ``length_prior * ln(length_s)``.
    """

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["peak", "sliding"] = "peak"
    max_windows: int = Field(default=10, ge=1)
    """At most this many windows per curve (the retriever's ``top_k`` may cut further)."""
    smooth_s: float = Field(default=0.0, ge=0.0)
    """Moving-average width (seconds, rounded up to an odd number of samples) applied before
    finding peaks and growing; scoring uses the raw scores. 0 turns smoothing off."""
    top_fraction: float = Field(default=0.5, gt=0.0, le=1.0)
    """A window's score is the mean of its best ``ceil(top_fraction * n)`` frames: 0+ is the
    peak; 1.0 is the plain mean, which lets a long lukewarm stretch bury a brief strong one."""
    length_prior: float = Field(default=0.0, ge=0.0, le=0.01)
    """Bonus per ln(second) of window length; capped at 0.01 so it only breaks near-ties
    (CLIP similarities of different moments differ by ~0.01-0.05)."""
    nms_iou: float = Field(default=0.5, gt=0.0, le=1.0)
    """Windows overlapping a better one by more than this temporal IoU are dropped."""
    min_len_s: float = Field(default=0.0, ge=0.0)
    """Shorter windows are widened symmetrically (within the video) to this length."""
    max_len_s: float | None = Field(default=None, gt=0.0)
    """Growth stops at this length (peak strategy); longer sliding scales are skipped."""

    # peak strategy
    rel_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """Grow while score >= baseline + rel_threshold * (peak - baseline), the baseline being
    the curve's median: 0 grows over everything above the median, 1 keeps only the plateau."""
    delta: float | None = Field(default=None, ge=0.0)
    """Also require score >= peak - delta (absolute, in score units); the stricter of the
    two thresholds applies. ``None`` uses the relative threshold only."""

    # sliding strategy
    window_s: list[float] = Field(default_factory=lambda: [2.0, 4.0, 8.0, 16.0, 32.0])
    """Window lengths in seconds (one scale each)."""
    stride_frac: float = Field(default=0.25, gt=0.0, le=1.0)
    """Stride between windows of one scale, as a fraction of that scale's length."""

    @model_validator(mode="after")
    def _check(self) -> ProposalConfig:
        if not self.window_s or any(not (w > 0 and math.isfinite(w)) for w in self.window_s):
            raise ValueError("window_s must be a non-empty list of positive seconds")
        if self.max_len_s is not None and self.max_len_s < self.min_len_s:
            raise ValueError(f"max_len_s ({self.max_len_s}) is below min_len_s ({self.min_len_s})")
        return self


def nms(windows: Iterable[Window | tuple[float, float, float]], iou_threshold: float = 0.5,
        max_windows: int | None = None) -> list[Window]:
    """Greedy temporal non-maximum suppression.

    Windows are visited by descending score (ties keep their input order); one is kept
    unless it overlaps a kept window by IoU > ``iou_threshold``. Returns at most
    ``max_windows``.
    """
    ranked = sorted((Window(float(s), float(e), float(c)) for s, e, c in windows),
                    key=lambda w: -w.score)
    kept: list[Window] = []
    for w in ranked:
        if all(temporal_iou(w, k) <= iou_threshold for k in kept):
            kept.append(w)
            if max_windows is not None and len(kept) >= max_windows:
                break
    return kept


def _check_curve(times_s: np.ndarray, scores: np.ndarray) -> None:
    if times_s.ndim != 1 or scores.ndim != 1 or times_s.shape != scores.shape:
        raise BadInput(f"score curve: times_s and scores must be 1-D of equal length, "
                       f"got shapes {times_s.shape} and {scores.shape}")
    if not (np.isfinite(times_s).all() and np.isfinite(scores).all()):
        raise BadInput("score curve: times_s and scores must be finite (no NaN or inf)")
    if times_s.size > 1 and bool((np.diff(times_s) < 0).any()):
        raise BadInput("score curve: times_s must be non-decreasing")


def infer_fps(times_s: np.ndarray) -> float:
    """Sampling rate from the median gap between sample times (1.0 for fewer than 2 samples)."""
    if times_s.size < 2:
        return 1.0
    gaps = np.diff(times_s)
    gaps = gaps[gaps > 0]
    return 1.0 / float(np.median(gaps)) if gaps.size else 1.0


def smooth(scores: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` samples (edges average what is there)."""
    if width <= 1 or scores.size < 2:
        return scores.astype(np.float64)
    kernel = np.ones(width, dtype=np.float64)
    # the centred part of the full convolution: what mode="same" gives when the curve is at
    # least as long as the kernel, and still the curve's length when it is shorter
    start, n = (width - 1) // 2, scores.size
    total = np.convolve(scores.astype(np.float64), kernel)[start:start + n]
    count = np.convolve(np.ones(n), kernel)[start:start + n]
    return total / count


def window_score(scores: np.ndarray, length_s: float, config: ProposalConfig) -> float:
    """Mean of the top ``top_fraction`` of ``scores`` plus the length prior (see ProposalConfig)."""
    k = max(1, math.ceil(config.top_fraction * scores.size - 1e-9))
    top = np.partition(scores, scores.size - k)[scores.size - k:] if k < scores.size else scores
    bonus = config.length_prior * math.log(max(length_s, 1e-3))
    return float(top.mean()) + bonus


def propose(times_s: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray, *,
            duration_s: float | None = None, fps: float | None = None,
            config: ProposalConfig | None = None) -> list[Window]:
    """Turn a score curve into ranked windows.

    ``times_s``: float ``(n,)`` sample times in seconds, non-decreasing; ``scores``: float
    ``(n,)``. Sample ``i`` covers ``[t_i, t_i + 1/fps]`` (``fps`` inferred from the median
    gap when ``None``). Windows are clipped to ``[0, duration_s]`` (default: end of the last
    sample). Returns at most ``config.max_windows`` windows, by descending score, no two
    overlapping by more than ``config.nms_iou``. An empty curve gives ``[]``.
    """
    cfg = config or ProposalConfig()
    t = np.asarray(times_s, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    _check_curve(t, s)
    if t.size == 0:
        return []
    rate = infer_fps(t) if fps is None else float(fps)
    if not (rate > 0 and math.isfinite(rate)):
        raise BadInput(f"fps must be a positive number of samples per second, got {fps!r}")
    span = 1.0 / rate
    end_s = float(t[-1] + span) if duration_s is None else float(duration_s)
    if end_s <= 0:
        raise BadInput(f"duration_s must be > 0 seconds, got {duration_s!r}")
    width = max(1, round(cfg.smooth_s * rate))
    width += 1 - width % 2  # odd, so the average stays centred on each sample
    curve = smooth(s, width) if width > 1 else s
    spans = _peak_spans(curve, t, span, cfg) if cfg.strategy == "peak" else _sliding_spans(t, span, cfg)
    candidates: list[tuple[Window, float]] = []
    for lo, hi in spans:
        start = max(0.0, float(t[lo]))
        end = min(end_s, float(t[hi]) + span)
        if end <= start:  # a sample at or past the duration: give it its own span inside
            start, end = max(0.0, min(start, end_s - span)), end_s
        start, end = _widen(start, end, cfg.min_len_s, end_s)
        part = s[lo:hi + 1]
        candidates.append((Window(start, end, window_score(part, end - start, cfg)), float(part.mean())))
    # Equal scores (a window and a wider one holding the same best samples): the tighter,
    # higher-mean window goes first, then the earlier one.
    candidates.sort(key=lambda c: (-c[0].score, -c[1], c[0].start))
    return nms([w for w, _ in candidates], cfg.nms_iou, cfg.max_windows)


def _widen(start: float, end: float, min_len_s: float, end_s: float) -> tuple[float, float]:
    missing = min_len_s - (end - start)
    if missing <= 0:
        return start, end
    start = max(0.0, start - missing / 2)
    end = min(end_s, start + min_len_s)
    return max(0.0, end - min_len_s), end


def _peak_spans(curve: np.ndarray, t: np.ndarray, span: float,
                cfg: ProposalConfig) -> list[tuple[int, int]]:
    """Inclusive sample-index spans grown around local maxima, strongest peak first."""
    n = curve.size
    baseline = float(np.median(curve))
    left = np.concatenate(([-np.inf], curve[:-1]))
    right = np.concatenate((curve[1:], [-np.inf]))
    peaks = np.flatnonzero((curve >= left) & (curve >= right))
    peaks = peaks[np.argsort(-curve[peaks], kind="stable")]
    covered = np.zeros(n, dtype=bool)
    spans: list[tuple[int, int]] = []
    # Each peak yields one window; peaks inside an earlier window add nothing new, and no
    # window grows into an earlier one.
    for p in peaks.tolist():
        if covered[p]:
            continue
        peak = float(curve[p])
        thr = baseline + cfg.rel_threshold * (peak - baseline)
        if cfg.delta is not None:
            thr = max(thr, peak - cfg.delta)
        thr = min(thr, peak)  # a peak below the baseline still spans its own plateau
        lo = hi = p
        while True:
            # Stop at an earlier (stronger) window: growing through it would only add a
            # weaker copy of that window with this peak's surroundings attached.
            can_l = lo > 0 and curve[lo - 1] >= thr and not covered[lo - 1]
            can_r = hi < n - 1 and curve[hi + 1] >= thr and not covered[hi + 1]
            if not (can_l or can_r):
                break
            # Grow toward the stronger neighbour first so a length cap keeps the best part.
            go_left = can_l and (not can_r or curve[lo - 1] >= curve[hi + 1])
            nlo, nhi = (lo - 1, hi) if go_left else (lo, hi + 1)
            if cfg.max_len_s is not None and t[nhi] + span - t[nlo] > cfg.max_len_s + 1e-9:
                break
            lo, hi = nlo, nhi
        covered[lo:hi + 1] = True
        spans.append((lo, hi))
        if len(spans) >= 4 * cfg.max_windows:
            break
    return spans


def _sliding_spans(t: np.ndarray, span: float, cfg: ProposalConfig) -> list[tuple[int, int]]:
    """Inclusive sample-index spans of every multi-scale window (deduplicated)."""
    seen: set[tuple[int, int]] = set()
    first, last = float(t[0]), float(t[-1]) + span
    for length in sorted(cfg.window_s):
        if cfg.max_len_s is not None and length > cfg.max_len_s + 1e-9:
            continue
        stride = max(cfg.stride_frac * length, span)
        starts = np.arange(first, max(first, last - length) + 1e-9, stride)
        if starts.size == 0 or starts[-1] + length < last - 1e-9:
            starts = np.append(starts, max(first, last - length))  # cover the tail
        for w0 in starts.tolist():
            # Samples whose coverage starts inside [w0, w0 + length).
            lo = int(np.searchsorted(t, w0 - 1e-9, side="left"))
            hi = int(np.searchsorted(t, w0 + length - 1e-9, side="left")) - 1
            if lo <= hi:
                seen.add((lo, hi))
    return sorted(seen)
