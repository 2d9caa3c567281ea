"""Engine cases found by mutation testing: hits snapped to shots (curve and explicit moments
placed at their shot, notes when a video has no shots, snapping off), backend failures and
reasons, the logged reason, timing stages, the arguments each scorer hook gets, the early stop
on bounds and concurrent candidates. Shots are given by hand: mostly cuts at 4, 10 and 14 s
of 20 s."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from bench.engine.extent import NO_SHOTS, ExtentConfig, VideoExtents, build_boundaries
from bench.engine.search import Candidate, Curve, EngineSearch, QueryResult, search
from bench.errors import BackendError, BenchError
from bench.evidence import FrameEvidence, FrameMatch, NoEvidence
from bench.timing import TimingRecorder, recording, stage
from bench.types import Moment, QueryInput
from bench.video.shots import Shots
from tests.test_engine import PLATEAU, Scripted, q

CONFIG = ExtentConfig(use=["shot"])
SHOTS = Shots(20.0, [4.0, 10.0, 14.0])


def with_shots(scorer: Scripted, **shots: Shots | None) -> Scripted:
    scorer.extents = VideoExtents(CONFIG)
    for vid, found in shots.items():
        scorer.extents.bounds[vid] = build_boundaries(20.0, found, [], CONFIG)
    return scorer


def test_curve_hits_take_their_shots() -> None:
    # Plateaus at 4-8 s and 10-13 s: each lies inside one shot (4-10, 10-14) and takes it
    # (the zero stretches around them come after, at score 0).
    curve = np.zeros(20)
    curve[4:8] = 1.0
    curve[10:13] = 0.8
    s = with_shots(Scripted({"v": curve}), v=SHOTS)
    (res,) = s.search_results([q()], top_k=2)
    assert [(m.vid, m.start, m.end, m.score) for m in res.moments] == [
        ("v", 4.0, 10.0, 1.0), ("v", 10.0, 14.0, 0.8)]


def test_explicit_moments_take_their_shots_and_keep_their_scores() -> None:
    s = with_shots(Scripted({"v": [(4.5, 7.5, 0.9), (11.0, 13.0, 0.4)]}), v=SHOTS)
    (res,) = s.search_results([q()], top_k=5)
    assert [(m.start, m.end, m.score) for m in res.moments] == [(4.0, 10.0, 0.9), (10.0, 14.0, 0.4)]


def test_a_video_without_shots_keeps_the_moments_extent_with_a_note() -> None:
    s = with_shots(Scripted({"v": [(4.5, 7.5, 0.9)]}), v=None)
    (res,) = s.search_results([q()], top_k=5)
    (m,) = res.moments
    assert (m.start, m.end, m.score) == (4.5, 7.5, 0.9)
    assert m.evidence.to_dict()["note"] == NO_SHOTS


def test_a_query_whose_only_video_failed_on_the_backend_is_marked_failed() -> None:
    (res,) = Scripted({"v": BackendError("endpoint down")}).search_results([q()], top_k=5)
    assert res.moments == [] and res.backend_failed is True and res.reason == "v: endpoint down"
    both = Scripted({"v": BackendError("endpoint down"), "w": [(0.0, 2.0, 0.5)]})
    (res,) = both.search_results([q()], top_k=5)
    assert res.backend_failed is False and len(res.moments) == 1


# -- input checks, defaults and the arguments each scorer hook gets ------------------------------


def twelve() -> Scripted:
    return Scripted({"a": [(i, i + 1, 1.0 - i / 100) for i in range(12)]})


def test_top_k_defaults_to_ten_and_one_is_allowed() -> None:
    assert len(search(twelve(), [q()])[0].moments) == 10
    assert len(twelve().search_results([q()])[0].moments) == 10
    assert len(twelve().search([q()])[0]) == 10
    assert [(m.start, m.score) for m in twelve().search([q()], top_k=1)[0]] == [(0, 1.0)]


class Recording(Scripted):
    """Records what the engine hands each hook; a re-ranker's pool is one window more than top_k."""

    def __init__(self, videos: dict[str, Any]) -> None:
        super().__init__(videos)
        self.calls: list[tuple[Any, ...]] = []

    def prepare(self, queries: Sequence[QueryInput], vids: Sequence[str] | None) -> list[Any]:
        self.calls.append(("prepare", [x.text for x in queries], vids))
        return [f"prepared {x.text}" for x in queries]

    def candidates(self, prepared: Any, vids: Sequence[str] | None, top_k: int) -> list[Candidate]:
        self.calls.append(("candidates", prepared, vids, top_k))
        return super().candidates(prepared, vids, top_k)

    def windows_per_video(self, top_k: int) -> int:
        return top_k + 1

    def score(self, prepared: Any, candidate: Candidate, max_windows: int) -> Curve | list[Moment]:
        self.calls.append(("score", prepared, candidate.vid, max_windows))
        return super().score(prepared, candidate, max_windows)

    def finish(self, prepared: Any, moments: list[Moment], top_k: int) -> list[Moment]:
        self.calls.append(("finish", prepared, [(m.vid, m.score) for m in moments], top_k))
        return moments


def test_each_hook_gets_the_prepared_query_the_grounding_videos_and_top_k() -> None:
    s = Recording({"a": [(0, 1, 0.9)], "b": [(0, 1, 0.5), (2, 3, 0.7)], "c": [(0, 1, 0.1)]})
    (res,) = s.search_results([q("x")], top_k=2, vids=["b", "c"])
    assert s.calls == [("prepare", ["x"], ["b", "c"]),
                       ("candidates", "prepared x", ["b", "c"], 2),
                       ("score", "prepared x", "b", 3), ("score", "prepared x", "c", 3),
                       ("finish", "prepared x", [("b", 0.7), ("b", 0.5), ("c", 0.1)], 2)]
    assert [(m.vid, m.score) for m in res.moments] == [("b", 0.7), ("b", 0.5)]


def test_a_scorer_preparing_the_wrong_number_of_queries_is_an_error() -> None:
    class Short(Scripted):
        def prepare(self, queries: Sequence[QueryInput], vids: Sequence[str] | None) -> list[Any]:
            return ["x"]  # one item for two queries: an answer would silently go missing

    with pytest.raises(ValueError):
        Short({"a": [(0, 1, 1.0)]}).search_results([q("x"), q("y")])


# -- reasons, backend errors and the log ------------------------------------------------------------


def test_failed_videos_are_joined_into_the_reason_and_backend_errors_kept_typed() -> None:
    down = BackendError("endpoint down")
    s = Scripted({"a": down, "b": BenchError("bad frame"), "c": [(0, 1, 0.5)]})
    (res,) = s.search_results([q()])
    assert res.reason == "a: endpoint down; b: bad frame"
    assert len(res.backend_errors) == 1 and res.backend_errors[0] is down
    assert res.backend_failed is False and [m.vid for m in res.moments] == ["c"]
    (plain,) = Scripted({"c": [(0, 1, 0.5)]}).search_results([q()])
    assert plain.backend_errors == [] and plain.reason is None


def test_a_query_with_no_candidate_video_is_a_plain_miss() -> None:
    (res,) = Scripted({"a": [(0, 1, 0.5)]}).search_results([q()], vids=[])
    assert res == QueryResult([], None, [], backend_failed=False)


def test_a_reason_is_logged_once_per_scorer_naming_the_query(caplog: pytest.LogCaptureFixture) -> None:
    s = Scripted({"a": [(0, 1, 1.0)]})
    queries = [QueryInput(text=None, qid="q1"), QueryInput(text="x", qid="q2"), QueryInput(text="", qid="q3")]
    with caplog.at_level(logging.WARNING, logger="bench"):
        s.search_results(queries)
        s.search_results(queries)
        Scripted({"a": [(0, 1, 1.0)]}).search_results([QueryInput(text=None)])
    assert [r.getMessage() for r in caplog.records if r.name == "bench"] == [
        "scripted: needs text (query 'q1'); no moments returned",
        "scripted: needs text; no moments returned"]
    assert "search" in dir(s)  # the engine's note of what it logged leaves the scorer a plain object


# -- timing ---------------------------------------------------------------------------------------


class Timed(Scripted):
    """Times each video's scoring as an ``llm`` stage; ``workers=None`` keeps the protocol's
    default concurrency."""

    def __init__(self, videos: dict[str, Any], workers: int | None = None) -> None:
        super().__init__(videos)
        self.concurrent = workers

    def score(self, prepared: Any, candidate: Candidate, max_windows: int) -> Curve | list[Moment]:
        with stage("llm", items=1):
            return super().score(prepared, candidate, max_windows)

    def concurrency(self) -> int:
        return EngineSearch.concurrency(self) if self.concurrent is None else self.concurrent


def test_each_answered_query_is_one_search_stage_item() -> None:
    rec = TimingRecorder()
    with recording(rec):
        Scripted({"a": [(0, 1, 1.0)]}).search_results([q("x"), q(None), q("y")])
    assert set(rec.stages) == {"search"}
    assert (rec.stages["search"].calls, rec.stages["search"].items) == (2, 2)


def test_stages_timed_while_scoring_reach_the_callers_recorder() -> None:
    # One candidate at a time (the default) is scored in the calling thread; a concurrent
    # scorer's candidates each run in a copy of the caller's context, so their stages count too.
    three = {v: [(0, 1, 0.5)] for v in "abc"}
    for scorer, calls in ((Timed(three), 3), (Timed({"a": [(0, 1, 0.5)]}, workers=4), 1),
                          (Timed(three, workers=2), 3)):
        rec = TimingRecorder()
        with recording(rec):
            scorer.search_results([q()])
        assert rec.stages["llm"].calls == calls and rec.stages["search"].calls == 1


# -- early stop on bounds, and concurrent candidates ---------------------------------------------


def test_a_video_whose_bound_cannot_beat_the_top_k_th_moment_is_not_scored() -> None:
    # exactly top_k moments are enough to stop
    s = Scripted({"a": [(0, 1, 1.0)], "b": [(0, 1, 0.5)]}, bounds={"a": 1.0, "b": 0.5})
    assert [m.vid for m in s.search([q()], top_k=1)[0]] == ["a"] and s.scored == ["a"]
    # a bound that could at best tie the top_k-th moment cannot beat it either
    s = Scripted({"a": [(0, 1, 0.5)], "b": [(0, 1, 0.5)]}, bounds={"a": 0.5, "b": 0.5})
    assert [m.vid for m in s.search([q()], top_k=1)[0]] == ["a"] and s.scored == ["a"]


def test_the_early_stop_reads_the_best_moments_when_unbounded_videos_came_first() -> None:
    # a and b carry no bound and are scored first; c's bound (0.5) beats a's 0.3, the second
    # best so far, so c must be scored although b's 0.9 came after a's 0.3.
    s = Scripted({"a": [(0, 1, 0.3)], "b": [(0, 1, 0.9)], "c": [(0, 1, 0.5)]}, bounds={"c": 0.5})
    assert [(m.vid, m.score) for m in s.search([q()], top_k=2)[0]] == [("b", 0.9), ("c", 0.5)]


def test_a_video_that_cannot_enter_is_skipped_and_the_next_ones_still_looked_at() -> None:
    # c's bound cannot beat the two moments found; d, with no bound, comes after it and wins.
    videos = {"a": [(0, 1, 0.9)], "b": [(0, 1, 0.8)], "c": [(0, 1, 0.5)], "d": [(0, 1, 0.95)]}
    s = Scripted(videos, bounds={"c": 0.5})
    assert [(m.vid, m.score) for m in s.search([q()], top_k=2)[0]] == [("d", 0.95), ("a", 0.9)]
    assert s.scored == ["a", "b", "d"]


def test_bounds_keep_a_concurrent_scorer_to_one_video_at_a_time_with_the_early_stop() -> None:
    videos = {"a": [(0, 1, 1.0), (2, 3, 0.9)], "b": [(0, 1, 0.8)], "c": [(0, 1, 0.4)]}
    s = Scripted(videos, bounds={"a": 1.0, "b": 0.8, "c": 0.5}, workers=4)
    (res,) = s.search_results([q()], top_k=2)
    assert s.scored == ["a"] and [(m.vid, m.score) for m in res.moments] == [("a", 1.0), ("a", 0.9)]


class Crowd(Scripted):
    """Counts the videos being scored at once: each holds its slot for ``HOLD_S`` so that the
    others overlap it, or until more than ``workers`` run at once (the answer is then known)."""

    HOLD_S = 0.1

    def __init__(self, videos: dict[str, Any], workers: int) -> None:
        super().__init__(videos, workers=workers)
        self.running = self.peak = 0
        self.lock = threading.Lock()
        self.crowded = threading.Event()

    def score(self, prepared: Any, candidate: Candidate, max_windows: int) -> Curve | list[Moment]:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            if self.running > self.workers:
                self.crowded.set()
        try:
            self.crowded.wait(self.HOLD_S)
            return super().score(prepared, candidate, max_windows)
        finally:
            with self.lock:
                self.running -= 1


def test_a_concurrent_scorer_scores_up_to_its_concurrency_at_once() -> None:
    for n in (2, 3):
        s = Crowd({v: [(0, 1, 0.5)] for v in "abc"[:n]}, workers=2)
        (res,) = s.search_results([q()])
        assert s.peak == 2 and sorted(s.scored) == list("abc"[:n]) and len(res.moments) == n


# -- extents: hits snapped to shots, notes, snapping off ----------------------------------------


def test_more_hits_are_proposed_when_hits_snapped_to_one_shot_collapse() -> None:
    # Plateaus 3-7 s (1.0) and 8-12 s (0.9) both take the shot 3-12 s, so the second collapses
    # into the first; the plateau 13-16 s (0.8) takes the shot 12-16 s and fills in.
    scores = np.zeros(20)
    scores[3:7], scores[8:12], scores[13:16] = 1.0, 0.9, 0.8
    curve = Curve(np.arange(20.0), scores, 20.0, 1.0, PLATEAU, lambda w: NoEvidence())
    s = with_shots(Scripted({"v": curve}), v=Shots(20.0, [3.0, 12.0, 16.0]))
    (res,) = s.search_results([q()], top_k=2)
    assert [(m.start, m.end, m.score) for m in res.moments] == [(3.0, 12.0, 1.0), (12.0, 16.0, 0.8)]


def test_a_curve_keeps_its_own_duration_and_sample_length() -> None:
    # 1-s samples every 2 s of an 8.5-s video: the peak at 4 s covers 4-5 s (not the 2-s gap),
    # the one at 8 s ends with the video at 8.5 s.
    times = np.array([0.0, 2.0, 4.0, 6.0, 8.0])
    curve = Curve(times, np.array([0, 0, 0.9, 0, 0.5]), 8.5, 1.0, PLATEAU, lambda w: NoEvidence())
    (res,) = Scripted({"v": curve}).search_results([q()], top_k=2)
    assert [(m.start, m.end, m.score) for m in res.moments] == [(4.0, 5.0, 0.9), (8.0, 8.5, 0.5)]


def test_a_curve_hit_in_a_video_without_shots_adds_the_note_to_its_evidence() -> None:
    curve = np.zeros(20)
    curve[2] = 1.0
    s = with_shots(Scripted({"v": curve}), v=None)
    (res,) = s.search_results([q()], top_k=1)
    (m,) = res.moments
    assert (m.start, m.end) == (2.0, 3.0)
    assert m.evidence.to_dict() == {"method": "none", "note": f"2; {NO_SHOTS}"}


def test_explicit_moments_snapped_to_one_shot_collapse_into_the_best() -> None:
    s = with_shots(Scripted({"v": [(4.5, 7.5, 0.9), (5.0, 9.0, 0.4)]}), v=SHOTS)
    (res,) = s.search_results([q()], top_k=5)
    assert [(m.vid, m.start, m.end, m.score) for m in res.moments] == [("v", 4.0, 10.0, 0.9)]


def test_an_explicit_moment_placed_without_a_note_keeps_its_evidence() -> None:
    frames = FrameEvidence((FrameMatch(5.0, 0.9),), 5.0)
    s = with_shots(Scripted({"v": [Moment("v", 4.5, 7.5, 0.9, frames)]}), v=SHOTS)
    (m,) = s.search([q()], top_k=5)[0]
    assert (m.start, m.end) == (4.0, 10.0) and m.evidence == frames and "notes" not in m.evidence.to_dict()


def test_a_video_missing_from_the_extents_keeps_its_moments() -> None:
    s = with_shots(Scripted({"v": [(4.5, 7.5, 0.9)], "w": [(4.5, 7.5, 0.8)]}), v=SHOTS)
    (res,) = s.search_results([q()], top_k=5)
    assert [(m.vid, m.start, m.end) for m in res.moments] == [("v", 4.0, 10.0), ("w", 4.5, 7.5)]
    assert res.moments[1].evidence.to_dict() == {"method": "none"}


def test_use_curve_turns_snapping_off() -> None:
    # Overlapping explicit moments are kept as they are: nothing is placed, so nothing is suppressed.
    config = ExtentConfig(use=["curve"])
    s = Scripted({"v": [(0.0, 4.0, 0.9), (1.0, 4.0, 0.5)]})
    s.extents = VideoExtents(config)
    s.extents.bounds["v"] = build_boundaries(20.0, SHOTS, [], config)
    (res,) = s.search_results([q()], top_k=5)
    assert [(m.start, m.end, m.score) for m in res.moments] == [(0.0, 4.0, 0.9), (1.0, 4.0, 0.5)]


def test_by_default_videos_are_scored_one_at_a_time_in_the_calling_thread() -> None:
    # a scorer that says nothing about concurrency may keep state that is not thread-safe
    seen: list[int] = []

    class Plain(Timed):
        def score(self, prepared: Any, candidate: Candidate, max_windows: int) -> Curve | list[Moment]:
            seen.append(threading.get_ident())
            return super().score(prepared, candidate, max_windows)

    scorer = Plain({v: [(0, 1, 0.5)] for v in "abc"})
    assert scorer.concurrency() == 1
    scorer.search([q()])
    assert seen == [threading.get_ident()] * 3
