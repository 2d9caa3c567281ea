"""Typed evidence: why a moment matched (frames, clips, text lines, an LLM's scene, fused
members). Each kind describes itself in one line for the Space and as a dict for ``--json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable


def fmt_ts(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` past an hour); negative times read as ``00:00``."""
    total = max(0, int(round(seconds)))
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def fmt_window(start: float, end: float) -> str:
    return f"{fmt_ts(start)}-{fmt_ts(end)}"


def _num(value: float) -> str:
    return f"{value:.3g}"


def _clean(text: str) -> str:
    return " ".join(str(text).split())


def _listed(label: str, items: list[str], per_list: int, sep: str = "; ") -> str:
    shown = [x for x in items[:per_list] if x]
    more = f" (+{len(items) - per_list})" if len(items) > per_list else ""
    return f"{label}: " + sep.join(shown) + more


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _noted(out: dict[str, Any], notes: tuple[str, ...]) -> dict[str, Any]:
    # Only moments that carry a note get the key, so other moments keep their shape.
    if notes:
        out["notes"] = list(notes)
    return out


@runtime_checkable
class Evidence(Protocol):
    """Why a moment matched. ``method`` names the code that found it."""

    @property
    def method(self) -> str: ...

    def describe(self, per_list: int = 3) -> str:
        """One readable line (uncut; callers cut it with :func:`cut`)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``search --json``)."""
        ...


@dataclass(frozen=True)
class NoEvidence:
    """A moment that carries no explanation (e.g. a hand-made one in a test or a baseline)."""

    method: str = "none"
    note: str = ""

    def describe(self, per_list: int = 3) -> str:
        return _clean(self.note)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **({"note": self.note} if self.note else {})}


@dataclass(frozen=True)
class FrameMatch:
    t_s: float
    score: float


@dataclass(frozen=True)
class FrameEvidence:
    """The best sampled frames inside the moment (time order) and the best one's time."""

    frames: tuple[FrameMatch, ...]
    peak_s: float | None
    method: str = "clip-frames"
    notes: tuple[str, ...] = ()
    """Why the moment's extent is only the evidence's own (e.g. no shot boundaries found)."""

    def describe(self, per_list: int = 3) -> str:
        if not self.frames:
            return ""
        best = sorted(self.frames, key=lambda f: -f.score)
        parts = [_listed("frames", [f"{fmt_ts(f.t_s)} ({_num(f.score)})" for f in best], per_list, ", ")]
        if self.peak_s is not None:
            parts.append(f"peak: {fmt_ts(self.peak_s)}")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return _noted({"method": self.method, "frames": [{"t": f.t_s, "score": f.score} for f in self.frames],
                       "peak_s": self.peak_s}, self.notes)


@dataclass(frozen=True)
class ClipMatch:
    start_s: float
    end_s: float
    score: float


@dataclass(frozen=True)
class ClipEvidence:
    """The best clips (windows of frames) inside the moment, in time order; ``plain_score`` is
    the clip cosine before the video-conditioned re-scoring (``None`` when not re-scored)."""

    clips: tuple[ClipMatch, ...]
    reranked: bool = False
    plain_score: float | None = None
    ranked: tuple[tuple[int, float], ...] = field(default=(), compare=False, repr=False)
    """Every clip inside the moment as (clip index in its video, score), best first: what
    the re-scoring reads; not shown."""
    method: str = "xclip-clips"
    notes: tuple[str, ...] = ()
    """Why the moment's extent is only the evidence's own (e.g. no shot boundaries found)."""

    def describe(self, per_list: int = 3) -> str:
        if not self.clips:
            return ""
        text = _listed("clips", [f"{fmt_window(c.start_s, c.end_s)} ({_num(c.score)})" for c in self.clips],
                       per_list, ", ")
        if self.plain_score is not None:
            text += f" · plain score: {_num(self.plain_score)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method,
                               "clips": [{"start": c.start_s, "end": c.end_s, "score": c.score}
                                         for c in self.clips],
                               "reranked": self.reranked}
        if self.plain_score is not None:
            out["plain_score"] = self.plain_score
        return _noted(out, self.notes)


@dataclass(frozen=True)
class Snippet:
    """A timestamped line of text (speech, on-screen text, caption, subtitle) that matched."""

    start_s: float
    end_s: float
    source: str
    text: str
    terms: tuple[str, ...] | None = None
    """Query terms the line contains (lexical matching)."""
    similarity: float | None = None
    """Cosine similarity of the line and the query (dense matching)."""
    note: str | None = None
    """What is uncertain about the line, e.g. the language its speech was read in."""

    def describe(self) -> str:
        note = f" ({_clean(self.note)})" if self.note else ""
        return f"[{fmt_ts(self.start_s)} {self.source}] {_clean(self.text)}{note}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": self.start_s, "end": self.end_s, "source": self.source,
                               "text": self.text}
        if self.terms is not None:
            out["terms"] = list(self.terms)
        if self.similarity is not None:
            out["similarity"] = self.similarity
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class TextEvidence:
    """Matched lines of timestamped text, in time order (``bm25`` or ``dense``)."""

    method: str
    snippets: tuple[Snippet, ...]
    terms: tuple[str, ...] | None = None
    """Query terms found (lexical matching)."""
    model: str | None = None
    """Sentence encoder (dense matching)."""
    notes: tuple[str, ...] = ()
    """Why the moment's extent is only the evidence's own (e.g. no shot boundaries found)."""

    def describe(self, per_list: int = 3) -> str:
        parts = []
        if self.terms:
            parts.append("terms: " + ", ".join(self.terms))
        if self.snippets:
            parts.append(_listed("snippets", [s.describe() for s in self.snippets], per_list))
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.model is not None:
            out["model"] = self.model
        if self.terms is not None:
            out["terms"] = list(self.terms)
        out["snippets"] = [s.to_dict() for s in self.snippets]
        return _noted(out, self.notes)


@dataclass(frozen=True)
class SceneEvidence:
    """A scene an LLM returned from the video's metadata: its description, the metadata lines
    it cited, its confidence; ``chunk`` is the part of the video shown when the metadata was
    cut into chunks; ``file_weight`` scales the score by the file-level retrieval."""

    description: str
    evidence: tuple[str, ...] = ()
    confidence: float | None = None
    timestamp: str | None = None
    rank: int | None = None
    model: str = ""
    chunk: str | None = None
    file_weight: float | None = None
    method: str = "llm-metadata"
    notes: tuple[str, ...] = ()
    """Why the moment's extent is only the evidence's own (e.g. no shot boundaries found)."""

    def describe(self, per_list: int = 3) -> str:
        parts = []
        if self.description.strip():
            parts.append(f"description: {_clean(self.description)}")
        if self.evidence:
            parts.append(_listed("evidence", [_clean(e) for e in self.evidence], per_list, ", "))
        if self.confidence is not None:
            parts.append(f"confidence: {_num(self.confidence)}")
        if self.chunk:
            parts.append(f"chunk: {self.chunk}")
        if self.file_weight is not None:
            parts.append(f"file weight: {_num(self.file_weight)}")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "description": self.description,
                               "evidence": list(self.evidence), "confidence": self.confidence,
                               "timestamp": self.timestamp, "rank": self.rank, "model": self.model}
        if self.chunk is not None:
            out["chunk"] = self.chunk
        if self.file_weight is not None:
            out["file_weight"] = self.file_weight
        return _noted(out, self.notes)


@dataclass(frozen=True)
class ImpressionEvidence:
    """How a moment feels: the wanted axis values, the moment's estimated ones (mean over its
    windows) and which senses the estimate rests on (music and picture, or picture only)."""

    wanted: Mapping[str, float]
    estimated: Mapping[str, float]
    basis: str
    """``music+picture``, or why it is the picture alone (no audio track, silence)."""
    words: tuple[str, ...] = ()
    method: str = "impression"
    notes: tuple[str, ...] = ()

    def describe(self, per_list: int = 3) -> str:
        axes = list(self.wanted)[:per_list]
        parts = [", ".join(f"{a} {self.estimated.get(a, 0.0):+.1f} (wanted {self.wanted[a]:+.1f})"
                           for a in axes)]
        if self.words:
            parts.append("mood: " + "/".join(self.words[:per_list]))
        parts.append(self.basis)
        parts += list(self.notes)
        return " · ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        return _noted({"method": self.method, "wanted": dict(self.wanted),
                       "estimated": dict(self.estimated), "basis": self.basis,
                       "words": list(self.words)}, self.notes)


@dataclass(frozen=True)
class MemberMatch:
    """One fusion member's moment inside a fused moment."""

    rank: int
    score: float
    start_s: float
    end_s: float
    evidence: Evidence

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "score": self.score, "start": self.start_s, "end": self.end_s,
                "evidence": self.evidence.to_dict()}


@dataclass(frozen=True)
class FusedEvidence:
    """The members that agreed on a fused moment, by name, with their own evidence."""

    fusion: str
    members: Mapping[str, MemberMatch] = field(default_factory=dict)
    method: str = "fusion"
    notes: tuple[str, ...] = ()
    """Why the moment's extent is only the evidence's own (e.g. no shot boundaries found)."""

    def describe(self, per_list: int = 3) -> str:
        ranked = sorted(self.members.items(), key=lambda kv: kv[1].rank)
        parts = ["agreed: " + ", ".join(f"{name} #{m.rank}" for name, m in ranked)] if ranked else []
        for _, m in ranked:  # the best-ranked member that can say why
            if text := m.evidence.describe(per_list):
                parts.append(text)
                break
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        members = {name: m.to_dict() for name, m in sorted(self.members.items())}
        return _noted({"method": self.method, "fusion": self.fusion, "members": members}, self.notes)


def with_note(evidence: Evidence, note: str) -> Evidence:
    """``evidence`` with ``note`` added to its notes (shown by ``describe`` and ``to_dict``)."""
    if isinstance(evidence, NoEvidence):
        return replace(evidence, note="; ".join(x for x in (evidence.note, note) if x))
    notes = getattr(evidence, "notes", None)
    if not isinstance(notes, tuple) or note in notes:
        return evidence
    return replace(evidence, notes=(*notes, note))  # type: ignore[type-var]
