"""The labels of a built set: queries with their windows (from the scene timeline) and the
per-scene ground truth in ``scenes.jsonl``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.datasets.io import read_jsonl
from bench.datasets.synthetic.spec import QuerySpec, Scene, SynthSpec, VideoSpec, event_span, transition_span
from bench.errors import BadInput
from bench.types import Query, Video

if TYPE_CHECKING:
    from bench.datasets.synthetic.encode import Built


def make_queries(spec: SynthSpec, plans: dict[str, list[Scene]], videos: dict[str, Video]) -> list[Query]:
    """The spec's queries in order, with windows from the scene timeline ``plans`` clipped to each
    video's measured duration, and ``corpus_windows`` over every video of the set."""
    by_image: dict[str, list[tuple[str, float, float]]] = {}
    for vid, scenes in plans.items():
        for s in scenes:
            by_image.setdefault(s.spec.image, []).append((vid, s.start_s, s.end_s))
    out: list[Query] = []
    for v in spec.videos:
        duration = videos[v.vid].duration
        assert duration is not None
        for q in v.queries:
            ids = [] if q.tag == "absent" else _query_scenes(v, q)
            spans = ([event_span(plans[v.vid][q.event[0]], q.event[1])] if q.event is not None
                     else [(plans[v.vid][i].start_s, plans[v.vid][i].end_s) for i in ids])
            windows = [(round(s, 3), round(min(e, duration), 3)) for s, e in _merge(spans)]
            corpus = [[v.vid, s, e] for s, e in windows]
            if q.tag == "absent":
                corpus = []  # in no video of the set: a corpus search has nothing to find either
            elif q.tag == "visual" and q.event is None:
                # The same photograph in another video answers a visual query there too.
                corpus = []
                for vid in videos:
                    dur = videos[vid].duration or 0.0
                    spans = _merge([(s, e) for ov, s, e in by_image[_image_of(v, q)] if ov == vid])
                    corpus += [[vid, round(s, 3), round(min(e, dur), 3)] for s, e in spans]
            extra: dict[str, Any] = {"scenes": ids, "corpus_windows": corpus}
            if q.event is not None:
                extra["event"] = list(q.event)
            if q.cues:
                extra["cues"] = list(q.cues)
            out.append(Query(qid=f"{spec.qid_prefix}-{len(out) + 1:04d}", query=q.query, vid=v.vid,
                             duration=duration, relevant_windows=windows, lang=q.lang, tags=[q.tag],
                             extra=extra))
    return out


def _image_of(v: VideoSpec, q: QuerySpec) -> str:
    if q.image is not None:
        return q.image
    shown = {v.scenes[i].image for i in q.scenes or []}
    if len(shown) != 1:
        raise BadInput(f"video {v.vid}: visual query {q.query!r} spans scenes with different images "
                       f"({', '.join(sorted(shown))}); give image instead of scenes")
    return shown.pop()


def scene_rows(spec: SynthSpec, plans: dict[str, list[Scene]],
               built: list[Built]) -> Iterator[dict[str, Any]]:
    """Rows of ``scenes.jsonl`` (see :func:`load_scenes`), with the narration times as measured."""
    spoken = {b.vid: b.narration for b in built}
    events = {b.vid: b.events for b in built}
    rich = any(s.enter != "cut" or s.events for v in spec.videos for s in v.scenes)
    moody = any(s.mood or s.music or s.look for v in spec.videos for s in v.scenes)
    for v in spec.videos:
        for s in plans[v.vid]:
            row: dict[str, Any] = {"vid": v.vid, "scene": s.index, "start": s.start_s, "end": s.end_s,
                                   "image": s.spec.image, "move": s.move}
            for kind in ("telop", "caption"):
                text = getattr(s.spec, kind)
                row[kind] = None if text is None else {"text": text.text, "lang": text.lang}
            n = s.spec.narration
            if n is None:
                row["narration"] = None
            else:
                start, end, wpm = spoken[v.vid][s.index]
                row["narration"] = {"text": n.text, "lang": n.lang, "voice": spec.voices[n.lang],
                                    "wpm": wpm, "start": round(start, 3), "end": round(end, 3)}
            if rich:  # rows of sets with only hard cuts and no events keep their v1 shape
                lo, hi = transition_span(spec, s)
                row["enter"] = {"kind": s.spec.enter, "start": round(lo, 3), "end": round(hi, 3)}
                row["events"] = [_event_row(spec, s, k, events[v.vid]) for k in range(len(s.spec.events))]
            if moody:  # the intended impression and how it was built (sets of mood scenes only)
                for kind in ("music", "look", "mood"):
                    part = getattr(s.spec, kind)
                    row[kind] = None if part is None else part.model_dump(mode="json")
            yield row


def _event_row(spec: SynthSpec, s: Scene, k: int,
               spoken: dict[tuple[int, int], tuple[float, float, int]]) -> dict[str, Any]:
    e = s.spec.events[k]
    lo, hi = event_span(s, k)
    row: dict[str, Any] = {"kind": e.kind, "start": round(lo, 3), "end": round(hi, 3)}
    if e.inset is not None:
        row["image"] = e.inset
    text = e.telop or e.narration
    if text is not None:
        row["text"], row["lang"] = text.text, text.lang
    if (s.index, k) in spoken:
        a, b, wpm = spoken[(s.index, k)]
        row["spoken"] = {"start": round(a, 3), "end": round(b, 3), "wpm": wpm}
    return row


def load_scenes(directory: Path) -> list[dict[str, Any]]:
    """Rows of a built set's ``scenes.jsonl``: the ground truth every query was derived from.

    Each row: ``vid``, ``scene`` (index), ``start``/``end`` (seconds), ``image``, ``move``,
    ``telop``/``caption`` (``{"text", "lang"}`` or None) and ``narration`` (``{"text", "lang",
    "voice", "wpm", "start", "end"}`` or None; its times lie inside the scene). Sets with
    transitions or events add ``enter`` (``{"kind": cut|fade|dissolve, "start", "end"}``: the
    frame-exact span of the transition) and ``events`` (``{"kind", "start", "end", "image" |
    "text" and "lang", "spoken"?}``).
    """
    return [row for _, row in read_jsonl(Path(directory) / "scenes.jsonl")]


def _merge(windows: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for s, e in sorted(windows):
        if merged and s <= merged[-1][1] + 1e-9:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _query_scenes(v: VideoSpec, q: QuerySpec) -> list[int]:
    if q.event is not None:
        return [q.event[0]]
    if q.scenes is not None:
        return sorted(set(q.scenes))
    return [i for i, s in enumerate(v.scenes) if s.image == q.image]
