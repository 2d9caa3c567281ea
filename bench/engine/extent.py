"""Moments with the right extent: a hit (a proposed window, an LLM scene) becomes candidates at
several granularities (shot, scene, speech turn, text segment, its own extent), and the
preferred one that the evidence supports wins.

Units come from :class:`Boundaries`: shots from the feature store (``bench.store.shots``),
scenes (shots merged where speech or on-screen text runs on across the cut), speech turns
(speech segments merged across short pauses) and segments (lines of speech or subtitles).
A unit that shows two different on-screen texts one after the other is refused: it holds two
scenes that shot detection did not tell apart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bench.errors import Unavailable
from bench.spans import Window, temporal_iou
from bench.text.ocr import normalize_text
from bench.text.segments import Segment
from bench.video.shots import ShotConfig, Shots

if TYPE_CHECKING:
    from bench.store import FeatureStore
    from bench.types import Video

log = logging.getLogger("bench")

Granularity = Literal["scene", "shot", "turn", "segment", "curve"]
Span = tuple[float, float]
DEFAULT_USE: tuple[Granularity, ...] = ("scene", "shot", "curve")

NO_SHOTS = "no shot boundaries for this video (it could not be decoded for shot detection)"
NO_CUTS = "no cut found: the video is one shot"


class ExtentConfig(BaseModel):
    """How a hit's extent is chosen (the ``extent`` block of a family's params).

    For each hit the granularities in ``use`` are tried in order; a granularity offers the
    union of its units that overlap the hit substantially (``min_overlap``), and is taken
    when that union is at most ``max_stretch`` times as long as the hit, so that snapping
    never turns a short action in a long shot into the whole shot. When none fits, the hit
    keeps its own extent (``curve``). ``use: [curve]`` turns snapping off.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    use: list[Granularity] = Field(default_factory=lambda: list(DEFAULT_USE))
    """Granularities in order of preference; ``curve`` (the hit's own extent) ends the list
    implicitly when it is left out. Speech turns are left out by default: on synthetic-v1
    they never beat the shot, and alone they cut moments shorter than what is marked."""
    max_stretch: float = Field(default=2.5, ge=1.0)
    """A unit may be at most this many times as long as the hit it replaces."""
    min_hit_s: float = Field(default=2.0, gt=0)
    """Hits shorter than this count as this long when ``max_stretch`` is applied."""
    min_overlap: float = Field(default=0.5, gt=0, le=1)
    """A unit belongs to a hit when they share at least this fraction of the shorter one."""
    min_cover: float = Field(default=0.75, gt=0, le=1)
    """The units taken must cover at least this fraction of the hit: snapping widens a
    moment to its unit, it never cuts away most of the evidence."""
    turn_gap_s: float = Field(default=1.0, ge=0)
    """Speech segments at most this far apart (and not across a cut) are one turn."""
    span_tolerance_s: float = Field(default=0.5, ge=0)
    """Speech or on-screen text running this far past a cut on both sides joins its shots into
    one scene."""
    telop_guard: bool = True
    """Refuse a unit that shows two different on-screen texts one after the other (OCR) unless
    the hit covers half of each, and join no shots into such a scene: a missed cut (a
    dissolve) left two scenes in one shot, or narration runs on across the cut between them,
    and the other scene is not what the hit found."""
    telop_match: float = Field(default=0.8, gt=0, le=1)
    """On-screen texts at least this similar (normalised, difflib ratio) are the same telop
    read twice (OCR noise), not two."""
    shots: ShotConfig = Field(default_factory=ShotConfig)
    """How shots are detected (stored per video under these parameters)."""

    @field_validator("use")
    @classmethod
    def _use(cls, value: list[Granularity]) -> list[Granularity]:
        if len(set(value)) != len(value):
            raise ValueError(f"lists a granularity twice: {value}")
        return value

    @property
    def order(self) -> list[Granularity]:
        return self.use if "curve" in self.use else [*self.use, "curve"]

    @property
    def needs_shots(self) -> bool:
        order = self.order
        return any(g in order[:order.index("curve")] for g in ("shot", "scene", "turn"))


@dataclass
class Boundaries:
    """The units of one video, each a list of ``(start_s, end_s)`` in time order, and notes
    on what is missing (shown in the evidence of moments that needed it)."""

    duration_s: float
    units: dict[Granularity, list[Span]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    telops: list[tuple[float, float, str]] = field(default_factory=list)
    """On-screen texts (OCR segments) as ``(start_s, end_s, normalised text)``, in time order."""


def speech_turns(segments: Sequence[Segment], cuts_s: Sequence[float], gap_s: float) -> list[Span]:
    """Speech segments merged while the pause between them is at most ``gap_s`` and holds no cut."""
    turns: list[Span] = []
    for s in sorted((s for s in segments if s.source == "speech"), key=lambda s: s.start):
        close = bool(turns) and s.start - turns[-1][1] <= gap_s
        if close and not any(turns[-1][1] <= c <= s.start for c in cuts_s):
            turns[-1] = (turns[-1][0], max(turns[-1][1], s.end))
        else:
            turns.append((s.start, s.end))
    return turns


def merge_scenes(shots: Sequence[Span], segments: Sequence[Segment], tolerance_s: float,
                 telop_match: float | None = None) -> list[Span]:
    """Adjacent shots joined into scenes where a line of speech or the same on-screen text
    runs on across their cut by at least ``tolerance_s`` on both sides; with ``telop_match``,
    never where the joined scene would show two different on-screen texts one after the other
    (narration running over a dissolve between two captioned scenes)."""
    if not shots:
        return []
    text = [s for s in segments if s.source in ("speech", "ocr", "subtitle")]
    telops = ocr_telops(segments) if telop_match is not None else []
    scenes = [shots[0]]
    for start, end in shots[1:]:
        cut = start
        joined = any(s.start <= cut - tolerance_s and s.end >= cut + tolerance_s for s in text)
        if joined and telop_match is not None:
            joined = not telop_pairs((scenes[-1][0], end), telops, telop_match)
        if joined:
            scenes[-1] = (scenes[-1][0], end)
        else:
            scenes.append((start, end))
    return scenes


def build_boundaries(duration_s: float, shots: Shots | None, segments: Sequence[Segment],
                     config: ExtentConfig) -> Boundaries:
    """Every unit of one video from its shots (``None`` when they could not be found) and
    its text segments."""
    out = Boundaries(duration_s)
    cuts = shots.cuts_s if shots is not None else []
    if shots is None:
        out.notes.append(NO_SHOTS)
    elif not shots.spans()[1:]:
        # One shot is the whole video: snapping to it would make every moment the video.
        out.notes.append(NO_CUTS)
    else:
        spans = shots.spans()
        out.units["shot"] = spans
        out.units["scene"] = merge_scenes(spans, segments, config.span_tolerance_s,
                                          config.telop_match if config.telop_guard else None)
    out.units["turn"] = speech_turns(segments, cuts, config.turn_gap_s)
    out.units["segment"] = sorted((s.start, s.end) for s in segments if s.source in ("speech", "subtitle")
                                  and s.end > s.start)
    out.telops = ocr_telops(segments)
    return out


def ocr_telops(segments: Sequence[Segment]) -> list[tuple[float, float, str]]:
    """On-screen texts as ``(start_s, end_s, normalised text)``, in time order."""
    return sorted((s.start, s.end, normalize_text(s.text)) for s in segments
                  if s.source == "ocr" and s.end > s.start and s.text.strip())


def telop_pairs(unit: Span, telops: Sequence[tuple[float, float, str]],
                match: float) -> list[tuple[Span, Span]]:
    """Pairs of different on-screen texts that ``unit`` shows one after the other: each mostly
    inside it, overlapping each other by less than half the shorter (two lines shown together
    are one picture), and less alike than ``match`` (the same telop read twice with OCR noise
    is one)."""
    import difflib

    inside = [t for t in telops if _overlap(unit, t[:2]) >= 0.5 * (t[1] - t[0])]
    pairs = []
    for i, a in enumerate(inside):
        for b in inside[i + 1:]:
            if _overlap(a[:2], b[:2]) >= 0.5 * min(a[1] - a[0], b[1] - b[0]):
                continue
            if a[2] == b[2] or difflib.SequenceMatcher(None, a[2], b[2]).ratio() >= match:
                continue
            pairs.append(((a[0], a[1]), (b[0], b[1])))
    return pairs


def splits_telops(unit: Span, hit: Span, telops: Sequence[tuple[float, float, str]],
                  match: float) -> bool:
    """Whether ``unit`` shows two different on-screen texts one after the other (see
    :func:`telop_pairs`) of which ``hit`` does not cover at least half of each: the unit then
    reaches into a scene the hit did not find."""
    return any(_overlap(hit, a) < 0.5 * (a[1] - a[0]) or _overlap(hit, b) < 0.5 * (b[1] - b[0])
               for a, b in telop_pairs(unit, telops, match))


def _overlap(a: Span, b: Span) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def unit_span(hit: Span, units: Sequence[Span], min_overlap: float) -> Span | None:
    """The union of ``units`` sharing at least ``min_overlap`` of the shorter of unit and hit."""
    picked = [u for u in units
              if _overlap(u, hit) >= min_overlap * max(1e-9, min(u[1] - u[0], hit[1] - hit[0]))]
    if not picked:
        return None
    return min(u[0] for u in picked), max(u[1] for u in picked)


@dataclass(frozen=True)
class Extent:
    """A hit placed at its chosen granularity."""

    window: Window
    granularity: Granularity
    hit: Window
    note: str | None = None


def choose(hit: Window, bounds: Boundaries, config: ExtentConfig) -> Extent:
    """The preferred granularity whose unit the hit supports (see :class:`ExtentConfig`)."""
    span = (hit.start, hit.end)
    longest = config.max_stretch * max(hit.end - hit.start, config.min_hit_s)
    for g in config.order:
        if g == "curve":
            break
        units = bounds.units.get(g)
        if not units:
            continue
        got = unit_span(span, units, config.min_overlap)
        if got is None or not got[1] > got[0] or got[1] - got[0] > longest + 1e-9:
            continue
        if config.telop_guard and splits_telops(got, span, bounds.telops, config.telop_match):
            continue
        if _overlap(got, span) >= config.min_cover * (hit.end - hit.start) - 1e-9:
            return Extent(Window(got[0], got[1], hit.score), g, hit)
    missing = [n for n in bounds.notes if n in (NO_SHOTS, NO_CUTS)] if config.needs_shots else []
    return Extent(hit, "curve", hit, missing[0] if missing else None)


def place(hits: Sequence[Window], bounds: Boundaries, config: ExtentConfig, nms_iou: float,
          max_windows: int) -> list[Extent]:
    """Each hit at its chosen extent, best first; one whose extent overlaps a better one by
    more than ``nms_iou`` (two hits snapped to the same shot) is dropped."""
    kept: list[Extent] = []
    for hit in sorted(hits, key=lambda w: -w.score):
        ext = choose(hit, bounds, config)
        if all(temporal_iou(ext.window, k.window) <= nms_iou for k in kept):
            kept.append(ext)
            if len(kept) >= max_windows:
                break
    return kept


class VideoExtents:
    """The boundaries of every video a family indexed, built at index time from the stored
    shots (detected once per video, shared by every family) and the family's own text."""

    def __init__(self, config: ExtentConfig) -> None:
        self.config = config
        self.bounds: dict[str, Boundaries] = {}

    @classmethod
    def build(cls, config: ExtentConfig, videos: Sequence[Video], store: FeatureStore | None,
              segments: Mapping[str, Sequence[Segment]] | None = None, *,
              into: VideoExtents | None = None) -> VideoExtents:
        """Shots come from ``store`` (computed there once where missing) when a granularity in
        ``config.use`` needs them; a video without them is noted and keeps its text units.
        With ``into``, these videos are added to (or replaced in) an earlier index."""
        out = into if into is not None and into.config == config else cls(config)
        segments = segments or {}
        shots: dict[str, Shots] = {}
        if config.needs_shots and store is not None and videos:
            from bench.store.shots import index_shots

            try:
                shots = index_shots(store, videos, config.shots)
            except Unavailable as exc:
                log.warning("shot boundaries unavailable (%s); moments keep their own extent", exc)
        for v in videos:
            found = shots.get(v.vid)
            ends = [s.end for s in segments.get(v.vid, ())]
            duration = float(v.duration or (found.duration_s if found else 0.0) or max(ends, default=0.0))
            out.bounds[v.vid] = build_boundaries(duration, found, segments.get(v.vid, ()), config)
        return out

    def get(self, vid: str) -> Boundaries | None:
        return self.bounds.get(vid)


def corpus_segments(windows: Iterable[Any]) -> dict[str, list[Segment]]:
    """vid -> the distinct segments held by text windows (objects with ``vid`` and ``segments``)."""
    out: dict[str, dict[Segment, None]] = {}
    for w in windows:
        bucket = out.setdefault(w.vid, {})
        for s in w.segments:
            bucket.setdefault(s, None)
    return {vid: list(segs) for vid, segs in out.items()}
