"""Timestamped segments -> overlapping time windows, the documents of text retrieval.

A window keeps the segments that overlap it, so a hit can show which lines matched and when.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.errors import BadInput
from bench.text.segments import Segment, sort_segments
from bench.types import Video

if TYPE_CHECKING:
    from bench.store import FeatureStore


class WindowConfig(BaseModel):
    """Window length and hop in seconds; one document per window, or per window and source."""

    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(default=10.0, gt=0)
    stride_s: float = Field(default=5.0, gt=0)
    per_source: bool = False
    """``True``: speech, OCR, captions and subtitles of a window are separate documents."""
    split_sentences: bool = True
    """Split a segment with word timings (``meta["words"]``, e.g. Whisper with
    ``word_timestamps``) into its sentences, so a hit is timed to the sentence that holds
    it rather than to a recogniser segment that may run over several."""

    @model_validator(mode="after")
    def _no_gaps(self) -> WindowConfig:
        if self.stride_s > self.window_s:
            raise ValueError(f"stride_s ({self.stride_s:g}) > window_s ({self.window_s:g}) "
                             "would leave text between windows unsearchable")
        return self


@dataclass(frozen=True)
class TextWindow:
    """One document: the text of ``segments`` overlapping ``[start, end]`` s of video ``vid``."""

    vid: str
    start: float
    end: float
    text: str
    sources: tuple[str, ...]
    segments: tuple[Segment, ...]
    lang: str | None = None
    """The segments' most common declared language, else the video's, else ``None`` (detect)."""

    def digest(self) -> str:
        """sha256 of what the window's vector or terms depend on (text and language)."""
        return hashlib.sha256(f"{self.lang or ''}\x00{self.text}".encode()).hexdigest()


_SENTENCE_END = tuple(".?!。？！…")


def split_sentences(segment: Segment) -> list[Segment]:
    """A segment's sentences, timed by its word timings; ``[segment]`` if it has one or none.

    ``meta["words"]`` rows are ``[start_s, end_s, word, probability]`` with the word's own
    leading space (Whisper's format), so joining them restores the text. A sentence ends at
    a word ending in ``. ? ! 。 ？ ！ …``. Each part keeps the segment's source, language
    and meta, with its own ``words`` and ``sentence_of`` = the segment's ``[start, end]``.
    """
    words = segment.meta.get("words") if segment.meta else None
    if not words:
        return [segment]
    parts: list[list[Any]] = [[]]
    for w in words:
        parts[-1].append(w)
        if str(w[2]).strip().endswith(_SENTENCE_END):
            parts.append([])
    parts = [p for p in parts if p and "".join(str(w[2]) for w in p).strip()]
    if len(parts) < 2:
        return [segment]
    meta = {k: v for k, v in segment.meta.items() if k != "words"}
    out = []
    for p in parts:
        start, end = float(p[0][0]), max(float(p[-1][1]), float(p[0][0]))
        out.append(Segment(vid=segment.vid, start=start, end=end, source=segment.source,
                           text="".join(str(w[2]) for w in p).strip(), lang=segment.lang,
                           meta={**meta, "words": p, "sentence_of": [segment.start, segment.end]}))
    return out


def _overlaps(seg: Segment, start: float, end: float) -> bool:
    # An instantaneous segment (OCR reading at one frame) counts where it falls.
    return seg.start < end and max(seg.end, seg.start + 1e-9) > start


def _window_lang(segments: Sequence[Segment], default: str | None) -> str | None:
    langs = [s.lang for s in segments if s.lang]
    if not langs:
        return default
    if all(x == langs[0] for x in langs):
        return langs[0]
    return Counter(langs).most_common(1)[0][0]


def _video_windows(vid: str, segments: list[Segment], cfg: WindowConfig,
                   duration_s: float | None, lang: str | None) -> list[TextWindow]:
    last = max(s.end for s in segments)
    horizon = duration_s if duration_s is not None else last
    horizon = max(horizon, min(s.start for s in segments) + 1e-6)
    # Enough windows that the last one reaches the last text (or the video's end).
    n = max(1, math.ceil(max(min(last, horizon) - cfg.window_s, 0.0) / cfg.stride_s - 1e-9) + 1)
    # Segments are sorted by start: only those starting within the longest segment's length
    # before a window can overlap it, so each window looks at a few, not all.
    starts = [s.start for s in segments]
    longest = max(s.end - s.start for s in segments)
    out: list[TextWindow] = []
    for i in range(n):
        start = round(i * cfg.stride_s, 6)
        end = min(start + cfg.window_s, horizon)
        if end <= start:
            break
        lo = bisect.bisect_left(starts, start - longest - 1e-9)
        hi = bisect.bisect_left(starts, end)
        inside = [s for s in segments[lo:hi] if _overlaps(s, start, end)]
        if not inside:
            continue
        groups: Iterable[list[Segment]]
        if cfg.per_source:
            by_source: dict[str, list[Segment]] = defaultdict(list)
            for s in inside:
                by_source[s.source].append(s)
            groups = [by_source[k] for k in sorted(by_source)]
        else:
            groups = [inside]
        for group in groups:
            text = "\n".join(s.text.strip() for s in group if s.text.strip())
            if not text:
                continue
            sources = tuple(sorted({s.source for s in group}))
            out.append(TextWindow(vid=vid, start=start, end=end, text=text, sources=sources,
                                  segments=tuple(group), lang=_window_lang(group, lang)))
    return out


def build_windows(segments: Iterable[Segment], config: WindowConfig | None = None, *,
                  durations_s: Mapping[str, float | None] | None = None,
                  langs: Mapping[str, str | None] | None = None) -> list[TextWindow]:
    """Group segments into windows ``[k * stride_s, k * stride_s + window_s]`` per video.

    ``durations_s`` (vid -> seconds) clips the last window to the video; without it windows
    stop at the last segment's end. ``langs`` (vid -> language) is the fallback language of
    a window whose segments declare none. Windows with no text are left out. The result is
    sorted by (vid, start, sources) and each video's windows are contiguous.
    """
    cfg = config or WindowConfig()
    by_vid: dict[str, list[Segment]] = defaultdict(list)
    for seg in sort_segments(segments):
        if seg.end < seg.start:
            raise ValueError(f"segment of {seg.vid} ends before it starts: [{seg.start}, {seg.end}]")
        by_vid[seg.vid].append(seg)
    out: list[TextWindow] = []
    for vid in sorted(by_vid):
        dur = (durations_s or {}).get(vid)
        out += _video_windows(vid, by_vid[vid], cfg, dur, (langs or {}).get(vid))
    return out


def vid_ranges(windows: Sequence[TextWindow]) -> dict[str, tuple[int, int]]:
    """vid -> ``(first, last + 1)`` index range into ``windows`` (contiguous per video)."""
    ranges: dict[str, tuple[int, int]] = {}
    for i, w in enumerate(windows):
        lo, _ = ranges.get(w.vid, (i, i))
        if w.vid in ranges and ranges[w.vid][1] != i:
            raise ValueError(f"windows of {w.vid} are not contiguous; build them with build_windows")
        ranges[w.vid] = (lo, i + 1)
    return ranges


def corpus_digest(windows: Sequence[TextWindow]) -> str:
    """sha256 over every window's vid, times, sources, language and text (an index key)."""
    h = hashlib.sha256()
    for w in windows:
        h.update(f"{w.vid}\x00{w.start:.6f}\x00{w.end:.6f}\x00{','.join(w.sources)}\x00"
                 f"{w.lang or ''}\x00{w.text}\x01".encode())
    return h.hexdigest()


@dataclass
class TextCorpus:
    """The window documents of every indexed video, with per-video index ranges.

    ``vids`` holds every indexed video, including those with no text at all (searching
    them finds nothing, which is an answer, not an error).
    """

    windows: list[TextWindow]
    durations_s: dict[str, float]
    vids: frozenset[str]
    ranges: dict[str, tuple[int, int]] = field(init=False)

    def __post_init__(self) -> None:
        self.ranges = vid_ranges(self.windows)

    @classmethod
    def build(cls, segments: Mapping[str, Sequence[Segment]], config: WindowConfig, *,
              videos: Sequence[Video] = ()) -> TextCorpus:
        """Windows over ``segments`` (vid -> segments); ``videos`` give durations and languages."""
        durations = {v.vid: v.duration for v in videos if v.duration}
        langs = {v.vid: v.lang for v in videos if v.lang}
        flat = [s for segs in segments.values() for s in segs]
        if config.split_sentences:
            flat = [part for s in flat for part in split_sentences(s)]
        windows = build_windows(flat, config, durations_s=durations, langs=langs)
        ends: dict[str, float] = {}
        for s in flat:
            ends[s.vid] = max(ends.get(s.vid, 0.0), s.end)
        horizon = {vid: float(durations.get(vid) or ends.get(vid, 0.0))
                   for vid in {*segments, *(v.vid for v in videos)}}
        return cls(windows=windows, durations_s=horizon,
                   vids=frozenset(horizon))

    def check_vids(self, vids: Sequence[str]) -> list[str]:
        """``vids`` as a list; BadInput for a vid that was never indexed."""
        unknown = [v for v in vids if v not in self.vids]
        if unknown:
            raise BadInput(f"video {unknown[0]!r} was not indexed; index it before searching it")
        return list(vids)

    def window_ids(self, vids: Sequence[str] | None) -> np.ndarray:
        """int64 indices of the windows of ``vids`` (all windows when ``None``), in order.

        A vid that was never indexed is a :class:`BadInput`; one with no text gives none.
        """
        if vids is None:
            return np.arange(len(self.windows), dtype=np.int64)
        self.check_vids(vids)
        parts = [np.arange(*self.ranges[v], dtype=np.int64) for v in vids if v in self.ranges]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def load_corpus(videos: Sequence[Video], store: FeatureStore, sources: Any, config: WindowConfig,
                *, device: str) -> TextCorpus:
    """Extract (cached) the configured text of ``videos`` and cut it into windows."""
    from bench.text.extract import extract_segments

    segments = extract_segments(videos, store, sources, device=device)
    return TextCorpus.build(segments, config, videos=videos)


def paint_curve(duration_s: float, fps: float, spans: Iterable[tuple[float, float, float]],
                floor: float = 0.0, falloff: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A score curve sampled at ``fps`` over ``[0, duration_s]`` from scored time spans.

    Sample ``i`` at ``t_i = i / fps`` covers ``[t_i, t_i + 1/fps)`` and takes the highest
    value of the spans ``(start_s, end_s, value)`` touching it. A zero-length span paints the
    sample it falls in. Unpainted samples get ``floor - falloff * d``, ``d`` being the distance
    in samples to the nearest painted one: a small ``falloff`` makes stretches without text
    slope away from it, so they hold no local maximum for a peak finder to grow a window
    from. Returns ``(times_s, values)``, float64 ``(n,)``.
    """
    if not (fps > 0 and math.isfinite(fps)):
        raise BadInput(f"curve fps must be a positive number, got {fps!r}")
    n = max(1, math.ceil(duration_s * fps - 1e-9))
    times = np.arange(n, dtype=np.float64) / fps
    values = np.full(n, -np.inf, dtype=np.float64)
    for start, end, value in spans:
        lo = min(n - 1, max(0, math.floor(start * fps + 1e-9)))
        hi = min(n, max(lo + 1, math.ceil(end * fps - 1e-9)))
        np.maximum(values[lo:hi], value, out=values[lo:hi])
    painted = np.flatnonzero(np.isfinite(values))
    empty = ~np.isfinite(values)
    if painted.size == 0:
        values[:] = floor
    elif empty.any():
        idx = np.flatnonzero(empty)
        pos = np.searchsorted(painted, idx)
        left = painted[np.clip(pos - 1, 0, painted.size - 1)]
        right = painted[np.clip(pos, 0, painted.size - 1)]
        dist = np.minimum(np.abs(idx - left), np.abs(right - idx))
        values[idx] = floor - falloff * dist
    return times, values
