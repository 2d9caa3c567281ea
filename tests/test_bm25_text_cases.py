"""bm25-text behaviours that no other test pins (found by mutation testing): snippet order
across sources, the video's language as the prior of an undeclared line, indexing from the
store, timing stages, stats and provenance, and BM25's ``b`` reaching the bm25s backend."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from bench.retrievers.bm25_text import BM25Formula, make_bm25
from bench.timing import TimingRecorder, recording
from bench.types import Video
from tests.test_bm25_text import _random_corpus, make, q, seg

CURVE_ONLY = {"extent": {"use": ["curve"]}}


def test_snippets_are_in_time_order_across_sources() -> None:
    # Per-source windows index the OCR line (sorted first by source name) before the earlier
    # speech line; the evidence still lists them by start time.
    segs = [seg("v", 2, 6, "fresh bread here"), seg("v", 5, 9, "BREAD SALE", "ocr"),
            seg("v", 30, 34, "nothing else")]
    r = make({"windows": {"per_source": True}})
    r.index_segments(segs, videos=[Video(vid="v", path="/x/v.mp4", duration=40.0)])
    top = r.search([q("bread")], top_k=1)[0][0]
    assert [(s.start_s, s.source) for s in top.evidence.snippets] == [(2, "speech"), (5, "ocr")]
    # Windows of 10 s every 5 s start at 0..25 (the last text ends at 34): [0, 10] and [5, 15]
    # hold a speech and an OCR document each, [25, 35] one speech document; 3 lines.
    assert r.stats() == {"backend": "bm25s", "method": "lucene", "windows": 5, "videos": 1,
                         "segments": 3, "cache_hit": False}


def _kanji_video_score(lang: str | None) -> float:
    segs = [seg("jv", 0, 4, "日本料理", lang=lang), seg("jv", 10, 14, "天気予報", lang=lang),
            seg("jv", 20, 24, "新幹線", lang=lang)]
    r = make(CURVE_ONLY)
    r.index_segments(segs, videos=[Video(vid="jv", path="/x/jv.mp4", duration=30.0, lang="ja")])
    (top,) = r.search([q("日本料理", "ja")], top_k=1)[0]
    assert (top.vid, top.start, top.end) == ("jv", 0.0, 4.0)
    return top.score


def test_an_undeclared_kanji_line_takes_the_videos_language() -> None:
    # Kanji alone read as Chinese would add the word 日本料理 and split 天気予報 into characters:
    # other document lengths, another score. The video says Japanese, so it is tokenized as such.
    undeclared, japanese, chinese = (_kanji_video_score(lang) for lang in (None, "ja", "zh"))
    assert undeclared == japanese
    assert chinese != pytest.approx(japanese, rel=1e-3)


def test_index_reads_subtitles_through_the_store_and_times_its_stages(tmp_path: Path) -> None:
    from bench.store import FeatureStore

    srt = tmp_path / "talk.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:04,000\nthe oven is hot\n\n"
                   "2\n00:00:20,000 --> 00:00:23,000\nknead the dough slowly\n", encoding="utf-8")
    video = Video(vid="talk", path=str(tmp_path / "talk.mp4"), duration=30.0, subtitles=str(srt))
    r = make({"text": {"use": ["subtitle"]}, **CURVE_ONLY})
    rec = TimingRecorder()
    with recording(rec):
        r.index([video], FeatureStore(tmp_path / "store"))
        (top,) = r.search([q("dough")], top_k=1)[0]
    assert (top.vid, top.start, top.end) == ("talk", 19.5, 23.5)  # widened to 4 s around 20-23
    # Windows of 10 s every 5 s start at 0, 5, 10 and 15 (the last text ends at 23 s); only
    # [0, 10] and [15, 25] hold text.
    assert rec.stages["index_build"].items == 2 and rec.stages["index_build"].calls == 1
    assert rec.stages["query_encode"].items == 1 and rec.stages["query_encode"].calls == 1


def test_provenance_names_the_family_and_each_backends_version() -> None:
    fast, ref = make(), make({"backend": "rank_bm25"})
    assert fast.provenance()["family"] == ref.provenance()["family"] == "bm25-text"
    assert fast.provenance()["backend_version"] == metadata.version("bm25s")
    assert ref.provenance()["backend_version"] == metadata.version("rank-bm25")


def test_bm25s_uses_the_configured_length_normalization() -> None:
    # b far from bm25s's own default 0.75: a backend that dropped it would disagree with rank_bm25.
    docs, queries = _random_corpus(200, seed=3)
    formula = BM25Formula(k1=0.9, b=0.2, method="lucene")
    fast, ref = make_bm25("bm25s", docs, formula), make_bm25("rank_bm25", docs, formula)
    default_b = make_bm25("bm25s", docs, BM25Formula(k1=0.9, method="lucene"))
    for terms in queries:
        np.testing.assert_allclose(fast.scores(terms), ref.scores(terms), rtol=2e-5, atol=1e-5)
    assert any(not np.allclose(fast.scores(t), default_b.scores(t)) for t in queries)
