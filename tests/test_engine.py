"""The one search engine, with a scripted scorer: input checks, reasons, dropping windows
without evidence, the bound-based early stop, per-video failures, re-ranking, tie order and
concurrent candidates, each worked by hand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from bench.engine.proposals import ProposalConfig
from bench.engine.search import (
    Candidate,
    Curve,
    EngineSearch,
    NoAnswer,
    QueryResult,
    rank_moments,
)
from bench.errors import BadInput, BenchError, Unavailable
from bench.evidence import NoEvidence
from bench.spans import Window
from bench.types import Moment, QueryInput

# One sample per second; a window is the plateau of a single peak (rel_threshold 1.0).
PLATEAU = ProposalConfig(rel_threshold=1.0, nms_iou=0.5)


class Scripted(EngineSearch):
    """Each video's moments are given as explicit (start, end, score) triples (or moments), as
    a curve's scores (one sample per second) or as a whole :class:`Curve`."""

    def __init__(self, videos: dict[str, Any], bounds: dict[str, float] | None = None,
                 workers: int = 1) -> None:
        self.name = "scripted"
        self.device = "cpu"
        self.videos = videos
        self.bounds = bounds or {}
        self.workers = workers
        self.scored: list[str] = []
        self.finished: list[list[tuple[str, float]]] = []

    def ready(self) -> str | None:
        return None if self.videos else "nothing indexed; call index() before search()"

    def check_vids(self, vids: Sequence[str]) -> list[str]:
        unknown = [v for v in vids if v not in self.videos]
        if unknown:
            raise BadInput(f"video {unknown[0]!r} was not indexed")
        return list(vids)

    def prepare(self, queries: Sequence[QueryInput], vids: Sequence[str] | None) -> list[Any]:
        return [q.text if q.text else NoAnswer("needs text") for q in queries]

    def candidates(self, prepared: Any, vids: Sequence[str] | None, top_k: int) -> list[Candidate]:
        return [Candidate(v, bound=self.bounds.get(v)) for v in (list(self.videos) if vids is None else vids)]

    def score(self, prepared: Any, candidate: Candidate, max_windows: int) -> Curve | list[Moment]:
        self.scored.append(candidate.vid)
        spec = self.videos[candidate.vid]
        if isinstance(spec, Exception):
            raise spec
        if isinstance(spec, Curve):  # a curve given whole (its own times, duration, fps, evidence)
            return spec
        if isinstance(spec, np.ndarray):  # a curve; windows starting at odd seconds have no evidence
            def explain(w: Window) -> NoEvidence | None:
                return None if int(w.start) % 2 else NoEvidence(note=f"{w.start:g}")

            return Curve(np.arange(spec.size, dtype=np.float64), spec, float(spec.size), 1.0, PLATEAU,
                         explain)
        return [m if isinstance(m, Moment) else Moment(candidate.vid, m[0], m[1], m[2], NoEvidence())
                for m in spec]

    def concurrency(self) -> int:
        return self.workers

    def finish(self, prepared: Any, moments: list[Moment], top_k: int) -> list[Moment]:
        self.finished.append([(m.vid, m.score) for m in moments])
        return moments


def q(text: str | None = "x") -> QueryInput:
    return QueryInput(text=text, qid=text)


def test_input_checks() -> None:
    s = Scripted({"a": [(0, 1, 1.0)]})
    for bad in (0, -1, True, 2.5):
        with pytest.raises(BadInput, match="top_k"):
            s.search([q()], top_k=bad)  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="not indexed"):
        s.search([q()], vids=["zzz"])
    with pytest.raises(BadInput, match="^scripted: nothing indexed"):
        Scripted({}).search([q()])


def test_a_query_without_an_answer_has_the_reason_and_the_others_are_answered() -> None:
    s = Scripted({"a": [(0, 1, 1.0)]})
    none, found = s.search_results([q(None), q("x")])
    assert none == QueryResult([], "needs text")
    assert [(m.vid, m.score) for m in found.moments] == [("a", 1.0)] and found.reason is None


def test_curve_windows_without_evidence_are_dropped_and_the_rest_ranked() -> None:
    # peaks at 2 s (0.9), 5 s (0.8) and 8 s (0.7): the 5 s one starts at an odd second
    curve = np.array([0, 0, 0.9, 0, 0, 0.8, 0, 0, 0.7, 0])
    s = Scripted({"a": curve})
    (res,) = s.search_results([q()], top_k=3)
    assert [(m.start, m.end, m.score) for m in res.moments] == [(2.0, 3.0, 0.9), (8.0, 9.0, 0.7)]
    assert [m.evidence.describe() for m in res.moments] == ["2", "8"]


def test_top_k_cuts_after_ranking_across_videos_with_ties_by_video_then_start() -> None:
    s = Scripted({"b": [(5, 6, 0.5), (1, 2, 0.9)], "a": [(7, 8, 0.5), (3, 4, 0.1)]})
    (res,) = s.search_results([q()], top_k=3)
    assert [(m.vid, m.start, m.score) for m in res.moments] == [("b", 1, 0.9), ("a", 7, 0.5), ("b", 5, 0.5)]
    assert s.finished == [[("b", 0.9), ("a", 0.5), ("b", 0.5), ("a", 0.1)]]  # the pool, ranked


def test_given_ties_keep_their_order() -> None:
    ms = [Moment("b", 5, 6, 0.5), Moment("a", 1, 2, 0.5), Moment("c", 0, 1, 0.9)]
    assert [m.vid for m in rank_moments(list(ms), ties="given")] == ["c", "b", "a"]
    assert [m.vid for m in rank_moments(list(ms))] == ["c", "a", "b"]
    assert [m.vid for m in rank_moments(list(ms), 1)] == ["c"]


def test_the_engine_stops_once_top_k_moments_beat_a_video_bound() -> None:
    videos = {"a": [(0, 1, 1.0), (2, 3, 0.2)], "b": [(0, 1, 0.9)], "c": [(0, 1, 0.4)],
              "d": [(0, 1, 0.95)]}
    # d's bound lies (0.3): a scorer's bound is an upper bound, so the engine may trust it
    s = Scripted(videos, bounds={"a": 1.0, "b": 0.9, "c": 0.5, "d": 0.3})
    (res,) = s.search_results([q()], top_k=2)
    # after a: [1.0, 0.2]; b can still beat 0.2, so it is scored; then [1.0, 0.9] beat c's 0.5
    assert s.scored == ["a", "b"]
    assert [(m.vid, m.score) for m in res.moments] == [("a", 1.0), ("b", 0.9)]
    s = Scripted(videos, bounds={"a": 1.0, "b": 0.9, "c": 0.5, "d": 0.3})
    s.search_results([q()], top_k=3)  # three moments are needed: c can still enter, d cannot
    assert s.scored == ["a", "b", "c"]


def test_a_failing_video_is_left_out_with_its_reason() -> None:
    s = Scripted({"a": [(0, 1, 0.3)], "b": BenchError("backend said no")})
    (res,) = s.search_results([q()])
    assert [m.vid for m in res.moments] == ["a"] and res.reason == "b: backend said no"
    with pytest.raises(Unavailable):
        Scripted({"a": Unavailable("no weights")}).search([q()])


def test_concurrent_candidates_give_the_same_answer() -> None:
    videos = {f"v{i}": [(i, i + 1, 1.0 / (i + 1))] for i in range(6)}
    videos["bad"] = BenchError("timeout")
    one = Scripted(videos).search_results([q()], top_k=4)
    many = Scripted(videos, workers=4).search_results([q()], top_k=4)
    assert one == many and [m.vid for m in one[0].moments] == ["v0", "v1", "v2", "v3"]
    assert one[0].reason == "bad: timeout"
