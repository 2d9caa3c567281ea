"""dense-text with the bundled all-MiniLM-L6-v2 on hand-built segments: paraphrased queries,
per-video vector caching, and multilingual configurations reported unavailable offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.engine.search import Candidate
from bench.errors import BadInput, Unavailable
from bench.evidence import Snippet
from bench.modelref import ModelRef
from bench.retrievers.base import RetrieverConfig
from bench.retrievers.dense_text import BUNDLED_MINILM, DenseText
from bench.spans import Window, temporal_iou
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


# -- a keyword encoder with hand-computable similarities ----------------------------------------
# "high" points along x, "low" along y, "mid" along both: a text's vector is its normalized
# keyword counts, so the query "high" has cosine 1 with "high", 1/sqrt(2) with "mid" or with a
# window of one "high" and one "low" line, and 0 with "low".

class KeywordDense(DenseText):
    def encode(self, texts: Any, *, query: bool = False) -> np.ndarray:
        prefix = self.params.query_prefix if query else self.params.passage_prefix
        rows = [[(prefix + t).count("high") + (prefix + t).count("mid"),
                 (prefix + t).count("low") + (prefix + t).count("mid")] for t in texts]
        v = np.asarray(rows, dtype=np.float32).reshape(-1, 2)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def model_provenance(self) -> dict[str, Any]:
        return {"id": BUNDLED_MINILM, "checksum": "0" * 64}


def keyword(segments: list[Segment], params: dict[str, Any] | None = None) -> KeywordDense:
    r = KeywordDense(RetrieverConfig(name="kw", family="dense-text", params=params or {}), "cpu")
    r.index_segments(segments)
    return r


def test_default_proposals_are_peaks_of_at_least_4_s() -> None:
    from bench.engine.proposals import ProposalConfig

    assert make().params.proposals == ProposalConfig(strategy="peak", rel_threshold=0.7, min_len_s=4.0,
                                                     nms_iou=0.3)


def test_score_blends_window_and_line_similarity_over_a_floor() -> None:
    # Windows of 10 s every 5 s: [0, 10] holds both lines, [5, 15] only the "high" one.
    r = keyword([seg("v", 1, 2, "low"), seg("v", 8, 9, "high"), seg("v", 30, 31, "low")])
    (prepared,) = r.prepare([q("high")], ["v"])
    curve = r.score(prepared, Candidate("v"), 10)
    assert (curve.duration_s, curve.fps, len(curve.scores)) == (31.0, 2.0, 62)
    half = 0.5 * 2 ** -0.5
    assert curve.scores[2] == pytest.approx(half)  # "low" at 1 s in the mixed window: 0.5 * 0.707 + 0
    assert curve.scores[16] == pytest.approx(1.0)  # "high" at 8 s: best of 0.5 * 0.707 + 0.5 and 1
    # "low" at 30 s scores 0; text-free samples sit 1e-3 below the lowest line, sloping 1e-6 a sample.
    assert curve.scores[60] == pytest.approx(0.0, abs=1e-7)
    assert curve.scores[40] == pytest.approx(-1e-3 - 20e-6, abs=1e-9)
    assert curve.scores[10] == pytest.approx(-1e-3 - 6e-6, abs=1e-9)


def test_line_weight_one_scores_lines_alone() -> None:
    r = keyword([seg("v", 1, 2, "low"), seg("v", 8, 9, "high")], {"line_weight": 1.0})
    (prepared,) = r.prepare([q("high")], None)
    curve = r.score(prepared, Candidate("v"), 10)
    assert curve.scores[2] == pytest.approx(0.0, abs=1e-7) and curve.scores[16] == pytest.approx(1.0)


def test_evidence_lists_the_best_lines_in_time_order_with_their_notes() -> None:
    lines = [seg("v", 1, 2, "low"), seg("v", 2, 3, "mid"), seg("v", 3, 4, "high low"),
             seg("v", 5, 5, "mid"), seg("v", 6, 6.5, "high")]
    lines[1].meta["lang_note"] = "read as French"
    r = keyword(lines, {"max_snippets": 2})
    (prepared,) = r.prepare([q("high")], None)
    explain = r.score(prepared, Candidate("v"), 10).explain
    ev = explain(Window(2.5, 5.5, 1.0))
    # Inside [2.5, 5.5]: "mid" (0.707), "high low" (0.707) and the instant "mid" at 5 s; the two
    # best by similarity, earlier first on ties, shown in time order.
    assert ev is not None and ev.method == "dense" and ev.model == BUNDLED_MINILM
    h = 2 ** -0.5
    assert ev.snippets == (Snippet(2, 3, "speech", "mid", similarity=pytest.approx(h), note="read as French"),
                           Snippet(3, 4, "speech", "high low", similarity=pytest.approx(h)))
    best = explain(Window(0.0, 10.0, 1.0))
    assert [s.text for s in best.snippets] == ["mid", "high"]  # 0.707 at 2 s and 1.0 at 6 s
    assert [s.text for s in explain(Window(5.0, 5.2, 1.0)).snippets] == ["mid"]  # an instant line
    assert explain(Window(6.55, 7.0, 1.0)) is None  # 6.5 s ends the last line
    assert explain(Window(4.0, 5.0, 1.0)) is None  # the instant at 5 s starts where it ends
    assert explain(Window(4.0, 4.5, 1.0)) is None


def test_prepare_encodes_queries_with_their_prefix_in_order() -> None:
    r = keyword([seg("v", 1, 2, "high"), seg("v", 30, 31, "low")], {"query_prefix": "mid "})
    out = r.prepare([q("high"), q("  "), q("low"), q("mid mid")], None)
    h = 2 ** -0.5
    np.testing.assert_allclose(out[0].vector, [2 / 5 ** 0.5, 1 / 5 ** 0.5], rtol=1e-6)
    assert out[1].reason == "dense-text needs a text query; this query has none"
    np.testing.assert_allclose(out[2].vector, [1 / 5 ** 0.5, 2 / 5 ** 0.5], rtol=1e-6)
    np.testing.assert_allclose(out[3].vector, [h, h], rtol=1e-6)
    assert out[0].windows.tolist() == list(range(len(r.corpus.windows)))


def test_no_text_reasons_and_an_empty_index() -> None:
    empty = keyword([])
    assert empty.window_vecs.shape == empty.line_vecs.shape == (0, 0)
    assert empty.window_vecs.dtype == empty.line_vecs.dtype == np.float32
    (out,) = empty.prepare([q("high")], None)
    assert out.reason == "the indexed videos have no searchable text"
    r = keyword([seg("v", 1, 2, "high")])
    r.index_segments({"v": [seg("v", 1, 2, "high")], "quiet": []})
    (out,) = r.prepare([q("high")], ["quiet"])
    assert out.reason == "the requested videos have no extracted text"


@pytest.mark.parametrize(("n_high", "top_k", "expected"), [
    (17, 2, ["a"]),  # the 32 nearest windows (at least 32 and 4 * top_k) are all of "a"
    (17, 9, ["a", "b", "c"]),  # 4 * 9 = 36 windows reach "b" and "c"
    (19, 9, ["a"]),  # "a" has 36 windows
])
def test_candidates_come_from_the_nearest_windows(n_high: int, top_k: int, expected: list[str]) -> None:
    # A 1 s line every 20 s lies in two windows (the first and last in one); "b" and "c" have two each.
    lines = [seg("a", 20 * i, 20 * i + 1, "high") for i in range(n_high)]
    r = keyword(lines + [seg("b", 0, 1, "mid"), seg("b", 20, 21, "mid"), seg("c", 0, 1, "low"),
                         seg("c", 20, 21, "low")])
    assert r.corpus.ranges["a"][1] - r.corpus.ranges["a"][0] == 2 * n_high - 2
    (prepared,) = r.prepare([q("high")], ["a", "b", "c"])
    assert [c.vid for c in r.candidates(prepared, ["a", "b", "c"], top_k)] == expected


def test_candidate_ties_keep_corpus_order() -> None:
    levels = "hmmllllllhmhmmhhmmmhlhhlmhmlhhhllhlmllmm"
    word = {"h": "high", "m": "mid", "l": "low"}
    r = keyword([seg(f"v{i:02d}", 0, 1, word[c]) for i, c in enumerate(levels)])
    vids = [f"v{i:02d}" for i in range(40)]
    (prepared,) = r.prepare([q("high")], vids)
    expected = [f"v{i:02d}" for c in "hml" for i, x in enumerate(levels) if x == c]
    assert [c.vid for c in r.candidates(prepared, vids, 40)] == expected


def test_corpus_search_goes_through_the_vector_index(monkeypatch: pytest.MonkeyPatch) -> None:
    r = keyword([seg("a", 0, 1, "high"), seg("b", 0, 1, "mid"), seg("c", 0, 1, "low")],
                {"index_kind": "hnsw"})
    assert r._vindex.kind == "hnsw"
    calls = []
    search = r._vindex.search
    monkeypatch.setattr(r._vindex, "search", lambda *a: calls.append(a) or search(*a))
    (prepared,) = r.prepare([q("high")], None)
    # Window 0 (of "a", the first video) is the nearest one.
    assert [c.vid for c in r.candidates(prepared, None, 3)] == ["a", "b", "c"]
    assert len(calls) == 1
    (prepared,) = r.prepare([q("high")], ["c", "b"])
    assert [c.vid for c in r.candidates(prepared, ["c", "b"], 3)] == ["b", "c"]
    assert len(calls) == 1


def test_stages_and_stats_count_what_was_encoded(tmp_path: Path) -> None:
    import hashlib

    from bench.store import Extractor, FeatureStore
    from bench.timing import TimingRecorder, recording

    store = FeatureStore(tmp_path / "store")
    corpus = TextCorpus.build({"a": [seg("a", 0, 1, "high"), seg("a", 2, 3, "low")],
                               "b": [seg("b", 0, 1, "mid")]}, WindowConfig())
    r = KeywordDense(RetrieverConfig(name="kw", family="dense-text"), "cpu")
    rec = TimingRecorder()
    with recording(rec):
        r.index_corpus(corpus, store, {"a": "a1", "b": "b1"})
        r.prepare([q("high"), q(None), q("low")], None)
    # "a": one window [0, 10] ("high\nlow") and two lines; "b": one window and one line.
    assert r.stats() == {"windows": 2, "lines": 3, "encoded": 5, "videos_from_cache": 0}
    assert (rec.stages["encode"].items, rec.stages["encode"].calls) == (5, 2)
    assert (rec.stages["index_build"].items, rec.stages["index_build"].calls) == (2, 1)
    assert (rec.stages["query_encode"].items, rec.stages["query_encode"].calls) == (2, 1)
    ex = Extractor("dense-text", r._extractor_params(), version="1")
    meta = store.load_meta("a1", ex)
    # The cache key of a video's texts: windows, a \x01 marker, then lines, \x00-separated.
    digest = hashlib.sha256(b"high\nlow\x00\x01\x00high\x00low").hexdigest()
    assert meta is not None and meta["texts_sha256"] == digest
    # Without a store, content ids are ignored.
    again = KeywordDense(RetrieverConfig(name="kw", family="dense-text"), "cpu")
    again.index_corpus(corpus, None, {"a": "a1"})
    assert again.stats()["encoded"] == 5


def test_the_index_is_built_on_the_retrievers_device() -> None:
    r = KeywordDense(RetrieverConfig(name="kw", family="dense-text"), "cuda")
    r.index_segments([seg("a", 0, 1, "high")])
    assert r._vindex.device == "cuda"
