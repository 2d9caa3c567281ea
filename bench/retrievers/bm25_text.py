"""BM25 over timestamped text windows (speech, on-screen text, captions, subtitles).

``bm25s`` is the fast backend (sparse arrays, saved in the feature store); ``rank_bm25`` is
a reference backend computing the same formula, kept for parity checks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.engine.extent import ExtentConfig, VideoExtents, corpus_segments
from bench.engine.proposals import ProposalConfig
from bench.engine.search import Candidate, Curve, NoAnswer
from bench.errors import BadInput, Unavailable
from bench.evidence import Snippet, TextEvidence
from bench.fsio import directory_swap
from bench.retrievers.base import RetrieverConfig, TextCorpusSearch, parse_params
from bench.spans import Window
from bench.text.extract import TextSources, sources_provenance
from bench.text.segments import Segment
from bench.text.tokenize import Tokenizer, TokenizerConfig, resolve_lang
from bench.text.windows import TextCorpus, WindowConfig, corpus_digest, load_corpus, paint_curve
from bench.timing import stage
from bench.types import Moment, QueryInput, Video

if TYPE_CHECKING:
    from bench.store import FeatureStore

log = logging.getLogger(__name__)

Method = Literal["lucene", "robertson", "bm25+"]
Backend = Literal["bm25s", "rank_bm25"]
INDEX_VERSION = "1"
"""Bumped when the saved index layout or the scoring code changes."""


def _text_proposals() -> ProposalConfig:
    # Text hits are painted over the matched lines only, so the curve is already tight; the
    # whole plateau of a hit is the moment (rel_threshold 0.5). A moment is at least 4 s: a
    # 2 s sentence alone is shorter than what people mark as "the moment" it describes.
    return ProposalConfig(strategy="peak", rel_threshold=0.5, min_len_s=4.0, nms_iou=0.3)


class Params(BaseModel):
    """``params`` of a ``bm25-text`` configuration."""

    model_config = ConfigDict(extra="forbid")

    text: TextSources = Field(default_factory=TextSources)
    """Which text is extracted (speech, OCR, captions, subtitles) and how."""
    windows: WindowConfig = Field(default_factory=WindowConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    backend: Backend = "bm25s"
    method: Method = "lucene"
    """BM25 variant (idf and term-frequency formula), the same in both backends."""
    k1: float = Field(default=1.5, ge=0)
    b: float = Field(default=0.75, ge=0, le=1)
    delta: float = Field(default=0.5, ge=0)
    """``bm25+`` only: the floor added to every matching term's weight."""
    proposals: ProposalConfig = Field(default_factory=_text_proposals)
    curve_fps: float = Field(default=2.0, gt=0)
    """Resolution (samples per second) of the score curve painted from matched lines."""
    max_snippets: int = Field(default=5, ge=1)
    extent: ExtentConfig = Field(default_factory=ExtentConfig)
    """How hits snap to shots, scenes and speech turns (see :class:`~bench.engine.extent.ExtentConfig`)."""


@dataclass
class _Query:
    """A query's terms and the windows it may match; scores are filled in per search."""

    terms: list[str]
    qset: frozenset[str]
    windows: np.ndarray
    scores: np.ndarray | None = None
    matching: np.ndarray | None = None


@dataclass(frozen=True)
class BM25Formula:
    """One BM25 variant: ``method`` picks idf and tf normalization (see :func:`make_bm25`)."""

    k1: float = 1.5
    b: float = 0.75
    method: Method = "lucene"
    delta: float = 0.5


class BM25Scorer(Protocol):
    """Scores every document of a fixed corpus for a bag of query terms."""

    n_docs: int

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """float ``(n_docs,)``: BM25 of each document (0 where no term occurs, except bm25+)."""
        ...

    def matching(self, terms: Sequence[str]) -> np.ndarray:
        """bool ``(n_docs,)``: documents containing at least one of ``terms``."""
        ...


class BM25sScorer:
    """``bm25s`` (sparse CSC matrix of precomputed term weights)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.n_docs = int(model.scores["num_docs"])
        self._vocab: dict[str, int] = model.vocab_dict
        self._indices = model.scores["indices"]
        self._indptr = model.scores["indptr"]

    @classmethod
    def build(cls, corpus_tokens: Sequence[Sequence[str]], formula: BM25Formula) -> BM25sScorer:
        import bm25s

        model = bm25s.BM25(k1=formula.k1, b=formula.b, delta=formula.delta, method=formula.method)
        model.index([list(t) for t in corpus_tokens], show_progress=False)
        return cls(model)

    @classmethod
    def load(cls, path: Path) -> BM25sScorer:
        import bm25s

        return cls(bm25s.BM25.load(str(path), show_progress=False))

    def save(self, path: Path) -> None:
        self.model.save(str(path), show_progress=False)

    def _ids(self, terms: Sequence[str]) -> list[int]:
        return [self._vocab[t] for t in terms if t in self._vocab]

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        ids = self._ids(terms)
        if not ids:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self.model.get_scores_from_ids(ids))

    def matching(self, terms: Sequence[str]) -> np.ndarray:
        hit = np.zeros(self.n_docs, dtype=bool)
        for i in set(self._ids(terms)):
            hit[self._indices[self._indptr[i]:self._indptr[i + 1]]] = True
        return hit


class RankBM25Scorer:
    """``rank_bm25`` with the idf variant matching ``bm25s``'s ``method``.

    robertson = ``BM25Okapi(epsilon=0)`` (negative idf floored at 0, as bm25s clamps it);
    lucene = the same with Lucene's ``log(1 + (N - df + 0.5) / (df + 0.5))`` idf;
    bm25+ = ``BM25Plus``. Okapi scores are divided by ``k1 + 1`` so that values, not just
    rankings, equal bm25s's (whose robertson/lucene term weight omits that constant).
    """

    def __init__(self, corpus_tokens: Sequence[Sequence[str]], formula: BM25Formula) -> None:
        import rank_bm25

        docs = [list(t) for t in corpus_tokens]
        self.n_docs = len(docs)
        self.model: Any
        if formula.method == "bm25+":
            self.model = rank_bm25.BM25Plus(docs, k1=formula.k1, b=formula.b, delta=formula.delta)
            self._scale = 1.0
        else:
            cls = _lucene_okapi() if formula.method == "lucene" else rank_bm25.BM25Okapi
            self.model = cls(docs, k1=formula.k1, b=formula.b, epsilon=0.0)
            self._scale = 1.0 / (formula.k1 + 1.0)

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.get_scores(list(terms)), dtype=np.float64) * self._scale

    def matching(self, terms: Sequence[str]) -> np.ndarray:
        wanted = set(terms)
        return np.fromiter((not wanted.isdisjoint(d) for d in self.model.doc_freqs), dtype=bool,
                           count=self.n_docs)


def _lucene_okapi() -> type:
    from rank_bm25 import BM25Okapi

    class LuceneOkapi(BM25Okapi):  # type: ignore[misc]
        def _calc_idf(self, nd: dict[str, int]) -> None:
            n = self.corpus_size
            for word, df in nd.items():
                self.idf[word] = math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    return LuceneOkapi


def make_bm25(backend: Backend, corpus_tokens: Sequence[Sequence[str]],
              formula: BM25Formula | None = None) -> BM25Scorer:
    """Index tokenized documents with ``backend``; both backends give the same scores."""
    formula = formula or BM25Formula()
    if not any(corpus_tokens):
        raise BadInput("cannot build a BM25 index: no document has any term")
    if backend == "bm25s":
        return BM25sScorer.build(corpus_tokens, formula)
    if backend == "rank_bm25":
        return RankBM25Scorer(corpus_tokens, formula)
    raise BadInput(f"unknown BM25 backend {backend!r}; use bm25s or rank_bm25")


def _package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


class BM25Text(TextCorpusSearch):
    """The ``bm25-text`` family: BM25 over overlapping time windows of extracted text.

    A window's BM25 score is painted onto the lines (segments) of that window that contain
    a query term; the resulting curve goes through :func:`~bench.engine.proposals.propose`,
    so a moment spans the matched lines, not the whole window. Evidence lists the matched
    lines with their times, source and terms.

    A query with no text, or whose text tokenizes to nothing (only stop words or
    punctuation), and a search over videos with no text, return no moments with the reason
    (:meth:`search_results`), never an exception.
    """

    def __init__(self, config: RetrieverConfig, device: str = "cpu") -> None:
        self.name = config.name
        self.config = config
        self.device = device
        self.params: Params = parse_params(Params, config)
        package = "bm25s" if self.params.backend == "bm25s" else "rank-bm25"
        if _package_version(package) is None:
            raise Unavailable(f"{config.name}: backend {self.params.backend} needs the "
                              f"{package} package; pip install {package}")
        self.tokenizer = Tokenizer(self.params.tokenizer)
        self.corpus: TextCorpus | None = None
        self.scorer: BM25Scorer | None = None
        self._seg_terms: list[frozenset[str]] = []
        self._seg_index: dict[Segment, int] = {}
        self._segments: list[Segment] = []
        self._win_segs: list[list[int]] = []
        """Per window, the indices (into ``_segments``) of its lines."""
        self._cache_hit = False

    def segment_terms(self, segment: Segment) -> frozenset[str]:
        """The indexed terms of one line of the corpus (empty for a line not indexed)."""
        j = self._seg_index.get(segment)
        return self._seg_terms[j] if j is not None else frozenset()

    @property
    def formula(self) -> BM25Formula:
        p = self.params
        return BM25Formula(k1=p.k1, b=p.b, method=p.method, delta=p.delta)

    # -- indexing ---------------------------------------------------------------------------

    def index(self, videos: Sequence[Video], store: FeatureStore) -> None:
        """Extract (cached) the configured text of ``videos`` and index its windows."""
        corpus = load_corpus(videos, store, self.params.text, self.params.windows, device=self.device)
        self.index_corpus(corpus, store)
        self.extents = VideoExtents.build(self.params.extent, videos, store, corpus_segments(corpus.windows))

    def index_segments(self, segments: Mapping[str, Sequence[Segment]] | Iterable[Segment], *,
                       videos: Sequence[Video] = (), store: FeatureStore | None = None) -> None:
        """Index segments given directly (vid -> segments, or a flat iterable)."""
        if not isinstance(segments, Mapping):
            grouped: dict[str, list[Segment]] = {}
            for s in segments:
                grouped.setdefault(s.vid, []).append(s)
            segments = grouped
        self.index_corpus(TextCorpus.build(segments, self.params.windows, videos=videos), store)

    def index_corpus(self, corpus: TextCorpus, store: FeatureStore | None = None) -> None:
        """Tokenize and index ``corpus``; with a ``store``, terms and index arrays are cached."""
        unique: dict[Segment, int] = {}
        for w in corpus.windows:
            for s in w.segments:
                unique.setdefault(s, len(unique))
        with stage("index_build", items=len(corpus.windows)):
            key = self._cache_key(corpus)
            cached = self._load(store, key) if store is not None else None
            self._cache_hit = cached is not None
            if cached is not None:
                seg_terms, scorer = cached
            else:
                seg_terms, scorer = self._tokenize_segments(list(unique), corpus), None
            if scorer is None:  # not cached, or rank_bm25 (whose objects are not saved)
                docs = [[t for s in w.segments for t in seg_terms[unique[s]]] for w in corpus.windows]
                scorer = make_bm25(self.params.backend, docs, self.formula) if any(docs) else None
            if cached is None and store is not None:
                self._save(store, key, seg_terms, scorer)
        self.corpus = corpus
        self.scorer = scorer
        self._seg_index = unique
        self._segments = list(unique)
        self._win_segs = [[unique[s] for s in w.segments] for w in corpus.windows]
        self._seg_terms = [frozenset(t) for t in seg_terms]

    def _tokenize_segments(self, segments: list[Segment], corpus: TextCorpus) -> list[list[str]]:
        # A segment without a declared language takes its window's (the video's) when written
        # in that language's script, so query and document stemmers agree when the dataset
        # says what language a video is in; a Latin telop in a Japanese video is detected.
        latin = self.params.tokenizer.default_latin_lang
        lang_of: dict[Segment, str | None] = {}
        for w in corpus.windows:
            for s in w.segments:
                if s not in lang_of:
                    lang_of[s] = s.lang or resolve_lang(s.text, w.lang, latin)
        return [self.tokenizer.tokenize(s.text, lang_of[s]) for s in segments]

    def _cache_key(self, corpus: TextCorpus) -> str:
        spec = {"corpus": corpus_digest(corpus.windows), "tokenizer": self.tokenizer.signature(),
                "formula": vars(self.formula), "backend": self.params.backend,
                "bm25s": _package_version("bm25s"), "version": INDEX_VERSION}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]

    def _load(self, store: FeatureStore, key: str) -> tuple[list[list[str]], BM25Scorer | None] | None:
        path = store.artifact_dir("bm25-text") / key
        if not (path / "done").is_file():
            return None
        try:
            seg_terms = json.loads((path / "terms.json").read_text(encoding="utf-8"))
            scorer: BM25Scorer | None = None
            if (path / "bm25s").is_dir():
                scorer = BM25sScorer.load(path / "bm25s")
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: cached BM25 index %s is unreadable (%s); rebuilding", self.name, path, exc)
            self._discard(store, path)
            return None
        if scorer is None and self.params.backend == "bm25s" and any(seg_terms):
            log.warning("%s: cached BM25 index %s has no arrays; rebuilding", self.name, path)
            self._discard(store, path)
            return None
        return seg_terms, scorer

    @staticmethod
    def _discard(store: FeatureStore, path: Path) -> None:
        """Remove a damaged cache entry, so that the rebuilt index takes its place (a finished
        entry is never replaced: another process may have written it)."""
        if not store.read_only:
            shutil.rmtree(path, ignore_errors=True)

    def _save(self, store: FeatureStore, key: str, seg_terms: list[list[str]],
              scorer: BM25Scorer | None) -> None:
        final = store.artifact_dir("bm25-text") / key
        if store.read_only or (final / "done").is_file():  # a read-only cache: kept in memory only
            return
        shutil.rmtree(final, ignore_errors=True)  # a half-written leftover of a killed run
        # Another process that finished the same index first keeps its copy.
        with directory_swap(final, keep_existing=True) as tmp:
            (tmp / "terms.json").write_text(json.dumps(seg_terms, ensure_ascii=False), encoding="utf-8")
            if isinstance(scorer, BM25sScorer):
                scorer.save(tmp / "bm25s")
            (tmp / "done").write_text(key + "\n", encoding="utf-8")

    # -- search (the engine calls these; see bench.engine) ------------------------------------

    def prepare(self, queries: Sequence[QueryInput],
                vids: Sequence[str] | None) -> list[_Query | NoAnswer]:
        """Each query's terms, or why it cannot be answered (no text, only stop words, no
        searchable text in the index or in the requested videos)."""
        assert self.corpus is not None
        windows = self.corpus.window_ids(vids)
        out: list[_Query | NoAnswer] = []
        for q in queries:
            if not q.text or not q.text.strip():
                out.append(NoAnswer("bm25-text needs a text query; this query has none"))
                continue
            with stage("query_encode", items=1):
                terms = self.tokenizer.tokenize_query(q.text, q.lang)
            if not terms:
                out.append(NoAnswer("the query has no searchable terms (only stop words or "
                                    "punctuation after tokenization)"))
            elif self.scorer is None:
                out.append(NoAnswer("the indexed videos have no searchable text"))
            elif windows.size == 0:
                out.append(NoAnswer("the requested videos have no extracted text"))
            else:
                out.append(_Query(terms, frozenset(terms), windows))
        return out

    def candidates(self, prepared: _Query, vids: Sequence[str] | None, top_k: int) -> list[Candidate]:
        """Videos by their best matching window; enough windows to fill ``top_k`` in most cases.
        A video's moments score at most its best window (plus the length prior): its bound."""
        assert self.corpus is not None and self.scorer is not None
        q = prepared
        q.scores = self.scorer.scores(q.terms)
        q.matching = self.scorer.matching(q.terms)
        hit = q.windows[q.matching[q.windows]]
        if hit.size == 0:
            return []
        n_best = min(hit.size, max(4 * top_k, 32))
        best = hit[np.argsort(-q.scores[hit], kind="stable")[:n_best]]
        peak: dict[str, float] = {}  # vid -> its best window score, best videos first
        for i in best.tolist():
            peak.setdefault(self.corpus.windows[i].vid, float(q.scores[i]))
        prior = self.params.proposals.length_prior
        return [Candidate(vid, bound=vid_peak + prior * math.log(max(self.corpus.durations_s[vid], 1e-3)))
                for vid, vid_peak in list(peak.items())[:top_k]]

    def score(self, prepared: _Query, candidate: Candidate, max_windows: int) -> Curve | list[Moment]:
        """The video's windows that contain a query term, painted over their matched lines."""
        q, scores, matching = prepared, prepared.scores, prepared.matching
        assert self.corpus is not None and scores is not None and matching is not None
        p = self.params
        vid = candidate.vid
        lo, hi = self.corpus.ranges[vid]
        rows = np.flatnonzero(matching[lo:hi]) + lo
        spans: list[tuple[float, float, float]] = []
        matched: dict[int, float] = {}  # line index -> best score of a window holding it
        for i in rows.tolist():
            w = self.corpus.windows[i]
            score = float(scores[i])
            for j in self._win_segs[i]:
                if q.qset.isdisjoint(self._seg_terms[j]):
                    continue
                s = self._segments[j]
                spans.append((max(s.start, w.start), min(s.end, w.end), score))
                matched[j] = max(matched.get(j, -math.inf), score)
        if not spans:
            return []
        duration = self.corpus.durations_s[vid]
        times, curve = paint_curve(duration, p.curve_fps, spans, floor=0.0, falloff=1e-6)

        def explain(win: Window) -> TextEvidence | None:
            return self._evidence(win.start, win.end, matched, q.qset) if win.score > 0 else None

        return Curve(times, curve, duration, p.curve_fps, p.proposals, explain)

    def _evidence(self, start: float, end: float, matched: Mapping[int, float],
                  qset: frozenset[str]) -> TextEvidence:
        segs = self._segments
        inside = [j for j in matched
                  if segs[j].start < end and max(segs[j].end, segs[j].start + 1e-9) > start]
        inside.sort(key=lambda j: (-matched[j], segs[j].start))
        shown = sorted(inside[:self.params.max_snippets], key=lambda j: segs[j].start)
        snippets = tuple(Snippet(segs[j].start, segs[j].end, segs[j].source, segs[j].text,
                                 terms=tuple(sorted(qset & self._seg_terms[j])),
                                 note=segs[j].meta.get("lang_note")) for j in shown)
        found = sorted(set().union(*(qset & self._seg_terms[j] for j in shown)))
        return TextEvidence("bm25", snippets, terms=tuple(found))

    # -- reporting --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Index size and whether it came from the cache (for the run's timing block)."""
        corpus = self.corpus
        return {"backend": self.params.backend, "method": self.params.method,
                "windows": len(corpus.windows) if corpus else 0,
                "videos": len(corpus.vids) if corpus else 0,
                "segments": len(self._seg_terms), "cache_hit": self._cache_hit}

    def provenance(self) -> dict[str, Any]:
        p = self.params
        text = sources_provenance(p.text, device=self.device)
        return {"family": "bm25-text", "backend": p.backend,
                "backend_version": _package_version("bm25s" if p.backend == "bm25s" else "rank-bm25"),
                "formula": vars(self.formula), "tokenizer": self.tokenizer.signature(),
                "windows": p.windows.model_dump(), "text": text, "device": self.device,
                "random_init": bool(text.get("random_init"))}
