"""How the Space shows moments: one readable line of evidence per moment, IoU against the
ground truth, and timeline plots (bare matplotlib Figures, no pyplot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from bench.evidence import Evidence, cut, fmt_window
from bench.spans import temporal_iou
from bench.types import Moment

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def describe_evidence(evidence: Evidence, limit: int = 240, per_list: int = 3) -> str:
    """One readable line of why a moment matched (the evidence describes itself: text
    snippets with their times, matched frames, an LLM's description, the fusion members that
    agreed), cut to ``limit`` characters."""
    return cut(evidence.describe(per_list), limit)


def best_iou(window: tuple[float, float], truth: Sequence[tuple[float, float]]) -> float:
    """The window's IoU with the ground-truth window it overlaps most (0 without truth)."""
    return max((temporal_iou(window, (float(s), float(e))) for s, e in truth), default=0.0)


def _figure(width_in: float, height_in: float) -> Figure:
    # A bare Figure (no pyplot) keeps plotting thread-safe and leaves nothing registered.
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def timeline_figure(rows: Sequence[tuple[str, Sequence[Moment]]], duration: float,
                    truth: Sequence[tuple[float, float]] = (), title: str = "") -> Figure:
    """Each method's windows on one shared time axis; opacity is the score relative to that
    method's best, so methods on different score scales can share the plot. Truth in green."""
    n = len(rows) + (1 if truth else 0)
    fig = _figure(9.0, 0.9 + 0.42 * max(1, n))
    ax = fig.add_subplot()
    labels: list[str] = []
    if truth:
        ax.broken_barh([(s, e - s) for s, e in truth], (len(labels) - 0.35, 0.7),
                       color="tab:green")
        labels.append("ground truth")
    for name, moments in rows:
        y = len(labels)
        top = max((m.score for m in moments), default=0.0)
        low = min((m.score for m in moments), default=0.0)
        for rank, m in enumerate(sorted(moments, key=lambda m: m.score)):
            rel = (m.score - low) / (top - low) if top > low else 1.0
            ax.broken_barh([(m.start, max(m.end - m.start, 0.05))], (y - 0.35, 0.7),
                           color="tab:blue", alpha=0.2 + 0.7 * rel,
                           edgecolor="black" if rank == len(moments) - 1 else "none")
        labels.append(name)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlim(0, max(duration, 1.0))
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def score_timeline(moments: Sequence[Moment], durations: Mapping[str, float | None],
                   max_videos: int = 6) -> Figure | None:
    """One small score-over-time panel per video that has moments (best video first):
    each moment is a bar spanning its window, as tall as its score."""
    by_vid: dict[str, list[Moment]] = {}
    for m in sorted(moments, key=lambda m: -m.score):
        by_vid.setdefault(m.vid, []).append(m)
    if not by_vid:
        return None
    vids = list(by_vid)[:max_videos]
    fig = _figure(9.0, 0.7 + 1.3 * len(vids))
    fig.suptitle("Score over time (each bar is a moment: its window and score)", fontsize=9)
    axes = fig.subplots(len(vids), 1, squeeze=False)[:, 0]
    scores = [m.score for m in moments]
    low = min(0.0, min(scores))
    high = max(scores) if max(scores) > low else low + 1.0
    for ax, vid in zip(axes, vids, strict=True):
        ms = by_vid[vid]
        duration = durations.get(vid) or max(m.end for m in ms)
        ax.bar([m.start for m in ms], [m.score - low for m in ms], bottom=low,
               width=[max(m.end - m.start, 0.05) for m in ms], align="edge",
               color="tab:blue", alpha=0.75)
        best = ms[0]
        ax.annotate(fmt_window(best.start, best.end), (best.start, best.score), fontsize=7,
                    xytext=(2, -9), textcoords="offset points")
        ax.set_xlim(0, max(duration, 1.0))
        ax.set_ylim(low, high + 0.08 * (high - low))
        ax.set_ylabel("score", fontsize=7)
        ax.set_title(vid, fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("time (s)", fontsize=8)
    return fig
