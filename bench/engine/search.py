"""The one search engine under every family: input checks, candidate videos, proposals
(score curve -> windows), sorting, ``top_k``, per-query reasons and timing.

A family supplies only what it alone knows, as a :class:`Scorer`: its features (``index``)
and, per query and candidate video, a score :class:`Curve` or explicit moments with typed
evidence. :class:`EngineSearch` gives a scorer the :class:`~bench.retrievers.base.Retriever`
``search`` methods, so nothing else checks ``top_k``, sorts or cuts moments.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from bench.engine.extent import Boundaries, ExtentConfig, VideoExtents, place
from bench.engine.proposals import ProposalConfig, propose
from bench.errors import BackendError, BadInput, BenchError, Unavailable
from bench.evidence import Evidence, with_note
from bench.timing import stage
from bench.types import Moment, QueryInput

if TYPE_CHECKING:
    from bench.spans import Window

log = logging.getLogger("bench")

Ties = Literal["vid-start", "given"]
MAX_REASON_CHARS = 2000


@dataclass
class QueryResult:
    """One query's answer: moments best first, and why there are none (or fewer) when known.

    ``reason`` is set when the query could not be answered as asked (no text for a text
    method, no searchable terms, a backend call failed for some videos); a plain miss (the
    query matched nothing) has no reason. Backend failures are also kept typed, apart from
    the reasons that say the method cannot answer."""

    moments: list[Moment]
    reason: str | None = None
    backend_errors: list[BackendError] = field(default_factory=list)
    """Backend calls (an LLM endpoint) that failed after their retries for this query, one per
    video they concerned. A query the method cannot answer, or a plain miss, has none."""
    backend_failed: bool = False
    """Every video the query was scored on failed on the backend: the query got no answer at
    all (the runner counts these to tell a dead backend from a method that scores zero)."""


@dataclass(frozen=True)
class NoAnswer:
    """What :meth:`Scorer.prepare` returns for a query it cannot answer, with the reason."""

    reason: str


@dataclass(frozen=True)
class Candidate:
    """A video to look at for one query.

    ``bound``: no moment of this video can score above it (lets the engine stop early once
    ``top_k`` moments beat it); ``weight``: how strongly file-level retrieval picked it."""

    vid: str
    bound: float | None = None
    weight: float = 1.0


@dataclass
class Curve:
    """A score curve over one video: ``scores[i]`` at ``times_s[i]``, each sample covering
    ``[t, t + 1/fps]``; ``config`` says how windows are proposed on it; ``explain`` turns a
    proposed window into evidence, or ``None`` to drop the window (e.g. a stretch with no
    text at all)."""

    times_s: np.ndarray
    scores: np.ndarray
    duration_s: float
    fps: float
    config: ProposalConfig
    explain: Callable[[Window], Evidence | None]


class Scorer(Protocol):
    """What one family knows: its features and how a query scores a video."""

    name: str
    device: str

    def ready(self) -> str | None:
        """``None`` when something is indexed, else the reason (search is then bad input)."""
        ...

    def check_vids(self, vids: Sequence[str]) -> list[str]:
        """The requested videos, in order; BadInput naming those never indexed."""
        ...

    def prepare(self, queries: Sequence[QueryInput],
                vids: Sequence[str] | None) -> list[Any | NoAnswer]:
        """Encode a batch of queries (one item per query), or say why one cannot be answered."""
        ...

    def candidates(self, prepared: Any, vids: Sequence[str] | None, top_k: int) -> list[Candidate]:
        """Videos to score for one prepared query, most promising first (``vids=None``:
        the whole corpus; else those videos)."""
        ...

    def score(self, prepared: Any, candidate: Candidate, max_windows: int) -> Curve | list[Moment]:
        """One video's evidence for the query: a curve, or explicit moments best first."""
        ...

    def windows_per_video(self, top_k: int) -> int:
        """How many windows the engine proposes per video (``top_k``, or a larger pool a
        re-ranker picks from)."""
        ...

    def concurrency(self) -> int:
        """Candidate videos scored at once (>1 for scorers waiting on remote calls)."""
        ...

    def finish(self, prepared: Any, moments: list[Moment], top_k: int) -> list[Moment]:
        """Re-rank the pooled moments of one query (identity for most families)."""
        ...

    def extent(self, vid: str) -> tuple[Boundaries, ExtentConfig] | None:
        """The video's units (shots, scenes, turns, segments) and how hits snap to them, or
        ``None`` to keep every hit's own extent."""
        ...


def check_top_k(top_k: int) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise BadInput(f"top_k must be an integer >= 1, got {top_k!r}")


def rank_moments(moments: list[Moment], top_k: int | None = None, *,
                 ties: Ties = "vid-start") -> list[Moment]:
    """Moments by descending score, at most ``top_k``. Ties go by video then start time, or
    keep the given order (``ties="given"``, for moments a fusion already ranked)."""
    if ties == "given":
        moments.sort(key=lambda m: -m.score)
    else:
        moments.sort(key=lambda m: (-m.score, m.vid, m.start))
    return moments if top_k is None else moments[:top_k]


HITS_PER_WINDOW = 3
"""Hits proposed per window asked for when they snap to units: hits snapped to the same
shot collapse into one moment, and the next ones fill in."""


def curve_moments(vid: str, curve: Curve, max_windows: int,
                  extent: tuple[Boundaries, ExtentConfig] | None = None) -> list[Moment]:
    """Proposals on ``curve`` -> moments of ``vid`` with their evidence, best first; with
    ``extent``, each proposal is a hit placed at its chosen granularity."""
    asked = max_windows * HITS_PER_WINDOW if extent is not None else max_windows
    config = curve.config.model_copy(update={"max_windows": asked})
    hits = propose(curve.times_s, curve.scores, duration_s=curve.duration_s, fps=curve.fps, config=config)
    placed: list[tuple[Window, str | None]] = [(w, None) for w in hits]
    if extent is not None:
        chosen = place(hits, extent[0], extent[1], curve.config.nms_iou, max_windows)
        placed = [(e.window, e.note) for e in chosen]
    out = []
    for w, note in placed:
        evidence = curve.explain(w)
        if evidence is not None:
            if note:
                evidence = with_note(evidence, note)
            out.append(Moment(vid=vid, start=w.start, end=w.end, score=w.score, evidence=evidence))
    return out


def placed_moments(moments: list[Moment], extent: tuple[Boundaries, ExtentConfig] | None,
                   max_windows: int, nms_iou: float = 0.5) -> list[Moment]:
    """Explicit moments of one video (LLM scenes) placed at their chosen granularity."""
    if extent is None or not moments:
        return moments
    from bench.spans import Window

    by_hit = {Window(m.start, m.end, m.score): m for m in moments}
    out = []
    for e in place(list(by_hit), extent[0], extent[1], nms_iou, max(max_windows, len(moments))):
        m = by_hit[e.hit]
        evidence = with_note(m.evidence, e.note) if e.note else m.evidence
        out.append(Moment(vid=m.vid, start=e.window.start, end=e.window.end, score=m.score,
                          evidence=evidence))
    return out


def search(scorer: Scorer, queries: Sequence[QueryInput], *, top_k: int = 10,
           vids: Sequence[str] | None = None) -> list[QueryResult]:
    """Per query, at most ``top_k`` moments by descending score, with the reason when a query
    cannot be answered. ``vids=None`` is corpus search; ``vids`` grounds in those videos.

    Bad calls (``top_k`` < 1, nothing indexed, unknown videos) raise BadInput; a video whose
    scoring fails with a reportable error leaves that video out and records why."""
    check_top_k(top_k)
    why = scorer.ready()
    if why is not None:
        raise BadInput(f"{scorer.name}: {why}")
    pool = scorer.check_vids(vids) if vids is not None else None
    prepared = scorer.prepare(queries, pool)
    results = []
    for q, prep in zip(queries, prepared, strict=True):
        if isinstance(prep, NoAnswer):
            _log_once(scorer, prep.reason, q)
            results.append(QueryResult([], prep.reason))
            continue
        with stage("search", items=1):
            results.append(_search_one(scorer, prep, pool, top_k))
    return results


def _search_one(scorer: Scorer, prep: Any, pool: Sequence[str] | None, top_k: int) -> QueryResult:
    candidates = scorer.candidates(prep, pool, top_k)
    per_video = scorer.windows_per_video(top_k)
    moments: list[Moment] = []
    errors: list[str] = []
    backend_errors: list[BackendError] = []
    scored = 0

    def one(c: Candidate) -> list[Moment] | tuple[str, BenchError]:
        try:
            got = scorer.score(prep, c, per_video)
        except Unavailable:
            raise  # the configuration cannot run at all
        except BenchError as exc:
            return f"{c.vid}: {exc}", exc
        extent = scorer.extent(c.vid)
        if isinstance(got, Curve):
            return curve_moments(c.vid, got, per_video, extent)
        return placed_moments(got, extent, per_video)

    def keep(got: list[Moment] | tuple[str, BenchError]) -> None:
        nonlocal moments
        if isinstance(got, tuple):
            errors.append(got[0])
            if isinstance(got[1], BackendError):
                backend_errors.append(got[1])
        else:
            moments += got

    workers = scorer.concurrency()
    if workers > 1 and len(candidates) > 1 and all(c.bound is None for c in candidates):
        with ThreadPoolExecutor(max_workers=workers) as ex:
            # each task runs in a copy of this context, so stages timed inside score() count
            futures = [ex.submit(contextvars.copy_context().run, one, c) for c in candidates]
            outcomes = [f.result() for f in futures]
        scored = len(outcomes)
        for got in outcomes:
            keep(got)
    else:
        unsorted = False  # moments were added since the last sort
        for c in candidates:
            if c.bound is not None and len(moments) >= top_k:
                if unsorted:
                    rank_moments(moments)  # in place: the check below reads the top_k-th best
                    unsorted = False
                if moments[top_k - 1].score >= c.bound:
                    continue  # no moment of this video can beat the top_k already found
            scored += 1
            got = one(c)
            keep(got)
            unsorted = unsorted or not isinstance(got, tuple)
    moments = scorer.finish(prep, rank_moments(moments), top_k)
    reason = "; ".join(errors)[:MAX_REASON_CHARS] if errors else None
    return QueryResult(rank_moments(moments, top_k), reason, backend_errors,
                       backend_failed=scored > 0 and len(backend_errors) == scored)


def _log_once(scorer: Any, reason: str, q: QueryInput) -> None:
    seen: set[str] = scorer.__dict__.setdefault("_reasons_logged", set())
    if reason not in seen:
        seen.add(reason)
        which = f" (query {q.qid!r})" if q.qid is not None else ""
        log.warning("%s: %s%s; no moments returned", scorer.name, reason, which)


class EngineSearch:
    """The search half of the Retriever protocol for a :class:`Scorer`, plus protocol
    defaults (no stats, nothing to reset, no backend calls while indexing, one candidate at
    a time, no re-ranking)."""

    name: str
    extents: VideoExtents | None = None
    """Set by a family's ``index`` (see :class:`~bench.engine.extent.VideoExtents`)."""

    def search(self, queries: Sequence[QueryInput], *, top_k: int = 10,
               vids: Sequence[str] | None = None) -> list[list[Moment]]:
        """Per query, at most ``top_k`` moments by descending score (see :func:`search`)."""
        return [r.moments for r in self.search_results(queries, top_k=top_k, vids=vids)]

    def search_results(self, queries: Sequence[QueryInput], *, top_k: int = 10,
                       vids: Sequence[str] | None = None) -> list[QueryResult]:
        """Per query, the moments and the reason when it could not be answered."""
        return search(self, queries, top_k=top_k, vids=vids)  # type: ignore[arg-type]

    def windows_per_video(self, top_k: int) -> int:
        return top_k

    def concurrency(self) -> int:
        return 1

    def extent(self, vid: str) -> tuple[Boundaries, ExtentConfig] | None:
        if self.extents is None or self.extents.config.order[0] == "curve":
            return None  # snapping off: every hit keeps its own extent
        bounds = self.extents.get(vid)
        return None if bounds is None else (bounds, self.extents.config)

    def finish(self, prepared: Any, moments: list[Moment], top_k: int) -> list[Moment]:
        return moments

    def stats(self) -> dict[str, Any]:
        return {}

    def reset_stats(self) -> None:
        return None

    def index_backend_errors(self) -> dict[str, BackendError]:
        return {}
