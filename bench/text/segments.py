"""Timestamped text from every source (speech, on-screen text, captions, subtitles).

One segment type for all sources, so BM25, dense retrieval and the LLM metadata share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Source = Literal["speech", "ocr", "caption", "subtitle"]
SOURCES: tuple[Source, ...] = ("speech", "ocr", "caption", "subtitle")


@dataclass(frozen=True)
class Segment:
    """Text visible or audible in ``[start, end]`` seconds of video ``vid``."""

    vid: str
    start: float
    end: float
    source: Source
    text: str
    lang: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Source-specific details: OCR boxes, ASR confidence, speaker, caption model."""

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Segment:
        return cls(vid=row["vid"], start=float(row["start"]), end=float(row["end"]),
                   source=row["source"], text=row["text"], lang=row.get("lang"),
                   meta=dict(row.get("meta") or {}))


def sort_segments(segments: Iterable[Segment]) -> list[Segment]:
    return sorted(segments, key=lambda s: (s.vid, s.start, s.end, s.source, s.text))
