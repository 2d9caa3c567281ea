"""Adding a family takes one scorer module, one registry line and one YAML: the example
``clock`` family (tests/example_family.py) gets input checks, proposals, ranking, ``top_k``
and reasons from the engine, and is built like any shipped configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import BadInput
from bench.retrievers import FAMILIES, build_retriever, get_config
from bench.retrievers.base import Retriever
from bench.types import QueryInput, Video
from tests.example_family import named_time_s

YAML = """\
name: clock-2fps
family: clock
description: finds the time a query names (the example family of docs/architecture.md)
params: {fps: 2.0, width_s: 2.0}
"""

VIDEOS = [Video(vid="talk", duration=60.0), Video(vid="teaser", duration=20.0)]


@pytest.fixture(scope="module")
def clock(tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    if "clock" not in FAMILIES:  # the one registry line
        FAMILIES.register("clock", "tests.example_family:Clock")
    path = tmp_path_factory.mktemp("models") / "clock-2fps.yaml"
    path.write_text(YAML, encoding="utf-8")
    r = build_retriever(get_config(str(path)), "cpu")
    r.index(VIDEOS, store=None)  # type: ignore[arg-type]  # the clock keeps nothing in a store
    return r


def test_named_times() -> None:
    assert named_time_s("the moment at 01:30") == 90.0
    assert named_time_s("1:02:03 into the film") == 3723.0
    assert named_time_s("about 12.5 s in") == 12.5
    assert named_time_s("no time here") is None


def test_it_is_a_retriever_and_the_engine_shapes_its_moments(clock: Retriever) -> None:
    assert isinstance(clock, Retriever)
    found, none = clock.search_results([QueryInput(text="the moment at 00:30", qid="a"),
                                        QueryInput(text="the sad part", qid="b")], top_k=3, vids=["talk"])
    top = found.moments[0]
    # Samples every 0.5 s; exp(-((t - 30) / 2)^2) >= 0.5 (half the peak above the ~0 median)
    # for t in 28.5..31.5, covering [28.5, 32.0); widened to the 4 s minimum around it.
    assert (top.vid, top.start, top.end) == ("talk", pytest.approx(28.25), pytest.approx(32.25))
    # the mean of the best half (4 of 7 samples): 1, e^-1/16 twice, e^-1/4
    assert top.score == pytest.approx((1 + 2 * 0.939413 + 0.778801) / 4, abs=1e-5)
    assert top.evidence.describe() == "the query names 30 s"
    assert len(found.moments) <= 3 and found.reason is None
    assert [m.score for m in found.moments] == sorted((m.score for m in found.moments), reverse=True)
    assert none.moments == [] and none.reason == "the query names no time (write 01:30 or 90 s)"


def test_corpus_search_leaves_out_videos_that_are_too_short(clock: Retriever) -> None:
    (moments,) = clock.search([QueryInput(text="at 45 s")], top_k=5)
    assert moments and {m.vid for m in moments} == {"talk"}
    (moments,) = clock.search([QueryInput(text="at 00:10")], top_k=5)
    assert {m.vid for m in moments} == {"talk", "teaser"}


def test_the_engine_checks_the_call(clock: Retriever, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="top_k"):
        clock.search([QueryInput(text="at 00:10")], top_k=0)
    with pytest.raises(BadInput, match="not indexed"):
        clock.search([QueryInput(text="at 00:10")], vids=["nope"])
    path = tmp_path / "clock.yaml"
    path.write_text(YAML, encoding="utf-8")
    fresh = build_retriever(get_config(str(path)), "cpu")
    with pytest.raises(BadInput, match="nothing indexed"):
        fresh.search([QueryInput(text="at 00:10")])
