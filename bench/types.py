"""Core data model: videos, labelled queries, query sets, moments and predictions.

Times are seconds as floats everywhere. Row parsing is strict: a bad row raises
:class:`~bench.errors.BadInput` naming the file, line, field and the rule it broke.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BadInput
from bench.evidence import Evidence, NoEvidence

SCHEMA_VERSION = 1
"""Version of the on-disk query-set and prediction formats (bumped on breaking change)."""

QID = int | str
KNOWN_TAGS = frozenset({"speech", "onscreen-text", "visual", "audio", "multi", "subtitle"})


class RowError(BadInput):
    """A row of a JSONL/CSV file broke a rule; the message names where and what."""

    def __init__(self, where: str, field_name: str | None, rule: str) -> None:
        self.where = where
        self.field_name = field_name
        self.rule = rule
        part = f" field '{field_name}':" if field_name else ""
        super().__init__(f"{where}:{part} {rule}")


def _where(source: str | Path | None, line: int | None) -> str:
    src = str(source) if source is not None else "<row>"
    return f"{src}:{line}" if line is not None else src


def _number(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowError(where, name, f"must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise RowError(where, name, f"must be finite, got {value!r}")
    return out


def _text(value: Any, where: str, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise RowError(where, name, f"must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise RowError(where, name, "must not be empty")
    return value


def _qid(value: Any, where: str) -> QID:
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise RowError(where, "qid", f"must be a non-empty string or an integer, got {value!r}")
    return value


def parse_windows(
    value: Any, where: str, name: str, duration: float | None
) -> list[tuple[float, float]]:
    """Validate ``[[start, end], ...]``; clip to ``[0, duration]``. ``end <= start`` is an
    error, and so is a window entirely outside the video (ending at or before 0, starting at
    or past the duration): clipping it would score an empty window."""
    if not isinstance(value, list):
        raise RowError(where, name, f"must be a list of [start, end] pairs, got {value!r}")
    out: list[tuple[float, float]] = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list | tuple) or len(pair) < 2:
            raise RowError(where, f"{name}[{i}]", f"must be [start, end], got {pair!r}")
        start = _number(pair[0], where, f"{name}[{i}][0]")
        end = _number(pair[1], where, f"{name}[{i}][1]")
        if end <= start:
            raise RowError(where, f"{name}[{i}]", f"end <= start ({start:g} >= {end:g}); fix or drop it")
        if end <= 0:
            raise RowError(where, f"{name}[{i}]",
                           f"ends at {end:g}s, at or before the start of the video; fix or drop it")
        if start < 0:
            start = 0.0
        if duration is not None:
            if start >= duration:
                raise RowError(
                    where, f"{name}[{i}]", f"starts at {start:g}s, past the duration {duration:g}s"
                )
            end = min(end, duration)
        out.append((start, end))
    return out


@dataclass(frozen=True)
class Video:
    """One video of a query set. ``path`` is relative to the set's root, absolute, or a URL."""

    vid: str
    path: str | None = None
    duration: float | None = None
    subtitles: str | None = None
    lang: str | None = None

    def resolve(self, root: Path | None) -> Path | None:
        """Return the local file path of the video (``None`` for URLs or no path)."""
        if self.path is None or "://" in self.path:
            return None
        p = Path(self.path)
        return p if p.is_absolute() or root is None else root / p

    def resolve_subtitles(self, root: Path | None) -> Path | None:
        if self.subtitles is None:
            return None
        p = Path(self.subtitles)
        return p if p.is_absolute() or root is None else root / p

    @classmethod
    def from_row(cls, row: Mapping[str, Any], source: str | Path | None = None,
                 line: int | None = None) -> Video:
        where = _where(source, line)
        if not isinstance(row, Mapping):
            raise RowError(where, None, f"must be a JSON object, got {type(row).__name__}")
        if "vid" not in row:
            raise RowError(where, "vid", "is required")
        vid = _text(row["vid"], where, "vid")
        path = row.get("path")
        if path is not None:
            path = _text(path, where, "path")
        duration = row.get("duration")
        if duration is not None:
            duration = _number(duration, where, "duration")
            if duration <= 0:
                raise RowError(where, "duration", f"must be > 0 seconds, got {duration:g}")
        subs = row.get("subtitles")
        if subs is not None:
            subs = _text(subs, where, "subtitles")
        lang = row.get("lang")
        if lang is not None:
            lang = _text(lang, where, "lang")
        return cls(vid=vid, path=path, duration=duration, subtitles=subs, lang=lang)

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"vid": self.vid, "path": self.path, "duration": self.duration}
        if self.subtitles is not None:
            row["subtitles"] = self.subtitles
        if self.lang is not None:
            row["lang"] = self.lang
        return row


ABSENT_TAG = "absent"
"""A query with this tag has nothing to find (``relevant_windows: []``): a search should say so."""


@dataclass
class Query:
    """A labelled query. ``vid=None`` makes it a corpus query (find the video and the time)."""

    qid: QID
    query: str
    vid: str | None
    duration: float | None
    relevant_windows: list[tuple[float, float]]
    lang: str | None = None
    tags: list[str] = field(default_factory=list)
    query_image: str | None = None
    relevant_clip_ids: list[int] | None = None
    saliency_scores: list[list[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_corpus(self) -> bool:
        return self.vid is None

    @property
    def is_absent(self) -> bool:
        """Labelled as having no answer (tag ``absent``): scored by ``false_alarm``, not R1."""
        return ABSENT_TAG in self.tags and not self.relevant_windows

    @classmethod
    def from_row(cls, row: Mapping[str, Any], source: str | Path | None = None,
                 line: int | None = None) -> Query:
        where = _where(source, line)
        if not isinstance(row, Mapping):
            raise RowError(where, None, f"must be a JSON object, got {type(row).__name__}")
        for name in ("qid", "query"):
            if name not in row:
                raise RowError(where, name, "is required")
        qid = _qid(row["qid"], where)
        text = _text(row["query"], where, "query", allow_empty="query_image" in row)
        vid = row.get("vid")
        if vid is not None:
            vid = _text(vid, where, "vid")
        duration = row.get("duration")
        if duration is not None:
            duration = _number(duration, where, "duration")
            if duration <= 0:
                raise RowError(where, "duration", f"must be > 0 seconds, got {duration:g}")
        windows = parse_windows(row.get("relevant_windows", []), where, "relevant_windows",
                                duration)
        truth = row.get("truth_vid")
        if truth is not None:
            _text(truth, where, "truth_vid")
        elif vid is None and windows:
            # Scoring a corpus query needs the video its windows are in; say so here, by line.
            raise RowError(where, "truth_vid", "is required for a corpus query (no 'vid') with "
                           "relevant_windows: the vid of the video those windows are in")
        lang = row.get("lang")
        if lang is not None:
            lang = _text(lang, where, "lang")
        tags = row.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            raise RowError(where, "tags", f"must be a list of non-empty strings, got {tags!r}")
        if ABSENT_TAG in tags and windows:
            raise RowError(where, "relevant_windows", f"must be [] for a query tagged "
                           f"'{ABSENT_TAG}' (its answer is nowhere); drop the tag or the windows")
        image = row.get("query_image")
        if image is not None:
            image = _text(image, where, "query_image")
        clip_ids = row.get("relevant_clip_ids")
        if clip_ids is not None and (
            not isinstance(clip_ids, list)
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in clip_ids)
        ):
            raise RowError(where, "relevant_clip_ids", "must be a list of integers")
        saliency = row.get("saliency_scores")
        if saliency is not None:
            if not isinstance(saliency, list) or not all(isinstance(s, list) for s in saliency):
                raise RowError(where, "saliency_scores", "must be a list of lists of integers")
            if clip_ids is not None and len(saliency) != len(clip_ids):
                raise RowError(
                    where, "saliency_scores",
                    f"has {len(saliency)} rows but relevant_clip_ids has {len(clip_ids)}",
                )
        known = {"qid", "query", "vid", "duration", "relevant_windows", "lang", "tags",
                 "query_image", "relevant_clip_ids", "saliency_scores"}
        extra = {k: v for k, v in row.items() if k not in known}
        return cls(qid=qid, query=text, vid=vid, duration=duration, relevant_windows=windows,
                   lang=lang, tags=list(tags), query_image=image, relevant_clip_ids=clip_ids,
                   saliency_scores=saliency, extra=extra)

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "qid": self.qid, "query": self.query, "vid": self.vid, "duration": self.duration,
            "relevant_windows": [[s, e] for s, e in self.relevant_windows],
        }
        if self.lang is not None:
            row["lang"] = self.lang
        if self.tags:
            row["tags"] = list(self.tags)
        if self.query_image is not None:
            row["query_image"] = self.query_image
        if self.relevant_clip_ids is not None:
            row["relevant_clip_ids"] = list(self.relevant_clip_ids)
        if self.saliency_scores is not None:
            row["saliency_scores"] = [list(s) for s in self.saliency_scores]
        row.update(self.extra)
        return row


@dataclass
class QuerySet:
    """A labelled set: videos by vid and the queries over them. ``root`` resolves video paths."""

    name: str
    videos: dict[str, Video]
    queries: list[Query]
    root: Path | None = None
    split: str = "test"
    card: str | None = None

    def video_path(self, vid: str) -> Path | None:
        video = self.videos.get(vid)
        return None if video is None else video.resolve(self.root)

    def validate(self, source: str | Path | None = None) -> None:
        """Cross-row checks: unique qids, known vids, windows within the video's duration."""
        seen: dict[QID, int] = {}
        for i, q in enumerate(self.queries, start=1):
            where = _where(source, i)
            if q.qid in seen:
                raise RowError(where, "qid", f"duplicate qid {q.qid!r} (first on line {seen[q.qid]})")
            seen[q.qid] = i
            if q.vid is not None and self.videos and q.vid not in self.videos:
                raise RowError(where, "vid", f"unknown vid {q.vid!r}: not in videos.jsonl")
            truth = q.extra.get("truth_vid") if q.vid is None else None
            if isinstance(truth, str) and self.videos and truth not in self.videos:
                raise RowError(where, "truth_vid", f"unknown vid {truth!r}: not in videos.jsonl")
            in_vid = q.vid if q.vid is not None else (truth if isinstance(truth, str) else None)
            video = self.videos.get(in_vid) if in_vid is not None else None
            duration = q.duration if q.duration is not None else (video.duration if video else None)
            if duration is not None:
                for s, _ in q.relevant_windows:
                    if s >= duration:
                        raise RowError(where, "relevant_windows",
                                       f"starts at {s:g}s, past the duration {duration:g}s")


def check_utf8(text: str, what: str) -> str:
    """``text`` if it can be written as UTF-8, else BadInput naming ``what``. Undecodable
    bytes in command-line arguments reach Python as lone surrogates, which would otherwise
    be echoed raw into JSON output and result files."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(text[exc.start])
        byte = f"byte 0x{bad - 0xDC00:02x}" if 0xDC80 <= bad <= 0xDCFF else f"code point U+{bad:04X}"
        raise BadInput(f"{what} is not valid UTF-8 ({byte} at character {exc.start + 1}); "
                       "give the text in UTF-8") from None
    return text


@dataclass
class QueryInput:
    """What a retriever is asked: text, an example image, or both."""

    text: str | None = None
    image: str | None = None
    lang: str | None = None
    qid: QID | None = None

    def __post_init__(self) -> None:
        if self.text is not None:
            check_utf8(self.text, "the query" if self.qid is None else f"query {self.qid!r}")

    @classmethod
    def from_query(cls, q: Query, root: Path | None = None) -> QueryInput:
        image = q.query_image
        if image is not None and root is not None and not Path(image).is_absolute():
            image = str(root / image)
        return cls(text=q.query or None, image=image, lang=q.lang, qid=q.qid)


@dataclass
class Moment:
    """A retrieved moment: a window in one video with a score and the evidence for it."""

    vid: str
    start: float
    end: float
    score: float
    evidence: Evidence = field(default_factory=NoEvidence)
    confident: bool | None = None
    """Whether the score passes the configuration's calibrated threshold; ``None`` when the
    configuration has no threshold (the moment is shown, flagged as uncalibrated)."""

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Prediction:
    """One query's prediction, in the QVHighlights submission format plus corpus mode."""

    qid: QID
    query: str
    vid: str | None
    pred_relevant_windows: list[list[float]]
    pred_saliency_scores: list[float] | None = None
    pred_moments: list[list[Any]] | None = None

    @classmethod
    def from_moments(cls, query: Query, moments: Sequence[Moment]) -> Prediction:
        ranked = sorted(moments, key=lambda m: -m.score)
        if query.vid is not None:
            windows = [[m.start, m.end, m.score] for m in ranked if m.vid == query.vid]
            return cls(qid=query.qid, query=query.query, vid=query.vid,
                       pred_relevant_windows=windows)
        return cls(
            qid=query.qid, query=query.query, vid=ranked[0].vid if ranked else None,
            pred_relevant_windows=[[m.start, m.end, m.score] for m in ranked if m.vid == ranked[0].vid],
            pred_moments=[[m.vid, m.start, m.end, m.score] for m in ranked],
        )

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"qid": self.qid, "query": self.query, "vid": self.vid,
                               "pred_relevant_windows": self.pred_relevant_windows}
        if self.pred_saliency_scores is not None:
            row["pred_saliency_scores"] = self.pred_saliency_scores
        if self.pred_moments is not None:
            row["pred_moments"] = self.pred_moments
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any], source: str | Path | None = None,
                 line: int | None = None) -> Prediction:
        where = _where(source, line)
        if not isinstance(row, Mapping):
            raise RowError(where, None, f"must be a JSON object, got {type(row).__name__}")
        if "qid" not in row:
            raise RowError(where, "qid", "is required")
        qid = _qid(row["qid"], where)
        windows = row.get("pred_relevant_windows", [])
        if not isinstance(windows, list):
            raise RowError(where, "pred_relevant_windows", "must be a list of [start, end, score]")
        for i, w in enumerate(windows):
            if not isinstance(w, list | tuple) or len(w) != 3:
                raise RowError(where, f"pred_relevant_windows[{i}]",
                               f"must be [start, end, score], got {w!r}")
            for j, x in enumerate(w):
                _number(x, where, f"pred_relevant_windows[{i}][{j}]")
        saliency = row.get("pred_saliency_scores")
        if saliency is not None and not isinstance(saliency, list):
            raise RowError(where, "pred_saliency_scores", "must be a list of numbers")
        moments = row.get("pred_moments")
        if moments is not None and not isinstance(moments, list):
            raise RowError(where, "pred_moments", "must be a list of [vid, start, end, score]")
        return cls(qid=qid, query=str(row.get("query", "")), vid=row.get("vid"),
                   pred_relevant_windows=[list(map(float, w)) for w in windows],
                   pred_saliency_scores=saliency, pred_moments=moments)
