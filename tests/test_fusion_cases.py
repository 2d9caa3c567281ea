"""Fusion behaviours that no other test pins (found by mutation testing): the device reaches
every member, weights and tie order survive the engine, a member failing at indexing is
recorded by name, backend failures are reported, and shared members keep their videos; in
fuse(), equal weighted scores, visiting order, tie-breaks and the IoU threshold's bound."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from bench.engine.search import QueryResult
from bench.errors import BackendError, BadInput, Unavailable
from bench.retrievers.base import Retriever
from bench.retrievers.fusion import Fusion, fuse
from bench.types import Moment, QueryInput, Video
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


# -- fuse() -----------------------------------------------------------------------------------

def test_weighted_members_with_equal_scores_weigh_in_full() -> None:
    # All of a's scores are equal: min-max gives no spread, so each counts as 1 (times its weight),
    # and the tie keeps a's own order.
    out = fuse({"a": [mo("w", 0, 5, 0.8), mo("v", 0, 5, 0.8)]}, method="weighted", weights={"a": 0.5})
    assert [(m.vid, m.score) for m in out] == [("w", 0.5), ("v", 0.5)]
    assert [m.evidence.members["a"].rank for m in out] == [1, 2]
    # A spread of at most 1e-12 is no spread either.
    out = fuse({"a": [mo("v", 0, 5, 1e-12), mo("w", 0, 5, 0.0)]}, method="weighted")
    assert [m.score for m in out] == [1.0, 1.0]


def test_a_zero_weight_member_leaves_the_others_in() -> None:
    out = fuse({"a": A, "b": B}, weights={"a": 0.0})
    assert [(m.vid, m.start, m.end) for m in out] == [("v", 11, 21), ("w", 0, 5)]
    assert [m.score for m in out] == pytest.approx([1 / 61, 1 / 62])


def test_a_moment_joins_the_stronger_overlapping_moment_first() -> None:
    # b's (5-15) overlaps both of a's moments by IoU 1/3. Visited by descending contribution,
    # it meets a's first place (0-10) before a's second (10-20).
    a = [mo("v", 0, 10, 0.9), mo("v", 10, 20, 0.5)]
    out = fuse({"a": a, "b": [mo("v", 5, 15, 1.0)]})
    assert [(m.start, m.end) for m in out] == pytest.approx([(2.5, 12.5), (10, 20)])
    assert [m.score for m in out] == pytest.approx([2 / 61, 1 / 62])
    assert set(out[0].evidence.members) == {"a", "b"}


def test_equal_contributions_go_by_member_name_not_by_order_given() -> None:
    out = fuse({"b": [mo("z", 0, 5, 1.0)], "a": [mo("y", 0, 5, 1.0)]})
    assert [m.vid for m in out] == ["y", "z"]


def test_iou_at_the_threshold_merges_and_the_default_is_0_3() -> None:
    # IoU of 0-10 and 0-3 is exactly 0.3; of 0-10 and 0-5 exactly 0.5.
    assert len(fuse({"a": [mo("v", 0, 10, 1)], "b": [mo("v", 0, 3, 1)]})) == 1
    assert len(fuse({"a": [mo("v", 0, 10, 1)], "b": [mo("v", 0, 2.9, 1)]})) == 2
    assert len(fuse({"a": [mo("v", 0, 10, 1)], "b": [mo("v", 0, 5, 1)]}, iou_threshold=0.5)) == 1


# -- the retriever: defaults, parameters and what is passed through ---------------------------

def test_device_defaults_to_cpu() -> None:
    cfg = config(["a"])
    f = Fusion(cfg, members={"a": Fake("a", {})})
    assert f.device == "cpu" and f.config is cfg
    assert Fusion.from_retrievers(cfg, {"a": Fake("a", {})}).device == "cpu"


def test_no_member_available_names_every_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def build(name: str, device: str = "auto") -> Retriever:
        raise Unavailable(f"{name}: weights not found")

    monkeypatch.setattr("bench.retrievers.build_retriever", build)
    with pytest.raises(Unavailable) as exc:
        Fusion(config(["a", "b"]), "cpu")
    assert str(exc.value) == ("fusion-test: no member is available "
                              "(a: a: weights not found; b: b: weights not found)")


class _Indexed(Fake):
    """A member that records the store it indexes into and reports backend errors per video."""

    def __init__(self, name: str, errors: dict[str, BackendError]) -> None:
        super().__init__(name, {})
        self.errors = errors
        self.store: Any = None

    def index(self, videos: Sequence[Video], store: Any) -> None:
        super().index(videos, store)
        self.store = store

    def index_backend_errors(self) -> dict[str, BackendError]:
        return self.errors


def test_members_index_into_the_store_and_the_first_backend_error_per_video_is_kept() -> None:
    ea, eb, ew = BackendError("a on v"), BackendError("b on v"), BackendError("b on w")
    members: dict[str, Retriever] = {"a": _Indexed("a", {"v": ea}), "b": _Indexed("b", {"v": eb, "w": ew})}
    f = Fusion.from_retrievers(config(["a", "b"]), members)
    store = object()
    f.index([Video(vid="v"), Video(vid="w")], store)  # type: ignore[arg-type]
    assert members["a"].store is store and members["b"].store is store  # type: ignore[attr-defined]
    assert f.index_backend_errors() == {"v": ea, "w": ew}


class _Asked(Fake):
    """A member that records the top_k each search asks it for."""

    def __init__(self, name: str, answers: dict[str, list[Moment]]) -> None:
        super().__init__(name, answers)
        self.asked: list[int] = []

    def search_results(self, queries: Sequence[QueryInput], *, top_k: int = 10,
                       vids: Sequence[str] | None = None) -> list[QueryResult]:
        self.asked.append(top_k)
        return super().search_results(queries, top_k=top_k, vids=vids)


TWELVE = [mo(f"v{i:02d}", 0, 5, 1.0 - i / 100) for i in range(12)]


def test_top_k_defaults_to_10_and_members_are_asked_for_at_least_it() -> None:
    member = _Asked("a", {"bread": TWELVE})
    f = Fusion.from_retrievers(config(["a"]), {"a": member})
    (res,) = f.search_results(BREAD)
    assert [m.vid for m in res.moments] == [f"v{i:02d}" for i in range(10)]
    assert [len(ms) for ms in f.search(BREAD)] == [10]
    assert [len(ms) for ms in f.search(BREAD, top_k=2)] == [2]
    (res,) = f.search_results(BREAD, top_k=60)
    assert len(res.moments) == 12
    assert member.asked == [50, 50, 50, 60]  # member_top_k, or the caller's top_k when larger


def test_search_uses_the_configured_method_and_span() -> None:
    members: dict[str, Retriever] = {"a": Fake("a", {"bread": A}), "b": Fake("b", {"bread": B})}
    f = Fusion.from_retrievers(config(["a", "b"], method="weighted", span="union"), members)
    (res,) = f.search_results(BREAD)
    # min-max: each first place 1, each second 0; the agreed first places span 10-21.
    assert [(m.vid, m.start, m.end, m.score) for m in res.moments] == [
        ("v", 10, 21, 2.0), ("v", 40, 50, 0.0), ("w", 0, 5, 0.0)]


def test_search_uses_the_configured_k_and_iou_threshold() -> None:
    members: dict[str, Retriever] = {"a": Fake("a", {"bread": A}), "b": Fake("b", {"bread": B})}
    f = Fusion.from_retrievers(config(["a", "b"], k=1.0, iou_threshold=0.9), members)
    (res,) = f.search_results(BREAD)
    # 10-20 and 11-21 overlap by IoU 9/11 < 0.9: apart; rank r weighs 1 / (1 + r).
    assert [(m.vid, m.start) for m in res.moments] == [("v", 10), ("v", 11), ("v", 40), ("w", 0)]
    assert [m.score for m in res.moments] == pytest.approx([1 / 2, 1 / 2, 1 / 3, 1 / 3])


def test_a_reason_only_when_nothing_was_fused() -> None:
    members: dict[str, Retriever] = {"a": Fake("a", {"bread": A}), "b": Fake("b", {})}
    (res,) = Fusion.from_retrievers(config(["a", "b"]), members).search_results(BREAD)
    assert len(res.moments) == 2 and res.reason is None


class _Erring(Fake):
    """A member that answers, but whose backend failed on one video."""

    def __init__(self, name: str, answers: dict[str, list[Moment]], error: BackendError) -> None:
        super().__init__(name, answers)
        self.error = error

    def search_results(self, queries: Sequence[QueryInput], *, top_k: int = 10,
                       vids: Sequence[str] | None = None) -> list[QueryResult]:
        return [QueryResult(r.moments, r.reason, [self.error])
                for r in super().search_results(queries, top_k=top_k, vids=vids)]


def test_members_backend_errors_are_reported_with_the_fused_moments() -> None:
    ea, eb = BackendError("a: timeout on x"), BackendError("b: timeout on y")
    members: dict[str, Retriever] = {"a": _Erring("a", {"bread": A}, ea), "b": _Erring("b", {"bread": B}, eb)}
    (res,) = Fusion.from_retrievers(config(["a", "b"]), members).search_results(BREAD)
    assert res.backend_errors == [ea, eb] and res.backend_failed is False and len(res.moments) == 3


def test_a_shared_member_takes_its_name_device_and_top_k() -> None:
    build = Builder()
    ws = workspace(build)
    spec = fusion("fused", ["bm25-text"])
    ws.index(spec, videos(*(f"v{i:02d}" for i in range(12))))
    shared = build.made["fused"].members["bm25-text"]
    assert (shared.name, shared.device) == ("bm25-text", "cpu")
    assert [len(ms) for ms in shared.search(Q)] == [10]
    assert [len(ms) for ms in shared.search(Q, top_k=2)] == [2]
    assert [len(r.moments) for r in shared.search_results(Q)] == [10]
    assert [len(r.moments) for r in shared.search_results(Q, top_k=2)] == [2]


def test_an_unknown_method_or_span_is_refused_not_taken_for_another() -> None:
    one = {"a": [Moment("v", 0.0, 5.0, 1.0)]}
    for bad in ({"method": "RRF"}, {"span": "Union"}):
        with pytest.raises(BadInput, match="method of rrf, weighted and a span of mean, best, union"):
            fuse(one, **bad)  # type: ignore[arg-type]
    assert fuse(one)[0].start == 0.0  # the defaults are valid
