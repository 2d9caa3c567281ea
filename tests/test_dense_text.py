"""dense-text with the bundled all-MiniLM-L6-v2 on hand-built segments: paraphrased queries,
per-video vector caching, and multilingual configurations reported unavailable offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.errors import BadInput, Unavailable
from bench.modelref import ModelRef
from bench.retrievers.base import RetrieverConfig
from bench.retrievers.dense_text import BUNDLED_MINILM, DenseText
from bench.spans import temporal_iou
from bench.text.segments import Segment
from bench.text.windows import TextCorpus, WindowConfig
from bench.types import QueryInput, Video


def seg(vid: str, start: float, end: float, text: str, source: str = "speech") -> Segment:
    return Segment(vid=vid, start=start, end=end, source=source, text=text)  # type: ignore[arg-type]


SEGMENTS = [
    seg("cook", 0, 4, "welcome to the kitchen, today we bake bread"),
    seg("cook", 12, 15, "now knead the dough for ten minutes"),
    seg("cook", 20, 24, "preheat the oven to two hundred degrees"),
    seg("cook", 45, 50, "slice the bread and serve it with butter"),
    seg("lecture", 2, 6, "today we talk about linear algebra"),
    seg("lecture", 20, 24, "the teacher writes the equation on the whiteboard"),
    seg("lecture", 40, 44, "now a short break for questions"),
    seg("game", 5, 9, "the striker scores a goal in the last minute", "caption"),
    seg("game", 30, 35, "FINAL SCORE 2-1", "ocr"),
]
VIDEOS = [Video(vid="cook", duration=60.0), Video(vid="lecture", duration=60.0),
          Video(vid="game", duration=40.0), Video(vid="silent", duration=20.0)]


def make(params: dict[str, Any] | None = None, model: ModelRef | None = None) -> DenseText:
    cfg = RetrieverConfig(name="dense-test", family="dense-text", params=params or {}, model=model)
    return DenseText(cfg, "cpu")


@pytest.fixture(scope="module")
def dense() -> DenseText:
    r = make()
    r.index_segments(SEGMENTS, videos=VIDEOS)
    return r


def q(text: str | None, qid: str = "q") -> QueryInput:
    return QueryInput(text=text, qid=qid)


def test_paraphrase_is_grounded_on_the_right_line(dense: DenseText) -> None:
    (moments,) = dense.search([q("working the bread dough by hand")], top_k=3, vids=["cook"])
    top = moments[0]
    assert top.vid == "cook"
    assert temporal_iou((top.start, top.end), (12.0, 15.0)) >= 0.5
    assert top.evidence.method == "dense" and top.evidence.model == BUNDLED_MINILM
    best = max(top.evidence.snippets, key=lambda s: s.similarity)
    assert best.text == "now knead the dough for ten minutes"
    assert all(m.vid == "cook" for m in moments)
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)


@pytest.mark.parametrize(("text", "vid", "span"), [
    ("a professor explains maths at the board", "lecture", (20.0, 24.0)),
    ("football player scoring", "game", (5.0, 9.0)),
    ("putting the loaf in a hot oven", "cook", (20.0, 24.0)),
])
def test_corpus_search_finds_video_and_time(dense: DenseText, text: str, vid: str,
                                            span: tuple[float, float]) -> None:
    (moments,) = dense.search([q(text)], top_k=5)
    assert moments[0].vid == vid
    assert temporal_iou((moments[0].start, moments[0].end), span) >= 0.5
    durations = {v.vid: v.duration or 0.0 for v in VIDEOS}
    for m in moments:
        assert 0 <= m.start < m.end <= durations[m.vid]


def test_batch_of_queries_keeps_order(dense: DenseText) -> None:
    out = dense.search_results([q("football player scoring", "a"), q(None, "b"),
                                q("a professor explains maths at the board", "c")], top_k=2)
    assert [r.moments[0].vid if r.moments else None for r in out] == ["game", None, "lecture"]
    assert [r.reason is None for r in out] == [True, False, True]
    assert "needs a text query" in str(out[1].reason)


def test_videos_without_text(dense: DenseText) -> None:
    (silent,) = dense.search_results([q("bread", "s")], vids=["silent"])
    assert silent.moments == [] and "no extracted text" in str(silent.reason)
    with pytest.raises(BadInput, match="not indexed"):
        dense.search([q("bread")], vids=["nope"])


def test_vectors_are_cached_per_video(tmp_path: Path, dense: DenseText) -> None:
    from bench.store import FeatureStore

    store = FeatureStore(tmp_path / "store")
    corpus = TextCorpus.build({"cook": SEGMENTS[:4], "lecture": SEGMENTS[4:7]}, WindowConfig(),
                              videos=VIDEOS[:2])
    ids = {"cook": "c00k", "lecture": "1ecture"}
    first = make()
    first._model = dense.model()  # share the loaded encoder: this test is about caching
    first.index_corpus(corpus, store, ids)
    assert first.stats()["encoded"] > 0 and first.stats()["videos_from_cache"] == 0
    again = make()
    again._model = dense.model()
    again.index_corpus(corpus, store, ids)
    assert again.stats() == {**first.stats(), "encoded": 0, "videos_from_cache": 2}
    np.testing.assert_array_equal(first.window_vecs, again.window_vecs)
    # Changed text of one video re-encodes that video only.
    changed = TextCorpus.build({"cook": SEGMENTS[:3], "lecture": SEGMENTS[4:7]}, WindowConfig(),
                               videos=VIDEOS[:2])
    third = make()
    third._model = dense.model()
    third.index_corpus(changed, store, ids)
    assert third.stats()["videos_from_cache"] == 1


def test_provenance_names_the_bundled_model(dense: DenseText) -> None:
    prov = dense.provenance()
    (model,) = prov["models"]
    assert model["id"] == BUNDLED_MINILM and model["source"] == "package"
    assert model["random_init"] is False and len(model["checksum"]) == 64


def test_multilingual_hub_model_is_unavailable_offline() -> None:
    ref = ModelRef(id="intfloat/multilingual-e5-small", revision="614241f622f53c4eeff9890bdc4f31cfecc418b3")
    with pytest.raises(Unavailable, match="multilingual-e5-small.*HF_HUB_OFFLINE"):
        make({"query_prefix": "query: ", "passage_prefix": "passage: "}, model=ref)


def test_params_are_validated() -> None:
    with pytest.raises(BadInput, match="params.line_weight"):
        make({"line_weight": 2})
