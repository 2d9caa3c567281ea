"""Time spans ``(start, end)`` in seconds: temporal IoU (one pair, or arrays of spans) and
merging of overlapping windows. Every IoU in SceneBench is computed here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from bench.errors import BadInput


class Window(NamedTuple):
    """A proposed moment: seconds on the video's timeline and its score (higher is better)."""

    start: float
    end: float
    score: float


def temporal_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two spans ``(start, end, ...)`` in seconds (extra items such as a score are
    ignored); 0 when they do not overlap. The union is the hull of the two spans."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def temporal_iou_matrix(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """IoU of every span of ``a`` (N, 2) with every span of ``b`` (M, 2); returns (N, M) in [0, 1].

    The union is ``len(a) + len(b) - intersection``, as in the official QVHighlights script. A
    span with ``end <= start`` overlaps nothing (IoU 0).
    """
    x = np.asarray(a, dtype=float).reshape(-1, 2)
    y = np.asarray(b, dtype=float).reshape(-1, 2)
    inter = np.clip(np.minimum(x[:, None, 1], y[None, :, 1]) - np.maximum(x[:, None, 0], y[None, :, 0]),
                    0.0, None)
    union = (x[:, 1] - x[:, 0])[:, None] + (y[:, 1] - y[:, 0])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=(union > 0) & (inter > 0))


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``a[i]`` with ``b[i]`` for float arrays of spans of equal shape (N, 2); returns (N,).

    The union is the hull of each pair, as the official QVHighlights R1 computes it: equal to
    :func:`temporal_iou_matrix`'s in exact arithmetic, and bit-for-bit what that script gives.
    """
    inter = np.clip(np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 0], b[:, 0]), 0.0, None)
    hull = np.maximum(a[:, 1], b[:, 1]) - np.minimum(a[:, 0], b[:, 0])
    return np.divide(inter, hull, out=np.zeros_like(inter), where=hull > 0)


def merge_overlapping(windows: Iterable[Window | tuple[float, float, float]], *, gap_s: float = 0.0,
                      score: Literal["max", "sum"] = "max") -> list[Window]:
    """Union windows that overlap or lie within ``gap_s`` seconds of each other.

    The merged window spans its parts; its score is their max (or sum, for fusion that
    rewards agreement). Returned sorted by descending score.
    """
    if gap_s < 0:
        raise BadInput(f"gap_s must be >= 0 seconds, got {gap_s}")
    items = sorted((Window(float(s), float(e), float(c)) for s, e, c in windows),
                   key=lambda w: (w.start, w.end))
    merged: list[list[float]] = []
    for w in items:
        if merged and w.start <= merged[-1][1] + gap_s:
            last = merged[-1]
            last[1] = max(last[1], w.end)
            last[2] = max(last[2], w.score) if score == "max" else last[2] + w.score
        else:
            merged.append([w.start, w.end, w.score])
    return sorted((Window(s, e, c) for s, e, c in merged), key=lambda w: (-w.score, w.start))
