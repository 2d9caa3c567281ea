"""How the Space shows moments: one readable line of evidence per moment, IoU against the
ground truth, and timeline plots (bare matplotlib Figures, no pyplot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bench.evidence import fmt_ts, fmt_window
from bench.types import Moment

if TYPE_CHECKING:
    from matplotlib.figure import Figure


_TEXT_KEYS = ("text", "description", "snippet", "caption", "reason")
_TIME_KEYS = ("start", "time", "t", "start_s")
_WINDOW_KEYS = ("window", "span", "range")


def _is_window(key: str, value: Any) -> bool:
    """``[start, end]`` under a window-like key (a bare pair of numbers may be two frame times)."""
    return (any(w in key for w in _WINDOW_KEYS) and isinstance(value, list | tuple)
            and len(value) == 2 and all(isinstance(x, int | float) for x in value))


def _item(value: Any) -> str:
    if isinstance(value, Mapping):
        text = next((_scalar(value[k]) for k in _TEXT_KEYS if value.get(k)), "")
        t = next((value[k] for k in _TIME_KEYS if isinstance(value.get(k), int | float)), None)
        src = value.get("source")
        stamp = " ".join(x for x in (fmt_ts(float(t)) if t is not None else "", str(src or "")) if x)
        head = f"[{stamp}]" if stamp else ""
        if not text:
            text = ", ".join(f"{k}={_scalar(v)}" for k, v in value.items()
                             if isinstance(v, str | int | float) and k not in _TIME_KEYS)
        return f"{head} {text}".strip() if head else text
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3g}"
    return " ".join(str(value).split())


_QUIET_KEYS = frozenset({"method", "model", "fusion", "rank", "timestamp"})
"""Evidence keys that say which code ran, not why the moment matched."""


def describe_evidence(evidence: Mapping[str, Any], limit: int = 240, per_list: int = 3) -> str:
    """One readable line of why a moment matched: text snippets with their times, matched
    frame times, an LLM's description, and for a fusion the members that agreed (with the
    best-ranked member's own evidence)."""
    parts = []
    members = evidence.get("members")
    if isinstance(members, Mapping) and members:
        ranked = sorted(members.items(), key=lambda kv: _rank_of(kv[1]))
        parts.append("agreed: " + ", ".join(
            f"{name} #{_rank_of(m)}" if _rank_of(m) < 10**6 else name for name, m in ranked))
        for _, m in ranked:
            inner = m.get("evidence") if isinstance(m, Mapping) else None
            if isinstance(inner, Mapping) and (text := describe_evidence(inner, limit, per_list)):
                parts.append(text)
                break
    for key, value in evidence.items():
        if key in _QUIET_KEYS or key == "members":
            continue
        if value is None or value == "" or value == [] or value == {}:
            continue
        label = key.replace("_", " ")
        if _is_window(key, value):
            parts.append(f"{label}: {fmt_window(float(value[0]), float(value[1]))}")
        elif isinstance(value, list | tuple):
            shown = [_item(v) for v in value[:per_list]]
            sep = "; " if any(isinstance(v, Mapping) for v in value) else ", "
            more = f" (+{len(value) - per_list})" if len(value) > per_list else ""
            parts.append(f"{label}: " + sep.join(x for x in shown if x) + more)
        elif isinstance(value, Mapping):
            inner_text = ", ".join(f"{k} {_scalar(v)}" if isinstance(v, int | float | str) else str(k)
                                   for k, v in list(value.items())[:4])
            parts.append(f"{label}: {inner_text}")
        else:
            parts.append(f"{label}: {_item(value)}")
    text = " · ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rank_of(member: Any) -> int:
    rank = member.get("rank") if isinstance(member, Mapping) else None
    return int(rank) if isinstance(rank, int | float) and not isinstance(rank, bool) else 10**6


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal IoU of two ``(start, end)`` windows in seconds."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def best_iou(window: tuple[float, float], truth: Sequence[tuple[float, float]]) -> float:
    """The window's IoU with the ground-truth window it overlaps most (0 without truth)."""
    return max((iou(window, (float(s), float(e))) for s, e in truth), default=0.0)


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
