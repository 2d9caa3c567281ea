"""Fusion behaviours that no other test pins (found by mutation testing): the device reaches
every member, weights and tie order survive the engine, a member failing at indexing is
recorded by name, backend failures are reported, and shared members keep their videos."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from bench.engine.search import QueryResult
from bench.errors import Unavailable
from bench.retrievers.base import Retriever
from bench.retrievers.fusion import Fusion
from bench.types import QueryInput, Video
from tests.test_fusion import A, B, Fake, config, mo
from tests.test_workspace import Builder, Q, fusion, videos, workspace

BREAD = [QueryInput(text="bread", qid=1)]


def test_members_are_built_on_the_fusions_device(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def build(name: str, device: str = "auto") -> Retriever:
        calls.append((name, device))
        return Fake(name, {})  # type: ignore[return-value]

    monkeypatch.setattr("bench.retrievers.build_retriever", build)
    Fusion(config(["a", "b"]), "cuda:1")
    assert calls == [("a", "cuda:1"), ("b", "cuda:1")]


def test_provenance_of_a_fusion_of_given_members() -> None:
    members: dict[str, Retriever] = {"a": Fake("a", {}), "b": Fake("b", {})}
    f = Fusion.from_retrievers(config(["a", "b"], weights={"b": 2.0}), members, device="cuda:1")
    assert f.provenance() == {
        "family": "fusion", "method": "rrf", "k": 60.0, "weights": {"b": 2.0}, "iou_threshold": 0.3,
        "span": "mean", "members": {"a": {"family": "fake", "random_init": False},
                                    "b": {"family": "fake", "random_init": True}},
        "unavailable": {}, "device": "cuda:1", "random_init": True}


def test_search_applies_the_configured_weights() -> None:
    members: dict[str, Retriever] = {"a": Fake("a", {"bread": A}), "b": Fake("b", {"bread": B})}
    f = Fusion.from_retrievers(config(["a", "b"], weights={"b": 0.0}), members)
    (res,) = f.search_results(BREAD, top_k=5)
    assert [(m.vid, m.start, m.end) for m in res.moments] == [("v", 10, 20), ("v", 40, 50)]


def test_search_keeps_fusions_tie_order_over_video_names() -> None:
    # Both first places weigh 1/61; fuse() puts member a's first, whatever the video is called.
    members: dict[str, Retriever] = {"a": Fake("a", {"bread": [mo("z", 0, 5, 1.0)]}),
                                     "b": Fake("b", {"bread": [mo("a", 0, 5, 1.0)]})}
    (res,) = Fusion.from_retrievers(config(["a", "b"]), members).search_results(BREAD, top_k=5)
    assert [m.vid for m in res.moments] == ["z", "a"]
    assert res.moments[0].score == res.moments[1].score == pytest.approx(1 / 61)


class _Down(Fake):
    """A member whose backend fails on every query, or that is found missing when indexing."""

    def __init__(self, name: str, missing: bool = False) -> None:
        super().__init__(name, {})
        self.missing = missing

    def index(self, videos: Sequence[Video], store: Any) -> None:
        if self.missing:
            raise Unavailable(f"{self.name}: weights not found")

    def search_results(self, queries: Sequence[QueryInput], *, top_k: int = 10,
                       vids: Sequence[str] | None = None) -> list[QueryResult]:
        return [QueryResult([], "endpoint down", backend_failed=True) for _ in queries]


def test_backend_failed_only_when_every_member_failed() -> None:
    down: dict[str, Retriever] = {"a": _Down("a"), "b": _Down("b")}
    (res,) = Fusion.from_retrievers(config(["a", "b"]), down).search_results(BREAD)
    assert res.backend_failed is True and res.reason == "a: endpoint down; b: endpoint down"
    half: dict[str, Retriever] = {"a": Fake("a", {"bread": A}), "b": _Down("b")}
    (res,) = Fusion.from_retrievers(config(["a", "b"]), half).search_results(BREAD)
    assert res.backend_failed is False and len(res.moments) == 2


def test_a_member_missing_at_indexing_is_recorded_by_name() -> None:
    members: dict[str, Retriever] = {"a": Fake("a", {"bread": A}), "b": _Down("b", missing=True)}
    f = Fusion.from_retrievers(config(["a", "b"]), members)
    f.index([Video(vid="v")], store=None)  # type: ignore[arg-type]
    assert f.unavailable == {"b": "b: weights not found"} and list(f.members) == ["a"]


def test_a_shared_member_searches_the_given_videos_and_what_it_holds() -> None:
    build = Builder()
    ws = workspace(build)
    # A fusion that has indexed nothing answers from what its shared member holds now.
    ws.index("bm25-text", videos("c"))
    fresh = ws.retriever(fusion("fresh", ["bm25-text"]))
    (res,) = fresh.members["bm25-text"].search_results(Q, top_k=5)  # type: ignore[union-attr]
    assert res.reason == "bm25-text saw ['c']"
    # Indexed on a and b, a search of video b alone gets b only.
    spec = fusion("fused", ["bm25-text"])
    ws.index(spec, videos("a", "b"))
    shared = build.made["fused"].members["bm25-text"]
    assert [[m.vid for m in ms] for ms in shared.search(Q, top_k=5, vids=["b"])] == [["b"]]
