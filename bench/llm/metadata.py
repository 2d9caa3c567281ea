"""Per-video metadata for LLM scene search: its five timestamped sections, how it is made
(:class:`MetadataConfig`) and how it reads as text, whole or cut to a token budget.

``[summary]``, ``[important scenes]``, ``[visual info]`` (frame captions), ``[transcription]``
(speech or subtitles, with speakers when known) and ``[texts]`` (on-screen text with its
position). Assembled from the text side by :mod:`bench.llm.metadata_local`, written by models
in :mod:`bench.llm.metadata_describe`, cached per video by :mod:`bench.llm.metadata_extract`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bench.errors import BadInput
from bench.llm.parsing import format_range, uses_hours
from bench.text.extract import TextSources

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


# --------------------------------------------------------------------------- settings

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


# --------------------------------------------------------------------------- rendering

def one_line(text: str, limit: int = MAX_ENTRY_CHARS) -> str:
    """``text`` with its whitespace runs made single spaces, cut to ``limit`` characters (``…``)."""
    # One entry per line, so data can never start a line of its own (no forged headers).
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def _entry_line(section: str, e: Entry, hours: bool) -> str:
    stamp = format_range(e.start_s, e.end_s, hours=hours)
    text = one_line(e.text)
    if section == "transcription" and e.speaker:
        return f"{stamp} {one_line(e.speaker, 60)}: {text}"
    if section == "texts":
        where = f" ({one_line(e.position, 40)})" if e.position else ""
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
            text = one_line(meta.summary, 2000)
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

