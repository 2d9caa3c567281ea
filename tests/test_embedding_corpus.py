"""The corpus of per-video vectors behind clip-frames and xclip-clips corpus search: rows map
back to their videos, the best videos come first, and a large index is saved in the store
and loaded on the next run (rebuilt when damaged)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BadInput
from bench.index.corpus import EmbeddingCorpus, VideoVectors, pool_rows
from bench.index.vector import VectorIndex
from bench.store import FeatureStore
from bench.timing import TimingRecorder, recording


def unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def vv(vid: str, rows: list[np.ndarray]) -> VideoVectors:
    vectors = np.stack(rows).astype(np.float32) if rows else np.zeros((0, 3), np.float32)
    return VideoVectors(vid, f"id-{vid}", np.arange(len(rows), dtype=np.float64), vectors, 10.0)


X, Y, Z = unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)


def corpus(**kwargs: object) -> EmbeddingCorpus:
    c = EmbeddingCorpus(3, index_kind="flat", **kwargs)  # type: ignore[arg-type]
    c.add(vv("a", [Y, unit(1, 1, 0)]))  # its best match for X is 0.71
    c.add(vv("empty", []))
    c.add(vv("b", [unit(1, 0.1, 0), Z]))  # 0.995 for X
    c.add(vv("c", [Z]))  # 0 for X
    return c


def test_videos_come_by_their_best_row() -> None:
    c = corpus()
    assert len(c) == 5
    assert c.top_videos(X, rows=5, max_videos=10) == ["b", "a", "c"]
    assert c.top_videos(X, rows=5, max_videos=2) == ["b", "a"]
    # Only the 2 best rows (b's first, a's second) are looked at.
    assert c.top_videos(X, rows=2, max_videos=10) == ["b", "a"]
    # For Y, a's two rows come first (1 and 0.71), then b's first (0.1): a is listed once.
    assert c.top_videos(Y, rows=1, max_videos=10) == ["a"]  # row 0 is a result like any other
    assert c.top_videos(Y, rows=2, max_videos=10) == ["a"]
    assert c.top_videos(Y, rows=3, max_videos=10) == ["a", "b"]


def test_the_index_is_built_once_and_again_after_an_add() -> None:
    c = corpus()
    rec = TimingRecorder()
    with recording(rec):
        first = c.vector_index()
        assert c.vector_index() is first
        c.add(vv("d", [X]))
        assert c.vector_index() is not first
    assert rec.stages["index_build"].calls == 2 and rec.stages["index_build"].items == 5 + 6
    assert c.top_videos(X, rows=6, max_videos=1) == ["d"]


def test_an_empty_corpus_finds_nothing() -> None:
    c = EmbeddingCorpus(3, index_kind="flat")
    c.add(vv("empty", []))
    assert c.top_videos(X, rows=5, max_videos=5) == []
    nothing = EmbeddingCorpus(3).vector_index()  # nothing added at all: still an index, empty
    assert isinstance(nothing, VectorIndex) and len(nothing) == 0


def test_bad_vectors_and_unknown_videos_are_refused() -> None:
    c = corpus()
    with pytest.raises(BadInput, match=r"a2: vectors of shape \(1, 2\), expected \(n, 3\)"):
        c.add(VideoVectors("a2", "id", np.zeros(1), np.zeros((1, 2), np.float32), 1.0))
    with pytest.raises(BadInput, match="'zz' is not indexed .indexed: a, b, c, empty."):
        c.get("zz")
    assert c.get("b").video_id == "id-b"
    many = EmbeddingCorpus(3)
    for i in range(12):
        many.add(vv(f"v{i:02d}", [X]))
    with pytest.raises(BadInput, match=r"\(indexed: v00, v01, v02, v03, v04, v05, v06, v07, v08, v09\)"):
        many.get("zz")


def test_a_large_index_is_saved_and_loaded_on_the_next_run(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    store = FeatureStore(tmp_path / "store")
    first = corpus(persist_min=4)  # 5 rows: worth saving
    first.persist_in(store, "vector-index/test")
    assert first.top_videos(X, 5, 10) == ["b", "a", "c"] and first.index_from_cache is False
    (saved,) = (store.root / "artifacts" / "vector-index" / "test").iterdir()
    assert (saved / "index" / "meta.json").is_file()
    again = corpus(persist_min=4)
    again.persist_in(store, "vector-index/test")
    assert again.top_videos(X, 5, 10) == ["b", "a", "c"] and again.index_from_cache is True
    # Another video in place of c, the same number of rows: still another index.
    swapped = EmbeddingCorpus(3, index_kind="flat", persist_min=4)
    for item in (vv("a", [Y, unit(1, 1, 0)]), vv("b", [unit(1, 0.1, 0), Z]), vv("x", [X])):
        swapped.add(item)
    swapped.persist_in(store, "vector-index/test")
    assert swapped.top_videos(X, 5, 10) == ["x", "b", "a"] and swapped.index_from_cache is False
    assert len(list(saved.parent.iterdir())) == 2
    # Other videos are another index.
    other = corpus(persist_min=4)
    other.add(vv("d", [X]))
    other.persist_in(store, "vector-index/test")
    assert other.top_videos(X, 6, 1) == ["d"] and other.index_from_cache is False
    # A damaged copy is rebuilt, with a warning.
    (saved / "index" / "meta.json").write_text("{", encoding="utf-8")
    damaged = corpus(persist_min=4)
    damaged.persist_in(store, "vector-index/test")
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert damaged.top_videos(X, 5, 10) == ["b", "a", "c"]
    assert damaged.index_from_cache is False and "cannot be loaded" in caplog.text
    # A saved index with another number of rows than the corpus (a stale copy) is rebuilt too.
    stale = VectorIndex(3, kind="flat")
    stale.add(np.stack([X, Y]), np.arange(2, dtype=np.int64))
    stale.build()
    stale.save(saved / "index")
    again = corpus(persist_min=4)
    again.persist_in(store, "vector-index/test")
    assert again.top_videos(X, 5, 10) == ["b", "a", "c"] and again.index_from_cache is False
    assert len(again.vector_index()) == 5


def test_an_index_at_the_threshold_is_kept_in_memory_only(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    c = corpus(persist_min=5)  # exactly 5 rows: not more than the threshold
    c.persist_in(store, "vector-index/test")
    assert c.top_videos(X, 5, 10) == ["b", "a", "c"]
    assert not (store.root / "artifacts" / "vector-index").exists()
    assert EmbeddingCorpus(3).persist_min == 65_536  # FLAT_MAX: exact search is cheap below it


def test_a_saved_index_is_loaded_onto_the_corpus_device(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = FeatureStore(tmp_path / "store")
    first = corpus(persist_min=4)
    first.persist_in(store, "vector-index/test")
    first.vector_index()
    devices: list[str] = []
    real_load = VectorIndex.load

    def load(path: Path, device: str = "cpu") -> VectorIndex:
        devices.append(device)
        return real_load(path)

    monkeypatch.setattr(VectorIndex, "load", staticmethod(load))
    again = corpus(persist_min=4, device="cuda:1")
    again.persist_in(store, "vector-index/test")
    assert again.top_videos(X, 5, 10) == ["b", "a", "c"] and again.index_from_cache is True
    assert devices == ["cuda:1"]


# -- whole-video summaries (tagging scores these) --------------------------------------------

def test_pooled_rows_by_hand() -> None:
    # 5 rows in at most 2 runs: the first one row longer -> runs {0,1,2}, {3,4}
    v = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    p = pool_rows(v, t, t + 0.5, max_rows=2)
    assert p.rows.tolist() == [pytest.approx([2 / 3, 1 / 3]), [0.5, 0.5]]
    assert p.spans.tolist() == [[0.0, 2.5], [3.0, 4.5]]
    assert p.first.tolist() == [[1.0, 0.0]] and p.mean.tolist() == [pytest.approx([0.6, 0.4])]
    # short videos keep their own rows (no copy), one span per row
    q = pool_rows(v, t, t, max_rows=5)
    assert q.rows is v and q.spans[:, 0].tolist() == t.tolist()
    with pytest.raises(ValueError):
        pool_rows(v[:0], t[:0], t[:0])


def test_corpus_summarises_videos_when_they_are_added() -> None:
    corpus = EmbeddingCorpus(4)
    vecs = np.eye(4, dtype=np.float32)[np.arange(600) % 4]
    item = VideoVectors("v", "id", np.arange(600, dtype=np.float64), vecs, 600.0)
    corpus.add(item)
    assert "pooled" in item.__dict__  # computed at indexing, not at tagging
    assert item.pooled is not None and item.pooled.rows.shape == (256, 4)
    assert VideoVectors("e", "id", np.zeros(0), np.zeros((0, 4), dtype=np.float32), 1.0).pooled is None


def test_summaries_are_float32_rows_and_float64_spans_whatever_comes_in() -> None:
    # float64 vectors and integer times (as a caller may pass them), short and long paths
    v = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0, 1]], dtype=np.float64)
    t = np.arange(5)
    for max_rows in (2, 5):
        p = pool_rows(v, t, t + 1, max_rows=max_rows)
        assert p.mean.dtype == np.float32 and p.spans.dtype == np.float64
        assert p.rows.dtype == (np.float32 if max_rows == 2 else np.float64)  # short: its own rows
        assert p.first.tolist() == [[1.0, 0.0]] and p.mean.tolist() == [pytest.approx([0.6, 0.4])]
        assert p.spans[0].tolist() == [0.0, 1.0 if max_rows == 5 else 3.0]


def test_a_corpus_builds_its_index_with_its_own_kind_and_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.index.corpus as corpus_module

    seen: list[tuple[str, str]] = []

    class Spy(VectorIndex):
        def __init__(self, dim: int, kind: str = "auto", device: str = "cpu", **kw: object) -> None:
            seen.append((kind, device))
            super().__init__(dim, kind=kind, **kw)  # type: ignore[arg-type]  # built on the CPU here

    monkeypatch.setattr(corpus_module, "VectorIndex", Spy)
    c = EmbeddingCorpus(3, index_kind="hnsw", device="cuda")
    c.add(vv("a", [X, Y]))
    assert c.top_videos(X, rows=1, max_videos=1) == ["a"]
    d = EmbeddingCorpus(3)  # the defaults: kind chosen by size, on the CPU
    d.add(vv("b", [Z]))
    assert d.index_from_cache is False  # nothing built yet, nothing loaded
    assert d.top_videos(Z, rows=1, max_videos=1) == ["b"] and d.index_from_cache is False
    assert seen == [("hnsw", "cuda"), ("auto", "cpu")]


def test_asking_an_empty_corpus_for_a_video_says_none_is_indexed() -> None:
    with pytest.raises(BadInput) as err:
        EmbeddingCorpus(3).get("v1")
    assert str(err.value) == "video 'v1' is not indexed (indexed: none); index it first"
