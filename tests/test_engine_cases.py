"""The engine with hits snapped to shots (found by mutation testing): curve and explicit
moments placed at their shot, notes when a video has no shots, and a query whose only
video failed on the backend. Shots are given by hand: cuts at 4, 10 and 14 s of 20 s."""

from __future__ import annotations

import numpy as np

from bench.engine.extent import NO_SHOTS, ExtentConfig, VideoExtents, build_boundaries
from bench.errors import BackendError
from bench.video.shots import Shots
from tests.test_engine import Scripted, q

CONFIG = ExtentConfig(use=["shot"])


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
    s = with_shots(Scripted({"v": curve}), v=Shots(20.0, [4.0, 10.0, 14.0]))
    (res,) = s.search_results([q()], top_k=2)
    assert [(m.vid, m.start, m.end, m.score) for m in res.moments] == [
        ("v", 4.0, 10.0, 1.0), ("v", 10.0, 14.0, 0.8)]


def test_explicit_moments_take_their_shots_and_keep_their_scores() -> None:
    s = with_shots(Scripted({"v": [(4.5, 7.5, 0.9), (11.0, 13.0, 0.4)]}), v=Shots(20.0, [4.0, 10.0, 14.0]))
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
