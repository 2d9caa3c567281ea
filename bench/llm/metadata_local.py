"""Metadata assembled from timestamped text (ASR, OCR, captions, subtitles) without a model:
sections from the segments, a fixed-form summary and equal-window important scenes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.llm.metadata import Entry, VideoMetadata, one_line
from bench.llm.parsing import clip_range
from bench.text.segments import Segment

_H_THIRDS = ("left", "center", "right")
_V_THIRDS = ("top", "middle", "bottom")


def position_label(meta: Mapping[str, Any]) -> str | None:
    """Screen position of an OCR segment from its ``box`` (normalised ``[x0, y0, x1, y1]``):
    ``top-left`` ... ``bottom-right`` by the box centre's thirds, plus ``large`` (a line at
    least 12% of the frame tall) or ``small`` (under 4%). Falls back to ``meta["position"]``."""
    box = meta.get("box")
    if isinstance(box, list | tuple) and len(box) == 4 and all(isinstance(v, int | float) for v in box):
        x0, y0, x1, y1 = (float(v) for v in box)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        label = f"{_V_THIRDS[min(2, max(0, int(cy * 3)))]}-{_H_THIRDS[min(2, max(0, int(cx * 3)))]}"
        height = y1 - y0
        if height >= 0.12:
            label += ", large"
        elif 0 < height < 0.04:
            label += ", small"
        return label
    pos = meta.get("position")
    return str(pos) if pos else None


def _entry(seg: Segment, duration_s: float, **extra: Any) -> Entry | None:
    window, _ = clip_range(seg.start, seg.end, duration_s, point_window_s=1.0)
    text = one_line(seg.text)
    if window is None or not text:
        return None
    return Entry(start_s=window[0], end_s=window[1], text=text, **extra)


def _human_duration(seconds: float) -> str:
    total = int(round(seconds))
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h} h {m} min"
    return f"{m} min {s} s" if m else f"{s} s"


def _by_time_covered(entries: Sequence[Entry]) -> list[str]:
    covered: dict[str, float] = {}
    for e in entries:
        covered[e.text] = covered.get(e.text, 0.0) + (e.end_s - e.start_s)
    return [t for t, _ in sorted(covered.items(), key=lambda kv: (-kv[1], kv[0]))]


def _first_words(entries: Sequence[Entry], n_words: int) -> str:
    words: list[str] = []
    for e in entries:
        words.extend(e.text.split())
        if len(words) >= n_words:
            break
    text = " ".join(words[:n_words])
    return text + ("…" if len(words) > n_words else "")


def deterministic_summary(duration_s: float, visual: Sequence[Entry], speech: Sequence[Entry],
                          texts: Sequence[Entry]) -> str:
    """A fixed-form summary (no model): length, most-shown captions, opening words, main texts."""
    parts = [f"A {_human_duration(duration_s)} video."]
    if visual:
        parts.append("Shows: " + "; ".join(_by_time_covered(visual)[:3]) + ".")
    if speech:
        parts.append(f'Speech ({len(speech)} utterances) begins: "{_first_words(speech, 30)}".')
    if texts:
        shown = ", ".join(f'"{one_line(t, 60)}"' for t in _by_time_covered(texts)[:5])
        parts.append(f"On-screen text: {shown}.")
    if len(parts) == 1:
        parts.append("No speech, on-screen text or frame captions were found.")
    return " ".join(parts)


def deterministic_scenes(duration_s: float, visual: Sequence[Entry], speech: Sequence[Entry],
                         texts: Sequence[Entry], *, max_scenes: int = 8,
                         scene_s: float = 30.0) -> list[Entry]:
    """Equal time windows (about ``scene_s`` long, at most ``max_scenes``), each described by
    its most-shown caption, its first words of speech and its first on-screen text."""
    n = max(1, min(max_scenes, math.ceil(duration_s / scene_s)))
    step = duration_s / n
    out = []
    for i in range(n):
        # Whole-second bounds, so the rendered mm:ss ranges tile the video without overlap.
        lo = float(round(i * step))
        hi = duration_s if i == n - 1 else float(round((i + 1) * step))

        def inside(entries: Sequence[Entry], lo: float = lo, hi: float = hi) -> list[Entry]:
            return [e for e in entries if e.end_s > lo and e.start_s < hi]

        bits = []
        vis = _by_time_covered([Entry(start_s=max(e.start_s, lo), end_s=min(e.end_s, hi), text=e.text)
                                for e in inside(visual)])
        if vis:
            bits.append(vis[0])
        said = inside(speech)
        if said:
            bits.append(f'"{_first_words(said, 12)}"')
        shown = inside(texts)
        if shown:
            bits.append(f'text "{one_line(shown[0].text, 60)}"')
        if bits:
            out.append(Entry(start_s=lo, end_s=hi, text=one_line("; ".join(bits), 240)))
    return out


def metadata_from_segments(vid: str, duration_s: float, segments: Iterable[Segment], *,
                           max_important_scenes: int = 8) -> VideoMetadata:
    """Assemble metadata from timestamped text, with a deterministic summary and scenes.

    Captions go to ``[visual info]``; subtitles to ``[transcription]`` when the video has any
    (they are exact where ASR guesses), else speech; OCR to ``[texts]`` with its position.
    Entries are clipped to ``[0, duration_s]`` and sorted by time.
    """
    segs = sorted((s for s in segments if s.vid == vid), key=lambda s: (s.start, s.end, s.text))
    visual = [e for s in segs if s.source == "caption" if (e := _entry(s, duration_s)) is not None]
    subs = [s for s in segs if s.source == "subtitle"]
    spoken = subs or [s for s in segs if s.source == "speech"]
    speech = [e for s in spoken
              if (e := _entry(s, duration_s, speaker=s.meta.get("speaker") or None)) is not None]
    texts = [e for s in segs if s.source == "ocr"
             if (e := _entry(s, duration_s, position=position_label(s.meta))) is not None]
    used = sorted({s.source for s in segs if s.source != "speech" or not subs})
    return VideoMetadata(
        vid=vid, duration_s=duration_s,
        summary=deterministic_summary(duration_s, visual, speech, texts),
        important_scenes=deterministic_scenes(duration_s, visual, speech, texts,
                                              max_scenes=max_important_scenes),
        visual_info=visual, transcription=speech, texts=texts,
        sources=[f"segments:{','.join(used) or 'none'}", "summary:deterministic"])

