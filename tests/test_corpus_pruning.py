"""Corpus search against exhaustive scoring on corpora large enough to prune: bm25-text and
dense-text look at only the best windows (at least 32) to pick candidate videos, so a wrong
sort direction there only shows past 32 matching windows. dense-text runs on a bag-of-words
encoder here: the ranking is under test, not the model (and 500 texts through MiniLM take
minutes on a busy 2-core machine)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from bench.engine.search import rank_moments
from bench.retrievers.base import RetrieverConfig
from bench.retrievers.bm25_text import BM25Text
from bench.text.segments import Segment
from bench.types import Moment, QueryInput, Video

N_VIDEOS = 60
FILLER = ["quietly", "slowly", "again", "today", "outside", "there", "later", "briefly"]


def corpus() -> tuple[list[Segment], list[Video]]:
    """60 videos that each say "cat" once (with one more filler word in each, so no two score the
    same), and one that also says "zebra": the only true answer to "zebra cat"."""
    segments, videos = [], []
    for i in range(N_VIDEOS):
        vid = f"v{i:02d}"
        words = " ".join(FILLER[j % len(FILLER)] for j in range(i))
        text = "a zebra walks past the cat" if i == 41 else f"the cat sleeps {words}".strip()
        segments.append(Segment(vid=vid, start=10.0, end=14.0, source="speech", text=text))
        segments.append(Segment(vid=vid, start=30.0, end=34.0, source="speech",
                                text=f"a dog looks around {words}".strip()))
        videos.append(Video(vid=vid, duration=40.0))
    return segments, videos


def exhaustive(r: Any, text: str, vids: list[str], top_k: int) -> list[Moment]:
    """Every video grounded on its own, pooled and ranked: what corpus search must reproduce."""
    pooled = [m for v in vids for m in r.search([QueryInput(text=text)], top_k=top_k, vids=[v])[0]]
    return rank_moments(pooled, top_k)


def key(moments: list[Moment]) -> list[tuple[str, float, float, float]]:
    return [(m.vid, m.start, m.end, m.score) for m in moments]


@pytest.fixture(scope="module")
def bm25() -> BM25Text:
    segments, videos = corpus()
    r = BM25Text(RetrieverConfig(name="bm25-prune", family="bm25-text"), "cpu")
    r.index_segments(segments, videos=videos)
    return r


def test_bm25_corpus_has_enough_matching_windows_to_prune(bm25: BM25Text) -> None:
    assert bm25.scorer is not None
    assert int(bm25.scorer.matching(["cat"]).sum()) > 32


@pytest.mark.parametrize("top_k", [1, 10])
@pytest.mark.parametrize("pool", ["corpus", "all-vids"])
def test_bm25_corpus_search_equals_exhaustive_scoring(bm25: BM25Text, top_k: int, pool: str) -> None:
    vids = [v.vid for v in corpus()[1]]
    got = bm25.search([QueryInput(text="zebra cat")], top_k=top_k,
                      vids=None if pool == "corpus" else vids)[0]
    want = exhaustive(bm25, "zebra cat", vids, top_k)
    assert got[0].vid == "v41"
    assert key(got) == key(want)


def test_bm25_common_term_ranks_the_best_windows_first(bm25: BM25Text) -> None:
    # "cat" alone: every video matches (in two windows); the shortest lines score highest.
    vids = [v.vid for v in corpus()[1]]
    got = bm25.search([QueryInput(text="cat")], top_k=10)[0]
    assert key(got) == key(exhaustive(bm25, "cat", vids, 10))


class BagOfWords:
    """A sentence encoder with the SentenceTransformer calls dense-text uses: hashed word counts."""

    DIM = 64

    def encode(self, texts: Sequence[str], **_: Any) -> np.ndarray:
        out = np.zeros((len(texts), self.DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode()) % self.DIM] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def get_embedding_dimension(self) -> int:
        return self.DIM


@pytest.fixture(scope="module")
def dense() -> Any:
    from bench.retrievers.dense_text import DenseText

    segments, videos = corpus()
    r = DenseText(RetrieverConfig(name="dense-prune", family="dense-text"), "cpu")
    r._model = BagOfWords()
    r.index_segments(segments, videos=videos)
    return r


@pytest.mark.parametrize("pool", ["corpus", "all-vids"])
def test_dense_corpus_search_equals_exhaustive_scoring(dense: Any, pool: str) -> None:
    vids = [v.vid for v in corpus()[1]]
    assert len(dense.window_vecs) > 32
    got = dense.search([QueryInput(text="a zebra next to a cat")], top_k=10,
                       vids=None if pool == "corpus" else vids)[0]
    want = exhaustive(dense, "a zebra next to a cat", vids, 10)
    assert got[0].vid == "v41"
    assert key(got) == key(want)
