"""bm25-text behaviours that no other test pins (found by mutation testing): snippet order
across sources, the video's language as the prior of an undeclared line, indexing from the
store, timing stages, stats and provenance, and BM25's ``b`` reaching the bm25s backend."""

from __future__ import annotations

import hashlib
import json
import math
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.errors import Unavailable
from bench.retrievers.base import RetrieverConfig
from bench.retrievers.bm25_text import BM25Formula, BM25sScorer, BM25Text, make_bm25
from bench.text.windows import corpus_digest
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


# -- construction, the on-disk index cache, provenance and the BM25 backends ------------------

BREAD = [seg("v", 0, 4, "fresh bread", lang="en"), seg("v", 20, 24, "crème brûlée", lang="en")]
BREAD_VIDEOS = [Video(vid="v", path="/x/v.mp4", duration=30.0)]
BREAD_TERMS = [["fresh", "bread"], ["crème", "brûlée"]]
"""The two lines' terms, in the order the index first meets them."""


def _entries(store_root: Path) -> list[Path]:
    """The finished (not hidden) bm25-text cache entries of a store."""
    return sorted(p for p in (store_root / "artifacts" / "bm25-text").iterdir() if not p.name.startswith("."))


def test_before_indexing_there_is_nothing_to_report() -> None:
    r = make()
    assert r.corpus is None and r.scorer is None
    assert r.stats() == {"backend": "bm25s", "method": "lucene", "windows": 0, "videos": 0,
                         "segments": 0, "cache_hit": False}


def test_defaults_to_the_cpu_and_keeps_its_configuration() -> None:
    config = RetrieverConfig(name="bm25-cfg", family="bm25-text",
                             params={"text": {"use": ["subtitle"]}, "k1": 1.2})
    r = BM25Text(config)
    assert (r.name, r.device, r.provenance()["device"]) == ("bm25-cfg", "cpu", "cpu")
    again = BM25Text(r.config)  # a caller rebuilds a retriever from its configuration
    assert again.name == "bm25-cfg" and again.formula == BM25Formula(k1=1.2)


@pytest.mark.parametrize(("backend", "package"), [("bm25s", "bm25s"), ("rank_bm25", "rank-bm25")])
def test_a_backend_needs_only_its_own_package(monkeypatch: pytest.MonkeyPatch, backend: str,
                                              package: str) -> None:
    real = metadata.version

    def version(dist: str) -> str:
        if dist == package:
            raise metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(metadata, "version", version)
    with pytest.raises(Unavailable) as err:
        make({"backend": backend})
    assert str(err.value) == (f"bm25-test: backend {backend} needs the {package} package; "
                              f"pip install {package}")
    other = "rank_bm25" if backend == "bm25s" else "bm25s"
    assert make({"backend": other}).params.backend == other


def test_the_tokenizer_settings_reach_the_tokenizer() -> None:
    segs = [seg("v", 0, 4, "fresh breads", lang="en")]
    plain = make({"tokenizer": {"stem": False}})
    plain.index_segments(segs, videos=BREAD_VIDEOS)
    assert plain.search([q("bread", "en")])[0] == []  # "breads" is not stemmed to "bread"
    (top,) = plain.search([q("breads", "en")])[0]
    assert top.evidence.terms == ("breads",)


def test_the_cache_entry_is_named_by_its_key_and_holds_the_terms(tmp_path: Path) -> None:
    from bench.store import FeatureStore

    r = make({"k1": 1.2, "b": 0.5})
    r.index_segments(BREAD, videos=BREAD_VIDEOS, store=FeatureStore(tmp_path / "store"))
    assert r.corpus is not None
    # The key covers everything that changes the index; reordering a dict does not change it.
    spec = {"version": "1", "backend": "bm25s", "bm25s": metadata.version("bm25s"),
            "formula": {"delta": 0.5, "method": "lucene", "b": 0.5, "k1": 1.2},
            "tokenizer": r.tokenizer.signature(), "corpus": corpus_digest(r.corpus.windows)}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]
    (entry,) = _entries(tmp_path / "store")
    assert entry.name == key
    assert (entry / "done").read_text(encoding="utf-8") == key + "\n"
    # Terms per line, as UTF-8 JSON with the accents kept as written.
    assert (entry / "terms.json").read_text(encoding="utf-8") == '[["fresh", "bread"], ["crème", "brûlée"]]'
    assert (entry / "bm25s" / "vocab.index.json").is_file()


def test_a_cached_index_does_not_depend_on_the_locale(tmp_path: Path) -> None:
    # A cluster node (or a container) may run under the C locale, whose codec is ASCII: the
    # cache must still be written and read as UTF-8, or non-ASCII terms break it.
    import locale

    from bench.store import FeatureStore

    store = FeatureStore(tmp_path / "store")
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        first, again = make(), make()
        first.index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
        again.index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    finally:
        locale.setlocale(locale.LC_CTYPE, before)
    assert (first.stats()["cache_hit"], again.stats()["cache_hit"]) == (False, True)
    (top,) = again.search([q("brûlée", "en")])[0]
    assert (top.start, top.end, top.evidence.terms) == (20.0, 24.0, ("brûlée",))


def test_a_read_only_store_is_left_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.store import FeatureStore
    from tests.test_store import deny_writes_under

    (tmp_path / "cache").mkdir()
    deny_writes_under(monkeypatch, tmp_path / "cache")
    store = FeatureStore(tmp_path / "cache" / "store")
    assert store.read_only
    r = make()
    r.index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    assert r.stats()["cache_hit"] is False
    assert list((tmp_path / "cache").iterdir()) == []  # kept in memory only
    (top,) = r.search([q("fresh bread", "en")])[0]
    assert (top.start, top.end) == (0.0, 4.0)


def test_a_half_written_cache_entry_is_replaced(tmp_path: Path) -> None:
    import shutil

    from bench.store import FeatureStore

    store = FeatureStore(tmp_path / "store")
    make().index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    (entry,) = _entries(tmp_path / "store")
    # What a run killed while writing leaves: terms but no arrays and no "done" marker.
    shutil.rmtree(entry / "bm25s")
    (entry / "done").unlink()
    again = make()
    again.index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    assert again.stats()["cache_hit"] is False
    assert (entry / "done").is_file() and (entry / "bm25s" / "vocab.index.json").is_file()
    third = make()
    third.index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    assert third.stats()["cache_hit"] is True


def test_a_cached_index_without_its_arrays_is_rebuilt(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    import shutil

    from bench.store import FeatureStore

    store = FeatureStore(tmp_path / "store")
    first = make()
    first.index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    (entry,) = _entries(tmp_path / "store")
    shutil.rmtree(entry / "bm25s")
    again = make()
    with caplog.at_level("WARNING", logger="bench.retrievers.bm25_text"):
        again.index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    assert again.stats()["cache_hit"] is False
    assert [r.getMessage() for r in caplog.records if r.name == "bench.retrievers.bm25_text"] == [
        f"bm25-test: cached BM25 index {entry} has no arrays; rebuilding"]
    a, b = first.search([q("fresh bread", "en")])[0], again.search([q("fresh bread", "en")])[0]
    assert [(m.start, m.end, m.score) for m in a] == [(m.start, m.end, m.score) for m in b]
    third = make()  # the rebuilt entry replaced the damaged one: loaded, no warning
    caplog.clear()
    with caplog.at_level("WARNING", logger="bench.retrievers.bm25_text"):
        third.index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    assert third.stats()["cache_hit"] is True
    assert not [r for r in caplog.records if r.name == "bench.retrievers.bm25_text"]


def test_an_unreadable_cached_index_is_replaced_by_the_rebuilt_one(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from bench.store import FeatureStore

    store = FeatureStore(tmp_path / "store")
    make().index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    (entry,) = _entries(tmp_path / "store")
    (entry / "terms.json").write_text("{broken", encoding="utf-8")
    with caplog.at_level("WARNING", logger="bench.retrievers.bm25_text"):
        make().index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "bench.retrievers.bm25_text"]
    assert line.startswith(f"bm25-test: cached BM25 index {entry} is unreadable (")
    assert (entry / "terms.json").read_text(encoding="utf-8") != "{broken"
    again = make()
    again.index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    assert again.stats()["cache_hit"] is True


@pytest.mark.parametrize("finished_during", ["tokenizing", "writing"])
def test_an_index_another_process_finished_first_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         finished_during: str) -> None:
    # Two processes index the same corpus into one store; the other one finishes its entry
    # while this one is still tokenizing (before it writes) or writing its own copy. Its
    # finished entry stays (a reader may be loading it), and this one's is dropped.
    from bench.store import FeatureStore

    store = FeatureStore(tmp_path / "store")
    owner: Any = BM25Text if finished_during == "tokenizing" else BM25sScorer
    name = "_tokenize_segments" if finished_during == "tokenizing" else "save"
    real = getattr(owner, name)
    raced: list[bool] = []

    def other_process_finishes_first(*args: Any) -> Any:
        if not raced:
            raced.append(True)
            make().index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
            (theirs,) = _entries(tmp_path / "store")
            (theirs / "theirs").write_text("", encoding="utf-8")
        return real(*args)

    monkeypatch.setattr(owner, name, other_process_finishes_first)
    r = make()
    r.index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    assert raced and r.stats()["cache_hit"] is False
    (entry,) = _entries(tmp_path / "store")
    assert (entry / "theirs").is_file() and (entry / "done").is_file()
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no half-built copy left
    (top,) = r.search([q("fresh bread", "en")])[0]
    assert (top.start, top.end) == (0.0, 4.0)


def test_provenance_records_the_device_and_a_random_init_text_model() -> None:
    r = BM25Text(RetrieverConfig(name="bm25-cuda", family="bm25-text", params={
        "text": {"use": ["caption", "subtitle"], "caption": "tiny"},
        "windows": {"window_s": 8, "stride_s": 4}}), "cuda")
    prov = r.provenance()
    assert set(prov) == {"family", "backend", "backend_version", "formula", "tokenizer", "windows",
                         "text", "device", "random_init"}
    assert prov["device"] == "cuda"
    assert prov["windows"] == {"window_s": 8.0, "stride_s": 4.0, "per_source": False, "split_sentences": True}
    text = prov["text"]
    assert text["use"] == ["caption", "subtitle"]
    # The captioner would run on the retriever's device, in half precision there.
    assert (text["caption"]["device"], text["caption"]["dtype"]) == ("cuda", "float16")
    # The tiny captioner has random weights: its text is no result, and the record says so.
    assert text["caption"]["random_init"] is True and prov["random_init"] is True


def test_bm25_plus_uses_the_configured_b_and_delta_in_both_backends() -> None:
    # N = 2 documents, average length 2.5; "b" is in the second one only, twice, so its idf is
    # bm25+'s log((N + 1) / df) = log 3. With k1 = 1, b = 0.5, delta = 1 (b and delta off their
    # defaults) the second scores log 3 * (1 + 2 * 2 / (1 * (1 - 0.5 + 0.5 * 4 / 2.5) + 2)) and
    # the first, without the term, log 3 * delta.
    docs = [["a"], ["a", "b", "b", "c"]]
    formula = BM25Formula(k1=1.0, b=0.5, method="bm25+", delta=1.0)
    expected = [math.log(3), math.log(3) * (1 + 4 / 3.3)]
    for backend in ("bm25s", "rank_bm25"):
        scores = make_bm25(backend, docs, formula).scores(["b"])  # type: ignore[arg-type]
        np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_building_a_bm25s_index_draws_no_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    docs, _ = _random_corpus(20, seed=5)
    make_bm25("bm25s", docs)
    assert capsys.readouterr().err == ""


def test_a_damaged_cached_index_another_process_removed_first_is_no_error(tmp_path: Path) -> None:
    import logging
    import shutil

    from bench.store import FeatureStore

    store = FeatureStore(tmp_path / "store")
    make().index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    (entry,) = _entries(tmp_path / "store")
    (entry / "terms.json").write_text("{broken", encoding="utf-8")

    class OtherProcess(logging.Handler):  # removes the entry the moment this one rejects it
        def emit(self, record: logging.LogRecord) -> None:
            shutil.rmtree(entry, ignore_errors=True)

    handler = OtherProcess(logging.WARNING)
    logging.getLogger("bench.retrievers.bm25_text").addHandler(handler)
    try:
        r = make()
        r.index_segments(BREAD, videos=BREAD_VIDEOS, store=store)
    finally:
        logging.getLogger("bench.retrievers.bm25_text").removeHandler(handler)
    assert r.stats()["cache_hit"] is False and r.search([q("fresh bread", "en")])[0]
    assert (entry / "done").is_file()  # rebuilt in its place
