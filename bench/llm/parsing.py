"""Timestamps in ``mm:ss`` / ``hh:mm:ss`` form, and an LLM's free-form answer turned into validated scenes.

Models wrap JSON in code fences, add prose around it, use single quotes, write ``m:ss``,
reverse ranges or run past the end of the video; :func:`parse_scenes` accepts all of that
and returns windows that are always inside ``[0, duration]`` and bounded in number and size.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from bench.spans import temporal_iou

MAX_DESCRIPTION_CHARS = 300
MAX_EVIDENCE_ITEMS = 5
MAX_EVIDENCE_CHARS = 200
MAX_ANSWER_CHARS = 20_000
"""Longer answers are cut before parsing: the output is bounded whatever the model writes."""
MAX_JSON_STARTS = 100
"""Brackets tried as the start of the JSON value; bounds the work on long garbage."""
MERGE_IOU = 0.5
"""Scenes overlapping at least this much (intersection over union) are one moment."""
POINT_WINDOW_S = 2.0
"""A single time (or a zero-length range) becomes a window this long, centred on it."""

_TS_TOKEN = re.compile(r"(?<![\d:.])\d{1,3}(?::\d{1,2}){1,2}(?:[.,]\d+)?(?!\d|:\d)")
_SECONDS_RANGE = re.compile(
    r"(?<![\d:.])(\d+(?:\.\d+)?)\s*s?\s*(?:-|–|—|to)\s*(\d+(?:\.\d+)?)\s*s?(?![\d:])")
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_TRAILING_COMMA = re.compile(r",\s*([\]}])")
_FLAT_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_WORD_CONFIDENCE = {"very high": 0.95, "high": 0.9, "medium": 0.6, "moderate": 0.6, "low": 0.3,
                    "very low": 0.1}


class InvalidOutput(ValueError):
    """The model's answer held no usable scene; the message says why (one line)."""


# --------------------------------------------------------------------------- timestamps

def format_timestamp(t_s: float, *, hours: bool = False) -> str:
    """Seconds -> ``mm:ss`` (or ``hh:mm:ss`` when ``hours``), whole seconds rounded down."""
    total = max(0, int(math.floor(t_s + 1e-6)))
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    if hours:
        return f"{h:02d}:{m:02d}:{s:02d}"
    return f"{h * 60 + m:02d}:{s:02d}"


def format_range(start_s: float, end_s: float, *, hours: bool = False) -> str:
    """``mm:ss-mm:ss`` covering ``[start_s, end_s]``: the start rounds down, the end up."""
    end_whole = math.ceil(end_s - 1e-6)
    return f"{format_timestamp(start_s, hours=hours)}-{format_timestamp(end_whole, hours=hours)}"


def uses_hours(duration_s: float) -> bool:
    """Timestamps of a video switch to ``hh:mm:ss`` when it is an hour long or more."""
    return duration_s >= 3600.0


def parse_timestamp(token: str) -> float:
    """``m:ss``, ``mm:ss``, ``h:mm:ss`` or ``hh:mm:ss`` (optional ``.fff``) -> seconds."""
    text = token.strip().replace(",", ".")
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise InvalidOutput(f"timestamp {token!r} is not mm:ss or hh:mm:ss")
    try:
        secs = float(parts[-1])
        mins = int(parts[-2])
        hrs = int(parts[0]) if len(parts) == 3 else 0
    except ValueError:
        raise InvalidOutput(f"timestamp {token!r} is not mm:ss or hh:mm:ss") from None
    if not 0 <= secs < 60 or mins < 0 or hrs < 0 or (len(parts) == 3 and mins >= 60):
        raise InvalidOutput(f"timestamp {token!r} has seconds or minutes out of range")
    return hrs * 3600.0 + mins * 60.0 + secs


def parse_time_range(text: str) -> tuple[float, float]:
    """``"mm:ss-mm:ss"`` (any dash, ``to``, brackets) -> ``(start_s, end_s)`` as written.

    One time gives ``(t, t)``; a range in plain seconds (``"12-20"``, ``"12s to 20s"``) is
    accepted too. The order is not fixed here: :func:`parse_scenes` handles reversed ranges.
    """
    tokens = _TS_TOKEN.findall(text)
    if len(tokens) >= 2:
        return parse_timestamp(tokens[0]), parse_timestamp(tokens[1])
    if len(tokens) == 1:
        t = parse_timestamp(tokens[0])
        return t, t
    m = _SECONDS_RANGE.search(text)
    if m:
        return float(m.group(1)), float(m.group(2))
    raise InvalidOutput(f"no mm:ss-mm:ss time range in {text[:60]!r}")


# --------------------------------------------------------------------------- JSON repair

def _balanced(text: str, start: int) -> str | None:
    """The bracketed value starting at ``text[start]``, respecting quoted strings."""
    pairs = {"[": "]", "{": "}"}
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'":
            # An apostrophe inside a word ("it's") is not a quote.
            if ch == "'" and i > 0 and text[i - 1].isalnum():
                continue
            quote = ch
        elif ch in pairs:
            stack.append(pairs[ch])
        elif ch in "]}":
            if not stack or stack.pop() != ch:
                return None
            if not stack:
                return text[start:i + 1]
    return None


def _loads(candidate: str) -> Any:
    attempts = [candidate, _TRAILING_COMMA.sub(r"\1", candidate)]
    for attempt in attempts:
        try:
            return json.loads(attempt)
        except json.JSONDecodeError:
            pass
    # Single-quoted, Python-literal style output.
    for attempt in attempts:
        for text in (attempt, re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False",
                                                                  re.sub(r"\bnull\b", "None", attempt)))):
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                pass
    raise InvalidOutput("not valid JSON")


def _flat_objects(text: str) -> list[dict[str, Any]]:
    """Every parseable ``{...}`` without nested objects: salvage from a broken or cut-off list."""
    objects = []
    for m in _FLAT_OBJECT.finditer(text):
        try:
            obj = _loads(m.group(0))
        except InvalidOutput:
            continue
        if isinstance(obj, dict):
            objects.append(obj)
    return objects


def extract_json(text: str) -> Any:
    """The first JSON list or object in a model's answer.

    Accepts code fences, prose before and after, ``<think>`` blocks, single quotes, Python
    ``True``/``None`` and trailing commas. An answer cut off mid-list (``max_new_tokens``)
    yields the complete objects it holds. Raises :class:`InvalidOutput` when none is found.
    """
    text = _THINK.sub("", text[:MAX_ANSWER_CHARS])
    for body in [*_FENCE.findall(text), text]:
        starts = [i for i, ch in enumerate(body) if ch in "[{"][:MAX_JSON_STARTS]
        for start in starts:
            value = _balanced(body, start)
            if value is None:  # cut off (max_new_tokens) or broken: keep its complete objects
                objects = _flat_objects(body[start:])
                if objects:
                    return objects
                continue
            try:
                return _loads(value)
            except InvalidOutput:
                objects = _flat_objects(value)
                if objects:
                    return objects
    objects = _flat_objects(text)
    if objects:
        return objects
    if not text.strip():
        raise InvalidOutput("the answer is empty")
    raise InvalidOutput(f"no JSON list of scenes in the answer (starts {text.strip()[:60]!r})")


# --------------------------------------------------------------------------- scenes

@dataclass(frozen=True)
class Scene:
    """One validated scene: ``[start_s, end_s]`` inside the video, in the model's order."""

    start_s: float
    end_s: float
    description: str
    evidence: tuple[str, ...] = ()
    confidence: float | None = None
    """The model's stated confidence in ``[0, 1]``, when it gave one."""
    rank: int = 0
    """0 for the scene the model listed first (after merging overlaps)."""
    timestamp: str = ""
    """The timestamp as the model wrote it."""

    @property
    def score(self) -> float:
        """Rank ``1/(1+rank)`` scaled by ``0.5 + 0.5 * confidence`` (confidence 1 when absent)."""
        conf = 1.0 if self.confidence is None else self.confidence
        return (1.0 / (1.0 + self.rank)) * (0.5 + 0.5 * conf)


@dataclass
class ParsedScenes:
    """What :func:`parse_scenes` kept, and notes on everything it fixed or dropped."""

    scenes: list[Scene]
    notes: list[str] = field(default_factory=list)


def _field(item: dict[str, Any], *names: str) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in item.items()}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def _confidence(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _WORD_CONFIDENCE:
            return _WORD_CONFIDENCE[text]
        pct = text.endswith("%")
        try:
            value = float(text.rstrip("%").strip())
        except ValueError:
            return None
        if pct:
            value /= 100.0
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    if value > 1.0:
        value = value / 100.0 if value <= 100.0 else None
    return None if value is None else float(value)


def _as_time(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        tokens = _TS_TOKEN.findall(value)
        if tokens:
            return parse_timestamp(tokens[0])
        try:
            return float(value.strip().rstrip("s"))
        except ValueError:
            pass
    raise InvalidOutput(f"time {value!r} is not mm:ss or seconds")


def _items(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if _field(data, "timestamp", "time", "start") is not None:
            return [data]
        for value in data.values():
            if isinstance(value, list) and all(isinstance(v, dict) for v in value):
                return value
    raise InvalidOutput(f"expected a JSON list of scenes, got {type(data).__name__}")


def _raw_scene(item: Any) -> tuple[float, float, str, list[str], float | None, str]:
    if isinstance(item, str):
        start, end = parse_time_range(item)
        desc = _TS_TOKEN.sub("", item).strip(" -–—:[]()")
        return start, end, desc, [], None, item
    if not isinstance(item, dict):
        raise InvalidOutput(f"a scene must be an object, got {type(item).__name__}")
    stamp = _field(item, "timestamp", "time", "time range", "timerange", "range", "window")
    if isinstance(stamp, list | tuple) and len(stamp) == 2:
        start, end = _as_time(stamp[0]), _as_time(stamp[1])
        stamp_text = f"{stamp[0]}-{stamp[1]}"
    elif isinstance(stamp, str):
        start, end = parse_time_range(stamp)
        stamp_text = stamp
    elif _field(item, "start") is not None:
        start = _as_time(_field(item, "start"))
        end_value = _field(item, "end")
        end = _as_time(end_value) if end_value is not None else start
        stamp_text = f"{_field(item, 'start')}-{end_value}"
    else:
        raise InvalidOutput("a scene has no Timestamp")
    desc = _field(item, "description", "desc", "text", "scene", "summary")
    evidence = _field(item, "evidence", "evidences", "reason", "reasons")
    if evidence is None:
        ev_list: list[str] = []
    elif isinstance(evidence, list | tuple):
        ev_list = [str(e) for e in evidence if str(e).strip()]
    else:
        ev_list = [str(evidence)]
    conf = _confidence(_field(item, "confidence", "score", "probability"))
    return start, end, "" if desc is None else str(desc), ev_list, conf, stamp_text


def _clip_text(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def clip_range(start: float, end: float, duration_s: float, *,
               point_window_s: float = POINT_WINDOW_S) -> tuple[tuple[float, float] | None, list[str]]:
    """Apply the window rules of :func:`parse_scenes` to one range; ``(None, notes)`` if dropped."""
    notes: list[str] = []
    start, end, duration_s = float(start), float(end), float(duration_s)
    if end < start:
        notes.append("reversed range swapped")
        start, end = end, start
    if end == start:
        start, end = start - point_window_s / 2.0, end + point_window_s / 2.0
    start = max(0.0, start)
    if start >= duration_s:
        return None, [f"starts at {start:g}s, past the duration {duration_s:g}s"]
    if end > duration_s:
        notes.append(f"end {end:g}s clipped to the duration {duration_s:g}s")
        end = duration_s
    return (start, end), notes


def validate_scenes(items: list[Any], duration_s: float, *, max_scenes: int = 3, merge: bool = True,
                    point_window_s: float = POINT_WINDOW_S,
                    notes: list[str] | None = None) -> list[Scene]:
    """Scenes from already-decoded JSON items (objects or ``"mm:ss-mm:ss text"`` strings).

    Items that break a rule are dropped with a note; see :func:`parse_scenes` for the rules.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    notes = notes if notes is not None else []
    kept: list[Scene] = []
    for i, item in enumerate(items):
        try:
            start, end, desc, evidence, conf, stamp = _raw_scene(item)
        except InvalidOutput as exc:
            notes.append(f"scene {i + 1} dropped: {exc}")
            continue
        window, why = clip_range(start, end, duration_s, point_window_s=point_window_s)
        notes.extend(f"scene {i + 1} ({stamp!r}): {w}" if window else f"scene {i + 1} dropped: {w}"
                     for w in why)
        if window is None:
            continue
        kept.append(Scene(
            start_s=window[0], end_s=window[1], description=_clip_text(desc, MAX_DESCRIPTION_CHARS),
            evidence=tuple(_clip_text(e, MAX_EVIDENCE_CHARS) for e in evidence[:MAX_EVIDENCE_ITEMS]),
            confidence=conf, rank=i, timestamp=_clip_text(stamp, 40)))
    out = merge_same_scenes(kept, notes) if merge else kept
    if len(out) > max_scenes:
        notes.append(f"{len(out) - max_scenes} scene(s) beyond the first {max_scenes} dropped")
        out = out[:max_scenes]
    return [replace(s, rank=r) for r, s in enumerate(out)]


def parse_scenes(answer: str, duration_s: float, *, max_scenes: int = 3, allow_empty: bool = False,
                 point_window_s: float = POINT_WINDOW_S) -> ParsedScenes:
    """Validate an answer against a video of ``duration_s`` seconds.

    Rules, in order, each noted in ``notes``:
    - a reversed range (end before start) is swapped: the two times still name the moment;
    - a single time or zero-length range becomes a ``point_window_s`` window centred on it;
    - a scene that starts at or after the duration is dropped; an end past it is clipped;
    - scenes that are the same moment (IoU >= 0.5) merge into the first-listed one (its
      window, description and rank; the highest confidence; the evidence of both), so
      duplicates collapse to one; scenes that overlap less stay separate candidates;
    - at most ``max_scenes`` are kept, in the model's order; descriptions and evidence are
      cut to fixed sizes.
    Raises :class:`InvalidOutput` ("no valid scenes: <why>") when no scene survives, except
    for an explicit empty list when ``allow_empty`` (a chunk of metadata with no match).
    """
    try:
        items = _items(extract_json(answer))
    except InvalidOutput as exc:
        raise InvalidOutput(f"no valid scenes: {exc}") from None
    if not items and allow_empty:
        return ParsedScenes(scenes=[], notes=["the model found no matching scene"])
    notes: list[str] = []
    scenes = validate_scenes(items, duration_s, max_scenes=max_scenes, point_window_s=point_window_s,
                             notes=notes)
    if not scenes:
        why = notes[-1] if notes else "the model returned an empty list"
        raise InvalidOutput(f"no valid scenes: {why}")
    return ParsedScenes(scenes=scenes, notes=notes)


def merge_same_scenes(scenes: list[Scene], notes: list[str] | None = None, *,
                    min_iou: float = MERGE_IOU) -> list[Scene]:
    """Merge scenes that are the same moment (IoU >= ``min_iou``) into the first-listed one.

    The merged scene keeps the first-listed window, description and rank (the model's best
    guess is not widened), the highest confidence and the evidence of both. Scenes that only
    touch or overlap a little stay apart: a long vague scene must not swallow a short
    precise one.
    """
    out = sorted(scenes, key=lambda s: s.rank)
    changed = True
    while changed:
        changed = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if temporal_iou((a.start_s, a.end_s), (b.start_s, b.end_s)) >= min_iou:
                    evidence = tuple(dict.fromkeys(a.evidence + b.evidence))[:MAX_EVIDENCE_ITEMS]
                    confs = [c for c in (a.confidence, b.confidence) if c is not None]
                    out[i] = replace(a, evidence=evidence, confidence=max(confs) if confs else None)
                    del out[j]
                    if notes is not None:
                        notes.append(f"scene {b.timestamp!r} is the same moment as {a.timestamp!r}: merged")
                    changed = True
                    break
            if changed:
                break
    return out
