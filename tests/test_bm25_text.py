"""Text windows, BM25 backends (bm25s vs rank_bm25 parity) and the bm25-text retriever on
hand-built segments; one integration test on synthetic-mini with real extraction."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.engine.proposals import ProposalConfig
from bench.engine.search import Candidate, Curve
from bench.errors import BadInput
from bench.evidence import TextEvidence
from bench.retrievers.base import RetrieverConfig
from bench.retrievers.bm25_text import BM25Formula, BM25Text, make_bm25
from bench.spans import Window, temporal_iou
from bench.text.segments import Segment
from bench.text.windows import TextCorpus, WindowConfig, build_windows, paint_curve, split_sentences
from bench.types import QueryInput, Video


def seg(vid: str, start: float, end: float, text: str, source: str = "speech",
        lang: str | None = None) -> Segment:
    return Segment(vid=vid, start=start, end=end, source=source, text=text, lang=lang)  # type: ignore[arg-type]


SEGMENTS = [
    seg("cook", 0, 4, "welcome to the kitchen, today we bake bread"),
    seg("cook", 5, 9, "first mix the flour and the sugar in a bowl"),
    seg("cook", 12, 15, "now knead the dough for ten minutes"),
    seg("cook", 20, 24, "preheat the oven to two hundred degrees"),
    seg("cook", 30, 40, "RECIPE: sourdough bread", "ocr"),
    seg("cook", 45, 50, "slice the bread and serve it with butter"),
    seg("lecture", 2, 6, "today we talk about linear algebra"),
    seg("lecture", 10, 14, "the teacher writes the equation on the whiteboard"),
    seg("lecture", 20, 30, "Eigenvalues and eigenvectors", "ocr"),
    seg("lecture", 40, 44, "matrix multiplication is not commutative"),
    seg("lecture", 50, 55, "Chapter 3: eigenvalues", "subtitle"),
    seg("jp", 5, 9, "先生がホワイトボードに数式を書いている", lang="ja"),
    seg("jp", 15, 18, "今日は天気がいいですね", lang="ja"),
    seg("zh", 10, 13, "厨师正在切披萨", lang="zh"),
    seg("zh", 20, 24, "客人在喝咖啡", lang="zh"),
]
VIDEOS = [Video(vid="cook", path="/x/cook.mp4", duration=60.0),
          Video(vid="lecture", path="/x/lecture.mp4", duration=60.0),
          Video(vid="jp", path="/x/jp.mp4", duration=30.0, lang="ja"),
          Video(vid="zh", path="/x/zh.mp4", duration=30.0, lang="zh"),
          Video(vid="silent", path="/x/silent.mp4", duration=20.0)]


def make(params: dict[str, Any] | None = None) -> BM25Text:
    return BM25Text(RetrieverConfig(name="bm25-test", family="bm25-text", params=params or {}), "cpu")


@pytest.fixture(scope="module")
def bm25() -> BM25Text:
    r = make()
    r.index_segments(SEGMENTS, videos=VIDEOS)
    return r


def q(text: str | None, lang: str | None = None, qid: str = "q") -> QueryInput:
    return QueryInput(text=text, lang=lang, qid=qid)


# -- windows ----------------------------------------------------------------------------------

def test_windows_overlap_and_keep_their_segments() -> None:
    wins = build_windows(SEGMENTS, WindowConfig(window_s=10, stride_s=5), durations_s={"cook": 60.0})
    cook = [w for w in wins if w.vid == "cook"]
    assert [(w.start, w.end) for w in cook] == [
        (0, 10), (5, 15), (10, 20), (15, 25), (20, 30), (25, 35), (30, 40), (35, 45), (40, 50)]
    w = cook[1]
    assert [s.start for s in w.segments] == [5, 12]
    assert w.text == "first mix the flour and the sugar in a bowl\nnow knead the dough for ten minutes"
    assert w.sources == ("speech",)
    # The OCR line (30-40 s) is in every window overlapping it, and nowhere else.
    assert [(x.start, x.end) for x in cook if "RECIPE" in x.text] == [(25, 35), (30, 40), (35, 45)]


def test_windows_per_source_and_languages() -> None:
    segs = [seg("v", 0, 3, "hello"), seg("v", 1, 2, "EXIT", "ocr"), seg("w", 0, 1, "ciao", lang="it")]
    wins = build_windows(segs, WindowConfig(window_s=4, stride_s=2, per_source=True), langs={"v": "en"})
    assert [(w.vid, w.start, w.sources, w.text, w.lang) for w in wins] == [
        ("v", 0, ("ocr",), "EXIT", "en"), ("v", 0, ("speech",), "hello", "en"),
        ("w", 0, ("speech",), "ciao", "it")]
    with pytest.raises(ValueError, match="stride_s"):
        WindowConfig(window_s=5, stride_s=6)


def test_split_sentences_uses_word_timings() -> None:
    words = [[0.0, 0.4, " The", 0.9], [0.4, 1.0, " astronaut", 0.9], [1.0, 1.6, " waves.", 0.9],
             [6.5, 7.0, " Fresh", 0.9], [7.0, 7.4, " coffee!", 0.9]]
    whole = Segment("v", 0.0, 7.5, "speech", "The astronaut waves. Fresh coffee!", "en",
                    {"avg_logprob": -0.2, "words": words})
    a, b = split_sentences(whole)
    assert (a.start, a.end, a.text, b.start, b.end, b.text) == (
        0.0, 1.6, "The astronaut waves.", 6.5, 7.4, "Fresh coffee!")
    assert b.meta == {"avg_logprob": -0.2, "words": words[3:], "sentence_of": [0.0, 7.5]}
    assert (a.source, a.lang) == ("speech", "en")
    one = Segment("v", 0.0, 1.6, "speech", "The astronaut waves.", meta={"words": words[:3]})
    assert split_sentences(one) == [one]
    assert split_sentences(seg("v", 0, 1, "no words")) == [seg("v", 0, 1, "no words")]
    # Windows are built from the sentences (on by default).
    corpus = TextCorpus.build({"v": [whole]}, WindowConfig(window_s=4, stride_s=2))
    assert [(w.start, w.end, w.text) for w in corpus.windows] == [
        (0, 4, "The astronaut waves."), (4, 7.4, "Fresh coffee!")]  # [2, 6] holds no text
    off = TextCorpus.build({"v": [whole]}, WindowConfig(window_s=4, stride_s=2, split_sentences=False))
    assert {w.text for w in off.windows} == {"The astronaut waves. Fresh coffee!"}


def test_corpus_window_ids_and_unknown_video() -> None:
    corpus = TextCorpus.build({"a": [seg("a", 0, 2, "x")], "b": []}, WindowConfig(),
                              videos=[Video(vid="c", duration=5.0)])
    assert corpus.vids == {"a", "b", "c"}
    assert corpus.window_ids(["a"]).tolist() == [0]
    assert corpus.window_ids(["b", "c"]).tolist() == []
    with pytest.raises(BadInput, match="'zzz' was not indexed"):
        corpus.window_ids(["zzz"])


def test_paint_curve_takes_the_max_and_paints_instants() -> None:
    times, vals = paint_curve(5.0, 2.0, [(1.0, 2.0, 1.0), (1.5, 3.0, 2.0), (4.2, 4.2, 3.0)])
    assert times.tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5]
    assert vals.tolist() == [0, 0, 1, 2, 2, 2, 0, 0, 3, 0]
    # Unpainted samples slope down away from the painted ones.
    _, vals = paint_curve(5.0, 2.0, [(1.0, 2.0, 1.0), (4.2, 4.2, 3.0)], floor=0.0, falloff=0.5)
    assert vals.tolist() == [-1.0, -0.5, 1, 1, -0.5, -1.0, -1.0, -0.5, 3, -0.5]


# -- BM25 backends ----------------------------------------------------------------------------

def _random_corpus(n_docs: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(400)]
    p = 1.0 / np.arange(1, len(vocab) + 1)  # Zipf-like, so some terms are in most documents
    p /= p.sum()
    docs = [list(rng.choice(vocab, size=int(rng.integers(3, 40)), p=p)) for _ in range(n_docs)]
    queries = [list(rng.choice(vocab[:150], size=int(rng.integers(1, 5)))) for _ in range(30)]
    return docs, queries


def _top10(scores: np.ndarray) -> list[int]:
    # Ties (same tf and length) are broken by document order on both sides.
    return sorted(range(len(scores)), key=lambda i: (-round(float(scores[i]), 4), i))[:10]


@pytest.mark.parametrize("method", ["robertson", "lucene", "bm25+"])
def test_bm25s_and_rank_bm25_agree(method: str) -> None:
    docs, queries = _random_corpus(500, seed=1)
    formula = BM25Formula(k1=1.2, b=0.75, method=method)  # type: ignore[arg-type]
    fast, ref = make_bm25("bm25s", docs, formula), make_bm25("rank_bm25", docs, formula)
    for terms in queries:
        a, b = fast.scores(terms), ref.scores(terms)
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-5)
        assert _top10(a) == _top10(b)
        assert (fast.matching(terms) == ref.matching(terms)).all()


def test_bm25_robertson_idf_is_floored_at_zero() -> None:
    docs = [["a", "b"], ["a"], ["a", "c"]]  # "a" is in every document: idf would be negative
    for backend in ("bm25s", "rank_bm25"):
        scorer = make_bm25(backend, docs, BM25Formula(method="robertson"))  # type: ignore[arg-type]
        assert scorer.scores(["a"]).tolist() == [0.0, 0.0, 0.0]
        assert scorer.scores(["zzz"]).tolist() == [0.0, 0.0, 0.0]


def test_bm25_needs_some_terms() -> None:
    with pytest.raises(BadInput, match="no document has any term"):
        make_bm25("bm25s", [[], []])


# -- the retriever ----------------------------------------------------------------------------

def test_grounding_finds_the_spoken_line(bm25: BM25Text) -> None:
    (moments,) = bm25.search([q("knead the dough")], top_k=5, vids=["cook"])
    top = moments[0]
    assert top.vid == "cook"
    # The 3 s line, widened to the 4 s minimum moment.
    assert (top.start, top.end) == (11.5, 15.5)
    assert top.evidence.terms == ("dough", "knead")
    (snip,) = top.evidence.snippets
    assert snip.to_dict() == {"start": 12.0, "end": 15.0, "source": "speech",
                    "text": "now knead the dough for ten minutes", "terms": ["dough", "knead"]}
    assert all(m.vid == "cook" for m in moments)
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)


def test_corpus_search_finds_video_and_time(bm25: BM25Text) -> None:
    (moments,) = bm25.search([q("teacher writing an equation on the whiteboard")], top_k=3)
    assert moments[0].vid == "lecture"
    assert temporal_iou((moments[0].start, moments[0].end), (10.0, 14.0)) >= 0.9


def test_onscreen_text_and_subtitles(bm25: BM25Text) -> None:
    (moments,) = bm25.search([q("eigenvalues")], top_k=5)
    assert [m.vid for m in moments] == ["lecture", "lecture"]
    spans = sorted((m.start, m.end) for m in moments)
    assert spans == [(20.0, 30.0), (50.0, 55.0)]
    sources = {s.source for m in moments for s in m.evidence.snippets}
    assert sources == {"ocr", "subtitle"}


def test_glued_onscreen_text_matches_a_spaced_query() -> None:
    r = make()
    r.index_segments([seg("t", 0, 6, "MISSIONBRIEFING", "ocr"), seg("t", 6, 12, "BREAK ROOM", "ocr")])
    (moments,) = r.search([q("mission briefing")], top_k=2)
    assert [(m.start, m.end) for m in moments] == [(0.0, 6.0)]
    assert moments[0].evidence.terms == ("missionbrief",)


def test_bread_ranks_the_stronger_window_first(bm25: BM25Text) -> None:
    (moments,) = bm25.search([q("sourdough bread")], top_k=10, vids=["cook"])
    # Both terms in the OCR line beat "bread" alone in speech.
    assert (moments[0].start, moments[0].end) == (30.0, 40.0)
    assert len(moments) >= 3 and moments[0].score > moments[1].score


@pytest.mark.parametrize(("text", "lang", "vid", "span"), [
    ("ホワイトボードに数式を書く", "ja", "jp", (5.0, 9.0)),
    ("ホワイトボードに数式を書く", None, "jp", (5.0, 9.0)),
    ("切披萨", "zh", "zh", (10.0, 13.0)),
    ("切披萨", None, "zh", (10.0, 13.0)),
])
def test_japanese_and_chinese_queries(bm25: BM25Text, text: str, lang: str | None, vid: str,
                                      span: tuple[float, float]) -> None:
    (moments,) = bm25.search([q(text, lang)], top_k=3)
    assert moments[0].vid == vid
    assert temporal_iou((moments[0].start, moments[0].end), span) >= 0.75


def test_queries_without_terms_return_nothing_with_a_reason(bm25: BM25Text) -> None:
    stop, img, miss = bm25.search_results([q("the and of", "en", "stop"), q(None, qid="img"),
                                           q("zebra", qid="miss")])
    assert stop.moments == img.moments == miss.moments == []
    assert stop.reason is not None and "no searchable terms" in stop.reason
    assert img.reason is not None and "needs a text query" in img.reason
    assert miss.reason is None  # a plain miss is an answer, not an error


def test_videos_without_text(bm25: BM25Text) -> None:
    (silent,) = bm25.search_results([q("bread", qid="s")], vids=["silent"])
    assert silent.moments == [] and "no extracted text" in str(silent.reason)
    with pytest.raises(BadInput, match="not indexed"):
        bm25.search([q("bread")], vids=["nope"])
    empty = make()
    empty.index_segments([], videos=[Video(vid="silent", duration=5.0)])
    (none,) = empty.search_results([q("bread", qid="e")])
    assert none.moments == [] and "no searchable text" in str(none.reason)


def test_top_k_and_windows_inside_videos(bm25: BM25Text) -> None:
    (moments,) = bm25.search([q("the bread today")], top_k=2)
    assert len(moments) == 2
    durations = {v.vid: v.duration for v in VIDEOS}
    for results in bm25.search([q("bread"), q("eigenvalues")], top_k=10):
        for m in results:
            assert 0 <= m.start < m.end <= (durations[m.vid] or 0)
    with pytest.raises(BadInput, match="index"):
        make().search([q("bread")])


def test_rank_bm25_backend_gives_the_same_moments(bm25: BM25Text) -> None:
    ref = make({"backend": "rank_bm25"})
    ref.index_segments(SEGMENTS, videos=VIDEOS)
    for text in ("knead the dough", "sourdough bread", "eigenvalues", "today"):
        a, b = bm25.search([q(text)], top_k=5)[0], ref.search([q(text)], top_k=5)[0]
        assert [(m.vid, m.start, m.end) for m in a] == [(m.vid, m.start, m.end) for m in b]
        np.testing.assert_allclose([m.score for m in a], [m.score for m in b], rtol=1e-5)


def test_index_is_cached_in_the_store(tmp_path: Path) -> None:
    from bench.store import FeatureStore

    store = FeatureStore(tmp_path / "store")
    first = make()
    first.index_segments(SEGMENTS, videos=VIDEOS, store=store)
    assert first.stats()["cache_hit"] is False
    again = make()
    again.index_segments(SEGMENTS, videos=VIDEOS, store=store)
    assert again.stats()["cache_hit"] is True
    assert len(list((tmp_path / "store" / "artifacts" / "bm25-text").iterdir())) == 1
    assert len(list((tmp_path / "store" / "artifacts" / "bm25-text").glob("*/bm25s/vocab.index.json"))) == 1
    a = first.search([q("knead the dough")])[0]
    b = again.search([q("knead the dough")])[0]
    assert [(m.vid, m.start, m.end, m.score, m.evidence) for m in a] == [
        (m.vid, m.start, m.end, m.score, m.evidence) for m in b]
    # rank_bm25 is rebuilt from the cached terms; its own cache entry holds no arrays.
    ref = make({"backend": "rank_bm25"})
    ref.index_segments(SEGMENTS, videos=VIDEOS, store=store)
    again_ref = make({"backend": "rank_bm25"})
    again_ref.index_segments(SEGMENTS, videos=VIDEOS, store=store)
    assert again_ref.stats()["cache_hit"] is True
    assert [(m.vid, m.start, m.end) for m in again_ref.search([q("knead the dough")])[0]] == [
        (m.vid, m.start, m.end) for m in a]
    # Other parameters are another index.
    other = make({"k1": 0.9})
    other.index_segments(SEGMENTS, videos=VIDEOS, store=store)
    assert other.stats()["cache_hit"] is False


def test_params_are_validated() -> None:
    with pytest.raises(BadInput, match="params.k1_typo"):
        make({"k1_typo": 1})
    with pytest.raises(BadInput, match="params.method"):
        make({"method": "okapi"})


def test_provenance_names_backend_and_tokenizer(bm25: BM25Text) -> None:
    prov = bm25.provenance()
    assert prov["backend"] == "bm25s" and prov["formula"]["method"] == "lucene"
    assert prov["random_init"] is False and prov["tokenizer"]["config"]["stem"] is True


# -- moments, scores and evidence, pinned (found by mutation testing) -------------------------

def test_nearby_lines_make_one_moment_with_the_text_proposals() -> None:
    # Text proposals: a hit's plateau (rel_threshold 0.5), at least 4 s, NMS at IoU 0.3.
    assert make().params.proposals == ProposalConfig(strategy="peak", rel_threshold=0.5, min_len_s=4.0,
                                                     nms_iou=0.3)
    r = make()
    r.index_segments([seg("n", 10, 11, "cat"), seg("n", 12, 13, "cat")],
                     videos=[Video(vid="n", duration=30.0)])
    (moments,) = r.search([q("cat")])
    # The two 1 s lines share their windows and score alike; widened to 4 s they are [8.5, 12.5] and
    # [10.5, 14.5], IoU 2 / 6 = 0.33 > 0.3: the later is suppressed (the generic 0.5 would keep both).
    assert [(m.start, m.end) for m in moments] == [(8.5, 12.5)]
    assert [s.start_s for s in moments[0].evidence.snippets] == [10, 12]


def test_a_hit_scores_its_windows_bm25_with_the_configured_k1() -> None:
    r = make({"k1": 1.2})
    r.index_segments([seg("k", 0, 2, "morning greetings"), seg("k", 5, 7, "cat"),
                      seg("m", 0, 2, "dog barks")],
                     videos=[Video(vid="k", duration=10.0), Video(vid="m", duration=10.0)])
    (moments,) = r.search([q("cat")])
    # One window per video: [morn, greet, cat] and [dog, bark]. Lucene idf of "cat" (in 1 of 2) is
    # ln(1 + 1.5 / 1.5) = ln 2; tf 1 in 3 terms against the mean 2.5: 1 / (1 + 1.2 (0.25 + 0.75 * 3 / 2.5)).
    # The matched line is the second of its window; the 2 s line is widened to 4 s.
    assert [(m.vid, m.start, m.end) for m in moments] == [("k", 4.0, 8.0)]
    assert moments[0].score == pytest.approx(math.log(2) / (1 + 1.2 * (0.25 + 0.75 * 3 / 2.5)), rel=1e-6)


def test_windows_matching_only_zero_weight_terms_are_no_moments() -> None:
    r = make({"method": "robertson"})
    r.index_segments([seg("a", 0, 3, "cat"), seg("b", 0, 3, "cat dog"), seg("c", 0, 3, "cat")],
                     videos=[Video(vid=v, duration=10.0) for v in "abc"])
    (moments,) = r.search([q("cat dog")])
    # "cat" is in all 3 documents: its Robertson idf ln(0.5 / 3.5) is floored at 0, so "a" and "c" match
    # with score 0 and give no moment. "dog": idf ln(2.5 / 1.5); tf 1 in 2 terms against the mean 4/3.
    assert [(m.vid, m.start, m.end) for m in moments] == [("b", 0.0, 4.0)]
    want = math.log(2.5 / 1.5) / (1 + 1.5 * (0.25 + 0.75 * 2 / (4 / 3)))
    assert moments[0].score == pytest.approx(want, rel=1e-6)


def test_a_hit_at_the_end_stays_inside_the_video() -> None:
    r = make()
    r.index_segments([seg("d", 8, 10.25, "cat")], videos=[Video(vid="d", duration=10.25)])
    (moments,) = r.search([q("cat")])
    # The last curve sample (2 per second) covers [10, 10.5]: the hit ends at the video's end,
    # 10.25 s, and is widened to 4 s inside the video.
    assert [(m.start, m.end) for m in moments] == [(6.25, 10.25)]


def test_moments_are_timed_at_the_configured_curve_resolution() -> None:
    r = make({"curve_fps": 10, "proposals": {"min_len_s": 0.0}})
    r.index_segments([seg("f", 1.0, 3.5, "cat")], videos=[Video(vid="f", duration=30.0)])
    (moments,) = r.search([q("cat")])
    # Sample i covers [i / 10, (i + 1) / 10]: the hit is exactly the line. (A rate guessed from the
    # sample times, 10.000000000000014 for these 300, would end it at 3.4999999999999996.)
    assert [(m.start, m.end) for m in moments] == [(1.0, 3.5)]


def test_a_stretch_without_the_terms_holds_no_moment() -> None:
    filler = ("pigeons flutter around busy market stalls selling ripe fruit vegetables cheese bread honey "
              "olives spices flowers baskets lanterns carpets")
    r = make()
    r.index_segments([seg("p", 10, 15.5, "cat"), seg("p", 16, 19, filler)],
                     videos=[Video(vid="p", duration=40.0)])
    (moments,) = r.search([q("cat")])
    # [5, 15] holds the line alone and paints 10-15 s; [10, 20] adds 19 words and paints 15-15.5 s at
    # under half that score (below the hit's threshold, and no peak). Nothing is painted after 15.5 s,
    # so no window grows over the rest of the video.
    assert [(m.start, m.end) for m in moments] == [(10.0, 15.0)]


def _explain(r: BM25Text, text: str, vid: str, start: float, end: float) -> TextEvidence:
    """The evidence ``r`` gives a window ``[start, end]`` of ``vid``'s curve for ``text``."""
    (prep,) = r.prepare([q(text)], None)
    r.candidates(prep, None, 10)
    curve = r.score(prep, Candidate(vid), 10)
    assert isinstance(curve, Curve)
    evidence = curve.explain(Window(start, end, 1.0))
    assert isinstance(evidence, TextEvidence)
    return evidence


def test_evidence_lists_the_matched_lines_inside_the_window() -> None:
    r = make()
    r.index_segments([seg("e", 1, 4, "cat"), seg("e", 3, 3.5, "cat"), seg("e", 4, 4, "cat", "ocr"),
                      seg("e", 6, 8, "cat"), seg("e", 10, 12, "cat")], videos=[Video(vid="e", duration=20.0)])
    evidence = _explain(r, "cat", "e", 4.0, 10.0)
    # Lines ending where the window starts or 0.5 s before it, and one starting where it ends, are
    # outside; an OCR reading at one instant, right at the start, is inside.
    assert [(s.start_s, s.end_s, s.source) for s in evidence.snippets] == [(4, 4, "ocr"), (6, 8, "speech")]
    assert evidence.terms == ("cat",)


def test_evidence_shows_the_best_scoring_lines() -> None:
    r = make({"max_snippets": 1})
    r.index_segments([seg("s", 2, 5, "cat sitting on a warm sunny windowsill beside flowers"),
                      seg("s", 32, 35, "cat"),
                      seg("x", 6, 9, "cat"), seg("x", 11, 14, "pigeons flutter around busy market stalls"),
                      seg("x", 31, 34, "cat naps")],
                     videos=[Video(vid="s", duration=40.0), Video(vid="x", duration=40.0)])
    # The later line is alone in its windows, the earlier among 6 other terms: the later is shown.
    assert [s.start_s for s in _explain(r, "cat", "s", 0, 40).snippets] == [32]
    # The first line scores highest in [0, 10] (alone), lowest in [5, 15] (with 6 more terms):
    # its best window counts, so it beats "cat naps" (2 terms in each of its windows).
    assert [s.start_s for s in _explain(r, "cat", "x", 0, 40).snippets] == [6]


def test_evidence_names_bm25_and_the_lines_language_note() -> None:
    r = make()
    note = "language unsure: best guess en"
    r.index_segments([Segment("v", 2.0, 5.0, "speech", "the cat sleeps", "en", {"lang_note": note})],
                     videos=[Video(vid="v", duration=10.0)])
    (moment,) = r.search([q("cat")])[0]
    assert moment.evidence.to_dict() == {
        "method": "bm25", "terms": ["cat"],
        "snippets": [{"start": 2.0, "end": 5.0, "source": "speech", "text": "the cat sleeps",
                      "terms": ["cat"], "note": note}]}


# -- candidate videos -------------------------------------------------------------------------

def test_a_candidates_bound_is_its_best_window_plus_the_length_prior() -> None:
    r = make({"proposals": {"length_prior": 0.01}})
    r.index_segments([seg("tiny", 0, 0.5, "cat")], videos=[Video(vid="tiny", duration=0.5)])
    (prep,) = r.prepare([q("cat")], None)
    (cand,) = r.candidates(prep, None, top_k=5)
    # One document of one term: Lucene idf ln(1 + 0.5 / 1.5), tf part 1 / (1 + 1.5); the prior adds
    # 0.01 ln(0.5 s), as for the moment that is the whole 0.5 s video.
    want = math.log(4 / 3) / 2.5 + 0.01 * math.log(0.5)
    assert cand.vid == "tiny" and cand.bound == pytest.approx(want, rel=1e-6)
    (moments,) = r.search([q("cat")])
    assert [(m.start, m.end) for m in moments] == [(0.0, 0.5)]
    assert moments[0].score == pytest.approx(want, rel=1e-6)


def test_candidates_come_from_the_best_windows_only() -> None:
    # "a" has 39 windows of 5 s with one line each: 32 say "cat owl", 7 "cat". The other videos have
    # one window each with more words (b 3, c 4, ... g 8), so each scores below every window of "a"
    # and the one before it (same tf, longer document).
    segs = [seg("a", 5 * i + 1, 5 * i + 4, "cat owl" if i < 32 else "cat") for i in range(39)]
    segs.append(seg("b", 1, 4, "cat owl sleeps"))
    more = ["sleeps", "quietly", "outside", "tonight", "alone", "again", "softly"]
    segs += [seg(vid, 1, 4, " ".join(["cat", *more[:j + 3]])) for j, vid in enumerate("cdefg")]
    r = make({"windows": {"window_s": 5, "stride_s": 5}})
    r.index_segments(segs, videos=[Video(vid=v, duration=200.0 if v == "a" else 10.0) for v in "abcdefg"])
    (cat,) = r.prepare([q("cat")], None)
    # top_k 10: the best 4 * 10 windows are the 39 of "a" and that of "b".
    assert [c.vid for c in r.candidates(cat, None, top_k=10)] == ["a", "b"]
    (owl,) = r.prepare([q("owl")], None)
    # top_k 2: the best 32 windows (the floor) are all of "a"; "b" holds the 33rd.
    assert [c.vid for c in r.candidates(owl, None, top_k=2)] == ["a"]


def test_tied_best_windows_go_by_video_as_exhaustive_scoring_does() -> None:
    segs = [seg(f"v{i:02d}", 2, 5, "cat" if i % 2 == 0 else "cat naps") for i in range(40)]
    r = make()
    r.index_segments(segs, videos=[Video(vid=f"v{i:02d}", duration=10.0) for i in range(40)])
    # 20 videos tie for the best window; the first 3 of them by video are the answer.
    (moments,) = r.search([q("cat")], top_k=3)
    assert [m.vid for m in moments] == ["v00", "v02", "v04"]


# -- languages and reasons --------------------------------------------------------------------

def test_an_undeclared_latin_line_in_a_cyrillic_video_takes_the_default_latin_language() -> None:
    r = make({"tokenizer": {"default_latin_lang": "fr"}})
    r.index_segments([seg("ru", 2, 5, "BOULANGERIE", "ocr"), seg("ru", 12, 15, "привет друзья")],
                     videos=[Video(vid="ru", duration=20.0, lang="ru")])
    # A telop in Latin script is not Russian; with no stop word to tell, it is French (the default), as
    # the query is: both stem to "boulanger" (English would give "boulangeri", none "boulangerie").
    (moments,) = r.search([q("boulangerie")])
    assert [(m.start, m.end, m.evidence.terms) for m in moments] == [(1.5, 5.5, ("boulanger",))]


def test_the_querys_declared_language_picks_its_stemmer() -> None:
    r = make()
    r.index_segments([seg("fr", 2, 5, "Boulangerie", lang="fr")], videos=[Video(vid="fr", duration=20.0)])
    (french,) = r.search([q("boulangerie", "fr")])
    assert [(m.start, m.end, m.evidence.terms) for m in french] == [(1.5, 5.5, ("boulanger",))]
    # Undeclared, one word with no stop word reads as English: "boulangeri" is not in the index.
    assert r.search([q("boulangerie")]) == [[]]


def test_queries_that_cannot_be_answered_say_why_verbatim(bm25: BM25Text) -> None:
    blank, stop, silent = bm25.search_results([q("  ", qid="b"), q("of the", "en", "s"), q("bread", qid="t")],
                                              vids=["silent"])
    assert blank.reason == "bm25-text needs a text query; this query has none"
    assert stop.reason == ("the query has no searchable terms (only stop words or punctuation after "
                           "tokenization)")
    assert silent.reason == "the requested videos have no extracted text"
    empty = make()
    empty.index_segments([], videos=[Video(vid="silent", duration=5.0)])
    (none,) = empty.search_results([q("bread", qid="e")])
    assert none.reason == "the indexed videos have no searchable text"
    assert blank.moments == stop.moments == silent.moments == none.moments == []


# -- indexing through the store ---------------------------------------------------------------

def test_index_reuses_the_stored_transcript_and_snaps_to_the_stored_shots(tmp_path: Path) -> None:
    from bench.store import FeatureStore
    from bench.store.shots import shots_extractor
    from bench.text.asr import AsrConfig, Transcriber
    from bench.text.extract import _speech_extractor
    from bench.video.shots import ShotConfig, Shots

    # The file's transcript (made on the CPU) and shots are in the store: nothing is decoded.
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"stand-in for a video whose transcript and shots are stored")
    store = FeatureStore(tmp_path / "store")
    video_id = store.video_id(clip)
    store.save_json(video_id, _speech_extractor(Transcriber(AsrConfig(), device="cpu")),
                    {"segments": [{"start": 22.0, "end": 25.0, "text": "knead the dough", "lang": "en"}]})
    store.save_json(video_id, shots_extractor(ShotConfig()), Shots(40.0, [10.0, 20.0, 27.0]).to_json())
    video = Video(vid="clip", path=str(clip), duration=40.0)
    r = make({"text": {"use": ["speech"]}})
    r.index([video], store)
    (top,) = r.search([q("dough")], top_k=1)[0]
    # The 3 s line, widened to 4 s (21.5-25.5), snaps to its 7 s shot (not more than 2.5 x the hit).
    assert (top.vid, top.start, top.end, top.evidence.notes) == ("clip", 20.0, 27.0, ())
    assert r.stats()["cache_hit"] is False
    again = make({"text": {"use": ["speech"]}})
    again.index([video], store)
    assert again.stats()["cache_hit"] is True  # the BM25 index was saved in the store too


def test_index_snaps_hits_to_subtitle_lines(tmp_path: Path) -> None:
    from bench.store import FeatureStore

    srt = tmp_path / "talk.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:04,000\nthe oven is hot\n\n"
                   "2\n00:00:20,000 --> 00:00:23,000\nknead the dough slowly\n", encoding="utf-8")
    video = Video(vid="talk", path=str(tmp_path / "talk.mp4"), duration=30.0, subtitles=str(srt))
    r = make({"text": {"use": ["subtitle"]}, "extent": {"use": ["segment"]}})
    r.index([video], FeatureStore(tmp_path / "store"))
    (top,) = r.search([q("dough")], top_k=1)[0]
    assert (top.vid, top.start, top.end) == ("talk", 20.0, 23.0)  # the line, not the 4 s hit 19.5-23.5


# -- integration ------------------------------------------------------------------------------

def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not (_have("bench.text.extract") and _have("bench.datasets.synthetic")),
                    reason="needs bench.text.extract and bench.datasets.synthetic")
def test_synthetic_mini_speech_and_onscreen_text(synthetic_mini: Any) -> None:
    """Real ASR (bundled Whisper tiny.en) and OCR on synthetic-mini, through the runner.

    Measured: speech R1@0.5 = 1.0 (2 queries), onscreen-text R1@0.5 = 0.67 (3 queries: the
    bundled PP-OCR model reads no kana, so ねこカフェ is lost), in both modes. About a
    minute on two cores with an empty cache (dataset build, ASR, OCR).
    """
    from bench.eval.runner import run_one
    from bench.retrievers import get_config

    results = run_one(get_config("bm25-text"), synthetic_mini, ("grounding", "corpus"),
                      device="cpu", top_k=10, out=None, progress=False)
    for res in results:
        assert res.status == "ok", res.reason
        assert res.metrics_by_tag["speech"]["R1@0.5"] >= 1.0
        assert res.metrics_by_tag["onscreen-text"]["R1@0.5"] >= 0.66


def test_each_indexed_line_s_terms_are_known_and_others_have_none() -> None:
    lines = [seg("v", 0, 4, "Fresh breads", lang="en"), seg("v", 10, 14, "the cat sleeps", lang="en")]
    r = make()
    assert r.segment_terms(lines[0]) == frozenset()  # nothing indexed yet
    r.index_segments(lines, videos=[Video(vid="v", duration=20.0)])
    assert r.segment_terms(lines[0]) == frozenset({"fresh", "bread"})  # stemmed, lower-cased
    assert r.segment_terms(lines[1]) == frozenset({"cat", "sleep"})  # stop word dropped
    assert r.segment_terms(seg("v", 0, 4, "another line", lang="en")) == frozenset()
