"""The workspace: each configuration built once per process, indexing skipped when the videos
are the same, unavailability remembered, locks per retriever (no lock across all of them),
and fusion members shared with everyone else and re-indexed when someone moved them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from bench.engine.search import QueryResult
from bench.errors import BadInput, Unavailable
from bench.retrievers.base import Retriever, RetrieverConfig
from bench.retrievers.fusion import Fusion
from bench.types import Moment, QueryInput, Video
from bench.workspace import Workspace


class Recorder:
    """Answers one moment per indexed video the query may search, and records its calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.device = "cpu"
        self.index_calls: list[list[str]] = []
        self.indexed: list[str] = []
        self.fail_next_index = False

    def index(self, videos: Sequence[Video], store: Any) -> None:
        self.index_calls.append([v.vid for v in videos])
        if self.fail_next_index:
            self.fail_next_index = False
            raise OSError("disk full")
        self.indexed = [v.vid for v in videos]

    def search(self, queries: Sequence[QueryInput], *, top_k: int = 10,
               vids: Sequence[str] | None = None) -> list[list[Moment]]:
        return [r.moments for r in self.search_results(queries, top_k=top_k, vids=vids)]

    def search_results(self, queries: Sequence[QueryInput], *, top_k: int = 10,
                       vids: Sequence[str] | None = None) -> list[QueryResult]:
        hits = [Moment(v, 1.0, 2.0, 1.0 / (i + 1))
                for i, v in enumerate(x for x in self.indexed if vids is None or x in vids)]
        # the reason says what the retriever held when it answered
        return [QueryResult(hits[:top_k], f"{self.name} saw {self.indexed}") for _ in queries]

    def stats(self) -> dict[str, Any]:
        return {}

    def reset_stats(self) -> None:
        return None

    def provenance(self) -> dict[str, Any]:
        return {"family": "recorder"}


class Builder:
    """Builds a Recorder per configuration (a Fusion for the fusion family, on the workspace)."""

    def __init__(self) -> None:
        self.made: dict[str, Any] = {}

    def __call__(self, config: RetrieverConfig, device: str, ws: Workspace) -> Retriever:
        if config.name.startswith("missing") or config.name == "clip-frames-vit-b32":
            raise Unavailable(f"{config.name}: weights not found")
        r: Any = (Fusion(config, device, workspace=ws) if config.family == "fusion"
                  else Recorder(config.name))
        self.made[config.name] = r
        return r  # type: ignore[no-any-return]


def cfg(name: str, family: str = "recorder", **params: Any) -> RetrieverConfig:
    return RetrieverConfig(name=name, family=family, params=params)


def videos(*vids: str) -> list[Video]:
    return [Video(vid=v, path=f"/videos/{v}.mp4", duration=30.0) for v in vids]


def workspace(build: Any) -> Workspace:
    return Workspace(device="cpu", store=object(), build=build)  # type: ignore[arg-type]


Q = [QueryInput(text="x", qid="q")]


def test_builds_once_and_reindexes_only_when_the_videos_change() -> None:
    build = Builder()
    ws = workspace(build)
    r = cfg("r")
    out, took = ws.search(r, videos("a", "b"), Q, top_k=5, vids=["b"])
    assert [[m.vid for m in r.moments] for r in out] == [["b"]] and took >= 0.0
    ws.search(r, videos("b", "a"), Q, top_k=5, vids=None)  # the same videos in another order
    assert ws.builds == {"r": 1} and build.made["r"].index_calls == [["a", "b"]]
    ws.search(r, videos("a", "b", "up"), Q, top_k=5, vids=None)
    assert ws.index(r, videos("a", "b")) is build.made["r"]
    assert ws.index("r", videos("a", "b")) is build.made["r"]  # known by name now
    moved = [Video(vid="a", path="/elsewhere/a.mp4"), *videos("b")]
    ws.index(r, moved)  # same vid, another file: indexed again
    assert build.made["r"].index_calls == [["a", "b"], ["a", "b", "up"], ["a", "b"], ["a", "b"]]
    assert ws.loaded() == ["r"] and ws.retriever("r") is build.made["r"]
    assert ws.builds == {"r": 1}


def test_names_are_resolved_from_models() -> None:
    build = Builder()
    ws = workspace(build)
    assert ws.retriever("bm25-text") is build.made["bm25-text"]
    with pytest.raises(BadInput, match="unknown retriever 'nope'"):
        ws.retriever("nope")
    assert ws.builds == {"bm25-text": 1}


def test_a_failed_index_call_is_not_remembered() -> None:
    build = Builder()
    ws = workspace(build)
    r = ws.retriever(cfg("r"))
    r.fail_next_index = True  # type: ignore[attr-defined]
    with pytest.raises(OSError, match="disk full"):
        ws.index(cfg("r"), videos("a"))
    ws.index(cfg("r"), videos("a"))
    ws.index(cfg("r"), videos("a"))
    assert build.made["r"].index_calls == [["a"], ["a"]]


def test_unavailable_is_remembered_with_its_reason() -> None:
    build = Builder()
    ws = workspace(build)
    for _ in range(2):
        with pytest.raises(Unavailable, match="^missing-llm: weights not found$"):
            ws.search(cfg("missing-llm"), videos("a"), Q, top_k=1, vids=None)
    with pytest.raises(Unavailable, match="^missing-llm: weights not found$"):
        ws.retriever("missing-llm")  # by name too, without reading models/
    assert ws.builds == {"missing-llm": 1} and ws.loaded() == []


def test_concurrent_callers_share_one_build_and_no_lock_spans_all_retrievers() -> None:
    slow_started, release = threading.Event(), threading.Event()
    inner = Builder()

    def build(config: RetrieverConfig, device: str, ws: Workspace) -> Retriever:
        if config.name == "slow":
            slow_started.set()
            assert release.wait(10)
        return inner(config, device, ws)

    ws = workspace(build)
    got: list[Retriever] = []
    threads = [threading.Thread(target=lambda: got.append(ws.retriever(cfg("slow"))))
               for _ in range(3)]
    for t in threads:
        t.start()
    assert slow_started.wait(10)
    # while "slow" is being built, another retriever builds and searches
    fast: list[list[QueryResult]] = []
    other = threading.Thread(target=lambda: fast.append(
        ws.search(cfg("fast"), videos("a"), Q, top_k=1, vids=None)[0]))
    other.start()
    other.join(10)
    done_before_release = not other.is_alive()
    release.set()
    other.join(10)
    assert done_before_release and [m.vid for m in fast[0][0].moments] == ["a"]
    for t in threads:
        t.join(10)
    assert len(got) == 3 and all(r is inner.made["slow"] for r in got)
    assert ws.builds == {"slow": 1, "fast": 1}


def test_the_store_is_opened_once(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENEBENCH_CACHE", str(tmp_path))
    ws = Workspace(device="cpu", build=Builder())
    stores = []
    threads = [threading.Thread(target=lambda: stores.append(ws.store)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(stores) == 4 and all(s is stores[0] for s in stores)


# -- fusion members from the workspace --------------------------------------------------------

def fusion(name: str, members: list[str], **params: Any) -> RetrieverConfig:
    return cfg(name, "fusion", members=members, **params)


def test_fusions_share_their_members_with_everyone() -> None:
    build = Builder()
    ws = workspace(build)
    one = ws.retriever(fusion("one", ["bm25-text", "dense-text-minilm"]))
    two = ws.retriever(fusion("two", ["bm25-text", "clip-frames-vit-b32"]))
    ws.retriever(fusion("three", ["clip-frames-vit-b32", "dense-text-minilm"]))
    assert ws.builds == {"one": 1, "two": 1, "three": 1, "bm25-text": 1,
                         "dense-text-minilm": 1, "clip-frames-vit-b32": 1}
    assert isinstance(one, Fusion) and isinstance(two, Fusion)
    assert one.members["bm25-text"].retriever is ws.retriever("bm25-text")  # type: ignore[attr-defined]
    assert two.members["bm25-text"].retriever is ws.retriever("bm25-text")  # type: ignore[attr-defined]
    assert two.unavailable == {"clip-frames-vit-b32": "clip-frames-vit-b32: weights not found"}
    with pytest.raises(Unavailable, match="member clip-frames-vit-b32 is unavailable"):
        ws.retriever(fusion("strict", ["bm25-text", "clip-frames-vit-b32"], require_all=True))


def test_a_fusion_searches_its_members_on_its_own_videos() -> None:
    build = Builder()
    ws = workspace(build)
    spec = fusion("fused", ["bm25-text", "dense-text-minilm"])
    ws.index(spec, videos("a", "b"))
    bm25 = build.made["bm25-text"]
    assert bm25.index_calls == [["a", "b"]]
    # someone else moves the shared member to other videos between the fusion's calls
    ws.search("bm25-text", videos("c"), Q, top_k=5, vids=None)
    out, _ = ws.search(spec, videos("a", "b"), Q, top_k=5, vids=None)
    assert {m.vid for m in out[0].moments} == {"a", "b"}
    assert {name for m in out[0].moments for name in m.evidence.members} == {  # type: ignore[attr-defined]
        "bm25-text", "dense-text-minilm"}
    assert bm25.index_calls == [["a", "b"], ["c"], ["a", "b"]]
    assert build.made["dense-text-minilm"].index_calls == [["a", "b"]]  # not moved: not redone
    # moved once more: the member answers from the fusion's videos again
    ws.index("bm25-text", videos("d"))
    (result,) = build.made["fused"].members["bm25-text"].search_results(Q, top_k=5)
    assert result.reason == "bm25-text saw ['a', 'b']"
    assert ws.builds["bm25-text"] == 1
