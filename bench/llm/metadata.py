"""Per-video metadata for LLM scene search: five timestamped sections, extracted once and cached.

``[summary]``, ``[important scenes]``, ``[visual info]`` (frame captions), ``[transcription]``
(speech or subtitles, with speakers when known) and ``[texts]`` (on-screen text with its
position). Built from the text side (ASR, OCR, captions, subtitles), optionally with an LLM
writing the summary and important scenes, or with a vision-language model over frames.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bench.errors import BadInput, BenchError, Unavailable
from bench.llm.parsing import (
    InvalidOutput,
    clip_range,
    extract_json,
    format_range,
    parse_time_range,
    uses_hours,
    validate_scenes,
)
from bench.llm.prompts import summary_messages, vlm_messages
from bench.text.extract import TextSources
from bench.text.segments import Segment

if TYPE_CHECKING:
    from bench.llm.cache import LLMClient
    from bench.store import FeatureStore
    from bench.types import Video

log = logging.getLogger("bench")

METADATA_VERSION = "1"
"""Bumped when assembling or rendering changes; part of the feature-store keys."""

SECTIONS = ("summary", "important_scenes", "visual_info", "transcription", "texts")
SECTION_TITLES = {"summary": "[summary]", "important_scenes": "[important scenes]",
                  "visual_info": "[visual info]", "transcription": "[transcription]",
                  "texts": "[texts]"}
MAX_ENTRY_CHARS = 500
"""One entry (a caption, an utterance, a text) is cut to this many characters when rendered."""


class Entry(BaseModel):
    """One timestamped line of a section, ``[start_s, end_s]`` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_s: float
    end_s: float
    text: str
    speaker: str | None = None
    """Who speaks (``[transcription]``), when known."""
    position: str | None = None
    """Where on screen (``[texts]``): ``top-left`` ... ``bottom-right``, plus ``large``/``small``."""


class VideoMetadata(BaseModel):
    """Everything the LLM reads about one video."""

    model_config = ConfigDict(extra="forbid")

    vid: str
    duration_s: float = Field(gt=0)
    summary: str
    important_scenes: list[Entry] = Field(default_factory=list)
    visual_info: list[Entry] = Field(default_factory=list)
    transcription: list[Entry] = Field(default_factory=list)
    texts: list[Entry] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    """How it was made, e.g. ``["segments", "summary:deterministic"]`` or ``["vlm:<model>"]``."""

    def entries(self) -> Iterable[Entry]:
        """Every timed entry of the four timed sections (not the summary)."""
        yield from self.important_scenes
        yield from self.visual_info
        yield from self.transcription
        yield from self.texts

    def plain_text(self) -> str:
        """All text without timestamps or headers: the document for file-level retrieval."""
        return "\n".join([self.summary, *(e.text for e in self.entries())])


# --------------------------------------------------------------------------- rendering

def _one_line(text: str, limit: int = MAX_ENTRY_CHARS) -> str:
    # One entry per line, so data can never start a line of its own (no forged headers).
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def _entry_line(section: str, e: Entry, hours: bool) -> str:
    stamp = format_range(e.start_s, e.end_s, hours=hours)
    text = _one_line(e.text)
    if section == "transcription" and e.speaker:
        return f"{stamp} {_one_line(e.speaker, 60)}: {text}"
    if section == "texts":
        where = f" ({_one_line(e.position, 40)})" if e.position else ""
        return f'{stamp}{where} "{text}"'
    return f"{stamp} {text}"


def render_metadata(meta: VideoMetadata, *, window: tuple[float, float] | None = None,
                    sections: Sequence[str] = SECTIONS) -> str:
    """The metadata as text, one ``[section]`` header then one timestamped line per entry.

    ``window = (start_s, end_s)`` keeps only entries that overlap it (the summary is always
    kept: it gives the chunk its context). An empty section reads ``(none)``.
    """
    hours = uses_hours(meta.duration_s)
    lines: list[str] = []
    for section in sections:
        if section not in SECTION_TITLES:
            raise ValueError(f"unknown metadata section {section!r}; known: {', '.join(SECTIONS)}")
        lines.append(SECTION_TITLES[section])
        if section == "summary":
            text = _one_line(meta.summary, 2000)
            lines.append(f"{format_range(0.0, meta.duration_s, hours=hours)} {text}" if text else "(none)")
            continue
        entries: list[Entry] = getattr(meta, section)
        if window is not None:
            lo, hi = window
            entries = [e for e in entries if e.end_s > lo and e.start_s < hi]
        lines.extend(_entry_line(section, e, hours) for e in entries)
        if not entries:
            lines.append("(none)")
    return "\n".join(lines)


def chunk_windows(meta: VideoMetadata, budget_tokens: int, count_tokens: Callable[[str], int], *,
                  overlap_s: float = 10.0) -> list[tuple[float, float]]:
    """Time windows ``(start_s, end_s)`` whose rendered metadata fits ``budget_tokens``.

    One window ``(0, duration)`` when everything fits. Otherwise each window is the longest
    that fits (binary search over entry end times), and the next starts ``overlap_s`` before
    its end, so a moment on a boundary is seen whole by one chunk. A window too small to fit
    even one entry end is kept at its smallest; :func:`fit_text` then cuts it.
    """
    if budget_tokens < 1:
        raise BadInput(f"no room for metadata in the context window (budget {budget_tokens} tokens); "
                       "raise context_tokens or lower max_new_tokens")
    duration = meta.duration_s
    if count_tokens(render_metadata(meta)) <= budget_tokens:
        return [(0.0, duration)]
    bounds = sorted({min(duration, e.end_s) for e in meta.entries() if e.end_s > 0} | {duration})
    windows: list[tuple[float, float]] = []
    t0 = 0.0
    while True:
        cands = [b for b in bounds if b > t0]
        lo, hi, best = 0, len(cands) - 1, 0
        while lo <= hi:
            mid = (lo + hi) // 2
            if count_tokens(render_metadata(meta, window=(t0, cands[mid]))) <= budget_tokens:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        t1 = cands[best]
        windows.append((t0, t1))
        if t1 >= duration:
            return windows
        nxt = t1 - overlap_s
        t0 = nxt if nxt > t0 else t1


def fit_text(text: str, budget_tokens: int, count_tokens: Callable[[str], int]) -> tuple[str, bool]:
    """``text`` cut at line ends (then characters) to fit ``budget_tokens``; ``(text, was_cut)``."""
    if count_tokens(text) <= budget_tokens:
        return text, False
    lines = text.split("\n")
    lo, hi, best = 0, len(lines), 0
    while lo <= hi:
        mid = (lo + hi) // 2
        if count_tokens("\n".join(lines[:mid])) <= budget_tokens:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best > 0:
        return "\n".join(lines[:best]), True
    first = lines[0]
    while first and count_tokens(first) > budget_tokens:
        first = first[: len(first) * 3 // 4]
    return first, True


# --------------------------------------------------------------------------- from segments

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
    text = _one_line(seg.text)
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
        shown = ", ".join(f'"{_one_line(t, 60)}"' for t in _by_time_covered(texts)[:5])
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
            bits.append(f'text "{_one_line(shown[0].text, 60)}"')
        if bits:
            out.append(Entry(start_s=lo, end_s=hi, text=_one_line("; ".join(bits), 240)))
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


# --------------------------------------------------------------------------- LLM answers

def _timed(items: Any, duration_s: float, text_keys: Sequence[str], *,
           lo: float = 0.0, hi: float | None = None, position: bool = False) -> list[Entry]:
    """Entries from a JSON list of ``{"Timestamp": ..., <text key>: ...}``; invalid ones dropped."""
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        low = {str(k).strip().lower(): v for k, v in item.items()}
        text = next((low[k] for k in text_keys if isinstance(low.get(k), str) and low[k].strip()), None)
        stamp = low.get("timestamp") or low.get("time")
        if text is None or not isinstance(stamp, str):
            continue
        try:
            start, end = sorted(parse_time_range(stamp))
        except InvalidOutput:
            continue
        top = duration_s if hi is None else hi
        if end < lo or start > top:
            continue  # outside the stretch the model was shown
        window, _ = clip_range(max(start, lo), min(end, top), duration_s)
        if window is None:
            continue
        pos = low.get("position") if position else None
        out.append(Entry(start_s=window[0], end_s=window[1], text=_one_line(text),
                         position=_one_line(pos, 40) if isinstance(pos, str) and pos.strip() else None))
    return sorted(out, key=lambda e: (e.start_s, e.end_s))


def _lower_keys(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidOutput(f"expected a JSON object, got {type(data).__name__}")
    return {" ".join(str(k).replace("_", " ").lower().split()): v for k, v in data.items()}


def parse_summary_answer(answer: str, duration_s: float, *, max_scenes: int = 8) -> tuple[str, list[Entry]]:
    """``(summary, important scenes)`` from a summary answer; InvalidOutput when unusable."""
    data = _lower_keys(extract_json(answer))
    summary = data.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise InvalidOutput("the answer has no \"Summary\" text")
    items = data.get("important scenes") or data.get("scenes") or []
    scenes = validate_scenes(items if isinstance(items, list) else [], duration_s,
                             max_scenes=max_scenes, merge=False)
    return _one_line(summary, 2000), [Entry(start_s=s.start_s, end_s=s.end_s, text=s.description)
                                      for s in scenes if s.description]


@dataclass
class VlmPart:
    """What a vision-language model said about one batch of frames."""

    start_s: float
    end_s: float
    summary: str
    important_scenes: list[Entry] = field(default_factory=list)
    visual_info: list[Entry] = field(default_factory=list)
    texts: list[Entry] = field(default_factory=list)
    transcription: list[Entry] = field(default_factory=list)


def parse_vlm_answer(answer: str, duration_s: float, start_s: float, end_s: float) -> VlmPart:
    """A VLM answer for frames in ``[start_s, end_s]``; entries are clipped to that stretch."""
    data = _lower_keys(extract_json(answer))
    summary = data.get("summary")
    part = VlmPart(
        start_s=start_s, end_s=end_s,
        summary=_one_line(summary, 1000) if isinstance(summary, str) else "",
        important_scenes=_timed(data.get("important scenes"), duration_s, ("description", "text"),
                                lo=start_s, hi=end_s),
        visual_info=_timed(data.get("visual info"), duration_s, ("description", "text"),
                           lo=start_s, hi=end_s),
        texts=_timed(data.get("texts"), duration_s, ("text", "description"), lo=start_s, hi=end_s,
                     position=True),
        transcription=_timed(data.get("transcription"), duration_s, ("text", "description"),
                             lo=start_s, hi=end_s))
    if not (part.summary or part.visual_info or part.texts or part.important_scenes):
        raise InvalidOutput("the answer has none of Summary, Important scenes, Visual info, Texts")
    return part


def merge_vlm_parts(base: VideoMetadata, parts: Sequence[VlmPart], model: str) -> VideoMetadata:
    """``base`` (from the text side) with the VLM's sections added; its summary and scenes win."""
    hours = uses_hours(base.duration_s)
    if len(parts) == 1:
        summary = parts[0].summary
    else:
        summary = " ".join(f"{format_range(p.start_s, p.end_s, hours=hours)}: {p.summary}"
                           for p in parts if p.summary)

    def joined(name: str) -> list[Entry]:
        entries = [*getattr(base, name), *(e for p in parts for e in getattr(p, name))]
        return sorted(entries, key=lambda e: (e.start_s, e.end_s, e.text))

    scenes = sorted((e for p in parts for e in p.important_scenes), key=lambda e: (e.start_s, e.end_s))
    return base.model_copy(update={
        "summary": summary or base.summary,
        "important_scenes": scenes or base.important_scenes,
        "visual_info": joined("visual_info"), "texts": joined("texts"),
        "transcription": base.transcription or joined("transcription"),
        "sources": [*(s for s in base.sources if not s.startswith("summary:")), f"vlm:{model}"]})


def frame_data_url(frame: Any, *, quality: int = 85) -> str:
    """An RGB uint8 ``(H, W, 3)`` array as a ``data:image/jpeg;base64,...`` URL."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- extraction

class MetadataConfig(BaseModel):
    """How metadata is extracted (part of the ``llm-metadata`` parameters)."""

    model_config = ConfigDict(extra="forbid")

    extractor: Literal["local", "vlm"] = "local"
    """``local``: from ASR/OCR/captions/subtitles; ``vlm``: plus a vision-language model over
    frames through an OpenAI-compatible endpoint (needs one)."""
    sources: TextSources = Field(default_factory=TextSources)
    """Which text is extracted (speech, OCR, captions, subtitles) and how."""
    summary_llm: bool = False
    """Let the LLM write ``[summary]`` and ``[important scenes]`` (else a fixed-form summary)."""
    max_important_scenes: int = Field(default=8, ge=1, le=50)
    summary_max_new_tokens: int = Field(default=512, ge=16)
    vlm_model: str | None = None
    """Model name on the endpoint for frames; default: the endpoint's model."""
    vlm_fps: float = Field(default=0.5, gt=0)
    vlm_frames_per_call: int = Field(default=8, ge=1, le=64)
    vlm_short_side: int = Field(default=384, ge=64)
    vlm_max_new_tokens: int = Field(default=1024, ge=16)


class ExtractionFailed(BadInput):
    """Metadata for one video could not be made (its model call failed); recorded in the
    store as failed with this reason and retried on the next run."""


@dataclass
class ExtractedMetadata:
    """Metadata by vid, and why a video's metadata is partial (fallback used) or missing."""

    metadata: dict[str, VideoMetadata]
    errors: dict[str, str] = field(default_factory=dict)


def _portable(name: str) -> str:
    # Endpoints often serve a model under its directory path; keys must not hold machine paths.
    return Path(name).name if name.startswith(("/", "~")) or ":\\" in name else name


def _llm_identity(client: LLMClient) -> dict[str, Any]:
    b = client.backend
    return {"backend": b.kind, "model": _portable(b.model), "revision": b.revision,
            "prompt_revision": client.prompt_revision}


def _summary_budget(client: LLMClient, max_new_tokens: int) -> int:
    overhead = client.backend.count_tokens(str(summary_messages("", 1.0)))
    return client.backend.context_tokens - max_new_tokens - overhead - 64


def llm_summary(meta: VideoMetadata, client: LLMClient, config: MetadataConfig) -> dict[str, Any]:
    """Ask the LLM for the summary and important scenes (chunked by time when long).

    Returns ``{"summary": str, "important_scenes": [Entry dicts]}``; raises
    :class:`ExtractionFailed` when the backend fails or no chunk gives a usable answer.
    """
    count = client.backend.count_tokens
    budget = _summary_budget(client, config.summary_max_new_tokens)
    sections = ("visual_info", "transcription", "texts")
    body = meta.model_copy(update={"summary": ""})
    full = render_metadata(body, sections=sections)
    windows = [(0.0, meta.duration_s)] if count(full) <= budget else chunk_windows(body, budget, count)
    summaries: list[str] = []
    scenes: list[Entry] = []
    problems: list[str] = []
    hours = uses_hours(meta.duration_s)
    for lo, hi in windows:
        text, _ = fit_text(render_metadata(body, window=(lo, hi), sections=sections), budget, count)
        try:
            done = client.chat(summary_messages(text, meta.duration_s),
                               max_new_tokens=config.summary_max_new_tokens, purpose="summary", tag=meta.vid)
            summary, found = parse_summary_answer(done.text, meta.duration_s,
                                                  max_scenes=config.max_important_scenes)
        except Unavailable:
            raise  # a refused key concerns every video: the configuration cannot run
        except (BenchError, InvalidOutput) as exc:
            problems.append(str(exc))
            continue
        prefix = "" if len(windows) == 1 else f"{format_range(lo, hi, hours=hours)}: "
        summaries.append(prefix + summary)
        scenes.extend(e for e in found if e.end_s > lo and e.start_s < hi)
    if not summaries:
        raise ExtractionFailed(f"{meta.vid}: LLM summary failed: {problems[0] if problems else 'no answer'}")
    return {"summary": " ".join(summaries),
            "important_scenes": [e.model_dump() for e in sorted(scenes, key=lambda e: (e.start_s, e.end_s))]}


def vlm_describe(path: Path, meta: VideoMetadata, client: LLMClient, config: MetadataConfig) -> list[VlmPart]:
    """Frames of ``path`` at ``vlm_fps``, ``vlm_frames_per_call`` per call, described by the VLM.

    Raises :class:`ExtractionFailed` when any call fails or is unusable: partial visual
    metadata would silently hide whole stretches of the video from search.
    """
    from bench.video import sample_frames

    parts: list[VlmPart] = []
    step = 1.0 / config.vlm_fps
    for batch in sample_frames(path, config.vlm_fps, short_side=config.vlm_short_side,
                               batch_size=config.vlm_frames_per_call):
        times = [float(t) for t in batch.times_s]
        frames = [(t, frame_data_url(f)) for t, f in zip(times, batch.frames, strict=True)]
        lo, hi = times[0], min(meta.duration_s, times[-1] + step)
        try:
            done = client.chat(vlm_messages(frames, meta.duration_s),
                               max_new_tokens=config.vlm_max_new_tokens, purpose="vlm", tag=meta.vid)
            parts.append(parse_vlm_answer(done.text, meta.duration_s, lo, hi))
        except Unavailable:
            raise
        except (BenchError, InvalidOutput) as exc:
            raise ExtractionFailed(f"{meta.vid}: VLM on {format_range(lo, hi)} failed: {exc}") from None
    if not parts:
        raise ExtractionFailed(f"{meta.vid}: no frames could be sampled for the VLM")
    return parts


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _duration(store: FeatureStore, video_id: str, path: Path) -> float:
    from bench.video import ProbeInfo, probe

    cached = store.get_probe(video_id)
    if cached is not None:
        return ProbeInfo.from_dict(cached).duration_s
    info = probe(path)
    store.record_probe(video_id, info)
    return info.duration_s


def _stage(store: FeatureStore, video_id: str, ex: Any, input_digest: str,
           compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The stored result of a stage for this input, computing and saving it when absent or stale.

    ``input_digest`` names what the stage read; a stored result made from other input (the
    text segments changed) is recomputed. ExtractionFailed is recorded in the store and re-raised.
    """
    obj = store.load_json(video_id, ex)
    if isinstance(obj, dict) and obj.get("input_digest") == input_digest:
        return obj
    try:
        obj = {**compute(), "input_digest": input_digest}
    except ExtractionFailed as exc:
        store.mark_failed(video_id, ex, str(exc))
        raise
    store.save_json(video_id, ex, obj)
    return obj


def extract_metadata(videos: Sequence[Video], store: FeatureStore, config: MetadataConfig, *,
                     device: str, llm: LLMClient | None = None,
                     vlm: LLMClient | None = None) -> ExtractedMetadata:
    """Metadata for every video (``Video.path`` local files), each stage cached in ``store``.

    1. text segments (:func:`bench.text.extract.extract_segments`, cached there);
    2. ``llm-metadata.local``: :func:`metadata_from_segments`, stored as JSON plus rendered
       text, remade only when the segments change;
    3. ``llm-metadata.summary`` when ``config.summary_llm`` (needs ``llm``): the LLM's summary
       and important scenes, keyed by backend, model, revision and prompt revision;
    4. ``llm-metadata.vlm`` when ``config.extractor == "vlm"`` (needs ``vlm``): the VLM's
       description of sampled frames, keyed the same way plus the sampling settings.
    A failed stage 3 or 4 is recorded in the store as failed (retried next run) and in
    ``errors``, and the video keeps the stage-2 metadata. A video that cannot be read is
    left out, with the reason in ``errors``.
    """
    from tqdm.auto import tqdm

    from bench.store import Extractor
    from bench.text.extract import extract_segments

    if config.extractor == "vlm" and vlm is None:
        raise BadInput("extractor 'vlm' needs an OpenAI-compatible endpoint for the vision model")
    if config.summary_llm and llm is None:
        raise BadInput("summary_llm needs an LLM backend")
    segments = extract_segments(videos, store, config.sources, device=device)
    local_ex = Extractor("llm-metadata.local", {"max_important_scenes": config.max_important_scenes},
                         METADATA_VERSION)
    sum_ex = vlm_ex = None
    if config.summary_llm and llm is not None:
        sum_ex = Extractor("llm-metadata.summary", {**_llm_identity(llm),
                                                    "max_new_tokens": config.summary_max_new_tokens},
                           METADATA_VERSION)
    if config.extractor == "vlm" and vlm is not None:
        vlm_ex = Extractor("llm-metadata.vlm", {
            **_llm_identity(vlm), "fps": config.vlm_fps, "frames_per_call": config.vlm_frames_per_call,
            "short_side": config.vlm_short_side, "max_new_tokens": config.vlm_max_new_tokens,
        }, METADATA_VERSION)
    out = ExtractedMetadata(metadata={})
    for video in tqdm(videos, desc="llm-metadata", unit="video", leave=False):
        path = video.resolve(None)
        if path is None or not path.is_file():
            out.errors[video.vid] = f"no metadata: video file not found ({video.path})"
            continue
        try:
            video_id = store.video_id(path)
            duration = _duration(store, video_id, path)
        except BadInput as exc:
            out.errors[video.vid] = f"no metadata: {exc}"
            continue
        segs = segments.get(video.vid, [])
        rows = [{k: v for k, v in seg.to_row().items() if k != "vid"} for seg in segs]

        def local(video: Video = video, duration: float = duration,
                  segs: list[Segment] = segs) -> dict[str, Any]:
            meta = metadata_from_segments(video.vid, duration, segs,
                                          max_important_scenes=config.max_important_scenes)
            return {"metadata": meta.model_dump(), "rendered": render_metadata(meta)}

        obj = _stage(store, video_id, local_ex, _digest([duration, rows]), local)
        meta = VideoMetadata.model_validate(obj["metadata"]).model_copy(update={"vid": video.vid})
        if sum_ex is not None and llm is not None:
            body = render_metadata(meta, sections=("visual_info", "transcription", "texts"))
            try:
                got = _stage(store, video_id, sum_ex, _digest(body),
                             functools.partial(llm_summary, meta, llm, config))
                meta = _with_summary(meta, got)
            except ExtractionFailed as exc:
                out.errors[video.vid] = f"{exc}; the fixed-form summary is used"
                log.warning("%s", out.errors[video.vid])
        if vlm_ex is not None and vlm is not None:
            try:
                got = _stage(store, video_id, vlm_ex, "frames",
                             functools.partial(_vlm_stage, path, meta, vlm, config))
                meta = merge_vlm_parts(meta, [_part_from(d) for d in got["parts"]],
                                       _portable(vlm.backend.model))
            except ExtractionFailed as exc:
                out.errors[video.vid] = f"{exc}; the text-side metadata is used"
                log.warning("%s", out.errors[video.vid])
        out.metadata[video.vid] = meta
    return out


def _vlm_stage(path: Path, meta: VideoMetadata, client: LLMClient, config: MetadataConfig) -> dict[str, Any]:
    return {"parts": [_part_dict(p) for p in vlm_describe(path, meta, client, config)]}


def _with_summary(meta: VideoMetadata, obj: Any) -> VideoMetadata:
    return meta.model_copy(update={
        "summary": obj["summary"],
        "important_scenes": ([Entry.model_validate(e) for e in obj["important_scenes"]]
                             or meta.important_scenes),
        "sources": [*(s for s in meta.sources if not s.startswith("summary:")), "summary:llm"]})


def _part_dict(p: VlmPart) -> dict[str, Any]:
    return {"start_s": p.start_s, "end_s": p.end_s, "summary": p.summary,
            **{k: [e.model_dump() for e in getattr(p, k)]
               for k in ("important_scenes", "visual_info", "texts", "transcription")}}


def _part_from(d: dict[str, Any]) -> VlmPart:
    return VlmPart(start_s=float(d["start_s"]), end_s=float(d["end_s"]), summary=str(d["summary"]),
                   **{k: [Entry.model_validate(e) for e in d.get(k, [])]
                      for k in ("important_scenes", "visual_info", "texts", "transcription")})
